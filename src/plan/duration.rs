//! Durations as users write them in specs and flags: a whole number and one unit, `s`, `m`, `h` or `d`
//! (`30s`, `15m`, `12h`, `7d`).

use std::time::Duration;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: use a whole number and a unit s, m, h or d, such as 30s, 15m, 12h or 7d")]
pub struct InvalidDuration(pub String);

pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration(text.to_owned());
    let (number, unit) = text.trim().split_at(text.trim().len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(invalid)?,
        "h" => n.checked_mul(3600).ok_or_else(invalid)?,
        "d" => n.checked_mul(86_400).ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_parses() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn anything_else_is_rejected_with_a_hint() {
        for bad in ["", "s", "10", "1.5h", "-1m", "3w", "99999999999999999999d"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.to_string().contains("such as 30s"), "{err}");
        }
    }
}
