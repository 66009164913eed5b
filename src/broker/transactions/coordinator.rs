//! The transaction coordinator, after Apache Kafka's `TransactionCoordinator`: InitProducerId with a
//! transactional id (epoch bump, fencing, KIP-360 retries), AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
//! EndTxn (markers to every partition of the transaction, the group's offsets committed or dropped), the
//! transaction timeout, and the state DescribeTransactions/ListTransactions show.
//!
//! Every change is made durable (the journal) before anyone sees it. Changes are serialized by one async lock;
//! what Produce checks (`verify_produce`) reads the visible state under a short lock of its own. A decided
//! transaction goes to PrepareCommit/PrepareAbort (visible, so no more data is accepted for it) before its markers
//! are written, and is completed at the next start if the process dies in between.

use super::journal::TxnJournal;
use super::state::{PendingOffset, TxnMetadata, TxnState};
use crate::broker::coordinator::{GroupCoordinator, TxnOffset};
use crate::broker::log::partition::{AppendError, now_ms};
use crate::broker::log::transactions::Marker;
use crate::broker::log::{Store, lock};
use kafka_protocol::ResponseError;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Kafka's `transaction.max.timeout.ms` default: the longest transaction timeout a producer may ask for.
pub const DEFAULT_MAX_TIMEOUT_MS: i32 = 900_000;

#[derive(Default)]
struct Visible {
    by_id: HashMap<String, TxnMetadata>,
    /// Producer id → transactional id, for Produce's check.
    by_producer: HashMap<i64, String>,
    /// Transactions in state Ongoing.
    open: i64,
}

impl Visible {
    fn put(&mut self, metadata: TxnMetadata) {
        if let Some(old) = self.by_id.get(&metadata.transactional_id) {
            if old.producer_id != metadata.producer_id {
                self.by_producer.remove(&old.producer_id);
            }
            self.open -= i64::from(old.state == TxnState::Ongoing);
        }
        self.open += i64::from(metadata.state == TxnState::Ongoing);
        self.by_producer
            .insert(metadata.producer_id, metadata.transactional_id.clone());
        self.by_id.insert(metadata.transactional_id.clone(), metadata);
    }

    fn remove(&mut self, transactional_id: &str) {
        if let Some(old) = self.by_id.remove(transactional_id) {
            self.by_producer.remove(&old.producer_id);
            self.open -= i64::from(old.state == TxnState::Ongoing);
        }
    }
}

pub struct TransactionCoordinator {
    store: Arc<Store>,
    groups: Arc<GroupCoordinator>,
    max_timeout_ms: i32,
    /// Held for the whole of a change (it may wait for I/O); None without a data dir.
    changes: tokio::sync::Mutex<Option<TxnJournal>>,
    visible: Mutex<Visible>,
    /// `kafka_broker_transactions_open`, `kafka_broker_transactions_timed_out` (the broker's metrics register them).
    open_gauge: Gauge,
    timed_out: Counter,
}

type Outcome<T = ()> = Result<T, ResponseError>;

fn unavailable(e: impl std::fmt::Display) -> ResponseError {
    tracing::error!(error = %e, "transaction coordinator: cannot write its state");
    ResponseError::CoordinatorNotAvailable
}

impl TransactionCoordinator {
    /// Opens the coordinator; with a data dir, replays its journal (in `dir`). Call `recover` next.
    pub fn open(
        dir: Option<&Path>,
        store: Arc<Store>,
        groups: Arc<GroupCoordinator>,
        max_timeout_ms: i32,
    ) -> std::io::Result<Arc<TransactionCoordinator>> {
        let (journal, stored) = match dir {
            Some(dir) => {
                let (journal, stored) = TxnJournal::open(dir)?;
                (Some(journal), stored)
            }
            None => (None, HashMap::new()),
        };
        let mut visible = Visible::default();
        for (_, metadata) in stored {
            visible.put(metadata);
        }
        let open_gauge = Gauge::default();
        open_gauge.set(visible.open);
        Ok(Arc::new(TransactionCoordinator {
            store,
            groups,
            max_timeout_ms,
            changes: tokio::sync::Mutex::new(journal),
            visible: Mutex::new(visible),
            open_gauge,
            timed_out: Counter::default(),
        }))
    }

