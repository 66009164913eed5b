//! What `plan` and `apply` know of OffsetResets applied before — the records the operator itself consults
//! (`controller::ledger`): the commit metadata in Kafka, always; and, when the command reaches a Kubernetes API,
//! the namespace's `ResetLedger` and the ConsumerGroup's `status.resetHistory`. A pull request that only adds
//! back a reset the cluster already applied then plans no change.

use anyhow::{Context, Result};
use kafka_group_operator::api::OffsetReset;
use kafka_group_operator::controller::ledger::{recorded_in_kubernetes, spec_hash};
use kafka_group_operator::kafka::KafkaClient;
use kafka_group_operator::plan::reset_record::{COMMAND_LINE_UID, ResetRecord, applied_in_kafka};
use kafka_protocol::error::ResponseError;

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
            let recorded = recorded_in_kubernetes(&kube.client, &namespace, reset)
                .await
                .with_context(|| format!("reading the records of applied resets in namespace {namespace}"))?;
            if recorded.is_some() {
                return Ok(recorded);
            }
        }
        let offsets = match kafka.group_offsets(group_id).await {
            Ok(offsets) => offsets,
            Err(e) if e.code() == Some(ResponseError::GroupIdNotFound) => return Ok(None),
            Err(e) => return Err(super::kafka_error(e, "")),
        };
        let name = reset.metadata.name.clone().unwrap_or_default();
        // A manifest has no UID: any record of this name and spec is an earlier application.
        Ok(applied_in_kafka(&offsets, &name, &spec_hash(&reset.spec), "").map(|r| r.describe(group_id)))
    }
}

/// The record `apply` commits with a reset's offsets.
pub fn cli_record(reset: &OffsetReset) -> ResetRecord {
    ResetRecord::new(
        reset.metadata.namespace.as_deref().unwrap_or_default(),
        reset.metadata.name.as_deref().unwrap_or_default(),
        COMMAND_LINE_UID,
        &spec_hash(&reset.spec),
        &k8s_openapi::jiff::Timestamp::now().to_string(),
    )
}
