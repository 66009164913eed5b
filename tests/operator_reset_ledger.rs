//! The reset ledger against a real API server and each broker: an OffsetReset re-created after it was applied
//! (a `ttlSecondsAfterFinished` deletion followed by a GitOps sync, a namespace restored or synced into another
//! cluster of the same Kafka) ends as Succeeded with reason `AlreadyApplied` and commits nothing. Three records
//! are asked: the namespace's `ResetLedger`, the ConsumerGroup's `status.resetHistory`, and the commit metadata
//! in Kafka itself.

#[macro_use]
mod support;

use kafka_group_operator::api::{ConsumerGroup, OffsetReset, ResetPhase};
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kafka_group_operator::plan::reset_record::ResetRecord;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::clients;
use support::scenario::{Scenario, resource};
use support::wait::{event, has_condition, until};
use support::{TestBroker, unique_name};

const T: Duration = Duration::from_secs(90);

fn reset(name: &str, spec: Value) -> OffsetReset {
    resource("OffsetReset", name, spec)
}

fn phase_is(r: &OffsetReset, phase: ResetPhase) -> bool {
    r.status.as_ref().is_some_and(|s| s.phase == phase)
}

/// A topic with 10 records in each of `partitions` partitions and a group committed at 0 in each.
async fn seeded(env: &Scenario, partitions: i32) -> (String, String) {
    let topic = unique_name("ledger");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, partitions)])
        .await
        .expect("topic");
    for p in 0..partitions {
        let (b, t) = (env.bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || clients::produce_with_timestamps(&b, &t, p, 10, 1_700_000_000_000, 1000))
            .await
            .expect("produce");
    }
    let group = unique_name("ledger-group");
    commit_all(env, &topic, &group, partitions, 0).await;
    (topic, group)
}

/// What a consumer does when it moves on: commits every partition (with its own, empty, metadata).
async fn commit_all(env: &Scenario, topic: &str, group: &str, partitions: i32, offset: i64) {
    let offsets = (0..partitions)
        .map(|p| (TopicPartition::new(topic, p), offset))
        .collect();
    env.kafka.commit_offsets(group, &offsets).await.expect("commit");
}

async fn committed(env: &Scenario, group: &str) -> BTreeMap<(String, i32), i64> {
    support::kafka::committed_by_partition(&env.kafka, group).await
}

async fn create(env: &Scenario, name: &str, spec: &Value) {
    env.resets()
        .create(&PostParams::default(), &reset(name, spec.clone()))
        .await
        .expect("create the reset");
}

async fn finished(env: &Scenario, name: &str) -> OffsetReset {
    until(&env.resets(), name, T, "Succeeded", |r| {
        phase_is(r, ResetPhase::Succeeded)
    })
    .await
}

async fn deleted(env: &Scenario, name: &str) {
    let _ = env.resets().delete(name, &Default::default()).await;
    gone(env, name).await;
}

async fn gone(env: &Scenario, name: &str) {
    let deadline = tokio::time::Instant::now() + T;
    while env.resets().get_opt(name).await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "OffsetReset {name} was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn complete_message(r: &OffsetReset) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Complete"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Removes the namespace's ResetLedger: what a restore from a backup without it, or another cluster, starts from.
async fn drop_reset_ledger(env: &Scenario) {
    let ar = ApiResource {
        group: "kafkagroups.dev".into(),
        version: "v1alpha1".into(),
        api_version: "kafkagroups.dev/v1alpha1".into(),
        kind: "ResetLedger".into(),
        plural: "resetledgers".into(),
    };
    let ledgers: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.ns, &ar);
    ledgers
        .delete("offsetresets", &Default::default())
        .await
        .expect("delete the ResetLedger");
}

