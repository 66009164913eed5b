//! Durable group state: an append-only log of committed offsets, offset and group deletions, and group
//! metadata (protocol type, generation), replayed at start.
//!
//! Format: the 8-byte magic `KGOGRP01`, then records of `[u32 length][u32 CRC-32C of the payload][payload]`,
//! big-endian. A record that is cut short or fails its CRC ends the log: it and everything after it is the
//! torn tail of a crash and is truncated away at start, never replayed.
//!
//! Write policy: one writer thread appends records in the order the coordinator produced them and calls
//! `fdatasync` before acknowledging them (requests arriving meanwhile share one sync, a group commit). An
//! OffsetCommit, DeleteGroups or OffsetDelete is answered only after its records are synced, so whatever a
//! client was told is committed survives `kill -9` and power loss. Group metadata records are written the same
//! way but nobody waits for them. At start, and whenever the log has grown to four times its size after the
//! last rewrite (and past 16 MiB), the live state is written as a fresh log (temporary file, fsync, rename;
//! a crash leaves the old log or the new one), which keeps the file proportional to the live offsets.
//!
//! A write or sync that fails (ENOSPC, EIO) fails every request of its group commit, and the file is cut
//! back to the end of the last synced record before they are answered: no later record is appended after a
//! fragment (replay would stop at it and drop every record after it). If even that fails, the next group
//! commit retries it first and fails until it succeeds. A record larger than replay accepts (`MAX_RECORD`)
//! is never written: the APIs refuse what could make one (`limits::MAX_STRING`), and `append`
//! refuses it too. Each failed append's rollback (the coordinator taking its change back in memory) runs
//! before anyone is answered, the newest first, whether or not someone waits for it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

use bytes::{Buf, BufMut};
use tokio::sync::oneshot;

use super::offsets::{CommittedOffset, Offsets};

const MAGIC: &[u8; 8] = b"KGOGRP01";
const FILE_NAME: &str = "groups.log";
/// A record larger than this is corruption, not data (group, topic and 4 KiB of metadata fit easily).
const MAX_RECORD: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        committed: CommittedOffset,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    DeleteGroup {
        group: String,
    },
    GroupMetadata {
        group: String,
        protocol_type: Option<String>,
        generation: i32,
    },
}

/// What a replay yields per group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub offsets: Offsets,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.put_u32(s.len() as u32);
    buf.put_slice(s.as_bytes());
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            buf.put_u8(1);
            put_str(buf, s);
        }
        None => buf.put_u8(0),
    }
}

fn get_str(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = buf.get_u32() as usize;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

fn get_opt_str(buf: &mut &[u8]) -> Option<Option<String>> {
    if buf.remaining() < 1 {
        return None;
    }
    match buf.get_u8() {
        0 => Some(None),
        1 => get_str(buf).map(Some),
        _ => None,
    }
}

impl Record {
    fn payload(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        match self {
            Record::Commit {
                group,
                topic,
                partition,
                committed,
            } => {
                buf.put_u8(1);
                put_str(&mut buf, group);
                put_str(&mut buf, topic);
                buf.put_i32(*partition);
                buf.put_i64(committed.offset);
                buf.put_i32(committed.leader_epoch);
                put_opt_str(&mut buf, committed.metadata.as_deref());
                buf.put_i64(committed.commit_timestamp);
                buf.put_i64(committed.expire_timestamp.unwrap_or(-1));
            }
            Record::DeleteOffset {
                group,
                topic,
                partition,
            } => {
                buf.put_u8(2);
                put_str(&mut buf, group);
                put_str(&mut buf, topic);
                buf.put_i32(*partition);
            }
            Record::DeleteGroup { group } => {
                buf.put_u8(3);
                put_str(&mut buf, group);
            }
            Record::GroupMetadata {
                group,
                protocol_type,
                generation,
            } => {
                buf.put_u8(4);
                put_str(&mut buf, group);
                put_opt_str(&mut buf, protocol_type.as_deref());
                buf.put_i32(*generation);
            }
        }
        buf
    }

    /// The record framed: length, CRC, payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let payload = self.payload();
        out.put_u32(payload.len() as u32);
        out.put_u32(crc32c::crc32c(&payload));
        out.put_slice(&payload);
    }

    fn decode(mut buf: &[u8]) -> Option<Record> {
        let buf = &mut buf;
        if buf.remaining() < 1 {
            return None;
        }
        let record = match buf.get_u8() {
            1 => {
                let group = get_str(buf)?;
                let topic = get_str(buf)?;
                if buf.remaining() < 16 {
                    return None;
                }
                let partition = buf.get_i32();
                let offset = buf.get_i64();
                let leader_epoch = buf.get_i32();
                let metadata = get_opt_str(buf)?;
                if buf.remaining() < 16 {
                    return None;
                }
                let commit_timestamp = buf.get_i64();
                let expire = buf.get_i64();
                Record::Commit {
                    group,
                    topic,
                    partition,
                    committed: CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp,
                        expire_timestamp: (expire >= 0).then_some(expire),
                    },
                }
            }
            2 => {
                let group = get_str(buf)?;
                let topic = get_str(buf)?;
                if buf.remaining() < 4 {
                    return None;
                }
                Record::DeleteOffset {
                    group,
                    topic,
                    partition: buf.get_i32(),
                }
            }
            3 => Record::DeleteGroup { group: get_str(buf)? },
            4 => {
                let group = get_str(buf)?;
                let protocol_type = get_opt_str(buf)?;
                if buf.remaining() < 4 {
                    return None;
                }
                Record::GroupMetadata {
                    group,
                    protocol_type,
                    generation: buf.get_i32(),
                }
            }
            _ => return None,
        };
        buf.is_empty().then_some(record)
    }
}

