//! The broker's topics and partition logs: in memory, or in segment files under a data dir (see `segment.rs`
//! for the write, fsync and recovery policy). The topic catalog (names, ids, partition counts, configs) is one
//! JSON file, `topics.json`, replaced atomically (write, fsync, rename, fsync the directory).
//!
//! A failed fsync of the log takes the log directory offline, as Kafka does (KIP-112): after it the kernel may
//! have dropped pages it could not write and will not report them again, so nothing written since the last
//! good fsync can be trusted to be on disk. Every partition then answers KAFKA_STORAGE_ERROR until the broker
//! is restarted, and recovery at the restart cuts the log at the first batch that did not make it.

pub mod batch;
pub mod partition;
pub mod producers;
pub mod segment;
pub mod transactions;

use crate::broker::coordinator::TopicCatalog;
use kafka_protocol::ResponseError;
use partition::PartitionLog;
use segment::{sync_dir, write_synced};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

/// Storage settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// None: everything in memory, gone when the broker stops.
    pub data_dir: Option<PathBuf>,
    /// Size at which a partition's active segment file rolls.
    pub segment_bytes: u64,
    /// Retention (None: keep forever); whole batches are dropped from the start of a partition's log.
    pub retention_bytes: Option<u64>,
    pub retention_ms: Option<i64>,
    /// Partitions the broker holds at most, over all topics: a CreateTopics, CreatePartitions or
    /// auto-creation beyond it is refused (POLICY_VIOLATION) before anything is allocated.
    pub max_partitions: usize,
    /// A fault hook for tests (kfake's control hooks): while this file exists, every fsync of the log fails
    /// with EIO, as a failing disk's would. None in production.
    pub fail_fsync_while: Option<PathBuf>,
}

/// The embedded broker's default limit on partitions in total (`--max-partitions`).
pub const DEFAULT_MAX_PARTITIONS: usize = 10_000;

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Configs set when the topic was created (`retention.ms`, …); DescribeConfigs adds the defaults.
    pub configs: BTreeMap<String, String>,
    partitions: RwLock<Vec<Arc<Mutex<PartitionLog>>>>,
}

impl Topic {
    pub fn partition_count(&self) -> i32 {
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).len() as i32
    }

    pub fn partition(&self, index: i32) -> Option<Arc<Mutex<PartitionLog>>> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(index).ok().and_then(|i| partitions.get(i).cloned())
    }
}

/// Locks a partition; a panic elsewhere while holding it cannot leave the log half-written in memory (every
/// mutation is a push after the write succeeded), so a poisoned lock is still usable.
pub fn lock(partition: &Mutex<PartitionLog>) -> MutexGuard<'_, PartitionLog> {
    partition.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Catalog {
    cluster_id: String,
    topics: Vec<TopicRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("topic catalog {path} does not parse: {message}")]
    Catalog { path: PathBuf, message: String },
}

/// A topic-level refusal, with the message Kafka would give.
#[derive(Debug)]
pub struct TopicError {
    pub code: ResponseError,
    pub message: String,
}

pub struct Store {
    config: StoreConfig,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes catalog changes (create, delete, add partitions) and their write to disk.
    catalog_write: Mutex<()>,
    /// Bumped after every append: waiting fetches wake up on it.
    appended: watch::Sender<u64>,
    /// Producer ids handed out by InitProducerId: every id in [FIRST_PRODUCER_ID, next).
    producer_ids: Mutex<ProducerIds>,
    /// Why the log directory went offline (a failed fsync), if it did: it stays so until a restart.
    offline: std::sync::OnceLock<String>,
    /// 1 once offline (the broker's metrics register it).
    offline_gauge: prometheus_client::metrics::gauge::Gauge,
}

