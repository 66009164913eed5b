//! One partition's log: its segments in offset order (files in the partition's directory with a data dir,
//! buffers in memory without one), the log start and end offsets, and the idempotent producers' state. Records
//! are read from the segments when fetched; what stays in memory per partition is the segments' sparse indexes
//! (see `segment.rs`). No locking here: the store keeps each partition behind its own mutex.

use super::batch::{BatchHeader, assign_offset};
use super::producers::{Producers, SequenceCheck};
use super::segment::{self, BatchLocation, Segment};
use super::transactions::{AbortedTxn, Marker, PartitionTransactions, marker_batch};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The leader epoch of every partition: one node that never changes leadership.
pub const LEADER_EPOCH: i32 = 0;
/// Without a data dir, segments roll at this size at most, so that retention frees memory in steps this small.
const MEMORY_SEGMENT_BYTES: u64 = 1 << 20;
/// Read positions remembered per partition (consumers of different groups read at different places).
const READ_HINTS: usize = 8;

pub struct PartitionLog {
    /// Never empty: the last one is the active segment, appended to.
    segments: VecDeque<Segment>,
    /// The partition's directory, with a data dir.
    dir: Option<PathBuf>,
    segment_bytes: u64,
    log_start: i64,
    /// Where the log start's batch is in the first segment (the bytes before it are no longer part of the log).
    start_position: u64,
    end_offset: i64,
    producers: Producers,
    /// Open and aborted transactions (the last stable offset, the aborted ranges a `read_committed` fetch lists).
    transactions: PartitionTransactions,
    /// Recent (offset, segment base offset, position) of batch boundaries where a read ended: a consumer
    /// reading on from there finds its batch without a lookup.
    hints: VecDeque<(i64, i64, u64)>,
}

impl Default for PartitionLog {
    fn default() -> Self {
        PartitionLog::in_memory(MEMORY_SEGMENT_BYTES)
    }
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
    pub last_stable_offset: i64,
    pub log_start: i64,
    /// For a `read_committed` fetch: the aborted transactions overlapping what was read.
    pub aborted: Vec<AbortedTxn>,
}

impl PartitionLog {
    /// An empty log in memory.
    pub fn in_memory(segment_bytes: u64) -> PartitionLog {
        PartitionLog::with_segments(
            VecDeque::from([Segment::in_memory(0)]),
            None,
            segment_bytes.min(MEMORY_SEGMENT_BYTES),
        )
    }

    fn with_segments(segments: VecDeque<Segment>, dir: Option<PathBuf>, segment_bytes: u64) -> PartitionLog {
        let log_start = segments.front().map_or(0, Segment::base_offset);
        let end_offset = segments.back().map_or(0, Segment::end_offset);
        PartitionLog {
            segments,
            dir,
            segment_bytes: segment_bytes.max(1),
            log_start,
            start_position: 0,
            end_offset,
            producers: Producers::default(),
            transactions: PartitionTransactions::default(),
            hints: VecDeque::new(),
        }
    }

