//! The lag sampler: one batched scan per interval and per KafkaCluster for every ConsumerGroup on it — one
//! DescribeGroups/ConsumerGroupDescribe and one OffsetFetch per coordinator, one ListOffsets per leader, and a
//! small Fetch per lagging partition whose committed offset moved (for time lag) — shared by all the groups'
//! reconciles, never one connection or scan per resource. Partitions that small Fetch found carrying
//! transactions (and only those: plain topics cost nothing more) also get their consumable lag read from batch
//! headers (`KafkaClient::consumable_lag`) while they lag, re-read only when the committed offset or log end moved. Its latest samples are also what the lag metrics
//! show: they are read at every scrape (`LagSource`), not copied into a gauge per partition.

use crate::api::{ConsumerGroup, DeclaredGroupType, IsolationLevel, IsolationSource};
use crate::kafka::{
    FirstRecord, GroupDescription, GroupOffsets, GroupType, Isolation, KafkaClient, KafkaError, OffsetSpec,
    ShareGroupOffsets, TopicPartition, start_offsets_as_committed,
};
use crate::lag::{ConsumableLag, high_watermark_lag};
use crate::telemetry::metrics::{GroupLagPoint, LagSource, Metrics, PartitionLagPoint};
use futures_util::StreamExt as _;
use kube::runtime::reflector::ObjectRef;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one scan saw of one group.
#[derive(Clone, Debug)]
pub struct GroupSample {
    pub description: GroupDescription,
    pub offsets: GroupOffsets,
    /// Every partition of the group's declared topics.
    pub declared: Vec<TopicPartition>,
    /// Log end offsets read by the scan that took this sample, shared by all the groups it sampled (a copy
    /// per group would cost groups × partitions entries).
    pub log_ends: Arc<BTreeMap<TopicPartition, i64>>,
    /// Timestamp of the first record the group will read at or after its committed offset, for lagging
    /// partitions (time lag): on a transactional topic, the first consumable one.
    pub record_timestamps: BTreeMap<TopicPartition, i64>,
    /// The consumable lag of lagging partitions of transactional topics; elsewhere the lag is the
    /// high-watermark lag.
    pub consumable: BTreeMap<TopicPartition, ConsumableLag>,
    /// The group's committed partitions that were seen carrying transactional batches.
    pub transactional: BTreeSet<TopicPartition>,
    /// `spec.isolation` of the group, if declared.
    pub declared_isolation: Option<IsolationLevel>,
    /// What kind of group the lag was measured for: `spec.type` if declared, else what Kafka reported.
    pub group_type: GroupType,
    /// A share group's lag per partition as its broker computes it (KIP-1226): records from the share-partition
    /// start offset (in `offsets`) to the log end not yet acknowledged. Empty for other groups.
    pub share_lag: BTreeMap<TopicPartition, i64>,
    pub taken_at_ms: i64,
}

/// The isolation a group's lag is measured for, and how it was decided: declared, or `readCommitted` once its
/// partitions were seen carrying transactional batches.
pub fn isolation_of(declared: Option<IsolationLevel>, transactional: bool) -> (IsolationLevel, IsolationSource) {
    match (declared, transactional) {
        (Some(level), _) => (level, IsolationSource::Declared),
        (None, true) => (IsolationLevel::ReadCommitted, IsolationSource::Detected),
        (None, false) => (IsolationLevel::ReadUncommitted, IsolationSource::Default),
    }
}

impl GroupSample {
    /// The isolation this group's lag is measured for, and how it was decided.
    pub fn isolation(&self) -> (IsolationLevel, IsolationSource) {
        isolation_of(self.declared_isolation, !self.transactional.is_empty())
    }

    /// The consumable lag of `tp`, where it was measured and the group reads committed.
    pub fn consumable_of(&self, tp: &TopicPartition) -> Option<&ConsumableLag> {
        match self.isolation().0 {
            IsolationLevel::ReadCommitted => self.consumable.get(tp),
            IsolationLevel::ReadUncommitted => None,
        }
    }

    /// The lag of `tp` where it was measured rather than derived from log end − committed: the broker's lag of a
    /// share-partition, or the consumable lag of a `readCommitted` group.
    pub fn measured_lag(&self, tp: &TopicPartition) -> Option<i64> {
        match self.share_lag.get(tp) {
            Some(lag) => Some(*lag),
            None => self.consumable_of(tp).map(|c| c.records),
        }
    }

    /// What the group will still read of `tp` from `committed`: the measured lag where there is one (share
    /// groups; `readCommitted` groups on transactional topics), otherwise the high-watermark lag; None when the
    /// log end is unknown.
    pub fn partition_lag(&self, tp: &TopicPartition, committed: i64) -> Option<i64> {
        match self.measured_lag(tp) {
            Some(lag) => Some(lag),
            None => self.log_ends.get(tp).map(|end| high_watermark_lag(committed, *end)),
        }
    }

