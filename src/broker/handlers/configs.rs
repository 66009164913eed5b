//! DescribeConfigs: a topic's configs (Kafka's defaults, overridden by what CreateTopics set), the broker's, and a
//! group's (KIP-848 session timeout and heartbeat interval), enough for `kafka-topics --describe` and
//! `kafka-configs --describe`. IncrementalAlterConfigs: group configs only (`kafka-configs --entity-type groups
//! --alter`); topic and broker configs cannot be altered here (INVALID_REQUEST, saying so).

use super::text;
use super::topics::{SOURCE_DEFAULT, SOURCE_TOPIC};
use crate::broker::Node;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;
/// Kafka's ConfigSource values for defaults and group configs.
const SOURCE_DEFAULT_CONFIG: i8 = 5;
const SOURCE_GROUP_CONFIG: i8 = 8;
/// Kafka's ConfigSource for settings from the broker's own configuration.
const SOURCE_STATIC_BROKER: i8 = 4;

/// Kafka's ConfigType values.
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const SHORT: i8 = 4;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

pub struct ConfigEntry {
    pub name: StrBytes,
    pub value: Option<StrBytes>,
    pub read_only: bool,
    pub config_source: i8,
    pub config_type: i8,
}

/// Topic configs with Kafka's defaults for a single-node cluster.
const TOPIC_DEFAULTS: &[(&str, &str, i8)] = &[
    ("cleanup.policy", "delete", LIST),
    ("compression.type", "producer", STRING),
    ("delete.retention.ms", "86400000", LONG),
    ("file.delete.delay.ms", "60000", LONG),
    ("flush.messages", "9223372036854775807", LONG),
    ("flush.ms", "9223372036854775807", LONG),
    ("index.interval.bytes", "4096", INT),
    ("max.compaction.lag.ms", "9223372036854775807", LONG),
    ("max.message.bytes", "1048588", INT),
    ("message.timestamp.type", "CreateTime", STRING),
    ("min.cleanable.dirty.ratio", "0.5", STRING),
    ("min.compaction.lag.ms", "0", LONG),
    ("min.insync.replicas", "1", INT),
    ("retention.bytes", "-1", LONG),
    ("retention.ms", "604800000", LONG),
    ("segment.bytes", "1073741824", INT),
    ("segment.ms", "604800000", LONG),
    ("unclean.leader.election.enable", "false", BOOLEAN),
];

pub fn topic_configs(node: &Node, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    let mut values: BTreeMap<String, (String, i8, i8)> = TOPIC_DEFAULTS
        .iter()
        .map(|(name, value, kind)| ((*name).to_owned(), ((*value).to_owned(), SOURCE_DEFAULT, *kind)))
        .collect();
    // The broker's own limits and retention are the defaults it applies.
    let broker_defaults = [
        ("max.message.bytes", Some(node.config.max_message_bytes.to_string())),
        ("retention.bytes", node.config.retention_bytes.map(|b| b.to_string())),
        ("retention.ms", node.config.retention.map(|d| d.as_millis().to_string())),
        ("segment.bytes", Some(node.config.segment_bytes.to_string())),
    ];
    for (name, value) in broker_defaults {
        if let (Some(value), Some(entry)) = (value, values.get_mut(name)) {
            entry.0 = value;
        }
    }
    for (name, value) in overrides {
        let kind = values.get(name).map_or(STRING, |e| e.2);
        values.insert(name.clone(), (value.clone(), SOURCE_TOPIC, kind));
    }
    values
        .into_iter()
        .map(|(name, (value, source, kind))| ConfigEntry {
            name: text(name),
            value: Some(text(value)),
            read_only: false,
            config_source: source,
            config_type: kind,
        })
        .collect()
}

