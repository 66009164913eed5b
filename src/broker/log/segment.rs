//! A partition's log on disk: append-only segment files `<base offset, 20 digits>.log` in the partition's
//! directory, each a plain concatenation of v2 batches exactly as they are served.
//!
//! Write policy: every batch is written (`write(2)`) before the produce request is answered, so it survives
//! the broker process being killed; `sync()` (fsync) runs before an acks=-1 produce is answered and for every
//! partition with unsynced writes once per flush interval, so acks=all records also survive a power loss.
//! Recovery reads each segment, checks every batch (length, magic, CRC-32C, offsets in sequence) and
//! truncates the segment at the first one that fails: a torn tail from a crash is cut off, never served.
//!
//! A write that fails (ENOSPC, EIO), possibly after part of the batch reached the file, is cut back to the
//! end of the last whole batch before the error is answered, so that no later batch is appended after a
//! fragment (recovery would stop at the fragment and drop every batch after it). If even that truncation
//! fails, every append retries it first and fails until it succeeds: the partition answers
//! KAFKA_STORAGE_ERROR until a write succeeds again.

use super::batch::BatchHeader;
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct SegmentWriter {
    dir: PathBuf,
    file: File,
    size: u64,
    segment_bytes: u64,
    /// Base offset of the active segment (its file name).
    active_base: i64,
    /// Written since the last fsync.
    dirty: bool,
    /// A failed write may have left part of a batch after `size`; it must be cut off before the next append.
    torn: bool,
}

/// A batch read back from disk, with its header already checked.
pub struct Recovered {
    pub header: BatchHeader,
    pub bytes: Bytes,
}

/// Where the log start offset is checkpointed when it moves past a segment's base offset.
const LOG_START_FILE: &str = "log-start-offset";

fn segment_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

