//! `ConsumerGroup.spec.config` against a real API server and each broker (`on_both_brokers!`): the declared group
//! configs are applied and read back with Kafka's own `kafka-configs` (`ConfigCommand`), drift made with it is
//! corrected and reported, keys removed from the spec are deleted (only those), a value Kafka refuses is a
//! condition with Kafka's message and is not retried; share-group keys on Apache Kafka. Also our client's
//! DescribeConfigs/IncrementalAlterConfigs on resource GROUP, checked against `kafka-configs`.

#[macro_use]
mod support;

use k8s_openapi::api::events::v1::Event;
use kafka_group_operator::api::ConsumerGroup;
use kafka_group_operator::kafka::{GroupConfigChange, KafkaClient, KafkaError};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use support::operator::Operator;
use support::scenario::{Scenario, resource};
use support::wait::{condition, event, has_condition, until};
use support::{ApacheKafka, ControlPlane, TestBroker, unique_name};

const T: Duration = Duration::from_secs(60);
const CONFIGS: &str = "org.apache.kafka.tools.ConfigCommand";
const SESSION: &str = "consumer.session.timeout.ms";
const HEARTBEAT: &str = "consumer.heartbeat.interval.ms";
const REQUESTS: &str = "kafka_group_operator_group_config_requests_total";

