//! The OffsetReset state machine: one step per reconcile, from the phase recorded in status and what is
//! observed now. The caller persists the next phase (and anything the step recorded) before or after the
//! action as each action's comment says, so that a crash at any point resumes safely and nothing is done twice.

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
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::GroupActive => "GroupActive",
            FailReason::HpaConflict => "HorizontalPodAutoscalerConflict",
            FailReason::Timeout => "TimedOut",
            FailReason::GroupBecameActive => "GroupBecameActive",
        }
    }
}

/// What the reconciler observed this time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetObservation {
    pub strategy: Strategy,
    pub dry_run: bool,
    /// No members: Empty or Dead.
    pub group_inactive: bool,
    /// Members with a `group.instance.id` while the workload is at zero: they hold the group until their
    /// session times out unless removed.
    pub static_members: bool,
    /// The group's committed offsets already equal the plan's targets.
    pub plan_applied: bool,
    /// A HorizontalPodAutoscaler not managed by KEDA targets the workload.
    pub hpa_conflict: bool,
    /// The current phase has lasted longer than the reset's timeout.
    pub timed_out: bool,
    /// A failure recorded earlier, while the workload still had to be restored.
    pub pending_failure: Option<FailReason>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetAction {
    None,
    /// Resolve the plan and record it with the offsets before the reset; then persist `Planned`.
    MakePlan,
    /// Record the workload's replica count (and KEDA's pause annotation) in status, persist `ScalingDown`,
    /// and only then touch the workload.
    RecordWorkload,
    /// Pause KEDA and scale the workload to zero (both idempotent); then persist the next phase.
    ScaleToZero,
    /// Remove static members from the group (LeaveGroup); stay in the phase.
    RemoveStaticMembers,
    /// Commit the plan's offsets; then persist the next phase. Skipped when they are already committed.
    Commit,
    /// Scale the workload back to the recorded count and unpause KEDA (idempotent); then persist the end.
    RestoreWorkload,
    /// Record the failure and persist the next phase.
    Fail(FailReason),
}

