//! Performing the one action the transition table chose, one function per action, each with its order of
//! persist and side effect spelled out: the phase is persisted (with the resourceVersion read as a
//! precondition) before the side effect the next phase depends on, every side effect is fenced (this replica
//! still holds the leader Lease and the object is still the version it read), and Events follow the persist
//! they describe.

use super::observe::{Observed, kafka_view, uid, unstable_wait_now};
use super::planning::make_plan;
use super::{FINALIZER, STEP, to_api_phase, to_plan_phase, words};
use crate::api::conditions::{Progress, condition, find, set_condition, set_progress};
use crate::api::ledger::{AppliedOffset, AppliedReset, LedgerEntry};
use crate::api::reset::{ResetPhase, WorkloadRecord};
use crate::api::{OffsetReset, OffsetResetStatus};
use crate::controller::claim::WorkloadClaim;
use crate::controller::finalizers::set_finalizer;
use crate::controller::ledger::{Ledger, MAX_HISTORY_PLAN, record_in_group_history, spec_hash};
use crate::controller::status::{ms_from_time, now};
use crate::controller::workload::Workload;
use crate::controller::{Context, Error, FIELD_MANAGER, keda};
use crate::kafka::{KafkaError, TopicPartition};
use crate::plan::reset_phase::{ErrorClass, FailReason, Phase, ResetAction, UnstableWait, WaitReason};
use crate::plan::reset_record::ResetRecord;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::time::Duration;

/// Condition: the reset retries after a transient error.
pub const RETRYING: &str = "Retrying";
/// Condition: the reset waits (for another reset's claim, for the group to empty, for the quiet window).
pub const WAITING: &str = "Waiting";
/// Condition: restoring the workload failed; its message names the count to restore.
pub const WORKLOAD_RESTORED: &str = "WorkloadRestored";
/// True on a reset of a streams group (KIP-1071): its message says which state the reset leaves as it was
/// (internal topics, local stores) and how to reset that too.
pub const STREAMS_STATE_NOT_RESET: &str = "StreamsStateNotReset";

/// How a step ended.
pub(super) enum Outcome {
    Progressed(Action),
    /// A transient error: requeue with the reset's backoff.
    Retrying,
}

/// Why an action failed: classified (the table decides again with it), or a failure of the step itself.
pub(super) enum ActError {
    Classified(ErrorClass, Error),
    Other(Error),
}

impl From<Error> for ActError {
    /// Errors no caller classified are retried.
    fn from(e: Error) -> ActError {
        ActError::Classified(ErrorClass::Transient, e)
    }
}

impl From<kube::Error> for ActError {
    fn from(e: kube::Error) -> ActError {
        ActError::from(Error::from(e))
    }
}

fn classified((class, text): (ErrorClass, String)) -> ActError {
    ActError::Classified(class, Error::Config(text))
}

/// A 404 from the workload means it is gone (permanent); anything else is retried.
fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

fn workload_error(e: Error) -> ActError {
    match &e {
        Error::Kube(kube::Error::Api(s)) if s.code == 404 => {
            ActError::Classified(ErrorClass::Permanent(FailReason::WorkloadNotFound), e)
        }
        _ => ActError::from(e),
    }
}

/// One reconcile of one OffsetReset: the object as last read or written, and the status being built.
pub(super) struct Run<'a> {
    pub api: Api<OffsetReset>,
    pub ctx: &'a Context,
    pub reset: OffsetReset,
    pub status: OffsetResetStatus,
    pub ns: String,
    pub name: String,
    /// The shard of the reset's cluster, whose Lease fences every act (None: not sharded).
    pub shard: Option<u32>,
}

