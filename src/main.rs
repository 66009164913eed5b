//! The `kafka-group-operator` command line: one binary for the operator, its tools and its embedded broker.

mod cli;
mod embedded_host;

/// jemalloc, returning freed memory to the OS within a second (glibc's malloc kept the lag scan's churn as
/// resident fragmentation: see docs/benchmarks.md), with one arena: the operator's memory is churned by a
/// few tasks, and per-CPU arenas (8 on 2 cores) each kept their own freed pages, which set the peak at start-up
/// (64 → 56 MiB at 500 ConsumerGroups, same CPU). `_RJEM_MALLOC_CONF` overrides these settings.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"narenas:1,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use embedded_host::{EmbeddedSettings, InProcessBrokers};
use kafka_group_operator::broker::{Broker, BrokerConfig};
use kafka_group_operator::controller::clients::ClientSettings;
use kafka_group_operator::controller::embedded::EmbeddedHost;
use kafka_group_operator::controller::leader::LeaderElection;
use kafka_group_operator::controller::shards::ShardLeases;
use kafka_group_operator::controller::{self, Context, OperatorConfig};
use kafka_group_operator::http::{self, Health};
use kafka_group_operator::plan::duration::parse_duration;
use kafka_group_operator::telemetry::{self, LagMetrics, LogFormat, metrics::Metrics};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-group-operator",
    version,
    about = "A Kubernetes operator that owns the lifecycle of Apache Kafka consumer groups",
    long_about = None
)]
struct Cli {
    /// Log format written to stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KGO_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter, in `RUST_LOG` syntax (e.g. `info,kube=warn`). Default: `info` for `run` and `broker`, `warn`
    /// for the other commands.
    #[arg(long, global = true, env = "RUST_LOG")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: reconcile KafkaClusters and ConsumerGroups until SIGTERM or Ctrl-C.
    Run(Box<RunArgs>),
    /// Run the embedded Kafka broker: a single-node, Kafka-wire-compatible broker for development, demos and
    /// tests, until SIGTERM or Ctrl-C.
    Broker(Box<BrokerArgs>),
    /// Show consumer groups' lag per partition: committed offset, log end, lag in messages and in time, state
    /// and members.
    #[command(
        long_about = "Show consumer groups' lag per partition: committed offset, log end offset, lag in messages and \
in time (the age of the next record the group will read, from the record's own timestamp), state and members.\n\n\
All groups are read in a few batched requests: one describe and one OffsetFetch per coordinator, one ListOffsets \
per partition leader, and for the time lag one Fetch per leader per round carrying every lagging partition.\n\n\
Examples:\n  kafka-group-operator lag -b kafka:9092 --group billing\n  \
kafka-group-operator lag -b kafka:9092 --all --output json\n  kafka-group-operator lag -b kafka:9092 -g billing --watch\n  \
kafka-group-operator lag --cluster main -n kafka --all   # the KafkaCluster `main` of namespace kafka"
    )]
    Lag(Box<cli::lag::LagArgs>),
    /// Show what applying OffsetReset and ConsumerGroup (offsetInit) manifests would do to committed offsets.
    /// Exit code 0: no change, 2: changes, 1: error.
    #[command(
        long_about = "Show what applying OffsetReset and ConsumerGroup (offsetInit) manifests would do: per \
partition, the committed offset now, the target, the change, and whether the target was clamped to the log. \
Targets resolve against the cluster the way the operator resolves them (timestamps and durations through \
ListOffsets). Nothing is changed.\n\n\
Exit code: 0 when nothing would change, 2 when something would, 1 on error (like terraform plan \
-detailed-exitcode). --output json is for bots that comment on pull requests.\n\n\
Examples:\n  kafka-group-operator plan -b kafka:9092 -f resets/\n  \
kafka-group-operator plan -b kafka:9092 -f rewind.yaml --output json > plan.json   # exit code 2: changes\n  \
kafka-group-operator plan --cluster main -f resets/   # the KafkaCluster `main` of the current namespace"
    )]
    Plan(Box<cli::plan::PlanArgs>),
    /// Commit what `plan` shows, for groups without members; writes an undo file first.
    #[command(
        long_about = "Commit what plan shows, for groups without members only: apply cannot stop consumers \
outside Kubernetes, so it refuses a group that has members and changes nothing (in a cluster, an OffsetReset with \
strategy ScaleDown does that). It prints the plan, asks for confirmation (--yes skips it), writes the offsets it \
replaces to an undo file, commits, and prints each partition before and after.\n\n\
Targets are resolved again when apply runs: a duration counts back from then.\n\n\
Examples:\n  kafka-group-operator apply -b kafka:9092 -f rewind.yaml --yes\n  \
kafka-group-operator apply --cluster main -n kafka -f rewind.yaml --yes\n  \
kafka-group-operator apply -b kafka:9092 --group billing --from-file billing-20261125T101500Z.undo.csv --yes"
    )]
    Apply(Box<cli::apply::ApplyArgs>),
    /// Write a group's committed offsets as `topic,partition,offset` lines (kafka-consumer-groups' --from-file format).
    #[command(
        long_about = "Write a group's committed offsets as topic,partition,offset lines: the format that \
kafka-consumer-groups --reset-offsets --from-file and apply --from-file read.\n\n\
Examples:\n  kafka-group-operator export -b kafka:9092 --group billing > billing.csv\n  \
kafka-group-operator export --cluster main --context prod --group billing > billing.csv\n  \
kafka-group-operator apply -b kafka:9092 --group billing --from-file billing.csv --yes"
    )]
    Export(Box<cli::export::ExportArgs>),
    /// Print the CustomResourceDefinitions as YAML (apply them with `kubectl apply -f -`).
    Crds,
    /// Print the version of the operator and of the APIs it was built against.
    Version,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Kubeconfig to use. Default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch only this namespace. Default: all namespaces.
    #[arg(long, env = "KGO_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "KGO_METRICS_ADDR")]
    metrics_addr: SocketAddr,
    /// Elect a leader on a Lease, so that only one of several replicas reconciles.
    #[arg(long, env = "KGO_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the leader Lease. Default: $POD_NAMESPACE, else `default`.
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "kafka-group-operator")]
    lease_name: String,
    /// How long a leader's lease lasts without renewal (e.g. 15s).
    #[arg(long, default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// Share the work among active replicas: KafkaClusters (with their ConsumerGroups and OffsetResets) are
    /// split into this many shards by a hash of the cluster's UID, and each replica reconciles the shards whose
    /// Lease (`<lease-name>-shard-<i>-of-<N>`, in the lease namespace) it holds. 1: no sharding. Every replica
    /// of a fleet must run with the same count (docs/sharding.md).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024), conflicts_with = "leader_elect", env = "KGO_SHARDS")]
    shards: u32,
    /// How often each ConsumerGroup is observed (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = duration)]
    group_interval: Duration,
    /// How often each KafkaCluster's connection is checked (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = duration)]
    cluster_interval: Duration,
    /// How often the lag of all groups of each cluster is sampled, in one batched scan (e.g. 5s). A scan costs
    /// a handful of requests per cluster however many groups there are; groups that scale or have a lag
    /// budget are evaluated right after each scan.
    #[arg(long, default_value = "5s", value_parser = duration)]
    lag_interval: Duration,
    /// Which lag series /metrics carries: `partition` (per group and partition, and the per-group sums) or
    /// `group` (the per-group sums, members and max lag only). Thousands of groups of many partitions make
    /// the per-partition series most of a scrape (≈ 160 MiB at 5,000 groups × 50 partitions).
    #[arg(long, value_enum, default_value_t = LagMetrics::Partition, env = "KGO_LAG_METRICS")]
    lag_metrics: LagMetrics,
    /// How long an OffsetReset waits for a pending transactional offset commit of its group
    /// (UNSTABLE_OFFSET_COMMIT), counted from the first such answer (kept in its status), before it fails with
    /// reason UnstableOffsetCommit (e.g. 60s). The reset waits between reconciles, holding none.
    #[arg(long, default_value = "60s", value_parser = duration)]
    unstable_offset_wait: Duration,
    /// How long one Kafka operation may take, retries included (e.g. 15s).
    #[arg(long, default_value = "15s", value_parser = duration)]
    kafka_timeout: Duration,
    /// Reconciles in flight at once, per controller.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Serve the embedded broker of each KafkaCluster with `spec.embedded` from this process. Off by default
    /// (such clusters report Ready=False): a broker is served only where the installation says so (the chart's
    /// `embedded.enabled`).
    #[arg(long, env = "KGO_EMBEDDED_BROKERS", default_value_t = false, action = clap::ArgAction::Set)]
    embedded_brokers: bool,
    /// Interface the embedded brokers listen on. Default: loopback only; the chart binds all interfaces so
    /// that applications reach the brokers through the operator's Service (and a NetworkPolicy limits who).
    #[arg(long, env = "KGO_EMBEDDED_BIND_ADDRESS", default_value = "127.0.0.1")]
    embedded_bind_address: std::net::IpAddr,
    /// Host the embedded brokers advertise to clients, e.g. the operator Service's DNS name. Default: the
    /// bind address, or 127.0.0.1 when bound to all interfaces.
    #[arg(long, env = "KGO_EMBEDDED_ADVERTISED_HOST")]
    embedded_advertised_host: Option<String>,
    /// The volume embedded brokers keep their data on: a KafkaCluster's `spec.embedded.dataDir` must lie
    /// under it (anything else is InvalidConfiguration), so a KafkaCluster cannot make the operator write
    /// anywhere else in its filesystem.
    #[arg(
        long,
        env = "KGO_EMBEDDED_DATA_ROOT",
        default_value = "/var/lib/kafka-group-operator"
    )]
    embedded_data_root: PathBuf,
}

