//! Pure parsing of what the group coordinator writes to `__consumer_offsets`: record keys and values (offset
//! commits, group metadata) and the record batches of a Fetch answer read with READ_COMMITTED semantics.
//!
//! Formats (Apache Kafka's `group-coordinator/src/main/resources/common/message/*.json`): a key starts with an
//! i16 that names the record type (`CoordinatorRecordType`, the key's "version"): 0 `LegacyOffsetCommitKey`
//! and 1 `OffsetCommitKey` (group, topic, partition), 2 `GroupMetadataKey` (group), 3 and up the KIP-848,
//! share and streams group records. A value starts with an i16 version; `OffsetCommitValue` v0–v4 (v4 is
//! flexible) begin with the offset (i64), v3+ follow it with the leader epoch (i32). A null value is a
//! tombstone: the offset (or the group's metadata) was removed.

use bytes::{Buf, Bytes};
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::{BTreeMap, HashSet};

/// The highest record type (key version) Kafka 4.x writes to `__consumer_offsets` that we know of
/// (`StreamsGroupTargetAssignmentResolvedTopicIdsKey`, apiKey 24). A higher one is a format we have not seen.
pub const MAX_KNOWN_RECORD_TYPE: i16 = 24;
/// `OffsetCommitValue` versions 0–4.
pub const MAX_OFFSET_COMMIT_VALUE_VERSION: i16 = 4;

