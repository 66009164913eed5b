//! One connection to one broker: TCP (optionally TLS), ApiVersions negotiation, SASL, then pipelined
//! requests matched to responses by correlation id. A reader task owns the read half; writers take turns on
//! the write half. When the connection breaks, every waiting request fails at once and the pool replaces it.

use super::config::{ClientConfig, SaslConfig, SaslMechanism};
use super::error::KafkaError;
use super::sasl::{ScramClient, ScramHash, plain_message};
use crate::wire::{self, Api};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Message, Request, StrBytes};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
type BoxStream = Box<dyn Stream>;

type Waiter = oneshot::Sender<Result<Bytes, String>>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<i32, Waiter>,
    /// Why the connection is closed, once it is.
    closed: Option<String>,
}

/// The version range the broker announced for each API key.
pub type BrokerVersions = HashMap<i16, (i16, i16)>;

pub struct Connection {
    addr: String,
    client_id: String,
    request_timeout: Duration,
    writer: tokio::sync::Mutex<WriteHalf<BoxStream>>,
    pending: Arc<Mutex<Pending>>,
    broken: Arc<AtomicBool>,
    next_correlation_id: AtomicI32,
    versions: BrokerVersions,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr`, negotiates API versions and authenticates, within the connect timeout.
    pub async fn connect(
        addr: &str,
        config: &ClientConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Connection, KafkaError> {
        let connect_error = |message: String| KafkaError::Connect {
            broker: addr.to_owned(),
            message,
        };
        let tcp = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_error(format!("no TCP connection within {:?}", config.connect_timeout)))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: BoxStream = match tls {
            Some(tls_config) => {
                let server_name = config.tls.as_ref().and_then(|t| t.server_name.as_deref());
                let handshake = super::tls::handshake(tls_config, server_name, addr, tcp);
                Box::new(
                    tokio::time::timeout(config.connect_timeout, handshake)
                        .await
                        .map_err(|_| KafkaError::Tls {
                            broker: addr.to_owned(),
                            message: format!("no TLS handshake within {:?}", config.connect_timeout),
                        })??,
                )
            }
            None => Box::new(tcp),
        };
        let uses_tls = config.tls.is_some();
        let mut conn = Connection::start(addr, stream, config);
        conn.versions = match conn.negotiate_versions().await {
            // With TLS 1.3 a broker that rejects our certificate (or its absence) says so only with an
            // alert on the first read, which arrives as a dropped connection here: name the likely cause.
            Err(KafkaError::Disconnected { message, .. }) if uses_tls => {
                return Err(KafkaError::Tls {
                    broker: addr.to_owned(),
                    message: format!(
                        "the broker ended the TLS session during setup ({message}); \
                         does its listener require a client certificate that it did not accept?"
                    ),
                });
            }
            other => other?,
        };
        if let Some(sasl) = &config.sasl {
            conn.authenticate(sasl).await?;
        }
        Ok(conn)
    }

    fn start(addr: &str, stream: BoxStream, config: &ClientConfig) -> Connection {
        let (read_half, write_half) = tokio::io::split(stream);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let broken = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_responses(
            read_half,
            pending.clone(),
            broken.clone(),
            config.max_frame_bytes,
        ));
        Connection {
            addr: addr.to_owned(),
            client_id: config.client_id.clone(),
            request_timeout: config.request_timeout,
            writer: tokio::sync::Mutex::new(write_half),
            pending,
            broken,
            next_correlation_id: AtomicI32::new(1),
            versions: HashMap::new(),
            reader,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has failed (the pool then opens a new one).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// What the broker announced in ApiVersions.
    pub fn broker_versions(&self) -> &BrokerVersions {
        &self.versions
    }

    /// The highest version of `R` that both this client and the broker speak.
    pub fn version_of<R: Request>(&self) -> Result<i16, KafkaError> {
        self.version_in::<R>(R::VERSIONS.min, R::VERSIONS.max)
    }

    /// The highest version of `R` within `[min, max]` that the broker speaks too.
    pub fn version_in<R: Request>(&self, min: i16, max: i16) -> Result<i16, KafkaError> {
        let unsupported = || KafkaError::UnsupportedApi {
            broker: self.addr.clone(),
            api: Api(R::KEY),
        };
        let (broker_min, broker_max) = *self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let high = max.min(broker_max).min(R::VERSIONS.max);
        let low = min.max(broker_min).max(R::VERSIONS.min);
        if low > high { Err(unsupported()) } else { Ok(high) }
    }

    /// Sends `request` at the highest common version and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<(R::Response, i16), KafkaError> {
        let version = self.version_of::<R>()?;
        Ok((self.send_version(request, version).await?, version))
    }

    /// Sends `request` at `version` and waits (at most the request timeout) for its response. Requests from
    /// many tasks share the connection and are in flight together.
    pub async fn send_version<R: Request>(&self, request: &R, version: i16) -> Result<R::Response, KafkaError> {
        self.send_version_read(request, version, |frame| wire::decode_response::<R>(frame, version))
            .await
    }

    /// Sends `request` at `version` and hands its response frame (header included) to `read`: for responses
    /// too large to decode whole before use (`groups::offset_fetch_response`).
    pub async fn send_version_read<R: Request, T>(
        &self,
        request: &R,
        version: i16,
        read: impl FnOnce(bytes::Bytes) -> Result<T, wire::WireError>,
    ) -> Result<T, KafkaError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode_request(request, version, correlation_id, Some(&self.client_id))
            .map_err(|e| KafkaError::wire(&self.addr, e))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(why) = &pending.closed {
                return Err(self.disconnected(why.clone()));
            }
            pending.waiters.insert(correlation_id, tx);
        }
        let write = async {
            let mut writer = self.writer.lock().await;
            writer.write_all(&frame).await?;
            writer.flush().await
        };
        if let Err(e) = write.await {
            self.fail(format!("write failed: {e}"));
            return Err(self.disconnected(format!("write failed: {e}")));
        }
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(Ok(payload))) => read(payload).map_err(|e| KafkaError::wire(&self.addr, e)),
            Ok(Ok(Err(why))) => Err(self.disconnected(why)),
            Ok(Err(_)) => Err(self.disconnected("connection closed".into())),
            Err(_) => {
                // The response may still arrive; a late one is dropped by the reader.
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .waiters
                    .remove(&correlation_id);
                Err(KafkaError::Timeout {
                    broker: self.addr.clone(),
                    api: Api(R::KEY),
                    after: self.request_timeout,
                })
            }
        }
    }

    fn disconnected(&self, message: String) -> KafkaError {
        KafkaError::Disconnected {
            broker: self.addr.clone(),
            message,
        }
    }

    fn fail(&self, why: String) {
        fail_all(&self.pending, &self.broken, why);
    }

    /// ApiVersions at the newest version we know; a broker that does not know it answers with
    /// UNSUPPORTED_VERSION and its own range, and we retry at the highest version it named.
    async fn negotiate_versions(&self) -> Result<BrokerVersions, KafkaError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafka-group-operator"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = ApiVersionsRequest::VERSIONS.max;
        for _ in 0..2 {
            let response = self.send_version(&request, version).await?;
            let announced: BrokerVersions = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if response.error_code == 35 {
                // UNSUPPORTED_VERSION: the response lists the broker's ApiVersions range.
                match announced.get(&(ApiKey::ApiVersions as i16)) {
                    Some(&(_, max)) if max < version => {
                        version = max;
                        continue;
                    }
                    _ => {}
                }
            }
            super::error::check(
                response.error_code,
                &self.addr,
                Api(ApiVersionsRequest::KEY),
                String::new,
            )?;
            return Ok(announced);
        }
        Err(KafkaError::UnsupportedApi {
            broker: self.addr.clone(),
            api: Api(ApiVersionsRequest::KEY),
        })
    }

    /// SaslHandshake, then the mechanism's messages in SaslAuthenticate requests (KIP-152).
    async fn authenticate(&self, sasl: &SaslConfig) -> Result<(), KafkaError> {
        let mechanism = sasl.mechanism.name();
        let auth_error = |message: String| KafkaError::Authentication {
            broker: self.addr.clone(),
            mechanism: mechanism.to_owned(),
            message,
        };
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let version = self.version_in::<SaslHandshakeRequest>(1, 1)?;
        let response = self.send_version(&handshake, version).await?;
        if response.error_code != 0 {
            let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(auth_error(format!(
                "the broker does not enable {mechanism} on this listener (it offers {enabled:?})"
            )));
        }
        match sasl.mechanism {
            SaslMechanism::Plain => {
                self.sasl_round(plain_message(&sasl.username, sasl.password.expose()), &auth_error)
                    .await?;
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if sasl.mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                let mut scram = ScramClient::new(
                    hash,
                    &sasl.username,
                    sasl.password.expose(),
                    ScramClient::random_nonce(),
                );
                let server_first = self.sasl_round(scram.client_first(), &auth_error).await?;
                let client_final = scram
                    .client_final(&server_first)
                    .map_err(|e| auth_error(e.to_string()))?;
                let server_final = self.sasl_round(client_final, &auth_error).await?;
                scram
                    .verify_server_final(&server_final)
                    .map_err(|e| auth_error(e.to_string()))?;
            }
        }
        Ok(())
    }

    async fn sasl_round(
        &self,
        message: Vec<u8>,
        auth_error: &impl Fn(String) -> KafkaError,
    ) -> Result<Bytes, KafkaError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let version = self.version_of::<SaslAuthenticateRequest>()?;
        let response = self.send_version(&request, version).await?;
        if response.error_code != 0 {
            let text = response
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("error code {}", response.error_code));
            return Err(auth_error(text));
        }
        Ok(response.auth_bytes)
    }
}

fn fail_all(pending: &Mutex<Pending>, broken: &AtomicBool, why: String) {
    broken.store(true, Ordering::Release);
    let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
    if pending.closed.is_none() {
        pending.closed = Some(why.clone());
    }
    for (_, waiter) in pending.waiters.drain() {
        let _ = waiter.send(Err(why.clone()));
    }
}

async fn read_responses(
    mut reader: ReadHalf<BoxStream>,
    pending: Arc<Mutex<Pending>>,
    broken: Arc<AtomicBool>,
    max_frame: usize,
) {
    let why = loop {
        match wire::read_frame(&mut reader, max_frame).await {
            Ok(Some(frame)) => {
                let Some(id) = wire::peek_correlation_id(&frame) else {
                    break "response shorter than its header".to_owned();
                };
                let waiter = pending.lock().unwrap_or_else(|p| p.into_inner()).waiters.remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Ok(frame));
                }
            }
            Ok(None) => break "the broker closed the connection".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    fail_all(&pending, &broken, why);
}