    /// After a restart: the group coordinator learns which offsets open transactions hold, and transactions that
    /// were decided but not completed are completed.
    pub async fn recover(&self) {
        let all: Vec<TxnMetadata> = self.visible().by_id.values().cloned().collect();
        for m in &all {
            self.note_pending(&m.offsets);
        }
        for m in all.into_iter().filter(|m| m.state.is_preparing()) {
            let mut journal = self.changes.lock().await;
            tracing::info!(
                transactional_id = m.transactional_id,
                state = m.state.name(),
                "completing a decided transaction"
            );
            if let Err(e) = self.complete(&mut journal, m).await {
                tracing::error!(error = ?e, "cannot complete a decided transaction; retried by the timer");
            }
        }
    }

    fn visible(&self) -> MutexGuard<'_, Visible> {
        self.visible.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.visible().by_id.get(transactional_id).cloned()
    }

    /// Makes `metadata` durable, then visible.
    async fn persist(&self, journal: &mut Option<TxnJournal>, metadata: TxnMetadata) -> Outcome {
        if let Some(journal) = journal.as_mut() {
            blocking(|| journal.write(&metadata)).map_err(unavailable)?;
        }
        let mut visible = self.visible();
        visible.put(metadata);
        self.open_gauge.set(visible.open);
        Ok(())
    }

    /// The gauge of open transactions and the counter of transactions aborted by their timeout.
    pub fn metrics(&self) -> (Gauge, Counter) {
        (self.open_gauge.clone(), self.timed_out.clone())
    }

    fn note_pending(&self, offsets: &[PendingOffset]) {
        for (group, partitions) in by_group(offsets) {
            self.groups.add_pending_txn_offsets(&group, &partitions);
        }
    }

    fn clear_pending(&self, offsets: &[PendingOffset]) {
        for (group, partitions) in by_group(offsets) {
            self.groups.remove_pending_txn_offsets(&group, &partitions);
        }
    }

    /// InitProducerId with a transactional id: a producer id and a new epoch for it. An open transaction of the
    /// previous holder is aborted (and its epoch fenced) first.
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Outcome<(i64, i16)> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let mut journal = self.changes.lock().await;
        let now = now_ms();
        let Some(mut m) = self.current(transactional_id) else {
            let id = self.store.allocate_producer_id().map_err(unavailable)?;
            let m = TxnMetadata::new(transactional_id, id, timeout_ms, now);
            self.persist(&mut journal, m).await?;
            return Ok((id, 0));
        };
        if !m.may_reinitialize(producer_id, producer_epoch) {
            return Err(ResponseError::ProducerFenced);
        }
        if m.is_retried_init(producer_id, producer_epoch) {
            return Ok((m.producer_id, m.producer_epoch));
        }
        if m.state.is_preparing() {
            m = self
                .complete(&mut journal, m)
                .await
                .map_err(|_| ResponseError::ConcurrentTransactions)?;
        }
        m.timeout_ms = timeout_ms;
        let store = &self.store;
        m.bump_epoch(|| store.allocate_producer_id()).map_err(unavailable)?;
        if m.state == TxnState::Ongoing {
            // Fenced: the previous holder's transaction is aborted, under the new epoch.
            self.decide(&mut journal, m, false).await?;
        } else {
            m.state = TxnState::Empty;
            m.updated_ms = now;
            self.persist(&mut journal, m).await?;
        }
        let m = self
            .current(transactional_id)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        Ok((m.producer_id, m.producer_epoch))
    }

    /// The transaction `transactional_id` as a request names it, for a change: the current producer, and not
    /// in the middle of completing.
    fn for_change(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16) -> Outcome<TxnMetadata> {
        let m = self
            .current(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        m.check_producer(producer_id, producer_epoch)?;
        if m.state.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn: the partitions (known to exist) join the transaction, which opens if it was not.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Outcome {
        let mut journal = self.changes.lock().await;
        let mut m = self.for_change(transactional_id, producer_id, producer_epoch)?;
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            return Ok(());
        }
        m.begin(now_ms());
        m.partitions.extend(partitions.iter().cloned());
        self.persist(&mut journal, m).await
    }

    /// AddOffsetsToTxn: the transaction may commit offsets of `group`.
    pub async fn add_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
    ) -> Outcome {
        let mut journal = self.changes.lock().await;
        let mut m = self.for_change(transactional_id, producer_id, producer_epoch)?;
        if m.state == TxnState::Ongoing && m.groups.contains(group) {
            return Ok(());
        }
        m.begin(now_ms());
        m.groups.insert(group.to_owned());
        self.persist(&mut journal, m).await
    }

    /// TxnOffsetCommit: offsets (already validated against the group) wait in the transaction until it ends.
    pub async fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
        offsets: Vec<PendingOffset>,
    ) -> Outcome {
        let mut journal = self.changes.lock().await;
        let mut m = self
            .current(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            // What Kafka's log answers a batch of an older epoch.
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if m.state != TxnState::Ongoing || !m.groups.contains(group) {
            return Err(ResponseError::InvalidTxnState);
        }
        let mut added = Vec::new();
        for offset in offsets {
            if m.put_offset(offset.clone()) {
                added.push(offset);
            }
        }
        m.updated_ms = now_ms();
        self.persist(&mut journal, m).await?;
        self.note_pending(&added);
        Ok(())
    }

    /// EndTxn: commits or aborts the open transaction. A retry of the same decision after it completed is
    /// answered as it was.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Outcome {
        let mut journal = self.changes.lock().await;
        let m = self
            .current(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        m.check_producer(producer_id, producer_epoch)?;
        match (m.state, commit) {
            (TxnState::Ongoing, _) => self.decide(&mut journal, m, commit).await,
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                self.complete(&mut journal, m).await.map(|_| ())
            }
            // The other decision while one is completing, or no transaction open.
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Decides the open transaction `m`: PrepareCommit/PrepareAbort made durable and visible (no more data is
    /// accepted for it), then completed. Once decided, a failure to complete is retried (the timer, the next
    /// start); the producer is answered as Kafka answers it once the decision is durable.
    async fn decide(&self, journal: &mut Option<TxnJournal>, mut m: TxnMetadata, commit: bool) -> Outcome {
        m.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        m.updated_ms = now_ms();
        self.persist(journal, m.clone()).await?;
        if let Err(e) = self.complete(journal, m).await {
            tracing::warn!(error = ?e, "a decided transaction could not be completed yet; retried by the timer");
        }
        Ok(())
    }

    /// Writes the markers of a decided transaction to every partition of it, commits (or drops) its offsets, and
    /// records it complete.
    async fn complete(&self, journal: &mut Option<TxnJournal>, mut m: TxnMetadata) -> Outcome<TxnMetadata> {
        let commit = m.state == TxnState::PrepareCommit;
        let marker = if commit { Marker::Commit } else { Marker::Abort };
        let mut wrote = false;
        for (topic, partition) in &m.partitions {
            let Some(log) = self.store.topic(topic).and_then(|t| t.partition(*partition)) else {
                continue; // deleted since: nothing to end there
            };
            if let Some(reason) = self.store.offline() {
                return Err(unavailable(reason));
            }
            match lock(&log).append_marker(m.producer_id, m.producer_epoch, marker, 0) {
                Ok(_) => wrote = true,
                Err(AppendError::Io(e)) => return Err(unavailable(e)),
                Err(AppendError::Refused(e)) => return Err(e),
            }
        }
        if wrote {
            self.store.notify_appended();
        }
        if commit {
            for (group, offsets) in txn_offsets_by_group(&m.offsets) {
                self.groups
                    .commit_txn_offsets(&group, &offsets)
                    .await
                    .map_err(unavailable)?;
            }
        }
        self.clear_pending(&m.offsets);
        m.complete(commit, now_ms());
        self.persist(journal, m.clone()).await?;
        Ok(m)
    }

    /// Produce of a transactional batch: the producer must hold its transactional id at this epoch, with the
    /// partition added to its open transaction (Kafka's verification, KIP-890 part 1: no hanging transaction).
    /// Call with the partition locked, so that no marker comes between the check and the append.
    pub fn verify_produce(&self, producer_id: i64, producer_epoch: i16, topic: &str, partition: i32) -> Outcome {
        let visible = self.visible();
        let Some(m) = visible
            .by_producer
            .get(&producer_id)
            .and_then(|id| visible.by_id.get(id))
        else {
            return Err(ResponseError::InvalidTxnState);
        };
        if producer_epoch != m.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if m.state != TxnState::Ongoing || !m.partitions.contains(&(topic.to_owned(), partition)) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.current(transactional_id)
    }

    pub fn all(&self) -> Vec<TxnMetadata> {
        let mut all: Vec<TxnMetadata> = self.visible().by_id.values().cloned().collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Aborts transactions open longer than their timeout (fencing their producer, as Kafka does), retries the
    /// completion of decided ones, forgets ids idle past `transactional.id.expiration.ms`, compacts the journal.
    pub async fn tick(&self) {
        if self.store.offline().is_some() {
            // No marker can be written until a restart (which completes what was decided).
            return;
        }
        let now = now_ms();
        // Only the ids with something to do (most have nothing): no copy of every id's state each second.
        let due: Vec<String> = self
            .visible()
            .by_id
            .values()
            .filter(|m| m.has_timed_out(now) || m.state.is_preparing() || m.has_expired(now))
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in due {
            let mut journal = self.changes.lock().await;
            // Re-read under the lock: a request may have changed it.
            let Some(mut m) = self.current(&id) else {
                continue;
            };
            if m.has_timed_out(now) {
                tracing::info!(
                    transactional_id = m.transactional_id,
                    timeout_ms = m.timeout_ms,
                    "aborting a transaction that timed out"
                );
                let store = &self.store;
                if let Err(e) = m.bump_epoch(|| store.allocate_producer_id()) {
                    tracing::error!(error = %e, "cannot fence a timed-out transaction's producer");
                    continue;
                }
                self.timed_out.inc();
                let _ = self.decide(&mut journal, m, false).await;
            } else if m.state.is_preparing() {
                let _ = self.complete(&mut journal, m).await;
            } else if m.has_expired(now) {
                if let Some(j) = journal.as_mut()
                    && let Err(e) = blocking(|| j.remove(&m.transactional_id))
                {
                    tracing::error!(error = %e, "cannot forget an expired transactional id");
                    continue;
                }
                self.visible().remove(&m.transactional_id);
            }
        }
        let mut journal = self.changes.lock().await;
        if let Some(j) = journal.as_mut()
            && j.is_stale(self.visible().by_id.len())
        {
            let live: Vec<TxnMetadata> = self.all();
            if let Err(e) = blocking(|| j.compact_if_stale(live.iter())) {
                tracing::warn!(error = %e, "cannot compact the transaction journal");
            }
        }
    }
}

/// Runs blocking file I/O from async code without stalling a runtime worker where the runtime allows it.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn by_group(offsets: &[PendingOffset]) -> BTreeMap<String, Vec<(String, i32)>> {
    let mut groups: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
    for o in offsets {
        groups
            .entry(o.group.clone())
            .or_default()
            .push((o.topic.clone(), o.partition));
    }
    groups
}

fn txn_offsets_by_group(offsets: &[PendingOffset]) -> BTreeMap<String, Vec<TxnOffset>> {
    let mut groups: BTreeMap<String, Vec<TxnOffset>> = BTreeMap::new();
    for o in offsets {
        groups.entry(o.group.clone()).or_default().push(TxnOffset {
            topic: o.topic.clone(),
            partition: o.partition,
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata.clone(),
        });
    }
    groups
}
