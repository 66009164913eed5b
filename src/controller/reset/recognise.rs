//! Recognising a re-created OffsetReset: before a new reset does anything, the three records of applied resets
//! (`controller::ledger`) are asked, cheapest first, whether one of the same name and spec was applied before.

use super::act::Run;
use super::classify;
use crate::controller::Error;
use crate::controller::ledger::{recorded_in_kubernetes, spec_hash};
use crate::plan::reset_phase::{ErrorClass, FailReason};
use crate::plan::reset_record::applied_in_kafka;
use kafka_protocol::error::ResponseError;

/// When and where an earlier application of this reset was recorded, in words for the condition and Event.
pub(super) async fn applied_before_anywhere(run: &Run<'_>) -> Result<Option<String>, (ErrorClass, String)> {
    let recorded = recorded_in_kubernetes(&run.ctx.kube, &run.ns, &run.reset)
        .await
        .map_err(|e| {
            (
                ErrorClass::Transient,
                format!("cannot read the records of applied resets: {e}"),
            )
        })?;
    if recorded.is_some() {
        return Ok(recorded);
    }
    applied_in_kafka_group(run).await
}

/// The record in the group's commit metadata, which outlives the Kubernetes objects until the group commits
/// those partitions again. A share group's start offsets carry no metadata: nothing to find there.
async fn applied_in_kafka_group(run: &Run<'_>) -> Result<Option<String>, (ErrorClass, String)> {
    let target = super::observe::resolve_target(run).await?;
    let client = run
        .ctx
        .clients
        .get(&run.ctx.kube, &target.cluster, &run.ctx.config.client)
        .await
        .map_err(|e| (classify(&e, FailReason::ClusterNotFound), e.to_string()))?;
    let offsets = match client.group_offsets(&target.group_id).await {
        Ok(offsets) => offsets,
        // Kafka answers an OffsetFetch of a share or streams group id this way on some versions.
        Err(e) if e.code() == Some(ResponseError::GroupIdNotFound) => return Ok(None),
        Err(e) => {
            let e = Error::from(e);
            return Err((classify(&e, FailReason::InvalidPlan), e.to_string()));
        }
    };
    let uid = run.reset.metadata.uid.clone().unwrap_or_default();
    let name = run.reset.metadata.name.clone().unwrap_or_default();
    Ok(applied_in_kafka(&offsets, &name, &spec_hash(&run.reset.spec), &uid).map(|r| r.describe(&target.group_id)))
}
