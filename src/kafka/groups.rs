//! Consumer-group operations, for both protocols of a Kafka 4 cluster: `classic` (JoinGroup/SyncGroup,
//! described with DescribeGroups) and `consumer` (KIP-848, described with ConsumerGroupDescribe).
//! Every operation on many groups finds their coordinators in one batched FindCoordinator and then sends
//! one request per coordinator, all in flight together.

use super::client::KafkaClient;
use super::connection::Connection;
use super::error::{KafkaError, check};
use super::metadata::TopicPartition;
use crate::wire::Api;
use bytes::Buf;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Which rebalance protocol a group uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup; states Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    Classic,
    /// KIP-848; states Empty, Assigning, Reconciling, Stable, Dead.
    Consumer,
}

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups of either protocol, `connect`, … (empty for some groups).
    pub protocol_type: String,
    /// Empty when the broker is older than ListGroups v4.
    pub state: String,
    /// `classic`, `consumer`, `share`, … (empty when the broker is older than ListGroups v5).
    pub group_type: String,
}

/// Filters for `list_groups`, applied by the broker where it supports them (ListGroups v4+ states, v5+
/// types) and by the client otherwise.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    /// e.g. `["Empty", "Stable"]`; case-insensitive.
    pub states: Vec<String>,
    /// e.g. `["classic", "consumer"]`; case-insensitive.
    pub types: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Assigned partitions, decoded (sorted).
    pub assignment: Vec<TopicPartition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub protocol: GroupProtocol,
    /// As the coordinator reports it (`Empty`, `Stable`, `Dead`, …).
    pub state: String,
    /// The classic group's protocol type (`consumer`), or `consumer` for KIP-848 groups.
    pub protocol_type: String,
    /// The assignor (`range`, `uniform`, …), empty while the group has no members.
    pub assignor: String,
    pub coordinator: i32,
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// Empty and Dead groups have no members that could commit behind an admin's back.
    pub fn is_inactive(&self) -> bool {
        self.members.is_empty() && matches!(self.state.as_str(), "Empty" | "Dead")
    }

    /// Whether the group exists at all (a Dead group with no members is what Kafka reports for unknown ids).
    pub fn exists(&self) -> bool {
        !(self.state == "Dead" && self.members.is_empty())
    }
}

/// A committed offset of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

/// Committed offsets of one group, by partition (partitions without a committed offset are absent).
pub type GroupOffsets = BTreeMap<TopicPartition, CommittedOffset>;

