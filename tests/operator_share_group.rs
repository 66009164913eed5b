//! Share groups (KIP-932) against Apache Kafka 4.4 (share.version enabled) with real share consumers
//! (confluent-kafka's ShareConsumer, run by the kubelet stand-in) and Kafka's own `kafka-share-groups.sh`
//! (`ShareGroupCommand`) as the oracle: the group is detected and observed (members, start offsets, the broker's
//! lag) in status, metrics and the `lag` command; every reset target moves the start offsets exactly where
//! `kafka-share-groups --reset-offsets --dry-run` plans; ScaleDown stops and restores share consumers; scaling is
//! not capped by the partition count; what share groups cannot take fails at once. The embedded broker has no
//! share groups: a share group there fails clearly and at once.

#[macro_use]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::{ConsumerGroup, OffsetReset, ResetPhase};
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::clients;
use support::kubelet::{Kubelet, deployment};
use support::scenario::{Scenario, resource};
use support::wait::{condition, has_condition, until};
use support::{ApacheKafka, EmbeddedKafka, TestBroker, unique_name};

const T: Duration = Duration::from_secs(90);
const SHARE_TOOL: &str = "org.apache.kafka.tools.consumer.group.ShareGroupCommand";

fn group(name: &str, spec: Value) -> ConsumerGroup {
    resource("ConsumerGroup", name, spec)
}

fn reset(name: &str, spec: Value) -> OffsetReset {
    resource("OffsetReset", name, spec)
}

fn finished(r: &OffsetReset) -> bool {
    r.status
        .as_ref()
        .is_some_and(|s| matches!(s.phase, ResetPhase::Succeeded | ResetPhase::Failed))
}

/// A topic of `partitions` partitions with `per_partition` records each (timestamps 1 s apart from `start_ms`),
/// and a share group whose start offset is `start` in every partition (set as `kafka-share-groups
/// --reset-offsets --execute` sets it: AlterShareGroupOffsets creates the group).
async fn seeded(env: &Scenario, partitions: i32, per_partition: usize, start_ms: i64, start: i64) -> (String, String) {
    let topic = unique_name("share");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, partitions)])
        .await
        .expect("topic");
    for p in 0..partitions {
        let (b, t) = (env.bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || clients::produce_with_timestamps(&b, &t, p, per_partition, start_ms, 1000))
            .await
            .expect("produce");
    }
    let group = unique_name("share-group");
    let offsets = (0..partitions)
        .map(|p| (TopicPartition::new(&topic, p), start))
        .collect();
    env.kafka
        .alter_share_group_offsets(&group, &offsets)
        .await
        .expect("seed start offsets");
    (topic, group)
}

async fn share_tool(bootstrap: &str, args: Vec<String>) -> String {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::kafka::kafka_tool_ok(&bootstrap, SHARE_TOOL, &args)
    })
    .await
    .expect("tool")
}

/// `kafka-share-groups --describe --group G`: (topic, partition) -> (start offset, lag), `None` for `-`.
async fn share_describe(bootstrap: &str, group: &str) -> BTreeMap<(String, i32), (Option<i64>, Option<i64>)> {
    let out = share_tool(bootstrap, vec!["--describe".into(), "--group".into(), group.into()]).await;
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() == 5 && c[0] == group)
        .map(|c| {
            (
                (c[1].to_owned(), c[2].parse().expect("partition")),
                (c[3].parse().ok(), c[4].parse().ok()),
            )
        })
        .collect()
}

/// `kafka-share-groups --reset-offsets --group G --topic T <target> --dry-run` as (topic, partition) -> offset.
async fn share_dry_run(bootstrap: &str, group: &str, topic: &str, target: &[&str]) -> BTreeMap<(String, i32), i64> {
    let mut args: Vec<String> = ["--reset-offsets", "--group", group, "--topic", topic, "--dry-run"]
        .map(String::from)
        .to_vec();
    args.extend(target.iter().map(|s| s.to_string()));
    let out = share_tool(bootstrap, args).await;
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() == 4 && c[0] == group)
        .map(|c| {
            (
                (c[1].to_owned(), c[2].parse().expect("partition")),
                c[3].parse().expect("offset"),
            )
        })
        .collect()
}

