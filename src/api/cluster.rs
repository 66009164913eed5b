//! `KafkaCluster`: how the operator reaches one Kafka cluster. Credentials live in Secrets that the spec
//! references; they never appear in the spec, the status, Events or logs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// How to reach a Kafka cluster (Apache Kafka, Redpanda, MSK, …) that consumer groups live on.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kafkagroups.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    category = "kafka",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Brokers","type":"integer","jsonPath":".status.brokerCount"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.kafkaVersion"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.bootstrapServers) != has(self.embedded)").message("set exactly one of bootstrapServers (an external Kafka cluster) and embedded: {} (the operator's own broker)"))]
#[x_kube(validation = Rule::new("!has(self.embedded) || (!has(self.tls) && !has(self.sasl))").message("tls and sasl are for external clusters: the operator connects to its embedded broker with a credential of its own; declare the broker's TLS and users in embedded.authentication"))]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Brokers to bootstrap from, as `host:port` (e.g. `kafka-0.kafka.svc:9092`). The others are discovered
    /// from the cluster's metadata. Either this or `embedded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("bootstrapServers needs at least one host:port"))]
    #[x_kube(validation = Rule::new(r"self.all(s, s.matches('^([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$'))").message("each bootstrap server must be host:port, e.g. kafka-0.kafka:9092"))]
    #[schemars(length(max = 64), inner(length(max = 261)))]
    pub bootstrap_servers: Vec<String>,

    /// Client id sent to the brokers (appears in their logs and quotas). Default: `kafka-group-operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 255").message("clientId must be 1 to 255 characters"))]
    #[schemars(length(max = 256))]
    pub client_id: Option<String>,

    /// TLS to the brokers. Present (even empty, `tls: {}`) means TLS on, verified against the system's
    /// trust store unless `caSecretRef` names a CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// SASL authentication (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512). Use it with `tls` unless the network is
    /// trusted: PLAIN sends the password as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSpec>,

    /// Allow `sasl` without `tls`, i.e. the SASL exchange over a plaintext connection (`SASL_PLAINTEXT`), where
    /// anyone on the network path can read a PLAIN password or replay a SCRAM exchange. Default: false, and the
    /// operator then refuses to connect (`Ready=False`, reason `InsecureCredentials`) before reading the
    /// password's Secret or sending anything. Set it only for a network you trust.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plaintext_credentials: bool,

    /// Serve a single-node, Kafka-wire-compatible broker from the operator process for this cluster
    /// (development, demos, CI of consumer applications). The operator reaches it over the wire like any other
    /// cluster; applications reach it through the operator's Service. `embedded: {}` keeps everything in
    /// memory on port 9092.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedSpec>,
}

/// The embedded broker of a KafkaCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedSpec {
    /// The port the broker listens on in the operator's pod. Default: 9092. Each embedded cluster needs its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("embedded.port must be a TCP port, 1 to 65535"))]
    pub port: Option<i32>,
    /// A directory on a volume mounted into the operator's pod (e.g. a PersistentVolumeClaim): records,
    /// topics and committed offsets are kept there and survive restarts. Default: in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("embedded.dataDir must be an absolute path in the operator's pod, e.g. /var/lib/kafka-group-operator/dev"))]
    #[x_kube(validation = Rule::new("!self.contains('/../') && !self.endsWith('/..')").message("embedded.dataDir must not contain '..': give a directory under the operator's data volume"))]
    #[schemars(length(max = 4096))]
    pub data_dir: Option<String>,
    /// Who may connect. Default: SCRAM-SHA-512 with no users, so only the operator itself can connect until
    /// users are declared. Unauthenticated access needs `mechanism: none` said explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<EmbeddedAuthentication>,
}

/// How clients of the embedded broker authenticate (SASL_PLAINTEXT, SASL_SSL, SSL or, with `mechanism: none`
/// and no `tls`, PLAINTEXT).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.mechanism) && self.mechanism == 'none') || !has(self.users) || self.users.all(u, has(u.passwordSecretRef))").message("users of a SASL mechanism (SCRAM-SHA-512, the default, SCRAM-SHA-256 or PLAIN) need passwordSecretRef: the key of a Secret holding the user's password"))]
#[x_kube(validation = Rule::new("!has(self.mechanism) || self.mechanism != 'none' || !has(self.users) || size(self.users) == 0 || (has(self.tls) && has(self.tls.clientCaSecretRef))").message("with mechanism none, users are client certificates (a user's name is its certificate's CN): set tls.clientCaSecretRef to require them, or choose a SASL mechanism for users with passwords"))]
#[x_kube(validation = Rule::new("!has(self.mechanism) || self.mechanism != 'none' || !has(self.users) || self.users.all(u, !has(u.passwordSecretRef))").message("with mechanism none, users authenticate with their client certificate, not a password: remove passwordSecretRef, or choose a SASL mechanism"))]
#[x_kube(validation = Rule::new("!has(self.users) || self.users.all(u, self.users.exists_one(v, v.name == u.name))").message("each user name may appear only once"))]
pub struct EmbeddedAuthentication {
    /// `SCRAM-SHA-512` (default), `SCRAM-SHA-256`, `PLAIN` (use it with `tls`: the password travels as is),
    /// or `none` (no SASL: anyone who can reach the port may connect, or with `tls.clientCaSecretRef` anyone
    /// with a client certificate from that CA, whose CN is its user name).
    #[serde(default)]
    pub mechanism: EmbeddedMechanism,
    /// The users who may connect. With a SASL mechanism each has a password in a Secret (labelled
    /// `kafkagroups.dev/credentials: "true"`). With `mechanism: none` and `tls.clientCaSecretRef` each is a client
    /// certificate, the one whose subject CN is the user's name (as Kafka's
    /// `ssl.principal.mapping.rules=RULE:^CN=(.*?),.*$/$1/` maps it), without a password: then a certificate whose
    /// CN is not declared may name no topic and no group, while without users every certificate from the CA
    /// may name everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub users: Vec<EmbeddedUser>,
    /// Serve TLS with the certificate of a `kubernetes.io/tls` Secret (e.g. from cert-manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EmbeddedTls>,
}