async fn a_reset_deleted_by_its_ttl_and_synced_again_is_already_applied(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("ledger-ttl", kafka).await;
    let (topic, group) = seeded(&env, 2).await;
    let spec =
        json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"offset": 3}, "ttlSecondsAfterFinished": 2});
    create(&env, "rewind-2026-12-07", &spec).await;
    finished(&env, "rewind-2026-12-07").await;
    assert!(committed(&env, &group).await.values().all(|o| *o == 3));
    // The consumers move on (their commits replace the reset's commit metadata); the TTL deletes the finished
    // reset, and an auto-synced application creates it again from Git.
    commit_all(&env, &topic, &group, 2, 7).await;
    gone(&env, "rewind-2026-12-07").await;
    create(&env, "rewind-2026-12-07", &spec).await;
    let again = finished(&env, "rewind-2026-12-07").await;
    assert!(
        has_condition(&again, "Complete", "True", "AlreadyApplied"),
        "{:#?}",
        again.status
    );
    let message = complete_message(&again);
    assert!(
        message.contains("applied before") && message.contains("ResetLedger"),
        "the message says when and where it was recorded: {message}"
    );
    event(&env.client, &env.ns, "rewind-2026-12-07", "AlreadyApplied", T).await;
    assert!(
        committed(&env, &group).await.values().all(|o| *o == 7),
        "the re-created reset was applied again"
    );
    // The AlreadyApplied reset is deleted by its TTL too, and a sync creates it again: still not applied.
    gone(&env, "rewind-2026-12-07").await;
    create(&env, "rewind-2026-12-07", &spec).await;
    let third = finished(&env, "rewind-2026-12-07").await;
    assert!(has_condition(&third, "Complete", "True", "AlreadyApplied"));
    assert!(committed(&env, &group).await.values().all(|o| *o == 7));
    // `plan` in a pull request that re-adds the manifest: with the API server's records it plans no change;
    // from Kafka alone (the consumers' commits replaced the record there) it cannot know.
    let manifest = write_manifest("rewind-2026-12-07", &spec);
    let with_records = run_plan(&["-f", manifest.path_str(), "--cluster", "main", "-n", &env.ns]);
    assert_eq!(with_records.0, 0, "{with_records:?}");
    assert!(
        with_records.1.contains("already applied on ") && with_records.1.contains("ResetLedger"),
        "{with_records:?}"
    );
    let kafka_only = run_plan(&["-f", manifest.path_str(), "--bootstrap-server", &env.bootstrap]);
    assert_eq!(kafka_only.0, 2, "{kafka_only:?}");
    // A reset meant to run again gets a new name (the convention: a date suffix), and is applied.
    create(&env, "rewind-2026-12-08", &spec).await;
    let renamed = finished(&env, "rewind-2026-12-08").await;
    assert!(
        has_condition(&renamed, "Complete", "True", "Succeeded"),
        "{:#?}",
        renamed.status
    );
    assert!(committed(&env, &group).await.values().all(|o| *o == 3));
    // The same name with another spec is another reset, and is applied.
    gone(&env, "rewind-2026-12-08").await;
    let other = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"offset": 4}});
    create(&env, "rewind-2026-12-08", &other).await;
    let done = finished(&env, "rewind-2026-12-08").await;
    assert!(
        has_condition(&done, "Complete", "True", "Succeeded"),
        "{:#?}",
        done.status
    );
    assert!(committed(&env, &group).await.values().all(|o| *o == 4));
}

async fn the_commit_metadata_remembers_a_reset_once_the_kubernetes_records_are_gone(kafka: &'static dyn TestBroker) {
    let first = Scenario::start("ledger-kafka", kafka).await;
    let (topic, group) = seeded(&first, 3).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"offset": 3}});
    create(&first, "replay", &spec).await;
    let applied = finished(&first, "replay").await;
    let uid = applied.metadata.uid.clone().expect("uid");
    // Every committed partition names the reset in its commit metadata.
    let offsets = first.kafka.group_offsets(&group).await.expect("offsets");
    assert_eq!(offsets.len(), 3);
    for (tp, c) in &offsets {
        let record = ResetRecord::from_commit_metadata(&c.metadata)
            .unwrap_or_else(|| panic!("{tp:?} has no reset record in its metadata: {:?}", c.metadata));
        assert_eq!(
            (record.name.as_str(), record.uid.as_str(), record.namespace.as_str()),
            ("replay", uid.as_str(), first.ns.as_str())
        );
    }
    // The same manifests synced into another namespace (or a restored one, or another cluster) whose
    // Kubernetes records know nothing of it: the commit metadata does.
    let second = Scenario::start("ledger-kafka-again", kafka).await;
    create(&second, "replay", &spec).await;
    let again = finished(&second, "replay").await;
    assert!(
        has_condition(&again, "Complete", "True", "AlreadyApplied"),
        "{:#?}",
        again.status
    );
    let message = complete_message(&again);
    assert!(
        message.contains("commit metadata") && message.contains(&uid) && message.contains(&first.ns),
        "{message}"
    );
    assert!(committed(&second, &group).await.values().all(|o| *o == 3));
    // The record lasts until the group commits those partitions again: after that, only the Kubernetes records
    // remember, and a namespace without them applies the reset (the limit the README states).
    commit_all(&second, &topic, &group, 3, 8).await;
    deleted(&second, "replay").await;
    create(&second, "replay", &spec).await;
    let applied_again = finished(&second, "replay").await;
    assert!(
        has_condition(&applied_again, "Complete", "True", "Succeeded"),
        "{:#?}",
        applied_again.status
    );
    assert!(committed(&second, &group).await.values().all(|o| *o == 3));
    // A dry run is never "applied": it plans, whatever the records say.
    let dry = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"offset": 3}, "dryRun": true});
    create(&first, "replay-dry", &dry).await;
    until(&first.resets(), "replay-dry", T, "Planned", |r| {
        phase_is(r, ResetPhase::Planned)
    })
    .await;
}

