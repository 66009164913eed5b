//! The operator's host for the brokers of `spec.embedded` KafkaClusters: one in-process broker per cluster,
//! started when the cluster is first reconciled, restarted when its spec changes, stopped when the cluster is
//! deleted and, gracefully (logs fsynced), when the operator stops. Only `main` knows both the broker and the
//! controllers (DESIGN.md); the controllers reach these brokers over the wire like any other cluster.

use futures_util::future::BoxFuture;
use kafka_group_operator::api::EmbeddedSpec;
use kafka_group_operator::broker::{Broker, BrokerConfig};
use kafka_group_operator::controller::embedded::EmbeddedHost;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Where the embedded brokers listen and what they tell clients.
#[derive(Clone, Debug)]
pub struct EmbeddedSettings {
    /// The interface the brokers bind to (all by default: applications connect through the operator's Service).
    pub bind: IpAddr,
    /// The host the brokers advertise to clients (e.g. the operator Service's DNS name); None: the bound
    /// address, 127.0.0.1 when bound to all interfaces.
    pub advertised_host: Option<String>,
}

pub struct InProcessBrokers {
    settings: EmbeddedSettings,
    running: tokio::sync::Mutex<HashMap<String, (EmbeddedSpec, Broker)>>,
}

impl InProcessBrokers {
    pub fn new(settings: EmbeddedSettings) -> InProcessBrokers {
        InProcessBrokers {
            settings,
            running: Default::default(),
        }
    }

    /// Stops every broker gracefully (at operator shutdown).
    pub async fn shutdown_all(&self) {
        let running: Vec<(String, (EmbeddedSpec, Broker))> = self.running.lock().await.drain().collect();
        for (cluster, (_, broker)) in running {
            tracing::info!(cluster, "stopping the embedded broker");
            broker.shutdown().await;
        }
    }
}

impl EmbeddedHost for InProcessBrokers {
    fn ensure<'a>(&'a self, cluster: &'a str, spec: &'a EmbeddedSpec) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let mut running = self.running.lock().await;
            if let Some((serving, broker)) = running.get(cluster)
                && serving == spec
            {
                return Ok(broker.bootstrap());
            }
            if let Some((_, broker)) = running.remove(cluster) {
                tracing::info!(cluster, "the embedded broker's spec changed: restarting it");
                broker.shutdown().await;
            }
            let port = spec.port();
            if let Some(other) = running.iter().find(|(_, (s, _))| s.port() == port).map(|(c, _)| c) {
                return Err(format!(
                    "port {port} is taken by the embedded broker of KafkaCluster {other}: give this one another embedded.port"
                ));
            }
            let config = BrokerConfig {
                listen: SocketAddr::new(self.settings.bind, port),
                advertised: self.settings.advertised_host.as_ref().map(|h| format!("{h}:{port}")),
                data_dir: spec.data_dir.as_ref().map(PathBuf::from),
                ..BrokerConfig::default()
            };
            let broker = Broker::start(config).await.map_err(|e| e.to_string())?;
            let bootstrap = broker.bootstrap();
            tracing::info!(cluster, bootstrap, data_dir = ?spec.data_dir, "embedded broker started");
            running.insert(cluster.to_owned(), (spec.clone(), broker));
            Ok(bootstrap)
        })
    }

    fn stop<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let stopped = self.running.lock().await.remove(cluster);
            if let Some((_, broker)) = stopped {
                tracing::info!(cluster, "KafkaCluster deleted: stopping its embedded broker");
                broker.shutdown().await;
            }
        })
    }
}
