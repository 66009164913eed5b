//! A stand-in for the kubelet (and the Deployment/StatefulSet controllers): the test control plane has an
//! API server but no nodes, so [`Kubelet`] watches ONE Deployment or StatefulSet and keeps `spec.replicas`
//! real Kafka consumers running for it, each a `confluent_client.py run` process (confluent-kafka, i.e.
//! librdkafka) standing for one pod. It writes the workload's status subresource (`replicas`, `readyReplicas`,
//! `availableReplicas`, `updatedReplicas`, `observedGeneration`, plus `unavailableReplicas` for a Deployment
//! and `currentReplicas` for a StatefulSet) so that `kubectl get`, `kubectl rollout status` and anything
//! reading the status see real numbers.
//!
//! # What a "pod" runs
//!
//! The consumer's settings come from the plain `value`s of the FIRST container's `env` in the pod template
//! (`valueFrom` is not resolved):
//!
//! | variable                    | meaning                                                                  |
//! |-----------------------------|--------------------------------------------------------------------------|
//! | `KAFKA_GROUP_ID`            | `group.id` (required)                                                    |
//! | `KAFKA_TOPICS`              | topics to subscribe to, comma-separated (required)                       |
//! | `KAFKA_GROUP_PROTOCOL`      | `classic` (default), `consumer` (KIP-848) or `share` (KIP-932)          |
//! | `KAFKA_AUTO_OFFSET_RESET`   | `earliest` (default), `latest` or `error`                                |
//! | `KAFKA_PROCESSING_DELAY_MS` | sleep per record before its offset is stored (default 0), to create lag |
//! | `KAFKA_STATIC_MEMBERSHIP`   | `true`: `group.instance.id` = the pod name, `<workload>-<ordinal>`       |
//! | `KAFKA_SESSION_TIMEOUT_MS`  | `session.timeout.ms`, classic protocol only (default 10000)              |
//! | `KAFKA_SHUTDOWN_DELAY_MS`   | after SIGTERM, consume on this long before leaving (default 0)           |
//! | `KAFKA_SASL_MECHANISM`      | SASL_PLAINTEXT with `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`...       |
//! | `KAFKA_SASL_USERNAME`       | ... as this user ...                                                    |
//! | `KAFKA_SASL_PASSWORD`       | ... with this password (a literal `value`: the fixture has no Secrets)   |
//!
//! The bootstrap servers are the ones given to [`Kubelet::start`], whatever the template says. Every pod is
//! named `<workload>-<ordinal>` (for a Deployment too: no ReplicaSet hash), which is also its `client.id`.
//! Offsets are committed by auto-commit every 500 ms and on close (each after its record was processed).
//!
//! # Behaviour
//!
//! * Scale up starts the missing ordinals (all at once, like `podManagementPolicy: Parallel`); scale down
//!   stops the highest ordinals (SIGTERM: the consumer commits and leaves its group; SIGKILL after 30 s).
//!   A stopped ordinal is not started again until its old process has exited.
//! * A change of the consumer settings in the template replaces every consumer (a rollout, all at once).
//! * Deleting the workload stops every consumer; creating it again starts them again.
//! * A consumer that exits on its own is restarted (restart policy Always) with a back-off of 1 s, 2 s, 4 s
//!   … up to 10 s; what it printed stays in its log and in failure messages.
//! * A pod is ready once its consumer printed its `ready` line: it is in the group with an assignment,
//!   possibly empty (a KIP-848 member without partitions gets no rebalance callback from librdkafka, so the
//!   script asks the group coordinator). It stays ready until it stops. `readyReplicas == availableReplicas`
//!   (no `minReadySeconds`); counts of 0 are absent from the stored status, as in a real cluster.
//! * Static members (`KAFKA_STATIC_MEMBERSHIP`) do not leave their group when stopped: the broker keeps them
//!   until their session times out (`KAFKA_SESSION_TIMEOUT_MS` for classic; the broker's
//!   `group.consumer.session.timeout.ms`, 45 s by default, for KIP-848), so the group is not `Empty` at once.
//! * Dropping the [`Kubelet`] stops the watcher and every consumer (SIGTERM, so they leave cleanly).
//!
//! The watcher runs as a task on the caller's tokio runtime (the `kube::Client` is bound to it anyway): in a
//! `current_thread` runtime (plain `#[tokio::test]`) it makes progress only while the test awaits, so a test
//! that blocks (e.g. on `ApacheKafka::tool`) while expecting consumers to come and go should use
//! `#[tokio::test(flavor = "multi_thread")]` or `tokio::task::spawn_blocking`.

