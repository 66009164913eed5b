//! One Kafka client (connection pool) per KafkaCluster, shared by every ConsumerGroup on it. The client is
//! rebuilt when the cluster's spec or a referenced Secret changes (detected by a fingerprint of both), so a
//! rotated password or certificate is picked up without a restart.

use super::Error;
use super::embedded::{EmbeddedHost, Served};
use crate::api::{EmbeddedSpec, KafkaCluster, SecretKeyRef};
use crate::kafka::{ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret as SecretBytes, TlsConfig};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Client settings the operator applies to every cluster.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub request_timeout: Duration,
    pub operation_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            request_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(15),
        }
    }
}

struct Entry {
    fingerprint: u64,
    client: KafkaClient,
    /// The brokers' `offsets.retention.minutes`, when it could be read.
    retention_minutes: Option<i64>,
}

#[derive(Default)]
pub struct ClusterClients {
    entries: Mutex<HashMap<(String, String), Entry>>,
    /// Serves the brokers of `spec.embedded` clusters; None when the operator runs without them.
    embedded: Option<Arc<dyn EmbeddedHost>>,
}

impl ClusterClients {
    pub fn new(embedded: Option<Arc<dyn EmbeddedHost>>) -> ClusterClients {
        ClusterClients {
            entries: Mutex::default(),
            embedded,
        }
    }

    /// Where an embedded cluster's broker listens for the operator, and its credential there, starting the
    /// broker if needed.
    async fn embedded_served(
        &self,
        kube: &kube::Client,
        cluster: &KafkaCluster,
        spec: &EmbeddedSpec,
    ) -> Result<Served, Error> {
        if cluster.metadata.deletion_timestamp.is_some() {
            // Its broker was (or is being) stopped: a group reconcile must not start it again.
            return Err(Error::Config(format!(
                "KafkaCluster {} is being deleted",
                cluster.name_any()
            )));
        }
        let host = self.embedded.as_ref().ok_or_else(|| {
            Error::Config(
                "this operator runs without the embedded broker (started with --embedded-broker=false)".into(),
            )
        })?;
        let (namespace, name) = key_of(cluster);
        let secrets: Api<Secret> = Api::namespaced(kube.clone(), &namespace);
        let serve = super::embedded_serve::resolve(&secrets, spec).await?;
        host.ensure(&format!("{namespace}/{name}"), &serve)
            .await
            .map_err(|e| Error::Config(format!("the embedded broker cannot serve: {e}")))
    }

    /// Stops a deleted embedded cluster's broker and forgets its client.
    pub async fn stop_embedded(&self, cluster: &KafkaCluster) {
        let (namespace, name) = key_of(cluster);
        self.remove(&namespace, &name);
        if let Some(host) = &self.embedded {
            host.stop(&format!("{namespace}/{name}")).await;
        }
    }
    /// The cached client of `cluster`, or a new one built from its spec and Secrets.
    pub async fn get(
        &self,
        kube: &kube::Client,
        cluster: &KafkaCluster,
        settings: &ClientSettings,
    ) -> Result<KafkaClient, Error> {
        if let Some(client) = self.cached(cluster) {
            return Ok(client);
        }
        self.refresh(kube, cluster, settings).await
    }

    fn cached(&self, cluster: &KafkaCluster) -> Option<KafkaClient> {
        let key = key_of(cluster);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .map(|e| e.client.clone())
    }

    /// Re-reads the cluster's Secrets and replaces the client if anything changed.
    pub async fn refresh(
        &self,
        kube: &kube::Client,
        cluster: &KafkaCluster,
        settings: &ClientSettings,
    ) -> Result<KafkaClient, Error> {
        let (bootstrap, credential) = match &cluster.spec.embedded {
            Some(spec) => {
                let served = self.embedded_served(kube, cluster, spec).await?;
                (vec![served.bootstrap], served.credential)
            }
            None => (cluster.spec.bootstrap_servers.clone(), None),
        };
        let (mut config, mut fingerprint) = client_config(Some(kube), cluster, bootstrap, settings).await?;
        if let Some(credential) = credential {
            // The operator's own credential on a broker it serves (new when the broker restarts).
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            fingerprint.hash(&mut hasher);
            credential.username.hash(&mut hasher);
            credential.password.expose().hash(&mut hasher);
            fingerprint = hasher.finish();
            config.sasl = Some(credential);
        }
        let key = key_of(cluster);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get(&key)
            && entry.fingerprint == fingerprint
        {
            return Ok(entry.client.clone());
        }
        let client = KafkaClient::new(config)?;
        tracing::info!(
            namespace = key.0,
            cluster = key.1,
            "building a new Kafka client (spec or Secrets changed)"
        );
        entries.insert(
            key,
            Entry {
                fingerprint,
                client: client.clone(),
                retention_minutes: None,
            },
        );
        Ok(client)
    }

