//! One segment of a partition's log: a file `<base offset, 20 digits>.log` in the partition's directory (or,
//! without a data dir, a buffer in memory), a plain concatenation of v2 batches exactly as they are served.
//! Records are read back from the file (the page cache) when they are fetched, never kept in memory: what a
//! segment keeps is a sparse index, one entry for the first batch after every [`INDEX_INTERVAL`] bytes (as
//! Kafka's `index.interval.bytes`, coarser), with the largest timestamp of the batches up to the next entry.
//! A lookup reads batch headers from the entry on; a few recent read positions make a consumer reading on
//! from where its last fetch ended a direct hit.
//!
//! Write policy: every batch is written (`write(2)`) before the produce request is answered, so it survives
//! the broker process being killed; fsync runs before an acks=-1 produce is answered (with `--sync-acks-all`),
//! for every partition with unsynced writes once per flush interval, and for a segment before the log rolls
//! to the next, so acks=all records also survive a power loss.
//!
//! Recovery (`open`) never reads a whole segment into memory: it walks the batch headers of each segment with
//! a small buffer, checking length, magic and that offsets follow on; the last segment (the only one that can
//! hold writes that were never fsynced) is also checked batch by batch against its CRC-32C. The log is cut at
//! the first batch that fails: a torn tail from a crash is cut off, never served, and segments after it are
//! removed.
//!
//! A write that fails (ENOSPC, EIO), possibly after part of the batch reached the file, is cut back to the
//! end of the last whole batch before the error is answered, so that no later batch is appended after a
//! fragment (recovery would stop at the fragment and drop every batch after it). If even that truncation
//! fails, every append retries it first and fails until it succeeds. A failed fsync is different: the kernel
//! may have dropped the unwritten pages and will not say so again, so the partition's store takes its log
//! directory offline (see `mod.rs`).

use super::batch::{BatchHeader, CRC_START, HEADER_LEN};
use super::transactions::{self, Marker};
use bytes::{Bytes, BytesMut};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of log between two entries of a segment's sparse index. 64 KiB keeps the index of a 10 GiB log
/// under 4 MiB and a lookup within one read of 64 KiB of headers.
pub const INDEX_INTERVAL: u64 = 64 * 1024;
/// Where the log start offset is checkpointed when it moves past a segment's base offset.
const LOG_START_FILE: &str = "log-start-offset";
/// The buffers recovery reads segments through: small where only headers are read (a large batch's body is
/// skipped, not read), large where every byte is checked against the CRC.
const HEADER_WALK_BUFFER: usize = 16 * 1024;
/// Control batches hold one small record; a larger one is not read for its marker (it cannot be one of ours).
const MAX_CONTROL_BODY: usize = 4096;
const CRC_CHECK_BUFFER: usize = 256 * 1024;

/// An entry of the sparse index: a batch's base offset and position, and the largest timestamp of the
/// batches from it up to the next entry (-1: none has one).
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    base_offset: i64,
    position: u64,
    max_timestamp: i64,
}

/// Where one batch is in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLocation {
    pub base_offset: i64,
    /// The offset after its last record.
    pub end_offset: i64,
    pub position: u64,
    pub size: u64,
    pub max_timestamp: i64,
}

impl BatchLocation {
    fn of(header: &BatchHeader, position: u64) -> BatchLocation {
        BatchLocation {
            base_offset: header.base_offset,
            end_offset: header.base_offset + header.offset_count(),
            position,
            size: header.size as u64,
            max_timestamp: header.max_timestamp,
        }
    }
}

enum Storage {
    File { file: File, path: PathBuf },
    Memory(BytesMut),
}

pub struct Segment {
    base_offset: i64,
    end_offset: i64,
    size: u64,
    storage: Storage,
    index: Vec<IndexEntry>,
    /// The first batch of the segment with its largest timestamp (for ListOffsets' MAX_TIMESTAMP).
    max_timestamp: Option<BatchLocation>,
    /// When a batch was last appended (or the segment recovered): what time-based retention counts from for
    /// batches without timestamps.
    appended_ms: i64,
    /// Written since the last fsync.
    dirty: bool,
    /// A failed write may have left part of a batch after `size`; it must be cut off before the next append.
    torn: bool,
}

