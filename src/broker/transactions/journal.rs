//! The transaction coordinator's durable state (Kafka's `__transaction_state` topic): one JSON line per change,
//! the whole state of one transactional id (or its removal), appended and fsynced before the change is answered.
//! Replayed at start (the last line of an id wins; a torn last line is cut off) and rewritten when most lines are
//! stale.

use super::state::TxnMetadata;
use crate::broker::log::segment::{sync_dir, write_synced};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

const FILE: &str = "transactions.log";
/// Lines beyond which the journal is rewritten with only the live state (and at least this many stale ones).
const COMPACT_AFTER_LINES: usize = if cfg!(test) { 100 } else { 10_000 };

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Line {
    Txn(TxnMetadata),
    Removed(String),
}

pub struct TxnJournal {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl TxnJournal {
    /// Opens (creating) the journal in `dir` and replays it.
    pub fn open(dir: &Path) -> std::io::Result<(TxnJournal, HashMap<String, TxnMetadata>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let mut state = HashMap::new();
        let mut lines = 0usize;
        let mut valid_bytes = 0u64;
        if let Ok(file) = File::open(&path) {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line)?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                match serde_json::from_str::<Line>(line.trim_end()) {
                    Ok(Line::Txn(m)) => {
                        state.insert(m.transactional_id.clone(), m);
                    }
                    Ok(Line::Removed(id)) => {
                        state.remove(&id);
                    }
                    Err(e) => {
                        tracing::warn!(journal = %path.display(), error = %e, "cutting the transaction journal at an unreadable line");
                        break;
                    }
                }
                lines += 1;
                valid_bytes += n as u64;
            }
        }
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        if file.metadata()?.len() > valid_bytes {
            file.set_len(valid_bytes)?;
            file.sync_all()?;
        }
        sync_dir(dir)?;
        Ok((TxnJournal { path, file, lines }, state))
    }

    /// Appends the state of one transactional id and fsyncs it.
    pub fn write(&mut self, metadata: &TxnMetadata) -> std::io::Result<()> {
        self.append(&Line::Txn(metadata.clone()))
    }

    /// Appends the removal of a transactional id and fsyncs it.
    pub fn remove(&mut self, transactional_id: &str) -> std::io::Result<()> {
        self.append(&Line::Removed(transactional_id.to_owned()))
    }

    fn append(&mut self, line: &Line) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        self.file.sync_data()?;
        self.lines += 1;
        Ok(())
    }

    /// Whether most lines are stale with `live` ids left: what `compact_if_stale` waits for.
    pub fn is_stale(&self, live: usize) -> bool {
        self.lines >= COMPACT_AFTER_LINES.max(live * 2)
    }

    /// Rewrites the journal with `live` only when most of its lines are stale.
    pub fn compact_if_stale<'a>(
        &mut self,
        live: impl ExactSizeIterator<Item = &'a TxnMetadata>,
    ) -> std::io::Result<()> {
        if !self.is_stale(live.len()) {
            return Ok(());
        }
        let mut bytes = Vec::new();
        let mut count = 0usize;
        for metadata in live {
            serde_json::to_writer(&mut bytes, &Line::Txn(metadata.clone())).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            count += 1;
        }
        let tmp = self.path.with_extension("log.tmp");
        write_synced(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        self.file = OpenOptions::new().append(true).read(true).open(&self.path)?;
        self.lines = count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_state_of_each_id_survives_a_reopen_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut journal, state) = TxnJournal::open(dir.path()).expect("open");
        assert!(state.is_empty());
        let mut a = TxnMetadata::new("a", 1000, 60_000, 0);
        journal.write(&a).expect("write");
        a.begin(5);
        journal.write(&a).expect("write");
        journal.write(&TxnMetadata::new("b", 1001, 60_000, 0)).expect("write");
        journal.remove("b").expect("remove");
        drop(journal);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .expect("open");
        file.write_all(b"{\"txn\":{\"transactionalId\"").expect("torn write");
        let (_, state) = TxnJournal::open(dir.path()).expect("reopen");
        assert_eq!(state.len(), 1);
        assert_eq!(state["a"], a);
    }

    #[test]
    fn compaction_keeps_only_the_live_state() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut journal, _) = TxnJournal::open(dir.path()).expect("open");
        let mut a = TxnMetadata::new("a", 1000, 60_000, 0);
        for i in 0..COMPACT_AFTER_LINES as i64 {
            a.updated_ms = i;
            journal.write(&a).expect("write");
        }
        journal.compact_if_stale([&a].into_iter()).expect("compact");
        assert_eq!(journal.lines, 1);
        a.updated_ms = -5;
        journal.write(&a).expect("write after compaction");
        let (_, state) = TxnJournal::open(dir.path()).expect("reopen");
        assert_eq!(state["a"].updated_ms, -5);
    }
}
