//! The embedded broker's group coordinator against clients no one here wrote: a confluent-kafka (librdkafka)
//! consumer group of three that rebalances as members join and leave, commits, and resumes from its committed
//! offsets after a broker restart; and Kafka's own `kafka-consumer-groups` listing, describing, resetting and
//! deleting groups.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use kafka_group_operator::broker::{Broker, BrokerConfig};
use support::clients::{GroupMember, GroupProtocol, consume_and_commit, produce};
use support::kafka::{
    GroupOffsetRow, create_topic_with_cli, describe_group_offsets_with_cli, kafka_tool, kafka_tool_ok,
};
use support::tools::clients_venv;
use support::{process, unique_name};

/// An embedded broker run in-process on its own runtime, restartable on the same port and data dir.
struct Embedded {
    runtime: tokio::runtime::Runtime,
    broker: Option<Broker>,
    config: BrokerConfig,
}

impl Embedded {
    fn start(data_dir: Option<PathBuf>) -> Embedded {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let config = BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            group_initial_rebalance_delay: Duration::from_millis(500),
            // KIP-848 members learn of a new assignment at their next heartbeat: keep rebalances short.
            group_consumer_heartbeat_interval: Duration::from_millis(500),
            ..BrokerConfig::default()
        };
        let broker = runtime
            .block_on(Broker::start(config.clone()))
            .expect("start the embedded broker");
        let config = BrokerConfig {
            listen: broker.local_addr(),
            ..config
        };
        Embedded {
            runtime,
            broker: Some(broker),
            config,
        }
    }

    fn bootstrap(&self) -> String {
        self.broker.as_ref().expect("a running broker").bootstrap()
    }

    /// Stops the broker gracefully and starts it again on the same address and data dir.
    fn restart(&mut self) {
        if let Some(broker) = self.broker.take() {
            self.runtime.block_on(broker.shutdown());
        }
        let broker = self
            .runtime
            .block_on(Broker::start(self.config.clone()))
            .expect("restart the embedded broker");
        self.broker = Some(broker);
    }

    /// Runs one of Kafka's CLI tools (from the harness's Maven classpath) against this broker.
    fn tool(&self, class: &str, args: &[&str]) -> Output {
        kafka_tool(&self.bootstrap(), class, args)
    }

    fn tool_ok(&self, class: &str, args: &[&str]) -> String {
        kafka_tool_ok(&self.bootstrap(), class, args)
    }

    fn create_topic(&self, topic: &str, partitions: u32) {
        create_topic_with_cli(&self.bootstrap(), topic, partitions);
    }

    fn groups(&self, args: &[&str]) -> String {
        self.tool_ok(GROUPS, args)
    }

    fn describe_offsets(&self, group: &str) -> Vec<GroupOffsetRow> {
        describe_group_offsets_with_cli(&self.bootstrap(), group)
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            self.runtime.block_on(broker.shutdown());
        }
    }
}

const GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

/// A consumer like a Deployment's pod runs it (`confluent_client.py run`): subscribes, consumes, auto-commits
/// every 500 ms, logs each rebalance, and on SIGTERM commits and leaves the group.
struct Consumer {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Consumer {
    fn start(bootstrap: &str, topic: &str, group: &str, client_id: &str) -> Consumer {
        Consumer::start_static(bootstrap, topic, group, client_id, None)
    }

    /// A static member (`group.instance.id`) when `instance_id` is set.
    fn start_static(bootstrap: &str, topic: &str, group: &str, client_id: &str, instance_id: Option<&str>) -> Consumer {
        Consumer::start_with(bootstrap, topic, group, client_id, instance_id, GroupProtocol::Classic)
    }

