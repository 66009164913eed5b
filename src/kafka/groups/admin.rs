//! Group administration: DeleteGroups, and removing static members (LeaveGroup by `group.instance.id`).

use super::coordinators::answer_missing;
use crate::kafka::client::KafkaClient;
use crate::kafka::error::{KafkaError, check};
use crate::wire::Api;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{DeleteGroupsRequest, GroupId, LeaveGroupRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::HashMap;

impl KafkaClient {
    /// Removes static members (by `group.instance.id`) from a group, as the Java AdminClient's
    /// `removeMembersFromConsumerGroup` does: without this, a stopped static member holds its partitions
    /// until its session times out. Members already gone are not an error.
    pub async fn remove_static_members(&self, group: &str, instance_ids: &[String]) -> Result<(), KafkaError> {
        let api = Api(LeaveGroupRequest::KEY);
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_members(
                instance_ids
                    .iter()
                    .map(|id| {
                        MemberIdentity::default()
                            .with_member_id(StrBytes::from_static_str(""))
                            .with_group_instance_id(Some(StrBytes::from_string(id.clone())))
                            .with_reason(Some(StrBytes::from_static_str(
                                "removed by kafka-group-operator for an offset reset",
                            )))
                    })
                    .collect(),
            );
        self.on_group_coordinator("LeaveGroup", group, |conn| {
            let request = request.clone();
            async move {
                // v3 introduced removing members by group.instance.id.
                let version = conn.version_in::<LeaveGroupRequest>(3, i16::MAX)?;
                let response = conn.send_version(&request, version).await?;
                check(response.error_code, conn.addr(), api, || format!("group {group}"))?;
                for m in &response.members {
                    // UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID: the member already left.
                    if !matches!(m.error_code, 25 | 82) {
                        check(m.error_code, conn.addr(), api, || format!("group {group}"))?;
                    }
                }
                Ok(())
            }
        })
        .await
    }

    /// Deletes groups (they must be empty; Kafka answers NON_EMPTY_GROUP otherwise).
    pub async fn delete_groups(&self, groups: &[String]) -> HashMap<String, Result<(), KafkaError>> {
        let api = Api(DeleteGroupsRequest::KEY);
        self.on_coordinators("DeleteGroups", groups, move |conn, _node, groups| async move {
            let request = DeleteGroupsRequest::default().with_groups_names(
                groups
                    .iter()
                    .map(|g| GroupId(StrBytes::from_string(g.clone())))
                    .collect(),
            );
            match conn.send(&request).await {
                Ok((response, _)) => {
                    let mut out: Vec<(String, Result<(), KafkaError>)> = response
                        .results
                        .into_iter()
                        .map(|r| {
                            let g = r.group_id.0.to_string();
                            let result = check(r.error_code, conn.addr(), api, || format!("group {g}"));
                            (g, result)
                        })
                        .collect();
                    answer_missing(&mut out, &groups, conn.addr(), api);
                    out
                }
                Err(e) => groups.into_iter().map(|g| (g, Err(e.clone()))).collect(),
            }
        })
        .await
    }
}
