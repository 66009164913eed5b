//! What one reconcile of an OffsetReset observes: only what the current phase needs (a reset that restores a
//! workload needs neither the ConsumerGroup nor Kafka), with every error kept typed until `classify` decides
//! whether it is transient (retry in place) or permanent (fail, through Restoring).

use super::act::Run;
use super::{DEFAULT_TIMEOUT_SECONDS, QUIET_WINDOW, classify, to_plan_phase};
use crate::api::reset::ResetStrategy;
use crate::api::{ConsumerGroup, DeclaredGroupType, KafkaCluster};
use crate::controller::Error;
use crate::controller::claim::{ClaimView, WorkloadClaim};
use crate::controller::status::ms_from_time;
use crate::controller::workload::Workload;
use crate::kafka::{GroupDescription, GroupOffsets, KafkaClient, TopicPartition};
use crate::plan::reset_phase::{
    Claim, ErrorClass, FailReason, Phase, ResetObservation, Strategy, UnstableWait, unstable_wait,
};
use kube::ResourceExt;
use kube::api::Api;
use std::sync::Arc;

/// Where the reset's group lives.
pub(super) struct Target {
    pub cluster: KafkaCluster,
    pub group_id: String,
    /// The ConsumerGroup's declared topics, if the reset names one.
    pub declared_topics: Vec<String>,
    /// The ConsumerGroup's declared `spec.isolation`, if the reset names one that declares it.
    pub isolation: Option<crate::api::IsolationLevel>,
    /// The reset's `groupType`, else the ConsumerGroup's `spec.type`, if either is declared.
    pub declared_type: Option<DeclaredGroupType>,
}

impl Target {
    /// Whether the group's offsets are a share group's start offsets: declared so, or reported so by Kafka.
    pub fn is_share(&self, description: &crate::kafka::GroupDescription) -> bool {
        match self.declared_type {
            Some(t) => t == DeclaredGroupType::Share,
            None => description.exists() && description.group_type == crate::kafka::GroupType::Share,
        }
    }
}

/// The group as observed this time.
pub(super) struct KafkaView {
    pub target: Target,
    pub client: KafkaClient,
    pub description: GroupDescription,
    pub committed: GroupOffsets,
}

#[derive(Clone)]
pub(super) struct Observed {
    pub observation: ResetObservation,
    /// What went wrong, for the condition and the failure message.
    pub error_text: Option<String>,
    /// The OffsetReset holding the workload, when another one does.
    pub claim_holder: Option<String>,
    pub kafka: Option<Arc<KafkaView>>,
    /// When the ledger says the same reset was applied before.
    pub applied_at: Option<String>,
}

impl Observed {
    fn failed(mut self, class: ErrorClass, text: String) -> Observed {
        self.observation.error = Some(class);
        self.error_text = Some(text);
        self
    }
}

pub(super) fn strategy(run: &Run<'_>) -> Strategy {
    match run.reset.spec.strategy {
        ResetStrategy::RequireInactive => Strategy::RequireInactive,
        ResetStrategy::ScaleDown => Strategy::ScaleDown,
    }
}

pub(super) fn timeout_seconds(run: &Run<'_>) -> i64 {
    // The schema bounds it (1..=86400); clamp anyway, so a value from an older CRD cannot overflow.
    run.reset
        .spec
        .timeout_seconds
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
        .clamp(1, 86_400)
}

