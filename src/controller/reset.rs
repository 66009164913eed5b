//! OffsetReset reconciler: drives the phase machine of `plan::reset_phase` one step per reconcile, from a
//! fresh read of the object (never the watch cache, which may lag behind the last write), and persists each
//! phase with the object's resourceVersion as a precondition. Exactly once: the plan's targets are absolute
//! offsets fixed at planning time; Applying skips the commit when they are already committed; finished
//! resets never act again.

use super::resolve::{ResetRequest, resolve_reset};
use super::status::{ms_from_time, now};
use super::workload::Workload;
use super::{Context, Error};
use crate::api::conditions::{condition, set_condition};
use crate::api::reset::{PartitionOffset, PlannedOffset, ResetPhase, ResetStrategy, ScaleTargetRef, WorkloadRecord};
use crate::api::{ConsumerGroup, KafkaCluster, OffsetReset, OffsetResetStatus};
use crate::kafka::{GroupDescription, KafkaClient, TopicPartition};
use crate::plan::reset::Clamp;
use crate::plan::reset_phase::{FailReason, Phase, ResetAction, ResetObservation, Strategy, next};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONTROLLER: &str = "offsetreset";
const KEDA_PAUSE: &str = "autoscaling.keda.sh/paused-replicas";
const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
/// How often a reset in progress is looked at again.
const STEP: Duration = Duration::from_secs(1);

pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<OffsetReset> = super::scoped_api(&ctx);
    let results = Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(super::runner_config(&ctx))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    super::drain(CONTROLLER, results).await;
}

fn error_policy(reset: Arc<OffsetReset>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = reset.name_any(), error = %error, "offsetreset reconcile failed");
    ctx.metrics.failed(CONTROLLER, error.kind());
    let key = format!("ors/{}/{}", reset.namespace().unwrap_or_default(), reset.name_any());
    Action::requeue(ctx.backoff(&key, Duration::from_secs(30)))
}

fn to_plan_phase(p: ResetPhase) -> Phase {
    match p {
        ResetPhase::Pending => Phase::Pending,
        ResetPhase::Planned => Phase::Planned,
        ResetPhase::ScalingDown => Phase::ScalingDown,
        ResetPhase::WaitingForInactive => Phase::WaitingForInactive,
        ResetPhase::Applying => Phase::Applying,
        ResetPhase::Restoring => Phase::Restoring,
        ResetPhase::Succeeded => Phase::Succeeded,
        ResetPhase::Failed => Phase::Failed,
    }
}

fn to_api_phase(p: Phase) -> ResetPhase {
    match p {
        Phase::Pending => ResetPhase::Pending,
        Phase::Planned => ResetPhase::Planned,
        Phase::ScalingDown => ResetPhase::ScalingDown,
        Phase::WaitingForInactive => ResetPhase::WaitingForInactive,
        Phase::Applying => ResetPhase::Applying,
        Phase::Restoring => ResetPhase::Restoring,
        Phase::Succeeded => ResetPhase::Succeeded,
        Phase::Failed => ResetPhase::Failed,
    }
}

/// Where the reset's group lives.
struct Target {
    cluster: KafkaCluster,
    group_id: String,
    /// The ConsumerGroup's declared topics, if the reset names one.
    declared_topics: Vec<String>,
}

async fn resolve_target(reset: &OffsetReset, ctx: &Context) -> Result<Target, String> {
    let ns = reset.namespace().unwrap_or_default();
    let (cluster_name, group_id, declared_topics) =
        match (&reset.spec.group_ref, &reset.spec.cluster_ref, &reset.spec.group_id) {
            (Some(r), _, _) => {
                let groups: Api<ConsumerGroup> = Api::namespaced(ctx.kube.clone(), &ns);
                let group = groups
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("ConsumerGroup {} does not exist", r.name))?;
                (
                    group.spec.cluster_ref.name.clone(),
                    group.group_id(),
                    group.spec.topics.clone(),
                )
            }
            (None, Some(c), Some(g)) => (c.name.clone(), g.clone(), Vec::new()),
            _ => return Err("the reset names no group".to_owned()),
        };
    let clusters: Api<KafkaCluster> = Api::namespaced(ctx.kube.clone(), &ns);
    let cluster = clusters
        .get_opt(&cluster_name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("KafkaCluster {cluster_name} does not exist"))?;
    Ok(Target {
        cluster,
        group_id,
        declared_topics,
    })
}

