//! The command line (`lag`, `plan`, `apply`, `export`) run as the real binary against Apache Kafka and the
//! embedded broker (`on_both_brokers!`): plan shows what apply then commits for every target kind, apply
//! refuses groups with members, export → reset → restore returns the exact offsets, lag equals
//! `kafka-consumer-groups --describe`, exit codes and one-line errors for bad input; and SASL with the
//! password from a file or the environment against the secure Apache Kafka broker.

#[macro_use]
mod support;

use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic, TopicPartition};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use support::clients;
use support::{SecureKafka, TestBroker, unique_name};

const START_MS: i64 = 1_700_000_000_000;

/// One run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// The exit code must be `code`, and an error must be one line on stderr.
    fn expect(self, code: i32, what: &str) -> Run {
        assert_eq!(
            self.code, code,
            "{what}: exit code {}, expected {code}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        if code == 1 {
            assert_eq!(
                self.stderr.trim_end().lines().count(),
                1,
                "{what}: one line: {}",
                self.stderr
            );
            assert!(self.stderr.starts_with("error: "), "{what}: {}", self.stderr);
        }
        self
    }
}

fn kgo_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("KGO_BOOTSTRAP_SERVER")
        .env_remove("KGO_SASL_PASSWORD")
        .env_remove("KGO_SASL_USERNAME")
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kafka-group-operator");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kgo(args: &[&str]) -> Run {
    kgo_with_env(args, &[])
}

/// `args` with `--bootstrap-server` of `kafka` added.
fn on(kafka: &dyn TestBroker, args: &[&str]) -> Run {
    let bootstrap = kafka.bootstrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--bootstrap-server", &bootstrap]);
    kgo(&all)
}

fn client(kafka: &dyn TestBroker) -> KafkaClient {
    KafkaClient::new(ClientConfig::new([kafka.bootstrap()])).expect("client")
}

/// A topic with `per_partition` records per partition, timestamps 1 s apart from `start_ms`.
async fn topic_with_records(kafka: &dyn TestBroker, partitions: i32, per_partition: usize, start_ms: i64) -> String {
    let topic = unique_name("cli");
    client(kafka)
        .create_topics(&[NewTopic::new(&topic, partitions)])
        .await
        .expect("create topic");
    for p in 0..partitions {
        clients::produce_with_timestamps(&kafka.bootstrap(), &topic, p, per_partition, start_ms, 1000);
    }
    topic
}

async fn commit(kafka: &dyn TestBroker, group: &str, offsets: &[(&str, i32, i64)]) {
    let offsets = offsets
        .iter()
        .map(|(t, p, o)| (TopicPartition::new(*t, *p), *o))
        .collect();
    client(kafka).commit_offsets(group, &offsets).await.expect("commit");
}

