//! Group configs (Kafka 4's config resource GROUP, what `kafka-configs --entity-type groups` shows and alters):
//! read the values set explicitly on a group with DescribeConfigs, change them with IncrementalAlterConfigs.
//!
//! Any broker serves both: a group's configs live in the cluster metadata (the broker forwards an alteration to
//! the controller), not on the group's coordinator, so requests go to any broker as the Java AdminClient sends
//! them. A value Kafka refuses (outside the broker's `group.*.min/max` bounds, an unknown key) comes back as
//! `KafkaError::GroupConfigRefused` with Kafka's own message, never retried.

use crate::kafka::client::KafkaClient;
use crate::kafka::error::{KafkaError, check, is_retriable_code};
use crate::wire::Api;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::BTreeMap;

/// Kafka's config resource type GROUP (`ConfigResource.Type.GROUP`).
pub const GROUP_RESOURCE: i8 = 32;
/// `DescribeConfigsResponse.ConfigSource.GROUP_CONFIG`: a value set on this group (the others are the
/// broker's defaults the group inherits).
const SOURCE_GROUP_CONFIG: i8 = 8;
/// IncrementalAlterConfigs operations (`AlterConfigOp.OpType`).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// One change to a group's configs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupConfigChange {
    /// Set `key` to `value` on the group.
    Set { key: String, value: String },
    /// Remove the group's own value of `key` (the broker's default applies again).
    Delete { key: String },
}

impl GroupConfigChange {
    pub fn key(&self) -> &str {
        match self {
            GroupConfigChange::Set { key, .. } | GroupConfigChange::Delete { key } => key,
        }
    }

    fn to_wire(&self) -> AlterableConfig {
        match self {
            GroupConfigChange::Set { key, value } => AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone()))),
            GroupConfigChange::Delete { key } => AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_DELETE)
                .with_value(None),
        }
    }
}

impl KafkaClient {
    /// The configs set explicitly on `group` (config source GROUP_CONFIG), by key; the broker defaults the group
    /// inherits are left out. A group without configs (or one that does not exist) has none.
    pub async fn describe_group_config(&self, group: &str) -> Result<BTreeMap<String, String>, KafkaError> {
        let api = Api(DescribeConfigsRequest::KEY);
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(GROUP_RESOURCE)
                .with_resource_name(StrBytes::from_string(group.to_owned()))
                // null: every key of the resource.
                .with_configuration_keys(None),
        ]);
        self.with_retries("DescribeConfigs", || async {
            let conn = self.any_broker().await?;
            // v1 introduced config_source (v0 has only is_default, which cannot tell a group's own value from a
            // broker-level override); Kafka 4 serves v1 and later only.
            let version = conn.version_in::<DescribeConfigsRequest>(1, i16::MAX)?;
            let response = conn.send_version(&request, version).await?;
            let result = response
                .results
                .into_iter()
                .find(|r| r.resource_type == GROUP_RESOURCE && r.resource_name.as_str() == group)
                .ok_or_else(|| KafkaError::Wire {
                    broker: conn.addr().to_owned(),
                    message: format!("DescribeConfigs answered without group {group}"),
                })?;
            let message = result.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
            check(result.error_code, conn.addr(), api, || {
                format!("group {group} config: {message}")
            })?;
            Ok(explicit_group_configs(&result))
        })
        .await
    }

    /// Applies `changes` to `group`'s configs in one IncrementalAlterConfigs. Kafka validates the group's
    /// resulting configs as a whole and applies all of them or none: a refusal is `GroupConfigRefused` with
    /// Kafka's error and message (final); retriable errors are retried until the operation deadline.
    pub async fn alter_group_config(&self, group: &str, changes: &[GroupConfigChange]) -> Result<(), KafkaError> {
        if changes.is_empty() {
            return Ok(());
        }
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(false)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(GROUP_RESOURCE)
                    .with_resource_name(StrBytes::from_string(group.to_owned()))
                    .with_configs(changes.iter().map(GroupConfigChange::to_wire).collect()),
            ]);
        self.with_retries("IncrementalAlterConfigs", || async {
            let conn = self.any_broker().await?;
            let (response, _) = conn.send(&request).await?;
            let result = response
                .responses
                .iter()
                .find(|r| r.resource_type == GROUP_RESOURCE && r.resource_name.as_str() == group)
                .ok_or_else(|| KafkaError::Wire {
                    broker: conn.addr().to_owned(),
                    message: format!("IncrementalAlterConfigs answered without group {group}"),
                })?;
            alter_outcome(result, conn.addr(), group)
        })
        .await
    }
}

