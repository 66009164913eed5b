//! `spec.config`: the group configs (Kafka's config resource GROUP) a ConsumerGroup declares, and what to change
//! on Kafka so that the group has them. Authoritative only for the keys the resource declares or set before
//! (`status.configKeys`); a key someone else set and the resource never declared is left alone.

use crate::api::ConsumerGroupSpec;
use std::collections::{BTreeMap, BTreeSet};

/// The configs the group should have: the keys other fields of the spec imply, then `spec.config` (a key the
/// spec declares itself wins over an implied one).
pub fn desired_config(spec: &ConsumerGroupSpec) -> BTreeMap<String, String> {
    // One entry per key another field of the spec implies, `None` when it implies nothing; for example a
    // share group's `offsetInit.policy` as `share.auto.offset.reset`.
    let implied: &[Option<(&str, String)>] = &[share_offset_reset(spec).map(|v| ("share.auto.offset.reset", v))];
    let mut desired: BTreeMap<String, String> = implied
        .iter()
        .flatten()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    desired.extend(spec.config.iter().map(|(k, v)| (k.clone(), v.clone())));
    desired
}

/// A share group (`spec.type: share`) has no committed offsets to initialize: where its consumers start on a
/// partition without a share-partition state is the group config `share.auto.offset.reset`, which `offsetInit`
/// sets (`none` leaves it to the broker's default, `latest`).
fn share_offset_reset(spec: &ConsumerGroupSpec) -> Option<String> {
    use crate::api::{DeclaredGroupType, OffsetInitPolicy};
    if spec.group_type != Some(DeclaredGroupType::Share) {
        return None;
    }
    match spec.offset_init.as_ref()?.policy {
        OffsetInitPolicy::Earliest => Some("earliest".to_owned()),
        OffsetInitPolicy::Latest => Some("latest".to_owned()),
        OffsetInitPolicy::None => None,
    }
}

/// What to change on Kafka.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigPlan {
    /// Keys to set: declared and missing on the group, or set to another value.
    pub set: BTreeMap<String, String>,
    /// Keys to delete: set by this resource earlier, no longer declared, still on the group.
    pub delete: BTreeSet<String>,
}

impl ConfigPlan {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }

    /// The keys the resource owns once the plan is applied: exactly the declared ones.
    pub fn owned_after(desired: &BTreeMap<String, String>) -> BTreeSet<String> {
        desired.keys().cloned().collect()
    }
}

/// Compares what the group has (`current`: the values set on the group itself, not the broker's defaults)
/// with what is `desired`; `owned` are the keys this resource set before (`status.configKeys`).
pub fn plan_config(
    desired: &BTreeMap<String, String>,
    owned: &BTreeSet<String>,
    current: &BTreeMap<String, String>,
) -> ConfigPlan {
    let set = desired
        .iter()
        .filter(|(key, value)| !current.get(*key).is_some_and(|have| same_value(have, value)))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let delete = owned
        .iter()
        .filter(|key| !desired.contains_key(*key) && current.contains_key(*key))
        .cloned()
        .collect();
    ConfigPlan { set, delete }
}

/// Whether Kafka's value is the declared one: the same text, or the same number written differently (`050000`
/// and `50000`), so that a value the broker normalizes is not "corrected" on every reconcile.
fn same_value(have: &str, want: &str) -> bool {
    have == want || matches!((have.trim().parse::<i64>(), want.trim().parse::<i64>()), (Ok(a), Ok(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn keys(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|k| (*k).to_owned()).collect()
    }

    const SESSION: &str = "consumer.session.timeout.ms";
    const HEARTBEAT: &str = "consumer.heartbeat.interval.ms";

    #[test]
    fn the_desired_config_is_what_the_spec_declares() {
        let spec: ConsumerGroupSpec = serde_json::from_value(serde_json::json!({
            "clusterRef": {"name": "main"},
            "config": {SESSION: "50000"}
        }))
        .expect("spec");
        assert_eq!(desired_config(&spec), map(&[(SESSION, "50000")]));
    }

    #[test]
    fn a_share_groups_offset_init_is_its_share_auto_offset_reset_unless_declared_otherwise() {
        let spec = |extra: serde_json::Value| -> ConsumerGroupSpec {
            let mut v = serde_json::json!({"clusterRef": {"name": "main"}});
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            serde_json::from_value(v).expect("spec")
        };
        let key = "share.auto.offset.reset";
        let share = |policy: &str| spec(serde_json::json!({"type": "share", "offsetInit": {"policy": policy}}));
        assert_eq!(desired_config(&share("earliest")), map(&[(key, "earliest")]));
        assert_eq!(desired_config(&share("latest")), map(&[(key, "latest")]));
        assert_eq!(desired_config(&share("none")), map(&[]));
        // Consumer groups commit initial offsets instead; nothing implied.
        let consumer = spec(serde_json::json!({"topics": ["t"], "offsetInit": {"policy": "earliest"}}));
        assert_eq!(desired_config(&consumer), map(&[]));
        // spec.config wins.
        let both = spec(
            serde_json::json!({"type": "share", "offsetInit": {"policy": "earliest"},
            "config": {key: "by_duration:PT1H"}}),
        );
        assert_eq!(desired_config(&both), map(&[(key, "by_duration:PT1H")]));
    }

    #[test]
    fn declared_keys_that_are_missing_or_different_are_set() {
        let desired = map(&[(SESSION, "50000"), (HEARTBEAT, "6000")]);
        let plan = plan_config(&desired, &keys(&[]), &map(&[(HEARTBEAT, "7000")]));
        assert_eq!(plan.set, desired);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn a_group_that_has_the_declared_values_needs_nothing() {
        let desired = map(&[(SESSION, "50000")]);
        let current = map(&[(SESSION, "50000"), ("share.auto.offset.reset", "earliest")]);
        assert!(plan_config(&desired, &keys(&[SESSION]), &current).is_empty());
        // The same number written differently is the same value.
        assert!(plan_config(&map(&[(SESSION, "050000")]), &keys(&[]), &current).is_empty());
    }

    #[test]
    fn only_owned_keys_that_are_no_longer_declared_are_deleted() {
        let desired = map(&[(SESSION, "50000")]);
        let current = map(&[
            (SESSION, "50000"),
            (HEARTBEAT, "6000"),
            ("share.isolation.level", "read_committed"),
        ]);
        // HEARTBEAT was set by this resource; share.isolation.level by someone else.
        let plan = plan_config(&desired, &keys(&[SESSION, HEARTBEAT]), &current);
        assert_eq!(plan.delete, keys(&[HEARTBEAT]));
        assert!(plan.set.is_empty());
        // An owned key someone already removed needs no delete.
        let plan = plan_config(&desired, &keys(&[SESSION, "consumer.assignment.interval.ms"]), &current);
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn nothing_declared_deletes_every_owned_key_and_owns_none() {
        let current = map(&[(SESSION, "50000"), (HEARTBEAT, "6000")]);
        let plan = plan_config(&BTreeMap::new(), &keys(&[SESSION]), &current);
        assert_eq!(plan.delete, keys(&[SESSION]));
        assert!(ConfigPlan::owned_after(&BTreeMap::new()).is_empty());
    }
}
