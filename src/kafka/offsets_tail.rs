//! `LagScanner`: warm lag scans that tail `__consumer_offsets` (as Burrow does) instead of sending one big
//! OffsetFetch per scan. It keeps every scanned group's committed offsets and brings them up to date with one
//! Fetch per `__consumer_offsets` leader, falling back to the plain OffsetFetch path whenever the tail cannot
//! be trusted.
//!
//! Baseline without reading the topic from the start: note each partition's last stable offset (ListOffsets,
//! READ_COMMITTED), THEN OffsetFetch the groups; from the noted positions on, records are applied in log
//! order (those already reflected in the OffsetFetch answer are applied again harmlessly: later records
//! overwrite). A group new to the scanner gets the same treatment: the tail catches up first, then one
//! OffsetFetch for the new groups only.

use super::client::KafkaClient;
use super::connection::Connection;
use super::error::KafkaError;
use super::groups::GroupFilter;
use super::lag_snapshot::{GroupLag, LagSnapshot, PartitionLag};
use super::metadata::TopicPartition;
use super::offsets::{Isolation, OffsetSpec};
use super::offsets_records::{AbortedTxn, OffsetsOfGroup, OffsetsRecord, RecordError, read_batches};
use crate::lag::high_watermark_lag;
use crate::wire::Api;
use futures_util::future::join_all;
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// The internal topic where group coordinators keep committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// After the tail failed for a reason that will not go away by itself (the topic is missing or not readable,
/// a record format this client does not know), this many scans take the plain path before it is tried again.
const PAUSE_SCANS: u32 = 20;
/// Fetch rounds per scan to reach the end of `__consumer_offsets` (each brings up to `PARTITION_MAX_BYTES`
/// per partition); a tail further behind continues from where it got to on the next scan.
const MAX_FETCH_ROUNDS: usize = 16;
/// Rounds in a row that may end in a leader change or a broken connection before the scan gives up on the
/// tail.
const MAX_RETRY_ROUNDS: usize = 3;
const PARTITION_MAX_BYTES: i32 = 4 * 1024 * 1024;
const FETCH_MAX_BYTES: i32 = 32 * 1024 * 1024;

/// How a scan obtained the committed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanPath {
    /// The tail was current: one Fetch per `__consumer_offsets` leader brought the commits since the last scan
    /// (`records` of them), and one OffsetFetch read the `new_groups` the scanner had not seen before.
    Tail { records: usize, new_groups: usize },
    /// The tail was (re)built: ListOffsets of `__consumer_offsets`, then OffsetFetch of every group.
    Baseline,
    /// The plain OffsetFetch path (`KafkaClient::lag_snapshot`), with why the tail was not used.
    Plain { reason: String },
}

impl ScanPath {
    /// `tail`, `baseline` or `plain`.
    pub fn name(&self) -> &'static str {
        match self {
            ScanPath::Tail { .. } => "tail",
            ScanPath::Baseline => "baseline",
            ScanPath::Plain { .. } => "plain",
        }
    }
}

/// A lag snapshot and how it was obtained.
#[derive(Debug)]
pub struct LagScan {
    pub snapshot: LagSnapshot,
    pub path: ScanPath,
}

/// Why the tail could not serve a scan.
#[derive(Debug)]
enum TailError {
    /// The positions are no longer valid (OFFSET_OUT_OF_RANGE, the partitions changed): rebuild the baseline.
    Rebuild(String),
    /// Use the plain path for this scan; `pause` when it is likely to fail again on the next scans.
    Fallback { reason: String, pause: bool },
}

impl From<RecordError> for TailError {
    fn from(e: RecordError) -> Self {
        TailError::Fallback {
            reason: format!("{OFFSETS_TOPIC}: {e}"),
            pause: matches!(
                e,
                RecordError::UnknownKeyVersion(_) | RecordError::UnknownValueVersion(_)
            ),
        }
    }
}

/// What the tail knows: positions in `__consumer_offsets` and the committed offsets of the scanned groups.
struct Tail {
    /// Partition of `__consumer_offsets` -> the next offset to read.
    positions: BTreeMap<i32, i64>,
    groups: HashMap<Arc<str>, OffsetsOfGroup>,
    /// Interned topic names (one allocation per topic, however many groups commit on it).
    topics: HashSet<Arc<str>>,
    /// One connection per `__consumer_offsets` leader, outside the client's pool, so that the tail's Fetch
    /// does not wait behind the scan's other requests.
    connections: HashMap<i32, Arc<Connection>>,
}

