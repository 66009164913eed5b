//! The coordinator through `handle`, as the broker calls it: requests in, responses out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::*;

struct Topics;

impl TopicCatalog for Topics {
    fn partitions(&self, topic: &str) -> Option<i32> {
        match topic {
            "t" => Some(3),
            "u" => Some(1),
            _ => None,
        }
    }
    fn topic_id(&self, _topic: &str) -> Option<Uuid> {
        None
    }
    fn topic_name(&self, _id: Uuid) -> Option<String> {
        None
    }
    fn topic_names(&self) -> Vec<String> {
        vec!["t".into(), "u".into()]
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn coordinator(data_dir: Option<PathBuf>) -> Arc<GroupCoordinator> {
    GroupCoordinator::new(CoordinatorConfig {
        data_dir,
        initial_rebalance_delay: Duration::ZERO,
        min_session_timeout: Duration::from_secs(1),
        max_session_timeout: Duration::from_secs(300),
        consumer: ConsumerTiming::default(),
    })
    .expect("coordinator")
}

async fn call(c: &Arc<GroupCoordinator>, request: RequestKind, version: i16) -> ResponseKind {
    let client = ClientInfo::new(Some("test-client"), "127.0.0.1:5555".parse().ok());
    c.handle_from(request, version, &client, &Topics).await
}

async fn commit(
    c: &Arc<GroupCoordinator>,
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(4)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ]);
    match call(c, RequestKind::OffsetCommit(request), 9).await {
        ResponseKind::OffsetCommit(r) => r.topics[0].partitions[0].error_code,
        other => panic!("not an OffsetCommit response: {other:?}"),
    }
}

/// Partitions per topic, as a fetch asks for them.
type Wanted<'a> = &'a [(&'a str, &'a [i32])];

/// OffsetFetch v8 for several groups: `None` topics asks for every committed partition.
async fn fetch(c: &Arc<GroupCoordinator>, groups: &[(&str, Option<Wanted<'_>>)]) -> OffsetFetchResponse {
    let request = OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|(g, topics)| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid(g))
                    .with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(TopicName(s(t)))
                                    .with_partition_indexes(ps.to_vec())
                            })
                            .collect()
                    }))
            })
            .collect(),
    );
    match call(c, RequestKind::OffsetFetch(request), 8).await {
        ResponseKind::OffsetFetch(r) => r,
        other => panic!("not an OffsetFetch response: {other:?}"),
    }
}

fn committed(r: &OffsetFetchResponse, group: usize) -> Vec<(String, i32, i64)> {
    r.groups[group]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect()
}

fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| TopicName(s(t))).map(|t| t.0).collect())
        .encode(&mut buf, 3)
        .expect("encode subscription");
    buf.freeze()
}

async fn join(c: &Arc<GroupCoordinator>, group: &str, member: &str, topics: &[&str]) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(topics)),
        ]);
    match call(c, RequestKind::JoinGroup(request), 9).await {
        ResponseKind::JoinGroup(r) => r,
        other => panic!("not a JoinGroup response: {other:?}"),
    }
}

/// One member that joined (with the MEMBER_ID_REQUIRED handshake) and synced: (member id, generation).
async fn stable_member(c: &Arc<GroupCoordinator>, group: &str, topics: &[&str]) -> (String, i32) {
    let first = join(c, group, "", topics).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let joined = join(c, group, first.member_id.as_str(), topics).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader, joined.member_id);
    let sync = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(Bytes::from_static(b"assigned")),
        ]);
    match call(c, RequestKind::SyncGroup(sync), 5).await {
        ResponseKind::SyncGroup(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.assignment, Bytes::from_static(b"assigned"));
            assert_eq!(r.protocol_name.as_deref(), Some("range"));
        }
        other => panic!("not a SyncGroup response: {other:?}"),
    }
    (joined.member_id.to_string(), joined.generation_id)
}

