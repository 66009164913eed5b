//! A KIP-848 consumer group (`group.protocol=consumer`), after Apache Kafka's `GroupMetadataManager` and
//! `CurrentAssignmentBuilder`: members heartbeat (ConsumerGroupHeartbeat); the group epoch moves when a member
//! joins, leaves or changes its subscription, or a subscribed topic changes; the target assignment is then
//! computed by the server-side assignor; each member is brought to its target one step at a time — partitions
//! it must give up are revoked first (it keeps its epoch until it says it released them), and a partition is
//! given to its new owner only once no other member holds it.

use super::assignor::{self, Assignment, Subscriber, Tp};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The epoch a member sends to leave; -2 for a static member that leaves for now (it keeps its assignment
/// until its session times out).
pub const LEAVE_EPOCH: i32 = -1;
pub const LEAVE_STATIC_EPOCH: i32 = -2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// It must give up `pending_revocation` first.
    UnrevokedPartitions,
    /// Part of its target is still held by other members.
    UnreleasedPartitions,
}

#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: BTreeSet<String>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout: Duration,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub session_deadline: Instant,
    pub revocation_deadline: Option<Instant>,
    /// The assignment last sent to it (a response carries one only when it changed).
    last_sent: Option<Assignment>,
}

/// A ConsumerGroupHeartbeat, decoded (topic ids resolved to names).
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<Assignment>,
}

pub type Refusal = (ResponseError, String);

/// Timeouts of the group's members (`group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms`).
#[derive(Clone, Copy, Debug)]
pub struct ConsumerTiming {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
}

impl Default for ConsumerTiming {
    fn default() -> Self {
        ConsumerTiming {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
        }
    }
}

/// What the group needs to know of the topics: partition counts, and every name (for regex subscriptions).
pub trait Topics {
    fn partitions(&self, topic: &str) -> Option<i32>;
    fn names(&self) -> Vec<String>;
}

#[derive(Clone, Debug, Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// group.instance.id → member id.
    pub static_members: HashMap<String, String>,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics' partition counts when the target was computed.
    subscribed_partitions: BTreeMap<String, i32>,
    pub assignor: String,
}

/// The group's state, as ListGroups and ConsumerGroupDescribe name it.
pub fn state_name(group: &ConsumerGroup) -> &'static str {
    if group.members.is_empty() {
        "Empty"
    } else if group.group_epoch > group.assignment_epoch {
        "Assigning"
    } else if group
        .members
        .values()
        .any(|m| m.member_epoch != group.assignment_epoch || m.state != MemberState::Stable)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

