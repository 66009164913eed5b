//! One error type for the Kafka client: every variant names the broker and, where there is one, the API
//! and Kafka's error code, and says whether retrying can help.

use crate::wire::{Api, WireError};

impl KafkaError {
    pub(crate) fn wire(broker: &str, error: WireError) -> KafkaError {
        KafkaError::Wire {
            broker: broker.to_owned(),
            message: error.to_string(),
        }
    }
}
use kafka_protocol::error::ResponseError;
use std::time::Duration;

#[derive(Clone, Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot connect to broker {broker}: {message}")]
    Connect { broker: String, message: String },
    #[error("TLS with broker {broker} failed: {message}")]
    Tls { broker: String, message: String },
    #[error("authentication to broker {broker} with {mechanism} failed: {message}")]
    Authentication {
        broker: String,
        mechanism: String,
        message: String,
    },
    #[error("connection to broker {broker} lost: {message}")]
    Disconnected { broker: String, message: String },
    #[error("broker {broker} did not answer {api} within {after:?}")]
    Timeout { broker: String, api: Api, after: Duration },
    #[error("broker {broker} answered {api} with {} ({}): {}", error_name(.error), .error.code(), error_text(.error, .context))]
    Response {
        broker: String,
        api: Api,
        error: ResponseError,
        context: String,
    },
    #[error("broker {broker} supports no version of {api} that this client speaks")]
    UnsupportedApi { broker: String, api: Api },
    #[error("{operation} did not complete within {deadline:?}; last error: {last}")]
    DeadlineExceeded {
        operation: String,
        deadline: Duration,
        last: Box<KafkaError>,
    },
    /// An operation's deadline passed while its first attempt was still waiting.
    #[error("no attempt finished within {0:?}")]
    NoAttemptFinished(Duration),
    #[error(
        "group {group} is not empty ({state}, {members} member(s)): stop its consumers before changing its offsets"
    )]
    GroupNotEmpty {
        group: String,
        state: super::groups::GroupState,
        members: usize,
    },
    /// OffsetFetch with `require_stable`: a transactional offset commit of the group is still pending on these
    /// partitions (UNSTABLE_OFFSET_COMMIT), so their committed offset is not known yet.
    #[error(
        "group {group} has a pending transactional offset commit (UNSTABLE_OFFSET_COMMIT) on {}: its committed offsets are not stable until that transaction commits or aborts",
        .partitions.join(", ")
    )]
    UnstableOffsetCommit { group: String, partitions: Vec<String> },
    /// IncrementalAlterConfigs on a group: Kafka refused the change (a value outside the broker's
    /// `group.*.min/max` bounds, an unknown key, …) with this code and message. Final: the same change is
    /// refused again.
    #[error("Kafka refused the configs of group {group}: {message} ({}, broker {broker})", error_name(.error))]
    GroupConfigRefused {
        broker: String,
        group: String,
        error: ResponseError,
        message: String,
    },
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("no broker could be reached among {tried:?}; last error: {last}")]
    NoBrokers { tried: Vec<String>, last: Box<KafkaError> },
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// Bytes that do not encode or decode as the API says (a bug here or in the broker).
    #[error("broker {broker}: {message}")]
    Wire { broker: String, message: String },
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), as its docs, logs and tools spell it.
pub fn error_name(error: &ResponseError) -> String {
    // `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`, the name Kafka's docs and logs use.
    let camel = format!("{error:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn error_text(error: &ResponseError, context: &str) -> String {
    let description = error.to_string();
    if context.is_empty() {
        description
    } else {
        format!("{description} ({context})")
    }
}

impl KafkaError {
    /// Whether the same call may succeed later: lost connections, timeouts, and the codes Kafka marks
    /// retriable (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, LEADER_NOT_AVAILABLE, …).
    pub fn is_retriable(&self) -> bool {
        match self {
            KafkaError::Connect { .. } | KafkaError::Disconnected { .. } | KafkaError::Timeout { .. } => true,
            KafkaError::Response { error, .. } => is_retriable_code(*error),
            KafkaError::NoBrokers { .. } => true,
            _ => false,
        }
    }

    /// Whether the error says that cached metadata or coordinators are stale and must be looked up again.
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            KafkaError::Response { error, .. } => matches!(
                error,
                ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::NotLeaderOrFollower
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::UnknownTopicOrPartition
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch
            ),
            KafkaError::Connect { .. } | KafkaError::Disconnected { .. } | KafkaError::NoBrokers { .. } => true,
            _ => false,
        }
    }

    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            KafkaError::Response { error, .. } | KafkaError::GroupConfigRefused { error, .. } => Some(*error),
            KafkaError::DeadlineExceeded { last, .. } => last.code(),
            _ => None,
        }
    }
}

/// Kafka's own retriable flag, except UNKNOWN_TOPIC_OR_PARTITION: for an admin client a topic that does not
/// exist is an answer, not a transient state (Kafka marks it retriable for producers racing topic creation).
pub fn is_retriable_code(error: ResponseError) -> bool {
    !matches!(error, ResponseError::UnknownTopicOrPartition) && error.is_retriable()
}

/// Turns a response's error code into a `KafkaError` (or `Ok` for 0).
pub fn check(code: i16, broker: &str, api: Api, context: impl FnOnce() -> String) -> Result<(), KafkaError> {
    use kafka_protocol::error::ParseResponseErrorCode;
    match code.err() {
        None => Ok(()),
        Some(error) => Err(KafkaError::Response {
            broker: broker.to_owned(),
            api,
            error,
            context: context(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(code: ResponseError) -> KafkaError {
        KafkaError::Response {
            broker: "127.0.0.1:9092".into(),
            api: Api(9),
            error: code,
            context: "group g1".into(),
        }
    }

    #[test]
    fn response_error_names_broker_api_and_code() {
        let text = response(ResponseError::NotCoordinator).to_string();
        assert!(text.contains("127.0.0.1:9092"), "{text}");
        assert!(text.contains("OffsetFetch"), "{text}");
        assert!(text.contains("NOT_COORDINATOR (16)"), "{text}");
        assert!(text.contains("group g1"), "{text}");
    }

    #[test]
    fn coordinator_errors_are_retriable_and_invalidate_metadata() {
        for code in [ResponseError::NotCoordinator, ResponseError::CoordinatorLoadInProgress] {
            assert!(response(code).is_retriable(), "{code:?}");
        }
        assert!(response(ResponseError::NotCoordinator).invalidates_metadata());
        assert!(!response(ResponseError::CoordinatorLoadInProgress).invalidates_metadata());
    }

    #[test]
    fn authorization_and_unknown_topic_are_final() {
        assert!(!response(ResponseError::GroupAuthorizationFailed).is_retriable());
        assert!(!response(ResponseError::UnknownTopicOrPartition).is_retriable());
        assert!(!response(ResponseError::NonEmptyGroup).is_retriable());
    }
}
