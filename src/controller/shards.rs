//! Sharding for fleets (`run --shards N`): every replica is active and owns the KafkaClusters (with their
//! ConsumerGroups and OffsetResets) of the shards whose Lease it holds, one Lease per shard. See docs/sharding.md.
//!
//! A cluster's shard is a stable hash of its UID ([`shard_of`]); a replica renews what it holds, takes at most
//! one free or expired shard Lease per round while it holds fewer than its fair share ([`claim`]), gives one
//! back per round while it holds more ([`shed`]), and releases all on graceful shutdown.

use super::Error;
use super::leader::{LeaderElection, LeaseStep, LeaseView};
use crate::telemetry::metrics::Metrics;
use futures_util::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// FNV-1a, 64 bits: fixed by its specification, so a UID maps to the same shard in every version and
/// replica (Rust's `DefaultHasher` makes no such promise).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// MurmurHash3's 64-bit finalizer: every input bit moves about half the output bits. FNV-1a alone mixes a
/// string's last bytes into few bits, so UIDs that differ only there would crowd a few shards.
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The shard of a KafkaCluster (and of everything on it), from its UID, among `shards`: FNV-1a 64 of the UID,
/// finalized by [`fmix64`], scaled to `[0, shards)` (`hash × shards / 2^64`). Fixed functions only, so every
/// replica and every version agrees.
pub fn shard_of(uid: &str, shards: u32) -> u32 {
    ((u128::from(fmix64(fnv1a_64(uid.as_bytes()))) * u128::from(shards.max(1))) >> 64) as u32
}

/// The name of shard `shard`'s Lease: the count is in the name, so replicas run with different `--shards`
/// never share a Lease that means different clusters.
pub fn lease_name(base: &str, shard: u32, shards: u32) -> String {
    format!("{base}-shard-{shard}-of-{shards}")
}

/// The most shards one replica should hold: an even split over the replicas seen alive.
pub fn fair_share(shards: u32, live_replicas: usize) -> usize {
    (shards as usize).div_ceil(live_replicas.max(1))
}

/// The replicas seen alive: the holders of live shard Leases and of live membership Leases, and `me`.
pub fn live_replicas<'a>(
    leases: &'a [LeaseView],
    members: &'a [LeaseView],
    me: &'a str,
    now_ms: i64,
) -> BTreeSet<&'a str> {
    let mut live: BTreeSet<&str> = leases
        .iter()
        .chain(members)
        .filter(|l| l.is_live(now_ms))
        .filter_map(|l| l.holder.as_deref())
        .collect();
    live.insert(me);
    live
}

fn share_of(leases: &[LeaseView], members: &[LeaseView], me: &str, now_ms: i64) -> usize {
    fair_share(leases.len() as u32, live_replicas(leases, members, me, now_ms).len())
}

/// Which free or expired shard to take this round, if any: none while this replica holds its fair share;
/// otherwise one of the free ones, chosen by `pick` (random), so that replicas starting together spread
/// instead of racing for the same Lease.
pub fn claim(leases: &[LeaseView], members: &[LeaseView], me: &str, now_ms: i64, pick: u64) -> Option<u32> {
    let held = leases.iter().filter(|l| l.holder.as_deref() == Some(me)).count();
    if held >= share_of(leases, members, me, now_ms) {
        return None;
    }
    let free: Vec<u32> = (0..leases.len() as u32)
        .filter(|i| !leases[*i as usize].is_live(now_ms))
        .collect();
    if free.is_empty() {
        return None;
    }
    Some(free[(pick % free.len() as u64) as usize])
}

/// Which held shard to give back this round, if any: one (the highest) while this replica holds more than its
/// fair share, e.g. after another replica came up; a replica below its share takes it.
pub fn shed(leases: &[LeaseView], members: &[LeaseView], me: &str, now_ms: i64) -> Option<u32> {
    let held: Vec<u32> = (0..leases.len() as u32)
        .filter(|i| leases[*i as usize].holder.as_deref() == Some(me))
        .collect();
    (held.len() > share_of(leases, members, me, now_ms))
        .then(|| held.last().copied())
        .flatten()
}

