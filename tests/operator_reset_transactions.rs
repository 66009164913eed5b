//! OffsetReset and `plan` against a group whose transactional offset commit is pending (issue 16), on a real API
//! server, the operator and each broker (`on_both_brokers!`): a confluent-kafka producer holds
//! `send_offsets_to_transaction` open; the reset waits between reconciles (condition, no commit, the workload
//! untouched, other resets go on), plans from the offset the transaction commits, and fails with
//! `UnstableOffsetCommit` once `--unstable-offset-wait` has passed, counted across an operator restart.

#[macro_use]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::{OffsetReset, ResetPhase};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic, TopicPartition};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::clients::{self, ScriptProcess};
use support::kubelet::deployment;
use support::operator::Operator;
use support::scenario::{Scenario, resource};
use support::wait::{condition, event, has_condition, until};
use support::{ControlPlane, TestBroker, unique_name};

const T: Duration = Duration::from_secs(90);

/// Offset committed plainly, and offset committed inside the transaction held open.
const PLAIN: i64 = 3;
const IN_TRANSACTION: i64 = 7;

/// A topic of 10 records in one partition and a group with offset 3 committed plainly, then offset 7 committed
/// inside a transaction that stays open until the returned process is stopped (then it commits, or aborts
/// with `abort`).
async fn group_with_open_transactional_commit(
    kafka: &KafkaClient,
    bootstrap: &str,
    abort: bool,
) -> (String, String, ScriptProcess) {
    let topic = unique_name("txn-reset");
    kafka.create_topics(&[NewTopic::new(&topic, 1)]).await.expect("topic");
    let group = unique_name("txn-reset-group");
    let (b, t, g) = (bootstrap.to_owned(), topic.clone(), group.clone());
    let open = tokio::task::spawn_blocking(move || {
        clients::produce(&b, &t, 10);
        clients::commit_offsets(&b, &t, &g, 1, PLAIN).expect("plain commit");
        clients::open_transactional_commit(&b, &t, 0, &g, IN_TRANSACTION, 0, abort)
    })
    .await
    .expect("set up the open transaction");
    (topic, group, open)
}

/// Ends the held transaction (commits it, or aborts it if it was opened with `abort`); returns its log.
async fn end_transaction(open: ScriptProcess) -> String {
    tokio::task::spawn_blocking(move || open.stop()).await.expect("stop")
}

/// The group's committed offset of partition 0 as a plain (not require_stable) OffsetFetch reads it: a pending
/// transactional commit does not show.
async fn committed(kafka: &KafkaClient, group: &str, topic: &str) -> Option<i64> {
    let offsets = kafka.group_offsets(group).await.expect("committed offsets");
    offsets.get(&TopicPartition::new(topic, 0)).map(|c| c.offset)
}

fn phase_is(r: &OffsetReset, phase: ResetPhase) -> bool {
    r.status.as_ref().is_some_and(|s| s.phase == phase)
}

fn waits_for_the_transaction(r: &OffsetReset) -> bool {
    has_condition(r, "Waiting", "True", "UnstableOffsetCommit")
}

/// How long the reset says it has waited, from its `Waiting` condition ("(N s of --unstable-offset-wait …").
fn waited_s(r: &OffsetReset) -> Option<i64> {
    let (_, _, message) = condition(r, "Waiting")?;
    let (before, _) = message.split_once(" s of --unstable-offset-wait")?;
    before.rsplit('(').next()?.trim().parse().ok()
}

