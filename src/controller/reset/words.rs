//! What an OffsetReset tells its user: failure messages, wait reasons and Event notes, in one place.

use super::act::Run;
use super::observe::{Observed, moved_partitions, timeout_seconds};
use crate::plan::reset_phase::{FailReason, Phase, WaitReason};

/// The workload in words (`Deployment consumers`).
pub(super) fn workload(run: &Run<'_>) -> String {
    run.reset
        .spec
        .scale_target_ref
        .as_ref()
        .map(|t| format!("{} {}", t.kind, t.name))
        .unwrap_or_else(|| "the workload".to_owned())
}

fn group(run: &Run<'_>) -> String {
    run.status.group_id.clone().unwrap_or_else(|| "the group".to_owned())
}

pub(super) fn failure(reason: FailReason, run: &Run<'_>, observed: &Observed, phase: Phase) -> String {
    let group = group(run);
    let members = observed
        .kafka
        .as_ref()
        .map(|k| (k.description.members.len(), k.description.state.to_string()));
    let detail = observed.error_text.clone().unwrap_or_default();
    match reason {
        FailReason::GroupActive => {
            let (n, state) = members.unwrap_or((0, "unknown".to_owned()));
            format!(
                "group {group} has {n} member(s) ({state}): stop its consumers, or use strategy ScaleDown with scaleTargetRef"
            )
        }
        FailReason::HpaConflict => format!(
            "a HorizontalPodAutoscaler targets {} and would scale it back up during the reset: remove it, or let KEDA manage the workload",
            workload(run)
        ),
        FailReason::Timeout => {
            let still = match members {
                Some((n, _)) if observed.error_text.is_none() => format!("still had {n} member(s)"),
                _ => format!("could not be observed ({detail})"),
            };
            format!(
                "group {group} {still} after {}s in {phase:?}; the workload was restored",
                timeout_seconds(run)
            )
        }
        FailReason::GroupBecameActive => {
            format!("group {group} got members before the offsets were committed; nothing was reset")
        }
        FailReason::HiddenCommitters => {
            let moved = observed
                .kafka
                .as_ref()
                .map(|view| moved_partitions(run, view).join(", "))
                .unwrap_or_default();
            format!(
                "the committed offsets of group {group} moved while it had no members (partitions {moved}): consumers that use assign() instead of subscribe() commit without joining the group and would overwrite the reset; stop them, or set spec.force: true to reset anyway. Nothing was committed"
            )
        }
        FailReason::GroupNotFound | FailReason::ClusterNotFound | FailReason::InvalidPlan => detail,
        FailReason::UnstableOffsetCommit => format!(
            "{detail}; waited {} s for it to commit or abort (--unstable-offset-wait {} s). Nothing was planned from the pending offsets and nothing was committed",
            unstable_waited_s(run),
            run.ctx.config.unstable_offset_wait.as_secs()
        ),
        FailReason::WorkloadNotFound => format!("{} cannot be scaled: {detail}", workload(run)),
        FailReason::ClaimLost => format!(
            "OffsetReset {} took over {} while this reset held it; nothing more was done here{}",
            observed.claim_holder.clone().unwrap_or_default(),
            workload(run),
            run.status
                .workload
                .as_ref()
                .filter(|_| phase.may_have_touched_the_workload())
                .map(|w| format!(
                    "; if it is not restored, scale it back to {} replicas by hand",
                    w.original_replicas
                ))
                .unwrap_or_default()
        ),
        FailReason::Deleted => format!("the OffsetReset was deleted while {phase:?}"),
    }
}

pub(super) fn waiting(reason: WaitReason, run: &Run<'_>, observed: &Observed) -> String {
    match reason {
        WaitReason::TransientError => format!(
            "retrying: {}",
            observed
                .error_text
                .clone()
                .unwrap_or_else(|| "a transient error".to_owned())
        ),
        WaitReason::WorkloadClaimed => format!(
            "{} is held by OffsetReset {}: this reset starts when that one has finished",
            workload(run),
            observed.claim_holder.clone().unwrap_or_default()
        ),
        WaitReason::GroupHasMembers => {
            let n = observed
                .kafka
                .as_ref()
                .map(|k| k.description.members.len())
                .unwrap_or(0);
            format!("waiting for group {} to have no members ({n} left)", group(run))
        }
        WaitReason::UnstableOffsetCommit => format!(
            "{}; waiting for that transaction to end before planning ({} s of --unstable-offset-wait {} s so far)",
            observed
                .error_text
                .clone()
                .unwrap_or_else(|| format!("group {} has a pending transactional offset commit", group(run))),
            unstable_waited_s(run),
            run.ctx.config.unstable_offset_wait.as_secs()
        ),
        WaitReason::QuietWindow => format!(
            "plan fixed; checking for {} s that no hidden consumer commits to group {} before committing",
            super::QUIET_WINDOW.as_secs(),
            group(run)
        ),
    }
}

/// Whole seconds since the reset first found its group's offsets unstable (0 when no wait is under way).
fn unstable_waited_s(run: &Run<'_>) -> i64 {
    run.status.unstable_offsets_since.as_ref().map_or(0, |since| {
        (k8s_openapi::jiff::Timestamp::now().as_millisecond() - crate::controller::status::ms_from_time(since)).max(0)
            / 1000
    })
}