/// The name of a replica's membership Lease: every replica keeps one renewed, so that a replica holding no
/// shard yet counts in everyone's fair share (and the others give shards back for it).
pub fn member_lease_name(base: &str, identity: &str) -> String {
    format!("{base}-member-{:016x}", fnv1a_64(identity.as_bytes()))
}

/// A membership Lease not renewed for this many Lease durations belongs to a replica that is gone for good
/// (killed without a graceful shutdown): any replica deletes it.
const MEMBER_GARBAGE_AFTER_DURATIONS: i64 = 10;

/// The shard Leases of one replica: which it holds, kept renewed.
pub struct ShardLeases {
    api: Api<Lease>,
    base: String,
    leases: Vec<LeaderElection>,
    /// This replica's membership Lease ([`member_lease_name`]).
    member: LeaderElection,
    identity: String,
    duration: Duration,
    /// The shards held and when each was last renewed (a shard not renewed for the Lease duration, e.g. after
    /// the process was frozen, no longer counts as held even before the next round notices).
    held: Mutex<BTreeMap<u32, Instant>>,
    /// Bumped with every change of the held set: the controllers reconcile everything on it.
    changes: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

impl ShardLeases {
    pub fn new(
        kube: kube::Client,
        namespace: &str,
        base_name: &str,
        identity: &str,
        duration: Duration,
        shards: u32,
        metrics: Arc<Metrics>,
    ) -> ShardLeases {
        let shards = shards.max(1);
        let leases = (0..shards)
            .map(|i| {
                LeaderElection::new(
                    kube.clone(),
                    namespace,
                    &lease_name(base_name, i, shards),
                    identity,
                    duration,
                )
            })
            .collect();
        for shard in 0..shards {
            metrics.set_shard_owned(shard, false);
        }
        ShardLeases {
            api: Api::namespaced(kube.clone(), namespace),
            base: base_name.to_owned(),
            member: LeaderElection::new(
                kube,
                namespace,
                &member_lease_name(base_name, identity),
                identity,
                duration,
            ),
            leases,
            identity: identity.to_owned(),
            duration,
            held: Mutex::default(),
            changes: watch::channel(0).0,
            metrics,
        }
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.leases.len() as u32
    }

    /// Whether this replica holds `shard` now, as far as it knows without asking the API server.
    pub fn owns(&self, shard: u32) -> bool {
        self.lock()
            .get(&shard)
            .is_some_and(|renewed| renewed.elapsed() < self.duration)
    }

    /// The fence before an act: this replica holds the shard's Lease, read from the API server.
    pub async fn still_holds(&self, shard: u32) -> Result<bool, Error> {
        match self.leases.get(shard as usize) {
            Some(lease) if self.owns(shard) => lease.still_holds().await,
            _ => Ok(false),
        }
    }

    /// Emits once every time the held set changes.
    pub fn changes(&self) -> BoxStream<'static, ()> {
        let rx = self.changes.subscribe();
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Instant>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn renew_period(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(500))
    }