use super::process::{fixture_dir, spawn_tied, tail};
use super::tools::clients_venv;
use futures_util::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::watch_object;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the kubelet checks its processes (exits, ready lines) besides reacting to watch events.
const TICK: Duration = Duration::from_millis(100);
/// How long a stopped consumer may take to commit and leave before it is killed.
const TERMINATION_GRACE: Duration = Duration::from_secs(30);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// A workload kind the kubelet can play pods for.
pub trait Workload:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    /// `spec.replicas` (the API server defaults it to 1).
    fn desired_replicas(&self) -> i32;
    fn pod_template(&self) -> &PodTemplateSpec;
    /// The `status` object to merge-patch for these counts.
    fn status(counts: &StatusCounts) -> serde_json::Value;
}

impl Workload for Deployment {
    const KIND: &'static str = "Deployment";
    fn desired_replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn pod_template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }
    fn status(c: &StatusCounts) -> serde_json::Value {
        serde_json::json!({
            "observedGeneration": c.observed_generation,
            "replicas": c.replicas,
            "readyReplicas": c.ready,
            "availableReplicas": c.ready,
            "updatedReplicas": c.updated,
            "unavailableReplicas": (c.desired - c.ready).max(0),
        })
    }
}

impl Workload for StatefulSet {
    const KIND: &'static str = "StatefulSet";
    fn desired_replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn pod_template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }
    fn status(c: &StatusCounts) -> serde_json::Value {
        serde_json::json!({
            "observedGeneration": c.observed_generation,
            "replicas": c.replicas,
            "readyReplicas": c.ready,
            "availableReplicas": c.ready,
            "currentReplicas": c.updated,
            "updatedReplicas": c.updated,
        })
    }
}

/// What the kubelet writes into the workload's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCounts {
    pub observed_generation: i64,
    /// `spec.replicas` (only used to derive `unavailableReplicas`).
    pub desired: i32,
    /// Consumers running and not being stopped.
    pub replicas: i32,
    pub ready: i32,
    /// Running with the template's current consumer settings.
    pub updated: i32,
}

/// One consumer process, as [`Kubelet::pods`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// `<workload>-<ordinal>`: also the consumer's `client.id` (and `group.instance.id` when static).
    pub name: String,
    pub ordinal: usize,
    pub pid: u32,
    pub ready: bool,
    /// The group member id from its ready line.
    pub member_id: Option<String>,
    /// Times this ordinal's consumer exited on its own and was started again.
    pub restarts: u32,
}

/// Plays the kubelet for one Deployment or StatefulSet; see the module documentation.
pub struct Kubelet {
    shared: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
    what: String,
    dir: PathBuf,
}

impl Kubelet {
    /// Starts playing the kubelet for Deployment `name` in `namespace` (which need not exist yet), running
    /// consumers against `bootstrap`.
    pub async fn start(client: kube::Client, namespace: &str, name: &str, bootstrap: &str) -> Kubelet {
        Kubelet::start_for::<Deployment>(client, namespace, name, bootstrap).await
    }

    /// [`Kubelet::start`] for a StatefulSet.
    pub async fn start_for_statefulset(client: kube::Client, namespace: &str, name: &str, bootstrap: &str) -> Kubelet {
        Kubelet::start_for::<StatefulSet>(client, namespace, name, bootstrap).await
    }

