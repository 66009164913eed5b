//! The sliding window: the last N samples of every partition, fed once per interval by the controller.
//! Partitions that vanish from a push are dropped; the evaluation and rates only ever see what is here.
//!
//! Stored by column because the operator keeps one window per managed group, each with every partition of its
//! topics (5,000 groups × 50 partitions × 10 samples in the scale benchmark): a push stamps every partition at
//! the same instant, and a partition missing from a push is dropped, so every partition's samples are the
//! last few pushes of its window. The push times are kept once per window, the committed offsets and log
//! ends in one ring per partition inside two arrays per window, the consumable lag only while a partition
//! has one (transactional topics), and the record timestamp only for the newest sample (the only one whose
//! time lag is read). 16 bytes a sample, about 200 bytes a partition with its key and state.

use std::collections::BTreeMap;

use super::{
    LagStatus, Rates, Sample, evaluate_partition, group_status, interpolated_time_lag_ms, partition_rates, time_lag_ms,
};

/// Ten samples, as Burrow's default window.
pub const DEFAULT_WINDOW: usize = 10;

/// A sample and when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub at_ms: i64,
    pub sample: Sample,
}

/// `None` as stored: no offset or timestamp is `i64::MIN`.
const ABSENT: i64 = i64::MIN;

fn pack(v: Option<i64>) -> i64 {
    v.unwrap_or(ABSENT)
}

fn unpack(v: i64) -> Option<i64> {
    (v != ABSENT).then_some(v)
}

/// What a partition keeps beside its rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PartitionState {
    /// How many of the window's last pushes it has (0 only while a push is adding it).
    len: u16,
    committed_since_ms: i64,
    /// The newest sample's `committed_record_ms`, packed.
    newest_record_ms: i64,
}

/// The last `capacity` samples of each partition, keyed by anything ordered (e.g. `(topic, partition)`).
#[derive(Clone, Debug)]
pub struct Window<K> {
    capacity: u16,
    /// Pushes so far (a push at the newest push's instant or earlier replaces it): push `p` sits in slot
    /// `p % capacity` of every ring.
    pushes: u64,
    /// When each slot's push was taken.
    times: Box<[i64]>,
    /// Sorted; row `r` of the columns below is `keys[r]`'s.
    keys: Vec<K>,
    states: Vec<PartitionState>,
    /// `capacity` slots per row.
    committed: Vec<i64>,
    log_end: Vec<i64>,
    /// `capacity` slots per row while some partition has a measured consumable lag; empty otherwise.
    consumable: Vec<i64>,
}

/// One partition's recent samples, oldest first; never empty. A view into its [`Window`].
#[derive(Clone, Copy, Debug)]
pub struct PartitionHistory<'a> {
    capacity: u16,
    pushes: u64,
    times: &'a [i64],
    committed: &'a [i64],
    log_end: &'a [i64],
    consumable: Option<&'a [i64]>,
    state: PartitionState,
}

/// Equal when they hold the same samples (wherever they sit in the ring) since the same moment.
impl PartialEq for PartitionHistory<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.state.committed_since_ms == other.state.committed_since_ms
            && self.capacity == other.capacity
            && self.samples() == other.samples()
    }
}

impl Eq for PartitionHistory<'_> {}

impl PartitionHistory<'_> {
    /// Ring slot of the `i`-th sample, oldest first.
    fn slot(&self, i: u16) -> usize {
        let push = self.pushes - u64::from(self.state.len) + u64::from(i);
        (push % u64::from(self.capacity)) as usize
    }

    fn observed(&self, i: u16) -> Observed {
        let slot = self.slot(i);
        let newest = i + 1 == self.state.len;
        Observed {
            at_ms: self.times[slot],
            sample: Sample {
                committed: unpack(self.committed[slot]),
                log_end: self.log_end[slot],
                committed_record_ms: if newest {
                    unpack(self.state.newest_record_ms)
                } else {
                    None
                },
                consumable: self.consumable.and_then(|c| unpack(c[slot])),
            },
        }
    }

    /// The samples, oldest first. Only the newest keeps its record timestamp (`committed_record_ms`).
    pub fn samples(&self) -> Vec<Observed> {
        (0..self.state.len).map(|i| self.observed(i)).collect()
    }

    pub fn latest(&self) -> Option<Observed> {
        self.state.len.checked_sub(1).map(|i| self.observed(i))
    }

    /// The window holds as many samples as it can: only then do "over the whole window" rules apply.
    pub fn is_full(&self) -> bool {
        self.state.len >= self.capacity
    }

    /// When the committed offset was first seen at its current value: a lower bound of how long the group
    /// has not committed progress, kept beyond the window so that long stops are measured.
    pub fn committed_since_ms(&self) -> i64 {
        self.state.committed_since_ms
    }

    /// (time, log end) pairs, oldest first: the input of [`interpolated_time_lag_ms`].
    pub fn log_ends(&self) -> Vec<(i64, i64)> {
        (0..self.state.len)
            .map(|i| {
                let slot = self.slot(i);
                (self.times[slot], self.log_end[slot])
            })
            .collect()
    }

    /// The exact time lag of the newest sample.
    pub fn time_lag_ms(&self, now_ms: i64) -> Option<i64> {
        self.latest().and_then(|o| time_lag_ms(&o.sample, now_ms))
    }

    /// Kafka Lag Exporter's estimate for the newest committed offset, from this window's log ends.
    pub fn interpolated_time_lag_ms(&self, now_ms: i64) -> Option<i64> {
        let committed = self.latest()?.sample.committed?;
        interpolated_time_lag_ms(&self.log_ends(), committed, now_ms)
    }
}

