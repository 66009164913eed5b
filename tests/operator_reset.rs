//! OffsetReset against a real API server, consumers run by the kubelet stand-in, and each broker (Apache Kafka
//! and the embedded broker, `on_both_brokers!`): every
//! target equals `kafka-consumer-groups --reset-offsets --dry-run`, the ScaleDown orchestration, undo,
//! exactly-once across operator crashes, and bad input.

#[macro_use]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::{OffsetReset, ResetPhase};
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::clients;
use support::kubelet::{Kubelet, deployment};
use support::operator::Operator;
use support::scenario::{Scenario, resource};
use support::wait::{event, has_condition, until};
use support::{ControlPlane, TestBroker, unique_name};

const T: Duration = Duration::from_secs(90);

type Env = Scenario;

async fn setup(prefix: &str, kafka: &dyn TestBroker) -> Env {
    Scenario::start(prefix, kafka).await
}

fn reset(name: &str, spec: Value) -> OffsetReset {
    resource("OffsetReset", name, spec)
}

fn phase_is(r: &OffsetReset, phase: ResetPhase) -> bool {
    r.status.as_ref().is_some_and(|s| s.phase == phase)
}

/// A topic with `per_partition` records in each of `partitions` partitions, timestamps 1 s apart from
/// `start_ms`, and a group with an admin commit at `committed` in each partition.
async fn seeded(env: &Env, partitions: i32, per_partition: usize, start_ms: i64, committed: i64) -> (String, String) {
    let topic = unique_name("reset");
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
    let group = unique_name("reset-group");
    let offsets = (0..partitions)
        .map(|p| (TopicPartition::new(&topic, p), committed))
        .collect();
    env.kafka.commit_offsets(&group, &offsets).await.expect("commit");
    (topic, group)
}

/// `kafka-consumer-groups --reset-offsets ... --dry-run` as (topic, partition) -> new offset.
async fn tool_dry_run(env: &Env, group: &str, topic: &str, target: &[&str]) -> BTreeMap<(String, i32), i64> {
    let mut args: Vec<String> = vec!["--topic".to_owned(), topic.to_owned()];
    args.extend(target.iter().map(|s| s.to_string()));
    let (bootstrap, group) = (env.bootstrap.clone(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::kafka::reset_dry_run_with_cli(&bootstrap, &group, &args)
    })
    .await
    .expect("tool")
}

async fn committed(env: &Env, group: &str) -> BTreeMap<(String, i32), i64> {
    support::kafka::committed_by_partition(&env.kafka, group).await
}