    pub fn set_retention_minutes(&self, cluster: &KafkaCluster, minutes: Option<i64>) {
        if let Some(entry) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&key_of(cluster))
        {
            entry.retention_minutes = minutes;
        }
    }

    pub fn retention_minutes(&self, cluster: &KafkaCluster) -> Option<i64> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key_of(cluster))
            .and_then(|e| e.retention_minutes)
    }

    /// The retention minutes of the cluster a ConsumerGroup references, if its cluster was reconciled.
    pub fn retention_minutes_for(&self, group: &crate::api::ConsumerGroup) -> Option<i64> {
        let key = (
            group.namespace().unwrap_or_default(),
            group.spec.cluster_ref.name.clone(),
        );
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .and_then(|e| e.retention_minutes)
    }

    /// Forgets a deleted cluster's client (its connections close when the last user drops it).
    pub fn remove(&self, namespace: &str, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

fn key_of(cluster: &KafkaCluster) -> (String, String) {
    (cluster.namespace().unwrap_or_default(), cluster.name_any())
}

/// The client configuration of a KafkaCluster with `bootstrapServers`, its TLS and SASL material read from
/// the Secrets it names (for tools outside the operator, such as the command line's `--cluster`). `kube` may
/// be absent when the cluster names no Secret.
pub async fn cluster_client_config(
    kube: Option<&kube::Client>,
    cluster: &KafkaCluster,
    settings: &ClientSettings,
) -> Result<ClientConfig, Error> {
    if cluster.spec.embedded.is_some() {
        return Err(Error::Config(format!(
            "KafkaCluster {} is embedded (served by the operator): connect with --bootstrap-server to the operator's Service instead",
            cluster.name_any()
        )));
    }
    let (config, _) = client_config(kube, cluster, cluster.spec.bootstrap_servers.clone(), settings).await?;
    Ok(config)
}

/// Whether building the cluster's client configuration reads Secrets.
pub fn names_secrets(cluster: &KafkaCluster) -> bool {
    cluster.spec.sasl.is_some()
        || cluster
            .spec
            .tls
            .as_ref()
            .is_some_and(|t| t.ca_secret_ref.is_some() || t.client_certificate.is_some())
}

/// The label a Secret must carry, with the value `"true"`, for the operator to read it: a KafkaCluster can name
/// any Secret of its namespace, and without this opt-in creating one would send that Secret's content to
/// whatever brokers the KafkaCluster points at.
pub const CREDENTIALS_LABEL: &str = "kafkagroups.dev/credentials";

/// Refuses SASL over a plaintext connection to an external cluster unless the KafkaCluster allows it
/// (`allowPlaintextCredentials: true`): checked before any Secret is read or any byte is sent.
fn check_credentials_transport(cluster: &KafkaCluster) -> Result<(), Error> {
    let spec = &cluster.spec;
    let Some(sasl) = &spec.sasl else {
        return Ok(());
    };
    if spec.embedded.is_some() || spec.tls.is_some() || spec.allow_plaintext_credentials {
        return Ok(());
    }
    let mechanism = match sasl.mechanism {
        crate::api::cluster::SaslMechanismName::Plain => "PLAIN (the password as is)",
        crate::api::cluster::SaslMechanismName::ScramSha256 => "SCRAM-SHA-256",
        crate::api::cluster::SaslMechanismName::ScramSha512 => "SCRAM-SHA-512",
    };
    Err(Error::InsecureCredentials(format!(
        "refusing to send SASL credentials ({mechanism}) over a plaintext connection to {}: add `tls` to the \
         KafkaCluster (the brokers' SASL_SSL listener), or set `allowPlaintextCredentials: true` if the network to \
         the brokers is trusted (SASL_PLAINTEXT); nothing was read from the Secret or sent",
        spec.bootstrap_servers.join(",")
    )))
}

/// Builds the client configuration from the spec and the referenced Secrets, with a fingerprint of both.
async fn client_config(
    kube: Option<&kube::Client>,
    cluster: &KafkaCluster,
    bootstrap: Vec<String>,
    settings: &ClientSettings,
) -> Result<(ClientConfig, u64), Error> {
    check_credentials_transport(cluster)?;
    let namespace = cluster.namespace().unwrap_or_default();
    let secrets: Option<Api<Secret>> = kube.map(|k| Api::namespaced(k.clone(), &namespace));
    let secrets = secrets.as_ref();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&cluster.spec)
        .unwrap_or_default()
        .hash(&mut hasher);

    bootstrap.hash(&mut hasher);
    let mut config = ClientConfig::new(bootstrap);
    config.request_timeout = settings.request_timeout;
    config.operation_timeout = settings.operation_timeout;
    config.connect_timeout = settings.request_timeout;
    if let Some(client_id) = &cluster.spec.client_id {
        config.client_id = client_id.clone();
    }
    if let Some(tls) = &cluster.spec.tls {
        let mut tls_config = TlsConfig {
            server_name: tls.server_name.clone(),
            ..Default::default()
        };
        if let Some(ca) = &tls.ca_secret_ref {
            tls_config.ca_pem = Some(secret_value(secrets, ca, &mut hasher).await?);
        }
        if let Some(cert) = &tls.client_certificate {
            let cert_ref = SecretKeyRef {
                name: cert.secret_name.clone(),
                key: cert.certificate_key.clone(),
            };
            let key_ref = SecretKeyRef {
                name: cert.secret_name.clone(),
                key: cert.private_key_key.clone(),
            };
            tls_config.client_cert_pem = Some(secret_value(secrets, &cert_ref, &mut hasher).await?);
            tls_config.client_key_pem = Some(SecretBytes::new(secret_value(secrets, &key_ref, &mut hasher).await?));
        }
        config.tls = Some(tls_config);
    }
    if let Some(sasl) = &cluster.spec.sasl {
        let password = secret_value(secrets, &sasl.password_secret_ref, &mut hasher).await?;
        config.sasl = Some(SaslConfig {
            mechanism: match sasl.mechanism {
                crate::api::cluster::SaslMechanismName::Plain => SaslMechanism::Plain,
                crate::api::cluster::SaslMechanismName::ScramSha256 => SaslMechanism::ScramSha256,
                crate::api::cluster::SaslMechanismName::ScramSha512 => SaslMechanism::ScramSha512,
            },
            username: sasl.username.clone(),
            password: SecretBytes::new(password),
        });
    }
    Ok((config, hasher.finish()))
}

