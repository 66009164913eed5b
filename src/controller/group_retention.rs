//! The retention guard of a ConsumerGroup (`spec.retentionGuard`): keeps the offsets of a group that stays empty
//! from expiring under the broker's `offsets.retention.minutes` — saved in status, a warning before they would
//! expire, re-committed or restored as the group's kind allows (`plan::retention` decides).

use super::group::{Observation, PendingEvents, RETENTION_GUARD};
use super::status::{ms_from_time, now, time_from_ms};
use super::{Context, Error};
use crate::api::conditions::{condition, find, set_condition};
use crate::api::{ConsumerGroup, ConsumerGroupStatus, RetentionProtection, SavedOffset};
use crate::kafka::{GroupDescription, GroupType, KafkaClient, TopicPartition};
use crate::plan::retention::{GroupKind, Protection, RetentionAction, RetentionObservation, plan_retention};
use kube::runtime::events::EventType;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the retention guard must know about an existing group, by its type: the one place the reconciler
/// tells group types apart. `None` for a group the broker does not know (any more).
pub(super) fn retention_kind(d: &GroupDescription) -> Option<GroupKind> {
    if !d.exists() {
        return None;
    }
    Some(match &d.group_type {
        // Only admin commits ever: no member ever set a protocol type.
        GroupType::Classic if d.protocol_type.is_empty() => GroupKind::NeverHadMembers,
        GroupType::Classic => GroupKind::ClassicWithHistory,
        GroupType::Consumer => GroupKind::ConsumerProtocol,
        // Streams groups commit into __consumer_offsets like consumer groups, and expire like them. Share groups
        // never get here (`group_type::rules`: their offsets do not expire).
        GroupType::Share | GroupType::Streams | GroupType::Unknown(_) => GroupKind::ConsumerProtocol,
    })
}

/// A group whose offsets do not expire (a share group) needs no guard: say so where one is declared.
pub(super) fn retention_not_applicable(group: &ConsumerGroup, status: &mut ConsumerGroupStatus) {
    status.retention_guard = None;
    if group.spec.retention_guard.is_none() {
        status.conditions.retain(|c| c.type_ != RETENTION_GUARD);
        return;
    }
    set_condition(
        &mut status.conditions,
        condition(
            RETENTION_GUARD,
            false,
            "NotApplicable",
            "a share group's start offsets are kept by the share coordinator and do not expire with \
             offsets.retention.minutes: nothing to guard",
            group.metadata.generation,
            now(),
        ),
    );
}

