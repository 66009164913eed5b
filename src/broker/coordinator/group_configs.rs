//! Group configs (Kafka 4's config resource GROUP, KIP-848): per-group overrides of the KIP-848 session timeout
//! and heartbeat interval, set with IncrementalAlterConfigs (`kafka-configs --entity-type groups`), shown by
//! DescribeConfigs and applied to the group's members. Validated as Kafka's `GroupConfig` validates them (within
//! the broker's `group.consumer.min/max.*` bounds, heartbeat below session), kept in `group-configs.json` beside
//! the group log (written whole, fsynced, renamed), so they survive a restart. Share and streams group keys are
//! refused: the embedded broker has neither kind of group.

use super::consumer::ConsumerTiming;
use crate::broker::log::segment::{sync_dir, write_synced};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
pub const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";
/// Kafka's defaults of `group.consumer.{min,max}.session.timeout.ms` and `…heartbeat.interval.ms`.
const SESSION_BOUNDS: (i64, i64, &str, &str) = (
    45_000,
    60_000,
    "group.consumer.min.session.timeout.ms",
    "group.consumer.max.session.timeout.ms",
);
const HEARTBEAT_BOUNDS: (i64, i64, &str, &str) = (
    5_000,
    15_000,
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
);
/// Keys Kafka 4.4's GROUP resource accepts that belong to group kinds the embedded broker does not serve.
const OTHER_KINDS: &[&str] = &["share.", "streams.", "errors.deadletterqueue."];
const FILE: &str = "group-configs.json";

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

pub type Refusal = (ResponseError, String);

pub struct GroupConfigs {
    path: Option<PathBuf>,
    values: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl GroupConfigs {
    /// Opens the configs kept in `dir` (none yet, or in memory without a dir).
    pub fn open(dir: Option<&Path>) -> std::io::Result<GroupConfigs> {
        let path = dir.map(|d| d.join(FILE));
        let values = match &path {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(e),
            },
            None => BTreeMap::new(),
        };
        Ok(GroupConfigs {
            path,
            values: Mutex::new(values),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, String>>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The overrides set for `group`.
    pub fn of(&self, group: &str) -> BTreeMap<String, String> {
        self.lock().get(group).cloned().unwrap_or_default()
    }

    /// The timing of `group`'s members: its overrides over the broker's `defaults`.
    pub fn timing(&self, group: &str, defaults: ConsumerTiming) -> ConsumerTiming {
        let values = self.lock();
        let Some(overrides) = values.get(group) else {
            return defaults;
        };
        let ms = |key: &str| {
            overrides
                .get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        ConsumerTiming {
            session_timeout: ms(SESSION_TIMEOUT).unwrap_or(defaults.session_timeout),
            heartbeat_interval: ms(HEARTBEAT_INTERVAL).unwrap_or(defaults.heartbeat_interval),
        }
    }

    /// Applies IncrementalAlterConfigs operations (`(name, operation, value)`) to `group`, all or nothing;
    /// with `validate_only` nothing is kept. With a data dir the result is on disk before it applies.
    pub fn alter(
        &self,
        group: &str,
        operations: &[(String, i8, Option<String>)],
        defaults: ConsumerTiming,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let mut values = self.lock();
        let mut next = values.get(group).cloned().unwrap_or_default();
        for (name, operation, value) in operations {
            check_key(name)?;
            match (*operation, value) {
                (SET, Some(value)) => {
                    next.insert(name.clone(), value.clone());
                }
                (SET, None) => {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("Null value not supported for : {name}"),
                    ));
                }
                (DELETE, _) => {
                    next.remove(name);
                }
                (other, _) => {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Config operation {other} is not supported for {name} (it is not a list)"),
                    ));
                }
            }
        }
        validate(&next, defaults)?;
        if validate_only {
            return Ok(());
        }
        let mut all = values.clone();
        if next.is_empty() {
            all.remove(group);
        } else {
            all.insert(group.to_owned(), next);
        }
        if let Some(path) = &self.path {
            let bytes = serde_json::to_vec(&all).map_err(|e| (ResponseError::UnknownServerError, e.to_string()))?;
            let stored = (|| {
                let tmp = path.with_extension("json.tmp");
                write_synced(&tmp, &bytes)?;
                std::fs::rename(&tmp, path)?;
                path.parent().map_or(Ok(()), sync_dir)
            })();
            if let Err(e) = stored {
                tracing::error!(error = %e, "cannot store group configs");
                return Err((
                    ResponseError::KafkaStorageError,
                    format!("cannot store group configs: {e}"),
                ));
            }
        }
        *values = all;
        Ok(())
    }
}

