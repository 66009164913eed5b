//! The custom resources: the operator's public contract (group `kafkagroups.dev`, version `v1alpha1`).
//! Every field is documented here, since these comments become `kubectl explain` text; every rule a user can
//! break is a CEL rule with a message that says how to fix the object.

pub mod claim;
pub mod cluster;
pub mod conditions;
pub mod group;
pub mod ledger;
pub mod reset;

pub use claim::{ClaimHolder, ClaimedWorkload, WorkloadClaim, WorkloadClaimSpec};
pub use cluster::{
    ClientCertificateRef, EmbeddedAllow, EmbeddedAuthentication, EmbeddedMechanism, EmbeddedSpec, EmbeddedTls,
    EmbeddedUser, KafkaCluster, KafkaClusterSpec, KafkaClusterStatus, SaslSpec, SecretKeyRef, TlsSpec,
};
pub use group::{
    ClusterRef, ConsumerGroup, ConsumerGroupSpec, ConsumerGroupStatus, DeclaredGroupType, DeletionPolicy,
    GroupMemberStatus, IsolationLevel, IsolationSource, OffsetInit, OffsetInitPolicy, RetentionGuardSpec,
    RetentionGuardStatus, RetentionProtection, SavedOffset,
};
pub use ledger::{LedgerEntry, ResetLedger, ResetLedgerSpec};
pub use reset::{OffsetReset, OffsetResetSpec, OffsetResetStatus, ResetPhase, ResetStrategy, ResetTo};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every resource.
pub const GROUP: &str = "kafkagroups.dev";

/// Every CRD the operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        KafkaCluster::crd(),
        ConsumerGroup::crd(),
        OffsetReset::crd(),
        WorkloadClaim::crd(),
        ResetLedger::crd(),
    ]
    .into_iter()
    .map(with_unobserved_status_default)
    .collect()
}

/// Gives the status of every kind with a status subresource the default `{observedGeneration: 0}`. kstatus
/// (Flux's health checks) computes an object without status as Current — healthy before the operator has
/// looked at it; with the default, a new object reads "generation 1, observed 0": InProgress until observed.
fn with_unobserved_status_default(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_none() {
            continue;
        }
        let status = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("status"));
        if let Some(status) = status {
            status.default = Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                    serde_json::json!({"observedGeneration": 0}),
                ),
            );
        }
    }
    crd
}

/// The CRDs as one multi-document YAML stream (what `kafka-group-operator crds` prints and `crds/` holds).
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