    fn start_with(
        bootstrap: &str,
        topic: &str,
        group: &str,
        client_id: &str,
        instance_id: Option<&str>,
        protocol: GroupProtocol,
    ) -> Consumer {
        let python = clients_venv().join("bin/python");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/confluent_client.py");
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("consumer.log");
        let mut cmd = Command::new(python);
        cmd.arg(script).args([
            "run",
            "--bootstrap",
            bootstrap,
            "--topics",
            topic,
            "--group",
            group,
            "--protocol",
            protocol.as_str(),
            "--client-id",
            client_id,
        ]);
        if let Some(id) = instance_id {
            cmd.args(["--instance-id", id]);
        }
        let child = process::spawn_tied(cmd, &log);
        Consumer { child, log, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The partitions it owns now, from its rebalance callbacks (eager protocol: each assignment is whole).
    fn assignment(&self) -> BTreeSet<i32> {
        let mut owned = BTreeSet::new();
        for line in self.log().lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(assigned) = event["assigned"].as_array() {
                owned = assigned
                    .iter()
                    .filter_map(|tp| tp[1].as_i64())
                    .map(|p| p as i32)
                    .collect();
            } else if event.get("revoked").is_some() {
                owned.clear();
            }
        }
        owned
    }

    /// The partitions it owns now under KIP-848, whose rebalance callbacks are incremental: what is assigned is
    /// added, what is revoked taken away.
    fn incremental_assignment(&self) -> BTreeSet<i32> {
        let mut owned = BTreeSet::new();
        for line in self.log().lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let partitions = |key: &str| -> Vec<i32> {
                event[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(|tp| tp[1].as_i64()).map(|p| p as i32).collect())
                    .unwrap_or_default()
            };
            owned.extend(partitions("assigned"));
            for p in partitions("revoked") {
                owned.remove(&p);
            }
        }
        owned
    }

    /// How many assignments it received (one per rebalance it took part in).
    fn assignments_received(&self) -> usize {
        self.log().lines().filter(|l| l.contains("\"assigned\"")).count()
    }