    /// Renews, takes and gives back shard Leases until `shutdown` resolves. Does not release them: the
    /// caller stops its controllers first, then calls [`ShardLeases::release_all`].
    pub async fn hold(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.round().await;
            // ±10 % so that replicas started together do not keep reading and writing in lockstep.
            let period = self.renew_period().mul_f64(0.9 + rand::random::<f64>() * 0.2);
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = &mut shutdown => return,
            }
        }
    }

    /// One round: renew what is held and this replica's membership, read every Lease of the fleet (one
    /// list), then take or give back at most one shard.
    async fn round(&self) {
        let held: Vec<u32> = self.lock().keys().copied().collect();
        let renewals = futures_util::future::join_all(
            held.iter()
                .map(|shard| async move { (*shard, self.leases[*shard as usize].try_step().await) }),
        )
        .await;
        if let Err(e) = self.member.try_step().await {
            tracing::debug!(error = %e, "could not renew the membership lease");
        }
        let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        let mut renewed = BTreeMap::new();
        for (shard, step) in renewals {
            match step {
                Ok(LeaseStep::Renew | LeaseStep::Acquire) => {
                    let was_valid = self.owns(shard);
                    self.lock().insert(shard, Instant::now());
                    renewed.insert(shard, self.mine(now_ms));
                    if !was_valid {
                        // Its objects were skipped while the Lease had run out here (renewals slower than the
                        // Lease duration): they are reconciled again now, as after a takeover.
                        tracing::info!(shard, "renewed a shard lease that had run out locally");
                        self.changes.send_modify(|n| *n += 1);
                    }
                }
                Ok(LeaseStep::Wait { holder }) => self.lose(shard, &format!("taken over by {holder}")),
                Err(e) => {
                    tracing::warn!(shard, error = %e, "could not renew a shard lease");
                    if self.owns(shard) {
                        // Ours while it may still be: not offered to anyone this round.
                        renewed.insert(shard, self.mine(now_ms));
                    } else {
                        self.lose(shard, &format!("not renewed for {:?}: {e}", self.duration));
                    }
                }
            }
        }
        let listed = match self.api.list(&kube::api::ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!(error = %e, "could not list the leases: no shard taken or given back this round");
                return;
            }
        };
        let by_name: BTreeMap<String, LeaseView> = listed
            .iter()
            .map(|l| (l.name_any(), view_of(l, self.duration_s())))
            .collect();
        let views: Vec<LeaseView> = self
            .leases
            .iter()
            .enumerate()
            .map(|(i, lease)| match renewed.get(&(i as u32)) {
                Some(mine) => mine.clone(),
                None => by_name.get(lease.name()).cloned().unwrap_or(LeaseView {
                    holder: None,
                    renewed_ms: None,
                    duration_s: self.duration_s(),
                }),
            })
            .collect();
        let member_prefix = format!("{}-member-", self.base);
        let members: Vec<LeaseView> = by_name
            .iter()
            .filter(|(name, _)| name.starts_with(&member_prefix))
            .map(|(_, view)| view.clone())
            .collect();
        self.collect_garbage(&listed, &member_prefix, now_ms).await;
        if let Some(shard) = shed(&views, &members, &self.identity, now_ms) {
            self.lose(shard, "more than an even share: given back for another replica");
            self.leases[shard as usize].release().await;
        } else if let Some(shard) = claim(&views, &members, &self.identity, now_ms, rand::random()) {
            match self.leases[shard as usize].try_step().await {
                Ok(LeaseStep::Acquire | LeaseStep::Renew) => self.gain(shard),
                Ok(LeaseStep::Wait { holder }) => {
                    tracing::debug!(shard, holder, "another replica took the shard first")
                }
                Err(e) => tracing::warn!(shard, error = %e, "could not take a shard lease"),
            }
        }
    }

    /// Deletes membership Leases of replicas gone for good (a precondition on the version read, so a replica
    /// that renewed meanwhile keeps its own).
    async fn collect_garbage(&self, listed: &[Lease], member_prefix: &str, now_ms: i64) {
        for lease in listed.iter().filter(|l| l.name_any().starts_with(member_prefix)) {
            let view = view_of(lease, self.duration_s());
            let gone = view
                .renewed_ms
                .is_none_or(|r| now_ms > r + i64::from(view.duration_s) * 1000 * MEMBER_GARBAGE_AFTER_DURATIONS);
            if gone {
                let params = kube::api::DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        resource_version: lease.resource_version(),
                        uid: None,
                    }),
                    ..Default::default()
                };
                let _ = self.api.delete(&lease.name_any(), &params).await;
            }
        }
    }

    fn duration_s(&self) -> i32 {
        self.duration.as_secs().max(1) as i32
    }

    fn mine(&self, now_ms: i64) -> LeaseView {
        LeaseView {
            holder: Some(self.identity.clone()),
            renewed_ms: Some(now_ms),
            duration_s: self.duration_s(),
        }
    }

    fn gain(&self, shard: u32) {
        self.lock().insert(shard, Instant::now());
        tracing::info!(
            shard,
            shards = self.count(),
            lease = self.leases[shard as usize].name(),
            identity = self.identity,
            "acquired shard"
        );
        self.metrics.set_shard_owned(shard, true);
        self.changes.send_modify(|n| *n += 1);
    }

    fn lose(&self, shard: u32, why: &str) {
        if self.lock().remove(&shard).is_none() {
            return;
        }
        tracing::info!(
            shard,
            shards = self.count(),
            identity = self.identity,
            why,
            "lost shard"
        );
        self.metrics.set_shard_owned(shard, false);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Gives every held shard back (graceful shutdown, after the controllers stopped), so that other
    /// replicas take them over at once instead of after the Lease duration.
    pub async fn release_all(&self) {
        let held: Vec<u32> = self.lock().keys().copied().collect();
        for shard in held {
            self.lose(shard, "shutting down");
            self.leases[shard as usize].release().await;
        }
        let _ = self
            .api
            .delete(self.member.name(), &kube::api::DeleteParams::default())
            .await;
    }
}

