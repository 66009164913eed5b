//! The sliding window: the last N samples of every partition, fed once per interval by the controller.
//! Partitions that vanish from a push are dropped; the evaluation and rates only ever see what is here.

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

/// One partition's recent samples, oldest first; never empty.
///
/// Stored compactly because the operator keeps one per partition of every managed group (500 groups × 50
/// partitions × 10 samples in the scale benchmark): a ring of exactly the window's capacity, 32 bytes a
/// sample, allocated once.
#[derive(Clone, Debug)]
pub struct PartitionHistory {
    ring: Box<[Packed]>,
    /// Index of the oldest sample in `ring`.
    start: u16,
    len: u16,
    committed_since_ms: i64,
}

/// Equal when they hold the same samples (wherever they sit in the ring) since the same moment.
impl PartialEq for PartitionHistory {
    fn eq(&self, other: &Self) -> bool {
        self.committed_since_ms == other.committed_since_ms
            && self.capacity() == other.capacity()
            && self.samples() == other.samples()
    }
}

impl Eq for PartitionHistory {}

/// An [`Observed`] as stored: `None` is [`ABSENT`] (no offset or timestamp is `i64::MIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    at_ms: i64,
    committed: i64,
    log_end: i64,
    committed_record_ms: i64,
    consumable: i64,
}

const ABSENT: i64 = i64::MIN;

impl Packed {
    fn pack(o: Observed) -> Packed {
        Packed {
            at_ms: o.at_ms,
            committed: o.sample.committed.unwrap_or(ABSENT),
            log_end: o.sample.log_end,
            committed_record_ms: o.sample.committed_record_ms.unwrap_or(ABSENT),
            consumable: o.sample.consumable.unwrap_or(ABSENT),
        }
    }

    fn unpack(self) -> Observed {
        let present = |v: i64| (v != ABSENT).then_some(v);
        Observed {
            at_ms: self.at_ms,
            sample: Sample {
                committed: present(self.committed),
                log_end: self.log_end,
                committed_record_ms: present(self.committed_record_ms),
                consumable: present(self.consumable),
            },
        }
    }
}

impl PartitionHistory {
    fn start(at_ms: i64, sample: Sample, capacity: u16) -> Self {
        let first = Packed::pack(Observed { at_ms, sample });
        PartitionHistory {
            ring: vec![first; usize::from(capacity)].into_boxed_slice(),
            start: 0,
            len: 1,
            committed_since_ms: at_ms,
        }
    }

    fn capacity(&self) -> u16 {
        self.ring.len() as u16
    }

    /// Position in `ring` of the `i`-th sample, oldest first.
    fn slot(&self, i: u16) -> usize {
        (usize::from(self.start) + usize::from(i)) % self.ring.len()
    }

    fn record(&mut self, at_ms: i64, sample: Sample) {
        if self.latest().is_none_or(|o| o.sample.committed != sample.committed) {
            self.committed_since_ms = at_ms;
        }
        // A second push at the same instant (or a clock that stepped back) replaces the newest sample rather
        // than making a zero or negative interval that rates would divide by.
        if self.latest().is_some_and(|o| o.at_ms >= at_ms) {
            self.len -= 1;
        }
        if self.len == self.capacity() {
            self.start = ((usize::from(self.start) + 1) % self.ring.len()) as u16;
            self.len -= 1;
        }
        let slot = self.slot(self.len);
        self.ring[slot] = Packed::pack(Observed { at_ms, sample });
        self.len += 1;
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Observed> {
        (0..self.len).map(|i| self.ring[self.slot(i)].unpack()).collect()
    }

    pub fn latest(&self) -> Option<Observed> {
        self.len.checked_sub(1).map(|i| self.ring[self.slot(i)].unpack())
    }

    /// The window holds as many samples as it can: only then do "over the whole window" rules apply.
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity()
    }

    /// When the committed offset was first seen at its current value: a lower bound of how long the group
    /// has not committed progress, kept beyond the window so that long stops are measured.
    pub fn committed_since_ms(&self) -> i64 {
        self.committed_since_ms
    }

    /// (time, log end) pairs, oldest first: the input of [`interpolated_time_lag_ms`].
    pub fn log_ends(&self) -> Vec<(i64, i64)> {
        (0..self.len)
            .map(|i| {
                let p = self.ring[self.slot(i)];
                (p.at_ms, p.log_end)
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

/// The last `capacity` samples of each partition, keyed by anything ordered (e.g. `(topic, partition)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window<K> {
    capacity: u16,
    partitions: BTreeMap<K, PartitionHistory>,
}

impl<K: Ord + Clone> Default for Window<K> {
    fn default() -> Self {
        Window::new(DEFAULT_WINDOW)
    }
}

impl<K: Ord + Clone> Window<K> {
    /// At least two samples: rates need two, and a window of one would call every lagging partition stalled.
    pub fn new(capacity: usize) -> Self {
        Window {
            capacity: capacity.clamp(2, usize::from(u16::MAX)) as u16,
            partitions: BTreeMap::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        usize::from(self.capacity)
    }

    /// Records one interval's samples. A partition missing from `samples` (topic deleted, or no longer
    /// declared) is dropped with its history.
    pub fn push(&mut self, now_ms: i64, samples: BTreeMap<K, Sample>) {
        // In place: rebuilding the map every interval would reallocate every node of every group's window.
        self.partitions.retain(|key, _| samples.contains_key(key));
        for (key, sample) in samples {
            match self.partitions.get_mut(&key) {
                Some(history) => history.record(now_ms, sample),
                None => {
                    self.partitions
                        .insert(key, PartitionHistory::start(now_ms, sample, self.capacity));
                }
            }
        }
    }

    pub fn partition(&self, key: &K) -> Option<&PartitionHistory> {
        self.partitions.get(key)
    }

    pub fn partitions(&self) -> impl Iterator<Item = (&K, &PartitionHistory)> {
        self.partitions.iter()
    }

    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Each partition's status at `now_ms`.
    pub fn evaluate(&self, now_ms: i64, stop_after_ms: i64) -> BTreeMap<K, LagStatus> {
        self.partitions
            .iter()
            .map(|(k, h)| (k.clone(), evaluate_partition(h, now_ms, stop_after_ms)))
            .collect()
    }

    /// Consumption and production summed over the partitions that have a rate; None where none has.
    pub fn group_rates(&self) -> Rates {
        let rates: Vec<Rates> = self.partitions.values().map(partition_rates).collect();
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
        let latest = || self.partitions.values().filter_map(|h| h.latest().map(|o| o.sample));
        GroupLag {
            total_lag: latest().filter_map(|s| s.lag()).sum(),
            partitions: self.partitions.len(),
            lagging_partitions: latest().filter(|s| s.lag().is_some_and(|l| l > 0)).count(),
            max_time_lag_ms: self.partitions.values().filter_map(|h| h.time_lag_ms(now_ms)).max(),
            rates: self.group_rates(),
            status: group_status(self.evaluate(now_ms, stop_after_ms).into_values()),
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