    /// SIGTERM: the consumer commits what it consumed and leaves the group (a static member stays in it).
    fn stop(mut self) {
        process::stop(&mut self.child, Duration::from_secs(30));
        assert!(
            self.log().contains("\"closed\""),
            "consumer did not close cleanly:\n{}",
            self.log()
        );
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        process::stop(&mut self.child, Duration::from_secs(5));
    }
}

/// Polls `done` every 250 ms for up to `timeout`; panics with `what` and `context()` when it never holds.
fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether the members' assignments split `partitions` between them, each owning `per_member`.
fn split_evenly(members: &[&Consumer], partitions: i32, per_member: usize) -> bool {
    split_evenly_by(members, partitions, per_member, Consumer::assignment)
}

fn split_evenly_by(
    members: &[&Consumer],
    partitions: i32,
    per_member: usize,
    owned_by: impl Fn(&Consumer) -> BTreeSet<i32>,
) -> bool {
    let owned: Vec<BTreeSet<i32>> = members.iter().map(|m| owned_by(m)).collect();
    let all: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    owned.iter().all(|o| o.len() == per_member)
        && owned.iter().map(BTreeSet::len).sum::<usize>() == partitions as usize
        && all == (0..partitions).collect()
}

fn logs(members: &[&Consumer]) -> String {
    members
        .iter()
        .enumerate()
        .map(|(i, m)| format!("--- consumer {i}:\n{}", m.log()))
        .collect()
}

fn committed_total(rows: &[GroupOffsetRow]) -> i64 {
    rows.iter().filter_map(|r| r.current_offset).sum()
}

#[test]
fn a_librdkafka_group_rebalances_commits_and_resumes_after_a_restart() {
    rebalances_commits_and_resumes_after_a_restart(GroupProtocol::Classic);
}

/// KIP-848 (`group.protocol=consumer`, librdkafka): the broker assigns (uniform), members revoke before a partition
/// moves, commits carry member epochs, and after a restart the group's offsets and type are still there; empty,
/// the group changes protocol when a classic consumer comes.
#[test]
fn a_kip848_librdkafka_group_rebalances_commits_and_resumes_after_a_restart() {
    let (broker, topic, group, _data) = rebalances_commits_and_resumes_after_a_restart(GroupProtocol::Consumer);
    produce(&broker.bootstrap(), &topic, 60);
    let committed = consume_and_commit(&broker.bootstrap(), &topic, &group, GroupProtocol::Classic, 60);
    assert_eq!(
        committed.values().sum::<i64>(),
        960,
        "a classic consumer resumed the group: {committed:?}"
    );
}

/// A confluent-kafka group of `protocol`: three members share six partitions as they come and go, commit
/// everything, and a consumer resumes from the commits after a restart. Returns the broker, topic and group.
fn rebalances_commits_and_resumes_after_a_restart(
    protocol: GroupProtocol,
) -> (Embedded, String, String, tempfile::TempDir) {
    let kip848 = matches!(protocol, GroupProtocol::Consumer);
    let data = tempfile::tempdir().expect("data dir");
    let mut broker = Embedded::start(Some(data.path().to_owned()));
    let topic = unique_name(&format!("groups-{}-topic", protocol.as_str()));
    let group = unique_name(&format!("groups-{}-group", protocol.as_str()));
    broker.create_topic(&topic, 6);
    produce(&broker.bootstrap(), &topic, 600);
    let start = |id: &str| Consumer::start_with(&broker.bootstrap(), &topic, &group, id, None, protocol);
    // The classic protocol (eager here) assigns whole; KIP-848's callbacks add and take away.
    let owned = if kip848 {
        Consumer::incremental_assignment
    } else {
        Consumer::assignment
    };
    let split = |members: &[&Consumer], per_member: usize| split_evenly_by(members, 6, per_member, owned);

    let a = start("member-a");
    let b = start("member-b");
    eventually(
        "two members sharing six partitions",
        Duration::from_secs(60),
        || split(&[&a, &b], 3),
        || logs(&[&a, &b]),
    );
    // A third member joins: everyone rebalances to two partitions each.
    let c = start("member-c");
    eventually(
        "a rebalance to three members",
        Duration::from_secs(60),
        || split(&[&a, &b, &c], 2),
        || logs(&[&a, &b, &c]),
    );
    let described = broker.groups(&["--describe", "--group", &group, "--members"]);
    for client in ["member-a", "member-b", "member-c"] {
        assert!(
            described.contains(client),
            "members listed with their client ids:\n{described}"
        );
    }
    assert!(
        described.contains("/127.0.0.1"),
        "members listed with their hosts:\n{described}"
    );
    let is_kip848_group = |broker: &Embedded| {
        let listed = broker.groups(&["--list", "--type"]);
        listed.lines().any(|l| l.contains(&group) && l.contains("Consumer"))
    };
    if kip848 {
        let state = broker.groups(&["--describe", "--group", &group, "--state"]);
        assert!(
            state.contains("uniform") && state.contains("Stable"),
            "the uniform assignor, and the group Stable:\n{state}"
        );
        assert!(is_kip848_group(&broker), "listed as a Consumer (KIP-848) group");
    }

    // One leaves: the other two take over its partitions.
    b.stop();
    eventually(
        "a rebalance after a member left",
        Duration::from_secs(60),
        || split(&[&a, &c], 3),
        || logs(&[&a, &c]),
    );
    eventually(
        "every record consumed and committed",
        Duration::from_secs(60),
        || {
            let rows = broker.describe_offsets(&group);
            rows.len() == 6 && committed_total(&rows) == 600 && rows.iter().all(|r| r.lag == Some(0))
        },
        || format!("{:?}\n{}", broker.describe_offsets(&group), logs(&[&a, &c])),
    );
    a.stop();
    c.stop();
    let state = broker.groups(&["--describe", "--group", &group, "--state"]);
    assert!(
        state.contains("Empty"),
        "the group is empty once everyone left:\n{state}"
    );

    // The committed offsets (and a KIP-848 group's type) survive a restart: a new consumer reads only what was
    // produced since.
    broker.restart();
    let rows = broker.describe_offsets(&group);
    assert_eq!(
        committed_total(&rows),
        600,
        "committed offsets after the restart: {rows:?}"
    );
    if kip848 {
        assert!(is_kip848_group(&broker), "still a Consumer group after the restart");
    }
    produce(&broker.bootstrap(), &topic, 300);
    let committed = consume_and_commit(&broker.bootstrap(), &topic, &group, protocol, 300);
    assert_eq!(
        committed.values().sum::<i64>(),
        900,
        "resumed from the committed offsets: {committed:?}"
    );
    (broker, topic, group, data)
}

/// The Java 4.4 consumer with `group.protocol=consumer` (which refuses to start against a broker without
/// KIP-848): it consumes, commits, and resumes from its commits; the group is listed as a Consumer group.
#[test]
fn the_java_consumer_with_the_consumer_protocol_consumes_commits_and_resumes() {
    let broker = Embedded::start(None);
    let topic = unique_name("kip848-java-topic");
    let group = unique_name("kip848-java-group");
    broker.create_topic(&topic, 4);
    produce(&broker.bootstrap(), &topic, 80);
    let consume = |count: &str| {
        broker.tool_ok(
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            &[
                "--topic",
                &topic,
                "--group",
                &group,
                "--from-beginning",
                "--max-messages",
                count,
                "--timeout-ms",
                "60000",
                "--consumer-property",
                "group.protocol=consumer",
            ],
        )
    };
    let out = consume("80");
    assert_eq!(out.lines().filter(|l| l.starts_with("value-")).count(), 80, "{out}");
    let rows = broker.describe_offsets(&group);
    assert_eq!(
        committed_total(&rows),
        80,
        "the Java consumer committed on close: {rows:?}"
    );
    let listed = broker.groups(&["--list", "--type"]);
    assert!(
        listed.lines().any(|l| l.contains(&group) && l.contains("Consumer")),
        "a Consumer (KIP-848) group:\n{listed}"
    );
    // It resumes from its committed offsets.
    produce(&broker.bootstrap(), &topic, 40);
    let out = consume("40");
    assert_eq!(out.lines().filter(|l| l.starts_with("value-")).count(), 40, "{out}");
    let rows = broker.describe_offsets(&group);
    assert_eq!(committed_total(&rows), 120, "{rows:?}");
}

#[test]
fn kafka_consumer_groups_lists_describes_resets_and_deletes_groups() {
    let broker = Embedded::start(None);
    let topic = unique_name("cli-topic");
    let group = unique_name("cli-group");
    broker.create_topic(&topic, 2);
    produce(&broker.bootstrap(), &topic, 100);
    let committed = consume_and_commit(&broker.bootstrap(), &topic, &group, GroupProtocol::Classic, 100);
    assert_eq!(committed.values().sum::<i64>(), 100);

    let listed = broker.groups(&["--list"]);
    assert!(
        listed.lines().any(|l| l.trim() == group),
        "--list shows the group:\n{listed}"
    );
    let rows = broker.describe_offsets(&group);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(committed_total(&rows), 100);
    assert!(
        rows.iter()
            .all(|r| r.lag == Some(0) && r.log_end_offset == r.current_offset),
        "{rows:?}"
    );

    // While a member is in the group, resets and deletion are refused.
    let member = GroupMember::join(&broker.bootstrap(), &topic, &group, GroupProtocol::Classic, None);
    let refused = broker.groups(&[
        "--reset-offsets",
        "--group",
        &group,
        "--topic",
        &topic,
        "--to-earliest",
        "--execute",
    ]);
    assert!(
        refused.contains("inactive"),
        "reset of an active group is refused:\n{refused}"
    );
    let out = broker.tool(GROUPS, &["--delete", "--group", &group]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.to_lowercase().contains("not empty"),
        "deleting an active group is refused:\n{text}"
    );
    let out = broker.tool(GROUPS, &["--delete-offsets", "--group", &group, "--topic", &topic]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.to_lowercase().contains("subscribed"),
        "deleting offsets of a topic the group consumes is refused:\n{text}"
    );
    member.leave();

    let reset = broker.groups(&[
        "--reset-offsets",
        "--group",
        &group,
        "--topic",
        &topic,
        "--to-earliest",
        "--execute",
    ]);
    assert!(reset.contains(&topic), "the reset prints its plan:\n{reset}");
    let rows = broker.describe_offsets(&group);
    assert!(
        rows.iter()
            .all(|r| r.current_offset == Some(0) && r.lag == r.log_end_offset),
        "{rows:?}"
    );
    broker.groups(&[
        "--reset-offsets",
        "--group",
        &group,
        "--topic",
        &format!("{topic}:1"),
        "--to-offset",
        "7",
        "--execute",
    ]);
    let rows = broker.describe_offsets(&group);
    let partition1 = rows.iter().find(|r| r.partition == 1).map(|r| r.current_offset);
    assert_eq!(partition1, Some(Some(7)), "{rows:?}");
    let out = broker.groups(&["--delete-offsets", "--group", &group, "--topic", &format!("{topic}:0")]);
    assert!(
        out.contains("Successful"),
        "offsets of an inactive group are deleted:\n{out}"
    );
    let rows = broker.describe_offsets(&group);
    let partitions: Vec<i32> = rows.iter().map(|r| r.partition).collect();
    assert_eq!(
        partitions,
        vec![1],
        "describe lists only committed partitions: {rows:?}"
    );

    let deleted = broker.groups(&["--delete", "--group", &group]);
    assert!(deleted.contains("successful"), "the empty group is deleted:\n{deleted}");
    let listed = broker.groups(&["--list"]);
    assert!(
        !listed.lines().any(|l| l.trim() == group),
        "deleted groups are not listed:\n{listed}"
    );
}

#[test]
fn a_static_member_restarting_within_its_session_takes_its_partitions_back_without_a_rebalance() {
    let broker = Embedded::start(None);
    let topic = unique_name("static-topic");
    let group = unique_name("static-group");
    broker.create_topic(&topic, 4);
    let a = Consumer::start_static(&broker.bootstrap(), &topic, &group, "static-a", Some("instance-a"));
    let b = Consumer::start_static(&broker.bootstrap(), &topic, &group, "static-b", Some("instance-b"));
    eventually(
        "two static members sharing four partitions",
        Duration::from_secs(60),
        || split_evenly(&[&a, &b], 4, 2),
        || logs(&[&a, &b]),
    );
    let before = b.assignment();
    let rebalances = a.assignments_received();
    // b restarts: a static member does not leave the group when it closes, and comes back under the same
    // group.instance.id with a new member id before its session (10 s) times out.
    b.stop();
    let b = Consumer::start_static(&broker.bootstrap(), &topic, &group, "static-b", Some("instance-b"));
    eventually(
        "the restarted static member owning its partitions again",
        Duration::from_secs(30),
        || b.assignment() == before,
        || logs(&[&a, &b]),
    );
    // Well past a heartbeat interval: a would have been told to rejoin by now if the group had rebalanced.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        a.assignments_received(),
        rebalances,
        "no rebalance:\n{}",
        logs(&[&a, &b])
    );
    let described = broker.groups(&["--describe", "--group", &group, "--members"]);
    assert_eq!(
        described.lines().filter(|l| l.contains(&group)).count(),
        2,
        "still two members:\n{described}"
    );
    a.stop();
    b.stop();
}