impl KafkaClient {
    /// Coordinators (node ids) of `groups`: one FindCoordinator for all uncached groups (v4+), or one per
    /// group on older brokers.
    pub async fn find_coordinators(&self, groups: &[String]) -> Result<HashMap<String, i32>, KafkaError> {
        let mut found = HashMap::with_capacity(groups.len());
        let mut missing = Vec::new();
        {
            let cache = self.inner.coordinators.lock().unwrap_or_else(|p| p.into_inner());
            for g in groups {
                match cache.get(g) {
                    Some(node) => {
                        found.insert(g.clone(), *node);
                    }
                    None => missing.push(g.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        missing.sort();
        missing.dedup();
        let looked_up = self
            .with_retries("FindCoordinator", || {
                let missing = missing.clone();
                async move { self.lookup_coordinators(&missing).await }
            })
            .await?;
        let mut cache = self.inner.coordinators.lock().unwrap_or_else(|p| p.into_inner());
        for (g, node) in looked_up {
            cache.insert(g.clone(), node);
            found.insert(g, node);
        }
        Ok(found)
    }

    async fn lookup_coordinators(&self, groups: &[String]) -> Result<Vec<(String, i32)>, KafkaError> {
        let conn = self.any_broker().await?;
        let api = Api(FindCoordinatorRequest::KEY);
        if let Ok(version) = conn.version_in::<FindCoordinatorRequest>(4, i16::MAX) {
            // Kafka caps the keys per request only by size: one request carries every group (chunks of 10,000
            // keep a request below a few hundred KiB), as the Java AdminClient sends them.
            let chunks = groups.chunks(10_000).map(|chunk| {
                let request = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(chunk.iter().map(|g| StrBytes::from_string(g.clone())).collect());
                let conn = conn.clone();
                async move { conn.send_version(&request, version).await }
            });
            let mut out = Vec::with_capacity(groups.len());
            for response in join_all(chunks).await {
                for c in response?.coordinators {
                    let key = c.key.to_string();
                    check(c.error_code, conn.addr(), api, || format!("group {key}"))?;
                    out.push((key, *c.node_id));
                }
            }
            Ok(out)
        } else {
            let version = conn.version_of::<FindCoordinatorRequest>()?;
            let lookups = groups.iter().map(|g| {
                let request = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_key(StrBytes::from_string(g.clone()));
                let conn = conn.clone();
                async move {
                    let r = conn.send_version(&request, version).await?;
                    check(r.error_code, conn.addr(), api, || format!("group {g}"))?;
                    Ok::<_, KafkaError>((g.clone(), *r.node_id))
                }
            });
            join_all(lookups).await.into_iter().collect()
        }
    }

    /// Runs `per_coordinator(connection, groups on it)` once per coordinator of `groups`, all at once, and
    /// retries groups whose result was retriable (re-resolving their coordinators) within the deadline.
    async fn on_coordinators<T, F, Fut>(
        &self,
        operation: &str,
        groups: &[String],
        per_coordinator: F,
    ) -> HashMap<String, Result<T, KafkaError>>
    where
        F: Fn(Arc<Connection>, i32, Vec<String>) -> Fut + Clone,
        Fut: Future<Output = Vec<(String, Result<T, KafkaError>)>>,
    {
        let mut unique = groups.to_vec();
        unique.sort();
        unique.dedup();
        self.with_batch_retries(operation, unique, |pending| {
            let per_coordinator = per_coordinator.clone();
            async move {
                let coordinators = match self.find_coordinators(&pending).await {
                    Ok(c) => c,
                    Err(e) => return pending.into_iter().map(|g| (g, Err(e.clone()))).collect(),
                };
                let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
                for g in pending {
                    let node = coordinators.get(&g).copied().unwrap_or(-1);
                    by_node.entry(node).or_default().push(g);
                }
                let calls = by_node.into_iter().map(|(node, groups)| {
                    let per_coordinator = per_coordinator.clone();
                    async move {
                        let conn = match self.broker(node).await {
                            Ok(c) => c,
                            Err(e) => {
                                for g in &groups {
                                    self.forget_coordinator(g);
                                }
                                return groups.into_iter().map(|g| (g, Err(e.clone()))).collect();
                            }
                        };
                        let results = per_coordinator(conn, node, groups).await;
                        for (g, r) in &results {
                            if let Err(e) = r
                                && e.invalidates_metadata()
                            {
                                self.forget_coordinator(g);
                            }
                        }
                        results
                    }
                });
                join_all(calls).await.into_iter().flatten().collect::<Vec<_>>()
            }
        })
        .await
    }

    /// Runs `call` on the coordinator of one group, retrying what is retriable (re-resolving the coordinator).
    async fn on_group_coordinator<F, Fut>(&self, operation: &str, group: &str, call: F) -> Result<(), KafkaError>
    where
        F: Fn(Arc<Connection>) -> Fut + Clone,
        Fut: Future<Output = Result<(), KafkaError>>,
    {
        let results = self
            .on_coordinators(operation, &[group.to_owned()], |conn, _node, groups| {
                let call = call.clone();
                async move {
                    let result = call(conn).await;
                    groups.into_iter().map(|g| (g, result.clone())).collect()
                }
            })
            .await;
        take_one(results, group)
    }

    /// Every group of the cluster (ListGroups to every broker, in parallel), filtered by state and type.
    pub async fn list_groups(&self, filter: &GroupFilter) -> Result<Vec<GroupListing>, KafkaError> {
        // The cached broker list will do: a broker it misses is found on the next refresh.
        let metadata = self.metadata().await?;
        let api = Api(ListGroupsRequest::KEY);
        let calls = metadata.brokers.keys().map(|node| {
            let node = *node;
            self.with_retries("ListGroups", move || async move {
                let conn = self.broker(node).await?;
                let version = conn.version_of::<ListGroupsRequest>()?;
                let mut request = ListGroupsRequest::default();
                if version >= 4 {
                    request.states_filter = filter.states.iter().map(|s| StrBytes::from_string(s.clone())).collect();
                }
                if version >= 5 {
                    request.types_filter = filter.types.iter().map(|s| StrBytes::from_string(s.clone())).collect();
                }
                let response = conn.send_version(&request, version).await?;
                check(response.error_code, conn.addr(), api, String::new)?;
                Ok(response.groups)
            })
        });
        let mut listings = Vec::new();
        for result in join_all(calls).await {
            for g in result? {
                let listing = GroupListing {
                    group_id: g.group_id.0.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                    group_type: g.group_type.to_string(),
                };
                // Filter again on the client: brokers older than v4/v5 ignore the filters.
                let state_ok = filter.states.is_empty()
                    || listing.state.is_empty()
                    || filter.states.iter().any(|s| s.eq_ignore_ascii_case(&listing.state));
                let type_ok = filter.types.is_empty()
                    || listing.group_type.is_empty()
                    || filter.types.iter().any(|t| t.eq_ignore_ascii_case(&listing.group_type));
                if state_ok && type_ok {
                    listings.push(listing);
                }
            }
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(listings)
    }

    /// Describes groups of either protocol. ConsumerGroupDescribe and DescribeGroups go to each coordinator
    /// together; a group that ConsumerGroupDescribe does not know is a classic group (or none).
    /// An unknown group comes back as state `Dead` with no members, as Kafka reports it.
    pub async fn describe_groups(&self, groups: &[String]) -> HashMap<String, Result<GroupDescription, KafkaError>> {
        self.on_coordinators("DescribeGroups", groups, |conn, node, groups| async move {
            describe_on(&conn, node, groups).await
        })
        .await
    }

    /// Describes one group.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, KafkaError> {
        take_one(self.describe_groups(&[group.to_owned()]).await, group)
    }

    /// Committed offsets of many groups: one OffsetFetch per coordinator carrying all of its groups (v8+),
    /// or one per group on older brokers. An unknown group has no offsets.
    pub async fn committed_offsets(&self, groups: &[String]) -> HashMap<String, Result<GroupOffsets, KafkaError>> {
        self.on_coordinators("OffsetFetch", groups, |conn, _node, groups| async move {
            fetch_offsets_on(&conn, groups, false).await
        })
        .await
    }

    /// Committed offsets of one group.
    pub async fn group_offsets(&self, group: &str) -> Result<GroupOffsets, KafkaError> {
        take_one(self.committed_offsets(&[group.to_owned()]).await, group)
    }

    /// Committed offsets of one group read with `require_stable` (OffsetFetch v7+): a partition whose
    /// transactional offset commit is still pending answers `KafkaError::UnstableOffsetCommit` instead of an
    /// offset that may yet be replaced (commit) or dropped (abort). For what a reset plans from.
    pub async fn stable_group_offsets(&self, group: &str) -> Result<GroupOffsets, KafkaError> {
        let groups = [group.to_owned()];
        let answers = self
            .on_coordinators("OffsetFetch", &groups, |conn, _node, groups| async move {
                fetch_offsets_on(&conn, groups, true).await
            })
            .await;
        take_one(answers, group)
    }

    /// `stable_group_offsets`, retried with backoff (`unstable_offset_backoff`) while a transactional offset
    /// commit is pending, for at most `wait`; past it the `UnstableOffsetCommit` error is returned.
    pub async fn stable_group_offsets_within(&self, group: &str, wait: Duration) -> Result<GroupOffsets, KafkaError> {
        let started = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match self.stable_group_offsets(group).await {
                Err(KafkaError::UnstableOffsetCommit { group: g, partitions }) => {
                    let elapsed = started.elapsed();
                    match unstable_offset_backoff(attempt, elapsed, wait) {
                        Some(delay) => {
                            tracing::debug!(
                                group,
                                ?partitions,
                                ?delay,
                                "transactional offset commit pending; waiting"
                            );
                            tokio::time::sleep(delay).await;
                            attempt += 1;
                        }
                        None => return Err(KafkaError::UnstableOffsetCommit { group: g, partitions }),
                    }
                }
                other => return other,
            }
        }
    }

    /// Commits `offsets` for an inactive group, as an admin (what the Java AdminClient's
    /// `alterConsumerGroupOffsets` does). Refuses with `GroupNotEmpty` if the group has members, both after
    /// describing it and when the coordinator itself rejects the commit because a member appeared meanwhile.
    pub async fn commit_offsets(&self, group: &str, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), KafkaError> {
        let description = self.describe_group(group).await?;
        if !description.is_inactive() {
            return Err(KafkaError::GroupNotEmpty {
                group: group.to_owned(),
                state: description.state,
                members: description.members.len(),
            });
        }
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, offset) in offsets {
            topics.entry(tp.topic.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let api = Api(OffsetCommitRequest::KEY);
        let committed = self
            .on_group_coordinator("OffsetCommit", group, |conn| {
                let request = request.clone();
                async move {
                    let version = conn.version_in::<OffsetCommitRequest>(2, 9)?;
                    let response = conn.send_version(&request, version).await?;
                    for t in &response.topics {
                        for p in &t.partitions {
                            check(p.error_code, conn.addr(), api, || {
                                format!("group {group}, partition {}-{}", t.name.0, p.partition_index)
                            })?;
                        }
                    }
                    Ok(())
                }
            })
            .await;
        match committed {
            // The coordinator refuses an admin commit while the group has members (a consumer joined after
            // the describe above): say so in the same words.
            Err(KafkaError::Response {
                error:
                    ResponseError::UnknownMemberId
                    | ResponseError::IllegalGeneration
                    | ResponseError::RebalanceInProgress
                    | ResponseError::StaleMemberEpoch,
                ..
            }) => {
                let now = self.describe_group(group).await?;
                Err(KafkaError::GroupNotEmpty {
                    group: group.to_owned(),
                    state: now.state,
                    members: now.members.len(),
                })
            }
            other => other,
        }
    }

    /// Removes static members (by `group.instance.id`) from a group, as the Java AdminClient's
    /// `removeMembersFromConsumerGroup` does: without this, a stopped static member holds its partitions
    /// until its session times out. Members already gone are not an error.
    pub async fn remove_static_members(&self, group: &str, instance_ids: &[String]) -> Result<(), KafkaError> {
        let api = Api(LeaveGroupRequest::KEY);
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_members(
                instance_ids
                    .iter()
                    .map(|id| {
                        MemberIdentity::default()
                            .with_member_id(StrBytes::from_static_str(""))
                            .with_group_instance_id(Some(StrBytes::from_string(id.clone())))
                            .with_reason(Some(StrBytes::from_static_str(
                                "removed by kafka-group-operator for an offset reset",
                            )))
                    })
                    .collect(),
            );
        self.on_group_coordinator("LeaveGroup", group, |conn| {
            let request = request.clone();
            async move {
                // v3 introduced removing members by group.instance.id.
                let version = conn.version_in::<LeaveGroupRequest>(3, i16::MAX)?;
                let response = conn.send_version(&request, version).await?;
                check(response.error_code, conn.addr(), api, || format!("group {group}"))?;
                for m in &response.members {
                    // UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID: the member already left.
                    if !matches!(m.error_code, 25 | 82) {
                        check(m.error_code, conn.addr(), api, || format!("group {group}"))?;
                    }
                }
                Ok(())
            }
        })
        .await
    }

    /// Deletes groups (they must be empty; Kafka answers NON_EMPTY_GROUP otherwise).
    pub async fn delete_groups(&self, groups: &[String]) -> HashMap<String, Result<(), KafkaError>> {
        let api = Api(DeleteGroupsRequest::KEY);
        self.on_coordinators("DeleteGroups", groups, move |conn, _node, groups| async move {
            let request = DeleteGroupsRequest::default().with_groups_names(
                groups
                    .iter()
                    .map(|g| GroupId(StrBytes::from_string(g.clone())))
                    .collect(),
            );
            match conn.send(&request).await {
                Ok((response, _)) => {
                    let mut out: Vec<(String, Result<(), KafkaError>)> = response
                        .results
                        .into_iter()
                        .map(|r| {
                            let g = r.group_id.0.to_string();
                            let result = check(r.error_code, conn.addr(), api, || format!("group {g}"));
                            (g, result)
                        })
                        .collect();
                    answer_missing(&mut out, &groups, conn.addr(), api);
                    out
                }
                Err(e) => groups.into_iter().map(|g| (g, Err(e.clone()))).collect(),
            }
        })
        .await
    }

    /// Deletes a group's committed offsets for `partitions` (OffsetDelete). Kafka refuses partitions of
    /// topics the group is subscribed to while it has members (GROUP_SUBSCRIBED_TO_TOPIC).
    pub async fn delete_offsets(&self, group: &str, partitions: &[TopicPartition]) -> Result<(), KafkaError> {
        let mut topics: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for tp in partitions {
            topics
                .entry(tp.topic.as_str())
                .or_default()
                .push(OffsetDeleteRequestPartition::default().with_partition_index(tp.partition));
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let api = Api(OffsetDeleteRequest::KEY);
        self.on_group_coordinator("OffsetDelete", group, |conn| {
            let request = request.clone();
            async move {
                let (response, _) = conn.send(&request).await?;
                check(response.error_code, conn.addr(), api, || format!("group {group}"))?;
                for t in &response.topics {
                    for p in &t.partitions {
                        check(p.error_code, conn.addr(), api, || {
                            format!("group {group}, partition {}-{}", t.name.0, p.partition_index)
                        })?;
                    }
                }
                Ok(())
            }
        })
        .await
    }
}

async fn describe_on(
    conn: &Connection,
    node: i32,
    groups: Vec<String>,
) -> Vec<(String, Result<GroupDescription, KafkaError>)> {
    let ids: Vec<GroupId> = groups
        .iter()
        .map(|g| GroupId(StrBytes::from_string(g.clone())))
        .collect();
    let classic_request = DescribeGroupsRequest::default().with_groups(ids.clone());
    let consumer_request = ConsumerGroupDescribeRequest::default().with_group_ids(ids);
    let supports_consumer = conn.version_of::<ConsumerGroupDescribeRequest>().is_ok();
    let (classic, consumer) = tokio::join!(conn.send(&classic_request), async {
        if supports_consumer {
            Some(conn.send(&consumer_request).await)
        } else {
            None
        }
    });
    let mut out: HashMap<String, Result<GroupDescription, KafkaError>> = HashMap::new();
    if let Some(Ok((response, _))) = consumer {
        let api = Api(ConsumerGroupDescribeRequest::KEY);
        for g in response.groups {
            let id = g.group_id.0.to_string();
            // GROUP_ID_NOT_FOUND: not a KIP-848 group; DescribeGroups answers for it.
            // INVALID_GROUP_ID / UNSUPPORTED: likewise a classic group on some versions.
            if matches!(g.error_code, 69 | 24 | 35) {
                continue;
            }
            let result = check(g.error_code, conn.addr(), api, || format!("group {id}")).map(|_| {
                let mut members: Vec<MemberDescription> = g
                    .members
                    .into_iter()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.to_string(),
                        instance_id: m.instance_id.map(|i| i.to_string()),
                        client_id: m.client_id.to_string(),
                        host: m.client_host.to_string(),
                        assignment: sorted(
                            m.assignment
                                .topic_partitions
                                .into_iter()
                                .flat_map(|t| {
                                    let topic = t.topic_name.0.to_string();
                                    t.partitions
                                        .into_iter()
                                        .map(move |p| TopicPartition::new(topic.clone(), p))
                                })
                                .collect(),
                        ),
                    })
                    .collect();
                members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                GroupDescription {
                    group_id: id.clone(),
                    protocol: GroupProtocol::Consumer,
                    state: g.group_state.to_string(),
                    protocol_type: "consumer".to_owned(),
                    assignor: g.assignor_name.to_string(),
                    coordinator: node,
                    members,
                }
            });
            out.insert(id, result);
        }
    }
    let api = Api(DescribeGroupsRequest::KEY);
    match classic {
        Ok((response, _)) => {
            for g in response.groups {
                let id = g.group_id.0.to_string();
                if out.contains_key(&id) {
                    continue;
                }
                // Kafka 4 answers GROUP_ID_NOT_FOUND for a group it does not know; older brokers describe
                // it as Dead with no members. Report both the older way.
                let error_code = if g.error_code == 69 { 0 } else { g.error_code };
                let state = if g.error_code == 69 {
                    "Dead".to_owned()
                } else {
                    g.group_state.to_string()
                };
                let result = check(error_code, conn.addr(), api, || format!("group {id}")).map(|_| {
                    let is_consumer = g.protocol_type.as_str() == "consumer";
                    let mut members: Vec<MemberDescription> = g
                        .members
                        .into_iter()
                        .map(|m| MemberDescription {
                            member_id: m.member_id.to_string(),
                            instance_id: m.group_instance_id.map(|i| i.to_string()),
                            client_id: m.client_id.to_string(),
                            host: m.client_host.to_string(),
                            assignment: if is_consumer {
                                decode_assignment(m.member_assignment)
                            } else {
                                Vec::new()
                            },
                        })
                        .collect();
                    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                    GroupDescription {
                        group_id: id.clone(),
                        protocol: GroupProtocol::Classic,
                        state,
                        protocol_type: g.protocol_type.to_string(),
                        assignor: g.protocol_data.to_string(),
                        coordinator: node,
                        members,
                    }
                });
                out.insert(id, result);
            }
        }
        Err(e) => {
            for g in &groups {
                out.entry(g.clone()).or_insert_with(|| Err(e.clone()));
            }
        }
    }
    let mut out: Vec<_> = out.into_iter().collect();
    answer_missing(&mut out, &groups, conn.addr(), api);
    out
}

/// A classic consumer's assignment: a version (i16) followed by ConsumerProtocolAssignment. Undecodable
/// bytes (another client's custom protocol) give no partitions rather than an error.
fn decode_assignment(mut bytes: bytes::Bytes) -> Vec<TopicPartition> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = bytes.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut bytes, version) {
        Ok(a) => sorted(
            a.assigned_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.0.to_string();
                    t.partitions
                        .into_iter()
                        .map(move |p| TopicPartition::new(topic.clone(), p))
                })
                .collect(),
        ),
        Err(_) => Vec::new(),
    }
}