impl ConsumerGroup {
    pub fn new(group_epoch: i32) -> ConsumerGroup {
        ConsumerGroup {
            group_epoch,
            assignment_epoch: group_epoch,
            assignor: assignor::UNIFORM.to_owned(),
            ..ConsumerGroup::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// One heartbeat: join (epoch 0), leave (-1, -2 static), or keep the member going; returns what to answer.
    pub fn heartbeat(
        &mut self,
        request: Heartbeat,
        topics: &dyn Topics,
        timing: ConsumerTiming,
        now: Instant,
    ) -> Result<HeartbeatReply, Refusal> {
        validate(&request)?;
        if request.member_epoch == LEAVE_EPOCH || request.member_epoch == LEAVE_STATIC_EPOCH {
            return self.leave(&request);
        }
        let joining = request.member_epoch == 0;
        let member_id = if joining {
            self.join(&request, now)?
        } else {
            let member = self
                .members
                .get(&request.member_id)
                .ok_or_else(|| unknown_member(&request.member_id))?;
            check_epoch(member, request.member_epoch, request.owned.as_ref())?;
            request.member_id.clone()
        };
        let mut subscription_changed = false;
        if let Some(member) = self.members.get_mut(&member_id) {
            member.session_deadline = now + timing.session_timeout;
            if let Some(names) = &request.subscribed_topic_names {
                let names: BTreeSet<String> = names.iter().cloned().collect();
                subscription_changed |= names != member.subscribed_topics;
                member.subscribed_topics = names;
            }
            if request.subscribed_topic_regex.is_some() && request.subscribed_topic_regex != member.subscribed_regex {
                subscription_changed = true;
                member.subscribed_regex = request.subscribed_topic_regex.clone();
            }
            if request.server_assignor.is_some() {
                member.server_assignor = request.server_assignor.clone();
            }
            if request.rack_id.is_some() {
                member.rack_id = request.rack_id.clone();
            }
            if request.rebalance_timeout_ms > 0 {
                member.rebalance_timeout = Duration::from_millis(request.rebalance_timeout_ms as u64);
            }
        }
        if subscription_changed || joining {
            self.group_epoch += 1;
        }
        self.refresh_target(topics);
        self.reconcile(&member_id, request.owned.as_ref(), now);
        let member = self
            .members
            .get_mut(&member_id)
            .ok_or_else(|| unknown_member(&member_id))?;
        // A full request (a join, or one after an error, with the subscription) always gets the assignment.
        let full = request.subscribed_topic_names.is_some() || request.owned.is_some() && joining;
        let assignment = (full || member.last_sent.as_ref() != Some(&member.assigned)).then(|| member.assigned.clone());
        if assignment.is_some() {
            member.last_sent = Some(member.assigned.clone());
        }
        Ok(HeartbeatReply {
            member_id,
            member_epoch: member.member_epoch,
            assignment,
        })
    }

    fn join(&mut self, request: &Heartbeat, now: Instant) -> Result<String, Refusal> {
        let member_id = if request.member_id.is_empty() {
            new_member_id()
        } else {
            request.member_id.clone()
        };
        let template = ConsumerMember {
            member_id: member_id.clone(),
            instance_id: request.instance_id.clone(),
            rack_id: request.rack_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            subscribed_topics: BTreeSet::new(),
            subscribed_regex: None,
            server_assignor: None,
            rebalance_timeout: Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64),
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: now,
            revocation_deadline: None,
            last_sent: None,
        };
        if let Some(instance) = &request.instance_id
            && let Some(previous_id) = self.static_members.get(instance).cloned()
        {
            let previous = self.members.get(&previous_id).cloned();
            match previous {
                Some(p) if p.member_epoch != LEAVE_STATIC_EPOCH && previous_id != member_id => {
                    return Err((
                        ResponseError::UnreleasedInstanceId,
                        format!("Static member {previous_id} with instance id {instance} is not released yet"),
                    ));
                }
                Some(p) => {
                    // The static member comes back (under a new member id): it takes over what it had.
                    self.members.remove(&previous_id);
                    let target = self.target.remove(&previous_id);
                    let member = ConsumerMember {
                        assigned: p.assigned,
                        pending_revocation: p.pending_revocation,
                        member_epoch: p.previous_member_epoch.max(0),
                        state: p.state,
                        subscribed_topics: p.subscribed_topics,
                        subscribed_regex: p.subscribed_regex,
                        server_assignor: p.server_assignor,
                        ..template
                    };
                    self.members.insert(member_id.clone(), member);
                    if let Some(target) = target {
                        self.target.insert(member_id.clone(), target);
                    }
                    self.static_members.insert(instance.clone(), member_id.clone());
                    return Ok(member_id);
                }
                None => {}
            }
        }
        // A member that joins again (epoch 0) with its id starts over: what it held is released.
        self.members.remove(&member_id);
        self.target.remove(&member_id);
        if let Some(instance) = &request.instance_id {
            self.static_members.insert(instance.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), template);
        Ok(member_id)
    }

    fn leave(&mut self, request: &Heartbeat) -> Result<HeartbeatReply, Refusal> {
        let member_id = match (&request.instance_id, request.member_id.is_empty()) {
            (Some(instance), true) => self.static_members.get(instance).cloned().unwrap_or_default(),
            _ => request.member_id.clone(),
        };
        if !self.members.contains_key(&member_id) {
            return Err(unknown_member(&member_id));
        }
        if request.member_epoch == LEAVE_STATIC_EPOCH && request.instance_id.is_some() {
            // Gone for now: keeps its partitions until its session times out or it comes back.
            if let Some(m) = self.members.get_mut(&member_id) {
                m.previous_member_epoch = m.member_epoch;
                m.member_epoch = LEAVE_STATIC_EPOCH;
            }
        } else {
            self.remove(&member_id);
        }
        Ok(HeartbeatReply {
            member_id,
            member_epoch: request.member_epoch,
            assignment: None,
        })
    }

    /// Removes a member (left, session expired, or fenced): its partitions are free, the epoch moves.
    pub fn remove(&mut self, member_id: &str) {
        if let Some(m) = self.members.remove(member_id) {
            if let Some(instance) = &m.instance_id
                && self.static_members.get(instance).map(String::as_str) == Some(member_id)
            {
                self.static_members.remove(instance);
            }
            self.target.remove(member_id);
            self.group_epoch += 1;
        }
    }

    /// Removes members whose session expired or that did not revoke within their rebalance timeout; returns
    /// whether any was.
    pub fn expire(&mut self, now: Instant) -> bool {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            tracing::info!(member = %id, "removing a consumer group member (session or rebalance timeout)");
            self.remove(id);
        }
        !gone.is_empty()
    }

