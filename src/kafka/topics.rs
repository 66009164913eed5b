//! Topic administration for tests, the CLI and the embedded broker's users: create, delete, add partitions.

use super::client::KafkaClient;
use super::error::{KafkaError, check};
use crate::wire::Api;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use std::time::Duration;

/// A topic to create.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }
}

const TOPIC_TIMEOUT_MS: i32 = 30_000;

impl KafkaClient {
    /// Creates topics; TOPIC_ALREADY_EXISTS is an error. Metadata is refreshed afterwards.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<(), KafkaError> {
        let api = Api(CreateTopicsRequest::KEY);
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(TOPIC_TIMEOUT_MS)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        self.with_retries("CreateTopics", || async {
            let conn = self.any_broker().await?;
            let (response, _) = conn.send(&request).await?;
            for t in &response.topics {
                let message = t.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                check(t.error_code, conn.addr(), api, || {
                    format!("topic {}: {message}", t.name.0)
                })?;
            }
            Ok(())
        })
        .await?;
        self.invalidate_metadata();
        Ok(())
    }

    /// Deletes topics by name.
    pub async fn delete_topics(&self, names: &[String]) -> Result<(), KafkaError> {
        let api = Api(DeleteTopicsRequest::KEY);
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(TOPIC_TIMEOUT_MS)
            .with_topic_names(
                names
                    .iter()
                    .map(|n| TopicName(StrBytes::from_string(n.clone())))
                    .collect(),
            )
            .with_topics(
                names
                    .iter()
                    .map(|n| {
                        kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect(),
            );
        self.with_retries("DeleteTopics", || async {
            let conn = self.any_broker().await?;
            let (response, _) = conn.send(&request).await?;
            for t in &response.responses {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                check(t.error_code, conn.addr(), api, || format!("topic {name}"))?;
            }
            Ok(())
        })
        .await?;
        self.invalidate_metadata();
        Ok(())
    }

    /// Grows `topic` to `total_partitions` partitions.
    pub async fn create_partitions(&self, topic: &str, total_partitions: i32) -> Result<(), KafkaError> {
        let api = Api(CreatePartitionsRequest::KEY);
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(TOPIC_TIMEOUT_MS)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_count(total_partitions)
                    // null: let the controller place the new partitions (an empty list means "none").
                    .with_assignments(None),
            ]);
        self.with_retries("CreatePartitions", || async {
            let conn = self.any_broker().await?;
            let (response, _) = conn.send(&request).await?;
            for r in &response.results {
                let message = r.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                check(r.error_code, conn.addr(), api, || format!("topic {topic}: {message}"))?;
            }
            Ok(())
        })
        .await?;
        // The controller has added the partitions; the brokers learn of them a moment later. Until then
        // metadata (and so ListOffsets or a reset over the topic) would still see the old count.
        let deadline = tokio::time::Instant::now() + self.inner.config.operation_timeout.min(Duration::from_secs(10));
        loop {
            let metadata = self.refresh_metadata().await?;
            let grown = metadata
                .topics
                .get(topic)
                .is_some_and(|t| t.partitions.len() >= total_partitions as usize);
            if grown || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
