//! What a cluster is: its id, brokers, the Kafka version its API versions imply, and broker configs
//! (e.g. `offsets.retention.minutes`, which the retention guard needs).

use super::client::KafkaClient;
use super::connection::BrokerVersions;
use super::error::{KafkaError, check};
use crate::wire::Api;
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::BTreeMap;

/// A cluster as one connection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub broker_count: usize,
    /// The Kafka version range the API versions imply, e.g. `>= 4.0`.
    pub kafka_version: String,
}

/// Markers from Kafka's release history, newest first: the first one a broker meets names its range.
/// Each is an API (key) whose presence, or minimum/maximum version, changed in that release.
type VersionMarker = (&'static str, fn(&BrokerVersions) -> bool);

const VERSION_MARKERS: &[VersionMarker] = &[
    // KIP-896 (4.0) removed Fetch versions 0-3.
    (">= 4.0", |v| v.get(&1).is_some_and(|(min, _)| *min >= 4)),
    // DescribeTopicPartitions (key 75) arrived in 3.8.
    (">= 3.8", |v| v.contains_key(&75)),
    // ConsumerGroupHeartbeat (key 68, KIP-848 early access) arrived in 3.7.
    (">= 3.7", |v| v.contains_key(&68)),
    // OffsetFetch v8 (many groups per request, KIP-709) arrived in 3.0.
    (">= 3.0", |v| v.get(&9).is_some_and(|(_, max)| *max >= 8)),
    // ApiVersions v3 (KIP-511) arrived in 2.4.
    (">= 2.4", |v| v.get(&18).is_some_and(|(_, max)| *max >= 3)),
];

/// The Kafka version range a broker's ApiVersions answer implies.
pub fn estimate_kafka_version(versions: &BrokerVersions) -> String {
    VERSION_MARKERS
        .iter()
        .find(|(_, test)| test(versions))
        .map(|(range, _)| (*range).to_owned())
        .unwrap_or_else(|| "< 2.4".to_owned())
}

impl KafkaClient {
    /// Connects (ApiVersions, authentication), reads metadata and estimates the Kafka version.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, KafkaError> {
        let metadata = self.refresh_metadata().await?;
        let conn = self.any_broker().await?;
        Ok(ClusterInfo {
            cluster_id: metadata.cluster_id.clone(),
            broker_count: metadata.brokers.len(),
            kafka_version: estimate_kafka_version(conn.broker_versions()),
        })
    }

    /// The values of `keys` in broker `node_id`'s configuration (DescribeConfigs); absent keys are left out.
    pub async fn broker_config(&self, node_id: i32, keys: &[&str]) -> Result<BTreeMap<String, String>, KafkaError> {
        const BROKER: i8 = 4;
        let api = Api(DescribeConfigsRequest::KEY);
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(StrBytes::from_string(node_id.to_string()))
                .with_configuration_keys(Some(
                    keys.iter().map(|k| StrBytes::from_string((*k).to_owned())).collect(),
                )),
        ]);
        self.with_retries("DescribeConfigs", || async {
            let conn = self.broker(node_id).await?;
            let (response, _) = conn.send(&request).await?;
            let mut values = BTreeMap::new();
            for result in response.results {
                check(result.error_code, conn.addr(), api, || {
                    format!("broker {node_id} config")
                })?;
                for c in result.configs {
                    if let Some(v) = c.value {
                        values.insert(c.name.to_string(), v.to_string());
                    }
                }
            }
            Ok(values)
        })
        .await
    }

    /// `offsets.retention.minutes` of any broker (they share it in practice).
    pub async fn offsets_retention_minutes(&self) -> Result<Option<i64>, KafkaError> {
        let metadata = self.metadata().await?;
        let Some(node) = metadata.brokers.keys().next().copied() else {
            return Ok(None);
        };
        let values = self.broker_config(node, &["offsets.retention.minutes"]).await?;
        Ok(values.get("offsets.retention.minutes").and_then(|v| v.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(entries: &[(i16, i16, i16)]) -> BrokerVersions {
        entries.iter().map(|(k, min, max)| (*k, (*min, *max))).collect()
    }

    #[test]
    fn kafka_4_is_recognised_by_its_fetch_floor() {
        // What Apache Kafka 4.4 announces for Produce, Fetch and ConsumerGroupHeartbeat.
        assert_eq!(
            estimate_kafka_version(&versions(&[(0, 0, 13), (1, 4, 18), (68, 0, 1)])),
            ">= 4.0"
        );
    }

    #[test]
    fn older_brokers_get_older_ranges() {
        assert_eq!(estimate_kafka_version(&versions(&[(1, 0, 16), (68, 0, 0)])), ">= 3.7");
        assert_eq!(estimate_kafka_version(&versions(&[(0, 0, 9), (9, 0, 8)])), ">= 3.0");
        assert_eq!(
            estimate_kafka_version(&versions(&[(0, 0, 8), (9, 0, 7), (18, 0, 2)])),
            "< 2.4"
        );
    }
}
