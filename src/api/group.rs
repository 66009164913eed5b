//! `ConsumerGroup`: one Kafka consumer group. Authoritative only for what it declares — initial offsets,
//! deletion, the retention guard (and, through other resources, resets and scaling); everything the group's
//! consumers do themselves, above all the offsets they commit, is observed and reported, never overwritten.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Kafka consumer group that the operator observes and manages.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafkagroups.dev",
    version = "v1alpha1",
    kind = "ConsumerGroup",
    namespaced,
    status = "ConsumerGroupStatus",
    shortname = "cg",
    category = "kafka",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Members","type":"integer","jsonPath":".status.members"}"#,
    printcolumn = r#"{"name":"Lag","type":"integer","description":"Records the group will still read (consumable lag)","jsonPath":".status.totalLag"}"#,
    printcolumn = r#"{"name":"Time Lag","type":"date","description":"Age of the oldest unconsumed record","jsonPath":".status.oldestUnconsumedRecord"}"#,
    printcolumn = r#"{"name":"Status","type":"string","description":"Burrow-style lag evaluation","jsonPath":".status.lagStatus"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","description":"The workload's replicas","jsonPath":".status.currentReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Replicas the scaling decision wants","jsonPath":".status.desiredReplicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","priority":1,"jsonPath":".spec.clusterRef.name"}"#,
    printcolumn = r#"{"name":"Group","type":"string","priority":1,"jsonPath":".status.groupId"}"#,
    printcolumn = r#"{"name":"Protocol","type":"string","priority":1,"jsonPath":".status.protocol"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.offsetInit) || self.offsetInit.policy == 'none' || size(self.topics) > 0 || (has(self.type) && self.type == 'share')").message("offsetInit needs spec.topics: list the topics whose partitions should get initial offsets"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'share' || !has(self.isolation)").message("isolation does not apply to a share group: its consumers read what the group config share.isolation.level says"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'share' || !has(self.scaling) || !self.scaling.capToLaggingPartitions").message("capToLaggingPartitions does not apply to a share group: its consumers share partitions, so replicas are capped by maxReplicas only"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'share' || !has(self.retentionGuard)").message("retentionGuard does not apply to a share group: its start offsets are kept by the share coordinator, not expired with offsets.retention.minutes"))]