impl<'a> Run<'a> {
    pub fn new(api: Api<OffsetReset>, ctx: &'a Context, reset: OffsetReset, shard: Option<u32>) -> Run<'a> {
        let mut status = reset.status.clone().unwrap_or_default();
        if status.start_time.is_none() {
            status.start_time = Some(now());
            status.phase_since = Some(now());
        }
        status.observed_generation = reset.metadata.generation;
        Run {
            ns: reset.namespace().unwrap_or_default(),
            name: reset.name_any(),
            api,
            ctx,
            reset,
            status,
            shard,
        }
    }

    fn phase(&self) -> Phase {
        to_plan_phase(self.status.phase)
    }

    pub async fn perform(
        &mut self,
        next: Phase,
        action: ResetAction,
        observed: &Observed,
    ) -> Result<Outcome, ActError> {
        if observed.kafka.is_some() && self.status.unstable_offsets_since.is_some() {
            self.offsets_stable_again().await?;
        }
        match action {
            ResetAction::None => self.advance(next).await,
            ResetAction::Wait(reason) => self.wait(reason, observed).await,
            ResetAction::AddFinalizer => self.finalizer(true).await,
            ResetAction::RemoveFinalizer => self.finalizer(false).await,
            ResetAction::Claim => self.claim().await,
            ResetAction::Preview => self.preview(next).await,
            ResetAction::ScaleToZero => self.scale_to_zero(next).await,
            ResetAction::RemoveStaticMembers => self.remove_static_members(observed).await,
            ResetAction::FixPlan => self.fix_plan(observed).await,
            ResetAction::Commit => self.commit(next, observed).await,
            ResetAction::Restore => self.restore(next).await,
            ResetAction::Fail(reason) => self.fail(next, reason, observed).await,
            ResetAction::AlreadyApplied => self.already_applied(next, observed).await,
        }
    }

    // --- the actions -------------------------------------------------------------------------------------

    /// No side effect: persist the next phase (if it changed) and say so.
    async fn advance(&mut self, next: Phase) -> Result<Outcome, ActError> {
        let phase = self.phase();
        if phase.is_finished() {
            return self.expire().await;
        }
        if next == phase {
            let dry_run_done = phase == Phase::Planned && self.reset.spec.dry_run;
            return Ok(Outcome::Progressed(if dry_run_done {
                Action::await_change()
            } else {
                Action::requeue(STEP)
            }));
        }
        self.clear_waits();
        self.enter(next);
        self.persist().await?;
        if phase == Phase::Applying {
            // Committed by an earlier step whose persist was lost: its Event was never published, nor its
            // ledger entry written.
            self.record_in_ledger().await;
            self.publish(EventType::Normal, "Applied", self.applied_note()).await;
        }
        self.announce(phase, next).await;
        Ok(Outcome::Progressed(self.after(next)))
    }

    async fn wait(&mut self, reason: WaitReason, observed: &Observed) -> Result<Outcome, ActError> {
        let mut retry = STEP;
        let mut wait_began = false;
        if reason == WaitReason::UnstableOffsetCommit {
            // Recorded (persisted below) the first time, so the bound holds across operator restarts.
            if self.status.unstable_offsets_since.is_none() {
                self.status.unstable_offsets_since = Some(now());
                wait_began = true;
            }
            let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
            if let UnstableWait::Within { retry_in_ms } = unstable_wait_now(self, now_ms) {
                retry = Duration::from_millis(retry_in_ms);
            }
        }
        let text = words::waiting(reason, self, observed);
        let generation = self.reset.metadata.generation;
        if reason == WaitReason::TransientError {
            tracing::warn!(phase = ?self.phase(), why = %text, "offsetreset waits after a transient error");
            set_condition(
                &mut self.status.conditions,
                condition(RETRYING, true, reason.as_str(), text.clone(), generation, now()),
            );
        } else {
            self.status.conditions.retain(|c| c.type_ != RETRYING);
            set_condition(
                &mut self.status.conditions,
                condition(WAITING, true, reason.as_str(), text.clone(), generation, now()),
            );
        }
        self.persist().await?;
        if wait_began {
            tracing::info!(why = %text, "offsetreset waits for a pending transactional offset commit");
            self.publish(EventType::Normal, "WaitingForStableOffsets", text).await;
        }
        Ok(match reason {
            WaitReason::TransientError => Outcome::Retrying,
            _ => Outcome::Progressed(Action::requeue(retry)),
        })
    }

    /// The offsets were read stable again after a wait for a pending transactional offset commit: the wait
    /// (its start and its condition) is over, persisted before acting so a later wait counts afresh.
    async fn offsets_stable_again(&mut self) -> Result<(), ActError> {
        self.status.unstable_offsets_since = None;
        self.status
            .conditions
            .retain(|c| !(c.type_ == WAITING && c.reason == WaitReason::UnstableOffsetCommit.as_str()));
        self.persist().await?;
        tracing::info!("offsetreset: the group's pending transactional offset commit ended");
        Ok(())
    }

    async fn finalizer(&mut self, wanted: bool) -> Result<Outcome, ActError> {
        set_finalizer(&self.api, &self.reset, FINALIZER, wanted).await?;
        if wanted {
            return Ok(Outcome::Progressed(Action::requeue(Duration::from_millis(100))));
        }
        tracing::info!("offsetreset let go of its finalizer");
        Ok(Outcome::Progressed(self.ttl_action()))
    }

    /// Takes the workload's claim and records the workload in status (persisted; the phase stays Pending).
    async fn claim(&mut self) -> Result<Outcome, ActError> {
        let Some(target) = self.reset.spec.scale_target_ref.clone() else {
            return Err(ActError::Classified(
                ErrorClass::Permanent(FailReason::WorkloadNotFound),
                Error::Config("strategy ScaleDown needs scaleTargetRef".into()),
            ));
        };
        if !self.fence().await? {
            return Ok(self.fenced());
        }
        let workload = Workload::new(
            &self.ctx.kube,
            &self.ns,
            &target.api_version,
            &target.kind,
            &target.name,
        );
        let current = workload.replicas().await.map_err(workload_error)?;
        let claim = WorkloadClaim::new(
            &self.ctx.kube,
            &self.ns,
            &target.api_version,
            &target.kind,
            &target.name,
        );
        let original = claim.acquire(&uid(self), &self.name, current).await?;
        let paused = match &self.status.workload {
            Some(w) => w.paused_scaled_object.clone(),
            None => keda::scaled_object_to_pause(&self.ctx.kube, &self.ns, &target.kind, &target.name).await?,
        };
        self.status.workload = Some(WorkloadRecord {
            api_version: target.api_version.clone(),
            kind: target.kind.clone(),
            name: target.name.clone(),
            original_replicas: original,
            paused_scaled_object: paused,
        });
        self.clear_waits();
        self.persist().await?;
        tracing::info!(workload = %words::workload(self), original, "offsetreset holds the workload");
        self.publish(
            EventType::Normal,
            "Claimed",
            format!(
                "Holding {} for this reset ({original} replicas to restore)",
                words::workload(self)
            ),
        )
        .await;
        Ok(Outcome::Progressed(Action::requeue(Duration::from_millis(100))))
    }

    /// The plan as of now: the preview (a dry run's plan). Relative targets are resolved again at Applying.
    async fn preview(&mut self, next: Phase) -> Result<Outcome, ActError> {
        let view = kafka_view(self).await.map_err(classified)?;
        let plan = make_plan(self, &view).await.map_err(classified)?;
        let dry_run = self.reset.spec.dry_run;
        self.status.group_id = Some(view.target.group_id.clone());
        self.status.partitions = plan.partitions.len() as i32;
        self.status.target = Some(plan.target.clone());
        self.status.preview_time = Some(now());
        if dry_run {
            self.status.plan = plan.partitions.clone();
            self.status.previous_offsets = plan.previous;
        }
        let clamped = plan.partitions.iter().filter(|p| p.clamped.is_some()).count();
        self.status.preview = plan.partitions;
        self.note_streams_state(plan.streams_note.clone());
        self.clear_waits();
        self.enter(next);
        self.persist().await?;
        let note = format!(
            "Planned {} partition(s) of group {} to {}{}{}{}",
            self.status.preview.len(),
            view.target.group_id,
            plan.target,
            if clamped > 0 {
                format!("; {clamped} clamped to the log")
            } else {
                String::new()
            },
            if dry_run {
                " (dry run: nothing changes; figures as of now)"
            } else {
                " (a preview as of now: the plan is resolved again once the group has no members)"
            },
            plan.streams_note.map(|n| format!(". {n}")).unwrap_or_default()
        );
        tracing::info!(phase = ?next, "offsetreset planned");
        self.publish(EventType::Normal, "Planned", note).await;
        Ok(Outcome::Progressed(if dry_run {
            Action::await_change()
        } else {
            Action::requeue(STEP)
        }))
    }

    /// Persists the next phase first, then pauses KEDA and scales the workload to zero.
    async fn scale_to_zero(&mut self, next: Phase) -> Result<Outcome, ActError> {
        let phase = self.phase();
        let Some(w) = self.status.workload.clone() else {
            return Err(workload_error(Error::Config("no workload recorded".into())));
        };
        if next != phase {
            self.clear_waits();
            self.enter(next);
            self.persist().await?;
            self.announce(phase, next).await;
        }
        let workload = Workload::new(&self.ctx.kube, &self.ns, &w.api_version, &w.kind, &w.name);
        // The version is read before the fence and written with: a replica frozen after its fence check
        // (the Lease lost meanwhile) cannot scale down a workload the new leader has touched since.
        let (_, version) = workload.replicas_at_version().await.map_err(workload_error)?;
        if !self.fence().await? {
            return Ok(self.fenced());
        }
        if let Some(so) = &w.paused_scaled_object {
            keda::set_paused(&self.ctx.kube, &self.ns, so, true).await?;
        }
        match workload.set_replicas_at_version(0, version).await {
            Ok(()) => {}
            Err(e) if is_conflict(&e) => return Ok(self.workload_changed()),
            Err(e) => return Err(workload_error(e)),
        }
        if next == phase {
            tracing::info!(workload = %words::workload(self), "offsetreset scaled the workload down again");
            self.publish(
                EventType::Warning,
                "ScaledDownAgain",
                format!(
                    "{} was scaled up while the reset waited for the group to empty: scaled to 0 again",
                    words::workload(self)
                ),
            )
            .await;
        } else {
            tracing::info!(workload = %words::workload(self), "offsetreset scaled the workload to zero");
        }
        Ok(Outcome::Progressed(Action::requeue(STEP)))
    }

    async fn remove_static_members(&mut self, observed: &Observed) -> Result<Outcome, ActError> {
        let Some(view) = &observed.kafka else {
            return Ok(Outcome::Progressed(Action::requeue(STEP)));
        };
        if !self.fence().await? {
            return Ok(self.fenced());
        }
        let ids: Vec<String> = view
            .description
            .members
            .iter()
            .filter_map(|m| m.instance_id.clone())
            .collect();
        view.client
            .remove_static_members(&view.target.group_id, &ids)
            .await
            .map_err(Error::from)?;
        self.publish(
            EventType::Normal,
            "StaticMembersRemoved",
            format!("Removed static member(s) {ids:?} from group {}", view.target.group_id),
        )
        .await;
        Ok(Outcome::Progressed(Action::requeue(STEP)))
    }

    /// Resolves the applied plan from the offsets of the now empty group and records them as the offsets it
    /// replaces; persisted before anything is committed.
    async fn fix_plan(&mut self, observed: &Observed) -> Result<Outcome, ActError> {
        let Some(view) = &observed.kafka else {
            return Ok(Outcome::Progressed(Action::requeue(STEP)));
        };
        let plan = make_plan(self, view).await.map_err(classified)?;
        self.status.group_id = Some(view.target.group_id.clone());
        self.status.partitions = plan.partitions.len() as i32;
        self.status.target = Some(plan.target);
        self.status.plan = plan.partitions;
        self.status.previous_offsets = plan.previous;
        self.status.plan_time = Some(now());
        self.note_streams_state(plan.streams_note);
        self.persist().await?;
        tracing::info!(
            partitions = self.status.plan.len(),
            "offsetreset fixed the plan on the empty group"
        );
        Ok(Outcome::Progressed(Action::requeue(STEP)))
    }

    /// Commits the applied plan once; then persists the next phase; then publishes `Applied`.
    async fn commit(&mut self, next: Phase, observed: &Observed) -> Result<Outcome, ActError> {
        let Some(view) = &observed.kafka else {
            return Ok(Outcome::Progressed(Action::requeue(STEP)));
        };
        if !self.fence().await? {
            return Ok(self.fenced());
        }
        let offsets: BTreeMap<TopicPartition, i64> = self
            .status
            .plan
            .iter()
            .map(|p| (TopicPartition::new(&p.topic, p.partition), p.to))
            .collect();
        self.ctx.metrics.offset_commit_sent(&self.ns, &self.name);
        let committed = if view.target.is_share(&view.description) {
            view.client
                .alter_share_group_offsets(&view.target.group_id, &offsets)
                .await
        } else {
            // The commit metadata names this reset: a re-created one finds it there even once the
            // Kubernetes records are gone (`plan::reset_record`). Share groups' start offsets carry none.
            let record = ResetRecord::new(
                &self.ns,
                &self.name,
                &uid(self),
                &spec_hash(&self.reset.spec),
                &now().0.to_string(),
            );
            view.client
                .commit_offsets_with_metadata(&view.target.group_id, &offsets, &record.to_commit_metadata())
                .await
        };
        match committed {
            Ok(()) => {}
            Err(e @ KafkaError::GroupNotEmpty { .. }) => {
                return Err(ActError::Classified(
                    ErrorClass::Permanent(FailReason::GroupBecameActive),
                    e.into(),
                ));
            }
            Err(e) => return Err(Error::from(e).into()),
        }
        tracing::info!(
            partitions = offsets.len(),
            group = view.target.group_id,
            "offsetreset committed"
        );
        let phase = self.phase();
        self.clear_waits();
        self.enter(next);
        self.persist().await?;
        self.record_in_ledger().await;
        self.publish(EventType::Normal, "Applied", self.applied_note()).await;
        self.announce(phase, next).await;
        Ok(Outcome::Progressed(self.after(next)))
    }

    /// Scales the workload back to the recorded count, unpauses KEDA and releases the claim; then persists
    /// the end. A failure to scale back is said in a condition with the count to restore, and retried.
    async fn restore(&mut self, next: Phase) -> Result<Outcome, ActError> {
        // Read before the fence, written with (as in scale_to_zero): a stale leader's restore cannot undo
        // what another reset or the new leader did to the workload since. A workload that is gone reads as
        // no version, and the write below reports it.
        let version = match &self.status.workload {
            Some(w) => match Workload::new(&self.ctx.kube, &self.ns, &w.api_version, &w.kind, &w.name)
                .replicas_at_version()
                .await
            {
                Ok((_, version)) => version,
                Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => None,
                Err(e) => return Err(ActError::from(e)),
            },
            None => None,
        };
        if !self.fence().await? {
            return Ok(self.fenced());
        }
        let generation = self.reset.metadata.generation;
        let deleting = self.reset.metadata.deletion_timestamp.is_some();
        if let Some(w) = self.status.workload.clone() {
            let workload = Workload::new(&self.ctx.kube, &self.ns, &w.api_version, &w.kind, &w.name);
            match workload.set_replicas_at_version(w.original_replicas, version).await {
                Err(e) if is_conflict(&e) => return Ok(self.workload_changed()),
                Ok(()) => {
                    set_condition(
                        &mut self.status.conditions,
                        condition(
                            WORKLOAD_RESTORED,
                            true,
                            "Restored",
                            format!("{} {} scaled back to {} replicas", w.kind, w.name, w.original_replicas),
                            generation,
                            now(),
                        ),
                    );
                }
                Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
                    tracing::warn!(workload = %words::workload(self), "the workload is gone: nothing to restore");
                    self.publish(
                        EventType::Warning,
                        "WorkloadGone",
                        format!("{} {} no longer exists: nothing to scale back", w.kind, w.name),
                    )
                    .await;
                }
                Err(e) => {
                    let text = format!(
                        "could not scale {} {} back to {} replicas ({e}); retrying. If this persists, restore it by hand: kubectl scale {} {} --replicas={}",
                        w.kind,
                        w.name,
                        w.original_replicas,
                        w.kind.to_ascii_lowercase(),
                        w.name,
                        w.original_replicas
                    );
                    tracing::warn!(why = %text, "offsetreset could not restore the workload");
                    set_condition(
                        &mut self.status.conditions,
                        condition(WORKLOAD_RESTORED, false, "RestoreFailed", text, generation, now()),
                    );
                    return Err(ActError::from(e));
                }
            }
            if let Some(so) = &w.paused_scaled_object {
                keda::set_paused(&self.ctx.kube, &self.ns, so, false).await?;
            }
            WorkloadClaim::new(&self.ctx.kube, &self.ns, &w.api_version, &w.kind, &w.name)
                .release(&uid(self))
                .await?;
            tracing::info!(
                workload = %words::workload(self),
                replicas = w.original_replicas,
                "offsetreset restored the workload and released it"
            );
            let (reason, note) = if deleting {
                (
                    "RestoredOnDeletion",
                    format!(
                        "The OffsetReset was deleted: scaled {} {} back to {} replicas first",
                        w.kind, w.name, w.original_replicas
                    ),
                )
            } else {
                (
                    "Restored",
                    format!("Scaled {} {} back to {} replicas", w.kind, w.name, w.original_replicas),
                )
            };
            let phase = self.phase();
            self.clear_waits();
            self.enter(next);
            self.persist().await?;
            self.publish(EventType::Normal, reason, note).await;
            self.announce(phase, next).await;
        } else {
            let phase = self.phase();
            self.clear_waits();
            self.enter(next);
            self.persist().await?;
            self.announce(phase, next).await;
        }
        Ok(Outcome::Progressed(self.after(next)))
    }

