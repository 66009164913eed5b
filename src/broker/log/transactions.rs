//! Transactions as one partition sees them: the open transaction of each producer (its first offset holds the
//! last stable offset back), the aborted transactions (what a `read_committed` Fetch lists so the consumer drops
//! their records), and the control batches (COMMIT/ABORT markers) that end them. Kafka's `ProducerStateManager`
//! and transaction index, kept in memory and rebuilt from the log's batches when a partition is opened.

use super::batch::{BatchHeader, CRC_START};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Attributes of a control batch: transactional (bit 4) and control (bit 5), no compression.
const CONTROL_ATTRIBUTES: i16 = (1 << 4) | (1 << 5);

/// What a control record says (its key's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

/// A transaction that was aborted on this partition: its records in [first, last] are not to be read by a
/// `read_committed` consumer (last is the ABORT marker's offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default)]
pub struct PartitionTransactions {
    /// Producer id → the first offset of its open transaction here.
    open: HashMap<i64, i64>,
    /// First offsets of open transactions, counted (a BTreeMap keeps the smallest at hand).
    open_firsts: BTreeMap<i64, usize>,
    /// In the order of their markers (so by last offset).
    aborted: VecDeque<AbortedTxn>,
}

impl PartitionTransactions {
    /// Takes note of a batch appended at `base_offset` (also while recovering): a transactional data batch opens
    /// its producer's transaction if none is open; a marker closes it (an ABORT records the aborted range).
    pub fn on_batch(&mut self, header: &BatchHeader, base_offset: i64, marker: Option<Marker>) {
        if !header.is_transactional() || header.producer_id < 0 {
            return;
        }
        if !header.is_control() {
            if let std::collections::hash_map::Entry::Vacant(e) = self.open.entry(header.producer_id) {
                e.insert(base_offset);
                *self.open_firsts.entry(base_offset).or_default() += 1;
            }
            return;
        }
        let Some(first) = self.open.remove(&header.producer_id) else {
            return; // a marker for a transaction with no data here (or a retried one): nothing to close
        };
        if let Some(count) = self.open_firsts.get_mut(&first) {
            *count -= 1;
            if *count == 0 {
                self.open_firsts.remove(&first);
            }
        }
        if marker == Some(Marker::Abort) {
            self.aborted.push_back(AbortedTxn {
                producer_id: header.producer_id,
                first_offset: first,
                last_offset: base_offset,
            });
        }
    }

    /// The first offset of the oldest open transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_firsts.keys().next().copied()
    }

    pub fn has_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// Aborted transactions a fetch of [from, to) must list: those ending at or after `from` that began before `to`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start.
    pub fn trim(&mut self, log_start: i64) {
        while self.aborted.front().is_some_and(|a| a.last_offset < log_start) {
            self.aborted.pop_front();
        }
    }
}

/// A control batch (one record) ending `producer_id`'s transaction: what Kafka's transaction coordinator
/// writes to each partition of a transaction. Its base offset is set when it is appended.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Bytes {
    // Key: version 0, type (0 abort, 1 commit). Value: version 0, coordinator epoch.
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(match marker {
        Marker::Abort => 0,
        Marker::Commit => 1,
    });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let mut record = BytesMut::new();
    record.put_i8(0); // attributes
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, key.len() as i64);
    record.put_slice(&key);
    put_varint(&mut record, value.len() as i64);
    record.put_slice(&value);
    put_varint(&mut record, 0); // headers
    let mut batch = BytesMut::new();
    batch.put_i64(0); // base offset
    batch.put_i32(0); // length, below
    batch.put_i32(0); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // crc, below
    batch.put_i16(CONTROL_ATTRIBUTES);
    batch.put_i32(0); // last offset delta
    batch.put_i64(now_ms);
    batch.put_i64(now_ms);
    batch.put_i64(producer_id);
    batch.put_i16(producer_epoch);
    batch.put_i32(-1); // base sequence: markers have none
    batch.put_i32(1);
    put_varint(&mut batch, record.len() as i64);
    batch.put_slice(&record);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

