//! The first data record at many (partition, offset)s at once: what the exact time lag of every group of a
//! cluster needs. One Fetch returns the whole batch that holds an offset, and the batches after it, with every
//! record's timestamp; so the wanted offsets are grouped per partition, each region of a log is read once, and
//! every round sends one Fetch per partition leader carrying every partition that still needs a batch (split
//! only to bound the answer's size). At 2,000 groups × 50 partitions that is a handful of requests where one
//! Fetch per (partition, offset) was tens of thousands.
//!
//! A partition that the batched reads cannot serve (an error on it, an undecodable batch, no progress for a few
//! rounds) falls back to [`KafkaClient::first_record`], one Fetch per offset with its retries.

use super::client::KafkaClient;
use super::error::{KafkaError, check};
use super::metadata::TopicPartition;
use super::offsets::FirstRecord;
use crate::wire::Api;
use futures_util::StreamExt;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Bytes asked for per partition at first: a producer's default batch (`batch.size` 16 KiB) and then some.
/// A partition whose batch is larger is asked again for exactly that batch (its header says how long it is).
const PARTITION_BYTES: i32 = 16 * 1024;
/// Bound on one Fetch answer: partitions are split over several requests past it.
const REQUEST_BYTES: i64 = 8 * 1024 * 1024;
/// Fetches in flight at once (over all leaders): bounds memory at `REQUEST_BYTES` times this.
const REQUESTS_IN_FLIGHT: usize = 4;
/// Rounds in a row without progress after which a partition is read one offset at a time instead.
const MAX_STALLS: u8 = 3;
/// Bound on a batch this reader asks for whole (Kafka's default `message.max.bytes` is 1 MiB; brokers allow
/// more): past it the partition falls back to the one-offset path, which Kafka answers with the whole batch.
const MAX_BATCH_BYTES: i64 = 64 * 1024 * 1024;
/// One-offset reads in flight on the fallback path.
const SINGLE_READS_IN_FLIGHT: usize = 16;

/// One partition in a Fetch: where it reads from, and how many bytes it asks for.
type FetchPart = (TopicPartition, i64, i32);
/// A Fetch's partitions and the answer to them.
type FetchAnswer = (Vec<FetchPart>, Result<Vec<(String, PartitionData)>, KafkaError>);

/// What [`KafkaClient::first_records`] found, and what it cost.
#[derive(Debug, Default)]
pub struct FirstRecords {
    /// Every (partition, offset) read; one that could not be read is absent (its time lag stays unknown).
    pub found: HashMap<(TopicPartition, i64), FirstRecord>,
    /// Fetch requests sent, batched and one-offset alike.
    pub fetches: usize,
}

/// The fields of a record this reader looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rec {
    offset: i64,
    timestamp: i64,
    control: bool,
    transactional: bool,
}

/// What one partition's Fetch answer held.
#[derive(Debug, PartialEq, Eq)]
enum Batches {
    /// Whole batches, their records in offset order (possibly none: the partition had nothing from the offset).
    Records(Vec<Rec>),
    /// The first batch is cut off by the bytes asked for: ask again for `needed` bytes.
    Truncated { needed: i64 },
    /// A batch that does not decode (an old magic, a codec this build lacks).
    Undecodable,
}

/// Decodes the whole batches of one partition's answer (an answer may end in a partial batch, read again by
/// the next round).
fn decode(bytes: bytes::Bytes) -> Batches {
    let mut records = Vec::new();
    let mut rest: &[u8] = &bytes;
    while rest.len() >= 12 {
        let length = i64::from(i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]));
        let total = length + 12;
        if length < 0 {
            return Batches::Undecodable;
        }
        if (rest.len() as i64) < total {
            if records.is_empty() {
                return Batches::Truncated { needed: total };
            }
            break;
        }
        let (batch, after) = rest.split_at(total as usize);
        rest = after;
        if !batch_records(batch, &mut records) {
            return Batches::Undecodable;
        }
    }
    Batches::Records(records)
}

