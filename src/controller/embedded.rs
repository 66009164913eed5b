//! KafkaClusters with `spec.embedded`: the operator process serves a broker for each. The controllers never
//! call into the broker (DESIGN.md: the operator reaches an embedded broker over the wire, like any cluster);
//! `main` hands them an [`EmbeddedHost`] that starts and stops brokers and says where each listens.

use crate::api::EmbeddedSpec;
use futures_util::future::BoxFuture;

/// Starts and stops the embedded brokers of KafkaClusters, keyed by `namespace/name`.
pub trait EmbeddedHost: Send + Sync {
    /// Starts the broker of `cluster` as `spec` says, or keeps the one already serving the same spec (a
    /// changed spec restarts it). Returns the `host:port` the operator connects to, or why it cannot serve.
    fn ensure<'a>(&'a self, cluster: &'a str, spec: &'a EmbeddedSpec) -> BoxFuture<'a, Result<String, String>>;

    /// Stops the broker of a deleted cluster (its data directory, if any, stays).
    fn stop<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, ()>;
}

/// Held by embedded KafkaClusters so that their broker is stopped when they are deleted.
pub const FINALIZER: &str = "kafkagroups.dev/embedded-broker";
