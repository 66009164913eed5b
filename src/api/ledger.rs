//! `ResetLedger`: the OffsetResets a namespace has applied, kept after the resets themselves are gone
//! (`ttlSecondsAfterFinished`, a GitOps prune), so that a reset re-created with the same name and spec — Argo CD
//! or Flux syncing a manifest again — is recognised and not applied a second time. Written by the operator
//! only: one object per namespace, named `offsetresets`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The applied OffsetResets of this namespace, oldest first.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafkagroups.dev",
    version = "v1alpha1",
    kind = "ResetLedger",
    namespaced,
    category = "kafka",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ResetLedgerSpec {
    /// At most 500: the oldest are dropped first.
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub entries: Vec<LedgerEntry>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// The OffsetReset's name.
    pub name: String,
    /// The applied OffsetReset's UID.
    pub uid: String,
    /// A hash of its spec: the same name with another spec is another reset.
    pub spec_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// When its offsets were committed.
    pub applied_at: Time,
}

/// One applied OffsetReset in a ConsumerGroup's `status.resetHistory`: the resets that named the group with
/// `groupRef`, newest last, so that a re-created one is recognised and a user sees what moved the offsets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppliedReset {
    /// The OffsetReset's name.
    pub name: String,
    /// The applied OffsetReset's UID.
    pub uid: String,
    /// A hash of its spec: the same name with another spec is another reset.
    pub spec_hash: String,
    /// When its offsets were committed.
    pub applied_at: Time,
    /// Its target in words (`earliest`, `shiftBy -100`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How many partitions it committed.
    #[serde(default)]
    pub partitions: i32,
    /// The offsets it committed, at most the first 50 partitions (`partitions` says how many there were).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub plan: Vec<AppliedOffset>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppliedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}
