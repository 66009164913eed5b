//! OffsetReset under faults (issue 14), against a real API server, consumers run by the kubelet stand-in and
//! each broker (`on_both_brokers!`, except where the broker does not matter): deleting a reset in every active
//! phase, deleting its ConsumerGroup, two resets on one workload, a reset next to the ConsumerGroup's own lag
//! scaler, API-server outages, a leader that loses its Lease, `assign()` consumers committing into an empty
//! group, and a relative target on a group that keeps consuming until it is scaled down.
//!
//! Every test asserts the final replica count, the committed offsets (from a recorder that polls them all along,
//! so what happened in between counts too) and exactly-once: `Applied` Events, the operator's
//! `kafka_group_operator_offset_commits_total` (where no operator is killed) and the number of times the
//! offsets arrived at the plan.

#[macro_use]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kafka_group_operator::api::{ConsumerGroup, OffsetReset, ResetPhase, WorkloadClaim};
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::clients::{self, GroupMember, GroupProtocol, ScriptProcess};
use support::kubelet::{Kubelet, deployment};
use support::operator::Operator;
use support::recorders::{OffsetHistory, Offsets, ReplicaHistory, ResetHistory};
use support::scenario::{Scenario, resource};
use support::wait::{condition, event, events, has_condition, until};
use support::{ApacheKafka, ControlPlane, TestBroker, crds, unique_name};
use tokio::time::Instant;

const T: Duration = Duration::from_secs(90);
const FINALIZER: &str = "kafkagroups.dev/offset-reset";
const KEDA_PAUSE: &str = "autoscaling.keda.sh/paused-replicas";
const COMMITS: &str = "kafka_group_operator_offset_commits_total";

type Env = Scenario;

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn reset(name: &str, spec: Value) -> OffsetReset {
    resource("OffsetReset", name, spec)
}

fn phase(r: &OffsetReset) -> Option<ResetPhase> {
    r.status.as_ref().map(|s| s.phase)
}

fn finished(r: &OffsetReset) -> bool {
    matches!(phase(r), Some(ResetPhase::Succeeded | ResetPhase::Failed))
}

fn rank(p: ResetPhase) -> u8 {
    match p {
        ResetPhase::Pending => 0,
        ResetPhase::Planned => 1,
        ResetPhase::ScalingDown => 2,
        ResetPhase::WaitingForInactive => 3,
        ResetPhase::Applying => 4,
        ResetPhase::Restoring => 5,
        ResetPhase::Succeeded | ResetPhase::Failed => 6,
    }
}

/// A ScaleDown reset of `group` (by clusterRef + groupId) that scales Deployment `workload`.
fn scale_down_spec(group: &str, workload: &str, to: Value) -> Value {
    json!({"clusterRef": {"name": "main"}, "groupId": group, "to": to, "strategy": "ScaleDown",
        "scaleTargetRef": {"kind": "Deployment", "name": workload}, "timeoutSeconds": 90})
}

/// A topic with `per_partition` records in each of `partitions` partitions and a group with an admin commit
/// at `committed` in each partition.
async fn seeded(env: &Env, partitions: i32, per_partition: usize, committed: i64) -> (String, String) {
    let topic = unique_name("faults");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, partitions)])
        .await
        .expect("topic");
    for p in 0..partitions {
        let (b, t) = (env.bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || {
            clients::produce_with_timestamps(&b, &t, p, per_partition, 1_700_000_000_000, 1000)
        })
        .await
        .expect("produce");
    }
    let group = unique_name("faults-group");
    let offsets = (0..partitions)
        .map(|p| (TopicPartition::new(&topic, p), committed))
        .collect();
    commit_admin(env, &group, &offsets).await;
    (topic, group)
}

