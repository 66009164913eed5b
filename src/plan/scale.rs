//! The scale decision: how many replicas the consumer workload should run, from the group's lag and rates.
//! Up at once, down only after a stabilization window (like the HPA), never across a rebalance, capped by partitions.

/// `spec.scaling`, resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScalePolicy {
    /// May be 0: the workload then scales to zero when the group is caught up and nothing is produced.
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// Size the workload to clear the backlog within this time, once a per-replica rate is known.
    pub catch_up_seconds: Option<i64>,
    /// KEDA's target, one replica per this much lag: used while no rate is known, or alone.
    pub lag_per_replica: Option<i64>,
    /// From zero, start a replica only above this lag (KEDA's activation threshold).
    pub activation_lag: i64,
    /// Grow no further than the number of partitions that have lag: others would get nothing to catch up.
    pub cap_to_lagging_partitions: bool,
    pub scale_down_stabilization_ms: i64,
    /// Longer than the lag window, so that rates measured across a rebalance's pause are not trusted.
    pub rebalance_cooldown_ms: i64,
    /// Likewise after a write of the replica count: new members join and rebalance.
    pub scale_cooldown_ms: i64,
    /// Like the HPA's (0.1): a need within this fraction of the current count changes nothing, so that
    /// measurement noise does not flap the workload.
    pub tolerance: f64,
}

/// What the controller observed for this decision.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleObservation {
    pub now_ms: i64,
    /// The workload's `spec.replicas`.
    pub current_replicas: i32,
    pub partitions: i32,
    pub lagging_partitions: i32,
    pub total_lag: i64,
    /// Messages per second, over the lag window; None until it has two samples.
    pub production_rate: Option<f64>,
    pub consumption_rate: Option<f64>,
    pub members: i32,
    /// PreparingRebalance / CompletingRebalance (classic) or Assigning / Reconciling (consumer protocol).
    pub rebalancing: bool,
    /// When the last rebalance ended.
    pub last_rebalance_ms: Option<i64>,
    /// When the operator last wrote the replica count.
    pub last_scale_ms: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recommendation {
    pub at_ms: i64,
    pub replicas: i32,
}

/// What the planner needs from its earlier decisions; the caller stores what each decision returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaleMemory {
    /// Changes of the recommendation, oldest first; each is in effect until the next.
    pub recommendations: Vec<Recommendation>,
    /// Messages per second one replica consumed when last seen busy.
    pub per_replica_rate: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    Rebalancing,
    RebalanceCooldown,
    ScaleCooldown,
    /// A scale-down waits until fewer replicas have been recommended for the whole window.
    Stabilizing,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Rebalancing => "Rebalancing",
            HoldReason::RebalanceCooldown => "RebalanceCooldown",
            HoldReason::ScaleCooldown => "ScaleCooldown",
            HoldReason::Stabilizing => "ScaleDownStabilization",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleDecision {
    pub desired: i32,
    /// Whether `desired` differs from the current count: write only then.
    pub change: bool,
    pub reason: String,
    pub held: Option<HoldReason>,
}

/// Decides the replica count and returns the memory to store for the next decision.
pub fn plan_scale(p: &ScalePolicy, o: &ScaleObservation, memory: &ScaleMemory) -> (ScaleDecision, ScaleMemory) {
    let current = o.current_replicas;
    if let Some((held, reason)) = hold(p, o) {
        let decision = ScaleDecision {
            desired: current,
            change: false,
            reason,
            held: Some(held),
        };
        return (decision, memory.clone());
    }
    let per_replica_rate = busy_rate(p, o).or(memory.per_replica_rate);
    let (recommended, mut reason) = recommend(p, o, per_replica_rate);
    let recommendations = remember(
        &memory.recommendations,
        o.now_ms,
        recommended,
        p.scale_down_stabilization_ms,
    );

    let mut held = None;
    let mut desired = recommended;
    if recommended < current {
        let window_start = o.now_ms - p.scale_down_stabilization_ms;
        let covered = recommendations.first().is_some_and(|r| r.at_ms <= window_start);
        let highest = recommendations.iter().map(|r| r.replicas).max().unwrap_or(current);
        desired = if covered { highest.min(current) } else { current };
        if desired == current {
            held = Some(HoldReason::Stabilizing);
            let seconds = p.scale_down_stabilization_ms / 1000;
            reason.push_str(&format!("; scale-down waits for {seconds} s of lower recommendations"));
        }
    }
    let desired = bound(p, o, desired, &mut reason);
    let change = desired != current;
    let decision = ScaleDecision {
        desired,
        change,
        reason,
        held: held.filter(|_| !change),
    };
    (
        decision,
        ScaleMemory {
            recommendations,
            per_replica_rate,
        },
    )
}

