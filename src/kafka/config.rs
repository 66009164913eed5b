//! How the client reaches a cluster: bootstrap servers, TLS, SASL and time limits. Credentials are held in
//! `Secret`s whose Debug output is redacted, so they never reach logs.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` of one or more brokers; the rest are discovered from metadata.
    pub bootstrap_servers: Vec<String>,
    pub client_id: String,
    pub tls: Option<TlsConfig>,
    pub sasl: Option<SaslConfig>,
    /// How long one request may wait for its response.
    pub request_timeout: Duration,
    /// How long one operation (with its retries, reconnects and coordinator lookups) may take.
    pub operation_timeout: Duration,
    pub connect_timeout: Duration,
    /// Largest response frame accepted.
    pub max_frame_bytes: usize,
}

impl ClientConfig {
    pub fn new(bootstrap_servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClientConfig {
            bootstrap_servers: bootstrap_servers.into_iter().map(Into::into).collect(),
            client_id: "kafka-group-operator".to_owned(),
            tls: None,
            sasl: None,
            request_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_frame_bytes: crate::wire::DEFAULT_MAX_FRAME,
        }
    }
}

/// TLS from PEM: the CA bundle to trust (the system roots when absent) and, for mutual TLS, a client
/// certificate chain and its private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    pub ca_pem: Option<Vec<u8>>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Secret>,
    /// Name to verify the broker's certificate against, when it differs from the host in the address.
    pub server_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's name in Kafka's SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            other => Err(format!(
                "unsupported SASL mechanism {other:?} (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// Bytes that must not be printed: Debug shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let sasl = SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: "alice".into(),
            password: Secret::new("hunter2"),
        };
        let text = format!("{sasl:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("7 bytes redacted"), "{text}");
    }

    #[test]
    fn mechanisms_parse_case_insensitively_and_reject_unknown_ones() {
        assert_eq!("scram-sha-256".parse::<SaslMechanism>(), Ok(SaslMechanism::ScramSha256));
        assert!("GSSAPI".parse::<SaslMechanism>().is_err());
    }
}
