//! The APIs the broker answers itself, one module per family: cluster (ApiVersions, Metadata,
//! DescribeCluster, FindCoordinator), topics (CreateTopics, DeleteTopics, CreatePartitions), produce
//! (Produce, InitProducerId), fetch, offsets (ListOffsets, DeleteRecords), configs (DescribeConfigs).

pub mod cluster;
mod configs;
mod fetch;
mod offsets;
mod produce;
mod topics;

use super::Node;
use super::dispatch::Request;
use super::transactions::api as txn;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

/// What a handler made of a request.
pub enum Handled {
    Response(Box<ResponseKind>),
    /// A Produce with acks=0: Kafka sends nothing back.
    NoResponse,
    /// Not an API of the broker's own (the dispatch routes those elsewhere).
    NotMine,
}

pub async fn handle(node: &Node, request: &Request<'_>, body: RequestKind) -> Handled {
    let v = request.version;
    let response = match body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(cluster::api_versions(0)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(cluster::metadata(node, request.endpoint, r, v)),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster::describe_cluster(node, request.endpoint, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(cluster::find_coordinator(node, request.endpoint, r, v))
        }
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create_topics(node, r, v)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete_topics(node, r, v).await),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(topics::create_partitions(node, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(produce::init_producer_id(node, r).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe_configs(node, r, v)),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter_configs(node, request.allow, r))
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(offsets::list_offsets(node, r, v)),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(offsets::delete_records(node, r)),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(node, r, v).await),
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(node, request.allow, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets_to_txn(node, request.allow, r).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(node, request.allow, r, v).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(node, r).await),
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe_transactions(&node.transactions, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn::list_transactions(&node.transactions, r, v))
        }
        RequestKind::Produce(r) => match produce::produce(node, r, v).await {
            Some(response) => ResponseKind::Produce(response),
            None => return Handled::NoResponse,
        },
        _ => return Handled::NotMine,
    };
    Handled::Response(Box::new(response))
}

pub(crate) fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
