//! ConsumerGroup reconciler: observes the Kafka group (protocol, state, members, committed offsets, log end
//! offsets, lag), initializes offsets of partitions that have none (`offsetInit`, only while the group is
//! empty), guards offsets against retention expiry, keeps the group's configs as declared (`group_config`),
//! deletes the group behind a finalizer when asked to, and writes status only when something changed.

use super::resolve::initial_offsets;
use super::sampler::{ClusterSampler, GroupSample, SampleState};
use super::status::{apply_group_status, ms_from_time, now, time_from_ms};
use super::{Context, Error};
use crate::api::conditions::{Progress, READY, condition, find, set_condition, set_progress};
use crate::api::{
    ConsumerGroup, ConsumerGroupStatus, DeletionPolicy, GroupMemberStatus, KafkaCluster, OffsetInitPolicy,
    RetentionGuardStatus,
};
use crate::kafka::{GroupOffsets, KafkaClient, KafkaError, TopicPartition};
use crate::plan::offset_init::{InitPolicy, OffsetInitDecision, plan_offset_init};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONTROLLER: &str = "consumergroup";
/// Added only when `deletionPolicy: Delete` asks for cleanup on deletion.
pub const FINALIZER: &str = "kafkagroups.dev/delete-group";
pub const OFFSETS_INITIALIZED: &str = "OffsetsInitialized";
pub const RETENTION_GUARD: &str = "RetentionGuard";
pub const DELETION_BLOCKED: &str = "DeletionBlocked";

pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let groups: Api<ConsumerGroup> = super::scoped_api(&ctx);
    let clusters: Api<KafkaCluster> = super::scoped_api(&ctx);
    let controller = Controller::new(groups, watcher::Config::default().any_semantic());
    let store = controller.store();
    let results = controller
        // A KafkaCluster that changes (e.g. becomes Ready) wakes the groups on it at once.
        .watches(
            clusters,
            watcher::Config::default().any_semantic(),
            move |cluster: KafkaCluster| {
                let ns = cluster.namespace();
                let name = cluster.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|g| g.namespace() == ns && g.spec.cluster_ref.name == name)
                    .map(|g| ObjectRef::from_obj(g.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(ctx.ownership_changes())
        .reconcile_on(ctx.samplers.first_sample_triggers())
        .with_config(super::runner_config(&ctx))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    super::drain(CONTROLLER, results).await;
}

fn key_of(group: &ConsumerGroup) -> String {
    format!("cg/{}/{}", group.namespace().unwrap_or_default(), group.name_any())
}

#[tracing::instrument(skip_all, fields(namespace = group.namespace().unwrap_or_default(), name = group.name_any()))]
async fn reconcile(group: Arc<ConsumerGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = group.namespace().unwrap_or_default();
    let api: Api<ConsumerGroup> = Api::namespaced(ctx.kube.clone(), &ns);
    if let super::shard_gate::Gate::Elsewhere(shard) = super::shard_gate::group(&ctx, &group).await? {
        // Another replica's shard: no write; this replica forgets what it remembered of the group.
        tracing::debug!(shard, "not this replica's shard");
        super::scaling::forget(&ctx, &group);
        ctx.metrics
            .forget_group(&format!("{ns}/{}", group.spec.cluster_ref.name), &group.group_id());
        return Ok(Action::requeue(super::shard_gate::ELSEWHERE_RECHECK));
    }
    let action = if group.meta().deletion_timestamp.is_some() {
        finalize(&api, &group, &ctx).await?
    } else {
        ensure_finalizer(&api, &group).await?;
        observe_and_act(&api, &group, &ctx).await?
    };
    ctx.metrics.reconciled(CONTROLLER, started.elapsed().as_secs_f64());
    Ok(action)
}

fn error_policy(group: Arc<ConsumerGroup>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = group.name_any(), error = %error, "consumergroup reconcile failed");
    ctx.metrics.failed(CONTROLLER, error.kind());
    Action::requeue(ctx.backoff(&key_of(&group), Duration::from_secs(60)))
}

/// The finalizer is there exactly when `deletionPolicy: Delete` needs cleanup on deletion.
async fn ensure_finalizer(api: &Api<ConsumerGroup>, group: &ConsumerGroup) -> Result<(), Error> {
    let wanted = group.spec.deletion_policy == DeletionPolicy::Delete;
    super::finalizers::set_finalizer(api, group, FINALIZER, wanted).await
}

async fn remove_finalizer(api: &Api<ConsumerGroup>, group: &ConsumerGroup) -> Result<(), Error> {
    super::finalizers::set_finalizer(api, group, FINALIZER, false).await
}

async fn publish(ctx: &Context, group: &ConsumerGroup, type_: EventType, reason: &str, action: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &group.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an Event");
    }
}

