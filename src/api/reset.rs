//! `OffsetReset`: a one-shot, Job-like request to move a consumer group's committed offsets, applied exactly
//! once, with the orchestration a reset needs (scale the consumers down, wait, commit, scale them back).
//! The spec cannot change after creation; a new reset is a new object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Moves a consumer group's committed offsets, once.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafkagroups.dev",
    version = "v1alpha1",
    kind = "OffsetReset",
    namespaced,
    status = "OffsetResetStatus",
    shortname = "ors",
    category = "kafka",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Group","type":"string","jsonPath":".status.groupId"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".status.target"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","priority":1,"jsonPath":".status.partitions"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("an OffsetReset cannot change once created: create a new OffsetReset"))]
#[x_kube(validation = Rule::new("has(self.groupRef) != (has(self.clusterRef) && has(self.groupId))").message("name the group either with groupRef (a ConsumerGroup) or with clusterRef and groupId, not both"))]
#[x_kube(validation = Rule::new("has(self.groupRef) || (has(self.clusterRef) == has(self.groupId))").message("clusterRef and groupId go together"))]
#[x_kube(validation = Rule::new("!has(self.strategy) || self.strategy != 'ScaleDown' || has(self.scaleTargetRef)").message("strategy ScaleDown needs scaleTargetRef: the workload (Deployment, StatefulSet, …) that runs the group's consumers"))]
#[x_kube(validation = Rule::new("!has(self.groupType) || self.groupType != 'share' || !has(self.to.shiftBy)").message("a share group's start offsets move to earliest, latest, offset, timestamp, duration, partitions or previousOf (what kafka-share-groups.sh --reset-offsets supports): shiftBy is for consumer and streams groups"))]
#[serde(rename_all = "camelCase")]
pub struct OffsetResetSpec {
    /// The ConsumerGroup whose offsets move (same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_ref: Option<LocalRef>,
    /// With `groupId`, instead of `groupRef`: the KafkaCluster (same namespace) of a group no ConsumerGroup
    /// manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<LocalRef>,
    /// With `clusterRef`: the Kafka group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("groupId must not be empty"))]
    pub group_id: Option<String>,
    /// The kind of group the reset is for: `consumer`, `share` or `streams` (see ConsumerGroup `spec.type`).
    /// Default: the ConsumerGroup's `spec.type` (with `groupRef`), else what Kafka reports. A share group's
    /// share-partition start offsets move (AlterShareGroupOffsets); `shiftBy` does not apply to them. A group
    /// of another type under the id fails the reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<crate::api::DeclaredGroupType>,
    /// Which partitions move. Default: every partition the group has a committed offset on (a share group:
    /// every partition it has a start offset on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub topics: Vec<TopicSelection>,
    /// Where the offsets move: exactly one target.
    pub to: ResetTo,
    /// `RequireInactive` (default): fail if the group has members. `ScaleDown`: scale `scaleTargetRef` to zero,
    /// wait for the group to empty, reset, and scale it back.
    #[serde(default)]
    pub strategy: ResetStrategy,
    /// The workload running the group's consumers, scaled through its `/scale` subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_ref: Option<ScaleTargetRef>,
    /// Plan only: resolve and record the plan, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// How long to wait for the group to become empty before failing (and restoring the workload).
    /// Default: 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 86400").message("timeoutSeconds must be between 1 and 86400 (one day)"))]
    pub timeout_seconds: Option<i64>,
    /// Delete the OffsetReset this long after it finished, like a Job. Default: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 31536000").message("ttlSecondsAfterFinished must be between 0 and 31536000 (one year)"))]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Commit even if the group's committed offsets moved while it had no members (consumers that use
    /// `assign()` commit into a group Kafka reports as Empty; by default the reset then fails, since they
    /// would overwrite the reset's offsets). Default: false.
    #[serde(default)]
    pub force: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    #[x_kube(validation = Rule::new("size(self) > 0").message("a reference needs a name"))]
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TopicSelection {
    /// The topic.
    #[x_kube(validation = Rule::new(r"self.matches('^[A-Za-z0-9._-]{1,249}$')").message("topic names are 1 to 249 characters of letters, digits, '.', '_' and '-'"))]
    #[schemars(length(max = 250))]
    pub name: String,
    /// Partitions of the topic. Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Partitions are numbered from 0 (a schema minimum: cheaper for the API server than a CEL loop).
    #[schemars(length(max = 10000), inner(range(min = 0)))]
    pub partitions: Vec<i32>,
}

/// Exactly one target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("[has(self.earliest), has(self.latest), has(self.offset), has(self.timestamp), has(self.duration), has(self.shiftBy), has(self.partitions), has(self.previousOf)].filter(x, x).size() == 1").message("spec.to needs exactly one target: earliest, latest, offset, timestamp, duration, shiftBy, partitions or previousOf"))]
#[serde(rename_all = "camelCase")]
pub struct ResetTo {
    /// The log start of every partition (`earliest: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<Empty>,
    /// The log end of every partition (`latest: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Empty>,
    /// This offset in every partition (clamped to each log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("offset must not be negative: use shiftBy to move back"))]
    pub offset: Option<i64>,
    /// The first record at or after this time (RFC 3339, e.g. `2026-11-25T08:00:00Z`); the log end where no
    /// record is that late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(r"self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$')").message("timestamp must be RFC 3339, e.g. 2026-11-25T08:00:00Z"))]
    pub timestamp: Option<String>,
    /// This long before the reset runs (`30m`, `12h`, `2d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(r"self.matches('^[0-9]+(s|m|h|d)$')").message("duration is a whole number and a unit, such as 30m, 12h or 2d"))]
    pub duration: Option<String>,
    /// Move each committed offset by N (negative to re-read), clamped to the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_by: Option<i64>,
    /// Explicit offsets per partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("partitions needs at least one topic, partition and offset"))]
    pub partitions: Option<Vec<PartitionOffset>>,
    /// Undo: restore the offsets that the named (succeeded) OffsetReset replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub previous_of: Option<String>,
}

/// `{}`: a target without parameters.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Empty {}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct PartitionOffset {
    #[schemars(length(max = 250))]
    pub topic: String,
    #[schemars(range(min = 0))]
    pub partition: i32,
    #[schemars(range(min = 0))]
    pub offset: i64,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResetStrategy {
    #[default]
    RequireInactive,
    ScaleDown,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// Default: `apps/v1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `Deployment`, `StatefulSet`, or any kind with a `/scale` subresource.
    pub kind: String,
    #[x_kube(validation = Rule::new("size(self) > 0").message("scaleTargetRef needs the workload's name"))]
    pub name: String,
}

fn default_api_version() -> String {
    "apps/v1".to_owned()
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResetPhase {
    #[default]
    Pending,
    Planned,
    ScalingDown,
    WaitingForInactive,
    Applying,
    Restoring,
    Succeeded,
    Failed,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OffsetResetStatus {
    #[serde(default)]
    pub phase: ResetPhase,
    /// `Complete` (True when Succeeded) and, on failure, `Failed` with the reason.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The target, in words (`earliest`, `shiftBy -100`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Partitions in the plan.
    #[serde(default)]
    pub partitions: i32,
    /// The plan as it looked when the reset was created (`previewTime`), while the consumers may still have
    /// been running: relative targets (`shiftBy`, `latest`, `duration`) are resolved again at Applying.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview: Vec<PlannedOffset>,
    /// When `preview` was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_time: Option<Time>,
    /// The applied plan, per partition: from, to, and whether the target was clamped to the log. Resolved at
    /// Applying, once the group has no members (a dry run: the preview, as of `previewTime`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlannedOffset>,
    /// When `plan` was resolved (at Applying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_time: Option<Time>,
    /// The committed offsets the applied plan replaced, read at Applying (what `previousOf` restores).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_offsets: Vec<PartitionOffset>,
    /// The workload as it was before ScaleDown touched it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRecord>,
    /// When the current phase began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_since: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the reset first found a transactional offset commit of its group pending (UNSTABLE_OFFSET_COMMIT)
    /// in the wait under way: the operator's `--unstable-offset-wait` counts from here, across operator
    /// restarts. Cleared once the offsets are read stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unstable_offsets_since: Option<Time>,
    /// A failure waiting for the workload to be restored before the reset ends as Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedOffset {
    pub topic: String,
    pub partition: i32,
    /// The committed offset before the reset (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    pub to: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<i64>,
    /// `LogStart` or `LogEnd` when the target lay outside the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamped: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRecord {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `spec.replicas` before the reset: what Restoring puts back.
    pub original_replicas: i32,
    /// The KEDA ScaledObject this reset paused, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_scaled_object: Option<String>,
}