#[tokio::test]
async fn admin_commits_are_fetched_per_group_in_one_request() {
    let c = coordinator(None);
    assert_eq!(commit(&c, "g1", "", -1, "t", 0, 42).await, 0);
    assert_eq!(commit(&c, "g2", "", -1, "t", 1, 7).await, 0);
    assert_eq!(
        commit(&c, "g2", "", -1, "nope", 0, 7).await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        commit(&c, "g3", "m", 2, "t", 0, 7).await,
        ResponseError::IllegalGeneration.code()
    );
    let r = fetch(&c, &[("g1", None), ("g2", Some(&[("t", &[0, 1])])), ("missing", None)]).await;
    assert_eq!(committed(&r, 0), vec![("t".to_owned(), 0, 42)]);
    assert_eq!(committed(&r, 1), vec![("t".to_owned(), 0, -1), ("t".to_owned(), 1, 7)]);
    assert!(committed(&r, 2).is_empty());
    let p = &r.groups[0].topics[0].partitions[0];
    assert_eq!((p.committed_leader_epoch, p.metadata.as_deref()), (4, Some("meta")));
    assert_eq!(r.groups[1].topics[0].partitions[0].metadata.as_deref(), Some(""));
}

#[tokio::test]
async fn single_group_offset_fetch_answers_old_versions() {
    let c = coordinator(None);
    commit(&c, "g", "", -1, "t", 2, 9).await;
    let request = OffsetFetchRequest::default()
        .with_group_id(gid("g"))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![2]),
        ]));
    for version in [1, 3, 7] {
        match call(&c, RequestKind::OffsetFetch(request.clone()), version).await {
            ResponseKind::OffsetFetch(r) => {
                assert_eq!(r.topics[0].partitions[0].committed_offset, 9, "v{version}");
                let epoch = r.topics[0].partitions[0].committed_leader_epoch;
                assert_eq!(epoch, if version >= 5 { 4 } else { -1 }, "v{version}");
            }
            other => panic!("not an OffsetFetch response: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_live_group_is_listed_described_and_protected() {
    let c = coordinator(None);
    let (member, generation) = stable_member(&c, "g", &["t"]).await;

    let heartbeat = HeartbeatRequest::default()
        .with_group_id(gid("g"))
        .with_member_id(s(&member))
        .with_generation_id(generation);
    assert!(
        matches!(call(&c, RequestKind::Heartbeat(heartbeat), 4).await, ResponseKind::Heartbeat(r) if r.error_code == 0)
    );

    let listed = |states: &[&str], types: &[&str]| {
        ListGroupsRequest::default()
            .with_states_filter(states.iter().map(|x| s(x)).collect())
            .with_types_filter(types.iter().map(|x| s(x)).collect())
    };
    let names = |r: ResponseKind| match r {
        ResponseKind::ListGroups(r) => r
            .groups
            .iter()
            .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
            .collect::<Vec<_>>(),
        other => panic!("not a ListGroups response: {other:?}"),
    };
    assert_eq!(
        names(call(&c, RequestKind::ListGroups(listed(&["stable"], &[])), 5).await),
        vec![("g".to_owned(), "Stable".to_owned())]
    );
    assert!(names(call(&c, RequestKind::ListGroups(listed(&["Empty"], &[])), 5).await).is_empty());
    assert!(names(call(&c, RequestKind::ListGroups(listed(&[], &["consumer"])), 5).await).is_empty());
    assert_eq!(
        names(call(&c, RequestKind::ListGroups(listed(&[], &["Classic"])), 5).await).len(),
        1
    );

    let describe = DescribeGroupsRequest::default().with_groups(vec![gid("g"), gid("missing")]);
    match call(&c, RequestKind::DescribeGroups(describe), 5).await {
        ResponseKind::DescribeGroups(r) => {
            let g = &r.groups[0];
            assert_eq!(
                (
                    g.group_state.as_str(),
                    g.protocol_type.as_str(),
                    g.protocol_data.as_str()
                ),
                ("Stable", "consumer", "range")
            );
            let m = &g.members[0];
            assert_eq!(
                (m.client_id.as_str(), m.client_host.as_str()),
                ("test-client", "/127.0.0.1")
            );
            assert_eq!(m.member_metadata, subscription(&["t"]));
            assert_eq!(m.member_assignment, Bytes::from_static(b"assigned"));
            assert_eq!((r.groups[1].error_code, r.groups[1].group_state.as_str()), (0, "Dead"));
        }
        other => panic!("not a DescribeGroups response: {other:?}"),
    }

    assert_eq!(commit(&c, "g", &member, generation, "t", 0, 5).await, 0);
    assert_eq!(commit(&c, "g", &member, generation, "u", 0, 1).await, 0);
    assert_eq!(
        commit(&c, "g", "", -1, "t", 0, 0).await,
        ResponseError::UnknownMemberId.code(),
        "admin commit to a live group"
    );

    let delete_offsets = OffsetDeleteRequest::default().with_group_id(gid("g")).with_topics(
        ["t", "u"]
            .iter()
            .map(|t| {
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)])
            })
            .collect(),
    );
    match call(&c, RequestKind::OffsetDelete(delete_offsets), 0).await {
        ResponseKind::OffsetDelete(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(
                r.topics[0].partitions[0].error_code,
                ResponseError::GroupSubscribedToTopic.code()
            );
            assert_eq!(r.topics[1].partitions[0].error_code, 0, "nobody subscribes to u");
        }
        other => panic!("not an OffsetDelete response: {other:?}"),
    }

    let delete = || DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]);
    match call(&c, RequestKind::DeleteGroups(delete()), 2).await {
        ResponseKind::DeleteGroups(r) => assert_eq!(r.results[0].error_code, ResponseError::NonEmptyGroup.code()),
        other => panic!("not a DeleteGroups response: {other:?}"),
    }

    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![MemberIdentity::default().with_member_id(s(&member))]);
    match call(&c, RequestKind::LeaveGroup(leave), 5).await {
        ResponseKind::LeaveGroup(r) => assert_eq!((r.error_code, r.members[0].error_code), (0, 0)),
        other => panic!("not a LeaveGroup response: {other:?}"),
    }
    let r = fetch(&c, &[("g", None)]).await;
    assert_eq!(
        committed(&r, 0),
        vec![("t".to_owned(), 0, 5)],
        "offsets outlive the members"
    );
    match call(&c, RequestKind::DeleteGroups(delete()), 2).await {
        ResponseKind::DeleteGroups(r) => assert_eq!(r.results[0].error_code, 0),
        other => panic!("not a DeleteGroups response: {other:?}"),
    }
    assert!(committed(&fetch(&c, &[("g", None)]).await, 0).is_empty());
}

