//! Which shard an object belongs to, and whether this replica reconciles it (`run --shards`): a KafkaCluster by
//! its UID, a ConsumerGroup and an OffsetReset by their cluster's. An object whose cluster does not exist (yet)
//! belongs to shard 0, so that exactly one replica reports the missing cluster; it moves to its cluster's shard
//! once the cluster exists (docs/sharding.md).

use super::shards::shard_of;
use super::{Context, Error};
use crate::api::{ConsumerGroup, KafkaCluster, OffsetReset};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The shard of objects whose cluster does not exist.
pub const UNKNOWN_CLUSTER_SHARD: u32 = 0;

/// How often an object of another replica's shard is looked at again, besides the reconcile of everything on
/// every change of the held shards: a safety net, not the way a takeover is noticed.
pub const ELSEWHERE_RECHECK: Duration = Duration::from_secs(120);

/// Whether this replica reconciles an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// It does; with the object's shard when sharded (its Lease fences the acts).
    Mine(Option<u32>),
    /// Another replica's shard: skip it without a write.
    Elsewhere(u32),
}

impl Gate {
    pub fn shard(self) -> Option<u32> {
        match self {
            Gate::Mine(shard) => shard,
            Gate::Elsewhere(shard) => Some(shard),
        }
    }
}

fn gate(ctx: &Context, uid: Option<&str>) -> Gate {
    let Some(leases) = ctx.shard_leases() else {
        return Gate::Mine(None);
    };
    let shard = uid.map_or(UNKNOWN_CLUSTER_SHARD, |uid| shard_of(uid, leases.count()));
    if leases.owns(shard) {
        Gate::Mine(Some(shard))
    } else {
        Gate::Elsewhere(shard)
    }
}

/// A KafkaCluster: by its own UID.
pub fn cluster(ctx: &Context, cluster: &KafkaCluster) -> Gate {
    gate(ctx, cluster.meta().uid.as_deref())
}

/// Remembers the cluster controller's view of the KafkaClusters, where the other gates look clusters up.
pub fn index_clusters(ctx: &Context, store: Store<KafkaCluster>) {
    let _ = ctx.cluster_index.set(store);
}

/// KafkaCluster `ns/name` as the cluster controller's watch last saw it; None when the watch has not listed the
/// clusters yet or does not have this one (the caller then asks the API server).
/// Shared with the watch, not copied: reconciles that act on lag ask for it after every scan.
pub fn watched_cluster(ctx: &Context, ns: &str, name: &str) -> Option<Arc<KafkaCluster>> {
    in_watch(ctx.cluster_index.get()?, ns, name)
}

fn in_watch(store: &Store<KafkaCluster>, ns: &str, name: &str) -> Option<Arc<KafkaCluster>> {
    store.get(&ObjectRef::<KafkaCluster>::new(name).within(ns))
}

/// The UID of KafkaCluster `ns/name`, None when it does not exist: from the cluster controller's watch, or
/// (before that has listed the clusters) from the API server.
async fn cluster_uid(ctx: &Context, ns: &str, name: &str) -> Result<Option<String>, Error> {
    if let Some(store) = ctx.cluster_index.get()
        && store.wait_until_ready().await.is_ok()
    {
        return Ok(in_watch(store, ns, name).and_then(|c| c.meta().uid.clone()));
    }
    let clusters: Api<KafkaCluster> = Api::namespaced(ctx.kube.clone(), ns);
    Ok(clusters.get_opt(name).await?.and_then(|c| c.metadata.uid))
}

async fn of_cluster_named(ctx: &Context, ns: &str, name: &str) -> Result<Gate, Error> {
    if ctx.shard_leases().is_none() {
        return Ok(Gate::Mine(None));
    }
    Ok(gate(ctx, cluster_uid(ctx, ns, name).await?.as_deref()))
}

/// A ConsumerGroup: by its `clusterRef`.
pub async fn group(ctx: &Context, group: &ConsumerGroup) -> Result<Gate, Error> {
    of_cluster_named(
        ctx,
        &group.namespace().unwrap_or_default(),
        &group.spec.cluster_ref.name,
    )
    .await
}

/// An OffsetReset: by its `clusterRef`, or its `groupRef`'s ConsumerGroup's (read from the API server, as the
/// reset controller reads everything it acts on).
pub async fn reset(ctx: &Context, reset: &OffsetReset) -> Result<Gate, Error> {
    if ctx.shard_leases().is_none() {
        return Ok(Gate::Mine(None));
    }
    let ns = reset.namespace().unwrap_or_default();
    let cluster = match (&reset.spec.group_ref, &reset.spec.cluster_ref) {
        (Some(group_ref), _) => {
            let groups: Api<ConsumerGroup> = Api::namespaced(ctx.kube.clone(), &ns);
            groups.get_opt(&group_ref.name).await?.map(|g| g.spec.cluster_ref.name)
        }
        (None, Some(cluster_ref)) => Some(cluster_ref.name.clone()),
        (None, None) => None,
    };
    match cluster {
        Some(name) => of_cluster_named(ctx, &ns, &name).await,
        None => Ok(gate(ctx, None)),
    }
}