/// Applies one record to the replayed state.
pub fn apply(groups: &mut HashMap<String, StoredGroup>, record: Record) {
    match record {
        Record::Commit {
            group,
            topic,
            partition,
            committed,
        } => {
            groups
                .entry(group)
                .or_default()
                .offsets
                .put(&topic, partition, committed);
        }
        Record::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            if let Some(g) = groups.get_mut(&group) {
                g.offsets.remove(&topic, partition);
            }
        }
        Record::DeleteGroup { group } => {
            groups.remove(&group);
        }
        Record::GroupMetadata {
            group,
            protocol_type,
            generation,
        } => {
            let g = groups.entry(group).or_default();
            g.protocol_type = protocol_type;
            g.generation = generation;
        }
    }
}

/// Parses a log image: the records up to the first torn or corrupt one, and the length of the valid prefix.
pub fn parse(image: &[u8]) -> io::Result<(Vec<Record>, usize)> {
    if image.is_empty() {
        return Ok((Vec::new(), 0));
    }
    if image.len() < MAGIC.len() {
        // A crash while the header itself was being written.
        return Ok((Vec::new(), 0));
    }
    if &image[..MAGIC.len()] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a group coordinator log (bad magic)",
        ));
    }
    let mut records = Vec::new();
    let mut pos = MAGIC.len();
    loop {
        let rest = &image[pos..];
        if rest.len() < 8 {
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD || rest.len() < 8 + len {
            break;
        }
        let payload = &rest[8..8 + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Some(record) = Record::decode(payload) else {
            break;
        };
        records.push(record);
        pos += 8 + len;
    }
    Ok((records, pos))
}

/// Test hook, after kfake's `ControlKey`: group commits that fail as on a full disk, in the order queued (none
/// outside tests).
#[derive(Default)]
struct Faults {
    #[cfg(test)]
    queued: std::sync::Mutex<std::collections::VecDeque<(oneshot::Sender<()>, mpsc::Receiver<()>)>>,
}

impl Faults {
    /// The error this group commit fails with before any byte is written, once the test lets it go.
    fn take(&self) -> Option<io::Error> {
        #[cfg(test)]
        {
            let next = self.queued.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            if let Some((taken, release)) = next {
                let _ = taken.send(());
                // Until the test drops its end (or sends on it).
                let _ = release.recv();
                return Some(io::Error::from_raw_os_error(28));
            }
        }
        None
    }
}

/// A group commit a test made fail: `taken` completes when the writer has taken it (what is queued from then
/// on goes into later group commits); it fails once `release` is dropped.
#[cfg(test)]
pub struct HeldWrite {
    pub taken: oneshot::Receiver<()>,
    pub release: mpsc::Sender<()>,
}

/// Takes back in memory a change whose records did not become durable.
pub type Rollback = Box<dyn FnOnce() + Send>;

struct Batch {
    bytes: Vec<u8>,
    /// `bytes` is a whole new log (compaction) that replaces the file, rather than records to append.
    replace: bool,
    /// Why the records are not written at all (`bytes` is then empty).
    refused: Option<io::Error>,
    done: Option<oneshot::Sender<io::Result<()>>>,
    rollback: Option<Rollback>,
}

/// The open log and its writer thread.
pub struct Journal {
    tx: std::sync::Mutex<Option<mpsc::Sender<Batch>>>,
    writer: std::sync::Mutex<Option<thread::JoinHandle<()>>>,
    /// Bytes in the file (as queued), and what the last compaction left: the log is compacted when it has
    /// grown to several times its live content.
    size: AtomicU64,
    compacted_size: AtomicU64,
    #[cfg(test)]
    faults: std::sync::Arc<Faults>,
}

/// The log is never compacted below this size.
const COMPACT_MIN: u64 = 16 * 1024 * 1024;
/// …and is compacted once it is this many times larger than after the last compaction.
const COMPACT_RATIO: u64 = 4;

impl Journal {
    /// Replays `dir/groups.log` (truncating a torn tail), compacts it, and opens it for appending.
    pub fn open(dir: &Path) -> io::Result<(Journal, HashMap<String, StoredGroup>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut old = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut old)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (records, valid) = parse(&old)?;
        if valid < old.len() {
            tracing::warn!(path = %path.display(), valid, len = old.len(), "group log: truncating a torn tail");
        }
        let mut groups = HashMap::new();
        for record in records {
            apply(&mut groups, record);
        }
        let fresh = image(
            groups
                .iter()
                .map(|(id, g)| (id.as_str(), g.protocol_type.as_deref(), g.generation, &g.offsets)),
        );
        let fresh_len = fresh.len() as u64;
        let file = replace_file(dir, &path, &fresh)?;
        let (tx, rx) = mpsc::channel::<Batch>();
        let dir = dir.to_owned();
        let faults = std::sync::Arc::new(Faults::default());
        let writer_faults = faults.clone();
        let writer = thread::Builder::new()
            .name("group-log".into())
            .spawn(move || write_loop(file, fresh_len, &dir, &path, rx, &writer_faults))?;
        Ok((
            Journal {
                tx: std::sync::Mutex::new(Some(tx)),
                writer: std::sync::Mutex::new(Some(writer)),
                size: AtomicU64::new(fresh_len),
                compacted_size: AtomicU64::new(fresh_len),
                #[cfg(test)]
                faults,
            },
            groups,
        ))
    }

    /// Queues records; the receiver completes once they are synced, or with the error that kept them from it,
    /// after `rollback` has run on the writer's thread (so it must not need what the caller holds while calling
    /// this). Call in the order the state changed. Records that replay would not accept are refused (none of
    /// them is written).
    pub fn append(&self, records: &[Record], rollback: Option<Rollback>) -> oneshot::Receiver<io::Result<()>> {
        let (done, rx) = oneshot::channel();
        let mut bytes = Vec::new();
        let mut refused = None;
        for r in records {
            let start = bytes.len();
            r.encode(&mut bytes);
            if bytes.len() - start - 8 > MAX_RECORD {
                tracing::error!(
                    bytes = bytes.len() - start,
                    limit = MAX_RECORD,
                    "group log: refusing a record larger than replay accepts"
                );
                refused = Some(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("a group log record of {} bytes is too large", bytes.len() - start),
                ));
                bytes.clear();
                break;
            }
        }
        self.size.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.send(Batch {
            bytes,
            replace: false,
            refused,
            done: Some(done),
            rollback,
        });
        rx
    }

    /// Whether the log has grown enough since the last compaction to rewrite it.
    pub fn should_compact(&self) -> bool {
        let size = self.size.load(Ordering::Relaxed);
        size > COMPACT_MIN && size > COMPACT_RATIO.saturating_mul(self.compacted_size.load(Ordering::Relaxed))
    }

    /// Replaces the log with `image` (from `image()`): the whole live state. Call in state-change order, like
    /// `append`: records queued before are covered by the image, records queued after go into the new file.
    pub fn compact(&self, image: Vec<u8>) {
        let len = image.len() as u64;
        self.size.store(len, Ordering::Relaxed);
        self.compacted_size.store(len, Ordering::Relaxed);
        self.send(Batch {
            bytes: image,
            replace: true,
            refused: None,
            done: None,
            rollback: None,
        });
    }

    /// Hands `batch` to the writer. Once the log is closed, the batch fails without its rollback: the caller
    /// holds the groups, and the coordinator serves nothing any more.
    fn send(&self, batch: Batch) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref() {
            Some(tx) => {
                if let Err(mpsc::SendError(batch)) = tx.send(batch)
                    && let Some(done) = batch.done
                {
                    let _ = done.send(Err(io::Error::other("group log closed")));
                }
            }
            None => {
                if let Some(done) = batch.done {
                    let _ = done.send(Err(io::Error::other("group log closed")));
                }
            }
        }
    }

    /// Makes the next group commit not yet taken by the writer fail with ENOSPC, held until `release` is dropped.
    #[cfg(test)]
    pub fn fail_next_group_commit(&self) -> HeldWrite {
        let (taken_tx, taken) = oneshot::channel();
        let (release, release_rx) = mpsc::channel();
        self.faults
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((taken_tx, release_rx));
        HeldWrite { taken, release }
    }

    /// Flushes what is queued and stops the writer.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Appends and syncs what is queued, a group commit at a time. `synced` is the length of the file's whole,
