//! What a change of the groups did, taken back when its records do not become durable, so that what the
//! coordinator serves stays what a restart would replay. Whatever a newer change did to the same state wins.

use std::collections::HashMap;

use super::group::{Group, GroupState};
use super::offsets::CommittedOffset;

/// One step of a change, as it found and left the state.
enum Step {
    /// A commit created the group.
    Created { group: String },
    /// The group was removed (its offsets were removed by the `Offset` steps before).
    Removed {
        group: String,
        protocol_type: Option<String>,
        generation: i32,
        empty_since: Option<i64>,
    },
    /// An offset went from `before` to `after` (None: there was none, or it was deleted).
    Offset {
        group: String,
        topic: String,
        partition: i32,
        before: Option<CommittedOffset>,
        after: Option<CommittedOffset>,
    },
}

/// The steps of one change, in the order they were made.
#[derive(Default)]
pub struct Undo {
    steps: Vec<Step>,
}

impl Undo {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn created(&mut self, group: &str) {
        self.steps.push(Step::Created {
            group: group.to_owned(),
        });
    }

    pub fn offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        before: Option<CommittedOffset>,
        after: Option<CommittedOffset>,
    ) {
        self.steps.push(Step::Offset {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
            before,
            after,
        });
    }

    /// `group`, as it was when it was removed with all its offsets.
    pub fn removed(&mut self, group: &Group) {
        for (topic, partition, committed) in group.offsets.iter() {
            self.offset(&group.id, topic, partition, Some(committed.clone()), None);
        }
        self.steps.push(Step::Removed {
            group: group.id.clone(),
            protocol_type: group.protocol_type.clone(),
            generation: group.generation,
            empty_since: group.empty_since,
        });
    }

    /// Takes the steps back, last first. An offset is put back only where it is still what the change left; a
    /// removed group only when no group of its id was created since (the offsets it lacks are put back into
    /// that one, as a replay of the log would); a created group is removed only while nothing else is in it.
    pub fn apply(self, groups: &mut HashMap<String, Group>) {
        for step in self.steps.into_iter().rev() {
            match step {
                Step::Created { group } => {
                    let untouched = groups.get(&group).is_some_and(|g| {
                        g.state == GroupState::Empty
                            && g.offsets.is_empty()
                            && g.pending_members.is_empty()
                            && g.protocol_type.is_none()
                    });
                    if untouched {
                        groups.remove(&group);
                    }
                }
                Step::Removed {
                    group,
                    protocol_type,
                    generation,
                    empty_since,
                } => {
                    groups.entry(group).or_insert_with_key(|id| {
                        let mut g = Group::new(id);
                        g.protocol_type = protocol_type;
                        g.generation = generation;
                        g.empty_since = empty_since;
                        g
                    });
                }
                Step::Offset {
                    group,
                    topic,
                    partition,
                    before,
                    after,
                } => {
                    if let Some(g) = groups.get_mut(&group)
                        && g.offsets.get(&topic, partition) == after.as_ref()
                    {
                        match before {
                            Some(committed) => g.offsets.put(&topic, partition, committed),
                            None => {
                                g.offsets.remove(&topic, partition);
                            }
                        }
                    }
                }
            }
        }
    }
}
