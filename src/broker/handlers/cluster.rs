//! The cluster as clients see it: ApiVersions, Metadata (with auto-creation), DescribeCluster and
//! FindCoordinator. One node, leader of every partition, coordinator of every group.

use super::text;
use crate::broker::apis;
use crate::broker::log::Topic;
use crate::broker::log::partition::LEADER_EPOCH;
use crate::broker::{Endpoint, Node};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// "Authorized operations not requested / not computed" in Kafka's responses.
const OPERATIONS_UNSET: i32 = i32::MIN;

/// Every API and version range the broker answers (the coordinator's included), with `error_code`.
pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            apis::supported()
                .into_iter()
                .map(|(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
        .with_finalized_features_epoch(-1)
}

pub fn metadata(node: &Node, endpoint: &Endpoint, request: MetadataRequest, version: i16) -> MetadataResponse {
    let store = &node.store;
    let wanted = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None, // null (v1+) or empty (v0): every topic
    };
    let topics = match wanted {
        None => store.topics().iter().map(|t| topic_metadata(node, t)).collect(),
        Some(list) => list
            .into_iter()
            .map(|requested| match requested.name {
                Some(name) => match store.topic(&name) {
                    Some(topic) => topic_metadata(node, &topic),
                    None if request.allow_auto_topic_creation && node.config.auto_create_topics => {
                        auto_create(node, &name)
                    }
                    None => topic_error(Some(name), Uuid::nil(), ResponseError::UnknownTopicOrPartition),
                },
                None => match store.topic_by_id(requested.topic_id) {
                    Some(topic) => topic_metadata(node, &topic),
                    None => topic_error(None, requested.topic_id, ResponseError::UnknownTopicId),
                },
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node.config.node_id))
                .with_host(text(endpoint.host.clone()))
                .with_port(endpoint.port),
        ])
        .with_cluster_id(Some(text(store.cluster_id())))
        .with_controller_id(BrokerId(node.config.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_UNSET)
}

fn auto_create(node: &Node, name: &TopicName) -> MetadataResponseTopic {
    match node
        .store
        .create_topic(name, node.config.default_partitions, BTreeMap::new(), false)
    {
        Ok(topic) => topic_metadata(node, &topic),
        // created concurrently by another request
        Err(e) if e.code == ResponseError::TopicAlreadyExists => match node.store.topic(name) {
            Some(topic) => topic_metadata(node, &topic),
            None => topic_error(Some(name.clone()), Uuid::nil(), ResponseError::LeaderNotAvailable),
        },
        Err(e) => topic_error(Some(name.clone()), Uuid::nil(), e.code),
    }
}

fn topic_error(name: Option<TopicName>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(OPERATIONS_UNSET)
}

fn topic_metadata(node: &Node, topic: &Arc<Topic>) -> MetadataResponseTopic {
    let me = BrokerId(node.config.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_partitions(
            (0..topic.partition_count())
                .map(|index| {
                    MetadataResponsePartition::default()
                        .with_partition_index(index)
                        .with_leader_id(me)
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_replica_nodes(vec![me])
                        .with_isr_nodes(vec![me])
                })
                .collect(),
        )
        .with_topic_authorized_operations(OPERATIONS_UNSET)
}

pub fn describe_cluster(node: &Node, endpoint: &Endpoint, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(text(node.store.cluster_id()))
        .with_controller_id(BrokerId(node.config.node_id))
        .with_cluster_authorized_operations(OPERATIONS_UNSET);
    // endpoint type 1: brokers; 2: controllers, which Kafka serves only to clients of its controller listener
    if request.endpoint_type != 1 {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(text("The broker does not serve controller endpoints")));
    }
    response.with_brokers(vec![
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node.config.node_id))
            .with_host(text(endpoint.host.clone()))
            .with_port(endpoint.port),
    ])
}

/// Group keys (type 0) and transactional ids (1) are coordinated by this node; share groups (2) are not
/// supported; anything else is an invalid request.
fn coordinator_for(node: &Node, endpoint: &Endpoint, key: &str, key_type: i8) -> Coordinator {
    let coordinator = Coordinator::default().with_key(text(key));
    match key_type {
        0 | 1 => coordinator
            .with_node_id(BrokerId(node.config.node_id))
            .with_host(text(endpoint.host.clone()))
            .with_port(endpoint.port),
        2 => coordinator
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_error_message(Some(text("The embedded broker has no share group coordinator"))),
        _ => coordinator
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(text(format!("Unknown coordinator key type {key_type}")))),
    }
}

pub fn find_coordinator(
    node: &Node,
    endpoint: &Endpoint,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| coordinator_for(node, endpoint, key, request.key_type))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinator_for(node, endpoint, &request.key, request.key_type);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