impl Tail {
    fn new(positions: BTreeMap<i32, i64>) -> Tail {
        Tail {
            positions,
            groups: HashMap::new(),
            topics: HashSet::new(),
            connections: HashMap::new(),
        }
    }

    fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.get(topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.topics.insert(t.clone());
        t
    }

    /// Starts tracking a group with the offsets an OffsetFetch returned.
    fn track(&mut self, group: &str, offsets: super::groups::GroupOffsets) {
        let mut own = OffsetsOfGroup::new();
        for (tp, c) in offsets {
            own.insert((self.intern(&tp.topic), tp.partition), c.offset);
        }
        self.groups.insert(Arc::from(group), own);
    }

    /// Applies one record, in log order, to the tracked groups (records of other groups are not kept: a group
    /// that is scanned later is read with OffsetFetch once the tail has caught up).
    fn apply(&mut self, record: OffsetsRecord) {
        match record {
            OffsetsRecord::OffsetCommit {
                group,
                topic,
                partition,
                offset,
                ..
            } => {
                if !self.groups.contains_key(group.as_str()) {
                    return;
                }
                let topic = self.intern(&topic);
                if let Some(offsets) = self.groups.get_mut(group.as_str()) {
                    match offset {
                        Some(o) => {
                            offsets.insert((topic, partition), o);
                        }
                        None => {
                            offsets.remove(&(topic, partition));
                        }
                    }
                }
            }
            // A group's deletion (DeleteGroups, expiry) writes a tombstone for each of its offsets before the
            // group's own; a classic group converted to the consumer protocol gets a group tombstone while
            // its offsets stay. So committed offsets follow the offset records alone.
            OffsetsRecord::GroupMetadata { .. } | OffsetsRecord::Other { .. } => {}
        }
    }

    /// Distinct partitions the given groups committed on.
    fn partitions_of<'a>(&self, groups: impl Iterator<Item = &'a str>) -> BTreeSet<TopicPartition> {
        // Topics are interned: the pointer identifies the topic (hashing it is cheaper than the name, and
        // 2,000 groups × 50 partitions make this loop a visible part of a warm scan).
        let mut seen: HashMap<(usize, i32), &Arc<str>> = HashMap::new();
        for g in groups {
            if let Some(offsets) = self.groups.get(g) {
                for (t, p) in offsets.keys() {
                    seen.entry((topic_id(t), *p)).or_insert(t);
                }
            }
        }
        seen.into_iter()
            .map(|((_, p), t)| TopicPartition::new(t.to_string(), p))
            .collect()
    }
}

/// Lag scans that tail `__consumer_offsets`; see the module documentation. Opt-in: one scanner per
/// long-lived caller (it holds every scanned group's committed offsets, ≈ 100 bytes per group-partition).
pub struct LagScanner {
    client: KafkaClient,
    tail: Option<Tail>,
    /// Scans left on the plain path before the tail is tried again, and why.
    paused: Option<(u32, String)>,
}