fn broker_configs(node: &Node) -> Vec<ConfigEntry> {
    let c = &node.config;
    let entries: Vec<(&str, String, i8)> = vec![
        ("node.id", c.node_id.to_string(), INT),
        ("broker.id", c.node_id.to_string(), INT),
        ("process.roles", "broker,controller".to_owned(), LIST),
        (
            "advertised.listeners",
            node.listeners
                .iter()
                .map(|l| format!("{}://{}:{}", l.protocol(), l.endpoint.host, l.endpoint.port))
                .collect::<Vec<_>>()
                .join(","),
            STRING,
        ),
        (
            "listeners",
            node.listeners
                .iter()
                .map(|l| format!("{}://{}", l.protocol(), l.bound))
                .collect::<Vec<_>>()
                .join(","),
            STRING,
        ),
        ("num.partitions", c.default_partitions.to_string(), INT),
        ("auto.create.topics.enable", c.auto_create_topics.to_string(), BOOLEAN),
        ("default.replication.factor", "1".to_owned(), INT),
        ("offsets.topic.replication.factor", "1".to_owned(), INT),
        ("message.max.bytes", c.max_message_bytes.to_string(), INT),
        ("socket.request.max.bytes", c.max_request_bytes.to_string(), INT),
        ("connections.max.idle.ms", c.idle_timeout.as_millis().to_string(), LONG),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay.as_millis().to_string(),
            INT,
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout.as_millis().to_string(),
            INT,
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout.as_millis().to_string(),
            INT,
        ),
        (
            "group.consumer.session.timeout.ms",
            c.group_consumer_session_timeout.as_millis().to_string(),
            INT,
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            c.group_consumer_heartbeat_interval.as_millis().to_string(),
            INT,
        ),
        (
            "transaction.max.timeout.ms",
            c.transaction_max_timeout.as_millis().to_string(),
            INT,
        ),
        ("transaction.state.log.replication.factor", "1".to_owned(), SHORT),
        ("transaction.state.log.min.isr", "1".to_owned(), INT),
        ("log.segment.bytes", c.segment_bytes.to_string(), INT),
        ("log.flush.interval.ms", c.flush_interval.as_millis().to_string(), LONG),
        (
            "log.retention.bytes",
            c.retention_bytes.map_or("-1".to_owned(), |b| b.to_string()),
            LONG,
        ),
        (
            "log.retention.ms",
            c.retention.map_or("-1".to_owned(), |d| d.as_millis().to_string()),
            LONG,
        ),
        (
            "log.dirs",
            c.data_dir
                .as_ref()
                .map_or("(memory)".to_owned(), |d| d.display().to_string()),
            STRING,
        ),
    ];
    entries
        .into_iter()
        .map(|(name, value, kind)| ConfigEntry {
            name: text(name),
            value: Some(text(value)),
            read_only: true,
            config_source: SOURCE_STATIC_BROKER,
            config_type: kind,
        })
        .collect()
}

/// A group's configs: its overrides, else the broker's defaults.
fn group_configs(node: &Node, group: &str) -> Vec<ConfigEntry> {
    use crate::broker::coordinator::group_configs::{HEARTBEAT_INTERVAL, SESSION_TIMEOUT};
    let overrides = node.coordinator.group_configs.of(group);
    let defaults = [
        (SESSION_TIMEOUT, node.config.group_consumer_session_timeout),
        (HEARTBEAT_INTERVAL, node.config.group_consumer_heartbeat_interval),
    ];
    defaults
        .into_iter()
        .map(|(name, default)| {
            let (value, source) = match overrides.get(name) {
                Some(value) => (value.clone(), SOURCE_GROUP_CONFIG),
                None => (default.as_millis().to_string(), SOURCE_DEFAULT_CONFIG),
            };
            ConfigEntry {
                name: text(name),
                value: Some(text(value)),
                read_only: false,
                config_source: source,
                config_type: INT,
            }
        })
        .collect()
}

pub fn incremental_alter_configs(
    node: &Node,
    allow: Option<&crate::broker::auth::Allow>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let outcome = match resource.resource_type {
                RESOURCE_GROUP if allow.is_some_and(|a| !a.group(&name)) => Err((
                    ResponseError::GroupAuthorizationFailed,
                    "Group authorization failed.".to_owned(),
                )),
                RESOURCE_GROUP => {
                    let operations: Vec<(String, i8, Option<String>)> = resource
                        .configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.config_operation, c.value.as_ref().map(|v| v.to_string())))
                        .collect();
                    node.coordinator.group_configs.alter(
                        &name,
                        &operations,
                        crate::broker::coordinator::ConsumerTiming {
                            session_timeout: node.config.group_consumer_session_timeout,
                            heartbeat_interval: node.config.group_consumer_heartbeat_interval,
                        },
                        request.validate_only,
                    )
                }
                other => Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "The embedded broker alters group configs only (resource type {RESOURCE_GROUP}), not resource type {other}"
                    ),
                )),
            };
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match outcome {
                Ok(()) => response,
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(text(message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub fn describe_configs(node: &Node, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match node.store.topic(&resource.resource_name) {
                    Some(topic) => Ok(topic_configs(node, &topic.configs)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic {} does not exist", resource.resource_name.as_str()),
                    )),
                },
                RESOURCE_GROUP => Ok(group_configs(node, &resource.resource_name)),
                RESOURCE_BROKER => {
                    let name = resource.resource_name.as_str();
                    if name.is_empty() || name == node.config.node_id.to_string() {
                        Ok(broker_configs(node))
                    } else {
                        Err((ResponseError::InvalidRequest, format!("Unexpected broker id {name}")))
                    }
                }
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match entries {
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(text(message))),
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|e| {
                            resource
                                .configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name.as_str()))
                        })
                        .map(|e| {
                            let entry = DescribeConfigsResourceResult::default()
                                .with_name(e.name)
                                .with_value(e.value)
                                .with_read_only(e.read_only)
                                .with_config_source(e.config_source)
                                .with_is_sensitive(false);
                            if version >= 3 {
                                entry.with_config_type(e.config_type)
                            } else {
                                entry
                            }
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