/// Deletion with `deletionPolicy: Delete`: delete the Kafka group once it is empty, then let go.
async fn finalize(api: &Api<ConsumerGroup>, group: &ConsumerGroup, ctx: &Context) -> Result<Action, Error> {
    super::scaling::forget(ctx, group);
    if !group.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if group.spec.deletion_policy == DeletionPolicy::Retain {
        remove_finalizer(api, group).await?;
        return Ok(Action::await_change());
    }
    let group_id = group.group_id();
    let blocked = async {
        let client = cluster_client(group, ctx).await?;
        let description = client.describe_group(&group_id).await?;
        if !description.is_inactive() {
            return Ok::<_, Error>(Some(format!(
                "group {group_id} still has {} member(s) ({}): stop its consumers; it is deleted once it is empty",
                description.members.len(),
                description.state
            )));
        }
        if description.exists() || !client.group_offsets(&group_id).await?.is_empty() {
            let results = client.delete_groups(std::slice::from_ref(&group_id)).await;
            match results.get(&group_id) {
                Some(Ok(())) | None => {}
                Some(Err(e)) if e.code() == Some(kafka_protocol::error::ResponseError::GroupIdNotFound) => {}
                Some(Err(KafkaError::Response {
                    error: kafka_protocol::error::ResponseError::NonEmptyGroup,
                    ..
                })) => return Ok(Some(format!("group {group_id} is not empty: stop its consumers"))),
                Some(Err(e)) => return Err(e.clone().into()),
            }
            publish(
                ctx,
                group,
                EventType::Normal,
                "GroupDeleted",
                "Delete",
                format!("Deleted Kafka group {group_id}"),
            )
            .await;
        }
        Ok(None)
    }
    .await;
    let why = match blocked {
        Ok(None) => {
            remove_finalizer(api, group).await?;
            return Ok(Action::await_change());
        }
        Ok(Some(why)) => why,
        Err(e) => format!("cannot delete group {group_id} yet: {e}"),
    };
    let mut status = group.status.clone().unwrap_or_default();
    let was_blocked = find(&status.conditions, DELETION_BLOCKED).is_some_and(|c| c.status == "True");
    set_condition(
        &mut status.conditions,
        condition(
            DELETION_BLOCKED,
            true,
            "GroupNotEmpty",
            why.clone(),
            group.metadata.generation,
            now(),
        ),
    );
    apply_group_status(api, group, &status).await?;
    if !was_blocked {
        publish(ctx, group, EventType::Warning, "DeletionBlocked", "Delete", why).await;
    }
    Ok(Action::requeue(ctx.config.group_interval.min(Duration::from_secs(10))))
}

/// The group's KafkaCluster: from the cluster controller's watch, or from the API server when the watch does not
/// have it (yet). Groups that act on lag reconcile after every scan: a GET each time would cost the API server
/// a request per resource per interval (1,000 per second at 5,000 resources).
async fn cluster_of(group: &ConsumerGroup, ctx: &Context) -> Result<Arc<KafkaCluster>, Error> {
    let ns = group.namespace().unwrap_or_default();
    let name = &group.spec.cluster_ref.name;
    if let Some(cluster) = super::shard_gate::watched_cluster(ctx, &ns, name) {
        return Ok(cluster);
    }
    let clusters: Api<KafkaCluster> = Api::namespaced(ctx.kube.clone(), &ns);
    clusters
        .get_opt(name)
        .await?
        .map(Arc::new)
        .ok_or_else(|| Error::Config(format!("KafkaCluster {name} does not exist in namespace {ns}")))
}

async fn cluster_client(group: &ConsumerGroup, ctx: &Context) -> Result<KafkaClient, Error> {
    let cluster = cluster_of(group, ctx).await?;
    ctx.clients.get(&ctx.kube, &cluster, &ctx.config.client).await
}

/// What one reconcile saw of the group: the shared sample, and the committed offsets as this reconcile
/// leaves them (it may commit initial or restored offsets).
pub(super) struct Observation {
    pub(super) sample: Arc<GroupSample>,
    pub(super) offsets: GroupOffsets,
}

