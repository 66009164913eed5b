//! StreamsGroupDescribe (KIP-1071): a Kafka Streams application's group (`group.protocol=streams`): its state,
//! the topology the coordinator holds (sub-topologies and their topics) and each member's tasks.
//!
//! A member's `assignment` is the partitions its **active** tasks read: a task (sub-topology S, partition p)
//! reads partition p of every source topic of S, repartition topics included (Kafka Streams co-partitions
//! them), the way `kafka-streams-groups.sh --describe --offsets` derives its rows. Standby and warm-up tasks
//! only restore state from changelogs; they read no input and commit nothing, so they are not in it.

use super::describe::{Described, GroupDescription, MemberDescription, describe_as, sorted};
use super::state::{GroupState, GroupType};
use crate::kafka::connection::Connection;
use crate::kafka::error::{KafkaError, check};
use crate::kafka::metadata::TopicPartition;
use crate::wire::Api;
use kafka_protocol::messages::{StreamsGroupDescribeRequest, streams_group_describe_response};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::BTreeSet;

/// The topology of a streams group, as its coordinator initialized it from the members' heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamsTopology {
    /// The topology epoch the coordinator holds.
    pub epoch: i32,
    /// Empty while the topology is not initialized (state `NotReady`: source topics missing or partitioned
    /// differently).
    pub subtopologies: Vec<Subtopology>,
}

/// One sub-topology: the tasks of one sub-topology read the same-numbered partition of each of its sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subtopology {
    pub id: String,
    /// The user's input topics it reads (regular expressions already resolved by the coordinator).
    pub source_topics: Vec<String>,
    /// Internal repartition topics it reads (written by another sub-topology).
    pub repartition_source_topics: Vec<String>,
    /// Internal repartition topics it writes.
    pub repartition_sink_topics: Vec<String>,
    /// Changelog topics of its state stores.
    pub changelog_topics: Vec<String>,
}

/// One task id group: a sub-topology and the partitions (task numbers) of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamsTasks {
    pub subtopology: String,
    pub partitions: Vec<i32>,
}

/// A streams member's tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberTasks {
    /// The Kafka Streams instance (`process.id`) the member runs in; one instance may run several members.
    pub process_id: String,
    pub active: Vec<StreamsTasks>,
    pub standby: Vec<StreamsTasks>,
    pub warmup: Vec<StreamsTasks>,
}

impl StreamsTopology {
    /// What `kafka-streams-groups.sh --all-input-topics` means (Kafka 4.4's `getInputTopicOffsets`): the source
    /// topics of every sub-topology, without the internal repartition topics.
    pub fn input_topics(&self) -> BTreeSet<String> {
        self.subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter().cloned())
            .collect()
    }

    /// The application's internal topics (repartition and changelog topics) that are not also an input topic:
    /// the state that an offset reset of the input topics does not reset (`--delete-all-internal-topics`).
    pub fn internal_topics(&self) -> BTreeSet<String> {
        let inputs = self.input_topics();
        self.subtopologies
            .iter()
            .flat_map(|s| {
                s.repartition_source_topics
                    .iter()
                    .chain(&s.repartition_sink_topics)
                    .chain(&s.changelog_topics)
                    .cloned()
            })
            .filter(|t| !inputs.contains(t))
            .collect()
    }

    /// The partitions that `tasks` read: partition p of every source and repartition-source topic of each
    /// task's sub-topology. Tasks of a sub-topology this topology does not have read nothing.
    pub fn partitions_of(&self, tasks: &[StreamsTasks]) -> Vec<TopicPartition> {
        let mut out: BTreeSet<TopicPartition> = BTreeSet::new();
        for task in tasks {
            let Some(sub) = self.subtopologies.iter().find(|s| s.id == task.subtopology) else {
                continue;
            };
            for topic in sub.source_topics.iter().chain(&sub.repartition_source_topics) {
                out.extend(task.partitions.iter().map(|p| TopicPartition::new(topic.clone(), *p)));
            }
        }
        sorted(out.into_iter().collect())
    }
}

/// Describes `groups` on their coordinator as streams groups. Groups the broker says are not streams groups
/// (GROUP_ID_NOT_FOUND) are left out, for the next group type to answer; nothing comes back from a broker
/// without streams groups (StreamsGroupDescribe not in its ApiVersions, e.g. the embedded broker).
pub(super) async fn describe_streams_groups(
    conn: &Connection,
    node: i32,
    groups: &[String],
) -> Vec<(String, Result<GroupDescription, KafkaError>)> {
    describe_as(
        conn,
        groups,
        |ids| StreamsGroupDescribeRequest::default().with_group_ids(ids),
        |response| response.groups,
        |g, broker| streams_description(g, node, broker),
    )
    .await
}

