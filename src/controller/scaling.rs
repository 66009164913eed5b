//! Per-group lag evaluation and lag-driven scaling, on top of the shared lag samples: a sliding window per
//! group (kept in memory; after a restart it refills within a few intervals), Burrow's evaluation, the lag
//! budget condition, and the scale decision written through the workload's `/scale`.

use super::Context;
use super::Error;
use super::claim::{ClaimView, WorkloadClaim};
use super::workload::Workload;
use crate::api::group::ScalingSpec;
use crate::api::{ConsumerGroup, ConsumerGroupStatus};
use crate::kafka::{GroupDescription, GroupOffsets, TopicPartition};
use crate::lag::{BudgetStatus, LagBudget, Sample, Window, check_budget};
use crate::plan::scale::{ScaleMemory, ScaleObservation, ScalePolicy, plan_scale};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use std::collections::BTreeMap;
use std::sync::Mutex;

pub const LAG_WITHIN_BUDGET: &str = "LagWithinBudget";
pub const SCALING: &str = "Scaling";
/// No commits for this long while lagging is Burrow's STOP.
const STOP_AFTER_MS: i64 = 5 * 60 * 1000;

/// What the operator remembers of a group between reconciles.
#[derive(Default)]
struct Memory {
    window: Window<TopicPartition>,
    last_sample_ms: i64,
    scale: ScaleMemory,
    was_rebalancing: bool,
    last_rebalance_ms: Option<i64>,
    last_scale_ms: Option<i64>,
}

#[derive(Default)]
pub struct GroupMemories {
    groups: Mutex<BTreeMap<String, Memory>>,
}

/// The latest lag sample of a group, as the evaluation needs it.
pub struct LagInput<'a> {
    pub description: &'a GroupDescription,
    pub offsets: &'a GroupOffsets,
    pub log_ends: &'a BTreeMap<TopicPartition, i64>,
    pub record_timestamps: &'a BTreeMap<TopicPartition, i64>,
    /// The lag of the partitions where it was measured rather than derived (`GroupSample::measured_lags`).
    pub measured: &'a BTreeMap<TopicPartition, crate::lag::ConsumableLag>,
    pub taken_at_ms: i64,
    /// Partitions of the declared topics.
    pub partitions: usize,
    /// What the group's type allows (share groups: replicas not capped by partitions).
    pub rules: super::group_type::TypeRules,
}

/// Events the caller publishes after writing status.
pub type Events = Vec<(EventType, &'static str, &'static str, String)>;