impl std::fmt::Debug for LagScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagScanner")
            .field("tailing", &self.tail.is_some())
            .field("groups", &self.tail.as_ref().map_or(0, |t| t.groups.len()))
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl LagScanner {
    pub fn new(client: KafkaClient) -> LagScanner {
        LagScanner {
            client,
            tail: None,
            paused: None,
        }
    }

    pub fn client(&self) -> &KafkaClient {
        &self.client
    }

    /// The lag of `groups`, like `KafkaClient::lag_snapshot`, through the tail when it can be used.
    pub async fn scan(&mut self, groups: &[String], isolation: Isolation) -> Result<LagScan, KafkaError> {
        if let Some(mut tail) = self.usable_tail() {
            let caught_up = catch_up_with_known_ends(&self.client, &mut tail, isolation).await;
            return self.finish(tail, caught_up, groups, isolation).await;
        }
        self.scan_without_tail(groups, isolation).await
    }

    /// The lag of every group that ListGroups reports (filtered); the tail's Fetch and the log ends of the
    /// partitions it already knows are in flight together with ListGroups.
    pub async fn scan_all_groups(&mut self, filter: &GroupFilter, isolation: Isolation) -> Result<LagScan, KafkaError> {
        if let Some(mut tail) = self.usable_tail() {
            let (listed, caught_up) = tokio::join!(
                self.client.list_groups(filter),
                catch_up_with_known_ends(&self.client, &mut tail, isolation)
            );
            let groups: Vec<String> = listed?.into_iter().map(|g| g.group_id).collect();
            return self.finish(tail, caught_up, &groups, isolation).await;
        }
        let groups: Vec<String> = self
            .client
            .list_groups(filter)
            .await?
            .into_iter()
            .map(|g| g.group_id)
            .collect();
        self.scan_without_tail(&groups, isolation).await
    }

    /// The tail, taken out of the scanner for this scan (it is put back when the scan succeeds with it).
    fn usable_tail(&mut self) -> Option<Tail> {
        if self.paused.is_some() {
            return None;
        }
        self.tail.take()
    }

    async fn finish(
        &mut self,
        mut tail: Tail,
        caught_up: Result<KnownEnds, TailError>,
        groups: &[String],
        isolation: Isolation,
    ) -> Result<LagScan, KafkaError> {
        let known = match caught_up {
            Ok(known) => known,
            Err(TailError::Rebuild(reason)) => {
                tracing::debug!(%reason, "rebuilding the {OFFSETS_TOPIC} tail");
                return self.scan_without_tail(groups, isolation).await;
            }
            Err(TailError::Fallback { reason, pause }) => return self.plain(groups, isolation, reason, pause).await,
        };
        // The tail stays consistent whatever the rest of the scan runs into: keep it.
        let scan = self.tailed_scan(&mut tail, known, groups, isolation).await;
        self.tail = Some(tail);
        scan
    }

    /// A baseline when the tail can be built, the plain path otherwise.
    async fn scan_without_tail(&mut self, groups: &[String], isolation: Isolation) -> Result<LagScan, KafkaError> {
        if let Some((left, reason)) = self.paused.take() {
            if left > 1 {
                self.paused = Some((left - 1, reason.clone()));
            }
            return self
                .plain_only(groups, isolation, format!("tail paused: {reason}"))
                .await;
        }
        match self.baseline(groups, isolation).await {
            Ok(Ok((tail, scan))) => {
                self.tail = Some(tail);
                Ok(scan)
            }
            Ok(Err(e)) => Err(e),
            Err(TailError::Rebuild(reason)) => self.plain(groups, isolation, reason, false).await,
            Err(TailError::Fallback { reason, pause }) => self.plain(groups, isolation, reason, pause).await,
        }
    }

    async fn plain(
        &mut self,
        groups: &[String],
        isolation: Isolation,
        reason: String,
        pause: bool,
    ) -> Result<LagScan, KafkaError> {
        tracing::debug!(%reason, pause, "lag scan without the {OFFSETS_TOPIC} tail");
        self.tail = None;
        if pause {
            self.paused = Some((PAUSE_SCANS, reason.clone()));
        }
        self.plain_only(groups, isolation, reason).await
    }

    async fn plain_only(&self, groups: &[String], isolation: Isolation, reason: String) -> Result<LagScan, KafkaError> {
        Ok(LagScan {
            snapshot: self.client.lag_snapshot(groups, isolation).await?,
            path: ScanPath::Plain { reason },
        })
    }

    /// Notes the end of every `__consumer_offsets` partition, then reads the groups with OffsetFetch.
    /// The outer error says the tail cannot be built; the inner one that the scan failed.
    async fn baseline(
        &self,
        groups: &[String],
        isolation: Isolation,
    ) -> Result<Result<(Tail, LagScan), KafkaError>, TailError> {
        let partitions = offsets_topic_partitions(&self.client).await?;
        let ends = self
            .client
            .list_offsets(&partitions, OffsetSpec::Latest, Isolation::ReadCommitted)
            .await
            .map_err(|e| TailError::Fallback {
                reason: format!("cannot read the end of {OFFSETS_TOPIC}: {e}"),
                pause: !e.is_retriable(),
            })?;
        let mut tail = Tail::new(ends.into_iter().map(|(tp, o)| (tp.partition, o.offset)).collect());
        let mut snapshot = LagSnapshot::default();
        for (group, result) in self.client.committed_offsets(groups).await {
            match result {
                Ok(offsets) => tail.track(&group, offsets),
                // Not tracked: read again as a new group on the next scan.
                Err(e) => {
                    snapshot.errors.insert(group, e);
                }
            }
        }
        let partitions = tail.partitions_of(groups.iter().map(String::as_str));
        let log_ends = match self.client.log_ends_of(&partitions, isolation).await {
            Ok(ends) => ends,
            Err(e) => return Ok(Err(e)),
        };
        fill(&mut snapshot, &tail, groups, log_ends);
        Ok(Ok((
            tail,
            LagScan {
                snapshot,
                path: ScanPath::Baseline,
            },
        )))
    }

    /// After the tail caught up: OffsetFetch for new groups, log ends of partitions not known before, the
    /// snapshot; groups no longer asked for are forgotten.
    async fn tailed_scan(
        &self,
        tail: &mut Tail,
        known: KnownEnds,
        groups: &[String],
        isolation: Isolation,
    ) -> Result<LagScan, KafkaError> {
        let mut snapshot = LagSnapshot::default();
        let asked: HashSet<&str> = groups.iter().map(String::as_str).collect();
        tail.groups.retain(|g, _| asked.contains(&**g));
        let new: Vec<String> = groups
            .iter()
            .filter(|g| !tail.groups.contains_key(g.as_str()))
            .cloned()
            .collect();
        if !new.is_empty() {
            for (group, result) in self.client.committed_offsets(&new).await {
                match result {
                    Ok(offsets) => tail.track(&group, offsets),
                    Err(e) => {
                        snapshot.errors.insert(group, e);
                    }
                }
            }
        }
        let partitions = tail.partitions_of(groups.iter().map(String::as_str));
        let mut log_ends = known.ends?;
        log_ends.retain(|tp, _| partitions.contains(tp));
        let missing: BTreeSet<TopicPartition> = partitions
            .into_iter()
            .filter(|tp| !log_ends.contains_key(tp) && !known.asked.contains(tp))
            .collect();
        if !missing.is_empty() {
            log_ends.extend(self.client.log_ends_of(&missing, isolation).await?);
        }
        fill(&mut snapshot, tail, groups, log_ends);
        Ok(LagScan {
            snapshot,
            path: ScanPath::Tail {
                records: known.records,
                new_groups: new.len(),
            },
        })
    }
}