fn names(v: Vec<StrBytes>) -> Vec<String> {
    v.into_iter().map(|s| s.to_string()).collect()
}

fn tasks(v: Vec<streams_group_describe_response::TaskIds>) -> Vec<StreamsTasks> {
    let mut out: Vec<StreamsTasks> = v
        .into_iter()
        .map(|t| {
            let mut partitions = t.partitions;
            partitions.sort_unstable();
            StreamsTasks {
                subtopology: t.subtopology_id.to_string(),
                partitions,
            }
        })
        .collect();
    out.sort_by(|a, b| a.subtopology.cmp(&b.subtopology));
    out
}

/// One group of a StreamsGroupDescribe answer; `None` when it is not a streams group.
pub(super) fn streams_description(
    g: streams_group_describe_response::DescribedGroup,
    node: i32,
    broker: &str,
) -> Described {
    let id = g.group_id.0.to_string();
    // GROUP_ID_NOT_FOUND: no streams group of that id (another type, or none).
    if g.error_code == 69 {
        return None;
    }
    let result = check(g.error_code, broker, Api(StreamsGroupDescribeRequest::KEY), || {
        format!("streams group {id}")
    })
    .map(|_| {
        let topology = g.topology.map(|t| StreamsTopology {
            epoch: t.epoch,
            subtopologies: t
                .subtopologies
                .unwrap_or_default()
                .into_iter()
                .map(|s| Subtopology {
                    id: s.subtopology_id.to_string(),
                    source_topics: names(s.source_topics),
                    repartition_source_topics: s
                        .repartition_source_topics
                        .into_iter()
                        .map(|t| t.name.to_string())
                        .collect(),
                    repartition_sink_topics: names(s.repartition_sink_topics),
                    changelog_topics: s
                        .state_changelog_topics
                        .into_iter()
                        .map(|t| t.name.to_string())
                        .collect(),
                })
                .collect(),
        });
        let mut members: Vec<MemberDescription> = g
            .members
            .into_iter()
            .map(|m| {
                let member_tasks = MemberTasks {
                    process_id: m.process_id.to_string(),
                    active: tasks(m.assignment.active_tasks),
                    standby: tasks(m.assignment.standby_tasks),
                    warmup: tasks(m.assignment.warmup_tasks),
                };
                MemberDescription {
                    member_id: m.member_id.to_string(),
                    instance_id: m.instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: topology
                        .as_ref()
                        .map(|t| t.partitions_of(&member_tasks.active))
                        .unwrap_or_default(),
                    tasks: Some(member_tasks),
                }
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        GroupDescription {
            group_id: id.clone(),
            group_type: GroupType::Streams,
            state: GroupState::from_kafka(&g.group_state),
            protocol_type: "streams".to_owned(),
            // Kafka 4.4 names the assignor only from v1 (KIP-1331); its one server-side assignor is `sticky`.
            assignor: String::new(),
            coordinator: node,
            members,
            streams: Some(topology.unwrap_or_default()),
        }
    });
    Some((id, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::streams_group_describe_response::{
        Assignment, DescribedGroup, Member, TaskIds, TopicInfo, Topology,
    };
    use kafka_protocol::messages::{GroupId, StreamsGroupDescribeResponse};
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn task(sub: &str, partitions: &[i32]) -> TaskIds {
        TaskIds::default()
            .with_subtopology_id(s(sub))
            .with_partitions(partitions.to_vec())
    }

    fn topic_info(name: &str) -> TopicInfo {
        TopicInfo::default().with_name(s(name))
    }

    /// The topology of `EosStreams ... repartition`: sub-topology 0 reads `in`, writes `out` and the
    /// repartition topic; sub-topology 1 reads the repartition topic and counts into a store.
    fn app_topology() -> Topology {
        Topology::default().with_epoch(0).with_subtopologies(Some(vec![
            streams_group_describe_response::Subtopology::default()
                .with_subtopology_id(s("0"))
                .with_source_topics(vec![s("in")])
                .with_repartition_sink_topics(vec![s("app-STORE-repartition")]),
            streams_group_describe_response::Subtopology::default()
                .with_subtopology_id(s("1"))
                .with_repartition_source_topics(vec![topic_info("app-STORE-repartition")])
                .with_state_changelog_topics(vec![topic_info("app-STORE-changelog")]),
        ]))
    }

    fn member(id: &str, active: Vec<TaskIds>, standby: Vec<TaskIds>) -> Member {
        Member::default()
            .with_member_id(s(id))
            .with_process_id(s(&format!("process-{id}")))
            .with_client_id(s(&format!("app-{id}-StreamThread-1-consumer")))
            .with_client_host(s("/127.0.0.1"))
            .with_assignment(
                Assignment::default()
                    .with_active_tasks(active)
                    .with_standby_tasks(standby),
            )
    }

    fn group(members: Vec<Member>) -> DescribedGroup {
        DescribedGroup::default()
            .with_group_id(GroupId(s("app")))
            .with_group_state(s("Stable"))
            .with_group_epoch(9)
            .with_assignment_epoch(9)
            .with_topology(Some(app_topology()))
            .with_members(members)
    }

    #[test]
    fn a_member_is_assigned_the_partitions_its_active_tasks_read() {
        let g = group(vec![
            member("b", vec![task("1", &[2, 0])], vec![task("0", &[1])]),
            member("a", vec![task("0", &[1, 0]), task("1", &[1])], vec![]),
        ]);
        let (id, d) = streams_description(g, 1, "b:9092").expect("a streams group");
        let d = d.expect("no error");
        assert_eq!(id, "app");
        assert_eq!(d.group_type, GroupType::Streams);
        assert_eq!(d.protocol_type, "streams");
        assert_eq!(d.state, GroupState::Stable);
        assert_eq!(d.members[0].member_id, "a");
        assert_eq!(
            d.members[0].assignment,
            [tp("app-STORE-repartition", 1), tp("in", 0), tp("in", 1)]
        );
        // Standby tasks read no input: b's task 0_1 is not in its assignment.
        assert_eq!(
            d.members[1].assignment,
            [tp("app-STORE-repartition", 0), tp("app-STORE-repartition", 2)]
        );
        let tasks = d.members[1].tasks.as_ref().expect("streams tasks");
        assert_eq!(tasks.process_id, "process-b");
        assert_eq!(tasks.active[0].partitions, [0, 2]);
        assert_eq!(tasks.standby[0].subtopology, "0");
        assert!(!d.is_inactive());
    }

    #[test]
    fn input_topics_are_the_sources_without_repartition_topics_and_the_rest_is_internal() {
        let g = group(vec![]).with_group_state(s("Empty"));
        let d = streams_description(g, 1, "b:9092").expect("streams").1.expect("ok");
        let topology = d.streams.as_ref().expect("topology");
        assert_eq!(topology.input_topics(), BTreeSet::from(["in".to_owned()]));
        assert_eq!(
            topology.internal_topics(),
            BTreeSet::from(["app-STORE-changelog".to_owned(), "app-STORE-repartition".to_owned()])
        );
        assert!(d.is_inactive());
        assert!(d.exists());
    }

    #[test]
    fn an_uninitialized_topology_gives_no_partitions() {
        let g = group(vec![member("a", vec![task("0", &[0])], vec![])])
            .with_group_state(s("NotReady"))
            .with_topology(Some(Topology::default().with_epoch(0).with_subtopologies(None)));
        let d = streams_description(g, 1, "b:9092").expect("streams").1.expect("ok");
        assert_eq!(d.state, GroupState::NotReady);
        assert!(d.members[0].assignment.is_empty());
        assert!(d.streams.expect("topology").subtopologies.is_empty());
    }

    #[test]
    fn a_group_of_another_type_is_left_for_the_next_describe_and_other_errors_are_kafkas() {
        let other = DescribedGroup::default()
            .with_group_id(GroupId(s("share-one")))
            .with_error_code(69);
        assert!(streams_description(other, 1, "b:9092").is_none());
        let denied = DescribedGroup::default()
            .with_group_id(GroupId(s("secret")))
            .with_error_code(30);
        let (_, d) = streams_description(denied, 1, "b:9092").expect("answered");
        assert_eq!(
            d.expect_err("an error").code(),
            Some(ResponseError::GroupAuthorizationFailed)
        );
    }

    // The wire format, written byte by byte from StreamsGroupDescribeResponse.json (v0, flexible: compact
    // strings and arrays are length+1 varints, every struct ends with an empty tagged-field section).
    fn compact_str(b: &mut BytesMut, v: &str) {
        b.put_u8(v.len() as u8 + 1);
        b.put_slice(v.as_bytes());
    }

    #[test]
    fn a_v0_response_decodes_from_its_schema_bytes() {
        let mut b = BytesMut::new();
        b.put_i32(0); // throttle_time_ms
        b.put_u8(2); // groups: 1
        b.put_i16(0); // error_code
        b.put_u8(0); // error_message: null
        compact_str(&mut b, "app");
        compact_str(&mut b, "Stable");
        b.put_i32(5); // group_epoch
        b.put_i32(4); // assignment_epoch
        b.put_i8(1); // topology: present
        b.put_i32(0); // topology.epoch
        b.put_u8(2); // subtopologies: 1
        compact_str(&mut b, "0");
        b.put_u8(2); // source_topics: 1
        compact_str(&mut b, "in");
        b.put_u8(1); // repartition_sink_topics: 0
        b.put_u8(2); // state_changelog_topics: 1
        compact_str(&mut b, "app-s-changelog");
        b.put_i32(0); // partitions
        b.put_i16(0); // replication_factor
        b.put_u8(1); // topic_configs: 0
        b.put_u8(0); // TopicInfo tags
        b.put_u8(1); // repartition_source_topics: 0
        b.put_u8(0); // Subtopology tags
        b.put_u8(0); // Topology tags
        b.put_u8(2); // members: 1
        compact_str(&mut b, "m1");
        b.put_i32(5); // member_epoch
        b.put_u8(0); // instance_id: null
        b.put_u8(0); // rack_id: null
        compact_str(&mut b, "client-1");
        compact_str(&mut b, "/127.0.0.1");
        b.put_i32(0); // topology_epoch
        compact_str(&mut b, "proc-1");
        b.put_i8(1); // user_endpoint: present
        compact_str(&mut b, "localhost");
        b.put_u16(8080);
        b.put_u8(0); // Endpoint tags
        b.put_u8(2); // client_tags: 1
        compact_str(&mut b, "rack");
        compact_str(&mut b, "a");
        b.put_u8(0); // KeyValue tags
        b.put_u8(2); // task_offsets: 1
        compact_str(&mut b, "0");
        b.put_i32(1);
        b.put_i64(42);
        b.put_u8(0); // TaskOffset tags
        b.put_u8(1); // task_end_offsets: 0
        for active in [true, false] {
            // assignment, then target_assignment
            b.put_u8(if active { 2 } else { 1 }); // active_tasks
            if active {
                compact_str(&mut b, "0");
                b.put_u8(3); // partitions: 2
                b.put_i32(0);
                b.put_i32(1);
                b.put_u8(0); // TaskIds tags
            }
            b.put_u8(1); // standby_tasks: 0
            b.put_u8(1); // warmup_tasks: 0
            b.put_u8(0); // Assignment tags
        }
        b.put_u8(0); // is_classic
        b.put_u8(0); // Member tags
        b.put_i32(-2147483648); // authorized_operations
        b.put_u8(0); // DescribedGroup tags
        b.put_u8(0); // response tags
        let bytes = b.freeze();

        let mut buf = bytes.clone();
        let response = StreamsGroupDescribeResponse::decode(&mut buf, 0).expect("decodes");
        assert!(buf.is_empty(), "every byte is consumed");
        let g = &response.groups[0];
        assert_eq!((g.group_epoch, g.assignment_epoch), (5, 4));
        let m = &g.members[0];
        assert_eq!(m.user_endpoint.as_ref().map(|e| e.port), Some(8080));
        assert_eq!(m.task_offsets[0].offset, 42);
        assert_eq!(m.client_tags[0].value.as_str(), "a");
        assert!(m.target_assignment.active_tasks.is_empty());

        // The encoder writes the same bytes back.
        let mut again = BytesMut::new();
        response.encode(&mut again, 0).expect("encodes");
        assert_eq!(again.freeze(), bytes);
        assert_eq!(response.compute_size(0).expect("size"), bytes.len());

        let (_, d) = streams_description(response.groups[0].clone(), 1, "b:9092").expect("streams");
        let d = d.expect("ok");
        assert_eq!(d.members[0].assignment, [tp("in", 0), tp("in", 1)]);
        assert_eq!(
            d.streams.expect("topology").internal_topics(),
            BTreeSet::from(["app-s-changelog".to_owned()])
        );
        assert!(StreamsGroupDescribeResponse::decode(&mut bytes.slice(..bytes.len() - 3), 0).is_err());
        assert!(
            StreamsGroupDescribeResponse::decode(&mut bytes.clone(), 1).is_err(),
            "only v0 is known"
        );
    }
}