fn sorted(mut v: Vec<TopicPartition>) -> Vec<TopicPartition> {
    v.sort();
    v
}

/// How long to wait before asking again for offsets that were unstable on the `attempt`th try (from 0),
/// `elapsed` after the first: 100 ms doubling to 2 s, never past `wait`; `None` once `wait` has passed.
pub fn unstable_offset_backoff(attempt: u32, elapsed: Duration, wait: Duration) -> Option<Duration> {
    let left = wait.checked_sub(elapsed).filter(|left| !left.is_zero())?;
    let delay = Duration::from_millis(100u64 << attempt.min(5)).min(Duration::from_secs(2));
    Some(delay.min(left))
}

/// One OffsetFetch (v8+) for all committed offsets of many groups.
pub fn offset_fetch_request(groups: &[String]) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_groups(
        groups
            .iter()
            .map(|g| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.clone())))
                    .with_member_epoch(-1)
                    .with_topics(None)
            })
            .collect(),
    )
}

/// Collects a group's partitions: those answering UNSTABLE_OFFSET_COMMIT become one
/// `KafkaError::UnstableOffsetCommit` naming them all; any other error is returned as it is.
struct PartitionsRead {
    group: String,
    offsets: GroupOffsets,
    unstable: Vec<String>,
}

impl PartitionsRead {
    fn new(group: &str) -> Self {
        PartitionsRead {
            group: group.to_owned(),
            offsets: GroupOffsets::new(),
            unstable: Vec::new(),
        }
    }