#[x_kube(validation = Rule::new("has(self.groupId) == has(oldSelf.groupId) && (!has(self.groupId) || self.groupId == oldSelf.groupId)").message("groupId cannot change: create another ConsumerGroup to manage another Kafka group"))]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupSpec {
    /// The KafkaCluster (same namespace) the group lives on.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef cannot change: create another ConsumerGroup for a group on another cluster"))]
    pub cluster_ref: ClusterRef,

    /// The Kafka group id. Default: the ConsumerGroup's `metadata.name`. Cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 255").message("groupId must be 1 to 255 characters"))]
    #[schemars(length(max = 256))]
    pub group_id: Option<String>,

    /// The kind of Kafka group: `consumer` (consumers of either protocol, classic or KIP-848), `share` (a KIP-932
    /// share group: consumers share partitions, records are acknowledged one by one) or `streams` (a KIP-1071
    /// Kafka Streams application with `group.protocol=streams`). Default: detected from what Kafka reports.
    /// Declared, it wins: lag is measured and offsets are set the way that type needs even before the group
    /// exists, and a group of another type under this id is reported (`TypeMismatch`) instead of acted on.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub group_type: Option<DeclaredGroupType>,

    /// Topics the group consumes. Used by `offsetInit` and to report lag on partitions without a committed
    /// offset; leave empty to observe whatever the group commits.
    #[serde(default)]
    #[x_kube(validation = Rule::new(r"self.all(t, t.matches('^[A-Za-z0-9._-]{1,249}$'))").message("topic names are 1 to 249 characters of letters, digits, '.', '_' and '-'"))]
    // A set: the API server rejects a repeated topic with `Duplicate value: "<topic>"`.
    #[schemars(length(max = 1000), inner(length(max = 250)), extend("x-kubernetes-list-type" = "set"))]
    pub topics: Vec<String>,

    /// Where partitions of `topics` that have no committed offset start: the operator commits `earliest`
    /// or `latest` for them while the group is empty, so that no consumer's `auto.offset.reset` silently
    /// skips records (for example of partitions added to a topic later). `none` leaves them alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_init: Option<OffsetInit>,

    /// How much lag is acceptable: drives the `LagWithinBudget` condition and an Event when the budget is
    /// exceeded or met again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_budget: Option<LagBudgetSpec>,

    /// Scale the consumer workload on lag (anything with a `/scale` subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingSpec>,

    /// `Retain` (default) leaves the Kafka group when this resource is deleted; `Delete` deletes it (once it
    /// is empty: deletion waits, and says why, while consumers are still in the group).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Protects committed offsets of a group that stays empty (e.g. scaled to zero) from the broker's
    /// `offsets.retention.minutes`: keeps the last known offsets in status, warns before they expire and
    /// re-commits or restores them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_guard: Option<RetentionGuardSpec>,

    /// How the group's consumers read transactional topics (their `isolation.level`). `readCommitted`: lag
    /// counts only the records they will receive (up to the last stable offset, transaction markers and
    /// aborted transactions left out); `readUncommitted`: lag is log end − committed. Default: detected —
    /// `readCommitted` once the group's partitions were seen carrying transactional batches
    /// (`status.isolationSource` says how it was decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationLevel>,

    /// Group configs, as `kafka-configs --entity-type groups` sets them (Kafka's config resource GROUP), for
    /// example `consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`, `share.auto.offset.reset`,
    /// `share.record.lock.duration.ms`, `share.isolation.level`, `errors.deadletterqueue.topic.name`: whatever
    /// the cluster's Kafka version accepts. Applied with IncrementalAlterConfigs and read back every reconcile:
    /// a value changed or removed outside (e.g. with `kafka-configs`) is restored, with a Warning Event. A key
    /// removed from here is deleted from the group, but only keys this resource set (`status.configKeys`).
    /// Kafka checks values against the broker's `group.*.min/max` bounds; a config it refuses is reported in
    /// the `ConfigInSync` condition with Kafka's message and tried again only when the spec changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new(r"self.all(k, k.matches('^[a-z][a-z0-9._-]{0,127}$'))").message("config keys are Kafka group config names such as consumer.session.timeout.ms: lowercase letters, digits, '.', '_' and '-', at most 128 characters"))]
    #[x_kube(validation = Rule::new(r"self.all(k, !(k.endsWith('.ms') || k in ['share.delivery.count.limit', 'share.partition.max.record.locks', 'streams.num.standby.replicas', 'streams.num.warmup.replicas', 'streams.acceptable.recovery.lag']) || self[k].matches('^[0-9]{1,10}$'))").message("config values of numeric keys (every *.ms key, share.delivery.count.limit, share.partition.max.record.locks, streams.num.standby.replicas, streams.num.warmup.replicas, streams.acceptable.recovery.lag) must be whole numbers, e.g. \"45000\""))]
    #[x_kube(validation = Rule::new(r"!('consumer.session.timeout.ms' in self && 'consumer.heartbeat.interval.ms' in self) || !self['consumer.session.timeout.ms'].matches('^[0-9]{1,10}$') || !self['consumer.heartbeat.interval.ms'].matches('^[0-9]{1,10}$') || int(self['consumer.session.timeout.ms']) > int(self['consumer.heartbeat.interval.ms'])").message("consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms: a member that heartbeats less often than its session timeout is expelled from the group"))]
    #[x_kube(validation = Rule::new(r"!('share.session.timeout.ms' in self && 'share.heartbeat.interval.ms' in self) || !self['share.session.timeout.ms'].matches('^[0-9]{1,10}$') || !self['share.heartbeat.interval.ms'].matches('^[0-9]{1,10}$') || int(self['share.session.timeout.ms']) > int(self['share.heartbeat.interval.ms'])").message("share.session.timeout.ms must be greater than share.heartbeat.interval.ms: a member that heartbeats less often than its session timeout is expelled from the group"))]
    #[x_kube(validation = Rule::new(r"!('streams.session.timeout.ms' in self && 'streams.heartbeat.interval.ms' in self) || !self['streams.session.timeout.ms'].matches('^[0-9]{1,10}$') || !self['streams.heartbeat.interval.ms'].matches('^[0-9]{1,10}$') || int(self['streams.session.timeout.ms']) > int(self['streams.heartbeat.interval.ms'])").message("streams.session.timeout.ms must be greater than streams.heartbeat.interval.ms: a member that heartbeats less often than its session timeout is expelled from the group"))]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 1024}))]
    pub config: BTreeMap<String, String>,
}

/// `spec.type`: the kind of Kafka group a ConsumerGroup manages.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeclaredGroupType {
    Consumer,
    Share,
    Streams,
}