/// `kafka-configs --describe --entity-type groups --entity-name G`: the group's own configs.
fn kafka_configs(kafka: &dyn TestBroker, group: &str) -> BTreeMap<String, String> {
    let out = kafka.tool_ok(
        CONFIGS,
        &["--describe", "--entity-type", "groups", "--entity-name", group],
    );
    // `Dynamic configs for group G are:` then one `  key=value sensitive=false synonyms={…}` line per config.
    out.lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let (key, rest) = l.trim().split_once('=')?;
            let value = rest.split(" sensitive=").next().unwrap_or(rest);
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// `kafka-configs --alter` with `args` (e.g. `--add-config k=v`), as an administrator would.
fn kafka_configs_alter(kafka: &dyn TestBroker, group: &str, args: &[&str]) {
    let mut all = vec!["--alter", "--entity-type", "groups", "--entity-name", group];
    all.extend_from_slice(args);
    let out = kafka.tool_ok(CONFIGS, &all);
    assert!(out.contains("Completed updating config"), "{out}");
}

/// Kafka's refusal of a session timeout below the broker's minimum: Apache Kafka 4.4 says `consumer.session.timeout.ms
/// must be in the range 45000 to 60000 inclusive.`, the embedded broker names `group.consumer.min.session.timeout.ms
/// (45000)`.
fn names_the_bound(message: &str) -> bool {
    message.contains(SESSION) && message.contains("45000")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn group(name: &str, spec: serde_json::Value) -> ConsumerGroup {
    resource("ConsumerGroup", name, spec)
}

fn config_keys(g: &ConsumerGroup) -> Vec<String> {
    g.status.as_ref().map(|s| s.config_keys.clone()).unwrap_or_default()
}

/// Waits until `kafka-configs` shows exactly `expected` for `group`.
async fn until_kafka_shows(kafka: &dyn TestBroker, group: &str, expected: &BTreeMap<String, String>) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let seen = kafka_configs(kafka, group);
        if &seen == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kafka-configs shows {seen:?} for group {group}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn requests(op: &Operator, ns: &str, name: &str, api: &str) -> f64 {
    op.metric(REQUESTS, &[("namespace", ns), ("name", name), ("api", api)])
        .unwrap_or(0.0)
}

fn reconciles(op: &Operator) -> f64 {
    op.metric(
        "kafka_group_operator_reconciles_total",
        &[("controller", "consumergroup")],
    )
    .unwrap_or(0.0)
}

/// Waits until the operator ran `n` more ConsumerGroup reconciles (the scenario's only group).
async fn until_reconciled_again(op: &Operator, n: f64) {
    let start = reconciles(op);
    let deadline = tokio::time::Instant::now() + T;
    while reconciles(op) < start + n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} reconciles within {T:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many times an Event with `reason` about `name` was recorded (a repeated Event is one object with a
/// series count).
async fn times_recorded(client: &kube::Client, ns: &str, name: &str, reason: &str) -> i32 {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) && e.reason.as_deref() == Some(reason)
        })
        .map(|e| e.series.map_or(1, |s| s.count.max(1)))
        .sum()
}

async fn our_client_reads_and_alters_group_configs(kafka: &'static dyn TestBroker) {
    let client = KafkaClient::new(kafka_group_operator::kafka::ClientConfig::new([kafka.bootstrap()])).expect("client");
    let g = unique_name("client-configs");
    // A group nobody configured has no configs of its own (the broker's defaults are left out).
    assert_eq!(
        client.describe_group_config(&g).await.expect("describe"),
        BTreeMap::new()
    );
    kafka_configs_alter(kafka, &g, &["--add-config", &format!("{SESSION}=50000")]);
    assert_eq!(
        client.describe_group_config(&g).await.expect("describe"),
        map(&[(SESSION, "50000")])
    );
    client
        .alter_group_config(
            &g,
            &[
                GroupConfigChange::Set {
                    key: HEARTBEAT.into(),
                    value: "6000".into(),
                },
                GroupConfigChange::Delete { key: SESSION.into() },
            ],
        )
        .await
        .expect("alter");
    assert_eq!(kafka_configs(kafka, &g), map(&[(HEARTBEAT, "6000")]));
    let refused = client
        .alter_group_config(
            &g,
            &[GroupConfigChange::Set {
                key: SESSION.into(),
                value: "1000".into(),
            }],
        )
        .await
        .expect_err("below group.consumer.min.session.timeout.ms");
    match &refused {
        KafkaError::GroupConfigRefused { message, .. } => assert!(names_the_bound(message), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!refused.is_retriable());
    // Nothing of a refused change is applied.
    assert_eq!(kafka_configs(kafka, &g), map(&[(HEARTBEAT, "6000")]));
}

async fn declared_configs_are_applied_and_drift_is_corrected(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("cfg-apply", kafka).await;
    let op = env.operator.as_ref().expect("operator");
    let group_id = unique_name("configured");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id,
                      "config": {SESSION: "50000", HEARTBEAT: "6000"}});
    env.groups()
        .create(&PostParams::default(), &group("configured", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "configured", T, "applied", |g| {
        has_condition(g, "ConfigInSync", "True", "Applied")
    })
    .await;
    assert_eq!(config_keys(&g), vec![HEARTBEAT.to_owned(), SESSION.to_owned()]);
    let declared = map(&[(SESSION, "50000"), (HEARTBEAT, "6000")]);
    assert_eq!(kafka_configs(kafka, &group_id), declared);
    let note = event(&env.client, &env.ns, "configured", "ConfigApplied", T).await;
    assert!(note.contains(&format!("set {SESSION}=50000 (was unset)")), "{note}");

    // Someone changes one value and deletes the other with kafka-configs: both come back.
    kafka_configs_alter(
        kafka,
        &group_id,
        &[
            "--add-config",
            &format!("{SESSION}=55000"),
            "--delete-config",
            HEARTBEAT,
        ],
    );
    let g = until(&env.groups(), "configured", T, "drift corrected", |g| {
        has_condition(g, "ConfigInSync", "True", "DriftCorrected")
    })
    .await;
    let (_, _, message) = condition(&g, "ConfigInSync").expect("condition");
    assert!(
        message.contains(&format!("set {SESSION}=50000 (was 55000)"))
            && message.contains(&format!("set {HEARTBEAT}=6000 (was unset)")),
        "{message}"
    );
    assert_eq!(kafka_configs(kafka, &group_id), declared);
    let note = event(&env.client, &env.ns, "configured", "ConfigDriftCorrected", T).await;
    assert!(note.contains("changed outside the operator"), "{note}");
    let warned = support::wait::events(&env.client, &env.ns, "configured").await;
    assert!(
        warned
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "ConfigDriftCorrected"),
        "{warned:?}"
    );

    // In sync: one read per reconcile, no alteration, no status write.
    let version = env
        .groups()
        .get("configured")
        .await
        .expect("get")
        .metadata
        .resource_version;
    let (reads, alters) = (
        requests(op, &env.ns, "configured", "DescribeConfigs"),
        requests(op, &env.ns, "configured", "IncrementalAlterConfigs"),
    );
    until_reconciled_again(op, 3.0).await;
    let read_again = requests(op, &env.ns, "configured", "DescribeConfigs") - reads;
    assert!(read_again >= 3.0, "{read_again} reads over 3 reconciles");
    assert_eq!(requests(op, &env.ns, "configured", "IncrementalAlterConfigs"), alters);
    assert_eq!(
        env.groups()
            .get("configured")
            .await
            .expect("get")
            .metadata
            .resource_version,
        version,
        "a group in sync causes no status write"
    );
}

async fn keys_removed_from_the_spec_are_deleted_and_others_left_alone(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("cfg-remove", kafka).await;
    let op = env.operator.as_ref().expect("operator");
    let group_id = unique_name("pruned");
    // Someone else's key, never declared by the resource.
    kafka_configs_alter(kafka, &group_id, &["--add-config", &format!("{HEARTBEAT}=7000")]);
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "config": {SESSION: "50000"}});
    env.groups()
        .create(&PostParams::default(), &group("pruned", spec))
        .await
        .expect("create");
    until(&env.groups(), "pruned", T, "applied", |g| {
        has_condition(g, "ConfigInSync", "True", "Applied") && config_keys(g) == [SESSION]
    })
    .await;
    assert_eq!(
        kafka_configs(kafka, &group_id),
        map(&[(SESSION, "50000"), (HEARTBEAT, "7000")])
    );

    // The spec stops declaring the key: it is deleted, the other one stays.
    env.groups()
        .patch(
            "pruned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {SESSION: null}}})),
        )
        .await
        .expect("remove the key");
    let g = until(&env.groups(), "pruned", T, "key deleted", |g| {
        config_keys(g).is_empty()
            && g.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == g.metadata.generation)
    })
    .await;
    assert_eq!(
        condition(&g, "ConfigInSync"),
        None,
        "nothing declared, nothing to report"
    );
    assert_eq!(kafka_configs(kafka, &group_id), map(&[(HEARTBEAT, "7000")]));
    // The deletion is a second ConfigApplied (Kubernetes folds repeated Events into one with a series count).
    let deadline = tokio::time::Instant::now() + T;
    while times_recorded(&env.client, &env.ns, "pruned", "ConfigApplied").await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ConfigApplied Event for the deletion"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A group that declares no config and owns no key costs no config request at all.
    let reads = requests(op, &env.ns, "pruned", "DescribeConfigs");
    until_reconciled_again(op, 3.0).await;
    assert_eq!(requests(op, &env.ns, "pruned", "DescribeConfigs"), reads);
}

