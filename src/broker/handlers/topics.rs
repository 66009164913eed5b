//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions. One broker, so the only valid
//! replication factor is 1 (or -1, "the default").

use super::text;
use crate::broker::Node;
use crate::broker::log::TopicError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, TopicName,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Kafka's ConfigSource values.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

pub fn create_topics(node: &Node, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| create_one(node, topic, request.validate_only, version))
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn create_one(node: &Node, topic: CreatableTopic, validate_only: bool, version: i16) -> CreatableTopicResult {
    let result = CreatableTopicResult::default().with_name(topic.name.clone());
    let failed = |e: TopicError| {
        result
            .clone()
            .with_error_code(e.code.code())
            .with_error_message(Some(text(e.message)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    };
    let partitions = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return failed(TopicError {
                code: ResponseError::InvalidRequest,
                message: "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            });
        }
        if let Some(bad) = topic
            .assignments
            .iter()
            .find(|a| a.broker_ids.iter().any(|b| b.0 != node.config.node_id) || a.broker_ids.len() != 1)
        {
            return failed(TopicError {
                code: ResponseError::InvalidReplicaAssignment,
                message: format!(
                    "Partition {} can only be assigned to broker {}",
                    bad.partition_index, node.config.node_id
                ),
            });
        }
        topic.assignments.len() as i32
    } else if topic.num_partitions == -1 {
        node.config.default_partitions
    } else {
        topic.num_partitions
    };
    if topic.replication_factor > 1 || topic.replication_factor == 0 || topic.replication_factor < -1 {
        return failed(TopicError {
            code: ResponseError::InvalidReplicationFactor,
            message: format!(
                "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.",
                topic.replication_factor, topic.replication_factor
            ),
        });
    }
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        match &config.value {
            Some(value) => {
                configs.insert(config.name.to_string(), value.to_string());
            }
            None => {
                return failed(TopicError {
                    code: ResponseError::InvalidConfig,
                    message: format!("Null value not supported for topic configs: {}", config.name.as_str()),
                });
            }
        }
    }
    match node.store.create_topic(&topic.name, partitions, configs, validate_only) {
        Err(e) => failed(e),
        Ok(created) => {
            let result = result.with_num_partitions(partitions).with_replication_factor(1);
            let result = if version >= 7 {
                result.with_topic_id(created.id)
            } else {
                result
            };
            if version >= 5 {
                result.with_configs(Some(
                    super::configs::topic_configs(node, &created.configs)
                        .into_iter()
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(c.name)
                                .with_value(c.value)
                                .with_read_only(c.read_only)
                                .with_config_source(c.config_source)
                                .with_is_sensitive(false)
                        })
                        .collect(),
                ))
            } else {
                result
            }
        }
    }
}

pub async fn delete_topics(node: &Node, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        request.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let result = delete_one(node, name, id, version);
        if result.error_code == 0
            && let Some(name) = &result.name
        {
            // Kafka's coordinator deletes the topic's committed offsets in every group with it, so a topic
            // re-created with the same name does not inherit them. The topic is gone either way: a failed write
            // is logged, and the offsets are deleted again at the next start (no topic, no offsets).
            if let Err(error) = node.coordinator.delete_topic_offsets(name.0.as_str()).await {
                tracing::error!(topic = name.0.as_str(), %error, "the deletion of a deleted topic's offsets was not written");
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

fn delete_one(node: &Node, name: Option<TopicName>, id: Uuid, version: i16) -> DeletableTopicResult {
    let name = match name {
        Some(name) => Some(name.to_string()),
        None => node.store.topic_by_id(id).map(|t| t.name.clone()),
    };
    let result = DeletableTopicResult::default().with_topic_id(id);
    let Some(name) = name else {
        return result
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_error_message((version >= 5).then(|| text("This server does not host this topic ID.")));
    };
    let result = result.with_name(Some(TopicName(text(name.clone()))));
    match node.store.delete_topic(&name) {
        Ok(deleted) => {
            if version >= 6 {
                result.with_topic_id(deleted.id)
            } else {
                result
            }
        }
        Err(e) => result
            .with_error_code(e.code.code())
            .with_error_message((version >= 5).then(|| text(e.message))),
    }
}

pub fn create_partitions(node: &Node, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            match node
                .store
                .create_partitions(&topic.name, topic.count, request.validate_only)
            {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(text(e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