/// What recovering a segment found.
pub struct RecoveredSegment {
    pub segment: Segment,
    /// Whether the segment was cut short (a torn or corrupt tail): later segments cannot continue it.
    pub truncated: bool,
}

pub fn segment_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

/// The segment files of a partition directory, by base offset.
pub fn segment_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(base) = base {
            found.push((base, path));
        }
    }
    found.sort();
    Ok(found)
}

impl Segment {
    /// A new, empty segment in memory.
    pub fn in_memory(base_offset: i64) -> Segment {
        Segment::new(base_offset, Storage::Memory(BytesMut::new()))
    }

    /// A new, empty segment file in `dir` (created, and the directory fsynced so that it stays).
    pub fn create(dir: &Path, base_offset: i64) -> std::io::Result<Segment> {
        let path = dir.join(segment_name(base_offset));
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        file.set_len(0)?;
        sync_dir(dir)?;
        Ok(Segment::new(base_offset, Storage::File { file, path }))
    }

    fn new(base_offset: i64, storage: Storage) -> Segment {
        Segment {
            base_offset,
            end_offset: base_offset,
            size: 0,
            storage,
            index: Vec::new(),
            max_timestamp: None,
            appended_ms: super::partition::now_ms(),
            dirty: false,
            torn: false,
        }
    }

    /// Recovers the segment file at `path`: walks its batches (their CRC too with `check_crc`), rebuilds the
    /// index, and truncates the file at the first batch that is torn, corrupt or does not follow on from
    /// `expected_base` (the previous segment's end, if any). `visit` sees every batch kept, in order, with what a
    /// control batch's record says (markers are tiny: their body is read, every other body is skipped).
    pub fn recover(
        path: &Path,
        base_offset: i64,
        expected_base: Option<i64>,
        check_crc: bool,
        mut visit: impl FnMut(&BatchHeader, Option<Marker>),
    ) -> std::io::Result<RecoveredSegment> {
        let file = OpenOptions::new().append(true).read(true).open(path)?;
        let len = file.metadata()?.len();
        let mut segment = Segment::new(
            base_offset,
            Storage::File {
                file: file.try_clone()?,
                path: path.to_owned(),
            },
        );
        let buffer = if check_crc {
            CRC_CHECK_BUFFER
        } else {
            HEADER_WALK_BUFFER
        };
        let mut reader = BufReader::with_capacity(buffer, file.try_clone()?);
        let mut header_bytes = [0u8; HEADER_LEN];
        let mut next_offset = expected_base.unwrap_or(base_offset);
        let mut valid = 0u64;
        let mut truncated = false;
        while valid < len {
            let header = match read_header(&mut reader, &mut header_bytes, len - valid) {
                Some(h) if h.base_offset == next_offset && (valid > 0 || h.base_offset == base_offset) => h,
                _ => {
                    truncated = true;
                    break;
                }
            };
            let body_len = header.size - HEADER_LEN;
            let mut marker = None;
            if header.is_control() && body_len <= MAX_CONTROL_BODY {
                let mut body = vec![0u8; body_len];
                let read = reader.read_exact(&mut body).is_ok();
                let crc = crc32c::crc32c_append(crc32c::crc32c(&header_bytes[CRC_START..]), &body);
                if !read || (check_crc && crc != header.crc) {
                    truncated = true;
                    break;
                }
                marker = transactions::marker_of(&body);
            } else if check_crc {
                if !crc_matches(&mut reader, &header, &header_bytes) {
                    truncated = true;
                    break;
                }
            } else {
                reader.seek_relative(body_len as i64)?;
            }
            visit(&header, marker);
            segment.note_appended(&header, valid);
            valid += header.size as u64;
            next_offset = header.base_offset + header.offset_count();
        }
        if truncated {
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = valid,
                dropped_bytes = len - valid,
                "truncating a torn or corrupt log tail"
            );
            file.set_len(valid)?;
            file.sync_all()?;
        }
        segment.end_offset = next_offset.max(base_offset);
        if segment.size == 0 {
            segment.end_offset = base_offset;
        }
        Ok(RecoveredSegment { segment, truncated })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The offset after the segment's last batch.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The largest timestamp of the segment's batches, or when it was last appended to when none has one.
    pub fn retention_timestamp(&self) -> i64 {
        match self.max_timestamp {
            Some(location) if location.max_timestamp >= 0 => location.max_timestamp,
            _ => self.appended_ms,
        }
    }