    async fn fail(&mut self, next: Phase, reason: FailReason, observed: &Observed) -> Result<Outcome, ActError> {
        let phase = self.phase();
        let why = words::failure(reason, self, observed, phase);
        set_condition(
            &mut self.status.conditions,
            condition(
                "Failed",
                true,
                reason.as_str(),
                why.clone(),
                self.reset.metadata.generation,
                now(),
            ),
        );
        self.status.failure = Some(why.clone());
        self.clear_waits();
        self.enter(next);
        self.persist().await?;
        tracing::info!(?phase, next = ?next, reason = reason.as_str(), why = %why, "offsetreset failed");
        self.publish(EventType::Warning, reason.as_str(), why).await;
        Ok(Outcome::Progressed(self.after(next)))
    }

    /// A reset of the same name and spec was applied before: end as Succeeded without acting.
    async fn already_applied(&mut self, next: Phase, observed: &Observed) -> Result<Outcome, ActError> {
        let phase = self.phase();
        let note = format!(
            "OffsetReset {} with this spec was applied before, at {}: a re-created reset is not applied again; create one with another name to reset again",
            self.name,
            observed.applied_at.clone().unwrap_or_default()
        );
        self.clear_waits();
        self.enter(next);
        set_condition(
            &mut self.status.conditions,
            condition(
                "Complete",
                true,
                "AlreadyApplied",
                note.clone(),
                self.reset.metadata.generation,
                now(),
            ),
        );
        self.persist().await?;
        tracing::info!(
            ?phase,
            "offsetreset was applied before under this name and spec: not applied again"
        );
        self.publish(EventType::Normal, "AlreadyApplied", note).await;
        Ok(Outcome::Progressed(self.after(next)))
    }