#[test]
fn the_java_console_consumer_joins_a_group_and_commits_on_close() {
    let broker = Embedded::start(None);
    let topic = unique_name("java-topic");
    let group = unique_name("java-group");
    broker.create_topic(&topic, 3);
    produce(&broker.bootstrap(), &topic, 90);
    let out = broker.tool_ok(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "90",
            "--timeout-ms",
            "60000",
        ],
    );
    assert_eq!(out.lines().filter(|l| l.starts_with("value-")).count(), 90, "{out}");
    let rows = broker.describe_offsets(&group);
    assert_eq!(
        committed_total(&rows),
        90,
        "the Java consumer committed on close: {rows:?}"
    );
    let state = broker.groups(&["--describe", "--group", &group, "--state"]);
    assert!(state.contains("Empty"), "it left the group:\n{state}");
}

/// Runs `confluent_admin.py ARGS` (confluent-kafka's AdminClient) against `bootstrap`; returns its JSON line.
fn confluent_admin(bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let python = clients_venv().join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/confluent_admin.py");
    let out = Command::new("timeout")
        .arg("120")
        .arg(&python)
        .arg(&script)
        .arg(args[0])
        .args(["--bootstrap", bootstrap])
        .args(&args[1..])
        .output()
        .expect("run confluent_admin.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "confluent_admin.py {args:?} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("confluent_admin.py printed {last:?}: {e}"))
}

