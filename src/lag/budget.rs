//! `spec.lagBudget`: whether the group's lag, in messages and in seconds, is within what the user allows,
//! with a message for the `LagWithinBudget` condition.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LagBudget {
    pub max_messages: Option<i64>,
    pub max_seconds: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetStatus {
    Within,
    Exceeded,
    /// A time budget is set but the time lag is unknown, and the message budget (if any) holds.
    Unknown,
}

impl BudgetStatus {
    /// The condition's status: "True", "False" or "Unknown".
    pub fn condition_status(self) -> &'static str {
        match self {
            BudgetStatus::Within => "True",
            BudgetStatus::Exceeded => "False",
            BudgetStatus::Unknown => "Unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetCheck {
    pub status: BudgetStatus,
    pub message: String,
}

impl BudgetCheck {
    pub fn within(&self) -> bool {
        self.status == BudgetStatus::Within
    }
}

/// Checks the group's total lag and its largest time lag against the budget. A group with no lag is within
/// any time budget even when no record timestamp could be read.
pub fn check_budget(budget: &LagBudget, total_lag: i64, max_time_lag_seconds: Option<i64>) -> BudgetCheck {
    let time_lag = if total_lag == 0 { Some(0) } else { max_time_lag_seconds };
    let mut exceeded = Vec::new();
    let mut within = Vec::new();
    let mut unknown = None;
    if let Some(max) = budget.max_messages {
        if total_lag > max {
            exceeded.push(format!("lag {total_lag} messages exceeds the budget of {max}"));
        } else {
            within.push(format!("lag {total_lag} messages is within the budget of {max}"));
        }
    }
    if let Some(max) = budget.max_seconds {
        match time_lag {
            // No seconds in the message: they grow with the clock alone, and a message that changes is a
            // status write every reconcile. `status.oldestUnconsumedRecord` and the metrics hold the value.
            Some(t) if t > max => exceeded.push(format!("time lag exceeds the budget of {max} s")),
            Some(_) => within.push(format!("time lag is within the budget of {max} s")),
            None => unknown = Some(format!("time lag is unknown (the budget is {max} s)")),
        }
    }
    let (status, parts) = if !exceeded.is_empty() {
        (BudgetStatus::Exceeded, exceeded)
    } else if let Some(u) = unknown {
        within.push(u);
        (BudgetStatus::Unknown, within)
    } else if within.is_empty() {
        (BudgetStatus::Within, vec!["no lag budget".to_string()])
    } else {
        (BudgetStatus::Within, within)
    };
    BudgetCheck {
        status,
        message: parts.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_messages: Option<i64>, max_seconds: Option<i64>) -> LagBudget {
        LagBudget {
            max_messages,
            max_seconds,
        }
    }

    #[test]
    fn budget_cases() {
        let cases = [
            (budget(None, None), 5000, None, BudgetStatus::Within, "no lag budget"),
            (
                budget(Some(1000), None),
                1200,
                None,
                BudgetStatus::Exceeded,
                "lag 1200 messages exceeds the budget of 1000",
            ),
            (
                budget(Some(1000), None),
                1000,
                None,
                BudgetStatus::Within,
                "lag 1000 messages is within the budget of 1000",
            ),
            (
                budget(None, Some(60)),
                10,
                Some(95),
                BudgetStatus::Exceeded,
                "time lag exceeds the budget of 60 s",
            ),
            (
                budget(Some(1000), Some(60)),
                1200,
                Some(95),
                BudgetStatus::Exceeded,
                "lag 1200 messages exceeds the budget of 1000; time lag exceeds the budget of 60 s",
            ),
            (
                budget(Some(1000), Some(60)),
                1200,
                Some(5),
                BudgetStatus::Exceeded,
                "lag 1200 messages exceeds the budget of 1000",
            ),
            (
                budget(Some(1000), Some(60)),
                10,
                Some(5),
                BudgetStatus::Within,
                "lag 10 messages is within the budget of 1000; time lag is within the budget of 60 s",
            ),
        ];
        for (b, lag, seconds, status, message) in cases {
            let c = check_budget(&b, lag, seconds);
            assert_eq!(
                (c.status, c.message.as_str()),
                (status, message),
                "{b:?} {lag} {seconds:?}"
            );
        }
    }

    #[test]
    fn an_unknown_time_lag_is_unknown_not_within() {
        let c = check_budget(&budget(Some(1000), Some(60)), 10, None);
        assert_eq!(c.status, BudgetStatus::Unknown);
        assert_eq!(c.status.condition_status(), "Unknown");
        assert!(!c.within());
        assert_eq!(
            c.message,
            "lag 10 messages is within the budget of 1000; time lag is unknown (the budget is 60 s)"
        );
    }

    #[test]
    fn an_unknown_time_lag_does_not_hide_an_exceeded_message_budget() {
        let c = check_budget(&budget(Some(1000), Some(60)), 1200, None);
        assert_eq!(c.status, BudgetStatus::Exceeded);
    }

    #[test]
    fn no_lag_is_within_a_time_budget_without_timestamps() {
        let c = check_budget(&budget(None, Some(60)), 0, None);
        assert!(c.within());
        assert_eq!(c.status.condition_status(), "True");
    }
}
