//! The GitOps-friendly commands of the binary: `lag`, `plan`, `apply` and `export`, for people and pipelines
//! outside Kubernetes. They reuse the operator's Kafka client and reset resolver; errors are one line that
//! says what to fix, with exit code 1.

pub mod apply;
pub mod broker_security;
pub mod connect;
pub mod export;
pub mod kube_context;
pub mod lag;
pub mod ledger;
pub mod manifest;
pub mod output;
pub mod plan;
pub mod plugin;

use kafka_group_operator::kafka::KafkaError;
use kafka_group_operator::plan::duration::parse_duration;
use std::time::Duration;

pub fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// The innermost error of a retried operation: the one that says what went wrong.
fn root(error: &KafkaError) -> &KafkaError {
    match error {
        KafkaError::DeadlineExceeded { last, .. } | KafkaError::NoBrokers { last, .. } => root(last),
        other => other,
    }
}

/// A Kafka error with a hint at what to fix. `bootstrap` names the servers tried, when known.
pub fn kafka_error(error: KafkaError, bootstrap: &str) -> anyhow::Error {
    let at = if bootstrap.is_empty() {
        String::new()
    } else {
        format!(" at {bootstrap}")
    };
    let hint = match root(&error) {
        KafkaError::Connect { .. } | KafkaError::Disconnected { .. } | KafkaError::Timeout { .. } => format!(
            "cannot reach the cluster{at}: check --bootstrap-server (host:port of a broker listener) and that the brokers run"
        ),
        KafkaError::Authentication { .. } => {
            format!("authentication failed{at}: check --sasl-mechanism, --sasl-username and the password")
        }
        KafkaError::Tls { .. } => format!(
            "TLS failed{at}: check --ca-file (the CA that signed the brokers' certificates), --tls-server-name and the client certificate"
        ),
        KafkaError::UnknownTopic(topic) => {
            return anyhow::anyhow!("unknown topic {topic}: check the topic name");
        }
        KafkaError::UnknownPartition { topic, partition } => {
            return anyhow::anyhow!("unknown partition {partition} of topic {topic}: check the partition number");
        }
        _ => return anyhow::anyhow!("{error}"),
    };
    anyhow::anyhow!("{hint} ({})", root(&error))
}

/// The one line printed for an error.
pub fn error_line(error: &anyhow::Error) -> String {
    manifest::one_line(&format!("{error:#}"))
}
