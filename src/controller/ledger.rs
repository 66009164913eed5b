//! Where applied OffsetResets are remembered, so that one re-created after it was applied and deleted (a TTL,
//! a GitOps sync) is not applied again. Three records, each found by the reset's name and spec hash:
//! - the namespace's `ResetLedger` (every reset; the newest 500);
//! - the ConsumerGroup's `status.resetHistory` (resets with `groupRef`; the newest 10, with the plan applied);
//! - the commit metadata in Kafka (`plan::reset_record`), which outlives the Kubernetes objects until the
//!   group commits those partitions again.
//!
//! Updates are read-modify-write at the object's resourceVersion, retried on conflict.

use super::Error;
use crate::api::ledger::{AppliedReset, LedgerEntry, ResetLedger, ResetLedgerSpec};
use crate::api::{ConsumerGroup, OffsetReset, OffsetResetSpec};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

/// The one ledger object of a namespace.
pub const LEDGER_NAME: &str = "offsetresets";
/// Entries kept: the oldest go first (the schema allows no more).
pub const MAX_ENTRIES: usize = 500;
/// Entries of a ConsumerGroup's `status.resetHistory` (the schema allows no more).
pub const MAX_HISTORY: usize = 10;
/// Partitions of a history entry's plan (the schema allows no more).
pub const MAX_HISTORY_PLAN: usize = 50;
/// The field manager of `status.resetHistory`: not the group reconciler's, so that neither erases the
/// other's fields (`status::apply_group_status`).
pub const HISTORY_FIELD_MANAGER: &str = "kafka-group-operator-reset-history";

/// A stable hash (FNV-1a) of what a reset does to the offsets: the group it names and its target — `groupRef`,
/// `clusterRef`, `groupId`, `groupType`, `topics`, `to`. How it gets there (`strategy`, `scaleTargetRef`,
/// `timeoutSeconds`, `ttlSecondsAfterFinished`, `force`) is left out: a manifest whose TTL or timeout was edited
/// in Git is still the reset that was applied, and must not run again. Absent fields are left out of the JSON
/// hashed, so a field a later version adds does not change the hash of a reset that does not use it.
pub fn spec_hash(spec: &OffsetResetSpec) -> String {
    let identity = serde_json::json!({
        "groupRef": spec.group_ref,
        "clusterRef": spec.cluster_ref,
        "groupId": spec.group_id,
        "groupType": spec.group_type,
        "topics": spec.topics,
        "to": spec.to,
    });
    let serde_json::Value::Object(fields) = identity else {
        unreachable!("a JSON object literal")
    };
    let present: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        .collect();
    let json = serde_json::to_string(&present).unwrap_or_default();
    format!("{:016x}", super::claim::stable_hash(json.as_bytes()))
}

/// The hash the ledger's first version recorded: of the whole spec. Still recognised, so that a reset the
/// `ResetLedger` recorded before the upgrade is not applied again after it.
fn whole_spec_hash(spec: &OffsetResetSpec) -> String {
    let json = serde_json::to_string(spec).unwrap_or_default();
    format!("{:016x}", super::claim::stable_hash(json.as_bytes()))
}

/// A reset as the records know it: its name, the hashes a record of it may carry (computed once per lookup,
/// not once per entry), and its UID.
struct Identity {
    name: String,
    hashes: [String; 2],
    uid: Option<String>,
}

impl Identity {
    fn of(reset: &OffsetReset) -> Identity {
        Identity {
            name: reset.name_any(),
            hashes: [spec_hash(&reset.spec), whole_spec_hash(&reset.spec)],
            uid: reset.metadata.uid.clone(),
        }
    }

    /// Whether a record of (`name`, `hash`, `uid`) is an earlier application: same name and spec, another
    /// object.
    fn is_earlier(&self, name: &str, hash: &str, uid: &str) -> bool {
        name == self.name && self.hashes.iter().any(|h| h == hash) && Some(uid) != self.uid.as_deref()
    }
}

/// The entry that says `reset` (same name and spec, another object) was applied before, if any.
pub fn applied_before<'a>(entries: &'a [LedgerEntry], reset: &OffsetReset) -> Option<&'a LedgerEntry> {
    let identity = Identity::of(reset);
    entries
        .iter()
        .rev()
        .find(|e| identity.is_earlier(&e.name, &e.spec_hash, &e.uid))
}

/// The ConsumerGroup history entry that says `reset` was applied before, if any.
pub fn applied_before_in_history<'a>(history: &'a [AppliedReset], reset: &OffsetReset) -> Option<&'a AppliedReset> {
    let identity = Identity::of(reset);
    history
        .iter()
        .rev()
        .find(|e| identity.is_earlier(&e.name, &e.spec_hash, &e.uid))
}

