//! The embedded broker's group coordinator for the classic protocol (JoinGroup/SyncGroup), with committed
//! offsets: one coordinator for every group, behaving like Apache Kafka's `GroupCoordinator` so that real
//! clients cannot tell the difference.
//!
//! `group` is the pure state machine, `member` and `offsets` its data, `journal` the durable log of offsets and
//! group metadata, `membership` and `offset_api`/`admin` turn requests into state changes and responses, `undo`
//! takes back a change whose records the log could not make durable.

mod admin;
mod consumer;
mod group;
pub mod group_configs;
mod journal;
pub mod limits;
mod member;
mod membership;
mod offset_api;
mod offsets;
mod txn_offsets;
mod undo;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use uuid::Uuid;

use group::{Group, Timing};
use journal::{Journal, Record};
use undo::Undo;

pub use consumer::ConsumerTiming;
pub use group::GroupState;
pub use offsets::DEFAULT_RETENTION as DEFAULT_OFFSETS_RETENTION;
pub use offsets::MAX_METADATA_BYTES;
pub use txn_offsets::TxnOffset;

/// How often the timers (session, rebalance, initial delay, sync) are advanced.
const TICK: Duration = Duration::from_millis(20);
/// How often offsets retention and the removal of empty groups without offsets run (Kafka's
/// `offsets.retention.check.interval.ms` default).
const RETENTION_CHECK: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Where the offsets/groups log lives; in memory only when None.
    pub data_dir: Option<PathBuf>,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout: Duration,
    /// KIP-848 groups: `group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms`.
    pub consumer: ConsumerTiming,
}

impl Default for CoordinatorConfig {
    /// Apache Kafka's defaults, in memory.
    fn default() -> Self {
        CoordinatorConfig {
            data_dir: None,
            initial_rebalance_delay: Duration::from_secs(3),
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(1800),
            consumer: ConsumerTiming::default(),
        }
    }
}

/// What the coordinator needs to know about topics (owned by the rest of the broker).
pub trait TopicCatalog: Send + Sync {
    fn partitions(&self, topic: &str) -> Option<i32>;
    fn topic_id(&self, topic: &str) -> Option<Uuid>;
    fn topic_name(&self, id: Uuid) -> Option<String>;
    /// Every topic (KIP-848 regex subscriptions match against them).
    fn topic_names(&self) -> Vec<String>;
}

/// Who sent a request: shown by DescribeGroups (`CLIENT-ID`, `HOST` in kafka-consumer-groups).
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub client_id: String,
    /// As Kafka shows it: `/127.0.0.1`.
    pub host: String,
}

impl ClientInfo {
    pub fn new(client_id: Option<&str>, peer: Option<std::net::SocketAddr>) -> Self {
        ClientInfo {
            client_id: client_id.unwrap_or_default().to_owned(),
            host: peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
        }
    }
}

pub struct GroupCoordinator {
    config: CoordinatorConfig,
    retention: Duration,
    /// Shared with the log's writer, which takes back what it could not make durable.
    groups: Arc<Mutex<HashMap<String, Group>>>,
    journal: Option<Journal>,
    shutting_down: AtomicBool,
    /// Partitions with a transactional offset pending (see `txn_offsets.rs`).
    pending_txn_offsets: Mutex<txn_offsets::PendingTxnOffsets>,
    /// Per-group configs (config resource GROUP).
    pub group_configs: group_configs::GroupConfigs,
}

