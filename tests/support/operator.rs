//! Runs the real `kafka-group-operator run` binary as a process against a test control plane, watching one
//! namespace (so tests running in parallel do not share an operator), with short intervals.

use super::ControlPlane;
use super::process::{free_port, spawn_tied, stop, tail};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

pub struct Operator {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    pub metrics_port: u16,
}

/// The operator binary cargo built for this test binary.
pub fn binary() -> PathBuf {
    let path = option_env!("CARGO_BIN_EXE_kafka-group-operator")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/kafka-group-operator"));
    assert!(path.is_file(), "{} is missing: run `cargo build`", path.display());
    path
}

impl Operator {
    /// Starts the operator for `namespace` with short intervals (`--group-interval 2s --cluster-interval 3s
    /// --lag-interval 2s --kafka-timeout 5s`) plus `extra` flags.
    pub fn start(cp: &ControlPlane, namespace: &str, extra: &[&str]) -> Operator {
        let mut flags = vec![
            "--group-interval=2s",
            "--cluster-interval=3s",
            "--lag-interval=2s",
            "--kafka-timeout=5s",
        ];
        flags.extend_from_slice(extra);
        Operator::start_with_flags(cp, namespace, &flags)
    }

    /// Starts the operator for `namespace` with its default intervals plus `flags` (benchmarks measure what
    /// users get).
    pub fn start_with_flags(cp: &ControlPlane, namespace: &str, flags: &[&str]) -> Operator {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("operator.log");
        let metrics_port = free_port();
        let mut cmd = Command::new(binary());
        cmd.env("RUST_LOG", "info,kafka_group_operator=debug,kube=warn")
            .arg("run")
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            .arg(format!("--namespace={namespace}"))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .args(flags);
        let child = spawn_tied(cmd, &log);
        Operator {
            child,
            log,
            _dir: dir,
            metrics_port,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        tail(&self.log, 60)
    }

    /// GET of one of the operator's HTTP endpoints: (status code, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((code, body))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: a crash, no graceful shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        stop(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("operator log:\n{}", self.log());
        }
        self.stop();
    }
}
