//! A ConsumerGroup's `spec.config` on Kafka: reads the group's configs once per reconcile, sets what differs,
//! deletes the keys this resource set and no longer declares, and reports the outcome in `ConfigInSync`.
//!
//! Groups that declare no config and own no keys cost no request at all. A config Kafka refuses (a value outside
//! the broker's `group.*.min/max` bounds, a key it does not know) is remembered in the condition with the
//! generation it was refused for, and not sent again until the spec changes: no retry loop against a value
//! that cannot succeed.

use super::status::{apply_group_status, now};
use super::{Context, Error};
use crate::api::ConsumerGroup;
use crate::api::ConsumerGroupStatus;
use crate::api::conditions::{condition, find, set_condition};
use crate::kafka::error::error_name;
use crate::kafka::{GroupConfigChange, KafkaClient, KafkaError};
use crate::plan::group_config::{ConfigPlan, desired_config, plan_config};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kafka_protocol::error::ResponseError;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;
use std::collections::{BTreeMap, BTreeSet};

pub const CONFIG_IN_SYNC: &str = "ConfigInSync";
/// `ConfigInSync` reasons.
pub const IN_SYNC: &str = "InSync";
pub const APPLIED: &str = "Applied";
pub const DRIFT_CORRECTED: &str = "DriftCorrected";
pub const REFUSED: &str = "Refused";
pub const NOT_AUTHORIZED: &str = "NotAuthorized";
pub const FAILED: &str = "Failed";

type PendingEvents = Vec<(EventType, &'static str, &'static str, String)>;

/// What this reconcile does about configs, before asking Kafka anything.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing declared, nothing owned: no request, no condition.
    Nothing,
    /// Kafka refused this generation's config: wait for the spec to change.
    WaitForSpecChange,
    /// Read the group's configs and converge.
    Check,
}

fn step(
    desired: &BTreeMap<String, String>,
    owned: &BTreeSet<String>,
    previous: Option<&Condition>,
    generation: Option<i64>,
) -> Step {
    if desired.is_empty() && owned.is_empty() {
        return Step::Nothing;
    }
    if previous.is_some_and(|c| c.status == "False" && c.reason == REFUSED && c.observed_generation == generation) {
        return Step::WaitForSpecChange;
    }
    Step::Check
}

/// Brings the Kafka group's configs to `desired_config(spec)` and records the outcome in `status`
/// (`configKeys`, `ConfigInSync`) and `events`. Kafka errors become the condition, not an error of the
/// reconcile (the group is still observed); only a failed status write is returned.
pub async fn reconcile_config(
    api: &Api<ConsumerGroup>,
    client: &KafkaClient,
    group: &ConsumerGroup,
    ctx: &Context,
    status: &mut ConsumerGroupStatus,
    events: &mut PendingEvents,
) -> Result<(), Error> {
    let generation = group.metadata.generation;
    let group_id = group.group_id();
    let desired = desired_config(&group.spec);
    let owned: BTreeSet<String> = status.config_keys.iter().cloned().collect();
    let previous = find(&status.conditions, CONFIG_IN_SYNC).cloned();
    match step(&desired, &owned, previous.as_ref(), generation) {
        Step::Nothing => {
            status.conditions.retain(|c| c.type_ != CONFIG_IN_SYNC);
            return Ok(());
        }
        Step::WaitForSpecChange => return Ok(()),
        Step::Check => {}
    }
    let (ns, name) = (group.namespace().unwrap_or_default(), group.name_any());
    let mut outcome = Outcome {
        status,
        events,
        previous: previous.as_ref(),
        generation,
    };

    ctx.metrics.group_config_request(&ns, &name, "DescribeConfigs");
    let current = match client.describe_group_config(&group_id).await {
        Ok(current) => current,
        Err(e) => {
            outcome.failed(&group_id, &e);
            return Ok(());
        }
    };
    let plan = plan_config(&desired, &owned, &current);
    let was_in_sync = previous
        .as_ref()
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation);
    if plan.is_empty() {
        outcome.status.config_keys = ConfigPlan::owned_after(&desired).into_iter().collect();
        if desired.is_empty() {
            outcome.status.conditions.retain(|c| c.type_ != CONFIG_IN_SYNC);
        } else if !was_in_sync {
            outcome.set(
                true,
                IN_SYNC,
                format!("group {group_id} has the {} declared config(s)", desired.len()),
            );
        }
        return Ok(());
    }

    // Keys about to be set are recorded first: should the operator stop between the change and the status
    // write, the next reconcile still knows they are this resource's to delete.
    let claimed: BTreeSet<String> = owned.iter().chain(plan.set.keys()).cloned().collect();
    if claimed != owned {
        let mut before = group.status.clone().unwrap_or_default();
        before.config_keys = claimed.iter().cloned().collect();
        apply_group_status(api, group, &before).await?;
    }
    let changes: Vec<GroupConfigChange> = plan
        .set
        .iter()
        .map(|(key, value)| GroupConfigChange::Set {
            key: key.clone(),
            value: value.clone(),
        })
        .chain(
            plan.delete
                .iter()
                .map(|key| GroupConfigChange::Delete { key: key.clone() }),
        )
        .collect();
    let what = describe_changes(&plan, &current);
    ctx.metrics.group_config_request(&ns, &name, "IncrementalAlterConfigs");
    match client.alter_group_config(&group_id, &changes).await {
        Ok(()) => {
            outcome.status.config_keys = ConfigPlan::owned_after(&desired).into_iter().collect();
            if was_in_sync {
                let note =
                    format!("the configs of group {group_id} were changed outside the operator; restored: {what}");
                outcome.set(true, DRIFT_CORRECTED, note.clone());
                outcome
                    .events
                    .push((EventType::Warning, "ConfigDriftCorrected", "ApplyConfig", note));
            } else {
                let note = format!("applied to group {group_id}: {what}");
                if desired.is_empty() {
                    outcome.status.conditions.retain(|c| c.type_ != CONFIG_IN_SYNC);
                } else {
                    outcome.set(true, APPLIED, note.clone());
                }
                outcome
                    .events
                    .push((EventType::Normal, "ConfigApplied", "ApplyConfig", note));
            }
        }
        // Kafka applies a group's changes all or none: nothing of this plan was applied.
        Err(KafkaError::GroupConfigRefused { error, message, .. }) if !is_authorization_code(error) => {
            outcome.status.config_keys = owned.into_iter().collect();
            let note = format!(
                "Kafka refused the configs of group {group_id} ({}): {message}. Nothing was changed; fix spec.config (it is tried again when the spec changes)",
                error_name(&error)
            );
            outcome.set(false, REFUSED, note.clone());
            outcome
                .events
                .push((EventType::Warning, "ConfigRefused", "ApplyConfig", note));
            // Recorded at once, not only when this reconcile ends (it may still wait for the group's first
            // sample): the claim written above queued another reconcile, which must find the refusal in the
            // object it is handed, or it would send the refused config a second time.
            let mut refused = group.status.clone().unwrap_or_default();
            refused.config_keys = outcome.status.config_keys.clone();
            if let Some(c) = find(&outcome.status.conditions, CONFIG_IN_SYNC) {
                set_condition(&mut refused.conditions, c.clone());
            }
            apply_group_status(api, group, &refused).await?;
        }
        Err(e) => {
            // The change may or may not have reached Kafka: keep claiming its keys.
            outcome.status.config_keys = claimed.into_iter().collect();
            outcome.failed(&group_id, &e);
        }
    }
    Ok(())
}

