//! The operator's host for the brokers of `spec.embedded` KafkaClusters: one in-process broker per cluster,
//! started when the cluster is first reconciled, restarted when its port or data dir changes, reconfigured
//! in place when its users or TLS change, stopped when the cluster is deleted and, gracefully (logs
//! fsynced), when the operator stops. Only `main` knows both the broker and the controllers (DESIGN.md); the
//! controllers reach these brokers over the wire like any other cluster.
//!
//! Each broker also gets an internal listener on loopback (SASL_PLAINTEXT, SCRAM-SHA-512) where the operator
//! connects as `kafka-group-operator` with a password generated for that broker and never stored anywhere
//! but in this process and, salted, in the broker's credential store.

use futures_util::future::BoxFuture;
use kafka_group_operator::api::EmbeddedMechanism;
use kafka_group_operator::broker::auth::{Allow, Mechanism, SecurityConfig, TlsIdentity, User};
use kafka_group_operator::broker::{Broker, BrokerConfig};
use kafka_group_operator::controller::embedded::{EmbeddedHost, EmbeddedServe, OPERATOR_USER, Served};
use kafka_group_operator::kafka::{SaslConfig, SaslMechanism, Secret};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};

/// Where the embedded brokers listen and what they tell clients.
#[derive(Clone, Debug)]
pub struct EmbeddedSettings {
    /// The interface the brokers bind to (the chart sets it: applications connect through the operator's Service).
    pub bind: IpAddr,
    /// The host the brokers advertise to clients (e.g. the operator Service's DNS name); None: the bound
    /// address, 127.0.0.1 when bound to all interfaces.
    pub advertised_host: Option<String>,
    /// Every `spec.embedded.dataDir` must lie under this directory.
    pub data_root: PathBuf,
}

struct Running {
    serving: EmbeddedServe,
    broker: Broker,
    /// The operator's own password on this broker.
    operator_password: Secret,
}

pub struct InProcessBrokers {
    settings: EmbeddedSettings,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
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
        let running: Vec<(String, Running)> = self.running.lock().await.drain().collect();
        for (cluster, running) in running {
            tracing::info!(cluster, "stopping the embedded broker");
            running.broker.shutdown().await;
        }
    }
}

fn served(broker: &Broker, password: &Secret) -> Served {
    Served {
        bootstrap: broker.internal_bootstrap().unwrap_or_else(|| broker.bootstrap()),
        credential: Some(SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: OPERATOR_USER.to_owned(),
            password: password.clone(),
        }),
    }
}

/// The broker's security as the KafkaCluster declares it, plus the operator's own user (allowed everything).
fn security(serve: &EmbeddedServe, operator_password: &Secret) -> SecurityConfig {
    let mechanisms = match serve.mechanism {
        EmbeddedMechanism::None => Vec::new(),
        EmbeddedMechanism::Plain => vec![Mechanism::Plain],
        EmbeddedMechanism::ScramSha256 => vec![Mechanism::ScramSha256],
        EmbeddedMechanism::ScramSha512 => vec![Mechanism::ScramSha512],
    };
    let mut users: Vec<User> = serve
        .users
        .iter()
        .map(|u| User {
            name: u.name.clone(),
            password: u.password.as_ref().map(|p| p.expose().to_vec()),
            allow: u.allow.clone().map(|(topics, groups)| Allow { topics, groups }),
        })
        .collect();
    users.push(User {
        name: OPERATOR_USER.to_owned(),
        password: Some(operator_password.expose().to_vec()),
        allow: None,
    });
    SecurityConfig {
        mechanisms,
        tls: serve.tls.as_ref().map(|t| TlsIdentity {
            certificate_chain_pem: t.certificate_chain_pem.clone(),
            private_key_pem: t.private_key_pem.expose().to_vec(),
            client_ca_pem: t.client_ca_pem.clone(),
        }),
        users: Some(users),
    }
}

