//! KIP-848 consumer groups (`group.protocol=consumer`): `assignor` (uniform, range), `group` (members, epochs,
//! reconciliation), and here the two APIs, ConsumerGroupHeartbeat and ConsumerGroupDescribe. A consumer group
//! lives in the coordinator's map like a classic one (`Group::consumer` set), so offsets, retention, deletion and
//! the group log are shared; an empty group changes type when a member of the other protocol joins it.

mod assignor;
mod group;

pub use group::{ConsumerGroup, ConsumerTiming, state_name};

use super::group::{Group, GroupState};
use super::{ClientInfo, GroupCoordinator, TopicCatalog, wall_ms};
use assignor::Assignment;
use group::{Heartbeat, Topics};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{self as describe, DescribedGroup};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat_response};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The member type ConsumerGroupDescribe v1 reports for a member of this protocol.
const CONSUMER_MEMBER_TYPE: i8 = 1;

struct CatalogTopics<'a>(&'a dyn TopicCatalog);

impl Topics for CatalogTopics<'_> {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.0.partitions(topic)
    }
    fn names(&self) -> Vec<String> {
        self.0.topic_names()
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

pub(super) fn heartbeat(
    c: &Arc<GroupCoordinator>,
    r: ConsumerGroupHeartbeatRequest,
    version: i16,
    client: &ClientInfo,
    topics: &dyn TopicCatalog,
) -> ConsumerGroupHeartbeatResponse {
    let refuse = |error: ResponseError, message: String| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(s(&message)))
            .with_member_epoch(-1)
    };
    let group_id = r.group_id.0.to_string();
    if group_id.is_empty() {
        return refuse(ResponseError::InvalidRequest, "GroupId can't be empty.".into());
    }
    if version >= 1 && r.member_id.is_empty() {
        // From v1 the member makes up its own id (KIP-1082).
        return refuse(ResponseError::InvalidRequest, "MemberId can't be empty.".into());
    }
    let owned = r.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| topics.topic_name(tp.topic_id).map(|name| (name, &tp.partitions)))
            .flat_map(|(name, partitions)| partitions.iter().map(move |p| (name.clone(), *p)))
            .collect::<Assignment>()
    });
    let request = Heartbeat {
        member_id: r.member_id.to_string(),
        member_epoch: r.member_epoch,
        instance_id: r.instance_id.as_ref().map(|i| i.to_string()),
        rack_id: r.rack_id.as_ref().map(|i| i.to_string()),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed_topic_names: r
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: r.subscribed_topic_regex.as_ref().map(|x| x.to_string()),
        server_assignor: r.server_assignor.as_ref().map(|x| x.to_string()),
        owned,
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
    };
    let timing = c.group_configs.timing(&group_id, c.config.consumer);
    let outcome = {
        let mut groups = c.lock();
        let group = groups.entry(group_id.clone()).or_insert_with(|| Group::new(&group_id));
        if group.state == GroupState::Dead {
            *group = Group::new(&group_id);
        }
        if group.consumer.is_none() {
            if group.state != GroupState::Empty || !group.members.is_empty() {
                return refuse(
                    ResponseError::GroupIdNotFound,
                    format!("Group {group_id} is not a consumer group."),
                );
            }
            // An empty classic group (or a new one) becomes a consumer group; its offsets stay.
            group.consumer = Some(Box::new(ConsumerGroup::new(group.generation)));
        }
        let consumer = group.consumer.as_mut().expect("set above");
        let outcome = consumer.heartbeat(request, &CatalogTopics(topics), timing, Instant::now());
        group.sync_consumer_state(wall_ms());
        c.persist_metadata(group);
        outcome
    };
    match outcome {
        Err((error, message)) => refuse(error, message),
        Ok(reply) => {
            let assignment = reply.assignment.map(|a| {
                heartbeat_response::Assignment::default().with_topic_partitions(
                    by_topic(&a)
                        .into_iter()
                        .filter_map(|(topic, partitions)| {
                            topics.topic_id(&topic).map(|id| {
                                heartbeat_response::TopicPartitions::default()
                                    .with_topic_id(id)
                                    .with_partitions(partitions)
                            })
                        })
                        .collect(),
                )
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(s(&reply.member_id)))
                .with_member_epoch(reply.member_epoch)
                .with_heartbeat_interval_ms(timing.heartbeat_interval.as_millis() as i32)
                .with_assignment(assignment)
        }
    }
}

fn by_topic(a: &Assignment) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in a {
        out.entry(topic.clone()).or_default().push(*partition);
    }
    out
}

fn described_assignment(a: &Assignment, topics: &dyn TopicCatalog) -> describe::Assignment {
    describe::Assignment::default().with_topic_partitions(
        by_topic(a)
            .into_iter()
            .map(|(topic, partitions)| {
                describe::TopicPartitions::default()
                    .with_topic_id(topics.topic_id(&topic).unwrap_or_default())
                    .with_topic_name(TopicName(s(&topic)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

pub(super) fn describe(
    c: &Arc<GroupCoordinator>,
    r: ConsumerGroupDescribeRequest,
    topics: &dyn TopicCatalog,
) -> ConsumerGroupDescribeResponse {
    let groups = c.lock();
    let described = r
        .group_ids
        .iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            let group = groups.get(id.0.as_str()).filter(|g| g.state != GroupState::Dead);
            let Some(group) = group else {
                return base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(s(&format!("Group {} not found.", id.0))));
            };
            let Some(consumer) = &group.consumer else {
                return base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(s(&format!("Group {} is not a consumer group.", id.0))));
            };
            let members = consumer
                .members
                .values()
                .map(|m| {
                    describe::Member::default()
                        .with_member_id(s(&m.member_id))
                        .with_instance_id(m.instance_id.as_deref().map(s))
                        .with_rack_id(m.rack_id.as_deref().map(s))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s(&m.client_host))
                        .with_subscribed_topic_names(m.subscribed_topics.iter().map(|t| TopicName(s(t))).collect())
                        .with_subscribed_topic_regex(m.subscribed_regex.as_deref().map(s))
                        .with_assignment(described_assignment(&m.assigned, topics))
                        .with_target_assignment(described_assignment(
                            &consumer.target.get(&m.member_id).cloned().unwrap_or_default(),
                            topics,
                        ))
                        .with_member_type(CONSUMER_MEMBER_TYPE)
                })
                .collect();
            base.with_group_state(s(state_name(consumer)))
                .with_group_epoch(consumer.group_epoch)
                .with_assignment_epoch(consumer.assignment_epoch)
                .with_assignor_name(s(&consumer.assignor))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(described)
}
