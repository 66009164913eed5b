//! One partition's log: its batches in offset order (in memory, and mirrored to segment files with a data
//! dir), the log start and end offsets, and the idempotent producers' state. No locking here: the store
//! keeps each partition behind its own mutex.

use super::batch::{BatchHeader, assign_offset};
use super::producers::{Producers, SequenceCheck};
use super::segment::SegmentWriter;
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use std::fs::File;

/// The leader epoch of every partition: one node that never changes leadership.
pub const LEADER_EPOCH: i32 = 0;

struct StoredBatch {
    base_offset: i64,
    /// The offset after this batch's last one.
    end_offset: i64,
    max_timestamp: i64,
    /// When it was appended, or recovered from disk (ms since the epoch): what time-based retention counts
    /// from for a batch without timestamps (max timestamp -1) only.
    appended_ms: i64,
    bytes: Bytes,
}

impl StoredBatch {
    /// What time-based retention counts from: the batch's largest timestamp, or for a batch without
    /// timestamps, when it was appended (recovered).
    fn retention_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.appended_ms
        }
    }
}

#[derive(Default)]
pub struct PartitionLog {
    batches: Vec<StoredBatch>,
    log_start: i64,
    end_offset: i64,
    size_bytes: u64,
    producers: Producers,
    segment: Option<SegmentWriter>,
}

/// The outcome of appending one produce batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Appended at this base offset.
    New(i64),
    /// A retry of a batch already in the log at this base offset.
    Duplicate(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("{0:?}")]
    Refused(ResponseError),
    #[error("writing the log failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Batches read for a fetch.
pub struct Read {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start: i64,
}

impl PartitionLog {
    /// A log with batches recovered from disk (already checked) and the writer that continues it.
    /// `checkpoint` is the log start offset recorded on disk (after DeleteRecords or retention), if any.
    pub fn recovered(
        segment: Option<SegmentWriter>,
        batches: Vec<(BatchHeader, Bytes)>,
        checkpoint: Option<i64>,
    ) -> PartitionLog {
        let mut log = PartitionLog {
            segment,
            ..PartitionLog::default()
        };
        // An empty log continues where its active segment starts (all of it may have been truncated away).
        let start = match batches.first() {
            Some((first, _)) => first.base_offset,
            None => log.segment.as_ref().map_or(0, SegmentWriter::active_base_offset),
        };
        log.log_start = start;
        log.end_offset = start;
        let now = now_ms();
        for (header, bytes) in batches {
            log.producers.record(&header, header.base_offset);
            log.push(&header, header.base_offset, bytes, now);
        }
        if let Some(checkpoint) = checkpoint.filter(|c| *c > log.log_start && *c <= log.end_offset) {
            log.log_start = checkpoint;
            log.batches.retain(|b| b.end_offset > checkpoint);
            log.size_bytes = log.batches.iter().map(|b| b.bytes.len() as u64).sum();
        }
        log
    }

    /// DeleteRecords: moves the log start to `offset` (-1: the end), dropping the batches wholly before it.
    /// Returns the new log start (the "low watermark").
    pub fn delete_records(&mut self, offset: i64) -> Result<i64, AppendError> {
        let offset = if offset == -1 { self.end_offset } else { offset };
        if offset < 0 || offset > self.end_offset {
            return Err(AppendError::Refused(ResponseError::OffsetOutOfRange));
        }
        if offset > self.log_start {
            self.log_start = offset;
            let keep_from = self.batch_index(offset);
            let dropped: u64 = self.batches.drain(..keep_from).map(|b| b.bytes.len() as u64).sum();
            self.size_bytes -= dropped;
            if let Some(segment) = self.segment.as_mut() {
                segment.delete_below(offset)?;
            }
        }
        Ok(self.log_start)
    }

