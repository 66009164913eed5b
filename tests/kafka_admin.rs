//! The admin client (`src/kafka/`) against a real Apache Kafka broker and the embedded broker (each test on
//! both, `on_both_brokers!` at the end, unless it says otherwise), checked against what real clients
//! (confluent-kafka) did and what Kafka's own tools (`kafka-consumer-groups`) report.

#[macro_use]
mod support;

use kafka_group_operator::kafka::{
    ClientConfig, GroupFilter, GroupState, GroupType, Isolation, KafkaClient, KafkaError, LagScanner, LagSnapshot,
    NewTopic, OffsetSpec, ScanPath, TopicPartition,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::clients::{self, GroupProtocol as ClientProtocol};
use support::{ApacheKafka, TestBroker, unique_name};

fn client(kafka: &dyn TestBroker) -> KafkaClient {
    KafkaClient::new(ClientConfig::new([kafka.bootstrap()])).expect("client")
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

async fn topic_with_records(client: &KafkaClient, kafka: &dyn TestBroker, partitions: i32, records: usize) -> String {
    let topic = unique_name("admin");
    client
        .create_topics(&[NewTopic::new(&topic, partitions)])
        .await
        .expect("create topic");
    if records > 0 {
        clients::produce(&kafka.bootstrap(), &topic, records);
    }
    topic
}

async fn metadata_lists_the_broker_and_the_partitions_of_a_new_topic(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 4, 0).await;
    let metadata = client
        .metadata_with(std::slice::from_ref(&topic))
        .await
        .expect("metadata");
    assert_eq!(metadata.brokers.len(), 1);
    assert!(metadata.cluster_id.is_some());
    let info = &metadata.topics[&topic];
    assert_eq!(info.partitions.len(), 4);
    assert!(info.partitions.values().all(|p| p.leader == 1), "{info:?}");
}

async fn offsets_committed_by_a_classic_confluent_consumer_are_read_back_exactly(kafka: &dyn TestBroker) {
    offsets_committed_by_confluent_are_read_back(kafka, ClientProtocol::Classic).await;
}

async fn offsets_committed_by_a_kip848_confluent_consumer_are_read_back_exactly(kafka: &dyn TestBroker) {
    offsets_committed_by_confluent_are_read_back(kafka, ClientProtocol::Consumer).await;
}

async fn offsets_committed_by_confluent_are_read_back(kafka: &dyn TestBroker, protocol: ClientProtocol) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 3, 60).await;
    let group = unique_name("readback");
    let committed = clients::consume_and_commit(&kafka.bootstrap(), &topic, &group, protocol, 40);

    let offsets = client.group_offsets(&group).await.expect("offsets");
    let ours: BTreeMap<String, i64> = offsets
        .iter()
        .map(|(tp, c)| (format!("{}:{}", tp.topic, tp.partition), c.offset))
        .collect();
    let theirs: BTreeMap<String, i64> = committed.into_iter().filter(|(_, o)| *o >= 0).collect();
    assert_eq!(ours, theirs);

    let description = client.describe_group(&group).await.expect("describe");
    let expected_protocol = match protocol {
        ClientProtocol::Classic => GroupType::Classic,
        ClientProtocol::Consumer => GroupType::Consumer,
    };
    assert_eq!(description.group_type, expected_protocol, "{description:?}");
    assert_eq!(description.state, GroupState::Empty, "{description:?}");
    assert!(description.is_inactive());
}

