//! Produce and InitProducerId. A partition's data must be exactly one v2 record batch (Kafka's rule for
//! produce v3+); it is checked (length, CRC-32C), sequence-checked for idempotent producers, checked against
//! its transaction for transactional producers, given its offsets and stored as received. acks=-1 answers after an fsync with a data dir and `sync_acks_all`; acks=0 answers nothing.

use super::text;
use crate::broker::Node;
use crate::broker::log::batch::BatchHeader;
use crate::broker::log::partition::{AppendError, Appended, PartitionLog};
use crate::broker::log::{Topic, lock};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use std::sync::{Arc, Mutex};

pub async fn produce(node: &Node, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut appended_any = false;
    let mut touched = Vec::new();
    let mut responses: Vec<TopicProduceResponse> = request
        .topic_data
        .into_iter()
        .map(|topic_data| {
            let topic = if version >= 13 {
                node.store.topic_by_id(topic_data.topic_id)
            } else {
                node.store.topic(&topic_data.name)
            };
            let unknown = if version >= 13 {
                ResponseError::UnknownTopicId
            } else {
                ResponseError::UnknownTopicOrPartition
            };
            let partitions = topic_data
                .partition_data
                .into_iter()
                .map(|data| {
                    let index = data.index;
                    let outcome = if !matches!(acks, -1..=1) {
                        Err((ResponseError::InvalidRequiredAcks, None))
                    } else {
                        match &topic {
                            None => Err((unknown, None)),
                            Some(topic) => match topic.partition(index) {
                                None => Err((ResponseError::UnknownTopicOrPartition, None)),
                                Some(partition) => {
                                    append(node, topic, &partition, data, max_message_bytes(node, topic)).map(
                                        |(offset, new)| {
                                            appended_any |= new;
                                            let log_start = lock(&partition).log_start();
                                            touched.push(partition);
                                            (offset, log_start)
                                        },
                                    )
                                }
                            },
                        }
                    };
                    let response = PartitionProduceResponse::default().with_index(index);
                    match outcome {
                        Ok((base_offset, log_start)) => response
                            .with_base_offset(base_offset)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(log_start),
                        Err((error, message)) => response
                            .with_error_code(error.code())
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                            .with_error_message(message.filter(|_| version >= 8).map(text)),
                    }
                })
                .collect();
            let response = TopicProduceResponse::default().with_partition_responses(partitions);
            if version >= 13 {
                response.with_topic_id(topic_data.topic_id)
            } else {
                response.with_name(topic_data.name)
            }
        })
        .collect();
    if appended_any {
        node.store.notify_appended();
    }
    // Also for duplicates: the first copy's fsync (another request's) may still be running.
    if acks == -1
        && node.config.sync_acks_all
        && node.config.data_dir.is_some()
        && !touched.is_empty()
        && !sync_partitions(node, &touched).await
    {
        // Written but not known to be durable: the producer must not count on it (it retries).
        for partition in responses.iter_mut().flat_map(|t| t.partition_responses.iter_mut()) {
            if partition.error_code == 0 {
                partition.error_code = ResponseError::KafkaStorageError.code();
                partition.base_offset = -1;
            }
        }
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// fsyncs the partitions an acks=-1 produce wrote to, off the async threads, before it is answered.
/// Returns whether every fsync succeeded (a failure takes the log directory offline).
async fn sync_partitions(node: &Node, partitions: &[Arc<Mutex<PartitionLog>>]) -> bool {
    let mut files = Vec::new();
    for partition in partitions {
        match lock(partition).sync_handles() {
            Ok(handles) => files.extend(handles),
            Err(e) => {
                tracing::error!(error = %e, "cannot sync a partition");
                return false;
            }
        }
    }
    node.store.sync(files).await
}

type Refusal = (ResponseError, Option<String>);

/// The topic's `max.message.bytes` if it set one, else the broker's `message.max.bytes`.
fn max_message_bytes(node: &Node, topic: &Topic) -> usize {
    topic
        .configs
        .get("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(node.config.max_message_bytes)
}

/// Appends one partition's batch: its base offset, and whether it is new (not a producer's retry).
fn append(
    node: &Node,
    topic: &Topic,
    partition: &Arc<Mutex<PartitionLog>>,
    data: PartitionProduceData,
    max_bytes: usize,
) -> Result<(i64, bool), Refusal> {
    if let Some(reason) = node.store.offline() {
        return Err((ResponseError::KafkaStorageError, Some(reason.to_owned())));
    }
    let records: Bytes = data.records.unwrap_or_default();
    if records.len() > max_bytes {
        return Err((
            ResponseError::MessageTooLarge,
            Some(format!(
                "The batch of {} bytes exceeds the limit of {max_bytes} bytes",
                records.len()
            )),
        ));
    }
    let header = BatchHeader::parse_checked(&records).map_err(|e| {
        let code = match e {
            crate::broker::log::batch::BatchError::Magic(_) => ResponseError::UnsupportedForMessageFormat,
            crate::broker::log::batch::BatchError::Crc { .. } => ResponseError::CorruptMessage,
            _ => ResponseError::InvalidRecord,
        };
        (code, Some(e.to_string()))
    })?;
    if header.size != records.len() {
        return Err((
            ResponseError::InvalidRecord,
            Some("Produce requests with version 3 or later must contain exactly one record batch".into()),
        ));
    }
    // Kafka's LogValidator: the offsets a batch takes are its record count.
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count) {
        return Err((
            ResponseError::InvalidRecord,
            Some(format!(
                "Inconsistent batch offset range [{}, {}] and count of records {}",
                header.base_offset,
                header.base_offset.saturating_add(i64::from(header.last_offset_delta)),
                header.records_count
            )),
        ));
    }
    if header.is_control() {
        return Err((
            ResponseError::InvalidRecord,
            Some("Clients may not write control batches".into()),
        ));
    }
    if header.producer_id >= 0 && !node.store.producer_id_handed_out(header.producer_id) {
        return Err((
            ResponseError::UnknownProducerId,
            Some(format!(
                "Producer id {} was not handed out by this broker (InitProducerId)",
                header.producer_id
            )),
        ));
    }
    let index = data.index;
    let mut log = lock(partition);
    if header.is_transactional() {
        // Checked with the partition locked: no marker can end the transaction between the check and the append.
        node.transactions
            .verify_produce(header.producer_id, header.producer_epoch, &topic.name, index)
            .map_err(|error| (error, None))?;
    }
    match log.append(&header, &records) {
        Ok(Appended::New(offset)) => Ok((offset, true)),
        Ok(Appended::Duplicate(offset)) => Ok((offset, false)),
        Err(AppendError::Refused(error)) => Err((error, None)),
        Err(AppendError::Io(e)) => {
            tracing::error!(error = %e, "cannot write to the log");
            Err((ResponseError::KafkaStorageError, Some(e.to_string())))
        }
    }
}

/// Producer ids: for a transactional id, from the transaction coordinator (epoch bump and fencing); for an
/// idempotent producer, a new one.
pub async fn init_producer_id(node: &Node, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    if let Some(transactional_id) = &request.transactional_id {
        let outcome = node
            .transactions
            .init_producer_id(
                transactional_id,
                request.transaction_timeout_ms,
                request.producer_id.0,
                request.producer_epoch,
            )
            .await;
        return match outcome {
            Ok((id, epoch)) => response.with_producer_id(ProducerId(id)).with_producer_epoch(epoch),
            Err(error) => response
                .with_error_code(error.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
    }
    // As Apache Kafka answers a request without a transactional id: always a new id at epoch 0, whatever id and
    // epoch it names (KIP-360's bump applies to transactional ids), so no client can bump, and so fence,
    // another producer by naming its id. An idempotent producer bumps its own epoch in its batches.
    match node.store.allocate_producer_id() {
        Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            response
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