#[tracing::instrument(skip_all, fields(namespace = cached.namespace().unwrap_or_default(), name = cached.name_any()))]
async fn reconcile(cached: Arc<OffsetReset>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = cached.namespace().unwrap_or_default();
    let api: Api<OffsetReset> = Api::namespaced(ctx.kube.clone(), &ns);
    // A fresh read: the cache may not yet show the phase this operator just wrote.
    let Some(reset) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let action = step(&api, &reset, &ctx).await?;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed().as_secs_f64());
    Ok(action)
}

async fn publish(ctx: &Context, reset: &OffsetReset, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reset".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &reset.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an Event");
    }
}

/// Writes `status` with the object's resourceVersion as a precondition, so that a concurrent writer (another
/// operator during a leader handover) makes this write fail instead of both acting.
async fn persist(api: &Api<OffsetReset>, reset: &OffsetReset, status: &OffsetResetStatus) -> Result<(), Error> {
    if reset.status.as_ref() == Some(status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": OffsetReset::api_version(&()),
        "kind": OffsetReset::kind(&()),
        "metadata": {"resourceVersion": reset.resource_version()},
        "status": status,
    });
    api.patch_status(
        &reset.name_any(),
        &PatchParams::apply(super::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

fn enter(status: &mut OffsetResetStatus, phase: Phase) {
    let phase = to_api_phase(phase);
    if status.phase != phase {
        status.phase = phase;
        status.phase_since = Some(now());
    }
}

async fn step(api: &Api<OffsetReset>, reset: &OffsetReset, ctx: &Context) -> Result<Action, Error> {
    let mut status = reset.status.clone().unwrap_or_default();
    let phase = to_plan_phase(status.phase);
    if matches!(phase, Phase::Succeeded | Phase::Failed) {
        return expire(api, reset, &status).await;
    }
    if status.start_time.is_none() {
        status.start_time = Some(now());
        status.phase_since = Some(now());
    }
    status.observed_generation = reset.metadata.generation;
    let target = match resolve_target(reset, ctx).await {
        Ok(t) => t,
        Err(why) => return fail_now(api, reset, status, ctx, "GroupNotFound", why).await,
    };
    status.group_id = Some(target.group_id.clone());
    let client = ctx.clients.get(&ctx.kube, &target.cluster, &ctx.config.client).await?;
    let (description, committed) = tokio::join!(
        client.describe_group(&target.group_id),
        client.group_offsets(&target.group_id)
    );
    let (description, committed) = (description?, committed?);
    let strategy = match reset.spec.strategy {
        ResetStrategy::RequireInactive => Strategy::RequireInactive,
        ResetStrategy::ScaleDown => Strategy::ScaleDown,
    };
    let plan_applied = !status.plan.is_empty()
        && status.plan.iter().all(|p| {
            committed
                .get(&TopicPartition::new(&p.topic, p.partition))
                .map(|c| c.offset)
                == Some(p.to)
        });
    let timeout = Duration::from_secs(reset.spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS).max(1) as u64);
    let timed_out = status.phase_since.as_ref().is_some_and(|t| {
        k8s_openapi::jiff::Timestamp::now().as_millisecond() - ms_from_time(t) > timeout.as_millis() as i64
    });
    let hpa_conflict = match (&reset.spec.scale_target_ref, phase) {
        (Some(t), Phase::Planned) if strategy == Strategy::ScaleDown => hpa_targets(ctx, reset, t).await?,
        _ => false,
    };
    let observation = ResetObservation {
        strategy,
        dry_run: reset.spec.dry_run,
        group_inactive: description.is_inactive(),
        static_members: description.members.iter().any(|m| m.instance_id.is_some()),
        plan_applied,
        hpa_conflict,
        timed_out,
        pending_failure: status.failure.as_ref().map(|_| FailReason::Timeout),
    };
    let (next_phase, action) = next(phase, &observation);
    tracing::debug!(?phase, ?next_phase, ?action, "reset step");
    match action {
        ResetAction::None => {}
        ResetAction::MakePlan => {
            match make_plan(reset, ctx, &client, &target, &committed).await {
                Ok((plan, previous, words)) => {
                    status.partitions = plan.len() as i32;
                    status.plan = plan;
                    status.previous_offsets = previous;
                    status.target = Some(words);
                }
                Err(why) => return fail_now(api, reset, status, ctx, "InvalidPlan", why).await,
            }
            let clamped = status.plan.iter().filter(|p| p.clamped.is_some()).count();
            let note = format!(
                "Planned {} partition(s) of group {} to {}{}{}",
                status.plan.len(),
                target.group_id,
                status.target.clone().unwrap_or_default(),
                if clamped > 0 {
                    format!("; {clamped} clamped to the log")
                } else {
                    String::new()
                },
                if reset.spec.dry_run {
                    " (dry run: nothing changes)"
                } else {
                    ""
                }
            );
            enter(&mut status, next_phase);
            persist(api, reset, &status).await?;
            publish(ctx, reset, EventType::Normal, "Planned", note).await;
            return Ok(Action::requeue(STEP));
        }
        ResetAction::RecordWorkload => {
            let Some(target_ref) = &reset.spec.scale_target_ref else {
                return fail_now(
                    api,
                    reset,
                    status,
                    ctx,
                    "InvalidSpec",
                    "ScaleDown needs scaleTargetRef".into(),
                )
                .await;
            };
            if status.workload.is_none() {
                let replicas = match current_replicas(ctx, reset, target_ref).await {
                    Ok(r) => r,
                    Err(e) => return fail_now(api, reset, status, ctx, "WorkloadNotFound", e.to_string()).await,
                };
                let paused = scaled_object_for(ctx, reset, target_ref).await?;
                status.workload = Some(WorkloadRecord {
                    api_version: target_ref.api_version.clone(),
                    kind: target_ref.kind.clone(),
                    name: target_ref.name.clone(),
                    original_replicas: replicas,
                    paused_scaled_object: paused,
                });
            }
            // Persisted before the workload is touched: a crash from here on still knows the count to restore.
            enter(&mut status, next_phase);
            persist(api, reset, &status).await?;
            let w = status.workload.as_ref().map(|w| w.original_replicas).unwrap_or(0);
            publish(
                ctx,
                reset,
                EventType::Normal,
                "ScalingDown",
                format!("Scaling {} {} from {w} to 0 replicas", target_ref.kind, target_ref.name),
            )
            .await;
            return Ok(Action::requeue(STEP));
        }
        ResetAction::ScaleToZero => {
            if let Some(w) = &status.workload {
                if let Some(so) = &w.paused_scaled_object {
                    set_keda_pause(ctx, reset, so, true).await?;
                }
                scale(ctx, reset, w, 0).await?;
            }
            enter(&mut status, next_phase);
            persist(api, reset, &status).await?;
            publish(
                ctx,
                reset,
                EventType::Normal,
                "WaitingForInactive",
                format!("Waiting for group {} to have no members", target.group_id),
            )
            .await;
            return Ok(Action::requeue(STEP));
        }
        ResetAction::RemoveStaticMembers => {
            let ids: Vec<String> = static_ids(&description);
            client.remove_static_members(&target.group_id, &ids).await?;
            publish(
                ctx,
                reset,
                EventType::Normal,
                "StaticMembersRemoved",
                format!("Removed static member(s) {ids:?} from group {}", target.group_id),
            )
            .await;
            return Ok(Action::requeue(STEP));
        }
        ResetAction::Commit => {
            let offsets: BTreeMap<TopicPartition, i64> = status
                .plan
                .iter()
                .map(|p| (TopicPartition::new(&p.topic, p.partition), p.to))
                .collect();
            client.commit_offsets(&target.group_id, &offsets).await?;
            publish(
                ctx,
                reset,
                EventType::Normal,
                "Applied",
                format!("Committed {} offset(s) to group {}", offsets.len(), target.group_id),
            )
            .await;
        }
        ResetAction::RestoreWorkload => {
            if let Some(w) = &status.workload {
                scale(ctx, reset, w, w.original_replicas).await?;
                if let Some(so) = &w.paused_scaled_object {
                    set_keda_pause(ctx, reset, so, false).await?;
                }
                publish(
                    ctx,
                    reset,
                    EventType::Normal,
                    "Restored",
                    format!("Scaled {} {} back to {} replicas", w.kind, w.name, w.original_replicas),
                )
                .await;
            }
        }
        ResetAction::Fail(reason) => {
            let why = failure_text(reason, &target.group_id, &description, reset);
            set_condition(
                &mut status.conditions,
                condition(
                    "Failed",
                    true,
                    reason.as_str(),
                    why.clone(),
                    reset.metadata.generation,
                    now(),
                ),
            );
            status.failure = Some(why.clone());
            publish(ctx, reset, EventType::Warning, reason.as_str(), why).await;
        }
    }
    enter(&mut status, next_phase);
    if matches!(next_phase, Phase::Succeeded | Phase::Failed) {
        finish(&mut status, next_phase, reset);
        persist(api, reset, &status).await?;
        if next_phase == Phase::Succeeded {
            publish(
                ctx,
                reset,
                EventType::Normal,
                "Succeeded",
                format!("Reset of group {} finished", target.group_id),
            )
            .await;
        }
        return Ok(ttl_action(reset, &status));
    }
    persist(api, reset, &status).await?;
    if next_phase == Phase::Planned && reset.spec.dry_run {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(STEP))
}

fn static_ids(description: &GroupDescription) -> Vec<String> {
    description
        .members
        .iter()
        .filter_map(|m| m.instance_id.clone())
        .collect()
}

fn failure_text(reason: FailReason, group: &str, description: &GroupDescription, reset: &OffsetReset) -> String {
    match reason {
        FailReason::GroupActive => format!(
            "group {group} has {} member(s) ({}): stop its consumers, or use strategy ScaleDown with scaleTargetRef",
            description.members.len(),
            description.state
        ),
        FailReason::HpaConflict => format!(
            "a HorizontalPodAutoscaler targets {} and would scale it back up during the reset: remove it, or let KEDA manage the workload",
            reset
                .spec
                .scale_target_ref
                .as_ref()
                .map(|t| t.name.as_str())
                .unwrap_or_default()
        ),
        FailReason::Timeout => format!(
            "group {group} still had {} member(s) after {}s; the workload was restored",
            description.members.len(),
            reset.spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)
        ),
        FailReason::GroupBecameActive => {
            format!("group {group} got members before the offsets were committed; nothing was reset")
        }
    }
}

