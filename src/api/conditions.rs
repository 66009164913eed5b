//! `metav1.Condition` helpers: build a condition, and merge it into a list so that `lastTransitionTime`
//! changes only when the status does (so re-observing the same state writes nothing new).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";

/// A condition observed at `now` for `generation`.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now,
    }
}

/// Puts `new` into `conditions`, keeping the existing `lastTransitionTime` when the status is unchanged.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status == new.status {
                new.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = new;
        }
        None => conditions.push(new),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid time"))
    }

    #[test]
    fn transition_time_is_kept_while_the_status_is_unchanged() {
        let mut list = vec![condition(READY, true, "Connected", "ok", Some(1), at(10))];
        set_condition(
            &mut list,
            condition(READY, true, "Connected", "still ok", Some(2), at(20)),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, at(10));
        assert_eq!(list[0].message, "still ok");
        assert_eq!(list[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_moves_when_the_status_flips() {
        let mut list = vec![condition(READY, true, "Connected", "ok", Some(1), at(10))];
        set_condition(
            &mut list,
            condition(READY, false, "Unreachable", "down", Some(1), at(20)),
        );
        assert_eq!(list[0].last_transition_time, at(20));
        assert!(!is_true(&list, READY));
    }
}
