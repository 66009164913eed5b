//! The OffsetReset state machine: one step per reconcile, from the phase recorded in status and what is
//! observed now (including how observing failed). It is the only place that decides what a reset does next:
//! the shell observes, calls `next`, performs the one action, and persists as each action's comment says, so
//! that a crash, a lost Lease or a conflicting writer at any point resumes safely and nothing is done twice.

/// Phases, in order. A dry run stops at `Planned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Planned,
    ScalingDown,
    WaitingForInactive,
    Applying,
    Restoring,
    Succeeded,
    Failed,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Planned,
        Phase::ScalingDown,
        Phase::WaitingForInactive,
        Phase::Applying,
        Phase::Restoring,
        Phase::Succeeded,
        Phase::Failed,
    ];

    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    /// Phases in which a ScaleDown reset may have scaled (or paused KEDA for) the workload: anything that
    /// ends the reset from here restores it first.
    pub fn may_have_touched_the_workload(self) -> bool {
        matches!(
            self,
            Phase::ScalingDown | Phase::WaitingForInactive | Phase::Applying | Phase::Restoring
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Reset only a group that has no members; fail otherwise.
    RequireInactive,
    /// Scale the consumer workload to zero, reset, scale it back.
    ScaleDown,
}

/// Why a reset failed, as a condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    GroupActive,
    HpaConflict,
    Timeout,
    GroupBecameActive,
    /// The committed offsets moved while the group had no members (`assign()` consumers).
    HiddenCommitters,
    /// The ConsumerGroup named by `groupRef` does not exist (or was deleted).
    GroupNotFound,
    ClusterNotFound,
    WorkloadNotFound,
    /// The target cannot be resolved (unknown topic or partition, nothing to undo, …).
    InvalidPlan,
    /// Another OffsetReset holds the workload's claim that this one held.
    ClaimLost,
    /// A transactional offset commit of the group stayed pending (UNSTABLE_OFFSET_COMMIT) longer than the
    /// operator waits for one; nothing was planned from it.
    UnstableOffsetCommit,
    /// The OffsetReset was deleted before it finished.
    Deleted,
}

impl FailReason {
    pub const ALL: [FailReason; 12] = [
        FailReason::GroupActive,
        FailReason::HpaConflict,
        FailReason::Timeout,
        FailReason::GroupBecameActive,
        FailReason::HiddenCommitters,
        FailReason::GroupNotFound,
        FailReason::ClusterNotFound,
        FailReason::WorkloadNotFound,
        FailReason::InvalidPlan,
        FailReason::ClaimLost,
        FailReason::UnstableOffsetCommit,
        FailReason::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::GroupActive => "GroupActive",
            FailReason::HpaConflict => "HorizontalPodAutoscalerConflict",
            FailReason::Timeout => "TimedOut",
            FailReason::GroupBecameActive => "GroupBecameActive",
            FailReason::HiddenCommitters => "HiddenCommitters",
            FailReason::GroupNotFound => "GroupNotFound",
            FailReason::ClusterNotFound => "ClusterNotFound",
            FailReason::WorkloadNotFound => "WorkloadNotFound",
            FailReason::InvalidPlan => "InvalidPlan",
            FailReason::ClaimLost => "ClaimLost",
            FailReason::UnstableOffsetCommit => "UnstableOffsetCommit",
            FailReason::Deleted => "Deleted",
        }
    }
}

/// How observing (or acting) failed this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed later (API server or broker unavailable, 403 for a moment, 5xx, 429, timeouts): retry in
    /// the same phase.
    Transient,
    /// Will not succeed by retrying: the reset fails, through Restoring if it holds the workload.
    Permanent(FailReason),
    /// The group's committed offsets are not stable yet: a transactional offset commit is pending
    /// (UNSTABLE_OFFSET_COMMIT). Wait in the phase, planning nothing from it; the shell turns it into
    /// `Permanent(UnstableOffsetCommit)` once `--unstable-offset-wait` has passed since the first such answer
    /// (`unstable_wait`).
    OffsetsUnstable,
}

/// The workload claim (one owner per workload) as seen by this reset. Resets that scale nothing see
/// `NotNeeded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    NotNeeded,
    /// Nobody holds it (or only a reset that no longer runs).
    Free,
    /// This reset holds it.
    Ours,
    /// Another running reset holds it.
    Theirs,
}

