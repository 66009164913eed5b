//! The classic group state machine, after Apache Kafka's `GroupCoordinator`/`ClassicGroup`: Empty,
//! PreparingRebalance, CompletingRebalance, Stable, Dead. Pure logic with time passed in; waiting requests are
//! oneshot senders completed by the transitions.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tokio::sync::oneshot;

use super::member::{JoinOutcome, JoinedMember, Member, Protocol, SyncOutcome};
use super::offsets::Offsets;

pub const NONE: i16 = 0;

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The protocol type of Kafka's consumers, whose metadata is a `ConsumerProtocolSubscription`.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// How the group log records the type of a KIP-848 consumer group (its protocol type is "consumer" like a
/// classic consumer group's; this value never reaches the wire).
pub const KIP848_STORED_TYPE: &str = "consumer/kip-848";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The broker settings the state machine needs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub initial_rebalance_delay: Duration,
}

/// A JoinGroup request, decoded.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a member without an id first gets one with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader can be told to skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request, decoded.
#[derive(Clone, Debug, Default)]
pub struct SyncRequest {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A response available at once, or one to wait for.
#[derive(Debug)]
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first member to join an empty group leads it.
    pub members: IndexMap<String, Member>,
    /// group.instance.id → member id of the static members.
    pub static_members: HashMap<String, String>,
    /// Members given an id with MEMBER_ID_REQUIRED, until they join with it (or their session times out).
    pub pending_members: HashMap<String, Instant>,
    /// When the current join phase ends whether or not every member rejoined.
    join_deadline: Option<Instant>,
    /// Set while the first rebalance of an empty group waits `group.initial.rebalance.delay.ms`: how much of
    /// the rebalance timeout is left to extend the delay by while new members keep arriving.
    initial_delay_remaining: Option<Duration>,
    new_member_added: bool,
    /// Members that got their JoinGroup response but have not sent SyncGroup, and until when they may.
    pending_sync: HashSet<String>,
    sync_deadline: Option<Instant>,
    /// The topics the members subscribe to (consumer protocol); None when unknown (then all count).
    subscribed_topics: Option<HashSet<String>>,
    /// When the group last became Empty after having members (milliseconds since the epoch), for retention.
    pub empty_since: Option<i64>,
    pub offsets: Offsets,
    /// The generation or protocol changed since the coordinator last persisted the group.
    pub metadata_changed: bool,
    /// Set for a KIP-848 consumer group (`group.protocol=consumer`): its members and assignments. The classic
    /// fields then only mirror it (`sync_consumer_state`): Stable while it has members, Empty without.
    pub consumer: Option<Box<super::consumer::ConsumerGroup>>,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            join_deadline: None,
            initial_delay_remaining: None,
            new_member_added: false,
            pending_sync: HashSet::new(),
            sync_deadline: None,
            subscribed_topics: None,
            empty_since: None,
            offsets: Offsets::default(),
            metadata_changed: false,
            consumer: None,
        }
    }

    /// Mirrors a consumer group's membership in the classic fields that retention, DeleteGroups and OffsetDelete
    /// read: Stable while it has members (never expired, never deleted), its subscriptions, its epoch as the
    /// generation (persisted).
    pub fn sync_consumer_state(&mut self, wall_ms: i64) {
        let Some(consumer) = &self.consumer else { return };
        let before = self.state;
        self.state = if consumer.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.subscribed_topics = Some(
            consumer
                .members
                .values()
                .flat_map(|m| m.subscribed_topics.iter().cloned())
                .collect(),
        );
        if self.generation != consumer.group_epoch || self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            self.generation = consumer.group_epoch;
            self.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_owned());
            self.metadata_changed = true;
        }
        self.note_state_change(before, wall_ms);
    }

    /// The protocol type as the group log records it (a KIP-848 group's is marked).
    pub fn stored_protocol_type(&self) -> Option<&str> {
        if self.consumer.is_some() {
            Some(KIP848_STORED_TYPE)
        } else {
            self.protocol_type.as_deref()
        }
    }

    /// The state ListGroups shows: a consumer group's own (Assigning, Reconciling…), else the classic one.
    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(consumer) => super::consumer::state_name(consumer),
            None => self.state.name(),
        }
    }

    /// Kafka's `isSubscribedToTopic`: when the subscriptions are unknown, every topic counts as subscribed.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => !self.members.is_empty(),
        }
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    /// Fencing of static members: an instance id registered under another member id.
    pub(super) fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(registered) => registered != member_id,
            None => false,
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn current_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    fn outcome_for(&self, member_id: &str, with_members: bool, skip_assignment: bool) -> JoinOutcome {
        JoinOutcome {
            error: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members: if with_members {
                self.current_metadata()
            } else {
                Vec::new()
            },
            skip_assignment,
        }
    }

    // ---- JoinGroup ----

    pub fn join(
        &mut self,
        req: JoinRequest,
        new_member_id: impl FnOnce(&str) -> String,
        timing: Timing,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        if self.state == GroupState::Dead {
            return Reply::Now(JoinOutcome::error(
                code(ResponseError::CoordinatorNotAvailable),
                &req.member_id,
            ));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return Reply::Now(JoinOutcome::error(
                code(ResponseError::InconsistentGroupProtocol),
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            let prefix = req.instance_id.clone().unwrap_or_else(|| req.client_id.clone());
            let member_id = new_member_id(&prefix);
            if req.instance_id.is_some() {
                return self.static_join(req, member_id, timing, now);
            }
            if req.require_known_member_id {
                self.pending_members
                    .insert(member_id.clone(), now + req.session_timeout);
                return Reply::Now(JoinOutcome::error(code(ResponseError::MemberIdRequired), &member_id));
            }
            return Reply::Wait(self.add_member_and_rebalance(req, member_id, timing, now));
        }
        let member_id = req.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            return Reply::Wait(self.add_member_and_rebalance(req, member_id, timing, now));
        }
        if self.is_fenced(&member_id, req.instance_id.as_deref()) {
            return Reply::Now(JoinOutcome::error(code(ResponseError::FencedInstanceId), &member_id));
        }
        let Some(member) = self.members.get(&member_id) else {
            return Reply::Now(JoinOutcome::error(code(ResponseError::UnknownMemberId), &member_id));
        };
        let unchanged = member.protocols == req.protocols;
        match self.state {
            GroupState::PreparingRebalance => Reply::Wait(self.update_member_and_rebalance(req, timing, now)),
            GroupState::CompletingRebalance if unchanged => {
                // The member lost its JoinGroup response: give it again.
                let leader = self.leader.as_deref() == Some(member_id.as_str());
                Reply::Now(self.outcome_for(&member_id, leader, false))
            }
            GroupState::Stable if unchanged && self.leader.as_deref() != Some(member_id.as_str()) => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.last_heartbeat = now;
                }
                Reply::Now(self.outcome_for(&member_id, false, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                Reply::Wait(self.update_member_and_rebalance(req, timing, now))
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinOutcome::error(code(ResponseError::UnknownMemberId), &member_id))
            }
        }
    }

    /// A JoinGroup with a group.instance.id and no member id: a new static member, or a known one coming back
    /// (after a restart) that replaces its old member id, without a rebalance when nothing changed.
    fn static_join(&mut self, req: JoinRequest, member_id: String, timing: Timing, now: Instant) -> Reply<JoinOutcome> {
        let instance_id = req.instance_id.clone().unwrap_or_default();
        let Some(old_id) = self.static_members.get(&instance_id).cloned() else {
            return Reply::Wait(self.add_member_and_rebalance(req, member_id, timing, now));
        };
        let Some(mut member) = self.members.shift_remove(&old_id) else {
            self.static_members.remove(&instance_id);
            return Reply::Wait(self.add_member_and_rebalance(req, member_id, timing, now));
        };
        // The old incarnation's pending requests are fenced.
        member.complete_join(JoinOutcome::error(code(ResponseError::FencedInstanceId), &old_id));
        member.complete_sync(SyncOutcome::error(code(ResponseError::FencedInstanceId)));
        member.id = member_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.last_heartbeat = now;
        self.members.insert(member_id.clone(), member);
        self.static_members.insert(instance_id, member_id.clone());
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(member_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(member_id.clone());
        }
        self.metadata_changed = true;
        if self.state != GroupState::Stable {
            let req = JoinRequest { member_id, ..req };
            return Reply::Wait(self.update_member_and_rebalance(req, timing, now));
        }
        // Stable: like Kafka, only a change of the group's selected protocol rebalances. The metadata bytes
        // differ between incarnations anyway (clients put their generation and owned partitions in them).
        let old_protocols = self
            .members
            .get_mut(&member_id)
            .map(|m| {
                m.session_timeout = req.session_timeout;
                m.rebalance_timeout = req.rebalance_timeout;
                std::mem::replace(&mut m.protocols, req.protocols.clone())
            })
            .unwrap_or_default();
        if self.select_protocol() != self.protocol_name {
            if let Some(m) = self.members.get_mut(&member_id) {
                m.protocols = old_protocols;
            }
            let req = JoinRequest { member_id, ..req };
            return Reply::Wait(self.update_member_and_rebalance(req, timing, now));
        }
        self.subscribed_topics = self.compute_subscribed_topics();
        // A returning leader gets the members (it may run its assignor; v9+ is told it need not, KIP-814):
        // its SyncGroup in Stable returns the current assignment whatever it sends.
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        Reply::Now(self.outcome_for(&member_id, is_leader, is_leader && req.supports_skip_assignment))
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        timing: Timing,
        now: Instant,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance_id) = &req.instance_id {
            self.static_members.insert(instance_id.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id.clone(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                last_heartbeat: now,
                is_new: true,
            },
        );
        if self.leader.is_none() {
            self.leader = Some(member_id);
        }
        if self.state == GroupState::PreparingRebalance && self.initial_delay_remaining.is_some() {
            self.new_member_added = true;
        }
        let reason = format!(
            "new member {} joined",
            self.members.last().map_or("", |(id, _)| id.as_str())
        );
        self.maybe_prepare_rebalance(timing, now, &reason);
        self.try_complete_join(now);
        rx
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        timing: Timing,
        now: Instant,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(&req.member_id) {
            member.protocols = req.protocols;
            member.session_timeout = req.session_timeout;
            member.rebalance_timeout = req.rebalance_timeout;
            member.last_heartbeat = now;
            // A repeated JoinGroup replaces the earlier one, whose requester has given up on it.
            member.join_waiter = Some(tx);
        }
        let reason = format!("member {} rejoined", req.member_id);
        self.maybe_prepare_rebalance(timing, now, &reason);
        self.try_complete_join(now);
        rx
    }

    fn maybe_prepare_rebalance(&mut self, timing: Timing, now: Instant, reason: &str) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(timing, now, reason);
        }
    }

    fn prepare_rebalance(&mut self, timing: Timing, now: Instant, reason: &str) {
        tracing::info!(group = %self.id, state = self.state.name(), generation = self.generation, reason, "preparing to rebalance");
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.complete_sync(SyncOutcome::error(code(ResponseError::RebalanceInProgress)));
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let rebalance_timeout = self.max_rebalance_timeout();
        if self.state == GroupState::Empty {
            // Kafka's InitialDelayedJoin: wait for more members before the first generation.
            let delay = timing.initial_rebalance_delay.min(rebalance_timeout);
            self.join_deadline = Some(now + delay);
            self.initial_delay_remaining = Some(rebalance_timeout.saturating_sub(timing.initial_rebalance_delay));
            self.new_member_added = false;
        } else {
            self.join_deadline = Some(now + rebalance_timeout);
            self.initial_delay_remaining = None;
        }
        self.state = GroupState::PreparingRebalance;
        self.try_complete_join(now);
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::is_awaiting_join)
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay_remaining.is_none()
            && self.all_members_joined()
        {
            self.complete_join(now);
        }
    }

    /// The join phase ends: members that did not rejoin are dropped, the next generation starts, and every
    /// waiting JoinGroup gets its response (the leader's with the members' metadata).
    fn complete_join(&mut self, now: Instant) {
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join())
            .map(|m| m.id.clone())
            .collect();
        for id in not_rejoined {
            self.drop_member(&id, ResponseError::UnknownMemberId);
        }
        self.join_deadline = None;
        self.initial_delay_remaining = None;
        self.new_member_added = false;
        self.generation += 1;
        self.metadata_changed = true;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.subscribed_topics = None;
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.subscribed_topics = self.compute_subscribed_topics();
        self.state = GroupState::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or_default(),
            "stabilized group: waiting for the leader's assignment"
        );
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        self.pending_sync = self.members.keys().cloned().collect();
        let leader = self.leader.clone().unwrap_or_default();
        let all = self.current_metadata();
        let template = self.outcome_for(&leader, false, false);
        for member in self.members.values_mut() {
            let outcome = JoinOutcome {
                member_id: member.id.clone(),
                members: if member.id == leader { all.clone() } else { Vec::new() },
                ..template.clone()
            };
            member.complete_join(outcome);
            member.is_new = false;
            member.last_heartbeat = now;
        }
    }

    /// Kafka's protocol vote: among the protocols every member supports, each member votes for the first one
    /// in its own preference order; most votes wins (ties: the earlier candidate).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for member in self.members.values() {
            if let Some(choice) = member
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name))
            {
                votes[choice] += 1;
            }
        }
        let mut best: Option<usize> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|b| *v > votes[b]) {
                best = Some(i);
            }
        }
        best.map(|i| candidates[i].to_owned())
    }

    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in self.members.values() {
            topics.extend(decode_subscription(&member.metadata(protocol))?);
        }
        Some(topics)
    }

    /// Removes a member without touching the state; its waiting requests get `error`.
    fn drop_member(&mut self, member_id: &str, error: ResponseError) {
        let Some(mut member) = self.members.shift_remove(member_id) else {
            return;
        };
        member.complete_join(JoinOutcome::error(code(error), member_id));
        member.complete_sync(SyncOutcome::error(code(error)));
        if let Some(instance_id) = &member.instance_id
            && self.static_members.get(instance_id).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance_id);
        }
        self.pending_sync.remove(member_id);
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// A member leaves (LeaveGroup, session timeout): the others rebalance without it.
    fn remove_member_and_update(&mut self, member_id: &str, timing: Timing, now: Instant, reason: &str) {
        self.drop_member(member_id, ResponseError::UnknownMemberId);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(timing, now, &format!("{reason}: {member_id}"))
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- SyncGroup ----

    pub fn sync(&mut self, req: SyncRequest, now: Instant) -> Reply<SyncOutcome> {
        let err = |e: ResponseError| Reply::Now(SyncOutcome::error(code(e)));
        if self.state == GroupState::Dead {
            return err(ResponseError::CoordinatorNotAvailable);
        }
        if self.is_fenced(&req.member_id, req.instance_id.as_deref()) {
            return err(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(&req.member_id) {
            return err(ResponseError::UnknownMemberId);
        }
        if req.generation != self.generation {
            return err(ResponseError::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol_name.as_ref())
        {
            return err(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => err(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return err(ResponseError::UnknownMemberId);
                };
                member.last_heartbeat = now;
                Reply::Now(SyncOutcome {
                    error: NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(&req.member_id) {
                    member.sync_waiter = Some(tx);
                    member.last_heartbeat = now;
                }
                self.pending_sync.remove(&req.member_id);
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let mut assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    let template = SyncOutcome {
                        error: NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: Bytes::new(),
                    };
                    for member in self.members.values_mut() {
                        member.assignment = assignments.remove(&member.id).unwrap_or_default();
                        let outcome = SyncOutcome {
                            assignment: member.assignment.clone(),
                            ..template.clone()
                        };
                        member.complete_sync(outcome);
                    }
                    self.state = GroupState::Stable;
                    self.pending_sync.clear();
                    self.sync_deadline = None;
                    self.metadata_changed = true;
                }
                Reply::Wait(rx)
            }
        }
    }

    // ---- Heartbeat, LeaveGroup ----

    pub fn heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now: Instant) -> i16 {
        if self.state == GroupState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if self.is_fenced(member_id, instance_id) {
            return code(ResponseError::FencedInstanceId);
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return code(ResponseError::UnknownMemberId);
        };
        if generation != self.generation {
            return code(ResponseError::IllegalGeneration);
        }
        member.last_heartbeat = now;
        match self.state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
        }
    }

    /// One member identity of a LeaveGroup: by member id, or (v3+) by instance id with an unknown member id.
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, timing: Timing, now: Instant) -> i16 {
        if self.state == GroupState::Dead {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        let target = match instance_id {
            Some(instance) if member_id.is_empty() => match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return code(ResponseError::UnknownMemberId),
            },
            _ => member_id.to_owned(),
        };
        if self.pending_members.remove(&target).is_some() {
            self.try_complete_join(now);
            return NONE;
        }
        if self.is_fenced(&target, instance_id) {
            return code(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(&target) {
            return code(ResponseError::UnknownMemberId);
        }
        self.remove_member_and_update(&target, timing, now, "member left the group");
        NONE
    }

    // ---- OffsetCommit ----

    /// Kafka's checks for a classic group's OffsetCommit; Ok when the commit may be applied.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        if let Some(consumer) = &self.consumer {
            return consumer.validate_commit(member_id, generation).map_err(code);
        }
        if self.is_fenced(member_id, instance_id) {
            return Err(code(ResponseError::FencedInstanceId));
        }
        if generation < 0 && self.state == GroupState::Empty {
            // Admin tools and standalone consumers commit outside group management.
            return Ok(());
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(code(ResponseError::UnknownMemberId));
        };
        if generation != self.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(code(ResponseError::RebalanceInProgress));
        }
        member.last_heartbeat = now;
        Ok(())
    }

    // ---- timers ----

    /// Advances the timers to `now`: pending and session expiry, the end of the join phase (or the initial
    /// delay), and members that never sent SyncGroup. `wall_ms` stamps when the group became empty.
    pub fn poll(&mut self, timing: Timing, now: Instant, wall_ms: i64) {
        let before = self.state;
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired_pending {
            self.pending_members.remove(id);
        }
        if !expired_pending.is_empty() {
            self.try_complete_join(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_alive(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::debug!(group = %self.id, member = %id, "session timed out");
            self.remove_member_and_update(&id, timing, now, "member's session timed out");
        }
        if self.state == GroupState::PreparingRebalance && self.join_deadline.is_some_and(|d| d <= now) {
            match self.initial_delay_remaining {
                Some(remaining) if self.new_member_added && !remaining.is_zero() => {
                    let delay = timing.initial_rebalance_delay.min(remaining);
                    self.join_deadline = Some(now + delay);
                    self.initial_delay_remaining = Some(remaining - delay);
                    self.new_member_added = false;
                }
                _ => self.complete_join(now),
            }
        }
        if self.state == GroupState::CompletingRebalance && self.sync_deadline.is_some_and(|d| d <= now) {
            let laggards: Vec<String> = self.pending_sync.iter().cloned().collect();
            for id in laggards {
                self.drop_member(&id, ResponseError::RebalanceInProgress);
            }
            self.prepare_rebalance(timing, now, "members did not send SyncGroup in the rebalance timeout");
        }
        self.note_state_change(before, wall_ms);
    }

    /// Records when the group became Empty after having members (the start of offset retention).
    pub fn note_state_change(&mut self, before: GroupState, wall_ms: i64) {
        if self.state == GroupState::Empty && before != GroupState::Empty {
            self.empty_since = Some(wall_ms);
        } else if self.state != GroupState::Empty {
            self.empty_since = None;
        }
    }

    /// The group ends (DeleteGroups): nothing may wait on it any longer.
    pub fn mark_dead(&mut self) {
        for id in self.members.keys().cloned().collect::<Vec<_>>() {
            self.drop_member(&id, ResponseError::CoordinatorNotAvailable);
        }
        self.state = GroupState::Dead;
    }

    /// Completes every waiting request with `error` (coordinator shutdown).
    pub fn abort_waiters(&mut self, error: ResponseError) {
        for member in self.members.values_mut() {
            let id = member.id.clone();
            member.complete_join(JoinOutcome::error(code(error), &id));
            member.complete_sync(SyncOutcome::error(code(error)));
        }
    }
}

/// The topics of a consumer protocol subscription (`ConsumerProtocolSubscription`, version-prefixed).
pub fn decode_subscription(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    // Newer subscription versions only add fields at the end: read them as the newest we know.
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)).ok()?;
    Some(subscription.topics.iter().map(|t| t.to_string()).collect())
}

#[cfg(test)]
mod tests;
