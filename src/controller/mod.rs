//! The reconcilers: the imperative shell around `plan/` and `kafka/`. They observe (Kubernetes and Kafka),
//! call the planners, act, and record what they saw in status, Events and metrics.

pub mod claim;
pub mod clients;
pub mod cluster;
pub mod embedded;
mod embedded_serve;
pub mod finalizers;
pub mod group;
pub mod group_config;
mod group_retention;
pub mod group_type;
pub mod keda;
pub mod leader;
pub mod ledger;
pub mod reset;
pub mod resolve;
pub mod sampler;
pub mod scaling;
pub mod shard_gate;
pub mod shards;
pub mod status;
pub mod workload;

use crate::kafka::KafkaError;
use crate::telemetry::metrics::Metrics;
use clients::{ClientSettings, ClusterClients};
use kube::runtime::events::{Recorder, Reporter};
use std::sync::Arc;
use std::time::Duration;

/// The field manager of everything the operator writes with server-side apply.
pub const FIELD_MANAGER: &str = "kafka-group-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Config(String),
    /// Credentials the spec would send where they can be read on the way (SASL over plaintext).
    #[error("{0}")]
    InsecureCredentials(String),
    /// `spec.type` says one kind of group, Kafka holds another under the same id.
    #[error("{0}")]
    TypeMismatch(String),
}

impl Error {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Kafka(_) => "kafka",
            Error::Config(_) | Error::InsecureCredentials(_) | Error::TypeMismatch(_) => "config",
        }
    }
}

/// Default bound on waiting for a pending transactional offset commit: one minute, Kafka's default
/// `transaction.timeout.ms`, after which the broker aborts an abandoned transaction itself.
pub const DEFAULT_UNSTABLE_OFFSET_WAIT: Duration = Duration::from_secs(60);

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// How often a ConsumerGroup is observed.
    pub group_interval: Duration,
    /// How often a KafkaCluster's connection is checked.
    pub cluster_interval: Duration,
    /// How often the lag of all groups of a cluster is sampled (one batched scan per cluster).
    pub lag_interval: Duration,
    /// How long an OffsetReset waits for a pending transactional offset commit of its group
    /// (UNSTABLE_OFFSET_COMMIT) to commit or abort before it fails with `UnstableOffsetCommit`.
    pub unstable_offset_wait: Duration,
    /// Reconciles in flight at once, per controller.
    pub concurrency: u16,
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    pub client: ClientSettings,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            group_interval: Duration::from_secs(30),
            cluster_interval: Duration::from_secs(60),
            lag_interval: Duration::from_secs(5),
            unstable_offset_wait: DEFAULT_UNSTABLE_OFFSET_WAIT,
            concurrency: 8,
            namespace: None,
            client: ClientSettings::default(),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub kube: kube::Client,
    pub clients: ClusterClients,
    pub samplers: Arc<sampler::Samplers>,
    pub memories: scaling::GroupMemories,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub config: OperatorConfig,
    /// The leader Lease when several replicas elect one (`--leader-elect`): checked before every act.
    leader: std::sync::OnceLock<Arc<leader::LeaderElection>>,
    /// The shard Leases when replicas share the work (`--shards`): a replica reconciles only its shards'
    /// objects and checks its shard's Lease before every act.
    shards: std::sync::OnceLock<Arc<shards::ShardLeases>>,
    /// The KafkaClusters as the cluster controller's watch sees them: where ConsumerGroups and OffsetResets
    /// find their cluster's UID (hence shard) without a request.
    cluster_index: std::sync::OnceLock<kube::runtime::reflector::Store<crate::api::KafkaCluster>>,
    /// Consecutive failures per object, for exponential backoff.
    failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl Context {
    /// `embedded` serves the brokers of `spec.embedded` KafkaClusters (None: such clusters are not Ready).
    pub fn new(
        kube: kube::Client,
        metrics: Arc<Metrics>,
        config: OperatorConfig,
        instance: String,
        embedded: Option<Arc<dyn embedded::EmbeddedHost>>,
    ) -> Context {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(instance),
        };
        let samplers = Arc::new(sampler::Samplers::default());
        // The lag metrics are read from the samplers' latest samples at every scrape.
        let lag_source: Arc<dyn crate::telemetry::metrics::LagSource> = samplers.clone();
        metrics.add_lag_source(Arc::downgrade(&lag_source));
        Context {
            recorder: Recorder::new(kube.clone(), reporter),
            kube,
            clients: ClusterClients::new(embedded),
            samplers,
            memories: Default::default(),
            metrics,
            config,
            leader: Default::default(),
            shards: Default::default(),
            cluster_index: Default::default(),
            failures: Default::default(),
        }
    }

    /// Makes every act depend on holding `election`'s Lease (set once, before the controllers start).
    pub fn fence_with(&self, election: Arc<leader::LeaderElection>) {
        let _ = self.leader.set(election);
    }

    /// Makes this replica reconcile only the objects of the shards it holds (set once, before the controllers
    /// start).
    pub fn shard_with(&self, leases: Arc<shards::ShardLeases>) {
        let _ = self.shards.set(leases);
    }

    pub fn shard_leases(&self) -> Option<&Arc<shards::ShardLeases>> {
        self.shards.get()
    }

    /// Whether this replica may act on an object of `shard` (None: not sharded): only while it holds the
    /// leader Lease (with leader election) and the shard's Lease (with sharding), both read from the API server.
    pub async fn still_leading(&self, shard: Option<u32>) -> Result<bool, Error> {
        if let Some(election) = self.leader.get()
            && !election.still_holds().await?
        {
            return Ok(false);
        }
        match (self.shards.get(), shard) {
            (Some(leases), Some(shard)) => leases.still_holds(shard).await,
            _ => Ok(true),
        }
    }

    /// Emits whenever the shards this replica holds change (never without sharding): every controller
    /// reconciles all its objects then, so a shard taken over is served within seconds and a shard lost lets
    /// go of its brokers, samplers and memories.
    pub(crate) fn ownership_changes(&self) -> futures_util::stream::BoxStream<'static, ()> {
        match self.shards.get() {
            Some(leases) => leases.changes(),
            None => Box::pin(futures_util::stream::pending()),
        }
    }

    /// Requeue delay after a failure of `key`: 1 s doubling to `cap`.
    pub fn backoff(&self, key: &str, cap: Duration) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = Duration::from_secs(1u64 << (*n - 1).min(10));
        delay.min(cap)
    }

    pub fn reset_backoff(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// An Api over the watched namespace, or over all namespaces.
pub(crate) fn scoped_api<K>(ctx: &Context) -> kube::Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match &ctx.config.namespace {
        Some(ns) => kube::Api::namespaced(ctx.kube.clone(), ns),
        None => kube::Api::all(ctx.kube.clone()),
    }
}

/// Every controller's runner settings: bounded concurrency.
pub(crate) fn runner_config(ctx: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency)
}

/// Drains a controller's result stream; failures were already handled by its error policy.
pub(crate) async fn drain<T, E: std::fmt::Display>(
    controller: &str,
    results: impl futures_util::Stream<Item = Result<T, E>>,
) {
    use futures_util::StreamExt;
    results
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(controller, error = %e, "reconcile loop");
            }
        })
        .await;
}

/// Runs the controllers until `shutdown` resolves.
pub async fn run_controllers(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    let shutdown = futures_util::FutureExt::shared(Box::pin(shutdown));
    tokio::join!(
        cluster::run(ctx.clone(), shutdown.clone()),
        group::run(ctx.clone(), shutdown.clone()),
        reset::run(ctx, shutdown)
    );
}
