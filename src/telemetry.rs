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

    pub struct Metrics {
        registry: Mutex<Registry>,
        pub reconciles: Family<ControllerLabels, Counter>,
        pub reconcile_errors: Family<ErrorLabels, Counter>,
        pub reconcile_duration: Family<ControllerLabels, Histogram>,
    }

    impl Default for Metrics {
        fn default() -> Self {
            let mut registry = Registry::with_prefix("kafka_group_operator");
            let reconciles = Family::<ControllerLabels, Counter>::default();
            let reconcile_errors = Family::<ErrorLabels, Counter>::default();
            let reconcile_duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            });
            registry.register("reconciles", "Reconciliations run, per controller", reconciles.clone());
            registry.register(
                "reconcile_errors",
                "Reconciliations that failed, per controller and error kind",
                reconcile_errors.clone(),
            );
            registry.register(
                "reconcile_duration_seconds",
                "How long reconciliations take, per controller",
                reconcile_duration.clone(),
            );
            Metrics {
                registry: Mutex::new(registry),
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