    fn partition(
        &mut self,
        broker: &str,
        tp: TopicPartition,
        error_code: i16,
        offset: i64,
        epoch: i32,
        metadata: Option<StrBytes>,
    ) -> Result<(), KafkaError> {
        if error_code == ResponseError::UnstableOffsetCommit.code() {
            self.unstable.push(tp.to_string());
            return Ok(());
        }
        let group = &self.group;
        check(error_code, broker, Api(OffsetFetchRequest::KEY), || {
            format!("group {group}, partition {tp}")
        })?;
        insert_committed(&mut self.offsets, tp, offset, epoch, metadata);
        Ok(())
    }

    fn finish(mut self) -> Result<GroupOffsets, KafkaError> {
        if self.unstable.is_empty() {
            Ok(self.offsets)
        } else {
            self.unstable.sort();
            Err(KafkaError::UnstableOffsetCommit {
                group: self.group,
                partitions: self.unstable,
            })
        }
    }
}

async fn fetch_offsets_on(
    conn: &Connection,
    groups: Vec<String>,
    require_stable: bool,
) -> Vec<(String, Result<GroupOffsets, KafkaError>)> {
    let api = Api(OffsetFetchRequest::KEY);
    match conn.version_in::<OffsetFetchRequest>(8, 9) {
        Ok(version) => {
            let request = offset_fetch_request(&groups).with_require_stable(require_stable);
            match conn.send_version(&request, version).await {
                Ok(response) => {
                    let mut out: Vec<(String, Result<GroupOffsets, KafkaError>)> = response
                        .groups
                        .into_iter()
                        .map(|g| {
                            let id = g.group_id.0.to_string();
                            let result =
                                check(g.error_code, conn.addr(), api, || format!("group {id}")).and_then(|_| {
                                    let mut read = PartitionsRead::new(&id);
                                    for t in g.topics {
                                        for p in t.partitions {
                                            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                                            read.partition(
                                                conn.addr(),
                                                tp,
                                                p.error_code,
                                                p.committed_offset,
                                                p.committed_leader_epoch,
                                                p.metadata,
                                            )?;
                                        }
                                    }
                                    read.finish()
                                });
                            (id, result)
                        })
                        .collect();
                    answer_missing(&mut out, &groups, conn.addr(), api);
                    out
                }
                Err(e) => groups.into_iter().map(|g| (g, Err(e.clone()))).collect(),
            }
        }
        Err(_) => {
            // Brokers before Kafka 3.0: one OffsetFetch per group, all in flight together.
            let calls = groups.into_iter().map(|g| async move {
                let result = async {
                    // require_stable needs v7 (Kafka 2.5, the first with KIP-447); older brokers cannot be
                    // asked, and have no pending transactional commits to hide either way.
                    let version = conn.version_in::<OffsetFetchRequest>(2, 7)?;
                    let request = OffsetFetchRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(g.clone())))
                        .with_topics(None)
                        .with_require_stable(require_stable && version >= 7);
                    let response = conn.send_version(&request, version).await?;
                    check(response.error_code, conn.addr(), api, || format!("group {g}"))?;
                    let mut read = PartitionsRead::new(&g);
                    for t in response.topics {
                        for p in t.partitions {
                            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                            read.partition(
                                conn.addr(),
                                tp,
                                p.error_code,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata,
                            )?;
                        }
                    }
                    read.finish()
                }
                .await;
                (g, result)
            });
            join_all(calls).await
        }
    }
}

