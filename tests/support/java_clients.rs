//! Kafka's own Java clients (kafka-clients and Kafka Streams, from the provisioned Kafka jars) driven from tests:
//! small programs in `tests/clients/java/`, compiled with `javac` once per test binary. Each prints JSON lines.
//!
//! - `TxnProducer`: a transactional `KafkaProducer` (commit, abort, fencing by a second producer, a held-open
//!   transaction).
//! - `ReadTopic`: a `KafkaConsumer` reading a topic to its end with an isolation level.
//! - `EosStreams`: a Kafka Streams app with `processing.guarantee=exactly_once_v2` (optionally a streams group,
//!   `group.protocol=streams`, KIP-1071).

use super::kafka::TEST_JVM_OPTS;
use super::process::{fixture_dir, spawn_tied, stop, tail, wait_until};
use super::tools::{kafka_home, system_tool};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

/// The compiled classes of `tests/clients/java/*.java` (compiled on first use; panics if `javac` is missing or
/// the sources do not compile).
pub fn classes() -> &'static Path {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let javac = system_tool(
            "javac",
            "install a Java 17+ JDK (Debian: apt-get install openjdk-17-jdk-headless)",
        );
        let sources_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/java");
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&sources_dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", sources_dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "java"))
            .collect();
        sources.sort();
        // One directory per test process: concurrent test binaries never see each other's half-written classes.
        // Cargo sets CARGO_TARGET_TMPDIR for tests and benches, not for the dev-env example (which includes these
        // fixtures too).
        let tmp = option_env!("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp"));
        let out = tmp.join(format!("java-clients-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).expect("create the classes dir");
        let compiled = Command::new(javac)
            .arg("-cp")
            .arg(format!("{}/libs/*", kafka_home().display()))
            .arg("-d")
            .arg(&out)
            .args(&sources)
            .output()
            .expect("run javac");
        assert!(
            compiled.status.success(),
            "javac of {} failed ({}):\n{}{}",
            sources_dir.display(),
            compiled.status,
            String::from_utf8_lossy(&compiled.stdout),
            String::from_utf8_lossy(&compiled.stderr)
        );
        out
    })
}

/// `java` with the compiled clients and Kafka's jars on the classpath, running `main` with `args`.
fn java_command(main: &str, args: &[&str]) -> Command {
    let java = system_tool("java", "install a Java 17+ runtime");
    let home = kafka_home();
    let mut cmd = Command::new(java);
    cmd.args(TEST_JVM_OPTS.split_whitespace())
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            home.join("tools-log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}:{}/libs/*", classes().display(), home.display()))
        .arg(main)
        .args(args);
    cmd
}

/// Every JSON line of `stdout` (other lines are skipped).
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Runs `main` to its end (killed after `timeout`); returns its JSON lines, or panics with its output unless it
/// exited 0.
pub fn run_ok(main: &str, args: &[&str], timeout: Duration) -> Vec<serde_json::Value> {
    let mut cmd = Command::new("timeout");
    cmd.arg(timeout.as_secs().to_string());
    let inner = java_command(main, args);
    cmd.arg(inner.get_program()).args(inner.get_args());
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run java {main}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "java {main} {args:?} failed ({}; 124 is the {timeout:?} timeout):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&stdout)
}

/// Writes `count` records (`key-<i>` / `<prefix>-<i>`) to partition 0 of `topic` in one transaction of a Java
/// transactional producer, then commits it (or aborts it with `abort`).
pub fn txn_produce(bootstrap: &str, topic: &str, transactional_id: &str, count: usize, prefix: &str, abort: bool) {
    let mode = if abort { "abort" } else { "commit" };
    let count_text = count.to_string();
    let lines = run_ok(
        "TxnProducer",
        &[mode, bootstrap, topic, transactional_id, &count_text, prefix],
        Duration::from_secs(120),
    );
    let outcome = if abort { "aborted" } else { "committed" };
    assert!(
        lines.iter().any(|l| l[outcome] == true && l["produced"] == count),
        "Java TxnProducer {mode} printed {lines:?}"
    );
}

/// The fencing scenario of `TxnProducer fence`: producer A opens a transaction with `count` records
/// (`<prefix>-a-<i>`), producer B with the same transactional.id initializes, A tries (with `late_send` a send
/// and) a commit, then B commits `count` records (`<prefix>-b-<i>`). Returns its JSON lines (`a_open`, `b_initialized`, `a_send`,
/// `a_commit`, `b_committed`).
pub fn fencing(
    bootstrap: &str,
    topic: &str,
    transactional_id: &str,
    count: usize,
    prefix: &str,
    late_send: bool,
) -> Vec<serde_json::Value> {
    let count_text = count.to_string();
    let mode = if late_send { "fence-send" } else { "fence" };
    run_ok(
        "TxnProducer",
        &[mode, bootstrap, topic, transactional_id, &count_text, prefix],
        Duration::from_secs(150),
    )
}

