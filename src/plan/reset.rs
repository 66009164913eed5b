//! The reset plan: where each partition's committed offset moves for one OffsetReset target, resolved the
//! way `kafka-consumer-groups.sh --reset-offsets` resolves it, clamping included: a target before the log
//! start moves to the log start and one beyond the log end to the log end, and the plan says so.

use crate::api::IsolationLevel;
use std::collections::BTreeMap;

/// A reset target, resolved enough to plan: time-based targets arrive as the offsets Kafka found for the
/// timestamp (ListOffsets), since looking them up is I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetTarget<K> {
    Earliest,
    Latest,
    /// The same offset for every partition.
    Offset(i64),
    /// The first offset at or after a time, per partition as Kafka answered (-1 where no record is that
    /// late: the tool then uses the log end).
    AtTime(BTreeMap<K, i64>),
    /// Current committed offset plus N (negative to rewind).
    ShiftBy(i64),
    /// Explicit offsets per partition.
    Explicit(BTreeMap<K, i64>),
}

/// Which bound a target was clamped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clamp {
    ToLogStart,
    ToLogEnd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPartition<K> {
    pub partition: K,
    /// The committed offset before the reset, if there was one.
    pub from: Option<i64>,
    pub to: i64,
    pub clamped: Option<Clamp>,
}