fn ms(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> i64 {
    t.as_ref().expect("time").0.as_millisecond()
}

/// A scenario whose operator runs with `flags`.
async fn scenario(prefix: &str, kafka: &dyn TestBroker, flags: &[&str]) -> Scenario {
    let (client, ns) = Scenario::namespace(prefix).await;
    let operator = Operator::start(ControlPlane::shared(), &ns, flags);
    Scenario::with_cluster(client, ns, kafka, Some(operator)).await
}

async fn create_reset(env: &Scenario, name: &str, spec: Value) {
    let reset: OffsetReset = resource("OffsetReset", name, spec);
    env.resets()
        .create(&PostParams::default(), &reset)
        .await
        .expect("create OffsetReset");
}

/// One reconcile at a time (`--concurrency=1`): a reset that waits for a pending transactional offset commit
/// must not hold it, or every other reset would wait too.
async fn a_reset_waits_for_a_pending_transactional_commit_between_reconciles_and_plans_from_what_it_commits(
    kafka: &dyn TestBroker,
) {
    let env = scenario("ors-txn-wait", kafka, &["--concurrency=1"]).await;
    let (topic, group, open) = group_with_open_transactional_commit(&env.kafka, &env.bootstrap, false).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .create(&PostParams::default(), &deployment("eos-workers", 2, &[]))
        .await
        .expect("deployment");
    create_reset(
        &env,
        "rewind",
        json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"shiftBy": -2}, "strategy": "ScaleDown",
            "scaleTargetRef": {"kind": "Deployment", "name": "eos-workers"}, "timeoutSeconds": 60}),
    )
    .await;
    let waiting = until(
        &env.resets(),
        "rewind",
        T,
        "waiting for the transaction",
        waits_for_the_transaction,
    )
    .await;
    let (_, _, message) = condition(&waiting, "Waiting").expect("Waiting");
    assert!(
        message.contains(&format!("{topic}-0")) && message.contains("UNSTABLE_OFFSET_COMMIT"),
        "{message}"
    );
    let status = waiting.status.clone().expect("status");
    assert!(status.unstable_offsets_since.is_some(), "{status:#?}");
    let note = event(&env.client, &env.ns, "rewind", "WaitingForStableOffsets", T).await;
    assert!(note.contains(&format!("{topic}-0")), "{note}");

    // Meanwhile another reset in the namespace runs to the end through the one reconcile slot.
    let other_topic = unique_name("plain-reset");
    env.kafka
        .create_topics(&[NewTopic::new(&other_topic, 1)])
        .await
        .expect("topic");
    let other_group = unique_name("plain-reset-group");
    env.kafka
        .commit_offsets(
            &other_group,
            &BTreeMap::from([(TopicPartition::new(&other_topic, 0), 0)]),
        )
        .await
        .expect("commit");
    create_reset(
        &env,
        "other",
        json!({"clusterRef": {"name": "main"}, "groupId": other_group, "to": {"latest": {}}}),
    )
    .await;
    let other = until(&env.resets(), "other", T, "finished", |r| {
        phase_is(r, ResetPhase::Succeeded) || phase_is(r, ResetPhase::Failed)
    })
    .await;
    assert!(phase_is(&other, ResetPhase::Succeeded), "{:#?}", other.status);

    // Still waiting: nothing planned, nothing committed, the workload as it was.
    let still = env.resets().get("rewind").await.expect("get");
    assert!(phase_is(&still, ResetPhase::Pending), "{:#?}", still.status);
    assert!(waits_for_the_transaction(&still), "{:#?}", still.status);
    let status = still.status.clone().expect("status");
    assert!(status.plan.is_empty() && status.preview.is_empty(), "{status:#?}");
    assert_eq!(committed(&env.kafka, &group, &topic).await, Some(PLAIN));
    let replicas = deployments.get("eos-workers").await.expect("deployment").spec.replicas;
    assert_eq!(replicas, Some(2), "the workload was touched while the reset waited");

    // The transaction commits: the reset plans from the offset it committed (7 - 2), not from the older 3.
    let log = end_transaction(open).await;
    assert!(log.contains("\"committed\": true"), "{log}");
    let done = until(&env.resets(), "rewind", T, "finished", |r| {
        phase_is(r, ResetPhase::Succeeded) || phase_is(r, ResetPhase::Failed)
    })
    .await;
    assert!(phase_is(&done, ResetPhase::Succeeded), "{:#?}", done.status);
    let status = done.status.clone().expect("status");
    let planned: Vec<(Option<i64>, i64)> = status.plan.iter().map(|p| (p.from, p.to)).collect();
    assert_eq!(planned, [(Some(IN_TRANSACTION), IN_TRANSACTION - 2)], "{status:#?}");
    assert_eq!(status.unstable_offsets_since, None, "{status:#?}");
    assert!(condition(&done, "Waiting").is_none(), "{status:#?}");
    assert_eq!(committed(&env.kafka, &group, &topic).await, Some(IN_TRANSACTION - 2));
    let replicas = deployments.get("eos-workers").await.expect("deployment").spec.replicas;
    assert_eq!(replicas, Some(2), "restored");
}