/// The value of one key of a Secret named by a KafkaCluster, fed into `hasher` (the client's fingerprint). The
/// one place the operator reads credentials from Secrets: only a Secret labelled
/// `kafkagroups.dev/credentials: "true"` ([`CREDENTIALS_LABEL`]) is read; any other is `Error::Config` with a
/// message saying how to label it, and none of its content is used.
pub(crate) async fn secret_value(
    secrets: Option<&Api<Secret>>,
    reference: &SecretKeyRef,
    hasher: &mut impl Hasher,
) -> Result<Vec<u8>, Error> {
    let Some(secrets) = secrets else {
        return Err(Error::Config(format!(
            "reading Secret {} needs access to the Kubernetes API (a kubeconfig)",
            reference.name
        )));
    };
    let secret = match secrets.get_opt(&reference.name).await? {
        Some(s) => s,
        None => {
            return Err(Error::Config(format!(
                "Secret {} does not exist (referenced for key {})",
                reference.name, reference.key
            )));
        }
    };
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CREDENTIALS_LABEL))
        .is_some_and(|v| v == "true");
    if !labelled {
        let namespace = secrets.namespace().map(|ns| format!(" -n {ns}")).unwrap_or_default();
        return Err(Error::Config(format!(
            "Secret {name} is not labelled {CREDENTIALS_LABEL}=true: the operator reads only Secrets marked for it; \
             run `kubectl label secret {name}{namespace} {CREDENTIALS_LABEL}=true`",
            name = reference.name
        )));
    }
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&reference.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| Error::Config(format!("Secret {} has no key {}", reference.name, reference.key)))?;
    reference.name.hash(hasher);
    reference.key.hash(hasher);
    value.hash(hasher);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(spec: serde_json::Value) -> KafkaCluster {
        serde_json::from_value(json!({
            "apiVersion": "kafkagroups.dev/v1alpha1", "kind": "KafkaCluster",
            "metadata": {"name": "c", "namespace": "ns"}, "spec": spec
        }))
        .expect("cluster")
    }

    #[test]
    fn sasl_over_plaintext_needs_the_explicit_allowance() {
        let sasl = json!({"mechanism": "PLAIN", "username": "u", "passwordSecretRef": {"name": "pw", "key": "k"}});
        let refused = check_credentials_transport(&cluster(json!({"bootstrapServers": ["k:9092"], "sasl": sasl})));
        let Err(Error::InsecureCredentials(message)) = refused else {
            panic!("SASL over plaintext was not refused: {refused:?}");
        };
        assert!(
            message.contains("k:9092") && message.contains("allowPlaintextCredentials: true"),
            "{message}"
        );
        for allowed in [
            json!({"bootstrapServers": ["k:9092"], "sasl": sasl, "allowPlaintextCredentials": true}),
            json!({"bootstrapServers": ["k:9093"], "sasl": sasl, "tls": {}}),
            json!({"bootstrapServers": ["k:9092"]}),
        ] {
            let result = check_credentials_transport(&cluster(allowed.clone()));
            assert!(result.is_ok(), "{allowed}: {result:?}");
        }
    }

    #[test]
    fn the_allowance_is_left_out_of_manifests_when_false() {
        let spec = cluster(json!({"bootstrapServers": ["k:9092"]})).spec;
        assert!(!spec.allow_plaintext_credentials);
        assert!(
            !serde_json::to_string(&spec)
                .expect("json")
                .contains("allowPlaintextCredentials")
        );
    }
}
