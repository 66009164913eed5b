//! Resolves reset targets against a cluster — which partitions, their log bounds, the offsets Kafka finds for
//! a time — and hands them to the pure planners. Shared by the OffsetReset reconciler and the command line's
//! `plan`/`apply`, so both plan a manifest the same way.

use crate::api::IsolationLevel;
use crate::api::reset::{ResetTo, TopicSelection};
use crate::kafka::{GroupOffsets, Isolation, KafkaClient, KafkaError, OffsetSpec, StreamsTopology, TopicPartition};
use crate::plan::offset_init::{InitPolicy, OffsetInitDecision, plan_offset_init};
use crate::plan::reset::{PlannedPartition, ResetTarget, plan_reset, reset_log_end};
use std::collections::{BTreeMap, BTreeSet};

/// Why a target could not be resolved; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("group {0} has no committed offsets: list the topics to reset in spec.topics")]
    NothingToReset(String),
    #[error(
        "streams group {group} has no committed offsets on its input topics ({inputs}): nothing to reset (list partitions with spec.to.partitions to set offsets anyway)"
    )]
    NoStreamsInputOffsets { group: String, inputs: String },
    #[error(
        "topic {topic} partition {partition} is not part of streams group {group}: it has no committed offset there (as kafka-streams-groups.sh --input-topic requires); its input topics are {inputs}"
    )]
    NotInStreamsGroup {
        group: String,
        topic: String,
        partition: i32,
        inputs: String,
    },
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    Plan(String),
}

/// What to reset: the parts of an OffsetReset (or an equivalent request) that planning needs.
#[derive(Clone, Debug)]
pub struct ResetRequest<'a> {
    pub group_id: &'a str,
    /// `spec.topics`: the partitions to move (all of a topic's when none are listed).
    pub topics: &'a [TopicSelection],
    pub to: &'a ResetTo,
    /// The topics of the ConsumerGroup the reset names, used when nothing else says which partitions move.
    pub declared_topics: &'a [String],
    /// The ConsumerGroup's declared `spec.isolation`; `None` decides per partition (`plan::reset::reset_log_end`).
    pub isolation: Option<IsolationLevel>,
    /// For `previousOf`: the offsets that the earlier reset replaced, looked up by the caller (they live in
    /// the cluster's OffsetReset objects).
    pub previous_of: Option<BTreeMap<TopicPartition, i64>>,
    /// The topology, when the group is a streams group (KIP-1071): the partitions then follow
    /// `kafka-streams-groups.sh --reset-offsets` (`streams_scope`).
    pub streams: Option<&'a StreamsTopology>,
}

/// A resolved plan.
#[derive(Clone, Debug)]
pub struct ResolvedReset {
    /// The target in words (`earliest`, `shiftBy -100`, …).
    pub target: String,
    pub partitions: Vec<PlannedPartition<TopicPartition>>,
}

/// Every partition of `topics`, checked against the cluster's metadata (an unknown topic is an error).
pub async fn partitions_of_topics(
    client: &KafkaClient,
    topics: &[String],
) -> Result<Vec<TopicPartition>, ResolveError> {
    let metadata = client.metadata_with(topics).await?;
    let mut out = Vec::new();
    for t in topics {
        out.extend(metadata.partitions_of(t)?);
    }
    Ok(out)
}