/// No decision while the group rebalances or just after: members and rates are in flux.
fn hold(p: &ScalePolicy, o: &ScaleObservation) -> Option<(HoldReason, String)> {
    let ago = |t: Option<i64>| t.map(|t| o.now_ms - t);
    if o.rebalancing {
        return Some((HoldReason::Rebalancing, "the group is rebalancing".to_string()));
    }
    if let Some(ms) = ago(o.last_rebalance_ms).filter(|&ms| ms < p.rebalance_cooldown_ms) {
        let reason = format!(
            "the group rebalanced {} s ago; waiting {} s before scaling",
            ms / 1000,
            p.rebalance_cooldown_ms / 1000
        );
        return Some((HoldReason::RebalanceCooldown, reason));
    }
    if let Some(ms) = ago(o.last_scale_ms).filter(|&ms| ms < p.scale_cooldown_ms) {
        let reason = format!(
            "scaled {} s ago; waiting {} s before scaling again",
            ms / 1000,
            p.scale_cooldown_ms / 1000
        );
        return Some((HoldReason::ScaleCooldown, reason));
    }
    None
}

/// What one replica consumes at full speed. Only a busy group shows it: one whose backlog grows (it cannot
/// keep up) or shrinks (it drains at full speed). A group that keeps up consumes what is produced, whatever
/// it could do.
fn busy_rate(p: &ScalePolicy, o: &ScaleObservation) -> Option<f64> {
    let (consumed, produced) = (o.consumption_rate?, o.production_rate?);
    let busy = o.total_lag > 0
        && o.members > 0
        && o.current_replicas > 0
        && consumed > 0.0
        && (consumed - produced).abs() > p.tolerance * consumed.max(produced);
    busy.then(|| consumed / f64::from(o.current_replicas))
}

/// The replicas the lag calls for now, before stabilization and bounds, and why.
fn recommend(p: &ScalePolicy, o: &ScaleObservation, per_replica_rate: Option<f64>) -> (i32, String) {
    let (lag, current) = (o.total_lag, o.current_replicas);
    if current == 0 && lag <= p.activation_lag {
        return (
            0,
            format!(
                "lag {lag} within the activation threshold {}: staying at zero",
                p.activation_lag
            ),
        );
    }
    if lag == 0 && o.production_rate.is_some_and(|r| r <= 0.0) {
        return (0, "no lag and nothing produced: no replica needed".to_string());
    }
    let catch_up = p.catch_up_seconds.filter(|&t| t > 0);
    let (need, basis) = match (catch_up, per_replica_rate.filter(|&r| r > 0.0), o.production_rate) {
        (Some(t), Some(rate), Some(produced)) => (
            (produced + lag as f64 / t as f64) / rate,
            Basis::Rate {
                rate,
                produced,
                seconds: t,
            },
        ),
        _ => match p.lag_per_replica.filter(|&l| l > 0) {
            Some(per) => (lag as f64 / per as f64, Basis::LagPerReplica(per)),
            None => (f64::from(current.max(1)), Basis::Nothing),
        },
    };
    let within_tolerance = current > 0 && (need / f64::from(current) - 1.0).abs() <= p.tolerance;
    let replicas = if within_tolerance { current } else { need.ceil() as i32 };
    let mut reason = match basis {
        Basis::Rate {
            rate,
            produced,
            seconds,
        } => format!(
            "lag {lag} over {} at {rate:.0} msg/s each, {produced:.0} msg/s produced: {} clear it in {seconds} s",
            count(current),
            count(replicas)
        ),
        Basis::LagPerReplica(per) => format!("lag {lag} at {per} per replica: {}", count(replicas)),
        Basis::Nothing => {
            let verb = if current == 0 { "starting" } else { "keeping" };
            format!(
                "no consumption rate measured yet and no lagPerReplica: {verb} {}",
                count(replicas)
            )
        }
    };
    if within_tolerance && need.ceil() as i32 != current {
        reason.push_str(&format!(" (within the {:.0}% tolerance)", p.tolerance * 100.0));
    }
    if replicas < 1 {
        // Messages are (or may be) produced: zero replicas would let lag build until the activation threshold.
        reason.push_str("; at least 1 replica until production is seen idle");
        return (1, reason);
    }
    (replicas, reason)
}

