//! The broker's Prometheus metrics: requests and their latency per API, errors that closed a connection,
//! open connections, bytes in and out. One registry per broker (no global statics).

use crate::http::MetricsText;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// The API's name (`Produce`, `Fetch`, …): bounded by Kafka's API keys.
    pub api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why a connection was closed: `malformed`, `too_large`, `idle`, `io`, or refused at once when accepted:
    /// `max_connections`, `max_connections_per_ip`.
    pub reason: String,
}

pub struct BrokerMetrics {
    registry: Mutex<Registry>,
    pub requests: Family<ApiLabels, Counter>,
    pub latency: Family<ApiLabels, Histogram>,
    pub closed: Family<ReasonLabels, Counter>,
    pub connections: Gauge,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<ApiLabels, Counter>::default();
        let latency = Family::<ApiLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let closed = Family::<ReasonLabels, Counter>::default();
        let connections = Gauge::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        registry.register("kafka_broker_requests", "Requests handled, per API", requests.clone());
        registry.register(
            "kafka_broker_request_duration_seconds",
            "Time from a request's arrival to its response (waits of Fetch and JoinGroup included), per API",
            latency.clone(),
        );
        registry.register(
            "kafka_broker_connections_closed",
            "Connections the broker closed, per reason",
            closed.clone(),
        );
        registry.register(
            "kafka_broker_connections",
            "Open client connections",
            connections.clone(),
        );
        registry.register(
            "kafka_broker_received_bytes",
            "Request bytes received",
            bytes_in.clone(),
        );
        registry.register("kafka_broker_sent_bytes", "Response bytes sent", bytes_out.clone());
        BrokerMetrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            closed,
            connections,
            bytes_in,
            bytes_out,
        }
    }
}

impl BrokerMetrics {
    /// The metrics, with the store's own: `kafka_broker_offline_log_directories` (1 once a failed fsync took the
    /// log directory offline, as Kafka's `OfflineLogDirectoryCount`).
    pub fn with_store(store: &crate::broker::log::Store) -> BrokerMetrics {
        let metrics = BrokerMetrics::default();
        metrics.registry.lock().unwrap_or_else(|p| p.into_inner()).register(
            "kafka_broker_offline_log_directories",
            "Log directories taken offline by a failed fsync (the broker must be restarted)",
            store.offline_gauge(),
        );
        metrics
    }

    /// Adds the transaction coordinator's: `kafka_broker_transactions_open` and
    /// `kafka_broker_transactions_timed_out_total`.
    pub fn register_transactions(&self, coordinator: &crate::broker::transactions::TransactionCoordinator) {
        let (open, timed_out) = coordinator.metrics();
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.register(
            "kafka_broker_transactions_open",
            "Transactions open (state Ongoing)",
            open,
        );
        registry.register(
            "kafka_broker_transactions_timed_out",
            "Transactions aborted because they stayed open past their timeout",
            timed_out,
        );
    }

    pub fn observe(&self, api: &str, seconds: f64) {
        let labels = ApiLabels { api: api.to_owned() };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    pub fn closed(&self, reason: &str) {
        self.closed
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

impl MetricsText for BrokerMetrics {
    fn encode_into(&self, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut { out }, &registry)
    }
}