/// The partitions a reset moves: the listed topics (all or some partitions), else the previous reset's, the
/// explicit ones, the group's committed ones, or the ConsumerGroup's declared topics.
async fn reset_partitions(
    client: &KafkaClient,
    request: &ResetRequest<'_>,
    committed: &GroupOffsets,
) -> Result<Vec<TopicPartition>, ResolveError> {
    if !request.topics.is_empty() {
        let names: Vec<String> = request
            .topics
            .iter()
            .map(|t| t.name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let known = partitions_of_topics(client, &names).await?;
        let mut wanted = Vec::new();
        for t in request.topics {
            if t.partitions.is_empty() {
                wanted.extend(known.iter().filter(|tp| *tp.topic == *t.name).cloned());
            } else {
                wanted.extend(t.partitions.iter().map(|p| TopicPartition::new(&t.name, *p)));
            }
        }
        let wanted = existing(wanted, &known)?;
        return match request.streams {
            Some(topology) => streams_listed(request.group_id, topology, wanted, committed),
            None => Ok(wanted),
        };
    }
    if let Some(prev) = &request.previous_of {
        return Ok(prev.keys().cloned().collect());
    }
    if let Some(explicit) = &request.to.partitions {
        let wanted: Vec<TopicPartition> = explicit
            .iter()
            .map(|p| TopicPartition::new(&p.topic, p.partition))
            .collect();
        let topics: Vec<String> = wanted
            .iter()
            .map(|tp| &*tp.topic)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let known = partitions_of_topics(client, &topics).await?;
        return existing(wanted, &known);
    }
    if let Some(topology) = request.streams {
        return streams_inputs(request.group_id, topology, committed);
    }
    if !committed.is_empty() {
        return Ok(committed.keys().cloned().collect());
    }
    if !request.declared_topics.is_empty() {
        return partitions_of_topics(client, request.declared_topics).await;
    }
    Err(ResolveError::NothingToReset(request.group_id.to_owned()))
}

fn input_words(topology: &StreamsTopology) -> String {
    let inputs: Vec<String> = topology.input_topics().into_iter().collect();
    if inputs.is_empty() {
        "none (topology not initialized)".to_owned()
    } else {
        inputs.join(", ")
    }
}

/// A streams group's default scope, `kafka-streams-groups.sh --all-input-topics` as Kafka 4.4 computes it:
/// the partitions with a committed offset on the topology's source topics. Internal repartition topics are
/// left where they are (the app re-fills them from the reset input).
fn streams_inputs(
    group: &str,
    topology: &StreamsTopology,
    committed: &GroupOffsets,
) -> Result<Vec<TopicPartition>, ResolveError> {
    let inputs = topology.input_topics();
    let partitions: Vec<TopicPartition> = committed
        .keys()
        .filter(|tp| inputs.contains(&*tp.topic))
        .cloned()
        .collect();
    if partitions.is_empty() {
        return Err(ResolveError::NoStreamsInputOffsets {
            group: group.to_owned(),
            inputs: input_words(topology),
        });
    }
    Ok(partitions)
}

/// A streams group's listed partitions (`--input-topic t[:p,…]`): each must have a committed offset in the
/// group, as the tool requires, so that a reset never gives the app offsets of topics it does not read.
fn streams_listed(
    group: &str,
    topology: &StreamsTopology,
    wanted: Vec<TopicPartition>,
    committed: &GroupOffsets,
) -> Result<Vec<TopicPartition>, ResolveError> {
    match wanted.iter().find(|tp| !committed.contains_key(*tp)) {
        Some(tp) => Err(ResolveError::NotInStreamsGroup {
            group: group.to_owned(),
            topic: tp.topic.to_string(),
            partition: tp.partition,
            inputs: input_words(topology),
        }),
        None => Ok(wanted),
    }
}

/// What an offset reset of a streams group does not reset, and how to reset it: the application's state.
/// `kafka-streams-groups.sh --reset-offsets --execute` can delete the internal topics
/// (`--delete-all-internal-topics`); the operator does not delete topics. Moving the input offsets back
/// without clearing the state re-processes records into stores that already counted them.
pub fn streams_state_note(group: &str, topology: &StreamsTopology) -> String {
    let internal: Vec<String> = topology.internal_topics().into_iter().collect();
    let topics = if internal.is_empty() {
        "it has no internal topics".to_owned()
    } else {
        format!("internal topics {}", internal.join(", "))
    };
    format!(
        "streams group {group}: the reset moves committed offsets only; the application's state is NOT reset ({topics}; the instances' local state stores). To start from a clean state, with the application stopped: delete the internal topics (kafka-streams-groups.sh --reset-offsets --group {group} ... --execute --delete-all-internal-topics, or kafka-topics.sh --delete) and each instance's local state (KafkaStreams#cleanUp() or its state.dir)"
    )
}

/// `wanted`, if every one of them is among the cluster's `known` partitions; else the first that is not.
fn existing(wanted: Vec<TopicPartition>, known: &[TopicPartition]) -> Result<Vec<TopicPartition>, ResolveError> {
    match wanted.iter().find(|tp| !known.contains(tp)) {
        Some(missing) => Err(ResolveError::UnknownPartition {
            topic: missing.topic.to_string(),
            partition: missing.partition,
        }),
        None => Ok(wanted),
    }
}

/// Log start and log end of each partition, the end as a group of `isolation` reads it
/// (`plan::reset::reset_log_end`): the last stable offset (ListOffsets READ_COMMITTED) where it reads committed.
pub async fn log_bounds(
    client: &KafkaClient,
    partitions: &[TopicPartition],
    isolation: Option<IsolationLevel>,
) -> Result<(BTreeMap<TopicPartition, i64>, BTreeMap<TopicPartition, i64>), ResolveError> {
    let (starts, ends, stable) = tokio::join!(
        client.list_offsets(partitions, OffsetSpec::Earliest, Isolation::ReadUncommitted),
        client.list_offsets(partitions, OffsetSpec::Latest, Isolation::ReadUncommitted),
        async {
            match isolation {
                Some(IsolationLevel::ReadUncommitted) => Ok(Default::default()),
                _ => {
                    client
                        .list_offsets(partitions, OffsetSpec::Latest, Isolation::ReadCommitted)
                        .await
                }
            }
        }
    );
    let offsets = |m: std::collections::BTreeMap<TopicPartition, crate::kafka::LogOffset>| {
        m.into_iter().map(|(k, v)| (k, v.offset)).collect::<BTreeMap<_, _>>()
    };
    let ends = reset_log_end(isolation, &offsets(ends?), &offsets(stable?));
    Ok((offsets(starts?), ends))
}

/// A reset target in words, as status, Events and `plan` show it (`earliest`, `shiftBy -100`, …).
pub fn target_words(to: &ResetTo) -> String {
    if to.earliest.is_some() {
        "earliest".to_owned()
    } else if to.latest.is_some() {
        "latest".to_owned()
    } else if let Some(o) = to.offset {
        format!("offset {o}")
    } else if let Some(ts) = &to.timestamp {
        format!("timestamp {ts}")
    } else if let Some(d) = &to.duration {
        format!("duration {d}")
    } else if let Some(n) = to.shift_by {
        format!("shiftBy {n}")
    } else if let Some(explicit) = &to.partitions {
        format!("partitions ({})", explicit.len())
    } else if let Some(name) = &to.previous_of {
        format!("previousOf {name}")
    } else {
        "no target".to_owned()
    }
}

/// Resolves `request` against the cluster and plans it with `plan::reset`. `committed` is the group's
/// committed offsets; `now_ms` the time a `duration` counts back from.
pub async fn resolve_reset(
    client: &KafkaClient,
    request: &ResetRequest<'_>,
    committed: &GroupOffsets,
    now_ms: i64,
) -> Result<ResolvedReset, ResolveError> {
    let to = request.to;
    let partitions = reset_partitions(client, request, committed).await?;
    let (starts, ends) = log_bounds(client, &partitions, request.isolation).await?;
    let partitions_ref = &partitions;
    let at_time = |ms: i64| async move {
        client
            .list_offsets(partitions_ref, OffsetSpec::Timestamp(ms), Isolation::ReadUncommitted)
            .await
            .map(|m| m.into_iter().map(|(k, v)| (k, v.offset)).collect::<BTreeMap<_, _>>())
    };
    let target = if to.earliest.is_some() {
        ResetTarget::Earliest
    } else if to.latest.is_some() {
        ResetTarget::Latest
    } else if let Some(o) = to.offset {
        ResetTarget::Offset(o)
    } else if let Some(ts) = &to.timestamp {
        let t: k8s_openapi::jiff::Timestamp = ts.parse().map_err(|e| {
            ResolveError::InvalidTarget(format!(
                "timestamp {ts:?} is not RFC 3339 (e.g. 2026-11-25T08:00:00Z): {e}"
            ))
        })?;
        ResetTarget::AtTime(at_time(t.as_millisecond()).await?)
    } else if let Some(d) = &to.duration {
        let back = crate::plan::duration::parse_duration(d).map_err(|e| ResolveError::InvalidTarget(e.to_string()))?;
        let ms = now_ms - back.as_millis() as i64;
        ResetTarget::AtTime(at_time(ms).await?)
    } else if let Some(n) = to.shift_by {
        ResetTarget::ShiftBy(n)
    } else if let Some(explicit) = &to.partitions {
        let map = explicit
            .iter()
            .map(|p| (TopicPartition::new(&p.topic, p.partition), p.offset))
            .collect();
        ResetTarget::Explicit(map)
    } else if let (Some(prev), Some(_)) = (&request.previous_of, &to.previous_of) {
        ResetTarget::Explicit(prev.clone())
    } else {
        return Err(ResolveError::InvalidTarget(
            "spec.to names no target: give one of earliest, latest, offset, timestamp, duration, shiftBy, partitions or previousOf".to_owned(),
        ));
    };
    let words = target_words(to);
    let current: BTreeMap<TopicPartition, i64> = committed.iter().map(|(k, v)| (k.clone(), v.offset)).collect();
    let planned =
        plan_reset(&target, &partitions, &current, &starts, &ends).map_err(|e| ResolveError::Plan(e.to_string()))?;
    Ok(ResolvedReset {
        target: words,
        partitions: planned,
    })
}

/// Where `offsetInit` starts the `missing` partitions: their log start (`earliest`) or log end (`latest`).
/// Log ends the caller has already read (`known_log_ends`) are used as they are, saving a request.
pub async fn initial_offsets(
    client: &KafkaClient,
    policy: InitPolicy,
    missing: &[TopicPartition],
    known_log_ends: Option<&BTreeMap<TopicPartition, i64>>,
) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
    let spec = match (policy, known_log_ends) {
        (InitPolicy::None, _) => return Ok(BTreeMap::new()),
        // Only the missing partitions: `known_log_ends` may be a whole scan's (shared by many groups).
        (InitPolicy::Latest, Some(ends)) => {
            return Ok(missing
                .iter()
                .filter_map(|tp| ends.get(tp).map(|end| (tp.clone(), *end)))
                .collect());
        }
        _ if missing.is_empty() => return Ok(BTreeMap::new()),
        (InitPolicy::Earliest, _) => OffsetSpec::Earliest,
        (InitPolicy::Latest, None) => OffsetSpec::Latest,
    };
    Ok(client
        .list_offsets(missing, spec, Isolation::ReadUncommitted)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.offset))
        .collect())
}