async fn every_target_commits_what_kafka_consumer_groups_dry_run_plans(kafka: &'static dyn TestBroker) {
    let env = setup("ors-targets", kafka).await;
    let start = 1_700_000_000_000_i64;
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let csv_dir = tempfile::tempdir().expect("dir");
    // (name, spec.to, the tool's target flags)
    let mut cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("earliest", json!({"earliest": {}}), vec!["--to-earliest".into()]),
        ("latest", json!({"latest": {}}), vec!["--to-latest".into()]),
        ("offset", json!({"offset": 7}), vec!["--to-offset".into(), "7".into()]),
        (
            "offset-beyond-end",
            json!({"offset": 500}),
            vec!["--to-offset".into(), "500".into()],
        ),
        (
            "shift-back-clamped",
            json!({"shiftBy": -1000}),
            vec!["--shift-by".into(), "-1000".into()],
        ),
        (
            "shift-forward",
            json!({"shiftBy": 3}),
            vec!["--shift-by".into(), "3".into()],
        ),
        (
            "timestamp",
            json!({"timestamp": "2023-11-14T22:13:25Z"}),
            vec!["--to-datetime".into(), "2023-11-14T22:13:25.000".into()],
        ),
        (
            "timestamp-future",
            json!({"timestamp": "2099-01-01T00:00:00Z"}),
            vec!["--to-datetime".into(), "2099-01-01T00:00:00.000".into()],
        ),
        (
            "duration",
            json!({"duration": "1h"}),
            vec!["--by-duration".into(), "PT1H".into()],
        ),
    ];
    let _ = now_ms;
    for (name, to, flags) in cases.drain(..) {
        let (topic, group) = seeded(&env, 2, 20, start, 10).await;
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let expected = tool_dry_run(&env, &group, &topic, &flags).await;
        assert_eq!(expected.len(), 2, "{name}: the tool planned {expected:?}");
        let spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "topics": [{"name": topic}], "to": to});
        env.resets()
            .create(&PostParams::default(), &reset(name, spec))
            .await
            .expect("create");
        let done = until(&env.resets(), name, T, "Succeeded", |r| {
            phase_is(r, ResetPhase::Succeeded) || phase_is(r, ResetPhase::Failed)
        })
        .await;
        assert!(phase_is(&done, ResetPhase::Succeeded), "{name}: {:#?}", done.status);
        assert_eq!(committed(&env, &group).await, expected, "{name}");
        let status = done.status.expect("status");
        for p in &status.plan {
            assert_eq!(
                Some(p.to),
                expected.get(&(p.topic.clone(), p.partition)).copied(),
                "{name}: {p:?}"
            );
        }
        if name == "offset-beyond-end" || name == "shift-back-clamped" {
            assert!(
                status.plan.iter().all(|p| p.clamped.is_some()),
                "{name}: the plan must say it clamped: {:?}",
                status.plan
            );
        }
    }

    // Explicit offsets, against the tool's --from-file.
    let (topic, group) = seeded(&env, 2, 20, start, 10).await;
    let csv = csv_dir.path().join("offsets.csv");
    std::fs::write(&csv, format!("{topic},0,4\n{topic},1,99\n")).expect("csv");
    let csv_path = csv.display().to_string();
    let expected = tool_dry_run(&env, &group, &topic, &["--from-file", &csv_path]).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group,
        "to": {"partitions": [{"topic": topic, "partition": 0, "offset": 4}, {"topic": topic, "partition": 1, "offset": 99}]}});
    env.resets()
        .create(&PostParams::default(), &reset("explicit", spec))
        .await
        .expect("create");
    until(&env.resets(), "explicit", T, "Succeeded", |r| {
        phase_is(r, ResetPhase::Succeeded)
    })
    .await;
    let ours = committed(&env, &group).await;
    assert_eq!(ours.get(&(topic.clone(), 0)), expected.get(&(topic.clone(), 0)));
    // Beyond the log end: the tool takes the offset as given; we clamp to the log end, and the plan says so.
    assert_eq!(ours.get(&(topic.clone(), 1)), Some(&20), "tool planned {expected:?}");
}

async fn a_dry_run_plans_and_changes_nothing(kafka: &'static dyn TestBroker) {
    let env = setup("ors-dry", kafka).await;
    let (topic, group) = seeded(&env, 2, 10, 1_700_000_000_000, 5).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"earliest": {}}, "dryRun": true});
    env.resets()
        .create(&PostParams::default(), &reset("dry", spec))
        .await
        .expect("create");
    let planned = until(&env.resets(), "dry", T, "Planned", |r| phase_is(r, ResetPhase::Planned)).await;
    let status = planned.status.expect("status");
    assert_eq!(status.plan.len(), 2);
    assert!(
        status
            .plan
            .iter()
            .all(|p| p.from == Some(5) && p.to == 0 && p.delta == Some(-5)),
        "{:?}",
        status.plan
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(phase_is(
        &env.resets().get("dry").await.expect("get"),
        ResetPhase::Planned
    ));
    assert!(committed(&env, &group).await.values().all(|o| *o == 5));
    let _ = topic;
}

async fn require_inactive_fails_clearly_when_the_group_has_members(kafka: &'static dyn TestBroker) {
    let env = setup("ors-active", kafka).await;
    let (topic, group) = seeded(&env, 1, 10, 1_700_000_000_000, 0).await;
    let member = clients::GroupMember::join(
        &kafka.bootstrap(),
        &topic,
        &group,
        clients::GroupProtocol::Classic,
        None,
    );
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"latest": {}}});
    env.resets()
        .create(&PostParams::default(), &reset("active", spec))
        .await
        .expect("create");
    let failed = until(&env.resets(), "active", T, "Failed", |r| {
        phase_is(r, ResetPhase::Failed)
    })
    .await;
    assert!(
        has_condition(&failed, "Failed", "True", "GroupActive"),
        "{:#?}",
        failed.status
    );
    let note = event(&env.client, &env.ns, "active", "GroupActive", T).await;
    assert!(note.contains("ScaleDown"), "{note}");
    member.leave();
}