pub(super) async fn observe(run: &Run<'_>) -> Observed {
    let spec = &run.reset.spec;
    let status = &run.status;
    let phase = to_plan_phase(status.phase);
    let strategy = strategy(run);
    let scales = strategy == Strategy::ScaleDown && !spec.dry_run;
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let timed_out = status
        .phase_since
        .as_ref()
        .is_some_and(|t| now_ms - ms_from_time(t) > timeout_seconds(run) * 1000);
    let mut observed = Observed {
        observation: ResetObservation {
            strategy,
            dry_run: spec.dry_run,
            force: spec.force,
            deleting: run.reset.metadata.deletion_timestamp.is_some(),
            has_finalizer: run.reset.finalizers().iter().any(|f| f == super::FINALIZER),
            error: None,
            claim: Claim::NotNeeded,
            workload_scaled_up: false,
            group_inactive: false,
            static_members: false,
            hpa_conflict: false,
            plan_fixed: false,
            plan_applied: false,
            offsets_moved: false,
            quiet: false,
            timed_out,
            pending_failure: status.failure.is_some(),
            applied_before: false,
        },
        error_text: None,
        claim_holder: None,
        kafka: None,
        applied_at: None,
    };
    if scales {
        match claim_of(run).await {
            Ok((claim, holder)) => {
                observed.observation.claim = claim;
                observed.claim_holder = holder;
            }
            Err(e) => return observed.failed(ErrorClass::Transient, format!("cannot read the workload claim: {e}")),
        }
    }
    if phase.is_finished() || phase == Phase::Restoring || observed.observation.deleting {
        return observed;
    }
    if phase == Phase::Pending && !spec.dry_run {
        match super::recognise::applied_before_anywhere(run).await {
            Ok(Some(when)) => {
                observed.observation.applied_before = true;
                observed.applied_at = Some(when);
            }
            Ok(None) => {}
            Err((class, text)) => return observed.failed(class, text),
        }
    }
    match phase {
        Phase::Pending if scales && observed.observation.claim != Claim::Ours => match hpa_targets(run).await {
            Ok(conflict) => observed.observation.hpa_conflict = conflict,
            Err(e) => return observed.failed(ErrorClass::Transient, e.to_string()),
        },
        Phase::Planned if !scales && !spec.dry_run => {
            if let Err((class, text)) = observe_group(run, &mut observed).await {
                return observed.failed(class, text);
            }
        }
        Phase::WaitingForInactive => {
            match workload_replicas(run).await {
                Ok(replicas) => observed.observation.workload_scaled_up = replicas > 0,
                Err(e) => {
                    let class = match &e {
                        Error::Kube(kube::Error::Api(s)) if s.code == 404 => {
                            ErrorClass::Permanent(FailReason::WorkloadNotFound)
                        }
                        other => classify(other, FailReason::WorkloadNotFound),
                    };
                    return observed.failed(class, format!("cannot read the workload's replicas: {e}"));
                }
            }
            // Offsets are not used before the group is empty: a transactional workload that is still draining
            // (its last transactions pending) is waited for as a group with members.
            match kafka_view_of(run, Offsets::UnlessActive).await {
                Ok(view) => observed.set_group(view),
                Err((class, text)) => return observed.failed(class, text),
            }
        }
        Phase::Applying => {
            if let Err((class, text)) = observe_group(run, &mut observed).await {
                return observed.failed(class, text);
            }
            if let Some(view) = &observed.kafka {
                observe_plan(run, view, now_ms, &mut observed.observation);
            }
        }
        _ => {}
    }
    observed
}

/// The claim of the reset's workload as this reset sees it. A claim it holds counts as its own only once
/// the workload it claimed is recorded in status (a crash between taking and recording takes it again, which
/// is idempotent for the same holder).
async fn claim_of(run: &Run<'_>) -> Result<(Claim, Option<String>), Error> {
    let Some(target) = &run.reset.spec.scale_target_ref else {
        return Ok((Claim::Free, None));
    };
    let claim = WorkloadClaim::new(&run.ctx.kube, &run.ns, &target.api_version, &target.kind, &target.name);
    Ok(match claim.view().await? {
        ClaimView::Held { uid, .. } if Some(uid.as_str()) == run.reset.metadata.uid.as_deref() => {
            if run.status.workload.is_some() {
                (Claim::Ours, None)
            } else {
                (Claim::Free, None)
            }
        }
        ClaimView::Held { name, .. } => (Claim::Theirs, Some(name)),
        ClaimView::Free | ClaimView::Stale => (Claim::Free, None),
    })
}

fn workload_of(run: &Run<'_>) -> Option<Workload> {
    run.reset
        .spec
        .scale_target_ref
        .as_ref()
        .map(|t| Workload::new(&run.ctx.kube, &run.ns, &t.api_version, &t.kind, &t.name))
}

async fn workload_replicas(run: &Run<'_>) -> Result<i32, Error> {
    match workload_of(run) {
        Some(w) => w.replicas().await,
        None => Ok(0),
    }
}

async fn hpa_targets(run: &Run<'_>) -> Result<bool, Error> {
    match workload_of(run) {
        Some(w) => w.has_foreign_hpa(&run.ctx.kube, &run.ns).await,
        None => Ok(false),
    }
}