fn insert_committed(
    offsets: &mut GroupOffsets,
    tp: TopicPartition,
    offset: i64,
    epoch: i32,
    metadata: Option<StrBytes>,
) {
    // -1 means "no committed offset" for this partition.
    if offset >= 0 {
        offsets.insert(
            tp,
            CommittedOffset {
                offset,
                leader_epoch: (epoch >= 0).then_some(epoch),
                metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
            },
        );
    }
}

/// Gives every requested group an answer: one the broker left out is reported as a retriable omission.
fn answer_missing<T>(out: &mut Vec<(String, Result<T, KafkaError>)>, asked: &[String], broker: &str, api: Api) {
    let answered: std::collections::HashSet<String> = out.iter().map(|(k, _)| k.clone()).collect();
    for g in asked {
        if !answered.contains(g) {
            out.push((
                g.clone(),
                Err(KafkaError::Response {
                    broker: broker.to_owned(),
                    api,
                    error: ResponseError::CoordinatorNotAvailable,
                    context: format!("group {g} missing from the response"),
                }),
            ));
        }
    }
}

fn take_one<T>(mut results: HashMap<String, Result<T, KafkaError>>, key: &str) -> Result<T, KafkaError> {
    results
        .remove(key)
        .unwrap_or_else(|| Err(KafkaError::Config(format!("no result for {key}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unstable_offsets_are_asked_again_at_growing_intervals_up_to_two_seconds() {
        let wait = Duration::from_secs(60);
        let delays: Vec<u64> = (0..7)
            .map(|a| unstable_offset_backoff(a, Duration::ZERO, wait).map_or(0, |d| d.as_millis() as u64))
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn unstable_offset_wait_never_sleeps_past_its_bound_and_stops_there() {
        let wait = Duration::from_secs(60);
        assert_eq!(
            unstable_offset_backoff(9, Duration::from_millis(59_500), wait),
            Some(Duration::from_millis(500))
        );
        assert_eq!(unstable_offset_backoff(9, wait, wait), None);
        assert_eq!(unstable_offset_backoff(0, Duration::ZERO, Duration::ZERO), None);
    }

    #[test]
    fn a_pending_transactional_commit_names_every_unstable_partition_and_yields_no_offsets() {
        let mut read = PartitionsRead::new("g");
        let unstable = ResponseError::UnstableOffsetCommit.code();
        read.partition("b:9092", TopicPartition::new("t", 1), unstable, -1, -1, None)
            .expect("partition read");
        read.partition("b:9092", TopicPartition::new("t", 0), 0, 5, -1, None)
            .expect("partition read");
        read.partition("b:9092", TopicPartition::new("t", 2), unstable, -1, -1, None)
            .expect("partition read");
        match read.finish() {
            Err(KafkaError::UnstableOffsetCommit { group, partitions }) => {
                assert_eq!(group, "g");
                assert_eq!(partitions, ["t-1", "t-2"]);
            }
            other => panic!("expected UnstableOffsetCommit, got {other:?}"),
        }
    }

    #[test]
    fn stable_partitions_read_as_committed_offsets() {
        let mut read = PartitionsRead::new("g");
        read.partition("b:9092", TopicPartition::new("t", 0), 0, 5, 3, None)
            .expect("partition read");
        read.partition("b:9092", TopicPartition::new("t", 1), 0, -1, -1, None)
            .expect("partition read");
        let offsets = read.finish().expect("partition read");
        assert_eq!(offsets.len(), 1);
        assert_eq!(offsets[&TopicPartition::new("t", 0)].offset, 5);
    }
}