    /// The topics a member subscribes to: its names and what its regex matches.
    fn resolved(member: &ConsumerMember, all: &[String]) -> BTreeSet<String> {
        let mut topics = member.subscribed_topics.clone();
        if let Some(pattern) = &member.subscribed_regex
            && let Ok(re) = regex::Regex::new(&format!("^(?:{pattern})$"))
        {
            topics.extend(all.iter().filter(|t| re.is_match(t)).cloned());
        }
        topics
    }

    /// Computes a new target when the group epoch moved or a subscribed topic changed.
    fn refresh_target(&mut self, topics: &dyn Topics) {
        let all = if self.members.values().any(|m| m.subscribed_regex.is_some()) {
            topics.names()
        } else {
            Vec::new()
        };
        let resolved: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), Self::resolved(m, &all)))
            .collect();
        let partitions: BTreeMap<String, i32> = resolved
            .values()
            .flatten()
            .filter_map(|t| topics.partitions(t).map(|n| (t.clone(), n)))
            .collect();
        if partitions != self.subscribed_partitions && self.group_epoch == self.assignment_epoch {
            self.group_epoch += 1;
        }
        if self.group_epoch == self.assignment_epoch {
            return;
        }
        if let Some(preferred) = self.members.values().rev().find_map(|m| m.server_assignor.clone()) {
            self.assignor = preferred;
        }
        let subscribers: Vec<Subscriber<'_>> = self
            .members
            .values()
            .map(|m| Subscriber {
                member_id: &m.member_id,
                topics: &resolved[&m.member_id],
                previous: self.target.get(&m.member_id),
            })
            .collect();
        let target = assignor::assign(&self.assignor, &subscribers, &partitions);
        self.target = target;
        self.subscribed_partitions = partitions;
        self.assignment_epoch = self.group_epoch;
    }

    /// Whether a member other than `member_id` holds `tp` (assigned, or not yet revoked).
    fn held_by_other(&self, member_id: &str, tp: &Tp) -> bool {
        self.members
            .values()
            .any(|m| m.member_id != member_id && (m.assigned.contains(tp) || m.pending_revocation.contains(tp)))
    }

    /// Brings one member a step towards its target (Kafka's `CurrentAssignmentBuilder`).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: Instant) {
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        if member.state == MemberState::UnrevokedPartitions {
            // It has revoked once what it reports owning no longer holds them.
            let revoked = owned.is_some_and(|owned| owned.is_disjoint(&member.pending_revocation));
            if !revoked {
                return;
            }
        } else if member.state == MemberState::Stable && member.member_epoch == self.assignment_epoch {
            return;
        }
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let keep: Assignment = member.assigned.intersection(&target).cloned().collect();
        let revoke: Assignment = member.assigned.difference(&target).cloned().collect();
        let (assigned, pending, state, epoch, deadline) = if !revoke.is_empty() {
            let deadline = now + member.rebalance_timeout.max(Duration::from_secs(1));
            (
                keep,
                revoke,
                MemberState::UnrevokedPartitions,
                member.member_epoch,
                Some(deadline),
            )
        } else {
            let wanted: Vec<Tp> = target.difference(&member.assigned).cloned().collect();
            let (free, held): (Vec<Tp>, Vec<Tp>) =
                wanted.into_iter().partition(|tp| !self.held_by_other(member_id, tp));
            let mut assigned = keep;
            assigned.extend(free);
            let state = if held.is_empty() {
                MemberState::Stable
            } else {
                MemberState::UnreleasedPartitions
            };
            (assigned, Assignment::new(), state, self.assignment_epoch, None)
        };
        if let Some(m) = self.members.get_mut(member_id) {
            if epoch != m.member_epoch {
                m.previous_member_epoch = m.member_epoch;
            }
            m.assigned = assigned;
            m.pending_revocation = pending;
            m.state = state;
            m.member_epoch = epoch;
            m.revocation_deadline = deadline;
        }
    }

    /// Kafka's offset commit check for a consumer group: an admin commit (epoch < 0, no member) only while the
    /// group is empty; a member's commit at its current epoch.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        if member_epoch < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        let member = self.members.get(member_id).ok_or(ResponseError::UnknownMemberId)?;
        if member_epoch != member.member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