    /// Opens (creating if needed) the log in `dir` and recovers it (see `segment.rs`): segments wholly below the
    /// checkpointed log start are removed, every other one is walked by its headers (the last one by its CRCs
    /// too), the idempotent producers' state is rebuilt from the headers, and a torn or corrupt tail is cut off
    /// with every segment after it.
    pub fn open(dir: &Path, segment_bytes: u64) -> std::io::Result<PartitionLog> {
        std::fs::create_dir_all(dir)?;
        let checkpoint = segment::checkpointed_log_start(dir);
        let mut files = segment::segment_files(dir)?;
        // Segments that hold only offsets below the log start (their removal may not have happened).
        while files.len() > 1 && checkpoint.is_some_and(|start| files[1].0 <= start) {
            let (_, path) = files.remove(0);
            tracing::info!(segment = %path.display(), "removing a segment below the log start");
            std::fs::remove_file(&path)?;
        }
        let mut producers = Producers::default();
        let mut transactions = PartitionTransactions::default();
        let recovered_at = now_ms();
        let mut segments = VecDeque::new();
        let count = files.len();
        let mut files = files.into_iter().enumerate();
        for (i, (base, path)) in files.by_ref() {
            let expected = segments.back().map(Segment::end_offset);
            let recovered = Segment::recover(&path, base, expected, i + 1 == count, |header, marker| {
                producers.record(header, header.base_offset, recovered_at);
                transactions.on_batch(header, header.base_offset, marker);
            })?;
            let truncated = recovered.truncated;
            let empty_and_out_of_line = recovered.segment.is_empty() && expected.is_some_and(|e| e != base);
            if empty_and_out_of_line {
                // Nothing valid in it, and it does not continue the log: the log goes on in the previous one.
                std::fs::remove_file(&path)?;
            } else {
                segments.push_back(recovered.segment);
            }
            if truncated || empty_and_out_of_line {
                break;
            }
        }
        // Segments after a corrupt one cannot be trusted to continue the log.
        for (_, (_, path)) in files {
            tracing::warn!(segment = %path.display(), "removing a segment that follows a corrupt one");
            std::fs::remove_file(path)?;
        }
        if segments.is_empty() {
            // An empty log continues where it ended (all of it may have been deleted).
            segments.push_back(Segment::create(dir, checkpoint.unwrap_or(0).max(0))?);
        }
        let mut log = PartitionLog::with_segments(segments, Some(dir.to_owned()), segment_bytes);
        log.producers = producers;
        log.transactions = transactions;
        if let Some(checkpoint) = checkpoint.filter(|c| *c > log.log_start && *c <= log.end_offset) {
            log.log_start = checkpoint;
            log.start_position = log.first().position_of(checkpoint)?;
        }
        log.transactions.trim(log.log_start);
        Ok(log)
    }

    fn first(&self) -> &Segment {
        // Never empty: every constructor puts a segment in, and only segments before another one are removed.
        &self.segments[0]
    }