/// Resolves the target and reads the group's description and committed offsets.
async fn observe_group(run: &Run<'_>, observed: &mut Observed) -> Result<(), (ErrorClass, String)> {
    observed.set_group(kafka_view(run).await?);
    Ok(())
}

impl Observed {
    fn set_group(&mut self, view: KafkaView) {
        self.observation.group_inactive = view.description.is_inactive();
        self.observation.static_members = view.description.members.iter().any(|m| m.instance_id.is_some());
        self.kafka = Some(Arc::new(view));
    }
}

/// Which committed offsets a phase needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offsets {
    /// Stable ones, waited for while a transactional offset commit is pending.
    Required,
    /// Only once the group has no members: while it has some, a pending commit leaves `committed` empty.
    UnlessActive,
}

pub(super) async fn kafka_view(run: &Run<'_>) -> Result<KafkaView, (ErrorClass, String)> {
    kafka_view_of(run, Offsets::Required).await
}

async fn kafka_view_of(run: &Run<'_>, offsets: Offsets) -> Result<KafkaView, (ErrorClass, String)> {
    let target = resolve_target(run).await?;
    let client = run
        .ctx
        .clients
        .get(&run.ctx.kube, &target.cluster, &run.ctx.config.client)
        .await
        .map_err(|e| (classify(&e, FailReason::ClusterNotFound), e.to_string()))?;
    // Offsets are read with require_stable, once: a pending transactional offset commit is never planned from,
    // and is waited for across reconciles (`unstable`), not inside this one.
    let (description, committed) = tokio::join!(
        client.describe_group(&target.group_id),
        client.stable_group_offsets(&target.group_id)
    );
    let kafka = |e: crate::kafka::KafkaError| {
        let e = Error::from(e);
        (classify(&e, FailReason::InvalidPlan), e.to_string())
    };
    let description = description.map_err(kafka)?;
    if let Some(why) = crate::controller::group_type::mismatch(target.declared_type, &description) {
        return Err((ErrorClass::Permanent(FailReason::InvalidPlan), why));
    }
    if target.is_share(&description) {
        if run.reset.spec.to.shift_by.is_some() {
            return Err((
                ErrorClass::Permanent(FailReason::InvalidPlan),
                format!(
                    "{} is a share group: its start offsets move to earliest, latest, offset, timestamp, duration, \
                     partitions or previousOf, not by shiftBy",
                    target.group_id
                ),
            ));
        }
        // A share group has no committed offsets: its share-partition start offsets are what moves. One that
        // does not exist yet has none.
        let committed = match client.share_group_offsets_of(&target.group_id).await {
            Ok(share) => crate::kafka::start_offsets_as_committed(&share),
            Err(e)
                if !description.exists() && e.code() == Some(kafka_protocol::error::ResponseError::GroupIdNotFound) =>
            {
                GroupOffsets::default()
            }
            Err(e) => return Err(kafka(e)),
        };
        return Ok(KafkaView {
            description,
            committed,
            target,
            client,
        });
    }
    let committed = match committed {
        Err(crate::kafka::KafkaError::UnstableOffsetCommit { .. })
            if offsets == Offsets::UnlessActive && !description.is_inactive() =>
        {
            GroupOffsets::default()
        }
        Err(e @ crate::kafka::KafkaError::UnstableOffsetCommit { .. }) => return Err(unstable(run, e)),
        other => other.map_err(kafka)?,
    };
    Ok(KafkaView {
        description,
        committed,
        target,
        client,
    })
}

/// A pending transactional offset commit: wait (in the phase, requeued) while `--unstable-offset-wait` has not
/// passed since the first such answer recorded in status; past it, fail.
fn unstable(run: &Run<'_>, e: crate::kafka::KafkaError) -> (ErrorClass, String) {
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    match unstable_wait_now(run, now_ms) {
        UnstableWait::Over => (ErrorClass::Permanent(FailReason::UnstableOffsetCommit), e.to_string()),
        UnstableWait::Within { .. } => (ErrorClass::OffsetsUnstable, e.to_string()),
    }
}

/// The wait for stable offsets as of `now_ms`, counted from `status.unstableOffsetsSince` (from now when no
/// wait is under way).
pub(super) fn unstable_wait_now(run: &Run<'_>, now_ms: i64) -> UnstableWait {
    let since_ms = run
        .status
        .unstable_offsets_since
        .as_ref()
        .map(ms_from_time)
        .unwrap_or(now_ms);
    let bound_ms = u64::try_from(run.ctx.config.unstable_offset_wait.as_millis()).unwrap_or(u64::MAX);
    unstable_wait(since_ms, now_ms, bound_ms)
}