impl Default for EmbeddedAuthentication {
    fn default() -> Self {
        EmbeddedAuthentication {
            mechanism: EmbeddedMechanism::ScramSha512,
            users: Vec::new(),
            tls: None,
        }
    }
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmbeddedMechanism {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// One user of the embedded broker.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedUser {
    /// The SASL user name or, with `mechanism: none`, the CN of the user's client certificate.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 255").message("a user name must be 1 to 255 characters"))]
    #[x_kube(validation = Rule::new("self != 'kafka-group-operator'").message("the user name kafka-group-operator is the operator's own: choose another"))]
    #[schemars(length(max = 256))]
    pub name: String,
    /// Where the password is: a key of a Secret in the same namespace. Required with a SASL mechanism; not
    /// given with `mechanism: none`, where the user is a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// What the user may name. Default: every topic and group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<EmbeddedAllow>,
}

/// Topic and group name prefixes a user is limited to (`""` allows every name).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedAllow {
    /// Topic name prefixes: produce, fetch, list offsets, create, delete, describe. Empty: no topic.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 249)))]
    pub topics: Vec<String>,
    /// Group id prefixes: join, commit, fetch offsets, describe, delete. Empty: no group.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 255)))]
    pub groups: Vec<String>,
}

/// The embedded broker's TLS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedTls {
    /// A Secret with `tls.crt` (the certificate chain) and `tls.key` (its private key), in PEM.
    #[x_kube(validation = Rule::new("size(self) > 0").message("tls.secretName needs the Secret's name"))]
    pub secret_name: String,
    /// Mutual TLS: every client must present a certificate issued by the CA(s) in this key (PEM), e.g. the
    /// `ca.crt` of a cert-manager Secret. With `mechanism: none` the certificate's subject CN is the client's
    /// user name (a certificate without a CN is refused); with SASL the SASL user is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_secret_ref: Option<SecretKeyRef>,
}

impl EmbeddedSpec {
    pub const DEFAULT_PORT: i32 = 9092;

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(Self::DEFAULT_PORT).clamp(1, 65535) as u16
    }
}

/// TLS settings; certificates and keys come from Secrets in the KafkaCluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// The CA certificate(s) to verify the brokers with (PEM). Default: the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,

    /// A client certificate for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRef>,

    /// The name to verify in the brokers' certificates, when it differs from the bootstrap host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// One key of one Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[x_kube(validation = Rule::new("size(self) > 0").message("a Secret reference needs the Secret's name"))]
    pub name: String,
    /// The key within the Secret's data.
    #[x_kube(validation = Rule::new("size(self) > 0").message("a Secret reference needs the key within the Secret"))]
    pub key: String,
}

/// A client certificate and its private key (PEM; PKCS#8, PKCS#1 or SEC1), e.g. a `kubernetes.io/tls` Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificateRef {
    /// The Secret holding both.
    #[x_kube(validation = Rule::new("size(self) > 0").message("clientCertificate needs the Secret's name"))]
    pub secret_name: String,
    /// Key of the certificate chain. Default: `tls.crt`.
    #[serde(default = "default_cert_key")]
    pub certificate_key: String,
    /// Key of the private key. Default: `tls.key`.
    #[serde(default = "default_key_key")]
    pub private_key_key: String,
}

fn default_cert_key() -> String {
    "tls.crt".to_owned()
}
fn default_key_key() -> String {
    "tls.key".to_owned()
}

/// SASL mechanism and credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SaslSpec {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanismName,
    /// The user name.
    #[x_kube(validation = Rule::new("size(self) > 0").message("sasl.username must not be empty"))]
    pub username: String,
    /// Where the password is: a key of a Secret in the same namespace.
    pub password_secret_ref: SecretKeyRef,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanismName {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// What the operator last observed of the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// `Ready`: whether the operator can reach and authenticate to the cluster.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The cluster's id (KRaft cluster id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Brokers in the cluster's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_count: Option<i32>,
    /// The Kafka version range the brokers' API versions imply (e.g. `>= 4.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
}