    /// [`Kubelet::start`] for any [`Workload`] kind.
    pub async fn start_for<K: Workload>(client: kube::Client, namespace: &str, name: &str, bootstrap: &str) -> Kubelet {
        let dir = fixture_dir("kubelet");
        let what = format!("{} {namespace}/{name}", K::KIND);
        // Provisioned (or found) now rather than inside the task on the first scale-up.
        let python = tokio::task::spawn_blocking(|| clients_venv().join("bin/python"))
            .await
            .expect("find the confluent-kafka virtualenv");
        let shared = Arc::new(Mutex::new(State {
            workload: name.to_owned(),
            bootstrap: bootstrap.to_owned(),
            python,
            dir: dir.clone(),
            stopped: false,
            observed: None,
            replicas: BTreeMap::new(),
            terminating: Vec::new(),
            backoff: BTreeMap::new(),
            written: None,
            events: VecDeque::new(),
        }));
        let api: Api<K> = Api::namespaced(client, namespace);
        let task = tokio::spawn(run::<K>(api, name.to_owned(), Arc::clone(&shared)));
        let kubelet = Kubelet {
            shared,
            task,
            what,
            dir,
        };
        // The first answer of the watcher (the workload, or that it does not exist), so that a watch that
        // cannot work fails here.
        let deadline = Instant::now() + Duration::from_secs(30);
        while kubelet.state().observed.is_none() {
            assert!(
                Instant::now() < deadline && !kubelet.task.is_finished(),
                "the kubelet for {} could not watch it:\n{}",
                kubelet.what,
                kubelet.report()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        kubelet
    }

    /// Number of consumer processes currently running (not counting ones being stopped).
    pub fn running(&self) -> usize {
        self.state().replicas.len()
    }

    /// The running consumers, by ordinal.
    pub fn pods(&self) -> Vec<Pod> {
        let state = self.state();
        state
            .replicas
            .values()
            .map(|r| Pod {
                name: r.name.clone(),
                ordinal: r.ordinal,
                pid: r.child.id(),
                ready: r.ready,
                member_id: r.member_id.clone(),
                restarts: state.backoff.get(&r.ordinal).map_or(0, |b| b.restarts),
            })
            .collect()
    }

    /// Everything the consumer of `ordinal` printed (all its restarts; empty if it never ran).
    pub fn log(&self, ordinal: usize) -> String {
        let state = self.state();
        std::fs::read_to_string(state.log_path(&state.pod_name(ordinal))).unwrap_or_default()
    }

    /// Waits until the workload asks for `n` replicas, exactly `n` consumers run, all of them are ready (in
    /// their group), none is still stopping, and the workload's status says so (for the current generation).
    /// Panics after `timeout` with what the kubelet saw and the consumers' logs.
    pub async fn wait_running(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.state().settled_at(n) {
                return;
            }
            if self.task.is_finished() {
                panic!("the kubelet for {} stopped:\n{}", self.what, self.report());
            }
            if Instant::now() > deadline {
                panic!(
                    "the kubelet for {} did not settle at {n} ready consumers within {timeout:?}:\n{}",
                    self.what,
                    self.report()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the kubelet saw and did, and the tail of every consumer's log: for failure messages.
    pub fn report(&self) -> String {
        let state = self.state();
        let mut out = String::new();
        match &state.observed {
            None => out.push_str("workload: not seen yet\n"),
            Some(None) => out.push_str("workload: does not exist\n"),
            Some(Some(o)) => {
                let _ = writeln!(
                    out,
                    "workload: generation {}, spec.replicas {}, consumer settings {:?}",
                    o.generation, o.desired, o.config
                );
            }
        }
        let _ = writeln!(out, "status written: {:?}", state.written.as_ref().map(|w| &w.counts));
        let _ = writeln!(
            out,
            "running: {:?}; stopping: {:?}",
            state
                .replicas
                .values()
                .map(|r| format!("{}{}", r.name, if r.ready { " (ready)" } else { "" }))
                .collect::<Vec<_>>(),
            state.terminating.iter().map(|r| &r.name).collect::<Vec<_>>()
        );
        out.push_str("events:\n");
        for event in &state.events {
            let _ = writeln!(out, "  {event}");
        }
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.sort();
        for log in logs {
            let _ = writeln!(out, "--- {} (last 20 lines):\n{}", log.display(), tail(&log, 20));
        }
        out
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        let mut children: Vec<Replica> = {
            let mut state = self.state();
            state.stopped = true; // the task spawns nothing once this is set, even if it still runs
            let mut all: Vec<Replica> = std::mem::take(&mut state.replicas).into_values().collect();
            all.append(&mut state.terminating);
            all
        };
        for replica in &mut children {
            replica.terminate();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && children.iter_mut().any(|r| !r.exited()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for replica in &mut children {
            let _ = replica.child.kill();
            let _ = replica.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("kubelet logs for {} kept in {}", self.what, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The workload as last seen by the watcher.
#[derive(Clone, Debug)]
struct Observed {
    uid: String,
    generation: i64,
    desired: usize,
    config: Result<ConsumerConfig, String>,
}

/// The consumer settings of the pod template (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ConsumerConfig {
    group: String,
    topics: String,
    protocol: String,
    auto_offset_reset: String,
    processing_delay_ms: u64,
    static_membership: bool,
    session_timeout_ms: u64,
    /// Consumes on (in its group) for this long after SIGTERM: a pod that takes long to leave.
    shutdown_delay_ms: u64,
    /// SASL_PLAINTEXT: (mechanism, user name, password).
    sasl: Option<(String, String, String)>,
}

impl ConsumerConfig {
    fn from_template(template: &PodTemplateSpec) -> Result<ConsumerConfig, String> {
        let container = template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .ok_or("the pod template has no container")?;
        let env: BTreeMap<&str, &str> = container
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.as_str(), e.value.as_deref()?)))
            .collect();
        let required = |key: &str| {
            env.get(key)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| format!("the first container has no plain `value` for {key}"))
        };
        let one_of = |key: &str, allowed: &[&str], default: &str| {
            let value = env.get(key).map_or(default, |v| v.trim());
            if allowed.contains(&value) {
                Ok(value.to_owned())
            } else {
                Err(format!("{key}={value:?} is not one of {allowed:?}"))
            }
        };
        let number = |key: &str, default: u64| {
            env.get(key)
                .map_or(Ok(default), |v| v.trim().parse())
                .map_err(|e| format!("{key}: {e}"))
        };
        Ok(ConsumerConfig {
            group: required("KAFKA_GROUP_ID")?,
            topics: required("KAFKA_TOPICS")?,
            protocol: one_of("KAFKA_GROUP_PROTOCOL", &["classic", "consumer", "share"], "classic")?,
            auto_offset_reset: one_of("KAFKA_AUTO_OFFSET_RESET", &["earliest", "latest", "error"], "earliest")?,
            processing_delay_ms: number("KAFKA_PROCESSING_DELAY_MS", 0)?,
            static_membership: one_of("KAFKA_STATIC_MEMBERSHIP", &["true", "false"], "false")? == "true",
            session_timeout_ms: number("KAFKA_SESSION_TIMEOUT_MS", 10_000)?,
            shutdown_delay_ms: number("KAFKA_SHUTDOWN_DELAY_MS", 0)?,
            sasl: match env.get("KAFKA_SASL_MECHANISM") {
                None => None,
                Some(_) => Some((
                    one_of(
                        "KAFKA_SASL_MECHANISM",
                        &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
                        "SCRAM-SHA-512",
                    )?,
                    required("KAFKA_SASL_USERNAME")?,
                    required("KAFKA_SASL_PASSWORD")?,
                )),
            },
        })
    }
}

struct Replica {
    ordinal: usize,
    name: String,
    child: Child,
    log: PathBuf,
    /// Length of the (shared, appended) log when this process started: its own output comes after it.
    log_start: u64,
    config: ConsumerConfig,
    ready: bool,
    member_id: Option<String>,
    terminating_since: Option<Instant>,
}

impl Replica {
    fn terminate(&mut self) {
        if self.terminating_since.is_none() {
            self.terminating_since = Some(Instant::now());
            // SAFETY: sending a signal to our own child's pid.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Looks for the ready line in this process's part of the log.
    fn check_ready(&mut self) {
        if self.ready {
            return;
        }
        let mut text = String::new();
        let read = std::fs::File::open(&self.log).and_then(|mut f| {
            f.seek(SeekFrom::Start(self.log_start))?;
            f.read_to_string(&mut text)
        });
        if read.is_err() {
            return;
        }
        if let Some(line) = text.lines().find(|l| l.starts_with("{\"ready\": true")) {
            self.ready = true;
            self.member_id = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["member_id"].as_str().map(str::to_owned));
        }
    }
}

struct Backoff {
    restarts: u32,
    not_before: Instant,
}

struct Written {
    uid: String,
    counts: StatusCounts,
}

struct State {
    workload: String,
    bootstrap: String,
    python: PathBuf,
    dir: PathBuf,
    stopped: bool,
    /// `None` until the watcher's first answer; `Some(None)` while the workload does not exist.
    observed: Option<Option<Observed>>,
    replicas: BTreeMap<usize, Replica>,
    terminating: Vec<Replica>,
    backoff: BTreeMap<usize, Backoff>,
    written: Option<Written>,
    events: VecDeque<String>,
}

impl State {
    fn pod_name(&self, ordinal: usize) -> String {
        format!("{}-{ordinal}", self.workload)
    }

    fn log_path(&self, pod: &str) -> PathBuf {
        self.dir.join(format!("{pod}.log"))
    }

    fn event(&mut self, text: String) {
        if self.events.back() == Some(&text) {
            return;
        }
        if self.events.len() >= 60 {
            self.events.pop_front();
        }
        self.events.push_back(text);
    }

    fn observe<K: Workload>(&mut self, workload: Option<&K>) {
        let observed = workload
            .filter(|w| w.meta().deletion_timestamp.is_none())
            .map(|w| Observed {
                uid: w.meta().uid.clone().unwrap_or_default(),
                generation: w.meta().generation.unwrap_or(0),
                desired: usize::try_from(w.desired_replicas()).unwrap_or(0),
                config: ConsumerConfig::from_template(w.pod_template()),
            });
        match &observed {
            None => self.event(format!(
                "{} does not exist (or is being deleted): no consumers",
                K::KIND
            )),
            Some(o) => {
                let previous = self.observed.clone().flatten();
                if previous.as_ref().map(|p| (p.generation, &p.uid)) != Some((o.generation, &o.uid)) {
                    self.event(format!(
                        "{} generation {}: spec.replicas {}{}",
                        K::KIND,
                        o.generation,
                        o.desired,
                        match &o.config {
                            Err(e) => format!(", cannot run consumers: {e}"),
                            Ok(_) => String::new(),
                        }
                    ));
                }
            }
        }
        self.observed = Some(observed);
    }

    /// One round: reap stopped processes, notice crashes and ready lines, start and stop consumers. Returns
    /// the status to write if it differs from the one last written.
    fn step(&mut self) -> Option<(String, StatusCounts)> {
        if self.stopped {
            return None;
        }
        let now = Instant::now();
        // Consumers being stopped: gone, or killed after the grace period.
        let mut still = Vec::new();
        for mut r in std::mem::take(&mut self.terminating) {
            if r.exited() {
                continue;
            }
            if r.terminating_since.is_some_and(|t| now - t > TERMINATION_GRACE) {
                self.event(format!("{} ignored SIGTERM for {TERMINATION_GRACE:?}: killed", r.name));
                let _ = r.child.kill();
                let _ = r.child.wait();
                continue;
            }
            still.push(r);
        }
        self.terminating = still;

        // Running consumers: exited on their own (restarted later, with back-off), or ready now.
        let crashed: Vec<usize> = self
            .replicas
            .iter_mut()
            .filter_map(|(&ordinal, r)| r.exited().then_some(ordinal))
            .collect();
        for ordinal in crashed {
            let Some(mut r) = self.replicas.remove(&ordinal) else {
                continue;
            };
            let status = r.child.wait().map(|s| s.to_string()).unwrap_or_default();
            let backoff = self.backoff.entry(ordinal).or_insert(Backoff {
                restarts: 0,
                not_before: now,
            });
            let delay = Duration::from_secs(1 << backoff.restarts.min(4)).min(MAX_RESTART_BACKOFF);
            backoff.restarts += 1;
            backoff.not_before = now + delay;
            self.event(format!(
                "{} exited on its own ({status}); restarting it in {delay:?}; its log ends with:\n{}",
                r.name,
                tail(&r.log, 8)
            ));
        }
        for r in self.replicas.values_mut() {
            r.check_ready();
        }

        // Reconcile: which ordinals should run, with which settings.
        let (desired, config) = match self.observed.clone() {
            None => return None, // nothing known yet: touch nothing
            Some(None) => (0, None),
            Some(Some(o)) => match o.config {
                Ok(config) => (o.desired, Some(config)),
                Err(_) => (0, None),
            },
        };
        let mut stop: Vec<usize> = self.replicas.keys().copied().filter(|&o| o >= desired).collect();
        if let Some(config) = &config {
            stop.extend(
                self.replicas
                    .iter()
                    .filter(|(o, r)| **o < desired && r.config != *config)
                    .map(|(&o, _)| o),
            );
        }
        stop.sort_unstable_by(|a, b| b.cmp(a)); // highest ordinals first
        for ordinal in stop {
            if let Some(mut r) = self.replicas.remove(&ordinal) {
                r.terminate();
                self.event(format!("stopping {}", r.name));
                self.terminating.push(r);
            }
        }
        if let Some(config) = config {
            for ordinal in 0..desired {
                let busy =
                    self.replicas.contains_key(&ordinal) || self.terminating.iter().any(|r| r.ordinal == ordinal);
                let waiting = self.backoff.get(&ordinal).is_some_and(|b| b.not_before > now);
                if !busy && !waiting {
                    let replica = self.spawn(ordinal, &config);
                    self.event(format!("started {} (pid {})", replica.name, replica.child.id()));
                    self.replicas.insert(ordinal, replica);
                }
            }
        }

        // The status to write.
        let o = self.observed.clone().flatten()?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let counts = StatusCounts {
            observed_generation: o.generation,
            desired: count(o.desired),
            replicas: count(self.replicas.len()),
            ready: count(self.replicas.values().filter(|r| r.ready).count()),
            updated: count(
                self.replicas
                    .values()
                    .filter(|r| o.config.as_ref().is_ok_and(|c| *c == r.config))
                    .count(),
            ),
        };
        match &self.written {
            Some(w) if w.uid == o.uid && w.counts == counts => None,
            _ => Some((o.uid, counts)),
        }
    }

    fn spawn(&self, ordinal: usize, config: &ConsumerConfig) -> Replica {
        let name = self.pod_name(ordinal);
        let log = self.log_path(&name);
        let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/confluent_client.py");
        let mut cmd = Command::new(&self.python);
        cmd.arg(script)
            .args(["run", "--bootstrap", &self.bootstrap])
            .args(["--topics", &config.topics])
            .args(["--group", &config.group])
            .args(["--protocol", &config.protocol])
            .args(["--auto-offset-reset", &config.auto_offset_reset])
            .args(["--processing-delay-ms", &config.processing_delay_ms.to_string()])
            .args(["--session-timeout-ms", &config.session_timeout_ms.to_string()])
            .args(["--shutdown-delay-ms", &config.shutdown_delay_ms.to_string()])
            .args(["--client-id", &name])
            .env_remove("KGO_SASL_PASSWORD");
        if config.static_membership {
            cmd.args(["--instance-id", &name]);
        }
        if let Some((mechanism, username, password)) = &config.sasl {
            cmd.args(["--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", mechanism])
                .args(["--sasl-username", username])
                .env("KGO_SASL_PASSWORD", password);
        }
        let child = spawn_tied(cmd, &log);
        Replica {
            ordinal,
            name,
            child,
            log,
            log_start,
            config: config.clone(),
            ready: false,
            member_id: None,
            terminating_since: None,
        }
    }

    /// `n` consumers, all ready, none stopping, the workload asks for `n` and its status says so.
    fn settled_at(&self, n: usize) -> bool {
        let Some(observed) = &self.observed else {
            return false;
        };
        let desired = observed.as_ref().map_or(0, |o| o.desired);
        let processes = desired == n
            && self.replicas.len() == n
            && self.replicas.values().all(|r| r.ready)
            && self.terminating.is_empty();
        let status = match observed {
            None => true, // no workload, no status
            Some(o) => self.written.as_ref().is_some_and(|w| {
                w.uid == o.uid
                    && w.counts.observed_generation == o.generation
                    && w.counts.replicas as usize == n
                    && w.counts.ready as usize == n
            }),
        };
        processes && status
    }
}

/// The kubelet's task: follows the workload, runs a step on every event and tick, writes the status.
async fn run<K: Workload>(api: Api<K>, name: String, shared: Arc<Mutex<State>>) {
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    let mut events = std::pin::pin!(watch_object(api.clone(), &name).default_backoff());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(workload)) => lock().observe(workload.as_ref()),
                Some(Err(e)) => lock().event(format!("watch error: {e}")),
                None => return,
            },
            _ = tick.tick() => {}
        }
        let Some((uid, counts)) = lock().step() else {
            continue;
        };
        // The uid makes the API server refuse the patch if the workload was deleted and created again since.
        let patch = serde_json::json!({ "metadata": { "uid": uid }, "status": K::status(&counts) });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => lock().written = Some(Written { uid, counts }),
            Err(e) => lock().event(format!("cannot write the status: {e}")),
        }
    }
}

/// A pod template whose first container carries `env` (the consumer settings this kubelet reads).
pub fn template(name: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let env: Vec<_> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "consumer", "image": "example.invalid/consumer:1", "env": env}]}
    })
}

/// A Deployment of consumers configured by `env` (see the module doc for the variables).
pub fn deployment(name: &str, replicas: i32, env: &[(&str, &str)]) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, env),
        }
    }))
    .expect("deployment JSON")
}