async fn a_consumer_groups_history_records_its_resets_and_recognises_them(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("ledger-history", kafka).await;
    let (topic, group) = seeded(&env, 2).await;
    let cg: ConsumerGroup = resource(
        "ConsumerGroup",
        "orders",
        json!({"clusterRef": {"name": "main"}, "groupId": group}),
    );
    env.groups().create(&PostParams::default(), &cg).await.expect("group");
    until(&env.groups(), "orders", T, "observed", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == g.metadata.generation)
    })
    .await;
    let spec = json!({"groupRef": {"name": "orders"}, "to": {"shiftBy": 4}});
    create(&env, "skip-four", &spec).await;
    let applied = finished(&env, "skip-four").await;
    let uid = applied.metadata.uid.clone().expect("uid");
    let with_entry = until(&env.groups(), "orders", T, "a reset history entry", |g| {
        g.status.as_ref().is_some_and(|s| !s.reset_history.is_empty())
    })
    .await;
    let history = with_entry.status.expect("status").reset_history;
    assert_eq!(history.len(), 1, "{history:#?}");
    let entry = &history[0];
    assert_eq!((entry.name.as_str(), entry.uid.as_str()), ("skip-four", uid.as_str()));
    assert_eq!(entry.target.as_deref(), Some("shiftBy 4"), "{entry:#?}");
    assert_eq!(entry.partitions, 2);
    let plan: Vec<(String, i32, i64)> = entry
        .plan
        .iter()
        .map(|p| (p.topic.clone(), p.partition, p.offset))
        .collect();
    assert_eq!(plan, vec![(topic.clone(), 0, 4), (topic.clone(), 1, 4)]);
    // The group reconciler writes the status every few seconds: it keeps the history (another field manager).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let later = env.groups().get("orders").await.expect("group").status.expect("status");
    assert_eq!(later.reset_history, history, "the group reconciler erased the history");
    // With the commit metadata replaced and the namespace's ledger gone, the history alone recognises it.
    commit_all(&env, &topic, &group, 2, 9).await;
    drop_reset_ledger(&env).await;
    // `plan` reads the same history: the reset and its ConsumerGroup, as a pull request would hold them.
    let dir = tempfile::tempdir().expect("dir");
    let files = dir.path().join("billing.yaml");
    let docs = [
        json!({"apiVersion": "kafkagroups.dev/v1alpha1", "kind": "ConsumerGroup", "metadata": {"name": "orders"},
               "spec": {"clusterRef": {"name": "main"}, "groupId": group}}),
        json!({"apiVersion": "kafkagroups.dev/v1alpha1", "kind": "OffsetReset", "metadata": {"name": "skip-four"}, "spec": spec}),
    ];
    std::fs::write(
        &files,
        docs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n---\n"),
    )
    .expect("write");
    let planned = run_plan(&["-f", files.to_str().expect("path"), "--cluster", "main", "-n", &env.ns]);
    assert_eq!(planned.0, 0, "{planned:?}");
    assert!(planned.1.contains("status.resetHistory"), "{planned:?}");
    deleted(&env, "skip-four").await;
    create(&env, "skip-four", &spec).await;
    let again = finished(&env, "skip-four").await;
    assert!(
        has_condition(&again, "Complete", "True", "AlreadyApplied"),
        "{:#?}",
        again.status
    );
    assert!(
        complete_message(&again).contains("status.resetHistory"),
        "{}",
        complete_message(&again)
    );
    assert!(committed(&env, &group).await.values().all(|o| *o == 9), "shifted again");
}

/// A manifest file of one OffsetReset, kept until dropped.
struct Manifest {
    _dir: tempfile::TempDir,
    path: String,
}

impl Manifest {
    fn path_str(&self) -> &str {
        &self.path
    }
}

fn write_manifest(name: &str, spec: &Value) -> Manifest {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(format!("{name}.yaml"));
    let doc = json!({"apiVersion": "kafkagroups.dev/v1alpha1", "kind": "OffsetReset", "metadata": {"name": name}, "spec": spec});
    std::fs::write(&path, doc.to_string()).expect("write");
    Manifest {
        _dir: dir,
        path: path.display().to_string(),
    }
}

/// `kafka-group-operator plan ARGS` with the control plane's kubeconfig: (exit code, stdout, stderr).
fn run_plan(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
        .arg("plan")
        .args(args)
        .env("KUBECONFIG", support::ControlPlane::shared().kubeconfig())
        .env_remove("KGO_BOOTSTRAP_SERVER")
        .output()
        .expect("run plan");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

on_both_brokers!(
    a_reset_deleted_by_its_ttl_and_synced_again_is_already_applied,
    the_commit_metadata_remembers_a_reset_once_the_kubernetes_records_are_gone,
    a_consumer_groups_history_records_its_resets_and_recognises_them,
);