#[tokio::test]
async fn acknowledged_commits_are_on_disk_without_a_clean_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = coordinator(Some(dir.path().to_owned()));
    assert_eq!(commit(&first, "g", "", -1, "t", 1, 11).await, 0);
    assert_eq!(commit(&first, "gone", "", -1, "t", 1, 11).await, 0);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![gid("gone")]);
    call(&first, RequestKind::DeleteGroups(delete), 2).await;
    let (member, generation) = stable_member(&first, "live", &["t"]).await;
    assert_eq!(commit(&first, "live", &member, generation, "t", 2, 3).await, 0);
    // No shutdown: as after kill -9, only what was synced before each answer is there.
    let second = coordinator(Some(dir.path().to_owned()));
    let r = fetch(&second, &[("g", None), ("gone", None), ("live", None)]).await;
    assert_eq!(committed(&r, 0), vec![("t".to_owned(), 1, 11)]);
    assert!(committed(&r, 1).is_empty());
    assert_eq!(committed(&r, 2), vec![("t".to_owned(), 2, 3)]);
    let describe = DescribeGroupsRequest::default().with_groups(vec![gid("live")]);
    match call(&second, RequestKind::DescribeGroups(describe), 5).await {
        ResponseKind::DescribeGroups(r) => {
            assert_eq!(
                r.groups[0].group_state.as_str(),
                "Empty",
                "members do not survive a restart"
            );
            assert_eq!(r.groups[0].protocol_type.as_str(), "consumer");
        }
        other => panic!("not a DescribeGroups response: {other:?}"),
    }
    first.shutdown();
}

#[tokio::test]
async fn after_shutdown_requests_are_told_to_find_the_coordinator_again() {
    let c = coordinator(None);
    c.shutdown();
    let r = join(&c, "g", "", &["t"]).await;
    assert_eq!(r.error_code, ResponseError::NotCoordinator.code());
}