async fn many_groups_are_fetched_in_one_call_and_unknown_groups_have_no_offsets(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 2, 10).await;
    let groups: Vec<String> = (0..5).map(|i| unique_name(&format!("many{i}"))).collect();
    for (i, g) in groups.iter().enumerate() {
        let offsets = BTreeMap::from([(tp(&topic, 0), i as i64), (tp(&topic, 1), 1)]);
        client.commit_offsets(g, &offsets).await.expect("admin commit");
    }
    let unknown = unique_name("never-existed");
    let mut asked = groups.clone();
    asked.push(unknown.clone());
    let results = client.committed_offsets(&asked).await;
    for (i, g) in groups.iter().enumerate() {
        let offsets = results[g].as_ref().expect("offsets");
        assert_eq!(offsets[&tp(&topic, 0)].offset, i as i64);
        assert_eq!(offsets[&tp(&topic, 1)].offset, 1);
    }
    assert!(
        results[&unknown]
            .as_ref()
            .expect("unknown group is not an error")
            .is_empty()
    );
    let described = client.describe_group(&unknown).await.expect("describe unknown");
    assert!(!described.exists(), "{described:?}");
}

async fn an_admin_commit_to_an_empty_group_is_visible_to_kafka_consumer_groups(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 2, 20).await;
    let group = unique_name("admincommit");
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &group, ClientProtocol::Classic, 20);
    let target = BTreeMap::from([(tp(&topic, 0), 1), (tp(&topic, 1), 2)]);
    client.commit_offsets(&group, &target).await.expect("commit");

    let rows = kafka.describe_group_offsets(&group);
    let seen: BTreeMap<TopicPartition, i64> = rows
        .iter()
        .map(|r| (tp(&r.topic, r.partition), r.current_offset.expect("committed")))
        .collect();
    assert_eq!(seen, target);
}

async fn list_groups_filters_by_state_and_type(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 1, 5).await;
    let classic = unique_name("listed-classic");
    let consumer = unique_name("listed-consumer");
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &classic, ClientProtocol::Classic, 5);
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &consumer, ClientProtocol::Consumer, 5);

    let all = client.list_groups(&GroupFilter::default()).await.expect("list");
    let find = |id: &str| all.iter().find(|g| g.group_id == id).cloned();
    assert_eq!(find(&classic).and_then(|g| g.group_type), Some(GroupType::Classic));
    assert_eq!(find(&consumer).and_then(|g| g.group_type), Some(GroupType::Consumer));

    let only_consumer = GroupFilter {
        types: vec![GroupType::Consumer],
        ..Default::default()
    };
    let listed = client.list_groups(&only_consumer).await.expect("list consumer");
    assert!(listed.iter().any(|g| g.group_id == consumer));
    assert!(!listed.iter().any(|g| g.group_id == classic));

    let only_stable = GroupFilter {
        states: vec![GroupState::Stable],
        ..Default::default()
    };
    let listed = client.list_groups(&only_stable).await.expect("list stable");
    assert!(
        !listed.iter().any(|g| g.group_id == classic || g.group_id == consumer),
        "{listed:?}"
    );
}

async fn log_offsets_earliest_latest_and_the_lag_snapshot_agree_with_kafka_consumer_groups(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 3, 90).await;
    let group = unique_name("lag");
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &group, ClientProtocol::Classic, 30);
    let before = client
        .lag_snapshot(std::slice::from_ref(&group), Isolation::ReadUncommitted)
        .await
        .expect("snapshot before")
        .total_lag();
    // Five more records on every partition, so that each partition the group committed on (which ones depends
    // on how the consumer's fetches went) gains exactly five.
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    for p in 0..3 {
        clients::produce_with_timestamps(&kafka.bootstrap(), &topic, p, 5, now_ms, 1);
    }

    let partitions: Vec<TopicPartition> = (0..3).map(|p| tp(&topic, p)).collect();
    let earliest = client
        .list_offsets(&partitions, OffsetSpec::Earliest, Isolation::ReadUncommitted)
        .await
        .expect("earliest");
    let latest = client
        .list_offsets(&partitions, OffsetSpec::Latest, Isolation::ReadCommitted)
        .await
        .expect("latest");
    assert!(earliest.values().all(|o| o.offset == 0), "{earliest:?}");
    assert_eq!(latest.values().map(|o| o.offset).sum::<i64>(), 105);

    let snapshot = client
        .lag_snapshot(std::slice::from_ref(&group), Isolation::ReadUncommitted)
        .await
        .expect("snapshot");
    let lag = &snapshot.groups[&group];
    let rows = kafka.describe_group_offsets(&group);
    // Like kafka-consumer-groups, the snapshot covers the partitions the group committed on.
    assert_eq!(lag.partitions.len(), rows.len());
    assert_eq!(lag.total_lag, rows.iter().filter_map(|r| r.lag).sum::<i64>());
    assert_eq!(
        lag.total_lag,
        before + 5 * lag.partitions.len() as i64,
        "5 records per partition were produced after the commit: {lag:?}"
    );
    for row in rows {
        let ours = lag
            .partitions
            .iter()
            .find(|p| *p.topic == *row.topic && p.partition == row.partition)
            .expect("partition in snapshot");
        assert_eq!(Some(ours.committed), row.current_offset, "{row:?}");
        assert_eq!(ours.log_end, row.log_end_offset, "{row:?}");
        assert_eq!(ours.lag, row.lag, "{row:?}");
    }
}

