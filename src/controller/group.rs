//! ConsumerGroup reconciler: observes the Kafka group (protocol, state, members, committed offsets, log end
//! offsets, lag), initializes offsets of partitions that have none (`offsetInit`, only while the group is
//! empty), guards offsets against retention expiry, deletes the group behind a finalizer when asked to,
//! and writes status only when something changed.

use super::resolve::initial_offsets;
use super::sampler::{ClusterSampler, GroupSample};
use super::status::{apply_status, ms_from_time, now, time_from_ms};
use super::{Context, Error};
use crate::api::conditions::{READY, condition, find, set_condition};
use crate::api::{
    ConsumerGroup, ConsumerGroupStatus, DeletionPolicy, GroupMemberStatus, KafkaCluster, OffsetInitPolicy,
    RetentionGuardStatus, RetentionProtection, SavedOffset,
};
use crate::kafka::{GroupDescription, GroupOffsets, GroupType, KafkaClient, KafkaError, TopicPartition};
use crate::plan::offset_init::{InitPolicy, OffsetInitDecision, plan_offset_init};
use crate::plan::retention::{GroupKind, Protection, RetentionAction, RetentionObservation, plan_retention};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};
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
    apply_status(api, group, group.status.as_ref(), &status).await?;
    if !was_blocked {
        publish(ctx, group, EventType::Warning, "DeletionBlocked", "Delete", why).await;
    }
    Ok(Action::requeue(ctx.config.group_interval.min(Duration::from_secs(10))))
}

async fn cluster_of(group: &ConsumerGroup, ctx: &Context) -> Result<KafkaCluster, Error> {
    let ns = group.namespace().unwrap_or_default();
    let clusters: Api<KafkaCluster> = Api::namespaced(ctx.kube.clone(), &ns);
    clusters.get_opt(&group.spec.cluster_ref.name).await?.ok_or_else(|| {
        Error::Config(format!(
            "KafkaCluster {} does not exist in namespace {ns}",
            group.spec.cluster_ref.name
        ))
    })
}

async fn cluster_client(group: &ConsumerGroup, ctx: &Context) -> Result<KafkaClient, Error> {
    let cluster = cluster_of(group, ctx).await?;
    ctx.clients.get(&ctx.kube, &cluster, &ctx.config.client).await
}

/// What one reconcile saw of the group: the shared sample, and the committed offsets as this reconcile
/// leaves them (it may commit initial or restored offsets).
struct Observation {
    sample: Arc<GroupSample>,
    offsets: GroupOffsets,
}

/// The group as the cluster's shared lag sampler last saw it (a new group waits for its first scan).
async fn observe(group: &ConsumerGroup, ctx: &Context, sampler: &ClusterSampler) -> Result<Observation, Error> {
    let sample = sampler
        .sample(
            &group.group_id(),
            &group.spec.topics,
            group.spec.isolation,
            group.spec.group_type,
            ctx.config.client.operation_timeout * 2,
        )
        .await
        .ok_or_else(|| Error::Kafka(KafkaError::NoAttemptFinished(ctx.config.client.operation_timeout * 2)))??;
    Ok(Observation {
        offsets: sample.offsets.clone(),
        sample,
    })
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
        let sampler = ctx.samplers.for_cluster(
            &cluster.namespace().unwrap_or_default(),
            &cluster.name_any(),
            &client,
            ctx.config.lag_interval,
            ctx.config.group_interval,
            ctx.metrics.clone(),
        );
        let mut obs = observe(group, ctx, &sampler).await?;
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
                guard_retention(&client, group, ctx, &group_id, &mut obs, &mut status, &mut events).await
            } else {
                retention_not_applicable(group, &mut status);
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
        Ok::<_, Error>((obs, sampler.next_results_in()))
    }
    .await;

    let action = match observed {
        Ok((obs, next_sample_in)) => {
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
            if was != Some(("False".to_owned(), reason.to_owned())) {
                events.push((EventType::Warning, reason, "Observe", e.to_string()));
            }
            ctx.metrics.failed(CONTROLLER, e.kind());
            Action::requeue(ctx.backoff(&key, ctx.config.group_interval))
        }
    };
    apply_status(api, group, group.status.as_ref(), &status).await?;
    for (type_, reason, action_name, note) in events {
        publish(ctx, group, type_, reason, action_name, note).await;
    }
    Ok(action)
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