/// When and where the Kubernetes records say `reset` was applied before, in words: the namespace's
/// `ResetLedger`, then — for a reset with `groupRef` — its ConsumerGroup's `status.resetHistory`. The operator
/// (before a new reset acts) and `plan`/`apply` ask the same.
pub async fn recorded_in_kubernetes(
    kube: &kube::Client,
    namespace: &str,
    reset: &OffsetReset,
) -> Result<Option<String>, Error> {
    let entries = Ledger::new(kube, namespace).entries().await?;
    if let Some(e) = applied_before(&entries, reset) {
        return Ok(Some(format!(
            "{} (uid {}, recorded in ResetLedger {LEDGER_NAME} of namespace {namespace})",
            e.applied_at.0, e.uid
        )));
    }
    let Some(group_ref) = &reset.spec.group_ref else {
        return Ok(None);
    };
    let groups: Api<ConsumerGroup> = Api::namespaced(kube.clone(), namespace);
    let history = groups
        .get_opt(&group_ref.name)
        .await?
        .and_then(|g| g.status)
        .map(|s| s.reset_history)
        .unwrap_or_default();
    Ok(applied_before_in_history(&history, reset).map(|e| {
        format!(
            "{} (uid {}, recorded in ConsumerGroup {} status.resetHistory)",
            e.applied_at.0, e.uid, group_ref.name
        )
    }))
}

/// Adds (or keeps) the history entry of `entry.uid`, dropping the oldest beyond `MAX_HISTORY`.
pub fn with_history_entry(mut history: Vec<AppliedReset>, mut entry: AppliedReset) -> Vec<AppliedReset> {
    if history.iter().any(|e| e.uid == entry.uid) {
        return history;
    }
    entry.plan.truncate(MAX_HISTORY_PLAN);
    history.push(entry);
    let excess = history.len().saturating_sub(MAX_HISTORY);
    history.drain(..excess);
    history
}

/// Adds (or keeps) the entry of `entry.uid`, dropping the oldest beyond `MAX_ENTRIES`.
pub fn with_entry(mut entries: Vec<LedgerEntry>, entry: LedgerEntry) -> Vec<LedgerEntry> {
    if entries.iter().any(|e| e.uid == entry.uid) {
        return entries;
    }
    entries.push(entry);
    let excess = entries.len().saturating_sub(MAX_ENTRIES);
    entries.drain(..excess);
    entries
}

pub struct Ledger {
    api: Api<ResetLedger>,
}

impl Ledger {
    pub fn new(kube: &kube::Client, namespace: &str) -> Ledger {
        Ledger {
            api: Api::namespaced(kube.clone(), namespace),
        }
    }

    pub async fn entries(&self) -> Result<Vec<LedgerEntry>, Error> {
        Ok(self
            .api
            .get_opt(LEDGER_NAME)
            .await?
            .map(|l| l.spec.entries)
            .unwrap_or_default())
    }

