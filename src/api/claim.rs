//! `WorkloadClaim`: which OffsetReset owns a workload's replica count right now. Written by the operator
//! only (one object per workload, created by the first holder, deleted when it lets go); the object's name is
//! unique per workload, so creating it is the mutual exclusion. Its own resource rather than a Lease or an
//! annotation: the operator needs no write access to Leases or to the workloads themselves.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Held by one OffsetReset while it may scale the workload; the ConsumerGroup lag scaler and other resets
/// leave the workload alone meanwhile.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafkagroups.dev",
    version = "v1alpha1",
    kind = "WorkloadClaim",
    namespaced,
    shortname = "wlc",
    category = "kafka",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.workload.kind"}"#,
    printcolumn = r#"{"name":"Workload","type":"string","jsonPath":".spec.workload.name"}"#,
    printcolumn = r#"{"name":"Holder","type":"string","jsonPath":".spec.holder.name"}"#,
    printcolumn = r#"{"name":"Original","type":"integer","jsonPath":".spec.originalReplicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadClaimSpec {
    /// The claimed workload (same namespace).
    pub workload: ClaimedWorkload,
    /// The OffsetReset that holds it.
    pub holder: ClaimHolder,
    /// The workload's replica count before the first holder touched it: what every holder restores.
    pub original_replicas: i32,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedWorkload {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimHolder {
    /// The OffsetReset's name.
    pub name: String,
    /// The OffsetReset's UID (a re-created reset of the same name is another holder).
    pub uid: String,
}