impl<K> PlannedPartition<K> {
    /// `to - from`, when there was a committed offset.
    pub fn delta(&self) -> Option<i64> {
        self.from.map(|f| self.to - f)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError<K: std::fmt::Debug> {
    #[error("partition {0:?} has no committed offset to shift from")]
    NothingToShift(K),
    #[error("no offset given for partition {0:?}")]
    MissingExplicitOffset(K),
    #[error("the log start or end of partition {0:?} is unknown")]
    UnknownLogBounds(K),
    #[error("no partitions to reset")]
    NoPartitions,
}

/// The end a reset plans to (`latest`) and clamps at, per partition: the last stable offset for a group that
/// reads committed, the high watermark for one declared `readUncommitted`. Undeclared, a partition whose last
/// stable offset is behind its high watermark has an open transaction, so its topic carries transactional
/// batches and the group is treated as `readCommitted` (the sampler's rule); elsewhere the two are equal.
pub fn reset_log_end<K: Ord + Clone>(
    declared: Option<IsolationLevel>,
    high_watermark: &BTreeMap<K, i64>,
    last_stable: &BTreeMap<K, i64>,
) -> BTreeMap<K, i64> {
    high_watermark
        .iter()
        .map(|(p, hw)| {
            let end = match (declared, last_stable.get(p)) {
                (Some(IsolationLevel::ReadUncommitted), _) | (_, None) => *hw,
                (_, Some(lso)) => (*lso).min(*hw),
            };
            (p.clone(), end)
        })
        .collect()
}

/// Plans the reset of `partitions`. `committed` holds the group's committed offsets, `log_start` and
/// `log_end` each partition's bounds.
pub fn plan_reset<K: Ord + Clone + std::fmt::Debug>(
    target: &ResetTarget<K>,
    partitions: &[K],
    committed: &BTreeMap<K, i64>,
    log_start: &BTreeMap<K, i64>,
    log_end: &BTreeMap<K, i64>,
) -> Result<Vec<PlannedPartition<K>>, PlanError<K>> {
    if partitions.is_empty() {
        return Err(PlanError::NoPartitions);
    }
    partitions
        .iter()
        .map(|p| {
            let (start, end) = match (log_start.get(p), log_end.get(p)) {
                (Some(s), Some(e)) => (*s, *e),
                _ => return Err(PlanError::UnknownLogBounds(p.clone())),
            };
            let from = committed.get(p).copied();
            let requested = match target {
                ResetTarget::Earliest => start,
                ResetTarget::Latest => end,
                ResetTarget::Offset(o) => *o,
                ResetTarget::AtTime(found) => match found.get(p) {
                    Some(o) if *o >= 0 => *o,
                    _ => end,
                },
                ResetTarget::ShiftBy(n) => from
                    .ok_or_else(|| PlanError::NothingToShift(p.clone()))?
                    .saturating_add(*n),
                ResetTarget::Explicit(offsets) => *offsets
                    .get(p)
                    .ok_or_else(|| PlanError::MissingExplicitOffset(p.clone()))?,
            };
            let (to, clamped) = if requested < start {
                (start, Some(Clamp::ToLogStart))
            } else if requested > end {
                (end, Some(Clamp::ToLogEnd))
            } else {
                (requested, None)
            };
            Ok(PlannedPartition {
                partition: p.clone(),
                from,
                to,
                clamped,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(u8, i64)]) -> BTreeMap<u8, i64> {
        pairs.iter().copied().collect()
    }

    /// Partition 0: log [10, 100), committed 50. Partition 1: log [0, 20), committed 5. Partition 2: log
    /// [0, 0) (empty), no commit.
    fn plan(target: ResetTarget<u8>, partitions: &[u8]) -> Result<Vec<PlannedPartition<u8>>, PlanError<u8>> {
        plan_reset(
            &target,
            partitions,
            &map(&[(0, 50), (1, 5)]),
            &map(&[(0, 10), (1, 0), (2, 0)]),
            &map(&[(0, 100), (1, 20), (2, 0)]),
        )
    }

    fn tos(plan: &[PlannedPartition<u8>]) -> Vec<(i64, Option<Clamp>)> {
        plan.iter().map(|p| (p.to, p.clamped)).collect()
    }

    #[test]
    fn latest_for_a_read_committed_group_is_the_last_stable_offset() {
        use IsolationLevel::*;
        let hw = BTreeMap::from([(0, 20), (1, 9)]);
        let lso = BTreeMap::from([(0, 12), (1, 9)]);
        let cases = [
            (Some(ReadCommitted), [12, 9]),
            // Undeclared: an open transaction (LSO < HW) means a transactional topic, so readCommitted.
            (None, [12, 9]),
            (Some(ReadUncommitted), [20, 9]),
        ];
        for (declared, want) in cases {
            let end = reset_log_end(declared, &hw, &lso);
            assert_eq!([end[&0], end[&1]], want, "{declared:?}");
        }
        // No last stable offset known: the high watermark.
        assert_eq!(reset_log_end(Some(ReadCommitted), &hw, &BTreeMap::new())[&0], 20);
    }

    #[test]
    fn earliest_and_latest_take_the_log_bounds() {
        assert_eq!(
            tos(&plan(ResetTarget::Earliest, &[0, 1, 2]).expect("plan")),
            vec![(10, None), (0, None), (0, None)]
        );
        assert_eq!(
            tos(&plan(ResetTarget::Latest, &[0, 1, 2]).expect("plan")),
            vec![(100, None), (20, None), (0, None)]
        );
    }

    #[test]
    fn an_offset_beyond_the_log_is_clamped_and_says_so() {
        let p = plan(ResetTarget::Offset(15), &[0, 1]).expect("plan");
        assert_eq!(tos(&p), vec![(15, None), (15, None)]);
        let p = plan(ResetTarget::Offset(5), &[0, 1]).expect("plan");
        assert_eq!(tos(&p), vec![(10, Some(Clamp::ToLogStart)), (5, None)]);
        let p = plan(ResetTarget::Offset(500), &[0, 1]).expect("plan");
        assert_eq!(tos(&p), vec![(100, Some(Clamp::ToLogEnd)), (20, Some(Clamp::ToLogEnd))]);
    }

    #[test]
    fn shift_by_moves_from_the_committed_offset_within_the_log() {
        let p = plan(ResetTarget::ShiftBy(-45), &[0, 1]).expect("plan");
        assert_eq!(
            tos(&p),
            vec![(10, Some(Clamp::ToLogStart)), (0, Some(Clamp::ToLogStart))]
        );
        assert_eq!(p[0].delta(), Some(-40));
        let p = plan(ResetTarget::ShiftBy(10), &[0, 1]).expect("plan");
        assert_eq!(tos(&p), vec![(60, None), (15, None)]);
    }

    #[test]
    fn shift_by_needs_a_committed_offset() {
        assert_eq!(plan(ResetTarget::ShiftBy(1), &[2]), Err(PlanError::NothingToShift(2)));
    }

    #[test]
    fn a_time_with_no_record_that_late_falls_back_to_the_log_end() {
        let p = plan(ResetTarget::AtTime(map(&[(0, 42), (1, -1)])), &[0, 1]).expect("plan");
        assert_eq!(tos(&p), vec![(42, None), (20, None)]);
    }

    #[test]
    fn explicit_offsets_are_clamped_and_must_cover_every_partition() {
        let p = plan(ResetTarget::Explicit(map(&[(0, 7), (1, 3)])), &[0, 1]).expect("plan");
        assert_eq!(tos(&p), vec![(10, Some(Clamp::ToLogStart)), (3, None)]);
        assert_eq!(
            plan(ResetTarget::Explicit(map(&[(0, 7)])), &[0, 1]),
            Err(PlanError::MissingExplicitOffset(1))
        );
    }

    #[test]
    fn from_is_the_committed_offset_or_none() {
        let p = plan(ResetTarget::Earliest, &[1, 2]).expect("plan");
        assert_eq!((p[0].from, p[1].from), (Some(5), None));
        assert_eq!(p[1].delta(), None);
    }

    #[test]
    fn unknown_bounds_and_empty_selections_are_errors() {
        assert_eq!(plan(ResetTarget::Earliest, &[9]), Err(PlanError::UnknownLogBounds(9)));
        assert_eq!(plan(ResetTarget::Earliest, &[]), Err(PlanError::NoPartitions));
    }
}
