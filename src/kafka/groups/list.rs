//! ListGroups: every group of the cluster, with its type and state.

use crate::kafka::client::KafkaClient;
use crate::kafka::error::{KafkaError, check};
use crate::wire::Api;
use futures_util::future::join_all;
use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::protocol::{Request, StrBytes};

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups of either protocol, `connect`, … (empty for some groups).
    pub protocol_type: String,
    /// Empty when the broker is older than ListGroups v4.
    pub state: String,
    /// `classic`, `consumer`, `share`, … (empty when the broker is older than ListGroups v5).
    pub group_type: String,
}

/// Filters for `list_groups`, applied by the broker where it supports them (ListGroups v4+ states, v5+
/// types) and by the client otherwise.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    /// e.g. `["Empty", "Stable"]`; case-insensitive.
    pub states: Vec<String>,
    /// e.g. `["classic", "consumer"]`; case-insensitive.
    pub types: Vec<String>,
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
                    request.states_filter = filter.states.iter().map(|s| StrBytes::from_string(s.clone())).collect();
                }
                if version >= 5 {
                    request.types_filter = filter.types.iter().map(|s| StrBytes::from_string(s.clone())).collect();
                }
                let response = conn.send_version(&request, version).await?;
                check(response.error_code, conn.addr(), api, String::new)?;
                Ok(response.groups)
            })
        });
        let mut listings = Vec::new();
        for result in join_all(calls).await {
            for g in result? {
                let listing = GroupListing {
                    group_id: g.group_id.0.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                    group_type: g.group_type.to_string(),
                };
                // Filter again on the client: brokers older than v4/v5 ignore the filters.
                let state_ok = filter.states.is_empty()
                    || listing.state.is_empty()
                    || filter.states.iter().any(|s| s.eq_ignore_ascii_case(&listing.state));
                let type_ok = filter.types.is_empty()
                    || listing.group_type.is_empty()
                    || filter.types.iter().any(|t| t.eq_ignore_ascii_case(&listing.group_type));
                if state_ok && type_ok {
                    listings.push(listing);
                }
            }
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(listings)
    }
}