enum Basis {
    Rate { rate: f64, produced: f64, seconds: i64 },
    LagPerReplica(i64),
    Nothing,
}

/// Adds the recommendation when it changed, and forgets what is older than the window except the one in
/// effect at its start: that one tells whether fewer replicas have been recommended for the whole window.
fn remember(history: &[Recommendation], now_ms: i64, replicas: i32, window_ms: i64) -> Vec<Recommendation> {
    // Entries from the future (a clock that stepped back) would hold the window open forever.
    let mut kept: Vec<Recommendation> = history.iter().copied().filter(|r| r.at_ms <= now_ms).collect();
    if kept.last().is_none_or(|r| r.replicas != replicas) {
        kept.push(Recommendation {
            at_ms: now_ms,
            replicas,
        });
    }
    let first = kept.iter().rposition(|r| r.at_ms <= now_ms - window_ms).unwrap_or(0);
    kept.split_off(first)
}

/// Growth limited to the lagging partitions (if asked), then minReplicas, maxReplicas and the partition count,
/// in that order: replicas beyond the partitions would sit idle, so the partition count wins.
fn bound(p: &ScalePolicy, o: &ScaleObservation, desired: i32, reason: &mut String) -> i32 {
    let mut d = desired;
    let lagging_cap = o.lagging_partitions.max(o.current_replicas);
    if p.cap_to_lagging_partitions && d > lagging_cap {
        d = lagging_cap;
        reason.push_str(&format!("; capped at {d}: {} partitions lag", o.lagging_partitions));
    }
    if d < p.min_replicas {
        d = p.min_replicas;
        reason.push_str(&format!("; raised to minReplicas {d}"));
    }
    if d > p.max_replicas {
        d = p.max_replicas;
        reason.push_str(&format!("; capped at maxReplicas {d}"));
    }
    if o.partitions > 0 && d > o.partitions {
        d = o.partitions;
        reason.push_str(&format!("; capped at {d} partitions"));
    }
    d
}

