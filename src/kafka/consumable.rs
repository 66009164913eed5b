//! The inputs of a partition's consumable lag: the headers of its record batches from the committed offset to
//! the last stable offset and its aborted transactions, read with small READ_COMMITTED Fetches, never decoded.

use super::client::KafkaClient;
use super::error::KafkaError;
use super::metadata::TopicPartition;
use crate::lag::{AbortedTxn, BatchHeader, BatchKind, ConsumableLag, consumable_lag};

/// Bytes asked for per header Fetch. Headers are read from whole batches, so a Fetch covers at least one batch
/// (Kafka returns a first batch larger than this whole).
pub const HEADER_FETCH_BYTES: i32 = 256 * 1024;
/// Fetches per partition and scan: past `HEADER_FETCHES × HEADER_FETCH_BYTES` (1 MiB) of backlog the lag is
/// reported as an upper bound (`ConsumableLag::exact == false`), every unread offset counted as a record.
pub const HEADER_FETCHES: usize = 4;

/// Batch header layout (magic v2): base offset i64, length i32, leader epoch i32, magic i8, crc u32,
/// attributes i16, last offset delta i32, base timestamp i64, max timestamp i64, producer id i64, producer
/// epoch i16, base sequence i32, record count i32; the records follow.
pub(super) const HEADER_BYTES: usize = 61;
pub(super) const ATTR_COMPRESSION: i16 = 0x07;
pub(super) const ATTR_TRANSACTIONAL: i16 = 0x10;
pub(super) const ATTR_CONTROL: i16 = 0x20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record batch at offset {offset}: {message}")]
pub struct BatchError {
    pub offset: i64,
    pub message: String,
}

/// The headers of the whole batches in one partition's Fetch answer (a Fetch may end in a partial batch,
/// read again by the next Fetch). A control batch's type (COMMIT or ABORT) is read from its one record's key:
/// Kafka writes control batches uncompressed.
pub fn batch_headers(mut bytes: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let be_i64 = |b: &[u8], at: usize| i64::from_be_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let be_i32 = |b: &[u8], at: usize| i32::from_be_bytes(b[at..at + 4].try_into().unwrap_or_default());
        let base_offset = be_i64(bytes, 0);
        let err = |message: String| BatchError {
            offset: base_offset,
            message,
        };
        let length = be_i32(bytes, 8);
        let total = usize::try_from(length).map_err(|_| err(format!("negative length {length}")))? + 12;
        if bytes.len() < total {
            break;
        }
        let (batch, rest) = bytes.split_at(total);
        bytes = rest;
        if total < HEADER_BYTES {
            return Err(err(format!("{total} bytes")));
        }
        let magic = batch[16] as i8;
        if magic != 2 {
            return Err(err(format!("magic {magic}")));
        }
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let kind = if attributes & ATTR_CONTROL != 0 {
            if attributes & ATTR_COMPRESSION != 0 {
                return Err(err("compressed control batch".into()));
            }
            let control_type = control_type(&batch[HEADER_BYTES..]).ok_or_else(|| err("control record".into()))?;
            BatchKind::Marker {
                abort: control_type == 0,
            }
        } else {
            BatchKind::Data
        };
        out.push(BatchHeader {
            base_offset,
            last_offset_delta: be_i32(batch, 23),
            record_count: be_i32(batch, 57),
            producer_id: be_i64(batch, 43),
            transactional: attributes & ATTR_TRANSACTIONAL != 0,
            kind,
        });
    }
    Ok(out)
}

/// The type of a control record (0 ABORT, 1 COMMIT) from the first record of a control batch: length,
/// attributes, timestamp delta, offset delta, key length (varints), then the key: version i16, type i16.
fn control_type(mut records: &[u8]) -> Option<i16> {
    let _length = varint(&mut records)?;
    records = records.get(1..)?;
    let _timestamp_delta = varint(&mut records)?;
    let _offset_delta = varint(&mut records)?;
    let key_length = varint(&mut records)?;
    if key_length < 4 {
        return None;
    }
    let key = records.get(..4)?;
    Some(i16::from_be_bytes([key[2], key[3]]))
}

/// A zig-zag varint of at most 10 bytes.
pub(super) fn varint(buf: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

/// What the header Fetches read of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumableRead {
    pub lag: ConsumableLag,
    /// The last stable offset the Fetch reported (the end a `read_committed` consumer reads up to).
    pub last_stable_offset: i64,
    /// Whether any batch read was transactional.
    pub transactional: bool,
    pub fetches: usize,
}