impl Claim {
    pub const ALL: [Claim; 4] = [Claim::NotNeeded, Claim::Free, Claim::Ours, Claim::Theirs];
}

/// Why a reset stays in its phase, as a condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    TransientError,
    WorkloadClaimed,
    GroupHasMembers,
    /// The plan is fixed; the commit waits until the offsets have been seen unchanged for the quiet window.
    QuietWindow,
    /// A transactional offset commit of the group is pending: nothing is planned until it commits or aborts.
    UnstableOffsetCommit,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::TransientError => "TransientError",
            WaitReason::WorkloadClaimed => "WorkloadClaimed",
            WaitReason::GroupHasMembers => "GroupHasMembers",
            WaitReason::QuietWindow => "QuietWindow",
            WaitReason::UnstableOffsetCommit => "UnstableOffsetCommit",
        }
    }
}

/// What the reconciler observed this time. Fields a phase does not look at may hold anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetObservation {
    pub strategy: Strategy,
    pub dry_run: bool,
    /// `spec.force`: commit even when hidden committers moved the offsets.
    pub force: bool,
    /// The object has a deletionTimestamp.
    pub deleting: bool,
    /// Our finalizer is on the object.
    pub has_finalizer: bool,
    /// Observing failed; nothing else observed this time is to be trusted.
    pub error: Option<ErrorClass>,
    pub claim: Claim,
    /// The workload runs replicas again (someone scaled it up while the reset waits).
    pub workload_scaled_up: bool,
    /// No members: Empty or Dead.
    pub group_inactive: bool,
    /// Members with a `group.instance.id` while the workload is at zero: they hold the group until their
    /// session times out unless removed.
    pub static_members: bool,
    /// A HorizontalPodAutoscaler not managed by KEDA targets the workload.
    pub hpa_conflict: bool,
    /// The applied plan has been resolved (at Applying, from the offsets of the empty group).
    pub plan_fixed: bool,
    /// The group's committed offsets equal the applied plan's targets.
    pub plan_applied: bool,
    /// The committed offsets differ from those the applied plan was resolved from.
    pub offsets_moved: bool,
    /// The quiet window since the plan was fixed has passed.
    pub quiet: bool,
    /// The current phase has lasted longer than the reset's timeout.
    pub timed_out: bool,
    /// A failure recorded earlier, while the workload still had to be restored.
    pub pending_failure: bool,
    /// The ledger says a reset of this name and spec was applied before (this one was re-created, e.g. by a
    /// GitOps sync after its TTL deleted it).
    pub applied_before: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetAction {
    /// Nothing to do (a dry run at Planned, a finished reset).
    None,
    /// Stay in the phase; a condition says why.
    Wait(WaitReason),
    /// Put our finalizer on the object before anything is touched, so a deletion restores first.
    AddFinalizer,
    /// The reset is finished (or deleted) and holds nothing: let the object go.
    RemoveFinalizer,
    /// Take the workload's claim and record the workload (replica count as the claim recorded it, the KEDA
    /// ScaledObject to pause) in status; persist.
    Claim,
    /// Resolve the plan as of now into `preview` (a dry run: also `plan`); persist the next phase.
    Preview,
    /// Persist the next phase first, then pause KEDA and scale the workload to zero (both idempotent).
    ScaleToZero,
    /// Remove static members from the group (LeaveGroup); stay in the phase.
    RemoveStaticMembers,
    /// Resolve the applied plan from the offsets of the empty group and record them as the offsets
    /// replaced; persist (the phase stays Applying).
    FixPlan,
    /// Commit the applied plan's offsets; then persist the next phase; then publish `Applied`.
    Commit,
    /// Scale the workload back to the recorded count, unpause KEDA, release the claim (all idempotent);
    /// then persist the end.
    Restore,
    /// Record the failure and persist the next phase.
    Fail(FailReason),
    /// End as Succeeded without acting: the same reset was applied before (the ledger says when).
    AlreadyApplied,
}

