//! How the command line reaches a cluster: bootstrap servers with TLS files and SASL (the password from an
//! environment variable or a file, never a flag that `ps` would show), or a KafkaCluster manifest whose
//! Secrets are read through a kubeconfig, or the name of a KafkaCluster read from the API server
//! (`kube_context` says which one).

use super::kube_context::{self, KubeContext, KubeSelection};
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
    /// Connect as a KafkaCluster says (bootstrap servers, TLS, SASL, with the Secrets it names read through the
    /// Kubernetes API, as the operator reads them): a manifest file (when a file of that name exists), else
    /// the NAME of a KafkaCluster read from the API server, in --namespace of --context. An embedded cluster is
    /// reached with --bootstrap-server instead.
    #[arg(long, value_name = "NAME|MANIFEST")]
    pub cluster: Option<String>,
    /// Kubeconfig for --cluster. Default: $KUBECONFIG (a list of files, merged as kubectl does),
    /// ~/.kube/config, or the in-cluster service account. Not needed for a manifest that names no Secret.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context for --cluster. Default: the current context.
    #[arg(long, value_name = "CONTEXT", requires = "cluster")]
    pub context: Option<String>,
    /// Namespace of --cluster's KafkaCluster (and of a manifest's Secrets when it names none). Default: the
    /// context's namespace, else `default`.
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
        if let Some(cluster) = &self.cluster {
            return match ClusterSource::of(cluster)? {
                ClusterSource::Manifest(path) => self.config_from_manifest(&path).await,
                ClusterSource::Name(name) => self.config_from_api(&name).await,
            };
        }
        if self.bootstrap_servers.is_empty() {
            bail!(
                "no cluster to talk to: pass --bootstrap-server host:port (or set KGO_BOOTSTRAP_SERVER), or --cluster with a KafkaCluster (its name, or a manifest file)"
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

    /// The Kubernetes API the command reaches, if it reaches one: for `--cluster NAME`, or a `--cluster`
    /// manifest with `--kubeconfig`/`--context` given. `plan` and `apply` read the operator's records of
    /// applied resets there (`cli::ledger`).
    pub async fn kube_context(&self) -> Result<Option<KubeContext>> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let explicit = self.kubeconfig.is_some() || self.context.is_some();
        match ClusterSource::of(cluster)? {
            ClusterSource::Name(_) => Ok(Some(kube_context::resolve(self.kube_selection()).await?)),
            ClusterSource::Manifest(_) if explicit => Ok(Some(kube_context::resolve(self.kube_selection()).await?)),
            ClusterSource::Manifest(_) => Ok(None),
        }
    }

    /// Which kubeconfig, context and namespace the flags select (`kube_context::resolve` resolves it).
    pub fn kube_selection(&self) -> KubeSelection<'_> {
        KubeSelection {
            kubeconfig: self.kubeconfig.as_deref(),
            context: self.context.as_deref(),
            namespace: self.namespace.as_deref(),
        }
    }

    async fn config_from_manifest(&self, path: &Path) -> Result<ClientConfig> {
        let mut cluster: KafkaCluster = manifest::read_cluster(path)?;
        // A cluster without Secrets (no SASL, no CA or client certificate) needs no Kubernetes API.
        let kube = if names_secrets(&cluster) {
            Some(kube_context::resolve(self.kube_selection()).await?)
        } else {
            None
        };
        if cluster.metadata.namespace.is_none() {
            let default = kube.as_ref().map_or("default", |k| k.namespace.as_str());
            cluster.metadata.namespace = Some(self.namespace.clone().unwrap_or_else(|| default.to_owned()));
        }
        self.client_config(kube.as_ref().map(|k| &k.client), &cluster, &path.display().to_string())
            .await
    }

    /// The KafkaCluster `name` read from the API server, in the namespace of the selected context.
    async fn config_from_api(&self, name: &str) -> Result<ClientConfig> {
        let kube = kube_context::resolve(self.kube_selection()).await?;
        let (ns, context) = (&kube.namespace, &kube.context);
        let api = kube::Api::<KafkaCluster>::namespaced(kube.client.clone(), ns);
        let cluster = api
            .get_opt(name)
            .await
            .with_context(|| format!("cannot read KafkaCluster {name} in namespace {ns} (context {context})"))?
            .ok_or_else(|| {
                anyhow!(
                    "KafkaCluster {name} not found in namespace {ns} (context {context}): `kubectl get kafkaclusters -n {ns}` lists them; \
                     pass -n/--namespace or --context for another, or a manifest file"
                )
            })?;
        let what = format!("KafkaCluster {name} in namespace {ns} (context {context})");
        self.client_config(Some(&kube.client), &cluster, &what).await
    }

    /// The operator's client configuration for `cluster` (`what` names it in errors), with this command's
    /// timeouts and client id (unless the cluster sets one).
    async fn client_config(
        &self,
        kube: Option<&kube::Client>,
        cluster: &KafkaCluster,
        what: &str,
    ) -> Result<ClientConfig> {
        let settings = ClientSettings {
            request_timeout: self.timeout.min(Duration::from_secs(10)),
            operation_timeout: self.timeout,
        };
        let mut config = cluster_client_config(kube, cluster, &settings)
            .await
            .map_err(|e| anyhow!("{what}: {e}"))?;
        let client_id = config.client_id.clone();
        self.apply_settings(&mut config);
        if cluster.spec.client_id.is_some() {
            config.client_id = client_id;
        }
        Ok(config)
    }
}

/// What `--cluster` names: a manifest file when a file of that name exists, else a KafkaCluster's name.
#[derive(Debug, PartialEq)]
enum ClusterSource {
    Manifest(PathBuf),
    Name(String),
}

impl ClusterSource {
    fn of(value: &str) -> Result<ClusterSource> {
        let path = Path::new(value);
        if path.exists() {
            return Ok(ClusterSource::Manifest(path.to_owned()));
        }
        // `main.yaml` that does not exist is a mistyped file, not a cluster named so.
        let looks_like_a_file = [".yaml", ".yml", ".json"].iter().any(|x| value.ends_with(x));
        if is_object_name(value) && !looks_like_a_file {
            return Ok(ClusterSource::Name(value.to_owned()));
        }
        bail!("--cluster {value}: no such file, and not a KafkaCluster name (lowercase letters, digits, '-' and '.')")
    }
}

/// A Kubernetes object name (RFC 1123 subdomain): what a KafkaCluster can be called.
fn is_object_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_a_manifest_and_anything_else_a_name_if_it_can_be_one() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("main");
        std::fs::write(&file, "").expect("write");
        let file = file.display().to_string();
        assert_eq!(
            ClusterSource::of(&file).expect("a cluster source"),
            ClusterSource::Manifest(file.clone().into())
        );
        assert_eq!(
            ClusterSource::of("main").expect("a cluster source"),
            ClusterSource::Name("main".into())
        );
        assert_eq!(
            ClusterSource::of("kafka.prod-1").expect("a cluster source"),
            ClusterSource::Name("kafka.prod-1".into())
        );
        for missing in ["clusters/main.yaml", "main.yaml"] {
            let error = ClusterSource::of(missing).expect_err("refused").to_string();
            assert!(error.contains("no such file"), "{error}");
        }
        for bad in ["Main", "-a", "a..b", "a_b", ""] {
            assert!(ClusterSource::of(bad).is_err(), "{bad}");
        }
    }
}
