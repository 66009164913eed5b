//! `spec.offsetInit`: which partitions of the group's topics get an initial committed offset, and when.
//! Only partitions without any committed offset, and only while the group has no members, so the operator
//! never fights a live consumer (a consumer commits what it consumed; the operator never overwrites it).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitPolicy {
    Earliest,
    Latest,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetInitDecision<K> {
    /// Every partition has a committed offset, or the policy is `none`.
    NothingToDo,
    /// Commit these starting offsets now.
    Commit(BTreeMap<K, i64>),
    /// Partitions lack offsets but the group has members; try again once it is empty.
    WaitForEmptyGroup(Vec<K>),
    /// The start offset of these partitions is unknown (e.g. their leader is unavailable); try again later.
    StartUnknown(Vec<K>),
}

/// Decides what to commit for `partitions` (every partition of the declared topics), given which already
/// have a committed offset, whether the group is inactive, and each partition's log start (for `earliest`)
/// or log end (for `latest`) in `start_offsets`.
pub fn plan_offset_init<K: Ord + Clone>(
    policy: InitPolicy,
    partitions: &[K],
    committed: &BTreeSet<K>,
    group_inactive: bool,
    start_offsets: &BTreeMap<K, i64>,
) -> OffsetInitDecision<K> {
    if policy == InitPolicy::None {
        return OffsetInitDecision::NothingToDo;
    }
    let missing: Vec<K> = partitions.iter().filter(|p| !committed.contains(*p)).cloned().collect();
    if missing.is_empty() {
        return OffsetInitDecision::NothingToDo;
    }
    if !group_inactive {
        return OffsetInitDecision::WaitForEmptyGroup(missing);
    }
    let unknown: Vec<K> = missing
        .iter()
        .filter(|p| !start_offsets.contains_key(*p))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return OffsetInitDecision::StartUnknown(unknown);
    }
    OffsetInitDecision::Commit(missing.into_iter().map(|p| (p.clone(), start_offsets[&p])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[u8]) -> BTreeSet<u8> {
        keys.iter().copied().collect()
    }

    fn offsets(pairs: &[(u8, i64)]) -> BTreeMap<u8, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn policy_none_never_commits() {
        let d = plan_offset_init(InitPolicy::None, &[0, 1], &set(&[]), true, &offsets(&[(0, 5), (1, 5)]));
        assert_eq!(d, OffsetInitDecision::NothingToDo);
    }

    #[test]
    fn only_partitions_without_offsets_are_committed() {
        let d = plan_offset_init(
            InitPolicy::Earliest,
            &[0, 1, 2],
            &set(&[1]),
            true,
            &offsets(&[(0, 3), (1, 3), (2, 7)]),
        );
        assert_eq!(d, OffsetInitDecision::Commit(offsets(&[(0, 3), (2, 7)])));
    }

    #[test]
    fn a_group_with_members_is_left_alone_until_it_is_empty() {
        let d = plan_offset_init(InitPolicy::Latest, &[0, 1], &set(&[0]), false, &offsets(&[(1, 9)]));
        assert_eq!(d, OffsetInitDecision::WaitForEmptyGroup(vec![1]));
    }

    #[test]
    fn nothing_to_do_when_every_partition_has_an_offset() {
        let d = plan_offset_init(InitPolicy::Latest, &[0, 1], &set(&[0, 1]), false, &offsets(&[]));
        assert_eq!(d, OffsetInitDecision::NothingToDo);
    }

    #[test]
    fn unknown_start_offsets_postpone_the_commit() {
        let d = plan_offset_init(InitPolicy::Earliest, &[0, 1], &set(&[]), true, &offsets(&[(0, 0)]));
        assert_eq!(d, OffsetInitDecision::StartUnknown(vec![1]));
    }
}