/// What the group's status and the scaler need, summed over the partitions.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupLag {
    /// Messages behind, over the partitions with a committed offset.
    pub total_lag: i64,
    pub partitions: usize,
    pub lagging_partitions: usize,
    /// The largest exact time lag among partitions where it is known.
    pub max_time_lag_ms: Option<i64>,
    pub rates: Rates,
    pub status: LagStatus,
}

impl<K: Ord + Clone> Default for Window<K> {
    fn default() -> Self {
        Window::new(DEFAULT_WINDOW)
    }
}

/// Equal when they hold the same partitions with the same samples.
impl<K: Ord + Clone> PartialEq for Window<K> {
    fn eq(&self, other: &Self) -> bool {
        self.capacity == other.capacity && self.partitions().eq(other.partitions())
    }
}

impl<K: Ord + Clone> Eq for Window<K> {}

impl<K: Ord + Clone> Window<K> {
    /// At least two samples: rates need two, and a window of one would call every lagging partition stalled.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(2, usize::from(u16::MAX)) as u16;
        Window {
            capacity,
            pushes: 0,
            times: vec![0; usize::from(capacity)].into_boxed_slice(),
            keys: Vec::new(),
            states: Vec::new(),
            committed: Vec::new(),
            log_end: Vec::new(),
            consumable: Vec::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        usize::from(self.capacity)
    }

    fn cap(&self) -> usize {
        usize::from(self.capacity)
    }

    fn newest_slot(&self) -> usize {
        (self.pushes.saturating_sub(1) % u64::from(self.capacity)) as usize
    }

    /// Records one interval's samples. A partition missing from `samples` (topic deleted, or no longer
    /// declared) is dropped with its history.
    pub fn push(&mut self, now_ms: i64, samples: BTreeMap<K, Sample>) {
        // A second push at the same instant (or a clock that stepped back) replaces the newest push rather
        // than making a zero or negative interval that rates would divide by.
        let replace = self.pushes > 0 && self.times[self.newest_slot()] >= now_ms;
        let previous_slot = self.newest_slot();
        if !replace {
            self.pushes += 1;
        }
        let slot = self.newest_slot();
        self.times[slot] = now_ms;
        // In place while the partitions stay the same (every interval, mostly): no reallocation.
        if !self.keys.iter().eq(samples.keys()) {
            self.relayout(&samples);
        }
        if self.consumable.is_empty() && samples.values().any(|s| s.consumable.is_some()) {
            self.consumable = vec![ABSENT; self.committed.len()];
        }
        let cap = self.cap();
        for (row, sample) in samples.into_values().enumerate() {
            let state = &mut self.states[row];
            let at = row * cap + slot;
            // Before this push, the newest sample sits in this slot when it is replaced.
            let newest_committed = if replace {
                self.committed[at]
            } else {
                self.committed[row * cap + previous_slot]
            };
            if state.len == 0 || unpack(newest_committed) != sample.committed {
                state.committed_since_ms = now_ms;
            }
            if !replace || state.len == 0 {
                state.len = (state.len + 1).min(self.capacity);
            }
            state.newest_record_ms = pack(sample.committed_record_ms);
            self.committed[at] = pack(sample.committed);
            self.log_end[at] = sample.log_end;
            if let Some(c) = self.consumable.get_mut(at) {
                *c = pack(sample.consumable);
            }
        }
        if self.consumable.iter().all(|&c| c == ABSENT) {
            self.consumable = Vec::new();
        }
    }