    /// Records the applied reset in the namespace's ledger and, for a reset naming a ConsumerGroup, in its
    /// `status.resetHistory`. Best effort: a failure is logged, and the reset itself stays applied exactly
    /// once (the commit metadata in Kafka records it too).
    async fn record_in_ledger(&self) {
        let applied_at = now();
        let entry = LedgerEntry {
            name: self.name.clone(),
            uid: uid(self),
            spec_hash: spec_hash(&self.reset.spec),
            group_id: self.status.group_id.clone(),
            applied_at: applied_at.clone(),
        };
        let (uid, spec_hash) = (entry.uid.clone(), entry.spec_hash.clone());
        if let Err(e) = Ledger::new(&self.ctx.kube, &self.ns).record(entry).await {
            tracing::warn!(error = %e, "could not record the applied reset in the ledger");
        }
        let Some(group_ref) = &self.reset.spec.group_ref else {
            return;
        };
        let history = AppliedReset {
            name: self.name.clone(),
            uid,
            spec_hash,
            applied_at,
            target: self.status.target.clone(),
            partitions: self.status.plan.len() as i32,
            plan: self
                .status
                .plan
                .iter()
                .take(MAX_HISTORY_PLAN)
                .map(|p| AppliedOffset {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: p.to,
                })
                .collect(),
        };
        if let Err(e) = record_in_group_history(&self.ctx.kube, &self.ns, &group_ref.name, history).await {
            tracing::warn!(error = %e, group = group_ref.name, "could not record the applied reset in the ConsumerGroup's history");
        }
    }