/// An interned topic's identity (the address of its one allocation).
fn topic_id(topic: &Arc<str>) -> usize {
    Arc::as_ptr(topic) as *const u8 as usize
}

/// The snapshot of `groups` from the tail's committed offsets and `log_ends`, as `lag_snapshot` builds it.
fn fill(snapshot: &mut LagSnapshot, tail: &Tail, groups: &[String], log_ends: BTreeMap<TopicPartition, i64>) {
    {
        let ends: HashMap<(usize, i32), i64> = log_ends
            .iter()
            .filter_map(|(tp, end)| {
                let topic = tail.topics.get(&*tp.topic)?;
                Some(((topic_id(topic), tp.partition), *end))
            })
            .collect();
        for group in groups {
            let Some(offsets) = tail.groups.get(group.as_str()) else {
                continue;
            };
            let partitions: Vec<PartitionLag> = offsets
                .iter()
                .map(|((topic, partition), committed)| {
                    let log_end = ends.get(&(topic_id(topic), *partition)).copied();
                    PartitionLag {
                        topic: topic.clone(),
                        partition: *partition,
                        committed: *committed,
                        log_end,
                        lag: log_end.map(|end| high_watermark_lag(*committed, end)),
                    }
                })
                .collect();
            let total_lag = partitions.iter().filter_map(|p| p.lag).sum();
            snapshot.groups.insert(
                group.clone(),
                GroupLag {
                    group: group.clone(),
                    partitions,
                    total_lag,
                },
            );
        }
    }
    snapshot.log_ends = log_ends;
}

/// The log ends read while the tail caught up, for the partitions the tail knew before this scan.
struct KnownEnds {
    asked: BTreeSet<TopicPartition>,
    ends: Result<BTreeMap<TopicPartition, i64>, KafkaError>,
    records: usize,
}