/// What one `__consumer_offsets` record means for committed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// An offset commit (`offset: Some`) or its tombstone (`None`: deleted by DeleteOffsets, group deletion,
    /// topic deletion or retention expiry).
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
        offset: Option<i64>,
        leader_epoch: Option<i32>,
    },
    /// A classic group's metadata; `deleted` for its tombstone.
    GroupMetadata { group: String, deleted: bool },
    /// A record of another kind (KIP-848, share or streams groups) that carries no committed offset.
    Other { record_type: i16 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record without a key")]
    NoKey,
    #[error("record type (key version) {0} is newer than the ones this client knows")]
    UnknownKeyVersion(i16),
    #[error("offset commit value version {0} is newer than the ones this client knows")]
    UnknownValueVersion(i16),
    #[error("{0} is truncated or malformed")]
    Malformed(&'static str),
    #[error("record batch: {0}")]
    Batch(String),
}

/// Parses one record of `__consumer_offsets` from its key and value bytes.
pub fn parse_record(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<OffsetsRecord, RecordError> {
    let mut key = key.ok_or(RecordError::NoKey)?;
    let record_type = read_i16(&mut key, "key")?;
    match record_type {
        0 | 1 => {
            let group = read_string(&mut key, "offset commit key")?;
            let topic = read_string(&mut key, "offset commit key")?;
            let partition = read_i32(&mut key, "offset commit key")?;
            let (offset, leader_epoch) = match value {
                None => (None, None),
                Some(mut v) => {
                    let version = read_i16(&mut v, "offset commit value")?;
                    if !(0..=MAX_OFFSET_COMMIT_VALUE_VERSION).contains(&version) {
                        return Err(RecordError::UnknownValueVersion(version));
                    }
                    let offset = read_i64(&mut v, "offset commit value")?;
                    let epoch = if version >= 3 {
                        Some(read_i32(&mut v, "offset commit value")?).filter(|e| *e >= 0)
                    } else {
                        None
                    };
                    (Some(offset), epoch)
                }
            };
            Ok(OffsetsRecord::OffsetCommit {
                group,
                topic,
                partition,
                offset,
                leader_epoch,
            })
        }
        2 => Ok(OffsetsRecord::GroupMetadata {
            group: read_string(&mut key, "group metadata key")?,
            deleted: value.is_none(),
        }),
        3..=MAX_KNOWN_RECORD_TYPE => Ok(OffsetsRecord::Other { record_type }),
        other => Err(RecordError::UnknownKeyVersion(other)),
    }
}

fn read_i16(buf: &mut &[u8], what: &'static str) -> Result<i16, RecordError> {
    if buf.len() < 2 {
        return Err(RecordError::Malformed(what));
    }
    Ok(buf.get_i16())
}

fn read_i32(buf: &mut &[u8], what: &'static str) -> Result<i32, RecordError> {
    if buf.len() < 4 {
        return Err(RecordError::Malformed(what));
    }
    Ok(buf.get_i32())
}

fn read_i64(buf: &mut &[u8], what: &'static str) -> Result<i64, RecordError> {
    if buf.len() < 8 {
        return Err(RecordError::Malformed(what));
    }
    Ok(buf.get_i64())
}

/// A non-flexible `string`: i16 length, then UTF-8 bytes (keys are never flexible).
fn read_string(buf: &mut &[u8], what: &'static str) -> Result<String, RecordError> {
    let len = read_i16(buf, what)?;
    let len = usize::try_from(len).map_err(|_| RecordError::Malformed(what))?;
    if buf.len() < len {
        return Err(RecordError::Malformed(what));
    }
    let s = std::str::from_utf8(&buf[..len]).map_err(|_| RecordError::Malformed(what))?;
    let s = s.to_owned();
    buf.advance(len);
    Ok(s)
}

pub use crate::lag::AbortedTxn;

/// The records of one partition's Fetch answer that count under READ_COMMITTED, and where to fetch next.
#[derive(Debug, Default)]
pub struct ReadBatches {
    /// Parsed records, in log order.
    pub records: Vec<OffsetsRecord>,
    /// The offset after the last whole batch read (the position to fetch from next); the fetch offset when
    /// no whole batch came back.
    pub next_offset: i64,
}

/// Batch header layout (magic v2): base offset i64, length i32, leader epoch i32, magic i8, crc u32,
/// attributes i16, last offset delta i32, … producer id i64 at byte 43.
const HEADER_BYTES: usize = 61;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Walks the record batches of one partition's Fetch answer from `fetch_offset`: whole batches only (a
/// Fetch may end in a partial one, fetched again next time), control batches skipped, and batches of the
/// transactions listed as aborted skipped (as Kafka's consumer does: a producer's records are skipped from
/// the aborted transaction's first offset until its ABORT marker).
pub fn read_batches(fetch_offset: i64, mut bytes: Bytes, aborted: &[AbortedTxn]) -> Result<ReadBatches, RecordError> {
    let mut pending: Vec<AbortedTxn> = aborted.to_vec();
    // Sorted by first offset, descending, so the next one to activate is at the end.
    pending.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
    let mut aborting: HashSet<i64> = HashSet::new();
    let mut out = ReadBatches {
        records: Vec::new(),
        next_offset: fetch_offset,
    };
    while bytes.len() >= 12 {
        let base_offset = i64::from_be_bytes(bytes[0..8].try_into().unwrap_or_default());
        let length = i32::from_be_bytes(bytes[8..12].try_into().unwrap_or_default());
        let total = usize::try_from(length).map_err(|_| RecordError::Batch(format!("negative length {length}")))? + 12;
        if bytes.len() < total {
            break; // a partial batch at the end of the answer
        }
        let mut batch = bytes.split_to(total);
        if total < HEADER_BYTES {
            return Err(RecordError::Batch(format!("batch of {total} bytes")));
        }
        let magic = batch[16] as i8;
        if magic != 2 {
            return Err(RecordError::Batch(format!("record batch magic {magic}")));
        }
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let last_offset_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap_or_default());
        let producer_id = i64::from_be_bytes(batch[43..51].try_into().unwrap_or_default());
        let last_offset = base_offset + i64::from(last_offset_delta);
        if last_offset < fetch_offset {
            // Kafka answers from the start of the batch that holds the fetch offset.
            continue;
        }
        while pending.last().is_some_and(|t| t.first_offset <= last_offset) {
            if let Some(t) = pending.pop() {
                aborting.insert(t.producer_id);
            }
        }
        let transactional = attributes & ATTR_TRANSACTIONAL != 0;
        let control = attributes & ATTR_CONTROL != 0;
        let decoded = RecordBatchDecoder::decode(&mut batch).map_err(|e| RecordError::Batch(e.to_string()))?;
        if control {
            // A control record's key: version i16, type i16 (0 = ABORT, 1 = COMMIT).
            let is_abort = decoded.records.iter().any(|r| {
                r.key
                    .as_ref()
                    .is_some_and(|k| k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == 0)
            });
            if transactional && is_abort {
                aborting.remove(&producer_id);
            }
        } else if !(transactional && aborting.contains(&producer_id)) {
            for r in decoded.records.iter().filter(|r| r.offset >= fetch_offset) {
                out.records.push(parse_record(r.key.as_deref(), r.value.as_deref())?);
            }
        }
        out.next_offset = last_offset + 1;
    }
    Ok(out)
}

/// Committed offsets of one group, by (interned topic, partition).
pub type OffsetsOfGroup = BTreeMap<(std::sync::Arc<str>, i32), i64>;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn string(buf: &mut Vec<u8>, s: &str) {
        buf.put_i16(s.len() as i16);
        buf.put_slice(s.as_bytes());
    }

    fn commit_key(version: i16, group: &str, topic: &str, partition: i32) -> Vec<u8> {
        let mut k = Vec::new();
        k.put_i16(version);
        string(&mut k, group);
        string(&mut k, topic);
        k.put_i32(partition);
        k
    }

    /// `OffsetCommitValue` at `version`, laid out field by field as in OffsetCommitValue.json.
    fn commit_value(version: i16, offset: i64, epoch: i32, metadata: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.put_i16(version);
        v.put_i64(offset);
        if version >= 3 {
            v.put_i32(epoch);
        }
        if version >= 4 {
            // compact string: unsigned varint length + 1 (all lengths here fit one byte)
            v.put_u8(metadata.len() as u8 + 1);
            v.put_slice(metadata.as_bytes());
        } else {
            string(&mut v, metadata);
        }
        v.put_i64(1_700_000_000_000); // commitTimestamp
        if version == 1 {
            v.put_i64(-1); // expireTimestamp
        }
        if version >= 4 {
            v.put_u8(0); // no tagged fields
        }
        v
    }

    #[test]
    fn offset_commit_keys_v0_and_v1_with_every_value_version_give_the_offset() {
        for key_version in [0, 1] {
            for value_version in 0..=4 {
                let key = commit_key(key_version, "g", "orders", 7);
                let value = commit_value(value_version, 42, 5, "meta");
                let parsed = parse_record(Some(&key), Some(&value)).expect("parse");
                assert_eq!(
                    parsed,
                    OffsetsRecord::OffsetCommit {
                        group: "g".into(),
                        topic: "orders".into(),
                        partition: 7,
                        offset: Some(42),
                        leader_epoch: (value_version >= 3).then_some(5),
                    },
                    "key v{key_version}, value v{value_version}"
                );
            }
        }
    }

    #[test]
    fn a_null_offset_commit_value_is_a_tombstone() {
        let key = commit_key(1, "g", "orders", 0);
        assert_eq!(
            parse_record(Some(&key), None).expect("parse"),
            OffsetsRecord::OffsetCommit {
                group: "g".into(),
                topic: "orders".into(),
                partition: 0,
                offset: None,
                leader_epoch: None,
            }
        );
    }

    #[test]
    fn group_metadata_keys_and_their_tombstones() {
        let mut key = Vec::new();
        key.put_i16(2);
        string(&mut key, "payments");
        let value = [0u8, 3, 0, 0]; // a GroupMetadataValue; its content is not read
        assert_eq!(
            parse_record(Some(&key), Some(&value)).expect("parse"),
            OffsetsRecord::GroupMetadata {
                group: "payments".into(),
                deleted: false
            }
        );
        assert_eq!(
            parse_record(Some(&key), None).expect("parse"),
            OffsetsRecord::GroupMetadata {
                group: "payments".into(),
                deleted: true
            }
        );
    }

    #[test]
    fn records_of_other_group_types_are_recognised_and_carry_no_offset() {
        for record_type in 3..=MAX_KNOWN_RECORD_TYPE {
            let mut key = Vec::new();
            key.put_i16(record_type);
            string(&mut key, "g");
            assert_eq!(
                parse_record(Some(&key), Some(&[0, 0])).expect("parse"),
                OffsetsRecord::Other { record_type }
            );
        }
    }

    #[test]
    fn unknown_key_and_value_versions_are_errors_not_guesses() {
        let mut key = Vec::new();
        key.put_i16(MAX_KNOWN_RECORD_TYPE + 1);
        string(&mut key, "g");
        assert_eq!(
            parse_record(Some(&key), None),
            Err(RecordError::UnknownKeyVersion(MAX_KNOWN_RECORD_TYPE + 1))
        );
        let key = commit_key(1, "g", "t", 0);
        let mut value = commit_value(4, 1, 0, "");
        value[1] = 5; // version 5
        assert_eq!(
            parse_record(Some(&key), Some(&value)),
            Err(RecordError::UnknownValueVersion(5))
        );
        assert_eq!(
            parse_record(Some(&key), Some(&[0xff, 0xff, 0, 0])),
            Err(RecordError::UnknownValueVersion(-1))
        );
    }

    #[test]
    fn truncated_keys_and_values_are_malformed() {
        let key = commit_key(1, "group", "topic", 3);
        for cut in [1, 3, 9, key.len() - 1] {
            assert!(
                matches!(parse_record(Some(&key[..cut]), None), Err(RecordError::Malformed(_))),
                "key cut at {cut}"
            );
        }
        let value = commit_value(3, 9, 1, "");
        assert!(matches!(
            parse_record(Some(&key), Some(&value[..6])),
            Err(RecordError::Malformed(_))
        ));
        assert_eq!(parse_record(None, None), Err(RecordError::NoKey));
    }

    /// A record as a broker stores it (also what the consumable-lag tests build their batches from).
    pub(crate) fn record(
        offset: i64,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        producer_id: i64,
        txn: bool,
        control: bool,
    ) -> Record {
        Record {
            transactional: txn,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: if producer_id >= 0 { offset as i32 } else { -1 },
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(key)),
            value: value.map(Bytes::from),
            headers: Default::default(),
        }
    }

    fn commit(offset: i64, group: &str, value: i64, producer_id: i64, txn: bool) -> Record {
        record(
            offset,
            commit_key(1, group, "t", 0),
            Some(commit_value(4, value, 0, "")),
            producer_id,
            txn,
            false,
        )
    }

    /// A control batch's record: key version 0, type 0 (ABORT) or 1 (COMMIT).
    fn marker(offset: i64, producer_id: i64, commit: bool) -> Record {
        let key = vec![0, 0, 0, u8::from(commit)];
        record(offset, key, Some(vec![0, 0, 0, 0, 0, 0]), producer_id, true, true)
    }

    /// Uncompressed v2 batches, one per `Vec`, as a Fetch answer carries them.
    pub(crate) fn encode(batches: &[Vec<Record>]) -> Bytes {
        let mut buf = bytes::BytesMut::new();
        for batch in batches {
            RecordBatchEncoder::encode(
                &mut buf,
                batch,
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .expect("encode");
        }
        buf.freeze()
    }

    fn offsets_of(read: &ReadBatches) -> Vec<(String, Option<i64>)> {
        read.records
            .iter()
            .filter_map(|r| match r {
                OffsetsRecord::OffsetCommit { group, offset, .. } => Some((group.clone(), *offset)),
                _ => None,
            })
            .collect()
    }

    /// A batch that inflates past the decoder's bound (a decompression bomb from any cluster) is an error,
    /// not gigabytes; a record count read from the wire does not size an allocation.
    #[test]
    fn a_decompression_bomb_and_a_lying_record_count_are_errors_not_allocations() {
        let zeros = vec![0u8; kafka_protocol::compression::MAX_DECOMPRESSED_BYTES + 1024];
        let mut bomb = bytes::BytesMut::new();
        for compression in [Compression::Zstd, Compression::Lz4] {
            bomb.clear();
            RecordBatchEncoder::encode(
                &mut bomb,
                &[record(0, b"k".to_vec(), Some(zeros.clone()), -1, false, false)],
                &RecordEncodeOptions {
                    version: 2,
                    compression,
                },
            )
            .expect("encode");
            assert!(
                bomb.len() < 1024 * 1024,
                "{compression:?}: {} compressed bytes",
                bomb.len()
            );
            let error = kafka_protocol::records::RecordBatchDecoder::decode(&mut bomb.clone().freeze())
                .expect_err("a bomb is refused");
            assert!(
                format!("{error:#}").contains("decompresses to more than"),
                "{compression:?}: {error:#}"
            );
        }
        // An uncompressed batch whose header claims 2^31 - 1 records: the decoder runs out of bytes.
        let mut batch = bytes::BytesMut::from(&encode(&[vec![record(0, b"k".to_vec(), None, -1, false, false)]])[..]);
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]); // the CRC covers attributes to the end: keep it valid
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let error =
            kafka_protocol::records::RecordBatchDecoder::decode(&mut batch.freeze()).expect_err("too few bytes");
        assert!(!format!("{error:#}").contains("crc"), "the CRC is valid: {error:#}");
    }

    #[test]
    fn committed_transactions_apply_and_aborted_ones_are_skipped() {
        let bytes = encode(&[
            vec![commit(0, "plain", 10, -1, false)],
            vec![commit(1, "txn-ok", 11, 7, true)],
            vec![commit(2, "txn-aborted", 12, 8, true)],
            vec![marker(3, 7, true)],
            vec![marker(4, 8, false)],
            // The aborted producer's next transaction commits: it applies again after the ABORT marker.
            vec![commit(5, "txn-aborted", 15, 8, true)],
            vec![marker(6, 8, true)],
        ]);
        let aborted = [AbortedTxn {
            producer_id: 8,
            first_offset: 2,
        }];
        let read = read_batches(0, bytes, &aborted).expect("read");
        assert_eq!(
            offsets_of(&read),
            vec![
                ("plain".into(), Some(10)),
                ("txn-ok".into(), Some(11)),
                ("txn-aborted".into(), Some(15)),
            ]
        );
        assert_eq!(read.next_offset, 7);
    }

    #[test]
    fn a_partial_batch_at_the_end_is_left_for_the_next_fetch() {
        let bytes = encode(&[vec![commit(0, "a", 1, -1, false)], vec![commit(1, "b", 2, -1, false)]]);
        let cut = bytes.slice(..bytes.len() - 5);
        let read = read_batches(0, cut, &[]).expect("read");
        assert_eq!(offsets_of(&read), vec![("a".into(), Some(1))]);
        assert_eq!(read.next_offset, 1);
        let empty = read_batches(9, Bytes::new(), &[]).expect("read");
        assert!(empty.records.is_empty());
        assert_eq!(empty.next_offset, 9);
    }

    #[test]
    fn records_before_the_fetch_offset_in_the_first_batch_are_not_reapplied() {
        let bytes = encode(&[vec![
            commit(10, "a", 1, -1, false),
            commit(11, "a", 2, -1, false),
            commit(12, "a", 3, -1, false),
        ]]);
        let read = read_batches(11, bytes, &[]).expect("read");
        assert_eq!(offsets_of(&read), vec![("a".into(), Some(2)), ("a".into(), Some(3))]);
        assert_eq!(read.next_offset, 13);
    }

    #[test]
    fn an_unknown_record_version_inside_a_batch_fails_the_read() {
        let mut key = Vec::new();
        key.put_i16(MAX_KNOWN_RECORD_TYPE + 1);
        let bytes = encode(&[vec![record(0, key, None, -1, false, false)]]);
        assert_eq!(
            read_batches(0, bytes, &[]).map(|r| r.records),
            Err(RecordError::UnknownKeyVersion(MAX_KNOWN_RECORD_TYPE + 1))
        );
    }
}
