//! The Kafka admin client: connections, metadata, consumer groups, offsets and lag inputs, built on the
//! `kafka-protocol` crate through `wire`. Batches like Apache Kafka's Java AdminClient: one request per
//! coordinator or partition leader, all of them in flight together.

pub mod client;
pub mod cluster_info;
pub mod config;
pub mod connection;
pub mod consumable;
pub mod error;
pub mod first_records;
pub mod groups;
pub mod lag_snapshot;
pub mod metadata;
pub mod offsets;
pub mod offsets_records;
pub mod offsets_tail;
pub mod sasl;
pub mod tls;
pub mod topics;

pub use client::KafkaClient;
pub use cluster_info::ClusterInfo;
pub use config::{ClientConfig, SaslConfig, SaslMechanism, Secret, TlsConfig};
pub use consumable::ConsumableRead;
pub use error::KafkaError;
pub use first_records::FirstRecords;
pub use groups::{
    CommittedOffset, GroupConfigChange, GroupDescription, GroupFilter, GroupListing, GroupOffsets, GroupState,
    GroupType, MemberDescription, MemberTasks, ShareGroupOffsets, SharePartitionOffset, StreamsTasks, StreamsTopology,
    Subtopology, start_offsets_as_committed,
};
pub use lag_snapshot::{GroupLag, LagSnapshot, PartitionLag};
pub use metadata::{BrokerInfo, ClusterMetadata, IntoTopicName, PartitionInfo, TopicInfo, TopicNames, TopicPartition};
pub use offsets::{FirstRecord, Isolation, LogOffset, OffsetSpec};
pub use offsets_tail::{LagScan, LagScanner, ScanPath};
pub use topics::NewTopic;
