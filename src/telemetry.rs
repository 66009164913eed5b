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

/// Which lag series /metrics carries (`run --lag-metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LagMetrics {
    /// Per group and partition (offset, lag, high-watermark lag, lag in seconds), and the per-group series.
    #[default]
    Partition,
    /// The per-group series only (sum and max lag, max lag in seconds, members), and each partition's log end.
    Group,
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
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
    use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
    use prometheus_client::registry::Registry;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, Weak};

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

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct GroupLabels {
        pub cluster_name: String,
        pub group: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct ClusterLabels {
        pub cluster_name: String,
    }

    /// What the reconciles decide per group. The measured lag (offsets, log ends, lag in messages and
    /// seconds, members) comes from the samplers at scrape time: see [`LagSource`].
    pub struct LagMetrics {
        pub rebalances: Family<GroupLabels, Counter>,
        /// Burrow's evaluation as a number: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, 5 ERR.
        pub status: Family<GroupLabels, Gauge>,
        pub desired_replicas: Family<GroupLabels, Gauge>,
        pub current_replicas: Family<GroupLabels, Gauge>,
        /// READ_COMMITTED Fetches of batch headers the samplers sent for consumable lag, per cluster: only
        /// partitions seen carrying transactions are read, so this stays 0 on plain topics.
        pub consumable_lag_fetches: Family<ClusterLabels, Counter>,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct ShardLabels {
        pub shard: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct ResetLabels {
        pub namespace: String,
        pub name: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct GroupConfigLabels {
        pub namespace: String,
        pub name: String,
        /// `DescribeConfigs` or `IncrementalAlterConfigs`.
        pub api: String,
    }

    pub struct Metrics {
        registry: Mutex<Registry>,
        /// Group-config requests the ConsumerGroup controller sent, per ConsumerGroup and API: at most one read
        /// per reconcile of a group that declares configs, an alteration only when something must change.
        pub group_config_requests: Family<GroupConfigLabels, Counter>,
        /// OffsetCommit requests the OffsetReset controller sent, per reset (exactly one per applied reset).
        pub offset_commits: Family<ResetLabels, Counter>,
        lag_sources: LagSources,
        pub lag: LagMetrics,
        pub reconciles: Family<ControllerLabels, Counter>,
        pub reconcile_errors: Family<ErrorLabels, Counter>,
        pub reconcile_duration: Family<ControllerLabels, Histogram>,
        /// With `--shards`: 1 for each shard this replica holds, 0 for the others.
        pub shard_owned: Family<ShardLabels, Gauge>,
        /// 1 while the KafkaCluster is Ready as this replica last checked it, 0 while not; only on the replica
        /// that reconciles it (with `--shards`, its shard's owner).
        pub cluster_ready: Family<ClusterLabels, Gauge>,
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
                rebalances: Family::default(),
                status: Family::default(),
                desired_replicas: Family::default(),
                current_replicas: Family::default(),
                consumable_lag_fetches: Family::default(),
            };
            let offset_commits = Family::<ResetLabels, Counter>::default();
            registry.register(
                "kafka_group_operator_offset_commits",
                "OffsetCommit requests the OffsetReset controller sent, per OffsetReset",
                offset_commits.clone(),
            );
            let group_config_requests = Family::<GroupConfigLabels, Counter>::default();
            registry.register(
                "kafka_group_operator_group_config_requests",
                "Group-config requests (DescribeConfigs, IncrementalAlterConfigs) the ConsumerGroup controller sent, per ConsumerGroup",
                group_config_requests.clone(),
            );
            let shard_owned = Family::<ShardLabels, Gauge>::default();
            registry.register(
                "kafka_group_operator_shard_owned",
                "1 for each shard (run --shards) whose Lease this replica holds, 0 for the others",
                shard_owned.clone(),
            );
            let cluster_ready = Family::<ClusterLabels, Gauge>::default();
            registry.register(
                "kafka_group_operator_cluster_ready",
                "1 while a KafkaCluster this replica reconciles is Ready, 0 while it is not",
                cluster_ready.clone(),
            );
            let lag_sources = LagSources::default();
            registry.register_collector(Box::new(lag_sources.clone()));
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
                "kafka_group_operator_consumable_lag_fetches",
                "Fetches of batch headers sent for consumable lag (partitions carrying transactions only), per cluster",
                lag.consumable_lag_fetches.clone(),
            );
            registry.register(
                "kafka_group_operator_rebalances",
                "Rebalances the operator observed, per group",
                lag.rebalances.clone(),
            );
            Metrics {
                registry: Mutex::new(registry),
                offset_commits,
                group_config_requests,
                lag_sources,
                lag,
                reconciles,
                reconcile_errors,
                reconcile_duration,
                shard_owned,
                cluster_ready,
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

        /// Counts one OffsetCommit request sent for an OffsetReset.
        pub fn offset_commit_sent(&self, namespace: &str, name: &str) {
            self.offset_commits
                .get_or_create(&ResetLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
                .inc();
        }

        /// Counts one group-config request (`api`) sent for a ConsumerGroup.
        pub fn group_config_request(&self, namespace: &str, name: &str, api: &str) {
            self.group_config_requests
                .get_or_create(&GroupConfigLabels {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    api: api.to_owned(),
                })
                .inc();
        }

        pub fn failed(&self, controller: &str, kind: &str) {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }

        /// Leaves the per-partition lag series out of /metrics (`run --lag-metrics=group`): with thousands of
        /// groups of many partitions they are most of the text (≈ 160 MiB at 5,000 groups × 50 partitions),
        /// while the per-group series and each partition's log end stay.
        pub fn group_lag_series_only(&self, only: bool) {
            self.lag_sources.group_series_only.store(only, Ordering::Relaxed);
        }

        /// Adds where the measured lag metrics come from (the operator's samplers). Held weakly: a source that
        /// is dropped stops being scraped.
        pub fn add_lag_source(&self, source: Weak<dyn LagSource>) {
            let mut sources = self.lag_sources.sources.lock().unwrap_or_else(|p| p.into_inner());
            sources.retain(|s| s.strong_count() > 0);
            sources.push(source);
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

        /// Counts `fetches` header Fetches sent for consumable lag on `cluster` (0 creates the series).
        pub fn consumable_lag_fetched(&self, cluster: &str, fetches: u64) {
            self.lag
                .consumable_lag_fetches
                .get_or_create(&ClusterLabels {
                    cluster_name: cluster.to_owned(),
                })
                .inc_by(fetches);
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

        /// Records whether this replica holds `shard`.
        pub fn set_shard_owned(&self, shard: u32, owned: bool) {
            self.shard_owned
                .get_or_create(&ShardLabels {
                    shard: shard.to_string(),
                })
                .set(i64::from(owned));
        }

        /// Records a KafkaCluster's readiness (`cluster` is `namespace/name`), or removes it (None) when this
        /// replica no longer reconciles the cluster.
        pub fn set_cluster_ready(&self, cluster: &str, ready: Option<bool>) {
            let labels = ClusterLabels {
                cluster_name: cluster.to_owned(),
            };
            match ready {
                Some(ready) => {
                    self.cluster_ready.get_or_create(&labels).set(i64::from(ready));
                }
                None => {
                    self.cluster_ready.remove(&labels);
                }
            }
        }

        /// Removes the decision series of a group that is no longer managed (its measured lag goes with its
        /// sample).
        pub fn forget_group(&self, cluster: &str, group: &str) {
            let g = GroupLabels {
                cluster_name: cluster.to_owned(),
                group: group.to_owned(),
            };
            self.lag.status.remove(&g);
            self.lag.desired_replicas.remove(&g);
            self.lag.current_replicas.remove(&g);
        }

        /// The registry in Prometheus' text format.
        pub fn encode(&self) -> String {
            let mut out = String::new();
            // Writing into a String cannot fail.
            let _ = self.encode_into(&mut out);
            out
        }

        /// The registry in Prometheus' text format, written into `out` as it is encoded (a scrape streams it).
        pub fn encode_into(&self, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
            let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            prometheus_client::encoding::text::encode(&mut { out }, &registry)
        }
    }

    /// One partition of a sampled group, as the per-partition lag metrics show it.
    pub struct PartitionLagPoint<'a> {
        pub topic: &'a str,
        pub partition: i32,
        pub committed: i64,
        /// None when the partition's end could not be read.
        pub log_end: Option<i64>,
        /// The lag where it was measured rather than derived from log end − committed: the data records a
        /// `read_committed` consumer will still receive (transactional topics), or a share-partition's lag as
        /// its broker computes it.
        pub measured_lag: Option<i64>,
        /// Age of the oldest unconsumed record: 0 when caught up, None when unknown.
        pub lag_seconds: Option<i64>,
    }

    /// What the latest lag sample says of a group.
    pub struct GroupLagPoint<'a> {
        pub cluster_name: &'a str,
        pub group: &'a str,
        /// `classic`, `consumer`, `share` or `streams`.
        pub group_type: &'a str,
        pub members: usize,
        pub max_lag_seconds: Option<i64>,
        pub partitions: Vec<PartitionLagPoint<'a>>,
    }

    impl PartitionLagPoint<'_> {
        /// What the group will still read: the measured lag where there is one, the high-watermark lag elsewhere.
        fn lag(&self) -> Option<i64> {
            self.measured_lag.or_else(|| self.high_watermark_lag())
        }

        fn high_watermark_lag(&self) -> Option<i64> {
            self.log_end
                .map(|end| crate::lag::high_watermark_lag(self.committed, end))
        }
    }

    /// Where the measured lag metrics come from: the samplers' latest samples, read at every scrape. Keeping
    /// a gauge per group and partition instead held a second copy of every sample, with four label strings
    /// per series: ≈ 20 MiB at 500 groups × 50 partitions (docs/benchmarks.md).
    pub trait LagSource: Send + Sync {
        /// Calls `f` once per sampled group.
        fn visit(&self, f: &mut dyn FnMut(&GroupLagPoint<'_>));
    }

    /// The registered collector: every live source's groups, in families named like kafka-lag-exporter's
    /// (`kafka_consumergroup_group_lag`, …) so that its dashboards adapt easily.
    #[derive(Clone, Default)]
    struct LagSources {
        sources: Arc<Mutex<Vec<Weak<dyn LagSource>>>>,
        /// `--lag-metrics=group`: the per-partition families are left out.
        group_series_only: Arc<AtomicBool>,
    }

    impl std::fmt::Debug for LagSources {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("LagSources")
        }
    }

    type PartitionValue = fn(&PartitionLagPoint<'_>) -> Option<i64>;
    type GroupValue = fn(&GroupLagPoint<'_>) -> Option<i64>;

    const PARTITION_FAMILIES: [(&str, &str, PartitionValue); 4] = [
        (
            "kafka_consumergroup_group_offset",
            "Committed offset of a group's partition",
            |p| Some(p.committed),
        ),
        (
            "kafka_consumergroup_group_lag",
            "Lag in messages of a group's partition: records the group will still read (transaction markers and \
             aborted transactions left out)",
            |p| p.lag(),
        ),
        (
            "kafka_consumergroup_group_lag_high_watermark",
            "Log end offset minus committed offset of a group's partition, as kafka-consumer-groups shows it",
            |p| p.high_watermark_lag(),
        ),
        (
            "kafka_consumergroup_group_lag_seconds",
            "Age of the oldest unconsumed record of a group's partition (from the record's timestamp)",
            |p| p.lag_seconds,
        ),
    ];

    const GROUP_FAMILIES: [(&str, &str, GroupValue); 4] = [
        (
            "kafka_consumergroup_group_sum_lag",
            "Total lag in messages of a group",
            |g| Some(g.partitions.iter().filter_map(|p| p.lag()).sum()),
        ),
        (
            "kafka_consumergroup_group_max_lag",
            "Largest partition lag in messages of a group",
            |g| Some(g.partitions.iter().filter_map(|p| p.lag()).max().unwrap_or(0)),
        ),
        (
            "kafka_consumergroup_group_max_lag_seconds",
            "Largest partition lag in seconds of a group",
            |g| g.max_lag_seconds,
        ),
        ("kafka_consumergroup_members", "Members of a group", |g| {
            Some(g.members as i64)
        }),
    ];

    /// A group's labels and its value in each of [`GROUP_FAMILIES`], kept while a scrape writes them.
    struct GroupRow {
        cluster_name: String,
        group: String,
        group_type: String,
        values: [Option<i64>; GROUP_FAMILIES.len()],
    }

    impl LagSources {
        fn visit(&self, f: &mut dyn FnMut(&GroupLagPoint<'_>)) {
            let live: Vec<Arc<dyn LagSource>> = self
                .sources
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            for source in live {
                source.visit(f);
            }
        }
    }

    fn gauge(
        encoder: &mut prometheus_client::encoding::MetricEncoder<'_>,
        labels: &impl EncodeLabelSet,
        value: i64,
    ) -> std::fmt::Result {
        ConstGauge::new(value).encode(encoder.encode_family(labels)?)
    }

    impl Collector for LagSources {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let partition_families: &[_] = if self.group_series_only.load(Ordering::Relaxed) {
                &[]
            } else {
                &PARTITION_FAMILIES
            };
            for &(name, help, value) in partition_families {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                let mut result = Ok(());
                self.visit(&mut |g| {
                    for p in &g.partitions {
                        let Some(v) = value(p) else { continue };
                        let partition = p.partition.to_string();
                        let labels = [
                            ("cluster_name", g.cluster_name),
                            ("group", g.group),
                            ("group_type", g.group_type),
                            ("topic", p.topic),
                            ("partition", partition.as_str()),
                        ];
                        result = result.and_then(|()| gauge(&mut family, &labels, v));
                    }
                });
                result?;
            }
            // One more pass over the samples for the rest: each partition's log end (once however many groups
            // read it) and the per-group values. One pass, because building a group's points is most of a
            // scrape's work at thousands of groups; the log ends are keyed by borrowed names so a partition
            // read by many groups allocates its labels once.
            let mut ends: BTreeMap<String, BTreeMap<String, BTreeMap<i32, i64>>> = BTreeMap::new();
            let mut groups: Vec<GroupRow> = Vec::new();
            self.visit(&mut |g| {
                let topics = match ends.get_mut(g.cluster_name) {
                    Some(topics) => topics,
                    None => ends.entry(g.cluster_name.to_owned()).or_default(),
                };
                for p in &g.partitions {
                    let Some(end) = p.log_end else { continue };
                    let partitions = match topics.get_mut(p.topic) {
                        Some(partitions) => partitions,
                        None => topics.entry(p.topic.to_owned()).or_default(),
                    };
                    partitions.insert(p.partition, end);
                }
                groups.push(GroupRow {
                    cluster_name: g.cluster_name.to_owned(),
                    group: g.group.to_owned(),
                    group_type: g.group_type.to_owned(),
                    values: GROUP_FAMILIES.map(|(_, _, value)| value(g)),
                });
            });
            let mut family = encoder.encode_descriptor(
                "kafka_partition_latest_offset",
                "Log end offset of a partition",
                None,
                MetricType::Gauge,
            )?;
            for (cluster_name, topics) in &ends {
                for (topic, partitions) in topics {
                    for (partition, end) in partitions {
                        let partition = partition.to_string();
                        let labels = [
                            ("cluster_name", cluster_name.as_str()),
                            ("topic", topic.as_str()),
                            ("partition", partition.as_str()),
                        ];
                        gauge(&mut family, &labels, *end)?;
                    }
                }
            }
            for (i, (name, help, _)) in GROUP_FAMILIES.iter().enumerate() {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for row in &groups {
                    if let Some(v) = row.values[i] {
                        let labels = [
                            ("cluster_name", row.cluster_name.as_str()),
                            ("group", row.group.as_str()),
                            ("group_type", row.group_type.as_str()),
                        ];
                        gauge(&mut family, &labels, v)?;
                    }
                }
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// (partition, committed, log end, lag seconds, consumable lag)
        type Partition = (i32, i64, Option<i64>, Option<i64>, Option<i64>);

        struct Fixed(Vec<(&'static str, Vec<Partition>)>);

        impl LagSource for Fixed {
            fn visit(&self, f: &mut dyn FnMut(&GroupLagPoint<'_>)) {
                for (group, partitions) in &self.0 {
                    f(&GroupLagPoint {
                        cluster_name: "ns/main",
                        group,
                        group_type: if *group == "b" { "share" } else { "consumer" },
                        members: 2,
                        max_lag_seconds: Some(7),
                        partitions: partitions
                            .iter()
                            .map(
                                |&(partition, committed, log_end, lag_seconds, consumable)| PartitionLagPoint {
                                    topic: "orders",
                                    partition,
                                    committed,
                                    log_end,
                                    measured_lag: consumable,
                                    lag_seconds,
                                },
                            )
                            .collect(),
                    });
                }
            }
        }

        fn lines(text: &str, family: &str) -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .map(str::to_owned)
                .collect()
        }

        #[test]
        fn lag_series_are_read_from_the_sources_at_each_scrape() {
            let metrics = Metrics::default();
            let source: Arc<dyn LagSource> = Arc::new(Fixed(vec![
                ("a", vec![(0, 5, Some(9), Some(7), None), (1, 3, None, None, None)]),
                ("b", vec![(0, 9, Some(9), Some(0), None)]),
            ]));
            metrics.add_lag_source(Arc::downgrade(&source));
            let text = metrics.encode();
            let p = |g: &str, n: i32, v: i64| {
                let t = if g == "b" { "share" } else { "consumer" };
                format!(
                    "{{cluster_name=\"ns/main\",group=\"{g}\",group_type=\"{t}\",topic=\"orders\",partition=\"{n}\"}} {v}"
                )
            };
            assert_eq!(
                lines(&text, "kafka_consumergroup_group_lag"),
                vec![
                    format!("kafka_consumergroup_group_lag{}", p("a", 0, 4)),
                    format!("kafka_consumergroup_group_lag{}", p("b", 0, 0))
                ],
                "{text}"
            );
            assert_eq!(
                lines(&text, "kafka_consumergroup_group_lag_high_watermark"),
                vec![
                    format!("kafka_consumergroup_group_lag_high_watermark{}", p("a", 0, 4)),
                    format!("kafka_consumergroup_group_lag_high_watermark{}", p("b", 0, 0))
                ],
                "{text}"
            );
            assert_eq!(lines(&text, "kafka_consumergroup_group_offset").len(), 3, "{text}");
            assert_eq!(lines(&text, "kafka_consumergroup_group_lag_seconds").len(), 2, "{text}");
            // One log end per topic partition however many groups read it.
            assert_eq!(
                lines(&text, "kafka_partition_latest_offset"),
                vec!["kafka_partition_latest_offset{cluster_name=\"ns/main\",topic=\"orders\",partition=\"0\"} 9"],
                "{text}"
            );
            assert!(
                text.contains(
                    "kafka_consumergroup_group_sum_lag{cluster_name=\"ns/main\",group=\"a\",group_type=\"consumer\"} 4"
                ),
                "{text}"
            );
            assert!(
                text.contains(
                    "kafka_consumergroup_members{cluster_name=\"ns/main\",group=\"b\",group_type=\"share\"} 2"
                ),
                "{text}"
            );
            // A group caught up behind a transaction marker: lag 0, high-watermark lag 1.
            let txn: Arc<dyn LagSource> = Arc::new(Fixed(vec![("t", vec![(0, 14, Some(15), Some(0), Some(0))])]));
            metrics.add_lag_source(Arc::downgrade(&txn));
            let text = metrics.encode();
            assert!(
                lines(&text, "kafka_consumergroup_group_lag")
                    .contains(&format!("kafka_consumergroup_group_lag{}", p("t", 0, 0))),
                "{text}"
            );
            assert!(
                lines(&text, "kafka_consumergroup_group_lag_high_watermark")
                    .contains(&format!("kafka_consumergroup_group_lag_high_watermark{}", p("t", 0, 1))),
                "{text}"
            );
            assert!(
                text.contains(
                    "kafka_consumergroup_group_sum_lag{cluster_name=\"ns/main\",group=\"t\",group_type=\"consumer\"} 0"
                ),
                "{text}"
            );
            drop(txn);
            // A dropped source is no longer scraped.
            drop(source);
            assert!(lines(&metrics.encode(), "kafka_consumergroup_group_lag").is_empty());
        }

        #[test]
        fn group_granularity_leaves_out_only_the_per_partition_lag_series() {
            let metrics = Metrics::default();
            let source: Arc<dyn LagSource> = Arc::new(Fixed(vec![(
                "a",
                vec![(0, 5, Some(9), Some(7), None), (1, 3, Some(4), None, None)],
            )]));
            metrics.add_lag_source(Arc::downgrade(&source));
            metrics.group_lag_series_only(true);
            let text = metrics.encode();
            for family in PARTITION_FAMILIES.map(|f| f.0) {
                assert!(lines(&text, family).is_empty(), "{family}: {text}");
            }
            assert!(
                text.contains(
                    "kafka_consumergroup_group_sum_lag{cluster_name=\"ns/main\",group=\"a\",group_type=\"consumer\"} 5"
                ),
                "{text}"
            );
            assert_eq!(lines(&text, "kafka_partition_latest_offset").len(), 2, "{text}");
            metrics.group_lag_series_only(false);
            assert_eq!(lines(&metrics.encode(), "kafka_consumergroup_group_lag").len(), 2);
        }
    }
}