/// An admin commit, retried while a fresh broker answers NOT_COORDINATOR.
async fn commit_admin(env: &Env, group: &str, offsets: &BTreeMap<TopicPartition, i64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match env.kafka.commit_offsets(group, offsets).await {
            Ok(()) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "admin commit to {group}: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

fn deployments(env: &Env) -> Api<Deployment> {
    Api::namespaced(env.client.clone(), &env.ns)
}

fn claims(env: &Env) -> Api<WorkloadClaim> {
    Api::namespaced(env.client.clone(), &env.ns)
}

/// The WorkloadClaim of a workload: `<kind lowercased>-<name>`.
fn claim_name(kind: &str, name: &str) -> String {
    format!("{}-{name}", kind.to_lowercase())
}

async fn replicas(env: &Env, name: &str) -> Option<i32> {
    deployments(env).get(name).await.expect("get deployment").spec.replicas
}

/// Deployment `name` of `replicas` real consumers of `topic` in `group`, running.
async fn consumers(env: &Env, name: &str, topic: &str, group: &str, replicas: i32, extra: &[(&str, &str)]) -> Kubelet {
    let mut settings = vec![("KAFKA_GROUP_ID", group), ("KAFKA_TOPICS", topic)];
    settings.extend_from_slice(extra);
    deployments(env)
        .create(&PostParams::default(), &deployment(name, replicas, &settings))
        .await
        .expect("deployment");
    let kubelet = Kubelet::start(env.client.clone(), &env.ns, name, &env.bootstrap).await;
    kubelet.wait_running(replicas as usize, Duration::from_secs(120)).await;
    kubelet
}

async fn committed(env: &Env, group: &str) -> Offsets {
    support::kafka::committed_by_partition(&env.kafka, group).await
}

async fn wait_committed_at_end(env: &Env, group: &str, end: i64, partitions: usize) {
    let deadline = Instant::now() + T;
    loop {
        let c = committed(env, group).await;
        if c.len() == partitions && c.values().all(|o| *o == end) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumers did not reach the end {end}: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A member of `group` outside every workload: a confluent-kafka consumer subscribed to a topic of its own
/// (so that it takes none of the workload's partitions and commits nothing), which keeps the group active
/// however far the workload scales down.
async fn outsider(env: &Env, group: &str) -> GroupMember {
    let topic = unique_name("outsider");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("outsider topic");
    let bootstrap = env.bootstrap.clone();
    let group = group.to_owned();
    tokio::task::block_in_place(move || GroupMember::join(&bootstrap, &topic, &group, GroupProtocol::Classic, None))
}

/// OffsetCommit requests the reset controller sent for reset `name` (0 when the series does not exist yet).
fn commits(op: &Operator, ns: &str, name: &str) -> u64 {
    op.metric(COMMITS, &[("namespace", ns), ("name", name)])
        .map_or(0, |v| v as u64)
}

fn operator(env: &Env) -> &Operator {
    env.operator.as_ref().expect("the scenario's operator")
}

/// Events about `name` with `reason`.
async fn count_events(env: &Env, name: &str, reason: &str) -> usize {
    events(&env.client, &env.ns, name)
        .await
        .iter()
        .filter(|(_, r, _)| r == reason)
        .count()
}

/// The applied plan as offsets by (topic, partition).
fn plan_of(r: &OffsetReset) -> Offsets {
    r.status
        .as_ref()
        .map(|s| s.plan.iter().map(|p| ((p.topic.clone(), p.partition), p.to)).collect())
        .unwrap_or_default()
}

/// Waits until `name` no longer exists.
async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration, what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + timeout;
    loop {
        let current = api.get_opt(name).await.expect("get");
        let Some(obj) = current else { return };
        assert!(
            Instant::now() < deadline,
            "{what} {name} still exists after {timeout:?}: {obj:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A finished reset lets go of its finalizer (in a write of its own, right after the last phase).
async fn wait_no_finalizer(env: &Env, name: &str) {
    until(
        &env.resets(),
        name,
        Duration::from_secs(15),
        "without a finalizer",
        |r| finished(r) && !r.finalizers().iter().any(|f| f == FINALIZER),
    )
    .await;
}

async fn finish(env: &Env, name: &str, timeout: Duration) -> OffsetReset {
    until(&env.resets(), name, timeout, "finished", finished).await
}

fn assert_succeeded(r: &OffsetReset, context: &str) {
    assert_eq!(
        phase(r),
        Some(ResetPhase::Succeeded),
        "{context}: {} ended {:#?}",
        r.name_any(),
        r.status
    );
}

/// `name` went through Restoring and then ended Failed.
async fn assert_failed_through_restoring(history: &ResetHistory, name: &str) {
    history
        .wait_for_phase(name, ResetPhase::Failed, Duration::from_secs(15))
        .await;
    let phases = history.phases(name);
    let restoring = phases.iter().position(|p| *p == ResetPhase::Restoring);
    let failed = phases.iter().position(|p| *p == ResetPhase::Failed);
    assert!(
        matches!((restoring, failed), (Some(r), Some(f)) if r < f) && phases.last() == Some(&ResetPhase::Failed),
        "{name} must restore the workload (phase Restoring) before it ends Failed; phases seen: {phases:?}"
    );
}

fn scaled_objects(env: &Env) -> Api<DynamicObject> {
    support::keda::scaled_objects(&env.client, &env.ns)
}

async fn install_keda_crd(client: &kube::Client) {
    support::keda::install_crd(client).await
}

async fn keda_paused(env: &Env, name: &str) -> Option<String> {
    let so = scaled_objects(env).get(name).await.expect("ScaledObject");
    so.annotations().get(KEDA_PAUSE).cloned()
}

/// The WorkloadClaim names the holding reset (name and UID) and the original count. An error
/// rather than a panic, so that a test can look at the claim while it is held and judge it at the end.
async fn claim_check(env: &Env, claim: &str, holder: &OffsetReset, original: i32) -> Result<(), String> {
    let found = claims(env)
        .get_opt(claim)
        .await
        .expect("get WorkloadClaim")
        .ok_or_else(|| {
            format!(
                "no WorkloadClaim {claim} while {} holds the workload",
                holder.name_any()
            )
        })?;
    let spec = &found.spec;
    if Some(spec.holder.uid.clone()) != holder.uid()
        || spec.holder.name != holder.name_any()
        || spec.original_replicas != original
        || spec.workload.kind != "Deployment"
    {
        return Err(format!(
            "the WorkloadClaim {claim} must name {} (UID {:?}) holding {original} original replicas: {found:#?}",
            holder.name_any(),
            holder.uid()
        ));
    }
    Ok(())
}

/// No WorkloadClaim once every reset released the workload.
async fn assert_released(env: &Env, claim: &str) {
    wait_gone(&claims(env), claim, Duration::from_secs(15), "WorkloadClaim").await;
}

// ---------------------------------------------------------------------------------------------------------
// 1. Deleting a reset in each active phase
// ---------------------------------------------------------------------------------------------------------

async fn deleting_a_reset_in_any_active_phase_restores_the_workload_and_lets_it_go(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("orf-delete", kafka).await;
    install_keda_crd(&env.client).await;
    let (topic, group) = seeded(&env, 2, 10, 0).await;
    let so: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "consumers"},
        "spec": {"scaleTargetRef": {"name": "consumers"}}
    }))
    .expect("so");
    scaled_objects(&env)
        .create(&PostParams::default(), &so)
        .await
        .expect("ScaledObject");
    let kubelet = consumers(&env, "consumers", &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let history = ResetHistory::start(env.resets());
    let claim = claim_name("Deployment", "consumers");
    let earliest: Offsets = [((topic.clone(), 0), 0), ((topic.clone(), 1), 0)].into();

    for target in [
        ResetPhase::WaitingForInactive,
        ResetPhase::ScalingDown,
        ResetPhase::Applying,
        ResetPhase::Restoring,
    ] {
        let name = format!("delete-in-{}", format!("{target:?}").to_lowercase());
        // Up to WaitingForInactive, a member outside the workload keeps the group active: the reset cannot get
        // past WaitingForInactive, whatever the timing of the deletion, so nothing may be committed.
        let before_commit = rank(target) < rank(ResetPhase::Applying);
        let outsider = if before_commit {
            Some(outsider(&env, &group).await)
        } else {
            None
        };
        env.resets()
            .create(
                &PostParams::default(),
                &reset(&name, scale_down_spec(&group, "consumers", json!({"earliest": {}}))),
            )
            .await
            .expect("create");
        let reached = until(&env.resets(), &name, T, &format!("{target:?} or later"), |r| {
            phase(r).is_some_and(|p| rank(p) >= rank(target))
        })
        .await;
        if target == ResetPhase::WaitingForInactive {
            assert_eq!(phase(&reached), Some(ResetPhase::WaitingForInactive));
            assert!(
                reached.finalizers().iter().any(|f| f == FINALIZER),
                "a running ScaleDown reset carries the finalizer {FINALIZER}: {:?}",
                reached.metadata
            );
            // The phase is persisted before the scale write: wait for the write.
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let (r, paused) = (replicas(&env, "consumers").await, keda_paused(&env, "consumers").await);
                if r == Some(0) && paused.as_deref() == Some("0") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: in WaitingForInactive the Deployment is scaled to 0 (is {r:?}) and KEDA paused (annotation {paused:?})"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let deleted = env
            .resets()
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
        // With the finalizer, the API server answers with the object, marked for deletion.
        let at_deletion = deleted.left();
        let phase_at_deletion = at_deletion.as_ref().and_then(phase);
        eprintln!("{name}: deleted in phase {phase_at_deletion:?} (None: finished, deleted at once)");
        if before_commit {
            assert!(
                at_deletion
                    .as_ref()
                    .is_some_and(|r| r.finalizers().iter().any(|f| f == FINALIZER)),
                "{name}: an active reset must not vanish at once (finalizer {FINALIZER}): {at_deletion:#?}"
            );
        }
        wait_gone(&env.resets(), &name, T, "OffsetReset").await;
        offsets.sync().await;
        assert_eq!(
            replicas(&env, "consumers").await,
            Some(2),
            "{name} (deleted in {phase_at_deletion:?}): the Deployment is back at its original count\n{}",
            kubelet.report()
        );
        assert_eq!(
            keda_paused(&env, "consumers").await,
            None,
            "{name}: the KEDA pause the reset set is removed"
        );
        if phase_at_deletion
            .is_some_and(|p| rank(p) >= rank(ResetPhase::WaitingForInactive) && rank(p) <= rank(ResetPhase::Applying))
        {
            event(
                &env.client,
                &env.ns,
                &name,
                "RestoredOnDeletion",
                Duration::from_secs(10),
            )
            .await;
        }
        assert_released(&env, &claim).await;
        let sent = commits(operator(&env), &env.ns, &name);
        let applied = count_events(&env, &name, "Applied").await;
        if before_commit {
            assert_eq!(sent, 0, "{name}: nothing may be committed before the group is empty");
            assert_eq!(applied, 0, "{name}");
            assert_eq!(
                offsets.arrivals(&earliest),
                0,
                "{name}: the offsets never moved to the plan; seen {:?}",
                offsets.summary()
            );
        } else {
            assert!(sent <= 1, "{name}: committed {sent} times");
            assert_eq!(applied as u64, sent, "{name}: one Applied Event per commit");
            // Deleted after the commit (in Restoring, or finished and gone at once): committed exactly once.
            if phase_at_deletion.is_none_or(|p| rank(p) >= rank(ResetPhase::Restoring)) {
                assert_eq!(
                    sent,
                    1,
                    "{name}: deleted after its commit (in {phase_at_deletion:?}; phases {:?}), so it committed once",
                    history.phases(&name)
                );
            }
        }
        if let Some(o) = outsider {
            o.leave();
        }
        kubelet.wait_running(2, Duration::from_secs(120)).await;
        wait_committed_at_end(&env, &group, 10, 2).await;
    }
    assert!(offsets.arrivals(&earliest) <= 2, "{:?}", offsets.summary());
}

// ---------------------------------------------------------------------------------------------------------
// 2. Deleting the ConsumerGroup a reset names
// ---------------------------------------------------------------------------------------------------------

async fn deleting_the_consumer_group_mid_flight_restores_the_workload_then_fails(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("orf-cgdel", kafka).await;
    let (topic, group) = seeded(&env, 2, 10, 0).await;
    let cg: ConsumerGroup = resource(
        "ConsumerGroup",
        "orders",
        json!({"clusterRef": {"name": "main"}, "groupId": group, "topics": [topic], "deletionPolicy": "Retain"}),
    );
    env.groups()
        .create(&PostParams::default(), &cg)
        .await
        .expect("ConsumerGroup");
    let kubelet = consumers(&env, "consumers", &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let history = ResetHistory::start(env.resets());
    let outsider = outsider(&env, &group).await;
    let spec = json!({"groupRef": {"name": "orders"}, "to": {"earliest": {}}, "strategy": "ScaleDown",
        "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}, "timeoutSeconds": 90});
    env.resets()
        .create(&PostParams::default(), &reset("orphaned", spec))
        .await
        .expect("create");
    until(&env.resets(), "orphaned", T, "WaitingForInactive", |r| {
        phase(r) == Some(ResetPhase::WaitingForInactive)
    })
    .await;
    // WaitingForInactive is persisted before the scale it names (the phase goes first, so a crash between
    // the two scales down again): the scale follows within a step.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while replicas(&env, "consumers").await != Some(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workload was not scaled to zero"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.groups()
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete ConsumerGroup");
    wait_gone(&env.groups(), "orders", T, "ConsumerGroup").await;
    let failed = finish(&env, "orphaned", T).await;
    assert!(
        has_condition(&failed, "Failed", "True", "GroupNotFound"),
        "{:#?}",
        failed.status
    );
    assert_failed_through_restoring(&history, "orphaned").await;
    assert_eq!(
        replicas(&env, "consumers").await,
        Some(2),
        "the Deployment is restored\n{}",
        kubelet.report()
    );
    assert_eq!(
        failed
            .status
            .as_ref()
            .and_then(|s| s.workload.as_ref())
            .map(|w| w.original_replicas),
        Some(2)
    );
    wait_no_finalizer(&env, "orphaned").await;
    assert_released(&env, &claim_name("Deployment", "consumers")).await;
    assert_eq!(commits(operator(&env), &env.ns, "orphaned"), 0);
    assert_eq!(count_events(&env, "orphaned", "Applied").await, 0);
    outsider.leave();
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    let end: Offsets = [((topic.clone(), 0), 10), ((topic.clone(), 1), 10)].into();
    offsets.wait_for(&end, T).await;
    assert_eq!(offsets.min_of(&(topic.clone(), 0)), Some(10), "{:?}", offsets.summary());
    assert_eq!(offsets.min_of(&(topic, 1)), Some(10), "{:?}", offsets.summary());
}

// ---------------------------------------------------------------------------------------------------------
// 3. Two resets on one workload
// ---------------------------------------------------------------------------------------------------------

async fn two_scale_down_resets_on_one_deployment_take_turns(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("orf-two", kafka).await;
    let (topic, group) = seeded(&env, 2, 12, 0).await;
    let kubelet = consumers(&env, "consumers", &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 12, 2).await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let history = ResetHistory::start(env.resets());
    let claim = claim_name("Deployment", "consumers");
    let began = Instant::now();
    env.resets()
        .create(
            &PostParams::default(),
            &reset("first", scale_down_spec(&group, "consumers", json!({"offset": 3}))),
        )
        .await
        .expect("create first");
    // The scenario of the issue: the second reset comes 2 s after the first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.resets()
        .create(
            &PostParams::default(),
            &reset("second", scale_down_spec(&group, "consumers", json!({"offset": 5}))),
        )
        .await
        .expect("create second");
    let waiting = until(&env.resets(), "second", T, "Waiting (WorkloadClaimed)", |r| {
        has_condition(r, "Waiting", "True", "WorkloadClaimed")
    })
    .await;
    assert_eq!(phase(&waiting), Some(ResetPhase::Pending), "{:#?}", waiting.status);
    let (_, _, message) = condition(&waiting, "Waiting").expect("Waiting");
    assert!(message.contains("first"), "the message names the holder: {message}");
    let first = env.resets().get("first").await.expect("first");
    // Judged at the end, after everything else.
    let claim_while_held = if finished(&first) {
        Ok(())
    } else {
        let all: Vec<String> = claims(&env)
            .list(&Default::default())
            .await
            .map(|l| l.items.iter().map(|x| x.name_any()).collect())
            .unwrap_or_default();
        claim_check(&env, &claim, &first, 2)
            .await
            .map_err(|e| format!("{e}\nWorkloadClaims in the namespace: {all:?}"))
    };

    let first = finish(&env, "first", T).await;
    assert_succeeded(&first, "first");
    let second = finish(&env, "second", T).await;
    offsets.sync().await;
    assert_succeeded(&second, "second");
    for r in [&first, &second] {
        assert_eq!(
            r.status
                .as_ref()
                .and_then(|s| s.workload.as_ref())
                .map(|w| w.original_replicas),
            Some(2),
            "{}: the original count is the Deployment's, never the other reset's 0",
            r.name_any()
        );
    }
    // The second touched the workload only after the first had finished.
    history
        .wait_for_phase("second", ResetPhase::Succeeded, Duration::from_secs(15))
        .await;
    let first_done = history
        .entered("first", ResetPhase::Succeeded)
        .expect("first Succeeded seen");
    let second_started = history
        .find("second", |s| {
            s.phase.is_some_and(|p| rank(p) >= rank(ResetPhase::ScalingDown))
        })
        .map(|(t, _)| t)
        .expect("second ScalingDown seen");
    assert!(
        second_started > first_done,
        "the second scaled before the first finished: first {:?}, second {:?}",
        history.phases("first"),
        history.phases("second")
    );
    assert_eq!(replicas(&env, "consumers").await, Some(2), "{}", kubelet.report());
    for name in ["first", "second"] {
        assert_eq!(commits(operator(&env), &env.ns, name), 1, "{name}: OffsetCommits sent");
        assert_eq!(count_events(&env, name, "Applied").await, 1, "{name}: Applied Events");
        wait_no_finalizer(&env, name).await;
    }
    let (plan_a, plan_b) = (plan_of(&first), plan_of(&second));
    assert_eq!(plan_a.values().copied().collect::<Vec<_>>(), vec![3, 3]);
    assert_eq!(plan_b.values().copied().collect::<Vec<_>>(), vec![5, 5]);
    assert_eq!(offsets.arrivals(&plan_a), 1, "{:?}", offsets.summary());
    assert_eq!(offsets.arrivals(&plan_b), 1, "{:?}", offsets.summary());
    let a_at = offsets.first_match_since(&plan_a, began);
    let b_at = offsets.first_match_since(&plan_b, began);
    assert!(
        a_at.is_some() && a_at < b_at,
        "the first's offsets came first: {:?}",
        offsets.summary()
    );
    assert_released(&env, &claim).await;
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    wait_committed_at_end(&env, &group, 12, 2).await;
    if let Err(e) = claim_while_held {
        panic!("{e}");
    }
}

/// One pair: Deployment `w<i>` (no consumers run: only the claim and the counts matter), reset `a` and, 2 s
/// later, reset `b`; both must succeed and the Deployment end at its original count.
async fn pair(env: &Env, topic: &str, i: usize) -> (String, String) {
    let original = (i % 3) as i32 + 1;
    let workload = format!("w{i}");
    let group = unique_name("pair");
    deployments(env)
        .create(
            &PostParams::default(),
            &deployment(
                &workload,
                original,
                &[("KAFKA_GROUP_ID", &group), ("KAFKA_TOPICS", topic)],
            ),
        )
        .await
        .expect("deployment");
    commit_admin(env, &group, &[(TopicPartition::new(topic, 0), 10)].into()).await;
    let (a, b) = (format!("p{i}-a"), format!("p{i}-b"));
    let mut spec_a = scale_down_spec(&group, &workload, json!({"offset": 2}));
    spec_a["timeoutSeconds"] = json!(60);
    let mut spec_b = scale_down_spec(&group, &workload, json!({"offset": 4}));
    spec_b["timeoutSeconds"] = json!(60);
    env.resets()
        .create(&PostParams::default(), &reset(&a, spec_a))
        .await
        .expect("create a");
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.resets()
        .create(&PostParams::default(), &reset(&b, spec_b))
        .await
        .expect("create b");
    let done_a = finish(env, &a, T).await;
    let done_b = finish(env, &b, T).await;
    assert_succeeded(&done_a, &format!("pair {i}"));
    assert_succeeded(&done_b, &format!("pair {i}"));
    assert_eq!(
        replicas(env, &workload).await,
        Some(original),
        "pair {i}: the Deployment must end at its original count"
    );
    for r in [&done_a, &done_b] {
        assert_eq!(
            r.status
                .as_ref()
                .and_then(|s| s.workload.as_ref())
                .map(|w| w.original_replicas),
            Some(original),
            "pair {i}: {} recorded the wrong original count",
            r.name_any()
        );
    }
    assert_eq!(
        committed(env, &group).await.get(&(topic.to_owned(), 0)),
        Some(&4),
        "pair {i}: the later reset's offsets stand"
    );
    for r in [&done_a, &done_b] {
        assert_eq!(
            commits(operator(env), &env.ns, &r.name_any()),
            1,
            "pair {i}: {} committed",
            r.name_any()
        );
    }
    assert_released(env, &claim_name("Deployment", &workload)).await;
    (a, b)
}

async fn twenty_pairs_of_resets_two_seconds_apart_always_end_at_the_original_count(kafka: &'static dyn TestBroker) {
    const PAIRS: usize = 20;
    // Pairs on different Deployments run side by side, WAVE at a time, to keep the test to about a minute.
    const WAVE: usize = 5;
    let env = Scenario::start("orf-pairs", kafka).await;
    let topic = unique_name("pairs");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    let (b, t) = (env.bootstrap.clone(), topic.clone());
    tokio::task::spawn_blocking(move || clients::produce(&b, &t, 10))
        .await
        .expect("produce");
    let history = ResetHistory::start(env.resets());
    let mut names = Vec::new();
    for wave in 0..PAIRS / WAVE {
        let runs = (0..WAVE).map(|j| pair(&env, &topic, wave * WAVE + j));
        names.extend(futures_util::future::join_all(runs).await);
    }
    for (a, b) in names {
        let message = history.condition_seen(&b, "Waiting", "True", "WorkloadClaimed");
        assert!(
            message.as_deref().is_some_and(|m| m.contains(&a)),
            "{b} should have waited for {a}'s claim; its states: {:#?}",
            history.states(&b)
        );
        assert_eq!(count_events(&env, &a, "Applied").await, 1, "{a}");
        assert_eq!(count_events(&env, &b, "Applied").await, 1, "{b}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 4. A reset and the ConsumerGroup's lag scaler on one Deployment
// ---------------------------------------------------------------------------------------------------------

async fn a_reset_holds_the_lag_scaler_off_its_workload_until_it_restored_it(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("orf-scaler", kafka).await;
    let (topic, group) = seeded(&env, 2, 20, 0).await;
    // Consumers that go on for 15 s after SIGTERM before they leave the group.
    let kubelet = consumers(
        &env,
        "consumers",
        &topic,
        &group,
        1,
        &[("KAFKA_SHUTDOWN_DELAY_MS", "15000")],
    )
    .await;
    wait_committed_at_end(&env, &group, 20, 2).await;
    let cg: ConsumerGroup = resource(
        "ConsumerGroup",
        "orders",
        json!({"clusterRef": {"name": "main"}, "groupId": group, "topics": [topic],
            "scaling": {"targetRef": {"kind": "Deployment", "name": "consumers"}, "minReplicas": 1, "maxReplicas": 2,
                "lagPerReplica": 1000, "scaleDownStabilizationSeconds": 600, "cooldownSeconds": 2}}),
    );
    env.groups()
        .create(&PostParams::default(), &cg)
        .await
        .expect("ConsumerGroup");
    until(&env.groups(), "orders", T, "scaling (steady)", |g| {
        condition(g, "Scaling").is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let replica_history = ReplicaHistory::start(deployments(&env), "consumers").await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let spec = json!({"groupRef": {"name": "orders"}, "to": {"shiftBy": -10}, "strategy": "ScaleDown",
        "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}, "timeoutSeconds": 90});
    env.resets()
        .create(&PostParams::default(), &reset("rewind", spec))
        .await
        .expect("create");
    until(&env.resets(), "rewind", T, "WaitingForInactive", |r| {
        phase(r).is_some_and(|p| rank(p) >= rank(ResetPhase::WaitingForInactive))
    })
    .await;
    // The consumer takes 15 s to leave: meanwhile the scaler sees 0 replicas below minReplicas 1, and holds.
    let held = until(&env.groups(), "orders", Duration::from_secs(30), "HeldByReset", |g| {
        has_condition(g, "Scaling", "False", "HeldByReset")
    })
    .await;
    let _ = held;
    let done = finish(&env, "rewind", Duration::from_secs(120)).await;
    offsets.sync().await;
    assert_succeeded(&done, "rewind");
    assert_eq!(
        done.status
            .as_ref()
            .and_then(|s| s.workload.as_ref())
            .map(|w| w.original_replicas),
        Some(1)
    );
    // The scaler resumes from the restored count.
    until(&env.groups(), "orders", T, "scaling again", |g| {
        condition(g, "Scaling").is_some_and(|(_, r, _)| r != "HeldByReset")
    })
    .await;
    assert_eq!(
        replica_history.values(),
        vec![Some(1), Some(0), Some(1)],
        "only the reset scaled (down once, back once); the scaler wrote nothing while held\n{}",
        kubelet.report()
    );
    assert_eq!(replicas(&env, "consumers").await, Some(1));
    assert_eq!(count_events(&env, "orders", "Scaled").await, 0, "no scaler write");
    assert_eq!(commits(operator(&env), &env.ns, "rewind"), 1);
    assert_eq!(count_events(&env, "rewind", "Applied").await, 1);
    let plan = plan_of(&done);
    assert_eq!(
        plan,
        [((topic.clone(), 0), 10), ((topic.clone(), 1), 10)].into(),
        "shiftBy -10 from the drained 20"
    );
    assert_eq!(offsets.arrivals(&plan), 1, "{:?}", offsets.summary());
    assert_released(&env, &claim_name("Deployment", "consumers")).await;
    kubelet.wait_running(1, Duration::from_secs(120)).await;
    wait_committed_at_end(&env, &group, 20, 2).await;
}

// ---------------------------------------------------------------------------------------------------------
// 5. The API server stopped in each active phase
// ---------------------------------------------------------------------------------------------------------

/// Kills the private control plane's kube-apiserver, keeps it down for 5 s, starts it again.
async fn outage(cp: &ControlPlane, during: &str) {
    let took = tokio::task::block_in_place(|| cp.restart_apiserver(Duration::from_secs(5)));
    eprintln!("API server outage during {during}: {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_server_outages_in_the_active_phases_delay_a_reset_but_never_break_it() {
    let kafka = ApacheKafka::shared();
    // A control plane of its own: its API server is killed and started again.
    let cp = tokio::task::block_in_place(ControlPlane::start);
    let client = cp.client().await;
    crds::install(&client).await;
    let ns = cp.fresh_namespace(&client, "orf-outage").await;
    let op = Operator::start(&cp, &ns, &[]);
    let env = Scenario::with_cluster(client, ns, kafka, Some(op)).await;
    let (topic, group) = seeded(&env, 2, 10, 0).await;
    let kubelet = consumers(&env, "consumers", &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let history = ResetHistory::start(env.resets());
    let outsider = outsider(&env, &group).await;
    let mut spec = scale_down_spec(&group, "consumers", json!({"offset": 4}));
    spec["timeoutSeconds"] = json!(300);
    env.resets()
        .create(&PostParams::default(), &reset("outage", spec))
        .await
        .expect("create");

    until(&env.resets(), "outage", T, "WaitingForInactive", |r| {
        phase(r) == Some(ResetPhase::WaitingForInactive)
    })
    .await;
    outage(&cp, "WaitingForInactive").await;
    let after = until(&env.resets(), "outage", T, "readable again", |_| true).await;
    assert_eq!(
        phase(&after),
        Some(ResetPhase::WaitingForInactive),
        "an outage is no reason to leave the phase: {:#?}",
        after.status
    );
    outsider.leave();

    until(&env.resets(), "outage", T, "Applying", |r| {
        phase(r).is_some_and(|p| rank(p) >= rank(ResetPhase::Applying))
    })
    .await;
    outage(&cp, "Applying").await;

    // Restoring is short: best effort (it may be over before the watch reports it).
    let r = until(&env.resets(), "outage", T, "Restoring", |r| {
        phase(r).is_some_and(|p| rank(p) >= rank(ResetPhase::Restoring))
    })
    .await;
    if phase(&r) == Some(ResetPhase::Restoring) {
        outage(&cp, "Restoring").await;
    }

    let done = finish(&env, "outage", Duration::from_secs(180)).await;
    offsets.sync().await;
    assert_succeeded(&done, "outage");
    history
        .wait_for_phase("outage", ResetPhase::Succeeded, Duration::from_secs(15))
        .await;
    let phases = history.phases("outage");
    assert!(!phases.contains(&ResetPhase::Failed), "{phases:?}");
    assert_eq!(
        done.status
            .as_ref()
            .and_then(|s| s.workload.as_ref())
            .map(|w| w.original_replicas),
        Some(2)
    );
    assert_eq!(replicas(&env, "consumers").await, Some(2), "{}", kubelet.report());
    assert_eq!(commits(operator(&env), &env.ns, "outage"), 1);
    // An Event published while the API server is down is lost (Events are best effort): at most one.
    assert!(count_events(&env, "outage", "Applied").await <= 1);
    let plan = plan_of(&done);
    assert_eq!(plan, [((topic.clone(), 0), 4), ((topic.clone(), 1), 4)].into());
    assert_eq!(offsets.arrivals(&plan), 1, "{:?}", offsets.summary());
    assert_released(&env, &claim_name("Deployment", "consumers")).await;
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
}

/// The operator's permissions in `ns` for ServiceAccount `sa`, in two Roles: `kgo-operator` (everything but
/// ConsumerGroups) and `kgo-consumergroups` (bound by RoleBinding `kgo-consumergroups`, which the test takes
/// away for a moment).
async fn operator_rbac(client: &kube::Client, ns: &str, sa: &str) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": sa}})).expect("sa"),
    )
    .await
    .expect("ServiceAccount");
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let all = ["get", "list", "watch", "create", "update", "patch", "delete"];
    // Every resource of ours (from the CRDs, so that new ones are covered) but ConsumerGroups.
    let ours: Vec<String> = kafka_group_operator::api::crds()
        .iter()
        .map(|crd| crd.spec.names.plural.clone())
        .filter(|plural| plural != "consumergroups")
        .flat_map(|plural| [format!("{plural}/status"), plural])
        .collect();
    let operator_role = json!({"metadata": {"name": "kgo-operator"}, "rules": [
        {"apiGroups": ["kafkagroups.dev"], "resources": ours, "verbs": all},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale", "statefulsets/scale"], "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": all}
    ]});
    let groups_role = json!({"metadata": {"name": "kgo-consumergroups"}, "rules": [
        {"apiGroups": ["kafkagroups.dev"], "resources": ["consumergroups", "consumergroups/status"], "verbs": all}
    ]});
    for role in [operator_role, groups_role] {
        roles
            .create(&PostParams::default(), &serde_json::from_value(role).expect("role"))
            .await
            .expect("Role");
    }
    for name in ["kgo-operator", "kgo-consumergroups"] {
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
        bindings
            .create(&PostParams::default(), &binding(name, ns, sa))
            .await
            .expect("RoleBinding");
    }
}

fn binding(name: &str, ns: &str, sa: &str) -> k8s_openapi::api::rbac::v1::RoleBinding {
    serde_json::from_value(json!({"metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}))
    .expect("binding")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_group_read_refused_for_a_moment_is_retried_in_the_same_phase() {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let kafka = ApacheKafka::shared();
    let cp = ControlPlane::shared();
    let (client, ns) = Scenario::namespace("orf-rbac").await;
    operator_rbac(&client, &ns, "kgo").await;
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = tokio::task::block_in_place(|| cp.token_kubeconfig(dir.path(), &ns, "kgo"));
    let op = Operator::start_with_kubeconfig(&kubeconfig, &ns, &[]);
    let env = Scenario::with_cluster(client.clone(), ns.clone(), kafka, Some(op)).await;
    let (topic, group) = seeded(&env, 2, 10, 0).await;
    let cg: ConsumerGroup = resource(
        "ConsumerGroup",
        "orders",
        json!({"clusterRef": {"name": "main"}, "groupId": group, "topics": [topic]}),
    );
    env.groups()
        .create(&PostParams::default(), &cg)
        .await
        .expect("ConsumerGroup");
    let kubelet = consumers(&env, "consumers", &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let history = ResetHistory::start(env.resets());
    let outsider = outsider(&env, &group).await;
    let spec = json!({"groupRef": {"name": "orders"}, "to": {"offset": 4}, "strategy": "ScaleDown",
        "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}, "timeoutSeconds": 120});
    env.resets()
        .create(&PostParams::default(), &reset("refused", spec))
        .await
        .expect("create");
    until(&env.resets(), "refused", T, "WaitingForInactive", |r| {
        phase(r) == Some(ResetPhase::WaitingForInactive)
    })
    .await;

    // ConsumerGroups are forbidden (403) for a moment.
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    bindings
        .delete("kgo-consumergroups", &DeleteParams::default())
        .await
        .expect("revoke");
    let retrying = until(&env.resets(), "refused", Duration::from_secs(45), "Retrying", |r| {
        has_condition(r, "Retrying", "True", "TransientError")
    })
    .await;
    assert_eq!(
        phase(&retrying),
        Some(ResetPhase::WaitingForInactive),
        "a refused read keeps the phase: {:#?}",
        retrying.status
    );
    bindings
        .create(&PostParams::default(), &binding("kgo-consumergroups", &ns, "kgo"))
        .await
        .expect("grant again");
    until(&env.resets(), "refused", T, "no longer Retrying", |r| {
        !has_condition(r, "Retrying", "True", "TransientError")
    })
    .await;
    outsider.leave();
    let done = finish(&env, "refused", T).await;
    offsets.sync().await;
    assert_succeeded(&done, "refused");
    history
        .wait_for_phase("refused", ResetPhase::Succeeded, Duration::from_secs(15))
        .await;
    let phases = history.phases("refused");
    assert!(!phases.contains(&ResetPhase::Failed), "{phases:?}");
    assert_eq!(replicas(&env, "consumers").await, Some(2), "{}", kubelet.report());
    assert_eq!(commits(operator(&env), &env.ns, "refused"), 1);
    assert_eq!(count_events(&env, "refused", "Applied").await, 1);
    let plan = plan_of(&done);
    assert_eq!(plan, [((topic.clone(), 0), 4), ((topic.clone(), 1), 4)].into());
    assert_eq!(offsets.arrivals(&plan), 1, "{:?}", offsets.summary());
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
}

// ---------------------------------------------------------------------------------------------------------
// 6. A leader that lost its Lease
// ---------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_frozen_past_its_lease_never_acts_after_the_new_leader_finished() {
    let kafka = ApacheKafka::shared();
    let cp = ControlPlane::shared();
    let (client, ns) = Scenario::namespace("orf-lease").await;
    let lease_ns = format!("--lease-namespace={ns}");
    let flags = [
        "--leader-elect",
        lease_ns.as_str(),
        "--lease-name=kgo-reset-leader",
        "--lease-duration=3s",
    ];
    let mut first = Operator::start(cp, &ns, &flags);
    let leader_leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    };
    let held = until(&leader_leases, "kgo-reset-leader", T, "held", |l| !holder(l).is_empty()).await;
    let first_holder = holder(&held);
    let second = Operator::start(cp, &ns, &flags);
    let env = Scenario::with_cluster(client.clone(), ns.clone(), kafka, None).await;
    let (topic, group) = seeded(&env, 2, 10, 0).await;
    let kubelet = consumers(&env, "consumers", &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let replica_history = ReplicaHistory::start(deployments(&env), "consumers").await;
    let outsider = outsider(&env, &group).await;
    env.resets()
        .create(
            &PostParams::default(),
            &reset("fenced", scale_down_spec(&group, "consumers", json!({"offset": 4}))),
        )
        .await
        .expect("create");
    until(&env.resets(), "fenced", T, "WaitingForInactive", |r| {
        phase(r) == Some(ResetPhase::WaitingForInactive)
    })
    .await;

    // Freeze the leader (no renewals, no requests) for longer than its lease; the standby takes over.
    first.pause();
    until(&leader_leases, "kgo-reset-leader", T, "taken over", |l| {
        let h = holder(l);
        !h.is_empty() && h != first_holder
    })
    .await;
    outsider.leave();
    let done = finish(&env, "fenced", T).await;
    offsets.sync().await;
    assert_succeeded(&done, "fenced");
    assert!(
        second.log().contains("leading: starting the controllers"),
        "the standby led: {}",
        second.log()
    );
    assert_eq!(replicas(&env, "consumers").await, Some(2));

    // The old leader wakes up with whatever it was doing: it must notice it lost the Lease and not act.
    first.resume();
    let woke = Instant::now();
    let quiet = Duration::from_secs(10);
    while woke.elapsed() < quiet {
        assert_eq!(
            replica_history.values_since(woke),
            Vec::<Option<i32>>::new(),
            "the Deployment changed after the old leader woke up: {:?}\nold leader:\n{}",
            replica_history.values(),
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(replicas(&env, "consumers").await, Some(2));
    assert_eq!(
        replica_history.values(),
        vec![Some(2), Some(0), Some(2)],
        "down once, back once"
    );
    assert_eq!(count_events(&env, "fenced", "Applied").await, 1);
    let plan = plan_of(&done);
    assert_eq!(plan, [((topic.clone(), 0), 4), ((topic.clone(), 1), 4)].into());
    assert_eq!(offsets.arrivals(&plan), 1, "committed once: {:?}", offsets.summary());
    assert_eq!(commits(&second, &env.ns, "fenced"), 1, "the new leader committed once");
    // The old leader may have exited once it found its Lease lost (then its /metrics no longer answers).
    assert_eq!(
        commits(&first, &env.ns, "fenced"),
        0,
        "the old leader committed\n{}",
        first.log()
    );
    let r = env.resets().get("fenced").await.expect("get");
    assert_eq!(phase(&r), Some(ResetPhase::Succeeded));
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    wait_committed_at_end(&env, &group, 10, 2).await;
    assert_eq!(offsets.arrivals(&plan), 1, "committed once: {:?}", offsets.summary());
}

// ---------------------------------------------------------------------------------------------------------
// 7. Hidden committers: an assign() consumer committing into a group Kafka reports Empty
// ---------------------------------------------------------------------------------------------------------

async fn an_assign_consumer_committing_into_the_empty_group_fails_the_reset_unless_forced(
    kafka: &'static dyn TestBroker,
) {
    let env = Scenario::start("orf-hidden", kafka).await;
    let (topic, group) = seeded(&env, 2, 200, 0).await;
    let kubelet = consumers(&env, "consumers", &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 200, 2).await;
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let history = ResetHistory::start(env.resets());
    // Commits partition 0 (100, 101, ...) every second; Kafka takes them once the group has no members.
    let (b, t, g) = (env.bootstrap.clone(), topic.clone(), group.clone());
    let committer: ScriptProcess =
        tokio::task::block_in_place(move || clients::assign_committer(&b, &t, &g, 0, 100, Duration::from_secs(1)));
    let p1 = (topic.clone(), 1);

    env.resets()
        .create(
            &PostParams::default(),
            &reset("hidden", scale_down_spec(&group, "consumers", json!({"earliest": {}}))),
        )
        .await
        .expect("create");
    let failed = finish(&env, "hidden", T).await;
    offsets.sync().await;
    assert!(
        has_condition(&failed, "Failed", "True", "HiddenCommitters"),
        "{:#?}\ncommitter:\n{}",
        failed.status,
        committer.log()
    );
    let (_, _, message) = condition(&failed, "Failed").expect("Failed");
    assert!(
        message.contains(&format!("{topic}-0")) && message.contains("assign()"),
        "the message names the partition that moved and the likely cause: {message}"
    );
    assert!(
        !message.contains(&format!("{topic}-1")),
        "only partition 0 moved: {message}"
    );
    assert_failed_through_restoring(&history, "hidden").await;
    assert!(committer.accepted_commits() > 0, "{}", committer.log());
    assert_eq!(replicas(&env, "consumers").await, Some(2), "{}", kubelet.report());
    assert_eq!(commits(operator(&env), &env.ns, "hidden"), 0);
    assert_eq!(count_events(&env, "hidden", "Applied").await, 0);
    assert_eq!(
        offsets.min_of(&p1),
        Some(200),
        "the plan (earliest) was never committed: {:?}",
        offsets.summary()
    );
    assert_released(&env, &claim_name("Deployment", "consumers")).await;
    kubelet.wait_running(2, Duration::from_secs(120)).await;

    // The same with force: it commits anyway.
    let mut spec = scale_down_spec(&group, "consumers", json!({"earliest": {}}));
    spec["force"] = json!(true);
    let since = Instant::now();
    env.resets()
        .create(&PostParams::default(), &reset("forced", spec))
        .await
        .expect("create");
    let done = finish(&env, "forced", T).await;
    offsets.sync().await;
    assert_succeeded(&done, "forced");
    assert_eq!(replicas(&env, "consumers").await, Some(2));
    assert_eq!(commits(operator(&env), &env.ns, "forced"), 1);
    assert_eq!(count_events(&env, "forced", "Applied").await, 1);
    // Partition 1, which only the reset and the Deployment's consumers touch, was reset to the plan.
    let plan_p1: Offsets = [(p1.clone(), 0)].into();
    assert_eq!(plan_of(&done).get(&p1), Some(&0));
    assert!(
        offsets.first_match_since(&plan_p1, since).is_some(),
        "the forced plan was committed: {:?}",
        offsets.summary()
    );
    assert_eq!(offsets.arrivals(&plan_p1), 1, "{:?}", offsets.summary());
    drop(committer);
    kubelet.wait_running(2, Duration::from_secs(120)).await;
}

// ---------------------------------------------------------------------------------------------------------
// 8. A relative target on a group that keeps consuming until it is scaled down
// ---------------------------------------------------------------------------------------------------------

async fn shift_by_is_resolved_at_applying_from_the_offsets_the_drained_consumers_left(kafka: &'static dyn TestBroker) {
    let env = Scenario::start("orf-shift", kafka).await;
    let topic = unique_name("live");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .expect("topic");
    let group = unique_name("live-group");
    let (b, t) = (env.bootstrap.clone(), topic.clone());
    let producer = tokio::task::block_in_place(move || clients::live_producer(&b, &t, 40));
    // Consumers that go on consuming for 3 s after SIGTERM: the offsets move on after the reset was created.
    let kubelet = consumers(
        &env,
        "consumers",
        &topic,
        &group,
        2,
        &[("KAFKA_SHUTDOWN_DELAY_MS", "3000")],
    )
    .await;
    let deadline = Instant::now() + T;
    loop {
        let c = committed(&env, &group).await;
        if c.len() == 2 && c.values().all(|o| *o >= 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumers do not consume: {c:?}\n{}",
            kubelet.report()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let offsets = OffsetHistory::start(&env.kafka, &group);
    let created = Instant::now();
    env.resets()
        .create(
            &PostParams::default(),
            &reset("rewind", scale_down_spec(&group, "consumers", json!({"shiftBy": -5}))),
        )
        .await
        .expect("create");
    let done = finish(&env, "rewind", T).await;
    offsets.sync().await;
    assert_succeeded(&done, "rewind");
    let status = done.status.clone().expect("status");

    // The preview: figures as of Pending, while the consumers still ran.
    assert!(status.preview_time.is_some(), "{status:#?}");
    assert_eq!(status.preview.len(), 2, "{status:#?}");
    for p in &status.preview {
        assert_eq!(Some(p.to), p.from.map(|f| f - 5), "preview {p:?}");
    }
    // The plan: from the offsets at Applying, i.e. those the drained consumers left.
    assert!(status.plan_time.is_some(), "{status:#?}");
    assert_eq!(status.plan.len(), 2, "{status:#?}");
    let previous: Offsets = status
        .previous_offsets
        .iter()
        .map(|p| ((p.topic.clone(), p.partition), p.offset))
        .collect();
    let mut from: Offsets = BTreeMap::new();
    for p in &status.plan {
        let key = (p.topic.clone(), p.partition);
        let before = *previous
            .get(&key)
            .unwrap_or_else(|| panic!("no previous offset for {key:?}: {status:#?}"));
        assert_eq!(p.from, Some(before), "plan {p:?} vs previousOffsets {previous:?}");
        assert_eq!(p.to, before - 5, "shiftBy -5 from the offset replaced: {p:?}");
        assert!(p.clamped.is_none(), "{p:?}");
        from.insert(key, before);
    }
    let moved: i64 = status
        .plan
        .iter()
        .map(|p| {
            let preview = status
                .preview
                .iter()
                .find(|q| q.topic == p.topic && q.partition == p.partition)
                .and_then(|q| q.from)
                .unwrap_or_default();
            let now = p.from.unwrap_or_default();
            assert!(
                now >= preview,
                "offsets do not go back while consumers drain: {p:?} vs preview {preview}"
            );
            now - preview
        })
        .sum();
    assert!(
        moved > 0,
        "the consumers consumed on after Pending, so the plan differs from the preview: {status:#?}"
    );
    // What Kafka saw: the drained offsets (replaced at Applying), then the plan, once.
    let plan = plan_of(&done);
    let drained = offsets.first_seen(&from).unwrap_or_else(|| {
        panic!(
            "the offsets the plan was made from were committed at Applying: {from:?} not in {:?}",
            offsets.summary()
        )
    });
    assert!(drained >= created, "{:?}", offsets.summary());
    // (Consumers reading a live topic may pass through the plan's figures before the reset: count from the
    // drained state on.)
    assert_eq!(
        offsets.arrivals_since(&plan, drained),
        1,
        "the plan {plan:?} was committed once after the drained offsets {from:?}: {:?}",
        offsets.summary()
    );
    assert_eq!(commits(operator(&env), &env.ns, "rewind"), 1);
    assert_eq!(count_events(&env, "rewind", "Applied").await, 1);
    assert_eq!(replicas(&env, "consumers").await, Some(2));
    drop(producer);
    kubelet.wait_running(2, Duration::from_secs(120)).await;
}

on_both_brokers!(
    deleting_a_reset_in_any_active_phase_restores_the_workload_and_lets_it_go,
    deleting_the_consumer_group_mid_flight_restores_the_workload_then_fails,
    two_scale_down_resets_on_one_deployment_take_turns,
    twenty_pairs_of_resets_two_seconds_apart_always_end_at_the_original_count,
    a_reset_holds_the_lag_scaler_off_its_workload_until_it_restored_it,
    an_assign_consumer_committing_into_the_empty_group_fails_the_reset_unless_forced,
    shift_by_is_resolved_at_applying_from_the_offsets_the_drained_consumers_left,
);
