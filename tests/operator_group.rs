//! The ConsumerGroup reconciler against a real API server and each broker, Apache Kafka and the embedded broker
//! (`on_both_brokers!`): observation, offsetInit, deletion policies, quiet status writes; the retention guard
//! (a broker with one-minute offset retention) and leader election on Apache Kafka.

#[macro_use]
mod support;

use futures_util::StreamExt;
use kafka_group_operator::api::{ConsumerGroup, RetentionProtection};
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use support::clients::{self, GroupProtocol as ClientProtocol};
use support::operator::Operator;
use support::scenario::{Scenario, resource};
use support::wait::{event, has_condition, until};
use support::{ApacheKafka, ControlPlane, TestBroker, unique_name};

const T: Duration = Duration::from_secs(60);

type Env = Scenario;

async fn setup(prefix: &str, kafka: &dyn TestBroker) -> Env {
    Scenario::start(prefix, kafka).await
}

fn group(name: &str, spec: serde_json::Value) -> ConsumerGroup {
    resource("ConsumerGroup", name, spec)
}

async fn topic(env: &Env, kafka: &dyn TestBroker, partitions: i32, records: usize) -> String {
    let name = unique_name("cg");
    env.kafka
        .create_topics(&[NewTopic::new(&name, partitions)])
        .await
        .expect("create topic");
    if records > 0 {
        clients::produce(&kafka.bootstrap(), &name, records);
    }
    name
}

async fn offset_init_latest_commits_the_log_end_of_every_partition_of_a_new_group(kafka: &'static dyn TestBroker) {
    let env = setup("cg-init", kafka).await;
    let topic = topic(&env, kafka, 3, 30).await;
    let group_id = unique_name("init");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic], "offsetInit": {"policy": "latest"}});
    env.groups()
        .create(&PostParams::default(), &group("orders", spec))
        .await
        .expect("create");
    let observed = until(&env.groups(), "orders", T, "initialized", |g| {
        has_condition(g, "OffsetsInitialized", "True", "AllPartitionsHaveOffsets")
    })
    .await;
    let status = observed.status.expect("status");
    assert_eq!(status.partitions_without_offsets, 0);
    assert_eq!(status.total_lag, Some(0));
    assert_eq!(status.group_id.as_deref(), Some(group_id.as_str()));
    let rows = kafka.describe_group_offsets(&group_id);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.current_offset == r.log_end_offset), "{rows:?}");
    assert_eq!(rows.iter().filter_map(|r| r.current_offset).sum::<i64>(), 30);
    let note = event(&env.client, &env.ns, "orders", "OffsetsInitialized", T).await;
    assert!(note.contains("3 starting offset(s)"), "{note}");

    // A partition added later gets its start offset too, before any consumer could skip its first records.
    env.kafka.create_partitions(&topic, 4).await.expect("add a partition");
    until(&env.groups(), "orders", T, "the new partition initialized", |g| {
        g.status.as_ref().is_some_and(|s| s.partitions_without_offsets == 0) && kafka_has_offsets(kafka, &group_id, 4)
    })
    .await;
    let rows = kafka.describe_group_offsets(&group_id);
    let new = rows.iter().find(|r| r.partition == 3).expect("partition 3");
    assert_eq!(new.current_offset, Some(0), "{rows:?}");
}

fn kafka_has_offsets(kafka: &dyn TestBroker, group: &str, partitions: usize) -> bool {
    kafka.describe_group_offsets(group).len() == partitions
}