async fn delete_offsets_and_delete_group_remove_what_they_name(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 2, 10).await;
    let group = unique_name("deletes");
    client
        .commit_offsets(&group, &BTreeMap::from([(tp(&topic, 0), 3), (tp(&topic, 1), 4)]))
        .await
        .expect("commit");
    client
        .delete_offsets(&group, &[tp(&topic, 0)])
        .await
        .expect("delete offsets");
    let left = client.group_offsets(&group).await.expect("offsets");
    assert_eq!(left.keys().cloned().collect::<Vec<_>>(), vec![tp(&topic, 1)]);

    let results = client.delete_groups(std::slice::from_ref(&group)).await;
    results[&group].as_ref().expect("delete group");
    assert!(client.group_offsets(&group).await.expect("offsets").is_empty());
    let again = client.delete_groups(std::slice::from_ref(&group)).await;
    let err = again[&group].as_ref().expect_err("deleting twice fails");
    assert!(err.to_string().contains("GROUP_ID_NOT_FOUND"), "{err}");
}

async fn topics_are_created_grown_and_deleted(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 1, 0).await;
    client.create_partitions(&topic, 3).await.expect("grow");
    let metadata = client
        .metadata_with(std::slice::from_ref(&topic))
        .await
        .expect("metadata");
    assert_eq!(metadata.topics[&topic].partitions.len(), 3);

    let again = client
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect_err("exists");
    assert!(again.to_string().contains("TOPIC_ALREADY_EXISTS"), "{again}");

    client
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .expect("delete");
    let err = client
        .list_offsets(&[tp(&topic, 0)], OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await
        .expect_err("deleted topic");
    assert!(matches!(err, KafkaError::UnknownTopic(ref t) if *t == topic), "{err}");
}

