//! Streams groups (KIP-1071) against Apache Kafka 4.4 and a real Kafka Streams app with `group.protocol=streams`:
//! the operator observes the group (members with tasks, state, protocol `streams`, lag of the input topic),
//! and every OffsetReset target commits what `kafka-streams-groups.sh --reset-offsets --dry-run` plans; the
//! restarted app reads from the reset position. The embedded broker serves no streams groups: a streams
//! client fails on it at once, clearly.

#[macro_use]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::{ConsumerGroup, OffsetReset, ResetPhase};
use kafka_group_operator::kafka::{GroupState, GroupType, NewTopic, TopicPartition};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::scenario::{Scenario, resource};
use support::wait::{condition, until};
use support::{ApacheKafka, EmbeddedKafka, clients, java_clients, unique_name};

const T: Duration = Duration::from_secs(90);
const STREAMS_TOOL: &str = "org.apache.kafka.tools.streams.StreamsGroupCommand";
const PARTITIONS: i32 = 3;
const START_MS: i64 = 1_700_000_000_000;

fn phase_is(r: &OffsetReset, phase: ResetPhase) -> bool {
    r.status.as_ref().is_some_and(|s| s.phase == phase)
}

/// `kafka-streams-groups.sh --reset-offsets --group G --dry-run <args>` as (topic, partition) -> new offset.
async fn tool_dry_run(bootstrap: &str, group: &str, args: &[&str]) -> BTreeMap<(String, i32), i64> {
    let mut all: Vec<String> = ["--reset-offsets", "--group", group, "--dry-run"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.extend(args.iter().map(|s| s.to_string()));
    let (bootstrap, group) = (bootstrap.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = support::kafka::kafka_tool_ok(&bootstrap, STREAMS_TOOL, &all);
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
    })
    .await
    .expect("tool")
}

/// The group's committed offsets on `topic`.
async fn committed_on(env: &Scenario, group: &str, topic: &str) -> BTreeMap<(String, i32), i64> {
    support::kafka::committed_by_partition(&env.kafka, group)
        .await
        .into_iter()
        .filter(|((t, _), _)| t == topic)
        .collect()
}

