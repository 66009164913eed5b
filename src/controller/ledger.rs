//! The namespace's `ResetLedger`: which OffsetResets (name + spec) were applied, so that one re-created after
//! it was applied and deleted is not applied again. Updates are read-modify-write at the object's
//! resourceVersion, retried on conflict.

use super::Error;
use crate::api::ledger::{LedgerEntry, ResetLedger, ResetLedgerSpec};
use crate::api::{OffsetReset, OffsetResetSpec};
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};

/// The one ledger object of a namespace.
pub const LEDGER_NAME: &str = "offsetresets";
/// Entries kept: the oldest go first (the schema allows no more).
pub const MAX_ENTRIES: usize = 500;

/// A stable hash of a reset's spec (FNV-1a over its JSON, whose field order the type fixes).
pub fn spec_hash(spec: &OffsetResetSpec) -> String {
    let json = serde_json::to_string(spec).unwrap_or_default();
    format!("{:016x}", super::claim::stable_hash(json.as_bytes()))
}

/// The entry that says `reset` (same name and spec, another object) was applied before, if any.
pub fn applied_before<'a>(entries: &'a [LedgerEntry], reset: &OffsetReset) -> Option<&'a LedgerEntry> {
    let hash = spec_hash(&reset.spec);
    let uid = reset.uid().unwrap_or_default();
    entries
        .iter()
        .rev()
        .find(|e| e.name == reset.name_any() && e.spec_hash == hash && e.uid != uid)
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