/// Appends the records of one whole batch. An uncompressed batch (the common case, and every transaction
/// marker) is read in place: the header, then each record's timestamp and offset deltas, its key, value and
/// headers skipped; a compressed one is decompressed by `kafka_protocol`'s decoder. False if it does not decode.
fn batch_records(batch: &[u8], out: &mut Vec<Rec>) -> bool {
    use super::consumable::{ATTR_COMPRESSION, ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_BYTES, varint};
    /// Timestamp type bit: LOG_APPEND_TIME, every record's timestamp is the batch's max timestamp.
    const ATTR_LOG_APPEND_TIME: i16 = 0x08;
    if batch.len() < HEADER_BYTES || batch[16] != 2 {
        return false;
    }
    let be_i64 = |at: usize| i64::from_be_bytes(batch[at..at + 8].try_into().unwrap_or_default());
    let attributes = i16::from_be_bytes([batch[21], batch[22]]);
    if attributes & ATTR_COMPRESSION != 0 {
        let mut whole = bytes::Bytes::copy_from_slice(batch);
        let Ok(set) = RecordBatchDecoder::decode(&mut whole) else {
            return false;
        };
        out.extend(set.records.iter().map(|r| Rec {
            offset: r.offset,
            timestamp: r.timestamp,
            control: r.control,
            transactional: r.transactional,
        }));
        return true;
    }
    let base_offset = be_i64(0);
    let base_timestamp = be_i64(27);
    let max_timestamp = be_i64(35);
    let control = attributes & ATTR_CONTROL != 0;
    let transactional = attributes & ATTR_TRANSACTIONAL != 0;
    let count = i32::from_be_bytes(batch[57..61].try_into().unwrap_or_default());
    let mut records = &batch[HEADER_BYTES..];
    for _ in 0..count.max(0) {
        let Some(length) = varint(&mut records).and_then(|l| usize::try_from(l).ok()) else {
            return false;
        };
        let Some(record) = records.get(..length) else {
            return false;
        };
        records = &records[length..];
        // attributes (1 byte, unused), timestamp delta, offset delta.
        let mut fields = record.get(1..).unwrap_or_default();
        let (Some(timestamp_delta), Some(offset_delta)) = (varint(&mut fields), varint(&mut fields)) else {
            return false;
        };
        out.push(Rec {
            offset: base_offset + offset_delta,
            timestamp: if attributes & ATTR_LOG_APPEND_TIME != 0 {
                max_timestamp
            } else {
                base_timestamp + timestamp_delta
            },
            control,
            transactional,
        });
    }
    true
}

/// The reads of one partition: the wanted offsets not answered yet, and where its next Fetch starts.
#[derive(Debug)]
struct PartitionReads {
    /// Wanted offsets not answered yet, ascending.
    pending: VecDeque<i64>,
    /// Where the next Fetch starts: the first pending offset, or past records already read that were all
    /// transaction markers after it.
    cursor: i64,
    /// Whether the records already read at or after the first pending offset were transactional.
    carried_transactional: bool,
    /// Bytes asked for.
    max_bytes: i32,
    /// Rounds in a row without progress.
    stalls: u8,
}

/// What a round did for a partition.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Still pending offsets: read again next round.
    Again,
    /// Every wanted offset is answered.
    Done,
    /// Read the rest one offset at a time.
    Fallback,
}

impl PartitionReads {
    fn new(offsets: impl IntoIterator<Item = i64>) -> PartitionReads {
        let pending: VecDeque<i64> = offsets.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        PartitionReads {
            cursor: pending.front().copied().unwrap_or(0),
            pending,
            carried_transactional: false,
            max_bytes: PARTITION_BYTES,
            stalls: 0,
        }
    }

    fn stall(&mut self) -> Step {
        self.stalls += 1;
        if self.stalls >= MAX_STALLS {
            Step::Fallback
        } else {
            Step::Again
        }
    }

    /// Takes one Fetch answer from `cursor`: answers every pending offset whose first data record it holds
    /// (into `found`) and moves the cursor on.
    fn absorb(
        &mut self,
        tp: &TopicPartition,
        batches: Batches,
        high_watermark: i64,
        found: &mut HashMap<(TopicPartition, i64), FirstRecord>,
    ) -> Step {
        let records = match batches {
            Batches::Undecodable => return Step::Fallback,
            Batches::Truncated { needed } if needed > MAX_BATCH_BYTES => return Step::Fallback,
            Batches::Truncated { needed } => {
                // The batch's own length: the next round reads it whole (the bytes asked for only grow).
                self.max_bytes = i32::try_from(needed).unwrap_or(i32::MAX).max(self.max_bytes);
                return Step::Again;
            }
            Batches::Records(records) => records,
        };
        let Some(last) = records.last().map(|r| r.offset).filter(|last| *last >= self.cursor) else {
            if high_watermark >= 0 && self.cursor >= high_watermark {
                // At the log end: no record there yet, as `first_record` answers.
                for offset in self.pending.drain(..) {
                    let transactional = offset < self.cursor && self.carried_transactional;
                    found.insert(
                        (tp.clone(), offset),
                        FirstRecord {
                            timestamp: None,
                            transactional,
                        },
                    );
                }
                return Step::Done;
            }
            // Nothing served below the high watermark: the answer was full, or the partition moved.
            return self.stall();
        };
        self.stalls = 0;
        while let Some(&offset) = self.pending.front() {
            if offset > last {
                break;
            }
            let mut transactional = offset < self.cursor && self.carried_transactional;
            let from = records.partition_point(|r| r.offset < offset);
            let mut timestamp = None;
            for r in &records[from..] {
                transactional |= r.transactional;
                if !r.control {
                    timestamp = Some(r.timestamp);
                    break;
                }
            }
            match timestamp {
                Some(timestamp) => {
                    found.insert(
                        (tp.clone(), offset),
                        FirstRecord {
                            timestamp: Some(timestamp),
                            transactional,
                        },
                    );
                    self.pending.pop_front();
                }
                None => {
                    // Only transaction markers from here to what was read: read on past them.
                    self.carried_transactional = transactional;
                    self.cursor = last + 1;
                    return Step::Again;
                }
            }
        }
        match self.pending.front() {
            None => Step::Done,
            Some(&next) => {
                self.cursor = next;
                self.carried_transactional = false;
                Step::Again
            }
        }
    }
}