    fn active(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// DeleteRecords: moves the log start to `offset` (-1: the end), dropping the segments wholly before it.
    /// Returns the new log start (the "low watermark"). With a data dir the new start is on disk before anything
    /// changes: if it cannot be written, the log is as it was.
    pub fn delete_records(&mut self, offset: i64) -> Result<i64, AppendError> {
        let offset = if offset == -1 { self.end_offset } else { offset };
        if offset < 0 || offset > self.end_offset {
            return Err(AppendError::Refused(ResponseError::OffsetOutOfRange));
        }
        if offset > self.log_start {
            self.move_log_start(offset)?;
        }
        Ok(self.log_start)
    }

    /// Moves the log start to `offset` (within the log): checkpointed first, then in memory; segments wholly
    /// below it are removed (a removal that fails is retried at the next start).
    fn move_log_start(&mut self, offset: i64) -> std::io::Result<()> {
        if let Some(dir) = &self.dir {
            segment::checkpoint_log_start(dir, offset)?;
        }
        let start_position = {
            let holding = self
                .segments
                .iter()
                .rposition(|s| s.base_offset() <= offset)
                .unwrap_or(0);
            self.segments[holding].position_of(offset)
        };
        self.log_start = offset;
        self.transactions.trim(offset);
        while self.segments.len() > 1 && self.segments[1].base_offset() <= offset {
            if let Some(gone) = self.segments.pop_front()
                && let Err(e) = gone.remove()
            {
                tracing::warn!(error = %e, "cannot remove a segment below the log start; retried at the next start");
            }
        }
        self.start_position = match start_position {
            Ok(position) => position,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the log start's batch; counting the segment from its start");
                0
            }
        };
        self.hints.clear();
        Ok(())
    }

    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    /// The high watermark: the offset the next record gets (one replica, so every write is committed).
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Bytes of the log from its start.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum::<u64>() - self.start_position
    }

    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.max_id()
    }

    /// The last stable offset: below it every transaction is decided (the first offset of the oldest open
    /// transaction, else the high watermark). What a `read_committed` consumer may read up to.
    pub fn last_stable_offset(&self) -> i64 {
        self.transactions
            .first_unstable_offset()
            .map_or(self.end_offset, |first| first.clamp(self.log_start, self.end_offset))
    }

    /// Whether `producer_id` has a transaction open on this partition.
    pub fn has_open_transaction(&self, producer_id: i64) -> bool {
        self.transactions.has_open(producer_id)
    }

    /// Ends `producer_id`'s transaction on this partition with a COMMIT or ABORT marker (written even when the
    /// transaction wrote nothing here, as Kafka's coordinator does); returns the marker's offset. The marker's
    /// epoch becomes the producer's (a bumped epoch fences the previous producer's batches).
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
    ) -> Result<i64, AppendError> {
        let now = now_ms();
        let batch = marker_batch(producer_id, producer_epoch, marker, coordinator_epoch, now);
        let header = BatchHeader::parse_checked(&batch).map_err(std::io::Error::other)?;
        let offset = self.write(&header, &batch, now)?;
        self.transactions.on_batch(&header, offset, Some(marker));
        Ok(offset)
    }

    /// Appends a checked batch (as received) unless its producer already sent it; rolls to a new segment first
    /// when the active one is full. On an error nothing of the batch is in the log.
    pub fn append(&mut self, header: &BatchHeader, batch: &[u8]) -> Result<Appended, AppendError> {
        match self.producers.check(header) {
            SequenceCheck::Refuse(error) => return Err(AppendError::Refused(error)),
            SequenceCheck::Duplicate(offset) => return Ok(Appended::Duplicate(offset)),
            SequenceCheck::Append => {}
        }
        let now = now_ms();
        let base_offset = self.write(header, batch, now)?;
        self.transactions.on_batch(header, base_offset, None);
        Ok(Appended::New(base_offset))
    }

    /// Writes a batch at the log end (rolling first when the active segment is full) and remembers its producer;
    /// returns its base offset.
    fn write(&mut self, header: &BatchHeader, batch: &[u8], now: i64) -> Result<i64, AppendError> {
        let base_offset = self.end_offset;
        let bytes = assign_offset(batch, base_offset, LEADER_EPOCH);
        let stored = BatchHeader { base_offset, ..*header };
        let active = &self.segments[self.segments.len() - 1];
        if !active.is_empty() && active.size() + bytes.len() as u64 > self.segment_bytes {
            // The full segment is fsynced by the next flush (or acks=-1 produce), outside this lock.
            let next = match &self.dir {
                Some(dir) => Segment::create(dir, base_offset)?,
                None => Segment::in_memory(base_offset),
            };
            self.active().seal();
            self.segments.push_back(next);
        }
        self.active().append(&stored, &bytes, now)?;
        self.producers.record(header, base_offset, now);
        self.end_offset = base_offset + header.offset_count();
        Ok(base_offset)
    }

    /// File handles to fsync outside the lock before an acks=-1 append is answered: every segment with unsynced
    /// writes, and the active one in any case (an fsync already running for another request may have started
    /// before this request's write). Empty in memory.
    pub fn sync_handles(&mut self) -> std::io::Result<Vec<File>> {
        let mut files = self.take_unsynced()?;
        if let Some(file) = self.active().sync_handle()? {
            files.push(file);
        }
        Ok(files)
    }

    /// File handles of the segments written since their last fsync, to fsync outside the lock.
    pub fn take_unsynced(&mut self) -> std::io::Result<Vec<File>> {
        let mut files = Vec::new();
        for segment in self.segments.iter_mut() {
            if let Some(file) = segment.take_unsynced()? {
                files.push(file);
            }
        }
        Ok(files)
    }

    /// The segment holding `offset` (within the log, below its end).
    fn segment_of(&self, offset: i64) -> Option<&Segment> {
        let after = self.segments.partition_point(|s| s.base_offset() <= offset);
        self.segments.get(after.checked_sub(1)?)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes`, from one segment (as Kafka reads); with
    /// `at_least_one`, the first batch even when it alone is larger (so a consumer is never stuck behind a big
    /// batch, as in KIP-74). A failure to read the file is KAFKA_STORAGE_ERROR.
    ///
    /// `read_committed` reads only below the last stable offset and lists the aborted transactions in what it read.
    pub fn read(
        &mut self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
        read_committed: bool,
    ) -> Result<Read, ResponseError> {
        if offset < self.log_start || offset > self.end_offset {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let last_stable_offset = self.last_stable_offset();
        let upto = if read_committed {
            last_stable_offset
        } else {
            self.end_offset
        };
        let empty = Read {
            records: Bytes::new(),
            high_watermark: self.end_offset,
            last_stable_offset,
            log_start: self.log_start,
            aborted: Vec::new(),
        };
        let Some(segment) = self.segment_of(offset).filter(|_| offset < upto) else {
            return Ok(empty);
        };
        let segment_base = segment.base_offset();
        let hint = self
            .hints
            .iter()
            .filter(|(o, base, _)| *base == segment_base && *o <= offset)
            .max_by_key(|(o, _, _)| *o)
            .map(|(o, _, p)| (*o, *p));
        let found = segment.locate(offset, hint).and_then(|location| match location {
            Some(location) => segment.read_batches(&location, max_bytes, at_least_one),
            None => Ok((Bytes::new(), None)),
        });
        let (mut records, mut next) = found.map_err(|e| {
            tracing::error!(offset, error = %e, "cannot read the log");
            ResponseError::KafkaStorageError
        })?;
        // Where what was read ends (the offset after its last batch), for the aborted transactions to list.
        let mut read_end = next.map(|(next_offset, _)| next_offset);
        if read_committed && next.is_some_and(|(next_offset, _)| next_offset > upto) {
            // The last stable offset is a batch boundary: keep the batches below it.
            let (kept, end) = cut_at_offset(&records, upto);
            records.truncate(kept);
            read_end = end;
            next = None;
        }
        if let Some((next_offset, next_position)) = next {
            if self.hints.len() == READ_HINTS {
                self.hints.pop_front();
            }
            self.hints
                .retain(|(o, base, _)| !(*o == next_offset && *base == segment_base));
            self.hints.push_back((next_offset, segment_base, next_position));
        }
        let aborted = match read_end {
            Some(end) if read_committed && !records.is_empty() => self.transactions.aborted_between(offset, end),
            _ => Vec::new(),
        };
        Ok(Read {
            records,
            high_watermark: self.end_offset,
            last_stable_offset,
            log_start: self.log_start,
            aborted,
        })
    }

    /// The first record with a timestamp at or after `timestamp`: its offset and timestamp. Reads the headers
    /// of the batches in one index interval and decodes one batch (decompression bounded, see
    /// `vendor/kafka-protocol/PATCHED.md`).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, ResponseError> {
        for segment in &self.segments {
            if segment.is_empty() || segment.max_timestamp().is_none_or(|m| m.max_timestamp < timestamp) {
                continue;
            }
            let found = segment
                .first_batch_at_or_after(timestamp, self.log_start)
                .map_err(storage_error)?;
            let Some(location) = found else { continue };
            let batch = segment.batch_at(&location).map_err(storage_error)?;
            return Ok(records_of(&location, batch)
                .into_iter()
                .find(|(offset, ts)| *ts >= timestamp && *offset >= self.log_start));
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first such): its offset and timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, ResponseError> {
        let mut best: Option<(&Segment, BatchLocation)> = None;
        for segment in &self.segments {
            if let Some(location) = segment.max_timestamp()
                && best.is_none_or(|(_, b)| location.max_timestamp > b.max_timestamp)
            {
                best = Some((segment, location));
            }
        }
        let Some((segment, location)) = best else {
            return Ok(None);
        };
        let batch = segment.batch_at(&location).map_err(storage_error)?;
        Ok(records_of(&location, batch)
            .into_iter()
            .find(|(_, ts)| *ts == location.max_timestamp))
    }

    /// Forgets producers idle for longer than Kafka's `producer.id.expiration.ms` (see `producers.rs`).
    /// Producers with a transaction open here are kept (Kafka expires them only once it is decided).
    pub fn expire_producers(&mut self, now: i64) -> usize {
        let transactions = &self.transactions;
        self.producers
            .expire(now, super::producers::PRODUCER_EXPIRATION_MS, |id| {
                transactions.has_open(id)
            })
    }

    /// Drops the oldest whole batches while the log is larger than `max_bytes` or older than `max_age_ms`
    /// (never the active tail: the last batch stays). Age counts from a batch's largest timestamp, as Kafka's
    /// `retention.ms` counts from a segment's, so neither an append nor a restart resets it; retention stops at
    /// the first batch that is young enough (a batch with a future timestamp keeps those after it, as in
    /// Kafka). Whole segments are judged by their largest timestamp and size without reading them; only the
    /// segment where retention stops is walked batch by batch. Returns whether anything was dropped.
    pub fn apply_retention(
        &mut self,
        max_bytes: Option<u64>,
        max_age_ms: Option<i64>,
        now: i64,
    ) -> std::io::Result<bool> {
        let Some(last) = self.segments.iter().rposition(|s| !s.is_empty()) else {
            return Ok(false);
        };
        let mut size = self.size_bytes();
        let mut new_start = self.log_start;
        'segments: for (i, segment) in self.segments.iter().enumerate().take(last + 1) {
            let from = if i == 0 { self.start_position } else { 0 };
            let live = segment.size() - from;
            if live == 0 {
                continue;
            }
            if i < last {
                let too_big = max_bytes.is_some_and(|max| size - live > max);
                let too_old = max_age_ms.is_some_and(|age| now.saturating_sub(segment.retention_timestamp()) > age);
                if too_big || too_old {
                    size -= live;
                    new_start = segment.end_offset();
                    continue;
                }
            }
            let mut stopped = false;
            segment.scan(from, |batch| {
                let is_last = i == last && batch.end_offset == segment.end_offset();
                let timestamp = if batch.max_timestamp >= 0 {
                    batch.max_timestamp
                } else {
                    segment.appended_ms()
                };
                let too_big = max_bytes.is_some_and(|max| size > max);
                let too_old = max_age_ms.is_some_and(|age| now.saturating_sub(timestamp) > age);
                if is_last || !(too_big || too_old) {
                    stopped = true;
                    return true;
                }
                size -= batch.size;
                new_start = batch.end_offset;
                false
            })?;
            if stopped {
                break 'segments;
            }
        }
        if new_start <= self.log_start {
            return Ok(false);
        }
        self.move_log_start(new_start)?;
        Ok(true)
    }
}

/// Bytes of the whole batches at the start of `records` that lie below `offset`, and the offset after the last of
/// them (None when none is).
fn cut_at_offset(records: &[u8], offset: i64) -> (usize, Option<i64>) {
    let mut end = 0usize;
    let mut end_offset = None;
    while let Ok(header) = BatchHeader::parse_header(&records[end..]) {
        if header.base_offset >= offset || end + header.size > records.len() {
            break;
        }
        end += header.size;
        end_offset = Some(header.base_offset + header.offset_count());
    }
    (end, end_offset)
}

fn storage_error(e: std::io::Error) -> ResponseError {
    tracing::error!(error = %e, "cannot read the log");
    ResponseError::KafkaStorageError
}

/// (offset, timestamp) of every record of a stored batch; empty if it does not decode (it was checked on
/// the way in, so that means an unsupported compression codec).
fn records_of(location: &BatchLocation, mut bytes: Bytes) -> Vec<(i64, i64)> {
    match RecordBatchDecoder::decode(&mut bytes) {
        Ok(set) => set.records.iter().map(|r| (r.offset, r.timestamp)).collect(),
        Err(e) => {
            tracing::warn!(base_offset = location.base_offset, error = %e, "cannot decode a stored batch");
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

    /// Base offsets of the batches a read returned.
    fn bases(records: &[u8]) -> Vec<i64> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < records.len() {
            let header = BatchHeader::parse_checked(&records[at..]).expect("whole batches");
            out.push(header.base_offset);
            at += header.size;
        }
        out
    }

    #[test]
    fn offsets_are_assigned_in_sequence() {
        let mut log = PartitionLog::default();
        assert_eq!(append(&mut log, &["a", "b"]), 0);
        assert_eq!(append(&mut log, &["c"]), 2);
        assert_eq!(log.end_offset(), 3);
        let read = log.read(2, 1 << 20, true, false).expect("read");
        let header = BatchHeader::parse_checked(&read.records).expect("batch");
        assert_eq!(header.base_offset, 2);
        assert_eq!(read.high_watermark, 3);
    }

    #[test]
    fn reads_stop_at_max_bytes_but_return_at_least_one_batch() {
        let mut log = PartitionLog::default();
        append(&mut log, &["first"]);
        append(&mut log, &["second"]);
        assert!(log.read(0, 10, false, false).expect("read").records.is_empty());
        let one = log.read(0, 10, true, false).expect("read").records;
        assert_eq!(BatchHeader::parse_checked(&one).expect("batch").size, one.len());
        assert!(log.read(4, 10, true, false).is_err(), "beyond the end");
        assert!(log.read(2, 10, true, false).expect("at the end").records.is_empty());
    }

    #[test]
    fn reads_come_from_the_segment_files_across_rolls_and_restarts() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 4096).expect("open");
        let value = "v".repeat(300);
        for _ in 0..200 {
            append(&mut log, &[&value, &value]);
        }
        assert!(log.segments.len() > 10, "small segments roll: {}", log.segments.len());
        // Every offset, also in the middle of a batch, reads the batch holding it, within one segment.
        for offset in [0, 1, 2, 57, 199, 398, 399] {
            let read = log.read(offset, 1 << 20, true, false).expect("read");
            let got = bases(&read.records);
            assert_eq!(got[0], offset - offset % 2, "offset {offset}");
            assert!(got.windows(2).all(|w| w[1] == w[0] + 2));
        }
        // A consumer reading on from where each fetch ended sees every batch once, in order.
        let mut next = 0;
        let mut seen = Vec::new();
        while next < log.end_offset() {
            let read = log.read(next, 1500, true, false).expect("read");
            let got = bases(&read.records);
            next = got.last().expect("data") + 2;
            seen.extend(got);
        }
        assert_eq!(seen, (0..200).map(|i| i * 2).collect::<Vec<_>>());
        drop(log);
        let mut log = PartitionLog::open(dir.path(), 4096).expect("reopen");
        assert_eq!((log.log_start(), log.end_offset()), (0, 400));
        assert_eq!(bases(&log.read(333, 1, true, false).expect("read").records), vec![332]);
        assert_eq!(append(&mut log, &["after"]), 400);
    }

    #[test]
    fn the_index_finds_batches_far_into_a_large_segment() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 1 << 30).expect("open");
        let value = "x".repeat(1000);
        for _ in 0..1000 {
            append(&mut log, &[&value]);
        }
        assert_eq!(log.segments.len(), 1);
        assert!(log.segments[0].size() > 10 * segment::INDEX_INTERVAL);
        for offset in [0, 64, 65, 500, 999] {
            assert_eq!(
                bases(&log.read(offset, 1, true, false).expect("read").records),
                vec![offset]
            );
        }
    }

    #[test]
    fn finds_offsets_by_timestamp() {
        let mut log = PartitionLog::default();
        append(&mut log, &["a", "b", "c"]); // timestamps 1_700_000_000_000 + i
        assert_eq!(
            log.offset_for_timestamp(1_700_000_000_001).expect("read"),
            Some((1, 1_700_000_000_001))
        );
        assert_eq!(log.offset_for_timestamp(0).expect("read"), Some((0, 1_700_000_000_000)));
        assert_eq!(log.offset_for_timestamp(1_800_000_000_000).expect("read"), None);
        assert_eq!(log.max_timestamp().expect("read"), Some((2, 1_700_000_000_002)));
    }

    #[test]
    fn delete_records_moves_the_log_start_and_it_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 1 << 20).expect("open");
        append(&mut log, &["a", "b"]);
        append(&mut log, &["c", "d"]);
        assert!(log.delete_records(5).is_err(), "beyond the end");
        assert_eq!(log.delete_records(3).expect("delete"), 3);
        assert!(matches!(
            log.read(2, 100, true, false),
            Err(ResponseError::OffsetOutOfRange)
        ));
        assert_eq!(log.delete_records(1).expect("behind the start: nothing to do"), 3);
        drop(log);
        let log = PartitionLog::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!((log.log_start(), log.end_offset()), (3, 4));
    }

    #[test]
    fn delete_records_removes_whole_segments_below_the_new_start() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 200).expect("open");
        for i in 0..20 {
            append(&mut log, &[&format!("value-{i}")]);
        }
        let files = || segment::segment_files(dir.path()).expect("list").len();
        let before = files();
        assert_eq!(log.delete_records(15).expect("delete"), 15);
        assert!(files() < before, "segments below the start are removed");
        assert_eq!(bases(&log.read(15, 1 << 20, true, false).expect("read").records)[0], 15);
        drop(log);
        let log = PartitionLog::open(dir.path(), 200).expect("reopen");
        assert_eq!((log.log_start(), log.end_offset()), (15, 20));
    }

    #[test]
    fn a_log_start_that_cannot_be_written_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 1 << 20).expect("open");
        append(&mut log, &["a"]);
        append(&mut log, &["b"]);
        // The checkpoint's temporary file cannot be created: a directory is in its way.
        std::fs::create_dir(dir.path().join("log-start-offset.tmp")).expect("block");
        assert!(log.delete_records(1).is_err());
        assert_eq!(log.log_start(), 0, "unchanged in memory");
        assert_eq!(
            bases(&log.read(0, 1 << 20, true, false).expect("read").records),
            vec![0, 1]
        );
    }

    #[test]
    fn recovery_cuts_a_torn_tail_of_the_last_segment_and_keeps_what_came_before() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 300).expect("open");
        for i in 0..10 {
            append(&mut log, &[&format!("value-{i}")]);
        }
        drop(log);
        let files = segment::segment_files(dir.path()).expect("list");
        let (_, last) = files.last().expect("a segment");
        let len = std::fs::metadata(last).expect("stat").len();
        let file = std::fs::OpenOptions::new().write(true).open(last).expect("open");
        file.set_len(len - 5).expect("tear");
        let mut log = PartitionLog::open(dir.path(), 300).expect("recover");
        assert_eq!(log.end_offset(), 9, "the torn last batch is gone");
        assert_eq!(append(&mut log, &["again"]), 9);
        drop(log);
        let log = PartitionLog::open(dir.path(), 300).expect("reopen");
        assert_eq!(log.end_offset(), 10);
    }

    #[test]
    fn recovery_checks_the_crc_of_the_last_segment() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 1 << 20).expect("open");
        for i in 0..3 {
            append(&mut log, &[&format!("value-{i}")]);
        }
        drop(log);
        let path = dir.path().join(segment::segment_name(0));
        let mut bytes = std::fs::read(&path).expect("read");
        let first = BatchHeader::parse_checked(&bytes).expect("batch").size;
        bytes[first + 70] ^= 0x55; // in the second batch's records
        std::fs::write(&path, bytes).expect("write");
        let log = PartitionLog::open(dir.path(), 1 << 20).expect("recover");
        assert_eq!(log.end_offset(), 1, "the corrupt batch and everything after it are cut");
    }

    #[test]
    fn idempotent_producers_are_remembered_across_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 1 << 20).expect("open");
        let batch = encoded_batch(&["a"], Some((1000, 0, 0)));
        let header = BatchHeader::parse_checked(&batch).expect("batch");
        assert_eq!(log.append(&header, &batch).expect("append"), Appended::New(0));
        drop(log);
        let mut log = PartitionLog::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(log.append(&header, &batch).expect("retry"), Appended::Duplicate(0));
        assert_eq!(log.max_producer_id(), Some(1000));
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
        assert!(matches!(
            log.read(0, 100, true, false),
            Err(ResponseError::OffsetOutOfRange)
        ));
    }

    #[test]
    fn retention_removes_whole_segment_files_and_keeps_what_the_limit_allows() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut log = PartitionLog::open(dir.path(), 500).expect("open");
        for i in 0..40 {
            append(&mut log, &[&format!("value-{i:03}")]);
        }
        let batch_size = log.size_bytes() / 40;
        let files = || segment::segment_files(dir.path()).expect("list").len();
        let before = files();
        assert!(
            log.apply_retention(Some(10 * batch_size), None, now_ms())
                .expect("retention")
        );
        assert_eq!(log.log_start(), 30, "the newest ten batches fit the limit");
        assert_eq!(log.size_bytes(), 10 * batch_size);
        assert!(files() < before);
        drop(log);
        let log = PartitionLog::open(dir.path(), 500).expect("reopen");
        assert_eq!((log.log_start(), log.end_offset()), (30, 40));
    }
}