/// What the retention guard must know about an existing group, by its type: the one place the reconciler
/// tells group types apart. `None` for a group the broker does not know (any more).
fn retention_kind(d: &GroupDescription) -> Option<GroupKind> {
    if !d.exists() {
        return None;
    }
    Some(match &d.group_type {
        // Only admin commits ever: no member ever set a protocol type.
        GroupType::Classic if d.protocol_type.is_empty() => GroupKind::NeverHadMembers,
        GroupType::Classic => GroupKind::ClassicWithHistory,
        GroupType::Consumer => GroupKind::ConsumerProtocol,
        // Streams groups commit into __consumer_offsets like consumer groups, and expire like them. Share groups
        // never get here (`group_type::rules`: their offsets do not expire).
        GroupType::Share | GroupType::Streams | GroupType::Unknown(_) => GroupKind::ConsumerProtocol,
    })
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

type PendingEvents = Vec<(EventType, &'static str, &'static str, String)>;

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

#[allow(clippy::too_many_arguments)]
/// A group whose offsets do not expire (a share group) needs no guard: say so where one is declared.
fn retention_not_applicable(group: &ConsumerGroup, status: &mut ConsumerGroupStatus) {
    status.retention_guard = None;
    if group.spec.retention_guard.is_none() {
        status.conditions.retain(|c| c.type_ != RETENTION_GUARD);
        return;
    }
    set_condition(
        &mut status.conditions,
        condition(
            RETENTION_GUARD,
            false,
            "NotApplicable",
            "a share group's start offsets are kept by the share coordinator and do not expire with \
             offsets.retention.minutes: nothing to guard",
            group.metadata.generation,
            now(),
        ),
    );
}

async fn guard_retention(
    client: &KafkaClient,
    group: &ConsumerGroup,
    ctx: &Context,
    group_id: &str,
    obs: &mut Observation,
    status: &mut ConsumerGroupStatus,
    events: &mut PendingEvents,
) -> Result<(), Error> {
    let Some(spec) = &group.spec.retention_guard else {
        status.retention_guard = None;
        status.conditions.retain(|c| c.type_ != RETENTION_GUARD);
        return Ok(());
    };
    let generation = group.metadata.generation;
    let retention_minutes = match &spec.offsets_retention {
        Some(text) => Some((parse(text)?.as_secs() / 60) as i64),
        None => match ctx.clients.retention_minutes_for(group) {
            Some(m) => Some(m),
            None => client.offsets_retention_minutes().await.ok().flatten(),
        },
    };
    let Some(retention_minutes) = retention_minutes else {
        set_condition(
            &mut status.conditions,
            condition(
                RETENTION_GUARD,
                false,
                "RetentionUnknown",
                "the brokers' offsets.retention.minutes could not be read: set spec.retentionGuard.offsetsRetention",
                generation,
                now(),
            ),
        );
        return Ok(());
    };
    let warn_before = parse(spec.warn_before.as_deref().unwrap_or("24h"))?;
    let mut guard = status.retention_guard.clone().unwrap_or_default();
    if !obs.offsets.is_empty() {
        guard.saved_offsets = obs
            .offsets
            .iter()
            .map(|(tp, c)| SavedOffset {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: c.offset,
            })
            .collect();
    }
    let d = &obs.sample.description;
    let kind = match retention_kind(d) {
        Some(kind) => kind,
        // The broker dropped the group with its offsets: what it was is remembered in status.
        None => match guard.protection {
            Some(RetentionProtection::RestoreOnExpiry) => GroupKind::ClassicWithHistory,
            _ => GroupKind::NeverHadMembers,
        },
    };
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let decision = plan_retention(&RetentionObservation {
        kind,
        has_members: !d.members.is_empty(),
        offsets_present: !obs.offsets.is_empty(),
        saved_offsets: !guard.saved_offsets.is_empty(),
        empty_since_ms: guard.empty_since.as_ref().map(ms_from_time),
        last_protected_ms: guard.last_protected.as_ref().map(ms_from_time),
        retention_ms: retention_minutes * 60_000,
        warn_before_ms: warn_before.as_millis() as i64,
        now_ms,
    });
    guard.retention_minutes = Some(retention_minutes);
    guard.protection = decision.protection.map(|p| match p {
        Protection::Recommit => RetentionProtection::Recommit,
        Protection::RestoreOnExpiry => RetentionProtection::RestoreOnExpiry,
    });
    guard.empty_since = decision.empty_since_ms.map(time_from_ms);
    if decision.empty_since_ms.is_none() {
        guard.last_protected = None;
    }
    let saved: BTreeMap<TopicPartition, i64> = guard
        .saved_offsets
        .iter()
        .map(|s| (TopicPartition::new(&s.topic, s.partition), s.offset))
        .collect();
    let mut protected_now = false;
    match decision.action {
        RetentionAction::Nothing => {}
        RetentionAction::Recommit | RetentionAction::Restore => {
            client.commit_offsets(group_id, &saved).await?;
            protected_now = true;
            guard.last_protected = Some(time_from_ms(now_ms));
            let (reason, note) = if decision.action == RetentionAction::Restore {
                (
                    "OffsetsRestored",
                    format!(
                        "The broker dropped the committed offsets of group {group_id}; restored {} saved offset(s)",
                        saved.len()
                    ),
                )
            } else {
                (
                    "OffsetsRecommitted",
                    format!(
                        "Re-committed {} offset(s) of empty group {group_id} to restart its retention clock",
                        saved.len()
                    ),
                )
            };
            events.push((EventType::Normal, reason, "GuardRetention", note));
            for (tp, offset) in &saved {
                obs.offsets.insert(
                    tp.clone(),
                    crate::kafka::CommittedOffset {
                        offset: *offset,
                        leader_epoch: None,
                        metadata: String::new(),
                    },
                );
            }
        }
    }
    // After a re-commit or restore the clock starts again.
    let expires_at = if protected_now && decision.protection == Some(Protection::Recommit) {
        Some(now_ms + retention_minutes * 60_000)
    } else {
        decision.expires_at_ms
    };
    guard.expires_at = expires_at.map(time_from_ms);
    let previous = find(&status.conditions, RETENTION_GUARD).map(|c| c.reason.clone());
    let c = if decision.expiring_soon {
        condition(
            RETENTION_GUARD,
            false,
            "ExpiringSoon",
            format!(
                "the committed offsets of empty group {group_id} expire at {}; the operator restores them if the broker drops them",
                guard.expires_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default()
            ),
            generation,
            now(),
        )
    } else {
        let message = match guard.protection {
            None => "the group has members; nothing expires while they are there".to_owned(),
            Some(RetentionProtection::Recommit) => "offsets are re-committed before they expire".to_owned(),
            Some(RetentionProtection::RestoreOnExpiry) => {
                "offsets are restored as soon as the broker drops them".to_owned()
            }
        };
        condition(RETENTION_GUARD, true, "Protected", message, generation, now())
    };
    if decision.expiring_soon && previous.as_deref() != Some("ExpiringSoon") {
        events.push((
            EventType::Warning,
            "OffsetsExpiringSoon",
            "GuardRetention",
            c.message.clone(),
        ));
    }
    set_condition(&mut status.conditions, c);
    status.retention_guard = Some(guard);
    Ok(())
}

fn parse(text: &str) -> Result<Duration, Error> {
    crate::plan::duration::parse_duration(text).map_err(|e| Error::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::GroupState;

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

    fn described(group_type: GroupType, state: GroupState, protocol_type: &str) -> GroupDescription {
        GroupDescription {
            group_id: "g".to_owned(),
            group_type,
            state,
            protocol_type: protocol_type.to_owned(),
            assignor: String::new(),
            coordinator: 1,
            members: Vec::new(),
            streams: None,
        }
    }

    #[test]
    fn the_retention_guard_knows_a_group_by_its_type() {
        let kind = |t, p| retention_kind(&described(t, GroupState::Empty, p));
        assert_eq!(kind(GroupType::Classic, ""), Some(GroupKind::NeverHadMembers));
        assert_eq!(
            kind(GroupType::Classic, "consumer"),
            Some(GroupKind::ClassicWithHistory)
        );
        assert_eq!(kind(GroupType::Consumer, "consumer"), Some(GroupKind::ConsumerProtocol));
        // Kafka describes a group it does not know as Dead without members.
        let gone = described(GroupType::Classic, GroupState::Dead, "");
        assert_eq!(retention_kind(&gone), None);
    }
}