#[derive(Args, Debug)]
struct BrokerArgs {
    /// Address the Kafka listener binds to (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9092", env = "KGO_BROKER_LISTEN")]
    listen: SocketAddr,
    /// host:port clients are told to connect to (in Metadata and FindCoordinator). Default: the listen
    /// address (127.0.0.1 when listening on all interfaces).
    #[arg(long, env = "KGO_BROKER_ADVERTISED_ADDRESS")]
    advertised_address: Option<String>,
    /// Directory for partition logs, topics and committed offsets; they survive restarts. Without it the
    /// broker keeps everything in memory.
    #[arg(long, env = "KGO_BROKER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The broker's node id (Kafka's `node.id`).
    #[arg(long, default_value_t = 1)]
    node_id: i32,
    /// Cluster id of a new data dir (an existing data dir keeps its own). Default: random.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Address of /healthz, /readyz and /metrics (per-API request counts and latencies). Not served if unset.
    #[arg(long, env = "KGO_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Partitions of auto-created topics and of topics created without a count (`num.partitions`).
    #[arg(long, default_value_t = 1)]
    default_partitions: i32,
    /// Do not create unknown topics that a client's Metadata request asks for (`auto.create.topics.enable=false`).
    #[arg(long)]
    no_auto_create_topics: bool,
    /// Largest request accepted, in bytes (`socket.request.max.bytes`).
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Largest record batch accepted, in bytes (`message.max.bytes`).
    #[arg(long, default_value_t = 1_048_588)]
    max_message_bytes: usize,
    /// Close connections idle for this long (`connections.max.idle.ms`), e.g. 10m.
    #[arg(long, default_value = "10m", value_parser = duration)]
    idle_timeout: Duration,
    /// Delay before the first rebalance of a new group (`group.initial.rebalance.delay.ms`), e.g. 3s or 0s.
    #[arg(long, default_value = "3s", value_parser = duration)]
    group_initial_rebalance_delay: Duration,
    /// Session timeout of KIP-848 consumer group members (`group.consumer.session.timeout.ms`).
    #[arg(long, default_value = "45s", value_parser = duration)]
    group_consumer_session_timeout: Duration,
    /// How often KIP-848 consumer group members heartbeat (`group.consumer.heartbeat.interval.ms`).
    #[arg(long, default_value = "5s", value_parser = duration)]
    group_consumer_heartbeat_interval: Duration,
    /// The longest transaction timeout a transactional producer may ask for (`transaction.max.timeout.ms`); a
    /// transaction open longer than its producer's timeout is aborted.
    #[arg(long, default_value = "15m", value_parser = duration)]
    transaction_max_timeout: Duration,
    /// How often written records are fsynced to disk (and acks=all produces before their answer with
    /// --sync-acks-all).
    #[arg(long, default_value = "1s", value_parser = duration)]
    flush_interval: Duration,
    /// fsync before answering an acks=all produce, so that acknowledged records survive a power loss. Default
    /// off, Apache Kafka's default policy: records are written before the answer (they survive the process
    /// being killed) and fsynced within --flush-interval.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    sync_acks_all: bool,
    /// Size at which a partition's segment file rolls, in bytes.
    #[arg(long, default_value_t = 128 * 1024 * 1024)]
    segment_bytes: u64,
    /// Drop a partition's oldest records once it is larger than this, in bytes. Default: keep everything.
    #[arg(long)]
    retention_bytes: Option<u64>,
    /// Drop records older than this (e.g. 7d). Default: keep everything.
    #[arg(long, value_parser = duration)]
    retention: Option<Duration>,
    /// For tests only (a fault hook): while this file exists, every fsync of the log fails with EIO.
    #[arg(long, hide = true)]
    test_fail_fsync_while: Option<PathBuf>,
    /// SASL mechanisms clients must authenticate with, comma-separated: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    /// (SASL_PLAINTEXT, or SASL_SSL with --tls-cert). Default: none, every client is accepted.
    #[arg(long, value_delimiter = ',', env = "KGO_BROKER_SASL_MECHANISMS")]
    sasl_mechanisms: Vec<String>,
    /// The users, one `name:password` per line. They are stored salted (SCRAM credentials, never the
    /// password) in --data-dir; without this flag a broker with a data dir keeps the users stored there.
    #[arg(long, env = "KGO_BROKER_USERS_FILE")]
    users_file: Option<PathBuf>,
    /// The listener's TLS certificate chain (PEM file): clients connect with SSL or SASL_SSL.
    #[arg(long, env = "KGO_BROKER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM file: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KGO_BROKER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CA bundle (PEM file) for mutual TLS: every client must present a certificate it issued.
    #[arg(long, env = "KGO_BROKER_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Partitions the broker holds at most, over all topics: CreateTopics, CreatePartitions and auto-creation
    /// beyond it are refused (POLICY_VIOLATION).
    #[arg(long, default_value_t = kafka_group_operator::broker::log::DEFAULT_MAX_PARTITIONS)]
    max_partitions: usize,
    /// Connections served at once (Kafka's `max.connections`); more are closed as soon as they are accepted.
    #[arg(long, default_value_t = kafka_group_operator::broker::connection_limits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Connections served at once from one IP address (Kafka's `max.connections.per.ip`).
    #[arg(long, default_value_t = kafka_group_operator::broker::connection_limits::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// The command line, parsed as the operator's binary or, invoked as `kubectl-kafkagroups`, as the kubectl plugin
/// (`cli::plugin`), which has only the command-line commands.
fn parse() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    if !cli::plugin::invoked_as_plugin(std::env::args_os().next().as_deref()) {
        return Cli::try_parse();
    }
    let mut command = cli::plugin::plugin_command(Cli::command(), "kafka-group-operator");
    let matches =
        command.try_get_matches_from_mut(std::env::args_os()).map_err(
            |e| match cli::plugin::operator_command_error(&e) {
                Some(message) => command.error(clap::error::ErrorKind::InvalidSubcommand, message),
                None => e,
            },
        )?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

fn main() -> std::process::ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        // Usage errors exit 1 like every other error: 2 is `plan`'s "changes" (clap's default would be 2).
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            };
        }
    };
    let default_level = match cli.command {
        Command::Run(_) | Command::Broker(_) => "info",
        _ => "warn",
    };
    let level = cli.log_level.clone().unwrap_or_else(|| default_level.to_owned());
    let outcome = telemetry::init(cli.log_format, &level)
        .map_err(anyhow::Error::from)
        .and_then(|()| dispatch(cli.command));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn cli_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn dispatch(command: Command) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match command {
        Command::Lag(args) => cli_runtime()?.block_on(cli::lag::run(*args)),
        Command::Plan(args) => cli_runtime()?.block_on(cli::plan::run(*args)),
        Command::Apply(args) => cli_runtime()?.block_on(cli::apply::run(*args)),
        Command::Export(args) => cli_runtime()?.block_on(cli::export::run(*args)),
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(*args))
            .map(|()| ExitCode::SUCCESS),
        Command::Broker(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_broker(*args))
            .map(|()| ExitCode::SUCCESS),
        Command::Crds => {
            print!("{}", kafka_group_operator::api::crds_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("kafka-group-operator {}", env!("CARGO_PKG_VERSION"));
            println!("kubernetes API: v1.37 (k8s-openapi feature v1_37)");
            println!("kafka protocol: kafka-protocol crate 0.18");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("shutting down");
}

async fn run_broker(args: BrokerArgs) -> Result<()> {
    let security = cli::broker_security::security(cli::broker_security::SecurityFiles {
        mechanisms: &args.sasl_mechanisms,
        users_file: args.users_file.as_deref(),
        tls_cert: args.tls_cert.as_ref(),
        tls_key: args.tls_key.as_ref(),
        tls_client_ca: args.tls_client_ca.as_ref(),
    })?;
    let config = BrokerConfig {
        security,
        listen: args.listen,
        advertised: args.advertised_address,
        node_id: args.node_id,
        cluster_id: args.cluster_id,
        data_dir: args.data_dir,
        max_request_bytes: args.max_request_bytes,
        idle_timeout: args.idle_timeout,
        default_partitions: args.default_partitions,
        auto_create_topics: !args.no_auto_create_topics,
        max_message_bytes: args.max_message_bytes,
        group_initial_rebalance_delay: args.group_initial_rebalance_delay,
        transaction_max_timeout: args.transaction_max_timeout,
        group_consumer_session_timeout: args.group_consumer_session_timeout,
        group_consumer_heartbeat_interval: args.group_consumer_heartbeat_interval,
        flush_interval: args.flush_interval,
        sync_acks_all: args.sync_acks_all,
        segment_bytes: args.segment_bytes,
        retention_bytes: args.retention_bytes,
        retention: args.retention,
        max_partitions: args.max_partitions,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        fail_fsync_while: args.test_fail_fsync_while,
        ..BrokerConfig::default()
    };
    let broker = Broker::start(config).await?;
    if let Some(addr) = args.metrics_addr {
        let health = Arc::new(Health::default());
        health.set_ready(true);
        let bound = http::serve(addr, broker.metrics(), health).await?;
        tracing::info!(%bound, "serving /healthz, /readyz and /metrics");
    }
    // The one line scripts wait for: where clients connect.
    println!(
        "kafka broker listening on {} (bootstrap {})",
        broker.local_addr(),
        broker.bootstrap()
    );
    shutdown_signal().await;
    broker.shutdown().await;
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    let kube = cli::connect::kube_client(args.kubeconfig.as_deref()).await?;
    let identity = format!(
        "{}-{}",
        std::env::var("POD_NAME")
            .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()))
            .unwrap_or_else(|_| "kafka-group-operator".to_owned()),
        std::process::id()
    );
    let metrics = Arc::new(Metrics::default());
    metrics.group_lag_series_only(args.lag_metrics == LagMetrics::Group);
    let health = Arc::new(Health::default());
    let bound = http::serve(args.metrics_addr, metrics.clone(), health.clone()).await?;
    tracing::info!(%bound, identity, "serving /healthz, /readyz and /metrics");

    let config = OperatorConfig {
        group_interval: args.group_interval,
        cluster_interval: args.cluster_interval,
        lag_interval: args.lag_interval,
        unstable_offset_wait: args.unstable_offset_wait,
        concurrency: args.concurrency,
        namespace: args.namespace.clone(),
        client: ClientSettings {
            request_timeout: args.kafka_timeout.min(Duration::from_secs(10)),
            operation_timeout: args.kafka_timeout,
        },
    };
    let brokers = args.embedded_brokers.then(|| {
        Arc::new(InProcessBrokers::new(EmbeddedSettings {
            bind: args.embedded_bind_address,
            advertised_host: args.embedded_advertised_host.clone(),
            data_root: args.embedded_data_root.clone(),
        }))
    });
    let host = brokers.clone().map(|b| b as Arc<dyn EmbeddedHost>);
    let ctx = Arc::new(Context::new(kube.clone(), metrics, config, identity.clone(), host));
    let outcome = run_controllers_while_leading(&args, kube, ctx, identity, health).await;
    // The embedded brokers stop after the controllers: their logs are fsynced before the process exits.
    if let Some(brokers) = brokers {
        brokers.shutdown_all().await;
    }
    outcome
}