async fn an_unknown_partition_of_a_known_topic_is_a_named_error(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 1, 0).await;
    let err = client
        .list_offsets(&[tp(&topic, 7)], OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await
        .expect_err("no partition 7");
    assert!(
        matches!(err, KafkaError::UnknownPartition { partition: 7, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_bootstrap_server_fails_within_the_deadline_and_names_it() {
    let port = support::process::free_port();
    let mut config = ClientConfig::new([format!("127.0.0.1:{port}")]);
    config.operation_timeout = Duration::from_secs(2);
    let client = KafkaClient::new(config).expect("client");
    let started = Instant::now();
    let err = client.metadata().await.expect_err("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(matches!(err, KafkaError::DeadlineExceeded { .. }), "{err}");
}

#[tokio::test]
async fn a_broker_stopped_mid_operation_gives_an_error_within_the_deadline() {
    let kafka = ApacheKafka::start();
    let mut config = ClientConfig::new([kafka.bootstrap()]);
    config.operation_timeout = Duration::from_secs(3);
    config.request_timeout = Duration::from_secs(2);
    let client = KafkaClient::new(config).expect("client");
    let topic = unique_name("doomed");
    client.create_topics(&[NewTopic::new(&topic, 1)]).await.expect("create");
    client.metadata().await.expect("metadata");
    drop(kafka); // stops the broker
    let started = Instant::now();
    let err = client
        .list_offsets(&[tp(&topic, 0)], OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await
        .expect_err("the broker is gone");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.is_retriable() || matches!(err, KafkaError::DeadlineExceeded { .. }),
        "{err}"
    );
}

async fn a_live_classic_group_is_described_with_members_and_decoded_assignments(kafka: &dyn TestBroker) {
    describe_live_group(kafka, ClientProtocol::Classic).await;
}

async fn a_live_kip848_group_is_described_with_members_and_decoded_assignments(kafka: &dyn TestBroker) {
    describe_live_group(kafka, ClientProtocol::Consumer).await;
}

async fn describe_live_group(kafka: &dyn TestBroker, protocol: ClientProtocol) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 3, 10).await;
    let group = unique_name("live");
    let member = clients::GroupMember::join(&kafka.bootstrap(), &topic, &group, protocol, Some("static-1"));

    let description = client.describe_group(&group).await.expect("describe");
    assert_eq!(
        description.state,
        GroupState::Stable,
        "{description:?}\n{}",
        member.log()
    );
    assert_eq!(description.members.len(), 1, "{description:?}");
    let m = &description.members[0];
    assert_eq!(m.client_id, "kgo-test-member");
    assert_eq!(m.instance_id.as_deref(), Some("static-1"));
    assert!(!m.host.is_empty());
    let expected: Vec<TopicPartition> = member.assignment.iter().map(|(t, p)| tp(t, *p)).collect();
    assert_eq!(m.assignment, expected);
    assert_eq!(m.assignment.len(), 3);
    assert!(!description.is_inactive());

    // An admin commit while a member is present is refused, and nothing is committed.
    let before = client.group_offsets(&group).await.expect("offsets");
    let err = client
        .commit_offsets(&group, &BTreeMap::from([(tp(&topic, 0), 5)]))
        .await
        .expect_err("group has a member");
    assert!(matches!(err, KafkaError::GroupNotEmpty { members: 1, .. }), "{err}");
    assert!(err.to_string().contains("stop its consumers"), "{err}");
    assert_eq!(client.group_offsets(&group).await.expect("offsets"), before);

    let listed = client
        .list_groups(&GroupFilter {
            states: vec![GroupState::Stable],
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(listed.iter().any(|g| g.group_id == group), "{listed:?}");
    member.leave();
}

async fn timestamp_lookups_agree_with_what_the_producer_wrote(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 1, 0).await;
    let start = 1_700_000_000_000_i64;
    clients::produce_with_timestamps(&kafka.bootstrap(), &topic, 0, 20, start, 1000);
    let p0 = [tp(&topic, 0)];

    let at = |ms| OffsetSpec::Timestamp(ms);
    let exact = client
        .list_offsets(&p0, at(start + 5000), Isolation::ReadUncommitted)
        .await
        .expect("ts");
    assert_eq!(exact[&p0[0]].offset, 5);
    assert_eq!(exact[&p0[0]].timestamp, start + 5000);
    let between = client
        .list_offsets(&p0, at(start + 5500), Isolation::ReadUncommitted)
        .await
        .expect("ts");
    assert_eq!(between[&p0[0]].offset, 6, "first record at or after the time");
    let future = client
        .list_offsets(&p0, at(start + 10_000_000), Isolation::ReadUncommitted)
        .await
        .expect("ts");
    assert_eq!(future[&p0[0]].offset, -1, "no record that late: Kafka answers -1");
    let max = client
        .list_offsets(&p0, OffsetSpec::MaxTimestamp, Isolation::ReadUncommitted)
        .await
        .expect("max");
    assert_eq!((max[&p0[0]].offset, max[&p0[0]].timestamp), (19, start + 19_000));

    for offset in [0, 7, 19] {
        let ts = client.record_timestamp(&p0[0], offset).await.expect("record timestamp");
        assert_eq!(ts, Some(start + offset * 1000), "offset {offset}");
    }
    assert_eq!(client.record_timestamp(&p0[0], 20).await.expect("at the end"), None);
}

#[tokio::test]
async fn a_broker_that_never_answers_gives_a_timeout_within_the_deadline_not_a_hang() {
    // A TCP server that accepts and reads but never writes: every request must time out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut sink).await;
            });
        }
    });
    let mut config = ClientConfig::new([addr.to_string()]);
    config.request_timeout = Duration::from_millis(500);
    config.operation_timeout = Duration::from_secs(2);
    let client = KafkaClient::new(config).expect("client");
    let started = Instant::now();
    let err = client.metadata().await.expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, KafkaError::DeadlineExceeded { .. }), "{err}");
    assert!(err.to_string().contains("did not answer ApiVersions"), "{err}");
}