    pub fn max_timestamp(&self) -> Option<BatchLocation> {
        self.max_timestamp
    }

    pub fn appended_ms(&self) -> i64 {
        self.appended_ms
    }

    /// Records a batch now at `position` in the segment's bookkeeping (the bytes are there already).
    fn note_appended(&mut self, header: &BatchHeader, position: u64) {
        let location = BatchLocation::of(header, position);
        let due = self
            .index
            .last()
            .is_none_or(|last| position >= last.position + INDEX_INTERVAL);
        if due {
            self.index.push(IndexEntry {
                base_offset: location.base_offset,
                position,
                max_timestamp: location.max_timestamp,
            });
        } else if let Some(last) = self.index.last_mut() {
            last.max_timestamp = last.max_timestamp.max(location.max_timestamp);
        }
        if self
            .max_timestamp
            .is_none_or(|best| location.max_timestamp > best.max_timestamp)
        {
            self.max_timestamp = Some(location);
        }
        self.size = position + location.size;
        self.end_offset = location.end_offset;
    }

    /// Appends one batch (its offsets already assigned). On an error nothing of the batch stays in the segment
    /// (see the module's documentation).
    pub fn append(&mut self, header: &BatchHeader, batch: &[u8], now_ms: i64) -> std::io::Result<()> {
        self.cut_torn_tail()?;
        let position = self.size;
        match &mut self.storage {
            Storage::Memory(buffer) => buffer.extend_from_slice(batch),
            Storage::File { file, .. } => {
                if let Err(e) = file.write_all(batch) {
                    self.torn = true;
                    if let Err(cut) = self.cut_torn_tail() {
                        tracing::error!(
                            segment = %path_of(&self.storage).display(),
                            error = %cut,
                            "cannot cut a failed write off the log; appends fail until it is"
                        );
                    }
                    return Err(e);
                }
                self.dirty = true;
            }
        }
        self.note_appended(header, position);
        self.appended_ms = now_ms;
        Ok(())
    }

    /// Cuts what a failed write left after the last whole batch (the file is opened for appending: the next
    /// write goes to the new end).
    fn cut_torn_tail(&mut self) -> std::io::Result<()> {
        if self.torn {
            if let Storage::File { file, .. } = &self.storage {
                file.set_len(self.size)?;
            }
            self.torn = false;
        }
        Ok(())
    }

    /// The log rolled past this segment: in memory, its buffer gives back what it reserved for growth.
    pub fn seal(&mut self) {
        if let Storage::Memory(buffer) = &mut self.storage {
            *buffer = BytesMut::from(&buffer[..]);
        }
    }

    /// A handle to fsync the segment outside the partition's lock, whether or not it is dirty: an acks=-1
    /// produce must not be answered before an fsync that started after its write has finished (an fsync already
    /// running for another request may have started before it). None in memory.
    pub fn sync_handle(&mut self) -> std::io::Result<Option<File>> {
        self.dirty = false;
        match &self.storage {
            Storage::File { file, .. } => file.try_clone().map(Some),
            Storage::Memory(_) => Ok(None),
        }
    }