async fn offsets_consumers_commit_are_reported_and_never_overwritten(kafka: &'static dyn TestBroker) {
    let env = setup("cg-observe", kafka).await;
    let topic = topic(&env, kafka, 2, 40).await;
    let group_id = unique_name("observe");
    let committed = clients::consume_and_commit(&kafka.bootstrap(), &topic, &group_id, ClientProtocol::Classic, 25);
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic], "offsetInit": {"policy": "earliest"}});
    env.groups()
        .create(&PostParams::default(), &group("observed", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "observed", T, "observed", |g| {
        has_condition(g, "Ready", "True", "Observed")
    })
    .await;
    let status = g.status.expect("status");
    assert_eq!(status.state.as_deref(), Some("Empty"));
    assert_eq!(status.protocol.as_deref(), Some("classic"));
    let rows = kafka.describe_group_offsets(&group_id);
    assert_eq!(
        status.total_lag,
        Some(rows.iter().filter_map(|r| r.lag).sum::<i64>()),
        "{rows:?}"
    );
    // Partitions the consumer committed keep exactly its offsets.
    let rows = kafka.describe_group_offsets(&group_id);
    for (key, offset) in committed.iter().filter(|(_, o)| **o >= 0) {
        let row = rows
            .iter()
            .find(|r| format!("{}:{}", r.topic, r.partition) == *key)
            .expect("row");
        assert_eq!(row.current_offset, Some(*offset), "{row:?}");
    }
}

async fn retain_leaves_the_kafka_group_and_uses_no_finalizer(kafka: &'static dyn TestBroker) {
    let env = setup("cg-retain", kafka).await;
    let topic = topic(&env, kafka, 1, 5).await;
    let group_id = unique_name("retain");
    env.kafka
        .commit_offsets(&group_id, &BTreeMap::from([(TopicPartition::new(&topic, 0), 2)]))
        .await
        .expect("commit");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic]});
    env.groups()
        .create(&PostParams::default(), &group("kept", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "kept", T, "observed", |g| {
        has_condition(g, "Ready", "True", "Observed")
    })
    .await;
    assert!(
        g.metadata.finalizers.unwrap_or_default().is_empty(),
        "Retain needs no finalizer"
    );
    env.groups()
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(env.kafka.group_offsets(&group_id).await.expect("offsets").len(), 1);
}

async fn delete_policy_deletes_the_group_once_it_is_empty(kafka: &'static dyn TestBroker) {
    let env = setup("cg-delete", kafka).await;
    let topic = topic(&env, kafka, 1, 5).await;
    let group_id = unique_name("doomed");
    let member = clients::GroupMember::join(&kafka.bootstrap(), &topic, &group_id, ClientProtocol::Classic, None);
    let spec =
        json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic], "deletionPolicy": "Delete"});
    env.groups()
        .create(&PostParams::default(), &group("doomed", spec))
        .await
        .expect("create");
    until(&env.groups(), "doomed", T, "finalized", |g| {
        g.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "kafkagroups.dev/delete-group"))
    })
    .await;
    env.groups()
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete");
    let blocked = until(&env.groups(), "doomed", T, "blocked", |g| {
        has_condition(g, "DeletionBlocked", "True", "GroupNotEmpty")
    })
    .await;
    assert!(blocked.metadata.deletion_timestamp.is_some());
    let note = event(&env.client, &env.ns, "doomed", "DeletionBlocked", T).await;
    assert!(note.contains("1 member(s)"), "{note}");

    member.leave();
    let deadline = tokio::time::Instant::now() + T;
    while env.groups().get_opt("doomed").await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resource was not released after the group emptied"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let described = env.kafka.describe_group(&group_id).await.expect("describe");
    assert!(!described.exists(), "the Kafka group must be gone: {described:?}");
    assert!(env.kafka.group_offsets(&group_id).await.expect("offsets").is_empty());
}