fn segments(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
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

impl SegmentWriter {
    /// Opens (creating if needed) the log in `dir`, recovers its valid batches in order, truncating a torn or
    /// corrupt tail, and returns a writer appending after them.
    pub fn open(dir: &Path, segment_bytes: u64) -> std::io::Result<(SegmentWriter, Vec<Recovered>)> {
        std::fs::create_dir_all(dir)?;
        let mut batches = Vec::new();
        let mut next_offset: Option<i64> = None;
        let mut active: Option<(i64, PathBuf, u64)> = None;
        let mut files = segments(dir)?.into_iter();
        for (base, path) in files.by_ref() {
            let data = Bytes::from(std::fs::read(&path)?);
            let mut at = 0usize;
            let mut torn = false;
            while at < data.len() {
                let header = match BatchHeader::parse_checked(&data[at..]) {
                    Ok(h) if next_offset.is_none_or(|n| h.base_offset == n) && (at > 0 || h.base_offset == base) => h,
                    Ok(_) | Err(_) => {
                        torn = true;
                        break;
                    }
                };
                next_offset = Some(header.base_offset + header.offset_count());
                batches.push(Recovered {
                    header,
                    bytes: data.slice(at..at + header.size),
                });
                at += header.size;
            }
            if torn {
                tracing::warn!(
                    segment = %path.display(),
                    valid_bytes = at,
                    dropped_bytes = data.len() - at,
                    "truncating a torn or corrupt log tail"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(at as u64)?;
                file.sync_all()?;
                active = Some((base, path, at as u64));
                break;
            }
            active = Some((base, path, at as u64));
        }
        // Segments after a corrupt one cannot be trusted to continue the log.
        for (_, path) in files {
            tracing::warn!(segment = %path.display(), "removing a segment that follows a corrupt one");
            std::fs::remove_file(path)?;
        }
        let (active_base, path, size) = match active {
            Some(found) => found,
            None => (0, dir.join(segment_name(0)), 0),
        };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let writer = SegmentWriter {
            dir: dir.to_owned(),
            file,
            size,
            segment_bytes,
            active_base,
            dirty: false,
            torn: false,
        };
        Ok((writer, batches))
    }

    /// Appends one batch whose base offset is `base_offset`, rolling to a new segment first when the
    /// active one is full.
    /// On an error nothing of the batch stays in the log (see the module's documentation).
    pub fn append(&mut self, base_offset: i64, batch: &[u8]) -> std::io::Result<()> {
        self.cut_torn_tail()?;
        if self.size > 0 && self.size + batch.len() as u64 > self.segment_bytes {
            self.file.sync_data()?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(segment_name(base_offset)))?;
            self.size = 0;
            self.active_base = base_offset;
            sync_dir(&self.dir)?;
        }
        if let Err(e) = self.file.write_all(batch) {
            self.torn = true;
            if let Err(cut) = self.cut_torn_tail() {
                tracing::error!(
                    dir = %self.dir.display(),
                    error = %cut,
                    "cannot cut a failed write off the log; appends fail until it is"
                );
            }
            return Err(e);
        }
        self.size += batch.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Cuts what a failed write left after the last whole batch (the file is opened for appending: the next
    /// write goes to the new end).
    fn cut_torn_tail(&mut self) -> std::io::Result<()> {
        if self.torn {
            self.file.set_len(self.size)?;
            self.torn = false;
        }
        Ok(())
    }

    /// A handle to fsync the active segment outside the partition's lock, whether or not it is dirty: an
    /// acks=-1 produce must not be answered before an fsync that started after its write has finished (an
    /// fsync already running for another request may have started before it).
    pub fn sync_handle(&mut self) -> std::io::Result<File> {
        self.dirty = false;
        self.file.try_clone()
    }

    /// The offset the active segment starts at (where an empty log continues).
    pub fn active_base_offset(&self) -> i64 {
        self.active_base
    }

    /// A handle to fsync the active segment outside the partition's lock, if anything is unsynced.
    pub fn take_unsynced(&mut self) -> std::io::Result<Option<File>> {
        if !self.dirty {
            return Ok(None);
        }
        self.dirty = false;
        self.file.try_clone().map(Some)
    }

    /// The log start offset recorded by `delete_below` (DeleteRecords and retention can move it into the
    /// middle of a segment), if any.
    pub fn checkpointed_log_start(dir: &Path) -> Option<i64> {
        std::fs::read_to_string(dir.join(LOG_START_FILE))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }

    /// Records `log_start` (atomically: write, fsync, rename) and deletes whole segments that hold only
    /// offsets below it.
    pub fn delete_below(&mut self, log_start: i64) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{LOG_START_FILE}.tmp"));
        write_synced(&tmp, log_start.to_string().as_bytes())?;
        std::fs::rename(&tmp, self.dir.join(LOG_START_FILE))?;
        sync_dir(&self.dir)?;
        let all = segments(&self.dir)?;
        for pair in all.windows(2) {
            let ((_, path), (next_base, _)) = (&pair[0], &pair[1]);
            if *next_base <= log_start {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::log::batch::{assign_offset, tests::encoded_batch};

    fn write_batches(dir: &Path, segment_bytes: u64, count: i64) -> Vec<Bytes> {
        let (mut writer, recovered) = SegmentWriter::open(dir, segment_bytes).expect("open");
        assert!(recovered.is_empty());
        (0..count)
            .map(|i| {
                let batch = assign_offset(&encoded_batch(&[&format!("v{i}")], None), i, 0);
                writer.append(i, &batch).expect("append");
                batch
            })
            .collect()
    }

    #[test]
    fn recovers_every_batch_across_segments() {
        let dir = tempfile::tempdir().expect("tmp");
        let written = write_batches(dir.path(), 200, 10);
        assert!(segments(dir.path()).expect("list").len() > 1, "small segments roll");
        let (_, recovered) = SegmentWriter::open(dir.path(), 200).expect("reopen");
        let read: Vec<Bytes> = recovered.into_iter().map(|r| r.bytes).collect();
        assert_eq!(read, written);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let written = write_batches(dir.path(), 1 << 20, 3);
        let path = dir.path().join(segment_name(0));
        let full = std::fs::metadata(&path).expect("stat").len();
        // half of the last batch made it to disk
        let torn_len = full - (written[2].len() / 2) as u64;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(torn_len)
            .expect("truncate");
        let (mut writer, recovered) = SegmentWriter::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(recovered.len(), 2);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            (written[0].len() + written[1].len()) as u64
        );
        writer.append(2, &written[2]).expect("append");
        let (_, again) = SegmentWriter::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(again.len(), 3);
    }

    #[test]
    fn a_corrupt_batch_and_everything_after_it_is_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let written = write_batches(dir.path(), 1 << 20, 3);
        let path = dir.path().join(segment_name(0));
        let mut bytes = std::fs::read(&path).expect("read");
        let middle = written[0].len() + 30;
        bytes[middle] ^= 0x55;
        std::fs::write(&path, bytes).expect("write");
        let (_, recovered) = SegmentWriter::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(recovered.len(), 1);
    }
}