async fn start_offsets(bootstrap: &str, group: &str) -> BTreeMap<(String, i32), i64> {
    share_describe(bootstrap, group)
        .await
        .into_iter()
        .filter_map(|(k, (start, _))| start.map(|s| (k, s)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_group_is_detected_and_observed_with_the_brokers_lag_in_status_metrics_and_the_lag_command() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("share-observe", kafka).await;
    let (topic, group_id) = seeded(&env, 3, 30, 1_700_000_000_000, 10).await;
    let described = share_describe(&env.bootstrap, &group_id).await;
    let tool_lag: i64 = described.values().filter_map(|(_, lag)| *lag).sum();
    assert_eq!(tool_lag, 60, "the tool's view: {described:?}");

    // No spec.type: detected.
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic]});
    env.groups()
        .create(&PostParams::default(), &group("jobs", spec))
        .await
        .expect("create");
    let observed = until(&env.groups(), "jobs", T, "observed as a share group", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.protocol.as_deref() == Some("share") && s.total_lag.is_some())
    })
    .await;
    let status = observed.status.expect("status");
    assert_eq!(status.total_lag, Some(tool_lag), "{status:#?}");
    assert_eq!(status.state.as_deref(), Some("Empty"));
    assert_eq!(status.partitions_without_offsets, 0);
    assert!(has_condition(&observed_group(&env).await, "Ready", "True", "Observed"));

    // Metrics: the same families, with group_type="share".
    let operator = env.operator.as_ref().expect("operator");
    let (_, metrics) = operator.http_get("/metrics").expect("metrics");
    for p in 0..3 {
        let (start, lag) = described[&(topic.clone(), p)];
        let labels = format!(
            "{{cluster_name=\"{}/main\",group=\"{group_id}\",group_type=\"share\",topic=\"{topic}\",partition=\"{p}\"}}",
            env.ns
        );
        assert!(
            metrics.contains(&format!("kafka_consumergroup_group_lag{labels} {}", lag.expect("lag"))),
            "partition {p}:\n{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "kafka_consumergroup_group_offset{labels} {}",
                start.expect("start")
            )),
            "partition {p}:\n{metrics}"
        );
    }

    // The lag command: the start offsets as current offsets, the broker's lag.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
        .args(["lag", "-b", &env.bootstrap, "-g", &group_id, "-o", "json"])
        .output()
        .expect("lag");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let g = &report["groups"][0];
    assert_eq!(g["protocol"], "share");
    assert_eq!(g["totalLag"], tool_lag);
    for p in g["partitions"].as_array().expect("partitions") {
        let key = (
            p["topic"].as_str().expect("topic").to_owned(),
            p["partition"].as_i64().expect("p") as i32,
        );
        let (start, lag) = described[&key];
        assert_eq!(p["committed"].as_i64(), start, "{p}");
        assert_eq!(p["lag"].as_i64(), lag, "{p}");
    }

    // Members: two share consumers in a Deployment (both may read every partition).
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let settings = [
        ("KAFKA_GROUP_ID", group_id.as_str()),
        ("KAFKA_TOPICS", topic.as_str()),
        ("KAFKA_GROUP_PROTOCOL", "share"),
    ];
    deployments
        .create(&PostParams::default(), &deployment("consumers", 2, &settings))
        .await
        .expect("deployment");
    let kubelet = Kubelet::start(env.client.clone(), &env.ns, "consumers", &env.bootstrap).await;
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    let with_members = until(&env.groups(), "jobs", T, "two share members", |g| {
        g.status.as_ref().is_some_and(|s| s.members == 2)
    })
    .await;
    let status = with_members.status.expect("status");
    let mut clients: Vec<&str> = status.member_details.iter().map(|m| m.client_id.as_str()).collect();
    clients.sort();
    assert_eq!(clients, ["consumers-0", "consumers-1"], "{status:#?}");
    // They consume everything: the broker's lag reaches 0.
    until(&env.groups(), "jobs", T, "caught up", |g| {
        g.status.as_ref().is_some_and(|s| s.total_lag == Some(0))
    })
    .await;
}