impl KafkaClient {
    /// The first data record at or after each of `wanted` (partition, offset)s, as [`KafkaClient::first_record`]
    /// reads one, with as few Fetches as the batches allow (see the module's documentation).
    pub async fn first_records(&self, wanted: impl IntoIterator<Item = (TopicPartition, i64)>) -> FirstRecords {
        let mut by_partition: BTreeMap<TopicPartition, Vec<i64>> = BTreeMap::new();
        for (tp, offset) in wanted {
            by_partition.entry(tp).or_default().push(offset);
        }
        let mut reads: BTreeMap<TopicPartition, PartitionReads> = by_partition
            .into_iter()
            .map(|(tp, offsets)| (tp, PartitionReads::new(offsets)))
            .collect();
        let mut out = FirstRecords::default();
        let mut fallback: Vec<(TopicPartition, i64)> = Vec::new();
        while !reads.is_empty() {
            let topics: Vec<String> = reads
                .keys()
                .map(|tp| &*tp.topic)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let metadata = match self.metadata_with(&topics).await {
                Ok(metadata) => metadata,
                Err(_) => break,
            };
            let mut by_leader: BTreeMap<i32, Vec<FetchPart>> = BTreeMap::new();
            let mut leaderless = Vec::new();
            for (tp, read) in &reads {
                match metadata.leader(tp) {
                    Some(leader) => {
                        by_leader
                            .entry(leader)
                            .or_default()
                            .push((tp.clone(), read.cursor, read.max_bytes))
                    }
                    None => leaderless.push(tp.clone()),
                }
            }
            for tp in leaderless {
                if let Some(read) = reads.remove(&tp) {
                    fallback.extend(read.pending.into_iter().map(|o| (tp.clone(), o)));
                }
            }
            let requests: Vec<(i32, Vec<FetchPart>)> = by_leader
                .into_iter()
                .flat_map(|(leader, parts)| split_by_bytes(parts).into_iter().map(move |chunk| (leader, chunk)))
                .collect();
            out.fetches += requests.len();
            let answers: Vec<FetchAnswer> = futures_util::stream::iter(requests)
                .map(|(leader, chunk)| async move {
                    let answer = self.fetch_many(leader, &chunk).await;
                    (chunk, answer)
                })
                .buffer_unordered(REQUESTS_IN_FLIGHT)
                .collect()
                .await;
            for (chunk, answer) in answers {
                let mut data: HashMap<(String, i32), PartitionData> = HashMap::new();
                if let Ok(partitions) = answer {
                    for (topic, p) in partitions {
                        data.insert((topic, p.partition_index), p);
                    }
                }
                for (tp, _, _) in chunk {
                    let Some(read) = reads.get_mut(&tp) else { continue };
                    let step = match data.remove(&(tp.topic.to_string(), tp.partition)) {
                        Some(p) if p.error_code != 0 => Step::Fallback,
                        Some(p) => {
                            let batches = p.records.map_or(Batches::Records(Vec::new()), decode);
                            read.absorb(&tp, batches, p.high_watermark, &mut out.found)
                        }
                        None => read.stall(),
                    };
                    match step {
                        Step::Again => {}
                        Step::Done => {
                            reads.remove(&tp);
                        }
                        Step::Fallback => {
                            if let Some(read) = reads.remove(&tp) {
                                fallback.extend(read.pending.into_iter().map(|o| (tp.clone(), o)));
                            }
                        }
                    }
                }
            }
        }
        // What the loop left (metadata unreadable): the one-offset path, with its retries.
        for (tp, read) in std::mem::take(&mut reads) {
            fallback.extend(read.pending.into_iter().map(|o| (tp.clone(), o)));
        }
        out.fetches += fallback.len();
        let singles: Vec<((TopicPartition, i64), Result<FirstRecord, KafkaError>)> =
            futures_util::stream::iter(fallback)
                .map(|(tp, offset)| async move {
                    let first = self.first_record(&tp, offset).await;
                    ((tp, offset), first)
                })
                .buffer_unordered(SINGLE_READS_IN_FLIGHT)
                .collect()
                .await;
        out.found.extend(
            singles
                .into_iter()
                .filter_map(|(key, first)| first.ok().map(|f| (key, f))),
        );
        out
    }

