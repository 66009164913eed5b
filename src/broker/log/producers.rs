//! Idempotent producers, per partition: the last epoch and the last five batches' sequence ranges of each
//! producer id, as Kafka keeps them, so a retried batch is answered with its first offset instead of being
//! appended twice, and a gap in the sequence is refused.

use super::batch::BatchHeader;
use kafka_protocol::ResponseError;
use std::collections::{HashMap, VecDeque};

/// Kafka keeps (and clients pipeline at most) five in-flight batches per producer and partition.
const REMEMBERED_BATCHES: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Appended {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

#[derive(Debug, Default)]
struct Producer {
    epoch: i16,
    recent: VecDeque<Appended>,
    /// When it last appended (or was recovered), ms since the epoch: what expiry counts from.
    last_seen_ms: i64,
}

/// Kafka's `producer.id.expiration.ms`: the state of a producer that has not appended for this long is dropped,
/// so that producers that come and go cannot grow a partition's memory without end.
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

/// What to do with a batch, given what its producer sent before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// Already in the log at this base offset: answer with it, append nothing.
    Duplicate(i64),
    Refuse(ResponseError),
}

#[derive(Debug, Default)]
pub struct Producers {
    by_id: HashMap<i64, Producer>,
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX { 0 } else { sequence + 1 }
}

impl Producers {
    pub fn check(&self, batch: &BatchHeader) -> SequenceCheck {
        if batch.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let Some(producer) = self.by_id.get(&batch.producer_id) else {
            return if batch.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
            };
        };
        if batch.producer_epoch < producer.epoch {
            return SequenceCheck::Refuse(ResponseError::InvalidProducerEpoch);
        }
        if batch.producer_epoch > producer.epoch {
            return if batch.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        let last = batch.last_sequence();
        if let Some(done) = producer
            .recent
            .iter()
            .find(|a| a.first_sequence == batch.base_sequence && a.last_sequence == last)
        {
            return SequenceCheck::Duplicate(done.base_offset);
        }
        match producer.recent.back() {
            Some(latest) if next_sequence(latest.last_sequence) == batch.base_sequence => SequenceCheck::Append,
            None if batch.base_sequence == 0 => SequenceCheck::Append,
            _ => SequenceCheck::Refuse(ResponseError::OutOfOrderSequenceNumber),
        }
    }

    /// Remembers an appended batch (also while recovering a log from disk), appended at `now_ms`.
    /// A control batch (a transaction marker) carries no sequence: it only moves the producer to its epoch.
    pub fn record(&mut self, batch: &BatchHeader, base_offset: i64, now_ms: i64) {
        if batch.producer_id < 0 {
            return;
        }
        let producer = self.by_id.entry(batch.producer_id).or_default();
        producer.last_seen_ms = producer.last_seen_ms.max(now_ms);
        if batch.producer_epoch != producer.epoch {
            producer.epoch = batch.producer_epoch;
            producer.recent.clear();
        }
        if batch.is_control() {
            return;
        }
        producer.recent.push_back(Appended {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            base_offset,
        });
        while producer.recent.len() > REMEMBERED_BATCHES {
            producer.recent.pop_front();
        }
    }

    /// Drops the state of producers that have not appended for more than `max_idle_ms`, but those `keep` names;
    /// returns how many.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64, keep: impl Fn(i64) -> bool) -> usize {
        let before = self.by_id.len();
        self.by_id
            .retain(|id, p| keep(*id) || now_ms.saturating_sub(p.last_seen_ms) <= max_idle_ms);
        before - self.by_id.len()
    }

    /// The largest producer id seen, so ids handed out after a restart never collide with logged ones.
    pub fn max_id(&self) -> Option<i64> {
        self.by_id.keys().copied().max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, epoch: i16, first: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            size: 61,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: id,
            producer_epoch: epoch,
            base_sequence: first,
            records_count: count,
        }
    }

    #[test]
    fn a_retried_batch_is_a_duplicate_with_its_first_offset() {
        let mut p = Producers::default();
        let first = batch(1, 0, 0, 3);
        assert_eq!(p.check(&first), SequenceCheck::Append);
        p.record(&first, 100, 0);
        let second = batch(1, 0, 3, 2);
        assert_eq!(p.check(&second), SequenceCheck::Append);
        p.record(&second, 103, 0);
        assert_eq!(p.check(&first), SequenceCheck::Duplicate(100));
        assert_eq!(p.check(&second), SequenceCheck::Duplicate(103));
    }

    #[test]
    fn a_gap_in_the_sequence_is_refused() {
        let mut p = Producers::default();
        p.record(&batch(1, 0, 0, 3), 0, 0);
        assert_eq!(
            p.check(&batch(1, 0, 5, 1)),
            SequenceCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            p.check(&batch(2, 0, 4, 1)),
            SequenceCheck::Refuse(ResponseError::OutOfOrderSequenceNumber),
            "a new producer starts at sequence 0"
        );
    }

    #[test]
    fn an_old_epoch_is_fenced_and_a_new_one_restarts_at_zero() {
        let mut p = Producers::default();
        p.record(&batch(1, 3, 0, 1), 0, 0);
        assert_eq!(
            p.check(&batch(1, 2, 1, 1)),
            SequenceCheck::Refuse(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(p.check(&batch(1, 4, 0, 1)), SequenceCheck::Append);
        assert_eq!(
            p.check(&batch(1, 4, 1, 1)),
            SequenceCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn sequences_continue_across_the_wrap() {
        let mut p = Producers::default();
        p.record(&batch(1, 0, i32::MAX, 1), 0, 0);
        assert_eq!(p.check(&batch(1, 0, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn producers_idle_longer_than_the_expiration_are_forgotten() {
        let mut p = Producers::default();
        p.record(&batch(1, 0, 0, 1), 0, 1_000);
        p.record(&batch(2, 0, 0, 1), 1, 5_000);
        assert_eq!(
            p.expire(1_000 + PRODUCER_EXPIRATION_MS, PRODUCER_EXPIRATION_MS, |_| false),
            0
        );
        assert_eq!(
            p.expire(1_001 + PRODUCER_EXPIRATION_MS, PRODUCER_EXPIRATION_MS, |_| false),
            1
        );
        assert_eq!(
            p.check(&batch(2, 0, 1, 1)),
            SequenceCheck::Append,
            "the recent one stays"
        );
        assert_eq!(p.max_id(), Some(2));
    }
}
