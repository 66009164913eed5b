//! Describing groups of every type: DescribeGroups (classic) and ConsumerGroupDescribe (KIP-848) together,
//! then, for the groups neither knows, the describe of each newer group type (share: `describe_share`,
//! streams: `describe_streams`),
//! all decoded into one `GroupDescription`, classic consumer assignments included.

use super::coordinators::{answer_missing, take_one};
use super::describe_share::describe_share_groups;
use super::describe_streams::{MemberTasks, StreamsTopology, describe_streams_groups};
use super::state::{GroupState, GroupType};
use crate::kafka::client::KafkaClient;
use crate::kafka::connection::Connection;
use crate::kafka::error::{KafkaError, check};
use crate::kafka::metadata::TopicPartition;
use crate::wire::Api;
use bytes::Buf;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DescribeGroupsRequest, GroupId,
    consumer_group_describe_response, describe_groups_response,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Assigned partitions, decoded (sorted). A streams member's are the partitions its active tasks read.
    pub assignment: Vec<TopicPartition>,
    /// A streams group member's tasks; `None` for other group types.
    pub tasks: Option<MemberTasks>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Classic` (described by DescribeGroups) or `Consumer` (KIP-848, by ConsumerGroupDescribe).
    pub group_type: GroupType,
    /// As the coordinator reports it (`Empty`, `Stable`, `Dead`, …).
    pub state: GroupState,
    /// The classic group's protocol type (`consumer`), or `consumer` for KIP-848 groups.
    pub protocol_type: String,
    /// The assignor (`range`, `uniform`, …), empty while the group has no members.
    pub assignor: String,
    pub coordinator: i32,
    pub members: Vec<MemberDescription>,
    /// A streams group's topology (empty while not initialized); `None` for other group types.
    pub streams: Option<StreamsTopology>,
}

impl GroupDescription {
    /// Empty and Dead groups have no members that could commit behind an admin's back.
    pub fn is_inactive(&self) -> bool {
        self.members.is_empty() && self.state.is_empty_or_dead()
    }

    /// Whether the group exists at all (a Dead group with no members is what Kafka reports for unknown ids).
    pub fn exists(&self) -> bool {
        !(self.state == GroupState::Dead && self.members.is_empty())
    }
}

impl KafkaClient {
    /// Describes groups of either protocol. ConsumerGroupDescribe and DescribeGroups go to each coordinator
    /// together; a group that ConsumerGroupDescribe does not know is a classic group (or none).
    /// An unknown group comes back as state `Dead` with no members, as Kafka reports it.
    pub async fn describe_groups(&self, groups: &[String]) -> HashMap<String, Result<GroupDescription, KafkaError>> {
        self.on_coordinators("DescribeGroups", groups, |conn, node, groups| async move {
            describe_on(&conn, node, groups).await
        })
        .await
    }

    /// Describes one group.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, KafkaError> {
        take_one(self.describe_groups(&[group.to_owned()]).await, group)
    }
}

async fn describe_on(
    conn: &Connection,
    node: i32,
    groups: Vec<String>,
) -> Vec<(String, Result<GroupDescription, KafkaError>)> {
    let ids: Vec<GroupId> = groups
        .iter()
        .map(|g| GroupId(StrBytes::from_string(g.clone())))
        .collect();
    let classic_request = DescribeGroupsRequest::default().with_groups(ids.clone());
    let consumer_request = ConsumerGroupDescribeRequest::default().with_group_ids(ids);
    let supports_consumer = conn.version_of::<ConsumerGroupDescribeRequest>().is_ok();
    let (classic, consumer) = tokio::join!(conn.send(&classic_request), async {
        if supports_consumer {
            Some(conn.send(&consumer_request).await)
        } else {
            None
        }
    });
    let mut out: HashMap<String, Result<GroupDescription, KafkaError>> = HashMap::new();
    if let Some(Ok((response, _))) = consumer {
        out.extend(
            response
                .groups
                .into_iter()
                .filter_map(|g| consumer_description(g, node, conn.addr())),
        );
    }
    match classic {
        Ok((response, _)) => {
            for g in response.groups {
                // A group ConsumerGroupDescribe answered for is a KIP-848 group.
                if out.contains_key(g.group_id.0.as_str()) {
                    continue;
                }
                let (id, result) = classic_description(g, node, conn.addr());
                out.insert(id, result);
            }
        }
        Err(e) => {
            for g in &groups {
                out.entry(g.clone()).or_insert_with(|| Err(e.clone()));
            }
        }
    }
    // Neither a classic nor a consumer group: Kafka 4 answers "not a consumer group" (GROUP_ID_NOT_FOUND,
    // reported above as Dead and memberless) for share and streams groups. Only these ask again.
    let unknown: Vec<String> = groups
        .iter()
        .filter(|g| matches!(out.get(g.as_str()), Some(Ok(d)) if !d.exists()))
        .cloned()
        .collect();
    out.extend(describe_other_types(conn, node, unknown).await);
    let mut out: Vec<_> = out.into_iter().collect();
    answer_missing(&mut out, &groups, conn.addr(), Api(DescribeGroupsRequest::KEY));
    out
}

/// One group of a describe answer, decoded; `None` when the group is not of the type that describe is for.
pub(super) type Described = Option<(String, Result<GroupDescription, KafkaError>)>;

/// Sends one describe request of a newer group type (ShareGroupDescribe, StreamsGroupDescribe) for `groups` to
/// their coordinator and decodes each group of the answer with `decode`, which leaves out groups of other types
/// (GROUP_ID_NOT_FOUND) for the next type's describe. Nothing at all from a broker without that API (the
/// embedded broker has neither).
pub(super) async fn describe_as<R, G>(
    conn: &Connection,
    groups: &[String],
    request: impl FnOnce(Vec<GroupId>) -> R,
    groups_of: impl FnOnce(R::Response) -> Vec<G>,
    decode: impl Fn(G, &str) -> Described,
) -> Vec<(String, Result<GroupDescription, KafkaError>)>
where
    R: Request,
{
    if groups.is_empty() || conn.version_of::<R>().is_err() {
        return Vec::new();
    }
    let ids = groups
        .iter()
        .map(|g| GroupId(StrBytes::from_string(g.clone())))
        .collect();
    match conn.send(&request(ids)).await {
        Ok((response, _)) => groups_of(response)
            .into_iter()
            .filter_map(|g| decode(g, conn.addr()))
            .collect(),
        Err(e) => groups.iter().map(|g| (g.clone(), Err(e.clone()))).collect(),
    }
}

/// Describes groups that are neither classic nor consumer groups with each other group type's describe in
/// turn, each one seeing only the groups the previous ones did not know. What none knows stays unknown (Dead).
async fn describe_other_types(
    conn: &Connection,
    node: i32,
    unknown: Vec<String>,
) -> Vec<(String, Result<GroupDescription, KafkaError>)> {
    let mut out = describe_share_groups(conn, node, &unknown).await;
    let unknown: Vec<String> = unknown
        .into_iter()
        .filter(|g| !out.iter().any(|(id, _)| id == g))
        .collect();
    out.extend(describe_streams_groups(conn, node, &unknown).await);
    out
}

/// One group of a ConsumerGroupDescribe answer from `broker` (coordinator `node`); `None` when it is not a
/// KIP-848 group, which DescribeGroups then answers for.
fn consumer_description(
    g: consumer_group_describe_response::DescribedGroup,
    node: i32,
    broker: &str,
) -> Option<(String, Result<GroupDescription, KafkaError>)> {
    let api = Api(ConsumerGroupDescribeRequest::KEY);
    let id = g.group_id.0.to_string();
    // GROUP_ID_NOT_FOUND: not a KIP-848 group; DescribeGroups answers for it.
    // INVALID_GROUP_ID / UNSUPPORTED: likewise a classic group on some versions.
    if matches!(g.error_code, 69 | 24 | 35) {
        return None;
    }
    let result = check(g.error_code, broker, api, || format!("group {id}")).map(|_| {
        let mut members: Vec<MemberDescription> = g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                instance_id: m.instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: assigned_partitions(
                    m.assignment
                        .topic_partitions
                        .into_iter()
                        .map(|t| (t.topic_name.0.to_string(), t.partitions)),
                ),
                tasks: None,
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        GroupDescription {
            group_id: id.clone(),
            group_type: GroupType::Consumer,
            state: GroupState::from_kafka(&g.group_state),
            protocol_type: "consumer".to_owned(),
            assignor: g.assignor_name.to_string(),
            coordinator: node,
            members,
            streams: None,
        }
    });
    Some((id, result))
}

/// One group of a DescribeGroups answer from `broker` (coordinator `node`).
fn classic_description(
    g: describe_groups_response::DescribedGroup,
    node: i32,
    broker: &str,
) -> (String, Result<GroupDescription, KafkaError>) {
    let api = Api(DescribeGroupsRequest::KEY);
    let id = g.group_id.0.to_string();
    // Kafka 4 answers GROUP_ID_NOT_FOUND for a group it does not know; older brokers describe it as Dead
    // with no members. Report both the older way.
    let error_code = if g.error_code == 69 { 0 } else { g.error_code };
    let state = if g.error_code == 69 {
        GroupState::Dead
    } else {
        GroupState::from_kafka(&g.group_state)
    };
    let result = check(error_code, broker, api, || format!("group {id}")).map(|_| {
        let is_consumer = g.protocol_type.as_str() == "consumer";
        let mut members: Vec<MemberDescription> = g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if is_consumer {
                    decode_assignment(m.member_assignment)
                } else {
                    Vec::new()
                },
                tasks: None,
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        GroupDescription {
            group_id: id.clone(),
            group_type: GroupType::Classic,
            state,
            protocol_type: g.protocol_type.to_string(),
            assignor: g.protocol_data.to_string(),
            coordinator: node,
            members,
            streams: None,
        }
    });
    (id, result)
}

/// A classic consumer's assignment: a version (i16) followed by ConsumerProtocolAssignment. Undecodable
/// bytes (another client's custom protocol) give no partitions rather than an error.
fn decode_assignment(mut bytes: bytes::Bytes) -> Vec<TopicPartition> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut bytes, version) {
        Ok(a) => sorted(
            a.assigned_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.0.to_string();
                    t.partitions
                        .into_iter()
                        .map(move |p| TopicPartition::new(topic.clone(), p))
                })
                .collect(),
        ),
        Err(_) => Vec::new(),
    }
}

/// A KIP-848 or share member's assignment (topic name, partitions), as sorted partitions.
pub(super) fn assigned_partitions(topics: impl Iterator<Item = (String, Vec<i32>)>) -> Vec<TopicPartition> {
    sorted(
        topics
            .flat_map(|(topic, partitions)| {
                partitions
                    .into_iter()
                    .map(move |p| TopicPartition::new(topic.clone(), p))
            })
            .collect(),
    )
}

pub(super) fn sorted(mut v: Vec<TopicPartition>) -> Vec<TopicPartition> {
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::consumer_group_describe_response::{Assignment, Member, TopicPartitions};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
    use kafka_protocol::messages::describe_groups_response::DescribedGroupMember;
    use kafka_protocol::messages::{TopicName, consumer_group_describe_response, describe_groups_response};
    use kafka_protocol::protocol::Encodable;

    const BROKER: &str = "b:9092";

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    /// What a classic consumer's leader sends in SyncGroup: the version, then ConsumerProtocolAssignment.
    fn consumer_assignment(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    AssignedPartitions::default()
                        .with_topic(TopicName(s(t)))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        assignment.encode(&mut buf, version).expect("encode assignment");
        buf.freeze()
    }

    fn classic_member(id: &str, instance: Option<&str>, assignment: Bytes) -> DescribedGroupMember {
        DescribedGroupMember::default()
            .with_member_id(s(id))
            .with_group_instance_id(instance.map(s))
            .with_client_id(s(&format!("client-{id}")))
            .with_client_host(s("/10.0.0.1"))
            .with_member_assignment(assignment)
    }

    fn classic_group(id: &str, state: &str, protocol_type: &str) -> describe_groups_response::DescribedGroup {
        describe_groups_response::DescribedGroup::default()
            .with_group_id(GroupId(s(id)))
            .with_group_state(s(state))
            .with_protocol_type(s(protocol_type))
            .with_protocol_data(s("range"))
    }

    #[test]
    fn a_classic_consumer_group_decodes_its_members_assignments_sorted() {
        let g = classic_group("orders", "Stable", "consumer").with_members(vec![
            classic_member(
                "m-2",
                None,
                consumer_assignment(3, &[("payments", &[1, 0]), ("orders", &[2])]),
            ),
            classic_member("m-1", Some("static-1"), consumer_assignment(0, &[("orders", &[1, 0])])),
        ]);
        let (id, result) = classic_description(g, 3, BROKER);
        assert_eq!(id, "orders");
        let d = result.expect("described");
        assert_eq!(d.group_type, GroupType::Classic);
        assert_eq!(d.state, GroupState::Stable);
        assert_eq!(
            (d.protocol_type.as_str(), d.assignor.as_str(), d.coordinator),
            ("consumer", "range", 3)
        );
        let ids: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, ["m-1", "m-2"]);
        assert_eq!(d.members[0].instance_id.as_deref(), Some("static-1"));
        assert_eq!(d.members[0].client_id, "client-m-1");
        assert_eq!(d.members[0].host, "/10.0.0.1");
        assert_eq!(d.members[0].assignment, [tp("orders", 0), tp("orders", 1)]);
        assert_eq!(
            d.members[1].assignment,
            [tp("orders", 2), tp("payments", 0), tp("payments", 1)]
        );
        assert!(d.exists());
        assert!(!d.is_inactive());
    }

    #[test]
    fn assignments_of_other_protocols_or_undecodable_ones_give_no_partitions() {
        let connect = classic_group("workers", "Stable", "connect").with_members(vec![classic_member(
            "w-1",
            None,
            consumer_assignment(0, &[("orders", &[0])]),
        )]);
        let d = classic_description(connect, 1, BROKER).1.expect("described");
        assert_eq!(d.members.len(), 1);
        assert!(d.members[0].assignment.is_empty());

        let garbage = classic_group("odd", "Stable", "consumer").with_members(vec![
            classic_member("a", None, Bytes::from_static(&[0, 0, 0, 0, 0, 9, 0xff])),
            classic_member("b", None, Bytes::from_static(&[1])),
            classic_member("c", None, Bytes::new()),
        ]);
        let d = classic_description(garbage, 1, BROKER).1.expect("described");
        assert!(d.members.iter().all(|m| m.assignment.is_empty()), "{d:?}");
    }

    #[test]
    fn a_group_kafka_4_does_not_know_is_described_as_dead_without_members() {
        let unknown = classic_group("nobody", "", "").with_error_code(69);
        let (id, result) = classic_description(unknown, 1, BROKER);
        assert_eq!(id, "nobody");
        let d = result.expect("GROUP_ID_NOT_FOUND is an answer");
        assert_eq!(d.state, GroupState::Dead);
        assert!(d.members.is_empty());
        assert!(!d.exists());
        assert!(d.is_inactive());

        let empty = classic_group("idle", "Empty", "consumer");
        let d = classic_description(empty, 1, BROKER).1.expect("described");
        assert!(d.exists());
        assert!(d.is_inactive());
    }

    #[test]
    fn other_describe_errors_stay_errors() {
        let g = classic_group("moved", "", "").with_error_code(ResponseError::NotCoordinator.code());
        let err = classic_description(g, 1, BROKER).1.expect_err("NOT_COORDINATOR");
        assert!(err.invalidates_metadata(), "{err}");
    }

    #[test]
    fn a_state_this_client_does_not_know_is_kept_as_named() {
        let g = classic_group("future", "Hibernating", "consumer");
        let d = classic_description(g, 1, BROKER).1.expect("described");
        assert_eq!(d.state, GroupState::Unknown("Hibernating".to_owned()));
        assert_eq!(d.state.as_str(), "Hibernating");
        assert!(d.exists());
        assert!(!d.is_inactive());
    }

    fn consumer_member(id: &str, topics: &[(&str, &[i32])]) -> Member {
        Member::default()
            .with_member_id(s(id))
            .with_instance_id(None)
            .with_client_id(s(&format!("client-{id}")))
            .with_client_host(s("/10.0.0.2"))
            .with_assignment(
                Assignment::default().with_topic_partitions(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_name(TopicName(s(t)))
                                .with_partitions(ps.to_vec())
                        })
                        .collect(),
                ),
            )
    }

    #[test]
    fn a_kip_848_group_decodes_its_members_assignments_sorted() {
        let g = consumer_group_describe_response::DescribedGroup::default()
            .with_group_id(GroupId(s("checkout")))
            .with_group_state(s("Reconciling"))
            .with_assignor_name(s("uniform"))
            .with_members(vec![
                consumer_member("z", &[("orders", &[3, 1])]),
                consumer_member("a", &[("payments", &[0]), ("orders", &[2, 0])]),
            ]);
        let (id, result) = consumer_description(g, 2, BROKER).expect("a KIP-848 group");
        assert_eq!(id, "checkout");
        let d = result.expect("described");
        assert_eq!(d.group_type, GroupType::Consumer);
        assert_eq!(d.state, GroupState::Reconciling);
        assert!(d.state.is_rebalancing());
        assert_eq!(
            (d.protocol_type.as_str(), d.assignor.as_str(), d.coordinator),
            ("consumer", "uniform", 2)
        );
        let ids: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, ["a", "z"]);
        assert_eq!(
            d.members[0].assignment,
            [tp("orders", 0), tp("orders", 2), tp("payments", 0)]
        );
        assert_eq!(d.members[1].assignment, [tp("orders", 1), tp("orders", 3)]);
        assert_eq!(d.members[1].client_id, "client-z");
        assert_eq!(d.members[1].host, "/10.0.0.2");
    }

    #[test]
    fn groups_consumer_group_describe_does_not_know_are_left_to_describe_groups() {
        for code in [69, 24, 35] {
            let g = consumer_group_describe_response::DescribedGroup::default()
                .with_group_id(GroupId(s("classic-one")))
                .with_error_code(code);
            assert!(consumer_description(g, 1, BROKER).is_none(), "error code {code}");
        }
        let denied = consumer_group_describe_response::DescribedGroup::default()
            .with_group_id(GroupId(s("secret")))
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
        let (id, result) = consumer_description(denied, 1, BROKER).expect("an answer");
        assert_eq!(id, "secret");
        assert!(result.is_err());
    }
}