/// The group as the cluster's shared lag sampler last saw it (a new group waits for its first scan).
/// The group's sample, or None while the sampler has none yet (its scan's end reconciles the resource again).
/// A group that waited longer than two operation timeouts reports Kafka unavailable.
fn observe(group: &ConsumerGroup, ctx: &Context, sampler: &ClusterSampler) -> Result<Option<Observation>, Error> {
    let longest_wait = ctx.config.client.operation_timeout * 2;
    let sample = match sampler.sample(
        &group.group_id(),
        &group.spec.topics,
        group.spec.isolation,
        group.spec.group_type,
        ObjectRef::from_obj(group),
    ) {
        SampleState::Ready(sample) => sample?,
        SampleState::Pending { waited } if waited >= longest_wait => {
            return Err(Error::Kafka(KafkaError::NoAttemptFinished(longest_wait)));
        }
        SampleState::Pending { .. } => return Ok(None),
    };
    Ok(Some(Observation {
        offsets: sample.offsets.clone(),
        sample,
    }))
}

async fn observe_and_act(api: &Api<ConsumerGroup>, group: &ConsumerGroup, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(group);
    let generation = group.metadata.generation;
    let group_id = group.group_id();
    let old = group.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;
    status.group_id = Some(group_id.clone());
    let mut events: Vec<(EventType, &str, &str, String)> = Vec::new();

    let observed = async {
        let cluster = cluster_of(group, ctx).await?;
        let client = ctx.clients.get(&ctx.kube, &cluster, &ctx.config.client).await?;
        super::group_config::reconcile_config(api, &client, group, ctx, &mut status, &mut events).await?;
        let sampler = ctx.samplers.for_cluster(
            &cluster.namespace().unwrap_or_default(),
            &cluster.name_any(),
            &client,
            ctx.config.lag_interval,
            ctx.config.group_interval,
            ctx.metrics.clone(),
        );
        let Some(mut obs) = observe(group, ctx, &sampler)? else {
            // Reconciled again when the scan brings the sample; this requeue only bounds the wait.
            return Ok::<_, Error>(Observed::Pending(ctx.config.client.operation_timeout * 2));
        };
        if let Some(why) = super::group_type::mismatch(group.spec.group_type, &obs.sample.description) {
            return Err(Error::TypeMismatch(why));
        }
        let committed_before = obs.offsets.clone();
        let rules = super::group_type::rules(&obs.sample.group_type);
        let acted = async {
            if rules.commits_initial_offsets {
                init_offsets(&client, group, &group_id, &mut obs, &mut status, &mut events).await?;
            } else {
                // A share group's offsetInit is its group config `share.auto.offset.reset` (group_config).
                status.conditions.retain(|c| c.type_ != OFFSETS_INITIALIZED);
            }
            if rules.offsets_expire {
                super::group_retention::guard_retention(
                    &client,
                    group,
                    ctx,
                    &group_id,
                    &mut obs,
                    &mut status,
                    &mut events,
                )
                .await
            } else {
                super::group_retention::retention_not_applicable(group, &mut status);
                Ok(())
            }
        }
        .await;
        // After a commit the shared sample is stale: the next reconcile must not act on it again.
        if obs.offsets != committed_before || acted.is_err() {
            sampler.invalidate(&group_id);
        }
        acted?;
        let measured = obs.sample.measured_lags();
        let input = super::scaling::LagInput {
            description: &obs.sample.description,
            offsets: &obs.offsets,
            log_ends: &obs.sample.log_ends,
            record_timestamps: &obs.sample.record_timestamps,
            measured: &measured,
            taken_at_ms: obs.sample.taken_at_ms,
            partitions: obs.sample.declared.len(),
            rules: super::group_type::rules(&obs.sample.group_type),
        };
        let cluster_name = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
        super::scaling::evaluate(ctx, group, &cluster_name, input, &mut status, &mut events).await?;
        Ok::<_, Error>(Observed::Sampled(obs, sampler.next_results_in()))
    }
    .await;

    let action = match observed {
        Ok(Observed::Pending(bound)) => {
            // Nothing was observed: the status keeps its generation, and is written only if the group's
            // configs changed it.
            status.observed_generation = old.observed_generation;
            Action::requeue(bound)
        }
        Ok(Observed::Sampled(obs, next_sample_in)) => {
            fill_observation(&mut status, &obs);
            set_condition(
                &mut status.conditions,
                condition(
                    READY,
                    true,
                    "Observed",
                    format!("group {group_id} is {}", obs.sample.description.state),
                    generation,
                    now(),
                ),
            );
            set_progress(&mut status.conditions, Progress::Done, generation, now());
            ctx.reset_backoff(&key);
            let interval = if group.spec.scaling.is_some() || group.spec.lag_budget.is_some() {
                lag_wake(ctx.config.group_interval.min(ctx.config.lag_interval), next_sample_in)
            } else {
                ctx.config.group_interval
            };
            Action::requeue(next_wake(interval, status.retention_guard.as_ref()))
        }
        Err(e) => {
            let reason = match &e {
                Error::Config(_) => "ClusterNotFound",
                Error::TypeMismatch(_) => "TypeMismatch",
                Error::InsecureCredentials(_) => "InsecureCredentials",
                Error::Kafka(KafkaError::UnknownTopic(_)) => "TopicNotFound",
                Error::Kafka(_) => "KafkaUnavailable",
                Error::Kube(_) => "KubernetesError",
            };
            let was = find(&old.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()));
            set_condition(
                &mut status.conditions,
                condition(READY, false, reason, e.to_string(), generation, now()),
            );
            // kstatus: a group of another kind, or credentials the operator will not send in clear text, need
            // a change of the spec (Stalled: Failed); anything else may pass on its own (InProgress).
            let needs_a_change = matches!(reason, "TypeMismatch" | "InsecureCredentials");
            let progress = Progress::after_failure(reason, e.to_string(), needs_a_change);
            set_progress(&mut status.conditions, progress, generation, now());
            if was != Some(("False".to_owned(), reason.to_owned())) {
                events.push((EventType::Warning, reason, "Observe", e.to_string()));
            }
            ctx.metrics.failed(CONTROLLER, e.kind());
            Action::requeue(ctx.backoff(&key, ctx.config.group_interval))
        }
    };
    apply_group_status(api, group, &status).await?;
    for (type_, reason, action_name, note) in events {
        publish(ctx, group, type_, reason, action_name, note).await;
    }
    Ok(action)
}

