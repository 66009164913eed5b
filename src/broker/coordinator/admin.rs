//! ListGroups, DescribeGroups and DeleteGroups, and the error response of every coordinator API (shutdown).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, HeartbeatResponse,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, RequestKind, ResponseKind, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::group::GroupState;
use super::journal::Record;
use super::member::JoinOutcome;
use super::undo::Undo;
use super::{GroupCoordinator, not_a_coordinator_api};

/// The only group type this coordinator runs (ListGroups v5 `types_filter`, `group_type`).
const CLASSIC: &str = "classic";
const CONSUMER: &str = "consumer";

/// READ, DELETE and DESCRIBE (Kafka's AclOperation codes 3, 6, 8): what a group allows without ACLs.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub(super) fn list_groups(c: &Arc<GroupCoordinator>, r: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = if version >= 4 {
        r.states_filter.iter().map(|f| f.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if version >= 5 {
        r.types_filter.iter().map(|f| f.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let type_of = |g: &super::group::Group| if g.consumer.is_some() { CONSUMER } else { CLASSIC };
    let groups = c.lock();
    let mut listed: Vec<ListedGroup> = groups
        .values()
        .filter(|g| g.state != GroupState::Dead)
        .filter(|g| types.is_empty() || types.iter().any(|t| t == type_of(g)))
        .filter(|g| states.is_empty() || states.contains(&g.state_name().to_lowercase()))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(s(&g.id).into())
                .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or_default()));
            if version >= 4 {
                l = l.with_group_state(s(g.state_name()));
            }
            if version >= 5 {
                l = l.with_group_type(s(type_of(g)));
            }
            l
        })
        .collect();
    listed.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    ListGroupsResponse::default().with_groups(listed)
}

pub(super) fn describe_groups(
    c: &Arc<GroupCoordinator>,
    r: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let operations = if version >= 3 && r.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        i32::MIN
    };
    let groups = c.lock();
    let described = r
        .groups
        .iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(operations);
            // A KIP-848 group is not a classic group: DescribeGroups does not know it (as Kafka answers; the
            // admin client then uses ConsumerGroupDescribe).
            let Some(g) = groups
                .get(id.0.as_str())
                .filter(|g| g.state != GroupState::Dead && g.consumer.is_none())
            else {
                // Kafka 4 (KIP-1043): v6 says the group is not there; before, a Dead group with no error.
                let dead = base.with_group_state(s(GroupState::Dead.name()));
                return if version >= 6 {
                    dead.with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(s(&format!("Group {} not found.", id.0))))
                } else {
                    dead
                };
            };
            // Metadata and assignments are only meaningful once the generation is in place.
            let stable = g.state == GroupState::Stable;
            let protocol = if stable {
                g.protocol_name.clone().unwrap_or_default()
            } else {
                String::new()
            };
            let members = g
                .members
                .values()
                .map(|m| {
                    let mut d = DescribedGroupMember::default()
                        .with_member_id(s(&m.id))
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s(&m.client_host));
                    if version >= 4 {
                        d = d.with_group_instance_id(m.instance_id.as_deref().map(s));
                    }
                    if stable {
                        d = d
                            .with_member_metadata(m.metadata(&protocol))
                            .with_member_assignment(m.assignment.clone());
                    }
                    d
                })
                .collect();
            base.with_group_state(s(g.state.name()))
                .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or_default()))
                .with_protocol_data(s(&protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

pub(super) async fn delete_groups(
    c: &Arc<GroupCoordinator>,
    r: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut records = Vec::new();
    let mut undo = Undo::default();
    let (mut results, durable) = {
        let mut groups = c.lock();
        let results: Vec<(StrBytes, i16)> = r
            .groups_names
            .iter()
            .map(|id| {
                let error = match groups.get_mut(id.0.as_str()) {
                    _ if id.0.is_empty() => ResponseError::InvalidGroupId.code(),
                    None => ResponseError::GroupIdNotFound.code(),
                    Some(g) if g.state == GroupState::Dead => ResponseError::GroupIdNotFound.code(),
                    Some(g) if g.state != GroupState::Empty => ResponseError::NonEmptyGroup.code(),
                    Some(g) => {
                        g.mark_dead();
                        undo.removed(g);
                        groups.remove(id.0.as_str());
                        records.push(Record::DeleteGroup {
                            group: id.0.to_string(),
                        });
                        0
                    }
                };
                (id.0.clone(), error)
            })
            .collect();
        let durable = c.persist(&records, undo);
        (results, durable)
    };
    if let Some(rx) = durable
        && !matches!(rx.await, Ok(Ok(())))
    {
        for (_, e) in results.iter_mut() {
            if *e == 0 {
                *e = ResponseError::CoordinatorNotAvailable.code();
            }
        }
    }
    DeleteGroupsResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, e)| {
                DeletableGroupResult::default()
                    .with_group_id(id.into())
                    .with_error_code(e)
            })
            .collect(),
    )
}

/// Every coordinator API's response carrying one error code throughout (the coordinator is shutting down).
pub(super) fn error_response(request: RequestKind, version: i16, error: i16) -> ResponseKind {
    match request {
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(super::membership::join_response(
            JoinOutcome::error(error, r.member_id.as_str()),
            version,
        )),
        RequestKind::SyncGroup(_) => ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(error)),
        RequestKind::Heartbeat(_) => ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(error)),
        RequestKind::LeaveGroup(_) => ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(error)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(error)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(if version >= 8 {
            OffsetFetchResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(error)
                    })
                    .collect(),
            )
        } else if version >= 2 {
            OffsetFetchResponse::default().with_error_code(error)
        } else {
            OffsetFetchResponse::default()
        }),
        RequestKind::OffsetDelete(_) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(error))
        }
        RequestKind::ListGroups(_) => ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(error)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|id| {
                        DescribedGroup::default()
                            .with_group_id(id.clone())
                            .with_error_code(error)
                            .with_authorized_operations(i32::MIN)
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(
            DeleteGroupsResponse::default().with_results(
                r.groups_names
                    .iter()
                    .map(|id| {
                        DeletableGroupResult::default()
                            .with_group_id(id.clone())
                            .with_error_code(error)
                    })
                    .collect(),
            ),
        ),
        other => {
            tracing::error!(request = ?std::mem::discriminant(&other), "not a group coordinator request");
            not_a_coordinator_api(error)
        }
    }
}