    /// The measured lags as the lag evaluation takes them (see `measured_lag`).
    pub fn measured_lags(&self) -> BTreeMap<TopicPartition, ConsumableLag> {
        self.offsets
            .keys()
            .filter_map(|tp| {
                let records = self.measured_lag(tp)?;
                let exact = self.share_lag.contains_key(tp) || self.consumable_of(tp).is_none_or(|c| c.exact);
                let first_offset = self.consumable_of(tp).and_then(|c| c.first_offset);
                Some((
                    tp.clone(),
                    ConsumableLag {
                        records,
                        first_offset,
                        exact,
                    },
                ))
            })
            .collect()
    }

    /// Sum over committed partitions of what the group will still read.
    pub fn total_lag(&self) -> i64 {
        self.offsets
            .iter()
            .filter_map(|(tp, c)| self.partition_lag(tp, c.offset))
            .sum()
    }

    /// Sum over committed partitions of (log end − committed), as `kafka-consumer-groups` shows it.
    pub fn high_watermark_lag(&self) -> i64 {
        self.offsets
            .iter()
            .filter_map(|(tp, c)| self.log_ends.get(tp).map(|end| high_watermark_lag(c.offset, *end)))
            .sum()
    }

    /// The timestamp (ms) of the oldest unconsumed record over all partitions; None when caught up or unknown.
    pub fn oldest_unconsumed_ms(&self) -> Option<i64> {
        self.offsets
            .iter()
            .filter(|(tp, c)| self.partition_lag(tp, c.offset).is_some_and(|l| l > 0))
            .filter_map(|(tp, _)| self.record_timestamps.get(tp).copied())
            .min()
    }

    /// The age in seconds of the oldest unconsumed record over all partitions: exact, from the record's own
    /// timestamp, so it stays right while producers are idle. 0 when caught up (transaction markers and
    /// aborted records are never read: behind only those, a group is caught up).
    pub fn max_lag_seconds(&self) -> Option<i64> {
        let mut max = 0;
        for (tp, c) in &self.offsets {
            if self.partition_lag(tp, c.offset).is_some_and(|l| l > 0) {
                let ts = self.record_timestamps.get(tp)?;
                max = max.max((self.taken_at_ms - ts).max(0) / 1000);
            }
        }
        Some(max)
    }
}

/// What a reconcile declared of a group: its topics, `spec.isolation` and `spec.type`.
type Declared = (Vec<String>, Option<IsolationLevel>, Option<DeclaredGroupType>);

struct Registration {
    topics: Vec<String>,
    /// `spec.isolation`, if declared.
    isolation: Option<IsolationLevel>,
    /// `spec.type`, if declared.
    declared_type: Option<DeclaredGroupType>,
    /// When a reconcile last asked for the group: groups nobody asks for are dropped (the resource is gone).
    last_asked: tokio::time::Instant,
    /// Since when the group has waited for a sample of what it declares now (registration, a change of
    /// topics, isolation or type, or a commit that invalidated its sample).
    waiting_since: tokio::time::Instant,
    /// Only a scan numbered above this one samples what the group declares now: a scan that took its list
    /// of groups before the change must not clear the wait.
    fresh_after_scan: u64,
}

impl Registration {
    /// What the group declares changed, or its sample was invalidated: only a scan that starts after
    /// `scans_started` answers it, and the wait counts from `now`.
    fn wait_for_a_scan_after(&mut self, scans_started: u64, now: tokio::time::Instant) {
        self.fresh_after_scan = scans_started;
        self.waiting_since = now;
    }
}

/// What a reconcile gets when it asks for a group's sample.
pub enum SampleState {
    /// The latest sample of what the group declares now (or the error of the scan that took it).
    Ready(Result<Arc<GroupSample>, KafkaError>),
    /// No sample yet: the group is registered, a scan is under way or queued, and its end triggers the
    /// waiting resources (`Samplers::first_sample_triggers`). Waiting for this long so far.
    Pending { waited: Duration },
}

/// Registrations and results of one cluster.
struct ClusterState {
    groups: HashMap<String, Registration>,
    latest: HashMap<String, Result<Arc<GroupSample>, KafkaError>>,
    /// Groups whose latest sample no longer answers what they declare (a reconcile committed, or the topics
    /// changed): kept for the metrics until a later scan replaces it, never handed to a reconcile again.
    stale: HashSet<String>,
    /// Scans started so far: the number of the scan under way, or of the last one.
    scans_started: u64,
    /// Resources waiting for a group's first (or next fresh) sample, reconciled when a scan brings it.
    waiters: HashMap<String, Vec<ObjectRef<ConsumerGroup>>>,
    /// (partition, offset) -> timestamp of the first record at or after it.
    timestamps: HashMap<(TopicPartition, i64), i64>,
    /// Partitions seen carrying transactional batches: only these get consumable-lag reads. Kept while a
    /// sampled group commits on them.
    transactional: HashSet<TopicPartition>,
    /// (partition, committed, log end) -> consumable lag: read again only when one of them moved.
    consumable: HashMap<(TopicPartition, i64, i64), ConsumableLag>,
}

