//! Log offsets (earliest, latest, by timestamp, max timestamp; optionally the last stable offset) with
//! one ListOffsets per partition leader, and the timestamp of the record at an offset with one small Fetch (many
//! offsets at once: `first_records`).

use super::client::KafkaClient;
use super::error::{KafkaError, check};
use super::metadata::TopicPartition;
use crate::wire::Api;
use futures_util::future::join_all;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::{BTreeMap, HashMap};

/// Which offset of a partition's log to look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark), or the last stable offset with `Isolation::ReadCommitted`.
    Latest,
    /// The offset of the record with the highest timestamp (ListOffsets v7+).
    MaxTimestamp,
    /// The first offset whose record timestamp is at or after this time (ms since the epoch); -1 (Kafka's
    /// answer) when there is none, which callers read as the log end.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    #[default]
    ReadUncommitted,
    /// Offsets up to the last stable offset: records of open transactions are not counted.
    ReadCommitted,
}

/// What a small Fetch found at an offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirstRecord {
    /// The timestamp of the first data record at or after the offset; None at the log end.
    pub timestamp: Option<i64>,
    /// Whether a batch read was transactional: the partition carries transactions.
    pub transactional: bool,
}

/// One partition's answer to ListOffsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOffset {
    pub offset: i64,
    /// The record's timestamp for `Timestamp`/`MaxTimestamp` lookups, -1 otherwise.
    pub timestamp: i64,
}