/// What a Java consumer with `isolation` (`read_committed` or `read_uncommitted`) reads of `topic`, from the
/// beginning to the end (for read_committed: the last stable offset), as values in offset order per partition.
pub fn read_values(bootstrap: &str, topic: &str, isolation: &str) -> Vec<String> {
    read_records(bootstrap, topic, isolation)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// Like `read_values`, as (key, value) pairs.
pub fn read_records(bootstrap: &str, topic: &str, isolation: &str) -> Vec<(String, String)> {
    let lines = run_ok(
        "ReadTopic",
        &[bootstrap, topic, isolation, "60"],
        Duration::from_secs(120),
    );
    let last = lines.last().unwrap_or_else(|| panic!("ReadTopic printed nothing"));
    let keys: Vec<Option<String>> = serde_json::from_value(last["keys"].clone()).expect("keys");
    let values: Vec<Option<String>> = serde_json::from_value(last["values"].clone()).expect("values");
    keys.into_iter()
        .zip(values)
        .map(|(k, v)| (k.unwrap_or_default(), v.unwrap_or_default()))
        .collect()
}

/// A long-running Java client (tied to the test binary, output in a log file); SIGTERM, then SIGKILL after
/// 20 s, when dropped.
pub struct JavaProcess {
    what: String,
    child: Child,
    log: PathBuf,
    /// The first JSON line it printed that matched its readiness check.
    pub ready_line: serde_json::Value,
}

impl JavaProcess {
    /// Starts `main` with `args` and waits up to `timeout` for a JSON line for which `ready` holds.
    pub fn start(
        what: &str,
        main: &str,
        args: &[&str],
        timeout: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> JavaProcess {
        let log = fixture_dir("java").join("client.log");
        let mut child = spawn_tied(java_command(main, args), &log);
        let mut ready_line = None;
        wait_until(what, &mut child, &log, timeout, || {
            ready_line = json_lines(&std::fs::read_to_string(&log).unwrap_or_default())
                .into_iter()
                .find(|l| ready(l));
            ready_line.is_some()
        });
        JavaProcess {
            what: what.to_owned(),
            child,
            log,
            ready_line: ready_line.unwrap_or_default(),
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        json_lines(&self.output())
    }

    pub fn tail(&self, lines: usize) -> String {
        format!("{} ({}):\n{}", self.what, self.log.display(), tail(&self.log, lines))
    }

    /// Waits up to `timeout` for it to exit by itself; panics with its output if it does not or exits non-zero.
    pub fn wait_success(mut self, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "{} exited with {status}: {}",
                    self.what,
                    self.tail(40)
                );
                return self.json_lines();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {timeout:?}: {}",
                self.what,
                self.tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for JavaProcess {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(20));
    }
}

/// A transaction held open by `TxnProducer hold`: `count` records (`<prefix>-<i>`) written to partition 0 of
/// `topic`, not committed. `release` commits it.
pub struct OpenTransaction {
    process: JavaProcess,
    release_file: PathBuf,
}

impl OpenTransaction {
    pub fn start(bootstrap: &str, topic: &str, transactional_id: &str, count: usize, prefix: &str) -> OpenTransaction {
        let release_file = fixture_dir("txn-release").join("release");
        let count_text = count.to_string();
        let process = JavaProcess::start(
            "a Java producer holding a transaction open",
            "TxnProducer",
            &[
                "hold",
                bootstrap,
                topic,
                transactional_id,
                &count_text,
                prefix,
                release_file.to_str().expect("utf-8 path"),
            ],
            Duration::from_secs(90),
            |l| l["open"] == true,
        );
        OpenTransaction { process, release_file }
    }

    /// Commits the transaction and waits for the producer to exit.
    pub fn commit(self) {
        std::fs::write(&self.release_file, b"").expect("write the release file");
        let lines = self.process.wait_success(Duration::from_secs(90));
        assert!(
            lines.iter().any(|l| l["committed"] == true),
            "the held transaction was not committed: {lines:?}"
        );
    }
}

/// The `EosStreams` Kafka Streams app (exactly_once_v2): `input` -> value `out-<value>` -> `output`, and with
/// `counts` a per-key count into it. Returns once it reports RUNNING.
pub fn eos_streams(
    bootstrap: &str,
    application_id: &str,
    input: &str,
    output: &str,
    counts: Option<&str>,
) -> JavaProcess {
    let extra: Vec<&str> = counts.into_iter().collect();
    eos_streams_with(bootstrap, application_id, input, output, &extra)
}

/// `EosStreams` with more arguments after the state dir: a counts topic, `repartition`, and `KEY=VALUE`
/// StreamsConfig properties such as `group.protocol=streams` (KIP-1071). Returns once it reports RUNNING.
pub fn eos_streams_with(
    bootstrap: &str,
    application_id: &str,
    input: &str,
    output: &str,
    extra: &[&str],
) -> JavaProcess {
    let state_dir = fixture_dir("streams-state");
    let mut args = vec![
        bootstrap,
        application_id,
        input,
        output,
        state_dir.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    JavaProcess::start(
        "Kafka Streams exactly_once_v2 app",
        "EosStreams",
        &args,
        Duration::from_secs(120),
        |l| l["state"] == "RUNNING",
    )
}

/// `EosStreams` with `extra` arguments, started without waiting for RUNNING: returns at the first JSON line
/// for which `ready` holds (e.g. an `uncaught` exception), within `timeout`.
pub fn eos_streams_until(
    bootstrap: &str,
    application_id: &str,
    input: &str,
    output: &str,
    extra: &[&str],
    timeout: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> JavaProcess {
    let state_dir = fixture_dir("streams-state");
    let mut args = vec![
        bootstrap,
        application_id,
        input,
        output,
        state_dir.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    JavaProcess::start("Kafka Streams app", "EosStreams", &args, timeout, ready)
}
