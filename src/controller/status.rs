//! Status writes: server-side apply of `/status` with the operator's field manager, only when the new status
//! differs from the stored one (a steady object causes no writes).

use super::{Error, FIELD_MANAGER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Applies `status` to `obj` unless it equals `current`. Returns whether it wrote.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, current: Option<&S>, status: &S) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

/// Now, truncated to whole seconds (what the API server stores), so that re-reading compares equal.
pub fn now() -> Time {
    time_from_ms(k8s_openapi::jiff::Timestamp::now().as_millisecond())
}

pub fn time_from_ms(ms: i64) -> Time {
    let seconds = ms.div_euclid(1000);
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

pub fn ms_from_time(time: &Time) -> i64 {
    time.0.as_millisecond()
}

/// Applies a ConsumerGroup's status as the group reconcilers do, leaving `resetHistory` out of both the
/// comparison and the patch: the history belongs to the reset controller, which applies it with a field
/// manager of its own (`ledger::HISTORY_FIELD_MANAGER`). A status read before a reset recorded itself can
/// therefore never erase the entry, and the entry alone never makes the group reconciler write.
pub async fn apply_group_status(
    api: &Api<crate::api::ConsumerGroup>,
    group: &crate::api::ConsumerGroup,
    status: &crate::api::ConsumerGroupStatus,
) -> Result<bool, Error> {
    let without_history = |s: &crate::api::ConsumerGroupStatus| crate::api::ConsumerGroupStatus {
        reset_history: Vec::new(),
        ..s.clone()
    };
    let current = group.status.as_ref().map(without_history);
    apply_status(api, group, current.as_ref(), &without_history(status)).await
}
