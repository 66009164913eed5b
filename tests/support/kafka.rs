//! A real Apache Kafka broker (KRaft, one combined broker+controller node) from Maven Central jars on the
//! machine's Java, plus Kafka's own CLI tools from the same classpath.

use super::process::{fixture_dir, free_port, spawn_tied, stop, tail, wait_until};
use super::tools::{kafka_home, system_tool};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The broker JVM's options in tests: C1 only, for a fast start.
pub const TEST_JVM_OPTS: &str = "-Xmx512m -Xms128m -XX:+UseG1GC -XX:TieredStopAtLevel=1";

pub struct ApacheKafka {
    dir: PathBuf,
    port: u16,
    child: Mutex<Child>,
    /// Keep `dir` when dropped (set for shared instances, which are never dropped anyway).
    pub(super) keep_dir: bool,
}

/// One broker listener, `<name>://127.0.0.1:<port>`, speaking security protocol `protocol` (`PLAINTEXT`,
/// `SSL`, `SASL_SSL`, `SASL_PLAINTEXT`). Its settings go into `listener.name.<name lowercased>.*` properties.
#[derive(Clone, Debug)]
pub struct Listener {
    pub name: &'static str,
    pub protocol: &'static str,
    pub port: u16,
}

impl ApacheKafka {
    /// One broker for the whole test binary, started on first use and killed when the binary exits.
    pub fn shared() -> &'static ApacheKafka {
        static SHARED: OnceLock<ApacheKafka> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut kafka = ApacheKafka::start();
            kafka.keep_dir = true; // statics are never dropped; the next run's fixture_dir() cleans it up
            kafka
        })
    }

    /// Formats a fresh data dir and starts a broker on free ports; waits until it has started.
    pub fn start() -> ApacheKafka {
        ApacheKafka::start_with(&[])
    }

    /// Like `start`, with extra `server.properties` lines (e.g. short offset retention).
    pub fn start_with(extra_properties: &[&str]) -> ApacheKafka {
        ApacheKafka::start_with_jvm_opts(TEST_JVM_OPTS, extra_properties)
    }

    /// Like `start_with`, with the broker JVM's options (benchmarks run it as in production).
    pub fn start_with_jvm_opts(jvm_opts: &str, extra_properties: &[&str]) -> ApacheKafka {
        let listeners = [Listener {
            name: "PLAINTEXT",
            protocol: "PLAINTEXT",
            port: free_port(),
        }];
        ApacheKafka::launch(
            "Apache Kafka",
            fixture_dir("kafka"),
            &listeners,
            jvm_opts,
            extra_properties,
            &[],
        )
    }

    /// The one start path of every broker fixture: writes `server.properties` in `dir` (one combined
    /// broker+controller node; `listeners` plus a CONTROLLER listener on a free port; then `extra_properties`,
    /// which win over the defaults here), formats the data dir with `StorageTool format --standalone` and
    /// `format_args` (e.g. `--add-scram ...`), starts the broker and waits for `Kafka Server started`.
    ///
    /// The first listener must be PLAINTEXT: it carries inter-broker traffic, and `bootstrap()` and the CLI
    /// tools (`tool()`) use it.
    pub(super) fn launch<S: AsRef<str>>(
        what: &str,
        dir: PathBuf,
        listeners: &[Listener],
        jvm_opts: &str,
        extra_properties: &[S],
        format_args: &[S],
    ) -> ApacheKafka {
        let first = listeners.first().expect("a broker needs at least one listener");
        assert_eq!(
            first.protocol, "PLAINTEXT",
            "the first listener carries inter-broker traffic and the CLI tools: it must be PLAINTEXT"
        );
        let java = system_tool(
            "java",
            "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
        );
        let home = kafka_home();
        let controller_port = free_port();
        let props = dir.join("server.properties");
        let endpoints = |with_controller: bool| {
            let mut list: Vec<String> = listeners
                .iter()
                .map(|l| format!("{}://127.0.0.1:{}", l.name, l.port))
                .collect();
            if with_controller {
                list.push(format!("CONTROLLER://127.0.0.1:{controller_port}"));
            }
            list.join(",")
        };
        let protocol_map = listeners
            .iter()
            .map(|l| format!("{}:{}", l.name, l.protocol))
            .chain(["CONTROLLER:PLAINTEXT".to_owned()])
            .collect::<Vec<_>>()
            .join(",");
        let mut text = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n\
             listeners={}\n\
             advertised.listeners={}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name={}\n\
             listener.security.protocol.map={protocol_map}\n\
             log.dirs={}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=3\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n\
             # Tests produce records with old timestamps (2023): without this the time-based retention check\n\
             # (every 5 minutes) deletes them from a long-running shared broker.\n\
             log.retention.ms=-1\n",
            endpoints(true),
            endpoints(false),
            first.name,
            dir.join("data").display()
        );
        for line in extra_properties {
            text.push_str(line.as_ref());
            text.push('\n');
        }
        std::fs::write(&props, text).expect("write server.properties");

        let classpath = format!("{}/libs/*", home.display());
        let cluster_id = random_cluster_id();
        let format = Command::new(&java)
            .arg("-Xmx256m")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                home.join("tools-log4j2.properties").display()
            ))
            .args([
                "-cp",
                &classpath,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
            ])
            .arg(&cluster_id)
            .arg("-c")
            .arg(&props)
            .args(format_args.iter().map(AsRef::as_ref))
            .output()
            .expect("run kafka StorageTool");
        assert!(
            format.status.success(),
            "kafka StorageTool format failed for {what} ({}): {}{}",
            props.display(),
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );

        let log = dir.join("kafka.log");
        let mut cmd = Command::new(&java);
        cmd.args(jvm_opts.split_whitespace())
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                home.join("log4j2.properties").display()
            ))
            .args(["-cp", &classpath, "kafka.Kafka"])
            .arg(&props);
        let mut child = spawn_tied(cmd, &log);
        wait_until(what, &mut child, &log, Duration::from_secs(90), || {
            std::fs::read_to_string(&log)
                .map(|s| s.contains("Kafka Server started"))
                .unwrap_or(false)
        });
        ApacheKafka {
            dir,
            port: first.port,
            child: Mutex::new(child),
            keep_dir: false,
        }
    }

    /// Kills the broker with SIGKILL and starts it again on the same data and ports (with `jvm_opts`); returns
    /// once it has started again (log recovery included).
    pub fn kill9_and_restart(&self, jvm_opts: &str) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let home = kafka_home();
        let java = system_tool("java", "install a Java 17+ runtime");
        let log = self.dir.join("kafka.log");
        let started_before = std::fs::read_to_string(&log)
            .map(|s| s.matches("Kafka Server started").count())
            .unwrap_or(0);
        let mut cmd = Command::new(&java);
        cmd.args(jvm_opts.split_whitespace())
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                home.join("log4j2.properties").display()
            ))
            .args(["-cp", &format!("{}/libs/*", home.display()), "kafka.Kafka"])
            .arg(self.dir.join("server.properties"));
        *child = spawn_tied(cmd, &log);
        wait_until(
            "Apache Kafka (restarted)",
            &mut child,
            &log,
            Duration::from_secs(600),
            || {
                std::fs::read_to_string(&log)
                    .map(|s| s.matches("Kafka Server started").count() > started_before)
                    .unwrap_or(false)
            },
        );
    }

    /// `127.0.0.1:<port>` of the PLAINTEXT listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs one of Kafka's CLI tools (`org.apache.kafka.tools.TopicCommand`, …) with `--bootstrap-server`
    /// added; WARN logs go to stderr so stdout stays parseable.
    pub fn tool(&self, class: &str, args: &[&str]) -> Output {
        kafka_tool(&self.bootstrap(), class, args)
    }

    /// Like `tool`, and panics with the tool's output unless it exited 0; returns stdout.
    pub fn tool_ok(&self, class: &str, args: &[&str]) -> String {
        let out = self.tool(class, args);
        assert!(
            out.status.success(),
            "{class} {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a topic with `kafka-topics --create`.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        create_topic_with_cli(&self.bootstrap(), topic, partitions);
    }

    /// `kafka-consumer-groups --describe --group G --offsets` parsed into rows.
    pub fn describe_group_offsets(&self, group: &str) -> Vec<GroupOffsetRow> {
        describe_group_offsets_with_cli(&self.bootstrap(), group)
    }

    /// The last lines of the broker's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.join("kafka.log"), lines)
    }
}