/// The next phase and the action that leads there: the one transition table for every path.
pub fn next(phase: Phase, o: &ResetObservation) -> (Phase, ResetAction) {
    // A reset that scales a workload (and so holds a claim and a finalizer).
    let scales = o.strategy == Strategy::ScaleDown && !o.dry_run;
    // Only a reset that scales has a claim; one that scales and sees none must take it.
    let claim = match (scales, o.claim) {
        (false, _) => Claim::NotNeeded,
        (true, Claim::NotNeeded) => Claim::Free,
        (true, c) => c,
    };
    let holds = claim == Claim::Ours;
    let touched = scales && phase.may_have_touched_the_workload();

    if phase.is_finished() {
        return if holds {
            // Never left held by a finished reset (a crash between the end and the release).
            (phase, ResetAction::Restore)
        } else if o.has_finalizer {
            (phase, ResetAction::RemoveFinalizer)
        } else {
            (phase, ResetAction::None)
        };
    }

    let end = if o.pending_failure {
        Phase::Failed
    } else {
        Phase::Succeeded
    };
    if phase == Phase::Restoring {
        return match (o.error, claim) {
            (Some(ErrorClass::Transient), _) => (phase, ResetAction::Wait(WaitReason::TransientError)),
            // Someone else holds the workload now: we released it already, it is theirs to change.
            (_, Claim::Theirs) => (end, ResetAction::None),
            // Ours, or free (we may have released it just before a crash: restoring again is idempotent).
            _ => (end, ResetAction::Restore),
        };
    }

    // Whatever ends a reset that holds (or may have scaled) the workload goes through Restoring.
    let failing = |reason: FailReason| {
        if holds || (touched && claim == Claim::Free) {
            (Phase::Restoring, ResetAction::Fail(reason))
        } else {
            (Phase::Failed, ResetAction::Fail(reason))
        }
    };

    if o.deleting && !o.has_finalizer {
        // Nothing of ours to undo: the object goes.
        return (phase, ResetAction::None);
    }
    match o.error {
        // Retrying must not keep the consumers down forever: the reset's timeout bounds it too.
        Some(ErrorClass::Transient | ErrorClass::OffsetsUnstable) if touched && o.timed_out => {
            return failing(FailReason::Timeout);
        }
        Some(ErrorClass::Transient) => return (phase, ResetAction::Wait(WaitReason::TransientError)),
        _ if o.deleting => return failing(FailReason::Deleted),
        Some(ErrorClass::Permanent(reason)) => return failing(reason),
        Some(ErrorClass::OffsetsUnstable) => return (phase, ResetAction::Wait(WaitReason::UnstableOffsetCommit)),
        None => {}
    }
    // A held claim taken by another reset: nothing of the workload is ours to change any more.
    if claim == Claim::Theirs && phase != Phase::Pending {
        return (Phase::Failed, ResetAction::Fail(FailReason::ClaimLost));
    }
    // A claim that vanished (deleted by hand) while we need it: take it again before acting.
    if claim == Claim::Free && phase != Phase::Pending {
        return (phase, ResetAction::Claim);
    }

    match phase {
        Phase::Pending if o.applied_before && !o.dry_run && !holds => (Phase::Succeeded, ResetAction::AlreadyApplied),
        Phase::Pending if scales => {
            if !o.has_finalizer {
                (phase, ResetAction::AddFinalizer)
            } else if o.hpa_conflict {
                failing(FailReason::HpaConflict)
            } else {
                match claim {
                    Claim::Theirs => (phase, ResetAction::Wait(WaitReason::WorkloadClaimed)),
                    Claim::Ours => (Phase::Planned, ResetAction::Preview),
                    Claim::Free | Claim::NotNeeded => (phase, ResetAction::Claim),
                }
            }
        }
        Phase::Pending => (Phase::Planned, ResetAction::Preview),
        Phase::Planned if o.dry_run => (phase, ResetAction::None),
        Phase::Planned if scales => (Phase::ScalingDown, ResetAction::None),
        Phase::Planned if o.group_inactive => (Phase::Applying, ResetAction::None),
        Phase::Planned => failing(FailReason::GroupActive),
        // Phases only a reset that scales enters; kept safe for any other.
        Phase::ScalingDown | Phase::WaitingForInactive if !scales && o.group_inactive => {
            (Phase::Applying, ResetAction::None)
        }
        Phase::ScalingDown | Phase::WaitingForInactive if !scales => failing(FailReason::GroupActive),
        Phase::ScalingDown => (Phase::WaitingForInactive, ResetAction::ScaleToZero),
        Phase::WaitingForInactive if o.workload_scaled_up => (phase, ResetAction::ScaleToZero),
        Phase::WaitingForInactive if o.group_inactive => (Phase::Applying, ResetAction::None),
        Phase::WaitingForInactive if o.timed_out => failing(FailReason::Timeout),
        Phase::WaitingForInactive if o.static_members => (phase, ResetAction::RemoveStaticMembers),
        Phase::WaitingForInactive => (phase, ResetAction::Wait(WaitReason::GroupHasMembers)),
        Phase::Applying => {
            let after = if scales { Phase::Restoring } else { Phase::Succeeded };
            if o.plan_fixed && o.plan_applied {
                // Committed before a crash or a lost persist: never twice.
                (after, ResetAction::None)
            } else if !o.group_inactive {
                failing(FailReason::GroupBecameActive)
            } else if !o.plan_fixed {
                (phase, ResetAction::FixPlan)
            } else if o.offsets_moved && !o.force {
                failing(FailReason::HiddenCommitters)
            } else if !o.quiet && !o.force {
                (phase, ResetAction::Wait(WaitReason::QuietWindow))
            } else {
                (after, ResetAction::Commit)
            }
        }
        Phase::Restoring | Phase::Succeeded | Phase::Failed => unreachable_phase(phase),
    }
}

