//! Kafka clients no one here wrote, driven from tests: confluent-kafka (librdkafka) through
//! `confluent_client.py` in the provisioned virtualenv, and kcat from Debian.

use super::tools::{clients_venv, system_tool};
use std::path::Path;
use std::process::Command;

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

fn confluent(args: &[&str]) -> serde_json::Value {
    let python = clients_venv().join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/confluent_client.py");
    let out = Command::new("timeout")
        .arg("150")
        .arg(&python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "confluent-kafka {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("confluent_client.py printed {last:?}: {e}"))
}

/// Produces `count` records (`key-<i>` / `value-<i>`) with acks=all and waits for every delivery.
pub fn produce(bootstrap: &str, topic: &str, count: usize) {
    let out = confluent(&[
        "produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--count",
        &count.to_string(),
    ]);
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
    let out = confluent(&[
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
    ]);
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
