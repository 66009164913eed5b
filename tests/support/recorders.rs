//! Background recorders for tests that must judge what happened *between* two observations: every change of
//! a group's committed offsets (polled through our admin client), of a workload's `spec.replicas` and of the
//! OffsetResets of a namespace (both watched, so no write is missed; the watches resume after an API-server
//! outage). Each stops when dropped.

use futures_util::StreamExt;
use kafka_group_operator::api::{OffsetReset, ResetPhase};
use kafka_group_operator::kafka::KafkaClient;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A watch backoff that stays short: a recorder must be back soon after an API-server outage (the default
/// backoff grows to 30 s and would miss what happens meanwhile).
struct Steady;

impl Iterator for Steady {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(250))
    }
}

impl kube::runtime::utils::Backoff for Steady {
    fn reset(&mut self) {}
}

/// Committed offsets by (topic, partition).
pub type Offsets = BTreeMap<(String, i32), i64>;

/// Every distinct state of a group's committed offsets, polled every 100 ms.
pub struct OffsetHistory {
    seen: Arc<Mutex<Vec<(Instant, Offsets)>>>,
    /// When the latest successful poll began.
    polled: Arc<Mutex<Option<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OffsetHistory {
    pub fn start(kafka: &KafkaClient, group: &str) -> OffsetHistory {
        let seen: Arc<Mutex<Vec<(Instant, Offsets)>>> = Arc::default();
        let polled: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (kafka, group, log, last_poll) = (kafka.clone(), group.to_owned(), seen.clone(), polled.clone());
        let task = tokio::spawn(async move {
            loop {
                let began = Instant::now();
                if let Ok(offsets) = kafka.group_offsets(&group).await {
                    let now: Offsets = offsets
                        .into_iter()
                        .map(|(tp, c)| ((tp.topic.to_string(), tp.partition), c.offset))
                        .collect();
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.last().map(|(_, o)| o) != Some(&now) {
                        log.push((began, now));
                    }
                    *last_poll.lock().unwrap_or_else(|p| p.into_inner()) = Some(began);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        OffsetHistory { seen, polled, task }
    }

    /// Waits until a poll that began after this call has completed: the history then covers everything
    /// committed before the call (that stayed for a poll interval).
    pub async fn sync(&self) {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(30);
        loop {
            let last = *self.polled.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t > now) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the offsets recorder made no progress for 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every state seen, oldest first, with when it was first seen.
    pub fn states(&self) -> Vec<(Instant, Offsets)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The latest state seen.
    pub fn last(&self) -> Offsets {
        self.states().last().map(|(_, o)| o.clone()).unwrap_or_default()
    }

    /// How many times the offsets came to match `expected` (on every partition `expected` names; others may
    /// differ), counting each arrival once: a second commit of the same plan, after the consumers had moved
    /// on, counts twice.
    pub fn arrivals(&self, expected: &Offsets) -> usize {
        let mut count = 0;
        let mut was = false;
        for (_, state) in self.states() {
            let is = matches(&state, expected);
            if is && !was {
                count += 1;
            }
            was = is;
        }
        count
    }

    /// `arrivals`, counting only states first seen at or after `since` (a state current at `since` that
    /// already matched does not count).
    pub fn arrivals_since(&self, expected: &Offsets, since: Instant) -> usize {
        let states = self.states();
        let mut was = states
            .iter()
            .rev()
            .find(|(t, _)| *t < since)
            .is_some_and(|(_, s)| matches(s, expected));
        let mut count = 0;
        for (_, state) in states.iter().filter(|(t, _)| *t >= since) {
            let is = matches(state, expected);
            if is && !was {
                count += 1;
            }
            was = is;
        }
        count
    }

    /// When the offsets were first exactly `state` (every partition), if ever.
    pub fn first_seen(&self, state: &Offsets) -> Option<Instant> {
        self.states().into_iter().find(|(_, s)| s == state).map(|(t, _)| t)
    }

    /// When the offsets first matched `expected` at or after `since` (`since` itself if they did then).
    pub fn first_match_since(&self, expected: &Offsets, since: Instant) -> Option<Instant> {
        let states = self.states();
        if let Some((_, current)) = states.iter().rev().find(|(t, _)| *t <= since)
            && matches(current, expected)
        {
            return Some(since);
        }
        states
            .iter()
            .find(|(t, s)| *t > since && matches(s, expected))
            .map(|(t, _)| *t)
    }

    /// The smallest committed offset seen on `partition` (None if it never had one).
    pub fn min_of(&self, partition: &(String, i32)) -> Option<i64> {
        self.states()
            .iter()
            .filter_map(|(_, s)| s.get(partition).copied())
            .min()
    }

    /// Waits until the offsets match `expected`, or panics with the history after `timeout`.
    pub async fn wait_for(&self, expected: &Offsets, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !matches(&self.last(), expected) {
            assert!(
                Instant::now() < deadline,
                "committed offsets never became {expected:?} within {timeout:?}; seen: {:?}",
                self.summary()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The states seen, for failure messages.
    pub fn summary(&self) -> Vec<Offsets> {
        self.states().into_iter().map(|(_, o)| o).collect()
    }
}

fn matches(state: &Offsets, expected: &Offsets) -> bool {
    !expected.is_empty() && expected.iter().all(|(k, v)| state.get(k) == Some(v))
}

impl Drop for OffsetHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `spec.replicas` values with when they were seen.
type ReplicaLog = Arc<Mutex<Vec<(Instant, Option<i32>)>>>;

/// Every value of a Deployment's `spec.replicas` (None while it does not exist), watched.
pub struct ReplicaHistory {
    seen: ReplicaLog,
    task: tokio::task::JoinHandle<()>,
}

impl ReplicaHistory {
    pub async fn start<K>(api: Api<K>, name: &str) -> ReplicaHistory
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let seen: ReplicaLog = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn({
            let name = name.to_owned();
            async move {
                let mut stream = std::pin::pin!(watcher::watch_object(api, &name).backoff(Steady));
                while let Some(event) = stream.next().await {
                    let Ok(obj) = event else { continue };
                    let replicas = obj.and_then(|o| {
                        serde_json::to_value(&o).ok()?["spec"]["replicas"]
                            .as_i64()
                            .map(|r| r as i32)
                    });
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.last().map(|(_, r)| *r) != Some(replicas) {
                        log.push((Instant::now(), replicas));
                    }
                }
            }
        });
        let history = ReplicaHistory { seen, task };
        let deadline = Instant::now() + Duration::from_secs(30);
        while history.values().is_empty() {
            assert!(Instant::now() < deadline, "the replica watch on {name} saw nothing");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        history
    }

    /// Every value, oldest first (consecutive duplicates folded).
    pub fn values(&self) -> Vec<Option<i32>> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, r)| *r)
            .collect()
    }

    /// The values that appeared at or after `since`.
    pub fn values_since(&self, since: Instant) -> Vec<Option<i32>> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, r)| *r)
            .collect()
    }
}

impl Drop for ReplicaHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One observed state of an OffsetReset.
#[derive(Clone, Debug, PartialEq)]
pub struct ResetState {
    pub phase: Option<ResetPhase>,
    /// (type, status, reason, message)
    pub conditions: Vec<(String, String, String, String)>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
    /// `status.workload.originalReplicas`
    pub original_replicas: Option<i32>,
}

/// Every distinct state of every OffsetReset in a namespace, watched.
pub struct ResetHistory {
    seen: Arc<Mutex<Vec<(Instant, String, ResetState)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ResetHistory {
    pub fn start(api: Api<OffsetReset>) -> ResetHistory {
        let seen: Arc<Mutex<Vec<(Instant, String, ResetState)>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(
                watcher(api, watcher::Config::default())
                    .backoff(Steady)
                    .applied_objects()
            );
            while let Some(event) = stream.next().await {
                let Ok(reset) = event else { continue };
                let status = reset.status.clone();
                let state = ResetState {
                    phase: status.as_ref().map(|s| s.phase),
                    conditions: status
                        .as_ref()
                        .map(|s| {
                            s.conditions
                                .iter()
                                .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    finalizers: reset.finalizers().to_vec(),
                    deleting: reset.metadata.deletion_timestamp.is_some(),
                    original_replicas: status.and_then(|s| s.workload).map(|w| w.original_replicas),
                };
                let name = reset.name_any();
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                let last = log.iter().rev().find(|(_, n, _)| *n == name).map(|(_, _, s)| s);
                if last != Some(&state) {
                    log.push((Instant::now(), name, state));
                }
            }
        });
        ResetHistory { seen, task }
    }

    /// Every state of `name`, oldest first.
    pub fn states(&self, name: &str) -> Vec<(Instant, ResetState)> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, n, _)| n == name)
            .map(|(t, _, s)| (*t, s.clone()))
            .collect()
    }

    /// The phases `name` went through, in order, each once per stay.
    pub fn phases(&self, name: &str) -> Vec<ResetPhase> {
        let mut out: Vec<ResetPhase> = Vec::new();
        for (_, s) in self.states(name) {
            if let Some(p) = s.phase
                && out.last() != Some(&p)
            {
                out.push(p);
            }
        }
        out
    }

    /// When `name` was first seen in `phase`.
    pub fn entered(&self, name: &str, phase: ResetPhase) -> Option<Instant> {
        self.states(name)
            .into_iter()
            .find(|(_, s)| s.phase == Some(phase))
            .map(|(t, _)| t)
    }

    /// The first state of `name` that satisfies `check`.
    pub fn find(&self, name: &str, check: impl Fn(&ResetState) -> bool) -> Option<(Instant, ResetState)> {
        self.states(name).into_iter().find(|(_, s)| check(s))
    }

    /// Waits until the watch has seen `name` in `phase` (it may lag behind another watch that saw it first).
    pub async fn wait_for_phase(&self, name: &str, phase: ResetPhase, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.entered(name, phase).is_none() {
            assert!(
                Instant::now() < deadline,
                "{name}: phase {phase:?} not seen within {timeout:?}; phases seen: {:?}",
                self.phases(name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The message of the first condition `type_` with `status` and `reason` that `name` ever had.
    pub fn condition_seen(&self, name: &str, type_: &str, status: &str, reason: &str) -> Option<String> {
        self.states(name).into_iter().find_map(|(_, s)| {
            s.conditions
                .into_iter()
                .find(|(t, st, r, _)| t == type_ && st == status && r == reason)
                .map(|(_, _, _, m)| m)
        })
    }
}

impl Drop for ResetHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}