#[tokio::test]
async fn retention_drops_expired_offsets_and_then_the_empty_group() {
    let c = GroupCoordinator::with_retention(
        CoordinatorConfig {
            initial_rebalance_delay: Duration::ZERO,
            ..CoordinatorConfig::default()
        },
        Duration::from_secs(60),
    )
    .expect("coordinator");
    assert_eq!(commit(&c, "old", "", -1, "t", 0, 1).await, 0);
    assert_eq!(commit(&c, "fresh", "", -1, "t", 0, 1).await, 0);
    if let Some(g) = c.lock().get_mut("old") {
        g.offsets.put(
            "t",
            0,
            offsets::CommittedOffset {
                offset: 1,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp: wall_ms() - 120_000,
                expire_timestamp: None,
            },
        );
    }
    c.tick(std::time::Instant::now(), wall_ms(), true);
    let groups = c.lock();
    assert!(!groups.contains_key("old"), "expired offsets, then the group itself");
    assert!(groups.contains_key("fresh"));
}

fn journal(c: &Arc<GroupCoordinator>) -> &journal::Journal {
    c.journal.as_ref().expect("a coordinator with a data dir")
}

/// The coordinator of `dir` after a restart: `c` stops, a new one replays the log.
fn restart(c: &Arc<GroupCoordinator>, dir: &std::path::Path) -> Arc<GroupCoordinator> {
    c.shutdown();
    coordinator(Some(dir.to_owned()))
}

async fn delete_group(c: &Arc<GroupCoordinator>, group: &str) -> i16 {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]);
    match call(c, RequestKind::DeleteGroups(request), 2).await {
        ResponseKind::DeleteGroups(r) => r.results[0].error_code,
        other => panic!("not a DeleteGroups response: {other:?}"),
    }
}

/// OffsetDelete of `partitions` of topic `t`: the top-level error code.
async fn delete_offsets(c: &Arc<GroupCoordinator>, group: &str, partitions: &[i32]) -> i16 {
    let request = OffsetDeleteRequest::default()
        .with_group_id(gid(group))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                        .collect(),
                ),
        ]);
    match call(c, RequestKind::OffsetDelete(request), 0).await {
        ResponseKind::OffsetDelete(r) => r.error_code,
        other => panic!("not an OffsetDelete response: {other:?}"),
    }
}

/// The ids ListGroups answers.
async fn listed_groups(c: &Arc<GroupCoordinator>) -> Vec<String> {
    match call(c, RequestKind::ListGroups(ListGroupsRequest::default()), 4).await {
        ResponseKind::ListGroups(r) => r.groups.iter().map(|g| g.group_id.0.to_string()).collect(),
        other => panic!("not a ListGroups response: {other:?}"),
    }
}

/// Yields to the spawned requests until `done` holds of the groups (a 5 s deadline).
async fn until(c: &Arc<GroupCoordinator>, what: &str, done: impl Fn(&HashMap<String, group::Group>) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done(&c.lock()) {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
    }
}

fn offset_in(groups: &HashMap<String, group::Group>, group: &str, partition: i32) -> Option<i64> {
    groups.get(group)?.offsets.get("t", partition).map(|c| c.offset)
}

fn t(partition: i32, offset: i64) -> (String, i32, i64) {
    ("t".to_owned(), partition, offset)
}

#[tokio::test]
async fn a_group_deletion_that_is_not_written_leaves_the_group_and_its_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator(Some(dir.path().to_owned()));
    assert_eq!(commit(&c, "g", "", -1, "t", 0, 5).await, 0);
    assert_eq!(commit(&c, "g", "", -1, "t", 1, 6).await, 0);

    let _ = journal(&c).fail_next_group_commit();
    assert_eq!(
        delete_group(&c, "g").await,
        ResponseError::CoordinatorNotAvailable.code()
    );
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 5), t(1, 6)]);
    assert_eq!(listed_groups(&c).await, vec!["g".to_owned()]);

    let c = restart(&c, dir.path());
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 5), t(1, 6)]);
    assert_eq!(delete_group(&c, "g").await, 0);
    let c = restart(&c, dir.path());
    assert!(committed(&fetch(&c, &[("g", None)]).await, 0).is_empty());
    assert!(listed_groups(&c).await.is_empty());
}

