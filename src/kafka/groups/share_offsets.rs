//! Share groups' offsets (KIP-932): the share-partition start offset of each partition and the lag the broker
//! computes for it (DescribeShareGroupOffsets v1, KIP-1226), and moving the start offsets of an empty share
//! group (AlterShareGroupOffsets, what `kafka-share-groups.sh --reset-offsets --execute` sends).

use super::coordinators::take_one;
use super::offsets::{CommittedOffset, GroupOffsets};
use crate::kafka::client::KafkaClient;
use crate::kafka::connection::Connection;
use crate::kafka::error::{KafkaError, check};
use crate::kafka::metadata::TopicPartition;
use crate::wire::Api;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
    TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::{BTreeMap, HashMap};

/// Where a share group stands on one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharePartitionOffset {
    /// The share-partition start offset: every record before it is acknowledged (or archived).
    pub start_offset: i64,
    /// The records from the start offset to the log end not yet acknowledged, as the broker computes it
    /// (KIP-1226); `None` on brokers before Kafka 4.2 or where the broker could not compute it.
    pub lag: Option<i64>,
}

/// A share group's partitions that have a share-partition state (partitions no member fetched yet are absent).
pub type ShareGroupOffsets = BTreeMap<TopicPartition, SharePartitionOffset>;

/// A share group's start offsets in the shape of committed offsets: what a reset plans from and what the lag
/// is measured from, as for any other group.
pub fn start_offsets_as_committed(share: &ShareGroupOffsets) -> GroupOffsets {
    share
        .iter()
        .map(|(tp, p)| {
            let offset = CommittedOffset {
                offset: p.start_offset,
                leader_epoch: None,
                metadata: String::new(),
            };
            (tp.clone(), offset)
        })
        .collect()
}

impl KafkaClient {
    /// Start offsets and lag of many share groups: one DescribeShareGroupOffsets per coordinator, carrying all
    /// of its groups. A group that does not exist has no partitions; a group of another type is an error
    /// (GROUP_ID_NOT_FOUND, as Kafka answers).
    pub async fn share_group_offsets(
        &self,
        groups: &[String],
    ) -> HashMap<String, Result<ShareGroupOffsets, KafkaError>> {
        self.on_coordinators("DescribeShareGroupOffsets", groups, |conn, _node, groups| async move {
            describe_on(&conn, groups).await
        })
        .await
    }

    /// Start offsets and lag of one share group.
    pub async fn share_group_offsets_of(&self, group: &str) -> Result<ShareGroupOffsets, KafkaError> {
        take_one(self.share_group_offsets(&[group.to_owned()]).await, group)
    }

    /// Moves the start offsets of an empty share group. Refuses with `GroupNotEmpty` when the group has members,
    /// as the coordinator also does (NON_EMPTY_GROUP).
    pub async fn alter_share_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), KafkaError> {
        let description = self.describe_group(group).await?;
        if !description.is_inactive() {
            return Err(KafkaError::GroupNotEmpty {
                group: group.to_owned(),
                state: description.state,
                members: description.members.len(),
            });
        }
        let request = alter_request(group, offsets);
        let api = Api(AlterShareGroupOffsetsRequest::KEY);
        let altered = self
            .on_group_coordinator("AlterShareGroupOffsets", group, |conn| {
                let request = request.clone();
                async move {
                    let version = conn.version_of::<AlterShareGroupOffsetsRequest>()?;
                    let response = conn.send_version(&request, version).await?;
                    check(response.error_code, conn.addr(), api, || {
                        message_or(response.error_message.as_deref(), || format!("share group {group}"))
                    })?;
                    for t in &response.responses {
                        for p in &t.partitions {
                            check(p.error_code, conn.addr(), api, || {
                                message_or(p.error_message.as_deref(), || {
                                    format!(
                                        "share group {group}, partition {}-{}",
                                        t.topic_name.0, p.partition_index
                                    )
                                })
                            })?;
                        }
                    }
                    Ok(())
                }
            })
            .await;
        match altered {
            Err(KafkaError::Response {
                error: kafka_protocol::error::ResponseError::NonEmptyGroup,
                ..
            }) => {
                let now = self.describe_group(group).await?;
                Err(KafkaError::GroupNotEmpty {
                    group: group.to_owned(),
                    state: now.state,
                    members: now.members.len(),
                })
            }
            other => other,
        }
    }
}

fn message_or(message: Option<&str>, context: impl FnOnce() -> String) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{}: {m}", context()),
        _ => context(),
    }
}

fn alter_request(group: &str, offsets: &BTreeMap<TopicPartition, i64>) -> AlterShareGroupOffsetsRequest {
    let mut topics: BTreeMap<&str, Vec<AlterShareGroupOffsetsRequestPartition>> = BTreeMap::new();
    for (tp, offset) in offsets {
        topics.entry(&*tp.topic).or_default().push(
            AlterShareGroupOffsetsRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_start_offset(*offset),
        );
    }
    AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

async fn describe_on(conn: &Connection, groups: Vec<String>) -> Vec<(String, Result<ShareGroupOffsets, KafkaError>)> {
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(
        groups
            .iter()
            .map(|g| {
                DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.clone())))
                    // Null: every topic partition the group has a state for.
                    .with_topics(None)
            })
            .collect(),
    );
    let answer = async {
        let version = conn.version_of::<DescribeShareGroupOffsetsRequest>()?;
        conn.send_version(&request, version).await
    }
    .await;
    match answer {
        Ok(response) => decode(response, conn.addr()),
        Err(e) => groups.into_iter().map(|g| (g, Err(e.clone()))).collect(),
    }
}

