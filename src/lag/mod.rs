//! The lag model: a sliding window of per-partition samples (committed offset, log end) fed every interval,
//! and pure functions over it: lag in messages and time, rates, Burrow-style evaluation, the lag budget.

mod budget;
mod evaluate;
mod partition;
mod rate;
mod time;
mod window;

pub use budget::{BudgetCheck, BudgetStatus, LagBudget, check_budget};
pub use evaluate::{LagStatus, evaluate_partition, group_status};
pub use partition::{AbortedTxn, BatchHeader, BatchKind, ConsumableLag, consumable_lag, high_watermark_lag};
pub use rate::{Rates, partition_rates};
pub use time::{interpolated_time_lag_ms, time_lag_ms};
pub use window::{DEFAULT_WINDOW, GroupLag, Observed, PartitionHistory, Window};

/// One partition as observed at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The group's committed offset (the next record it will read), if it has one.
    pub committed: Option<i64>,
    pub log_end: i64,
    /// Timestamp (ms since the epoch) of the first record the group will read at or after the committed
    /// offset, when it was read; there is no such record when the group is caught up.
    pub committed_record_ms: Option<i64>,
    /// Data records a `read_committed` consumer will still receive (`consumable_lag`), where it was measured: a
    /// partition of a transactional topic. None elsewhere: there every offset up to the log end is a record.
    pub consumable: Option<i64>,
}

impl Sample {
    /// Messages the group will still read: the consumable lag where it was measured, the high-watermark lag
    /// elsewhere; None without a committed offset. A committed offset past the log end (a truncated or
    /// recreated topic) leaves nothing to read, so it counts as 0 here and as ERR in evaluation.
    pub fn lag(&self) -> Option<i64> {
        match self.consumable {
            Some(records) => self.committed.map(|_| records),
            None => self.high_watermark_lag(),
        }
    }

    /// Offsets behind the log end, as `kafka-consumer-groups` shows them (transaction markers included).
    pub fn high_watermark_lag(&self) -> Option<i64> {
        self.committed.map(|c| high_watermark_lag(c, self.log_end))
    }

    /// A committed offset can only be past the log end if the log lost data under it.
    pub fn is_consistent(&self) -> bool {
        self.committed.is_none_or(|c| c <= self.log_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_distance_to_the_log_end_and_never_negative() {
        let cases = [
            (Some(90), 100, Some(10), true),
            (Some(100), 100, Some(0), true),
            (Some(120), 100, Some(0), false),
            (None, 100, None, true),
        ];
        for (committed, log_end, lag, consistent) in cases {
            let s = Sample {
                committed,
                log_end,
                committed_record_ms: None,
                consumable: None,
            };
            assert_eq!((s.lag(), s.is_consistent()), (lag, consistent), "{s:?}");
        }
    }

    #[test]
    fn lag_is_the_consumable_lag_where_it_was_measured() {
        let s = Sample {
            committed: Some(14),
            log_end: 15,
            committed_record_ms: None,
            consumable: Some(0),
        };
        assert_eq!((s.lag(), s.high_watermark_lag()), (Some(0), Some(1)));
        let uncommitted = Sample { committed: None, ..s };
        assert_eq!(uncommitted.lag(), None);
    }
}
