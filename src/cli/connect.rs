//! How the command line reaches a cluster: bootstrap servers with TLS files and SASL (the password from an
//! environment variable or a file, never a flag that `ps` would show), or a KafkaCluster manifest whose
//! Secrets are read through a kubeconfig.

use super::manifest;
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use kafka_group_operator::api::KafkaCluster;
use kafka_group_operator::controller::clients::{ClientSettings, cluster_client_config, names_secrets};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient, SaslConfig, SaslMechanism, Secret, TlsConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable the SASL password is read from unless --sasl-password-file or
/// --sasl-password-env says otherwise.
pub const DEFAULT_PASSWORD_ENV: &str = "KGO_SASL_PASSWORD";

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Brokers to bootstrap from, `host:port`, comma-separated or repeated. --cluster takes precedence.
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        env = "KGO_BOOTSTRAP_SERVER",
        value_delimiter = ','
    )]
    pub bootstrap_servers: Vec<String>,
    /// Connect with TLS (implied by --ca-file, --cert-file and --key-file). Without --ca-file the system's
    /// trusted roots verify the broker.
    #[arg(long)]
    pub tls: bool,
    /// PEM bundle of the certificate authorities that sign the brokers' certificates.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for mutual TLS; needs --key-file.
    #[arg(long, value_name = "PEM", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of --cert-file.
    #[arg(long, value_name = "PEM", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Name to verify the brokers' certificates against, when it differs from the host in their address.
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Needs --sasl-username and a password.
    #[arg(long, value_name = "MECHANISM", requires = "sasl_username")]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    #[arg(long, env = "KGO_SASL_USERNAME", requires = "sasl_mechanism")]
    pub sasl_username: Option<String>,
    /// Read the SASL password from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "sasl_password_env")]
    pub sasl_password_file: Option<PathBuf>,
    /// Read the SASL password from this environment variable [default: KGO_SASL_PASSWORD].
    #[arg(long, value_name = "VAR")]
    pub sasl_password_env: Option<String>,
    /// Connect as a KafkaCluster manifest says (bootstrap servers, TLS, SASL), reading the Secrets it names
    /// through --kubeconfig. An embedded cluster is reached with --bootstrap-server instead.
    #[arg(long, value_name = "MANIFEST")]
    pub cluster: Option<PathBuf>,
    /// Kubeconfig for --cluster's Secrets (not needed when it names none). Default: $KUBECONFIG,
    /// ~/.kube/config.
    #[arg(long, env = "KUBECONFIG", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of --cluster's Secrets when its manifest names none. Default: the kubeconfig's.
    #[arg(long, short = 'n', requires = "cluster")]
    pub namespace: Option<String>,
    /// Client id sent to the brokers.
    #[arg(long, default_value = "kafka-group-operator-cli")]
    pub client_id: String,
    /// How long one Kafka operation may take, retries included (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = super::duration_arg)]
    pub timeout: Duration,
}

impl ConnectArgs {
    /// A client for the cluster, after checking that it answers (so that an unreachable broker or a failed
    /// login is reported as such, up front).
    pub async fn client(&self) -> Result<KafkaClient> {
        let config = self.config().await?;
        let bootstrap = config.bootstrap_servers.join(",");
        let client = KafkaClient::new(config).map_err(|e| anyhow!("{e}"))?;
        client.metadata().await.map_err(|e| super::kafka_error(e, &bootstrap))?;
        Ok(client)
    }

    async fn config(&self) -> Result<ClientConfig> {
        if let Some(path) = &self.cluster {
            return self.config_from_cluster(path).await;
        }
        if self.bootstrap_servers.is_empty() {
            bail!(
                "no cluster to talk to: pass --bootstrap-server host:port (or set KGO_BOOTSTRAP_SERVER), or --cluster with a KafkaCluster manifest"
            );
        }
        let mut config = ClientConfig::new(self.bootstrap_servers.iter().map(|s| s.trim().to_owned()));
        self.apply_settings(&mut config);
        if self.tls || self.ca_file.is_some() || self.cert_file.is_some() {
            config.tls = Some(TlsConfig {
                ca_pem: self.ca_file.as_deref().map(read_file).transpose()?,
                client_cert_pem: self.cert_file.as_deref().map(read_file).transpose()?,
                client_key_pem: self.key_file.as_deref().map(read_file).transpose()?.map(Secret::new),
                server_name: self.tls_server_name.clone(),
            });
        }
        if let (Some(mechanism), Some(username)) = (self.sasl_mechanism, &self.sasl_username) {
            config.sasl = Some(SaslConfig {
                mechanism,
                username: username.clone(),
                password: Secret::new(self.password()?),
            });
        }
        Ok(config)
    }

    fn apply_settings(&self, config: &mut ClientConfig) {
        config.client_id = self.client_id.clone();
        config.operation_timeout = self.timeout;
        config.request_timeout = self.timeout.min(Duration::from_secs(10));
        config.connect_timeout = self.timeout.min(Duration::from_secs(10));
    }

    fn password(&self) -> Result<Vec<u8>> {
        if let Some(path) = &self.sasl_password_file {
            let mut bytes = read_file(path)?;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            return Ok(bytes);
        }
        let var = self.sasl_password_env.as_deref().unwrap_or(DEFAULT_PASSWORD_ENV);
        std::env::var_os(var).map(|v| v.into_encoded_bytes()).ok_or_else(|| {
            anyhow!("no SASL password: set {var} in the environment, or pass --sasl-password-file (a password is never a flag)")
        })
    }

    async fn config_from_cluster(&self, path: &Path) -> Result<ClientConfig> {
        let mut cluster: KafkaCluster = manifest::read_cluster(path)?;
        // A cluster without Secrets (no SASL, no CA or client certificate) needs no Kubernetes API.
        let kube = if names_secrets(&cluster) {
            Some(kube_client(self.kubeconfig.as_deref()).await?)
        } else {
            None
        };
        if cluster.metadata.namespace.is_none() {
            let default = kube.as_ref().map_or("default", |k| k.default_namespace());
            cluster.metadata.namespace = Some(self.namespace.clone().unwrap_or_else(|| default.to_owned()));
        }
        let settings = ClientSettings {
            request_timeout: self.timeout.min(Duration::from_secs(10)),
            operation_timeout: self.timeout,
        };
        let mut config = cluster_client_config(kube.as_ref(), &cluster, &settings)
            .await
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let client_id = config.client_id.clone();
        self.apply_settings(&mut config);
        if cluster.spec.client_id.is_some() {
            config.client_id = client_id;
        }
        Ok(config)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A Kubernetes client from a kubeconfig file, or the default one ($KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not running in a cluster: pass --kubeconfig or set KUBECONFIG")?,
    };
    Ok(kube::Client::try_from(config)?)
}