    /// A handle to fsync the segment outside the partition's lock, if anything is unsynced.
    pub fn take_unsynced(&mut self) -> std::io::Result<Option<File>> {
        if !self.dirty {
            return Ok(None);
        }
        self.sync_handle()
    }

    /// Reads `len` bytes at `position`.
    fn read_at(&self, position: u64, len: usize) -> std::io::Result<Bytes> {
        match &self.storage {
            Storage::Memory(buffer) => {
                let start = usize::try_from(position).map_err(std::io::Error::other)?;
                buffer
                    .get(start..start.saturating_add(len))
                    .map(Bytes::copy_from_slice)
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "beyond the segment"))
            }
            Storage::File { file, .. } => {
                let mut out = vec![0u8; len];
                file.read_exact_at(&mut out, position)?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// The batch at `location`, whole.
    pub fn batch_at(&self, location: &BatchLocation) -> std::io::Result<Bytes> {
        self.read_at(location.position, location.size as usize)
    }

    /// The batch holding `offset`, or the first after it; None past the segment's end. `hint` is a known batch
    /// boundary (offset, position) in this segment to start from when it is at or before `offset`.
    pub fn locate(&self, offset: i64, hint: Option<(i64, u64)>) -> std::io::Result<Option<BatchLocation>> {
        if offset >= self.end_offset || self.size == 0 {
            return Ok(None);
        }
        let entry = self
            .index
            .partition_point(|e| e.base_offset <= offset)
            .saturating_sub(1);
        let (base, mut position) = self
            .index
            .get(entry)
            .map_or((self.base_offset, 0), |e| (e.base_offset, e.position));
        // A hint between the index entry and the offset saves reading the headers in between.
        if let Some((hint_offset, hint_position)) = hint
            && hint_offset <= offset
            && hint_offset >= base
            && hint_position < self.size
        {
            position = hint_position;
        }
        self.scan(position, |location| location.end_offset > offset)
    }

    /// Walks the batches from `position` (a batch boundary) and returns the first for which `stop` is true.
    pub fn scan(
        &self,
        mut position: u64,
        mut stop: impl FnMut(&BatchLocation) -> bool,
    ) -> std::io::Result<Option<BatchLocation>> {
        // Headers are read a chunk at a time: small batches cost one read for many.
        let mut chunk = Bytes::new();
        let mut chunk_start = position;
        while position < self.size {
            let within = (position - chunk_start) as usize;
            if within + HEADER_LEN > chunk.len() {
                let len = (INDEX_INTERVAL as usize).min((self.size - position) as usize);
                chunk = self.read_at(position, len.max(HEADER_LEN.min((self.size - position) as usize)))?;
                chunk_start = position;
                if chunk.len() < HEADER_LEN {
                    return Err(std::io::Error::other(format!(
                        "a batch header at {position} is cut short"
                    )));
                }
                continue;
            }
            let header = BatchHeader::parse_header(&chunk[within..]).map_err(std::io::Error::other)?;
            let location = BatchLocation::of(&header, position);
            if stop(&location) {
                return Ok(Some(location));
            }
            position += location.size;
        }
        Ok(None)
    }

    /// Whole batches from `start` (a batch boundary), up to `max_bytes`; with `at_least_one`, the first batch
    /// even when it alone is larger. Never past the segment's end. Also returns where the next batch starts
    /// (offset, position), when anything was read.
    pub fn read_batches(
        &self,
        start: &BatchLocation,
        max_bytes: usize,
        at_least_one: bool,
    ) -> std::io::Result<(Bytes, Option<(i64, u64)>)> {
        let available = self.size.saturating_sub(start.position);
        let want = (max_bytes as u64).min(available);
        if want < start.size {
            return if at_least_one {
                let next = (start.end_offset, start.position + start.size);
                Ok((self.batch_at(start)?, Some(next)))
            } else {
                Ok((Bytes::new(), None))
            };
        }
        let mut bytes = self.read_at(start.position, want as usize)?;
        // Cut at the last whole batch.
        let mut end = 0usize;
        let mut next_offset = start.base_offset;
        while end + HEADER_LEN <= bytes.len() {
            let header = BatchHeader::parse_header(&bytes[end..]).map_err(std::io::Error::other)?;
            if end + header.size > bytes.len() {
                break;
            }
            end += header.size;
            next_offset = header.base_offset + header.offset_count();
        }
        bytes.truncate(end);
        Ok((bytes, Some((next_offset, start.position + end as u64))))
    }

    /// The first batch with a timestamp at or after `timestamp`, from `position` on (a batch boundary).
    pub fn first_batch_at_or_after(&self, timestamp: i64, from_offset: i64) -> std::io::Result<Option<BatchLocation>> {
        let start = self
            .index
            .partition_point(|e| e.base_offset <= from_offset)
            .saturating_sub(1);
        for (i, entry) in self.index.iter().enumerate().skip(start) {
            if entry.max_timestamp < timestamp {
                continue;
            }
            let end = self.index.get(i + 1).map_or(self.size, |next| next.position);
            let found = self.scan(entry.position, |b| {
                b.position >= end || (b.max_timestamp >= timestamp && b.end_offset > from_offset)
            })?;
            if let Some(found) = found.filter(|b| b.position < end) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The position of the batch holding `offset` (the first after it), or the segment's size.
    pub fn position_of(&self, offset: i64) -> std::io::Result<u64> {
        Ok(self.locate(offset, None)?.map_or(self.size, |b| b.position))
    }

    /// Removes the segment's file (after the log start moved past it).
    pub fn remove(self) -> std::io::Result<()> {
        if let Storage::File { path, .. } = &self.storage {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

fn path_of(storage: &Storage) -> &Path {
    match storage {
        Storage::File { path, .. } => path,
        Storage::Memory(_) => Path::new("(memory)"),
    }
}

/// Reads the next batch header from `reader` into `buffer` (`remaining`: bytes left in the file); None when
/// the header is cut short or invalid.
fn read_header(reader: &mut BufReader<File>, buffer: &mut [u8; HEADER_LEN], remaining: u64) -> Option<BatchHeader> {
    if remaining < HEADER_LEN as u64 || reader.read_exact(buffer).is_err() {
        return None;
    }
    let header = BatchHeader::parse_header(buffer).ok()?;
    (header.size as u64 <= remaining).then_some(header)
}

/// Whether the batch whose header was just read from `reader` matches its CRC-32C: the rest of the batch is read
/// through in pieces (a corrupt length cannot make recovery allocate it).
fn crc_matches(reader: &mut BufReader<File>, header: &BatchHeader, header_bytes: &[u8; HEADER_LEN]) -> bool {
    let mut crc = crc32c::crc32c(&header_bytes[CRC_START..]);
    let mut left = header.size - HEADER_LEN;
    let mut piece = [0u8; 8192];
    while left > 0 {
        let n = left.min(piece.len());
        if reader.read_exact(&mut piece[..n]).is_err() {
            return false;
        }
        crc = crc32c::crc32c_append(crc, &piece[..n]);
        left -= n;
    }
    crc == header.crc
}

/// The log start offset recorded by [`checkpoint_log_start`], if any.
pub fn checkpointed_log_start(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Records `log_start` durably (write, fsync, rename, fsync the directory): DeleteRecords and retention move it
/// into the middle of a segment, and it must not move back after a restart.
pub fn checkpoint_log_start(dir: &Path, log_start: i64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{LOG_START_FILE}.tmp"));
    write_synced(&tmp, log_start.to_string().as_bytes())?;
    std::fs::rename(&tmp, dir.join(LOG_START_FILE))?;
    sync_dir(dir)
}

/// Writes `bytes` as a new file at `path` and fsyncs it (to be renamed into place); a failed write removes
/// the file, so that a full disk is not kept full by a fragment nobody will read.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let written = File::create(path).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// fsyncs a directory, so that a created or renamed file in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
