//! Cluster metadata: brokers, topics, partitions and their leaders. Cached by the client and refreshed when
//! an error says it is stale (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR, a broken connection, …).

use super::client::KafkaClient;
use super::error::{KafkaError, check};
use crate::wire::Api;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A topic and partition. The topic name is shared (`Arc<str>`): the operator and the lag scan hold one
/// `TopicPartition` per group-partition, often millions, and cloning one must not copy the name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl IntoTopicName, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into_topic_name(),
            partition,
        }
    }
}

/// The topic names of one response, each allocated once: a response names a topic once per group (OffsetFetch)
/// or once in all (ListOffsets), and its partitions share that one name.
#[derive(Default)]
pub struct TopicNames(std::collections::HashSet<Arc<str>>);

impl TopicNames {
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let name: Arc<str> = Arc::from(name);
        self.0.insert(name.clone());
        name
    }
}

/// What a topic name is taken from: a shared name is shared again, anything else is copied once.
pub trait IntoTopicName {
    fn into_topic_name(self) -> Arc<str>;
}

impl IntoTopicName for Arc<str> {
    fn into_topic_name(self) -> Arc<str> {
        self
    }
}

impl IntoTopicName for &Arc<str> {
    fn into_topic_name(self) -> Arc<str> {
        self.clone()
    }
}

impl IntoTopicName for String {
    fn into_topic_name(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl IntoTopicName for &String {
    fn into_topic_name(self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

impl IntoTopicName for &str {
    fn into_topic_name(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// -1 while the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: [u8; 16],
    pub internal: bool,
    pub partitions: BTreeMap<i32, PartitionInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterMetadata {
    /// The leader of a partition, if the partition exists and has one.
    pub fn leader(&self, tp: &TopicPartition) -> Option<i32> {
        self.topics
            .get(&*tp.topic)
            .and_then(|t| t.partitions.get(&tp.partition))
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
    }

    /// All partitions of a topic, or `UnknownTopic`.
    pub fn partitions_of(&self, topic: &str) -> Result<Vec<TopicPartition>, KafkaError> {
        let info = self
            .topics
            .get(topic)
            .ok_or_else(|| KafkaError::UnknownTopic(topic.to_owned()))?;
        let name: Arc<str> = Arc::from(topic);
        Ok(info.partitions.keys().map(|p| TopicPartition::new(&name, *p)).collect())
    }
}

impl KafkaClient {
    /// Cached metadata of every topic, fetched when there is none.
    pub async fn metadata(&self) -> Result<Arc<ClusterMetadata>, KafkaError> {
        if let Some(m) = self.cached_metadata() {
            return Ok(m);
        }
        self.refresh_metadata().await
    }

    /// Fetches metadata of every topic from any broker and caches it.
    pub async fn refresh_metadata(&self) -> Result<Arc<ClusterMetadata>, KafkaError> {
        let metadata = self
            .with_retries("Metadata", || async {
                let conn = self.any_broker().await?;
                fetch_metadata(&conn, None).await
            })
            .await?;
        let metadata = Arc::new(metadata);
        *self.inner.metadata.lock().unwrap_or_else(|p| p.into_inner()) = Some(metadata.clone());
        Ok(metadata)
    }

    /// Metadata that is sure to include `topics` (refreshed once if one is missing or has a leaderless
    /// partition); `UnknownTopic` for a topic the cluster does not have.
    pub async fn metadata_with(&self, topics: &[String]) -> Result<Arc<ClusterMetadata>, KafkaError> {
        let complete = |m: &ClusterMetadata| {
            topics.iter().all(|t| {
                m.topics
                    .get(t)
                    .is_some_and(|info| info.partitions.values().all(|p| p.leader >= 0))
            })
        };
        let cached = self.metadata().await?;
        if complete(&cached) {
            return Ok(cached);
        }
        let fresh = self.refresh_metadata().await?;
        if let Some(missing) = topics.iter().find(|t| !fresh.topics.contains_key(*t)) {
            return Err(KafkaError::UnknownTopic(missing.clone()));
        }
        Ok(fresh)
    }
}

/// One Metadata request on `conn`: all topics (`None`) or the named ones.
pub async fn fetch_metadata(
    conn: &super::connection::Connection,
    topics: Option<&[String]>,
) -> Result<ClusterMetadata, KafkaError> {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(n.clone())))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    let (response, _) = conn.send(&request).await?;
    check(response.error_code, conn.addr(), Api(MetadataRequest::KEY), String::new)?;
    let mut metadata = ClusterMetadata {
        cluster_id: response.cluster_id.map(|c| c.to_string()),
        controller_id: *response.controller_id,
        ..Default::default()
    };
    for b in response.brokers {
        metadata.brokers.insert(
            *b.node_id,
            BrokerInfo {
                node_id: *b.node_id,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
            },
        );
    }
    for t in response.topics {
        let Some(name) = t.name.map(|n| n.0.to_string()) else {
            continue;
        };
        // A topic being created or deleted answers with an error; it is left out until it settles.
        if t.error_code != 0 {
            continue;
        }
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| {
                (
                    p.partition_index,
                    PartitionInfo {
                        leader: if p.error_code == 0 || *p.leader_id >= 0 {
                            *p.leader_id
                        } else {
                            -1
                        },
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|r| **r).collect(),
                        isr: p.isr_nodes.iter().map(|r| **r).collect(),
                    },
                )
            })
            .collect();
        metadata.topics.insert(
            name.clone(),
            TopicInfo {
                name,
                id: *t.topic_id.as_bytes(),
                internal: t.is_internal,
                partitions,
            },
        );
    }
    Ok(metadata)
}