async fn undo_restores_the_exact_previous_offsets_and_ttl_cleans_up(kafka: &'static dyn TestBroker) {
    let env = setup("ors-undo", kafka).await;
    let (_topic, group) = seeded(&env, 3, 20, 1_700_000_000_000, 0).await;
    let before: BTreeMap<TopicPartition, i64> = [(0, 3), (1, 11), (2, 17)]
        .into_iter()
        .map(|(p, o)| (TopicPartition::new(&_topic, p), o))
        .collect();
    env.kafka.commit_offsets(&group, &before).await.expect("commit");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"latest": {}}});
    env.resets()
        .create(&PostParams::default(), &reset("forward", spec))
        .await
        .expect("create");
    until(&env.resets(), "forward", T, "Succeeded", |r| {
        phase_is(r, ResetPhase::Succeeded)
    })
    .await;
    assert!(committed(&env, &group).await.values().all(|o| *o == 20));

    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"previousOf": "forward"}, "ttlSecondsAfterFinished": 2});
    env.resets()
        .create(&PostParams::default(), &reset("undo", spec))
        .await
        .expect("create");
    until(&env.resets(), "undo", T, "Succeeded", |r| {
        phase_is(r, ResetPhase::Succeeded)
    })
    .await;
    let after: BTreeMap<TopicPartition, i64> = env
        .kafka
        .group_offsets(&group)
        .await
        .expect("offsets")
        .into_iter()
        .map(|(k, v)| (k, v.offset))
        .collect();
    assert_eq!(after, before);
    // ttlSecondsAfterFinished: the finished reset is deleted, like a Job.
    let deadline = tokio::time::Instant::now() + T;
    while env.resets().get_opt("undo").await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finished reset was not deleted after its TTL"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        env.resets().get_opt("forward").await.expect("get").is_some(),
        "no TTL: kept"
    );
}

async fn bad_input_is_rejected_with_clear_messages(kafka: &'static dyn TestBroker) {
    let env = setup("ors-bad", kafka).await;
    let cases = [
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"earliest": {}, "latest": {}}}),
            "exactly one target",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {}}),
            "exactly one target",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"offset": -1}}),
            "offset must not be negative",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"timestamp": "yesterday"}}),
            "timestamp must be RFC 3339",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"duration": "1 hour"}}),
            "duration is a whole number",
        ),
        (
            json!({"groupId": "g", "to": {"latest": {}}}),
            "clusterRef and groupId go together",
        ),
        (
            json!({"groupRef": {"name": "cg"}, "clusterRef": {"name": "main"}, "groupId": "g", "to": {"latest": {}}}),
            "not both",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"latest": {}}, "strategy": "ScaleDown"}),
            "strategy ScaleDown needs scaleTargetRef",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"partitions": [{"topic": "t", "partition": 0, "offset": -5}]}}),
            "should be greater than or equal to 0",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"latest": {}}, "timeoutSeconds": 9_223_372_036_854_775_807i64}),
            "timeoutSeconds must be between 1 and 86400",
        ),
        (
            json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"latest": {}}, "ttlSecondsAfterFinished": 9_223_372_036_854_775_807i64}),
            "ttlSecondsAfterFinished must be between 0 and 31536000",
        ),
    ];
    for (spec, message) in cases {
        let err = env
            .resets()
            .create(&PostParams::default(), &reset("bad", spec.clone()))
            .await
            .expect_err(&format!("{spec}"));
        assert!(err.to_string().contains(message), "{spec}: {err}");
    }
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": "g", "to": {"latest": {}}, "dryRun": true});
    env.resets()
        .create(&PostParams::default(), &reset("fixed", spec))
        .await
        .expect("create");
    let err = env
        .resets()
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"to": {"latest": null, "earliest": {}}}})),
        )
        .await
        .expect_err("immutable");
    assert!(err.to_string().contains("cannot change once created"), "{err}");
}

fn scaled_objects(env: &Env) -> Api<DynamicObject> {
    support::keda::scaled_objects(&env.client, &env.ns)
}

async fn install_keda_crd(client: &kube::Client) {
    support::keda::install_crd(client).await
}