    /// One Fetch of `parts` ((partition, from offset, bytes asked)) from their leader, without waiting;
    /// each partition's answer with its topic (errors per partition are the caller's).
    async fn fetch_many(&self, leader: i32, parts: &[FetchPart]) -> Result<Vec<(String, PartitionData)>, KafkaError> {
        let api = Api(FetchRequest::KEY);
        let conn = self.broker(leader).await?;
        // v4 brought READ_COMMITTED answers; v12 is the newest version that names topics (v13+ use ids).
        let version = conn.version_in::<FetchRequest>(4, 12)?;
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, offset, max_bytes) in parts {
            topics.entry(&*tp.topic).or_default().push(
                FetchPartition::default()
                    .with_partition(tp.partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(*offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(*max_bytes),
            );
        }
        let total: i64 = parts.iter().map(|(_, _, b)| i64::from(*b)).sum();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(i32::try_from(total).unwrap_or(i32::MAX))
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = conn.send_version(&request, version).await?;
        check(response.error_code, conn.addr(), api, String::new)?;
        Ok(response
            .responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect())
    }
}

/// Splits one leader's partitions into requests whose asked bytes stay within `REQUEST_BYTES` (a partition
/// asking for more than that goes alone: Kafka answers the first batch of a request whole).
fn split_by_bytes(parts: Vec<FetchPart>) -> Vec<Vec<FetchPart>> {
    let mut chunks: Vec<Vec<FetchPart>> = Vec::new();
    let mut bytes = 0i64;
    for part in parts {
        let size = i64::from(part.2);
        if chunks.is_empty() || bytes + size > REQUEST_BYTES {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(part);
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

    fn record(offset: i64, txn: bool, control: bool) -> Record {
        let key = if control { vec![0, 0, 0, 1] } else { b"k".to_vec() };
        let mut r = crate::kafka::offsets_records::tests::record(offset, key, Some(b"v".to_vec()), 7, txn, control);
        r.timestamp = 1_000 + offset;
        r
    }

    use crate::kafka::offsets_records::tests::encode;

    fn plain(base: i64, count: i64) -> Vec<Record> {
        (base..base + count).map(|o| record(o, false, false)).collect()
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    #[test]
    fn one_answer_gives_every_wanted_offset_it_covers() {
        let mut read = PartitionReads::new([12, 3, 7, 3]);
        let mut found = HashMap::new();
        let step = read.absorb(&tp(), decode(encode(&[plain(0, 5), plain(5, 10)])), 15, &mut found);
        assert_eq!(step, Step::Done);
        assert_eq!(found.len(), 3);
        assert_eq!(found[&(tp(), 7)].timestamp, Some(1_007));
        assert_eq!(found[&(tp(), 12)].timestamp, Some(1_012));
        assert!(!found[&(tp(), 3)].transactional);
    }

    #[test]
    fn offsets_past_what_was_read_are_read_next_round_from_the_next_wanted_offset() {
        let mut read = PartitionReads::new([2, 40]);
        let mut found = HashMap::new();
        assert_eq!(
            read.absorb(&tp(), decode(encode(&[plain(0, 5)])), 50, &mut found),
            Step::Again
        );
        assert_eq!(read.cursor, 40);
        assert_eq!(found[&(tp(), 2)].timestamp, Some(1_002));
        assert_eq!(
            read.absorb(&tp(), decode(encode(&[plain(38, 5)])), 50, &mut found),
            Step::Done
        );
        assert_eq!(found[&(tp(), 40)].timestamp, Some(1_040));
    }

    #[test]
    fn markers_are_skipped_and_make_the_offset_transactional() {
        // Offsets 0-1: a transaction's data, 2: its COMMIT marker, 3-4 plain.
        let txn = vec![record(0, true, false), record(1, true, false)];
        let marker = vec![record(2, true, true)];
        let mut read = PartitionReads::new([1, 2]);
        let mut found = HashMap::new();
        let step = read.absorb(&tp(), decode(encode(&[txn, marker, plain(3, 2)])), 5, &mut found);
        assert_eq!(step, Step::Done);
        assert_eq!(found[&(tp(), 1)].timestamp, Some(1_001));
        assert!(found[&(tp(), 1)].transactional);
        assert_eq!(found[&(tp(), 2)].timestamp, Some(1_003));
        assert!(found[&(tp(), 2)].transactional, "the marker was read on the way");
    }

    #[test]
    fn an_offset_followed_only_by_markers_reads_on_and_then_meets_the_log_end() {
        let mut read = PartitionReads::new([2]);
        let mut found = HashMap::new();
        let answer = decode(encode(&[vec![record(2, true, true)]]));
        assert_eq!(read.absorb(&tp(), answer, 3, &mut found), Step::Again);
        assert_eq!(read.cursor, 3);
        assert_eq!(
            read.absorb(&tp(), decode(bytes::Bytes::new()), 3, &mut found),
            Step::Done
        );
        assert_eq!(
            found[&(tp(), 2)],
            FirstRecord {
                timestamp: None,
                transactional: true
            }
        );
    }

    #[test]
    fn an_empty_answer_below_the_high_watermark_stalls_then_falls_back() {
        let mut read = PartitionReads::new([4]);
        let mut found = HashMap::new();
        for _ in 1..MAX_STALLS {
            assert_eq!(
                read.absorb(&tp(), decode(bytes::Bytes::new()), 10, &mut found),
                Step::Again
            );
        }
        assert_eq!(
            read.absorb(&tp(), decode(bytes::Bytes::new()), 10, &mut found),
            Step::Fallback
        );
        assert!(found.is_empty());
    }

    #[test]
    fn a_cut_batch_is_asked_again_whole_and_garbage_falls_back() {
        let whole = encode(&[plain(0, 400)]);
        let cut = whole.slice(..1000);
        assert_eq!(
            decode(cut.clone()),
            Batches::Truncated {
                needed: whole.len() as i64
            }
        );
        let mut read = PartitionReads::new([10]);
        let mut found = HashMap::new();
        assert_eq!(read.absorb(&tp(), decode(cut), 400, &mut found), Step::Again);
        assert_eq!(read.max_bytes, (whole.len() as i32).max(PARTITION_BYTES));
        // A whole batch then a partial one: the whole one is used, the rest read next round.
        let mut two = whole.to_vec();
        two.extend_from_slice(&encode(&[plain(400, 3)])[..20]);
        assert!(matches!(decode(bytes::Bytes::from(two)), Batches::Records(r) if r.len() == 400));
        let mut garbage = vec![0u8; 8];
        garbage.extend_from_slice(&100i32.to_be_bytes());
        garbage.extend(std::iter::repeat_n(0xFFu8, 100));
        assert_eq!(decode(bytes::Bytes::from(garbage)), Batches::Undecodable);
    }

    #[test]
    fn records_read_in_place_match_the_full_decoder_and_compressed_batches_decode_too() {
        let batches = [plain(0, 3), vec![record(3, true, false)], vec![record(4, true, true)]];
        let in_place = decode(encode(&batches));
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &plain(5, 4),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::Gzip,
            },
        )
        .expect("encode");
        let Batches::Records(records) = in_place else {
            panic!("{in_place:?}")
        };
        let full: Vec<Rec> = RecordBatchDecoder::decode_all(&mut encode(&batches))
            .expect("decode")
            .iter()
            .flat_map(|set| set.records.iter())
            .map(|r| Rec {
                offset: r.offset,
                timestamp: r.timestamp,
                control: r.control,
                transactional: r.transactional,
            })
            .collect();
        assert_eq!(records, full);
        let Batches::Records(gzip) = decode(buf.freeze()) else {
            panic!("gzip")
        };
        assert_eq!(
            gzip.iter().map(|r| (r.offset, r.timestamp)).collect::<Vec<_>>(),
            (5..9).map(|o| (o, 1_000 + o)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn requests_are_split_by_the_bytes_they_ask_for() {
        let part = |p: i32, bytes: i32| (TopicPartition::new("t", p), 0, bytes);
        let chunks = split_by_bytes((0..600).map(|p| part(p, PARTITION_BYTES)).collect());
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![512, 88]);
        let chunks = split_by_bytes(vec![part(0, 100), part(1, 20 * 1024 * 1024), part(2, 100)]);
        assert_eq!(
            chunks.len(),
            3,
            "a partition asking for more than a request's bound goes alone"
        );
    }
}
