//! Authorization of a request by name prefixes (`users[].allow`), answered as Apache Kafka answers it: what
//! the principal may not name is taken out of the request before it is handled (so nothing is written, read
//! or created for it) and put back into the response with TOPIC_AUTHORIZATION_FAILED or
//! GROUP_AUTHORIZATION_FAILED; requests about one group that is not allowed get the group error as a whole.
//! Listings (Metadata of all topics, ListGroups) leave out what the principal may not see, as Kafka does.

use super::Node;
use super::auth::Allow;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const TOPIC: i16 = 29; // TOPIC_AUTHORIZATION_FAILED
const GROUP: i16 = 30; // GROUP_AUTHORIZATION_FAILED

/// What was taken out of a request, to be put back into its response.
pub enum Denied {
    Nothing,
    /// The whole request is refused with this error (requests about a single group).
    Group,
    /// The whole request is refused with TOPIC_AUTHORIZATION_FAILED (a KIP-848 subscription to a topic not allowed).
    Topic,
    Produce(Vec<(TopicName, Uuid, Vec<i32>)>),
    Fetch(Vec<(TopicName, Uuid, Vec<i32>)>),
    ListOffsets(Vec<(TopicName, Vec<i32>)>),
    /// Named topics refused, and whether the listing of all topics must be filtered.
    Metadata(Vec<(Option<TopicName>, Uuid)>, bool),
    CreateTopics(Vec<TopicName>),
    DeleteTopics(Vec<(Option<TopicName>, Uuid)>),
    DeleteRecords(Vec<(TopicName, Vec<i32>)>),
    CreatePartitions(Vec<TopicName>),
    DescribeConfigs(Vec<(i8, StrBytes)>),
    /// Group refused: every partition gets the group error; else the refused topics.
    OffsetCommit(bool, Vec<(TopicName, Vec<i32>)>),
    OffsetFetch(Vec<(TopicName, Vec<i32>)>, Vec<StrBytes>),
    DescribeGroups(Vec<StrBytes>),
    ConsumerGroupDescribe(Vec<StrBytes>),
    DeleteGroups(Vec<StrBytes>),
    ListGroups,
    FindCoordinator(Vec<StrBytes>),
}

/// Keeps in `items` what `allowed` accepts and returns the rest (what goes back as an authorization error).
fn take_denied<T>(items: &mut Vec<T>, allowed: impl Fn(&T) -> bool) -> Vec<T> {
    let (ok, denied) = std::mem::take(items).into_iter().partition(|item| allowed(item));
    *items = ok;
    denied
}

fn topic_name(node: &Node, name: &str, id: Uuid) -> String {
    if !name.is_empty() || id.is_nil() {
        return name.to_owned();
    }
    node.store.topic_by_id(id).map(|t| t.name.clone()).unwrap_or_default()
}