async fn consumers(env: &Env, topic: &str, group: &str, replicas: i32, extra: &[(&str, &str)]) -> Kubelet {
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let mut settings = vec![("KAFKA_GROUP_ID", group), ("KAFKA_TOPICS", topic)];
    settings.extend_from_slice(extra);
    deployments
        .create(&PostParams::default(), &deployment("consumers", replicas, &settings))
        .await
        .expect("deployment");
    let kubelet = Kubelet::start(env.client.clone(), &env.ns, "consumers", &env.bootstrap).await;
    kubelet.wait_running(replicas as usize, Duration::from_secs(120)).await;
    kubelet
}

async fn wait_committed_at_end(env: &Env, group: &str, end: i64, partitions: usize) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let c = committed(env, group).await;
        if c.len() == partitions && c.values().all(|o| *o == end) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumers did not reach the end: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn scale_down_spec(group: &str, to: Value) -> Value {
    json!({"clusterRef": {"name": "main"}, "groupId": group, "to": to, "strategy": "ScaleDown",
        "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}, "timeoutSeconds": 60})
}

async fn scale_down_resets_real_consumers_which_then_reread_and_pauses_keda_meanwhile(kafka: &'static dyn TestBroker) {
    let env = setup("ors-scale", kafka).await;
    install_keda_crd(&env.client).await;
    let (topic, group) = seeded(&env, 2, 15, 1_700_000_000_000, 0).await;
    let so: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "consumers"},
        "spec": {"scaleTargetRef": {"name": "consumers"}}
    }))
    .expect("so");
    scaled_objects(&env)
        .create(&PostParams::default(), &so)
        .await
        .expect("ScaledObject");
    let kubelet = consumers(&env, &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 15, 2).await;

    env.resets()
        .create(
            &PostParams::default(),
            &reset("rewind", scale_down_spec(&group, json!({"shiftBy": -10}))),
        )
        .await
        .expect("create");
    // While the consumers are down, KEDA is paused.
    until(&env.resets(), "rewind", T, "scaled down", |r| {
        r.status.as_ref().is_some_and(|s| {
            matches!(
                s.phase,
                ResetPhase::WaitingForInactive | ResetPhase::Applying | ResetPhase::Restoring | ResetPhase::Succeeded
            )
        })
    })
    .await;
    let done = until(&env.resets(), "rewind", T, "Succeeded", |r| {
        phase_is(r, ResetPhase::Succeeded) || phase_is(r, ResetPhase::Failed)
    })
    .await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, ResetPhase::Succeeded, "{status:#?}\n{}", kubelet.report());
    let workload = status.workload.expect("workload record");
    assert_eq!(workload.original_replicas, 2);
    assert_eq!(workload.paused_scaled_object.as_deref(), Some("consumers"));
    assert!(status.plan.iter().all(|p| p.to == 5), "{:?}", status.plan);
    // Events are published right after the status write that they describe, so wait for each.
    for reason in [
        "Planned",
        "ScalingDown",
        "WaitingForInactive",
        "Applied",
        "Restored",
        "Succeeded",
    ] {
        support::wait::event(&env.client, &env.ns, "rewind", reason, Duration::from_secs(10)).await;
    }
    // Committed exactly once: the operator sent one OffsetCommit for this reset.
    let op = env.operator.as_ref().expect("operator");
    assert_eq!(
        op.metric(
            "kafka_group_operator_offset_commits_total",
            &[("namespace", env.ns.as_str()), ("name", "rewind")]
        ),
        Some(1.0)
    );
    // Replicas restored, KEDA unpaused, and the consumers re-read the rewound records up to the end again.
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    assert_eq!(deployments.get("consumers").await.expect("get").spec.replicas, Some(2));
    let so = scaled_objects(&env).get("consumers").await.expect("so");
    assert!(
        !so.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("autoscaling.keda.sh/paused-replicas")
    );
    kubelet.wait_running(2, Duration::from_secs(120)).await;
    wait_committed_at_end(&env, &group, 15, 2).await;
}