pub struct ClusterSampler {
    name: String,
    /// Registrations not asked for within this time are dropped.
    forget_after: Duration,
    state: Mutex<ClusterState>,
    wake: tokio::sync::Notify,
    /// The cluster's current client: replaced when its spec or Secrets change.
    client: Mutex<Option<KafkaClient>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// When the next scan's results are expected (the last one's end + the wait before the next + its
    /// duration), so that reconciles that act on lag wake just after a fresh sample instead of at an unrelated
    /// phase.
    next_results: Mutex<Option<tokio::time::Instant>>,
    /// Where resources waiting for a sample are sent when a scan brings it.
    first_samples: FirstSampleSender,
}

impl Drop for ClusterSampler {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

/// Record-timestamp reads (for time lag) in flight at once per cluster.
const TIMESTAMP_READS_IN_FLIGHT: usize = 32;

/// Groups are dropped after this many of their reconcile intervals without a reconcile asking for them. By
/// time, not by scans: scans that a new group's registration triggers early must not drop the others, whose
/// re-registration would trigger more scans in turn.
const IDLE_INTERVALS_BEFORE_DROP: u32 = 3;

impl ClusterSampler {
    fn new(name: String, forget_after: Duration, first_samples: FirstSampleSender) -> Arc<ClusterSampler> {
        Arc::new(ClusterSampler {
            name,
            forget_after,
            state: Mutex::new(ClusterState {
                groups: HashMap::new(),
                latest: HashMap::new(),
                stale: HashSet::new(),
                scans_started: 0,
                waiters: HashMap::new(),
                timestamps: HashMap::new(),
                transactional: HashSet::new(),
                consumable: HashMap::new(),
            }),
            wake: tokio::sync::Notify::new(),
            client: Mutex::new(None),
            task: Mutex::new(None),
            next_results: Mutex::new(None),
            first_samples,
        })
    }

    fn start(self: &Arc<Self>, client: KafkaClient, interval: Duration, metrics: Arc<Metrics>) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(self);
        *task = Some(tokio::spawn(async move {
            loop {
                let Some(sampler) = weak.upgrade() else { return };
                let client = sampler.client.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let mut wait_for = interval;
                if let Some(client) = client {
                    let started = tokio::time::Instant::now();
                    sampler.scan(&client, &metrics).await;
                    let took = started.elapsed();
                    // Scans start every interval, whatever they take (a long scan still leaves a quarter of
                    // the interval idle): the lag a reaction waits for is at most one interval old at the
                    // scan's start, however many groups the scan covers.
                    wait_for = interval.saturating_sub(took).max(interval / 4);
                    *sampler.next_results.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(tokio::time::Instant::now() + wait_for + took);
                }
                let wait = tokio::time::sleep(wait_for);
                tokio::select! {
                    _ = wait => {}
                    _ = sampler.wake.notified() => {}
                }
            }
        }));
    }

