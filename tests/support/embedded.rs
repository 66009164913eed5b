//! The embedded broker (`kafka_group_operator::broker`) as a test fixture, in-process on its own runtime,
//! with the same surface as `ApacheKafka` (`shared()`, `start()`, `bootstrap()`, `tool()`), so a test can run
//! the same assertions against both. `BrokerProcess` runs it as the real binary instead (for kill -9).

use super::kafka::{GroupOffsetRow, create_topic_with_cli, describe_group_offsets_with_cli, kafka_tool, kafka_tool_ok};
use super::process::{fixture_dir, spawn_tied, stop, tail, wait_until};
use kafka_group_operator::broker::metrics::BrokerMetrics;
use kafka_group_operator::broker::{Broker, BrokerConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub struct EmbeddedKafka {
    bootstrap: String,
    handle: tokio::runtime::Handle,
    metrics: std::sync::Arc<BrokerMetrics>,
    /// Asks the broker's thread for a graceful shutdown; it answers once the broker has stopped.
    stop: Mutex<Option<std::sync::mpsc::Sender<std::sync::mpsc::Sender<()>>>>,
}

impl EmbeddedKafka {
    /// One broker for the whole test binary, started on first use.
    pub fn shared() -> &'static EmbeddedKafka {
        static SHARED: OnceLock<EmbeddedKafka> = OnceLock::new();
        SHARED.get_or_init(EmbeddedKafka::start)
    }

    /// A fresh in-memory broker on a free port, configured like the `ApacheKafka` fixture (no initial
    /// rebalance delay, no auto-creation of topics).
    pub fn start() -> EmbeddedKafka {
        EmbeddedKafka::start_with(BrokerConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            group_initial_rebalance_delay: Duration::ZERO,
            auto_create_topics: false,
            ..BrokerConfig::default()
        })
    }

    /// Starts a broker with `config` on a runtime of its own, on a thread of its own, so that sync tests and
    /// `#[tokio::test]`s alike can start, use and stop it.
    pub fn start_with(config: BrokerConfig) -> EmbeddedKafka {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<()>>();
        std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the embedded broker");
                let broker = match runtime.block_on(Broker::start(config)) {
                    Ok(broker) => broker,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((broker.bootstrap(), runtime.handle().clone(), broker.metrics())));
                // Until asked to stop, or until every EmbeddedKafka handle is gone (the test binary's end).
                let done = stop_rx.recv().ok();
                runtime.block_on(broker.shutdown());
                if let Some(done) = done {
                    let _ = done.send(());
                }
            })
            .expect("spawn the embedded broker's thread");
        let (bootstrap, handle, metrics) = ready_rx
            .recv()
            .expect("the embedded broker's thread")
            .unwrap_or_else(|e| panic!("the embedded broker did not start: {e}"));
        EmbeddedKafka {
            bootstrap,
            handle,
            metrics,
            stop: Mutex::new(Some(stop_tx)),
        }
    }

    /// `127.0.0.1:<port>` of its listener.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// The runtime the broker runs on: `handle().block_on(...)` runs async clients from sync tests.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// The broker's Prometheus metrics, as /metrics serves them.
    pub fn metrics_text(&self) -> String {
        use kafka_group_operator::http::MetricsText;
        self.metrics.encode()
    }

    /// Graceful shutdown (what SIGTERM does to the binary); returns once the broker has stopped. Later calls
    /// do nothing.
    pub fn shutdown(&self) {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(stop) = stop {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            if stop.send(done_tx).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }

    /// Runs one of Kafka's CLI tools against this broker (see `kafka::kafka_tool`).
    pub fn tool(&self, class: &str, args: &[&str]) -> Output {
        kafka_tool(&self.bootstrap, class, args)
    }

    pub fn tool_ok(&self, class: &str, args: &[&str]) -> String {
        kafka_tool_ok(&self.bootstrap, class, args)
    }

    /// Creates a topic with `kafka-topics --create`.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        create_topic_with_cli(&self.bootstrap, topic, partitions);
    }

    /// `kafka-consumer-groups --describe --group G --offsets` parsed into rows.
    pub fn describe_group_offsets(&self, group: &str) -> Vec<GroupOffsetRow> {
        describe_group_offsets_with_cli(&self.bootstrap, group)
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `kafka-group-operator broker` binary as a child process (dies with the test binary).
pub struct BrokerProcess {
    child: Child,
    log: PathBuf,
    bootstrap: String,
}

impl BrokerProcess {
    /// Starts the binary on a free port with `args` added (e.g. `--data-dir`), and waits until it listens.
    pub fn start(args: &[&str]) -> BrokerProcess {
        BrokerProcess::start_on("127.0.0.1:0", args)
    }

    /// Like `start`, listening on `listen` (`127.0.0.1:<port>`; port 0 picks a free one).
    pub fn start_on(listen: &str, args: &[&str]) -> BrokerProcess {
        let dir = fixture_dir("broker");
        let log = dir.join("broker.log");
        // Test binaries get the path from cargo; the dev-env example (which includes these fixtures) does not.
        let binary = option_env!("CARGO_BIN_EXE_kafka-group-operator")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/kafka-group-operator"));
        let mut cmd = Command::new(binary);
        cmd.args(["broker", "--listen", listen, "--group-initial-rebalance-delay", "0s"])
            .args(args)
            .env("RUST_LOG", "info");
        let mut child = spawn_tied(cmd, &log);
        let mut bootstrap = None;
        wait_until(
            "kafka-group-operator broker",
            &mut child,
            &log,
            Duration::from_secs(30),
            || {
                bootstrap = std::fs::read_to_string(&log).ok().and_then(|text| {
                    text.lines().find_map(|l| {
                        l.split("(bootstrap ")
                            .nth(1)
                            .map(|rest| rest.trim_end_matches(')').to_owned())
                    })
                });
                bootstrap.is_some()
            },
        );
        BrokerProcess {
            child,
            log,
            bootstrap: bootstrap.unwrap_or_default(),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// SIGKILL (no shutdown, no flush), then the binary again on the same port with `args` (pass the same
    /// `--data-dir` to recover its data); returns once it listens again. Clients configured with the old
    /// bootstrap reconnect to the restarted broker.
    pub fn kill9_and_restart(&mut self, args: &[&str]) {
        let listen = self.bootstrap.clone();
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = BrokerProcess::start_on(&listen, args);
        assert_eq!(
            self.bootstrap,
            listen,
            "the restarted broker listens elsewhere; log:\n{}",
            self.log_tail(20)
        );
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(10));
    }
}