async fn scale_down_refuses_a_workload_that_a_plain_hpa_scales(kafka: &'static dyn TestBroker) {
    let env = setup("ors-hpa", kafka).await;
    let (topic, group) = seeded(&env, 1, 5, 1_700_000_000_000, 0).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .create(
            &PostParams::default(),
            &deployment("consumers", 3, &[("KAFKA_GROUP_ID", &group), ("KAFKA_TOPICS", &topic)]),
        )
        .await
        .expect("deployment");
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(env.client.clone(), &env.ns);
    let hpa = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "consumers"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "consumers"}, "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}
    }))
    .expect("hpa");
    hpas.create(&PostParams::default(), &hpa).await.expect("hpa");
    env.resets()
        .create(
            &PostParams::default(),
            &reset("blocked", scale_down_spec(&group, json!({"earliest": {}}))),
        )
        .await
        .expect("create");
    let failed = until(&env.resets(), "blocked", T, "Failed", |r| {
        phase_is(r, ResetPhase::Failed)
    })
    .await;
    assert!(
        has_condition(&failed, "Failed", "True", "HorizontalPodAutoscalerConflict"),
        "{:#?}",
        failed.status
    );
    assert_eq!(
        deployments.get("consumers").await.expect("get").spec.replicas,
        Some(3),
        "nothing was touched"
    );
}

async fn static_members_are_removed_so_the_reset_does_not_wait_for_their_sessions(kafka: &'static dyn TestBroker) {
    let env = setup("ors-static", kafka).await;
    let (topic, group) = seeded(&env, 2, 10, 1_700_000_000_000, 0).await;
    // A session far longer than the reset's timeout: only removing the members lets the group empty in time.
    let kubelet = consumers(
        &env,
        &topic,
        &group,
        2,
        &[
            ("KAFKA_STATIC_MEMBERSHIP", "true"),
            ("KAFKA_SESSION_TIMEOUT_MS", "120000"),
        ],
    )
    .await;
    wait_committed_at_end(&env, &group, 10, 2).await;
    let mut spec = scale_down_spec(&group, json!({"earliest": {}}));
    spec["timeoutSeconds"] = json!(40);
    env.resets()
        .create(&PostParams::default(), &reset("static", spec))
        .await
        .expect("create");
    let done = until(&env.resets(), "static", T, "finished", |r| {
        phase_is(r, ResetPhase::Succeeded) || phase_is(r, ResetPhase::Failed)
    })
    .await;
    assert!(
        phase_is(&done, ResetPhase::Succeeded),
        "{:#?}\n{}",
        done.status,
        kubelet.report()
    );
    event(&env.client, &env.ns, "static", "StaticMembersRemoved", T).await;
}

async fn a_crash_in_any_phase_resumes_and_finishes_once_with_the_original_replicas(kafka: &'static dyn TestBroker) {
    let mut env = setup("ors-crash", kafka).await;
    let cp = ControlPlane::shared();
    let (topic, group) = seeded(&env, 2, 12, 1_700_000_000_000, 0).await;
    let kubelet = consumers(&env, &topic, &group, 2, &[]).await;
    wait_committed_at_end(&env, &group, 12, 2).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    for (i, crash_in) in [
        ResetPhase::ScalingDown,
        ResetPhase::WaitingForInactive,
        ResetPhase::Applying,
        ResetPhase::Restoring,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("crash-{i}");
        env.resets()
            .create(
                &PostParams::default(),
                &reset(&name, scale_down_spec(&group, json!({"offset": 3 + i as i64}))),
            )
            .await
            .expect("create");
        // Kill the operator (SIGKILL) as soon as the reset reaches the phase, or any later one.
        until(&env.resets(), &name, T, "reached the phase", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| phase_rank(s.phase) >= phase_rank(crash_in))
        })
        .await;
        if let Some(mut op) = env.operator.take() {
            op.kill();
        }
        env.operator = Some(Operator::start(cp, &env.ns, &[]));
        let done = until(&env.resets(), &name, T, "finished", |r| {
            phase_is(r, ResetPhase::Succeeded) || phase_is(r, ResetPhase::Failed)
        })
        .await;
        let status = done.status.expect("status");
        assert_eq!(status.phase, ResetPhase::Succeeded, "{crash_in:?}: {status:#?}");
        assert_eq!(status.workload.map(|w| w.original_replicas), Some(2), "{crash_in:?}");
        assert_eq!(
            deployments.get("consumers").await.expect("get").spec.replicas,
            Some(2),
            "{crash_in:?}"
        );
        let applied = support::wait::events(&env.client, &env.ns, &name).await;
        assert!(
            applied.iter().filter(|(_, r, _)| r == "Applied").count() <= 1,
            "{crash_in:?}: applied twice: {applied:?}"
        );
        kubelet.wait_running(2, Duration::from_secs(120)).await;
        wait_committed_at_end(&env, &group, 12, 2).await;
    }

    // A restart after Succeeded re-applies nothing: offsets the consumers committed since stay.
    if let Some(mut op) = env.operator.take() {
        op.kill();
    }
    env.operator = Some(Operator::start(cp, &env.ns, &[]));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        committed(&env, &group).await.values().all(|o| *o == 12),
        "a finished reset was applied again"
    );
    let all = env.resets().list(&Default::default()).await.expect("list");
    assert!(all.items.iter().all(|r| phase_is(r, ResetPhase::Succeeded)));
}