impl KafkaClient {
    /// The consumable lag of `tp` for a group at `committed`: READ_COMMITTED Fetches from `committed`, batch
    /// headers only, until the last stable offset (which every answer reports) or the cap
    /// (`HEADER_FETCHES` × `HEADER_FETCH_BYTES`), past which the lag is an upper bound.
    pub async fn consumable_lag(&self, tp: &TopicPartition, committed: i64) -> Result<ConsumableRead, KafkaError> {
        let mut headers: Vec<BatchHeader> = Vec::new();
        let mut aborted: Vec<AbortedTxn> = Vec::new();
        let mut position = committed;
        let mut lso = committed;
        let mut fetches = 0;
        while fetches < HEADER_FETCHES {
            fetches += 1;
            let answer = self.fetch_partition(tp, position, HEADER_FETCH_BYTES, 1).await?;
            lso = answer.last_stable_offset;
            aborted.extend(
                answer
                    .aborted_transactions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| AbortedTxn {
                        producer_id: *a.producer_id,
                        first_offset: a.first_offset,
                    }),
            );
            let read = batch_headers(answer.records.as_deref().unwrap_or_default()).map_err(|e| KafkaError::Wire {
                broker: tp.to_string(),
                message: e.to_string(),
            })?;
            let Some(last) = read.last() else { break };
            position = last.last_offset().saturating_add(1);
            // Kafka answers from the batch holding the position: a batch already read is not read twice.
            let read_to = headers.last().map(BatchHeader::last_offset);
            headers.extend(read.into_iter().filter(|h| read_to.is_none_or(|to| h.base_offset > to)));
            if position >= lso {
                break;
            }
        }
        aborted.sort_by_key(|a| (a.first_offset, a.producer_id));
        aborted.dedup();
        Ok(ConsumableRead {
            lag: consumable_lag(committed, lso, &headers, &aborted),
            last_stable_offset: lso,
            transactional: headers.iter().any(|h| h.transactional),
            fetches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

    fn record(offset: i64, producer_id: i64, txn: bool, key: Vec<u8>, control: bool) -> Record {
        crate::kafka::offsets_records::tests::record(offset, key, Some(b"value".to_vec()), producer_id, txn, control)
    }

    fn data(base: i64, count: i64, producer_id: i64, txn: bool) -> Vec<Record> {
        (base..base + count)
            .map(|o| record(o, producer_id, txn, b"k".to_vec(), false))
            .collect()
    }

    /// A control batch's record: key version 0, type 0 (ABORT) or 1 (COMMIT).
    fn marker(offset: i64, producer_id: i64, commit: bool) -> Vec<Record> {
        vec![record(offset, producer_id, true, vec![0, 0, 0, u8::from(commit)], true)]
    }

    fn encode(batches: &[(Vec<Record>, Compression)]) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        for (batch, compression) in batches {
            RecordBatchEncoder::encode(
                &mut buf,
                batch,
                &RecordEncodeOptions {
                    version: 2,
                    compression: *compression,
                },
            )
            .expect("encode");
        }
        buf.to_vec()
    }

    #[test]
    fn batch_headers_read_offsets_counts_producers_and_marker_types() {
        let bytes = encode(&[
            (data(0, 3, 7, true), Compression::None),
            (marker(3, 7, true), Compression::None),
            (data(4, 5, 8, true), Compression::Gzip),
            (marker(9, 8, false), Compression::None),
            // Idempotent, not transactional (the encoder writes records without a producer id one per batch).
            (data(10, 2, 9, false), Compression::None),
        ]);
        let headers = batch_headers(&bytes).expect("headers");
        let got: Vec<(i64, i64, i32, i64, bool, BatchKind)> = headers
            .iter()
            .map(|h| {
                (
                    h.base_offset,
                    h.last_offset(),
                    h.record_count,
                    h.producer_id,
                    h.transactional,
                    h.kind,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 2, 3, 7, true, BatchKind::Data),
                (3, 3, 1, 7, true, BatchKind::Marker { abort: false }),
                (4, 8, 5, 8, true, BatchKind::Data),
                (9, 9, 1, 8, true, BatchKind::Marker { abort: true }),
                (10, 11, 2, 9, false, BatchKind::Data),
            ]
        );
    }

    #[test]
    fn batch_headers_stop_before_a_partial_batch_and_refuse_an_old_magic() {
        let whole = encode(&[(data(0, 2, 9, false), Compression::None)]);
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&whole[..whole.len() - 5]);
        assert_eq!(batch_headers(&bytes).expect("headers").len(), 1);
        let mut old = whole;
        old[16] = 1;
        assert_eq!(batch_headers(&old).map_err(|e| e.offset), Err(0));
    }

    #[test]
    fn batch_headers_of_a_fetch_feed_the_consumable_lag() {
        // Committed at the first marker: an aborted transaction (producer 8, listed by Fetch), its marker and a
        // committed one of producer 7 follow.
        let bytes = encode(&[
            (marker(3, 7, true), Compression::None),
            (data(4, 5, 8, true), Compression::Lz4),
            (marker(9, 8, false), Compression::None),
            (data(10, 2, 7, true), Compression::None),
            (marker(12, 7, true), Compression::None),
        ]);
        let headers = batch_headers(&bytes).expect("headers");
        let aborted = [AbortedTxn {
            producer_id: 8,
            first_offset: 4,
        }];
        assert_eq!(
            consumable_lag(3, 13, &headers, &aborted),
            ConsumableLag {
                records: 2,
                first_offset: Some(10),
                exact: true
            }
        );
    }
}
