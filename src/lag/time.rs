//! Time lag: how old the next record the group will read is. Exact from the record's timestamp, or estimated
//! the way Kafka Lag Exporter does, by interpolating when the log end passed the committed offset.

use super::Sample;

/// `now - timestamp of the record at the committed offset` while behind, 0 when caught up, None when the
/// committed offset or the record's timestamp is unknown. Clamped at 0: producer clocks (CreateTime) can run
/// ahead of ours.
pub fn time_lag_ms(sample: &Sample, now_ms: i64) -> Option<i64> {
    match sample.lag()? {
        0 => Some(0),
        _ => sample.committed_record_ms.map(|ts| (now_ms - ts).max(0)),
    }
}

/// Kafka Lag Exporter's estimate from `log_ends`, (time, log end) pairs oldest first: the record at offset
/// `committed` was appended when the log end first exceeded it, linearly interpolated between the samples
/// around that moment, or extrapolated with the whole history's slope when it is older than the first sample.
/// None with fewer than two samples, or when the log end never moved (no slope to extrapolate with).
pub fn interpolated_time_lag_ms(log_ends: &[(i64, i64)], committed: i64, now_ms: i64) -> Option<i64> {
    let &(newest_ms, newest_end) = log_ends.last()?;
    if committed >= newest_end {
        return Some(0);
    }
    if log_ends.len() < 2 {
        return None;
    }
    // The record at `committed` exists once the log end is past it.
    let target = committed + 1;
    let appended_ms = match log_ends.iter().position(|&(_, end)| end >= target)? {
        0 => {
            let (oldest_ms, oldest_end) = log_ends[0];
            if newest_end == oldest_end {
                return None;
            }
            along((oldest_ms, oldest_end), (newest_ms, newest_end), target)
        }
        i => along(log_ends[i - 1], log_ends[i], target),
    };
    Some((now_ms - appended_ms).max(0))
}

/// The time at which the line through `a` and `b` (time, offset) reaches `offset`; `a.1 != b.1`.
fn along(a: (i64, i64), b: (i64, i64), offset: i64) -> i64 {
    let slope_ms_per_msg = (b.0 - a.0) as f64 / (b.1 - a.1) as f64;
    a.0 + ((offset - a.1) as f64 * slope_ms_per_msg).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(committed: Option<i64>, log_end: i64, record_ms: Option<i64>) -> Sample {
        Sample {
            committed,
            log_end,
            committed_record_ms: record_ms,
            consumable: None,
        }
    }

    #[test]
    fn exact_time_lag_is_the_age_of_the_next_record() {
        let cases = [
            (sample(Some(90), 100, Some(40_000)), Some(60_000)),
            (sample(Some(100), 100, None), Some(0)),
            (sample(Some(90), 100, None), None),
            (sample(None, 100, Some(40_000)), None),
            (sample(Some(90), 100, Some(200_000)), Some(0)),
        ];
        for (s, expected) in cases {
            assert_eq!(time_lag_ms(&s, 100_000), expected, "{s:?}");
        }
    }

    // 1 message per 10 ms: the log end was 100 at t=1000, 200 at t=2000, 300 at t=3000.
    const STEADY: [(i64, i64); 3] = [(1000, 100), (2000, 200), (3000, 300)];

    #[test]
    fn interpolation_between_samples() {
        // Offset 149 was appended when the log end reached 150: t=1500.
        assert_eq!(interpolated_time_lag_ms(&STEADY, 149, 4000), Some(2500));
        // Offset 199 is the last record before the sample at t=2000.
        assert_eq!(interpolated_time_lag_ms(&STEADY, 199, 4000), Some(2000));
    }

    #[test]
    fn interpolation_extrapolates_before_the_first_sample() {
        // Offset 49: log end 50 at t=500 on the same slope.
        assert_eq!(interpolated_time_lag_ms(&STEADY, 49, 4000), Some(3500));
    }

    #[test]
    fn interpolation_is_zero_when_caught_up() {
        assert_eq!(interpolated_time_lag_ms(&STEADY, 300, 4000), Some(0));
        assert_eq!(interpolated_time_lag_ms(&[(1000, 300)], 300, 4000), Some(0));
    }

    #[test]
    fn interpolation_needs_two_samples_and_a_slope() {
        assert_eq!(interpolated_time_lag_ms(&[], 10, 4000), None);
        assert_eq!(interpolated_time_lag_ms(&[(1000, 300)], 10, 4000), None);
        assert_eq!(interpolated_time_lag_ms(&[(1000, 300), (2000, 300)], 10, 4000), None);
    }

    #[test]
    fn interpolation_uses_the_last_flat_sample_before_the_log_end_moved() {
        // Idle from t=1000 to t=3000, then 100 messages by t=4000: offset 349 was appended at t=3500.
        let bursty = [(1000, 300), (2000, 300), (3000, 300), (4000, 400)];
        assert_eq!(interpolated_time_lag_ms(&bursty, 349, 5000), Some(1500));
    }

    #[test]
    fn exact_and_interpolated_agree_on_a_steady_stream() {
        let s = sample(Some(149), 300, Some(1500));
        assert_eq!(time_lag_ms(&s, 4000), Some(2500));
        assert_eq!(interpolated_time_lag_ms(&STEADY, 149, 4000), Some(2500));
    }
}
