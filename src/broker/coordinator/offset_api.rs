//! OffsetCommit, OffsetFetch (single group, v8+ batches, all partitions) and OffsetDelete.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::group::{Group, GroupState};
use super::journal::Record;
use super::offsets::{CommittedOffset, MAX_METADATA_BYTES};
use super::undo::Undo;
use super::{GroupCoordinator, TopicCatalog, wall_ms};

fn known_partition(topics: &dyn TopicCatalog, topic: &str, partition: i32) -> bool {
    topics
        .partitions(topic)
        .is_some_and(|n| partition >= 0 && partition < n)
}

pub(super) async fn offset_commit(
    c: &Arc<GroupCoordinator>,
    r: OffsetCommitRequest,
    version: i16,
    topics: &dyn TopicCatalog,
) -> OffsetCommitResponse {
    let group_id = r.group_id.0.to_string();
    let member_id = r.member_id.to_string();
    let instance_id = r.group_instance_id.as_ref().map(|i| i.to_string());
    let now_ms = wall_ms();
    // The whole request fails with one error, or each partition gets its own.
    let mut errors: Vec<Vec<i16>> = r.topics.iter().map(|t| vec![0; t.partitions.len()]).collect();
    // Not durable, a commit is taken back: nobody may see it (as in Kafka, where a commit reaches the cache only
    // once its append succeeded).
    let mut undo = Undo::default();
    let durable = {
        let mut groups = c.lock();
        let verdict = if group_id.is_empty() {
            Err(ResponseError::InvalidGroupId.code())
        } else {
            match groups.get_mut(&group_id) {
                Some(group) => group.validate_commit(
                    &member_id,
                    instance_id.as_deref(),
                    r.generation_id_or_member_epoch,
                    Instant::now(),
                ),
                // A group Kafka does not manage (admin tools, assign()-only consumers) is created by its first
                // commit; a commit naming a generation of a group that does not exist is stale.
                None if r.generation_id_or_member_epoch < 0 => {
                    groups.insert(group_id.clone(), Group::new(&group_id));
                    undo.created(&group_id);
                    Ok(())
                }
                None => Err(ResponseError::IllegalGeneration.code()),
            }
        };
        match verdict {
            Err(code) => {
                for e in errors.iter_mut().flatten() {
                    *e = code;
                }
                None
            }
            Ok(()) => {
                let mut records = Vec::new();
                if let Some(group) = groups.get_mut(&group_id) {
                    for (t, topic) in r.topics.iter().enumerate() {
                        for (p, partition) in topic.partitions.iter().enumerate() {
                            let metadata = partition.committed_metadata.as_ref().map(|m| m.to_string());
                            let error = if !known_partition(topics, &topic.name.0, partition.partition_index) {
                                ResponseError::UnknownTopicOrPartition.code()
                            } else if metadata.as_ref().is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
                                ResponseError::OffsetMetadataTooLarge.code()
                            } else {
                                let committed = CommittedOffset {
                                    offset: partition.committed_offset,
                                    leader_epoch: if version >= 6 {
                                        partition.committed_leader_epoch
                                    } else {
                                        -1
                                    },
                                    metadata,
                                    commit_timestamp: now_ms,
                                    // v2–v4 may ask for a retention of their own (-1: the broker's).
                                    expire_timestamp: (version <= 4 && r.retention_time_ms >= 0)
                                        .then(|| now_ms.saturating_add(r.retention_time_ms)),
                                };
                                put_commit(
                                    group,
                                    &mut undo,
                                    &mut records,
                                    &topic.name.0,
                                    partition.partition_index,
                                    committed,
                                );
                                0
                            };
                            errors[t][p] = error;
                        }
                    }
                }
                c.persist(&records, undo)
            }
        }
    };
    if let Some(rx) = durable
        && !matches!(rx.await, Ok(Ok(())))
    {
        for e in errors.iter_mut().flatten() {
            if *e == 0 {
                *e = ResponseError::CoordinatorNotAvailable.code();
            }
        }
    }
    OffsetCommitResponse::default().with_topics(
        r.topics
            .iter()
            .zip(errors)
            .map(|(topic, errors)| {
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_topic_id(topic.topic_id)
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .zip(errors)
                            .map(|(p, e)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(e)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// Commits `committed` for `topic`-`partition` in `group`: in memory, in `undo` (taken back if the log cannot make it
/// durable) and as the log record to persist. Shared by OffsetCommit and the commit of a transaction's offsets.
pub(super) fn put_commit(
    group: &mut Group,
    undo: &mut Undo,
    records: &mut Vec<Record>,
    topic: &str,
    partition: i32,
    committed: CommittedOffset,
) {
    let replaced = group.offsets.get(topic, partition).cloned();
    undo.offset(&group.id, topic, partition, replaced, Some(committed.clone()));
    group.offsets.put(topic, partition, committed.clone());
    records.push(Record::Commit {
        group: group.id.clone(),
        topic: topic.to_owned(),
        partition,
        committed,
    });
}

/// One partition's answer: the committed offset, or -1 and empty metadata when there is none.
struct Fetched {
    partition: i32,
    committed: Option<CommittedOffset>,
    error: i16,
}

/// The committed offsets of `group_id` for `requested` (topic → partitions), or all of them when None. With
/// `require_stable`, a partition with a transactional offset pending answers UNSTABLE_OFFSET_COMMIT.
fn fetch_group(
    c: &GroupCoordinator,
    group_id: &str,
    requested: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> (i16, Vec<(String, Vec<Fetched>)>) {
    let (error, mut answer) = fetch_committed(c, group_id, requested);
    if require_stable {
        for (topic, fetched) in answer.iter_mut() {
            for f in fetched.iter_mut() {
                if c.has_pending_txn_offset(group_id, topic, f.partition) {
                    f.error = ResponseError::UnstableOffsetCommit.code();
                    f.committed = None;
                }
            }
        }
    }
    (error, answer)
}

fn fetch_committed(
    c: &GroupCoordinator,
    group_id: &str,
    requested: Option<Vec<(String, Vec<i32>)>>,
) -> (i16, Vec<(String, Vec<Fetched>)>) {
    let groups = c.lock();
    let group = groups.get(group_id).filter(|g| g.state != GroupState::Dead);
    match requested {
        Some(topics) => {
            let answer = topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let fetched = partitions
                        .into_iter()
                        .map(|partition| Fetched {
                            partition,
                            committed: group.and_then(|g| g.offsets.get(&topic, partition).cloned()),
                            error: 0,
                        })
                        .collect();
                    (topic, fetched)
                })
                .collect();
            (0, answer)
        }
        None => {
            let answer = group
                .map(|g| {
                    g.offsets
                        .topics()
                        .map(|(topic, partitions)| {
                            let fetched = partitions
                                .iter()
                                .map(|(p, committed)| Fetched {
                                    partition: *p,
                                    committed: Some(committed.clone()),
                                    error: 0,
                                })
                                .collect();
                            (topic.to_owned(), fetched)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (0, answer)
        }
    }
}

/// OffsetFetch v9 from a KIP-848 member names it and its epoch: as Kafka checks a consumer group's fetch, an
/// unknown member is UNKNOWN_MEMBER_ID and another epoch STALE_MEMBER_EPOCH. Admin fetches name no member.
fn member_check(
    c: &GroupCoordinator,
    group_id: &str,
    member_id: Option<&str>,
    member_epoch: i32,
) -> Result<(), ResponseError> {
    let Some(member_id) = member_id.filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let groups = c.lock();
    match groups.get(group_id).and_then(|g| g.consumer.as_ref()) {
        Some(consumer) => consumer.validate_commit(member_id, member_epoch),
        None => Ok(()),
    }
}

fn metadata(f: &Fetched) -> Option<StrBytes> {
    // Kafka answers "" (OffsetFetchResponse.NO_METADATA) for no commit and for a commit without metadata.
    Some(StrBytes::from_string(
        f.committed
            .as_ref()
            .and_then(|c| c.metadata.clone())
            .unwrap_or_default(),
    ))
}

fn offset(f: &Fetched) -> i64 {
    f.committed.as_ref().map_or(-1, |c| c.offset)
}

fn leader_epoch(f: &Fetched, version: i16) -> i32 {
    if version >= 5 {
        f.committed.as_ref().map_or(-1, |c| c.leader_epoch)
    } else {
        -1
    }
}

pub(super) fn offset_fetch(c: &Arc<GroupCoordinator>, r: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version < 8 {
        let requested = r.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let (error, answer) = fetch_group(c, r.group_id.0.as_str(), requested, r.require_stable);
        let topics = answer
            .into_iter()
            .map(|(topic, fetched)| {
                OffsetFetchResponseTopic::default()
                    .with_name(StrBytes::from_string(topic).into())
                    .with_partitions(
                        fetched
                            .iter()
                            .map(|f| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(f.partition)
                                    .with_error_code(f.error)
                                    .with_committed_offset(offset(f))
                                    .with_committed_leader_epoch(leader_epoch(f, version))
                                    .with_metadata(metadata(f))
                            })
                            .collect(),
                    )
            })
            .collect();
        let response = OffsetFetchResponse::default().with_topics(topics);
        return if version >= 2 {
            response.with_error_code(error)
        } else {
            response
        };
    }
    let groups = r
        .groups
        .iter()
        .map(|g| {
            let requested = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let (error, answer) = match member_check(c, g.group_id.0.as_str(), g.member_id.as_deref(), g.member_epoch) {
                Err(e) => (e.code(), Vec::new()),
                Ok(()) => fetch_group(c, g.group_id.0.as_str(), requested, r.require_stable),
            };
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id.clone())
                .with_error_code(error)
                .with_topics(
                    answer
                        .into_iter()
                        .map(|(topic, fetched)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(StrBytes::from_string(topic).into())
                                .with_partitions(
                                    fetched
                                        .iter()
                                        .map(|f| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(f.partition)
                                                .with_error_code(f.error)
                                                .with_committed_offset(offset(f))
                                                .with_committed_leader_epoch(leader_epoch(f, version))
                                                .with_metadata(metadata(f))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

pub(super) async fn offset_delete(
    c: &Arc<GroupCoordinator>,
    r: OffsetDeleteRequest,
    topics: &dyn TopicCatalog,
) -> OffsetDeleteResponse {
    let group_id = r.group_id.0.to_string();
    let mut records = Vec::new();
    let mut undo = Undo::default();
    let (top, answer, durable) = {
        let mut groups = c.lock();
        let (top, answer) = match groups.get_mut(&group_id).filter(|g| g.state != GroupState::Dead) {
            None => (ResponseError::GroupIdNotFound.code(), Vec::new()),
            Some(group)
                if group.state != GroupState::Empty
                    && group.protocol_type.as_deref() != Some(super::group::CONSUMER_PROTOCOL_TYPE) =>
            {
                (ResponseError::NonEmptyGroup.code(), Vec::new())
            }
            Some(group) => {
                let active = group.state != GroupState::Empty;
                let answer: Vec<OffsetDeleteResponseTopic> = r
                    .topics
                    .iter()
                    .map(|t| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                let error = if !known_partition(topics, &t.name.0, p.partition_index) {
                                    ResponseError::UnknownTopicOrPartition.code()
                                } else if active && group.is_subscribed_to(&t.name.0) {
                                    ResponseError::GroupSubscribedToTopic.code()
                                } else {
                                    if let Some(removed) = group.offsets.remove(&t.name.0, p.partition_index) {
                                        undo.offset(&group_id, &t.name.0, p.partition_index, Some(removed), None);
                                        records.push(Record::DeleteOffset {
                                            group: group_id.clone(),
                                            topic: t.name.0.to_string(),
                                            partition: p.partition_index,
                                        });
                                    }
                                    0
                                };
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(error)
                            })
                            .collect();
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(partitions)
                    })
                    .collect();
                (0, answer)
            }
        };
        // Queued while the groups are locked: the log keeps the order in which the state changed.
        let durable = c.persist(&records, undo);
        (top, answer, durable)
    };
    if let Some(rx) = durable
        && !matches!(rx.await, Ok(Ok(())))
    {
        return OffsetDeleteResponse::default().with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    OffsetDeleteResponse::default().with_error_code(top).with_topics(answer)
}
