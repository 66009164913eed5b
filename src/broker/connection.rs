//! One client connection: TLS first if the listener has it, then frames read, handled and answered strictly
//! in order (like Kafka, which mutes a connection until its response is sent), so a waiting Fetch or
//! JoinGroup holds back the requests behind it on the same connection and no other. On a SASL listener only
//! ApiVersions and the SASL requests are answered until the client has authenticated (`authenticate`); on an
//! SSL listener that requires client certificates the certificate's CN is the principal. A malformed frame, a
//! failed handshake or a failed authentication closes only this connection.

use super::auth::sasl::SaslState;
use super::auth::{ListenerSecurity, Principal};
use super::authenticate;
use super::dispatch::{self, Caller, Outcome};
use super::{Listener, Node};
use crate::wire::{WireError, read_frame};
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    node: Arc<Node>,
    listener: Arc<Listener>,
    mut stop: watch::Receiver<bool>,
) {
    node.metrics.connections.inc();
    let security = listener.security();
    let reason = match &security.tls {
        None => {
            run(
                stream,
                peer,
                &node,
                &listener,
                &security,
                Principal::anonymous(),
                &mut stop,
            )
            .await
        }
        Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => match principal(&security, tls.get_ref().1.peer_certificates()) {
                Ok(principal) => run(tls, peer, &node, &listener, &security, principal, &mut stop).await,
                Err(e) => Closed::Error("authentication", e.to_string()),
            },
            Ok(Err(e)) => Closed::Error("tls", format!("TLS handshake failed: {e}")),
            Err(_) => Closed::Error("tls", format!("no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}")),
        },
    };
    node.metrics.connections.dec();
    match reason {
        Closed::ByClient | Closed::Shutdown => tracing::debug!(%peer, ?reason, "connection closed"),
        Closed::Error(kind, message) => {
            node.metrics.closed(kind);
            tracing::info!(%peer, reason = kind, message, "closing connection");
        }
    }
}

/// Who a connection is before SASL, if the listener has it: on SSL with required client certificates, the CN.
fn principal(
    security: &ListenerSecurity,
    certificates: Option<&[rustls_pki_types::CertificateDer<'_>]>,
) -> Result<Principal, super::auth::certificate::CertificateNameError> {
    if security.sasl() {
        // Kafka's rule: on SASL_SSL the principal is the SASL user, whatever the certificate says.
        return Ok(Principal::anonymous());
    }
    let principal = security.certificate_principal(certificates)?;
    if security.client_certificates {
        tracing::debug!(principal = principal.name, "client certificate authenticated");
    }
    Ok(principal)
}

#[derive(Debug)]
enum Closed {
    ByClient,
    Shutdown,
    /// A bounded kind for metrics, and what happened.
    Error(&'static str, String),
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    node: &Node,
    listener: &Listener,
    // The snapshot taken at accept: TLS and SASL of one connection come from the same configuration.
    security: &ListenerSecurity,
    // Who the client is without SASL (anonymous, or its certificate's CN).
    principal: Principal,
    stop: &mut watch::Receiver<bool>,
) -> Closed {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let mut sasl = if security.sasl() {
        SaslState::Start
    } else {
        SaslState::Authenticated(principal)
    };
    loop {
        if *stop.borrow() {
            return Closed::Shutdown;
        }
        let frame = tokio::select! {
            frame = tokio::time::timeout(node.config.idle_timeout, read_frame(&mut read, node.config.max_request_bytes)) => frame,
            _ = stop.changed() => return Closed::Shutdown,
        };
        let frame = match frame {
            Err(_) => return Closed::Error("idle", format!("no request for {:?}", node.config.idle_timeout)),
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return Closed::ByClient,
            Ok(Err(WireError::FrameTooLarge { size, limit })) => {
                return Closed::Error("too_large", format!("request of {size} bytes exceeds {limit}"));
            }
            Ok(Err(WireError::NegativeLength(n))) => return Closed::Error("malformed", format!("frame length {n}")),
            Ok(Err(e)) => return Closed::Error("io", e.to_string()),
        };
        node.metrics.bytes_in.inc_by(frame.len() as u64 + 4);
        let outcome = if sasl.raw() {
            // After a v0 SaslHandshake the tokens come as bare frames (no request header).
            authenticate::raw_token(&mut sasl, security, &frame)
        } else {
            match api_key(&frame) {
                Some(ApiKey::SaslHandshake) => authenticate::handshake(&mut sasl, security, frame),
                Some(ApiKey::SaslAuthenticate) => authenticate::authenticate(&mut sasl, security, frame),
                key => {
                    let principal = match &sasl {
                        SaslState::Authenticated(principal) => principal.clone(),
                        // What a client may send before it authenticates (KIP-511's ApiVersions).
                        _ if key == Some(ApiKey::ApiVersions) => Principal::anonymous(),
                        _ => {
                            return Closed::Error(
                                "unauthenticated",
                                format!("a {key:?} request before SASL authentication"),
                            );
                        }
                    };
                    let caller = Caller {
                        peer: Some(peer),
                        endpoint: &listener.endpoint,
                        principal: &principal,
                    };
                    match handle(node, frame, &caller, stop).await {
                        Some(outcome) => outcome,
                        None => return Closed::Shutdown,
                    }
                }
            }
        };
        let (bytes, close) = match outcome {
            Outcome::Respond(bytes) => (bytes, None),
            Outcome::RespondAndClose(bytes, why) => (bytes, Some(why)),
            Outcome::NoResponse => continue,
            Outcome::Close(message) => return Closed::Error("malformed", message),
        };
        node.metrics.bytes_out.inc_by(bytes.len() as u64);
        if let Err(e) = write.write_all(&bytes).await {
            return Closed::Error("io", e.to_string());
        }
        if let Some(why) = close {
            let _ = write.flush().await;
            let _ = write.shutdown().await;
            return Closed::Error("authentication", why);
        }
        if let Err(e) = write.flush().await {
            return Closed::Error("io", e.to_string());
        }
    }
}

/// A request in progress may finish within the shutdown grace; then the connection closes (None).
async fn handle(node: &Node, frame: Bytes, caller: &Caller<'_>, stop: &mut watch::Receiver<bool>) -> Option<Outcome> {
    let handling = dispatch::handle(node, frame, caller);
    tokio::pin!(handling);
    tokio::select! {
        outcome = &mut handling => Some(outcome),
        _ = stop.changed() => tokio::time::timeout(node.config.shutdown_grace, &mut handling).await.ok(),
    }
}

fn api_key(frame: &[u8]) -> Option<ApiKey> {
    let key = i16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
    ApiKey::try_from(key).ok()
}
