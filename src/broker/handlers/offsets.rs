//! ListOffsets and DeleteRecords. ListOffsets: the log start (-2, and -4 "earliest local", the same here), the end (-1), the record
//! with the largest timestamp (-3), or the first record at or after a timestamp. With isolation level
//! READ_COMMITTED the end is the last stable offset, and a record at or after it is not found (as in Kafka).

use crate::broker::Node;
use crate::broker::log::lock;
use crate::broker::log::partition::AppendError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;
const READ_COMMITTED: i8 = 1;

pub fn list_offsets(node: &Node, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|requested| {
            let topic = node.store.topic(&requested.name);
            let partitions = requested
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if node.store.offline().is_some() {
                        return response.with_error_code(ResponseError::KafkaStorageError.code());
                    }
                    let log = lock(&partition);
                    let end = if request.isolation_level == READ_COMMITTED {
                        log.last_stable_offset()
                    } else {
                        log.end_offset()
                    };
                    let found = match p.timestamp {
                        LATEST => Ok(Some((end, -1))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start(), -1))),
                        // No tiered storage: nothing is pending upload.
                        EARLIEST_PENDING_UPLOAD => Ok(None),
                        MAX_TIMESTAMP => log.max_timestamp(),
                        ts => log.offset_for_timestamp(ts),
                    };
                    // A record found by its timestamp counts only below the end this isolation level sees.
                    let by_timestamp = p.timestamp >= 0 || p.timestamp == MAX_TIMESTAMP;
                    let found = found.map(|f| f.filter(|(offset, _)| !by_timestamp || *offset < end));
                    let (offset, timestamp) = match found {
                        Ok(found) => found.unwrap_or((-1, -1)),
                        Err(error) => return response.with_error_code(error.code()),
                    };
                    let response = response.with_offset(offset).with_timestamp(timestamp);
                    if version >= 4 {
                        response.with_leader_epoch(if offset >= 0 { 0 } else { -1 })
                    } else {
                        response
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(requested.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// DeleteRecords: moves each partition's log start up to the given offset (-1: the high watermark).
pub fn delete_records(node: &Node, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|requested| {
            let topic = node.store.topic(&requested.name);
            let partitions = requested
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                        return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if node.store.offline().is_some() {
                        return result.with_error_code(ResponseError::KafkaStorageError.code());
                    }
                    let outcome = lock(&partition).delete_records(p.offset);
                    match outcome {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(AppendError::Refused(error)) => result.with_error_code(error.code()),
                        Err(AppendError::Io(e)) => {
                            tracing::error!(error = %e, "DeleteRecords could not update the log");
                            result.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(requested.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