async fn committed(kafka: &dyn TestBroker, group: &str) -> BTreeMap<(String, i32), i64> {
    support::kafka::committed_by_partition(&client(kafka), group).await
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

fn reset_manifest(name: &str, group: &str, topic: &str, to: &str) -> String {
    format!(
        "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata:\n  name: {name}\nspec:\n  clusterRef: {{name: main}}\n  groupId: {group}\n  topics: [{{name: {topic}}}]\n  to: {to}\n"
    )
}

/// One partition of a plan: current, target, clamped.
type PlannedRow = (Option<i64>, i64, Option<String>);

/// One partition of a lag report: topic, partition, committed, log end, lag.
type LagRow = (String, i32, Option<i64>, Option<i64>, Option<i64>);

/// A target case: name, spec.to, expected targets of partitions 0 and 1, clamped to, relative (a re-plan moves
/// again).
type TargetCase = (&'static str, String, [i64; 2], Option<&'static str>, bool);

fn lag_row(p: &Value) -> LagRow {
    (
        p["topic"].as_str().expect("topic").to_owned(),
        p["partition"].as_i64().expect("partition") as i32,
        p["committed"].as_i64(),
        p["logEnd"].as_i64(),
        p["lag"].as_i64(),
    )
}

/// (topic, partition) -> (current, target, clamped) from `plan --output json`, for one group.
fn planned(run: &Run) -> BTreeMap<(String, i32), PlannedRow> {
    let plan = run.json();
    let groups = plan["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{plan}");
    groups[0]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                (
                    p["topic"].as_str().expect("topic").to_owned(),
                    p["partition"].as_i64().expect("p") as i32,
                ),
                (
                    p["current"].as_i64(),
                    p["target"].as_i64().expect("target"),
                    p["clamped"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

async fn plan_shows_what_apply_then_commits_for_every_target_kind(kafka: &dyn TestBroker) {
    // Two partitions of 20 records each, timestamps START_MS + i s; every group starts committed at 10.
    let topic = topic_with_records(kafka, 2, 20, START_MS).await;
    let dir = tempfile::tempdir().expect("dir");
    let undo = dir.path().join("undo");
    let undo = undo.display().to_string();
    let cases: Vec<TargetCase> = vec![
        ("earliest", "{earliest: {}}".into(), [0, 0], None, false),
        ("latest", "{latest: {}}".into(), [20, 20], None, false),
        ("offset", "{offset: 7}".into(), [7, 7], None, false),
        (
            "offset-beyond-end",
            "{offset: 500}".into(),
            [20, 20],
            Some("logEnd"),
            false,
        ),
        (
            "shift-back-clamped",
            "{shiftBy: -1000}".into(),
            [0, 0],
            Some("logStart"),
            true,
        ),
        ("shift-forward", "{shiftBy: 3}".into(), [13, 13], None, true),
        // START_MS + 5 s: the record at offset 5.
        (
            "timestamp",
            "{timestamp: \"2023-11-14T22:13:25Z\"}".into(),
            [5, 5],
            None,
            false,
        ),
        (
            "timestamp-future",
            "{timestamp: \"2099-01-01T00:00:00Z\"}".into(),
            [20, 20],
            None,
            false,
        ),
        // Every record is from 2023: none is less than an hour old, so the log end.
        ("duration", "{duration: 1h}".into(), [20, 20], None, false),
        (
            "partitions",
            format!(
                "{{partitions: [{{topic: {topic}, partition: 0, offset: 4}}, {{topic: {topic}, partition: 1, offset: 99}}]}}"
            ),
            [4, 20],
            None,
            false,
        ),
    ];
    for (name, to, expected, clamped, relative) in cases {
        let group = unique_name(&format!("cli-{name}"));
        commit(kafka, &group, &[(&topic, 0, 10), (&topic, 1, 10)]).await;
        let file = write(
            dir.path(),
            &format!("{name}.yaml"),
            &reset_manifest(name, &group, &topic, &to),
        );
        let plan = on(kafka, &["plan", "-f", &file, "--output", "json"]).expect(2, name);
        let targets = planned(&plan);
        assert_eq!(plan.json()["changes"], true, "{name}");
        for p in 0..2 {
            let (current, target, clamp) = &targets[&(topic.clone(), p)];
            assert_eq!(*current, Some(10), "{name}: partition {p}");
            assert_eq!(*target, expected[p as usize], "{name}: partition {p}: {}", plan.stdout);
            if let Some(c) = clamped {
                assert_eq!(clamp.as_deref(), Some(c), "{name}: the plan says it clamped");
            }
        }
        on(kafka, &["apply", "-f", &file, "--yes", "--undo-dir", &undo]).expect(0, name);
        let now = committed(kafka, &group).await;
        let applied: BTreeMap<(String, i32), i64> = targets.iter().map(|(k, v)| (k.clone(), v.1)).collect();
        assert_eq!(now, applied, "{name}: apply committed what plan showed");
        if !relative {
            on(kafka, &["plan", "-f", &file]).expect(0, &format!("{name} re-planned after apply"));
        }
    }

    // A target equal to the committed offsets: no change, exit code 0, and apply changes nothing.
    let group = unique_name("cli-same");
    commit(kafka, &group, &[(&topic, 0, 10), (&topic, 1, 10)]).await;
    let file = write(
        dir.path(),
        "same.yaml",
        &reset_manifest("same", &group, &topic, "{offset: 10}"),
    );
    let plan = on(kafka, &["plan", "-f", &file]).expect(0, "no change");
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    on(kafka, &["apply", "-f", &file, "--yes", "--undo-dir", &undo]).expect(0, "apply without changes");

    // ConsumerGroup offsetInit, for a group without offsets, and an OffsetReset naming its ConsumerGroup
    // through groupRef in the same multi-document file.
    for (policy, offset) in [("earliest", 0), ("latest", 20)] {
        let group = unique_name("cli-init");
        let cg = format!(
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: ConsumerGroup\nmetadata:\n  name: orders-reader\nspec:\n  clusterRef: {{name: main}}\n  groupId: {group}\n  topics: [{topic}]\n  offsetInit: {{policy: {policy}}}\n"
        );
        let file = write(dir.path(), &format!("init-{policy}.yaml"), &cg);
        let plan = on(kafka, &["plan", "-f", &file, "-o", "json"]).expect(2, policy);
        let targets = planned(&plan);
        assert_eq!(targets.len(), 2, "{}", plan.stdout);
        assert!(
            targets.values().all(|(c, t, _)| c.is_none() && *t == offset),
            "{policy}: {targets:?}"
        );
        on(kafka, &["apply", "-f", &file, "--yes", "--undo-dir", &undo]).expect(0, policy);
        assert!(
            committed(kafka, &group).await.values().all(|o| *o == offset),
            "{policy}"
        );
        on(kafka, &["plan", "-f", &file]).expect(0, "every partition has an offset now");

        let with_ref = format!(
            "{}---\napiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata:\n  name: back\nspec:\n  groupRef: {{name: orders-reader}}\n  to: {{offset: 3}}\n",
            cg.replace(&format!("  offsetInit: {{policy: {policy}}}\n"), "")
        );
        let file = write(dir.path(), &format!("ref-{policy}.yaml"), &with_ref);
        let targets = planned(&on(kafka, &["plan", "-f", &file, "-o", "json"]).expect(2, "groupRef"));
        assert!(
            targets.values().all(|(c, t, _)| *c == Some(offset) && *t == 3),
            "{targets:?}"
        );
        on(kafka, &["apply", "-f", &file, "--yes", "--undo-dir", &undo]).expect(0, "groupRef");
        assert!(committed(kafka, &group).await.values().all(|o| *o == 3));
    }
}

async fn apply_refuses_a_group_with_members(kafka: &dyn TestBroker) {
    let topic = topic_with_records(kafka, 2, 10, START_MS).await;
    let group = unique_name("cli-active");
    commit(kafka, &group, &[(&topic, 0, 4)]).await;
    let member = clients::GroupMember::join(
        &kafka.bootstrap(),
        &topic,
        &group,
        clients::GroupProtocol::Classic,
        None,
    );
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        dir.path(),
        "r.yaml",
        &reset_manifest("r", &group, &topic, "{earliest: {}}"),
    );

    let plan = on(kafka, &["plan", "-f", &file]).expect(2, "plan of an active group");
    assert!(plan.stdout.contains("apply refuses active groups"), "{}", plan.stdout);
    let undo = dir.path().display().to_string();
    let apply = on(kafka, &["apply", "-f", &file, "--yes", "--undo-dir", &undo]).expect(1, "apply to an active group");
    assert!(
        apply.stderr.contains(&format!("group {group} has 1 member(s)"))
            && apply.stderr.contains("Nothing was changed"),
        "{}",
        apply.stderr
    );
    assert_eq!(
        committed(kafka, &group).await,
        BTreeMap::from([((topic.clone(), 0), 4)])
    );

    // lag shows the member, which partitions it owns, and the one without a committed offset, as
    // kafka-consumer-groups --describe does.
    let lag = on(kafka, &["lag", "--group", &group, "-o", "json"])
        .expect(0, "lag")
        .json();
    let g = &lag["groups"][0];
    assert_eq!(
        (g["state"].as_str(), g["members"].as_i64()),
        (Some("Stable"), Some(1)),
        "{lag}"
    );
    let partitions = g["partitions"].as_array().expect("partitions");
    assert!(partitions.iter().all(|p| p["consumer"].is_string()), "{lag}");
    let ours: Vec<LagRow> = partitions.iter().map(lag_row).collect();
    let theirs: Vec<LagRow> = kafka
        .describe_group_offsets(&group)
        .iter()
        .map(|r| (r.topic.clone(), r.partition, r.current_offset, r.log_end_offset, r.lag))
        .collect();
    assert_eq!(ours, theirs, "lag vs kafka-consumer-groups --describe");
    assert_eq!(ours[1], (topic.clone(), 1, None, Some(10), None));
    member.leave();
}

async fn export_reset_and_restore_return_the_exact_original_offsets(kafka: &dyn TestBroker) {
    let topic = topic_with_records(kafka, 3, 30, START_MS).await;
    let group = unique_name("cli-undo");
    commit(kafka, &group, &[(&topic, 0, 3), (&topic, 1, 17), (&topic, 2, 29)]).await;
    let original = committed(kafka, &group).await;
    let dir = tempfile::tempdir().expect("dir");

    let export = on(kafka, &["export", "--group", &group]).expect(0, "export");
    assert_eq!(export.stdout, format!("{topic},0,3\n{topic},1,17\n{topic},2,29\n"));
    let csv = dir.path().join("exported.csv").display().to_string();
    on(kafka, &["export", "--group", &group, "--output-file", &csv]).expect(0, "export to a file");
    // Kafka's own tool reads the file as the same offsets.
    let tool =
        support::kafka::reset_dry_run_with_cli(&kafka.bootstrap(), &group, &["--topic", &topic, "--from-file", &csv]);
    assert_eq!(tool, original, "kafka-consumer-groups --from-file reads our export");

    let undo_dir = dir.path().join("undo");
    let undo_arg = undo_dir.display().to_string();
    let file = write(
        dir.path(),
        "r.yaml",
        &reset_manifest("r", &group, &topic, "{earliest: {}}"),
    );
    let apply = on(kafka, &["apply", "-f", &file, "--yes", "--undo-dir", &undo_arg]).expect(0, "reset");
    assert!(committed(kafka, &group).await.values().all(|o| *o == 0));
    let undo_file = std::fs::read_dir(&undo_dir)
        .expect("undo dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".undo.csv"))
        .expect("apply wrote an undo file");
    let undo_file = undo_file.display().to_string();
    assert!(
        apply.stdout.contains(&format!("--from-file {undo_file}")),
        "{}",
        apply.stdout
    );
    assert!(
        apply.stdout.contains("BEFORE") && apply.stdout.contains("AFTER"),
        "{}",
        apply.stdout
    );

    on(kafka, &["plan", "--group", &group, "--from-file", &undo_file]).expect(2, "plan of the undo");
    on(
        kafka,
        &[
            "apply",
            "--group",
            &group,
            "--from-file",
            &undo_file,
            "--yes",
            "--undo-dir",
            &undo_arg,
        ],
    )
    .expect(0, "undo");
    assert_eq!(
        committed(kafka, &group).await,
        original,
        "the undo restored the exact offsets"
    );
    // The exported file now matches: nothing to change.
    on(kafka, &["plan", "--group", &group, "--from-file", &csv]).expect(0, "plan of the export");
}

async fn lag_equals_kafka_consumer_groups_describe(kafka: &dyn TestBroker) {
    let start = k8s_openapi::jiff::Timestamp::now().as_millisecond() - 600_000;
    let topic = topic_with_records(kafka, 2, 15, start).await;
    let group = unique_name("cli-lag");
    clients::consume_and_commit(&kafka.bootstrap(), &topic, &group, clients::GroupProtocol::Classic, 12);
    // More records after the commit, continuing the timestamps (offset n at start + n s): every partition lags.
    for p in 0..2 {
        clients::produce_with_timestamps(&kafka.bootstrap(), &topic, p, 5, start + 15_000, 1000);
    }
    let before = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let lag = on(kafka, &["lag", "--group", &group, "--output", "json"])
        .expect(0, "lag")
        .json();
    let after = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let tool = kafka.describe_group_offsets(&group);
    let g = &lag["groups"][0];
    assert_eq!(g["group"], group.as_str());
    assert_eq!(g["state"], "Empty");
    let ours: Vec<LagRow> = g["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(lag_row)
        .collect();
    let theirs: Vec<LagRow> = tool
        .iter()
        .filter(|r| r.current_offset.is_some())
        .map(|r| (r.topic.clone(), r.partition, r.current_offset, r.log_end_offset, r.lag))
        .collect();
    assert_eq!(ours, theirs, "lag vs kafka-consumer-groups --describe");
    assert_eq!(
        g["totalLag"].as_i64(),
        Some(theirs.iter().filter_map(|r| r.4).sum::<i64>())
    );
    assert!(
        theirs.iter().all(|r| r.4 >= Some(5)),
        "every partition lags: {theirs:?}"
    );
    // Time lag: the age of the record at the committed offset (timestamps START + offset s).
    for p in g["partitions"].as_array().expect("partitions") {
        let (committed, lag) = (p["committed"].as_i64().expect("c"), p["lag"].as_i64().expect("lag"));
        let time_lag = p["timeLagMs"].as_i64().expect("time lag");
        if lag == 0 {
            assert_eq!(time_lag, 0, "{p}");
        } else {
            let record_ms = start + committed * 1000;
            assert!(
                (before - record_ms..=after - record_ms).contains(&time_lag),
                "{p}: expected {}..={}",
                before - record_ms,
                after - record_ms
            );
        }
    }
    // --all batches every group and finds this one; the table has a block for it.
    let all = on(kafka, &["lag", "--all", "-o", "json"]).expect(0, "lag --all").json();
    assert!(
        all["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|x| x["group"] == group.as_str()),
        "{all}"
    );
    let table = on(kafka, &["lag", "-g", &group]).expect(0, "lag table");
    assert!(
        table.stdout.starts_with(&format!("GROUP {group}  state=Empty")),
        "{}",
        table.stdout
    );
    let yaml = on(kafka, &["lag", "-g", &group, "-o", "yaml"]).expect(0, "lag yaml");
    assert!(yaml.stdout.contains(&format!("group: {group}")), "{}", yaml.stdout);

    // --watch refreshes in place until Ctrl-C (SIGINT), then exits 0.
    let child = Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
        .args([
            "lag",
            "-g",
            &group,
            "--watch",
            "--interval",
            "1s",
            "-b",
            &kafka.bootstrap(),
        ])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lag --watch");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(sent, 0, "SIGINT to lag --watch");
    let out = child.wait_with_output().expect("lag --watch output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.matches("\x1b[H\x1b[2J").count() >= 2,
        "refreshed in place: {stdout:?}"
    );
    assert!(stdout.contains(&format!("GROUP {group}  state=Empty")), "{stdout}");
}

async fn unknown_groups_topics_and_partitions_are_one_line_errors(kafka: &dyn TestBroker) {
    let topic = topic_with_records(kafka, 1, 5, START_MS).await;
    let nobody = unique_name("cli-nobody");
    let dir = tempfile::tempdir().expect("dir");

    let lag = on(kafka, &["lag", "--group", &nobody]).expect(1, "lag of an unknown group");
    assert!(
        lag.stderr.contains(&format!("unknown group {nobody}")),
        "{}",
        lag.stderr
    );
    let export = on(kafka, &["export", "--group", &nobody]).expect(1, "export of an unknown group");
    assert!(
        export.stderr.contains(&format!("unknown group {nobody}")),
        "{}",
        export.stderr
    );
    let reset = "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata: {name: r}\nspec:\n  clusterRef: {name: main}\n  groupId: GROUP\n  to: {earliest: {}}\n";
    let file = write(dir.path(), "unknown-group.yaml", &reset.replace("GROUP", &nobody));
    let plan = on(kafka, &["plan", "-f", &file]).expect(1, "plan of an unknown group");
    assert!(
        plan.stderr.contains(&format!("unknown group {nobody}")),
        "{}",
        plan.stderr
    );

    let missing_topic = unique_name("cli-no-topic");
    let file = write(
        dir.path(),
        "unknown-topic.yaml",
        &reset_manifest("r", &nobody, &missing_topic, "{earliest: {}}"),
    );
    let plan = on(kafka, &["plan", "-f", &file]).expect(1, "unknown topic");
    assert!(
        plan.stderr.contains(&format!("unknown topic {missing_topic}")),
        "{}",
        plan.stderr
    );

    let with_partition = reset_manifest("r", &nobody, &topic, "{earliest: {}}").replace(
        &format!("{{name: {topic}}}"),
        &format!("{{name: {topic}, partitions: [7]}}"),
    );
    let file = write(dir.path(), "unknown-partition.yaml", &with_partition);
    let plan = on(kafka, &["plan", "-f", &file]).expect(1, "unknown partition");
    assert!(
        plan.stderr.contains(&format!("topic {topic} has no partition 7")),
        "{}",
        plan.stderr
    );

    let csv = write(dir.path(), "bad-partition.csv", &format!("{topic},3,1\n"));
    let apply = on(kafka, &["apply", "--group", &nobody, "--from-file", &csv, "--yes"]).expect(1, "csv partition");
    assert!(
        apply.stderr.contains(&format!("topic {topic} has no partition 3")),
        "{}",
        apply.stderr
    );

    // apply asks before changing anything; with no terminal and no --yes it stops.
    let group = unique_name("cli-ask");
    commit(kafka, &group, &[(&topic, 0, 2)]).await;
    let file = write(
        dir.path(),
        "ask.yaml",
        &reset_manifest("r", &group, &topic, "{latest: {}}"),
    );
    let apply = on(kafka, &["apply", "-f", &file]).expect(1, "apply without --yes");
    assert!(apply.stderr.contains("pass --yes"), "{}", apply.stderr);
    assert_eq!(
        committed(kafka, &group).await,
        BTreeMap::from([((topic.clone(), 0), 2)])
    );
}

async fn a_reset_applied_before_plans_no_change_and_apply_leaves_it(kafka: &dyn TestBroker) {
    let topic = topic_with_records(kafka, 2, 20, START_MS).await;
    let group = unique_name("cli-ledger");
    commit(kafka, &group, &[(&topic, 0, 10), (&topic, 1, 10)]).await;
    let dir = tempfile::tempdir().expect("dir");
    let undo = dir.path().display().to_string();
    let manifest = write(
        dir.path(),
        "rewind.yaml",
        &reset_manifest("rewind-2026-12-07", &group, &topic, "{shiftBy: -2}"),
    );
    on(kafka, &["plan", "-f", &manifest]).expect(2, "a new reset plans changes");
    on(kafka, &["apply", "-f", &manifest, "-y", "--undo-dir", &undo]).expect(0, "apply");
    assert!(committed(kafka, &group).await.values().all(|o| *o == 8));
    // The commit carries the reset's record: planning the same manifest again (a PR that re-adds it) shows
    // no change, and says when it was applied.
    let again = on(kafka, &["plan", "-f", &manifest]).expect(0, "an applied reset plans no change");
    assert!(
        again.stdout.contains("already applied on ") && again.stdout.contains("kafka-group-operator apply"),
        "{}",
        again.stdout
    );
    let plan = on(kafka, &["plan", "-f", &manifest, "-o", "json"])
        .expect(0, "json")
        .json();
    assert_eq!(plan["changes"], Value::Bool(false), "{plan:#}");
    assert!(
        plan["groups"][0]["alreadyApplied"]
            .as_str()
            .is_some_and(|s| s.contains("commit metadata")),
        "{plan:#}"
    );
    on(kafka, &["apply", "-f", &manifest, "-y", "--undo-dir", &undo]).expect(0, "apply again");
    assert!(
        committed(kafka, &group).await.values().all(|o| *o == 8),
        "the reset was shifted a second time"
    );
    // Another name is another reset.
    let renamed = write(
        dir.path(),
        "renamed.yaml",
        &reset_manifest("rewind-2026-12-08", &group, &topic, "{shiftBy: -2}"),
    );
    on(kafka, &["plan", "-f", &renamed]).expect(2, "a renamed reset plans changes");
    // Once the consumers commit again, the record in Kafka is gone with their commit (the Kubernetes records
    // of the operator last longer): the same manifest plans changes again.
    commit(kafka, &group, &[(&topic, 0, 12), (&topic, 1, 12)]).await;
    on(kafka, &["plan", "-f", &manifest]).expect(2, "the record was replaced by a consumer's commit");
}

on_both_brokers!(
    a_reset_applied_before_plans_no_change_and_apply_leaves_it,
    plan_shows_what_apply_then_commits_for_every_target_kind,
    apply_refuses_a_group_with_members,
    export_reset_and_restore_return_the_exact_original_offsets,
    lag_equals_kafka_consumer_groups_describe,
    unknown_groups_topics_and_partitions_are_one_line_errors,
);

#[test]
fn manifests_that_are_not_valid_yaml_or_not_ours_are_refused_before_connecting() {
    let dir = tempfile::tempdir().expect("dir");
    // Nothing listens on port 1: the manifest is checked before any connection.
    let args = |file: &str| {
        vec!["plan", "-f", file, "--bootstrap-server", "127.0.0.1:1"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let cases = [
        ("bad.yaml", "kind: [unclosed\n  x: {", "bad.yaml: not valid YAML"),
        (
            "deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
            "a Deployment (apps/v1) is not one of ours",
        ),
        (
            "two.yaml",
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata: {name: r}\nspec:\n  clusterRef: {name: main}\n  groupId: g\n  to: {earliest: {}, latest: {}}\n",
            "spec.to needs exactly one target",
        ),
        (
            "prev.yaml",
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata: {name: r}\nspec:\n  clusterRef: {name: main}\n  groupId: g\n  to: {previousOf: earlier}\n",
            "",
        ),
        (
            "cluster-only.yaml",
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: KafkaCluster\nmetadata: {name: main}\nspec:\n  bootstrapServers: [\"k:9092\"]\n",
            "nothing to plan",
        ),
    ];
    for (name, text, expected) in cases {
        let file = write(dir.path(), name, text);
        let a = args(&file);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let run = kgo(&a);
        if expected.is_empty() {
            // previousOf is valid YAML and ours; it fails on the connection (port 1) or says why it cannot plan.
            run.expect(1, name);
            continue;
        }
        let run = run.expect(1, name);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }
    let missing = kgo(&["plan", "-f", "/nonexistent/r.yaml", "-b", "127.0.0.1:1"]).expect(1, "missing file");
    assert!(
        missing.stderr.contains("cannot read /nonexistent/r.yaml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn an_unreachable_broker_is_one_line_that_says_what_to_check() {
    let run = kgo(&["lag", "--all", "--bootstrap-server", "127.0.0.1:1", "--timeout", "2s"]).expect(1, "unreachable");
    assert!(
        run.stderr.contains("cannot reach the cluster at 127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("check --bootstrap-server"), "{}", run.stderr);
    let none = kgo(&["lag", "--all"]).expect(1, "no bootstrap");
    assert!(none.stderr.contains("pass --bootstrap-server"), "{}", none.stderr);
}

#[test]
fn usage_errors_exit_1_not_2_which_is_plans_changes() {
    let run = kgo(&["plan", "--no-such-flag"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
    let run = kgo(&["plan", "-b", "127.0.0.1:1"]);
    assert_eq!(run.code, 1, "no -f and no --from-file: {}", run.stderr);
}

#[test]
fn every_subcommand_documents_itself() {
    for sub in ["lag", "plan", "apply", "export"] {
        let help = kgo(&[sub, "--help"]).expect(0, sub);
        assert!(help.stdout.contains("Examples:"), "{sub}: {}", help.stdout);
        assert!(help.stdout.contains("--bootstrap-server"), "{sub}: {}", help.stdout);
        assert!(help.stdout.contains("--sasl-password-file"), "{sub}: {}", help.stdout);
        assert!(
            !help.stdout.contains("--sasl-password "),
            "{sub}: a password is never a flag"
        );
    }
}

/// SASL_SSL with SCRAM against the secure Apache Kafka broker: the password from a file, from the default
/// environment variable and from a named one; a wrong password is an authentication error that never
/// echoes the password.
#[tokio::test(flavor = "multi_thread")]
async fn sasl_passwords_come_from_a_file_or_the_environment_and_a_wrong_one_says_so() {
    let secure = SecureKafka::shared();
    let plain = secure.plaintext();
    let topic = topic_with_records(plain, 1, 5, START_MS).await;
    let group = unique_name("cli-sasl");
    commit(plain, &group, &[(&topic, 0, 2)]).await;
    let user = secure.scram_sha_512_user();
    let dir = tempfile::tempdir().expect("dir");
    let password_file = write(dir.path(), "password", &format!("{}\n", user.password));
    let bootstrap = secure.sasl_ssl_bootstrap();
    let ca = secure.ca_pem().display().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "export",
            "--group",
            &group,
            "--bootstrap-server",
            &bootstrap,
            "--ca-file",
            &ca,
            "--sasl-mechanism",
            user.mechanism.as_str(),
            "--sasl-username",
            &user.username,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>, env: &[(&str, &str)]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        kgo_with_env(&a, env)
    };
    let expected = format!("{topic},0,2\n");
    let from_file = run(base(&["--sasl-password-file", &password_file]), &[]).expect(0, "password file");
    assert_eq!(from_file.stdout, expected);
    let from_env = run(base(&[]), &[("KGO_SASL_PASSWORD", &user.password)]).expect(0, "KGO_SASL_PASSWORD");
    assert_eq!(from_env.stdout, expected);
    let named = run(
        base(&["--sasl-password-env", "MY_KAFKA_PASSWORD"]),
        &[("MY_KAFKA_PASSWORD", &user.password)],
    )
    .expect(0, "named variable");
    assert_eq!(named.stdout, expected);

    let wrong =
        run(base(&["--timeout", "5s"]), &[("KGO_SASL_PASSWORD", "not-the-password")]).expect(1, "wrong password");
    assert!(wrong.stderr.contains("authentication failed"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("not-the-password"), "{}", wrong.stderr);
    let missing = run(base(&[]), &[]).expect(1, "no password");
    assert!(missing.stderr.contains("set KGO_SASL_PASSWORD"), "{}", missing.stderr);
}

/// `--cluster`: a KafkaCluster manifest (SASL_SSL with SCRAM, CA and password in Secrets) read through the
/// test control plane's kubeconfig, as the operator reads it; a missing Secret is one line naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_manifest_reads_its_secrets_through_the_kubeconfig() {
    let secure = SecureKafka::shared();
    let plain = secure.plaintext();
    let topic = topic_with_records(plain, 1, 5, START_MS).await;
    let group = unique_name("cli-cluster");
    commit(plain, &group, &[(&topic, 0, 3)]).await;
    let control_plane = support::ControlPlane::shared();
    let kube = control_plane.client().await;
    let ns = control_plane.fresh_namespace(&kube, "cli").await;
    let user = secure.scram_sha_512_user();
    let ca = format!("--from-file=ca.crt={}", secure.ca_pem().display());
    let password = format!("--from-literal=password={}", user.password);
    for args in [
        [
            "create",
            "secret",
            "generic",
            "kafka-ca",
            ca.as_str(),
            "-n",
            ns.as_str(),
        ],
        [
            "create",
            "secret",
            "generic",
            "kafka-password",
            password.as_str(),
            "-n",
            ns.as_str(),
        ],
    ] {
        let out = control_plane.kubectl(&args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let unlabelled_manifest = format!(
        "apiVersion: kafkagroups.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: secure\n  namespace: {ns}\nspec:\n  bootstrapServers: [\"{}\"]\n  tls:\n    caSecretRef: {{name: kafka-ca, key: ca.crt}}\n",
        secure.sasl_ssl_bootstrap(),
    );
    // The command line reads Secrets as the operator does: only those labelled for it.
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = control_plane.kubeconfig().display().to_string();
    let unlabelled = write(dir.path(), "unlabelled.yaml", &unlabelled_manifest);
    let run = kgo(&[
        "export",
        "--group",
        &group,
        "--cluster",
        &unlabelled,
        "--kubeconfig",
        &kubeconfig,
    ])
    .expect(1, "unlabelled Secret");
    assert!(
        run.stderr.contains(&format!(
            "run `kubectl label secret kafka-ca -n {ns} kafkagroups.dev/credentials=true`"
        )),
        "{}",
        run.stderr
    );
    let out = control_plane.kubectl(&[
        "label",
        "secret",
        "kafka-ca",
        "kafka-password",
        "kafkagroups.dev/credentials=true",
        "-n",
        ns.as_str(),
    ]);
    assert!(
        out.status.success(),
        "kubectl label: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = |password_secret: &str| {
        format!(
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: secure\n  namespace: {ns}\nspec:\n  bootstrapServers: [\"{}\"]\n  tls:\n    caSecretRef: {{name: kafka-ca, key: ca.crt}}\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: {}\n    passwordSecretRef: {{name: {password_secret}, key: password}}\n",
            secure.sasl_ssl_bootstrap(),
            user.username
        )
    };
    let good = write(dir.path(), "cluster.yaml", &manifest("kafka-password"));
    let export = kgo(&[
        "export",
        "--group",
        &group,
        "--cluster",
        &good,
        "--kubeconfig",
        &kubeconfig,
    ])
    .expect(0, "--cluster");
    assert_eq!(export.stdout, format!("{topic},0,3\n"));

    let bad = write(dir.path(), "absent.yaml", &manifest("absent"));
    let run = kgo(&[
        "export",
        "--group",
        &group,
        "--cluster",
        &bad,
        "--kubeconfig",
        &kubeconfig,
    ])
    .expect(1, "no Secret");
    assert!(run.stderr.contains("Secret absent does not exist"), "{}", run.stderr);

    // A cluster that names no Secret needs no kubeconfig.
    let plain_cluster = format!(
        "apiVersion: kafkagroups.dev/v1alpha1\nkind: KafkaCluster\nmetadata: {{name: plain}}\nspec:\n  bootstrapServers: [\"{}\"]\n",
        secure.plaintext_bootstrap()
    );
    let file = write(dir.path(), "plain.yaml", &plain_cluster);
    let export = kgo(&["export", "--group", &group, "--cluster", &file]).expect(0, "--cluster without Secrets");
    assert_eq!(export.stdout, format!("{topic},0,3\n"));
}