/// The values a DescribeConfigs result shows as set on the group itself.
pub fn explicit_group_configs(result: &DescribeConfigsResult) -> BTreeMap<String, String> {
    result
        .configs
        .iter()
        .filter(|c| c.config_source == SOURCE_GROUP_CONFIG)
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect()
}

/// A resource's IncrementalAlterConfigs answer: retriable codes stay `Response` errors (the caller retries),
/// every other code is Kafka refusing the change.
fn alter_outcome(result: &AlterConfigsResourceResponse, broker: &str, group: &str) -> Result<(), KafkaError> {
    let Some(error) = result.error_code.err() else {
        return Ok(());
    };
    let message = result
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| error.to_string());
    if is_retriable_code(error) {
        return check(
            result.error_code,
            broker,
            Api(IncrementalAlterConfigsRequest::KEY),
            || format!("group {group} config: {message}"),
        );
    }
    Err(KafkaError::GroupConfigRefused {
        broker: broker.to_owned(),
        group: group.to_owned(),
        error,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;

    fn entry(name: &str, value: Option<&str>, source: i8) -> DescribeConfigsResourceResult {
        DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_string(name.to_owned()))
            .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))
            .with_config_source(source)
    }

    #[test]
    fn only_values_set_on_the_group_are_its_configs() {
        // What Kafka 4.4 answers for a group with one override: every GroupConfig key, most of them the
        // broker's defaults (DEFAULT_CONFIG 5, STATIC_BROKER_CONFIG 4, DYNAMIC_DEFAULT_BROKER_CONFIG 3).
        let result = DescribeConfigsResult::default().with_configs(vec![
            entry("consumer.session.timeout.ms", Some("50000"), SOURCE_GROUP_CONFIG),
            entry("consumer.heartbeat.interval.ms", Some("5000"), 5),
            entry("share.auto.offset.reset", Some("latest"), 4),
            entry("share.isolation.level", Some("read_uncommitted"), 3),
            entry("share.record.lock.duration.ms", None, SOURCE_GROUP_CONFIG),
        ]);
        assert_eq!(
            explicit_group_configs(&result),
            BTreeMap::from([("consumer.session.timeout.ms".to_owned(), "50000".to_owned())])
        );
    }

    #[test]
    fn changes_encode_as_set_and_delete_operations() {
        let set = GroupConfigChange::Set {
            key: "share.auto.offset.reset".into(),
            value: "earliest".into(),
        }
        .to_wire();
        assert_eq!((set.config_operation, set.value.as_deref()), (OP_SET, Some("earliest")));
        let delete = GroupConfigChange::Delete {
            key: "consumer.session.timeout.ms".into(),
        }
        .to_wire();
        assert_eq!((delete.config_operation, delete.value), (OP_DELETE, None));
        assert_eq!(delete.name.as_str(), "consumer.session.timeout.ms");
    }

    fn answer(code: ResponseError, message: Option<&str>) -> AlterConfigsResourceResponse {
        AlterConfigsResourceResponse::default()
            .with_error_code(code.code())
            .with_error_message(message.map(|m| StrBytes::from_string(m.to_owned())))
    }

    #[test]
    fn a_refusal_carries_kafkas_code_and_message_and_is_final() {
        let message =
            "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms";
        let refused =
            alter_outcome(&answer(ResponseError::InvalidConfig, Some(message)), "b:9092", "g").expect_err("refused");
        match &refused {
            KafkaError::GroupConfigRefused { error, message: m, .. } => {
                assert_eq!(*error, ResponseError::InvalidConfig);
                assert_eq!(m, message);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!refused.is_retriable());
        assert_eq!(refused.code(), Some(ResponseError::InvalidConfig));
        assert!(refused.to_string().contains(message), "{refused}");
        // Without a message, Kafka's description of the code stands in.
        let bare = alter_outcome(&answer(ResponseError::PolicyViolation, None), "b:9092", "g").expect_err("refused");
        assert!(bare.to_string().contains("POLICY_VIOLATION"), "{bare}");
    }

    #[test]
    fn retriable_codes_are_retried_and_success_is_ok() {
        let busy =
            alter_outcome(&answer(ResponseError::RequestTimedOut, Some("slow")), "b:9092", "g").expect_err("an error");
        assert!(busy.is_retriable(), "{busy:?}");
        alter_outcome(&AlterConfigsResourceResponse::default(), "b:9092", "g").expect("no error");
    }
}
