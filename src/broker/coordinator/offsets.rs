//! Committed offsets of one group: per topic and partition, the offset, leader epoch, metadata and commit
//! time. Kept when the group empties (that is the point of committing); removed by OffsetDelete, DeleteGroups
//! and retention (`offsets.retention.minutes`).

use std::collections::BTreeMap;
use std::time::Duration;

/// Kafka's `offset.metadata.max.bytes` default: longer commit metadata is refused with OFFSET_METADATA_TOO_LARGE.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Kafka's `offsets.retention.minutes` default: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub commit_timestamp: i64,
    /// Set only by OffsetCommit v2–v4 with an explicit retention time.
    pub expire_timestamp: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    by_topic: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
}

impl Offsets {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.by_topic.get(topic)?.get(&partition)
    }

    pub fn put(&mut self, topic: &str, partition: i32, committed: CommittedOffset) {
        self.by_topic
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, committed);
    }

    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<CommittedOffset> {
        let partitions = self.by_topic.get_mut(topic)?;
        let removed = partitions.remove(&partition);
        if partitions.is_empty() {
            self.by_topic.remove(topic);
        }
        removed
    }

    /// Removes every offset of `topic`; returns the partitions that had one.
    pub fn remove_topic(&mut self, topic: &str) -> Vec<i32> {
        self.by_topic
            .remove(topic)
            .map(|partitions| partitions.into_keys().collect())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    pub fn topics(&self) -> impl Iterator<Item = (&str, &BTreeMap<i32, CommittedOffset>)> {
        self.by_topic.iter().map(|(t, p)| (t.as_str(), p))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &CommittedOffset)> {
        self.by_topic
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, c)| (t.as_str(), *p, c)))
    }

    /// Removes the offsets that retention drops at `now_ms`, as Kafka does for an Empty group: with
    /// `empty_since` (a group that had members under a protocol type) every offset goes once the group has
    /// been empty for `retention`; otherwise (offsets committed by admin tools or standalone consumers) each
    /// offset goes `retention` after its own commit. An explicit expire timestamp wins in both cases. Returns
    /// what it removed.
    pub fn expire(
        &mut self,
        now_ms: i64,
        empty_since: Option<i64>,
        retention: Duration,
    ) -> Vec<(String, i32, CommittedOffset)> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut expired = Vec::new();
        for (topic, partitions) in &self.by_topic {
            for (partition, c) in partitions {
                let due = match (c.expire_timestamp, empty_since) {
                    (Some(at), _) => at <= now_ms,
                    (None, Some(since)) => since.saturating_add(retention_ms) <= now_ms,
                    (None, None) => c.commit_timestamp.saturating_add(retention_ms) <= now_ms,
                };
                if due {
                    expired.push((topic.clone(), *partition));
                }
            }
        }
        expired
            .into_iter()
            .filter_map(|(topic, partition)| {
                let removed = self.remove(&topic, partition)?;
                Some((topic, partition, removed))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64, ts: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: ts,
            expire_timestamp: None,
        }
    }

    #[test]
    fn removing_the_last_partition_removes_the_topic() {
        let mut o = Offsets::default();
        o.put("t", 0, at(5, 0));
        assert_eq!(o.remove("t", 0).map(|c| c.offset), Some(5));
        assert_eq!(o.iter().count(), 0);
    }

    #[test]
    fn removing_a_topic_removes_all_its_partitions_and_nothing_else() {
        let mut o = Offsets::default();
        o.put("t", 0, at(1, 0));
        o.put("t", 3, at(2, 0));
        o.put("u", 0, at(3, 0));
        assert_eq!(o.remove_topic("t"), vec![0, 3]);
        assert!(o.remove_topic("t").is_empty());
        assert_eq!(
            o.iter().map(|(t, p, _)| (t.to_owned(), p)).collect::<Vec<_>>(),
            vec![("u".to_owned(), 0)]
        );
    }

    #[test]
    fn standalone_offsets_expire_per_commit_time() {
        let mut o = Offsets::default();
        o.put("t", 0, at(1, 0));
        o.put("t", 1, at(2, 5_000));
        let expired = o.expire(10_000, None, Duration::from_secs(10));
        assert_eq!(expired, vec![("t".to_owned(), 0, at(1, 0))]);
        assert!(o.get("t", 1).is_some());
    }

    #[test]
    fn offsets_of_a_group_that_had_members_expire_from_when_it_emptied() {
        let mut o = Offsets::default();
        o.put("t", 0, at(1, 0));
        assert!(o.expire(20_000, Some(15_000), Duration::from_secs(10)).is_empty());
        assert_eq!(o.expire(25_000, Some(15_000), Duration::from_secs(10)).len(), 1);
    }
}