fn finish(status: &mut OffsetResetStatus, phase: Phase, reset: &OffsetReset) {
    status.completion_time = Some(now());
    let complete = phase == Phase::Succeeded;
    let (reason, message) = if complete {
        ("Succeeded", format!("{} offset(s) reset", status.plan.len()))
    } else {
        (
            "Failed",
            status.failure.clone().unwrap_or_else(|| "the reset failed".to_owned()),
        )
    };
    set_condition(
        &mut status.conditions,
        condition("Complete", complete, reason, message, reset.metadata.generation, now()),
    );
}

async fn fail_now(
    api: &Api<OffsetReset>,
    reset: &OffsetReset,
    mut status: OffsetResetStatus,
    ctx: &Context,
    reason: &str,
    why: String,
) -> Result<Action, Error> {
    set_condition(
        &mut status.conditions,
        condition("Failed", true, reason, why.clone(), reset.metadata.generation, now()),
    );
    status.failure = Some(why.clone());
    enter(&mut status, Phase::Failed);
    finish(&mut status, Phase::Failed, reset);
    persist(api, reset, &status).await?;
    publish(ctx, reset, EventType::Warning, reason, why).await;
    Ok(ttl_action(reset, &status))
}

fn ttl_action(reset: &OffsetReset, status: &OffsetResetStatus) -> Action {
    match (reset.spec.ttl_seconds_after_finished, &status.completion_time) {
        (Some(ttl), Some(done)) => {
            let due = ms_from_time(done) + ttl * 1000 - k8s_openapi::jiff::Timestamp::now().as_millisecond();
            Action::requeue(Duration::from_millis(due.max(0) as u64 + 200))
        }
        _ => Action::await_change(),
    }
}

