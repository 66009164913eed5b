//! The record an applied OffsetReset leaves in Kafka itself: the metadata string of every offset it commits.
//! It names the reset (namespace, name, UID), a hash of its spec and when it was applied, so that a reset
//! re-created after the Kubernetes objects that remember it are gone (a namespace restored from a backup, an
//! application synced into a new cluster of the same Kafka) is recognised from the group's committed offsets.
//!
//! It lasts as long as those commits: a consumer committing a partition again replaces its metadata (clients
//! commit with their own, usually empty, metadata). The namespace's `ResetLedger` and the ConsumerGroup's
//! `status.resetHistory` keep the record after that.

use crate::kafka::GroupOffsets;
use serde::{Deserialize, Serialize};

/// What the commit metadata says of the reset that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRecord {
    /// Always `kafka-group-operator`: tells our metadata from a client's.
    #[serde(rename = "appliedBy")]
    pub applied_by: String,
    #[serde(rename = "ns")]
    pub namespace: String,
    pub name: String,
    pub uid: String,
    #[serde(rename = "specHash")]
    pub spec_hash: String,
    /// RFC 3339.
    #[serde(rename = "appliedAt")]
    pub applied_at: String,
}

const APPLIED_BY: &str = "kafka-group-operator";
/// The UID `kafka-group-operator apply` records: the command line has no object, and a record with this UID
/// never equals an OffsetReset's (so the operator recognises a reset `apply` ran first, and vice versa).
pub const COMMAND_LINE_UID: &str = "kafka-group-operator-cli";
/// Kafka refuses metadata longer than `offset.metadata.max.bytes` (4096 by default) with
/// OFFSET_METADATA_TOO_LARGE; names are bounded far below that (namespace 63, name 253).
const MAX_METADATA_BYTES: usize = 1024;

impl ResetRecord {
    pub fn new(namespace: &str, name: &str, uid: &str, spec_hash: &str, applied_at: &str) -> ResetRecord {
        ResetRecord {
            applied_by: APPLIED_BY.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            spec_hash: spec_hash.to_owned(),
            applied_at: applied_at.to_owned(),
        }
    }

    /// The metadata string committed with each offset (empty if it would be too long to commit safely).
    pub fn to_commit_metadata(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        if json.len() > MAX_METADATA_BYTES {
            return String::new();
        }
        json
    }

    /// When and by whom, in words for a condition, an Event or `plan`: `<time> (uid …, namespace …; recorded
    /// in the commit metadata of group G)`.
    pub fn describe(&self, group: &str) -> String {
        let by = if self.uid == COMMAND_LINE_UID {
            "kafka-group-operator apply".to_owned()
        } else {
            format!("uid {}, namespace {}", self.uid, self.namespace)
        };
        format!(
            "{} ({by}; recorded in the commit metadata of group {group})",
            self.applied_at
        )
    }

    /// The record in a committed offset's metadata, if it is one of ours.
    pub fn from_commit_metadata(metadata: &str) -> Option<ResetRecord> {
        if !metadata.starts_with('{') || metadata.len() > MAX_METADATA_BYTES {
            return None;
        }
        serde_json::from_str::<ResetRecord>(metadata)
            .ok()
            .filter(|r| r.applied_by == APPLIED_BY)
    }
}

/// The record, in the group's committed offsets, of an earlier reset with this name and spec (another UID
/// than `own_uid`: a reset never matches itself). The newest such record wins.
pub fn applied_in_kafka(offsets: &GroupOffsets, name: &str, spec_hash: &str, own_uid: &str) -> Option<ResetRecord> {
    offsets
        .values()
        .filter_map(|c| ResetRecord::from_commit_metadata(&c.metadata))
        .filter(|r| r.name == name && r.spec_hash == spec_hash && r.uid != own_uid)
        .max_by(|a, b| a.applied_at.cmp(&b.applied_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{CommittedOffset, TopicPartition};

    fn offsets(metadata: &[&str]) -> GroupOffsets {
        metadata
            .iter()
            .enumerate()
            .map(|(p, m)| {
                (
                    TopicPartition::new("t", p as i32),
                    CommittedOffset {
                        offset: 5,
                        leader_epoch: None,
                        metadata: (*m).to_owned(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_record_round_trips_through_the_commit_metadata() {
        let record = ResetRecord::new("team-a", "rewind-2026-12-07", "uid-1", "abc", "2026-12-07T10:00:00Z");
        let metadata = record.to_commit_metadata();
        assert!(
            metadata.contains("\"appliedBy\":\"kafka-group-operator\""),
            "{metadata}"
        );
        assert_eq!(ResetRecord::from_commit_metadata(&metadata), Some(record));
    }

    #[test]
    fn a_clients_metadata_is_not_a_record() {
        for m in [
            "",
            "client-metadata",
            "{}",
            "{\"appliedBy\":\"someone-else\",\"ns\":\"a\",\"name\":\"n\",\"uid\":\"u\",\"specHash\":\"h\",\"appliedAt\":\"t\"}",
            "{not json",
        ] {
            assert_eq!(ResetRecord::from_commit_metadata(m), None, "{m}");
        }
    }

    #[test]
    fn an_earlier_reset_of_the_same_name_and_spec_is_found_but_never_itself() {
        let old = ResetRecord::new("ns", "rewind", "old", "h1", "2026-12-01T00:00:00Z").to_commit_metadata();
        let newer = ResetRecord::new("ns", "rewind", "older", "h1", "2026-12-02T00:00:00Z").to_commit_metadata();
        let group = offsets(&[&old, "", &newer]);
        let found = applied_in_kafka(&group, "rewind", "h1", "new").expect("found");
        assert_eq!(found.uid, "older", "the newest record wins");
        assert_eq!(applied_in_kafka(&group, "rewind", "h2", "new"), None, "another spec");
        assert_eq!(applied_in_kafka(&group, "other", "h1", "new"), None, "another name");
        let only_itself = offsets(&[&old]);
        assert_eq!(applied_in_kafka(&only_itself, "rewind", "h1", "old"), None, "itself");
    }

    #[test]
    fn a_record_too_long_to_commit_is_left_out() {
        let long = "n".repeat(2000);
        assert_eq!(ResetRecord::new("ns", &long, "u", "h", "t").to_commit_metadata(), "");
    }
}