impl KafkaClient {
    /// Looks up `spec` for every partition: one ListOffsets per leader, all in flight together; partitions
    /// whose leader moved are retried after a metadata refresh.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        isolation: Isolation,
    ) -> Result<BTreeMap<TopicPartition, LogOffset>, KafkaError> {
        let mut unique = partitions.to_vec();
        unique.sort();
        unique.dedup();
        let topics: Vec<String> = {
            let mut t: Vec<String> = unique.iter().map(|tp| tp.topic.to_string()).collect();
            t.dedup();
            t
        };
        let results = self
            .with_batch_retries("ListOffsets", unique, |pending| {
                let topics = topics.clone();
                async move {
                    let metadata = match self.metadata_with(&topics).await {
                        Ok(m) => m,
                        Err(e) => return pending.into_iter().map(|tp| (tp, Err(e.clone()))).collect(),
                    };
                    let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
                    let mut out = Vec::new();
                    for tp in pending {
                        match metadata.leader(&tp) {
                            Some(leader) => by_leader.entry(leader).or_default().push(tp),
                            None if metadata
                                .topics
                                .get(&*tp.topic)
                                .is_some_and(|t| !t.partitions.contains_key(&tp.partition)) =>
                            {
                                let err = KafkaError::UnknownPartition {
                                    topic: tp.topic.to_string(),
                                    partition: tp.partition,
                                };
                                out.push((tp, Err(err)));
                            }
                            None => out.push((
                                tp.clone(),
                                Err(KafkaError::Response {
                                    broker: "(metadata)".into(),
                                    api: Api(ListOffsetsRequest::KEY),
                                    error: kafka_protocol::error::ResponseError::LeaderNotAvailable,
                                    context: format!("partition {tp}"),
                                }),
                            )),
                        }
                    }
                    let calls = by_leader
                        .into_iter()
                        .map(|(leader, tps)| async move { self.list_offsets_on(leader, tps, spec, isolation).await });
                    for batch in join_all(calls).await {
                        out.extend(batch);
                    }
                    out
                }
            })
            .await;
        let mut offsets = BTreeMap::new();
        for (tp, result) in results {
            offsets.insert(tp, result?);
        }
        Ok(offsets)
    }

    async fn list_offsets_on(
        &self,
        leader: i32,
        partitions: Vec<TopicPartition>,
        spec: OffsetSpec,
        isolation: Isolation,
    ) -> Vec<(TopicPartition, Result<LogOffset, KafkaError>)> {
        let api = Api(ListOffsetsRequest::KEY);
        let attempt = async {
            let conn = self.broker(leader).await?;
            let min_version = match (spec, isolation) {
                (OffsetSpec::MaxTimestamp, _) => 7,
                (_, Isolation::ReadCommitted) => 2,
                _ => 1,
            };
            let version = conn.version_in::<ListOffsetsRequest>(min_version, i16::MAX)?;
            let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for tp in &partitions {
                topics.entry(&*tp.topic).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(spec.wire_timestamp()),
                );
            }
            let request = ListOffsetsRequest::default()
                // -1: a client, not a follower replica (the crate's default of 0 would be broker 0).
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(match isolation {
                    Isolation::ReadUncommitted => 0,
                    Isolation::ReadCommitted => 1,
                })
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, parts)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                                .with_partitions(parts)
                        })
                        .collect(),
                );
            let response = conn.send_version(&request, version).await?;
            let mut answers: HashMap<TopicPartition, Result<LogOffset, KafkaError>> = HashMap::new();
            for t in response.topics {
                let topic: std::sync::Arc<str> = std::sync::Arc::from(&*t.name.0);
                for p in t.partitions {
                    let tp = TopicPartition::new(&topic, p.partition_index);
                    let result =
                        check(p.error_code, conn.addr(), api, || format!("partition {tp}")).map(|_| LogOffset {
                            offset: p.offset,
                            timestamp: p.timestamp,
                        });
                    answers.insert(tp, result);
                }
            }
            Ok::<_, KafkaError>(answers)
        };
        match attempt.await {
            Ok(mut answers) => partitions
                .into_iter()
                .map(|tp| {
                    let result = answers.remove(&tp).unwrap_or_else(|| {
                        Err(KafkaError::Response {
                            broker: format!("node {leader}"),
                            api,
                            error: kafka_protocol::error::ResponseError::NotLeaderOrFollower,
                            context: format!("partition {tp} missing from the response"),
                        })
                    });
                    (tp, result)
                })
                .collect(),
            Err(e) => partitions.into_iter().map(|tp| (tp, Err(e.clone()))).collect(),
        }
    }

    /// The timestamp (ms since the epoch) of the first record at or after `offset`, read with one Fetch of
    /// at most `max_bytes`; `None` when no record is there yet (the offset is the log end).
    pub async fn record_timestamp(&self, tp: &TopicPartition, offset: i64) -> Result<Option<i64>, KafkaError> {
        Ok(self.first_record(tp, offset).await?.timestamp)
    }

    /// The first data record at or after `offset` (its timestamp) and whether the batches read on the way were
    /// transactional (a transaction's data or markers), with one Fetch of at most 64 KiB.
    pub async fn first_record(&self, tp: &TopicPartition, offset: i64) -> Result<FirstRecord, KafkaError> {
        const MAX_BYTES: i32 = 64 * 1024;
        let answer = self.fetch_partition(tp, offset, MAX_BYTES, 0).await?;
        let Some(mut records) = answer.records else {
            return Ok(FirstRecord::default());
        };
        let mut transactional = false;
        // A fetch may end in a partial batch: decode whole batches until the bytes run out.
        while bytes::Buf::has_remaining(&records) {
            let Ok(batch) = RecordBatchDecoder::decode(&mut records) else {
                break;
            };
            transactional |= batch.records.iter().any(|r| r.transactional);
            if let Some(r) = batch.records.iter().find(|r| r.offset >= offset && !r.control) {
                return Ok(FirstRecord {
                    timestamp: Some(r.timestamp),
                    transactional,
                });
            }
        }
        Ok(FirstRecord {
            timestamp: None,
            transactional,
        })
    }

    /// One Fetch of one partition from `offset` (at most `max_bytes`, without waiting) at `isolation_level` (0:
    /// read uncommitted, 1: read committed), sent to its leader with retries; the partition's answer, its errors
    /// checked. What the exact time lag and the consumable lag read records and batch headers with.
    pub(super) async fn fetch_partition(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: i32,
        isolation_level: i8,
    ) -> Result<PartitionData, KafkaError> {
        let api = Api(FetchRequest::KEY);
        self.with_retries("Fetch", || async {
            let metadata = self.metadata_with(&[tp.topic.to_string()]).await?;
            let leader = metadata.leader(tp).ok_or_else(|| KafkaError::UnknownPartition {
                topic: tp.topic.to_string(),
                partition: tp.partition,
            })?;
            let conn = self.broker(leader).await?;
            // v4 brought READ_COMMITTED answers; v12 is the newest version that names topics (v13+ use ids).
            let version = conn.version_in::<FetchRequest>(4, 12)?;
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(max_bytes)
                .with_isolation_level(isolation_level)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(tp.topic.to_string())))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(tp.partition)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(offset)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(max_bytes),
                        ]),
                ]);
            let response = conn.send_version(&request, version).await?;
            check(response.error_code, conn.addr(), api, String::new)?;
            let partition = response
                .responses
                .into_iter()
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == tp.partition)
                .ok_or_else(|| KafkaError::Config(format!("no Fetch answer for {tp}")))?;
            check(partition.error_code, conn.addr(), api, || {
                format!("partition {tp} at offset {offset}")
            })?;
            Ok(partition)
        })
        .await
    }
}