    /// Rebuilds the rows for `samples`' partitions: kept ones with their rings, new ones empty.
    fn relayout(&mut self, samples: &BTreeMap<K, Sample>) {
        let cap = self.cap();
        let rows = samples.len();
        let mut keys = Vec::with_capacity(rows);
        let mut states = Vec::with_capacity(rows);
        let mut committed = Vec::with_capacity(rows * cap);
        let mut log_end = Vec::with_capacity(rows * cap);
        let mut consumable = Vec::with_capacity(if self.consumable.is_empty() { 0 } else { rows * cap });
        let empty = PartitionState {
            len: 0,
            committed_since_ms: 0,
            newest_record_ms: ABSENT,
        };
        for key in samples.keys() {
            match self.keys.binary_search(key) {
                Ok(row) => {
                    let ring = row * cap..(row + 1) * cap;
                    states.push(self.states[row]);
                    committed.extend_from_slice(&self.committed[ring.clone()]);
                    log_end.extend_from_slice(&self.log_end[ring.clone()]);
                    if !self.consumable.is_empty() {
                        consumable.extend_from_slice(&self.consumable[ring]);
                    }
                }
                Err(_) => {
                    states.push(empty);
                    committed.resize(committed.len() + cap, ABSENT);
                    log_end.resize(log_end.len() + cap, 0);
                    if !self.consumable.is_empty() {
                        consumable.resize(consumable.len() + cap, ABSENT);
                    }
                }
            }
            keys.push(key.clone());
        }
        self.keys = keys;
        self.states = states;
        self.committed = committed;
        self.log_end = log_end;
        self.consumable = consumable;
    }

