//! Burrow's consumer lag evaluation, over the sliding window: a status per partition (OK, WARN, STALL, STOP,
//! REWIND, ERR) and the group's, which is its worst partition's.

use super::PartitionHistory;

/// Declared from least to most severe, so `max` is the worst. A rewind is usually someone's deliberate
/// reset; a stall is a consumer that may recover; a stop has lasted past the threshold; an error means the
/// lag cannot even be measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LagStatus {
    Ok,
    /// The lag grew at every sample of the window although the group commits.
    Warn,
    /// The committed offset moved backwards within the window.
    Rewind,
    /// The committed offset did not move over a full window while behind.
    Stall,
    /// No commit for longer than the stop threshold while behind.
    Stop,
    /// No committed offset, or one past the log end.
    Err,
}

impl LagStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LagStatus::Ok => "OK",
            LagStatus::Warn => "WARN",
            LagStatus::Rewind => "REWIND",
            LagStatus::Stall => "STALL",
            LagStatus::Stop => "STOP",
            LagStatus::Err => "ERR",
        }
    }
}

/// Burrow's rules, in Burrow's order: a partition caught up now is OK whatever its past; a stop is checked
/// before the window's history (a stopped consumer also looks stalled); any zero lag in the window means the
/// consumer keeps catching up, so OK; then REWIND, STALL, WARN. STALL and WARN need a full window: a few
/// samples say little about a trend.
pub fn evaluate_partition(h: PartitionHistory<'_>, now_ms: i64, stop_after_ms: i64) -> LagStatus {
    let samples = h.samples();
    let Some(latest) = samples.last().map(|o| o.sample) else {
        return LagStatus::Err;
    };
    let Some(lag) = latest.lag().filter(|_| latest.is_consistent()) else {
        return LagStatus::Err;
    };
    if lag == 0 {
        return LagStatus::Ok;
    }
    if now_ms - h.committed_since_ms() > stop_after_ms {
        return LagStatus::Stop;
    }
    if samples.iter().any(|o| o.sample.lag() == Some(0)) {
        return LagStatus::Ok;
    }
    let committed: Vec<i64> = samples.iter().filter_map(|o| o.sample.committed).collect();
    if committed.windows(2).any(|w| w[1] < w[0]) {
        return LagStatus::Rewind;
    }
    if !h.is_full() {
        return LagStatus::Ok;
    }
    if samples.iter().all(|o| o.sample.committed == latest.committed) {
        return LagStatus::Stall;
    }
    let lags: Option<Vec<i64>> = samples.iter().map(|o| o.sample.lag()).collect();
    let growing = lags.is_some_and(|l| l.windows(2).all(|w| w[1] > w[0]));
    if growing {
        return LagStatus::Warn;
    }
    LagStatus::Ok
}

/// The worst status; OK for a group without partitions (nothing is behind).
pub fn group_status(statuses: impl IntoIterator<Item = LagStatus>) -> LagStatus {
    statuses.into_iter().max().unwrap_or(LagStatus::Ok)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::lag::{Sample, Window};

    const SEC: i64 = 1000;
    const STOP_AFTER: i64 = 60 * SEC;

    /// (committed, log end)
    type Point = (Option<i64>, i64);

    /// Feeds (committed, log end) pairs, one per 10 s from t=0, into a window of `capacity`, and evaluates
    /// at the last sample's time.
    fn status(capacity: usize, points: &[Point]) -> LagStatus {
        let mut w = Window::new(capacity);
        for (i, &(committed, log_end)) in points.iter().enumerate() {
            let s = Sample {
                committed,
                log_end,
                committed_record_ms: None,
                consumable: None,
            };
            w.push(i as i64 * 10 * SEC, BTreeMap::from([(0u8, s)]));
        }
        let now = (points.len() as i64 - 1) * 10 * SEC;
        w.evaluate(now, STOP_AFTER).get(&0).copied().unwrap_or(LagStatus::Err)
    }

    #[test]
    fn as_str_uses_burrows_names() {
        let all = [
            LagStatus::Ok,
            LagStatus::Warn,
            LagStatus::Rewind,
            LagStatus::Stall,
            LagStatus::Stop,
            LagStatus::Err,
        ];
        let names: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["OK", "WARN", "REWIND", "STALL", "STOP", "ERR"]);
    }

    #[test]
    fn partition_rules() {
        let c = Some;
        let cases: &[(&str, &[Point], LagStatus)] = &[
            ("caught up now", &[(c(0), 10), (c(0), 20), (c(30), 30)], LagStatus::Ok),
            (
                "zero lag earlier in the window",
                &[(c(10), 10), (c(15), 30), (c(20), 50)],
                LagStatus::Ok,
            ),
            (
                "committed offset stuck over the full window",
                &[(c(5), 10), (c(5), 12), (c(5), 12)],
                LagStatus::Stall,
            ),
            (
                "stuck but the window is not full yet",
                &[(c(5), 10), (c(5), 12)],
                LagStatus::Ok,
            ),
            (
                "lag grows at every sample while committing",
                &[(c(0), 10), (c(5), 20), (c(10), 30)],
                LagStatus::Warn,
            ),
            (
                "lag grows then holds",
                &[(c(0), 10), (c(5), 20), (c(15), 30)],
                LagStatus::Ok,
            ),
            ("lag shrinks", &[(c(0), 30), (c(10), 30), (c(20), 30)], LagStatus::Ok),
            (
                "committed offset moved backwards",
                &[(c(20), 30), (c(5), 30), (c(6), 30)],
                LagStatus::Rewind,
            ),
            (
                "no committed offset",
                &[(c(5), 30), (c(6), 30), (None, 30)],
                LagStatus::Err,
            ),
            (
                "committed past the log end",
                &[(c(5), 30), (c(6), 30), (c(40), 30)],
                LagStatus::Err,
            ),
        ];
        for (name, points, expected) in cases {
            assert_eq!(status(3, points), *expected, "{name}");
        }
    }

    #[test]
    fn no_commit_for_longer_than_the_threshold_is_a_stop_even_after_the_window_moved_on() {
        // 8 samples 10 s apart: the offset has not moved for 70 s, beyond the 60 s threshold.
        let stuck: Vec<Point> = (0..8).map(|i| (Some(5), 10 + i)).collect();
        assert_eq!(status(3, &stuck), LagStatus::Stop);
        assert_eq!(
            status(3, &stuck[..7]),
            LagStatus::Stall,
            "60 s is not yet longer than the threshold"
        );
    }

    #[test]
    fn a_stopped_group_that_is_caught_up_is_ok() {
        let idle: Vec<Point> = (0..8).map(|_| (Some(5), 5)).collect();
        assert_eq!(status(3, &idle), LagStatus::Ok);
    }

    #[test]
    fn group_status_is_the_worst_partition_status() {
        assert_eq!(
            group_status([LagStatus::Ok, LagStatus::Stall, LagStatus::Warn]),
            LagStatus::Stall
        );
        assert_eq!(group_status([LagStatus::Stop, LagStatus::Err]), LagStatus::Err);
        assert_eq!(group_status([LagStatus::Rewind, LagStatus::Warn]), LagStatus::Rewind);
        assert_eq!(group_status([]), LagStatus::Ok);
    }
}