/// The next phase and the action that leads there.
pub fn next(phase: Phase, o: &ResetObservation) -> (Phase, ResetAction) {
    let scaled = o.strategy == Strategy::ScaleDown;
    match phase {
        Phase::Pending => (Phase::Planned, ResetAction::MakePlan),
        Phase::Planned if o.dry_run => (Phase::Planned, ResetAction::None),
        Phase::Planned => match o.strategy {
            Strategy::RequireInactive if o.group_inactive => (Phase::Applying, ResetAction::None),
            Strategy::RequireInactive => (Phase::Failed, ResetAction::Fail(FailReason::GroupActive)),
            Strategy::ScaleDown if o.hpa_conflict => (Phase::Failed, ResetAction::Fail(FailReason::HpaConflict)),
            Strategy::ScaleDown => (Phase::ScalingDown, ResetAction::RecordWorkload),
        },
        Phase::ScalingDown => (Phase::WaitingForInactive, ResetAction::ScaleToZero),
        Phase::WaitingForInactive if o.group_inactive => (Phase::Applying, ResetAction::None),
        Phase::WaitingForInactive if o.timed_out => (Phase::Restoring, ResetAction::Fail(FailReason::Timeout)),
        Phase::WaitingForInactive if o.static_members => (Phase::WaitingForInactive, ResetAction::RemoveStaticMembers),
        Phase::WaitingForInactive => (Phase::WaitingForInactive, ResetAction::None),
        Phase::Applying => {
            let after = if scaled { Phase::Restoring } else { Phase::Succeeded };
            if o.plan_applied {
                (after, ResetAction::None)
            } else if o.group_inactive {
                (after, ResetAction::Commit)
            } else if scaled {
                (Phase::Restoring, ResetAction::Fail(FailReason::GroupBecameActive))
            } else {
                (Phase::Failed, ResetAction::Fail(FailReason::GroupBecameActive))
            }
        }
        Phase::Restoring => {
            let end = if o.pending_failure.is_some() {
                Phase::Failed
            } else {
                Phase::Succeeded
            };
            (end, ResetAction::RestoreWorkload)
        }
        Phase::Succeeded | Phase::Failed => (phase, ResetAction::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(strategy: Strategy) -> ResetObservation {
        ResetObservation {
            strategy,
            dry_run: false,
            group_inactive: true,
            static_members: false,
            plan_applied: false,
            hpa_conflict: false,
            timed_out: false,
            pending_failure: None,
        }
    }

    /// Runs the machine from Pending with a fixed observation until it stops moving.
    fn run(o: &ResetObservation) -> Vec<(Phase, ResetAction)> {
        let mut phase = Phase::Pending;
        let mut steps = Vec::new();
        for _ in 0..10 {
            let (next_phase, action) = next(phase, o);
            steps.push((next_phase, action));
            if next_phase == phase && action == ResetAction::None {
                break;
            }
            if matches!(next_phase, Phase::Succeeded | Phase::Failed) {
                break;
            }
            phase = next_phase;
        }
        steps
    }

    #[test]
    fn require_inactive_on_an_empty_group_commits_once_and_succeeds() {
        let steps = run(&obs(Strategy::RequireInactive));
        assert_eq!(
            steps,
            vec![
                (Phase::Planned, ResetAction::MakePlan),
                (Phase::Applying, ResetAction::None),
                (Phase::Succeeded, ResetAction::Commit),
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
    fn a_dry_run_stops_at_planned() {
        let mut o = obs(Strategy::ScaleDown);
        o.dry_run = true;
        assert_eq!(next(Phase::Planned, &o), (Phase::Planned, ResetAction::None));
    }

    #[test]
    fn scale_down_records_the_workload_before_scaling_and_restores_it() {
        let steps = run(&obs(Strategy::ScaleDown));
        assert_eq!(
            steps,
            vec![
                (Phase::Planned, ResetAction::MakePlan),
                (Phase::ScalingDown, ResetAction::RecordWorkload),
                (Phase::WaitingForInactive, ResetAction::ScaleToZero),
                (Phase::Applying, ResetAction::None),
                (Phase::Restoring, ResetAction::Commit),
                (Phase::Succeeded, ResetAction::RestoreWorkload),
            ]
        );
    }

    #[test]
    fn an_hpa_on_the_workload_is_refused_before_anything_is_touched() {
        let mut o = obs(Strategy::ScaleDown);
        o.hpa_conflict = true;
        assert_eq!(
            next(Phase::Planned, &o),
            (Phase::Failed, ResetAction::Fail(FailReason::HpaConflict))
        );
    }

    #[test]
    fn waiting_removes_static_members_and_a_timeout_restores_the_workload_then_fails() {
        let mut o = obs(Strategy::ScaleDown);
        o.group_inactive = false;
        o.static_members = true;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::WaitingForInactive, ResetAction::RemoveStaticMembers)
        );
        o.static_members = false;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::WaitingForInactive, ResetAction::None)
        );
        o.timed_out = true;
        assert_eq!(
            next(Phase::WaitingForInactive, &o),
            (Phase::Restoring, ResetAction::Fail(FailReason::Timeout))
        );
        o.pending_failure = Some(FailReason::Timeout);
        assert_eq!(
            next(Phase::Restoring, &o),
            (Phase::Failed, ResetAction::RestoreWorkload)
        );
    }

    #[test]
    fn resuming_applying_after_a_crash_does_not_commit_twice() {
        let mut o = obs(Strategy::ScaleDown);
        o.plan_applied = true;
        assert_eq!(next(Phase::Applying, &o), (Phase::Restoring, ResetAction::None));
        o.group_inactive = false;
        assert_eq!(next(Phase::Applying, &o), (Phase::Restoring, ResetAction::None));
    }

    #[test]
    fn a_group_that_became_active_before_the_commit_fails_and_restores() {
        let mut o = obs(Strategy::ScaleDown);
        o.group_inactive = false;
        assert_eq!(
            next(Phase::Applying, &o),
            (Phase::Restoring, ResetAction::Fail(FailReason::GroupBecameActive))
        );
        let mut o = obs(Strategy::RequireInactive);
        o.group_inactive = false;
        assert_eq!(
            next(Phase::Applying, &o),
            (Phase::Failed, ResetAction::Fail(FailReason::GroupBecameActive))
        );
    }

    #[test]
    fn finished_resets_never_act_again() {
        for phase in [Phase::Succeeded, Phase::Failed] {
            for inactive in [true, false] {
                let mut o = obs(Strategy::ScaleDown);
                o.group_inactive = inactive;
                assert_eq!(next(phase, &o), (phase, ResetAction::None));
            }
        }
    }
}