#[tokio::test]
async fn an_offset_deletion_that_is_not_written_leaves_the_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator(Some(dir.path().to_owned()));
    for partition in 0..3 {
        assert_eq!(commit(&c, "g", "", -1, "t", partition, 5).await, 0);
    }

    let _ = journal(&c).fail_next_group_commit();
    assert_eq!(
        delete_offsets(&c, "g", &[0, 1]).await,
        ResponseError::CoordinatorNotAvailable.code()
    );
    let all = vec![t(0, 5), t(1, 5), t(2, 5)];
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), all);

    let c = restart(&c, dir.path());
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), all);
    assert_eq!(delete_offsets(&c, "g", &[0, 1]).await, 0);
    let c = restart(&c, dir.path());
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(2, 5)]);
}

#[tokio::test]
async fn a_failed_group_deletion_keeps_a_commit_made_while_it_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator(Some(dir.path().to_owned()));
    assert_eq!(commit(&c, "g", "", -1, "t", 0, 1).await, 0);
    assert_eq!(commit(&c, "g", "", -1, "t", 1, 2).await, 0);

    let held = journal(&c).fail_next_group_commit();
    let deletion = tokio::spawn({
        let c = c.clone();
        async move { delete_group(&c, "g").await }
    });
    held.taken.await.expect("the deletion's write is taken");
    // A new group of the same id, created by a commit, while the deletion is being written.
    let recommit = tokio::spawn({
        let c = c.clone();
        async move { commit(&c, "g", "", -1, "t", 0, 9).await }
    });
    until(&c, "the new commit", |g| offset_in(g, "g", 0) == Some(9)).await;
    drop(held.release);
    assert_eq!(deletion.await.ok(), Some(ResponseError::CoordinatorNotAvailable.code()));
    assert_eq!(recommit.await.ok(), Some(0));

    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 9), t(1, 2)]);
    let c = restart(&c, dir.path());
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 9), t(1, 2)]);
}

#[tokio::test]
async fn a_failed_offset_deletion_keeps_a_commit_made_while_it_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator(Some(dir.path().to_owned()));
    assert_eq!(commit(&c, "g", "", -1, "t", 0, 1).await, 0);
    assert_eq!(commit(&c, "g", "", -1, "t", 1, 2).await, 0);

    let held = journal(&c).fail_next_group_commit();
    let deletion = tokio::spawn({
        let c = c.clone();
        async move { delete_offsets(&c, "g", &[0, 1]).await }
    });
    held.taken.await.expect("the deletion's write is taken");
    let recommit = tokio::spawn({
        let c = c.clone();
        async move { commit(&c, "g", "", -1, "t", 0, 9).await }
    });
    until(&c, "the new commit", |g| offset_in(g, "g", 0) == Some(9)).await;
    drop(held.release);
    assert_eq!(deletion.await.ok(), Some(ResponseError::CoordinatorNotAvailable.code()));
    assert_eq!(recommit.await.ok(), Some(0));

    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 9), t(1, 2)]);
    let c = restart(&c, dir.path());
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 9), t(1, 2)]);
}

#[tokio::test]
async fn changes_failing_in_one_group_commit_are_taken_back_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator(Some(dir.path().to_owned()));
    assert_eq!(commit(&c, "g", "", -1, "t", 0, 3).await, 0);

    // The first failing group commit is held, so that the commit and the deletion after it are queued
    // together and fail together in the second.
    let held = journal(&c).fail_next_group_commit();
    let _ = journal(&c).fail_next_group_commit();
    let other = tokio::spawn({
        let c = c.clone();
        async move { commit(&c, "other", "", -1, "u", 0, 1).await }
    });
    held.taken.await.expect("the first write is taken");
    let recommit = tokio::spawn({
        let c = c.clone();
        async move { commit(&c, "g", "", -1, "t", 0, 5).await }
    });
    until(&c, "the new commit", |g| offset_in(g, "g", 0) == Some(5)).await;
    let deletion = tokio::spawn({
        let c = c.clone();
        async move { delete_group(&c, "g").await }
    });
    until(&c, "the deletion", |g| !g.contains_key("g")).await;
    drop(held.release);
    let failed = ResponseError::CoordinatorNotAvailable.code();
    assert_eq!(other.await.ok(), Some(failed));
    assert_eq!(recommit.await.ok(), Some(failed));
    assert_eq!(deletion.await.ok(), Some(failed));

    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 3)]);
    assert_eq!(
        listed_groups(&c).await,
        vec!["g".to_owned()],
        "no trace of the refused commit's group"
    );
    let c = restart(&c, dir.path());
    assert_eq!(committed(&fetch(&c, &[("g", None)]).await, 0), vec![t(0, 3)]);
}