#[test]
fn the_confluent_admin_client_lists_describes_and_alters_groups() {
    let broker = Embedded::start(None);
    let bootstrap = broker.bootstrap();
    let topic = unique_name("admin-topic");
    let group = unique_name("admin-group");
    broker.create_topic(&topic, 2);
    produce(&bootstrap, &topic, 20);
    consume_and_commit(&bootstrap, &topic, &group, GroupProtocol::Classic, 20);

    let member = GroupMember::join(&bootstrap, &topic, &group, GroupProtocol::Classic, None);
    let listed = confluent_admin(&bootstrap, &["list"]);
    let entry = listed["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["group_id"] == group.as_str()))
        .unwrap_or_else(|| panic!("the group is listed: {listed}"));
    assert_eq!(
        (entry["state"].as_str(), entry["simple"].as_bool()),
        (Some("STABLE"), Some(false))
    );

    let described = confluent_admin(&bootstrap, &["describe", "--group", &group]);
    assert_eq!(described["state"], "STABLE", "{described}");
    assert_eq!(described["assignor"], "range", "{described}");
    let members = described["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{described}");
    assert_eq!(members[0]["client_id"], "kgo-test-member");
    assert_eq!(members[0]["host"], "/127.0.0.1");
    let assignment = serde_json::json!([[topic.as_str(), 0], [topic.as_str(), 1]]);
    assert_eq!(
        members[0]["assignment"], assignment,
        "the assignment decoded from the stored bytes"
    );

    let offsets = confluent_admin(&bootstrap, &["offsets", "--group", &group]);
    let total: i64 = offsets["offsets"]
        .as_object()
        .map(|o| o.values().filter_map(|v| v.as_i64()).sum())
        .unwrap_or_default();
    assert_eq!(total, 20, "{offsets}");

    let alter = [
        "alter",
        "--group",
        &group,
        "--topic",
        &topic,
        "--partitions",
        "0,1",
        "--offset",
        "5",
    ];
    let refused = confluent_admin(&bootstrap, &alter);
    assert_eq!(
        refused["error"], "UNKNOWN_MEMBER_ID",
        "offsets of an active group cannot be altered: {refused}"
    );
    member.leave();
    let altered = confluent_admin(&bootstrap, &alter);
    assert!(altered.get("altered").is_some(), "{altered}");
    let offsets = confluent_admin(&bootstrap, &["offsets", "--group", &group]);
    let expected = serde_json::json!({ format!("{topic}:0"): 5, format!("{topic}:1"): 5 });
    assert_eq!(offsets["offsets"], expected);

    let deleted = confluent_admin(&bootstrap, &["delete", "--group", &group]);
    assert_eq!(deleted["deleted"], group.as_str(), "{deleted}");
    let described = confluent_admin(&bootstrap, &["describe", "--group", &group]);
    assert!(
        described.get("error").is_some() || described["state"] == "DEAD",
        "{described}"
    );
}

#[test]
fn a_member_that_dies_is_dropped_when_its_session_times_out() {
    let broker = Embedded::start(None);
    let topic = unique_name("session-topic");
    let group = unique_name("session-group");
    broker.create_topic(&topic, 4);
    let survivor = Consumer::start(&broker.bootstrap(), &topic, &group, "survivor");
    let mut doomed = Consumer::start(&broker.bootstrap(), &topic, &group, "doomed");
    eventually(
        "two members sharing four partitions",
        Duration::from_secs(60),
        || split_evenly(&[&survivor, &doomed], 4, 2),
        || logs(&[&survivor, &doomed]),
    );
    // kill -9: no LeaveGroup, no more heartbeats; the session timeout (10 s) removes it.
    let killed = Instant::now();
    doomed.child.kill().expect("kill the member");
    let _ = doomed.child.wait();
    eventually(
        "the survivor owning every partition",
        Duration::from_secs(40),
        || survivor.assignment().len() == 4,
        || logs(&[&survivor]),
    );
    assert!(
        killed.elapsed() >= Duration::from_secs(8),
        "not before the session timeout: {:?}",
        killed.elapsed()
    );
    survivor.stop();
}

#[test]
fn a_static_java_consumer_restarting_as_leader_skips_the_assignment_and_resumes() {
    let broker = Embedded::start(None);
    let topic = unique_name("java-static-topic");
    let group = unique_name("java-static-group");
    broker.create_topic(&topic, 1);
    produce(&broker.bootstrap(), &topic, 60);
    let run = || {
        broker.tool_ok(
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            &[
                "--topic",
                &topic,
                "--group",
                &group,
                "--from-beginning",
                "--max-messages",
                "30",
                "--timeout-ms",
                "60000",
                "--consumer-property",
                "group.instance.id=kgo-instance-7",
            ],
        )
    };
    let values = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("value-"))
            .map(str::to_owned)
            .collect()
    };
    let first = values(&run());
    assert_eq!(first.first().map(String::as_str), Some("value-0"), "{first:?}");
    assert_eq!(first.len(), 30);
    // A static member does not leave on close: the second run replaces it (JoinGroup v9 tells the returning
    // leader to skip the assignment) and gets its partition back at the committed offset.
    let second = values(&run());
    assert_eq!(second.first().map(String::as_str), Some("value-30"), "{second:?}");
    assert_eq!(second.len(), 30);
    let described = broker.groups(&["--describe", "--group", &group, "--members", "--verbose"]);
    assert!(
        described.contains("kgo-instance-7"),
        "still a static member until its session ends:\n{described}"
    );
}