impl DeclaredGroupType {
    /// The name in `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeclaredGroupType::Consumer => "consumer",
            DeclaredGroupType::Share => "share",
            DeclaredGroupType::Streams => "streams",
        }
    }
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum IsolationLevel {
    ReadCommitted,
    ReadUncommitted,
}

/// How the isolation in `status.isolation` was decided.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationSource {
    /// From `spec.isolation`.
    Declared,
    /// `readCommitted`: the group's partitions carry transactional batches.
    Detected,
    /// `readUncommitted`: no transactional batch was seen on the group's partitions.
    Default,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LagBudgetSpec {
    /// Most messages of total lag that are acceptable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("maxMessages must not be negative"))]
    pub max_messages: Option<i64>,
    /// Oldest unconsumed record, in seconds, that is acceptable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("maxSeconds must not be negative"))]
    pub max_seconds: Option<i64>,
}

/// Lag-driven scaling of the workload that runs the group's consumers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.maxReplicas >= self.minReplicas").message("maxReplicas must be at least minReplicas"))]
#[x_kube(validation = Rule::new("has(self.lagPerReplica) || has(self.catchUpSeconds)").message("scaling needs lagPerReplica, catchUpSeconds, or both"))]
#[serde(rename_all = "camelCase")]
pub struct ScalingSpec {
    /// The workload (Deployment, StatefulSet, or any kind with `/scale`) in the same namespace.
    pub target_ref: WorkloadRef,
    /// Fewest replicas; 0 lets an idle group scale to zero (it wakes when lag exceeds `activationLag`).
    #[serde(default = "default_min_replicas")]
    #[x_kube(validation = Rule::new("self >= 0").message("minReplicas must not be negative"))]
    pub min_replicas: i32,
    /// Most replicas; also capped by the topics' partition count (more consumers would idle).
    #[x_kube(validation = Rule::new("self >= 1").message("maxReplicas must be at least 1"))]
    pub max_replicas: i32,
    /// One replica per this much lag (KEDA's target), used until consumption rates are measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("lagPerReplica must be positive"))]
    pub lag_per_replica: Option<i64>,
    /// Size the workload so that the backlog is cleared within this many seconds at the measured rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("catchUpSeconds must be positive"))]
    pub catch_up_seconds: Option<i64>,
    /// From zero, start consumers only when lag exceeds this. Default: 0.
    #[serde(default)]
    pub activation_lag: i64,
    /// Grow only up to the number of partitions that have lag.
    #[serde(default)]
    pub cap_to_lagging_partitions: bool,
    /// Scale down only after recommending fewer replicas for this long. Default: 300.
    #[serde(default = "default_stabilization")]
    #[x_kube(validation = Rule::new("self >= 0").message("scaleDownStabilizationSeconds must not be negative"))]
    pub scale_down_stabilization_seconds: i64,
    /// No decision for this long after a rebalance or a scale write (each scale step costs a rebalance).
    /// Default: 30.
    #[serde(default = "default_cooldown")]
    #[x_kube(validation = Rule::new("self >= 0").message("cooldownSeconds must not be negative"))]
    pub cooldown_seconds: i64,
}

fn default_min_replicas() -> i32 {
    1
}
fn default_stabilization() -> i64 {
    300
}
fn default_cooldown() -> i64 {
    30
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Default: `apps/v1`.
    #[serde(default = "default_workload_api_version")]
    pub api_version: String,
    /// `Deployment`, `StatefulSet`, … (any kind with a `/scale` subresource).
    pub kind: String,
    #[x_kube(validation = Rule::new("size(self) > 0").message("targetRef needs the workload's name"))]
    pub name: String,
}

fn default_workload_api_version() -> String {
    "apps/v1".to_owned()
}

