//! Transactional offset commits (TxnOffsetCommit) as the group coordinator sees them: who may commit for a group
//! (KIP-447: the member and generation the producer names, when it names them), which partitions have offsets
//! pending in an open transaction (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them), and
//! the commit of a transaction's offsets once the transaction coordinator decided it. The pending offsets
//! themselves are kept (durably) by the transaction coordinator, with the rest of the transaction.

use std::collections::HashMap;
use std::sync::MutexGuard;

use kafka_protocol::ResponseError;

use super::group::{Group, GroupState};
use super::offsets::CommittedOffset;
use super::undo::Undo;
use super::{GroupCoordinator, wall_ms};

/// (group, topic, partition) → how many open transactions have an offset pending for it.
#[derive(Debug, Default)]
pub struct PendingTxnOffsets {
    counts: HashMap<(String, String, i32), usize>,
}

/// One offset a committed transaction commits.
#[derive(Clone, Debug)]
pub struct TxnOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

impl GroupCoordinator {
    fn pending(&self) -> MutexGuard<'_, PendingTxnOffsets> {
        self.pending_txn_offsets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a TxnOffsetCommit naming `member_id`/`instance_id`/`generation` may commit for `group_id`: as Kafka
    /// checks it, only what the producer names is checked (a producer that sends no group metadata, generation -1
    /// and no member id, commits like an admin tool).
    pub fn validate_txn_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        validate(group, member_id, instance_id, generation)
    }

    /// Notes that an open transaction has an offset pending for each of `partitions` of `group_id`.
    pub fn add_pending_txn_offsets(&self, group_id: &str, partitions: &[(String, i32)]) {
        let mut pending = self.pending();
        for (topic, partition) in partitions {
            *pending
                .counts
                .entry((group_id.to_owned(), topic.clone(), *partition))
                .or_default() += 1;
        }
    }

    /// Takes back `add_pending_txn_offsets` (the transaction was committed or aborted).
    pub fn remove_pending_txn_offsets(&self, group_id: &str, partitions: &[(String, i32)]) {
        let mut pending = self.pending();
        for (topic, partition) in partitions {
            let key = (group_id.to_owned(), topic.clone(), *partition);
            if let Some(count) = pending.counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    pending.counts.remove(&key);
                }
            }
        }
    }

    /// Whether an open transaction has an offset pending for this partition of the group.
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let pending = self.pending();
        !pending.counts.is_empty()
            && pending
                .counts
                .contains_key(&(group_id.to_owned(), topic.to_owned(), partition))
    }

    /// Commits the offsets of a committed transaction for `group_id` (creating the group if it is gone, as Kafka
    /// materializes them whatever became of it); resolves once they are durable.
    pub async fn commit_txn_offsets(&self, group_id: &str, offsets: &[TxnOffset]) -> std::io::Result<()> {
        let durable = {
            let mut groups = self.lock();
            let mut undo = Undo::default();
            let group = match groups.get_mut(group_id).filter(|g| g.state != GroupState::Dead) {
                Some(group) => group,
                None => {
                    undo.created(group_id);
                    groups.insert(group_id.to_owned(), Group::new(group_id));
                    groups
                        .get_mut(group_id)
                        .ok_or_else(|| std::io::Error::other("group vanished"))?
                }
            };
            let now_ms = wall_ms();
            let mut records = Vec::with_capacity(offsets.len());
            for o in offsets {
                let committed = CommittedOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_timestamp: now_ms,
                    expire_timestamp: None,
                };
                super::offset_api::put_commit(group, &mut undo, &mut records, &o.topic, o.partition, committed);
            }
            self.persist(&records, undo)
        };
        match durable {
            None => Ok(()),
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the group log writer stopped"))),
        }
    }
}

fn validate(group: &Group, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), ResponseError> {
    if group.state == GroupState::Dead {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if group.is_fenced(member_id, instance_id) {
        return Err(ResponseError::FencedInstanceId);
    }
    if !member_id.is_empty() && !group.members.contains_key(member_id) {
        return Err(ResponseError::UnknownMemberId);
    }
    if generation >= 0 && generation != group.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(())
}
