//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: requests decoded into the state machine's terms, its
//! outcomes encoded for the version the client speaks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::group::{Group, JoinRequest, Reply, SyncRequest};
use super::member::{JoinOutcome, Protocol, SyncOutcome};
use super::{ClientInfo, GroupCoordinator, new_member_id, wall_ms};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub(super) async fn join_group(
    c: &Arc<GroupCoordinator>,
    r: JoinGroupRequest,
    version: i16,
    client: &ClientInfo,
) -> JoinGroupResponse {
    let req = JoinRequest {
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
        session_timeout: millis(r.session_timeout_ms),
        // v0 has no rebalance timeout: the session timeout served as both.
        rebalance_timeout: millis(if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        }),
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata.clone(),
            })
            .collect(),
        require_known_member_id: version >= 4 && r.group_instance_id.is_none(),
        supports_skip_assignment: version >= 9,
    };
    let outcome = match c.join(r.group_id.0.as_str(), req, r.session_timeout_ms) {
        Reply::Now(o) => o,
        Reply::Wait(rx) => rx
            .await
            .unwrap_or_else(|_| JoinOutcome::error(ResponseError::RebalanceInProgress.code(), &r.member_id)),
    };
    join_response(outcome, version)
}

impl GroupCoordinator {
    fn join(&self, group_id: &str, req: JoinRequest, session_timeout_ms: i32) -> Reply<JoinOutcome> {
        let error = |e: ResponseError| Reply::Now(JoinOutcome::error(e.code(), &req.member_id));
        if group_id.is_empty() {
            return error(ResponseError::InvalidGroupId);
        }
        if session_timeout_ms < 0
            || req.session_timeout < self.config.min_session_timeout
            || req.session_timeout > self.config.max_session_timeout
        {
            return error(ResponseError::InvalidSessionTimeout);
        }
        let mut groups = self.lock();
        if !groups.contains_key(group_id) {
            if !req.member_id.is_empty() {
                return error(ResponseError::UnknownMemberId);
            }
            groups.insert(group_id.to_owned(), Group::new(group_id));
        }
        let Some(group) = groups.get_mut(group_id) else {
            return error(ResponseError::CoordinatorNotAvailable);
        };
        if let Some(consumer) = &group.consumer {
            if !consumer.is_empty() {
                // A KIP-848 group with members: a classic member cannot join it.
                return error(ResponseError::InconsistentGroupProtocol);
            }
            // An empty consumer group becomes a classic one; its offsets stay.
            group.consumer = None;
            group.protocol_type = None;
            group.metadata_changed = true;
        }
        let before = group.state;
        let reply = group.join(req, new_member_id, self.timing(), Instant::now());
        group.note_state_change(before, wall_ms());
        self.persist_metadata(group);
        reply
    }

    fn sync(&self, group_id: &str, req: SyncRequest) -> Reply<SyncOutcome> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId.code()));
        };
        let reply = group.sync(req, Instant::now());
        self.persist_metadata(group);
        reply
    }
}

pub(super) fn join_response(o: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default()
        .with_error_code(o.error)
        .with_generation_id(o.generation)
        .with_leader(s(&o.leader))
        .with_member_id(s(&o.member_id))
        .with_skip_assignment(version >= 9 && o.skip_assignment)
        .with_members(
            o.members
                .iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(&m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.group_instance_id.as_deref().map(s)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata.clone())
                })
                .collect(),
        );
    if version >= 7 {
        r = r
            .with_protocol_type(o.protocol_type.as_deref().map(s))
            .with_protocol_name(o.protocol_name.as_deref().map(s));
    } else {
        // Not nullable before v7.
        r = r.with_protocol_name(Some(s(o.protocol_name.as_deref().unwrap_or_default())));
    }
    r
}

pub(super) async fn sync_group(c: &Arc<GroupCoordinator>, r: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let req = SyncRequest {
        generation: r.generation_id,
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
        protocol_type: r.protocol_type.as_ref().map(|t| t.to_string()),
        protocol_name: r.protocol_name.as_ref().map(|n| n.to_string()),
        assignments: r
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let outcome = match c.sync(r.group_id.0.as_str(), req) {
        Reply::Now(o) => o,
        Reply::Wait(rx) => rx
            .await
            .unwrap_or_else(|_| SyncOutcome::error(ResponseError::RebalanceInProgress.code())),
    };
    let mut response = SyncGroupResponse::default()
        .with_error_code(outcome.error)
        .with_assignment(outcome.assignment);
    if version >= 5 {
        response = response
            .with_protocol_type(outcome.protocol_type.as_deref().map(s))
            .with_protocol_name(outcome.protocol_name.as_deref().map(s));
    }
    response
}

pub(super) fn heartbeat(c: &Arc<GroupCoordinator>, r: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    let mut groups = c.lock();
    let error = match groups.get_mut(r.group_id.0.as_str()) {
        None => ResponseError::UnknownMemberId.code(),
        Some(group) => group.heartbeat(
            r.member_id.as_str(),
            r.group_instance_id.as_ref().map(|i| i.as_str()),
            r.generation_id,
            Instant::now(),
        ),
    };
    HeartbeatResponse::default().with_error_code(error)
}

pub(super) fn leave_group(c: &Arc<GroupCoordinator>, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    // v0–v2 name one member; v3+ a batch, each possibly by group.instance.id alone.
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let timing = c.timing();
    let mut groups = c.lock();
    let (top, errors): (i16, Vec<i16>) = match groups.get_mut(r.group_id.0.as_str()) {
        None => (0, vec![ResponseError::UnknownMemberId.code(); leaving.len()]),
        Some(group) if group.state == super::GroupState::Dead => {
            (ResponseError::CoordinatorNotAvailable.code(), Vec::new())
        }
        Some(group) => {
            let before = group.state;
            let now = Instant::now();
            let errors = leaving
                .iter()
                .map(|(member, instance)| group.leave(member, instance.as_deref(), timing, now))
                .collect();
            group.note_state_change(before, wall_ms());
            c.persist_metadata(group);
            (0, errors)
        }
    };
    drop(groups);
    if version >= 3 {
        LeaveGroupResponse::default().with_error_code(top).with_members(
            leaving
                .iter()
                .zip(errors)
                .map(|((member, instance), error)| {
                    MemberResponse::default()
                        .with_member_id(s(member))
                        .with_group_instance_id(instance.as_deref().map(s))
                        .with_error_code(error)
                })
                .collect(),
        )
    } else {
        let error = if top != 0 {
            top
        } else {
            errors.first().copied().unwrap_or(0)
        };
        LeaveGroupResponse::default().with_error_code(error)
    }
}
