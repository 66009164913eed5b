//! KafkaClusters with `spec.embedded`: the operator process serves a broker for each. The controllers never
//! call into the broker (DESIGN.md: the operator reaches an embedded broker over the wire, like any cluster);
//! `main` hands them an [`EmbeddedHost`] that starts and stops brokers and says where each listens. The
//! controllers resolve what the broker needs from Secrets ([`EmbeddedServe`]); the host answers with where
//! the operator connects and the credential it connects with ([`Served`]).

use crate::api::{EmbeddedMechanism, EmbeddedSpec};
use crate::kafka::{SaslConfig, Secret};
use futures_util::future::BoxFuture;

/// The name of the operator's own user on every embedded broker (reserved: the CRD refuses it for users).
pub const OPERATOR_USER: &str = "kafka-group-operator";

/// An embedded broker as the KafkaCluster declares it, with the Secrets it names read.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedServe {
    pub spec: EmbeddedSpec,
    pub mechanism: EmbeddedMechanism,
    pub users: Vec<EmbeddedCredential>,
    pub tls: Option<EmbeddedTlsMaterial>,
}

/// One declared user: name, password (from its Secret) and name prefixes (None: everything).
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedCredential {
    pub name: String,
    /// None: a certificate user (`mechanism: none` with a client CA), the client certificate whose CN is `name`.
    pub password: Option<Secret>,
    pub allow: Option<(Vec<String>, Vec<String>)>,
}

/// PEM material of the broker's TLS.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedTlsMaterial {
    pub certificate_chain_pem: Vec<u8>,
    pub private_key_pem: Secret,
    pub client_ca_pem: Option<Vec<u8>>,
}

/// Where the operator reaches a broker it serves, and how it authenticates there.
#[derive(Clone, Debug)]
pub struct Served {
    pub bootstrap: String,
    pub credential: Option<SaslConfig>,
}

/// Starts and stops the embedded brokers of KafkaClusters, keyed by `namespace/name`.
pub trait EmbeddedHost: Send + Sync {
    /// Starts the broker of `cluster` as `serve` says, or keeps the one already serving it (a changed port or
    /// data dir restarts it; changed users or TLS apply without a restart). Returns where the operator
    /// connects and with which credential, or why it cannot serve.
    fn ensure<'a>(&'a self, cluster: &'a str, serve: &'a EmbeddedServe) -> BoxFuture<'a, Result<Served, String>>;

    /// Stops the broker of a deleted cluster (its data directory, if any, stays).
    fn stop<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, ()>;
}

/// Held by embedded KafkaClusters so that their broker is stopped when they are deleted.
pub const FINALIZER: &str = "kafkagroups.dev/embedded-broker";
