//! OffsetReset reconciler: the imperative shell around `plan::reset_phase::next`. Each reconcile reads the
//! object fresh (never the watch cache, which may lag behind the last write), observes what the current phase
//! needs (`observe`), asks the transition table for the next phase and action, and performs that one action
//! (`act`), persisting the phase with the object's resourceVersion as a precondition before the side effect
//! the next phase depends on and publishing Events only after that persist succeeded.
//!
//! Guarantees kept here (README, "OffsetReset"): a workload a reset scaled down is scaled back whatever ends
//! the reset (a finalizer covers deletion); one reset holds a workload at a time (`claim`); the plan is
//! resolved once the group is empty and committed at most once; every act is fenced by the leader Lease and
//! the resourceVersion it read.

mod act;
mod observe;
mod planning;
mod recognise;
mod words;

use super::{Context, Error};
use crate::api::OffsetReset;
use crate::api::reset::ResetPhase;
use crate::plan::reset_phase::{ErrorClass, Phase, next};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// On OffsetResets that scale a workload, from the first step until they finished and let go of it.
pub const FINALIZER: &str = "kafkagroups.dev/offset-reset";
const CONTROLLER: &str = "offsetreset";
const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
/// How often a reset in progress is looked at again.
const STEP: Duration = Duration::from_secs(1);
/// How long the group's committed offsets must stay as the plan found them, with no members, before the
/// commit: long enough to see an `assign()` consumer's auto-commit (Kafka's default interval is 5 s).
pub const QUIET_WINDOW: Duration = Duration::from_secs(6);
/// The longest a transient error backs off.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<OffsetReset> = super::scoped_api(&ctx);
    let results = Controller::new(api, watcher::Config::default().any_semantic())
        .reconcile_all_on(ctx.ownership_changes())
        .with_config(super::runner_config(&ctx))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    super::drain(CONTROLLER, results).await;
}

fn backoff_key(reset: &OffsetReset) -> String {
    format!("ors/{}/{}", reset.namespace().unwrap_or_default(), reset.name_any())
}

fn error_policy(reset: Arc<OffsetReset>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = reset.name_any(), error = %error, "offsetreset reconcile failed");
    ctx.metrics.failed(CONTROLLER, error.kind());
    Action::requeue(ctx.backoff(&backoff_key(&reset), MAX_BACKOFF))
}

pub(crate) fn to_plan_phase(p: ResetPhase) -> Phase {
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

pub(crate) fn to_api_phase(p: Phase) -> ResetPhase {
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

#[tracing::instrument(skip_all, fields(namespace = cached.namespace().unwrap_or_default(), name = cached.name_any()))]
async fn reconcile(cached: Arc<OffsetReset>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = cached.namespace().unwrap_or_default();
    let api: Api<OffsetReset> = Api::namespaced(ctx.kube.clone(), &ns);
    // A fresh read: the cache may not yet show the phase this operator just wrote.
    let Some(reset) = api.get_opt(&cached.name_any()).await? else {
        ctx.reset_backoff(&backoff_key(&cached));
        return Ok(Action::await_change());
    };
    let shard = match super::shard_gate::reset(&ctx, &reset).await? {
        super::shard_gate::Gate::Mine(shard) => shard,
        super::shard_gate::Gate::Elsewhere(shard) => {
            // Another replica's shard: no write. Its phase is in status, so the owner resumes where it is.
            tracing::debug!(shard, "not this replica's shard");
            return Ok(Action::requeue(super::shard_gate::ELSEWHERE_RECHECK));
        }
    };
    let key = backoff_key(&reset);
    let mut run = act::Run::new(api, &ctx, reset, shard);
    let observed = observe::observe(&run).await;
    let phase = to_plan_phase(run.status.phase);
    let (next_phase, action) = next(phase, &observed.observation);
    tracing::debug!(?phase, ?next_phase, ?action, "reset step");
    let outcome = match run.perform(next_phase, action, &observed).await {
        Err(act::ActError::Classified(class, error)) => {
            // A failed action is observed like a failed observation: the table decides once more.
            let mut again = observed.clone();
            again.observation.error = Some(class);
            again.error_text = Some(error.to_string());
            let (next_phase, action) = next(phase, &again.observation);
            tracing::debug!(?phase, ?next_phase, ?action, error = %error, "reset step after a failed action");
            match run.perform(next_phase, action, &again).await {
                Err(act::ActError::Classified(_, error)) | Err(act::ActError::Other(error)) => Err(error),
                Ok(a) => Ok(a),
            }
        }
        Err(act::ActError::Other(error)) => Err(error),
        Ok(a) => Ok(a),
    };
    ctx.metrics.reconciled(CONTROLLER, started.elapsed().as_secs_f64());
    match outcome {
        Ok(act::Outcome::Progressed(a)) => {
            ctx.reset_backoff(&key);
            Ok(a)
        }
        Ok(act::Outcome::Retrying) => Ok(Action::requeue(ctx.backoff(&key, MAX_BACKOFF))),
        Err(e) => Err(e),
    }
}

/// Whether an error may go away by itself (retry in the same phase) or not. Only errors that say what the
/// reset needs does not exist, or that the target cannot be resolved, are permanent; a 404 is classified by
/// the caller, which knows what was missing.
pub(crate) fn is_transient(error: &Error) -> bool {
    match error {
        Error::Kube(kube::Error::Api(s)) => !matches!(s.code, 400 | 404 | 405 | 410 | 413 | 415 | 422),
        Error::Kube(_) => true,
        Error::Kafka(e) => !matches!(
            e,
            crate::kafka::KafkaError::UnknownTopic(_)
                | crate::kafka::KafkaError::UnknownPartition { .. }
                | crate::kafka::KafkaError::GroupNotEmpty { .. }
                | crate::kafka::KafkaError::UnsupportedApi { .. }
                | crate::kafka::KafkaError::Wire { .. }
                // Waited for across reconciles (`observe::kafka_view`, bounded by
                // `OperatorConfig::unstable_offset_wait`) before it is classified at all.
                | crate::kafka::KafkaError::UnstableOffsetCommit { .. }
        ),
        // A KafkaCluster whose Secret is missing or malformed: the user can fix it while the reset waits.
        Error::Config(_) | Error::InsecureCredentials(_) => true,
        // The group under the id is of another type than the reset was written for: not going to change.
        Error::TypeMismatch(_) => false,
    }
}

/// Classifies `error` given what it means when it is permanent.
pub(crate) fn classify(error: &Error, permanent: crate::plan::reset_phase::FailReason) -> ErrorClass {
    if is_transient(error) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent(permanent)
    }
}