async fn catch_up_with_known_ends(
    client: &KafkaClient,
    tail: &mut Tail,
    isolation: Isolation,
) -> Result<KnownEnds, TailError> {
    let asked = tail.partitions_of(tail.groups.keys().map(|g| &**g));
    let (records, ends) = tokio::join!(catch_up(client, tail), client.log_ends_of(&asked, isolation));
    Ok(KnownEnds {
        asked,
        ends,
        records: records?,
    })
}

/// The partitions of `__consumer_offsets`, or why the tail cannot be used (the topic does not exist: no
/// group has committed yet, or the broker keeps offsets elsewhere, as the embedded broker does).
async fn offsets_topic_partitions(client: &KafkaClient) -> Result<Vec<TopicPartition>, TailError> {
    let metadata = match client.metadata_with(&[OFFSETS_TOPIC.to_owned()]).await {
        Ok(m) => m,
        Err(KafkaError::UnknownTopic(_)) => {
            return Err(TailError::Fallback {
                reason: format!("the cluster has no {OFFSETS_TOPIC} topic"),
                pause: true,
            });
        }
        Err(e) => {
            return Err(TailError::Fallback {
                reason: format!("metadata of {OFFSETS_TOPIC}: {e}"),
                pause: false,
            });
        }
    };
    metadata.partitions_of(OFFSETS_TOPIC).map_err(|e| TailError::Fallback {
        reason: e.to_string(),
        pause: true,
    })
}

/// Fetches from every partition's position until each has reached its last stable offset (or the rounds
/// run out); returns how many records were applied.
async fn catch_up(client: &KafkaClient, tail: &mut Tail) -> Result<usize, TailError> {
    let partitions = offsets_topic_partitions(client).await?;
    if partitions.len() != tail.positions.len()
        || partitions.iter().any(|tp| !tail.positions.contains_key(&tp.partition))
    {
        return Err(TailError::Rebuild(format!(
            "{OFFSETS_TOPIC} has {} partitions, the tail knew {}",
            partitions.len(),
            tail.positions.len()
        )));
    }
    let mut behind: BTreeSet<i32> = tail.positions.keys().copied().collect();
    let mut applied = 0;
    let mut retry_rounds = 0;
    for _ in 0..MAX_FETCH_ROUNDS {
        if behind.is_empty() {
            break;
        }
        let metadata = client.metadata().await.map_err(|e| TailError::Fallback {
            reason: format!("metadata: {e}"),
            pause: false,
        })?;
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        let mut leaderless = false;
        for p in &behind {
            match metadata.leader(&TopicPartition::new(OFFSETS_TOPIC, *p)) {
                Some(leader) => by_leader.entry(leader).or_default().push((*p, tail.positions[p])),
                None => leaderless = true,
            }
        }
        let mut connections = Vec::with_capacity(by_leader.len());
        for leader in by_leader.keys() {
            connections.push(tail_connection(client, tail, *leader).await);
        }
        let fetches = by_leader
            .into_iter()
            .zip(connections)
            .map(|((leader, parts), conn)| async move {
                let answer = match conn {
                    Ok(conn) => fetch_on(&conn, &parts).await,
                    Err(e) => Err(e),
                };
                (leader, answer)
            });
        let mut stale = leaderless;
        for (leader, answer) in join_all(fetches).await {
            let partitions = match answer {
                Ok(p) => p,
                Err(e) if e.is_retriable() => {
                    tracing::debug!(leader, error = %e, "{OFFSETS_TOPIC} fetch failed; retrying");
                    tail.connections.remove(&leader);
                    stale = true;
                    continue;
                }
                Err(e) => {
                    return Err(TailError::Fallback {
                        pause: matches!(e, KafkaError::UnsupportedApi { .. }),
                        reason: format!("fetch from {OFFSETS_TOPIC}: {e}"),
                    });
                }
            };
            for answer in partitions {
                let p = answer.partition;
                match answer.error_code.err() {
                    None => {}
                    Some(ResponseError::OffsetOutOfRange) => {
                        return Err(TailError::Rebuild(format!(
                            "{OFFSETS_TOPIC}-{p}: offset {} is out of range",
                            tail.positions[&p]
                        )));
                    }
                    Some(e @ ResponseError::TopicAuthorizationFailed) => {
                        return Err(TailError::Fallback {
                            reason: format!("{OFFSETS_TOPIC}: {e:?}"),
                            pause: true,
                        });
                    }
                    Some(e) if e.is_retriable() => {
                        tracing::debug!(partition = p, error = ?e, "{OFFSETS_TOPIC} fetch: retrying");
                        stale = true;
                        continue;
                    }
                    Some(e) => {
                        return Err(TailError::Fallback {
                            reason: format!("{OFFSETS_TOPIC}-{p}: {e:?}"),
                            pause: false,
                        });
                    }
                }
                let position = tail.positions[&p];
                let read = match answer.records {
                    Some(bytes) => read_batches(position, bytes, &answer.aborted)?,
                    None => super::offsets_records::ReadBatches {
                        records: Vec::new(),
                        next_offset: position,
                    },
                };
                applied += read.records.len();
                for record in read.records {
                    tail.apply(record);
                }
                tail.positions.insert(p, read.next_offset);
                // The end a READ_COMMITTED reader may reach: the last stable offset (the high watermark when
                // the broker does not report one).
                let end = if answer.last_stable_offset >= 0 {
                    answer.last_stable_offset
                } else {
                    answer.high_watermark
                };
                if read.next_offset >= end {
                    behind.remove(&p);
                }
            }
        }
        if stale {
            retry_rounds += 1;
            if retry_rounds > MAX_RETRY_ROUNDS {
                return Err(TailError::Fallback {
                    reason: format!("{OFFSETS_TOPIC}: leaders kept moving or connections kept failing"),
                    pause: false,
                });
            }
            client.invalidate_metadata();
        }
    }
    if !behind.is_empty() {
        // Consistent as far as it got (a log prefix of each partition); the next scan continues from there.
        tracing::debug!(
            partitions = behind.len(),
            "{OFFSETS_TOPIC} tail still behind after a scan's rounds"
        );
    }
    Ok(applied)
}