/// What `observe_and_act` reached: the group sampled (and the sampler's next results due in), or its first
/// sample still pending (requeue bound).
enum Observed {
    Sampled(Observation, Option<Duration>),
    Pending(Duration),
}

/// Groups that act on lag (scaling, lag budgets) wake just after the sampler's next scan, so that a lag
/// change reaches the decision within one scan rather than up to a scan plus a reconcile interval later.
fn lag_wake(interval: Duration, next_sample_in: Option<Duration>) -> Duration {
    const AFTER_SCAN: Duration = Duration::from_millis(100);
    match next_sample_in {
        Some(due) => (due + AFTER_SCAN).min(interval),
        None => interval,
    }
}

/// Wake up in time for the retention guard's next deadline, or after the regular interval.
fn next_wake(interval: Duration, guard: Option<&RetentionGuardStatus>) -> Duration {
    let Some(expires) = guard.and_then(|g| g.expires_at.as_ref()) else {
        return interval;
    };
    let until = ms_from_time(expires) - k8s_openapi::jiff::Timestamp::now().as_millisecond();
    if until <= 0 {
        return interval.min(Duration::from_secs(2));
    }
    interval.min(Duration::from_millis(until as u64 + 500))
}

fn fill_observation(status: &mut ConsumerGroupStatus, obs: &Observation) {
    let d = &obs.sample.description;
    status.state = Some(d.state.as_str().to_owned());
    status.protocol = d.exists().then(|| d.group_type.as_str().to_owned());
    status.members = d.members.len() as i32;
    status.member_details = d
        .members
        .iter()
        .map(|m| GroupMemberStatus {
            member_id: m.member_id.clone(),
            client_id: m.client_id.clone(),
            host: m.host.clone(),
            instance_id: m.instance_id.clone(),
            assignment: m.assignment.iter().map(|tp| tp.to_string()).collect(),
        })
        .collect();
    let (isolation, source) = obs.sample.isolation();
    let high_watermark = |tp: &TopicPartition, committed: i64| {
        obs.sample
            .log_ends
            .get(tp)
            .map(|end| crate::lag::high_watermark_lag(committed, *end))
    };
    status.total_lag = Some(
        obs.offsets
            .iter()
            .filter_map(|(tp, c)| obs.sample.partition_lag(tp, c.offset))
            .sum(),
    );
    status.high_watermark_lag = Some(
        obs.offsets
            .iter()
            .filter_map(|(tp, c)| high_watermark(tp, c.offset))
            .sum(),
    );
    status.isolation = Some(isolation);
    status.isolation_source = Some(source);
    status.total_lag_is_upper_bound = obs
        .offsets
        .keys()
        .any(|tp| obs.sample.consumable_of(tp).is_some_and(|c| !c.exact));
    status.oldest_unconsumed_record = obs.sample.oldest_unconsumed_ms().map(time_from_ms);
    status.partitions_without_offsets = obs
        .sample
        .declared
        .iter()
        .filter(|tp| !obs.offsets.contains_key(*tp))
        .count() as i32;
}

