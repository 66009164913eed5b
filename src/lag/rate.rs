//! Consumption and production rates of a partition over its window, in messages per second: how fast the
//! group commits progress and how fast the log grows. The scaler sizes the workload from them.

use super::PartitionHistory;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Committed offset advance per second.
    pub consumption: Option<f64>,
    /// Log end advance per second.
    pub production: Option<f64>,
}

/// Rates between the oldest and the newest sample. None until two samples exist, and None for an offset
/// that moved backwards in the window (a reset, a recreated topic): that difference is not a rate.
pub fn partition_rates(h: PartitionHistory<'_>) -> Rates {
    let committed: Vec<(i64, i64)> = h
        .samples()
        .iter()
        .filter_map(|o| o.sample.committed.map(|c| (o.at_ms, c)))
        .collect();
    let log_ends = h.log_ends();
    Rates {
        consumption: rate(&committed),
        production: rate(&log_ends),
    }
}

fn rate(points: &[(i64, i64)]) -> Option<f64> {
    let (&(first_ms, first), &(last_ms, last)) = (points.first()?, points.last()?);
    if last_ms <= first_ms || points.windows(2).any(|w| w[1].1 < w[0].1) {
        return None;
    }
    Some((last - first) as f64 * 1000.0 / (last_ms - first_ms) as f64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::lag::{Sample, Window};

    fn rates_of(points: &[(i64, Option<i64>, i64)]) -> Rates {
        let mut w = Window::new(10);
        for &(at_ms, committed, log_end) in points {
            w.push(
                at_ms,
                BTreeMap::from([(
                    0u8,
                    Sample {
                        committed,
                        log_end,
                        committed_record_ms: None,
                        consumable: None,
                    },
                )]),
            );
        }
        w.partition(&0).map(partition_rates).unwrap_or_default()
    }

    #[test]
    fn rates_are_offset_deltas_per_second_over_the_window() {
        let r = rates_of(&[(0, Some(0), 100), (5_000, Some(200), 400), (10_000, Some(500), 600)]);
        assert_eq!(
            r,
            Rates {
                consumption: Some(50.0),
                production: Some(50.0)
            }
        );
    }

    #[test]
    fn rates_are_unknown_with_one_sample() {
        assert_eq!(
            rates_of(&[(0, Some(0), 100)]),
            Rates {
                consumption: None,
                production: None
            }
        );
    }

    #[test]
    fn an_idle_partition_has_zero_rates() {
        let r = rates_of(&[(0, Some(7), 7), (10_000, Some(7), 7)]);
        assert_eq!(
            r,
            Rates {
                consumption: Some(0.0),
                production: Some(0.0)
            }
        );
    }

    #[test]
    fn a_rewind_or_a_shrinking_log_has_no_rate() {
        let r = rates_of(&[(0, Some(50), 100), (1_000, Some(10), 100), (2_000, Some(60), 100)]);
        assert_eq!(r.consumption, None);
        let r = rates_of(&[(0, Some(0), 100), (1_000, Some(0), 10)]);
        assert_eq!(r.production, None);
    }

    #[test]
    fn consumption_counts_only_samples_with_a_committed_offset() {
        let r = rates_of(&[(0, None, 0), (1_000, Some(10), 100), (3_000, Some(30), 100)]);
        assert_eq!(r.consumption, Some(10.0));
    }
}