async fn a_steady_group_causes_no_status_writes(kafka: &'static dyn TestBroker) {
    let env = setup("cg-steady", kafka).await;
    let topic = topic(&env, kafka, 2, 10).await;
    let group_id = unique_name("steady");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic], "offsetInit": {"policy": "latest"}});
    env.groups()
        .create(&PostParams::default(), &group("steady", spec))
        .await
        .expect("create");
    until(&env.groups(), "steady", T, "initialized", |g| {
        has_condition(g, "OffsetsInitialized", "True", "AllPartitionsHaveOffsets")
    })
    .await;
    // A caught-up group without consumers: nothing about it changes. Count writes over a minute (with
    // --group-interval 2s, about 30 reconciles): distinct resourceVersions.
    let mut stream = watcher::watch_object(env.groups().clone(), "steady").boxed();
    let mut versions = std::collections::BTreeSet::new();
    let minute = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(minute);
    loop {
        tokio::select! {
            _ = &mut minute => break,
            item = stream.next() => match item {
                Some(Ok(Some(g))) => {
                    versions.insert(g.metadata.resource_version.unwrap_or_default());
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    // The first item is the object as it was; every further version would be a write.
    assert_eq!(
        versions.len(),
        1,
        "a steady group was written {} time(s) in a minute",
        versions.len() - 1
    );
}

async fn a_missing_topic_is_reported_on_the_group(kafka: &'static dyn TestBroker) {
    let env = setup("cg-notopic", kafka).await;
    let spec = json!({"clusterRef": {"name": "main"}, "topics": ["does-not-exist"]});
    env.groups()
        .create(&PostParams::default(), &group("lost", spec))
        .await
        .expect("create");
    until(&env.groups(), "lost", T, "TopicNotFound", |g| {
        has_condition(g, "Ready", "False", "TopicNotFound")
    })
    .await;
    event(&env.client, &env.ns, "lost", "TopicNotFound", T).await;
}

#[tokio::test]
async fn the_retention_guard_restores_offsets_the_broker_expired() {
    // A private broker whose offsets expire one minute after a group empties.
    let kafka = ApacheKafka::start_with(&[
        "offsets.retention.minutes=1",
        "offsets.retention.check.interval.ms=5000",
    ]);
    let env = setup("cg-guard", &kafka).await;
    let topic = topic(&env, &kafka, 2, 20).await;

    // A classic group that had a member: re-commits do not restart its clock, so it is restored.
    let classic = unique_name("classic");
    let committed = clients::consume_and_commit(&kafka.bootstrap(), &topic, &classic, ClientProtocol::Classic, 20);
    // A group with admin commits only: re-committing keeps it alive.
    let admin = unique_name("admin");
    env.kafka
        .commit_offsets(
            &admin,
            &BTreeMap::from([(TopicPartition::new(&topic, 0), 3), (TopicPartition::new(&topic, 1), 4)]),
        )
        .await
        .expect("admin commit");

    for (name, id) in [("classic", &classic), ("admin", &admin)] {
        let spec = json!({"clusterRef": {"name": "main"}, "groupId": id, "topics": [topic], "retentionGuard": {"warnBefore": "50s"}});
        env.groups()
            .create(&PostParams::default(), &group(name, spec))
            .await
            .expect("create");
    }
    let g = until(&env.groups(), "classic", T, "guarded", |g| {
        g.status
            .as_ref()
            .and_then(|s| s.retention_guard.as_ref())
            .is_some_and(|r| r.expires_at.is_some())
    })
    .await;
    let guard = g.status.and_then(|s| s.retention_guard).expect("guard");
    assert_eq!(guard.protection, Some(RetentionProtection::RestoreOnExpiry));
    assert_eq!(guard.retention_minutes, Some(1));
    assert_eq!(
        guard.saved_offsets.len(),
        committed.values().filter(|o| **o >= 0).count()
    );
    let a = until(&env.groups(), "admin", T, "guarded", |g| {
        g.status
            .as_ref()
            .and_then(|s| s.retention_guard.as_ref())
            .is_some_and(|r| r.protection.is_some())
    })
    .await;
    assert_eq!(
        a.status.and_then(|s| s.retention_guard).and_then(|r| r.protection),
        Some(RetentionProtection::Recommit)
    );

    until(&env.groups(), "classic", T, "warned", |g| {
        has_condition(g, "RetentionGuard", "False", "ExpiringSoon")
    })
    .await;
    event(&env.client, &env.ns, "classic", "OffsetsExpiringSoon", T).await;
    // The broker drops them about 61-65 s after the group emptied; the operator puts them back.
    let note = event(
        &env.client,
        &env.ns,
        "classic",
        "OffsetsRestored",
        Duration::from_secs(120),
    )
    .await;
    assert!(note.contains("restored"), "{note}");
    let rows = kafka.describe_group_offsets(&classic);
    for (key, offset) in committed.iter().filter(|(_, o)| **o >= 0) {
        let row = rows
            .iter()
            .find(|r| format!("{}:{}", r.topic, r.partition) == *key)
            .expect("restored row");
        assert_eq!(row.current_offset, Some(*offset), "{rows:?}");
    }
    // The admin-only group was re-committed in time and never lost its offsets.
    event(&env.client, &env.ns, "admin", "OffsetsRecommitted", T).await;
    let offsets = env.kafka.group_offsets(&admin).await.expect("offsets");
    assert_eq!(offsets.len(), 2, "{offsets:?}");
}

#[tokio::test]
async fn a_standby_operator_takes_over_when_the_leader_dies() {
    let kafka = ApacheKafka::shared();
    let cp = ControlPlane::shared();
    let (client, ns) = Scenario::namespace("cg-leader").await;
    let lease_ns = format!("--lease-namespace={ns}");
    let flags = [
        "--leader-elect",
        lease_ns.as_str(),
        "--lease-name=kgo-test-leader",
        "--lease-duration=3s",
    ];
    let mut first = Operator::start(cp, &ns, &flags);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), &ns);
    let held = until(&leases, "kgo-test-leader", T, "held", |l| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| !h.is_empty())
    })
    .await;
    let first_holder = held.spec.and_then(|s| s.holder_identity).expect("holder");
    let mut second = Operator::start(cp, &ns, &flags);
    // The leader reconciles: the cluster becomes Ready.
    let env = Scenario::with_cluster(client.clone(), ns.clone(), kafka, None).await;
    assert!(second.is_running());
    assert!(
        !second.log().contains("leading: starting the controllers"),
        "two leaders: {}",
        second.log()
    );

    first.kill();
    let taken = until(&leases, "kgo-test-leader", T, "taken over", |l| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| !h.is_empty() && h != first_holder)
    })
    .await;
    assert!(taken.spec.and_then(|s| s.lease_transitions).unwrap_or(0) >= 1);
    // The new leader reconciles: a group created after the takeover is observed.
    let topic = topic(&env, kafka, 1, 0).await;
    let spec = json!({"clusterRef": {"name": "main"}, "topics": [topic]});
    env.groups()
        .create(&PostParams::default(), &group("after-takeover", spec))
        .await
        .expect("create");
    until(&env.groups(), "after-takeover", T, "observed by the new leader", |g| {
        has_condition(g, "Ready", "True", "Observed")
    })
    .await;
    assert!(
        second.log().contains("leading: starting the controllers"),
        "{}",
        second.log()
    );
}

