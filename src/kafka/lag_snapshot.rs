//! The lag snapshot: for a set of groups, committed offset, log end offset and lag per partition, with one
//! OffsetFetch per coordinator and one ListOffsets per partition leader.

use super::client::KafkaClient;
use super::error::KafkaError;
use super::groups::GroupOffsets;
use super::metadata::TopicPartition;
use super::offsets::{Isolation, OffsetSpec};
use crate::lag::high_watermark_lag;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    /// Shared with every other group's partitions of the topic (`TopicPartition::topic`).
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub committed: i64,
    /// `None` when the partition's end could not be read (e.g. the topic was deleted).
    pub log_end: Option<i64>,
    /// `log_end - committed`, never negative.
    pub lag: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupLag {
    pub group: String,
    pub partitions: Vec<PartitionLag>,
    /// Sum of the known partition lags.
    pub total_lag: i64,
}

#[derive(Clone, Debug, Default)]
pub struct LagSnapshot {
    /// Groups whose offsets could be read (a group without committed offsets has no partitions).
    pub groups: BTreeMap<String, GroupLag>,
    /// Groups whose offsets could not be read, with why.
    pub errors: BTreeMap<String, KafkaError>,
    /// Log end offsets read for this snapshot (shared by all groups).
    pub log_ends: BTreeMap<TopicPartition, i64>,
}

impl LagSnapshot {
    pub fn total_lag(&self) -> i64 {
        self.groups.values().map(|g| g.total_lag).sum()
    }
}

impl KafkaClient {
    /// Committed offsets of every group (batched per coordinator), then the log end offsets of every
    /// partition they committed on (batched per leader), joined per group.
    pub async fn lag_snapshot(&self, groups: &[String], isolation: Isolation) -> Result<LagSnapshot, KafkaError> {
        let committed = self.committed_offsets(groups).await;
        let mut snapshot = LagSnapshot::default();
        let mut offsets: BTreeMap<String, GroupOffsets> = BTreeMap::new();
        for (group, result) in committed {
            match result {
                Ok(o) => {
                    offsets.insert(group, o);
                }
                Err(e) => {
                    snapshot.errors.insert(group, e);
                }
            }
        }
        let partitions: BTreeSet<TopicPartition> = offsets.values().flat_map(|o| o.keys().cloned()).collect();
        snapshot.log_ends = self.log_ends_of(&partitions, isolation).await?;
        for (group, group_offsets) in offsets {
            let partitions: Vec<PartitionLag> = group_offsets
                .into_iter()
                .map(|(tp, c)| {
                    let log_end = snapshot.log_ends.get(&tp).copied();
                    PartitionLag {
                        lag: log_end.map(|end| high_watermark_lag(c.offset, end)),
                        topic: tp.topic,
                        partition: tp.partition,
                        committed: c.offset,
                        log_end,
                    }
                })
                .collect();
            let total_lag = partitions.iter().filter_map(|p| p.lag).sum();
            snapshot.groups.insert(
                group.clone(),
                GroupLag {
                    group,
                    partitions,
                    total_lag,
                },
            );
        }
        Ok(snapshot)
    }

    /// Log end offsets of `partitions` (one ListOffsets per leader). Partitions of topics that no longer
    /// exist have no log end: they are left out rather than failing the scan.
    pub(super) async fn log_ends_of(
        &self,
        partitions: &BTreeSet<TopicPartition>,
        isolation: Isolation,
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let metadata = self.metadata().await?;
        let mut known: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| metadata.leader(tp).is_some())
            .cloned()
            .collect();
        if known.len() < partitions.len() {
            let fresh = self.refresh_metadata().await?;
            known = partitions
                .iter()
                .filter(|tp| fresh.leader(tp).is_some())
                .cloned()
                .collect();
        }
        if known.is_empty() {
            return Ok(BTreeMap::new());
        }
        let ends = self.list_offsets(&known, OffsetSpec::Latest, isolation).await?;
        Ok(ends.into_iter().map(|(tp, o)| (tp, o.offset)).collect())
    }
}