fn count(replicas: i32) -> String {
    if replicas == 1 {
        "1 replica".to_string()
    } else {
        format!("{replicas} replicas")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1000;
    const WINDOW: i64 = 300 * SEC;

    fn policy() -> ScalePolicy {
        ScalePolicy {
            min_replicas: 0,
            max_replicas: 100,
            catch_up_seconds: Some(60),
            lag_per_replica: Some(1000),
            activation_lag: 100,
            cap_to_lagging_partitions: false,
            scale_down_stabilization_ms: WINDOW,
            rebalance_cooldown_ms: 120 * SEC,
            scale_cooldown_ms: 60 * SEC,
            tolerance: 0.1,
        }
    }

    /// 3 replicas on 48 partitions at t=1000 s, nothing rebalanced or scaled recently, no rates yet.
    fn obs(current: i32, lag: i64) -> ScaleObservation {
        ScaleObservation {
            now_ms: 1000 * SEC,
            current_replicas: current,
            partitions: 48,
            lagging_partitions: 48,
            total_lag: lag,
            production_rate: None,
            consumption_rate: None,
            members: current,
            rebalancing: false,
            last_rebalance_ms: None,
            last_scale_ms: None,
        }
    }

    fn decide(p: &ScalePolicy, o: &ScaleObservation) -> ScaleDecision {
        plan_scale(p, o, &ScaleMemory::default()).0
    }

    #[test]
    fn rates_size_the_workload_to_clear_the_lag_in_the_catch_up_time() {
        let mut o = obs(3, 5000);
        o.consumption_rate = Some(2400.0);
        o.production_rate = Some(3500.0);
        let (d, memory) = plan_scale(&policy(), &o, &ScaleMemory::default());
        // (3500 + 5000 / 60) / 800 = 4.48
        assert_eq!((d.desired, d.change, d.held), (5, true, None));
        assert_eq!(
            d.reason,
            "lag 5000 over 3 replicas at 800 msg/s each, 3500 msg/s produced: 5 replicas clear it in 60 s"
        );
        assert_eq!(memory.per_replica_rate, Some(800.0));
    }

    #[test]
    fn the_per_replica_rate_is_remembered_from_the_last_busy_period() {
        let mut o = obs(3, 60);
        o.consumption_rate = Some(2000.0);
        o.production_rate = Some(2000.0);
        let memory = ScaleMemory {
            recommendations: vec![],
            per_replica_rate: Some(500.0),
        };
        let (d, next) = plan_scale(&policy(), &o, &memory);
        // Keeping up says nothing of capacity, so the remembered rate sizes it: (2000 + 60 / 60) / 500 = 4.002.
        assert_eq!(d.desired, 5);
        assert!(d.reason.contains("at 500 msg/s each"), "{}", d.reason);
        assert_eq!(next.per_replica_rate, Some(500.0));
    }

    #[test]
    fn a_draining_group_measures_its_capacity_and_recommends_fewer() {
        let mut o = obs(6, 2000);
        o.consumption_rate = Some(4800.0);
        o.production_rate = Some(1000.0);
        let (d, memory) = plan_scale(&policy(), &o, &ScaleMemory::default());
        // (1000 + 2000 / 60) / 800 = 1.29: 2 replicas once the window agrees.
        assert_eq!(memory.per_replica_rate, Some(800.0));
        assert_eq!(
            memory.recommendations,
            vec![Recommendation {
                at_ms: o.now_ms,
                replicas: 2
            }]
        );
        assert_eq!((d.desired, d.held), (6, Some(HoldReason::Stabilizing)));
    }

    #[test]
    fn lag_per_replica_is_used_until_a_rate_is_known() {
        let d = decide(&policy(), &obs(2, 4500));
        assert_eq!((d.desired, d.change), (5, true));
        assert_eq!(d.reason, "lag 4500 at 1000 per replica: 5 replicas");
    }

    #[test]
    fn without_a_rate_or_lag_per_replica_the_count_is_kept() {
        let mut p = policy();
        p.lag_per_replica = None;
        let d = decide(&p, &obs(3, 4500));
        assert_eq!((d.desired, d.change), (3, false));
        assert_eq!(
            d.reason,
            "no consumption rate measured yet and no lagPerReplica: keeping 3 replicas"
        );
    }

    #[test]
    fn a_need_within_the_tolerance_changes_nothing() {
        let d = decide(&policy(), &obs(3, 3200));
        assert_eq!((d.desired, d.change), (3, false));
        assert!(d.reason.ends_with("(within the 10% tolerance)"), "{}", d.reason);
    }

    #[test]
    fn replicas_are_capped_at_the_partition_count() {
        let mut o = obs(3, 50_000);
        o.partitions = 12;
        let d = decide(&policy(), &o);
        assert_eq!(d.desired, 12);
        assert!(d.reason.ends_with("; capped at 12 partitions"), "{}", d.reason);
    }

    #[test]
    fn growth_is_capped_at_the_lagging_partitions_when_asked() {
        let mut p = policy();
        p.cap_to_lagging_partitions = true;
        let mut o = obs(2, 50_000);
        o.lagging_partitions = 4;
        let d = decide(&p, &o);
        assert_eq!(d.desired, 4);
        assert!(d.reason.ends_with("; capped at 4: 4 partitions lag"), "{}", d.reason);
        // The cap limits growth only: it never removes replicas that are there.
        o.current_replicas = 6;
        let d = decide(&p, &o);
        assert_eq!((d.desired, d.change), (6, false));
    }

    #[test]
    fn min_and_max_clamp_the_recommendation() {
        // (min, max, current, lag, desired)
        let cases = [
            (2, 10, 2, 500, 2),
            (2, 10, 3, 50_000, 10),
            (0, 10, 3, 50_000, 10),
            (5, 10, 5, 1500, 5),
        ];
        for (min, max, current, lag, desired) in cases {
            let mut p = policy();
            (p.min_replicas, p.max_replicas) = (min, max);
            p.scale_down_stabilization_ms = 0;
            assert_eq!(
                decide(&p, &obs(current, lag)).desired,
                desired,
                "{min}..{max} at lag {lag}"
            );
        }
    }

    #[test]
    fn the_partition_cap_wins_over_min_replicas() {
        let mut p = policy();
        p.min_replicas = 8;
        let mut o = obs(3, 0);
        o.partitions = 6;
        let d = decide(&p, &o);
        assert_eq!(d.desired, 6);
        assert!(
            d.reason.ends_with("; raised to minReplicas 8; capped at 6 partitions"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn scale_up_is_immediate_and_scale_down_waits_for_the_window() {
        let p = policy();
        let mut memory = ScaleMemory::default();
        let mut step = |t: i64, current: i32, lag: i64| {
            let mut o = obs(current, lag);
            o.now_ms = t;
            let (d, next) = plan_scale(&p, &o, &memory);
            memory = next;
            (d.desired, d.held)
        };
        assert_eq!(step(0, 2, 5000), (5, None), "up at once");
        assert_eq!(step(10 * SEC, 5, 1500), (5, Some(HoldReason::Stabilizing)));
        assert_eq!(step(200 * SEC, 5, 1500), (5, Some(HoldReason::Stabilizing)));
        assert_eq!(step(290 * SEC, 5, 900), (5, Some(HoldReason::Stabilizing)));
        // 5 was recommended until t=10 s: at t=310 s the window holds only 2 and 1.
        assert_eq!(
            step(310 * SEC, 5, 900),
            (2, None),
            "down to the window's highest recommendation"
        );
        // 1 has been recommended since t=290 s.
        assert_eq!(step(580 * SEC, 2, 900), (2, Some(HoldReason::Stabilizing)));
        assert_eq!(step(590 * SEC, 2, 900), (1, None));
    }

    #[test]
    fn a_fresh_start_does_not_scale_down_before_a_full_window() {
        let d = decide(&policy(), &obs(5, 900));
        assert_eq!((d.desired, d.change, d.held), (5, false, Some(HoldReason::Stabilizing)));
        assert_eq!(
            d.reason,
            "lag 900 at 1000 per replica: 1 replica; scale-down waits for 300 s of lower recommendations"
        );
    }

    #[test]
    fn the_history_keeps_the_window_and_the_recommendation_in_effect_at_its_start() {
        let r = |at_ms, replicas| Recommendation { at_ms, replicas };
        let history = vec![r(0, 7), r(100 * SEC, 5), r(500 * SEC, 4), r(900 * SEC, 3)];
        let kept = remember(&history, 1000 * SEC, 3, WINDOW);
        assert_eq!(kept, vec![r(500 * SEC, 4), r(900 * SEC, 3)]);
        let kept = remember(&history, 1000 * SEC, 2, WINDOW);
        assert_eq!(kept, vec![r(500 * SEC, 4), r(900 * SEC, 3), r(1000 * SEC, 2)]);
    }

    #[test]
    fn zero_scales_to_one_above_the_activation_lag() {
        let d = decide(&policy(), &obs(0, 100));
        assert_eq!((d.desired, d.change), (0, false));
        assert_eq!(d.reason, "lag 100 within the activation threshold 100: staying at zero");
        let d = decide(&policy(), &obs(0, 150));
        assert_eq!((d.desired, d.change), (1, true));
        let mut p = policy();
        p.lag_per_replica = None;
        let d = decide(&p, &obs(0, 150));
        assert_eq!((d.desired, d.change), (1, true));
        assert_eq!(
            d.reason,
            "no consumption rate measured yet and no lagPerReplica: starting 1 replica"
        );
    }

    #[test]
    fn one_scales_to_zero_when_idle_for_the_whole_window() {
        let p = policy();
        let mut o = obs(1, 0);
        o.production_rate = Some(0.0);
        o.now_ms = 0;
        let (d, memory) = plan_scale(&p, &o, &ScaleMemory::default());
        assert_eq!((d.desired, d.held), (1, Some(HoldReason::Stabilizing)));
        o.now_ms = WINDOW;
        let (d, _) = plan_scale(&p, &o, &memory);
        assert_eq!((d.desired, d.change), (0, true));
        assert_eq!(d.reason, "no lag and nothing produced: no replica needed");
    }

    #[test]
    fn one_replica_stays_while_messages_are_produced_or_production_is_unknown() {
        let mut p = policy();
        p.scale_down_stabilization_ms = 0;
        for production in [Some(5.0), None] {
            let mut o = obs(1, 0);
            o.production_rate = production;
            let d = decide(&p, &o);
            assert_eq!((d.desired, d.change), (1, false), "{production:?}");
            assert!(
                d.reason.ends_with("; at least 1 replica until production is seen idle"),
                "{}",
                d.reason
            );
        }
    }

    #[test]
    fn nothing_is_decided_during_a_rebalance_or_a_cooldown() {
        let now = 1000 * SEC;
        // (rebalancing, last rebalance, last scale, hold)
        let cases = [
            (true, None, None, Some(HoldReason::Rebalancing)),
            (false, Some(now - 30 * SEC), None, Some(HoldReason::RebalanceCooldown)),
            (false, None, Some(now - 30 * SEC), Some(HoldReason::ScaleCooldown)),
            (false, Some(now - 120 * SEC), Some(now - 60 * SEC), None),
        ];
        let memory = ScaleMemory {
            recommendations: vec![Recommendation { at_ms: 0, replicas: 3 }],
            per_replica_rate: Some(10.0),
        };
        for (rebalancing, last_rebalance_ms, last_scale_ms, hold) in cases {
            let mut o = obs(3, 50_000);
            (o.rebalancing, o.last_rebalance_ms, o.last_scale_ms) = (rebalancing, last_rebalance_ms, last_scale_ms);
            let (d, next) = plan_scale(&policy(), &o, &memory);
            assert_eq!(d.held, hold, "{o:?}");
            if hold.is_some() {
                assert_eq!((d.desired, d.change), (3, false));
                assert_eq!(next, memory, "a held decision records nothing");
            } else {
                assert!(d.change);
            }
        }
        let mut o = obs(3, 50_000);
        o.last_rebalance_ms = Some(now - 30 * SEC);
        assert_eq!(
            decide(&policy(), &o).reason,
            "the group rebalanced 30 s ago; waiting 120 s before scaling"
        );
    }

    #[test]
    fn no_change_means_no_write() {
        let d = decide(&policy(), &obs(3, 3000));
        assert_eq!((d.desired, d.change, d.held), (3, false, None));
    }

    #[test]
    fn hold_reasons_have_condition_reasons() {
        let names: Vec<&str> = [
            HoldReason::Rebalancing,
            HoldReason::RebalanceCooldown,
            HoldReason::ScaleCooldown,
            HoldReason::Stabilizing,
        ]
        .iter()
        .map(|h| h.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "Rebalancing",
                "RebalanceCooldown",
                "ScaleCooldown",
                "ScaleDownStabilization"
            ]
        );
    }
}
