//! Resolving a reset's target into a plan (`controller::resolve`, shared with the command line), and the
//! offsets an earlier reset replaced, for `previousOf`.

use super::act::Run;
use super::observe::KafkaView;
use crate::api::OffsetReset;
use crate::api::reset::{PartitionOffset, PlannedOffset, ResetPhase};
use crate::controller::resolve::{ResetRequest, ResolveError, resolve_reset, streams_state_note};
use crate::kafka::TopicPartition;
use crate::plan::reset::Clamp;
use crate::plan::reset_phase::{ErrorClass, FailReason};
use kube::api::Api;
use std::collections::BTreeMap;

/// A resolved plan: per partition, the offsets it replaces (all the group's committed offsets), and the
/// target in words.
pub(super) struct Plan {
    pub partitions: Vec<PlannedOffset>,
    pub previous: Vec<PartitionOffset>,
    pub target: String,
    /// For a streams group: what the reset leaves as it is (`streams_state_note`).
    pub streams_note: Option<String>,
}

/// Resolves the target against the cluster, from the group's committed offsets in `view`.
pub(super) async fn make_plan(run: &Run<'_>, view: &KafkaView) -> Result<Plan, (ErrorClass, String)> {
    let spec = &run.reset.spec;
    let previous_of = match &spec.to.previous_of {
        Some(name) => Some(previous_offsets_of(run, name, &view.target.group_id).await?),
        None => None,
    };
    let request = ResetRequest {
        group_id: &view.target.group_id,
        topics: &spec.topics,
        to: &spec.to,
        declared_topics: &view.target.declared_topics,
        isolation: view.target.isolation,
        previous_of,
        streams: view.description.streams.as_ref(),
    };
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let resolved = resolve_reset(&view.client, &request, &view.committed, now_ms)
        .await
        .map_err(|e| {
            let class = match &e {
                ResolveError::Kafka(k) => {
                    super::classify(&crate::controller::Error::Kafka(k.clone()), FailReason::InvalidPlan)
                }
                _ => ErrorClass::Permanent(FailReason::InvalidPlan),
            };
            (class, e.to_string())
        })?;
    let partitions = resolved
        .partitions
        .iter()
        .map(|p| PlannedOffset {
            topic: p.partition.topic.to_string(),
            partition: p.partition.partition,
            from: p.from,
            to: p.to,
            delta: p.delta(),
            clamped: p.clamped.map(|c| match c {
                Clamp::ToLogStart => "LogStart".to_owned(),
                Clamp::ToLogEnd => "LogEnd".to_owned(),
            }),
        })
        .collect();
    let previous = view
        .committed
        .iter()
        .map(|(tp, c)| PartitionOffset {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            offset: c.offset,
        })
        .collect();
    Ok(Plan {
        partitions,
        previous,
        target: resolved.target,
        streams_note: view
            .description
            .streams
            .as_ref()
            .map(|t| streams_state_note(&view.target.group_id, t)),
    })
}

/// The offsets the succeeded OffsetReset `name` replaced in `group_id`.
async fn previous_offsets_of(
    run: &Run<'_>,
    name: &str,
    group_id: &str,
) -> Result<BTreeMap<TopicPartition, i64>, (ErrorClass, String)> {
    let invalid = |text: String| (ErrorClass::Permanent(FailReason::InvalidPlan), text);
    let api: Api<OffsetReset> = Api::namespaced(run.ctx.kube.clone(), &run.ns);
    let earlier = api
        .get_opt(name)
        .await
        .map_err(|e| {
            let e = crate::controller::Error::from(e);
            (super::classify(&e, FailReason::InvalidPlan), e.to_string())
        })?
        .ok_or_else(|| invalid(format!("OffsetReset {name} (previousOf) does not exist")))?;
    let status = earlier.status.unwrap_or_default();
    if status.phase != ResetPhase::Succeeded {
        return Err(invalid(format!(
            "OffsetReset {name} did not succeed, so there is nothing to undo"
        )));
    }
    if status.group_id.as_deref() != Some(group_id) {
        return Err(invalid(format!(
            "OffsetReset {name} reset group {:?}, not {group_id}",
            status.group_id
        )));
    }
    if status.previous_offsets.is_empty() {
        return Err(invalid(format!(
            "group {group_id} had no committed offsets before OffsetReset {name}"
        )));
    }
    Ok(status
        .previous_offsets
        .iter()
        .map(|p| (TopicPartition::new(&p.topic, p.partition), p.offset))
        .collect())
}
