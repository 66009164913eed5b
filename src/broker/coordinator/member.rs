//! A member of a classic group: its identity, timeouts, protocols and assignment, and the JoinGroup or
//! SyncGroup request it may be waiting on. Plain data; the group state machine decides what happens to it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

/// Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`: a new member waiting for its first JoinGroup to
/// complete is dropped after this long, whatever its session timeout.
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// One entry of a member's JoinGroup protocol list: a name (`range`, `cooperative-sticky`…) and opaque metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A joined member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup request gets back, independent of the response version.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinOutcome {
    pub fn error(error: i16, member_id: &str) -> Self {
        JoinOutcome {
            error,
            generation: -1,
            member_id: member_id.to_owned(),
            ..JoinOutcome::default()
        }
    }
}

/// What a SyncGroup request gets back, independent of the response version.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: i16) -> Self {
        SyncOutcome {
            error,
            ..SyncOutcome::default()
        }
    }
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// The JoinGroup this member waits on (it "is awaiting join").
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// The SyncGroup this member waits on.
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    pub last_heartbeat: Instant,
    /// Joined, but no JoinGroup of it has completed yet.
    pub is_new: bool,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// Kafka's `MemberMetadata.shouldKeepAlive`: whether the session timer spares this member at `now`.
    pub fn is_alive(&self, now: Instant) -> bool {
        if self.is_awaiting_join() {
            !self.is_new || now < self.last_heartbeat + NEW_MEMBER_JOIN_TIMEOUT
        } else {
            self.sync_waiter.is_some() || now < self.last_heartbeat + self.session_timeout
        }
    }

    pub fn complete_join(&mut self, outcome: JoinOutcome) {
        if let Some(waiter) = self.join_waiter.take() {
            // The requester may be gone (connection closed): nothing to tell then.
            let _ = waiter.send(outcome);
        }
    }

    pub fn complete_sync(&mut self, outcome: SyncOutcome) {
        if let Some(waiter) = self.sync_waiter.take() {
            let _ = waiter.send(outcome);
        }
    }
}