/// The first producer id the broker hands out.
pub const FIRST_PRODUCER_ID: i64 = 1000;
/// Producer ids are reserved on disk in blocks of this many (as Kafka's controller hands out blocks), so that
/// ids handed out before a restart stay valid and are never handed out again.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// The file holding the end of the reserved block.
const PRODUCER_IDS_FILE: &str = "producer_ids";

#[derive(Debug)]
struct ProducerIds {
    next: i64,
    reserved_until: i64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Kafka's rule for topic names: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("Topic name \"{name}\" is illegal"));
    }
    if name.len() > 249 {
        return Err(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

impl Store {
    /// Opens the store: with a data dir, reads the catalog and recovers every partition's log.
    /// `cluster_id` is used for a new data dir (or in memory); an existing data dir keeps its own.
    pub fn open(config: StoreConfig, cluster_id: String) -> Result<Store, StoreError> {
        let mut store = Store {
            config,
            cluster_id,
            topics: RwLock::new(BTreeMap::new()),
            catalog_write: Mutex::new(()),
            appended: watch::channel(0).0,
            producer_ids: Mutex::new(ProducerIds {
                next: FIRST_PRODUCER_ID,
                reserved_until: FIRST_PRODUCER_ID,
            }),
            offline: std::sync::OnceLock::new(),
            offline_gauge: Default::default(),
        };
        let Some(dir) = store.config.data_dir.clone() else {
            return Ok(store);
        };
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let ids_path = dir.join(PRODUCER_IDS_FILE);
        let reserved = match std::fs::read_to_string(&ids_path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| StoreError::Catalog {
                path: ids_path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FIRST_PRODUCER_ID,
            Err(e) => return Err(io_err(&ids_path)(e)),
        };
        store.skip_producer_ids_below(reserved);
        let path = dir.join("topics.json");
        let catalog: Option<Catalog> = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| StoreError::Catalog {
                path: path.clone(),
                message: e.to_string(),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&path)(e)),
        };
        let Some(catalog) = catalog else {
            store.write_catalog(|_| {}).map_err(io_err(&path))?;
            return Ok(store);
        };
        store.cluster_id = catalog.cluster_id;
        let mut max_producer = 999;
        let mut topics = BTreeMap::new();
        for record in catalog.topics {
            let mut partitions = Vec::new();
            for index in 0..record.partitions {
                let log = store.open_partition(&record.name, index, false)?;
                max_producer = max_producer.max(log.max_producer_id().unwrap_or(0));
                partitions.push(Arc::new(Mutex::new(log)));
            }
            topics.insert(
                record.name.clone(),
                Arc::new(Topic {
                    name: record.name,
                    id: record.id,
                    configs: record.configs,
                    partitions: RwLock::new(partitions),
                }),
            );
        }
        store.skip_producer_ids_below(max_producer.saturating_add(1));
        store.topics = RwLock::new(topics);
        tracing::info!(data_dir = %dir.display(), topics = store.topic_names().len(), "recovered the log");
        Ok(store)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> Option<PathBuf> {
        self.config
            .data_dir
            .as_ref()
            .map(|d| d.join("logs").join(format!("{topic}-{index}")))
    }

    /// Opens (recovers) a partition's log. A `fresh` one is new to the catalog: whatever a deleted topic of the
    /// same name left on disk (a crash between the catalog write and the removal) is removed first.
    fn open_partition(&self, topic: &str, index: i32, fresh: bool) -> Result<PartitionLog, StoreError> {
        let Some(dir) = self.partition_dir(topic, index) else {
            return Ok(PartitionLog::in_memory(self.config.segment_bytes));
        };
        if fresh && dir.exists() {
            tracing::warn!(dir = %dir.display(), "removing the stale log of a deleted topic");
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        PartitionLog::open(&dir, self.config.segment_bytes).map_err(io_err(&dir))
    }

    /// Writes the catalog: the topics in memory with `edit` applied. A change to the topics is written
    /// first and made in memory only once it is on disk, so that a failed write (a full disk) changes
    /// neither: a topic a restart would forget never takes records.
    fn write_catalog(&self, edit: impl FnOnce(&mut Vec<TopicRecord>)) -> std::io::Result<()> {
        let Some(dir) = &self.config.data_dir else {
            return Ok(());
        };
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        let mut records: Vec<TopicRecord> = topics
            .values()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                id: t.id,
                partitions: t.partition_count(),
                configs: t.configs.clone(),
            })
            .collect();
        drop(topics);
        edit(&mut records);
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let catalog = Catalog {
            cluster_id: self.cluster_id.clone(),
            topics: records,
        };
        let bytes = serde_json::to_vec_pretty(&catalog).map_err(std::io::Error::other)?;
        let tmp = dir.join("topics.json.tmp");
        write_synced(&tmp, &bytes)?;
        std::fs::rename(&tmp, dir.join("topics.json"))?;
        sync_dir(dir)
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Creates a topic (unless `validate_only`); fails like Kafka for a bad name or an existing topic.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.catalog_write.lock().unwrap_or_else(|p| p.into_inner());
        self.check_online()?;
        validate_topic_name(name).map_err(|message| TopicError {
            code: ResponseError::InvalidTopicException,
            message,
        })?;
        if partitions <= 0 {
            return Err(TopicError {
                code: ResponseError::InvalidPartitions,
                message: format!("Number of partitions was set to an invalid non-positive value: {partitions}"),
            });
        }
        if self.topic(name).is_some() {
            return Err(TopicError {
                code: ResponseError::TopicAlreadyExists,
                message: format!("Topic '{name}' already exists."),
            });
        }
        self.check_partition_limit(partitions)?;
        let logs = if validate_only {
            Vec::new()
        } else {
            (0..partitions)
                .map(|i| self.open_partition(name, i, true).map(|l| Arc::new(Mutex::new(l))))
                .collect::<Result<Vec<_>, _>>()
                .map_err(storage_failure)?
        };
        let topic = Arc::new(Topic {
            name: name.to_owned(),
            id: random_uuid(),
            configs,
            partitions: RwLock::new(logs),
        });
        if validate_only {
            return Ok(topic);
        }
        self.write_catalog(|records| {
            records.push(TopicRecord {
                name: name.to_owned(),
                id: topic.id,
                partitions,
                configs: topic.configs.clone(),
            })
        })
        .map_err(catalog_failure)?;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.catalog_write.lock().unwrap_or_else(|p| p.into_inner());
        if self.topic(name).is_none() {
            return Err(TopicError {
                code: ResponseError::UnknownTopicOrPartition,
                message: format!("Topic '{name}' does not exist."),
            });
        }
        self.write_catalog(|records| records.retain(|t| t.name != name))
            .map_err(catalog_failure)?;
        let removed = self
            .topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| TopicError {
                code: ResponseError::UnknownTopicOrPartition,
                message: format!("Topic '{name}' does not exist."),
            })?;
        if self.config.data_dir.is_some() {
            for index in 0..removed.partition_count() {
                if let Some(dir) = self.partition_dir(name, index) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(removed)
    }

    /// Refuses `adding` more partitions when the broker would then hold more than `max_partitions` (call with
    /// `catalog_write` held, so that concurrent creations cannot pass it together).
    fn check_partition_limit(&self, adding: i32) -> Result<(), TopicError> {
        let total: u64 = self.topics().iter().map(|t| t.partition_count().max(0) as u64).sum();
        let limit = self.config.max_partitions as u64;
        let after = total.saturating_add(adding.max(0) as u64);
        if after > limit {
            return Err(TopicError {
                code: ResponseError::PolicyViolation,
                message: format!(
                    "Adding {adding} partition(s) would bring this broker to {after} partitions, more than its limit of {limit} (--max-partitions); it holds {total}."
                ),
            });
        }
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), TopicError> {
        let _guard = self.catalog_write.lock().unwrap_or_else(|p| p.into_inner());
        self.check_online()?;
        let topic = self.topic(name).ok_or_else(|| TopicError {
            code: ResponseError::UnknownTopicOrPartition,
            message: format!("The topic '{name}' does not exist."),
        })?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError {
                code: ResponseError::InvalidPartitions,
                message: if count == current {
                    format!("Topic already has {current} partitions.")
                } else {
                    format!("Topic currently has {current} partitions, which is higher than the requested {count}.")
                },
            });
        }
        self.check_partition_limit(count - current)?;
        if validate_only {
            return Ok(());
        }
        let mut added = Vec::new();
        for index in current..count {
            added.push(Arc::new(Mutex::new(
                self.open_partition(name, index, true).map_err(storage_failure)?,
            )));
        }
        self.write_catalog(|records| {
            for record in records.iter_mut().filter(|t| t.name == name) {
                record.partitions = count;
            }
        })
        .map_err(catalog_failure)?;
        topic
            .partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(added);
        tracing::info!(topic = name, partitions = count, "added partitions");
        Ok(())
    }

    /// A receiver that changes after every append (for fetches waiting on data).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Hands out the next producer id; with a data dir, a new block of ids is reserved on disk (fsynced)
    /// before the first id of it is handed out.
    pub fn allocate_producer_id(&self) -> std::io::Result<i64> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.next >= ids.reserved_until {
            let until = ids.next.saturating_add(PRODUCER_ID_BLOCK);
            if let Some(dir) = &self.config.data_dir {
                let tmp = dir.join(format!("{PRODUCER_IDS_FILE}.tmp"));
                write_synced(&tmp, until.to_string().as_bytes())?;
                std::fs::rename(&tmp, dir.join(PRODUCER_IDS_FILE))?;
                sync_dir(dir)?;
            }
            ids.reserved_until = until;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Whether InitProducerId handed out `id` (in this run, or before a restart on the same data dir).
    pub fn producer_id_handed_out(&self, id: i64) -> bool {
        id >= FIRST_PRODUCER_ID && id < self.producer_ids.lock().unwrap_or_else(|p| p.into_inner()).next
    }

    /// Never hands out ids below `id` (reserved or logged before a restart); they count as handed out.
    fn skip_producer_ids_below(&mut self, id: i64) {
        let ids = self.producer_ids.get_mut().unwrap_or_else(|p| p.into_inner());
        if id > ids.next {
            ids.next = id;
            ids.reserved_until = id;
        }
    }

    /// File handles of every partition with unsynced writes (to fsync outside the locks).
    pub fn unsynced_files(&self) -> Vec<std::fs::File> {
        let mut files = Vec::new();
        for topic in self.topics() {
            let partitions = topic.partitions.read().unwrap_or_else(|p| p.into_inner()).clone();
            for partition in partitions {
                match lock(&partition).take_unsynced() {
                    Ok(unsynced) => files.extend(unsynced),
                    Err(e) => tracing::error!(topic = %topic.name, error = %e, "cannot sync a partition"),
                }
            }
        }
        files
    }

    /// fsyncs `files` (segments of the log) off the async threads. A failure takes the log directory offline
    /// (see the module's documentation). Returns whether every fsync succeeded.
    pub async fn sync(&self, files: Vec<std::fs::File>) -> bool {
        if files.is_empty() {
            return self.offline().is_none();
        }
        let fault = self.config.fail_fsync_while.clone();
        let result = tokio::task::spawn_blocking(move || {
            files.iter().try_for_each(|f| {
                if fault.as_ref().is_some_and(|path| path.exists()) {
                    return Err(std::io::Error::from_raw_os_error(5)); // EIO, injected by a test
                }
                f.sync_data()
            })
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match result {
            Ok(()) => self.offline().is_none(),
            Err(e) => {
                self.take_offline(&e);
                false
            }
        }
    }

    /// Takes the log directory offline after a failed fsync (the first reason is kept).
    fn take_offline(&self, error: &std::io::Error) {
        let dir = self.config.data_dir.as_deref().unwrap_or(Path::new("(memory)"));
        let reason = format!(
            "the log directory {} is offline after a failed fsync ({error}); restart the broker once the disk is fixed",
            dir.display()
        );
        if self.offline.set(reason.clone()).is_ok() {
            self.offline_gauge.set(1);
            tracing::error!(data_dir = %dir.display(), %error, "fsync of the log failed: the log directory is offline, every partition answers KAFKA_STORAGE_ERROR until a restart");
        }
    }

    /// The gauge of offline log directories (0 or 1), for the broker's metrics.
    pub fn offline_gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        self.offline_gauge.clone()
    }

    /// Why the log directory is offline, if it is: every partition answers KAFKA_STORAGE_ERROR.
    pub fn offline(&self) -> Option<&str> {
        self.offline.get().map(String::as_str)
    }

    /// KAFKA_STORAGE_ERROR with its reason while the log directory is offline.
    pub fn check_online(&self) -> Result<(), TopicError> {
        match self.offline() {
            None => Ok(()),
            Some(reason) => Err(TopicError {
                code: ResponseError::KafkaStorageError,
                message: reason.to_owned(),
            }),
        }
    }

    /// Forgets idle producers and applies retention to every partition: a topic's `retention.bytes` / `retention.ms` (-1: keep) where it
    /// set them, else the broker's settings. `now` is in ms since the epoch.
    pub fn apply_retention(&self, now: i64) {
        if self.offline().is_some() {
            return;
        }
        for topic in self.topics() {
            let limit = |name: &str, broker: Option<i64>| match topic.configs.get(name).map(|v| v.parse::<i64>()) {
                Some(Ok(v)) if v < 0 => None,
                Some(Ok(v)) => Some(v),
                _ => broker,
            };
            let bytes = limit("retention.bytes", self.config.retention_bytes.map(|b| b as i64)).map(|b| b as u64);
            let age = limit("retention.ms", self.config.retention_ms);
            let partitions = topic.partitions.read().unwrap_or_else(|p| p.into_inner()).clone();
            for (index, partition) in partitions.iter().enumerate() {
                let mut log = lock(partition);
                log.expire_producers(now);
                if bytes.is_none() && age.is_none() {
                    continue;
                }
                match log.apply_retention(bytes, age, now) {
                    Ok(true) => {
                        tracing::debug!(topic = %topic.name, partition = index, "retention dropped old batches")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(topic = %topic.name, partition = index, error = %e, "retention failed"),
                }
            }
        }
    }
}

/// A catalog write that failed (the catalog on disk is unchanged: it is replaced by a rename).
fn catalog_failure(e: std::io::Error) -> TopicError {
    storage_failure(StoreError::Io {
        path: PathBuf::from("topics.json"),
        source: e,
    })
}

fn storage_failure(e: StoreError) -> TopicError {
    tracing::error!(error = %e, "storage failure");
    TopicError {
        code: ResponseError::KafkaStorageError,
        message: e.to_string(),
    }
}

/// A random (version 4) UUID that is neither Kafka's reserved zero nor its metadata topic id.
pub fn random_uuid() -> Uuid {
    loop {
        let bytes: [u8; 16] = rand::random();
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        if id.as_u64_pair().0 != 0 {
            return id;
        }
    }
}

impl TopicCatalog for Store {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.topic(topic).map(|t| t.partition_count())
    }

    fn topic_id(&self, topic: &str) -> Option<Uuid> {
        self.topic(topic).map(|t| t.id)
    }

    fn topic_name(&self, id: Uuid) -> Option<String> {
        self.topic_by_id(id).map(|t| t.name.clone())
    }

    fn topic_names(&self) -> Vec<String> {
        Store::topic_names(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: Option<&Path>) -> StoreConfig {
        StoreConfig {
            data_dir: dir.map(Path::to_owned),
            segment_bytes: 1 << 20,
            retention_bytes: None,
            retention_ms: None,
            max_partitions: DEFAULT_MAX_PARTITIONS,
            fail_fsync_while: None,
        }
    }

    #[test]
    fn topics_and_their_partitions_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(config(Some(dir.path())), "cluster-a".into()).expect("open");
        let created = store.create_topic("orders", 2, BTreeMap::new(), false).expect("create");
        store.create_partitions("orders", 3, false).expect("grow");
        drop(store);
        let store = Store::open(config(Some(dir.path())), "other".into()).expect("reopen");
        assert_eq!(store.cluster_id(), "cluster-a", "a data dir keeps its cluster id");
        let topic = store.topic("orders").expect("topic");
        assert_eq!((topic.id, topic.partition_count()), (created.id, 3));
    }

    #[test]
    fn a_recreated_topic_never_sees_what_a_deleted_one_left_on_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(config(Some(dir.path())), "c".into()).expect("open");
        let topic = store.create_topic("t", 1, BTreeMap::new(), false).expect("create");
        let batch = batch::tests::encoded_batch(&["old"], None);
        let header = batch::BatchHeader::parse_checked(&batch).expect("batch");
        lock(&topic.partition(0).expect("partition"))
            .append(&header, &batch)
            .expect("append");
        drop(store);
        // A crash after the catalog forgot the topic, before its directory was removed.
        std::fs::write(dir.path().join("topics.json"), r#"{"cluster_id":"c","topics":[]}"#).expect("catalog");
        let store = Store::open(config(Some(dir.path())), "c".into()).expect("reopen");
        let topic = store.create_topic("t", 1, BTreeMap::new(), false).expect("recreate");
        assert_eq!(lock(&topic.partition(0).expect("partition")).end_offset(), 0);
    }

    #[test]
    fn a_topics_retention_config_wins_over_the_brokers() {
        let store = Store::open(config(None), "c".into()).expect("open");
        let small = BTreeMap::from([("retention.bytes".to_owned(), "1".to_owned())]);
        let kept = store.create_topic("kept", 1, BTreeMap::new(), false).expect("create");
        let trimmed = store.create_topic("trimmed", 1, small, false).expect("create");
        for topic in [&kept, &trimmed] {
            for value in ["a", "b", "c"] {
                let batch = batch::tests::encoded_batch(&[value], None);
                let header = batch::BatchHeader::parse_checked(&batch).expect("batch");
                lock(&topic.partition(0).expect("partition"))
                    .append(&header, &batch)
                    .expect("append");
            }
        }
        store.apply_retention(partition::now_ms());
        assert_eq!(
            lock(&kept.partition(0).expect("p")).log_start(),
            0,
            "no retention by default"
        );
        assert_eq!(
            lock(&trimmed.partition(0).expect("p")).log_start(),
            2,
            "all but the last batch dropped"
        );
    }

    #[test]
    fn refuses_bad_names_duplicates_and_shrinking() {
        let store = Store::open(config(None), "c".into()).expect("open");
        let bad = store
            .create_topic("no spaces", 1, BTreeMap::new(), false)
            .err()
            .expect("bad name");
        assert_eq!(bad.code, ResponseError::InvalidTopicException);
        store.create_topic("t", 2, BTreeMap::new(), false).expect("create");
        let dup = store
            .create_topic("t", 2, BTreeMap::new(), false)
            .err()
            .expect("exists");
        assert_eq!(dup.code, ResponseError::TopicAlreadyExists);
        let shrink = store.create_partitions("t", 1, false).expect_err("shrink");
        assert_eq!(shrink.code, ResponseError::InvalidPartitions);
        store.delete_topic("t").expect("delete");
        assert!(store.topic("t").is_none());
    }
}