/// synced records: what a failed write or sync is cut back to.
fn write_loop(mut file: File, mut synced: u64, dir: &Path, path: &Path, rx: mpsc::Receiver<Batch>, faults: &Faults) {
    // A failed write's fragment that could not be cut off yet.
    let mut torn = false;
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        while let Ok(more) = rx.try_recv() {
            batches.push(more);
        }
        let mut result = match faults.take() {
            Some(injected) => Err(injected),
            None if torn => cut(&file, synced),
            None => Ok(()),
        };
        let mut end = synced;
        if result.is_ok() {
            torn = false;
            for b in &batches {
                let written = if b.replace {
                    // A new file, synced: what this group commit wrote before it is in it.
                    replace_file(dir, path, &b.bytes).map(|f| {
                        file = f;
                        synced = b.bytes.len() as u64;
                        end = synced;
                    })
                } else {
                    file.write_all(&b.bytes).map(|()| end += b.bytes.len() as u64)
                };
                if let Err(e) = written {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok() {
                result = file.sync_data();
            }
            match &result {
                Ok(()) => synced = end,
                Err(e) => {
                    tracing::error!(error = %e, "group log: write failed");
                    // Nothing of this group commit is acknowledged: none of it may stay in front of later records.
                    if let Err(e) = cut(&file, synced) {
                        tracing::error!(error = %e, "group log: cannot cut a failed write off; writes fail until it is");
                        torn = true;
                    }
                }
            }
        } else if torn {
            tracing::error!("group log: a failed write is still not cut off; refusing writes");
        }
        let error = |b: &Batch| {
            b.refused
                .as_ref()
                .or(result.as_ref().err())
                .map(|e| io::Error::new(e.kind(), e.to_string()))
        };
        // What did not become durable is taken back before anyone hears of it, the newest change first: each
        // then finds the state its change left, as far as later changes that failed with it are concerned.
        for b in batches.iter_mut().rev() {
            if error(b).is_some()
                && let Some(rollback) = b.rollback.take()
            {
                rollback();
            }
        }
        for b in batches {
            let outcome = error(&b).map_or(Ok(()), Err);
            if let Some(done) = b.done {
                let _ = done.send(outcome);
            }
        }
    }
}

/// Truncates the log to `len` (it is opened for appending: later writes go to the new end) and syncs that.
fn cut(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    file.sync_data()
}

/// A whole log holding `groups` (id, protocol type, generation, offsets): the magic, then per group its
/// metadata and its committed offsets.
pub fn image<'a>(groups: impl Iterator<Item = (&'a str, Option<&'a str>, i32, &'a Offsets)>) -> Vec<u8> {
    let mut groups: Vec<_> = groups.collect();
    groups.sort_by_key(|g| g.0);
    let mut bytes = MAGIC.to_vec();
    for (name, protocol_type, generation, offsets) in groups {
        Record::GroupMetadata {
            group: name.to_owned(),
            protocol_type: protocol_type.map(str::to_owned),
            generation,
        }
        .encode(&mut bytes);
        for (topic, partition, committed) in offsets.iter() {
            Record::Commit {
                group: name.to_owned(),
                topic: topic.to_owned(),
                partition,
                committed: committed.clone(),
            }
            .encode(&mut bytes);
        }
    }
    bytes
}

