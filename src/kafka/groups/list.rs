//! ListGroups: every group of the cluster, with its type and state.

use super::state::{GroupState, GroupType};
use crate::kafka::client::KafkaClient;
use crate::kafka::error::{KafkaError, check};
use crate::wire::Api;
use futures_util::future::join_all;
use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::protocol::{Request, StrBytes};

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups of either protocol, `connect`, … (empty for some groups).
    pub protocol_type: String,
    /// `None` when the broker is older than ListGroups v4.
    pub state: Option<GroupState>,
    /// `Classic`, `Consumer`, `Share`, … (`None` when the broker is older than ListGroups v5).
    pub group_type: Option<GroupType>,
}

impl GroupListing {
    /// Decodes one group of a ListGroups answer (an empty state or type: the broker's version has none).
    fn from_listed(g: ListedGroup) -> GroupListing {
        GroupListing {
            group_id: g.group_id.0.to_string(),
            protocol_type: g.protocol_type.to_string(),
            state: (!g.group_state.is_empty()).then(|| GroupState::from_kafka(&g.group_state)),
            group_type: (!g.group_type.is_empty()).then(|| GroupType::from_kafka(&g.group_type)),
        }
    }
}

/// Filters for `list_groups`, applied by the broker where it supports them (ListGroups v4+ states, v5+
/// types) and by the client otherwise.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    /// e.g. `[Empty, Stable]`; none for every state.
    pub states: Vec<GroupState>,
    /// e.g. `[Classic, Consumer]`; none for every type.
    pub types: Vec<GroupType>,
}

impl GroupFilter {
    /// Whether `listing` passes the filter; a listing without a state (type) passes any state (type)
    /// filter, as the broker that sent it could not filter on it either. Names compare case-insensitively,
    /// as Kafka compares them.
    pub fn accepts(&self, listing: &GroupListing) -> bool {
        let state_ok = match &listing.state {
            Some(state) if !self.states.is_empty() => self
                .states
                .iter()
                .any(|s| s.as_str().eq_ignore_ascii_case(state.as_str())),
            _ => true,
        };
        let type_ok = match &listing.group_type {
            Some(group_type) if !self.types.is_empty() => self
                .types
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case(group_type.as_str())),
            _ => true,
        };
        state_ok && type_ok
    }
}

impl KafkaClient {
    /// Every group of the cluster (ListGroups to every broker, in parallel), filtered by state and type.
    pub async fn list_groups(&self, filter: &GroupFilter) -> Result<Vec<GroupListing>, KafkaError> {
        // The cached broker list will do: a broker it misses is found on the next refresh.
        let metadata = self.metadata().await?;
        let api = Api(ListGroupsRequest::KEY);
        let calls = metadata.brokers.keys().map(|node| {
            let node = *node;
            self.with_retries("ListGroups", move || async move {
                let conn = self.broker(node).await?;
                let version = conn.version_of::<ListGroupsRequest>()?;
                let mut request = ListGroupsRequest::default();
                if version >= 4 {
                    request.states_filter = filter
                        .states
                        .iter()
                        .map(|s| StrBytes::from_string(s.as_str().to_owned()))
                        .collect();
                }
                if version >= 5 {
                    request.types_filter = filter
                        .types
                        .iter()
                        .map(|t| StrBytes::from_string(t.as_str().to_owned()))
                        .collect();
                }
                let response = conn.send_version(&request, version).await?;
                check(response.error_code, conn.addr(), api, String::new)?;
                Ok(response.groups)
            })
        });
        let mut listings = Vec::new();
        for result in join_all(calls).await {
            // Filter again on the client: brokers older than v4/v5 ignore the filters.
            listings.extend(
                result?
                    .into_iter()
                    .map(GroupListing::from_listed)
                    .filter(|l| filter.accepts(l)),
            );
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(listings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{GroupId, ListGroupsResponse};

    fn listed(id: &str, protocol_type: &str, state: &str, group_type: &str) -> ListedGroup {
        ListedGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(id.to_owned())))
            .with_protocol_type(StrBytes::from_string(protocol_type.to_owned()))
            .with_group_state(StrBytes::from_string(state.to_owned()))
            .with_group_type(StrBytes::from_string(group_type.to_owned()))
    }

    fn decode(response: ListGroupsResponse) -> Vec<GroupListing> {
        response.groups.into_iter().map(GroupListing::from_listed).collect()
    }

    #[test]
    fn list_groups_v5_decodes_types_and_states() {
        let response = ListGroupsResponse::default().with_groups(vec![
            listed("a", "consumer", "Stable", "classic"),
            listed("b", "consumer", "Reconciling", "consumer"),
            listed("c", "", "Empty", "share"),
            listed("d", "streams", "NotReady", "streams"),
            listed("e", "consumer", "CompletingRebalance", "classic"),
        ]);
        let got: Vec<(String, Option<GroupState>, Option<GroupType>)> = decode(response)
            .into_iter()
            .map(|l| (l.group_id, l.state, l.group_type))
            .collect();
        let want = |id: &str, state: GroupState, group_type: GroupType| (id.to_owned(), Some(state), Some(group_type));
        assert_eq!(
            got,
            [
                want("a", GroupState::Stable, GroupType::Classic),
                want("b", GroupState::Reconciling, GroupType::Consumer),
                want("c", GroupState::Empty, GroupType::Share),
                want("d", GroupState::NotReady, GroupType::Streams),
                want("e", GroupState::CompletingRebalance, GroupType::Classic),
            ]
        );
    }

    #[test]
    fn older_versions_leave_state_and_type_out_and_unknown_names_are_kept() {
        let listings = decode(ListGroupsResponse::default().with_groups(vec![
            listed("old", "consumer", "", ""),
            listed("new", "consumer", "Hibernating", "quorum"),
        ]));
        assert_eq!(listings[0].protocol_type, "consumer");
        assert_eq!(
            (listings[0].state.clone(), listings[0].group_type.clone()),
            (None, None)
        );
        assert_eq!(listings[1].state, Some(GroupState::Unknown("Hibernating".to_owned())));
        assert_eq!(listings[1].group_type, Some(GroupType::Unknown("quorum".to_owned())));
    }

    #[test]
    fn the_client_side_filter_passes_what_the_broker_could_not_filter() {
        let listing =
            |state: &str, group_type: &str| GroupListing::from_listed(listed("g", "consumer", state, group_type));
        let stable_consumers = GroupFilter {
            states: vec![GroupState::Stable],
            types: vec![GroupType::Consumer],
        };
        assert!(stable_consumers.accepts(&listing("Stable", "consumer")));
        assert!(!stable_consumers.accepts(&listing("Empty", "consumer")));
        assert!(!stable_consumers.accepts(&listing("Stable", "classic")));
        // A broker before ListGroups v4 (v5) reports no state (type): nothing to filter on.
        assert!(stable_consumers.accepts(&listing("", "")));
        assert!(stable_consumers.accepts(&listing("Stable", "")));
        assert!(GroupFilter::default().accepts(&listing("Dead", "share")));
        // Unknown names compare case-insensitively, as the broker compares them.
        let odd = GroupFilter {
            states: vec![GroupState::from_kafka("hibernating")],
            types: Vec::new(),
        };
        assert!(odd.accepts(&listing("Hibernating", "classic")));
    }
}