#[tokio::test]
async fn a_commit_that_is_not_written_creates_no_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = coordinator(Some(dir.path().to_owned()));
    let _ = journal(&c).fail_next_group_commit();
    assert_eq!(
        commit(&c, "g", "", -1, "t", 0, 3).await,
        ResponseError::CoordinatorNotAvailable.code()
    );
    assert!(listed_groups(&c).await.is_empty());
}

#[tokio::test]
async fn an_expiry_that_is_not_written_is_taken_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = GroupCoordinator::with_retention(
        CoordinatorConfig {
            data_dir: Some(dir.path().to_owned()),
            initial_rebalance_delay: Duration::ZERO,
            ..CoordinatorConfig::default()
        },
        Duration::from_secs(60),
    )
    .expect("coordinator");
    assert_eq!(commit(&c, "old", "", -1, "t", 0, 1).await, 0);
    if let Some(g) = c.lock().get_mut("old")
        && let Some(committed) = g.offsets.get("t", 0).cloned()
    {
        g.offsets.put(
            "t",
            0,
            offsets::CommittedOffset {
                commit_timestamp: wall_ms() - 120_000,
                ..committed
            },
        );
    }

    let _ = journal(&c).fail_next_group_commit();
    c.tick(std::time::Instant::now(), wall_ms(), true);
    // Answered after the expiry's group commit: its failure has been dealt with by then.
    commit(&c, "probe", "", -1, "u", 0, 1).await;
    assert_eq!(
        committed(&fetch(&c, &[("old", None)]).await, 0),
        vec![t(0, 1)],
        "the log still has them: a restart would serve them again"
    );
    c.tick(std::time::Instant::now(), wall_ms(), true);
    commit(&c, "probe", "", -1, "u", 0, 2).await;
    let c = restart(&c, dir.path());
    assert!(
        committed(&fetch(&c, &[("old", None)]).await, 0).is_empty(),
        "the next retention check expires them"
    );
}

fn consumer_heartbeat(group: &str, member: &str, epoch: i32) -> RequestKind {
    RequestKind::ConsumerGroupHeartbeat(
        kafka_protocol::messages::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(Vec::new())),
    )
}

#[tokio::test]
async fn a_group_config_sets_its_kip848_members_heartbeat_interval() {
    let c = coordinator(None);
    c.group_configs
        .alter(
            "configured",
            &[(group_configs::HEARTBEAT_INTERVAL.to_owned(), 0, Some("6000".to_owned()))],
            c.config.consumer,
            false,
        )
        .expect("alter");
    for (group, expected) in [("configured", 6000), ("plain", 5000)] {
        let ResponseKind::ConsumerGroupHeartbeat(r) = call(&c, consumer_heartbeat(group, "m1", 0), 1).await else {
            panic!("not a heartbeat response");
        };
        assert_eq!((r.error_code, r.heartbeat_interval_ms), (0, expected), "{group}: {r:?}");
        assert_eq!(r.member_epoch, 1);
    }
}

#[tokio::test]
async fn a_classic_member_cannot_join_a_kip848_group_with_members_and_the_other_way_round() {
    let c = coordinator(None);
    let ResponseKind::ConsumerGroupHeartbeat(r) = call(&c, consumer_heartbeat("kip848", "m1", 0), 1).await else {
        panic!("not a heartbeat response");
    };
    assert_eq!(r.error_code, 0);
    let join = JoinGroupRequest::default()
        .with_group_id(gid("kip848"))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range"))]);
    let ResponseKind::JoinGroup(j) = call(&c, RequestKind::JoinGroup(join), 9).await else {
        panic!("not a join response");
    };
    assert_eq!(j.error_code, ResponseError::InconsistentGroupProtocol.code());
    // A KIP-848 group with a member is not empty: DeleteGroups refuses it.
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![gid("kip848")]);
    let ResponseKind::DeleteGroups(d) = call(&c, RequestKind::DeleteGroups(delete), 2).await else {
        panic!("not a delete response");
    };
    assert_eq!(d.results[0].error_code, ResponseError::NonEmptyGroup.code());
}