/// Waits until the group's committed offsets on `topic` are `end` in every partition.
async fn await_committed(env: &Scenario, group: &str, topic: &str, end: i64, streams: &java_clients::JavaProcess) {
    let deadline = Instant::now() + T;
    loop {
        let now = committed_on(env, group, topic).await;
        if now.len() == PARTITIONS as usize && now.values().all(|o| *o == end) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not commit {end} on every partition of {topic}: {now:?}\n{}",
            streams.tail(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn produce(env: &Scenario, topic: &str, per_partition: usize, start_ms: i64) {
    for p in 0..PARTITIONS {
        let (b, t) = (env.bootstrap.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || clients::produce_with_timestamps(&b, &t, p, per_partition, start_ms, 1000))
            .await
            .expect("produce");
    }
}

/// Creates OffsetReset `name` on `group` with `spec.to` = `to` (and `extra` spec fields) and waits until it ends.
async fn run_reset(env: &Scenario, name: &str, group: &str, to: Value, extra: Value) -> OffsetReset {
    let mut spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": to});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    env.resets()
        .create(
            &PostParams::default(),
            &resource::<OffsetReset>("OffsetReset", name, spec),
        )
        .await
        .expect("create");
    until(&env.resets(), name, T, "finished", |r| {
        phase_is(r, ResetPhase::Succeeded) || phase_is(r, ResetPhase::Failed)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streams_app_is_observed_and_every_reset_matches_kafka_streams_groups_dry_run() {
    let kafka: &'static ApacheKafka = ApacheKafka::shared();
    let env = Scenario::start("osg", kafka).await;
    let (input, output, counts) = (unique_name("st-in"), unique_name("st-out"), unique_name("st-counts"));
    env.kafka
        .create_topics(&[
            NewTopic::new(&input, PARTITIONS),
            NewTopic::new(&output, 1),
            NewTopic::new(&counts, 1),
        ])
        .await
        .expect("topics");
    produce(&env, &input, 20, START_MS).await;
    let app = unique_name("st-app");
    let streams = {
        let (b, a, i, o, c) = (
            env.bootstrap.clone(),
            app.clone(),
            input.clone(),
            output.clone(),
            counts.clone(),
        );
        tokio::task::spawn_blocking(move || {
            java_clients::eos_streams_with(&b, &a, &i, &o, &[&c, "repartition", "group.protocol=streams"])
        })
        .await
        .expect("start the app")
    };
    await_committed(&env, &app, &input, 20, &streams).await;

    // Observed: a streams group, Stable, whose member's active tasks read every input partition.
    let d = env.kafka.describe_group(&app).await.expect("describe");
    assert_eq!(
        (d.group_type.clone(), d.state.clone()),
        (GroupType::Streams, GroupState::Stable),
        "{d:?}"
    );
    assert_eq!(d.members.len(), 1, "{d:?}");
    let tasks = d.members[0].tasks.as_ref().expect("a streams member has tasks");
    assert!(!tasks.active.is_empty(), "{tasks:?}");
    for p in 0..PARTITIONS {
        assert!(
            d.members[0].assignment.contains(&TopicPartition::new(&input, p)),
            "{d:?}"
        );
    }
    let topology = d.streams.as_ref().expect("topology");
    assert_eq!(topology.input_topics(), BTreeSet::from([input.clone()]));
    let internal = topology.internal_topics();
    assert!(
        internal.iter().any(|t| t.ends_with("-changelog")) && internal.iter().any(|t| t.ends_with("-repartition")),
        "{internal:?}"
    );

    let spec = json!({"clusterRef": {"name": "main"}, "groupId": app, "topics": [input]});
    env.groups()
        .create(
            &PostParams::default(),
            &resource::<ConsumerGroup>("ConsumerGroup", "app", spec),
        )
        .await
        .expect("create ConsumerGroup");
    let g = until(&env.groups(), "app", T, "the streams group observed", |g| {
        g.status.as_ref().is_some_and(|s| {
            s.protocol.as_deref() == Some("streams") && s.state.as_deref() == Some("Stable") && s.members == 1
        })
    })
    .await;
    let s = g.status.expect("status");
    let assigned = &s.member_details[0].assignment;
    assert!(assigned.contains(&format!("{input}-0")), "{s:?}");

    // Stopped: the group empties; records produced meanwhile are the input topic's lag.
    drop(streams);
    let deadline = Instant::now() + T;
    while !env.kafka.describe_group(&app).await.expect("describe").is_inactive() {
        assert!(Instant::now() < deadline, "the streams group did not empty");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    produce(&env, &input, 5, START_MS + 20_000).await;
    let g = until(&env.groups(), "app", T, "the input lag measured", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.state.as_deref() == Some("Empty") && s.total_lag == Some(5 * PARTITIONS as i64))
    })
    .await;
    assert_eq!(g.status.and_then(|s| s.protocol), Some("streams".to_owned()));
    // The command line shows the same: `lag --all` includes the streams group, 5 records behind per input partition.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
        .args(["lag", "--all", "-b", &env.bootstrap, "-o", "json"])
        .output()
        .expect("run lag");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let ours = report["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["group"] == app.as_str()))
        .unwrap_or_else(|| panic!("lag --all lists no {app}: {report}"));
    assert_eq!(ours["protocol"], "streams", "{ours}");
    let input_lags: Vec<i64> = ours["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter(|p| p["topic"] == input.as_str())
        .map(|p| p["lag"].as_i64().expect("lag"))
        .collect();
    assert_eq!(input_lags, vec![5; PARTITIONS as usize], "{ours}");

    // Every target the tool supports, with its default scope (--all-input-topics): one after the other, each
    // planned by the tool and by us from the same committed offsets.
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("earliest", json!({"earliest": {}}), vec!["--to-earliest"]),
        ("offset", json!({"offset": 7}), vec!["--to-offset", "7"]),
        ("latest", json!({"latest": {}}), vec!["--to-latest"]),
        ("shift-back", json!({"shiftBy": -4}), vec!["--shift-by", "-4"]),
        ("shift-forward", json!({"shiftBy": 2}), vec!["--shift-by", "2"]),
        (
            "shift-back-clamped",
            json!({"shiftBy": -1000}),
            vec!["--shift-by", "-1000"],
        ),
        ("offset-beyond-end", json!({"offset": 500}), vec!["--to-offset", "500"]),
        (
            "timestamp",
            json!({"timestamp": "2023-11-14T22:13:25Z"}),
            vec!["--to-datetime", "2023-11-14T22:13:25.000"],
        ),
        (
            "timestamp-future",
            json!({"timestamp": "2099-01-01T00:00:00Z"}),
            vec!["--to-datetime", "2099-01-01T00:00:00.000"],
        ),
        ("duration", json!({"duration": "1h"}), vec!["--by-duration", "PT1H"]),
    ];
    let repartition_before: BTreeMap<(String, i32), i64> = support::kafka::committed_by_partition(&env.kafka, &app)
        .await
        .into_iter()
        .filter(|((t, _), _)| t != &input)
        .collect();
    for (name, to, flags) in cases {
        let mut args = vec!["--all-input-topics"];
        args.extend(flags);
        let expected = tool_dry_run(&env.bootstrap, &app, &args).await;
        assert_eq!(
            expected.len(),
            PARTITIONS as usize,
            "{name}: the tool planned {expected:?}"
        );
        let done = run_reset(&env, name, &app, to, json!({})).await;
        assert!(phase_is(&done, ResetPhase::Succeeded), "{name}: {:#?}", done.status);
        assert_eq!(committed_on(&env, &app, &input).await, expected, "{name}");
        let status = done.status.as_ref().expect("status");
        let planned: BTreeMap<(String, i32), i64> = status
            .plan
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.to))
            .collect();
        assert_eq!(planned, expected, "{name}: only the input topic is planned");
        let (_, _, note) = condition(&done, "StreamsStateNotReset").expect("the state note");
        assert!(
            note.contains("NOT reset") && internal.iter().all(|t| note.contains(t.as_str())),
            "{name}: {note}"
        );
    }
    // The repartition topic's offsets were left where the app committed them.
    let repartition_after: BTreeMap<(String, i32), i64> = support::kafka::committed_by_partition(&env.kafka, &app)
        .await
        .into_iter()
        .filter(|((t, _), _)| t != &input)
        .collect();
    assert_eq!(repartition_after, repartition_before);

    // Some partitions of the input topic (--input-topic t:0,2).
    let selection = format!("{input}:0,2");
    let expected = tool_dry_run(&env.bootstrap, &app, &["--input-topic", &selection, "--to-offset", "3"]).await;
    assert_eq!(expected.len(), 2, "{expected:?}");
    let before = committed_on(&env, &app, &input).await;
    let done = run_reset(
        &env,
        "some-partitions",
        &app,
        json!({"offset": 3}),
        json!({"topics": [{"name": input, "partitions": [0, 2]}]}),
    )
    .await;
    assert!(phase_is(&done, ResetPhase::Succeeded), "{:#?}", done.status);
    let mut want = before.clone();
    want.extend(expected);
    assert_eq!(committed_on(&env, &app, &input).await, want);

    // Explicit offsets, against --from-file.
    let csv_dir = tempfile::tempdir().expect("dir");
    let csv = csv_dir.path().join("offsets.csv");
    std::fs::write(&csv, format!("{input},0,4\n{input},1,9\n")).expect("csv");
    let csv_path = csv.display().to_string();
    let expected = tool_dry_run(&env.bootstrap, &app, &["--from-file", &csv_path]).await;
    let done = run_reset(
        &env,
        "explicit",
        &app,
        json!({"partitions": [{"topic": input, "partition": 0, "offset": 4}, {"topic": input, "partition": 1, "offset": 9}]}),
        json!({}),
    )
    .await;
    assert!(phase_is(&done, ResetPhase::Succeeded), "{:#?}", done.status);
    let now = committed_on(&env, &app, &input).await;
    for (tp, offset) in &expected {
        assert_eq!(now.get(tp), Some(offset), "{expected:?} vs {now:?}");
    }

    // Undo the last one.
    let done = run_reset(&env, "undo", &app, json!({"previousOf": "explicit"}), json!({})).await;
    assert!(phase_is(&done, ResetPhase::Succeeded), "{:#?}", done.status);
    assert_eq!(committed_on(&env, &app, &input).await, want);

    // A topic the streams group does not read is refused, as the tool refuses it.
    let done = run_reset(
        &env,
        "not-an-input",
        &app,
        json!({"earliest": {}}),
        json!({"topics": [{"name": output}]}),
    )
    .await;
    assert!(phase_is(&done, ResetPhase::Failed), "{:#?}", done.status);
    let (_, _, why) = condition(&done, "Failed").expect("Failed condition");
    assert!(why.contains("is not part of streams group"), "{why}");

    // Back to the start; the restarted app reads every input record again (25 per partition).
    let done = run_reset(&env, "rewind", &app, json!({"earliest": {}}), json!({})).await;
    assert!(phase_is(&done, ResetPhase::Succeeded), "{:#?}", done.status);
    let written_before = {
        let (b, o) = (env.bootstrap.clone(), output.clone());
        tokio::task::spawn_blocking(move || java_clients::read_values(&b, &o, "read_committed"))
            .await
            .expect("read output")
            .len()
    };
    assert_eq!(written_before, 20 * PARTITIONS as usize);
    let streams = {
        let (b, a, i, o, c) = (
            env.bootstrap.clone(),
            app.clone(),
            input.clone(),
            output.clone(),
            counts.clone(),
        );
        tokio::task::spawn_blocking(move || {
            java_clients::eos_streams_with(&b, &a, &i, &o, &[&c, "repartition", "group.protocol=streams"])
        })
        .await
        .expect("restart the app")
    };
    await_committed(&env, &app, &input, 25, &streams).await;
    let written = {
        let (b, o) = (env.bootstrap.clone(), output.clone());
        tokio::task::spawn_blocking(move || java_clients::read_values(&b, &o, "read_committed"))
            .await
            .expect("read output")
    };
    assert_eq!(
        written.len(),
        20 * PARTITIONS as usize + 25 * PARTITIONS as usize,
        "{}",
        streams.tail(20)
    );
}

/// Plays the kubelet for one Deployment whose pod is a Kafka Streams app: runs `start()` while the
/// Deployment's `spec.replicas` is above 0 and stops it (SIGTERM: the member leaves its group) at 0. The app
/// stops when the returned task is aborted.
fn run_while_scaled_up(
    deployments: Api<Deployment>,
    name: &str,
    start: Arc<dyn Fn() -> java_clients::JavaProcess + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut running: Option<java_clients::JavaProcess> = None;
        loop {
            let wanted = match deployments.get(&name).await {
                Ok(d) => d.spec.replicas.unwrap_or(1),
                Err(_) => 0,
            };
            if wanted == 0 {
                if let Some(app) = running.take() {
                    tokio::task::spawn_blocking(move || drop(app))
                        .await
                        .expect("stop the app");
                }
            } else if running.is_none() {
                let start = start.clone();
                running = Some(
                    tokio::task::spawn_blocking(move || start())
                        .await
                        .expect("start the app"),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// ScaleDown on a streams group: the app's Deployment goes to zero, the reset waits for the streams group to
/// have no members, commits the input topic's offsets, restores the replicas, and the app re-reads.
#[tokio::test(flavor = "multi_thread")]
async fn scale_down_stops_the_streams_app_and_the_restarted_app_rereads_from_the_reset_position() {
    let kafka: &'static ApacheKafka = ApacheKafka::shared();
    let env = Scenario::start("osg-scale", kafka).await;
    let (input, output) = (unique_name("sts-in"), unique_name("sts-out"));
    env.kafka
        .create_topics(&[NewTopic::new(&input, PARTITIONS), NewTopic::new(&output, 1)])
        .await
        .expect("topics");
    produce(&env, &input, 10, START_MS).await;
    let app = unique_name("sts-app");
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .create(
            &PostParams::default(),
            &support::kubelet::deployment("enricher", 1, &[("KAFKA_GROUP_ID", app.as_str())]),
        )
        .await
        .expect("Deployment");
    let start: Arc<dyn Fn() -> java_clients::JavaProcess + Send + Sync> = {
        let (b, a, i, o) = (env.bootstrap.clone(), app.clone(), input.clone(), output.clone());
        Arc::new(move || java_clients::eos_streams_with(&b, &a, &i, &o, &["group.protocol=streams"]))
    };
    let pods = run_while_scaled_up(deployments.clone(), "enricher", start);
    let deadline = Instant::now() + T;
    loop {
        let now = committed_on(&env, &app, &input).await;
        if now.len() == PARTITIONS as usize && now.values().all(|o| *o == 10) {
            break;
        }
        assert!(Instant::now() < deadline, "the app did not commit: {now:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let done = run_reset(
        &env,
        "replay",
        &app,
        json!({"shiftBy": -4}),
        json!({"strategy": "ScaleDown", "scaleTargetRef": {"kind": "Deployment", "name": "enricher"}}),
    )
    .await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.phase, ResetPhase::Succeeded, "{status:#?}");
    assert_eq!(status.workload.as_ref().map(|w| w.original_replicas), Some(1));
    assert!(
        status.plan.len() == PARTITIONS as usize && status.plan.iter().all(|p| p.topic == input && p.to == 6),
        "{:?}",
        status.plan
    );
    assert!(condition(&done, "StreamsStateNotReset").is_some());
    assert_eq!(deployments.get("enricher").await.expect("get").spec.replicas, Some(1));

    // The app runs again and re-reads the last 4 records of each partition.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = committed_on(&env, &app, &input).await;
        let written = {
            let (b, o) = (env.bootstrap.clone(), output.clone());
            tokio::task::spawn_blocking(move || java_clients::read_values(&b, &o, "read_committed"))
                .await
                .expect("read output")
                .len()
        };
        if now.values().all(|o| *o == 10) && written == (10 + 4) * PARTITIONS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not re-read: committed {now:?}, {written} written"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    pods.abort();
    let _ = pods.await;
}

/// The embedded broker does not serve streams groups (no StreamsGroupHeartbeat in its ApiVersions): a Kafka
/// Streams client with `group.protocol=streams` fails at its first heartbeat with UnsupportedVersionException,
/// and our describe treats the id as no group at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_streams_client_fails_at_once_and_clearly_on_the_embedded_broker() {
    let broker = EmbeddedKafka::shared();
    let bootstrap = broker.bootstrap();
    let (input, output) = (unique_name("emb-st-in"), unique_name("emb-st-out"));
    broker.create_topic(&input, 1);
    broker.create_topic(&output, 1);
    let app = unique_name("emb-st-app");
    let started = Instant::now();
    let (b, a, i, o) = (bootstrap.clone(), app.clone(), input.clone(), output.clone());
    let streams = tokio::task::spawn_blocking(move || {
        java_clients::eos_streams_until(
            &b,
            &a,
            &i,
            &o,
            &["group.protocol=streams"],
            Duration::from_secs(60),
            |l| l.get("uncaught").is_some(),
        )
    })
    .await
    .expect("start the app");
    let uncaught = streams.ready_line["uncaught"].to_string();
    assert!(
        uncaught.contains("UnsupportedVersionException") && uncaught.contains("STREAMS group protocol"),
        "{uncaught}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
    drop(streams);
    let client =
        kafka_group_operator::kafka::KafkaClient::new(kafka_group_operator::kafka::ClientConfig::new([bootstrap]))
            .expect("client");
    let d = client.describe_group(&app).await.expect("describe");
    assert!(!d.exists(), "{d:?}");
}
