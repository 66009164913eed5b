//! Committed offsets of groups: OffsetFetch (batched per coordinator, optionally stable), admin
//! OffsetCommit and OffsetDelete.

use super::coordinators::{answer_missing, take_one};
use crate::kafka::client::KafkaClient;
use crate::kafka::connection::Connection;
use crate::kafka::error::{KafkaError, check};
use crate::kafka::metadata::TopicPartition;
use crate::wire::Api;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

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
    /// Committed offsets of many groups: one OffsetFetch per coordinator carrying all of its groups (v8+),
    /// or one per group on older brokers. An unknown group has no offsets.
    ///
    /// A coordinator with many groups gets its batch split over a few connections (`offset_fetch_lanes`): the
    /// broker serves one request per connection at a time, and one OffsetFetch of 20,000 groups is one long
    /// request on one of its handler threads.
    pub async fn committed_offsets(&self, groups: &[String]) -> HashMap<String, Result<GroupOffsets, KafkaError>> {
        self.committed_offsets_over(groups, MAX_LANES).await
    }

    /// `committed_offsets` over at most `max_lanes` connections per coordinator: 1 sends each coordinator's
    /// groups as one request, for a caller that counts requests more than it waits for them (the operator's
    /// periodic scan).
    pub async fn committed_offsets_over(
        &self,
        groups: &[String],
        max_lanes: usize,
    ) -> HashMap<String, Result<GroupOffsets, KafkaError>> {
        self.on_coordinators("OffsetFetch", groups, |conn, node, groups| async move {
            let lanes = offset_fetch_lanes(groups.len()).min(max_lanes.max(1));
            if lanes == 1 {
                return fetch_offsets_on(&conn, groups, false).await;
            }
            let per_lane = groups.len().div_ceil(lanes);
            let calls = groups.chunks(per_lane).enumerate().map(|(lane, chunk)| {
                let conn = conn.clone();
                let chunk = chunk.to_vec();
                async move {
                    let conn = match lane {
                        0 => conn,
                        _ => match self.broker_lane(node, lane).await {
                            Ok(c) => c,
                            Err(e) => return chunk.into_iter().map(|g| (g, Err(e.clone()))).collect(),
                        },
                    };
                    fetch_offsets_on(&conn, chunk, false).await
                }
            });
            join_all(calls).await.into_iter().flatten().collect()
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
        self.commit_offsets_with_metadata(group, offsets, "").await
    }

    /// `commit_offsets`, with `metadata` as every partition's commit metadata (what OffsetFetch returns until
    /// the partition is committed again): an OffsetReset records itself there (`plan::reset_record`).
    pub async fn commit_offsets_with_metadata(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
        metadata: &str,
    ) -> Result<(), KafkaError> {
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
            topics.entry(&*tp.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.to_owned()))),
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

    /// Deletes a group's committed offsets for `partitions` (OffsetDelete). Kafka refuses partitions of
    /// topics the group is subscribed to while it has members (GROUP_SUBSCRIBED_TO_TOPIC).
    pub async fn delete_offsets(&self, group: &str, partitions: &[TopicPartition]) -> Result<(), KafkaError> {
        let mut topics: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for tp in partitions {
            topics
                .entry(&*tp.topic)
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

/// How long to wait before asking again for offsets that were unstable on the `attempt`th try (from 0),
/// `elapsed` after the first: 100 ms doubling to 2 s, never past `wait`; `None` once `wait` has passed.
pub fn unstable_offset_backoff(attempt: u32, elapsed: Duration, wait: Duration) -> Option<Duration> {
    let left = wait.checked_sub(elapsed).filter(|left| !left.is_zero())?;
    let delay = Duration::from_millis(100u64 << attempt.min(5)).min(Duration::from_secs(2));
    Some(delay.min(left))
}

/// One OffsetFetch (v8+) for all committed offsets of many groups.
/// Groups per OffsetFetch past which a coordinator's batch is split over connections.
const GROUPS_PER_LANE: usize = 1_000;
/// Most connections per coordinator for one batch.
const MAX_LANES: usize = 4;

/// Connections a batch of `groups` groups is split over: one up to `GROUPS_PER_LANE`, then one more per
/// `GROUPS_PER_LANE`, at most `MAX_LANES`.
pub fn offset_fetch_lanes(groups: usize) -> usize {
    groups.div_ceil(GROUPS_PER_LANE).clamp(1, MAX_LANES)
}

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
        metadata: Option<&str>,
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
            // Each group's offsets are built as its part of the response is read: the decoded response is
            // never held whole beside them.
            let read = conn
                .send_version_read(&request, version, |frame| {
                    let mut out: Vec<(String, Result<GroupOffsets, KafkaError>)> = Vec::new();
                    super::offset_fetch_response::read_groups(frame, version, |id, error_code, partitions| {
                        let result = check(error_code, conn.addr(), api, || format!("group {id}")).and_then(|_| {
                            let mut read = PartitionsRead::new(&id);
                            for p in partitions {
                                read.partition(
                                    conn.addr(),
                                    p.tp,
                                    p.error_code,
                                    p.committed_offset,
                                    p.leader_epoch,
                                    p.metadata,
                                )?;
                            }
                            read.finish()
                        });
                        out.push((id, result));
                    })?;
                    Ok(out)
                })
                .await;
            match read {
                Ok(mut out) => {
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
                        let topic: std::sync::Arc<str> = std::sync::Arc::from(&*t.name.0);
                        for p in t.partitions {
                            let tp = TopicPartition::new(&topic, p.partition_index);
                            read.partition(
                                conn.addr(),
                                tp,
                                p.error_code,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_deref(),
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

fn insert_committed(offsets: &mut GroupOffsets, tp: TopicPartition, offset: i64, epoch: i32, metadata: Option<&str>) {
    // -1 means "no committed offset" for this partition.
    if offset >= 0 {
        offsets.insert(
            tp,
            CommittedOffset {
                offset,
                leader_epoch: (epoch >= 0).then_some(epoch),
                metadata: metadata.map(str::to_owned).unwrap_or_default(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_are_split_over_at_most_four_connections() {
        assert_eq!(
            [0, 1, 1_000, 1_001, 2_000, 3_500, 20_000].map(offset_fetch_lanes),
            [1, 1, 1, 2, 2, 4, 4]
        );
    }

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