/// Where a wait for a pending transactional offset commit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnstableWait {
    /// Look again after this long (in milliseconds): short at first, at most `UNSTABLE_RETRY_MAX_MS`, and never
    /// past the bound.
    Within { retry_in_ms: u64 },
    /// The bound has passed: fail with `UnstableOffsetCommit`.
    Over,
}

/// The longest pause between two looks at a pending transactional offset commit.
pub const UNSTABLE_RETRY_MAX_MS: u64 = 2_000;
/// The first pause: most transactions commit within moments.
const UNSTABLE_RETRY_MIN_MS: u64 = 250;

/// The wait for stable offsets that began at `since_ms` (when the group first answered UNSTABLE_OFFSET_COMMIT,
/// recorded in status so an operator restart does not restart the count), bounded by `bound_ms`
/// (`--unstable-offset-wait`), as of `now_ms`. The pause doubles with the time waited (half of it), from
/// 250 ms to 2 s.
pub fn unstable_wait(since_ms: i64, now_ms: i64, bound_ms: u64) -> UnstableWait {
    let waited = now_ms.saturating_sub(since_ms).max(0) as u64;
    if waited >= bound_ms {
        return UnstableWait::Over;
    }
    let pause = (waited / 2).clamp(UNSTABLE_RETRY_MIN_MS, UNSTABLE_RETRY_MAX_MS);
    // One look just after the bound, so a transaction ending at the last moment still counts.
    UnstableWait::Within {
        retry_in_ms: pause.min(bound_ms - waited + 50),
    }
}