/// Decodes an answer: per group its partitions, or the group's (or first partition's) error. A start offset
/// of -1 is a partition the group has no state for yet (left out).
fn decode(
    response: DescribeShareGroupOffsetsResponse,
    broker: &str,
) -> Vec<(String, Result<ShareGroupOffsets, KafkaError>)> {
    let api = Api(DescribeShareGroupOffsetsRequest::KEY);
    response
        .groups
        .into_iter()
        .map(|g| {
            let id = g.group_id.0.to_string();
            let result = (|| {
                check(g.error_code, broker, api, || {
                    message_or(g.error_message.as_deref(), || format!("share group {id}"))
                })?;
                let mut offsets = ShareGroupOffsets::new();
                for t in g.topics {
                    let topic = t.topic_name.0.to_string();
                    for p in t.partitions {
                        check(p.error_code, broker, api, || {
                            message_or(p.error_message.as_deref(), || {
                                format!("share group {id}, partition {topic}-{}", p.partition_index)
                            })
                        })?;
                        if p.start_offset < 0 {
                            continue;
                        }
                        offsets.insert(
                            TopicPartition::new(topic.clone(), p.partition_index),
                            SharePartitionOffset {
                                start_offset: p.start_offset,
                                lag: (p.lag >= 0).then_some(p.lag),
                            },
                        );
                    }
                }
                Ok(offsets)
            })();
            (id, result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::describe_share_group_offsets_response::{
        DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
        DescribeShareGroupOffsetsResponseTopic,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn partition(index: i32, start: i64, lag: i64) -> DescribeShareGroupOffsetsResponsePartition {
        DescribeShareGroupOffsetsResponsePartition::default()
            .with_partition_index(index)
            .with_start_offset(start)
            .with_leader_epoch(0)
            .with_lag(lag)
    }

    fn response(partitions: Vec<DescribeShareGroupOffsetsResponsePartition>) -> DescribeShareGroupOffsetsResponse {
        DescribeShareGroupOffsetsResponse::default().with_groups(vec![
            DescribeShareGroupOffsetsResponseGroup::default()
                .with_group_id(GroupId(s("sg")))
                .with_topics(vec![
                    DescribeShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(TopicName(s("orders")))
                        .with_partitions(partitions),
                ]),
        ])
    }

    #[test]
    fn start_offsets_and_the_brokers_lag_are_read_and_uninitialized_partitions_left_out() {
        let decoded = decode(
            response(vec![partition(0, 40, 60), partition(1, -1, -1), partition(2, 7, -1)]),
            "b:1",
        );
        let (id, offsets) = &decoded[0];
        assert_eq!(id, "sg");
        let offsets = offsets.as_ref().expect("no error");
        assert_eq!(offsets.len(), 2);
        assert_eq!(
            offsets[&TopicPartition::new("orders", 0)],
            SharePartitionOffset {
                start_offset: 40,
                lag: Some(60)
            }
        );
        assert_eq!(offsets[&TopicPartition::new("orders", 2)].lag, None);
    }

    #[test]
    fn a_group_error_is_kafkas_with_its_message() {
        let r = DescribeShareGroupOffsetsResponse::default().with_groups(vec![
            DescribeShareGroupOffsetsResponseGroup::default()
                .with_group_id(GroupId(s("cg")))
                .with_error_code(69)
                .with_error_message(Some(s("Group cg is not a share group."))),
        ]);
        let decoded = decode(r, "b:1");
        let e = decoded[0].1.clone().expect_err("an error");
        assert_eq!(e.code(), Some(ResponseError::GroupIdNotFound));
        assert!(e.to_string().contains("is not a share group"), "{e}");
    }

    #[test]
    fn the_lag_field_is_on_the_wire_from_version_1_only() {
        let r = response(vec![partition(0, 40, 60)]);
        let mut v1 = BytesMut::new();
        r.encode(&mut v1, 1).expect("encode v1");
        let back = DescribeShareGroupOffsetsResponse::decode(&mut v1.freeze(), 1).expect("decode v1");
        assert_eq!(back.groups[0].topics[0].partitions[0].lag, 60);
        let v0 = response(vec![partition(0, 40, -1)]);
        let mut bytes = BytesMut::new();
        v0.encode(&mut bytes, 0).expect("encode v0");
        let back = DescribeShareGroupOffsetsResponse::decode(&mut bytes.freeze(), 0).expect("decode v0");
        assert_eq!(back.groups[0].topics[0].partitions[0].lag, -1);
        assert!(r.encode(&mut BytesMut::new(), 0).is_err(), "a lag cannot be sent at v0");
    }

    #[test]
    fn the_alter_request_groups_partitions_by_topic() {
        let offsets = BTreeMap::from([
            (TopicPartition::new("a", 1), 5),
            (TopicPartition::new("a", 0), 3),
            (TopicPartition::new("b", 0), 9),
        ]);
        let r = alter_request("sg", &offsets);
        assert_eq!(r.group_id.0.as_str(), "sg");
        assert_eq!(r.topics.len(), 2);
        assert_eq!(r.topics[0].partitions.len(), 2);
        assert_eq!(r.topics[1].partitions[0].start_offset, 9);
    }
}