async fn tail_connection(client: &KafkaClient, tail: &mut Tail, leader: i32) -> Result<Arc<Connection>, KafkaError> {
    if let Some(conn) = tail.connections.get(&leader)
        && !conn.is_broken()
    {
        return Ok(conn.clone());
    }
    let conn = client.dedicated_connection(leader).await?;
    tail.connections.insert(leader, conn.clone());
    Ok(conn)
}

struct PartitionAnswer {
    partition: i32,
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    aborted: Vec<AbortedTxn>,
    records: Option<bytes::Bytes>,
}

/// One READ_COMMITTED Fetch of `parts` (partition, position) of `__consumer_offsets` that does not wait for
/// new records.
async fn fetch_on(conn: &Connection, parts: &[(i32, i64)]) -> Result<Vec<PartitionAnswer>, KafkaError> {
    // v4 brought READ_COMMITTED answers (last stable offset, aborted transactions); v12 is the newest version
    // that names topics (v13+ use topic ids).
    let version = conn.version_in::<FetchRequest>(4, 12)?;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(1)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(OFFSETS_TOPIC)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, position)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(*position)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(PARTITION_MAX_BYTES)
                        })
                        .collect(),
                ),
        ]);
    let response = conn.send_version(&request, version).await?;
    super::error::check(response.error_code, conn.addr(), Api(FetchRequest::KEY), || {
        OFFSETS_TOPIC.to_owned()
    })?;
    let mut out = Vec::with_capacity(parts.len());
    for t in response.responses {
        if t.topic.0.as_str() != OFFSETS_TOPIC {
            continue;
        }
        for p in t.partitions {
            out.push(PartitionAnswer {
                partition: p.partition_index,
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                aborted: p
                    .aborted_transactions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| AbortedTxn {
                        producer_id: *a.producer_id,
                        first_offset: a.first_offset,
                    })
                    .collect(),
                records: p.records,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::groups::{CommittedOffset, GroupOffsets};

    fn commit(group: &str, topic: &str, partition: i32, offset: Option<i64>) -> OffsetsRecord {
        OffsetsRecord::OffsetCommit {
            group: group.into(),
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: None,
        }
    }

    fn tracked(tail: &Tail, group: &str) -> Vec<(String, i32, i64)> {
        tail.groups[group]
            .iter()
            .map(|((t, p), o)| (t.to_string(), *p, *o))
            .collect()
    }

    fn tail_with(group: &str, offsets: &[(&str, i32, i64)]) -> Tail {
        let mut tail = Tail::new(BTreeMap::from([(0, 0)]));
        let offsets: GroupOffsets = offsets
            .iter()
            .map(|(t, p, o)| {
                (
                    TopicPartition::new(*t, *p),
                    CommittedOffset {
                        offset: *o,
                        leader_epoch: None,
                        metadata: String::new(),
                    },
                )
            })
            .collect();
        tail.track(group, offsets);
        tail
    }

    #[test]
    fn commits_and_tombstones_of_tracked_groups_apply_in_log_order() {
        let mut tail = tail_with("g", &[("a", 0, 5), ("a", 1, 7)]);
        tail.apply(commit("g", "a", 0, Some(6)));
        tail.apply(commit("g", "b", 3, Some(1)));
        tail.apply(commit("g", "a", 1, None));
        tail.apply(commit("g", "b", 3, Some(2)));
        assert_eq!(tracked(&tail, "g"), vec![("a".into(), 0, 6), ("b".into(), 3, 2)]);
    }

    #[test]
    fn records_of_untracked_groups_are_not_kept() {
        let mut tail = tail_with("g", &[]);
        tail.apply(commit("other", "a", 0, Some(6)));
        assert!(!tail.groups.contains_key("other"));
        assert!(tracked(&tail, "g").is_empty());
    }

    #[test]
    fn a_group_tombstone_alone_leaves_the_offsets_to_their_own_tombstones() {
        let mut tail = tail_with("g", &[("a", 0, 5)]);
        tail.apply(OffsetsRecord::GroupMetadata {
            group: "g".into(),
            deleted: true,
        });
        tail.apply(OffsetsRecord::Other { record_type: 3 });
        assert_eq!(tracked(&tail, "g"), vec![("a".into(), 0, 5)]);
        tail.apply(commit("g", "a", 0, None));
        assert!(tracked(&tail, "g").is_empty());
    }

    #[test]
    fn topic_names_are_interned_once_and_partitions_are_collected_per_group() {
        let mut tail = tail_with("g", &[("a", 0, 5), ("a", 1, 5)]);
        tail.track(
            "h",
            GroupOffsets::from([(
                TopicPartition::new("a", 1),
                CommittedOffset {
                    offset: 1,
                    leader_epoch: None,
                    metadata: String::new(),
                },
            )]),
        );
        tail.apply(commit("h", "b", 0, Some(3)));
        assert_eq!(tail.topics.len(), 2);
        let g_topic = tail.groups["g"].keys().next().map(|(t, _)| t.clone());
        let h_topic = tail.groups["h"].keys().next().map(|(t, _)| t.clone());
        assert!(matches!((g_topic, h_topic), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y)));
        assert_eq!(
            tail.partitions_of(["h"].into_iter()),
            BTreeSet::from([TopicPartition::new("a", 1), TopicPartition::new("b", 0)])
        );
        assert_eq!(tail.partitions_of(["g", "h"].into_iter()).len(), 3);
    }

    #[test]
    fn unknown_record_formats_pause_the_tail_and_malformed_records_only_skip_it_once() {
        for (error, pause) in [
            (RecordError::UnknownKeyVersion(99), true),
            (RecordError::UnknownValueVersion(5), true),
            (RecordError::Malformed("key"), false),
        ] {
            match TailError::from(error) {
                TailError::Fallback { pause: p, reason } => {
                    assert_eq!(p, pause, "{reason}");
                    assert!(reason.contains(OFFSETS_TOPIC), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_snapshot_joins_committed_offsets_with_log_ends_like_lag_snapshot() {
        let tail = tail_with("g", &[("a", 0, 5), ("gone", 0, 2)]);
        let mut snapshot = LagSnapshot::default();
        let groups = vec!["g".to_owned(), "untracked".to_owned()];
        fill(
            &mut snapshot,
            &tail,
            &groups,
            BTreeMap::from([(TopicPartition::new("a", 0), 9)]),
        );
        assert!(!snapshot.groups.contains_key("untracked"));
        let g = &snapshot.groups["g"];
        assert_eq!(g.total_lag, 4);
        assert_eq!(
            g.partitions,
            vec![
                PartitionLag {
                    topic: "a".into(),
                    partition: 0,
                    committed: 5,
                    log_end: Some(9),
                    lag: Some(4)
                },
                PartitionLag {
                    topic: "gone".into(),
                    partition: 0,
                    committed: 2,
                    log_end: None,
                    lag: None
                },
            ]
        );
    }
}