/// Writes `bytes` as the log next to `path`, syncs it, renames it over `path`, and returns it opened for
/// appending. A crash at any point leaves either the old log or the new one.
fn replace_file(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<File> {
    let tmp: PathBuf = dir.join(format!("{FILE_NAME}.tmp"));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        // A full disk is not kept full by half a log that nobody will read.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename itself durable; not every platform lets a directory be synced.
        let _ = d.sync_all();
    }
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(group: &str, offset: i64) -> Record {
        Record::Commit {
            group: group.into(),
            topic: "t".into(),
            partition: 0,
            committed: CommittedOffset {
                offset,
                leader_epoch: 3,
                metadata: Some("m".into()),
                commit_timestamp: 1_700_000_000_000,
                expire_timestamp: None,
            },
        }
    }

    fn image(records: &[Record]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for r in records {
            r.encode(&mut bytes);
        }
        bytes
    }

    #[test]
    fn records_round_trip() {
        let records = vec![
            commit("g", 5),
            Record::DeleteOffset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
            },
            Record::DeleteGroup { group: "g".into() },
            Record::GroupMetadata {
                group: "g".into(),
                protocol_type: Some("consumer".into()),
                generation: 7,
            },
        ];
        let bytes = image(&records);
        assert_eq!(parse(&bytes).ok(), Some((records, bytes.len())));
    }

    #[test]
    fn a_torn_tail_ends_the_log() {
        let whole = image(&[commit("g", 1), commit("g", 2)]);
        let first_end = image(&[commit("g", 1)]).len();
        for cut in first_end..whole.len() {
            let (records, valid) = parse(&whole[..cut]).unwrap_or_default();
            assert_eq!(records, vec![commit("g", 1)], "cut at {cut}");
            assert_eq!(valid, first_end);
        }
    }

    #[test]
    fn a_corrupt_record_ends_the_log() {
        let mut bytes = image(&[commit("g", 1), commit("g", 2)]);
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        let (records, _) = parse(&bytes).unwrap_or_default();
        assert_eq!(records, vec![commit("g", 1)]);
    }

    #[tokio::test]
    async fn compaction_keeps_the_live_state_and_later_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (journal, _) = Journal::open(dir.path()).expect("open");
        for offset in 0..50 {
            let synced = journal.append(&[commit("g", offset)], None).await;
            assert!(matches!(synced, Ok(Ok(()))));
        }
        let mut live = Offsets::default();
        if let Record::Commit { committed, .. } = commit("g", 49) {
            live.put("t", 0, committed);
        }
        journal.compact(super::image([("g", Some("consumer"), 3, &live)].into_iter()));
        let synced = journal.append(&[commit("h", 1)], None).await;
        assert!(matches!(synced, Ok(Ok(()))));
        drop(journal);
        let path = dir.path().join(FILE_NAME);
        let (records, _) = parse(&std::fs::read(&path).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            records.len(),
            3,
            "metadata and one offset of g, then h's commit: {records:?}"
        );
        let (_journal, groups) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(groups["g"].offsets.get("t", 0).map(|c| c.offset), Some(49));
        assert_eq!(groups["g"].generation, 3);
        assert_eq!(groups["h"].offsets.get("t", 0).map(|c| c.offset), Some(1));
    }

    #[test]
    fn a_foreign_file_is_refused() {
        assert!(parse(b"something else entirely").is_err());
    }

    #[tokio::test]
    async fn committed_offsets_survive_reopening_and_a_torn_tail_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (journal, groups) = Journal::open(dir.path()).expect("open");
            assert!(groups.is_empty());
            let synced = journal
                .append(&[commit("g", 1), commit("g", 9), commit("h", 4)], None)
                .await;
            assert!(matches!(synced, Ok(Ok(()))));
            let synced = journal.append(&[Record::DeleteGroup { group: "h".into() }], None).await;
            assert!(matches!(synced, Ok(Ok(()))));
        }
        // A crash in the middle of the next append.
        let path = dir.path().join(FILE_NAME);
        let mut torn = Vec::new();
        commit("g", 10).encode(&mut torn);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open for append");
        f.write_all(&torn[..torn.len() / 2]).expect("write torn tail");
        drop(f);
        let (_journal, groups) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups["g"].offsets.get("t", 0).map(|c| c.offset), Some(9));
        let (records, valid) = parse(&std::fs::read(&path).unwrap_or_default()).unwrap_or_default();
        assert_eq!(valid, std::fs::metadata(&path).map(|m| m.len() as usize).unwrap_or(0));
        assert_eq!(records.len(), 2, "compacted to the group's metadata and its one offset");
    }
}