/// Where the outcome of one reconcile goes.
struct Outcome<'a> {
    status: &'a mut ConsumerGroupStatus,
    events: &'a mut PendingEvents,
    previous: Option<&'a Condition>,
    generation: Option<i64>,
}

impl Outcome<'_> {
    fn set(&mut self, ok: bool, reason: &str, message: String) {
        set_condition(
            &mut self.status.conditions,
            condition(CONFIG_IN_SYNC, ok, reason, message, self.generation, now()),
        );
    }

    /// A Kafka error other than a refusal: the condition says so (an Event on the first time), and the next
    /// reconcile tries again.
    fn failed(&mut self, group_id: &str, error: &KafkaError) {
        let reason = if is_authorization(error) {
            NOT_AUTHORIZED
        } else {
            FAILED
        };
        let note = format!("cannot bring the configs of group {group_id} in sync: {error}");
        let again = self.previous.is_some_and(|c| c.status == "False" && c.reason == reason);
        self.set(false, reason, note.clone());
        if !again {
            self.events
                .push((EventType::Warning, "ConfigFailed", "ApplyConfig", note));
        }
    }
}

fn is_authorization(error: &KafkaError) -> bool {
    error.code().is_some_and(is_authorization_code)
}

fn is_authorization_code(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::GroupAuthorizationFailed
            | ResponseError::ClusterAuthorizationFailed
            | ResponseError::TopicAuthorizationFailed
    )
}

/// The plan in words: `set consumer.session.timeout.ms=50000 (was 45000), deleted share.isolation.level`.
fn describe_changes(plan: &ConfigPlan, current: &BTreeMap<String, String>) -> String {
    plan.set
        .iter()
        .map(|(key, value)| match current.get(key) {
            Some(was) => format!("set {key}={value} (was {was})"),
            None => format!("set {key}={value} (was unset)"),
        })
        .chain(plan.delete.iter().map(|key| format!("deleted {key}")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn previous(ok: bool, reason: &str, generation: i64) -> Condition {
        let at = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        condition(CONFIG_IN_SYNC, ok, reason, "", Some(generation), at)
    }

    #[test]
    fn a_group_without_configs_costs_no_request() {
        assert_eq!(step(&BTreeMap::new(), &BTreeSet::new(), None, Some(1)), Step::Nothing);
        // Keys set earlier and no longer declared must still be deleted.
        let owned = BTreeSet::from(["consumer.session.timeout.ms".to_owned()]);
        assert_eq!(step(&BTreeMap::new(), &owned, None, Some(2)), Step::Check);
    }

    #[test]
    fn a_refused_config_is_tried_again_only_for_a_new_generation() {
        let desired = map(&[("consumer.session.timeout.ms", "1000")]);
        let refused = previous(false, REFUSED, 3);
        assert_eq!(
            step(&desired, &BTreeSet::new(), Some(&refused), Some(3)),
            Step::WaitForSpecChange
        );
        assert_eq!(step(&desired, &BTreeSet::new(), Some(&refused), Some(4)), Step::Check);
        // Other failures (Kafka unreachable, not authorized) are tried again every reconcile.
        let failed = previous(false, FAILED, 3);
        assert_eq!(step(&desired, &BTreeSet::new(), Some(&failed), Some(3)), Step::Check);
    }

    #[test]
    fn changes_are_described_with_the_values_they_replace() {
        let plan = ConfigPlan {
            set: map(&[
                ("consumer.session.timeout.ms", "50000"),
                ("share.auto.offset.reset", "earliest"),
            ]),
            delete: BTreeSet::from(["consumer.heartbeat.interval.ms".to_owned()]),
        };
        let current = map(&[("consumer.session.timeout.ms", "45000")]);
        assert_eq!(
            describe_changes(&plan, &current),
            "set consumer.session.timeout.ms=50000 (was 45000), set share.auto.offset.reset=earliest (was unset), deleted consumer.heartbeat.interval.ms"
        );
    }
}