/// `--unstable-offset-wait=8s`, and the operator killed and restarted 5 s into the wait: the reset fails about
/// 8 s after the first UNSTABLE_OFFSET_COMMIT (the start is in status), not 8 s after the restart.
async fn a_pending_transactional_commit_that_outlives_the_wait_fails_the_reset_and_commits_nothing(
    kafka: &dyn TestBroker,
) {
    let flags = ["--unstable-offset-wait=8s"];
    let mut env = scenario("ors-txn-bound", kafka, &flags).await;
    let (topic, group, open) = group_with_open_transactional_commit(&env.kafka, &env.bootstrap, true).await;
    create_reset(
        &env,
        "rewind",
        json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"earliest": {}}}),
    )
    .await;
    let waiting = until(&env.resets(), "rewind", T, "5 s into the wait", |r| {
        waited_s(r).is_some_and(|s| s >= 5)
    })
    .await;
    let since = ms(&waiting.status.clone().expect("status").unstable_offsets_since);
    env.operator.as_mut().expect("operator").kill();
    env.operator = Some(Operator::start(ControlPlane::shared(), &env.ns, &flags));

    let failed = until(&env.resets(), "rewind", T, "finished", |r| {
        phase_is(r, ResetPhase::Failed) || phase_is(r, ResetPhase::Succeeded)
    })
    .await;
    assert!(
        has_condition(&failed, "Failed", "True", "UnstableOffsetCommit"),
        "{:#?}",
        failed.status
    );
    let status = failed.status.clone().expect("status");
    let failure = status.failure.clone().unwrap_or_default();
    for words in [
        format!("{topic}-0"),
        "UNSTABLE_OFFSET_COMMIT".to_owned(),
        "--unstable-offset-wait 8 s".to_owned(),
        "nothing was committed".to_owned(),
    ] {
        assert!(failure.contains(&words), "{words:?} not in {failure}");
    }
    // Times in status are whole seconds: the count began at the first answer, before the restart.
    let waited = ms(&status.completion_time) - since;
    assert!(
        (7_000..=11_000).contains(&waited),
        "failed {waited} ms after the wait began"
    );
    assert!(status.plan.is_empty(), "{status:#?}");
    assert_eq!(committed(&env.kafka, &group, &topic).await, Some(PLAIN));

    let log = end_transaction(open).await;
    assert!(log.contains("\"aborted\": true"), "{log}");
    let stable = env.kafka.stable_group_offsets(&group).await.expect("stable offsets");
    assert_eq!(stable[&TopicPartition::new(&topic, 0)].offset, PLAIN);
}

/// `kafka-group-operator plan` against a group with an open transactional offset commit: it waits, saying so,
/// fails naming UNSTABLE_OFFSET_COMMIT and the partition once `--unstable-offset-wait` has passed, and plans
/// from the committed-in-transaction offset once the transaction commits.
async fn plan_waits_for_a_pending_transactional_commit_and_fails_naming_it_when_the_wait_passes(
    kafka: &dyn TestBroker,
) {
    let bootstrap = kafka.bootstrap();
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()])).expect("client");
    let (topic, group, open) = group_with_open_transactional_commit(&client, &bootstrap, false).await;
    let dir = tempfile::tempdir().expect("dir");
    let manifest = dir.path().join("reset.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata:\n  name: rewind\nspec:\n  clusterRef: {{name: main}}\n  groupId: {group}\n  to: {{shiftBy: -2}}\n"
        ),
    )
    .expect("manifest");
    let plan = |wait: &str, stderr: Stdio| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"));
        cmd.args(["plan", "-o", "json", "--bootstrap-server", &bootstrap, "-f"])
            .arg(&manifest)
            .args(["--unstable-offset-wait", wait])
            .env_remove("RUST_LOG")
            .env_remove("KGO_BOOTSTRAP_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        cmd.spawn().expect("run kafka-group-operator plan")
    };

    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let child = plan("2s", Stdio::piped());
        move || child.wait_with_output()
    })
    .await
    .expect("join")
    .expect("plan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(stderr.contains("waiting up to 2s"), "{stderr}");
    let error = stderr.lines().last().unwrap_or_default();
    for words in [
        "error: ",
        "UNSTABLE_OFFSET_COMMIT",
        &format!("{topic}-0"),
        "waited",
        "--unstable-offset-wait",
    ] {
        assert!(error.contains(words), "{words:?} not in {error}");
    }
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));

    // With the default wait it waits, and plans from 7 once the transaction commits.
    let errors = dir.path().join("stderr");
    let child = plan("60s", Stdio::from(std::fs::File::create(&errors).expect("stderr file")));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&errors)
        .unwrap_or_default()
        .contains("waiting up to 1m0s")
    {
        assert!(Instant::now() < deadline, "plan never said it waits");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = end_transaction(open).await;
    assert!(log.contains("\"committed\": true"), "{log}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("plan");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        std::fs::read_to_string(&errors).unwrap_or_default()
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    let p = &plan["groups"][0]["partitions"][0];
    assert_eq!(
        (p["current"].as_i64(), p["target"].as_i64()),
        (Some(IN_TRANSACTION), Some(IN_TRANSACTION - 2)),
        "{plan:#}"
    );
}

on_both_brokers!(
    a_reset_waits_for_a_pending_transactional_commit_between_reconciles_and_plans_from_what_it_commits,
    a_pending_transactional_commit_that_outlives_the_wait_fails_the_reset_and_commits_nothing,
    plan_waits_for_a_pending_transactional_commit_and_fails_naming_it_when_the_wait_passes,
);