    /// Records an applied reset (idempotent per uid).
    pub async fn record(&self, entry: LedgerEntry) -> Result<(), Error> {
        let mut last = None;
        for _ in 0..5 {
            let result = match self.api.get_opt(LEDGER_NAME).await? {
                None => {
                    let ledger = ResetLedger {
                        metadata: ObjectMeta {
                            name: Some(LEDGER_NAME.to_owned()),
                            ..Default::default()
                        },
                        spec: ResetLedgerSpec {
                            entries: vec![entry.clone()],
                        },
                    };
                    self.api.create(&PostParams::default(), &ledger).await.map(|_| ())
                }
                Some(mut ledger) => {
                    if ledger.spec.entries.iter().any(|e| e.uid == entry.uid) {
                        return Ok(());
                    }
                    ledger.spec.entries = with_entry(std::mem::take(&mut ledger.spec.entries), entry.clone());
                    // `replace` carries the resourceVersion read: a concurrent writer makes it a 409.
                    self.api
                        .replace(LEDGER_NAME, &PostParams::default(), &ledger)
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => last = Some(kube::Error::Api(s)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(Error::from)
            .unwrap_or_else(|| Error::Config("the ledger kept changing".into())))
    }
}

/// Records an applied reset in its ConsumerGroup's `status.resetHistory` (idempotent per uid). A group that
/// no longer exists has no history to keep.
pub async fn record_in_group_history(
    kube: &kube::Client,
    namespace: &str,
    group: &str,
    entry: AppliedReset,
) -> Result<(), Error> {
    let api: Api<ConsumerGroup> = Api::namespaced(kube.clone(), namespace);
    let mut last = None;
    for _ in 0..5 {
        let Some(current) = api.get_opt(group).await? else {
            return Ok(());
        };
        let history = current.status.map(|s| s.reset_history).unwrap_or_default();
        if history.iter().any(|e| e.uid == entry.uid) {
            return Ok(());
        }
        // The resourceVersion read is a precondition: an entry written meanwhile by another reset is kept (409,
        // read again), never overwritten by this list.
        let patch = serde_json::json!({
            "apiVersion": ConsumerGroup::api_version(&()),
            "kind": ConsumerGroup::kind(&()),
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "status": {"resetHistory": with_history_entry(history, entry.clone())},
        });
        match api
            .patch_status(
                group,
                &PatchParams::apply(HISTORY_FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => last = Some(kube::Error::Api(s)),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .map(Error::from)
        .unwrap_or_else(|| Error::Config("the ConsumerGroup kept changing".into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::time_from_ms;

    fn entry(name: &str, uid: &str, hash: &str) -> LedgerEntry {
        LedgerEntry {
            name: name.into(),
            uid: uid.into(),
            spec_hash: hash.into(),
            group_id: None,
            applied_at: time_from_ms(0),
        }
    }

    #[test]
    fn the_ledger_keeps_each_uid_once_and_drops_the_oldest_beyond_its_limit() {
        let mut entries = Vec::new();
        for i in 0..(MAX_ENTRIES + 10) {
            entries = with_entry(entries, entry("r", &i.to_string(), "h"));
        }
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert_eq!(entries[0].uid, "10");
        let again = with_entry(entries.clone(), entry("r", "10", "h"));
        assert_eq!(again, entries);
    }

    fn spec(value: serde_json::Value) -> OffsetResetSpec {
        serde_json::from_value(value).expect("spec")
    }

    #[test]
    fn the_hash_covers_what_a_reset_does_not_how() {
        let base = spec(serde_json::json!({"clusterRef": {"name": "c"}, "groupId": "g", "to": {"earliest": {}}}));
        let how = spec(
            serde_json::json!({"clusterRef": {"name": "c"}, "groupId": "g", "to": {"earliest": {}},
            "ttlSecondsAfterFinished": 60, "timeoutSeconds": 30, "force": true, "strategy": "ScaleDown",
            "scaleTargetRef": {"kind": "Deployment", "name": "d"}}),
        );
        assert_eq!(spec_hash(&base), spec_hash(&how));
        for what in [
            serde_json::json!({"clusterRef": {"name": "c"}, "groupId": "g", "to": {"latest": {}}}),
            serde_json::json!({"clusterRef": {"name": "c"}, "groupId": "h", "to": {"earliest": {}}}),
            serde_json::json!({"clusterRef": {"name": "d"}, "groupId": "g", "to": {"earliest": {}}}),
            serde_json::json!({"clusterRef": {"name": "c"}, "groupId": "g", "to": {"earliest": {}}, "topics": [{"name": "t"}]}),
            serde_json::json!({"clusterRef": {"name": "c"}, "groupId": "g", "to": {"earliest": {}}, "groupType": "share"}),
        ] {
            assert_ne!(spec_hash(&base), spec_hash(&spec(what.clone())), "{what}");
        }
        // The value recorded for this spec in every release: a change here re-runs applied resets.
        assert_eq!(spec_hash(&base), spec_hash(&base.clone()));
    }

    #[test]
    fn a_ledger_entry_of_the_first_version_is_still_recognised() {
        let reset: OffsetReset = serde_json::from_value(serde_json::json!({
            "apiVersion": "kafkagroups.dev/v1alpha1", "kind": "OffsetReset",
            "metadata": {"name": "rewind", "uid": "new"},
            "spec": {"clusterRef": {"name": "c"}, "groupId": "g", "to": {"shiftBy": -5}}
        }))
        .expect("reset");
        let legacy = whole_spec_hash(&reset.spec);
        assert_ne!(legacy, spec_hash(&reset.spec));
        assert!(applied_before(&[entry("rewind", "old", &legacy)], &reset).is_some());
    }

    #[test]
    fn a_reset_is_known_by_name_and_spec_not_by_uid() {
        let reset: OffsetReset = serde_json::from_value(serde_json::json!({
            "apiVersion": "kafkagroups.dev/v1alpha1", "kind": "OffsetReset",
            "metadata": {"name": "rewind", "uid": "new"},
            "spec": {"clusterRef": {"name": "c"}, "groupId": "g", "to": {"shiftBy": -5}}
        }))
        .expect("reset");
        let hash = spec_hash(&reset.spec);
        assert!(applied_before(&[entry("rewind", "old", &hash)], &reset).is_some());
        assert!(
            applied_before(&[entry("rewind", "new", &hash)], &reset).is_none(),
            "itself"
        );
        assert!(
            applied_before(&[entry("rewind", "old", "other")], &reset).is_none(),
            "another spec"
        );
        assert!(
            applied_before(&[entry("other", "old", &hash)], &reset).is_none(),
            "another name"
        );
    }
}
