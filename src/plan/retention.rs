//! The retention guard: keeps an empty group's committed offsets from expiring under the broker's
//! `offsets.retention.minutes`. What protects them depends on the group (measured on Kafka 4.4):
//! re-committing the same offsets restarts the expiry clock for groups that never had members and for
//! consumer-protocol (KIP-848) groups, but not for classic groups that had members, whose clock runs from the
//! moment they became empty; for those the saved offsets are restored as soon as the broker drops them.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    Recommit,
    RestoreOnExpiry,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// Only admin commits, never a member (no protocol type).
    NeverHadMembers,
    /// A classic-protocol group that had members.
    ClassicWithHistory,
    /// A consumer-protocol (KIP-848) group.
    ConsumerProtocol,
}

/// What the guard knows at one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionObservation {
    pub kind: GroupKind,
    pub has_members: bool,
    /// Whether the broker currently holds committed offsets for the group.
    pub offsets_present: bool,
    /// Whether the guard has offsets saved from an earlier observation.
    pub saved_offsets: bool,
    /// When the group was first seen empty (kept in status), if it was.
    pub empty_since_ms: Option<i64>,
    /// When the guard last re-committed or restored (kept in status).
    pub last_protected_ms: Option<i64>,
    pub retention_ms: i64,
    pub warn_before_ms: i64,
    pub now_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionAction {
    Nothing,
    /// Commit the saved offsets again (they are still there): restarts the clock.
    Recommit,
    /// Commit the saved offsets: the broker dropped them.
    Restore,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionDecision {
    pub protection: Option<Protection>,
    pub empty_since_ms: Option<i64>,
    /// When the broker would drop the offsets without protection.
    pub expires_at_ms: Option<i64>,
    /// Within `warn_before` of `expires_at` (and not protected by a re-commit).
    pub expiring_soon: bool,
    pub action: RetentionAction,
}

pub fn plan_retention(o: &RetentionObservation) -> RetentionDecision {
    if o.has_members {
        // Members commit (or at least hold the group): nothing expires while they are there.
        return RetentionDecision {
            protection: None,
            empty_since_ms: None,
            expires_at_ms: None,
            expiring_soon: false,
            action: RetentionAction::Nothing,
        };
    }
    let empty_since = o.empty_since_ms.unwrap_or(o.now_ms);
    let protection = match o.kind {
        GroupKind::ClassicWithHistory => Protection::RestoreOnExpiry,
        GroupKind::NeverHadMembers | GroupKind::ConsumerProtocol => Protection::Recommit,
    };
    // The clock runs from the group becoming empty, or (where re-commits restart it) from the last re-commit.
    let clock_start = match protection {
        Protection::Recommit => o.last_protected_ms.map_or(empty_since, |p| p.max(empty_since)),
        Protection::RestoreOnExpiry => empty_since,
    };
    let expires_at = clock_start.saturating_add(o.retention_ms);
    let action = if !o.offsets_present && o.saved_offsets {
        // Whatever the protection, offsets that are gone are put back before a consumer can start from its
        // auto.offset.reset policy.
        RetentionAction::Restore
    } else if protection == Protection::Recommit && o.offsets_present && o.now_ms >= clock_start + o.retention_ms / 2 {
        // Halfway through the retention: a re-commit keeps a wide margin against missed reconciles.
        RetentionAction::Recommit
    } else {
        RetentionAction::Nothing
    };
    let expiring_soon = action == RetentionAction::Nothing
        && o.offsets_present
        && o.now_ms >= expires_at.saturating_sub(o.warn_before_ms);
    RetentionDecision {
        protection: Some(protection),
        empty_since_ms: Some(empty_since),
        expires_at_ms: Some(expires_at),
        expiring_soon,
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn empty(kind: GroupKind) -> RetentionObservation {
        RetentionObservation {
            kind,
            has_members: false,
            offsets_present: true,
            saved_offsets: true,
            empty_since_ms: Some(0),
            last_protected_ms: None,
            retention_ms: 60 * MIN,
            warn_before_ms: 10 * MIN,
            now_ms: MIN,
        }
    }

    #[test]
    fn a_group_with_members_needs_no_protection() {
        let mut o = empty(GroupKind::ClassicWithHistory);
        o.has_members = true;
        let d = plan_retention(&o);
        assert_eq!(
            (d.protection, d.action, d.empty_since_ms),
            (None, RetentionAction::Nothing, None)
        );
    }

    #[test]
    fn the_empty_clock_starts_at_the_first_empty_observation() {
        let mut o = empty(GroupKind::ClassicWithHistory);
        o.empty_since_ms = None;
        o.now_ms = 5 * MIN;
        let d = plan_retention(&o);
        assert_eq!(d.empty_since_ms, Some(5 * MIN));
        assert_eq!(d.expires_at_ms, Some(65 * MIN));
    }

    #[test]
    fn classic_groups_that_had_members_are_restored_not_recommitted() {
        let mut o = empty(GroupKind::ClassicWithHistory);
        o.now_ms = 40 * MIN;
        let d = plan_retention(&o);
        assert_eq!(d.protection, Some(Protection::RestoreOnExpiry));
        assert_eq!(
            d.action,
            RetentionAction::Nothing,
            "a re-commit would not restart this clock"
        );
    }

    #[test]
    fn classic_groups_warn_before_expiry_and_restore_after_it() {
        let mut o = empty(GroupKind::ClassicWithHistory);
        o.now_ms = 55 * MIN;
        assert!(plan_retention(&o).expiring_soon);
        o.now_ms = 61 * MIN;
        o.offsets_present = false;
        let d = plan_retention(&o);
        assert_eq!(d.action, RetentionAction::Restore);
        assert!(!d.expiring_soon);
    }

    #[test]
    fn recommit_groups_are_recommitted_halfway_and_the_clock_restarts() {
        for kind in [GroupKind::NeverHadMembers, GroupKind::ConsumerProtocol] {
            let mut o = empty(kind);
            o.now_ms = 29 * MIN;
            assert_eq!(plan_retention(&o).action, RetentionAction::Nothing, "{kind:?}");
            o.now_ms = 30 * MIN;
            assert_eq!(plan_retention(&o).action, RetentionAction::Recommit, "{kind:?}");
            o.last_protected_ms = Some(30 * MIN);
            o.now_ms = 31 * MIN;
            let d = plan_retention(&o);
            assert_eq!(d.action, RetentionAction::Nothing, "{kind:?}");
            assert_eq!(d.expires_at_ms, Some(90 * MIN), "{kind:?}");
        }
    }

    #[test]
    fn vanished_offsets_are_restored_whatever_the_protection() {
        let mut o = empty(GroupKind::ConsumerProtocol);
        o.offsets_present = false;
        assert_eq!(plan_retention(&o).action, RetentionAction::Restore);
    }

    #[test]
    fn nothing_is_restored_without_saved_offsets() {
        let mut o = empty(GroupKind::ClassicWithHistory);
        o.offsets_present = false;
        o.saved_offsets = false;
        o.now_ms = 70 * MIN;
        assert_eq!(plan_retention(&o).action, RetentionAction::Nothing);
    }
}