/// Runs the controllers until shutdown; with `--leader-elect`, only while holding the Lease; with `--shards`,
/// for the shards whose Leases this replica holds.
async fn run_controllers_while_leading(
    args: &RunArgs,
    kube: kube::Client,
    ctx: Arc<Context>,
    identity: String,
    health: Arc<Health>,
) -> Result<()> {
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down");
    };

    if args.shards > 1 {
        let lease_ns = args.lease_namespace.clone().unwrap_or_else(|| "default".to_owned());
        let leases = Arc::new(ShardLeases::new(
            kube,
            &lease_ns,
            &args.lease_name,
            &identity,
            args.lease_duration,
            args.shards,
            ctx.metrics.clone(),
        ));
        ctx.shard_with(leases.clone());
        health.set_ready(true);
        tracing::info!(
            identity,
            shards = args.shards,
            "sharded: reconciling the shards this replica holds"
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let controllers = tokio::spawn(controller::run_controllers(ctx, async {
            let _ = stop_rx.await;
        }));
        leases.hold(shutdown).await;
        // The controllers stop before the Leases go, so that nothing acts on a shard another replica took.
        let _ = stop_tx.send(());
        let _ = controllers.await;
        leases.release_all().await;
        return Ok(());
    }
    if !args.leader_elect {
        health.set_ready(true);
        controller::run_controllers(ctx, shutdown).await;
        return Ok(());
    }
    let lease_ns = args.lease_namespace.clone().unwrap_or_else(|| "default".to_owned());
    let election = Arc::new(LeaderElection::new(
        kube,
        &lease_ns,
        &args.lease_name,
        &identity,
        args.lease_duration,
    ));
    // Every act of a reset first checks that this replica still holds the Lease.
    ctx.fence_with(election.clone());
    // A replica standing by is healthy and ready: it is doing its job.
    health.set_ready(true);
    tokio::pin!(shutdown);
    tokio::select! {
        result = election.acquire() => result?,
        _ = &mut shutdown => return Ok(()),
    }
    tracing::info!(identity, "leading: starting the controllers");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(controller::run_controllers(ctx, async {
        let _ = stop_rx.await;
    }));
    let outcome = tokio::select! {
        lost = election.hold() => Err(anyhow::anyhow!(lost)),
        _ = &mut shutdown => Ok(()),
    };
    let _ = stop_tx.send(());
    let _ = controllers.await;
    election.release().await;
    outcome
}