/// A finished reset: nothing to do but delete it once its TTL has passed.
async fn expire(api: &Api<OffsetReset>, reset: &OffsetReset, status: &OffsetResetStatus) -> Result<Action, Error> {
    if let (Some(ttl), Some(done)) = (reset.spec.ttl_seconds_after_finished, &status.completion_time) {
        let due = ms_from_time(done) + ttl * 1000;
        if k8s_openapi::jiff::Timestamp::now().as_millisecond() >= due {
            match api.delete(&reset.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Action::await_change());
        }
    }
    Ok(ttl_action(reset, status))
}

type Plan = (Vec<PlannedOffset>, Vec<PartitionOffset>, String);

/// Resolves the target against the cluster (`resolve`, shared with the command line) and records the plan.
async fn make_plan(
    reset: &OffsetReset,
    ctx: &Context,
    client: &KafkaClient,
    target: &Target,
    committed: &crate::kafka::GroupOffsets,
) -> Result<Plan, String> {
    let previous_of = match &reset.spec.to.previous_of {
        Some(name) => Some(previous_offsets_of(ctx, reset, name, &target.group_id).await?),
        None => None,
    };
    let request = ResetRequest {
        group_id: &target.group_id,
        topics: &reset.spec.topics,
        to: &reset.spec.to,
        declared_topics: &target.declared_topics,
        previous_of,
    };
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let resolved = resolve_reset(client, &request, committed, now_ms)
        .await
        .map_err(|e| e.to_string())?;
    let plan = resolved
        .partitions
        .iter()
        .map(|p| PlannedOffset {
            topic: p.partition.topic.clone(),
            partition: p.partition.partition,
            from: p.from,
            to: p.to,
            delta: p.delta(),
            clamped: p.clamped.map(|c| match c {
                Clamp::ToLogStart => "LogStart".to_owned(),
                Clamp::ToLogEnd => "LogEnd".to_owned(),
            }),
        })
        .collect();
    let previous = committed
        .iter()
        .map(|(tp, c)| PartitionOffset {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: c.offset,
        })
        .collect();
    Ok((plan, previous, resolved.target))
}