async fn members_and_assignments_match_the_consumers_running_in_the_cluster(kafka: &'static dyn TestBroker) {
    let protocols: &[&str] = if kafka.serves_kip848() {
        &["classic", "consumer"]
    } else {
        &["classic"]
    };
    for &protocol in protocols {
        let env = setup("cg-members", kafka).await;
        let topic = topic(&env, kafka, 4, 20).await;
        let group_id = unique_name("members");
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(env.client.clone(), &env.ns);
        let settings = [
            ("KAFKA_GROUP_ID", group_id.as_str()),
            ("KAFKA_TOPICS", topic.as_str()),
            ("KAFKA_GROUP_PROTOCOL", protocol),
        ];
        deployments
            .create(
                &PostParams::default(),
                &support::kubelet::deployment("orders", 2, &settings),
            )
            .await
            .expect("deployment");
        let kubelet = support::kubelet::Kubelet::start(env.client.clone(), &env.ns, "orders", &kafka.bootstrap()).await;
        kubelet.wait_running(2, Duration::from_secs(120)).await;

        let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic]});
        env.groups()
            .create(&PostParams::default(), &group("orders", spec))
            .await
            .expect("create");
        let g = until(
            &env.groups(),
            "orders",
            Duration::from_secs(90),
            "two stable members with all partitions",
            |g| {
                g.status.as_ref().is_some_and(|s| {
                    s.members == 2
                        && s.state.as_deref() == Some("Stable")
                        && s.member_details.iter().map(|m| m.assignment.len()).sum::<usize>() == 4
                })
            },
        )
        .await;
        let status = g.status.expect("status");
        assert_eq!(status.protocol.as_deref(), Some(protocol));
        let mut clients: Vec<&str> = status.member_details.iter().map(|m| m.client_id.as_str()).collect();
        clients.sort();
        assert_eq!(
            clients,
            vec!["orders-0", "orders-1"],
            "{kubelet_report}",
            kubelet_report = kubelet.report()
        );
        let pod_members: std::collections::BTreeSet<String> =
            kubelet.pods().into_iter().filter_map(|p| p.member_id).collect();
        let status_members: std::collections::BTreeSet<String> =
            status.member_details.iter().map(|m| m.member_id.clone()).collect();
        assert_eq!(status_members, pod_members, "the member ids confluent-kafka reports");
        let mut assigned: Vec<String> = status
            .member_details
            .iter()
            .flat_map(|m| m.assignment.clone())
            .collect();
        assigned.sort();
        let expected: Vec<String> = (0..4).map(|p| format!("{topic}-{p}")).collect();
        assert_eq!(assigned, expected);
        drop(kubelet);
    }
}