    /// Drops the groups nobody asked for lately, and numbers the scan of the rest: its groups, their topics
    /// and its number. None without groups.
    fn begin_scan(&self, metrics: &Metrics) -> Option<(Vec<String>, BTreeSet<String>, u64)> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let dropped: Vec<String> = state
            .groups
            .iter()
            .filter(|(_, r)| r.last_asked.elapsed() > self.forget_after)
            .map(|(g, _)| g.clone())
            .collect();
        for g in &dropped {
            state.groups.remove(g);
            state.latest.remove(g);
            state.stale.remove(g);
            state.waiters.remove(g);
            metrics.forget_group(&self.name, g);
        }
        if state.groups.is_empty() {
            return None;
        }
        state.scans_started += 1;
        let topics = state.groups.values().flat_map(|r| r.topics.iter().cloned()).collect();
        Some((state.groups.keys().cloned().collect(), topics, state.scans_started))
    }

    /// Scans every registered group once.
    async fn scan(&self, client: &KafkaClient, metrics: &Metrics) {
        let Some((groups, topics, scan_no)) = self.begin_scan(metrics) else {
            return;
        };
        let topics: Vec<String> = topics.into_iter().collect();
        let (descriptions, offsets, metadata) = tokio::join!(
            client.describe_groups(&groups),
            // One OffsetFetch per coordinator: a scan every interval is paced by its interval, not by the
            // request's length, and each extra connection would be one more request per interval.
            client.committed_offsets_over(&groups, 1),
            client.metadata_with(&topics)
        );
        let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        let mut results: HashMap<String, Result<GroupSample, KafkaError>> = HashMap::new();
        let metadata = match metadata {
            Ok(m) => m,
            // One group's missing topic must not blind the others: that group alone reports it below.
            Err(KafkaError::UnknownTopic(_)) => match client.metadata().await {
                Ok(m) => m,
                Err(e) => {
                    self.publish_failure(scan_no, &groups, &e);
                    return;
                }
            },
            Err(e) => {
                self.publish_failure(scan_no, &groups, &e);
                return;
            }
        };
        // Every partition anyone needs the end of: declared topics and committed partitions that still exist.
        let mut wanted: BTreeSet<TopicPartition> = BTreeSet::new();
        // Each declared topic's partitions once per scan: the groups' `declared` lists share their names.
        let mut partitions_of: HashMap<&str, Result<Vec<TopicPartition>, KafkaError>> = HashMap::new();
        for t in &topics {
            let partitions = metadata.partitions_of(t);
            if let Ok(ps) = &partitions {
                wanted.extend(ps.iter().cloned());
            }
            partitions_of.insert(t, partitions);
        }
        for o in offsets.values().flatten() {
            wanted.extend(o.keys().filter(|tp| metadata.leader(tp).is_some()).cloned());
        }
        let wanted: Vec<TopicPartition> = wanted.into_iter().collect();
        let log_ends = match client
            .list_offsets(&wanted, OffsetSpec::Latest, Isolation::ReadUncommitted)
            .await
        {
            Ok(m) => Arc::new(m.into_iter().map(|(tp, o)| (tp, o.offset)).collect::<BTreeMap<_, _>>()),
            Err(e) => {
                self.publish_failure(scan_no, &groups, &e);
                return;
            }
        };
        let registered: HashMap<String, Declared> = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state
                .groups
                .iter()
                .map(|(g, r)| (g.clone(), (r.topics.clone(), r.isolation, r.declared_type)))
                .collect()
        };
        let mut descriptions = descriptions;
        let mut offsets = offsets;
        let share_types: HashMap<String, GroupType> = groups
            .iter()
            .map(|g| {
                let declared = registered.get(g).and_then(|r| r.2);
                let described = descriptions.get(g).and_then(|d| d.as_ref().ok());
                (g.clone(), effective_type(declared, described))
            })
            .collect();
        let mut share_offsets = self.read_share_offsets(client, &share_types, &registered).await;
        for g in &groups {
            let (declared_topics, declared_isolation, _) = registered.get(g).cloned().unwrap_or_default();
            let group_type = share_types.get(g).cloned().unwrap_or(GroupType::Classic);
            let result = (|| {
                let description = descriptions
                    .remove(g)
                    .unwrap_or_else(|| Err(KafkaError::Config("no answer".into())))?;
                let (offsets, share_lag) = match share_offsets.remove(g) {
                    Some(share) => split_share_offsets(share?),
                    None => (
                        offsets
                            .remove(g)
                            .unwrap_or_else(|| Err(KafkaError::Config("no answer".into())))?,
                        BTreeMap::new(),
                    ),
                };
                let mut declared = Vec::new();
                for t in &declared_topics {
                    match partitions_of.get(t.as_str()) {
                        Some(partitions) => declared.extend(partitions.as_ref().map_err(Clone::clone)?.iter().cloned()),
                        None => declared.extend(metadata.partitions_of(t)?),
                    }
                }
                Ok(GroupSample {
                    description,
                    offsets,
                    declared,
                    log_ends: log_ends.clone(),
                    record_timestamps: BTreeMap::new(),
                    consumable: BTreeMap::new(),
                    transactional: BTreeSet::new(),
                    declared_isolation,
                    group_type,
                    share_lag,
                    taken_at_ms: now_ms,
                })
            })();
            results.insert(g.clone(), result);
        }
        self.fill_timestamps(client, metrics, &mut results).await;
        self.publish(scan_no, results);
    }

    /// Start offsets and lag of the share groups among `types` (one DescribeShareGroupOffsets per coordinator,
    /// none at all without share groups). A group declared `share` that Kafka holds as another type has no
    /// share-partitions: empty, for the reconciler to report the mismatch.
    async fn read_share_offsets(
        &self,
        client: &KafkaClient,
        types: &HashMap<String, GroupType>,
        registered: &HashMap<String, Declared>,
    ) -> HashMap<String, Result<ShareGroupOffsets, KafkaError>> {
        let share: Vec<String> = types
            .iter()
            .filter(|(_, t)| **t == GroupType::Share)
            .map(|(g, _)| g.clone())
            .collect();
        if share.is_empty() {
            return HashMap::new();
        }
        let mut answers = client.share_group_offsets(&share).await;
        for (g, answer) in answers.iter_mut() {
            let declared_share = registered.get(g).and_then(|r| r.2) == Some(DeclaredGroupType::Share);
            if declared_share
                && answer
                    .as_ref()
                    .is_err_and(|e| e.code() == Some(kafka_protocol::error::ResponseError::GroupIdNotFound))
            {
                *answer = Ok(ShareGroupOffsets::new());
            }
        }
        answers
    }

    /// Reads (or takes from the caches) what each lagging partition's lag and time lag need: on partitions known
    /// to carry transactions the consumable lag, then the timestamp of the first record the group will read
    /// (at the committed offset on plain partitions, where that small Fetch also tells a transactional one).
    async fn fill_timestamps(
        &self,
        client: &KafkaClient,
        metrics: &Metrics,
        results: &mut HashMap<String, Result<GroupSample, KafkaError>>,
    ) {
        // Lagging by the cheap measure: (partition, committed, log end).
        let mut lagging: BTreeSet<(TopicPartition, i64, i64)> = BTreeSet::new();
        let mut committed_on: HashSet<TopicPartition> = HashSet::new();
        for sample in results.values().flatten() {
            for (tp, c) in &sample.offsets {
                committed_on.insert(tp.clone());
                if let Some(end) = sample.log_ends.get(tp).filter(|end| **end > c.offset) {
                    lagging.insert((tp.clone(), c.offset, *end));
                }
            }
        }
        let mut consumable: HashMap<(TopicPartition, i64, i64), ConsumableLag> = HashMap::new();
        let to_read: Vec<(TopicPartition, i64, i64)> = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut to_read = Vec::new();
            for key in lagging.iter().filter(|k| state.transactional.contains(&k.0)) {
                match state.consumable.get(key) {
                    Some(c) => {
                        consumable.insert(key.clone(), *c);
                    }
                    None => to_read.push(key.clone()),
                }
            }
            to_read
        };
        let (read, mut fetches) = read_consumable(client, to_read).await;
        consumable.extend(read);

        // Where each lagging partition's time lag is read: the first consumable record, or the committed offset.
        let probe_offset =
            |key: &(TopicPartition, i64, i64), consumable: &HashMap<_, ConsumableLag>| match consumable.get(key) {
                Some(c) => c.first_offset,
                None => Some(key.1),
            };
        let mut needed: BTreeSet<(TopicPartition, i64)> = lagging
            .iter()
            .filter_map(|k| probe_offset(k, &consumable).map(|o| (k.0.clone(), o)))
            .collect();
        let probes = self.probe(client, &needed).await;
        // Plain partitions whose probe met transactional batches: remembered, and measured now.
        let found: Vec<(TopicPartition, i64, i64)> = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let found: Vec<_> = lagging
                .iter()
                .filter(|k| !state.transactional.contains(&k.0))
                .filter(|k| probes.get(&(k.0.clone(), k.1)).is_some_and(|r| r.transactional))
                .cloned()
                .collect();
            state.transactional.extend(found.iter().map(|k| k.0.clone()));
            found
        };
        if !found.is_empty() {
            let (read, more) = read_consumable(client, found).await;
            fetches += more;
            let again: BTreeSet<(TopicPartition, i64)> = read
                .iter()
                .filter_map(|(k, c)| c.first_offset.filter(|f| *f != k.1).map(|f| (k.0.clone(), f)))
                .collect();
            for (k, c) in &read {
                needed.remove(&(k.0.clone(), k.1));
                if let Some(f) = c.first_offset {
                    needed.insert((k.0.clone(), f));
                }
            }
            consumable.extend(read);
            self.probe(client, &again).await;
        }

        metrics.consumable_lag_fetched(&self.name, fetches);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Keep only what this scan needs: the caches follow the committed offsets.
        state.timestamps.retain(|k, _| needed.contains(k));
        state.consumable = consumable.clone();
        state.transactional.retain(|tp| committed_on.contains(tp));
        for sample in results.values_mut().flatten() {
            for (tp, c) in &sample.offsets {
                if state.transactional.contains(tp) {
                    sample.transactional.insert(tp.clone());
                }
                let Some(end) = sample.log_ends.get(tp) else { continue };
                let key = (tp.clone(), c.offset, *end);
                if let Some(lag) = consumable.get(&key) {
                    sample.consumable.insert(tp.clone(), *lag);
                }
                let at = probe_offset(&key, &consumable);
                if let Some(ts) = at.and_then(|o| state.timestamps.get(&(tp.clone(), o))) {
                    sample.record_timestamps.insert(tp.clone(), *ts);
                }
            }
        }
    }

    /// Reads the first record at each of `offsets` not in the timestamp cache (`first_records`), caches
    /// the timestamps found and returns what each read found.
    async fn probe(
        &self,
        client: &KafkaClient,
        offsets: &BTreeSet<(TopicPartition, i64)>,
    ) -> HashMap<(TopicPartition, i64), FirstRecord> {
        let missing: Vec<(TopicPartition, i64)> = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            offsets
                .iter()
                .filter(|k| !state.timestamps.contains_key(*k))
                .cloned()
                .collect()
        };
        // A new operator finds every lagging partition of every group without a timestamp (25,000 in the scale
        // benchmark): read together, one Fetch per leader per round.
        let fetched = client.first_records(missing).await.found;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = HashMap::new();
        for ((tp, offset), first) in fetched {
            if let Some(ts) = first.timestamp {
                state.timestamps.insert((tp.clone(), offset), ts);
            }
            found.insert((tp, offset), first);
        }
        found
    }

    /// A scan that failed before it could sample any group: every group of it gets the error.
    fn publish_failure(&self, scan_no: u64, groups: &[String], e: &KafkaError) {
        self.publish(scan_no, groups.iter().map(|g| (g.clone(), Err(e.clone()))).collect());
    }

    fn publish(&self, scan_no: u64, results: HashMap<String, Result<GroupSample, KafkaError>>) {
        let mut ready = Vec::new();
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for (group, result) in results {
                // A change registered while this scan ran is not answered by it: the group stays stale.
                let answers_now = state.groups.get(&group).is_none_or(|r| r.fresh_after_scan < scan_no);
                if answers_now {
                    state.stale.remove(&group);
                    if let Some(waiting) = state.waiters.remove(&group) {
                        ready.extend(waiting);
                    }
                } else {
                    state.stale.insert(group.clone());
                }
                state.latest.insert(group, result.map(Arc::new));
            }
        }
        for waiter in ready {
            // The receiver lives as long as the ConsumerGroup controller; after it, nobody waits.
            let _ = self.first_samples.send(waiter);
        }
    }

    /// The latest sample of `group` for what the resource `waiter` declares, registering or updating the
    /// group first. Without a fresh sample this does not wait: it wakes the scanner, and the end of the scan
    /// that brings the sample reconciles `waiter` again. One scan thus takes in every new group at once,
    /// however many resources are created together (a reconcile waiting per group would let only as many
    /// groups as the controller's concurrency into each scan).
    pub fn sample(
        &self,
        group: &str,
        topics: &[String],
        isolation: Option<IsolationLevel>,
        declared_type: Option<DeclaredGroupType>,
        waiter: ObjectRef<ConsumerGroup>,
    ) -> SampleState {
        let now = tokio::time::Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let scans_started = state.scans_started;
        let changed = match state.groups.get_mut(group) {
            Some(r) => {
                r.last_asked = now;
                let changed = r.topics != topics || r.isolation != isolation || r.declared_type != declared_type;
                if changed {
                    r.topics = topics.to_vec();
                    r.isolation = isolation;
                    r.declared_type = declared_type;
                    r.wait_for_a_scan_after(scans_started, now);
                }
                changed
            }
            None => {
                state.groups.insert(
                    group.to_owned(),
                    Registration {
                        topics: topics.to_vec(),
                        isolation,
                        declared_type,
                        last_asked: now,
                        waiting_since: now,
                        fresh_after_scan: scans_started,
                    },
                );
                true
            }
        };
        if changed && state.latest.contains_key(group) {
            state.stale.insert(group.to_owned());
        }
        if state.has_fresh(group)
            && let Some(latest) = state.latest.get(group)
        {
            return SampleState::Ready(latest.clone());
        }
        let waiters = state.waiters.entry(group.to_owned()).or_default();
        if !waiters.contains(&waiter) {
            waiters.push(waiter);
        }
        let waited = state
            .groups
            .get(group)
            .map_or(Duration::ZERO, |r| now - r.waiting_since);
        drop(state);
        // A scan under way finishes first (it took its list before this group): the wake queues the next one.
        self.wake.notify_one();
        SampleState::Pending { waited }
    }

    /// How long until the next scan's results are expected; None before the first scan.
    pub fn next_results_in(&self) -> Option<Duration> {
        let due = (*self.next_results.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some(due.saturating_duration_since(tokio::time::Instant::now()))
    }

    /// Forget a sample the reconciler just invalidated by committing (the next scan refreshes it).
    pub fn invalidate(&self, group: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let scans_started = state.scans_started;
        if let Some(r) = state.groups.get_mut(group) {
            r.wait_for_a_scan_after(scans_started, tokio::time::Instant::now());
        }
        if state.latest.contains_key(group) {
            state.stale.insert(group.to_owned());
        }
    }

    /// Hands every group's latest sample to `f`, as the lag metrics show it.
    /// The samples are taken out of the lock first (shared pointers): a scrape streams to a client at its pace,
    /// and must not hold up the next scan's publication meanwhile.
    fn visit_samples(&self, f: &mut dyn FnMut(&GroupLagPoint<'_>)) {
        let samples: Vec<(String, Arc<GroupSample>)> = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state
                .latest
                .iter()
                .filter_map(|(group, sample)| sample.as_ref().ok().map(|s| (group.clone(), s.clone())))
                .collect()
        };
        for (group, sample) in &samples {
            f(&lag_point(&self.name, group, sample));
        }
    }
}

