//! A test scenario for the operator: a fresh namespace on the shared control plane with the CRDs installed,
//! an operator process watching it, and a Ready KafkaCluster `main` on a broker.

use super::brokers::TestBroker;
use super::operator::Operator;
use super::wait::{has_condition, until};
use super::{ControlPlane, crds};
use kafka_group_operator::api::{ConsumerGroup, KafkaCluster, OffsetReset};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient};
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

pub struct Scenario {
    pub client: kube::Client,
    pub ns: String,
    /// Our admin client on the scenario's broker, for setting up and checking Kafka state.
    pub kafka: KafkaClient,
    /// The scenario's broker, for real clients and Kafka's CLI tools.
    pub bootstrap: String,
    pub operator: Option<Operator>,
}

impl Scenario {
    /// A fresh namespace, an operator watching it, and KafkaCluster `main` on `kafka`, Ready.
    pub async fn start(prefix: &str, kafka: &dyn TestBroker) -> Scenario {
        let cp = ControlPlane::shared();
        let (client, ns) = Scenario::namespace(prefix).await;
        let operator = Operator::start(cp, &ns, &[]);
        Scenario::with_cluster(client, ns, kafka, Some(operator)).await
    }

    /// A fresh namespace with the CRDs installed, for tests that run their own operators.
    pub async fn namespace(prefix: &str) -> (kube::Client, String) {
        let cp = ControlPlane::shared();
        let client = cp.client().await;
        crds::install(&client).await;
        let ns = cp.fresh_namespace(&client, prefix).await;
        (client, ns)
    }

    /// Creates KafkaCluster `main` on `kafka` in `ns` and waits until an operator reports it Ready.
    pub async fn with_cluster(
        client: kube::Client,
        ns: String,
        kafka: &dyn TestBroker,
        operator: Option<Operator>,
    ) -> Scenario {
        let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
        let cluster: KafkaCluster = resource("KafkaCluster", "main", json!({"bootstrapServers": [kafka.bootstrap()]}));
        clusters
            .create(&PostParams::default(), &cluster)
            .await
            .expect("create KafkaCluster main");
        until(&clusters, "main", Duration::from_secs(60), "Ready", |c| {
            has_condition(c, "Ready", "True", "Connected")
        })
        .await;
        Scenario {
            kafka: KafkaClient::new(ClientConfig::new([kafka.bootstrap()])).expect("kafka client"),
            bootstrap: kafka.bootstrap(),
            client,
            ns,
            operator,
        }
    }

    pub fn groups(&self) -> Api<ConsumerGroup> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn resets(&self) -> Api<OffsetReset> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
}

/// One of our resources (`kind` in `kafkagroups.dev/v1alpha1`) named `name` with `spec`.
pub fn resource<K: DeserializeOwned>(kind: &str, name: &str, spec: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": "kafkagroups.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap_or_else(|e| panic!("{kind} JSON: {e}"))
}