    fn push(&mut self, header: &BatchHeader, base_offset: i64, bytes: Bytes, now: i64) {
        self.end_offset = base_offset + header.offset_count();
        self.size_bytes += bytes.len() as u64;
        self.batches.push(StoredBatch {
            base_offset,
            end_offset: self.end_offset,
            max_timestamp: header.max_timestamp,
            appended_ms: now,
            bytes,
        });
    }

    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    /// The high watermark: the offset the next record gets (one replica, so every write is committed).
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.max_id()
    }

    /// Appends a checked batch (as received) unless its producer already sent it; writes it to the segment
    /// with a data dir.
    pub fn append(&mut self, header: &BatchHeader, batch: &[u8]) -> Result<Appended, AppendError> {
        match self.producers.check(header) {
            SequenceCheck::Refuse(error) => return Err(AppendError::Refused(error)),
            SequenceCheck::Duplicate(offset) => return Ok(Appended::Duplicate(offset)),
            SequenceCheck::Append => {}
        }
        let base_offset = self.end_offset;
        let bytes = assign_offset(batch, base_offset, LEADER_EPOCH);
        if let Some(segment) = self.segment.as_mut() {
            segment.append(base_offset, &bytes)?;
        }
        self.producers.record(header, base_offset);
        self.push(header, base_offset, bytes, now_ms());
        Ok(Appended::New(base_offset))
    }

    /// A file handle to fsync outside the lock after an acks=-1 append (None in memory).
    pub fn sync_handle(&mut self) -> std::io::Result<Option<File>> {
        self.segment.as_mut().map(SegmentWriter::sync_handle).transpose()
    }

    /// A file handle to fsync outside the lock, when something was written since the last sync.
    pub fn take_unsynced(&mut self) -> std::io::Result<Option<File>> {
        match self.segment.as_mut() {
            Some(segment) => segment.take_unsynced(),
            None => Ok(None),
        }
    }

    /// Index of the batch holding `offset` (or the first after it).
    fn batch_index(&self, offset: i64) -> usize {
        self.batches.partition_point(|b| b.end_offset <= offset)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes`; with `at_least_one`, the first batch
    /// even when it alone is larger (so a consumer is never stuck behind a big batch, as in KIP-74).
    pub fn read(&self, offset: i64, max_bytes: usize, at_least_one: bool) -> Result<Read, ResponseError> {
        if offset < self.log_start || offset > self.end_offset {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let mut out = BytesMut::new();
        for batch in &self.batches[self.batch_index(offset)..] {
            let fits = out.len() + batch.bytes.len() <= max_bytes;
            if !(fits || (at_least_one && out.is_empty())) {
                break;
            }
            out.extend_from_slice(&batch.bytes);
        }
        Ok(Read {
            records: out.freeze(),
            high_watermark: self.end_offset,
            log_start: self.log_start,
        })
    }

    /// The first record with a timestamp at or after `timestamp`: its offset and timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64)> {
        let batch = self.batches.iter().find(|b| b.max_timestamp >= timestamp)?;
        records_of(batch)
            .into_iter()
            .find(|(offset, ts)| *ts >= timestamp && *offset >= self.log_start)
    }

    /// The record with the largest timestamp (the first such): its offset and timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&StoredBatch> = None;
        for batch in &self.batches {
            if best.is_none_or(|b| batch.max_timestamp > b.max_timestamp) {
                best = Some(batch);
            }
        }
        let batch = best?;
        records_of(batch).into_iter().find(|(_, ts)| *ts == batch.max_timestamp)
    }

    /// Drops the oldest whole batches while the log is larger than `max_bytes` or older than `max_age_ms`
    /// (never the active tail: the last batch stays). Age counts from a batch's largest timestamp, as Kafka's
    /// `retention.ms` counts from a segment's, so neither an append nor a restart resets it; retention stops at
    /// the first batch that is young enough (a batch with a future timestamp keeps those after it, as in
    /// Kafka). Returns whether anything was dropped.
    pub fn apply_retention(
        &mut self,
        max_bytes: Option<u64>,
        max_age_ms: Option<i64>,
        now: i64,
    ) -> std::io::Result<bool> {
        let mut drop = 0;
        let mut size = self.size_bytes;
        while drop + 1 < self.batches.len() {
            let batch = &self.batches[drop];
            let too_big = max_bytes.is_some_and(|max| size > max);
            let too_old = max_age_ms.is_some_and(|age| now.saturating_sub(batch.retention_timestamp()) > age);
            if !too_big && !too_old {
                break;
            }
            size -= batch.bytes.len() as u64;
            drop += 1;
        }
        if drop == 0 {
            return Ok(false);
        }
        self.batches.drain(..drop);
        self.size_bytes = size;
        self.log_start = self.batches.first().map_or(self.end_offset, |b| b.base_offset);
        if let Some(segment) = self.segment.as_mut() {
            segment.delete_below(self.log_start)?;
        }
        Ok(true)
    }
}

/// (offset, timestamp) of every record of a stored batch; empty if it does not decode (it was checked on
/// the way in, so that means an unsupported compression codec).
fn records_of(batch: &StoredBatch) -> Vec<(i64, i64)> {
    let mut bytes = batch.bytes.clone();
    match RecordBatchDecoder::decode(&mut bytes) {
        Ok(set) => set.records.iter().map(|r| (r.offset, r.timestamp)).collect(),
        Err(e) => {
            tracing::warn!(base_offset = batch.base_offset, error = %e, "cannot decode a stored batch");
            Vec::new()
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::log::batch::tests::encoded_batch;

    fn append(log: &mut PartitionLog, values: &[&str]) -> i64 {
        let batch = encoded_batch(values, None);
        let header = BatchHeader::parse_checked(&batch).expect("valid");
        match log.append(&header, &batch).expect("append") {
            Appended::New(offset) => offset,
            Appended::Duplicate(offset) => panic!("duplicate at {offset}"),
        }
    }

    #[test]
    fn offsets_are_assigned_in_sequence() {
        let mut log = PartitionLog::default();
        assert_eq!(append(&mut log, &["a", "b"]), 0);
        assert_eq!(append(&mut log, &["c"]), 2);
        assert_eq!(log.end_offset(), 3);
        let read = log.read(2, 1 << 20, true).expect("read");
        let header = BatchHeader::parse_checked(&read.records).expect("batch");
        assert_eq!(header.base_offset, 2);
        assert_eq!(read.high_watermark, 3);
    }

    #[test]
    fn reads_stop_at_max_bytes_but_return_at_least_one_batch() {
        let mut log = PartitionLog::default();
        append(&mut log, &["first"]);
        append(&mut log, &["second"]);
        assert!(log.read(0, 10, false).expect("read").records.is_empty());
        let one = log.read(0, 10, true).expect("read").records;
        assert_eq!(BatchHeader::parse_checked(&one).expect("batch").size, one.len());
        assert!(log.read(4, 10, true).is_err(), "beyond the end");
        assert!(log.read(2, 10, true).expect("at the end").records.is_empty());
    }

    #[test]
    fn finds_offsets_by_timestamp() {
        let mut log = PartitionLog::default();
        append(&mut log, &["a", "b", "c"]); // timestamps 1_700_000_000_000 + i
        assert_eq!(
            log.offset_for_timestamp(1_700_000_000_001),
            Some((1, 1_700_000_000_001))
        );
        assert_eq!(log.offset_for_timestamp(0), Some((0, 1_700_000_000_000)));
        assert_eq!(log.offset_for_timestamp(1_800_000_000_000), None);
        assert_eq!(log.max_timestamp(), Some((2, 1_700_000_000_002)));
    }

    #[test]
    fn delete_records_moves_the_log_start_and_it_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let (writer, _) = SegmentWriter::open(dir.path(), 1 << 20).expect("open");
        let mut log = PartitionLog::recovered(Some(writer), Vec::new(), None);
        append(&mut log, &["a", "b"]);
        append(&mut log, &["c", "d"]);
        assert!(log.delete_records(5).is_err(), "beyond the end");
        assert_eq!(log.delete_records(3).expect("delete"), 3);
        assert!(matches!(log.read(2, 100, true), Err(ResponseError::OffsetOutOfRange)));
        assert_eq!(log.delete_records(1).expect("behind the start: nothing to do"), 3);
        drop(log);
        let (writer, batches) = SegmentWriter::open(dir.path(), 1 << 20).expect("reopen");
        let checkpoint = SegmentWriter::checkpointed_log_start(dir.path());
        let log = PartitionLog::recovered(
            Some(writer),
            batches.into_iter().map(|b| (b.header, b.bytes)).collect(),
            checkpoint,
        );
        assert_eq!((log.log_start(), log.end_offset()), (3, 4));
    }

    #[test]
    fn retention_by_age_counts_from_the_batches_timestamps_not_their_append() {
        let mut log = PartitionLog::default();
        for _ in 0..3 {
            append(&mut log, &["x"]); // timestamps 1_700_000_000_000, appended now
        }
        let day = 24 * 3600 * 1000;
        assert!(
            !log.apply_retention(None, Some(day), 1_700_000_000_000 + day)
                .expect("retention")
        );
        assert!(
            log.apply_retention(None, Some(day), 1_700_000_000_001 + day)
                .expect("retention")
        );
        assert_eq!(log.log_start(), 2, "the last batch stays");
    }

    #[test]
    fn retention_by_size_drops_the_oldest_batches() {
        let mut log = PartitionLog::default();
        for _ in 0..5 {
            append(&mut log, &["0123456789"]);
        }
        assert!(log.apply_retention(Some(1), None, now_ms()).expect("retention"));
        assert_eq!(log.log_start(), 4, "the last batch stays");
        assert!(matches!(log.read(0, 100, true), Err(ResponseError::OffsetOutOfRange)));
    }
}
