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

/// kstatus's conditions (`sigs.k8s.io/cli-utils/pkg/kstatus`, what Flux and `kubectl wait`-style tools read):
/// present and True only while they apply, removed otherwise ("abnormal-true").
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Where the operator stands with an object, as kstatus computes it: `Current`, `InProgress` or `Failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The desired state is reached (kstatus: Current, given `Ready` is not False).
    Done,
    /// Still working on it, or retrying something that may pass on its own (kstatus: InProgress).
    Reconciling { reason: String, message: String },
    /// Cannot get there until someone changes the object or what it names (kstatus: Failed).
    Stalled { reason: String, message: String },
}

impl Progress {
    /// After a failed reconcile whose `Ready=False` says `reason`: Stalled when only a change of the object
    /// (or what it names) helps, else Reconciling — the operator retries either way.
    pub fn after_failure(reason: &str, message: String, needs_a_change: bool) -> Progress {
        if needs_a_change {
            Progress::Stalled {
                reason: reason.to_owned(),
                message,
            }
        } else {
            Progress::Reconciling {
                reason: reason.to_owned(),
                message: format!("retrying: {message}"),
            }
        }
    }
}

/// Sets `Reconciling`/`Stalled` from `progress`, removing the one that does not apply.
pub fn set_progress(conditions: &mut Vec<Condition>, progress: Progress, generation: Option<i64>, now: Time) {
    let (keep, drop) = match progress {
        Progress::Done => {
            conditions.retain(|c| c.type_ != RECONCILING && c.type_ != STALLED);
            return;
        }
        Progress::Reconciling { reason, message } => {
            (condition(RECONCILING, true, &reason, message, generation, now), STALLED)
        }
        Progress::Stalled { reason, message } => {
            (condition(STALLED, true, &reason, message, generation, now), RECONCILING)
        }
    };
    conditions.retain(|c| c.type_ != drop);
    set_condition(conditions, keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid time"))
    }

    #[test]
    fn reconciling_and_stalled_are_present_only_while_they_apply() {
        let mut list = vec![condition(READY, false, "Unreachable", "down", Some(1), at(10))];
        let reconciling = Progress::Reconciling {
            reason: "Unreachable".into(),
            message: "retrying".into(),
        };
        set_progress(&mut list, reconciling, Some(1), at(10));
        assert!(is_true(&list, RECONCILING) && find(&list, STALLED).is_none());
        let stalled = Progress::Stalled {
            reason: "AuthenticationFailed".into(),
            message: "bad password".into(),
        };
        set_progress(&mut list, stalled, Some(1), at(20));
        assert!(is_true(&list, STALLED) && find(&list, RECONCILING).is_none());
        set_progress(&mut list, Progress::Done, Some(1), at(30));
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].type_, READY);
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