/// Takes out of `request` what `allow` does not cover. `Denied::Group` means: answer with the group error.
pub fn filter(node: &Node, allow: &Allow, request: &mut RequestKind, version: i16) -> Denied {
    let topic_ok = |name: &str| allow.topic(name);
    let group_ok = |id: &str| allow.group(id);
    match request {
        RequestKind::Produce(r) => {
            let denied = take_denied(&mut r.topic_data, |t| topic_ok(&topic_name(node, &t.name, t.topic_id)));
            Denied::Produce(
                denied
                    .into_iter()
                    .map(|t| (t.name, t.topic_id, t.partition_data.iter().map(|p| p.index).collect()))
                    .collect(),
            )
        }
        RequestKind::Fetch(r) => {
            let denied = take_denied(&mut r.topics, |t| topic_ok(&topic_name(node, &t.topic, t.topic_id)));
            Denied::Fetch(
                denied
                    .into_iter()
                    .map(|t| (t.topic, t.topic_id, t.partitions.iter().map(|p| p.partition).collect()))
                    .collect(),
            )
        }
        RequestKind::ListOffsets(r) => {
            let denied = take_denied(&mut r.topics, |t| topic_ok(&t.name));
            Denied::ListOffsets(
                denied
                    .into_iter()
                    .map(|t| (t.name, t.partitions.iter().map(|p| p.partition_index).collect()))
                    .collect(),
            )
        }
        RequestKind::Metadata(r) => match &mut r.topics {
            Some(topics) if !(version == 0 && topics.is_empty()) => {
                let (ok, denied): (Vec<_>, Vec<_>) = std::mem::take(topics).into_iter().partition(|t| {
                    topic_ok(&topic_name(
                        node,
                        t.name.as_deref().map(|n| n.as_str()).unwrap_or(""),
                        t.topic_id,
                    ))
                });
                *topics = ok;
                Denied::Metadata(denied.into_iter().map(|t| (t.name, t.topic_id)).collect(), false)
            }
            _ => Denied::Metadata(Vec::new(), true),
        },
        RequestKind::CreateTopics(r) => {
            let denied = take_denied(&mut r.topics, |t| topic_ok(&t.name));
            Denied::CreateTopics(denied.into_iter().map(|t| t.name).collect())
        }
        RequestKind::DeleteTopics(r) => {
            let mut denied: Vec<(Option<TopicName>, Uuid)> = Vec::new();
            r.topic_names.retain(|n| {
                topic_ok(n) || {
                    denied.push((Some(n.clone()), Uuid::nil()));
                    false
                }
            });
            r.topics.retain(|t| {
                let name = topic_name(node, t.name.as_deref().map(|n| n.as_str()).unwrap_or(""), t.topic_id);
                topic_ok(&name) || {
                    denied.push((t.name.clone(), t.topic_id));
                    false
                }
            });
            Denied::DeleteTopics(denied)
        }
        RequestKind::DeleteRecords(r) => {
            let denied = take_denied(&mut r.topics, |t| topic_ok(&t.name));
            Denied::DeleteRecords(
                denied
                    .into_iter()
                    .map(|t| (t.name, t.partitions.iter().map(|p| p.partition_index).collect()))
                    .collect(),
            )
        }
        RequestKind::CreatePartitions(r) => {
            let denied = take_denied(&mut r.topics, |t| topic_ok(&t.name));
            Denied::CreatePartitions(denied.into_iter().map(|t| t.name).collect())
        }
        RequestKind::DescribeConfigs(r) => {
            // Resource type 2 is a topic, 32 a group; the broker's own configs (4) are for everyone.
            let (ok, denied): (Vec<_>, Vec<_>) =
                std::mem::take(&mut r.resources)
                    .into_iter()
                    .partition(|c| match c.resource_type {
                        2 => topic_ok(&c.resource_name),
                        32 => group_ok(&c.resource_name),
                        _ => true,
                    });
            r.resources = ok;
            Denied::DescribeConfigs(denied.into_iter().map(|c| (c.resource_type, c.resource_name)).collect())
        }
        RequestKind::OffsetCommit(r) => {
            if !group_ok(&r.group_id) {
                let all = std::mem::take(&mut r.topics);
                return Denied::OffsetCommit(
                    true,
                    all.into_iter()
                        .map(|t| (t.name, t.partitions.iter().map(|p| p.partition_index).collect()))
                        .collect(),
                );
            }
            let denied = take_denied(&mut r.topics, |t| topic_ok(&t.name));
            Denied::OffsetCommit(
                false,
                denied
                    .into_iter()
                    .map(|t| (t.name, t.partitions.iter().map(|p| p.partition_index).collect()))
                    .collect(),
            )
        }
        RequestKind::OffsetFetch(r) => {
            if version < 8 {
                if !group_ok(&r.group_id) {
                    return Denied::Group;
                }
                let mut denied = Vec::new();
                if let Some(topics) = &mut r.topics {
                    topics.retain(|t| {
                        topic_ok(&t.name) || {
                            denied.push((t.name.clone(), t.partition_indexes.clone()));
                            false
                        }
                    });
                }
                return Denied::OffsetFetch(denied, Vec::new());
            }
            let mut groups_denied = Vec::new();
            r.groups.retain(|g| {
                group_ok(&g.group_id) || {
                    groups_denied.push(g.group_id.0.clone());
                    false
                }
            });
            // Topics named in allowed groups' requests: Kafka answers them TOPIC_AUTHORIZATION_FAILED per
            // partition; the embedded broker leaves them out of the request and adds them back below.
            let mut denied = Vec::new();
            for group in &mut r.groups {
                if let Some(topics) = &mut group.topics {
                    topics.retain(|t| {
                        topic_ok(&t.name) || {
                            denied.push((t.name.clone(), t.partition_indexes.clone()));
                            false
                        }
                    });
                }
            }
            Denied::OffsetFetch(denied, groups_denied)
        }
        RequestKind::JoinGroup(r) if !group_ok(&r.group_id) => Denied::Group,
        RequestKind::SyncGroup(r) if !group_ok(&r.group_id) => Denied::Group,
        RequestKind::Heartbeat(r) if !group_ok(&r.group_id) => Denied::Group,
        RequestKind::LeaveGroup(r) if !group_ok(&r.group_id) => Denied::Group,
        RequestKind::OffsetDelete(r) if !group_ok(&r.group_id) => Denied::Group,
        RequestKind::DescribeGroups(r) => {
            let denied = take_denied(&mut r.groups, |g| group_ok(g));
            Denied::DescribeGroups(denied.into_iter().map(|g| g.0).collect())
        }
        RequestKind::ConsumerGroupHeartbeat(r) if !group_ok(&r.group_id) => Denied::Group,
        RequestKind::ConsumerGroupHeartbeat(r) => {
            // Kafka refuses a subscription to a topic the member may not read, as a whole.
            let refused = r.subscribed_topic_names.iter().flatten().any(|t| !topic_ok(t));
            if refused { Denied::Topic } else { Denied::Nothing }
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            let denied = take_denied(&mut r.group_ids, |g| group_ok(g));
            Denied::ConsumerGroupDescribe(denied.into_iter().map(|g| g.0).collect())
        }
        RequestKind::DeleteGroups(r) => {
            let denied = take_denied(&mut r.groups_names, |g| group_ok(g));
            Denied::DeleteGroups(denied.into_iter().map(|g| g.0).collect())
        }
        RequestKind::ListGroups(_) => Denied::ListGroups,
        RequestKind::FindCoordinator(r) if r.key_type == 0 => {
            if version >= 4 {
                let denied = take_denied(&mut r.coordinator_keys, |k| group_ok(k));
                Denied::FindCoordinator(denied)
            } else if group_ok(&r.key) {
                Denied::Nothing
            } else {
                Denied::Group
            }
        }
        _ => Denied::Nothing,
    }
}