pub(super) type PendingEvents = Vec<(EventType, &'static str, &'static str, String)>;

async fn init_offsets(
    client: &KafkaClient,
    group: &ConsumerGroup,
    group_id: &str,
    obs: &mut Observation,
    status: &mut ConsumerGroupStatus,
    events: &mut PendingEvents,
) -> Result<(), Error> {
    let Some(init) = &group.spec.offset_init else {
        status.conditions.retain(|c| c.type_ != OFFSETS_INITIALIZED);
        return Ok(());
    };
    let policy = match init.policy {
        OffsetInitPolicy::Earliest => InitPolicy::Earliest,
        OffsetInitPolicy::Latest => InitPolicy::Latest,
        OffsetInitPolicy::None => InitPolicy::None,
    };
    let committed: BTreeSet<TopicPartition> = obs.offsets.keys().cloned().collect();
    let missing: Vec<TopicPartition> = obs
        .sample
        .declared
        .iter()
        .filter(|tp| !committed.contains(*tp))
        .cloned()
        .collect();
    let starts = initial_offsets(client, policy, &missing, Some(&obs.sample.log_ends)).await?;
    let generation = group.metadata.generation;
    let decision = plan_offset_init(
        policy,
        &obs.sample.declared,
        &committed,
        obs.sample.description.is_inactive(),
        &starts,
    );
    let new_condition: Option<Condition> = match decision {
        OffsetInitDecision::NothingToDo => Some(condition(
            OFFSETS_INITIALIZED,
            true,
            "AllPartitionsHaveOffsets",
            "every partition of spec.topics has a committed offset",
            generation,
            now(),
        )),
        OffsetInitDecision::Commit(offsets) => {
            client.commit_offsets(group_id, &offsets).await?;
            let list: Vec<String> = offsets.iter().map(|(tp, o)| format!("{tp}@{o}")).collect();
            events.push((
                EventType::Normal,
                "OffsetsInitialized",
                "InitializeOffsets",
                format!(
                    "Committed {} starting offset(s) ({:?}): {}",
                    offsets.len(),
                    init.policy,
                    list.join(", ")
                ),
            ));
            for (tp, offset) in offsets {
                obs.offsets.insert(
                    tp,
                    crate::kafka::CommittedOffset {
                        offset,
                        leader_epoch: None,
                        metadata: String::new(),
                    },
                );
            }
            Some(condition(
                OFFSETS_INITIALIZED,
                true,
                "Initialized",
                "committed starting offsets for new partitions",
                generation,
                now(),
            ))
        }
        OffsetInitDecision::WaitForEmptyGroup(missing) => Some(condition(
            OFFSETS_INITIALIZED,
            false,
            "GroupActive",
            format!(
                "{} partition(s) have no committed offset; they are initialized once the group is empty (the group's consumers start them with their auto.offset.reset meanwhile)",
                missing.len()
            ),
            generation,
            now(),
        )),
        OffsetInitDecision::StartUnknown(unknown) => Some(condition(
            OFFSETS_INITIALIZED,
            false,
            "StartOffsetUnknown",
            format!("the start offset of {} partition(s) is not known yet", unknown.len()),
            generation,
            now(),
        )),
    };
    if let Some(c) = new_condition {
        set_condition(&mut status.conditions, c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_groups_wake_just_after_the_next_scan_but_never_later_than_the_interval() {
        let interval = Duration::from_secs(5);
        assert_eq!(lag_wake(interval, None), interval);
        assert_eq!(
            lag_wake(interval, Some(Duration::from_millis(1_200))),
            Duration::from_millis(1_300)
        );
        // A scan that is due (or late) is polled for shortly after.
        assert_eq!(lag_wake(interval, Some(Duration::ZERO)), Duration::from_millis(100));
        assert_eq!(lag_wake(interval, Some(Duration::from_secs(9))), interval);
    }
}