    fn history(&self, row: usize) -> PartitionHistory<'_> {
        let ring = row * self.cap()..(row + 1) * self.cap();
        PartitionHistory {
            capacity: self.capacity,
            pushes: self.pushes,
            times: &self.times,
            committed: &self.committed[ring.clone()],
            log_end: &self.log_end[ring.clone()],
            consumable: (!self.consumable.is_empty()).then(|| &self.consumable[ring]),
            state: self.states[row],
        }
    }

    pub fn partition(&self, key: &K) -> Option<PartitionHistory<'_>> {
        self.keys.binary_search(key).ok().map(|row| self.history(row))
    }

    pub fn partitions(&self) -> impl Iterator<Item = (&K, PartitionHistory<'_>)> {
        self.keys.iter().enumerate().map(|(row, k)| (k, self.history(row)))
    }

    fn histories(&self) -> impl Iterator<Item = PartitionHistory<'_>> {
        (0..self.keys.len()).map(|row| self.history(row))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each partition's status at `now_ms`.
    pub fn evaluate(&self, now_ms: i64, stop_after_ms: i64) -> BTreeMap<K, LagStatus> {
        self.partitions()
            .map(|(k, h)| (k.clone(), evaluate_partition(h, now_ms, stop_after_ms)))
            .collect()
    }

    /// Consumption and production summed over the partitions that have a rate; None where none has.
    pub fn group_rates(&self) -> Rates {
        let rates: Vec<Rates> = self.histories().map(partition_rates).collect();
        let sum = |pick: fn(&Rates) -> Option<f64>| {
            rates
                .iter()
                .filter_map(pick)
                .fold(None, |acc: Option<f64>, r| Some(acc.unwrap_or(0.0) + r))
        };
        Rates {
            consumption: sum(|r| r.consumption),
            production: sum(|r| r.production),
        }
    }

    pub fn summary(&self, now_ms: i64, stop_after_ms: i64) -> GroupLag {
        let latest = || self.histories().filter_map(|h| h.latest().map(|o| o.sample));
        GroupLag {
            total_lag: latest().filter_map(|s| s.lag()).sum(),
            partitions: self.len(),
            lagging_partitions: latest().filter(|s| s.lag().is_some_and(|l| l > 0)).count(),
            max_time_lag_ms: self.histories().filter_map(|h| h.time_lag_ms(now_ms)).max(),
            rates: self.group_rates(),
            status: group_status(self.histories().map(|h| evaluate_partition(h, now_ms, stop_after_ms))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(committed: i64, log_end: i64) -> Sample {
        Sample {
            committed: Some(committed),
            log_end,
            committed_record_ms: None,
            consumable: None,
        }
    }

    fn one(key: u8, s: Sample) -> BTreeMap<u8, Sample> {
        BTreeMap::from([(key, s)])
    }

    #[test]
    fn the_window_keeps_the_last_n_samples_oldest_first() {
        let mut w = Window::new(3);
        for i in 0..5 {
            w.push(i * 1000, one(0, at(i, 10)));
        }
        let h = w.partition(&0).expect("partition 0");
        let times: Vec<i64> = h.samples().iter().map(|o| o.at_ms).collect();
        assert_eq!(times, vec![2000, 3000, 4000]);
        assert!(h.is_full());
    }

    #[test]
    fn a_full_window_that_replaces_its_newest_sample_keeps_the_order() {
        let mut w = Window::new(3);
        for i in 0..7 {
            w.push(i * 1000, one(0, at(i, 10)));
        }
        w.push(6000, one(0, at(9, 10)));
        w.push(7000, one(0, at(10, 10)));
        let h = w.partition(&0).expect("partition 0");
        let seen: Vec<(i64, Option<i64>)> = h.samples().iter().map(|o| (o.at_ms, o.sample.committed)).collect();
        assert_eq!(seen, vec![(5000, Some(5)), (6000, Some(9)), (7000, Some(10))]);
        assert_eq!(h.latest().map(|o| o.sample.committed), Some(Some(10)));
        assert_eq!(h.log_ends(), vec![(5000, 10), (6000, 10), (7000, 10)]);
        let mut same = Window::new(3);
        for (t, c) in [(5000, 5), (6000, 9), (7000, 10)] {
            same.push(t, one(0, at(c, 10)));
        }
        assert_eq!(
            same.partition(&0).map(|h| h.samples()),
            w.partition(&0).map(|h| h.samples())
        );
    }

    #[test]
    fn absent_offsets_and_timestamps_survive_storage() {
        let mut w = Window::new(2);
        let s = Sample {
            committed: None,
            log_end: 4,
            committed_record_ms: None,
            consumable: None,
        };
        w.push(1000, one(0, s));
        assert_eq!(w.partition(&0).and_then(|h| h.latest()).map(|o| o.sample), Some(s));
    }

    #[test]
    fn a_window_holds_at_least_two_samples() {
        assert_eq!(Window::<u8>::new(0).capacity(), 2);
        assert_eq!(Window::<u8>::default().capacity(), DEFAULT_WINDOW);
    }

    #[test]
    fn partitions_missing_from_a_push_are_dropped() {
        let mut w = Window::new(3);
        w.push(0, BTreeMap::from([(0u8, at(1, 2)), (1, at(1, 2))]));
        w.push(1000, one(1, at(2, 2)));
        assert!(w.partition(&0).is_none());
        assert_eq!(w.partition(&1).map(|h| h.samples().len()), Some(2));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn a_push_at_the_same_instant_replaces_the_newest_sample() {
        let mut w = Window::new(3);
        w.push(1000, one(0, at(1, 5)));
        w.push(1000, one(0, at(2, 5)));
        w.push(900, one(0, at(3, 5)));
        let h = w.partition(&0).expect("partition 0");
        assert_eq!(
            h.samples(),
            &[Observed {
                at_ms: 900,
                sample: at(3, 5)
            }]
        );
    }

    #[test]
    fn committed_since_survives_the_window_and_moves_on_every_commit() {
        let mut w = Window::new(2);
        for t in 0..5 {
            w.push(t * 1000, one(0, at(7, 10)));
        }
        assert_eq!(w.partition(&0).map(|h| h.committed_since_ms()), Some(0));
        w.push(5000, one(0, at(8, 10)));
        assert_eq!(w.partition(&0).map(|h| h.committed_since_ms()), Some(5000));
    }

    #[test]
    fn the_summary_adds_lag_and_rates_over_partitions() {
        let mut w = Window::new(3);
        let s = |c, e, ts| Sample {
            committed: Some(c),
            log_end: e,
            committed_record_ms: ts,
            consumable: None,
        };
        w.push(0, BTreeMap::from([(0u8, s(0, 100, Some(0))), (1, s(50, 50, None))]));
        w.push(
            10_000,
            BTreeMap::from([(0u8, s(100, 300, Some(5_000))), (1, s(60, 60, None))]),
        );
        let g = w.summary(10_000, 60_000);
        assert_eq!((g.total_lag, g.partitions, g.lagging_partitions), (200, 2, 1));
        assert_eq!(g.max_time_lag_ms, Some(5_000));
        assert_eq!(
            g.rates,
            Rates {
                consumption: Some(11.0),
                production: Some(21.0)
            }
        );
        assert_eq!(g.status, LagStatus::Ok);
    }

    #[test]
    fn a_partition_gives_both_time_lags_of_its_newest_sample() {
        let mut w = Window::new(3);
        let s = |c, e, ts| Sample {
            committed: Some(c),
            log_end: e,
            committed_record_ms: Some(ts),
            consumable: None,
        };
        w.push(1000, one(0, s(0, 100, 0)));
        w.push(2000, one(0, s(149, 200, 1450)));
        let h = w.partition(&0).expect("partition 0");
        assert_eq!(h.time_lag_ms(3000), Some(1550));
        assert_eq!(h.interpolated_time_lag_ms(3000), Some(1500));
    }

    #[test]
    fn a_partition_that_joins_later_holds_only_the_pushes_since_and_a_dropped_one_starts_over() {
        let mut w = Window::new(3);
        for t in 0..5 {
            let mut samples = one(0, at(t, 10));
            if t >= 3 {
                samples.insert(1, at(100 + t, 200));
            }
            if t != 2 {
                samples.insert(2, at(t, 10));
            }
            w.push(t * 1000, samples);
        }
        let times = |k: u8| {
            w.partition(&k)
                .map(|h| h.samples().iter().map(|o| o.at_ms).collect::<Vec<_>>())
        };
        assert_eq!(times(0), Some(vec![2000, 3000, 4000]));
        assert_eq!(times(1), Some(vec![3000, 4000]));
        assert_eq!(times(2), Some(vec![3000, 4000]), "dropped at t=2, back at t=3");
        let h = w.partition(&1).expect("partition 1");
        assert_eq!(h.log_ends(), vec![(3000, 200), (4000, 200)]);
        assert_eq!(h.latest().map(|o| o.sample), Some(at(104, 200)));
        assert!(!h.is_full());
        assert_eq!(w.partitions().map(|(k, _)| *k).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn consumable_lag_is_kept_while_a_partition_has_one_and_record_times_only_for_the_newest_sample() {
        let mut w = Window::new(3);
        let s = |c, consumable, ts| Sample {
            committed: Some(c),
            log_end: 10,
            committed_record_ms: ts,
            consumable,
        };
        w.push(
            1000,
            BTreeMap::from([(0u8, s(1, None, Some(1))), (1, s(1, None, None))]),
        );
        w.push(
            2000,
            BTreeMap::from([(0u8, s(2, Some(3), Some(2))), (1, s(2, None, None))]),
        );
        w.push(
            3000,
            BTreeMap::from([(0u8, s(3, Some(2), Some(3))), (1, s(3, None, None))]),
        );
        let h = w.partition(&0).expect("partition 0");
        let seen: Vec<(Option<i64>, Option<i64>)> = h
            .samples()
            .iter()
            .map(|o| (o.sample.consumable, o.sample.committed_record_ms))
            .collect();
        assert_eq!(seen, vec![(None, None), (Some(3), None), (Some(2), Some(3))]);
        assert_eq!(
            w.partition(&1).and_then(|h| h.latest()).map(|o| o.sample.consumable),
            Some(None)
        );
        assert_eq!(w.summary(3000, 60_000).total_lag, 2 + 7);
        // Once no sample in the window has one, the column goes.
        for t in 4..7 {
            w.push(
                t * 1000,
                BTreeMap::from([(0u8, s(t, None, None)), (1, s(t, None, None))]),
            );
        }
        assert!(w.consumable.is_empty());
        assert_eq!(
            w.partition(&0).and_then(|h| h.latest()).map(|o| o.sample.lag()),
            Some(Some(4))
        );
    }

    #[test]
    fn steady_pushes_reuse_the_windows_storage() {
        let mut w = Window::new(10);
        let samples = |t: i64| (0..50u8).map(|p| (p, at(t, t + 5))).collect::<BTreeMap<_, _>>();
        w.push(0, samples(0));
        let (committed, log_end) = (w.committed.as_ptr(), w.log_end.as_ptr());
        assert_eq!(w.committed.capacity(), 50 * 10);
        for t in 1..25 {
            w.push(t * 1000, samples(t));
        }
        assert_eq!((w.committed.as_ptr(), w.log_end.as_ptr()), (committed, log_end));
        assert_eq!(w.partition(&49).map(|h| h.samples().len()), Some(10));
    }

    #[test]
    fn group_rates_are_unknown_until_a_partition_has_two_samples() {
        let mut w = Window::new(3);
        w.push(0, one(0u8, at(0, 0)));
        assert_eq!(
            w.group_rates(),
            Rates {
                consumption: None,
                production: None
            }
        );
    }
}
