//! ShareGroupDescribe (KIP-932): a share group's state and members, each with the partitions it is assigned
//! (share groups assign partitions too, but several members may share one).

use super::describe::{Described, GroupDescription, MemberDescription, assigned_partitions, describe_as};
use super::state::{GroupState, GroupType};
use crate::kafka::connection::Connection;
use crate::kafka::error::{KafkaError, check};
use crate::wire::Api;
use kafka_protocol::messages::{ShareGroupDescribeRequest, share_group_describe_response};
use kafka_protocol::protocol::Request;

/// Describes `groups` on their coordinator as share groups. Groups the broker says are not share groups
/// (GROUP_ID_NOT_FOUND) are left out, for the next group type to answer; nothing at all comes back from a
/// broker without share groups.
pub(super) async fn describe_share_groups(
    conn: &Connection,
    node: i32,
    groups: &[String],
) -> Vec<(String, Result<GroupDescription, KafkaError>)> {
    describe_as(
        conn,
        groups,
        |ids| ShareGroupDescribeRequest::default().with_group_ids(ids),
        |response| response.groups,
        |g, broker| share_description(g, node, broker),
    )
    .await
}

/// One group of a ShareGroupDescribe answer; `None` when it is not a share group.
pub(super) fn share_description(
    g: share_group_describe_response::DescribedGroup,
    node: i32,
    broker: &str,
) -> Described {
    let id = g.group_id.0.to_string();
    // GROUP_ID_NOT_FOUND: no share group of that id (another type, or none).
    if g.error_code == 69 {
        return None;
    }
    let result = check(g.error_code, broker, Api(ShareGroupDescribeRequest::KEY), || {
        format!("share group {id}")
    })
    .map(|_| {
        let mut members: Vec<MemberDescription> = g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                instance_id: None,
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
            group_type: GroupType::Share,
            state: GroupState::from_kafka(&g.group_state),
            protocol_type: "share".to_owned(),
            assignor: g.assignor_name.to_string(),
            coordinator: node,
            members,
            streams: None,
        }
    });
    Some((id, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::metadata::TopicPartition;
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::share_group_describe_response::{Assignment, Member, TopicPartitions};
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn member(id: &str, topics: &[(&str, &[i32])]) -> Member {
        Member::default()
            .with_member_id(s(id))
            .with_client_id(s("console-share-consumer"))
            .with_client_host(s("/127.0.0.1"))
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
    fn a_share_group_is_decoded_with_its_members_and_their_partitions() {
        let g = share_group_describe_response::DescribedGroup::default()
            .with_group_id(GroupId(s("orders-share")))
            .with_group_state(s("Stable"))
            .with_assignor_name(s("simple"))
            .with_members(vec![
                member("m2", &[("orders", &[1, 0])]),
                member("m1", &[("orders", &[0, 1]), ("audit", &[0])]),
            ]);
        let (id, d) = share_description(g, 3, "b:9092").expect("a share group");
        let d = d.expect("no error");
        assert_eq!(id, "orders-share");
        assert_eq!(d.group_type, GroupType::Share);
        assert_eq!(d.state, GroupState::Stable);
        assert_eq!(d.assignor, "simple");
        assert_eq!(d.coordinator, 3);
        assert_eq!(d.members.len(), 2);
        assert_eq!(d.members[0].member_id, "m1");
        assert_eq!(
            d.members[0].assignment,
            vec![
                TopicPartition::new("audit", 0),
                TopicPartition::new("orders", 0),
                TopicPartition::new("orders", 1)
            ]
        );
        // Two members share the same partitions: share groups allow it.
        assert_eq!(
            d.members[1].assignment,
            vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)]
        );
        assert!(!d.is_inactive());
    }

    #[test]
    fn a_group_of_another_type_is_left_for_the_next_describe() {
        let g = share_group_describe_response::DescribedGroup::default()
            .with_group_id(GroupId(s("classic-one")))
            .with_error_code(69);
        assert!(share_description(g, 1, "b:9092").is_none());
    }

    #[test]
    fn other_errors_are_kafkas() {
        let g = share_group_describe_response::DescribedGroup::default()
            .with_group_id(GroupId(s("secret")))
            .with_error_code(30);
        let (_, d) = share_description(g, 1, "b:9092").expect("answered");
        assert_eq!(
            d.expect_err("an error").code(),
            Some(ResponseError::GroupAuthorizationFailed)
        );
    }
}