fn check_key(name: &str) -> Result<(), Refusal> {
    if name == SESSION_TIMEOUT || name == HEARTBEAT_INTERVAL {
        return Ok(());
    }
    if OTHER_KINDS.iter().any(|prefix| name.starts_with(prefix)) {
        return Err((
            ResponseError::InvalidConfig,
            format!("{name} is not supported by the embedded broker: it serves classic and consumer groups only"),
        ));
    }
    Err((
        ResponseError::InvalidConfig,
        format!("Unknown group config name: {name}"),
    ))
}

/// Kafka's `GroupConfig.validate`: numbers within the broker's bounds, the heartbeat below the session timeout.
fn validate(values: &BTreeMap<String, String>, defaults: ConsumerTiming) -> Result<(), Refusal> {
    let number = |key: &str, (min, max, min_name, max_name): (i64, i64, &str, &str)| -> Result<Option<i64>, Refusal> {
        let Some(raw) = values.get(key) else { return Ok(None) };
        let value: i64 = raw.parse().map_err(|_| {
            (
                ResponseError::InvalidConfig,
                format!("Invalid value {raw} for configuration {key}: Not a number of type INT"),
            )
        })?;
        if value < min {
            return Err((
                ResponseError::InvalidConfig,
                format!("{key} must be greater than or equal to {min_name} ({min})"),
            ));
        }
        if value > max {
            return Err((
                ResponseError::InvalidConfig,
                format!("{key} must be less than or equal to {max_name} ({max})"),
            ));
        }
        Ok(Some(value))
    };
    let session = number(SESSION_TIMEOUT, SESSION_BOUNDS)?.unwrap_or(defaults.session_timeout.as_millis() as i64);
    let heartbeat =
        number(HEARTBEAT_INTERVAL, HEARTBEAT_BOUNDS)?.unwrap_or(defaults.heartbeat_interval.as_millis() as i64);
    if heartbeat >= session {
        return Err((
            ResponseError::InvalidConfig,
            format!("{HEARTBEAT_INTERVAL} ({heartbeat}) must be less than {SESSION_TIMEOUT} ({session})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) -> (String, i8, Option<String>) {
        (name.to_owned(), SET, Some(value.to_owned()))
    }

    #[test]
    fn overrides_apply_to_the_group_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let configs = GroupConfigs::open(Some(dir.path())).expect("open");
        let defaults = ConsumerTiming::default();
        configs
            .alter(
                "g",
                &[set(SESSION_TIMEOUT, "50000"), set(HEARTBEAT_INTERVAL, "6000")],
                defaults,
                false,
            )
            .expect("alter");
        assert_eq!(configs.timing("g", defaults).session_timeout, Duration::from_secs(50));
        assert_eq!(
            configs.timing("other", defaults).session_timeout,
            defaults.session_timeout
        );
        let reopened = GroupConfigs::open(Some(dir.path())).expect("reopen");
        assert_eq!(reopened.of("g")[HEARTBEAT_INTERVAL], "6000");
        reopened
            .alter("g", &[(SESSION_TIMEOUT.to_owned(), DELETE, None)], defaults, false)
            .expect("delete");
        assert_eq!(reopened.timing("g", defaults).session_timeout, defaults.session_timeout);
    }

    #[test]
    fn values_outside_the_bounds_unknown_keys_and_other_group_kinds_are_refused_whole() {
        let configs = GroupConfigs::open(None).expect("open");
        let defaults = ConsumerTiming::default();
        let refused =
            |ops: &[(String, i8, Option<String>)]| configs.alter("g", ops, defaults, false).expect_err("refused");
        let (error, message) = refused(&[set(SESSION_TIMEOUT, "1000")]);
        assert_eq!(error, ResponseError::InvalidConfig);
        assert!(message.contains("group.consumer.min.session.timeout.ms"), "{message}");
        assert_eq!(
            refused(&[set(HEARTBEAT_INTERVAL, "99999")]).0,
            ResponseError::InvalidConfig
        );
        assert_eq!(refused(&[set("nope", "1")]).0, ResponseError::InvalidConfig);
        assert!(
            refused(&[set("share.record.lock.duration.ms", "30000")])
                .1
                .contains("embedded broker")
        );
        assert_eq!(refused(&[set(SESSION_TIMEOUT, "abc")]).0, ResponseError::InvalidConfig);
        // One bad operation refuses the others of the request too.
        refused(&[set(HEARTBEAT_INTERVAL, "6000"), set(SESSION_TIMEOUT, "1")]);
        assert!(configs.of("g").is_empty());
        configs
            .alter("g", &[set(SESSION_TIMEOUT, "50000")], defaults, true)
            .expect("valid");
        assert!(configs.of("g").is_empty(), "validate_only keeps nothing");
    }
}
