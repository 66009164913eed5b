//! TLS for broker connections with rustls (ring): trust anchors and an optional client certificate from PEM.

use super::config::TlsConfig;
use super::error::KafkaError;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Builds the rustls client configuration once per client; it is shared by all connections.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, KafkaError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| KafkaError::Config(format!("TLS {what}: {e}"));
    if tls.client_cert_pem.is_some() != tls.client_key_pem.is_some() {
        return Err(KafkaError::Config(
            "mutual TLS needs both a client certificate and its key".into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad("CA bundle is not valid PEM", &e))?;
            if certs.is_empty() {
                return Err(KafkaError::Config("TLS CA bundle holds no certificate".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad("CA certificate rejected", &e))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // Skip system certificates rustls cannot parse, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(KafkaError::Config(
                    "TLS without a CA bundle needs the system's trust store, and none was found".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", &e))?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert_pem), Some(key_pem)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad("client certificate is not valid PEM", &e))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.expose())
                .map_err(|e| bad("client key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)", &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad("client certificate and key do not match", &e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Performs the TLS handshake on an established TCP connection to `addr` (`host:port`).
pub async fn handshake(
    config: Arc<rustls::ClientConfig>,
    server_name: Option<&str>,
    addr: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, KafkaError> {
    let host = server_name.unwrap_or_else(|| host_of(addr));
    let name = ServerName::try_from(host.to_owned()).map_err(|e| KafkaError::Tls {
        broker: addr.to_owned(),
        message: format!("{host:?} is not a valid server name: {e}"),
    })?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| KafkaError::Tls {
            broker: addr.to_owned(),
            message: e.to_string(),
        })
}

/// `host` of `host:port`, also for bracketed IPv6 (`[::1]:9092`).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::config::Secret;

    #[test]
    fn host_is_taken_from_ipv4_names_and_ipv6() {
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("kafka-0.kafka:9093"), "kafka-0.kafka");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }

    #[test]
    fn garbage_ca_is_a_configuration_error() {
        let tls = TlsConfig {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..Default::default()
        };
        let err = client_config(&tls).expect_err("must reject");
        assert!(err.to_string().contains("CA bundle holds no certificate"), "{err}");
    }

    #[test]
    fn half_a_client_identity_is_rejected() {
        let tls = TlsConfig {
            client_key_pem: Some(Secret::new("x")),
            ..Default::default()
        };
        let err = client_config(&tls).expect_err("must reject");
        assert!(err.to_string().contains("needs both"), "{err}");
    }
}
