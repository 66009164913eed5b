//! The group types and states Kafka reports (ListGroups, DescribeGroups, ConsumerGroupDescribe), by their
//! names on the wire. A name this client does not know is kept as it came, in `Unknown`.

use std::fmt;

/// What kind of group the coordinator runs (ListGroups v5+ `GroupType`, KIP-848).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// JoinGroup/SyncGroup; states Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    Classic,
    /// KIP-848 (ConsumerGroupHeartbeat); states Empty, Assigning, Reconciling, Stable, Dead.
    Consumer,
    /// KIP-932 share group; states Empty, Stable, Dead.
    Share,
    /// KIP-1071 streams group.
    Streams,
    /// A type this client does not know, as the broker named it.
    Unknown(String),
}

impl GroupType {
    /// Parses Kafka's name of a group type (case-insensitive, as Kafka parses it).
    pub fn from_kafka(name: &str) -> GroupType {
        const KNOWN: [GroupType; 4] = [
            GroupType::Classic,
            GroupType::Consumer,
            GroupType::Share,
            GroupType::Streams,
        ];
        KNOWN
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| GroupType::Unknown(name.to_owned()))
    }

    /// Kafka's name: `classic`, `consumer`, `share`, `streams`.
    pub fn as_str(&self) -> &str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
            GroupType::Share => "share",
            GroupType::Streams => "streams",
            GroupType::Unknown(name) => name,
        }
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for GroupType {
    fn from(name: &str) -> GroupType {
        GroupType::from_kafka(name)
    }
}

/// A group's state as its coordinator reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (a group Kafka keeps for its committed offsets, or one only admins commit to).
    Empty,
    /// Classic: members are (re)joining.
    PreparingRebalance,
    /// Classic: waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Gone, or never there: Kafka describes an unknown group as Dead with no members.
    Dead,
    /// KIP-848: the coordinator is computing a new assignment.
    Assigning,
    /// KIP-848: members are converging to a new assignment.
    Reconciling,
    /// Share group whose state is still loading.
    NotReady,
    /// A state this client does not know, as the broker named it.
    Unknown(String),
}

impl GroupState {
    /// Parses Kafka's name of a group state (case-insensitive, as Kafka parses it).
    pub fn from_kafka(name: &str) -> GroupState {
        const KNOWN: [GroupState; 8] = [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
            GroupState::Assigning,
            GroupState::Reconciling,
            GroupState::NotReady,
        ];
        KNOWN
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| GroupState::Unknown(name.to_owned()))
    }

    /// Kafka's name: `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`, `Dead`, `Assigning`,
    /// `Reconciling`, `NotReady`.
    pub fn as_str(&self) -> &str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::NotReady => "NotReady",
            GroupState::Unknown(name) => name,
        }
    }

    /// Empty or Dead: states in which a group has no members that could commit.
    pub fn is_empty_or_dead(&self) -> bool {
        matches!(self, GroupState::Empty | GroupState::Dead)
    }

    /// Whether members are being (re)assigned partitions, under either protocol.
    pub fn is_rebalancing(&self) -> bool {
        matches!(
            self,
            GroupState::PreparingRebalance
                | GroupState::CompletingRebalance
                | GroupState::Assigning
                | GroupState::Reconciling
        )
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for GroupState {
    fn from(name: &str) -> GroupState {
        GroupState::from_kafka(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips_through_its_kafka_name() {
        for t in [
            GroupType::Classic,
            GroupType::Consumer,
            GroupType::Share,
            GroupType::Streams,
        ] {
            assert_eq!(GroupType::from_kafka(t.as_str()), t);
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(GroupType::Consumer.as_str(), "consumer");
        assert_eq!(GroupType::from_kafka("CLASSIC"), GroupType::Classic);
    }

    #[test]
    fn an_unknown_type_is_kept_as_the_broker_named_it() {
        let t = GroupType::from_kafka("Quorum");
        assert_eq!(t, GroupType::Unknown("Quorum".to_owned()));
        assert_eq!(t.as_str(), "Quorum");
        assert_eq!(GroupType::from_kafka(""), GroupType::Unknown(String::new()));
    }

    #[test]
    fn every_known_state_round_trips_through_its_kafka_name() {
        let names = [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
            "Dead",
            "Assigning",
            "Reconciling",
            "NotReady",
        ];
        for name in names {
            let state = GroupState::from_kafka(name);
            assert!(!matches!(state, GroupState::Unknown(_)), "{name}");
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
        }
        assert_eq!(GroupState::from_kafka("stable"), GroupState::Stable);
        assert_eq!(GroupState::from("PREPARINGREBALANCE"), GroupState::PreparingRebalance);
    }

    #[test]
    fn an_unknown_state_is_kept_as_the_broker_named_it() {
        let state = GroupState::from_kafka("Hibernating");
        assert_eq!(state, GroupState::Unknown("Hibernating".to_owned()));
        assert_eq!(state.as_str(), "Hibernating");
        assert!(!state.is_empty_or_dead());
        assert!(!state.is_rebalancing());
    }

    #[test]
    fn predicates_cover_both_protocols() {
        let rebalancing: Vec<GroupState> = ["PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"]
            .map(GroupState::from_kafka)
            .to_vec();
        for s in &rebalancing {
            assert!(s.is_rebalancing(), "{s}");
            assert!(!s.is_empty_or_dead(), "{s}");
        }
        for s in [
            GroupState::Stable,
            GroupState::Empty,
            GroupState::Dead,
            GroupState::NotReady,
        ] {
            assert!(!s.is_rebalancing(), "{s}");
        }
        assert!(GroupState::Empty.is_empty_or_dead());
        assert!(GroupState::Dead.is_empty_or_dead());
        assert!(!GroupState::Stable.is_empty_or_dead());
    }
}