fn phase_rank(p: ResetPhase) -> u8 {
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

async fn a_group_that_does_not_empty_in_time_fails_the_reset_and_restores_the_workload(kafka: &'static dyn TestBroker) {
    let env = setup("ors-timeout", kafka).await;
    let (topic, group) = seeded(&env, 1, 5, 1_700_000_000_000, 0).await;
    // A consumer outside the workload keeps the group active however far the workload scales down. It joins
    // first, so that it owns the topic's one partition.
    let outsider = clients::GroupMember::join(
        &kafka.bootstrap(),
        &topic,
        &group,
        clients::GroupProtocol::Classic,
        None,
    );
    let kubelet = consumers(&env, &topic, &group, 1, &[]).await;
    let mut spec = scale_down_spec(&group, json!({"earliest": {}}));
    spec["timeoutSeconds"] = json!(5);
    env.resets()
        .create(&PostParams::default(), &reset("slow", spec))
        .await
        .expect("create");
    let failed = until(&env.resets(), "slow", T, "Failed", |r| phase_is(r, ResetPhase::Failed)).await;
    assert!(
        has_condition(&failed, "Failed", "True", "TimedOut"),
        "{:#?}",
        failed.status
    );
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    assert_eq!(
        deployments.get("consumers").await.expect("get").spec.replicas,
        Some(1),
        "the workload is restored"
    );
    // Nothing was committed: the consumers' offsets (at the end, 5) stand.
    let deadline = tokio::time::Instant::now() + T;
    while committed(&env, &group).await.values().any(|o| *o != 5) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "offsets moved: {:?}",
            committed(&env, &group).await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    kubelet.wait_running(1, Duration::from_secs(120)).await;
    outsider.leave();
}

async fn an_unknown_topic_or_group_reference_fails_with_the_reason(kafka: &'static dyn TestBroker) {
    let env = setup("ors-unknown", kafka).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": "g", "topics": [{"name": "no-such-topic"}], "to": {"earliest": {}}});
    env.resets()
        .create(&PostParams::default(), &reset("no-topic", spec))
        .await
        .expect("create");
    let failed = until(&env.resets(), "no-topic", T, "Failed", |r| {
        phase_is(r, ResetPhase::Failed)
    })
    .await;
    assert!(
        has_condition(&failed, "Failed", "True", "InvalidPlan"),
        "{:#?}",
        failed.status
    );
    assert!(
        failed
            .status
            .and_then(|s| s.failure)
            .unwrap_or_default()
            .contains("no-such-topic")
    );

    let spec = json!({"groupRef": {"name": "missing"}, "to": {"earliest": {}}});
    env.resets()
        .create(&PostParams::default(), &reset("no-group", spec))
        .await
        .expect("create");
    let failed = until(&env.resets(), "no-group", T, "Failed", |r| {
        phase_is(r, ResetPhase::Failed)
    })
    .await;
    assert!(
        has_condition(&failed, "Failed", "True", "GroupNotFound"),
        "{:#?}",
        failed.status
    );
}

on_both_brokers!(
    every_target_commits_what_kafka_consumer_groups_dry_run_plans,
    a_dry_run_plans_and_changes_nothing,
    require_inactive_fails_clearly_when_the_group_has_members,
    undo_restores_the_exact_previous_offsets_and_ttl_cleans_up,
    bad_input_is_rejected_with_clear_messages,
    scale_down_resets_real_consumers_which_then_reread_and_pauses_keda_meanwhile,
    scale_down_refuses_a_workload_that_a_plain_hpa_scales,
    static_members_are_removed_so_the_reset_does_not_wait_for_their_sessions,
    a_crash_in_any_phase_resumes_and_finishes_once_with_the_original_replicas,
    a_group_that_does_not_empty_in_time_fails_the_reset_and_restores_the_workload,
    an_unknown_topic_or_group_reference_fails_with_the_reason,
);