/// The ConsumerGroup (for `groupRef`) and the KafkaCluster. Missing ones are permanent; any other error
/// (the API server unavailable, a read refused for a moment) is transient.
pub(super) async fn resolve_target(run: &Run<'_>) -> Result<Target, (ErrorClass, String)> {
    let spec = &run.reset.spec;
    let kube_error = |e: kube::Error, reason: FailReason| {
        let e = Error::from(e);
        (classify(&e, reason), e.to_string())
    };
    let (cluster_name, group_id, declared_topics, isolation, group_type) =
        match (&spec.group_ref, &spec.cluster_ref, &spec.group_id) {
            (Some(r), _, _) => {
                let groups: Api<ConsumerGroup> = Api::namespaced(run.ctx.kube.clone(), &run.ns);
                let group = groups
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| kube_error(e, FailReason::GroupNotFound))?
                    .ok_or_else(|| {
                        (
                            ErrorClass::Permanent(FailReason::GroupNotFound),
                            format!("ConsumerGroup {} does not exist", r.name),
                        )
                    })?;
                (
                    group.spec.cluster_ref.name.clone(),
                    group.group_id(),
                    group.spec.topics.clone(),
                    group.spec.isolation,
                    group.spec.group_type,
                )
            }
            (None, Some(c), Some(g)) => (c.name.clone(), g.clone(), Vec::new(), None, None),
            // The schema requires one or the other; an object from before it did cannot be reset.
            _ => {
                return Err((
                    ErrorClass::Permanent(FailReason::GroupNotFound),
                    "the reset names no group: set groupRef, or clusterRef and groupId".to_owned(),
                ));
            }
        };
    let clusters: Api<KafkaCluster> = Api::namespaced(run.ctx.kube.clone(), &run.ns);
    let cluster = clusters
        .get_opt(&cluster_name)
        .await
        .map_err(|e| kube_error(e, FailReason::ClusterNotFound))?
        .ok_or_else(|| {
            (
                ErrorClass::Permanent(FailReason::ClusterNotFound),
                format!("KafkaCluster {cluster_name} does not exist"),
            )
        })?;
    Ok(Target {
        cluster,
        group_id,
        declared_topics,
        isolation,
        declared_type: spec.group_type.or(group_type),
    })
}

/// At Applying: whether the applied plan is fixed, already committed, and whether the committed offsets
/// moved since it was fixed (hidden committers) or stayed put for the quiet window.
fn observe_plan(run: &Run<'_>, view: &KafkaView, now_ms: i64, o: &mut ResetObservation) {
    let status = &run.status;
    let Some(plan_time) = &status.plan_time else {
        return;
    };
    o.plan_fixed = true;
    let committed = |topic: &str, partition: i32| {
        view.committed
            .get(&TopicPartition::new(topic, partition))
            .map(|c| c.offset)
    };
    o.plan_applied = status
        .plan
        .iter()
        .all(|p| committed(&p.topic, p.partition) == Some(p.to));
    o.offsets_moved = !moved_partitions(run, view).is_empty();
    // plan_time is stored in whole seconds: count the window from the second after.
    o.quiet = now_ms - ms_from_time(plan_time) >= QUIET_WINDOW.as_millis() as i64 + 1000;
}

/// Partitions of the applied plan whose committed offset is no longer the one the plan was resolved from.
pub(super) fn moved_partitions(run: &Run<'_>, view: &KafkaView) -> Vec<String> {
    let before = |topic: &str, partition: i32| {
        run.status
            .previous_offsets
            .iter()
            .find(|p| p.topic == topic && p.partition == partition)
            .map(|p| p.offset)
    };
    run.status
        .plan
        .iter()
        .filter(|p| {
            let now = view
                .committed
                .get(&TopicPartition::new(&p.topic, p.partition))
                .map(|c| c.offset);
            now != before(&p.topic, p.partition)
        })
        .map(|p| format!("{}-{}", p.topic, p.partition))
        .collect()
}

/// The reset's UID, for the claim.
pub(super) fn uid(run: &Run<'_>) -> String {
    run.reset.metadata.uid.clone().unwrap_or_default()
}
