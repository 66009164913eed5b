//! What each kind of Kafka group allows the ConsumerGroup reconciler to do: the one place it tells group types
//! apart (`spec.type` declared, or what Kafka reports).

use crate::api::DeclaredGroupType;
use crate::kafka::{GroupDescription, GroupType};

/// What the reconciler does for a group of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeRules {
    /// `offsetInit` commits starting offsets (OffsetCommit). A share group has no committed offsets: its
    /// `offsetInit` is the group config `share.auto.offset.reset`.
    pub commits_initial_offsets: bool,
    /// Its offsets expire with the broker's `offsets.retention.minutes` (what the retention guard protects).
    /// A share group's start offsets live with the share coordinator and do not expire.
    pub offsets_expire: bool,
    /// More consumers than partitions sit idle. A share group's consumers share partitions: replicas are
    /// capped by `maxReplicas` only.
    pub replicas_capped_by_partitions: bool,
}

/// The rules for a group of type `t`.
pub fn rules(t: &GroupType) -> TypeRules {
    match t {
        GroupType::Share => TypeRules {
            commits_initial_offsets: false,
            offsets_expire: false,
            replicas_capped_by_partitions: false,
        },
        GroupType::Classic | GroupType::Consumer | GroupType::Streams | GroupType::Unknown(_) => TypeRules {
            commits_initial_offsets: true,
            offsets_expire: true,
            replicas_capped_by_partitions: true,
        },
    }
}

/// Whether Kafka's group under this id is of the declared type; `None` when it matches, nothing is declared, or
/// the group does not exist (yet). `consumer` covers both consumer protocols (classic and KIP-848).
pub fn mismatch(declared: Option<DeclaredGroupType>, described: &GroupDescription) -> Option<String> {
    let declared = declared?;
    if !described.exists() {
        return None;
    }
    let matches = match declared {
        DeclaredGroupType::Consumer => matches!(described.group_type, GroupType::Classic | GroupType::Consumer),
        DeclaredGroupType::Share => described.group_type == GroupType::Share,
        DeclaredGroupType::Streams => described.group_type == GroupType::Streams,
    };
    (!matches).then(|| {
        format!(
            "spec.type is {}, but Kafka holds a {} group under the id {}: nothing is done to it until the two agree \
             (fix spec.type, or stop the other group's clients and delete it)",
            declared.as_str(),
            described.group_type,
            described.group_id
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::GroupState;

    fn described(t: GroupType, state: GroupState) -> GroupDescription {
        GroupDescription {
            group_id: "g".into(),
            group_type: t,
            state,
            protocol_type: String::new(),
            assignor: String::new(),
            coordinator: 1,
            members: Vec::new(),
            streams: None,
        }
    }

    #[test]
    fn only_share_groups_share_partitions_and_keep_offsets_outside_the_offsets_topic() {
        let share = rules(&GroupType::Share);
        assert!(!share.commits_initial_offsets && !share.offsets_expire && !share.replicas_capped_by_partitions);
        for t in [GroupType::Classic, GroupType::Consumer, GroupType::Streams] {
            let r = rules(&t);
            assert!(
                r.commits_initial_offsets && r.offsets_expire && r.replicas_capped_by_partitions,
                "{t}"
            );
        }
    }

    #[test]
    fn a_declared_type_must_match_an_existing_group() {
        use DeclaredGroupType::*;
        let empty = GroupState::Empty;
        assert_eq!(mismatch(None, &described(GroupType::Share, empty.clone())), None);
        assert_eq!(
            mismatch(Some(Consumer), &described(GroupType::Classic, empty.clone())),
            None
        );
        assert_eq!(
            mismatch(Some(Consumer), &described(GroupType::Consumer, empty.clone())),
            None
        );
        assert_eq!(mismatch(Some(Share), &described(GroupType::Share, empty.clone())), None);
        assert_eq!(
            mismatch(Some(Streams), &described(GroupType::Streams, empty.clone())),
            None
        );
        // A group that does not exist yet matches anything: the declared type says what it will be.
        assert_eq!(
            mismatch(Some(Share), &described(GroupType::Classic, GroupState::Dead)),
            None
        );
        let m = mismatch(Some(Share), &described(GroupType::Consumer, empty)).expect("a mismatch");
        assert!(
            m.contains("spec.type is share, but Kafka holds a consumer group"),
            "{m}"
        );
        assert!(mismatch(Some(Consumer), &described(GroupType::Streams, GroupState::Stable)).is_some());
    }
}
