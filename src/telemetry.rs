//! Structured logging with `tracing`: one place that decides the format (text for people, JSON for
//! log pipelines) and the filter (`RUST_LOG`-style directives).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the global subscriber. `filter` uses `tracing_subscriber::EnvFilter` syntax
/// (e.g. `info,kube=warn`). Returns an error if the filter does not parse or a subscriber is already set.
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    result.map_err(|e| TelemetryError::Init(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("could not install the log subscriber: {0}")]
    Init(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_filter_that_does_not_parse() {
        assert!(matches!(
            init(LogFormat::Text, "info,=[["),
            Err(TelemetryError::Filter(_))
        ));
    }
}

/// The operator's Prometheus metrics, in a registry owned by the controllers' context (no global statics).
pub mod metrics {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
    use prometheus_client::registry::Registry;
    use std::sync::Mutex;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct ControllerLabels {
        pub controller: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct ErrorLabels {
        pub controller: String,
        /// A bounded error kind (`kafka`, `kubernetes`, `config`), never an error's text.
        pub kind: String,
    }

    /// Per group and partition, as kafka-lag-exporter labels them (so its dashboards adapt easily).
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct PartitionLabels {
        pub cluster_name: String,
        pub group: String,
        pub topic: String,
        pub partition: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct GroupLabels {
        pub cluster_name: String,
        pub group: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct TopicPartitionLabels {
        pub cluster_name: String,
        pub topic: String,
        pub partition: String,
    }

    /// Lag metrics, named like kafka-lag-exporter's (`kafka_consumergroup_group_lag`, …).
    pub struct LagMetrics {
        pub offset: Family<PartitionLabels, Gauge>,
        pub lag: Family<PartitionLabels, Gauge>,
        pub lag_seconds: Family<PartitionLabels, Gauge>,
        pub latest_offset: Family<TopicPartitionLabels, Gauge>,
        pub sum_lag: Family<GroupLabels, Gauge>,
        pub max_lag: Family<GroupLabels, Gauge>,
        pub max_lag_seconds: Family<GroupLabels, Gauge>,
        pub members: Family<GroupLabels, Gauge>,
        pub rebalances: Family<GroupLabels, Counter>,
        /// Burrow's evaluation as a number: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, 5 ERR.
        pub status: Family<GroupLabels, Gauge>,
        pub desired_replicas: Family<GroupLabels, Gauge>,
        pub current_replicas: Family<GroupLabels, Gauge>,
        /// Which partition series each group has, to remove them when the group goes.
        pub(crate) series: Mutex<std::collections::HashMap<(String, String), Vec<PartitionLabels>>>,
    }

    pub struct Metrics {
        registry: Mutex<Registry>,
        pub lag: LagMetrics,
        pub reconciles: Family<ControllerLabels, Counter>,
        pub reconcile_errors: Family<ErrorLabels, Counter>,
        pub reconcile_duration: Family<ControllerLabels, Histogram>,
    }

    impl Default for Metrics {
        fn default() -> Self {
            let mut registry = Registry::default();
            let reconciles = Family::<ControllerLabels, Counter>::default();
            let reconcile_errors = Family::<ErrorLabels, Counter>::default();
            let reconcile_duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            });
            registry.register(
                "kafka_group_operator_reconciles",
                "Reconciliations run, per controller",
                reconciles.clone(),
            );
            registry.register(
                "kafka_group_operator_reconcile_errors",
                "Reconciliations that failed, per controller and error kind",
                reconcile_errors.clone(),
            );
            registry.register(
                "kafka_group_operator_reconcile_duration_seconds",
                "How long reconciliations take, per controller",
                reconcile_duration.clone(),
            );
            let lag = LagMetrics {
                offset: Family::default(),
                lag: Family::default(),
                lag_seconds: Family::default(),
                latest_offset: Family::default(),
                sum_lag: Family::default(),
                max_lag: Family::default(),
                max_lag_seconds: Family::default(),
                members: Family::default(),
                rebalances: Family::default(),
                status: Family::default(),
                desired_replicas: Family::default(),
                current_replicas: Family::default(),
                series: Mutex::new(Default::default()),
            };
            registry.register(
                "kafka_consumergroup_group_offset",
                "Committed offset of a group's partition",
                lag.offset.clone(),
            );
            registry.register(
                "kafka_consumergroup_group_lag",
                "Lag in messages of a group's partition",
                lag.lag.clone(),
            );
            registry.register(
                "kafka_consumergroup_group_lag_seconds",
                "Age of the oldest unconsumed record of a group's partition (from the record's timestamp)",
                lag.lag_seconds.clone(),
            );
            registry.register(
                "kafka_partition_latest_offset",
                "Log end offset of a partition",
                lag.latest_offset.clone(),
            );
            registry.register(
                "kafka_consumergroup_group_sum_lag",
                "Total lag in messages of a group",
                lag.sum_lag.clone(),
            );
            registry.register(
                "kafka_consumergroup_group_max_lag",
                "Largest partition lag in messages of a group",
                lag.max_lag.clone(),
            );
            registry.register(
                "kafka_consumergroup_group_max_lag_seconds",
                "Largest partition lag in seconds of a group",
                lag.max_lag_seconds.clone(),
            );
            registry.register("kafka_consumergroup_members", "Members of a group", lag.members.clone());
            registry.register(
                "kafka_consumergroup_group_status",
                "Lag evaluation of a group: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, 5 ERR",
                lag.status.clone(),
            );
            registry.register(
                "kafka_group_operator_desired_replicas",
                "Replicas the scaling decision wants for a group's workload",
                lag.desired_replicas.clone(),
            );
            registry.register(
                "kafka_group_operator_current_replicas",
                "Replicas of a group's workload as last read",
                lag.current_replicas.clone(),
            );
            registry.register(
                "kafka_group_operator_rebalances",
                "Rebalances the operator observed, per group",
                lag.rebalances.clone(),
            );
            Metrics {
                registry: Mutex::new(registry),
                lag,
                reconciles,
                reconcile_errors,
                reconcile_duration,
            }
        }
    }

    impl Metrics {
        pub fn reconciled(&self, controller: &str, seconds: f64) {
            let labels = ControllerLabels {
                controller: controller.to_owned(),
            };
            self.reconciles.get_or_create(&labels).inc();
            self.reconcile_duration.get_or_create(&labels).observe(seconds);
        }

        pub fn failed(&self, controller: &str, kind: &str) {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }

        pub(crate) fn remove_partition(&self, labels: &PartitionLabels) {
            self.lag.offset.remove(labels);
            self.lag.lag.remove(labels);
            self.lag.lag_seconds.remove(labels);
        }

        /// Records the group's evaluation and, with scaling, its replica counts.
        pub fn record_evaluation(&self, cluster: &str, group: &str, status: i64, replicas: Option<(i32, i32)>) {
            let g = GroupLabels {
                cluster_name: cluster.to_owned(),
                group: group.to_owned(),
            };
            self.lag.status.get_or_create(&g).set(status);
            if let Some((desired, current)) = replicas {
                self.lag.desired_replicas.get_or_create(&g).set(i64::from(desired));
                self.lag.current_replicas.get_or_create(&g).set(i64::from(current));
            }
        }

        /// Counts a rebalance of a group (each scale step costs one).
        pub fn rebalanced(&self, cluster: &str, group: &str) {
            self.lag
                .rebalances
                .get_or_create(&GroupLabels {
                    cluster_name: cluster.to_owned(),
                    group: group.to_owned(),
                })
                .inc();
        }

        /// Removes every series of a group that is no longer managed.
        pub fn forget_group(&self, cluster: &str, group: &str) {
            let old = self
                .lag
                .series
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(cluster.to_owned(), group.to_owned()));
            for labels in old.unwrap_or_default() {
                self.remove_partition(&labels);
            }
            let g = GroupLabels {
                cluster_name: cluster.to_owned(),
                group: group.to_owned(),
            };
            self.lag.sum_lag.remove(&g);
            self.lag.status.remove(&g);
            self.lag.desired_replicas.remove(&g);
            self.lag.current_replicas.remove(&g);
            self.lag.max_lag.remove(&g);
            self.lag.max_lag_seconds.remove(&g);
            self.lag.members.remove(&g);
        }

        /// The registry in Prometheus' text format.
        pub fn encode(&self) -> String {
            let mut out = String::new();
            let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
            out
        }
    }
}