async fn a_latest_consumer_reads_the_first_record_of_a_partition_added_later(kafka: &'static dyn TestBroker) {
    let env = setup("cg-newpart", kafka).await;
    let topic = topic(&env, kafka, 2, 10).await;
    let group_id = unique_name("newpart");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic], "offsetInit": {"policy": "latest"}});
    env.groups()
        .create(&PostParams::default(), &group("orders", spec))
        .await
        .expect("create");
    until(&env.groups(), "orders", T, "initialized", |g| {
        has_condition(g, "OffsetsInitialized", "True", "AllPartitionsHaveOffsets")
    })
    .await;

    env.kafka.create_partitions(&topic, 3).await.expect("add partition 2");
    let new_partition = TopicPartition::new(&topic, 2);
    let deadline = tokio::time::Instant::now() + T;
    while !env
        .kafka
        .group_offsets(&group_id)
        .await
        .expect("offsets")
        .contains_key(&new_partition)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "partition 2 was not initialized"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The first record of the new partition, produced before any consumer runs.
    let bootstrap = kafka.bootstrap();
    let produce_topic = topic.clone();
    tokio::task::spawn_blocking(move || {
        clients::produce_with_timestamps(&bootstrap, &produce_topic, 2, 1, 1_700_000_000_000, 1000)
    })
    .await
    .expect("produce");

    // A consumer with auto.offset.reset=latest would start after that record; the initial offset makes it read it.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let settings = [
        ("KAFKA_GROUP_ID", group_id.as_str()),
        ("KAFKA_TOPICS", topic.as_str()),
        ("KAFKA_AUTO_OFFSET_RESET", "latest"),
    ];
    deployments
        .create(
            &PostParams::default(),
            &support::kubelet::deployment("orders", 1, &settings),
        )
        .await
        .expect("deployment");
    let kubelet = support::kubelet::Kubelet::start(env.client.clone(), &env.ns, "orders", &kafka.bootstrap()).await;
    kubelet.wait_running(1, Duration::from_secs(120)).await;
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let offsets = env.kafka.group_offsets(&group_id).await.expect("offsets");
        if offsets.get(&new_partition).map(|c| c.offset) == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer never read the new partition's first record: {offsets:?}\n{}",
            kubelet.report()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

on_both_brokers!(
    offset_init_latest_commits_the_log_end_of_every_partition_of_a_new_group,
    offsets_consumers_commit_are_reported_and_never_overwritten,
    retain_leaves_the_kafka_group_and_uses_no_finalizer,
    delete_policy_deletes_the_group_once_it_is_empty,
    a_steady_group_causes_no_status_writes,
    a_missing_topic_is_reported_on_the_group,
    a_latest_consumer_reads_the_first_record_of_a_partition_added_later,
    members_and_assignments_match_the_consumers_running_in_the_cluster,
);
