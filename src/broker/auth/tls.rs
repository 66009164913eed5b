//! The listener's TLS (rustls with ring): the server certificate chain and key from PEM and, for mutual TLS,
//! the CA bundle that client certificates must chain to (a client without one fails the handshake).

use super::TlsIdentity;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS server certificate: {0}")]
    Certificate(String),
    #[error("TLS server key: {0}")]
    Key(String),
    #[error("TLS client CA: {0}")]
    ClientCa(String),
}

pub fn acceptor(identity: &TlsIdentity) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&identity.certificate_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate(format!("not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("the PEM holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem)
        .map_err(|e| TlsError::Key(format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    let builder = match &identity.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| TlsError::ClientCa(format!("not valid PEM: {e}")))?;
                roots.add(cert).map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsError::ClientCa("the PEM holds no certificate".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Key(format!("does not match the certificate: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