/// Puts what was taken out back into the response, with the authorization errors; filters listings.
pub fn restore(allow: &Allow, response: &mut ResponseKind, denied: Denied) {
    use kafka_protocol::messages::*;
    match (response, denied) {
        (ResponseKind::Produce(r), Denied::Produce(topics)) => {
            for (name, id, partitions) in topics {
                r.responses.push(
                    produce_response::TopicProduceResponse::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_partition_responses(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    produce_response::PartitionProduceResponse::default()
                                        .with_index(p)
                                        .with_error_code(TOPIC)
                                        .with_base_offset(-1)
                                })
                                .collect(),
                        ),
                );
            }
        }
        (ResponseKind::Fetch(r), Denied::Fetch(topics)) => {
            for (name, id, partitions) in topics {
                r.responses.push(
                    fetch_response::FetchableTopicResponse::default()
                        .with_topic(name)
                        .with_topic_id(id)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    fetch_response::PartitionData::default()
                                        .with_partition_index(p)
                                        .with_error_code(TOPIC)
                                        .with_high_watermark(-1)
                                        .with_last_stable_offset(-1)
                                        .with_log_start_offset(-1)
                                })
                                .collect(),
                        ),
                );
            }
        }
        (ResponseKind::ListOffsets(r), Denied::ListOffsets(topics)) => {
            for (name, partitions) in topics {
                r.topics.push(
                    list_offsets_response::ListOffsetsTopicResponse::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    list_offsets_response::ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p)
                                        .with_error_code(TOPIC)
                                        .with_timestamp(-1)
                                        .with_offset(-1)
                                })
                                .collect(),
                        ),
                );
            }
        }
        (ResponseKind::Metadata(r), Denied::Metadata(topics, listing)) => {
            if listing {
                r.topics.retain(|t| t.name.as_deref().is_some_and(|n| allow.topic(n)));
            }
            for (name, id) in topics {
                r.topics.push(
                    metadata_response::MetadataResponseTopic::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_error_code(TOPIC),
                );
            }
        }
        (ResponseKind::CreateTopics(r), Denied::CreateTopics(names)) => {
            for name in names {
                r.topics.push(
                    create_topics_response::CreatableTopicResult::default()
                        .with_name(name)
                        .with_error_code(TOPIC)
                        .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                );
            }
        }
        (ResponseKind::DeleteTopics(r), Denied::DeleteTopics(topics)) => {
            for (name, id) in topics {
                r.responses.push(
                    delete_topics_response::DeletableTopicResult::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_error_code(TOPIC),
                );
            }
        }
        (ResponseKind::DeleteRecords(r), Denied::DeleteRecords(topics)) => {
            for (name, partitions) in topics {
                r.topics.push(
                    delete_records_response::DeleteRecordsTopicResult::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    delete_records_response::DeleteRecordsPartitionResult::default()
                                        .with_partition_index(p)
                                        .with_error_code(TOPIC)
                                        .with_low_watermark(-1)
                                })
                                .collect(),
                        ),
                );
            }
        }
        (ResponseKind::CreatePartitions(r), Denied::CreatePartitions(names)) => {
            for name in names {
                r.results.push(
                    create_partitions_response::CreatePartitionsTopicResult::default()
                        .with_name(name)
                        .with_error_code(TOPIC)
                        .with_error_message(Some(StrBytes::from_static_str("Authorization failed."))),
                );
            }
        }
        (ResponseKind::DescribeConfigs(r), Denied::DescribeConfigs(resources)) => {
            for (resource_type, name) in resources {
                let code = if resource_type == 32 { GROUP } else { TOPIC };
                r.results.push(
                    describe_configs_response::DescribeConfigsResult::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(name)
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_static_str("Authorization failed."))),
                );
            }
        }
        (ResponseKind::OffsetCommit(r), Denied::OffsetCommit(group_refused, topics)) => {
            let code = if group_refused { GROUP } else { TOPIC };
            for (name, partitions) in topics {
                r.topics.push(
                    offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    offset_commit_response::OffsetCommitResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        ),
                );
            }
        }
        (ResponseKind::OffsetFetch(r), Denied::OffsetFetch(topics, groups)) => {
            // Fetching all of a group's offsets shows only the topics the principal may see.
            r.topics.retain(|t| allow.topic(&t.name));
            for group in &mut r.groups {
                group.topics.retain(|t| allow.topic(&t.name));
            }
            if r.groups.is_empty() && groups.is_empty() {
                for (name, partitions) in topics {
                    r.topics.push(
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(name)
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        offset_fetch_response::OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_error_code(TOPIC)
                                    })
                                    .collect(),
                            ),
                    );
                }
            } else {
                // v8+: the refused topics went to (one of) the allowed groups; put them back into the first.
                if let Some(group) = r.groups.first_mut() {
                    for (name, partitions) in topics {
                        group.topics.push(
                            offset_fetch_response::OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|p| {
                                            offset_fetch_response::OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_error_code(TOPIC)
                                        })
                                        .collect(),
                                ),
                        );
                    }
                }
                for id in groups {
                    r.groups.push(
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(GroupId(id))
                            .with_error_code(GROUP),
                    );
                }
            }
        }
        (ResponseKind::DescribeGroups(r), Denied::DescribeGroups(ids)) => {
            for id in ids {
                r.groups.push(
                    describe_groups_response::DescribedGroup::default()
                        .with_group_id(GroupId(id))
                        .with_error_code(GROUP)
                        .with_authorized_operations(i32::MIN),
                );
            }
        }
        (ResponseKind::ConsumerGroupDescribe(r), Denied::ConsumerGroupDescribe(ids)) => {
            for id in ids {
                r.groups.push(
                    consumer_group_describe_response::DescribedGroup::default()
                        .with_group_id(GroupId(id))
                        .with_error_code(GROUP)
                        .with_authorized_operations(i32::MIN),
                );
            }
        }
        (ResponseKind::DeleteGroups(r), Denied::DeleteGroups(ids)) => {
            for id in ids {
                r.results.push(
                    delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(GroupId(id))
                        .with_error_code(GROUP),
                );
            }
        }
        (ResponseKind::ListGroups(r), Denied::ListGroups) => r.groups.retain(|g| allow.group(&g.group_id)),
        (ResponseKind::FindCoordinator(r), Denied::FindCoordinator(keys)) => {
            for key in keys {
                r.coordinators.push(
                    find_coordinator_response::Coordinator::default()
                        .with_key(key)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(GROUP)
                        .with_error_message(Some(StrBytes::from_static_str("Group authorization failed."))),
                );
            }
        }
        _ => {}
    }
}

/// The error of a request refused as a whole (one group it names is not allowed).
pub const GROUP_REFUSED: ResponseError = ResponseError::GroupAuthorizationFailed;