/// Resolves a ConsumerGroup's `offsetInit` for an inactive group: the starting offset of each partition of
/// `topics` that has no committed offset (nothing for policy `none`). Whether the group is inactive is the
/// caller's to check before committing.
pub async fn resolve_offset_init(
    client: &KafkaClient,
    policy: InitPolicy,
    topics: &[String],
    committed: &GroupOffsets,
) -> Result<BTreeMap<TopicPartition, i64>, ResolveError> {
    if policy == InitPolicy::None || topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let partitions = partitions_of_topics(client, topics).await?;
    let has: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
    let missing: Vec<TopicPartition> = partitions.iter().filter(|p| !has.contains(*p)).cloned().collect();
    let starts = initial_offsets(client, policy, &missing, None).await?;
    match plan_offset_init(policy, &partitions, &has, true, &starts) {
        OffsetInitDecision::NothingToDo => Ok(BTreeMap::new()),
        OffsetInitDecision::Commit(offsets) => Ok(offsets),
        OffsetInitDecision::StartUnknown(parts) => Err(ResolveError::Plan(format!(
            "the log bounds of {} are unknown (no leader?): try again later",
            parts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ))),
        // The group is passed in as inactive: planning shows what a commit would do.
        OffsetInitDecision::WaitForEmptyGroup(_) => Ok(BTreeMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{CommittedOffset, Subtopology};

    fn topology() -> StreamsTopology {
        StreamsTopology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["orders".into()],
                    repartition_sink_topics: vec!["app-by-customer-repartition".into()],
                    ..Default::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_source_topics: vec!["app-by-customer-repartition".into()],
                    changelog_topics: vec!["app-totals-changelog".into()],
                    ..Default::default()
                },
            ],
        }
    }

    fn committed(partitions: &[(&str, i32)]) -> GroupOffsets {
        partitions
            .iter()
            .map(|(t, p)| {
                (
                    TopicPartition::new(*t, *p),
                    CommittedOffset {
                        offset: 5,
                        leader_epoch: None,
                        metadata: String::new(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_streams_groups_default_scope_is_its_input_topics_committed_partitions() {
        let c = committed(&[
            ("orders", 0),
            ("orders", 1),
            ("app-by-customer-repartition", 0),
            ("gone-topic", 0),
        ]);
        let got = streams_inputs("app", &topology(), &c).expect("scope");
        assert_eq!(
            got,
            [TopicPartition::new("orders", 0), TopicPartition::new("orders", 1)]
        );
    }

    #[test]
    fn a_streams_group_without_input_offsets_has_nothing_to_reset() {
        let c = committed(&[("app-by-customer-repartition", 0)]);
        let err = streams_inputs("app", &topology(), &c).expect_err("nothing");
        assert!(err.to_string().contains("input topics (orders)"), "{err}");
        let uninitialized = StreamsTopology::default();
        let err = streams_inputs("app", &uninitialized, &c).expect_err("nothing");
        assert!(err.to_string().contains("not initialized"), "{err}");
    }

    #[test]
    fn listed_partitions_of_a_streams_group_must_have_committed_offsets() {
        let c = committed(&[("orders", 0), ("app-by-customer-repartition", 1)]);
        let ok = vec![
            TopicPartition::new("orders", 0),
            TopicPartition::new("app-by-customer-repartition", 1),
        ];
        assert_eq!(streams_listed("app", &topology(), ok.clone(), &c).expect("listed"), ok);
        let err = streams_listed("app", &topology(), vec![TopicPartition::new("orders", 1)], &c).expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("topic orders partition 1 is not part of streams group app"),
            "{err}"
        );
    }
}
