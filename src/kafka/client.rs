//! `KafkaClient`: the pooled, retrying entry point of the admin client. It owns one connection per broker
//! (reopened when broken), the cluster metadata and the group-coordinator cache, and runs every operation
//! inside a deadline, retrying what Kafka says is retriable with exponential backoff.

use super::config::ClientConfig;
use super::connection::Connection;
use super::error::KafkaError;
use super::metadata::ClusterMetadata;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

#[derive(Clone)]
pub struct KafkaClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) config: ClientConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// One slot per broker address; the slot's lock makes concurrent callers share one connect.
    connections: Mutex<HashMap<String, Slot>>,
    pub(super) metadata: Mutex<Option<Arc<ClusterMetadata>>>,
    /// group id -> coordinator node id.
    pub(super) coordinators: Mutex<HashMap<String, i32>>,
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClient")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl KafkaClient {
    /// A client for `config`. Nothing connects until the first call; invalid TLS material fails here.
    pub fn new(config: ClientConfig) -> Result<KafkaClient, KafkaError> {
        if config.bootstrap_servers.is_empty() {
            return Err(KafkaError::Config("no bootstrap servers".into()));
        }
        let tls = config.tls.as_ref().map(super::tls::client_config).transpose()?;
        Ok(KafkaClient {
            inner: Arc::new(Inner {
                config,
                tls,
                connections: Mutex::new(HashMap::new()),
                metadata: Mutex::new(None),
                coordinators: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The pooled connection to `addr`, opened (or reopened, if broken) on demand.
    pub async fn connection(&self, addr: &str) -> Result<Arc<Connection>, KafkaError> {
        self.pooled(addr.to_owned(), addr).await
    }

    /// Pooled connection number `lane` to broker `node_id` (lane 0 is `broker`'s): a large batch split over
    /// lanes is served by several of the broker's request handlers at once, where one connection has its
    /// requests served one at a time.
    pub async fn broker_lane(&self, node_id: i32, lane: usize) -> Result<Arc<Connection>, KafkaError> {
        let addr = self.broker_addr(node_id).await?;
        if lane == 0 {
            return self.connection(&addr).await;
        }
        self.pooled(format!("{addr}#{lane}"), &addr).await
    }

    async fn pooled(&self, key: String, addr: &str) -> Result<Arc<Connection>, KafkaError> {
        let slot = {
            let mut map = self.inner.connections.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref()
            && !conn.is_broken()
        {
            return Ok(conn.clone());
        }
        let conn = Arc::new(Connection::connect(addr, &self.inner.config, self.inner.tls.clone()).await?);
        tracing::debug!(broker = addr, "connected");
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// The connection to broker `node_id` (its address from metadata).
    pub async fn broker(&self, node_id: i32) -> Result<Arc<Connection>, KafkaError> {
        let addr = self.broker_addr(node_id).await?;
        self.connection(&addr).await
    }

    /// Broker `node_id`'s address, from the cached metadata or, for a broker it does not know yet, fresh
    /// metadata.
    async fn broker_addr(&self, node_id: i32) -> Result<String, KafkaError> {
        if let Some(b) = self.metadata().await?.brokers.get(&node_id) {
            return Ok(b.addr());
        }
        self.invalidate_metadata();
        self.refresh_metadata()
            .await?
            .brokers
            .get(&node_id)
            .map(|b| b.addr())
            .ok_or_else(|| KafkaError::Connect {
                broker: format!("node {node_id}"),
                message: "the broker is not in the cluster's metadata".into(),
            })
    }

    /// A new connection to broker `node_id`, outside the pool: for a caller whose requests must not queue
    /// behind the pooled connection's (the broker serves one request per connection at a time).
    pub async fn dedicated_connection(&self, node_id: i32) -> Result<Arc<Connection>, KafkaError> {
        let addr = self.broker_addr(node_id).await?;
        let conn = Connection::connect(&addr, &self.inner.config, self.inner.tls.clone()).await?;
        tracing::debug!(broker = %addr, "connected (dedicated)");
        Ok(Arc::new(conn))
    }

    /// A connection to any reachable broker: the known brokers first, then the bootstrap servers.
    pub async fn any_broker(&self) -> Result<Arc<Connection>, KafkaError> {
        let mut candidates: Vec<String> = self
            .cached_metadata()
            .map(|m| m.brokers.values().map(|b| b.addr()).collect())
            .unwrap_or_default();
        candidates.extend(self.inner.config.bootstrap_servers.iter().cloned());
        let mut last = None;
        for addr in &candidates {
            match self.connection(addr).await {
                Ok(conn) => return Ok(conn),
                // Wrong credentials or TLS setup will not get better on another broker.
                Err(e @ (KafkaError::Authentication { .. } | KafkaError::Tls { .. } | KafkaError::Config(_))) => {
                    return Err(e);
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) if candidates.len() == 1 => Err(e),
            Some(e) => Err(KafkaError::NoBrokers {
                tried: candidates,
                last: Box::new(e),
            }),
            None => Err(KafkaError::Config("no bootstrap servers".into())),
        }
    }

    pub(super) fn cached_metadata(&self) -> Option<Arc<ClusterMetadata>> {
        self.inner.metadata.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets metadata and coordinators, after an error that says they are stale.
    pub fn invalidate_metadata(&self) {
        self.inner.metadata.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    pub(super) fn forget_coordinator(&self, group: &str) {
        self.inner
            .coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
    }

    /// Runs `attempt` until it succeeds, fails with a final error, or the operation deadline passes.
    pub async fn with_retries<T, F, Fut>(&self, operation: &str, mut attempt: F) -> Result<T, KafkaError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, KafkaError>>,
    {
        let timeout = self.inner.config.operation_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = INITIAL_BACKOFF;
        let mut last: Option<KafkaError> = None;
        loop {
            let error = match tokio::time::timeout_at(deadline, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if !e.is_retriable() => return Err(e),
                Ok(Err(e)) => e,
                // The deadline passed mid-attempt: report what the previous attempt ran into, if any.
                Err(_) => {
                    return Err(KafkaError::DeadlineExceeded {
                        operation: operation.to_owned(),
                        deadline: timeout,
                        last: Box::new(last.unwrap_or(KafkaError::NoAttemptFinished(timeout))),
                    });
                }
            };
            if error.invalidates_metadata() {
                self.invalidate_metadata();
            }
            if Instant::now() + backoff >= deadline {
                return Err(KafkaError::DeadlineExceeded {
                    operation: operation.to_owned(),
                    deadline: timeout,
                    last: Box::new(error),
                });
            }
            tracing::debug!(operation, error = %error, ?backoff, "retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            last = Some(error);
        }
    }

    /// Runs `attempt` for a batch of keys and retries only the keys whose result was a retriable error,
    /// until all are settled or the deadline passes (the rest then carry `DeadlineExceeded`).
    pub async fn with_batch_retries<K, T, F, Fut>(
        &self,
        operation: &str,
        keys: Vec<K>,
        mut attempt: F,
    ) -> HashMap<K, Result<T, KafkaError>>
    where
        K: Eq + Hash + Clone,
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Vec<(K, Result<T, KafkaError>)>>,
    {
        let timeout = self.inner.config.operation_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = INITIAL_BACKOFF;
        let mut settled = HashMap::with_capacity(keys.len());
        let mut pending = keys;
        let mut last_errors: HashMap<K, KafkaError> = HashMap::new();
        while !pending.is_empty() {
            let round = match tokio::time::timeout_at(deadline, attempt(pending.clone())).await {
                Ok(results) => results,
                Err(_) => break,
            };
            let mut retry = Vec::new();
            let mut stale = false;
            for (key, result) in round {
                match result {
                    Err(e) if e.is_retriable() => {
                        stale |= e.invalidates_metadata();
                        retry.push(key.clone());
                        last_errors.insert(key, e);
                    }
                    other => {
                        last_errors.remove(&key);
                        settled.insert(key, other);
                    }
                }
            }
            // Keys the attempt did not answer for are retried too.
            for key in pending {
                if !settled.contains_key(&key) && !retry.contains(&key) {
                    retry.push(key);
                }
            }
            pending = retry;
            if pending.is_empty() {
                break;
            }
            if stale {
                self.invalidate_metadata();
            }
            if Instant::now() + backoff >= deadline {
                break;
            }
            tracing::debug!(operation, keys = pending.len(), ?backoff, "retrying part of a batch");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        for key in pending {
            let last = last_errors
                .remove(&key)
                .unwrap_or(KafkaError::NoAttemptFinished(timeout));
            settled.insert(
                key,
                Err(KafkaError::DeadlineExceeded {
                    operation: operation.to_owned(),
                    deadline: timeout,
                    last: Box::new(last),
                }),
            );
        }
        settled
    }
}