/// Per group: (topic, partition) -> (committed, log end), what two snapshots must agree on.
type Committed = BTreeMap<String, BTreeMap<(String, i32), (i64, Option<i64>)>>;

fn committed_of(snapshot: &LagSnapshot) -> Committed {
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    snapshot
        .groups
        .iter()
        .map(|(g, lag)| {
            let partitions = lag
                .partitions
                .iter()
                .map(|p| ((p.topic.to_string(), p.partition), (p.committed, p.log_end)))
                .collect();
            (g.clone(), partitions)
        })
        .collect()
}

/// A tailing scan and a plain OffsetFetch snapshot of the same groups, which must agree; returns the path.
async fn tailing_scan_agrees_with_plain(scanner: &mut LagScanner, groups: &[String]) -> (ScanPath, Committed) {
    let scan = scanner
        .scan(groups, Isolation::ReadUncommitted)
        .await
        .expect("tailing scan");
    let plain = scanner
        .client()
        .lag_snapshot(groups, Isolation::ReadUncommitted)
        .await
        .expect("plain snapshot");
    let (tailed, plain) = (committed_of(&scan.snapshot), committed_of(&plain));
    assert_eq!(tailed, plain, "tailing ({:?}) vs plain OffsetFetch", scan.path);
    assert_eq!(
        scan.snapshot.total_lag(),
        plain
            .values()
            .flatten()
            .map(|(_, (c, e))| e.map_or(0, |e| (e - c).max(0)))
            .sum::<i64>()
    );
    (scan.path, tailed)
}