async fn previous_offsets_of(
    ctx: &Context,
    reset: &OffsetReset,
    name: &str,
    group_id: &str,
) -> Result<BTreeMap<TopicPartition, i64>, String> {
    let api: Api<OffsetReset> = Api::namespaced(ctx.kube.clone(), &reset.namespace().unwrap_or_default());
    let earlier = api
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("OffsetReset {name} (previousOf) does not exist"))?;
    let status = earlier.status.unwrap_or_default();
    if status.phase != ResetPhase::Succeeded {
        return Err(format!(
            "OffsetReset {name} did not succeed, so there is nothing to undo"
        ));
    }
    if status.group_id.as_deref() != Some(group_id) {
        return Err(format!(
            "OffsetReset {name} reset group {:?}, not {group_id}",
            status.group_id
        ));
    }
    if status.previous_offsets.is_empty() {
        return Err(format!(
            "group {group_id} had no committed offsets before OffsetReset {name}"
        ));
    }
    Ok(status
        .previous_offsets
        .iter()
        .map(|p| (TopicPartition::new(&p.topic, p.partition), p.offset))
        .collect())
}

fn workload(ctx: &Context, reset: &OffsetReset, api_version: &str, kind: &str, name: &str) -> Workload {
    Workload::new(
        &ctx.kube,
        &reset.namespace().unwrap_or_default(),
        api_version,
        kind,
        name,
    )
}

async fn current_replicas(ctx: &Context, reset: &OffsetReset, target: &ScaleTargetRef) -> Result<i32, Error> {
    workload(ctx, reset, &target.api_version, &target.kind, &target.name)
        .replicas()
        .await
}

async fn scale(ctx: &Context, reset: &OffsetReset, w: &WorkloadRecord, replicas: i32) -> Result<(), Error> {
    workload(ctx, reset, &w.api_version, &w.kind, &w.name)
        .set_replicas(replicas)
        .await
}

fn scaled_objects(ctx: &Context, reset: &OffsetReset) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(
        ctx.kube.clone(),
        &reset.namespace().unwrap_or_default(),
        &ApiResource::from_gvk(&gvk),
    )
}

/// The KEDA ScaledObject that scales `target` and that this reset must pause (None if KEDA is not installed,
/// none targets the workload, or it is already paused by someone else, whose pause is then left alone).
async fn scaled_object_for(
    ctx: &Context,
    reset: &OffsetReset,
    target: &ScaleTargetRef,
) -> Result<Option<String>, Error> {
    let list = match scaled_objects(ctx, reset).list(&ListParams::default()).await {
        Ok(l) => l,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(list
        .items
        .into_iter()
        .find(|so| {
            let t = &so.data["spec"]["scaleTargetRef"];
            let kind = t["kind"].as_str().unwrap_or("Deployment");
            t["name"].as_str() == Some(target.name.as_str()) && kind == target.kind
        })
        .filter(|so| !so.annotations().contains_key(KEDA_PAUSE))
        .map(|so| so.name_any()))
}

async fn set_keda_pause(ctx: &Context, reset: &OffsetReset, scaled_object: &str, paused: bool) -> Result<(), Error> {
    let value = if paused {
        serde_json::json!("0")
    } else {
        serde_json::Value::Null
    };
    let patch = serde_json::json!({"metadata": {"annotations": {KEDA_PAUSE: value}}});
    scaled_objects(ctx, reset)
        .patch(scaled_object, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn hpa_targets(ctx: &Context, reset: &OffsetReset, target: &ScaleTargetRef) -> Result<bool, Error> {
    let ns = reset.namespace().unwrap_or_default();
    workload(ctx, reset, &target.api_version, &target.kind, &target.name)
        .has_foreign_hpa(&ctx.kube, &ns)
        .await
}
