//! The state machine against Kafka's behaviour, with time passed in (no waiting).

use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::*;

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);
const DELAY: Duration = Duration::from_secs(3);

fn timing() -> Timing {
    Timing {
        initial_rebalance_delay: DELAY,
    }
}

fn no_delay() -> Timing {
    Timing {
        initial_rebalance_delay: Duration::ZERO,
    }
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

fn request(member_id: &str, names: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

fn static_request(instance: &str, names: &[&str]) -> JoinRequest {
    JoinRequest {
        instance_id: Some(instance.to_owned()),
        ..request("", names)
    }
}

/// Member ids m1, m2, … in order (s1, s2, … for the members of `stable_group`).
struct Ids(Cell<u32>, &'static str);

impl Ids {
    fn new() -> Self {
        Ids(Cell::new(0), "m")
    }
    fn next(&self) -> impl FnOnce(&str) -> String + '_ {
        move |_| {
            self.0.set(self.0.get() + 1);
            format!("{}{}", self.1, self.0.get())
        }
    }
}

/// The response if there is one yet.
fn ready<T>(reply: &mut Reply<T>) -> Option<T> {
    match reply {
        Reply::Now(_) => match std::mem::replace(reply, Reply::Wait(oneshot::channel().1)) {
            Reply::Now(t) => Some(t),
            Reply::Wait(_) => None,
        },
        Reply::Wait(rx) => rx.try_recv().ok(),
    }
}

fn now_reply<T: std::fmt::Debug>(mut reply: Reply<T>) -> T {
    ready(&mut reply).expect("an immediate response")
}

/// A member that completed the MEMBER_ID_REQUIRED handshake and waits on its JoinGroup.
fn join_new(g: &mut Group, ids: &Ids, names: &[&str], timing: Timing, now: Instant) -> (String, Reply<JoinOutcome>) {
    let first = now_reply(g.join(request("", names), ids.next(), timing, now));
    assert_eq!(first.error, code(ResponseError::MemberIdRequired));
    let id = first.member_id;
    let reply = g.join(request(&id, names), ids.next(), timing, now);
    (id, reply)
}

/// Ends the initial delay of members that all joined at `t0`: the second and later arrivals extend it once.
fn end_initial_delay(g: &mut Group, t0: Instant) -> Instant {
    g.poll(timing(), t0 + DELAY, 0);
    g.poll(timing(), t0 + DELAY * 2, 0);
    t0 + DELAY * 2
}

/// A Stable group of `n` members (generation 1, formed at `t0 + 2 × DELAY`), the first one leading.
fn stable_group(n: usize, t0: Instant) -> (Group, Vec<String>) {
    let ids = Ids(Cell::new(0), "s");
    let mut g = Group::new("g");
    let mut members = Vec::new();
    for _ in 0..n {
        let (id, _) = join_new(&mut g, &ids, &["range"], timing(), t0);
        members.push(id);
    }
    let t = end_initial_delay(&mut g, t0);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let leader = members[0].clone();
    let assignments = members
        .iter()
        .map(|m| (m.clone(), Bytes::from(format!("a-{m}"))))
        .collect();
    let sync = g.sync(
        SyncRequest {
            generation: 1,
            member_id: leader,
            assignments,
            ..SyncRequest::default()
        },
        t,
    );
    assert!(matches!(sync, Reply::Wait(_)));
    assert_eq!(g.state, GroupState::Stable);
    (g, members)
}

#[test]
fn a_first_join_gets_a_member_id_and_member_id_required() {
    let mut g = Group::new("g");
    let ids = Ids::new();
    let outcome = now_reply(g.join(request("", &["range"]), ids.next(), timing(), Instant::now()));
    assert_eq!(outcome.error, code(ResponseError::MemberIdRequired));
    assert_eq!(outcome.member_id, "m1");
    assert!(g.pending_members.contains_key("m1"));
    assert_eq!(g.state, GroupState::Empty);
}

#[test]
fn old_clients_join_without_the_member_id_handshake() {
    let mut g = Group::new("g");
    let ids = Ids::new();
    let t0 = Instant::now();
    let mut reply = g.join(
        JoinRequest {
            require_known_member_id: false,
            ..request("", &["range"])
        },
        ids.next(),
        no_delay(),
        t0,
    );
    g.poll(no_delay(), t0, 0);
    let outcome = ready(&mut reply).expect("joined");
    assert_eq!(
        (outcome.error, outcome.member_id.as_str(), outcome.generation),
        (NONE, "m1", 1)
    );
}

#[test]
fn the_first_generation_waits_for_the_initial_rebalance_delay() {
    let mut g = Group::new("g");
    let ids = Ids::new();
    let t0 = Instant::now();
    let (id, mut reply) = join_new(&mut g, &ids, &["range"], timing(), t0);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    g.poll(timing(), t0 + DELAY - Duration::from_millis(1), 0);
    assert!(ready(&mut reply).is_none());
    g.poll(timing(), t0 + DELAY, 0);
    let outcome = ready(&mut reply).expect("join completed");
    assert_eq!(outcome.error, NONE);
    assert_eq!(outcome.generation, 1);
    assert_eq!(outcome.leader, id);
    assert_eq!(outcome.protocol_name.as_deref(), Some("range"));
    assert_eq!(outcome.members.len(), 1, "the leader gets the members' metadata");
    assert_eq!(outcome.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(g.state, GroupState::CompletingRebalance);
}

#[test]
fn new_members_extend_the_initial_delay_up_to_the_rebalance_timeout() {
    let mut g = Group::new("g");
    let ids = Ids::new();
    let t0 = Instant::now();
    let (_, mut first) = join_new(&mut g, &ids, &["range"], timing(), t0);
    let (_, mut second) = join_new(&mut g, &ids, &["range"], timing(), t0 + Duration::from_secs(2));
    g.poll(timing(), t0 + DELAY, 0);
    assert!(
        ready(&mut first).is_none(),
        "a member arrived during the delay: it is extended"
    );
    g.poll(timing(), t0 + DELAY * 2, 0);
    let (a, b) = (ready(&mut first).expect("first"), ready(&mut second).expect("second"));
    assert_eq!((a.generation, b.generation), (1, 1));
    assert_eq!(
        a.members.len() + b.members.len(),
        2,
        "only the leader sees the two members"
    );
}

#[test]
fn followers_wait_for_the_leaders_assignment() {
    let ids = Ids::new();
    let mut g = Group::new("g");
    let t0 = Instant::now();
    let (leader, _) = join_new(&mut g, &ids, &["range"], timing(), t0);
    let (follower, _) = join_new(&mut g, &ids, &["range"], timing(), t0);
    let t = end_initial_delay(&mut g, t0);
    let sync = |member: &str, assignments: Vec<(String, Bytes)>| SyncRequest {
        generation: 1,
        member_id: member.to_owned(),
        assignments,
        ..SyncRequest::default()
    };
    let mut waiting = g.sync(sync(&follower, Vec::new()), t);
    assert!(ready(&mut waiting).is_none());
    let mut leader_reply = g.sync(
        sync(
            &leader,
            vec![(leader.clone(), Bytes::from("L")), (follower.clone(), Bytes::from("F"))],
        ),
        t,
    );
    assert_eq!(ready(&mut waiting).map(|o| o.assignment), Some(Bytes::from("F")));
    assert_eq!(ready(&mut leader_reply).map(|o| o.assignment), Some(Bytes::from("L")));
    assert_eq!(g.state, GroupState::Stable);
    // A late SyncGroup in Stable gets the stored assignment at once.
    let again = now_reply(g.sync(sync(&follower, Vec::new()), t));
    assert_eq!(again.assignment, Bytes::from("F"));
}

#[test]
fn a_joining_member_rebalances_the_group_and_heartbeats_say_so() {
    let t0 = Instant::now();
    let (mut g, members) = stable_group(2, t0);
    let ids = Ids::new();
    let t1 = t0 + DELAY * 2 + Duration::from_secs(5);
    let (newcomer, mut newcomer_reply) = join_new(&mut g, &ids, &["range"], timing(), t1);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&members[1], None, 1, t1),
        code(ResponseError::RebalanceInProgress)
    );
    let mut rejoins: Vec<_> = members
        .iter()
        .map(|m| g.join(request(m, &["range"]), ids.next(), timing(), t1))
        .collect();
    let outcome = ready(&mut newcomer_reply).expect("everyone rejoined: the join completes at once");
    assert_eq!(outcome.generation, 2);
    assert_eq!(outcome.member_id, newcomer);
    assert!(rejoins.iter_mut().all(|r| ready(r).is_some_and(|o| o.generation == 2)));
    assert_eq!(
        g.heartbeat(&members[0], None, 1, t1),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(g.heartbeat(&members[0], None, 2, t1), NONE);
}

#[test]
fn members_that_do_not_rejoin_in_the_rebalance_timeout_are_removed() {
    let t0 = Instant::now();
    let (mut g, members) = stable_group(3, t0);
    let ids = Ids::new();
    let t1 = t0 + DELAY * 2 + Duration::from_secs(1);
    let mut rejoin = g.join(
        JoinRequest {
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: Bytes::from("changed"),
            }],
            ..request(&members[0], &[])
        },
        ids.next(),
        timing(),
        t1,
    );
    // Members 1 and 2 keep heartbeating but never rejoin.
    for s in 1..30 {
        let t = t1 + Duration::from_secs(s);
        for m in &members[1..] {
            g.heartbeat(m, None, 1, t);
        }
        g.poll(timing(), t, 0);
    }
    assert!(ready(&mut rejoin).is_none());
    g.poll(timing(), t1 + REBALANCE, 0);
    let outcome = ready(&mut rejoin).expect("the rebalance timeout completes the join");
    assert_eq!(outcome.members.len(), 1);
    assert_eq!(g.members.len(), 1);
    assert_eq!(
        g.heartbeat(&members[1], None, 2, t1 + REBALANCE),
        code(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_session_timeout_removes_the_member_and_rebalances() {
    let t0 = Instant::now();
    let (mut g, members) = stable_group(2, t0);
    let formed = t0 + DELAY * 2;
    let t1 = formed + SESSION - Duration::from_millis(1);
    g.heartbeat(&members[0], None, 1, t1);
    g.poll(timing(), t1, 0);
    assert_eq!(g.state, GroupState::Stable);
    g.poll(timing(), formed + SESSION, 0);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(!g.members.contains_key(&members[1]));
    let mut rejoin = g.join(request(&members[0], &["range"]), Ids::new().next(), timing(), t1);
    assert_eq!(ready(&mut rejoin).map(|o| o.generation), Some(2));
}

#[test]
fn leaving_rebalances_and_the_last_leaving_empties_the_group() {
    let t0 = Instant::now();
    let (mut g, members) = stable_group(2, t0);
    assert_eq!(g.leave(&members[1], None, timing(), t0), NONE);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        g.leave(&members[1], None, timing(), t0),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(g.leave(&members[0], None, timing(), t0), NONE);
    g.note_state_change(GroupState::PreparingRebalance, 42);
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.empty_since, Some(42));
    assert_eq!(g.generation, 2, "an empty generation is a generation too");
    assert_eq!(g.protocol_type.as_deref(), Some("consumer"), "kept, as Kafka does");
}

#[test]
fn the_protocol_is_chosen_by_the_members_vote() {
    let mut g = Group::new("g");
    let ids = Ids::new();
    let t0 = Instant::now();
    join_new(&mut g, &ids, &["range", "roundrobin"], timing(), t0);
    join_new(&mut g, &ids, &["roundrobin", "range"], timing(), t0);
    join_new(&mut g, &ids, &["roundrobin", "range", "sticky"], timing(), t0);
    end_initial_delay(&mut g, t0);
    assert_eq!(g.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn a_member_without_a_common_protocol_is_refused() {
    let mut g = Group::new("g");
    let ids = Ids::new();
    let t0 = Instant::now();
    join_new(&mut g, &ids, &["range"], timing(), t0);
    let refused = now_reply(g.join(request("", &["cooperative-sticky"]), ids.next(), timing(), t0));
    assert_eq!(refused.error, code(ResponseError::InconsistentGroupProtocol));
    let refused = now_reply(g.join(
        JoinRequest {
            protocol_type: "connect".into(),
            ..request("", &["range"])
        },
        ids.next(),
        timing(),
        t0,
    ));
    assert_eq!(refused.error, code(ResponseError::InconsistentGroupProtocol));
}

#[test]
fn a_static_member_coming_back_replaces_its_id_without_a_rebalance() {
    let ids = Ids::new();
    let mut g = Group::new("g");
    let t0 = Instant::now();
    let mut leader = g.join(static_request("a", &["range"]), ids.next(), timing(), t0);
    let mut follower = g.join(static_request("b", &["range"]), ids.next(), timing(), t0);
    end_initial_delay(&mut g, t0);
    let (leader, follower) = (ready(&mut leader).expect("a"), ready(&mut follower).expect("b"));
    assert_eq!(leader.members.len(), 2);
    assert_eq!(leader.members[0].group_instance_id.as_deref(), Some("a"));
    now_reply(g.sync(
        SyncRequest {
            generation: 1,
            member_id: leader.member_id.clone(),
            assignments: vec![(follower.member_id.clone(), Bytes::from("B"))],
            ..SyncRequest::default()
        },
        t0,
    ))
    .assignment
    .is_empty()
    .then_some(())
    .expect("the leader assigned itself nothing");
    // "b" restarts: same instance id, no member id.
    let back = now_reply(g.join(static_request("b", &["range"]), ids.next(), timing(), t0));
    assert_eq!(back.error, NONE);
    assert_ne!(back.member_id, follower.member_id);
    assert_eq!(back.generation, 1, "no rebalance");
    assert_eq!(g.state, GroupState::Stable);
    let sync = now_reply(g.sync(
        SyncRequest {
            generation: 1,
            member_id: back.member_id.clone(),
            instance_id: Some("b".into()),
            ..SyncRequest::default()
        },
        t0,
    ));
    assert_eq!(sync.assignment, Bytes::from("B"), "it keeps its assignment");
    assert_eq!(
        g.heartbeat(&follower.member_id, Some("b"), 1, t0),
        code(ResponseError::FencedInstanceId)
    );
    // The static leader coming back learns it may skip the assignment (JoinGroup v9).
    let leader_back = now_reply(g.join(static_request("a", &["range"]), ids.next(), timing(), t0));
    assert!(leader_back.skip_assignment);
    assert_eq!(leader_back.leader, leader_back.member_id);
    assert_eq!(g.state, GroupState::Stable);
}

#[test]
fn a_static_member_coming_back_rebalances_only_when_the_selected_protocol_changes() {
    let ids = Ids::new();
    let mut g = Group::new("g");
    let t0 = Instant::now();
    let _a = g.join(static_request("a", &["range", "roundrobin"]), ids.next(), timing(), t0);
    let _b = g.join(static_request("b", &["roundrobin", "range"]), ids.next(), timing(), t0);
    end_initial_delay(&mut g, t0);
    assert_eq!(
        g.protocol_name.as_deref(),
        Some("range"),
        "a tie goes to the first candidate"
    );
    let leader = g.leader.clone().expect("a leader");
    g.sync(
        SyncRequest {
            generation: 1,
            member_id: leader,
            ..SyncRequest::default()
        },
        t0,
    );
    assert_eq!(g.state, GroupState::Stable);
    // Other metadata (a new generation or owned partitions in the subscription), same protocols: no rebalance.
    let mut same = request("", &["roundrobin", "range"]);
    same.instance_id = Some("b".into());
    same.protocols[0].metadata = Bytes::from("other bytes");
    assert_eq!(now_reply(g.join(same, ids.next(), timing(), t0)).generation, 1);
    assert_eq!(g.state, GroupState::Stable);
    // Only roundrobin left in common: the group must change protocol.
    let reply = g.join(static_request("b", &["roundrobin"]), ids.next(), timing(), t0);
    assert!(matches!(reply, Reply::Wait(_)));
    assert_eq!(g.state, GroupState::PreparingRebalance);
}

#[test]
fn offset_commits_follow_kafkas_generation_rules() {
    let t0 = Instant::now();
    let mut empty = Group::new("g");
    assert_eq!(
        empty.validate_commit("", None, -1, t0),
        Ok(()),
        "admin commit to an empty group"
    );
    assert_eq!(
        empty.validate_commit("x", None, 3, t0),
        Err(code(ResponseError::UnknownMemberId))
    );

    let (mut g, members) = stable_group(2, t0);
    assert_eq!(
        g.validate_commit("", None, -1, t0),
        Err(code(ResponseError::UnknownMemberId)),
        "active group"
    );
    assert_eq!(
        g.validate_commit(&members[0], None, 7, t0),
        Err(code(ResponseError::IllegalGeneration))
    );
    assert_eq!(g.validate_commit(&members[0], None, 1, t0), Ok(()));
    // A member may still commit its current generation while the group prepares a rebalance…
    join_new(&mut g, &Ids::new(), &["range"], timing(), t0);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(g.validate_commit(&members[0], None, 1, t0), Ok(()));
    // …but not between the join and the assignment.
    for m in &members {
        let _ = g.join(request(m, &["range"]), Ids::new().next(), timing(), t0);
    }
    assert_eq!(g.state, GroupState::CompletingRebalance);
    assert_eq!(
        g.validate_commit(&members[0], None, 2, t0),
        Err(code(ResponseError::RebalanceInProgress))
    );
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let ids = Ids::new();
    let mut g = Group::new("g");
    let t0 = Instant::now();
    let (leader, _) = join_new(&mut g, &ids, &["range"], timing(), t0);
    let (silent, _) = join_new(&mut g, &ids, &["range"], timing(), t0);
    let t = end_initial_delay(&mut g, t0);
    let _ = g.sync(
        SyncRequest {
            generation: 1,
            member_id: silent.clone(),
            ..SyncRequest::default()
        },
        t,
    );
    // The leader never sends its SyncGroup.
    g.poll(timing(), t + REBALANCE, 0);
    assert!(!g.members.contains_key(&leader));
    assert_eq!(g.state, GroupState::PreparingRebalance);
}

#[test]
fn subscriptions_decide_which_topics_a_live_group_consumes() {
    let subscription = |topics: &[&str]| {
        let s = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| StrBytes::from_string((*t).to_owned())).collect());
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        s.encode(&mut buf, 1).expect("encode");
        buf.freeze()
    };
    let mut g = Group::new("g");
    let t0 = Instant::now();
    for (i, topics) in [["a", "b"].as_slice(), ["c"].as_slice()].iter().enumerate() {
        let _ = g.join(
            JoinRequest {
                member_id: String::new(),
                require_known_member_id: false,
                protocols: vec![Protocol {
                    name: "range".into(),
                    metadata: subscription(topics),
                }],
                ..request("", &[])
            },
            move |_| format!("m{i}"),
            no_delay(),
            t0,
        );
    }
    g.poll(no_delay(), t0, 0);
    g.poll(no_delay(), t0, 0);
    assert!(g.is_subscribed_to("a") && g.is_subscribed_to("c"));
    assert!(!g.is_subscribed_to("d"));
    assert_eq!(decode_subscription(&Bytes::from_static(b"\x00")), None);
}

#[test]
fn static_members_are_removed_by_instance_id_and_stale_ids_are_fenced() {
    let ids = Ids::new();
    let mut g = Group::new("g");
    let t0 = Instant::now();
    let _a = g.join(static_request("a", &["range"]), ids.next(), timing(), t0);
    let _b = g.join(static_request("b", &["range"]), ids.next(), timing(), t0);
    end_initial_delay(&mut g, t0);
    let a = g.static_members.get("a").cloned().expect("a is static");
    assert_eq!(
        g.leave("stale-id", Some("a"), timing(), t0),
        code(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        g.leave("", Some("nobody"), timing(), t0),
        code(ResponseError::UnknownMemberId)
    );
    // An admin removal (LeaveGroup v3+, as the operator does before a reset) names only the instance id.
    assert_eq!(g.leave("", Some("a"), timing(), t0), NONE);
    assert!(!g.members.contains_key(&a));
    assert_eq!(g.leave("", Some("b"), timing(), t0), NONE);
    assert_eq!(g.state, GroupState::Empty);
    assert!(g.static_members.is_empty());
}