/// Apache Kafka only (the embedded broker has no `__consumer_offsets`; see the test on both brokers below):
/// after the baseline, what real consumers of both protocols, an admin, DeleteOffsets and DeleteGroups did
/// is in the next tailing scan, which equals a plain OffsetFetch snapshot and kafka-consumer-groups.
#[tokio::test(flavor = "multi_thread")]
async fn tailing_scans_follow_commits_deletions_and_new_groups() {
    let kafka: &dyn TestBroker = ApacheKafka::shared();
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 3, 90).await;
    let classic = unique_name("tail-classic");
    let kip848 = unique_name("tail-consumer");
    let admin = unique_name("tail-admin");
    let doomed = unique_name("tail-doomed");
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &classic, ClientProtocol::Classic, 30);
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &kip848, ClientProtocol::Consumer, 30);
    let admin_offsets = BTreeMap::from([(tp(&topic, 0), 2), (tp(&topic, 1), 3), (tp(&topic, 2), 4)]);
    client
        .commit_offsets(&admin, &admin_offsets)
        .await
        .expect("admin commit");
    client
        .commit_offsets(&doomed, &BTreeMap::from([(tp(&topic, 0), 1)]))
        .await
        .expect("admin commit");
    let mut groups = vec![classic.clone(), kip848.clone(), admin.clone(), doomed.clone()];

    let mut scanner = LagScanner::new(client.clone());
    let (path, _) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    assert_eq!(path, ScanPath::Baseline);

    // Changes after the baseline, by real consumers and by an admin.
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &classic, ClientProtocol::Classic, 30);
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &kip848, ClientProtocol::Consumer, 30);
    client
        .commit_offsets(&admin, &BTreeMap::from([(tp(&topic, 1), 9)]))
        .await
        .expect("admin commit");
    client
        .delete_offsets(&admin, &[tp(&topic, 0)])
        .await
        .expect("delete offsets");
    client.delete_groups(std::slice::from_ref(&doomed)).await[&doomed]
        .as_ref()
        .expect("delete group");
    let newcomer = unique_name("tail-new");
    client
        .commit_offsets(&newcomer, &BTreeMap::from([(tp(&topic, 2), 5)]))
        .await
        .expect("admin commit");
    groups.push(newcomer.clone());

    let (path, seen) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    let ScanPath::Tail { records, new_groups } = path else {
        panic!("expected the tail path, got {path:?}");
    };
    assert_eq!(new_groups, 1, "only {newcomer} is new");
    assert!(
        records >= 6,
        "the commits since the baseline were read from the tail: {records}"
    );
    let admin_now: BTreeMap<(String, i32), i64> = seen[&admin].iter().map(|(k, (c, _))| (k.clone(), *c)).collect();
    assert_eq!(
        admin_now,
        BTreeMap::from([((topic.clone(), 1), 9), ((topic.clone(), 2), 4)])
    );
    assert!(seen[&doomed].is_empty(), "{:?}", seen[&doomed]);
    assert_eq!(seen[&newcomer].len(), 1);
    // What Kafka's own tool reports for the groups the consumers moved.
    for group in [&classic, &kip848] {
        let rows: BTreeMap<(String, i32), i64> = kafka
            .describe_group_offsets(group)
            .iter()
            .filter_map(|r| Some(((r.topic.clone(), r.partition), r.current_offset?)))
            .collect();
        let ours: BTreeMap<(String, i32), i64> = seen[group].iter().map(|(k, (c, _))| (k.clone(), *c)).collect();
        assert_eq!(ours, rows, "group {group}");
        assert_eq!(
            ours.values().sum::<i64>(),
            60,
            "group {group} consumed 60 records in two runs"
        );
    }

    // A group dropped from the scanned set is forgotten; scanned again later, it is read as a new group.
    let (path, _) = tailing_scan_agrees_with_plain(&mut scanner, &groups[..2]).await;
    assert!(matches!(path, ScanPath::Tail { new_groups: 0, .. }), "{path:?}");
    let (path, _) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    assert!(matches!(path, ScanPath::Tail { new_groups: 3, .. }), "{path:?}");
}

/// Apache Kafka only (the embedded broker keeps offsets in its own store, not in a `__consumer_offsets` topic that
/// a scan could tail): an offset commit inside a transaction that is aborted never shows in a tailing scan
/// (READ_COMMITTED, the aborted transactions the Fetch lists are skipped); one that commits does. Each scan
/// waits until the transaction's markers are written (no open transaction holds back the last stable offset
/// of `__consumer_offsets`), so that the tail reads past the transaction's records.
#[tokio::test(flavor = "multi_thread")]
async fn a_transactional_offset_commit_applies_only_when_its_transaction_commits() {
    let kafka: &dyn TestBroker = ApacheKafka::shared();
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 1, 20).await;
    let group = unique_name("tail-txn");
    client
        .commit_offsets(&group, &BTreeMap::from([(tp(&topic, 0), 1)]))
        .await
        .expect("admin commit");
    let groups = vec![group.clone()];
    let mut scanner = LagScanner::new(client.clone());
    let (path, _) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    assert_eq!(path, ScanPath::Baseline);

    clients::transactional_commit(&kafka.bootstrap(), &topic, 0, &group, 7, false);
    no_open_transactions_in_consumer_offsets(&client).await;
    let (path, seen) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    assert!(matches!(path, ScanPath::Tail { records: 1.., .. }), "{path:?}");
    assert_eq!(
        seen[&group][&(topic.clone(), 0)].0,
        7,
        "the committed transaction's offset applies"
    );

    clients::transactional_commit(&kafka.bootstrap(), &topic, 0, &group, 5, true);
    no_open_transactions_in_consumer_offsets(&client).await;
    let (path, seen) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    assert!(matches!(path, ScanPath::Tail { .. }), "{path:?}");
    assert_eq!(
        seen[&group][&(topic.clone(), 0)].0,
        7,
        "the aborted commit (5) is not applied"
    );
}