    // --- helpers -----------------------------------------------------------------------------------------

    /// Whether this replica may act now: it still holds the leader Lease, and the object is the version
    /// this step read or wrote (a concurrent writer, e.g. a replica that still thinks it leads, makes it
    /// stop here).
    async fn fence(&self) -> Result<bool, ActError> {
        if !self.ctx.still_leading(self.shard).await? {
            tracing::info!(
                shard = self.shard,
                "not acting on the reset: this replica no longer holds the leader or shard Lease"
            );
            return Ok(false);
        }
        let fresh = self.api.get_opt(&self.name).await?;
        let same = fresh.as_ref().map(|r| r.resource_version()) == Some(self.reset.resource_version());
        if !same {
            tracing::info!("not acting on the reset: it changed since it was read; it is looked at again");
        }
        Ok(same)
    }

    fn fenced(&self) -> Outcome {
        Outcome::Progressed(Action::requeue(STEP))
    }

    /// The workload changed between our read and our write (409): look again before acting.
    fn workload_changed(&self) -> Outcome {
        tracing::debug!(workload = %words::workload(self), "the workload changed since it was read: looking again");
        Outcome::Progressed(Action::requeue(STEP))
    }

    fn enter(&mut self, phase: Phase) {
        let phase = to_api_phase(phase);
        if self.status.phase != phase {
            self.status.phase = phase;
            self.status.phase_since = Some(now());
        }
        if to_plan_phase(phase).is_finished() && self.status.completion_time.is_none() {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.status.completion_time = Some(now());
        let complete = self.status.phase == crate::api::reset::ResetPhase::Succeeded;
        let (reason, message) = if complete {
            ("Succeeded", format!("{} offset(s) reset", self.status.plan.len()))
        } else {
            (
                "Failed",
                self.status
                    .failure
                    .clone()
                    .unwrap_or_else(|| "the reset failed".to_owned()),
            )
        };
        set_condition(
            &mut self.status.conditions,
            condition(
                "Complete",
                complete,
                reason,
                message,
                self.reset.metadata.generation,
                now(),
            ),
        );
    }

    fn clear_waits(&mut self) {
        self.status
            .conditions
            .retain(|c| c.type_ != RETRYING && c.type_ != WAITING);
        self.status.unstable_offsets_since = None;
    }

    /// Writes status with the resourceVersion read as a precondition. A conflict caused by a change that left
    /// the status as read (a label or annotation edit, a GitOps tool) is written again at the new version;
    /// any other conflict means another writer moved the reset, and the step ends here.
    async fn persist(&mut self) -> Result<(), ActError> {
        let progress = progress_of(&self.status, self.reset.spec.dry_run);
        set_progress(
            &mut self.status.conditions,
            progress,
            self.reset.metadata.generation,
            now(),
        );
        if self.reset.status.as_ref() == Some(&self.status) {
            return Ok(());
        }
        for attempt in 0..3 {
            let patch = serde_json::json!({
                "apiVersion": OffsetReset::api_version(&()),
                "kind": OffsetReset::kind(&()),
                "metadata": {"resourceVersion": self.reset.resource_version()},
                "status": &self.status,
            });
            match self
                .api
                .patch_status(
                    &self.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(updated) => {
                    self.reset = updated;
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < 2 => {
                    let Some(fresh) = self.api.get_opt(&self.name).await? else {
                        return Err(ActError::Other(Error::Config("the OffsetReset is gone".into())));
                    };
                    if fresh.status != self.reset.status {
                        return Err(ActError::Other(Error::Config(
                            "the OffsetReset's status was changed by another writer".into(),
                        )));
                    }
                    tracing::debug!("status write conflicted with a metadata change: writing again");
                    self.reset = fresh;
                }
                Err(e) => return Err(ActError::Other(e.into())),
            }
        }
        Err(ActError::Other(Error::Config("the OffsetReset kept changing".into())))
    }

    async fn publish(&self, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reset".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.ctx.recorder.publish(&event, &self.reset.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }

    /// Logs every phase change and publishes the Events of phase entries.
    async fn announce(&self, from: Phase, to: Phase) {
        if from == to {
            return;
        }
        tracing::info!(from = ?from, to = ?to, "offsetreset phase changed");
        let group = self.status.group_id.clone().unwrap_or_default();
        let note = match to {
            Phase::ScalingDown => Some((
                "ScalingDown",
                format!(
                    "Scaling {} from {} to 0 replicas",
                    words::workload(self),
                    self.status.workload.as_ref().map(|w| w.original_replicas).unwrap_or(0)
                ),
            )),
            Phase::WaitingForInactive => Some((
                "WaitingForInactive",
                format!("Waiting for group {group} to have no members"),
            )),
            Phase::Succeeded => Some(("Succeeded", format!("Reset of group {group} finished"))),
            _ => None,
        };
        if let Some((reason, note)) = note {
            self.publish(EventType::Normal, reason, note).await;
        }
    }

    fn applied_note(&self) -> String {
        let streams = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == STREAMS_STATE_NOT_RESET)
            .map(|c| format!(". {}", c.message))
            .unwrap_or_default();
        format!(
            "Committed {} offset(s) to group {}{streams}",
            self.status.plan.len(),
            self.status.group_id.clone().unwrap_or_default()
        )
    }

    /// Sets (for a streams group) the condition that says what the reset does not reset.
    fn note_streams_state(&mut self, note: Option<String>) {
        if let Some(note) = note {
            let generation = self.reset.metadata.generation;
            set_condition(
                &mut self.status.conditions,
                condition(
                    STREAMS_STATE_NOT_RESET,
                    true,
                    "InternalTopicsKept",
                    note,
                    generation,
                    now(),
                ),
            );
        }
    }

    /// What to do after reaching `phase`: go on, or (finished) wait for the TTL.
    fn after(&self, phase: Phase) -> Action {
        if phase.is_finished() {
            // The next step lets go of the finalizer (or, without one, waits for the TTL).
            if self.reset.finalizers().iter().any(|f| f == FINALIZER) {
                return Action::requeue(Duration::from_millis(100));
            }
            return self.ttl_action();
        }
        Action::requeue(STEP)
    }

    fn ttl_action(&self) -> Action {
        match (self.reset.spec.ttl_seconds_after_finished, &self.status.completion_time) {
            (Some(ttl), Some(done)) => {
                let ttl = ttl.clamp(0, 31_536_000);
                let due = ms_from_time(done) + ttl * 1000 - k8s_openapi::jiff::Timestamp::now().as_millisecond();
                Action::requeue(Duration::from_millis(due.max(0) as u64 + 200))
            }
            _ => Action::await_change(),
        }
    }

    /// A finished reset: nothing to do but delete it once its TTL has passed.
    async fn expire(&self) -> Result<Outcome, ActError> {
        if let (Some(ttl), Some(done)) = (self.reset.spec.ttl_seconds_after_finished, &self.status.completion_time) {
            let due = ms_from_time(done) + ttl.clamp(0, 31_536_000) * 1000;
            if k8s_openapi::jiff::Timestamp::now().as_millisecond() >= due {
                match self.api.delete(&self.name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(ActError::Other(e.into())),
                }
                return Ok(Outcome::Progressed(Action::await_change()));
            }
        }
        Ok(Outcome::Progressed(self.ttl_action()))
    }
}

/// kstatus's view of a reset: Failed (Stalled, with the failure's reason) once it failed; Current once it
/// succeeded or a dry run is planned; InProgress (Reconciling, reason the phase, the wait or retry said) while
/// it runs, so that a Flux Kustomization that waits for its resources waits for the reset to finish.
fn progress_of(status: &OffsetResetStatus, dry_run: bool) -> Progress {
    match status.phase {
        ResetPhase::Succeeded => Progress::Done,
        ResetPhase::Planned if dry_run => Progress::Done,
        ResetPhase::Failed => {
            let failed = find(&status.conditions, "Failed");
            Progress::Stalled {
                reason: failed.map_or("Failed".to_owned(), |c| c.reason.clone()),
                message: failed
                    .map(|c| c.message.clone())
                    .or_else(|| status.failure.clone())
                    .unwrap_or_else(|| "the reset failed".to_owned()),
            }
        }
        phase => {
            let waiting = [WAITING, RETRYING]
                .iter()
                .filter_map(|t| find(&status.conditions, t).filter(|c| c.status == "True"))
                .map(|c| format!(": {}", c.message))
                .next()
                .unwrap_or_default();
            let phase = format!("{phase:?}");
            Progress::Reconciling {
                message: format!("the reset is {phase}{waiting}"),
                reason: phase,
            }
        }
    }
}