fn generated_password() -> Secret {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The data dir of `serve`, checked: under the data root (lexically: no `..`, no other root), and not the
/// data dir of another running cluster, nor inside or around one.
fn data_dir<'a>(
    root: &Path,
    cluster: &str,
    serve: &EmbeddedServe,
    others: impl Iterator<Item = (&'a String, &'a Running)>,
) -> Result<Option<PathBuf>, String> {
    let Some(dir) = serve.spec.data_dir.as_deref().map(PathBuf::from) else {
        return Ok(None);
    };
    let normal = dir
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !normal || !dir.starts_with(root) || dir == root {
        return Err(format!(
            "embedded.dataDir {} must be a directory under {} (the operator's data volume, --embedded-data-root), without `..`",
            dir.display(),
            root.display()
        ));
    }
    for (other, running) in others {
        if other == cluster {
            continue;
        }
        if let Some(theirs) = running.serving.spec.data_dir.as_deref().map(Path::new)
            && (theirs.starts_with(&dir) || dir.starts_with(theirs))
        {
            return Err(format!(
                "embedded.dataDir {} overlaps {} of KafkaCluster {other}: each embedded cluster needs a directory of its own",
                dir.display(),
                theirs.display()
            ));
        }
    }
    Ok(Some(dir))
}

impl EmbeddedHost for InProcessBrokers {
    fn ensure<'a>(&'a self, cluster: &'a str, serve: &'a EmbeddedServe) -> BoxFuture<'a, Result<Served, String>> {
        Box::pin(async move {
            let mut running = self.running.lock().await;
            if let Some(reason) = running.get(cluster).and_then(|r| r.broker.offline()) {
                // What an administrator does for Kafka after a failed fsync: restart it. Recovery cuts the log
                // where it stops being whole; if the disk still fails, the start fails and the cluster says so.
                tracing::warn!(cluster, %reason, "restarting the embedded broker: its log directory went offline");
                if let Some(previous) = running.remove(cluster) {
                    previous.broker.shutdown().await;
                }
            }
            if let Some(current) = running.get_mut(cluster) {
                if current.serving == *serve {
                    return Ok(served(&current.broker, &current.operator_password));
                }
                if current.serving.spec.port() == serve.spec.port()
                    && current.serving.spec.data_dir == serve.spec.data_dir
                {
                    let config = security(serve, &current.operator_password);
                    current.broker.reconfigure(&config).map_err(|e| e.to_string())?;
                    tracing::info!(
                        cluster,
                        protocol = config.protocol(),
                        "the embedded broker's users or TLS changed: applied"
                    );
                    current.serving = serve.clone();
                    return Ok(served(&current.broker, &current.operator_password));
                }
            }
            if let Some(previous) = running.remove(cluster) {
                tracing::info!(cluster, "the embedded broker's port or data dir changed: restarting it");
                previous.broker.shutdown().await;
            }
            let port = serve.spec.port();
            if let Some(other) = running
                .iter()
                .find(|(_, r)| r.serving.spec.port() == port)
                .map(|(c, _)| c)
            {
                return Err(format!(
                    "port {port} is taken by the embedded broker of KafkaCluster {other}: give this one another embedded.port"
                ));
            }
            let data_dir = data_dir(&self.settings.data_root, cluster, serve, running.iter())?;
            let operator_password = generated_password();
            let config = BrokerConfig {
                listen: SocketAddr::new(self.settings.bind, port),
                advertised: self.settings.advertised_host.as_ref().map(|h| format!("{h}:{port}")),
                data_dir,
                security: security(serve, &operator_password),
                internal_listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
                ..BrokerConfig::default()
            };
            let protocol = config.security.protocol();
            let broker = Broker::start(config).await.map_err(|e| e.to_string())?;
            tracing::info!(cluster, bootstrap = broker.bootstrap(), protocol, data_dir = ?serve.spec.data_dir, "embedded broker started");
            let answer = served(&broker, &operator_password);
            running.insert(
                cluster.to_owned(),
                Running {
                    serving: serve.clone(),
                    broker,
                    operator_password,
                },
            );
            Ok(answer)
        })
    }

    fn stop<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let stopped = self.running.lock().await.remove(cluster);
            if let Some(running) = stopped {
                tracing::info!(
                    cluster,
                    "stopping the embedded broker (KafkaCluster deleted, or its shard went to another replica)"
                );
                running.broker.shutdown().await;
            }
        })
    }
}