/// Waits until every partition of `__consumer_offsets` has its last stable offset at its high watermark.
async fn no_open_transactions_in_consumer_offsets(client: &KafkaClient) {
    let metadata = client.refresh_metadata().await.expect("metadata");
    let partitions = metadata
        .partitions_of("__consumer_offsets")
        .expect("__consumer_offsets");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stable = client
            .list_offsets(&partitions, OffsetSpec::Latest, Isolation::ReadCommitted)
            .await
            .expect("last stable offsets");
        let end = client
            .list_offsets(&partitions, OffsetSpec::Latest, Isolation::ReadUncommitted)
            .await
            .expect("high watermarks");
        if stable == end {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "transactions still open: {stable:?} vs {end:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On both brokers the tailing scanner gives what the plain snapshot gives and says how: Apache Kafka through
/// a baseline and then the tail, the embedded broker (which keeps offsets in its own store, not in a
/// `__consumer_offsets` topic) through the plain path, with the reason.
async fn the_tailing_scanner_agrees_with_the_plain_snapshot_and_names_its_path(kafka: &dyn TestBroker) {
    let client = client(kafka);
    let topic = topic_with_records(&client, kafka, 2, 40).await;
    let group = unique_name("tail-both");
    client
        .commit_offsets(&group, &BTreeMap::from([(tp(&topic, 0), 3)]))
        .await
        .expect("admin commit");
    let groups = vec![group.clone(), unique_name("tail-never-committed")];
    let mut scanner = LagScanner::new(client.clone());
    let (first, _) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &group, ClientProtocol::Classic, 10);
    let (second, seen) = tailing_scan_agrees_with_plain(&mut scanner, &groups).await;
    assert_eq!(seen[&groups[1]].len(), 0);
    assert_eq!(seen[&group].values().map(|(c, _)| c).sum::<i64>(), 13, "{seen:?}");
    let metadata = client.refresh_metadata().await.expect("metadata");
    if metadata.topics.contains_key("__consumer_offsets") {
        assert_eq!(first, ScanPath::Baseline, "{}", kafka.name());
        assert!(matches!(second, ScanPath::Tail { .. }), "{}: {second:?}", kafka.name());
    } else {
        assert_eq!(kafka.name(), "the embedded broker");
        for path in [first, second] {
            let ScanPath::Plain { reason } = path else {
                panic!("expected the plain path, got {path:?}");
            };
            assert!(reason.contains("__consumer_offsets"), "{reason}");
        }
    }
}

on_both_brokers!(
    offsets_committed_by_a_kip848_confluent_consumer_are_read_back_exactly,
    list_groups_filters_by_state_and_type,
    a_live_kip848_group_is_described_with_members_and_decoded_assignments,
    metadata_lists_the_broker_and_the_partitions_of_a_new_topic,
    many_groups_are_fetched_in_one_call_and_unknown_groups_have_no_offsets,
    an_admin_commit_to_an_empty_group_is_visible_to_kafka_consumer_groups,
    log_offsets_earliest_latest_and_the_lag_snapshot_agree_with_kafka_consumer_groups,
    delete_offsets_and_delete_group_remove_what_they_name,
    topics_are_created_grown_and_deleted,
    an_unknown_partition_of_a_known_topic_is_a_named_error,
    timestamp_lookups_agree_with_what_the_producer_wrote,
    offsets_committed_by_a_classic_confluent_consumer_are_read_back_exactly,
    a_live_classic_group_is_described_with_members_and_decoded_assignments,
    the_tailing_scanner_agrees_with_the_plain_snapshot_and_names_its_path,
);