async fn a_config_kafka_refuses_is_reported_and_not_retried(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("cfg-refused", kafka).await;
    let op = env.operator.as_ref().expect("operator");
    let group_id = unique_name("refused");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "config": {SESSION: "1000"}});
    env.groups()
        .create(&PostParams::default(), &group("refused", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "refused", T, "refused", |g| {
        has_condition(g, "ConfigInSync", "False", "Refused")
    })
    .await;
    let (_, _, message) = condition(&g, "ConfigInSync").expect("condition");
    // Kafka's own message names the bound.
    assert!(
        names_the_bound(&message) && message.contains("INVALID_CONFIG"),
        "{message}"
    );
    assert!(config_keys(&g).is_empty(), "a refused key was not set: {g:?}");
    assert_eq!(kafka_configs(kafka, &group_id), BTreeMap::new());
    let note = event(&env.client, &env.ns, "refused", "ConfigRefused", T).await;
    assert!(names_the_bound(&note), "{note}");

    // Over several more reconciles: no other attempt, no other read, no other Event.
    let alters = requests(op, &env.ns, "refused", "IncrementalAlterConfigs");
    let reads = requests(op, &env.ns, "refused", "DescribeConfigs");
    assert_eq!(alters, 1.0);
    until_reconciled_again(op, 3.0).await;
    assert_eq!(requests(op, &env.ns, "refused", "IncrementalAlterConfigs"), alters);
    assert_eq!(requests(op, &env.ns, "refused", "DescribeConfigs"), reads);
    assert_eq!(
        times_recorded(&env.client, &env.ns, "refused", "ConfigRefused").await,
        1
    );
    let still = env.groups().get("refused").await.expect("get");
    assert_eq!(condition(&still, "ConfigInSync"), condition(&g, "ConfigInSync"));

    // A new spec is tried at once.
    env.groups()
        .patch(
            "refused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {SESSION: "50000"}}})),
        )
        .await
        .expect("fix the value");
    until(&env.groups(), "refused", T, "applied", |g| {
        has_condition(g, "ConfigInSync", "True", "Applied")
    })
    .await;
    until_kafka_shows(kafka, &group_id, &map(&[(SESSION, "50000")])).await;
    assert_eq!(
        requests(op, &env.ns, "refused", "IncrementalAlterConfigs"),
        alters + 1.0
    );
}

on_both_brokers!(
    our_client_reads_and_alters_group_configs,
    declared_configs_are_applied_and_drift_is_corrected,
    keys_removed_from_the_spec_are_deleted_and_others_left_alone,
    a_config_kafka_refuses_is_reported_and_not_retried,
);

#[tokio::test(flavor = "multi_thread")]
async fn share_group_configs_are_applied_on_apache_kafka() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("cfg-share", kafka).await;
    let group_id = unique_name("shared");
    let declared = map(&[
        ("share.auto.offset.reset", "earliest"),
        ("share.isolation.level", "read_committed"),
        ("share.record.lock.duration.ms", "30000"),
    ]);
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "config": declared});
    env.groups()
        .create(&PostParams::default(), &group("shared", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "shared", T, "applied", |g| {
        has_condition(g, "ConfigInSync", "True", "Applied")
    })
    .await;
    assert_eq!(config_keys(&g), declared.keys().cloned().collect::<Vec<_>>());
    assert_eq!(kafka_configs(kafka, &group_id), declared);
}

#[tokio::test]
async fn kubectl_apply_rejects_a_session_timeout_not_above_the_heartbeat() {
    let (_client, ns) = Scenario::namespace("cfg-cel").await;
    let manifest = json!({
        "apiVersion": "kafkagroups.dev/v1alpha1", "kind": "ConsumerGroup",
        "metadata": {"name": "too-eager", "namespace": ns},
        "spec": {"clusterRef": {"name": "main"}, "config": {SESSION: "10000", HEARTBEAT: "10000"}}
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("group.json");
    std::fs::write(&path, manifest.to_string()).expect("write manifest");
    let out = ControlPlane::shared().kubectl(&["apply", "--server-side", "-f", &path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must be rejected");
    assert!(
        stderr.contains("consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"),
        "{stderr}"
    );
}
