//! What `plan` and `apply` know of OffsetResets applied before — the records the operator itself consults
//! (`controller::ledger`): the commit metadata in Kafka, always; and, when the command reaches a Kubernetes API,
//! the namespace's `ResetLedger` and the ConsumerGroup's `status.resetHistory`. A pull request that only adds
//! back a reset the cluster already applied then plans no change.

use anyhow::{Context, Result};
use kafka_group_operator::api::ledger::ResetLedger;
use kafka_group_operator::api::{ConsumerGroup, OffsetReset};
use kafka_group_operator::controller::ledger::{LEDGER_NAME, applied_before, applied_before_in_history, spec_hash};
use kafka_group_operator::kafka::KafkaClient;
use kafka_group_operator::plan::reset_record::{ResetRecord, applied_in_kafka};
use kafka_protocol::error::ResponseError;
use kube::api::Api;

/// The Kubernetes API whose records are read, and the namespace of manifests that name none.
pub struct KubeRecords {
    pub client: kube::Client,
    pub namespace: String,
}

/// Where earlier applications are looked up.
#[derive(Default)]
pub struct Ledgers {
    pub kube: Option<KubeRecords>,
}

impl Ledgers {
    /// The records the command can reach: Kafka's always, the Kubernetes ones when it talks to an API server.
    pub async fn for_connection(connect: &super::connect::ConnectArgs) -> Result<Ledgers> {
        Ok(Ledgers {
            kube: connect.kube_context().await?.map(|k| KubeRecords {
                client: k.client,
                namespace: k.namespace,
            }),
        })
    }
}

/// The UID `apply` records in the commit metadata: the command line has no object, and a record with this
/// UID never equals an OffsetReset's (so the operator recognises a reset `apply` ran first, and vice versa).
pub const CLI_UID: &str = "kafka-group-operator-cli";

impl Ledgers {
    /// When and where `reset` (same name and spec) was applied before, in words, if it was.
    pub async fn applied_before(
        &self,
        kafka: &KafkaClient,
        reset: &OffsetReset,
        group_id: &str,
    ) -> Result<Option<String>> {
        if let Some(kube) = &self.kube {
            let namespace = reset
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| kube.namespace.clone());
            let ledgers: Api<ResetLedger> = Api::namespaced(kube.client.clone(), &namespace);
            let entries = ledgers
                .get_opt(LEDGER_NAME)
                .await
                .with_context(|| format!("reading ResetLedger {LEDGER_NAME} in namespace {namespace}"))?
                .map(|l| l.spec.entries)
                .unwrap_or_default();
            if let Some(e) = applied_before(&entries, reset) {
                return Ok(Some(format!(
                    "{} (uid {}, recorded in ResetLedger {LEDGER_NAME} of namespace {namespace})",
                    e.applied_at.0, e.uid
                )));
            }
            if let Some(group_ref) = &reset.spec.group_ref {
                let groups: Api<ConsumerGroup> = Api::namespaced(kube.client.clone(), &namespace);
                let history = groups
                    .get_opt(&group_ref.name)
                    .await
                    .with_context(|| format!("reading ConsumerGroup {} in namespace {namespace}", group_ref.name))?
                    .and_then(|g| g.status)
                    .map(|s| s.reset_history)
                    .unwrap_or_default();
                if let Some(e) = applied_before_in_history(&history, reset) {
                    return Ok(Some(format!(
                        "{} (uid {}, recorded in ConsumerGroup {} status.resetHistory)",
                        e.applied_at.0, e.uid, group_ref.name
                    )));
                }
            }
        }
        let offsets = match kafka.group_offsets(group_id).await {
            Ok(offsets) => offsets,
            Err(e) if e.code() == Some(ResponseError::GroupIdNotFound) => return Ok(None),
            Err(e) => return Err(super::kafka_error(e, "")),
        };
        let name = reset.metadata.name.clone().unwrap_or_default();
        // A manifest has no UID: any record of this name and spec is an earlier application.
        Ok(applied_in_kafka(&offsets, &name, &spec_hash(&reset.spec), "").map(|r| {
            let by = if r.uid == CLI_UID {
                "kafka-group-operator apply".to_owned()
            } else {
                format!("uid {}, namespace {}", r.uid, r.namespace)
            };
            format!(
                "{} ({by}; recorded in the commit metadata of group {group_id})",
                r.applied_at
            )
        }))
    }
}

/// The record `apply` commits with a reset's offsets.
pub fn cli_record(reset: &OffsetReset) -> ResetRecord {
    ResetRecord::new(
        reset.metadata.namespace.as_deref().unwrap_or_default(),
        reset.metadata.name.as_deref().unwrap_or_default(),
        CLI_UID,
        &spec_hash(&reset.spec),
        &k8s_openapi::jiff::Timestamp::now().to_string(),
    )
}
