//! One transactional id's state, as Apache Kafka's `TransactionMetadata` keeps it: the producer id and epoch it
//! holds (and the ones before the last bump, for KIP-360 retries), the state of its current transaction, the
//! partitions and groups in it, and the offsets it will commit. Pure data and checks; `coordinator.rs` acts on it.

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Kafka's `TransactionState`, named as `kafka-transactions.sh` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub const ALL: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Decided but not yet written everywhere: requests wait (CONCURRENT_TRANSACTIONS) until it completes.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset a transaction commits for a group when it commits (TxnOffsetCommit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The id and epoch before the last bump: a producer that retries InitProducerId with them (KIP-360) gets the
    /// current ones instead of being fenced.
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) of the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the transaction may commit (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    pub offsets: Vec<PendingOffset>,
    /// When the current transaction began (ms since the epoch), -1 when none is open.
    pub start_ms: i64,
    /// When the state last changed: what transactional id expiration counts from.
    pub updated_ms: i64,
}

/// Kafka's `transactional.id.expiration.ms` default: an id idle for longer is forgotten.
pub const TRANSACTIONAL_ID_EXPIRATION_MS: i64 = 7 * 24 * 3600 * 1000;

impl TxnMetadata {
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_owned(),
            producer_id,
            producer_epoch: 0,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: Vec::new(),
            start_ms: -1,
            updated_ms: now_ms,
        }
    }

    /// The producer id and epoch a request names must be the current ones (Kafka's order of checks).
    pub fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// Whether InitProducerId naming `(producer_id, epoch)` (KIP-360; -1 when it names none) may go on: the
    /// current pair, or the one before the last bump (a retry), or none named.
    pub fn may_reinitialize(&self, producer_id: i64, producer_epoch: i16) -> bool {
        producer_id < 0
            || (producer_id, producer_epoch) == (self.producer_id, self.producer_epoch)
            || (producer_id, producer_epoch) == (self.last_producer_id, self.last_producer_epoch)
    }

    /// Whether InitProducerId naming `(producer_id, epoch)` retries one that already bumped (answer as is).
    pub fn is_retried_init(&self, producer_id: i64, producer_epoch: i16) -> bool {
        producer_id >= 0
            && (producer_id, producer_epoch) == (self.last_producer_id, self.last_producer_epoch)
            && !matches!(self.state, TxnState::Ongoing)
    }

    /// A new epoch for the id (fencing whoever held the old one); past the epoch range, a new producer id
    /// (`fresh_id`) at epoch 0, as Kafka does.
    pub fn bump_epoch(&mut self, fresh_id: impl FnOnce() -> std::io::Result<i64>) -> std::io::Result<()> {
        let (id, epoch) = if self.producer_epoch >= i16::MAX - 1 {
            (fresh_id()?, 0)
        } else {
            (self.producer_id, self.producer_epoch + 1)
        };
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        self.producer_id = id;
        self.producer_epoch = epoch;
        Ok(())
    }

    /// Ends the transaction's bookkeeping once its markers are written (and, for a commit, its offsets).
    pub fn complete(&mut self, committed: bool, now_ms: i64) {
        self.state = if committed {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        self.partitions.clear();
        self.groups.clear();
        self.offsets.clear();
        self.start_ms = -1;
        self.updated_ms = now_ms;
    }

    /// Opens the transaction if none is open (AddPartitionsToTxn, AddOffsetsToTxn).
    pub fn begin(&mut self, now_ms: i64) {
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.start_ms = now_ms;
        }
        self.updated_ms = now_ms;
    }

    pub fn has_timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    pub fn has_expired(&self, now_ms: i64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && now_ms.saturating_sub(self.updated_ms) > TRANSACTIONAL_ID_EXPIRATION_MS
    }

    /// Puts an offset into the transaction (a later one for the same partition replaces it); returns whether
    /// the partition is new to it.
    pub fn put_offset(&mut self, offset: PendingOffset) -> bool {
        match self
            .offsets
            .iter_mut()
            .find(|o| o.group == offset.group && o.topic == offset.topic && o.partition == offset.partition)
        {
            Some(existing) => {
                *existing = offset;
                false
            }
            None => {
                self.offsets.push(offset);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_epoch_is_fenced_and_another_id_is_no_mapping() {
        let m = TxnMetadata {
            producer_epoch: 3,
            ..TxnMetadata::new("t", 1000, 60_000, 0)
        };
        assert_eq!(m.check_producer(1000, 3), Ok(()));
        assert_eq!(m.check_producer(1000, 2), Err(ResponseError::ProducerFenced));
        assert_eq!(m.check_producer(1001, 3), Err(ResponseError::InvalidProducerIdMapping));
    }

    #[test]
    fn bumping_past_the_epoch_range_takes_a_new_producer_id() {
        let mut m = TxnMetadata::new("t", 1000, 60_000, 0);
        m.bump_epoch(|| Ok(2000)).expect("bump");
        assert_eq!((m.producer_id, m.producer_epoch), (1000, 1));
        assert_eq!((m.last_producer_id, m.last_producer_epoch), (1000, 0));
        m.producer_epoch = i16::MAX - 1;
        m.bump_epoch(|| Ok(2000)).expect("bump");
        assert_eq!((m.producer_id, m.producer_epoch), (2000, 0));
        assert!(m.may_reinitialize(1000, i16::MAX - 1), "a retry with the previous pair");
        assert!(m.may_reinitialize(-1, -1));
        assert!(!m.may_reinitialize(1000, 5));
    }

    #[test]
    fn a_transaction_times_out_only_while_open() {
        let mut m = TxnMetadata::new("t", 1000, 1_000, 0);
        assert!(!m.has_timed_out(10_000));
        m.begin(100);
        assert!(!m.has_timed_out(1_100));
        assert!(m.has_timed_out(1_101));
        m.complete(false, 2_000);
        assert!(!m.has_timed_out(100_000));
        assert!(m.has_expired(2_001 + TRANSACTIONAL_ID_EXPIRATION_MS));
    }

    #[test]
    fn a_later_offset_for_the_same_partition_replaces_the_pending_one() {
        let mut m = TxnMetadata::new("t", 1000, 1_000, 0);
        let offset = |o| PendingOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            offset: o,
            leader_epoch: -1,
            metadata: None,
        };
        assert!(m.put_offset(offset(5)));
        assert!(!m.put_offset(offset(9)));
        assert_eq!(m.offsets, vec![offset(9)]);
    }
}