/// The offsets `confluent_admin.py offsets` (OffsetFetch through librdkafka's AdminClient) reads for `group` on
/// the partitions 0..`partitions` of `topic`; librdkafka reports "no committed offset" (-1 on the wire) as -1001.
fn fetched_offsets(bootstrap: &str, group: &str, topic: &str, partitions: &str) -> serde_json::Value {
    confluent_admin(
        bootstrap,
        &[
            "offsets",
            "--group",
            group,
            "--topic",
            topic,
            "--partitions",
            partitions,
        ],
    )["offsets"]
        .clone()
}

/// DeleteTopics deletes the topic's committed offsets in every group, as Kafka does, and durably: a topic
/// re-created with the same name starts without them, before and after a restart on the same data dir; the
/// groups' offsets of other topics stay.
#[test]
fn deleting_a_topic_deletes_its_committed_offsets_in_every_group_durably() {
    use support::clients::commit_offsets;
    let dir = tempfile::tempdir().expect("data dir");
    let mut broker = Embedded::start(Some(dir.path().to_owned()));
    let bootstrap = broker.bootstrap();
    let (topic, other) = (unique_name("deleted"), unique_name("kept"));
    let (group, both) = (unique_name("deleted-group"), unique_name("both-group"));
    broker.create_topic(&topic, 2);
    broker.create_topic(&other, 1);
    commit_offsets(&bootstrap, &topic, &group, 2, 5).expect("commit");
    commit_offsets(&bootstrap, &topic, &both, 2, 7).expect("commit");
    commit_offsets(&bootstrap, &other, &both, 1, 3).expect("commit");
    let before = fetched_offsets(&bootstrap, &group, &topic, "0,1");
    assert_eq!(
        before,
        serde_json::json!({format!("{topic}:0"): 5, format!("{topic}:1"): 5})
    );

    broker.tool_ok("org.apache.kafka.tools.TopicCommand", &["--delete", "--topic", &topic]);
    broker.create_topic(&topic, 2);
    let none = serde_json::json!({format!("{topic}:0"): -1001, format!("{topic}:1"): -1001});
    let kept = serde_json::json!({format!("{other}:0"): 3});
    let check = |broker: &Embedded, when: &str| {
        let bootstrap = broker.bootstrap();
        for g in [&group, &both] {
            assert_eq!(fetched_offsets(&bootstrap, g, &topic, "0,1"), none, "{g} {when}");
        }
        assert_eq!(fetched_offsets(&bootstrap, &both, &other, "0"), kept, "{when}");
        // All of a group's offsets, as kafka-consumer-groups lists them: only the other topic's.
        let all = confluent_admin(&bootstrap, &["offsets", "--group", &both]);
        assert_eq!(all["offsets"], kept, "{when}");
        let rows = broker.describe_offsets(&both);
        assert!(
            !rows.is_empty() && rows.iter().all(|r| r.topic == other),
            "{when}: {rows:?}"
        );
    };
    check(&broker, "after the topic was re-created");
    broker.restart();
    check(&broker, "after a restart");

    // A commit to the re-created topic is its own, and survives the restart like any other.
    commit_offsets(&broker.bootstrap(), &topic, &group, 2, 1).expect("commit to the new topic");
    broker.restart();
    assert_eq!(
        fetched_offsets(&broker.bootstrap(), &group, &topic, "0,1"),
        serde_json::json!({format!("{topic}:0"): 1, format!("{topic}:1"): 1})
    );
}