/// A Lease as [`claim`] and [`shed`] read it.
fn view_of(lease: &Lease, default_duration_s: i32) -> LeaseView {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseView {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        renewed_ms: spec.renew_time.map(|t| t.0.as_millisecond()),
        duration_s: spec.lease_duration_seconds.unwrap_or(default_duration_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_ms: i64) -> LeaseView {
        LeaseView {
            holder: holder.map(str::to_owned),
            renewed_ms: Some(renewed_ms),
            duration_s: 10,
        }
    }

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        // From the FNV specification's test suite.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_uid_maps_to_the_same_shard_in_every_version() {
        let uid = "0b6f3a52-6c1e-4a5e-9d7e-2f1d3c4b5a69";
        assert_eq!(shard_of(uid, 1), 0);
        // Pinned: a change of the hash would move every cluster of a running fleet to another replica.
        assert_eq!(fnv1a_64(uid.as_bytes()), PINNED_HASH);
        assert_eq!([2, 3, 6, 8, 16].map(|n| shard_of(uid, n)), PINNED_SHARDS);
        const PINNED_HASH: u64 = 101_040_081_895_782_723;
        const PINNED_SHARDS: [u32; 5] = [1, 2, 5, 7, 14];
    }

    #[test]
    fn uids_spread_over_the_shards() {
        // UIDs that differ in one place only, early or late: both spread.
        let mut counts = [0u32; 8];
        for i in 0..400 {
            counts[shard_of(&format!("7d0c{i:04}-1111-4222-8333-444455556666"), 8) as usize] += 1;
            counts[shard_of(&format!("7d0c1234-1111-4222-8333-44445555{i:04}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (50..=150).contains(c)), "{counts:?}");
    }

    #[test]
    fn lease_names_carry_the_shard_and_the_count() {
        assert_eq!(lease_name("kgo", 3, 8), "kgo-shard-3-of-8");
    }

    #[test]
    fn the_fair_share_rounds_up() {
        assert_eq!(fair_share(6, 3), 2);
        assert_eq!(fair_share(8, 3), 3);
        assert_eq!(fair_share(8, 1), 8);
        assert_eq!(fair_share(2, 5), 1);
    }

    #[test]
    fn a_lone_replica_takes_one_free_shard_per_round() {
        let leases = vec![lease(None, 0), lease(Some("a"), 100), lease(None, 0)];
        assert_eq!(claim(&leases, &[], "a", 1_000, 0), Some(0));
        assert_eq!(claim(&leases, &[], "a", 1_000, 1), Some(2));
    }

    #[test]
    fn a_replica_at_its_share_takes_nothing_more() {
        // Three replicas, six shards: two each.
        let leases = vec![
            lease(Some("a"), 100),
            lease(Some("a"), 100),
            lease(Some("b"), 100),
            lease(Some("c"), 100),
            lease(None, 0),
            lease(None, 0),
        ];
        assert_eq!(claim(&leases, &[], "a", 1_000, 0), None);
        assert_eq!(claim(&leases, &[], "b", 1_000, 0), Some(4));
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_its_dead_holder_not_counted() {
        // c died at 0 (10 s leases): at 20 s its shards are free and only a and b share six shards.
        let leases = vec![
            lease(Some("a"), 19_000),
            lease(Some("a"), 19_000),
            lease(Some("b"), 19_000),
            lease(Some("b"), 19_000),
            lease(Some("c"), 0),
            lease(Some("c"), 0),
        ];
        assert_eq!(live_replicas(&leases, &[], "a", 20_000).len(), 2);
        assert_eq!(claim(&leases, &[], "a", 20_000, 0), Some(4));
        assert_eq!(claim(&leases, &[], "a", 20_000, 1), Some(5));
        // Before the Lease ran out, c's shards are not touched.
        assert_eq!(claim(&leases, &[], "a", 9_000, 0), None);
    }

    #[test]
    fn a_replica_over_its_share_gives_back_its_highest_shard() {
        let leases = vec![
            lease(Some("a"), 100),
            lease(Some("a"), 100),
            lease(Some("a"), 100),
            lease(Some("a"), 100),
            lease(Some("b"), 100),
            lease(Some("c"), 100),
        ];
        assert_eq!(shed(&leases, &[], "a", 1_000), Some(3));
        assert_eq!(shed(&leases, &[], "b", 1_000), None);
        let even = vec![lease(Some("a"), 100), lease(Some("b"), 100), lease(Some("c"), 100)];
        assert_eq!(shed(&even, &[], "a", 1_000), None);
    }

    #[test]
    fn a_replica_without_shards_counts_through_its_membership_and_gets_one_given_back() {
        // a and b split six shards while c was frozen; c, back, holds none but renews its membership.
        let leases = vec![
            lease(Some("a"), 100),
            lease(Some("a"), 100),
            lease(Some("a"), 100),
            lease(Some("b"), 100),
            lease(Some("b"), 100),
            lease(Some("b"), 100),
        ];
        let members = vec![lease(Some("a"), 100), lease(Some("b"), 100), lease(Some("c"), 100)];
        assert_eq!(
            shed(&leases, &[], "a", 1_000),
            None,
            "without c's membership, three each is even"
        );
        assert_eq!(shed(&leases, &members, "a", 1_000), Some(2));
        assert_eq!(shed(&leases, &members, "b", 1_000), Some(5));
        // An expired membership (c gone again) does not count.
        let renewed = |l: &LeaseView| LeaseView {
            renewed_ms: Some(19_000),
            ..l.clone()
        };
        let leases: Vec<LeaseView> = leases.iter().map(renewed).collect();
        let members = vec![renewed(&members[0]), renewed(&members[1]), members[2].clone()];
        assert_eq!(shed(&leases, &members, "a", 20_000), None);
    }

    #[test]
    fn member_lease_names_are_stable_and_dns_safe() {
        let name = member_lease_name("kgo", "Operator-Pod_7-123");
        assert_eq!(name, member_lease_name("kgo", "Operator-Pod_7-123"));
        assert!(
            name.starts_with("kgo-member-") && name.len() == "kgo-member-".len() + 16,
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn nothing_is_taken_when_every_lease_is_live() {
        let leases = vec![lease(Some("b"), 100), lease(Some("c"), 100)];
        assert_eq!(claim(&leases, &[], "a", 1_000, 7), None);
    }
}
