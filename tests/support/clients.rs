//! Kafka clients no one here wrote, driven from tests: confluent-kafka (librdkafka) through
//! `confluent_client.py` in the provisioned virtualenv, and kcat from Debian.

use super::secure_kafka::SaslCredentials;
use super::tools::{clients_venv, system_tool};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Group protocol a consumer uses: `classic` (JoinGroup/SyncGroup) or `consumer` (KIP-848).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupProtocol {
    Classic,
    Consumer,
}

impl GroupProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// Kafka's `security.protocol` of a client connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// How a client connects; the default is PLAINTEXT. `SecureKafka::sasl_ssl_client` and `mtls_client` build
/// the usual ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSecurity {
    pub protocol: SecurityProtocol,
    /// SASL mechanism, user name and password (for the SASL_* protocols).
    pub sasl: Option<SaslCredentials>,
    /// CA certificate (PEM) to verify the broker with; the system's CAs if `None`.
    pub ca: Option<PathBuf>,
    /// Client certificate and its key (PEM) for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A confluent_client.py run that failed: how it exited and what it printed.
#[derive(Debug)]
pub struct ClientFailure {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for ClientFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exited with {}:\n{}{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs `confluent_client.py ARGS` with `security` (the SASL password goes through the environment variable
/// `KGO_SASL_PASSWORD`, not the command line), under a 150 s `timeout`. Returns the JSON line it printed last,
/// or how it failed; the script exits non-zero on its own `--timeout` (default 60 s) and at once when
/// librdkafka reports an authentication or TLS error.
pub fn confluent_client(args: &[&str], security: &ClientSecurity) -> Result<serde_json::Value, ClientFailure> {
    let python = clients_venv().join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/confluent_client.py");
    let mut cmd = Command::new("timeout");
    cmd.arg("150")
        .arg(&python)
        .arg(&script)
        .args(args)
        .args(["--security-protocol", security.protocol.as_str()])
        .env_remove("KGO_SASL_PASSWORD");
    if let Some(sasl) = &security.sasl {
        cmd.args(["--sasl-mechanism", sasl.mechanism.as_str()])
            .args(["--sasl-username", &sasl.username])
            .env("KGO_SASL_PASSWORD", &sasl.password);
    }
    for (flag, path) in [
        ("--ca", &security.ca),
        ("--cert", &security.cert),
        ("--key", &security.key),
    ] {
        if let Some(path) = path {
            cmd.arg(flag).arg(path);
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(ClientFailure {
            status: out.status,
            stdout,
            stderr,
        });
    }
    let last = stdout.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(last).unwrap_or_else(|e| panic!("confluent_client.py printed {last:?}: {e}")))
}

fn confluent(args: &[&str], security: &ClientSecurity) -> serde_json::Value {
    confluent_client(args, security)
        .unwrap_or_else(|failure| panic!("confluent-kafka {args:?} with {security:?} failed: {failure}"))
}

/// Produces `count` records (`key-<i>` / `value-<i>`) with acks=all and waits for every delivery.
pub fn produce(bootstrap: &str, topic: &str, count: usize) {
    produce_with(bootstrap, &ClientSecurity::default(), topic, count);
}

/// `produce` over a connection secured with `security`.
pub fn produce_with(bootstrap: &str, security: &ClientSecurity, topic: &str, count: usize) {
    let out = confluent(
        &[
            "produce",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--count",
            &count.to_string(),
        ],
        security,
    );
    assert_eq!(out["produced"], count, "confluent-kafka produced {out}");
}

/// Consumes `count` records in `group`, commits synchronously and leaves. Returns the committed offsets
/// as `"topic:partition" -> offset`.
pub fn consume_and_commit(
    bootstrap: &str,
    topic: &str,
    group: &str,
    protocol: GroupProtocol,
    count: usize,
) -> std::collections::BTreeMap<String, i64> {
    consume_and_commit_with(bootstrap, &ClientSecurity::default(), topic, group, protocol, count)
}

/// `consume_and_commit` over a connection secured with `security`.
pub fn consume_and_commit_with(
    bootstrap: &str,
    security: &ClientSecurity,
    topic: &str,
    group: &str,
    protocol: GroupProtocol,
    count: usize,
) -> std::collections::BTreeMap<String, i64> {
    let out = confluent(
        &[
            "consume",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--protocol",
            protocol.as_str(),
            "--count",
            &count.to_string(),
        ],
        security,
    );
    assert_eq!(out["consumed"], count, "confluent-kafka consumed {out}");
    serde_json::from_value(out["committed"].clone()).expect("committed offsets map")
}

/// Commits `offset` for `topic`-`partition` in `group` inside a transaction of a confluent-kafka
/// transactional producer (`send_offsets_to_transaction`), then commits the transaction, or aborts it.
pub fn transactional_commit(bootstrap: &str, topic: &str, partition: i32, group: &str, offset: i64, abort: bool) {
    let transactional_id = format!("{group}-txn");
    let (partition, offset) = (partition.to_string(), offset.to_string());
    let mut args = vec![
        "txn-commit",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partition",
        &partition,
        "--group",
        group,
        "--offset",
        &offset,
        "--transactional-id",
        &transactional_id,
    ];
    if abort {
        args.push("--abort");
    }
    let out = confluent(&args, &ClientSecurity::default());
    let outcome = if abort { "aborted" } else { "committed" };
    assert_eq!(out[outcome], true, "confluent-kafka txn-commit printed {out}");
}

/// Like `transactional_commit`, but the transaction stays open (its offset commit pending, and `records` more
/// records of `topic`-`partition` in it, uncommitted) until the returned process is stopped: SIGTERM then
/// commits it, or aborts it with `abort`.
pub fn open_transactional_commit(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    group: &str,
    offset: i64,
    records: usize,
    abort: bool,
) -> ScriptProcess {
    let transactional_id = format!("{group}-txn");
    let (partition, offset, records) = (partition.to_string(), offset.to_string(), records.to_string());
    let mut args = vec![
        "txn-commit",
        "--hold",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partition",
        &partition,
        "--group",
        group,
        "--offset",
        &offset,
        "--count",
        &records,
        "--transactional-id",
        &transactional_id,
    ];
    if abort {
        args.push("--abort");
    }
    ScriptProcess::start(
        "an open transactional offset commit",
        &args,
        "{\"open\"",
        std::time::Duration::from_secs(60),
    )
}

/// Writes `count` records to partition 0 of `topic` in one transaction of a confluent-kafka transactional
/// producer (`transactional.id` = `transactional_id`), then commits the transaction, or aborts it.
pub fn transactional_produce(bootstrap: &str, topic: &str, transactional_id: &str, count: usize, abort: bool) {
    let count_text = count.to_string();
    let mut args = vec![
        "txn-produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--count",
        &count_text,
        "--transactional-id",
        transactional_id,
    ];
    if abort {
        args.push("--abort");
    }
    let out = confluent(&args, &ClientSecurity::default());
    let outcome = if abort { "aborted" } else { "committed" };
    assert_eq!(
        (&out["produced"], &out[outcome]),
        (&serde_json::json!(count), &serde_json::json!(true)),
        "confluent-kafka txn-produce printed {out}"
    );
}

/// Consumes `count` records of `topic` in `group` as a `read_committed` consumer (classic protocol), commits
/// synchronously and leaves; returns the committed offsets as `"topic:partition" -> offset`.
pub fn consume_committed_and_commit(
    bootstrap: &str,
    topic: &str,
    group: &str,
    count: usize,
) -> std::collections::BTreeMap<String, i64> {
    let out = confluent(
        &[
            "consume",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--isolation",
            "read_committed",
            "--count",
            &count.to_string(),
        ],
        &ClientSecurity::default(),
    );
    assert_eq!(out["consumed"], count, "confluent-kafka consumed {out}");
    serde_json::from_value(out["committed"].clone()).expect("committed offsets map")
}

/// Runs kcat (librdkafka 2.0 from Debian; classic groups only) with `-b bootstrap`; returns stdout.
pub fn kcat(bootstrap: &str, args: &[&str]) -> String {
    clients_venv(); // provisions kcat too
    let kcat = system_tool(
        "kcat",
        "run `bash scripts/provision-clients.sh` (Debian: apt-get install kcat)",
    );
    let out = Command::new("timeout")
        .arg("60")
        .arg(kcat)
        .args(["-b", bootstrap])
        .args(args)
        .output()
        .expect("run kcat");
    assert!(
        out.status.success(),
        "kcat {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Produces `count` records into one partition with timestamps `start_ms + i * step_ms`.
pub fn produce_with_timestamps(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    count: usize,
    start_ms: i64,
    step_ms: i64,
) {
    produce_timestamped(bootstrap, topic, partition, count, start_ms, step_ms, 0);
}

/// `produce_with_timestamps` with values padded to `value_bytes`, produced in large batches (batch.size 1 MiB):
/// batches far larger than a producer's default 16 KiB.
pub fn produce_large_batches(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    count: usize,
    start_ms: i64,
    value_bytes: usize,
) {
    produce_timestamped(bootstrap, topic, partition, count, start_ms, 1000, value_bytes);
}

fn produce_timestamped(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    count: usize,
    start_ms: i64,
    step_ms: i64,
    value_bytes: usize,
) {
    let out = confluent_client(
        &[
            "produce",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--count",
            &count.to_string(),
            "--partition",
            &partition.to_string(),
            "--timestamp-start",
            &start_ms.to_string(),
            "--timestamp-step",
            &step_ms.to_string(),
            "--value-bytes",
            &value_bytes.to_string(),
        ],
        &ClientSecurity::default(),
    )
    .unwrap_or_else(|f| panic!("confluent-kafka produce failed: {f}"));
    assert_eq!(out["produced"], count, "confluent-kafka produced {out}");
}

/// A live confluent-kafka consumer that stays in its group until dropped (then it leaves cleanly).
pub struct GroupMember {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    /// Partitions it owned when it became ready, as `(topic, partition)`.
    pub assignment: Vec<(String, i32)>,
}

impl GroupMember {
    /// Joins `group` on `topic` and waits until the member owns all of the topic's partitions.
    pub fn join(
        bootstrap: &str,
        topic: &str,
        group: &str,
        protocol: GroupProtocol,
        instance_id: Option<&str>,
    ) -> GroupMember {
        let python = clients_venv().join("bin/python");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/confluent_client.py");
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("member.log");
        let mut cmd = Command::new(python);
        cmd.arg(script).args([
            "member",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--protocol",
            protocol.as_str(),
            "--timeout",
            "60",
        ]);
        if let Some(id) = instance_id {
            cmd.args(["--instance-id", id]);
        }
        let mut child = super::process::spawn_tied(cmd, &log);
        let mut ready_line = None;
        super::process::wait_until(
            "confluent-kafka group member",
            &mut child,
            &log,
            std::time::Duration::from_secs(90),
            || {
                ready_line = std::fs::read_to_string(&log)
                    .ok()
                    .and_then(|text| text.lines().find(|l| l.starts_with("{\"ready\"")).map(str::to_owned));
                ready_line.is_some()
            },
        );
        let ready: serde_json::Value = serde_json::from_str(&ready_line.unwrap_or_default()).expect("ready JSON");
        let assignment = serde_json::from_value(ready["assignment"].clone()).expect("assignment list");
        GroupMember {
            child,
            log,
            _dir: dir,
            assignment,
        }
    }

    /// Leaves the group cleanly (SIGTERM; the script closes its consumer) and waits for the process.
    pub fn leave(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        super::process::stop(&mut self.child, std::time::Duration::from_secs(20));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A long-running `confluent_client.py` process (one of the commands that run until SIGTERM), started tied
/// to the test binary, with its output in a log file; stopped (SIGTERM, then SIGKILL after 20 s) when dropped.
pub struct ScriptProcess {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    /// The first line it printed that starts with the ready prefix it was started with.
    pub ready_line: serde_json::Value,
}

impl ScriptProcess {
    /// Runs `confluent_client.py ARGS` (PLAINTEXT) and waits up to `timeout` for a line starting with
    /// `ready_prefix`.
    pub fn start(what: &str, args: &[&str], ready_prefix: &str, timeout: std::time::Duration) -> ScriptProcess {
        let python = clients_venv().join("bin/python");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/confluent_client.py");
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("client.log");
        let mut cmd = Command::new(python);
        cmd.arg(script).args(args).env_remove("KGO_SASL_PASSWORD");
        let mut child = super::process::spawn_tied(cmd, &log);
        let mut ready_line = None;
        super::process::wait_until(what, &mut child, &log, timeout, || {
            ready_line = std::fs::read_to_string(&log)
                .ok()
                .and_then(|text| text.lines().find(|l| l.starts_with(ready_prefix)).map(str::to_owned));
            ready_line.is_some()
        });
        let ready_line = serde_json::from_str(&ready_line.unwrap_or_default()).expect("ready JSON");
        ScriptProcess {
            child,
            log,
            _dir: dir,
            ready_line,
        }
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, and waits for it to exit.
    pub fn stop(mut self) -> String {
        super::process::stop(&mut self.child, std::time::Duration::from_secs(20));
        self.log()
    }
}

impl Drop for ScriptProcess {
    fn drop(&mut self) {
        super::process::stop(&mut self.child, std::time::Duration::from_secs(20));
    }
}

/// A consumer that uses `assign()` instead of `subscribe()`: no group membership, yet it commits into
/// `group` (partition `partition` of `topic`): `first_offset`, then one more every `interval`, until stopped.
/// Kafka takes these commits only while the group has no members (it reports the group `Empty`): the
/// "hidden committer" a reset must not race.
pub fn assign_committer(
    bootstrap: &str,
    topic: &str,
    group: &str,
    partition: i32,
    first_offset: i64,
    interval: std::time::Duration,
) -> ScriptProcess {
    let (partition, offset, interval) = (
        partition.to_string(),
        first_offset.to_string(),
        interval.as_millis().to_string(),
    );
    ScriptProcess::start(
        "confluent-kafka assign() committer",
        &[
            "assign-commit",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--partition",
            &partition,
            "--offset",
            &offset,
            "--commit-interval-ms",
            &interval,
            "--client-id",
            "kgo-test-assign-committer",
            "--timeout",
            "600",
        ],
        "{\"ready\"",
        std::time::Duration::from_secs(60),
    )
}

impl ScriptProcess {
    /// For an [`assign_committer`]: how many of its commits Kafka accepted so far.
    pub fn accepted_commits(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.starts_with("{\"commit\"") && l.contains("\"ok\": true"))
            .count()
    }
}

/// A live producer: `rate` records per second into `topic` (keys spread over its partitions) until stopped.
pub fn live_producer(bootstrap: &str, topic: &str, rate: u32) -> ScriptProcess {
    let rate = rate.to_string();
    ScriptProcess::start(
        "confluent-kafka live producer",
        &[
            "stream",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--rate",
            &rate,
            "--timeout",
            "900",
        ],
        "{\"ready\"",
        std::time::Duration::from_secs(60),
    )
}

/// Commits `offset` for partitions 0 to `partitions - 1` of `topic` into `group` with one synchronous
/// confluent-kafka commit, without joining the group (generation -1, as for a group without members).
/// `Ok(())` when the broker acknowledged every partition, else what the client reported.
pub fn commit_offsets(bootstrap: &str, topic: &str, group: &str, partitions: i32, offset: i64) -> Result<(), String> {
    let (partitions, offset) = (partitions.to_string(), offset.to_string());
    let out = confluent_client(
        &[
            "commit",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--partitions",
            &partitions,
            "--offset",
            &offset,
            "--timeout",
            "30",
        ],
        &ClientSecurity::default(),
    )
    .map_err(|failure| failure.to_string())?;
    if out["ok"] == true {
        Ok(())
    } else {
        Err(out["error"].to_string())
    }
}

/// Consume-transform-produce with confluent-kafka: joins `group` on `input` (read_committed) and, in
/// transactions of up to `batch` records of a transactional producer (`transactional_id`), writes each record to
/// `output` (value `t-<value>`) and commits the group's offsets with `send_offsets_to_transaction`, until
/// `count` records are transformed. Returns how many transactions it committed.
pub fn transactional_transform(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    transactional_id: &str,
    count: usize,
    batch: usize,
) -> usize {
    let (count_text, batch) = (count.to_string(), batch.to_string());
    let out = confluent(
        &[
            "txn-transform",
            "--bootstrap",
            bootstrap,
            "--topic",
            input,
            "--output-topic",
            output,
            "--group",
            group,
            "--transactional-id",
            transactional_id,
            "--count",
            &count_text,
            "--batch",
            &batch,
            "--timeout",
            "90",
        ],
        &ClientSecurity::default(),
    );
    assert_eq!(out["transformed"], count, "confluent-kafka txn-transform printed {out}");
    out["transactions"].as_u64().expect("transactions") as usize
}

/// Every value of `topic` (all partitions, from the beginning to the end) as a confluent-kafka consumer with
/// `isolation` (`read_committed` or `read_uncommitted`) reads them; no offsets are committed.
pub fn read_all_values(bootstrap: &str, topic: &str, isolation: &str) -> Vec<String> {
    let group = crate::support::unique_name("read-all");
    let out = confluent(
        &[
            "read-all",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            &group,
            "--isolation",
            isolation,
            "--timeout",
            "60",
        ],
        &ClientSecurity::default(),
    );
    serde_json::from_value(out["values"].clone()).expect("values list")
}