impl ClusterState {
    fn has_fresh(&self, group: &str) -> bool {
        self.latest.contains_key(group) && !self.stale.contains(group)
    }
}

/// Sends a resource whose group's sample arrived to the ConsumerGroup controller.
type FirstSampleSender = tokio::sync::mpsc::UnboundedSender<ObjectRef<ConsumerGroup>>;

/// One sampler per KafkaCluster.
pub struct Samplers {
    clusters: Mutex<HashMap<(String, String), Arc<ClusterSampler>>>,
    first_samples: FirstSampleSender,
    first_sample_triggers: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<ObjectRef<ConsumerGroup>>>>,
}

impl Default for Samplers {
    fn default() -> Self {
        let (first_samples, triggers) = tokio::sync::mpsc::unbounded_channel();
        Samplers {
            clusters: Mutex::new(HashMap::new()),
            first_samples,
            first_sample_triggers: Mutex::new(Some(triggers)),
        }
    }
}

impl Samplers {
    /// The resources to reconcile because a scan brought the sample they waited for (`SampleState::Pending`).
    /// Taken once, by the ConsumerGroup controller; later calls get a stream that never yields.
    pub fn first_sample_triggers(&self) -> futures_util::stream::BoxStream<'static, ObjectRef<ConsumerGroup>> {
        match self
            .first_sample_triggers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(receiver) => Box::pin(futures_util::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|waiter| (waiter, receiver))
            })),
            None => Box::pin(futures_util::stream::pending()),
        }
    }

    /// The sampler of cluster `namespace/name`, started (or restarted with a new client) on demand; it scans
    /// every `interval`, and the groups on it are reconciled at least every `reconcile_interval`.
    pub fn for_cluster(
        &self,
        namespace: &str,
        name: &str,
        client: &KafkaClient,
        interval: Duration,
        reconcile_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<ClusterSampler> {
        let forget_after = interval.max(reconcile_interval) * IDLE_INTERVALS_BEFORE_DROP;
        let sampler = {
            let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
            clusters
                .entry((namespace.to_owned(), name.to_owned()))
                .or_insert_with(|| {
                    ClusterSampler::new(format!("{namespace}/{name}"), forget_after, self.first_samples.clone())
                })
                .clone()
        };
        sampler.start(client.clone(), interval, metrics);
        sampler
    }

    /// Stops sampling cluster `namespace/name` (deleted, or its shard went to another replica): its scans end
    /// once the last reconcile using it lets go, and its lag leaves this replica's metrics at once.
    pub fn remove(&self, namespace: &str, name: &str) {
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

impl LagSource for Samplers {
    fn visit(&self, f: &mut dyn FnMut(&GroupLagPoint<'_>)) {
        let clusters: Vec<Arc<ClusterSampler>> = self
            .clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for sampler in clusters {
            sampler.visit_samples(f);
        }
    }
}

/// The consumable lag of each of `keys` (partition, committed, log end), bounded concurrency, and the Fetches
/// that took; a partition whose read failed is left out (its lag is then the high-watermark lag).
async fn read_consumable(
    client: &KafkaClient,
    keys: Vec<(TopicPartition, i64, i64)>,
) -> (Vec<((TopicPartition, i64, i64), ConsumableLag)>, u64) {
    let reads: Vec<_> = futures_util::stream::iter(keys.into_iter().map(|key| {
        let client = client.clone();
        async move {
            let read = client.consumable_lag(&key.0, key.1).await;
            (key, read)
        }
    }))
    .buffer_unordered(TIMESTAMP_READS_IN_FLIGHT)
    .collect()
    .await;
    let mut fetches = 0;
    let mut out = Vec::with_capacity(reads.len());
    for (key, read) in reads {
        match read {
            Ok(read) => {
                fetches += read.fetches as u64;
                out.push((key, read.lag));
            }
            Err(e) => {
                // At least the one Fetch that failed.
                fetches += 1;
                tracing::debug!(partition = %key.0, error = %e, "consumable lag not read");
            }
        }
    }
    (out, fetches)
}

/// The kind of group a sample measures: `spec.type` where declared (`consumer` keeps the protocol Kafka reports),
/// else what Kafka reported; a group that does not exist yet counts as a classic one.
pub fn effective_type(declared: Option<DeclaredGroupType>, described: Option<&GroupDescription>) -> GroupType {
    let reported = described.filter(|d| d.exists()).map(|d| d.group_type.clone());
    match declared {
        Some(DeclaredGroupType::Share) => GroupType::Share,
        Some(DeclaredGroupType::Streams) => GroupType::Streams,
        Some(DeclaredGroupType::Consumer) => match reported {
            Some(t @ (GroupType::Classic | GroupType::Consumer)) => t,
            _ => GroupType::Classic,
        },
        None => reported.unwrap_or(GroupType::Classic),
    }
}

/// A share group's start offsets as the sample's offsets (what the group has consumed up to), and the broker's
/// lag per partition where it computed one.
fn split_share_offsets(share: ShareGroupOffsets) -> (GroupOffsets, BTreeMap<TopicPartition, i64>) {
    let lag = share
        .iter()
        .filter_map(|(tp, p)| p.lag.map(|l| (tp.clone(), l)))
        .collect();
    (start_offsets_as_committed(&share), lag)
}

/// A group's sample as the lag metrics show it: per partition the committed offset, the log end and the age of
/// the oldest unconsumed record (0 when caught up, unknown until its timestamp was read).
fn lag_point<'a>(cluster: &'a str, group: &'a str, sample: &'a GroupSample) -> GroupLagPoint<'a> {
    let partitions = sample
        .offsets
        .iter()
        .map(|(tp, committed)| {
            let log_end = sample.log_ends.get(tp).copied();
            let lag_seconds = sample.partition_lag(tp, committed.offset).and_then(|lag| {
                if lag == 0 {
                    Some(0)
                } else {
                    sample
                        .record_timestamps
                        .get(tp)
                        .map(|ts| (sample.taken_at_ms - ts).max(0) / 1000)
                }
            });
            PartitionLagPoint {
                topic: &tp.topic,
                partition: tp.partition,
                committed: committed.offset,
                log_end,
                measured_lag: sample.measured_lag(tp),
                lag_seconds,
            }
        })
        .collect();
    GroupLagPoint {
        cluster_name: cluster,
        group,
        group_type: sample.group_type.as_str(),
        members: sample.description.members.len(),
        max_lag_seconds: sample.max_lag_seconds(),
        partitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_is_declared_or_read_committed_once_transactions_were_seen() {
        use IsolationLevel::*;
        let cases = [
            (None, false, (ReadUncommitted, IsolationSource::Default)),
            (None, true, (ReadCommitted, IsolationSource::Detected)),
            (
                Some(ReadUncommitted),
                true,
                (ReadUncommitted, IsolationSource::Declared),
            ),
            (Some(ReadCommitted), false, (ReadCommitted, IsolationSource::Declared)),
        ];
        for (declared, transactional, want) in cases {
            assert_eq!(
                isolation_of(declared, transactional),
                want,
                "{declared:?}, {transactional}"
            );
        }
    }

    fn waiter(name: &str) -> ObjectRef<ConsumerGroup> {
        ObjectRef::new(name).within("ns")
    }

    fn unavailable() -> Result<GroupSample, KafkaError> {
        Err(KafkaError::NoAttemptFinished(Duration::from_secs(1)))
    }

    #[tokio::test]
    async fn a_new_group_waits_for_the_scan_that_includes_it_and_that_scan_wakes_its_resource() {
        let samplers = Samplers::default();
        let mut triggers = samplers.first_sample_triggers();
        let sampler = ClusterSampler::new("ns/c".into(), Duration::from_secs(60), samplers.first_samples.clone());
        let metrics = Metrics::default();
        let topics = vec!["t".to_owned()];
        assert!(sampler.begin_scan(&metrics).is_none(), "no groups, no scan");

        // Registered while no scan runs: pending, not waiting on anything.
        let first = sampler.sample("g1", &topics, None, None, waiter("a"));
        assert!(matches!(first, SampleState::Pending { .. }));
        let (groups, _, scan) = sampler.begin_scan(&metrics).expect("a scan of g1");
        assert_eq!(groups, vec!["g1".to_owned()]);

        // While that scan runs: a second group registers, and g1's resource changes its topics.
        assert!(matches!(
            sampler.sample("g2", &topics, None, None, waiter("b")),
            SampleState::Pending { .. }
        ));
        let changed = vec!["u".to_owned()];
        assert!(matches!(
            sampler.sample("g1", &changed, None, None, waiter("a")),
            SampleState::Pending { .. }
        ));
        sampler.publish(scan, HashMap::from([("g1".to_owned(), unavailable())]));
        // The scan took g1's old topics: it answers neither g1 nor g2, and wakes nobody.
        assert!(matches!(
            sampler.sample("g1", &changed, None, None, waiter("a")),
            SampleState::Pending { .. }
        ));
        assert!(futures_util::FutureExt::now_or_never(triggers.next()).is_none());

        let (mut groups, _, scan) = sampler.begin_scan(&metrics).expect("the next scan");
        groups.sort();
        assert_eq!(groups, vec!["g1".to_owned(), "g2".to_owned()]);
        sampler.publish(scan, groups.iter().map(|g| (g.clone(), unavailable())).collect());
        let mut woken = vec![
            triggers.next().await.expect("a trigger"),
            triggers.next().await.expect("a second trigger"),
        ];
        woken.sort_by_key(|w| w.name.clone());
        assert_eq!(woken, vec![waiter("a"), waiter("b")], "each waiting resource once");
        assert!(matches!(
            sampler.sample("g1", &changed, None, None, waiter("a")),
            SampleState::Ready(Err(_))
        ));
        assert!(matches!(
            sampler.sample("g2", &topics, None, None, waiter("b")),
            SampleState::Ready(Err(_))
        ));

        // A commit invalidates the sample until a scan that starts afterwards.
        sampler.invalidate("g2");
        assert!(matches!(
            sampler.sample("g2", &topics, None, None, waiter("b")),
            SampleState::Pending { .. }
        ));
    }
}
