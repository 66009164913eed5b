//! The transaction APIs on the wire: requests checked as Kafka's `KafkaApis` checks them (unknown topics and
//! partitions, what the principal's `allow` covers), handed to the coordinator, answered in each version's shape.

use super::coordinator::TransactionCoordinator;
use super::state::{PendingOffset, TxnMetadata, TxnState};
use crate::broker::Node;
use crate::broker::auth::Allow;
use crate::broker::coordinator::MAX_METADATA_BYTES;
use crate::broker::handlers::text;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    describe_transactions_response, list_transactions_response,
};
use std::collections::BTreeMap;

/// The transaction APIs and the versions answered. Transactions v1 only: the broker advertises no
/// `transaction.version` feature, so Kafka 4 clients keep to these versions (AddPartitionsToTxn v4+ is between
/// brokers; EndTxn v5 and TxnOffsetCommit v5 belong to transactions v2, KIP-890).
pub const APIS: &[(kafka_protocol::messages::ApiKey, i16, i16)] = {
    use kafka_protocol::messages::ApiKey;
    &[
        (ApiKey::AddPartitionsToTxn, 0, 3),
        (ApiKey::AddOffsetsToTxn, 0, 4),
        (ApiKey::EndTxn, 0, 4),
        (ApiKey::TxnOffsetCommit, 0, 4),
        (ApiKey::DescribeTransactions, 0, 0),
        (ApiKey::ListTransactions, 0, 1),
    ]
};

fn code(result: Result<(), ResponseError>) -> i16 {
    result.err().map_or(0, |e| e.code())
}

pub async fn add_partitions_to_txn(
    node: &Node,
    allow: Option<&Allow>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut refused: BTreeMap<(String, i32), ResponseError> = BTreeMap::new();
    let mut wanted = Vec::new();
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.to_string();
        let count = node.store.topic(&name).map(|t| t.partition_count());
        for &partition in &topic.partitions {
            let key = (name.clone(), partition);
            if allow.is_some_and(|a| !a.topic(&name)) {
                refused.insert(key, ResponseError::TopicAuthorizationFailed);
            } else if count.is_none_or(|n| partition < 0 || partition >= n) {
                refused.insert(key, ResponseError::UnknownTopicOrPartition);
            } else {
                wanted.push(key);
            }
        }
    }
    let outcome = if refused.is_empty() {
        let result = node
            .transactions
            .add_partitions(
                &request.v3_and_below_transactional_id,
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &wanted,
            )
            .await;
        code(result)
    } else {
        ResponseError::OperationNotAttempted.code()
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|&partition| {
                            let error = refused
                                .get(&(topic.name.0.to_string(), partition))
                                .map_or(outcome, |e| e.code());
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(partition)
                                .with_partition_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub async fn add_offsets_to_txn(
    node: &Node,
    allow: Option<&Allow>,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let result = if allow.is_some_and(|a| !a.group(&request.group_id)) {
        Err(ResponseError::GroupAuthorizationFailed)
    } else {
        node.transactions
            .add_offsets(
                &request.transactional_id,
                request.producer_id.0,
                request.producer_epoch,
                &request.group_id,
            )
            .await
    };
    AddOffsetsToTxnResponse::default().with_error_code(code(result))
}

pub async fn end_txn(node: &Node, request: EndTxnRequest) -> EndTxnResponse {
    let result = node
        .transactions
        .end_txn(
            &request.transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
        .await;
    EndTxnResponse::default()
        .with_error_code(code(result))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

pub async fn txn_offset_commit(
    node: &Node,
    allow: Option<&Allow>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group = request.group_id.to_string();
    let whole: Result<(), ResponseError> = if allow.is_some_and(|a| !a.group(&group)) {
        Err(ResponseError::GroupAuthorizationFailed)
    } else {
        node.coordinator.validate_txn_offset_commit(
            &group,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
        )
    };
    let mut refused: BTreeMap<(String, i32), ResponseError> = BTreeMap::new();
    let mut offsets = Vec::new();
    if whole.is_ok() {
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let count = node.store.topic(&name).map(|t| t.partition_count());
            for p in &topic.partitions {
                let key = (name.clone(), p.partition_index);
                let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
                if allow.is_some_and(|a| !a.topic(&name)) {
                    refused.insert(key, ResponseError::TopicAuthorizationFailed);
                } else if count.is_none_or(|n| p.partition_index < 0 || p.partition_index >= n) {
                    refused.insert(key, ResponseError::UnknownTopicOrPartition);
                } else if metadata.as_ref().is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
                    refused.insert(key, ResponseError::OffsetMetadataTooLarge);
                } else {
                    offsets.push(PendingOffset {
                        group: group.clone(),
                        topic: name.clone(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if version >= 2 { p.committed_leader_epoch } else { -1 },
                        metadata,
                    });
                }
            }
        }
    }
    let rest = match whole {
        Err(e) => e.code(),
        Ok(()) if offsets.is_empty() => 0,
        Ok(()) => code(
            node.transactions
                .txn_offset_commit(
                    &request.transactional_id,
                    request.producer_id.0,
                    request.producer_epoch,
                    &group,
                    offsets,
                )
                .await,
        ),
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let error = refused
                                .get(&(topic.name.0.to_string(), p.partition_index))
                                .map_or(rest, |e| e.code());
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub fn describe_transactions(
    coordinator: &TransactionCoordinator,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = describe_transactions_response::TransactionState::default().with_transactional_id(id.clone());
            match coordinator.describe(&id) {
                None => state
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_transaction_state(text(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
                Some(m) => described(state, &m),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

fn described(
    state: describe_transactions_response::TransactionState,
    m: &TxnMetadata,
) -> describe_transactions_response::TransactionState {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &m.partitions {
        topics.entry(topic.as_str()).or_default().push(*partition);
    }
    state
        .with_transaction_state(text(m.state.name()))
        .with_transaction_timeout_ms(m.timeout_ms)
        .with_transaction_start_time_ms(m.start_ms)
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    describe_transactions_response::TopicData::default()
                        .with_topic(text(topic).into())
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

pub fn list_transactions(
    coordinator: &TransactionCoordinator,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let mut unknown = Vec::new();
    let mut states = Vec::new();
    for filter in &request.state_filters {
        match TxnState::from_name(filter) {
            Some(state) => states.push(state),
            None => unknown.push(filter.clone()),
        }
    }
    let now = crate::broker::log::partition::now_ms();
    let listed = coordinator
        .all()
        .into_iter()
        .filter(|m| states.is_empty() || states.contains(&m.state))
        .filter(|m| {
            request.producer_id_filters.is_empty() || request.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        // v1+: only transactions open for longer than the filter (-1: all).
        .filter(|m| {
            version < 1
                || request.duration_filter < 0
                || (m.state == TxnState::Ongoing && now.saturating_sub(m.start_ms) > request.duration_filter)
        })
        .map(|m| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(text(m.transactional_id.clone())))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(text(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