/// What the control batch whose records (the bytes after the batch header) are `body` says; None if its first
/// record is not a readable control record.
pub fn marker_of(body: &[u8]) -> Option<Marker> {
    let mut at = 0usize;
    let _length = read_varint(body, &mut at)?;
    at += 1; // attributes
    let _timestamp_delta = read_varint(body, &mut at)?;
    let _offset_delta = read_varint(body, &mut at)?;
    let key_length = read_varint(body, &mut at)?;
    if key_length < 4 {
        return None;
    }
    let key = body.get(at..at + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(Marker::Abort),
        1 => Some(Marker::Commit),
        _ => None,
    }
}

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::log::batch::HEADER_LEN;
    use kafka_protocol::records::RecordBatchDecoder;

    fn data(producer_id: i64) -> BatchHeader {
        let bytes = marker_batch(producer_id, 0, Marker::Commit, 0, 0);
        let mut header = BatchHeader::parse_checked(&bytes).expect("a valid batch");
        header.attributes = 1 << 4;
        header
    }

    fn marker(producer_id: i64) -> BatchHeader {
        BatchHeader::parse_checked(&marker_batch(producer_id, 0, Marker::Abort, 0, 0)).expect("a valid batch")
    }

    #[test]
    fn a_marker_batch_is_a_valid_control_batch_that_kafkas_decoder_reads() {
        let bytes = marker_batch(7, 3, Marker::Commit, 0, 1_000);
        let header = BatchHeader::parse_checked(&bytes).expect("crc and length check");
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(
            (header.producer_id, header.producer_epoch, header.records_count),
            (7, 3, 1)
        );
        assert_eq!(marker_of(&bytes[HEADER_LEN..]), Some(Marker::Commit));
        assert_eq!(
            marker_of(&marker_batch(7, 3, Marker::Abort, 0, 0)[HEADER_LEN..]),
            Some(Marker::Abort)
        );
        let mut buf = bytes.clone();
        let decoded = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes it");
        assert!(decoded.records[0].control);
    }

    #[test]
    fn the_oldest_open_transaction_holds_the_stable_offset_and_an_abort_is_listed() {
        let mut t = PartitionTransactions::default();
        t.on_batch(&data(1), 10, None);
        t.on_batch(&data(2), 12, None);
        t.on_batch(&data(1), 14, None);
        assert_eq!(t.first_unstable_offset(), Some(10));
        t.on_batch(&marker(1), 15, Some(Marker::Abort));
        assert_eq!(t.first_unstable_offset(), Some(12));
        t.on_batch(&marker(2), 16, Some(Marker::Commit));
        assert_eq!(t.first_unstable_offset(), None);
        let aborted = AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 15,
        };
        assert_eq!(t.aborted_between(0, 11), vec![aborted]);
        assert_eq!(t.aborted_between(15, 20), vec![aborted]);
        assert!(t.aborted_between(16, 20).is_empty());
        assert!(t.aborted_between(0, 10).is_empty());
        t.trim(16);
        assert!(t.aborted_between(0, 20).is_empty());
    }

    #[test]
    fn a_marker_without_data_changes_nothing() {
        let mut t = PartitionTransactions::default();
        t.on_batch(&marker(1), 0, Some(Marker::Abort));
        assert!(t.aborted_between(0, 10).is_empty());
        assert_eq!(t.first_unstable_offset(), None);
    }

    #[test]
    fn a_truncated_control_record_is_no_marker() {
        let bytes = marker_batch(7, 3, Marker::Commit, 0, 0);
        assert_eq!(marker_of(&bytes[HEADER_LEN..HEADER_LEN + 5]), None);
        assert_eq!(marker_of(&[0xff; 12]), None);
    }
}