async fn observed_group(env: &Scenario) -> ConsumerGroup {
    env.groups().get("jobs").await.expect("get")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_share_group_target_moves_the_start_offsets_where_kafka_share_groups_dry_run_plans() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("share-targets", kafka).await;
    let start = 1_700_000_000_000_i64;
    // (name, spec.to, the tool's target flags, declare groupType)
    let cases: Vec<(&str, Value, Vec<&str>, bool)> = vec![
        ("earliest", json!({"earliest": {}}), vec!["--to-earliest"], true),
        ("latest", json!({"latest": {}}), vec!["--to-latest"], false),
        ("offset", json!({"offset": 7}), vec!["--to-offset", "7"], true),
        (
            "offset-beyond-end",
            json!({"offset": 500}),
            vec!["--to-offset", "500"],
            false,
        ),
        (
            "timestamp",
            json!({"timestamp": "2023-11-14T22:13:25Z"}),
            vec!["--to-datetime", "2023-11-14T22:13:25.000"],
            true,
        ),
        (
            "timestamp-future",
            json!({"timestamp": "2099-01-01T00:00:00Z"}),
            vec!["--to-datetime", "2099-01-01T00:00:00.000"],
            false,
        ),
    ];
    for (name, to, flags, declared) in cases {
        let (topic, group_id) = seeded(&env, 2, 20, start, 10).await;
        let expected = share_dry_run(&env.bootstrap, &group_id, &topic, &flags).await;
        assert_eq!(expected.len(), 2, "{name}: the tool planned {expected:?}");
        let mut spec =
            json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [{"name": topic}], "to": to});
        if declared {
            spec["groupType"] = json!("share");
        }
        env.resets()
            .create(&PostParams::default(), &reset(name, spec))
            .await
            .expect("create");
        let done = until(&env.resets(), name, T, "finished", finished).await;
        let status = done.status.expect("status");
        assert_eq!(status.phase, ResetPhase::Succeeded, "{name}: {status:#?}");
        assert_eq!(start_offsets(&env.bootstrap, &group_id).await, expected, "{name}");
        for p in &status.plan {
            assert_eq!(p.from, Some(10), "{name}: {p:?}");
            assert_eq!(
                Some(p.to),
                expected.get(&(p.topic.clone(), p.partition)).copied(),
                "{name}"
            );
        }
    }

    // duration: back from when it runs. The records are from 2023, so one hour back is the log end, as the tool
    // computes for the datetime one hour ago.
    let (topic, group_id) = seeded(&env, 2, 20, start, 10).await;
    let hour_ago = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(1);
    let datetime = hour_ago.strftime("%Y-%m-%dT%H:%M:%S.000").to_string();
    let expected = share_dry_run(&env.bootstrap, &group_id, &topic, &["--to-datetime", &datetime]).await;
    let spec =
        json!({"clusterRef": {"name": "main"}, "groupId": group_id, "groupType": "share", "to": {"duration": "1h"}});
    env.resets()
        .create(&PostParams::default(), &reset("duration", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "duration", T, "finished", finished).await;
    assert_eq!(
        done.status.as_ref().map(|s| s.phase),
        Some(ResetPhase::Succeeded),
        "{:#?}",
        done.status
    );
    assert_eq!(start_offsets(&env.bootstrap, &group_id).await, expected);

    // partitions: explicit start offsets (what --from-file takes), only on the partitions named.
    let (topic, group_id) = seeded(&env, 2, 20, start, 10).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "groupType": "share",
        "to": {"partitions": [{"topic": topic, "partition": 1, "offset": 3}]}});
    env.resets()
        .create(&PostParams::default(), &reset("partitions", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "partitions", T, "finished", finished).await;
    assert_eq!(
        done.status.as_ref().map(|s| s.phase),
        Some(ResetPhase::Succeeded),
        "{:#?}",
        done.status
    );
    let now = start_offsets(&env.bootstrap, &group_id).await;
    assert_eq!(now.get(&(topic.clone(), 0)), Some(&10), "{now:?}");
    assert_eq!(now.get(&(topic.clone(), 1)), Some(&3), "{now:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_share_group_cannot_take_fails_at_once_with_the_reason() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("share-refuse", kafka).await;
    let (topic, group_id) = seeded(&env, 1, 10, 1_700_000_000_000, 5).await;
    // shiftBy on a share group found as one (no groupType: CEL cannot know).
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "to": {"shiftBy": -2}});
    env.resets()
        .create(&PostParams::default(), &reset("shift", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "shift", T, "finished", finished).await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.phase, ResetPhase::Failed, "{status:#?}");
    let (_, _, message) = condition(&done, "Failed").expect("Failed condition");
    assert!(
        message.contains("is a share group") && message.contains("not by shiftBy"),
        "{message}"
    );
    assert_eq!(
        start_offsets(&env.bootstrap, &group_id).await[&(topic.clone(), 0)],
        5,
        "untouched"
    );

    // A reset declared for a consumer group, on a share group: refused, naming both types.
    let spec =
        json!({"clusterRef": {"name": "main"}, "groupId": group_id, "groupType": "consumer", "to": {"earliest": {}}});
    env.resets()
        .create(&PostParams::default(), &reset("wrong-type", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "wrong-type", T, "finished", finished).await;
    assert_eq!(done.status.as_ref().map(|s| s.phase), Some(ResetPhase::Failed));
    let (_, _, message) = condition(&done, "Failed").expect("Failed condition");
    assert!(
        message.contains("spec.type is consumer, but Kafka holds a share group"),
        "{message}"
    );

    // A ConsumerGroup declaring `consumer` for it: Ready=False, TypeMismatch, nothing done.
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "type": "consumer", "topics": [topic],
        "offsetInit": {"policy": "earliest"}});
    env.groups()
        .create(&PostParams::default(), &group("mismatch", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "mismatch", T, "mismatch", |g| {
        has_condition(g, "Ready", "False", "TypeMismatch")
    })
    .await;
    let (_, _, message) = condition(&g, "Ready").expect("Ready");
    assert!(message.contains("Kafka holds a share group"), "{message}");
    assert_eq!(
        start_offsets(&env.bootstrap, &group_id).await[&(topic, 0)],
        5,
        "untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scale_down_reset_stops_the_share_consumers_moves_the_start_offsets_and_brings_them_back() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("share-scaledown", kafka).await;
    let (topic, group_id) = seeded(&env, 2, 50, 1_700_000_000_000, 0).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let settings = [
        ("KAFKA_GROUP_ID", group_id.as_str()),
        ("KAFKA_TOPICS", topic.as_str()),
        ("KAFKA_GROUP_PROTOCOL", "share"),
    ];
    deployments
        .create(&PostParams::default(), &deployment("consumers", 2, &settings))
        .await
        .expect("deployment");
    let kubelet = Kubelet::start(env.client.clone(), &env.ns, "consumers", &env.bootstrap).await;
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    // The consumers acknowledge everything: the broker's lag reaches 0. (The start offset Kafka reports may stay
    // behind: it is persisted lazily, while the lag counts what was acknowledged.)
    wait_for_share_lag(&env.bootstrap, &group_id, 0).await;
    let before = start_offsets(&env.bootstrap, &group_id).await;
    // While they run, RequireInactive refuses.
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "to": {"offset": 20}});
    env.resets()
        .create(&PostParams::default(), &reset("inactive", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "inactive", T, "finished", finished).await;
    assert!(
        has_condition(&done, "Failed", "True", "GroupActive"),
        "{:#?}",
        done.status
    );

    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "groupType": "share", "to": {"offset": 20},
        "strategy": "ScaleDown", "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}, "timeoutSeconds": 60});
    env.resets()
        .create(&PostParams::default(), &reset("replay", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "replay", Duration::from_secs(150), "finished", finished).await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, ResetPhase::Succeeded, "{status:#?}");
    let plan: BTreeMap<(String, i32), (Option<i64>, i64)> = status
        .plan
        .iter()
        .map(|p| ((p.topic.clone(), p.partition), (p.from, p.to)))
        .collect();
    let expected: BTreeMap<(String, i32), (Option<i64>, i64)> =
        before.iter().map(|(k, from)| (k.clone(), (Some(*from), 20))).collect();
    assert_eq!(plan, expected);
    assert_eq!(expected.len(), 2);
    assert_eq!(status.workload.as_ref().map(|w| w.original_replicas), Some(2));
    assert_eq!(deployments.get("consumers").await.expect("get").spec.replicas, Some(2));
    // Back at two share consumers, which read the 2 × 30 records from offset 20 again and acknowledge them.
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    wait_for_share_lag(&env.bootstrap, &group_id, 0).await;
    let consumed_since_restart = || -> u64 {
        (0..2)
            .map(|i| {
                let log = kubelet.log(i);
                let after_ready = log.rsplit("{\"ready\": true").next().unwrap_or_default().to_owned();
                after_ready
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter_map(|v| v["consumed"].as_u64())
                    .max()
                    .unwrap_or(0)
            })
            .sum()
    };
    let deadline = tokio::time::Instant::now() + T;
    while consumed_since_restart() < 60 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "re-read {} of 60",
            consumed_since_restart()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(consumed_since_restart(), 60, "each record from offset 20 on, once");
}