impl Drop for ApacheKafka {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            stop(&mut child, Duration::from_secs(15));
        }
        if std::thread::panicking() || self.keep_dir {
            eprintln!("Apache Kafka logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Creates a topic on the broker at `bootstrap` with `kafka-topics --create`.
pub fn create_topic_with_cli(bootstrap: &str, topic: &str, partitions: u32) {
    kafka_tool_ok(
        bootstrap,
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--create",
            "--topic",
            topic,
            "--partitions",
            &partitions.to_string(),
            "--replication-factor",
            "1",
        ],
    );
}

/// `kafka-consumer-groups --describe --group G --offsets` against the broker at `bootstrap`, parsed.
/// A group's committed offsets through our admin client, by (topic, partition).
pub async fn committed_by_partition(
    client: &kafka_group_operator::kafka::KafkaClient,
    group: &str,
) -> BTreeMap<(String, i32), i64> {
    client
        .group_offsets(group)
        .await
        .expect("committed offsets")
        .into_iter()
        .map(|(tp, c)| ((tp.topic.to_string(), tp.partition), c.offset))
        .collect()
}

pub fn describe_group_offsets_with_cli(bootstrap: &str, group: &str) -> Vec<GroupOffsetRow> {
    let out = kafka_tool_ok(
        bootstrap,
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &["--describe", "--group", group, "--offsets"],
    );
    parse_group_offsets(&out)
}

/// `kafka-consumer-groups --reset-offsets --group G <selection and target> --dry-run` against the broker at
/// `bootstrap`: what the tool would commit, as (topic, partition) -> offset. `args` select the partitions and
/// the target, e.g. `["--topic", t, "--to-earliest"]` or `["--from-file", csv]`.
pub fn reset_dry_run_with_cli(bootstrap: &str, group: &str, args: &[&str]) -> BTreeMap<(String, i32), i64> {
    let mut all = vec!["--reset-offsets", "--group", group, "--dry-run"];
    all.extend_from_slice(args);
    let out = kafka_tool_ok(
        bootstrap,
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &all,
    );
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

/// Runs one of Kafka's CLI tools from the harness classpath against any broker at `bootstrap`, with
/// `--bootstrap-server` added; WARN logs go to stderr so stdout stays parseable.
pub fn kafka_tool(bootstrap: &str, class: &str, args: &[&str]) -> Output {
    let home = kafka_home();
    let java = system_tool("java", "install a Java 17+ runtime");
    Command::new("timeout")
        .arg("120")
        .arg(java)
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            home.join("tools-log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}/libs/*", home.display()))
        .arg(class)
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("run a Kafka CLI tool")
}

/// `kafka_tool`, panicking with the tool's output unless it exited 0; returns stdout.
pub fn kafka_tool_ok(bootstrap: &str, class: &str, args: &[&str]) -> String {
    let out = kafka_tool(bootstrap, class, args);
    assert!(
        out.status.success(),
        "{class} {args:?} against {bootstrap} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One row of `kafka-consumer-groups --describe --offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsetRow {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// `None` where the tool prints `-` (no committed offset).
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub lag: Option<i64>,
}

/// Parses the describe table; column widths differ between Kafka versions, so it splits on whitespace.
pub fn parse_group_offsets(stdout: &str) -> Vec<GroupOffsetRow> {
    let num = |s: &str| s.parse::<i64>().ok();
    stdout
        .lines()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        .filter(|cols| cols.len() >= 6 && cols[0] != "GROUP")
        .filter_map(|cols| {
            Some(GroupOffsetRow {
                group: cols[0].to_owned(),
                topic: cols[1].to_owned(),
                partition: cols[2].parse().ok()?,
                current_offset: num(cols[3]),
                log_end_offset: num(cols[4]),
                lag: num(cols[5]),
            })
        })
        .collect()
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, what `StorageTool random-uuid`
/// prints, without starting a JVM for it. Like Kafka's `Uuid.randomUuid`, it never starts with `-` (that would
/// read as a command-line flag).
fn random_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    loop {
        let mut bytes = [0u8; 18]; // 16 random bytes + 2 zero bytes so that chunks of 3 come out even
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes[..16]))
            .expect("read /dev/urandom");
        let mut id: String = bytes
            .chunks(3)
            .flat_map(|c| {
                let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
                (0..4).map(move |i| ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char)
            })
            .collect();
        id.truncate(22);
        if !id.starts_with('-') {
            return id;
        }
    }
}
