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
    /// Stopped with SIGSTOP (`pause`) and not continued yet.
    paused: bool,
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
        Operator::launch(cp.kubeconfig(), namespace, flags)
    }

    /// `start` with another kubeconfig than the control plane's admin one (e.g. a ServiceAccount's token from
    /// `ControlPlane::token_kubeconfig`).
    pub fn start_with_kubeconfig(kubeconfig: &std::path::Path, namespace: &str, extra: &[&str]) -> Operator {
        let mut flags = vec![
            "--group-interval=2s",
            "--cluster-interval=3s",
            "--lag-interval=2s",
            "--kafka-timeout=5s",
        ];
        flags.extend_from_slice(extra);
        Operator::launch(kubeconfig, namespace, &flags)
    }

    fn launch(kubeconfig: &std::path::Path, namespace: &str, flags: &[&str]) -> Operator {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("operator.log");
        let metrics_port = free_port();
        let mut cmd = Command::new(binary());
        cmd.env("RUST_LOG", "info,kafka_group_operator=debug,kube=warn")
            .arg("run")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--namespace={namespace}"))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .args(flags);
        let child = spawn_tied(cmd, &log);
        Operator {
            child,
            log,
            _dir: dir,
            metrics_port,
            paused: false,
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

    /// The value of the sample of metric `name` (e.g. `kafka_group_operator_offset_commits_total`) whose
    /// labels include every `(label, value)` of `labels`, from /metrics; None if no sample matches or the
    /// endpoint does not answer.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (code, body) = self.http_get("/metrics")?;
        if code != 200 {
            return None;
        }
        metric_in(&body, name, labels)
    }

    /// SIGSTOP: the process freezes (no renewals, no requests) until `resume`, as a replica stuck in a long
    /// GC pause or on a partitioned node would.
    pub fn pause(&mut self) {
        // SAFETY: sending a signal to our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGSTOP);
        }
        self.paused = true;
    }

    /// SIGCONT after `pause`.
    pub fn resume(&mut self) {
        // SAFETY: sending a signal to our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGCONT);
        }
        self.paused = false;
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
        if self.paused {
            self.resume();
        }
        self.stop();
    }
}

/// The value of the sample of `name` in a Prometheus text exposition whose labels include all of `labels`.
pub fn metric_in(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let present: Vec<(String, String)> = label_text
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim_matches(',').to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect();
        labels
            .iter()
            .all(|(k, v)| present.iter().any(|(pk, pv)| pk == k && pv == v))
            .then(|| value.parse().ok())
            .flatten()
    })
}