/// Group configs (config resource GROUP) with Kafka's `kafka-configs --entity-type groups`: set, described,
/// refused outside Kafka's bounds with Kafka's message, and kept across a restart.
#[test]
fn kafka_configs_sets_describes_and_refuses_group_configs_durably() {
    const CONFIGS: &str = "org.apache.kafka.tools.ConfigCommand";
    let data = tempfile::tempdir().expect("data dir");
    let mut broker = Embedded::start(Some(data.path().to_owned()));
    let group = unique_name("configured-group");
    let entity = ["--entity-type", "groups", "--entity-name", group.as_str()];
    let with = |extra: &[&str]| -> Vec<String> { entity.iter().chain(extra).map(|s| (*s).to_owned()).collect() };
    let run_ok = |broker: &Embedded, args: Vec<String>| {
        broker.tool_ok(CONFIGS, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run_ok(
        &broker,
        with(&[
            "--alter",
            "--add-config",
            "consumer.session.timeout.ms=50000,consumer.heartbeat.interval.ms=6000",
        ]),
    );
    assert!(out.contains("Completed updating config"), "{out}");
    let refused = broker.tool(
        CONFIGS,
        &with(&["--alter", "--add-config", "consumer.session.timeout.ms=1000"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("group.consumer.min.session.timeout.ms"),
        "refused with Kafka's message: {stderr}"
    );
    let refused = broker.tool(
        CONFIGS,
        &with(&["--alter", "--add-config", "share.record.lock.duration.ms=30000"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!refused.status.success(), "share group configs are refused");

    broker.restart();
    let described = run_ok(&broker, with(&["--describe"]));
    for expected in [
        "consumer.session.timeout.ms=50000",
        "consumer.heartbeat.interval.ms=6000",
    ] {
        assert!(described.contains(expected), "{expected} after a restart:\n{described}");
    }
    run_ok(
        &broker,
        with(&["--alter", "--delete-config", "consumer.heartbeat.interval.ms"]),
    );
    let described = run_ok(&broker, with(&["--describe"]));
    assert!(
        !described.contains("consumer.heartbeat.interval.ms")
            && described.contains("consumer.session.timeout.ms=50000"),
        "{described}"
    );
}