/// Waits until `kafka-share-groups --describe` shows a total lag of `lag` for the group.
async fn wait_for_share_lag(bootstrap: &str, group: &str, lag: i64) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let described = share_describe(bootstrap, group).await;
        let total: Option<i64> = described.values().map(|(_, l)| *l).sum();
        if !described.is_empty() && total == Some(lag) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "share group {group} lag {described:?}, waiting for {lag}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_on_share_group_lag_goes_past_the_partition_count() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("share-scale", kafka).await;
    // One partition, a backlog of 3,000 records, consumers that take 100 ms per record.
    let (topic, group_id) = seeded(&env, 1, 3000, 1_700_000_000_000, 0).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let settings = [
        ("KAFKA_GROUP_ID", group_id.as_str()),
        ("KAFKA_TOPICS", topic.as_str()),
        ("KAFKA_GROUP_PROTOCOL", "share"),
        ("KAFKA_PROCESSING_DELAY_MS", "100"),
    ];
    deployments
        .create(&PostParams::default(), &deployment("workers", 1, &settings))
        .await
        .expect("deployment");
    let _kubelet = Kubelet::start(env.client.clone(), &env.ns, "workers", &env.bootstrap).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "type": "share", "topics": [topic],
        "scaling": {"targetRef": {"kind": "Deployment", "name": "workers"}, "minReplicas": 1, "maxReplicas": 4,
            "lagPerReplica": 100, "cooldownSeconds": 1}});
    env.groups()
        .create(&PostParams::default(), &group("workers", spec))
        .await
        .expect("create");
    let scaled = until(&env.groups(), "workers", T, "scaled past one partition", |g| {
        g.status.as_ref().is_some_and(|s| s.desired_replicas == Some(4))
    })
    .await;
    let (_, _, message) = condition(&scaled, "Scaling").expect("Scaling");
    assert!(!message.contains("partitions"), "not capped by partitions: {message}");
    assert_eq!(deployments.get("workers").await.expect("get").spec.replicas, Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_group_on_the_embedded_broker_fails_clearly_and_at_once() {
    let kafka: &dyn TestBroker = EmbeddedKafka::shared();
    let env = Scenario::start("share-embedded", kafka).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": unique_name("share"), "type": "share"});
    env.groups()
        .create(&PostParams::default(), &group("jobs", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "jobs", Duration::from_secs(30), "not ready", |g| {
        condition(g, "Ready").is_some_and(|(status, _, _)| status == "False")
    })
    .await;
    let (_, _, message) = condition(&g, "Ready").expect("Ready");
    assert!(message.contains("DescribeShareGroupOffsets"), "{message}");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": unique_name("share"), "groupType": "share",
        "to": {"earliest": {}}});
    env.resets()
        .create(&PostParams::default(), &reset("share", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "share", Duration::from_secs(30), "finished", finished).await;
    assert_eq!(
        done.status.as_ref().map(|s| s.phase),
        Some(ResetPhase::Failed),
        "{:#?}",
        done.status
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_apply_move_a_share_groups_start_offsets_and_refuse_shift_by() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("share-cli", kafka).await;
    let (topic, group_id) = seeded(&env, 2, 20, 1_700_000_000_000, 10).await;
    let dir = tempfile::tempdir().expect("dir");
    let manifest = dir.path().join("reset.yaml");
    let write = |to: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata: {{name: replay}}\nspec:\n  clusterRef: {{name: main}}\n  groupId: {group_id}\n  to: {to}\n"
            ),
        )
        .expect("manifest")
    };
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
            .args(args)
            .args(["-b", &env.bootstrap])
            .output()
            .expect("run")
    };
    let path = manifest.to_str().expect("path").to_owned();
    write("{offset: 15}");
    let expected = share_dry_run(&env.bootstrap, &group_id, &topic, &["--to-offset", "15"]).await;
    let plan = cli(&["plan", "-f", &path, "-o", "json"]);
    // Exit code 2: something would change.
    assert_eq!(plan.status.code(), Some(2), "{}", String::from_utf8_lossy(&plan.stderr));
    let planned: Value = serde_json::from_slice(&plan.stdout).expect("json");
    let group = &planned["groups"][0];
    assert_eq!(group["groupType"], "share", "{planned}");
    for p in group["partitions"].as_array().expect("partitions") {
        let key = (
            p["topic"].as_str().expect("t").to_owned(),
            p["partition"].as_i64().expect("p") as i32,
        );
        assert_eq!(p["current"], 10);
        assert_eq!(p["target"].as_i64(), expected.get(&key).copied(), "{p}");
    }
    let undo = dir.path().join("undo");
    let applied = cli(&[
        "apply",
        "-f",
        &path,
        "--yes",
        "--undo-dir",
        undo.to_str().expect("undo"),
    ]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    assert_eq!(start_offsets(&env.bootstrap, &group_id).await, expected);

    write("{shiftBy: -2}");
    let refused = cli(&["plan", "-f", &path]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("is a share group") && stderr.contains("not by shiftBy"),
        "{stderr}"
    );
}
