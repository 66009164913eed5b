//! Fetch: whole stored batches from each partition's fetch offset, within the partition and response byte
//! limits (the first batch of the first partition with data always comes back, as KIP-74 requires). A
//! fetch with less than `min_bytes` waits up to `max_wait_ms` and wakes as soon as anything is appended.
//! No fetch sessions (KIP-227): the broker answers session id 0, so clients send full requests.
//! `read_committed` (isolation level 1) reads up to each partition's last stable offset and lists the aborted
//! transactions in what it returns, so the consumer drops their records.
//!
//! Limits as Kafka has them: the response limit is the request's `max_bytes` capped at the broker's
//! `fetch.max.bytes` (Kafka's default, 55 MiB), and `max_bytes <= 0` is a limit of nothing but the first
//! batch, not "unlimited". A partition the request names more than once is served once, where it first
//! appears, with its last occurrence's offset and limit (Kafka keeps a request's partitions in a map).

use crate::broker::Node;
use crate::broker::log::lock;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

const READ_COMMITTED: i8 = 1;
/// Kafka's `fetch.max.bytes` default: the most one fetch response carries (the first batch aside).
pub const FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;

pub async fn fetch(node: &Node, request: FetchRequest, version: i16) -> FetchResponse {
    if request.session_id != 0 && version >= 7 {
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut appended = node.store.subscribe();
    loop {
        appended.borrow_and_update();
        let (response, bytes, failed) = read_all(node, &request, version);
        if bytes >= request.min_bytes.max(0) as usize || failed || Instant::now() >= deadline {
            return response;
        }
        // Either something was appended (read again) or the wait is over (read once more and answer).
        let _ = tokio::time::timeout_at(deadline, appended.changed()).await;
    }
}

/// One pass over the requested partitions: the response, the record bytes in it, whether any partition
/// failed (which answers the fetch at once, like Kafka).
fn read_all(node: &Node, request: &FetchRequest, version: i16) -> (FetchResponse, usize, bool) {
    let max_bytes = (request.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES);
    let topic_key = |t: &FetchTopic| {
        if version >= 13 {
            t.topic_id.to_string()
        } else {
            t.topic.0.to_string()
        }
    };
    let mut last: HashMap<(String, i32), &FetchPartition> = HashMap::new();
    for t in &request.topics {
        for p in &t.partitions {
            last.insert((topic_key(t), p.partition), p);
        }
    }
    let mut served: HashSet<(String, i32)> = HashSet::new();
    let mut total = 0usize;
    let mut failed = false;
    let topics = request
        .topics
        .iter()
        .filter_map(|requested| {
            let topic = if version >= 13 {
                node.store.topic_by_id(requested.topic_id)
            } else {
                node.store.topic(&requested.topic)
            };
            let key = topic_key(requested);
            let partitions: Vec<PartitionData> = requested
                .partitions
                .iter()
                .filter(|p| served.insert((key.clone(), p.partition)))
                .map(|first| {
                    let p = last.get(&(key.clone(), first.partition)).copied().unwrap_or(first);
                    let data = PartitionData::default().with_partition_index(p.partition);
                    let partition = match &topic {
                        Some(topic) => topic.partition(p.partition),
                        None => None,
                    };
                    let Some(partition) = partition else {
                        failed = true;
                        let error = if version >= 13 && topic.is_none() {
                            ResponseError::UnknownTopicId
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        return data
                            .with_error_code(error.code())
                            .with_high_watermark(-1)
                            .with_records(Some(Default::default()));
                    };
                    let limit = (p.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
                    if node.store.offline().is_some() {
                        failed = true;
                        return data
                            .with_error_code(ResponseError::KafkaStorageError.code())
                            .with_high_watermark(-1)
                            .with_records(Some(Default::default()));
                    }
                    let mut log = lock(&partition);
                    let read_committed = request.isolation_level == READ_COMMITTED;
                    match log.read(p.fetch_offset, limit, total == 0, read_committed) {
                        Ok(read) => {
                            total += read.records.len();
                            let data = data
                                .with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.last_stable_offset)
                                .with_log_start_offset(read.log_start)
                                .with_records(Some(read.records));
                            if read_committed {
                                data.with_aborted_transactions(Some(
                                    read.aborted
                                        .iter()
                                        .map(|a| {
                                            AbortedTransaction::default()
                                                .with_producer_id(ProducerId(a.producer_id))
                                                .with_first_offset(a.first_offset)
                                        })
                                        .collect(),
                                ))
                            } else {
                                data
                            }
                        }
                        Err(error) => {
                            failed = true;
                            data.with_error_code(error.code())
                                .with_high_watermark(log.end_offset())
                                .with_last_stable_offset(log.last_stable_offset())
                                .with_log_start_offset(log.log_start())
                                .with_records(Some(Default::default()))
                        }
                    }
                })
                .collect();
            if partitions.is_empty() && !requested.partitions.is_empty() {
                // Every partition of this entry was served under an earlier one.
                return None;
            }
            let response = FetchableTopicResponse::default().with_partitions(partitions);
            Some(if version >= 13 {
                response.with_topic_id(requested.topic_id)
            } else {
                response.with_topic(TopicName(requested.topic.0.clone()))
            })
        })
        .collect();
    (FetchResponse::default().with_responses(topics), total, failed)
}