/// Evaluates lag and the budget, and scales when asked to. Updates `status` and `events`.
pub async fn evaluate(
    ctx: &Context,
    group: &ConsumerGroup,
    cluster_name: &str,
    input: LagInput<'_>,
    status: &mut ConsumerGroupStatus,
    events: &mut Events,
) -> Result<(), Error> {
    let key = format!("{}/{}", group.namespace().unwrap_or_default(), group.name_any());
    let generation = group.metadata.generation;
    let now_ms = input.taken_at_ms;
    // Update the window (once per sample) and read what it says.
    let (summary, rebalance_started, observation_memory) = {
        let mut memories = ctx.memories.groups.lock().unwrap_or_else(|p| p.into_inner());
        let memory = memories.entry(key.clone()).or_default();
        if input.taken_at_ms > memory.last_sample_ms {
            let samples: BTreeMap<TopicPartition, Sample> = input
                .offsets
                .iter()
                .filter_map(|(tp, c)| {
                    input.log_ends.get(tp).map(|end| {
                        (
                            tp.clone(),
                            Sample {
                                committed: Some(c.offset),
                                log_end: *end,
                                committed_record_ms: input.record_timestamps.get(tp).copied(),
                                consumable: input.measured.get(tp).map(|c| c.records),
                            },
                        )
                    })
                })
                .collect();
            memory.window.push(input.taken_at_ms, samples);
            memory.last_sample_ms = input.taken_at_ms;
        }
        let rebalancing = input.description.state.is_rebalancing();
        let started = rebalancing && !memory.was_rebalancing;
        if memory.was_rebalancing && !rebalancing {
            memory.last_rebalance_ms = Some(now_ms);
        }
        memory.was_rebalancing = rebalancing;
        (
            memory.window.summary(now_ms, STOP_AFTER_MS),
            started,
            (memory.scale.clone(), memory.last_rebalance_ms, memory.last_scale_ms),
        )
    };
    if rebalance_started {
        ctx.metrics.rebalanced(cluster_name, &group.group_id());
    }
    status.lag_status = Some(summary.status.as_str().to_owned());
    ctx.metrics
        .record_evaluation(cluster_name, &group.group_id(), summary.status as i64, None);

    // The lag budget.
    match &group.spec.lag_budget {
        None => status.conditions.retain(|c| c.type_ != LAG_WITHIN_BUDGET),
        Some(b) => {
            let budget = LagBudget {
                max_messages: b.max_messages,
                max_seconds: b.max_seconds,
            };
            let check = check_budget(&budget, summary.total_lag, summary.max_time_lag_ms.map(|ms| ms / 1000));
            let reason = match check.status {
                BudgetStatus::Within => "WithinBudget",
                BudgetStatus::Exceeded => "BudgetExceeded",
                BudgetStatus::Unknown => "LagUnknown",
            };
            let previous =
                crate::api::conditions::find(&status.conditions, LAG_WITHIN_BUDGET).map(|c| c.status.clone());
            match (previous.as_deref(), check.status) {
                (Some("True") | None, BudgetStatus::Exceeded) => events.push((
                    EventType::Warning,
                    "LagBudgetExceeded",
                    "EvaluateLag",
                    check.message.clone(),
                )),
                (Some("False"), BudgetStatus::Within) => {
                    events.push((EventType::Normal, "LagBudgetMet", "EvaluateLag", check.message.clone()))
                }
                _ => {}
            }
            crate::api::conditions::set_condition(
                &mut status.conditions,
                Condition {
                    type_: LAG_WITHIN_BUDGET.to_owned(),
                    status: check.status.condition_status().to_owned(),
                    reason: reason.to_owned(),
                    message: check.message,
                    observed_generation: generation,
                    last_transition_time: super::status::now(),
                },
            );
        }
    }

    // Scaling.
    let Some(scaling) = &group.spec.scaling else {
        status.conditions.retain(|c| c.type_ != SCALING);
        status.desired_replicas = None;
        status.current_replicas = None;
        return Ok(());
    };
    let ns = group.namespace().unwrap_or_default();
    let workload = Workload::new(
        &ctx.kube,
        &ns,
        &scaling.target_ref.api_version,
        &scaling.target_ref.kind,
        &scaling.target_ref.name,
    );
    if workload.has_foreign_hpa(&ctx.kube, &ns).await? {
        set_scaling(
            status,
            generation,
            false,
            "HorizontalPodAutoscalerConflict",
            format!(
                "a HorizontalPodAutoscaler also targets {} {}: remove it, or remove spec.scaling, so that one of them decides",
                workload.kind, workload.name
            ),
        );
        return Ok(());
    }
    // An OffsetReset holds the workload: it decides the replica count until it has restored it.
    let claim = WorkloadClaim::new(
        &ctx.kube,
        &ns,
        &scaling.target_ref.api_version,
        &scaling.target_ref.kind,
        &scaling.target_ref.name,
    );
    if let ClaimView::Held { name: holder, .. } = claim.view().await? {
        set_scaling(
            status,
            generation,
            false,
            "HeldByReset",
            format!(
                "OffsetReset {holder} holds {} {}: no scaling decision until it has restored the replicas",
                workload.kind, workload.name
            ),
        );
        // Resume from the restored count: forget recommendations made before, and wait one cooldown.
        let mut memories = ctx.memories.groups.lock().unwrap_or_else(|p| p.into_inner());
        let m = memories.entry(key).or_default();
        m.scale.recommendations.clear();
        m.last_scale_ms = Some(now_ms);
        return Ok(());
    }
    // Read with its resourceVersion: a write below fails instead of overwriting a reset's that came between.
    let (current, read_at) = match workload.replicas_at_version().await {
        Ok(r) => r,
        Err(e) => {
            set_scaling(
                status,
                generation,
                false,
                "WorkloadNotFound",
                format!("cannot read {} {}: {e}", workload.kind, workload.name),
            );
            return Ok(());
        }
    };
    let (scale_memory, last_rebalance_ms, last_scale_ms) = observation_memory;
    let observation = ScaleObservation {
        now_ms,
        current_replicas: current,
        // A share group's consumers share partitions: no cap by the partition count (0: none).
        partitions: if input.rules.replicas_capped_by_partitions {
            input.partitions as i32
        } else {
            0
        },
        lagging_partitions: summary.lagging_partitions as i32,
        total_lag: summary.total_lag,
        production_rate: summary.rates.production,
        consumption_rate: summary.rates.consumption,
        members: input.description.members.len() as i32,
        rebalancing: input.description.state.is_rebalancing(),
        last_rebalance_ms,
        last_scale_ms,
    };
    let (decision, memory) = plan_scale(&policy(scaling), &observation, &scale_memory);
    let mut actual = current;
    if decision.change {
        match workload.set_replicas_at_version(decision.desired, read_at).await {
            Ok(()) => {}
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => {
                // The workload changed since it was read (a reset took it, or someone scaled it): decide
                // again on the next sample.
                tracing::info!(workload = %workload.name, "the workload changed while scaling: deciding again");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        actual = decision.desired;
        events.push((
            EventType::Normal,
            "Scaled",
            "Scale",
            format!(
                "Scaled {} {} from {current} to {} replicas: {}",
                workload.kind, workload.name, decision.desired, decision.reason
            ),
        ));
    }
    {
        let mut memories = ctx.memories.groups.lock().unwrap_or_else(|p| p.into_inner());
        let m = memories.entry(key).or_default();
        m.scale = memory;
        if decision.change {
            m.last_scale_ms = Some(now_ms);
        }
    }
    status.desired_replicas = Some(decision.desired);
    status.current_replicas = Some(actual);
    ctx.metrics.record_evaluation(
        cluster_name,
        &group.group_id(),
        summary.status as i64,
        Some((decision.desired, actual)),
    );
    let reason = match decision.held {
        Some(h) => h.as_str(),
        None if decision.change => "Scaled",
        None => "Steady",
    };
    set_scaling(status, generation, true, reason, decision.reason);
    Ok(())
}

fn set_scaling(status: &mut ConsumerGroupStatus, generation: Option<i64>, ok: bool, reason: &str, message: String) {
    crate::api::conditions::set_condition(
        &mut status.conditions,
        crate::api::conditions::condition(SCALING, ok, reason, message, generation, super::status::now()),
    );
}

fn policy(s: &ScalingSpec) -> ScalePolicy {
    let cooldown_ms = s.cooldown_seconds * 1000;
    ScalePolicy {
        min_replicas: s.min_replicas,
        max_replicas: s.max_replicas,
        catch_up_seconds: s.catch_up_seconds,
        lag_per_replica: s.lag_per_replica,
        activation_lag: s.activation_lag,
        cap_to_lagging_partitions: s.cap_to_lagging_partitions,
        scale_down_stabilization_ms: s.scale_down_stabilization_seconds * 1000,
        rebalance_cooldown_ms: cooldown_ms,
        scale_cooldown_ms: cooldown_ms,
        tolerance: 0.1,
    }
}

/// Forget a group that is no longer managed.
pub fn forget(ctx: &Context, group: &ConsumerGroup) {
    let key = format!("{}/{}", group.namespace().unwrap_or_default(), group.name_any());
    ctx.memories
        .groups
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
}