pub(super) async fn guard_retention(
    client: &KafkaClient,
    group: &ConsumerGroup,
    ctx: &Context,
    group_id: &str,
    obs: &mut Observation,
    status: &mut ConsumerGroupStatus,
    events: &mut PendingEvents,
) -> Result<(), Error> {
    let Some(spec) = &group.spec.retention_guard else {
        status.retention_guard = None;
        status.conditions.retain(|c| c.type_ != RETENTION_GUARD);
        return Ok(());
    };
    let generation = group.metadata.generation;
    let retention_minutes = match &spec.offsets_retention {
        Some(text) => Some((parse(text)?.as_secs() / 60) as i64),
        None => match ctx.clients.retention_minutes_for(group) {
            Some(m) => Some(m),
            None => client.offsets_retention_minutes().await.ok().flatten(),
        },
    };
    let Some(retention_minutes) = retention_minutes else {
        set_condition(
            &mut status.conditions,
            condition(
                RETENTION_GUARD,
                false,
                "RetentionUnknown",
                "the brokers' offsets.retention.minutes could not be read: set spec.retentionGuard.offsetsRetention",
                generation,
                now(),
            ),
        );
        return Ok(());
    };
    let warn_before = parse(spec.warn_before.as_deref().unwrap_or("24h"))?;
    let mut guard = status.retention_guard.clone().unwrap_or_default();
    if !obs.offsets.is_empty() {
        guard.saved_offsets = obs
            .offsets
            .iter()
            .map(|(tp, c)| SavedOffset {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                offset: c.offset,
            })
            .collect();
    }
    let d = &obs.sample.description;
    let kind = match retention_kind(d) {
        Some(kind) => kind,
        // The broker dropped the group with its offsets: what it was is remembered in status.
        None => match guard.protection {
            Some(RetentionProtection::RestoreOnExpiry) => GroupKind::ClassicWithHistory,
            _ => GroupKind::NeverHadMembers,
        },
    };
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let decision = plan_retention(&RetentionObservation {
        kind,
        has_members: !d.members.is_empty(),
        offsets_present: !obs.offsets.is_empty(),
        saved_offsets: !guard.saved_offsets.is_empty(),
        empty_since_ms: guard.empty_since.as_ref().map(ms_from_time),
        last_protected_ms: guard.last_protected.as_ref().map(ms_from_time),
        retention_ms: retention_minutes * 60_000,
        warn_before_ms: warn_before.as_millis() as i64,
        now_ms,
    });
    guard.retention_minutes = Some(retention_minutes);
    guard.protection = decision.protection.map(|p| match p {
        Protection::Recommit => RetentionProtection::Recommit,
        Protection::RestoreOnExpiry => RetentionProtection::RestoreOnExpiry,
    });
    guard.empty_since = decision.empty_since_ms.map(time_from_ms);
    if decision.empty_since_ms.is_none() {
        guard.last_protected = None;
    }
    let saved: BTreeMap<TopicPartition, i64> = guard
        .saved_offsets
        .iter()
        .map(|s| (TopicPartition::new(&s.topic, s.partition), s.offset))
        .collect();
    let mut protected_now = false;
    match decision.action {
        RetentionAction::Nothing => {}
        RetentionAction::Recommit | RetentionAction::Restore => {
            client.commit_offsets(group_id, &saved).await?;
            protected_now = true;
            guard.last_protected = Some(time_from_ms(now_ms));
            let (reason, note) = if decision.action == RetentionAction::Restore {
                (
                    "OffsetsRestored",
                    format!(
                        "The broker dropped the committed offsets of group {group_id}; restored {} saved offset(s)",
                        saved.len()
                    ),
                )
            } else {
                (
                    "OffsetsRecommitted",
                    format!(
                        "Re-committed {} offset(s) of empty group {group_id} to restart its retention clock",
                        saved.len()
                    ),
                )
            };
            events.push((EventType::Normal, reason, "GuardRetention", note));
            for (tp, offset) in &saved {
                obs.offsets.insert(
                    tp.clone(),
                    crate::kafka::CommittedOffset {
                        offset: *offset,
                        leader_epoch: None,
                        metadata: String::new(),
                    },
                );
            }
        }
    }
    // After a re-commit or restore the clock starts again.
    let expires_at = if protected_now && decision.protection == Some(Protection::Recommit) {
        Some(now_ms + retention_minutes * 60_000)
    } else {
        decision.expires_at_ms
    };
    guard.expires_at = expires_at.map(time_from_ms);
    let previous = find(&status.conditions, RETENTION_GUARD).map(|c| c.reason.clone());
    let c = if decision.expiring_soon {
        condition(
            RETENTION_GUARD,
            false,
            "ExpiringSoon",
            format!(
                "the committed offsets of empty group {group_id} expire at {}; the operator restores them if the broker drops them",
                guard.expires_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default()
            ),
            generation,
            now(),
        )
    } else {
        let message = match guard.protection {
            None => "the group has members; nothing expires while they are there".to_owned(),
            Some(RetentionProtection::Recommit) => "offsets are re-committed before they expire".to_owned(),
            Some(RetentionProtection::RestoreOnExpiry) => {
                "offsets are restored as soon as the broker drops them".to_owned()
            }
        };
        condition(RETENTION_GUARD, true, "Protected", message, generation, now())
    };
    if decision.expiring_soon && previous.as_deref() != Some("ExpiringSoon") {
        events.push((
            EventType::Warning,
            "OffsetsExpiringSoon",
            "GuardRetention",
            c.message.clone(),
        ));
    }
    set_condition(&mut status.conditions, c);
    status.retention_guard = Some(guard);
    Ok(())
}

fn parse(text: &str) -> Result<Duration, Error> {
    crate::plan::duration::parse_duration(text).map_err(|e| Error::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::GroupState;

    fn described(group_type: GroupType, state: GroupState, protocol_type: &str) -> GroupDescription {
        GroupDescription {
            group_id: "g".to_owned(),
            group_type,
            state,
            protocol_type: protocol_type.to_owned(),
            assignor: String::new(),
            coordinator: 1,
            members: Vec::new(),
            streams: None,
        }
    }

    #[test]
    fn the_retention_guard_knows_a_group_by_its_type() {
        let kind = |t, p| retention_kind(&described(t, GroupState::Empty, p));
        assert_eq!(kind(GroupType::Classic, ""), Some(GroupKind::NeverHadMembers));
        assert_eq!(
            kind(GroupType::Classic, "consumer"),
            Some(GroupKind::ClassicWithHistory)
        );
        assert_eq!(kind(GroupType::Consumer, "consumer"), Some(GroupKind::ConsumerProtocol));
        // Kafka describes a group it does not know as Dead without members.
        let gone = described(GroupType::Classic, GroupState::Dead, "");
        assert_eq!(retention_kind(&gone), None);
    }
}
