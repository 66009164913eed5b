//! The embedded broker: a single-node, Kafka-wire-compatible broker (`kafka-group-operator broker`, or
//! in-process through `Broker::start`). Server and connections, the APIs it answers, the partition logs, and
//! the group coordinator (`coordinator/`). It uses only `wire` of the rest of the crate (plus `http` and
//! `telemetry` to serve metrics); the operator reaches it over the network like any other Kafka.

pub mod apis;
pub mod auth;
mod authenticate;
mod authorize;
mod connection;
pub mod connection_limits;
pub mod coordinator;
pub mod dispatch;
mod handlers;
pub mod log;
pub mod metrics;
mod server;
pub mod transactions;

use auth::{ListenerSecurity, Mechanism, SecurityConfig, UserStore};
use coordinator::{ConsumerTiming, CoordinatorConfig, GroupCoordinator};
use log::{Store, StoreConfig};
use metrics::BrokerMetrics;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything the broker needs to start.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// `host:port` that clients are told to connect to (Metadata, FindCoordinator). Default: the bound
    /// address, with 127.0.0.1 for an unspecified IP.
    pub advertised: Option<String>,
    pub node_id: i32,
    /// Cluster id of a fresh broker; a data dir keeps the one it was created with. Default: random.
    pub cluster_id: Option<String>,
    /// Where partitions, topics and group offsets are kept. None: in memory only.
    pub data_dir: Option<PathBuf>,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// A connection with no request for this long is closed (Kafka's `connections.max.idle.ms`).
    pub idle_timeout: Duration,
    /// Partitions of auto-created topics and of CreateTopics without a count (`num.partitions`).
    pub default_partitions: i32,
    /// Create a topic when a Metadata request names an unknown one and allows it (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Largest record batch accepted (`message.max.bytes`).
    pub max_message_bytes: usize,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub group_min_session_timeout: Duration,
    pub group_max_session_timeout: Duration,
    /// KIP-848 groups: `group.consumer.session.timeout.ms` and `group.consumer.heartbeat.interval.ms`.
    pub group_consumer_session_timeout: Duration,
    pub group_consumer_heartbeat_interval: Duration,
    /// The longest transaction timeout a transactional producer may ask for (`transaction.max.timeout.ms`).
    pub transaction_max_timeout: Duration,
    /// How often partitions with unsynced writes are fsynced (acks=-1 produces are synced before the answer
    /// when `sync_acks_all`).
    pub flush_interval: Duration,
    /// fsync an acks=-1 produce's partitions before answering it (survives power loss). Off (the default, as
    /// Apache Kafka's defaults): acknowledged records are written before the answer (they survive the process
    /// being killed) and fsynced within `flush_interval`.
    pub sync_acks_all: bool,
    /// Size at which a partition's segment file rolls.
    pub segment_bytes: u64,
    /// Optional retention: the oldest batches go once a partition is larger, or older.
    pub retention_bytes: Option<u64>,
    pub retention: Option<Duration>,
    /// How long graceful shutdown waits for requests in progress.
    pub shutdown_grace: Duration,
    /// How the listener authenticates clients (TLS, SASL, users). Default: PLAINTEXT, no authentication.
    pub security: SecurityConfig,
    /// A second listener, SASL_PLAINTEXT with SCRAM-SHA-512 only, for the operator's own connections to a
    /// broker it serves (bind it to loopback); it advertises its own address, so Metadata keeps the operator on it.
    pub internal_listen: Option<SocketAddr>,
    /// Partitions the broker holds at most, over all topics (CreateTopics, CreatePartitions and
    /// auto-creation beyond it are refused with POLICY_VIOLATION).
    pub max_partitions: usize,
    /// Connections served at once, in total and from one IP address (Kafka's `max.connections` and
    /// `max.connections.per.ip`); a connection beyond either is closed as soon as it is accepted.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// A fault hook for tests: while this file exists, every fsync of the log fails (EIO). None in production.
    pub fail_fsync_while: Option<PathBuf>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: None,
            node_id: 1,
            cluster_id: None,
            data_dir: None,
            max_request_bytes: crate::wire::DEFAULT_MAX_FRAME,
            idle_timeout: Duration::from_secs(600),
            default_partitions: 1,
            auto_create_topics: true,
            max_message_bytes: 1_048_588,
            group_initial_rebalance_delay: Duration::from_secs(3),
            group_min_session_timeout: Duration::from_secs(6),
            group_max_session_timeout: Duration::from_secs(1800),
            group_consumer_session_timeout: Duration::from_secs(45),
            group_consumer_heartbeat_interval: Duration::from_secs(5),
            transaction_max_timeout: Duration::from_millis(transactions::DEFAULT_MAX_TIMEOUT_MS as u64),
            flush_interval: Duration::from_secs(1),
            sync_acks_all: false,
            segment_bytes: 128 * 1024 * 1024,
            retention_bytes: None,
            retention: None,
            shutdown_grace: Duration::from_secs(5),
            security: SecurityConfig::default(),
            internal_listen: None,
            max_partitions: log::DEFAULT_MAX_PARTITIONS,
            max_connections: connection_limits::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: connection_limits::DEFAULT_MAX_CONNECTIONS_PER_IP,
            fail_fsync_while: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid advertised address {0:?}: expected host:port")]
    Advertised(String),
    #[error(transparent)]
    Store(#[from] log::StoreError),
    #[error("group coordinator: {0}")]
    Coordinator(std::io::Error),
    #[error("transaction coordinator: {0}")]
    Transactions(std::io::Error),
    #[error(transparent)]
    Tls(#[from] auth::tls::TlsError),
    #[error(transparent)]
    Users(#[from] auth::UsersError),
    #[error("SASL is enabled but no user is configured or stored in the data dir: nobody could connect")]
    NoUsers,
    #[error("data dir {0} is in use by another broker (its lock file is held)")]
    DataDirInUse(PathBuf),
    #[error("cannot lock data dir {path}: {source}")]
    DataDirLock { path: PathBuf, source: std::io::Error },
}

/// Where clients are told to connect for one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
}

impl Endpoint {
    /// `host:port`, what a client puts in `bootstrap.servers`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One listening socket's identity: its address, what it advertises and how it authenticates.
pub struct Listener {
    pub bound: SocketAddr,
    pub endpoint: Endpoint,
    security: RwLock<Arc<ListenerSecurity>>,
}

impl Listener {
    /// The security new connections get (a reconfiguration applies to connections accepted after it).
    pub fn security(&self) -> Arc<ListenerSecurity> {
        self.security.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn protocol(&self) -> &'static str {
        self.security().protocol
    }
}

/// What every connection shares: the config, the logs, the coordinator, the metrics.
pub struct Node {
    pub config: BrokerConfig,
    /// The main listener first, then the internal one if any.
    pub listeners: Vec<Arc<Listener>>,
    pub users: Arc<UserStore>,
    /// Shared by every listener: `max_connections` counts the broker's connections, not one socket's.
    pub connection_limits: Arc<connection_limits::ConnectionLimits>,
    pub store: Arc<Store>,
    pub coordinator: Arc<GroupCoordinator>,
    pub transactions: Arc<transactions::TransactionCoordinator>,
    pub metrics: Arc<BrokerMetrics>,
}

/// A running broker: its address, its metrics, and a graceful `shutdown()`.
pub struct Broker {
    /// Held while the broker runs: no second broker (in this process or another) opens the same data dir.
    _data_dir_lock: Option<std::fs::File>,
    addr: SocketAddr,
    node: Arc<Node>,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

impl Broker {
    /// Recovers the data dir (if any), binds the listener and starts serving in the background.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let data_dir_lock = config.data_dir.as_deref().map(lock_data_dir).transpose()?;
        let (listener, addr) = bind(config.listen).await?;
        let internal = match config.internal_listen {
            Some(at) => Some(bind(at).await?),
            None => None,
        };
        let (advertised_host, advertised_port) = advertised(&config, addr)?;
        let users = Arc::new(UserStore::open(config.data_dir.as_deref())?);
        apply_users(&users, &config.security)?;
        let mut listeners = vec![Arc::new(Listener {
            bound: addr,
            endpoint: Endpoint {
                host: advertised_host,
                port: advertised_port,
            },
            security: RwLock::new(Arc::new(ListenerSecurity::build(&config.security, users.clone())?)),
        })];
        let mut sockets = vec![listener];
        if let Some((socket, bound)) = internal {
            listeners.push(Arc::new(Listener {
                bound,
                endpoint: Endpoint {
                    host: bound.ip().to_string(),
                    port: i32::from(bound.port()),
                },
                security: RwLock::new(Arc::new(ListenerSecurity::build(&internal_security(), users.clone())?)),
            }));
            sockets.push(socket);
        }
        let store = Arc::new(Store::open(
            StoreConfig {
                data_dir: config.data_dir.clone(),
                segment_bytes: config.segment_bytes,
                retention_bytes: config.retention_bytes,
                retention_ms: config.retention.map(|d| d.as_millis() as i64),
                max_partitions: config.max_partitions,
                fail_fsync_while: config.fail_fsync_while.clone(),
            },
            config.cluster_id.clone().unwrap_or_else(random_cluster_id),
        )?);
        let coordinator = GroupCoordinator::new(CoordinatorConfig {
            data_dir: config.data_dir.as_ref().map(|d| d.join("groups")),
            initial_rebalance_delay: config.group_initial_rebalance_delay,
            min_session_timeout: config.group_min_session_timeout,
            max_session_timeout: config.group_max_session_timeout,
            consumer: ConsumerTiming {
                session_timeout: config.group_consumer_session_timeout,
                heartbeat_interval: config.group_consumer_heartbeat_interval,
            },
        })
        .map_err(BrokerError::Coordinator)?;
        coordinator
            .delete_offsets_of_missing_topics(store.as_ref())
            .await
            .map_err(BrokerError::Coordinator)?;
        let transactions = transactions::TransactionCoordinator::open(
            config.data_dir.as_ref().map(|d| d.join("transactions")).as_deref(),
            store.clone(),
            coordinator.clone(),
            i32::try_from(config.transaction_max_timeout.as_millis()).unwrap_or(i32::MAX),
        )
        .map_err(BrokerError::Transactions)?;
        transactions.recover().await;
        let connection_limits =
            connection_limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        let metrics = Arc::new(BrokerMetrics::with_store(&store));
        metrics.register_transactions(&transactions);
        let node = Arc::new(Node {
            config,
            listeners,
            users,
            connection_limits,
            store,
            coordinator,
            transactions,
            metrics,
        });
        let (stop, stopped) = watch::channel(false);
        let mut servers = vec![
            tokio::spawn(server::flush_loop(node.clone(), stopped.clone())),
            tokio::spawn(transactions::run_timer(node.transactions.clone(), stopped.clone())),
        ];
        for (socket, listener) in sockets.into_iter().zip(node.listeners.clone()) {
            servers.push(tokio::spawn(server::run(
                socket,
                listener,
                node.clone(),
                stopped.clone(),
            )));
        }
        tracing::info!(
            %addr,
            advertised = %node.listeners[0].endpoint.host,
            port = node.listeners[0].endpoint.port,
            protocol = node.listeners[0].protocol(),
            internal = ?node.listeners.get(1).map(|l| l.bound),
            node_id = node.config.node_id,
            cluster_id = node.store.cluster_id(),
            data_dir = ?node.config.data_dir,
            "embedded Kafka broker started"
        );
        Ok(Broker {
            _data_dir_lock: data_dir_lock,
            addr,
            node,
            stop,
            servers,
        })
    }

    /// Applies new security to the main listener (connections accepted from now on) and new users (the next
    /// authentication), without a restart: a rotated password or certificate needs no downtime.
    pub fn reconfigure(&self, security: &SecurityConfig) -> Result<(), BrokerError> {
        let main = ListenerSecurity::build(security, self.node.users.clone())?;
        apply_users(&self.node.users, security)?;
        *self.node.listeners[0]
            .security
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(main);
        tracing::info!(
            protocol = security.protocol(),
            users = self.node.users.names().len(),
            certificate_users = self.node.users.certificate_names().len(),
            "embedded broker security reconfigured"
        );
        Ok(())
    }

    /// `host:port` of the internal listener, if configured.
    pub fn internal_bootstrap(&self) -> Option<String> {
        self.node.listeners.get(1).map(|l| l.endpoint.address())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as advertised to clients: what to use as `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.node.listeners[0].endpoint.address()
    }

    pub fn cluster_id(&self) -> &str {
        self.node.store.cluster_id()
    }

    pub fn metrics(&self) -> Arc<BrokerMetrics> {
        self.node.metrics.clone()
    }

    /// Why the broker's log directory is offline (a failed fsync), if it is: only a restart brings it back.
    pub fn offline(&self) -> Option<String> {
        self.node.store.offline().map(str::to_owned)
    }

    /// Stops accepting, lets requests in progress finish (up to the shutdown grace), closes every
    /// connection, stops the coordinator and fsyncs the logs.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        self.node.coordinator.shutdown();
        server::sync_all(&self.node.store).await;
        tracing::info!(addr = %self.addr, "embedded Kafka broker stopped");
    }
}

/// Runs a broker until `shutdown` completes, then stops it gracefully.
pub async fn serve(config: BrokerConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), BrokerError> {
    let broker = Broker::start(config).await?;
    shutdown.await;
    broker.shutdown().await;
    Ok(())
}

/// Makes the store the configured users (if given); SASL with nobody to authenticate is refused.
fn apply_users(users: &UserStore, security: &SecurityConfig) -> Result<(), BrokerError> {
    if let Some(configured) = &security.users {
        users.replace(configured)?;
    }
    if !security.mechanisms.is_empty() && users.names().is_empty() {
        return Err(BrokerError::NoUsers);
    }
    Ok(())
}

/// An exclusive lock on `<data dir>/.lock` (released when the file is closed, also by a crash).
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, BrokerError> {
    let failed = |source| BrokerError::DataDirLock {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BrokerError::DataDirInUse(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
    }
}

async fn bind(at: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), BrokerError> {
    let failed = |source| BrokerError::Bind { addr: at, source };
    let listener = tokio::net::TcpListener::bind(at).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

/// The internal listener: SASL_PLAINTEXT, SCRAM-SHA-512, the shared users.
fn internal_security() -> SecurityConfig {
    SecurityConfig {
        mechanisms: vec![Mechanism::ScramSha512],
        tls: None,
        users: None,
    }
}

fn advertised(config: &BrokerConfig, bound: SocketAddr) -> Result<(String, i32), BrokerError> {
    match &config.advertised {
        Some(text) => {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| BrokerError::Advertised(text.clone()))?;
            let port: u16 = port.parse().map_err(|_| BrokerError::Advertised(text.clone()))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(BrokerError::Advertised(text.clone()));
            }
            Ok((host.to_owned(), i32::from(port)))
        }
        None => {
            let ip = if bound.ip().is_unspecified() {
                tracing::warn!(%bound, "listening on all interfaces: advertising 127.0.0.1 (set the advertised address for remote clients)");
                "127.0.0.1".to_owned()
            } else {
                bound.ip().to_string()
            };
            Ok((ip, i32::from(bound.port())))
        }
    }
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64 without padding (22 characters).
pub fn random_cluster_id() -> String {
    use base64::Engine as _;
    loop {
        let bytes: [u8; 16] = rand::random();
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return id;
        }
    }
}