/// Handled before the match; kept total without a panic.
fn unreachable_phase(phase: Phase) -> (Phase, ResetAction) {
    (phase, ResetAction::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(strategy: Strategy) -> ResetObservation {
        ResetObservation {
            strategy,
            dry_run: false,
            force: false,
            deleting: false,
            has_finalizer: strategy == Strategy::ScaleDown,
            error: None,
            claim: if strategy == Strategy::ScaleDown {
                Claim::Ours
            } else {
                Claim::NotNeeded
            },
            workload_scaled_up: false,
            group_inactive: true,
            static_members: false,
            hpa_conflict: false,
            plan_fixed: true,
            plan_applied: false,
            offsets_moved: false,
            quiet: true,
            timed_out: false,
            pending_failure: false,
            applied_before: false,
        }
    }

    /// Checks `property` on every (phase, observation) pair: each observation field over each of its values.
    fn for_every_pair(property: impl Fn(Phase, &ResetObservation, Phase, ResetAction) -> Result<(), String>) {
        let errors: Vec<Option<ErrorClass>> = std::iter::once(None)
            .chain(std::iter::once(Some(ErrorClass::Transient)))
            .chain(std::iter::once(Some(ErrorClass::OffsetsUnstable)))
            .chain(FailReason::ALL.into_iter().map(|r| Some(ErrorClass::Permanent(r))))
            .collect();
        for strategy in [Strategy::RequireInactive, Strategy::ScaleDown] {
            for error in &errors {
                for claim in Claim::ALL {
                    for bits in 0u32..(1 << 15) {
                        let b = |i: u32| bits & (1 << i) != 0;
                        let o = ResetObservation {
                            strategy,
                            dry_run: b(0),
                            force: b(1),
                            deleting: b(2),
                            has_finalizer: b(3),
                            error: *error,
                            claim,
                            workload_scaled_up: b(4),
                            group_inactive: b(5),
                            static_members: b(6),
                            hpa_conflict: b(7),
                            plan_fixed: b(8),
                            plan_applied: b(9),
                            offsets_moved: b(10),
                            quiet: b(11),
                            timed_out: b(12),
                            pending_failure: b(13),
                            applied_before: b(14),
                        };
                        for phase in Phase::ALL {
                            let (to, action) = next(phase, &o);
                            if let Err(why) = property(phase, &o, to, action) {
                                panic!("{phase:?} --{action:?}--> {to:?}: {why}\n{o:#?}");
                            }
                        }
                    }
                }
            }
        }
    }

    fn scales(o: &ResetObservation) -> bool {
        o.strategy == Strategy::ScaleDown && !o.dry_run
    }

    /// Whether the reset holds its workload (only a reset that scales can).
    fn holds(o: &ResetObservation) -> bool {
        scales(o) && o.claim == Claim::Ours
    }

    #[test]
    fn a_commit_happens_only_on_an_empty_group_with_a_fixed_plan_seen_quiet_and_the_claim_held() {
        for_every_pair(|phase, o, _, action| {
            if action != ResetAction::Commit {
                return Ok(());
            }
            let ok = phase == Phase::Applying
                && o.error.is_none()
                && !o.deleting
                && o.group_inactive
                && o.plan_fixed
                && !o.plan_applied
                && (o.force || (o.quiet && !o.offsets_moved))
                && (!scales(o) || holds(o));
            if ok {
                Ok(())
            } else {
                Err("commit when it must not".into())
            }
        });
    }

    #[test]
    fn the_workload_is_scaled_down_only_by_the_holder_of_its_claim() {
        for_every_pair(|_, o, _, action| {
            if action == ResetAction::ScaleToZero
                && !(scales(o) && o.claim == Claim::Ours && o.error.is_none() && !o.deleting)
            {
                return Err("scaled without holding the claim".into());
            }
            if action == ResetAction::Restore && scales(o) && o.claim == Claim::Theirs {
                return Err("restored a workload another reset holds".into());
            }
            Ok(())
        });
    }

    #[test]
    fn a_reset_that_holds_or_touched_the_workload_never_ends_without_restoring_it() {
        for_every_pair(|phase, o, to, action| {
            let ends_now = to.is_finished() && !phase.is_finished();
            let holds = holds(o);
            let touched = scales(o) && phase.may_have_touched_the_workload() && o.claim != Claim::Theirs;
            if ends_now && (holds || touched) && action != ResetAction::Restore {
                return Err("ended without restoring".into());
            }
            if phase.is_finished() && holds && action != ResetAction::Restore {
                return Err("a finished reset kept its claim".into());
            }
            Ok(())
        });
    }

    #[test]
    fn transient_errors_retry_in_the_same_phase_and_permanent_ones_fail_through_the_table() {
        for_every_pair(|phase, o, to, action| {
            if phase.is_finished() || (o.deleting && phase != Phase::Restoring) {
                return Ok(());
            }
            if scales(o) && phase.may_have_touched_the_workload() && o.timed_out {
                return Ok(());
            }
            match o.error {
                Some(ErrorClass::Transient)
                    if to != phase || action != ResetAction::Wait(WaitReason::TransientError) =>
                {
                    Err("a transient error moved the reset".into())
                }
                Some(ErrorClass::Permanent(r)) if phase != Phase::Restoring && action != ResetAction::Fail(r) => {
                    Err("a permanent error did not fail the reset".into())
                }
                Some(ErrorClass::OffsetsUnstable)
                    if phase != Phase::Restoring
                        && (to != phase || action != ResetAction::Wait(WaitReason::UnstableOffsetCommit)) =>
                {
                    Err("pending transactional offsets moved the reset".into())
                }
                _ => Ok(()),
            }
        });
    }

    #[test]
    fn finished_resets_never_change_phase_and_deletions_always_let_go_after_restoring() {
        for_every_pair(|phase, o, to, action| {
            if phase.is_finished() && to != phase {
                return Err("a finished reset moved".into());
            }
            if o.deleting && o.has_finalizer && !phase.is_finished() && phase != Phase::Restoring {
                let timed_out = o.timed_out && scales(o) && phase.may_have_touched_the_workload();
                let expected = match o.error {
                    Some(ErrorClass::Transient | ErrorClass::OffsetsUnstable) if timed_out => {
                        action == ResetAction::Fail(FailReason::Timeout)
                    }
                    Some(ErrorClass::Transient) => action == ResetAction::Wait(WaitReason::TransientError),
                    _ => action == ResetAction::Fail(FailReason::Deleted),
                };
                if !expected {
                    return Err("a deletion did not end the reset".into());
                }
            }
            if phase.is_finished()
                && o.claim != Claim::Ours
                && o.has_finalizer
                && action != ResetAction::RemoveFinalizer
            {
                return Err("a finished reset kept its finalizer".into());
            }
            Ok(())
        });
    }

    /// Runs the machine from Pending with a fixed observation until it stops moving; `fix` adjusts the
    /// observation to what the previous action did.
    fn run(mut o: ResetObservation, fix: impl Fn(&mut ResetObservation, ResetAction)) -> Vec<(Phase, ResetAction)> {
        let mut phase = Phase::Pending;
        let mut steps = Vec::new();
        for _ in 0..20 {
            let (next_phase, action) = next(phase, &o);
            steps.push((next_phase, action));
            fix(&mut o, action);
            if next_phase == phase && matches!(action, ResetAction::None | ResetAction::Wait(_)) {
                break;
            }
            if next_phase.is_finished() && matches!(action, ResetAction::None | ResetAction::RemoveFinalizer) {
                break;
            }
            phase = next_phase;
        }
        steps
    }

    /// What each action changes in the world, as the next observation sees it.
    fn world(o: &mut ResetObservation, action: ResetAction) {
        match action {
            ResetAction::AddFinalizer => o.has_finalizer = true,
            ResetAction::RemoveFinalizer => o.has_finalizer = false,
            ResetAction::Claim => o.claim = Claim::Ours,
            ResetAction::Restore => o.claim = Claim::Free,
            ResetAction::FixPlan => o.plan_fixed = true,
            ResetAction::Commit => o.plan_applied = true,
            ResetAction::Fail(_) => o.pending_failure = true,
            _ => {}
        }
    }

    #[test]
    fn require_inactive_on_an_empty_group_plans_at_applying_and_commits_once() {
        let mut o = obs(Strategy::RequireInactive);
        o.plan_fixed = false;
        assert_eq!(
            run(o, world),
            vec![
                (Phase::Planned, ResetAction::Preview),
                (Phase::Applying, ResetAction::None),
                (Phase::Applying, ResetAction::FixPlan),
                (Phase::Succeeded, ResetAction::Commit),
                (Phase::Succeeded, ResetAction::None),
            ]
        );
    }

    #[test]
    fn require_inactive_fails_clearly_on_an_active_group() {
        let mut o = obs(Strategy::RequireInactive);
        o.group_inactive = false;
        assert_eq!(
            next(Phase::Planned, &o),
            (Phase::Failed, ResetAction::Fail(FailReason::GroupActive))
        );
    }

    #[test]
    fn a_dry_run_stops_at_planned_with_no_claim_and_no_finalizer() {
        let mut o = obs(Strategy::ScaleDown);
        o.dry_run = true;
        o.has_finalizer = false;
        o.claim = Claim::NotNeeded;
        assert_eq!(
            run(o, world),
            vec![
                (Phase::Planned, ResetAction::Preview),
                (Phase::Planned, ResetAction::None)
            ]
        );
    }

    #[test]
    fn scale_down_takes_finalizer_and_claim_first_and_restores_and_lets_go_last() {
        let mut o = obs(Strategy::ScaleDown);
        o.has_finalizer = false;
        o.claim = Claim::Free;
        o.plan_fixed = false;
        assert_eq!(
            run(o, world),
            vec![
                (Phase::Pending, ResetAction::AddFinalizer),
                (Phase::Pending, ResetAction::Claim),
                (Phase::Planned, ResetAction::Preview),
                (Phase::ScalingDown, ResetAction::None),
                (Phase::WaitingForInactive, ResetAction::ScaleToZero),
                (Phase::Applying, ResetAction::None),
                (Phase::Applying, ResetAction::FixPlan),
                (Phase::Restoring, ResetAction::Commit),
                (Phase::Succeeded, ResetAction::Restore),
                (Phase::Succeeded, ResetAction::RemoveFinalizer),
            ]
        );
    }

    #[test]
    fn a_second_reset_waits_while_another_holds_the_workload() {
        let mut o = obs(Strategy::ScaleDown);
        o.claim = Claim::Theirs;
        assert_eq!(
            next(Phase::Pending, &o),
            (Phase::Pending, ResetAction::Wait(WaitReason::WorkloadClaimed))
        );
        o.claim = Claim::Free;
        assert_eq!(next(Phase::Pending, &o), (Phase::Pending, ResetAction::Claim));
    }

    #[test]
    fn deleting_a_reset_mid_flight_restores_then_lets_go() {
        for phase in [
            Phase::Pending,
            Phase::Planned,
            Phase::ScalingDown,
            Phase::WaitingForInactive,
            Phase::Applying,
        ] {
            let mut o = obs(Strategy::ScaleDown);
            o.deleting = true;
            assert_eq!(
                next(phase, &o),
                (Phase::Restoring, ResetAction::Fail(FailReason::Deleted)),
                "{phase:?}"
            );
        }
        let mut o = obs(Strategy::ScaleDown);
        o.deleting = true;
        o.pending_failure = true;
        assert_eq!(next(Phase::Restoring, &o), (Phase::Failed, ResetAction::Restore));
        o.claim = Claim::Free;
        assert_eq!(next(Phase::Failed, &o), (Phase::Failed, ResetAction::RemoveFinalizer));
    }

    #[test]
    fn a_missing_group_while_the_workload_is_down_restores_before_failing() {
        let mut o = obs(Strategy::ScaleDown);
        o.error = Some(ErrorClass::Permanent(FailReason::GroupNotFound));
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::Restoring, ResetAction::Fail(FailReason::GroupNotFound))
        );
        o.error = Some(ErrorClass::Transient);
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::WaitingForInactive, ResetAction::Wait(WaitReason::TransientError))
        );
    }

    #[test]
    fn waiting_scales_down_again_removes_static_members_and_times_out_through_restoring() {
        let mut o = obs(Strategy::ScaleDown);
        o.group_inactive = false;
        o.workload_scaled_up = true;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::WaitingForInactive, ResetAction::ScaleToZero)
        );
        o.workload_scaled_up = false;
        o.static_members = true;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::WaitingForInactive, ResetAction::RemoveStaticMembers)
        );
        o.static_members = false;
        o.timed_out = true;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::Restoring, ResetAction::Fail(FailReason::Timeout))
        );
        o.pending_failure = true;
        assert_eq!(next(Phase::Restoring, &o), (Phase::Failed, ResetAction::Restore));
    }

    #[test]
    fn hidden_committers_fail_the_reset_unless_forced() {
        let mut o = obs(Strategy::ScaleDown);
        o.offsets_moved = true;
        assert_eq!(
            next(Phase::Applying, &o),
            (Phase::Restoring, ResetAction::Fail(FailReason::HiddenCommitters))
        );
        o.force = true;
        assert_eq!(next(Phase::Applying, &o), (Phase::Restoring, ResetAction::Commit));
        o.force = false;
        o.offsets_moved = false;
        o.quiet = false;
        assert_eq!(
            next(Phase::Applying, &o),
            (Phase::Applying, ResetAction::Wait(WaitReason::QuietWindow))
        );
    }

    #[test]
    fn resuming_applying_after_a_lost_persist_does_not_commit_twice_or_fail() {
        let mut o = obs(Strategy::ScaleDown);
        o.plan_applied = true;
        assert_eq!(next(Phase::Applying, &o), (Phase::Restoring, ResetAction::None));
        o.group_inactive = false;
        o.offsets_moved = true;
        assert_eq!(next(Phase::Applying, &o), (Phase::Restoring, ResetAction::None));
    }

    #[test]
    fn a_claim_taken_by_another_reset_fails_without_touching_and_a_vanished_one_is_taken_again() {
        let mut o = obs(Strategy::ScaleDown);
        o.claim = Claim::Theirs;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::Failed, ResetAction::Fail(FailReason::ClaimLost))
        );
        assert_eq!(next(Phase::Restoring, &o), (Phase::Succeeded, ResetAction::None));
        o.claim = Claim::Free;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::WaitingForInactive, ResetAction::Claim)
        );
    }

    #[test]
    fn a_reset_applied_before_under_the_same_name_and_spec_is_not_applied_again() {
        for strategy in [Strategy::RequireInactive, Strategy::ScaleDown] {
            let mut o = obs(strategy);
            o.applied_before = true;
            o.claim = Claim::Free;
            o.has_finalizer = false;
            assert_eq!(
                next(Phase::Pending, &o),
                (Phase::Succeeded, ResetAction::AlreadyApplied),
                "{strategy:?}"
            );
            o.dry_run = true;
            assert_eq!(next(Phase::Pending, &o), (Phase::Planned, ResetAction::Preview));
        }
    }

    #[test]
    fn an_hpa_is_refused_before_anything_is_touched() {
        let mut o = obs(Strategy::ScaleDown);
        o.hpa_conflict = true;
        o.claim = Claim::Free;
        assert_eq!(
            next(Phase::Pending, &o),
            (Phase::Failed, ResetAction::Fail(FailReason::HpaConflict))
        );
    }

    #[test]
    fn nothing_is_planned_or_committed_from_a_pending_transactional_offset_commit() {
        for_every_pair(|phase, o, _, action| {
            let plans = matches!(
                action,
                ResetAction::Preview | ResetAction::FixPlan | ResetAction::Commit | ResetAction::ScaleToZero
            );
            if o.error == Some(ErrorClass::OffsetsUnstable) && plans {
                return Err(format!("{action:?} at {phase:?} while the offsets were unstable"));
            }
            Ok(())
        });
    }

    #[test]
    fn pending_transactional_offsets_are_waited_for_in_every_phase_that_reads_them() {
        for strategy in [Strategy::RequireInactive, Strategy::ScaleDown] {
            for phase in [
                Phase::Pending,
                Phase::Planned,
                Phase::WaitingForInactive,
                Phase::Applying,
            ] {
                let mut o = obs(strategy);
                o.error = Some(ErrorClass::OffsetsUnstable);
                assert_eq!(
                    next(phase, &o),
                    (phase, ResetAction::Wait(WaitReason::UnstableOffsetCommit)),
                    "{strategy:?} {phase:?}"
                );
                // Past the bound the shell reports the permanent error: the workload is restored first.
                o.error = Some(ErrorClass::Permanent(FailReason::UnstableOffsetCommit));
                let through = if strategy == Strategy::ScaleDown {
                    Phase::Restoring
                } else {
                    Phase::Failed
                };
                assert_eq!(
                    next(phase, &o),
                    (through, ResetAction::Fail(FailReason::UnstableOffsetCommit)),
                    "{strategy:?} {phase:?}"
                );
            }
        }
        // The reset's own timeout still bounds a wait that keeps the consumers down.
        let mut o = obs(Strategy::ScaleDown);
        o.error = Some(ErrorClass::OffsetsUnstable);
        o.timed_out = true;
        assert_eq!(
            next(Phase::Applying, &o),
            (Phase::Restoring, ResetAction::Fail(FailReason::Timeout))
        );
    }

    #[test]
    fn the_unstable_offset_wait_backs_off_to_two_seconds_and_ends_at_its_bound() {
        let bound = 60_000;
        assert_eq!(unstable_wait(0, 0, bound), UnstableWait::Within { retry_in_ms: 250 });
        assert_eq!(
            unstable_wait(0, 1_000, bound),
            UnstableWait::Within { retry_in_ms: 500 }
        );
        assert_eq!(
            unstable_wait(0, 30_000, bound),
            UnstableWait::Within { retry_in_ms: 2_000 }
        );
        // Never sleeps past the bound (plus one look just after it).
        assert_eq!(
            unstable_wait(0, 59_900, bound),
            UnstableWait::Within { retry_in_ms: 150 }
        );
        assert_eq!(unstable_wait(0, 60_000, bound), UnstableWait::Over);
        assert_eq!(unstable_wait(0, 3_600_000, bound), UnstableWait::Over);
        // A clock that went backwards counts as no time waited.
        assert_eq!(
            unstable_wait(5_000, 0, bound),
            UnstableWait::Within { retry_in_ms: 250 }
        );
        assert_eq!(unstable_wait(0, 0, 0), UnstableWait::Over);
    }
}