fn validate(r: &Heartbeat) -> Result<(), Refusal> {
    let invalid = |what: &str| Err((ResponseError::InvalidRequest, what.to_owned()));
    if r.member_epoch == 0 {
        if r.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if r.owned.as_ref().is_some_and(|o| !o.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if r.subscribed_topic_names.is_none() && r.subscribed_topic_regex.is_none() {
            return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
        }
    } else if r.member_id.is_empty() && r.member_epoch > 0 {
        return invalid("MemberId can't be empty.");
    }
    if let Some(pattern) = &r.subscribed_topic_regex
        && regex::Regex::new(pattern).is_err()
    {
        return Err((
            ResponseError::InvalidRegularExpression,
            format!("SubscribedTopicRegex {pattern} is not a valid regular expression."),
        ));
    }
    if let Some(name) = &r.server_assignor
        && !assignor::ASSIGNORS.contains(&name.as_str())
    {
        return Err((
            ResponseError::UnsupportedAssignor,
            format!("ServerAssignor {name} is not supported. Supported assignors: uniform, range."),
        ));
    }
    Ok(())
}

fn unknown_member(member_id: &str) -> Refusal {
    (
        ResponseError::UnknownMemberId,
        format!("Member {member_id} is not a member of the group."),
    )
}

/// Kafka's check of the epoch a member sends: ahead of the group's view, or behind it other than a missed
/// response (the previous epoch, owning nothing it no longer has), is fenced.
fn check_epoch(member: &ConsumerMember, received: i32, owned: Option<&Assignment>) -> Result<(), Refusal> {
    let fenced = || {
        Err((
            ResponseError::FencedMemberEpoch,
            format!(
                "The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                member.member_epoch
            ),
        ))
    };
    if received > member.member_epoch {
        return fenced();
    }
    if received < member.member_epoch {
        let missed_response =
            received == member.previous_member_epoch && owned.is_some_and(|o| o.is_subset(&member.assigned));
        if !missed_response {
            return fenced();
        }
    }
    Ok(())
}

fn new_member_id() -> String {
    let bytes: [u8; 16] = rand::random();
    // Kafka's member ids for this protocol are base64 UUIDs; any unique string serves.
    uuid::Builder::from_random_bytes(bytes).into_uuid().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Catalog(BTreeMap<String, i32>);

    impl Topics for Catalog {
        fn partitions(&self, topic: &str) -> Option<i32> {
            self.0.get(topic).copied()
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    fn join(id: &str) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            ..Heartbeat::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            owned: Some(owned.clone()),
            ..Heartbeat::default()
        }
    }

    fn catalog() -> Catalog {
        Catalog(BTreeMap::from([("t".to_owned(), 4)]))
    }

    #[test]
    fn a_partition_moves_to_a_new_member_only_after_its_owner_revoked_it() {
        let (topics, timing, now) = (catalog(), ConsumerTiming::default(), Instant::now());
        let mut g = ConsumerGroup::new(0);
        let a = g.heartbeat(join("a"), &topics, timing, now).expect("a joins");
        assert_eq!((a.member_epoch, a.assignment.as_ref().map(BTreeSet::len)), (1, Some(4)));
        assert_eq!(state_name(&g), "Stable");
        let a_owned = a.assignment.expect("assignment");

        let b = g.heartbeat(join("b"), &topics, timing, now).expect("b joins");
        assert_eq!(b.member_epoch, 2);
        assert_eq!(b.assignment, Some(Assignment::new()), "nothing free yet: a holds all");
        assert_eq!(state_name(&g), "Reconciling");

        // a learns it must give up two partitions: it keeps its epoch until it has.
        let a2 = g
            .heartbeat(beat("a", 1, &a_owned), &topics, timing, now)
            .expect("a beats");
        assert_eq!(a2.member_epoch, 1);
        let kept = a2.assignment.expect("a's new assignment");
        assert_eq!(kept.len(), 2);
        // b still waits.
        let b2 = g
            .heartbeat(beat("b", 2, &Assignment::new()), &topics, timing, now)
            .expect("b beats");
        assert_eq!(b2.assignment, None, "unchanged");
        // a says it released them: it moves to epoch 2, and b then gets them.
        let a3 = g
            .heartbeat(beat("a", 1, &kept), &topics, timing, now)
            .expect("a revoked");
        assert_eq!(a3.member_epoch, 2);
        let b3 = g
            .heartbeat(beat("b", 2, &Assignment::new()), &topics, timing, now)
            .expect("b beats");
        let b_owned = b3.assignment.expect("b's partitions");
        assert_eq!(b_owned.len(), 2);
        assert!(b_owned.is_disjoint(&kept));
        assert_eq!(state_name(&g), "Stable");
    }

    #[test]
    fn epochs_ahead_or_stale_are_fenced_and_unknown_members_refused() {
        let (topics, timing, now) = (catalog(), ConsumerTiming::default(), Instant::now());
        let mut g = ConsumerGroup::new(0);
        let a = g.heartbeat(join("a"), &topics, timing, now).expect("join");
        let owned = a.assignment.expect("assignment");
        let err = g
            .heartbeat(beat("a", 5, &owned), &topics, timing, now)
            .expect_err("refused");
        assert_eq!(err.0, ResponseError::FencedMemberEpoch);
        let err = g
            .heartbeat(beat("zz", 1, &owned), &topics, timing, now)
            .expect_err("refused");
        assert_eq!(err.0, ResponseError::UnknownMemberId);
        assert_eq!(g.validate_commit("a", 1), Ok(()));
        assert_eq!(g.validate_commit("a", 0), Err(ResponseError::StaleMemberEpoch));
        assert_eq!(g.validate_commit("", -1), Err(ResponseError::UnknownMemberId));
    }

    #[test]
    fn a_member_that_leaves_or_times_out_frees_its_partitions() {
        let (topics, timing, now) = (catalog(), ConsumerTiming::default(), Instant::now());
        let mut g = ConsumerGroup::new(0);
        g.heartbeat(join("a"), &topics, timing, now).expect("a");
        g.heartbeat(join("b"), &topics, timing, now + Duration::from_secs(40))
            .expect("b");
        assert!(g.expire(now + Duration::from_secs(46)), "a's session expired");
        let b = g
            .heartbeat(
                beat("b", g.members["b"].member_epoch, &Assignment::new()),
                &topics,
                timing,
                now + Duration::from_secs(46),
            )
            .expect("b");
        assert_eq!(b.assignment.map(|a| a.len()), Some(4));
        let left = g
            .heartbeat(
                Heartbeat {
                    member_id: "b".into(),
                    member_epoch: LEAVE_EPOCH,
                    ..Heartbeat::default()
                },
                &topics,
                timing,
                now,
            )
            .expect("leave");
        assert_eq!(left.member_epoch, LEAVE_EPOCH);
        assert!(g.is_empty());
        assert_eq!(state_name(&g), "Empty");
        assert_eq!(g.validate_commit("", -1), Ok(()));
    }

    #[test]
    fn a_static_member_that_comes_back_takes_over_its_partitions_and_a_second_one_is_refused() {
        let (topics, timing, now) = (catalog(), ConsumerTiming::default(), Instant::now());
        let mut g = ConsumerGroup::new(0);
        let first = g
            .heartbeat(
                Heartbeat {
                    instance_id: Some("i".into()),
                    ..join("a")
                },
                &topics,
                timing,
                now,
            )
            .expect("join");
        let err = g
            .heartbeat(
                Heartbeat {
                    instance_id: Some("i".into()),
                    ..join("b")
                },
                &topics,
                timing,
                now,
            )
            .expect_err("refused");
        assert_eq!(err.0, ResponseError::UnreleasedInstanceId);
        g.heartbeat(
            Heartbeat {
                member_id: "a".into(),
                instance_id: Some("i".into()),
                member_epoch: LEAVE_STATIC_EPOCH,
                ..Heartbeat::default()
            },
            &topics,
            timing,
            now,
        )
        .expect("static leave");
        let back = g
            .heartbeat(
                Heartbeat {
                    instance_id: Some("i".into()),
                    ..join("b")
                },
                &topics,
                timing,
                now,
            )
            .expect("comes back");
        assert_eq!(back.assignment, first.assignment, "the same partitions, no rebalance");
        assert_eq!(g.members.len(), 1);
    }

    #[test]
    fn a_new_partition_moves_the_epoch_and_is_assigned() {
        let (timing, now) = (ConsumerTiming::default(), Instant::now());
        let mut g = ConsumerGroup::new(0);
        let a = g.heartbeat(join("a"), &catalog(), timing, now).expect("join");
        let owned = a.assignment.expect("assignment");
        let grown = Catalog(BTreeMap::from([("t".to_owned(), 6)]));
        let a2 = g.heartbeat(beat("a", 1, &owned), &grown, timing, now).expect("beat");
        assert_eq!(a2.member_epoch, 2);
        assert_eq!(a2.assignment.map(|a| a.len()), Some(6));
    }

    #[test]
    fn bad_first_heartbeats_are_refused() {
        let (topics, timing, now) = (catalog(), ConsumerTiming::default(), Instant::now());
        let mut g = ConsumerGroup::new(0);
        let no_subscription = Heartbeat {
            subscribed_topic_names: None,
            ..join("a")
        };
        assert_eq!(
            g.heartbeat(no_subscription, &topics, timing, now)
                .expect_err("refused")
                .0,
            ResponseError::InvalidRequest
        );
        let assignor = Heartbeat {
            server_assignor: Some("sticky".into()),
            ..join("a")
        };
        assert_eq!(
            g.heartbeat(assignor, &topics, timing, now).expect_err("refused").0,
            ResponseError::UnsupportedAssignor
        );
    }
}