impl GroupCoordinator {
    /// (api key, min version, max version) this coordinator implements, announced in ApiVersions.
    pub const APIS: &'static [(ApiKey, i16, i16)] = &[
        (ApiKey::OffsetCommit, 2, 9),
        (ApiKey::OffsetFetch, 1, 9),
        (ApiKey::JoinGroup, 0, 9),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 5),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::DescribeGroups, 0, 6),
        (ApiKey::ListGroups, 0, 5),
        (ApiKey::DeleteGroups, 0, 2),
        (ApiKey::OffsetDelete, 0, 0),
        (ApiKey::ConsumerGroupHeartbeat, 0, 1),
        (ApiKey::ConsumerGroupDescribe, 0, 1),
    ];

    /// Opens the coordinator; with a data dir, replays its log first (offsets survive restarts).
    pub fn new(config: CoordinatorConfig) -> std::io::Result<Arc<Self>> {
        Self::with_retention(config, offsets::DEFAULT_RETENTION)
    }

    /// Like `new`, with `offsets.retention.minutes` other than Kafka's 7 days.
    pub fn with_retention(config: CoordinatorConfig, retention: Duration) -> std::io::Result<Arc<Self>> {
        let (journal, stored) = match &config.data_dir {
            Some(dir) => {
                let (journal, stored) = Journal::open(dir)?;
                (Some(journal), stored)
            }
            None => (None, HashMap::new()),
        };
        let group_configs = group_configs::GroupConfigs::open(config.data_dir.as_deref())?;
        let wall = wall_ms();
        let mut groups = HashMap::new();
        for (id, s) in stored {
            let mut g = Group::new(&id);
            g.generation = s.generation;
            g.offsets = s.offsets;
            if s.protocol_type.as_deref() == Some(group::KIP848_STORED_TYPE) {
                // A KIP-848 group: its epoch goes on from where it was; its members rejoin (their heartbeats get
                // UNKNOWN_MEMBER_ID, as after any coordinator change).
                g.consumer = Some(Box::new(consumer::ConsumerGroup::new(s.generation)));
                g.protocol_type = Some(group::CONSUMER_PROTOCOL_TYPE.to_owned());
                g.empty_since = Some(wall);
                groups.insert(id, g);
                continue;
            }
            g.protocol_type = s.protocol_type;
            if g.protocol_type.is_some() {
                // It had members before the restart; none survive it.
                g.empty_since = Some(wall);
            }
            groups.insert(id, g);
        }
        let coordinator = Arc::new(GroupCoordinator {
            config,
            retention,
            groups: Arc::new(Mutex::new(groups)),
            journal,
            shutting_down: AtomicBool::new(false),
            pending_txn_offsets: Mutex::default(),
            group_configs,
        });
        let weak = Arc::downgrade(&coordinator);
        std::thread::Builder::new()
            .name("group-timers".into())
            .spawn(move || run_timers(weak))?;
        Ok(coordinator)
    }

    /// Handles one decoded coordinator request; may wait (JoinGroup/SyncGroup long-poll). Members show no
    /// client id or host in DescribeGroups: the server should call `handle_from`.
    pub async fn handle(
        self: &Arc<Self>,
        request: RequestKind,
        version: i16,
        topics: &dyn TopicCatalog,
    ) -> ResponseKind {
        self.handle_from(request, version, &ClientInfo::default(), topics).await
    }

    /// `handle`, with the client id (request header) and address of the connection that sent the request.
    pub async fn handle_from(
        self: &Arc<Self>,
        request: RequestKind,
        version: i16,
        client: &ClientInfo,
        topics: &dyn TopicCatalog,
    ) -> ResponseKind {
        if self.shutting_down.load(Ordering::SeqCst) {
            return admin::error_response(request, version, ResponseError::NotCoordinator.code());
        }
        match request {
            RequestKind::JoinGroup(r) => {
                ResponseKind::JoinGroup(membership::join_group(self, r, version, client).await)
            }
            RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(membership::sync_group(self, r, version).await),
            RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(membership::heartbeat(self, r, version)),
            RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(membership::leave_group(self, r, version)),
            RequestKind::OffsetCommit(r) => {
                ResponseKind::OffsetCommit(offset_api::offset_commit(self, r, version, topics).await)
            }
            RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_api::offset_fetch(self, r, version)),
            RequestKind::OffsetDelete(r) => {
                ResponseKind::OffsetDelete(offset_api::offset_delete(self, r, topics).await)
            }
            RequestKind::ConsumerGroupHeartbeat(r) => {
                ResponseKind::ConsumerGroupHeartbeat(consumer::heartbeat(self, r, version, client, topics))
            }
            RequestKind::ConsumerGroupDescribe(r) => {
                ResponseKind::ConsumerGroupDescribe(consumer::describe(self, r, topics))
            }
            RequestKind::ListGroups(r) => ResponseKind::ListGroups(admin::list_groups(self, r, version)),
            RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(admin::describe_groups(self, r, version)),
            RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(admin::delete_groups(self, r, version).await),
            other => admin::error_response(other, version, ResponseError::UnsupportedVersion.code()),
        }
    }

    /// Deletes the committed offsets of `topic` in every group, as Kafka's coordinator does when a topic is
    /// deleted (so a topic re-created with the same name starts without them); resolves once the deletions are
    /// in the log (at once without a data dir). A failed write is not taken back: the topic is gone either way,
    /// and the next start deletes the offsets of topics that do not exist.
    pub async fn delete_topic_offsets(&self, topic: &str) -> std::io::Result<()> {
        let durable = {
            let mut groups = self.lock();
            let mut records = Vec::new();
            let mut emptied = Vec::new();
            for group in groups.values_mut() {
                let partitions = group.offsets.remove_topic(topic);
                if partitions.is_empty() {
                    continue;
                }
                for partition in partitions {
                    records.push(Record::DeleteOffset {
                        group: group.id.clone(),
                        topic: topic.to_owned(),
                        partition,
                    });
                }
                if group.state == GroupState::Empty && group.offsets.is_empty() && group.pending_members.is_empty() {
                    emptied.push(group.id.clone());
                }
            }
            // As Kafka's cleanup after deleted partitions: an Empty group left without offsets goes away.
            for id in emptied {
                if let Some(mut group) = groups.remove(&id) {
                    group.mark_dead();
                    records.push(Record::DeleteGroup { group: id });
                }
            }
            self.persist(&records, Undo::default())
        };
        match durable {
            None => Ok(()),
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the group log writer stopped"))),
        }
    }

    /// Deletes the offsets of topics that no longer exist (kept by a log that missed the deletions, e.g. the
    /// process was killed between a DeleteTopics and its offsets' deletion). A commit needs an existing
    /// partition, so no other offsets can name a missing topic.
    pub async fn delete_offsets_of_missing_topics(&self, topics: &dyn TopicCatalog) -> std::io::Result<()> {
        let missing: std::collections::BTreeSet<String> = self
            .lock()
            .values()
            .flat_map(|g| g.offsets.topics().map(|(t, _)| t.to_owned()).collect::<Vec<_>>())
            .filter(|t| topics.partitions(t).is_none())
            .collect();
        for topic in missing {
            tracing::info!(topic, "deleting the committed offsets of a topic that no longer exists");
            self.delete_topic_offsets(&topic).await?;
        }
        Ok(())
    }

    /// Stops the timers, answers every waiting JoinGroup/SyncGroup with NOT_COORDINATOR (clients look for the
    /// coordinator again), and flushes the log.
    pub fn shutdown(&self) {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        for group in self.lock().values_mut() {
            group.abort_waiters(ResponseError::NotCoordinator);
        }
        if let Some(journal) = &self.journal {
            journal.close();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        lock(&self.groups)
    }

    fn timing(&self) -> Timing {
        Timing {
            initial_rebalance_delay: self.config.initial_rebalance_delay,
        }
    }

    /// Queues `records` for the log (in state-change order: call with the groups locked); the receiver says
    /// when they are durable. Without a data dir they are at once. If they do not become durable, `undo` is
    /// applied before the receiver hears of it.
    fn persist(&self, records: &[Record], undo: Undo) -> Option<tokio::sync::oneshot::Receiver<std::io::Result<()>>> {
        if records.is_empty() {
            return None;
        }
        let journal = self.journal.as_ref()?;
        let rollback = (!undo.is_empty()).then(|| {
            let groups = Arc::clone(&self.groups);
            Box::new(move || undo.apply(&mut lock(&groups))) as journal::Rollback
        });
        Some(journal.append(records, rollback))
    }

    /// Persists a group's generation and protocol type when they changed (no one waits for it).
    fn persist_metadata(&self, group: &mut Group) {
        if std::mem::take(&mut group.metadata_changed) {
            // Dropping the receiver: a failed write is logged by the writer.
            let _ = self.persist(
                &[Record::GroupMetadata {
                    group: group.id.clone(),
                    protocol_type: group.stored_protocol_type().map(str::to_owned),
                    generation: group.generation,
                }],
                Undo::default(),
            );
        }
    }

    fn tick(&self, now: Instant, wall: i64, expire_offsets: bool) {
        let timing = self.timing();
        let mut groups = self.lock();
        let mut records = Vec::new();
        // Nobody waits for the expiry: a failed write puts the offsets back, and the next check tries again
        // (kept in the log but gone from memory, they would come back at the next start).
        let mut undo = Undo::default();
        for group in groups.values_mut() {
            match &mut group.consumer {
                Some(consumer) => {
                    if consumer.expire(now) {
                        group.sync_consumer_state(wall);
                    }
                }
                None => group.poll(timing, now, wall),
            }
            self.persist_metadata(group);
            if expire_offsets && group.state == GroupState::Empty {
                let base = group.protocol_type.as_ref().and(group.empty_since);
                for (topic, partition, expired) in group.offsets.expire(wall, base, self.retention) {
                    undo.offset(&group.id, &topic, partition, Some(expired), None);
                    records.push(Record::DeleteOffset {
                        group: group.id.clone(),
                        topic,
                        partition,
                    });
                }
            }
        }
        if expire_offsets {
            // Like Kafka's cleanup: an Empty group with no offsets left (never committed, expired, or one that
            // only ever got MEMBER_ID_REQUIRED) goes away.
            groups.retain(|id, g| {
                let keep = g.state != GroupState::Empty || !g.offsets.is_empty() || !g.pending_members.is_empty();
                if !keep {
                    undo.removed(g);
                    records.push(Record::DeleteGroup { group: id.clone() });
                }
                keep
            });
        }
        let _ = self.persist(&records, undo);
        if let Some(journal) = &self.journal
            && journal.should_compact()
        {
            // Under the lock, like every append: the image covers all that was queued before it.
            journal.compact(journal::image(
                groups
                    .values()
                    .map(|g| (g.id.as_str(), g.stored_protocol_type(), g.generation, &g.offsets)),
            ));
        }
    }
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run_timers(coordinator: Weak<GroupCoordinator>) {
    let mut last_retention = Instant::now();
    loop {
        std::thread::sleep(TICK);
        let Some(c) = coordinator.upgrade() else {
            return;
        };
        if c.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let expire = now.duration_since(last_retention) >= RETENTION_CHECK;
        if expire {
            last_retention = now;
        }
        c.tick(now, wall_ms(), expire);
    }
}

fn lock(groups: &Mutex<HashMap<String, Group>>) -> MutexGuard<'_, HashMap<String, Group>> {
    // A panic while holding the lock is a bug, but the groups stay consistent enough to keep serving.
    groups.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch (commit timestamps).
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh member id as Kafka makes them: `<client id or instance id>-<uuid>`.
fn new_member_id(prefix: &str) -> String {
    let bytes: [u8; 16] = rand::random();
    format!("{prefix}-{}", uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// An ApiVersions response with `error`, for a request that is no coordinator API.
fn not_a_coordinator_api(error: i16) -> ResponseKind {
    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_error_code(error))
}

#[cfg(test)]
mod tests;