/// A KafkaCluster in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// The KafkaCluster's name.
    #[x_kube(validation = Rule::new("size(self) > 0").message("clusterRef.name must name a KafkaCluster"))]
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OffsetInit {
    /// `earliest` (the log start), `latest` (the log end) or `none`.
    pub policy: OffsetInitPolicy,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OffsetInitPolicy {
    Earliest,
    Latest,
    None,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionGuardSpec {
    /// How long before the offsets would expire to warn (condition and Event), as a duration such as
    /// `30m`, `12h` or `2d`. Default: `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(r"self.matches('^[0-9]+(s|m|h|d)$')").message("warnBefore is a duration such as 30m, 12h or 2d"))]
    #[schemars(length(max = 16))]
    pub warn_before: Option<String>,
    /// The broker's `offsets.retention.minutes` as a duration (e.g. `7d`). Default: read from the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(r"self.matches('^[0-9]+(s|m|h|d)$')").message("offsetsRetention is a duration such as 60m or 7d"))]
    #[schemars(length(max = 16))]
    pub offsets_retention: Option<String>,
}

/// What the operator last observed of the group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupStatus {
    /// `Ready` (the group could be observed), `OffsetsInitialized`, `RetentionGuard`, `DeletionBlocked`,
    /// `ConfigInSync` (the group has the configs of `spec.config`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Kafka group id in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub group_id: Option<String>,
    /// `classic`, `consumer` (KIP-848) or `streams` (a Kafka Streams app's group, KIP-1071), once the group exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The coordinator's state: Empty, Stable, PreparingRebalance, … (`Dead` when the group does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Number of members.
    #[serde(default)]
    pub members: i32,
    /// The members, with their assigned partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_details: Vec<GroupMemberStatus>,
    /// Records the group will still read, summed over partitions with a committed offset: for a
    /// `readCommitted` group on transactional topics the consumable lag (transaction markers and aborted
    /// transactions left out), otherwise log end − committed. Drives `lagStatus`, the lag budget and scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_lag: Option<i64>,
    /// Sum over partitions with a committed offset of (log end − committed), as `kafka-consumer-groups` shows
    /// it (on transactional topics it also counts markers and aborted records, which no consumer receives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark_lag: Option<i64>,
    /// The isolation lag is measured for: `spec.isolation`, or detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationLevel>,
    /// How `isolation` was decided: Declared, Detected (transactional batches seen) or Default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation_source: Option<IsolationSource>,
    /// True when `totalLag` is an upper bound: a transactional partition's backlog was larger than what one
    /// scan reads of its batch headers (4 Fetches of 256 KiB), and every offset past that counts as a record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub total_lag_is_upper_bound: bool,
    /// Timestamp of the oldest unconsumed record over all partitions (absent when caught up): the time lag
    /// is now minus this, exact even while producers are idle. A time rather than an age, so that a steady
    /// group's status does not change (the age in seconds is in the metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unconsumed_record: Option<Time>,
    /// Burrow's evaluation of the group over the lag window: OK, WARN (lag growing), STALL (committing the same
    /// offset while lagging), STOP (no commits while lagging), REWIND (offsets moved back), ERR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_status: Option<String>,
    /// Replicas the scaling decision wants (with `spec.scaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// The workload's replicas as last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// Partitions of `spec.topics` without a committed offset.
    #[serde(default)]
    pub partitions_without_offsets: i32,
    /// The group config keys this resource set on the Kafka group (`spec.config`): a key removed from the spec
    /// is deleted from the group only when it is listed here, so keys others set are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub config_keys: Vec<String>,
    /// The retention guard's view, when `spec.retentionGuard` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_guard: Option<RetentionGuardStatus>,
    /// The OffsetResets (`groupRef` this group) applied to it, newest last, at most 10. Written by the reset
    /// controller with its own field manager; a reset re-created with a recorded name and spec is not applied
    /// again (`AlreadyApplied`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub reset_history: Vec<crate::api::ledger::AppliedReset>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GroupMemberStatus {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// `group.instance.id` of a static member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Assigned partitions as `topic-partition`.
    #[serde(default)]
    pub assignment: Vec<String>,
}

/// How the retention guard protects this group's offsets.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionProtection {
    /// Re-committing the same offsets restarts the expiry clock (groups that never had members, and
    /// consumer-protocol groups): the operator re-commits before they expire.
    Recommit,
    /// The clock of a classic group that had members runs from when it became empty and re-commits do not
    /// restart it: the operator restores the saved offsets as soon as the broker drops them.
    RestoreOnExpiry,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionGuardStatus {
    /// Which protection applies (none while the group has members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<RetentionProtection>,
    /// When the group was first seen empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_since: Option<Time>,
    /// When the broker would drop the offsets without protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The broker's offset retention in minutes, as used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_minutes: Option<i64>,
    /// The last committed offsets seen.
    #[serde(default)]
    pub saved_offsets: Vec<SavedOffset>,
    /// When the operator last re-committed or restored the offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_protected: Option<Time>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct SavedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl ConsumerGroup {
    /// The Kafka group id: `spec.groupId`, or the resource's name.
    pub fn group_id(&self) -> String {
        self.spec
            .group_id
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}
