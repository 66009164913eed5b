//! `make bench` (`cargo bench --bench broker_log_memory`): the embedded broker's resident memory as its log
//! grows, against Apache Kafka's with the same log, in the same run. For each log size (KGO_BENCH_LOG_GIB,
//! default "1,10"), each broker in turn: a fresh data dir, Kafka's ProducerPerformance writes that many GiB of
//! 1 KiB records (acks=1) to a topic of 4 partitions, ConsumerPerformance reads all of it back from the start,
//! the broker is killed (SIGKILL, so that recovery runs) and restarted on the same data dir, and a second
//! ConsumerPerformance reads everything again. Reported: peak and final RSS while producing and consuming,
//! start-up time after the kill and RSS after it. The embedded broker serves records from its segment files
//! (the page cache, which RSS does not count), so its RSS should not follow the log's size.
//!
//! Results go to stdout and target/bench-broker-log-memory.md. KGO_BENCH_LOG_BROKERS=embedded (or kafka) runs one
//! broker only.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, ensure};
use common::{BROKER_JVM_OPTS, machine};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::ApacheKafka;

const RECORD_BYTES: usize = 1024;
const PARTITIONS: i32 = 4;

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "broker_log_memory is a benchmark: run it with `make bench` or `cargo bench --bench broker_log_memory`"
        );
        return Ok(());
    }
    let sizes: Vec<f64> = std::env::var("KGO_BENCH_LOG_GIB")
        .unwrap_or_else(|_| "1,10".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .context("KGO_BENCH_LOG_GIB: comma-separated GiB")
        })
        .collect::<Result<_>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(&sizes))
}

/// One broker process under test, restartable on its data dir.
enum Broker {
    Embedded { child: Child, data: PathBuf, port: u16 },
    Kafka(Box<ApacheKafka>),
}

impl Broker {
    fn pid(&self) -> Result<u32> {
        match self {
            Broker::Embedded { child, .. } => Ok(child.id()),
            Broker::Kafka(kafka) => common::find_broker_pid(kafka.dir()),
        }
    }

    fn bootstrap(&self) -> String {
        match self {
            Broker::Embedded { port, .. } => format!("127.0.0.1:{port}"),
            Broker::Kafka(kafka) => kafka.bootstrap(),
        }
    }

    /// SIGKILL, then start again on the same data; returns the time until it answers Metadata.
    async fn kill_and_restart(&mut self) -> Result<Duration> {
        match self {
            Broker::Embedded { child, data, port } => {
                child.kill()?;
                child.wait()?;
                let started = Instant::now();
                *child = spawn_embedded(data, *port)?;
                wait_answering(&format!("127.0.0.1:{port}")).await?;
                Ok(started.elapsed())
            }
            Broker::Kafka(kafka) => {
                let started = Instant::now();
                kafka.kill9_and_restart(BROKER_JVM_OPTS);
                wait_answering(&kafka.bootstrap()).await?;
                Ok(started.elapsed())
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Embedded { child, data, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

fn spawn_embedded(data: &Path, port: u16) -> Result<Child> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kafka-group-operator"));
    Command::new(&binary)
        .args(["broker", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))
}

async fn start(name: &str) -> Result<Broker> {
    if name == EMBEDDED {
        let data = tempfile::Builder::new().prefix("kgo-bench-log-").tempdir()?.keep();
        let port = support::process::free_port();
        let child = spawn_embedded(&data, port)?;
        let broker = Broker::Embedded { child, data, port };
        wait_answering(&broker.bootstrap()).await?;
        Ok(broker)
    } else {
        let kafka = ApacheKafka::start_with_jvm_opts(BROKER_JVM_OPTS, &[]);
        wait_answering(&kafka.bootstrap()).await?;
        Ok(Broker::Kafka(Box::new(kafka)))
    }
}

const EMBEDDED: &str = "embedded broker";
const KAFKA: &str = "Apache Kafka 4.4.0";

/// Samples a process's RSS every 200 ms until stopped; the peak in KiB.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

#[derive(Default)]
struct Measured {
    produce_peak_kib: u64,
    after_produce_kib: u64,
    consume_peak_kib: u64,
    restart: Duration,
    after_restart_kib: u64,
    reconsume_peak_kib: u64,
    produce_mib_s: f64,
}

async fn bench(sizes: &[f64]) -> Result<()> {
    let started = Instant::now();
    let only = std::env::var("KGO_BENCH_LOG_BROKERS").unwrap_or_default();
    let brokers: Vec<&str> = [EMBEDDED, KAFKA]
        .into_iter()
        .filter(|b| only.is_empty() || (only == "embedded") == (*b == EMBEDDED))
        .collect();
    let mut rows = Vec::new();
    for &gib in sizes {
        for &name in &brokers {
            eprintln!("[bench] {name}: {gib} GiB of log");
            let m = measure(name, gib).await?;
            eprintln!(
                "[bench] {name} {gib} GiB: produce peak {} MiB, consume peak {} MiB, restart {:.1} s, after restart {} MiB, re-read peak {} MiB",
                m.produce_peak_kib / 1024,
                m.consume_peak_kib / 1024,
                m.restart.as_secs_f64(),
                m.after_restart_kib / 1024,
                m.reconsume_peak_kib / 1024
            );
            rows.push((gib, name, m));
        }
    }
    let mut report = String::new();
    writeln!(report, "# Embedded broker: resident memory against the size of its log")?;
    writeln!(report)?;
    writeln!(report, "{}", machine())?;
    writeln!(
        report,
        "1 KiB records, {PARTITIONS} partitions, ProducerPerformance acks=1 then ConsumerPerformance from the start; SIGKILL, restart on the same data, read everything again. RSS sampled every 200 ms (VmRSS; the page cache is not in it). Apache Kafka with `{BROKER_JVM_OPTS}`. Took {:.0} s.",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(report)?;
    writeln!(
        report,
        "| log | broker | produce MiB/s | RSS peak producing | RSS after | RSS peak reading all | restart after SIGKILL | RSS after restart | RSS peak reading all again |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|---|---|")?;
    for (gib, name, m) in &rows {
        writeln!(
            report,
            "| {gib} GiB | {name} | {:.0} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} s | {:.1} MiB | {:.1} MiB |",
            m.produce_mib_s,
            m.produce_peak_kib as f64 / 1024.0,
            m.after_produce_kib as f64 / 1024.0,
            m.consume_peak_kib as f64 / 1024.0,
            m.restart.as_secs_f64(),
            m.after_restart_kib as f64 / 1024.0,
            m.reconsume_peak_kib as f64 / 1024.0
        )?;
    }
    println!("{report}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-broker-log-memory.md");
    std::fs::write(&path, &report)?;
    eprintln!("[bench] written to {}", path.display());
    Ok(())
}

async fn measure(name: &str, gib: f64) -> Result<Measured> {
    let mut broker = start(name).await?;
    let bootstrap = broker.bootstrap();
    let topic = support::unique_name("log-memory");
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()]))?;
    client.create_topics(&[NewTopic::new(&topic, PARTITIONS)]).await?;
    let records = ((gib * 1024.0 * 1024.0 * 1024.0) / RECORD_BYTES as f64) as usize;
    let mut m = Measured::default();

    let sampler = RssSampler::start(broker.pid()?);
    let produced = Instant::now();
    producer_perf(&bootstrap, &topic, records)?;
    m.produce_mib_s = (records * RECORD_BYTES) as f64 / 1048576.0 / produced.elapsed().as_secs_f64();
    m.produce_peak_kib = sampler.finish();
    m.after_produce_kib = rss_kib(broker.pid()?)?;

    let sampler = RssSampler::start(broker.pid()?);
    consumer_perf(&bootstrap, &topic, records)?;
    m.consume_peak_kib = sampler.finish();

    m.restart = broker.kill_and_restart().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    m.after_restart_kib = rss_kib(broker.pid()?)?;
    let sampler = RssSampler::start(broker.pid()?);
    consumer_perf(&broker.bootstrap(), &topic, records)?;
    m.reconsume_peak_kib = sampler.finish();
    Ok(m)
}

async fn wait_answering(bootstrap: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut config = ClientConfig::new([bootstrap]);
        config.operation_timeout = Duration::from_millis(500);
        config.connect_timeout = Duration::from_millis(200);
        if let Ok(client) = KafkaClient::new(config)
            && client.metadata().await.is_ok()
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{bootstrap} did not answer within 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn java_tool<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(class: &str, args: &[S]) -> Result<String> {
    common::java_tool(class, args, 3600)
}

fn producer_perf(bootstrap: &str, topic: &str, records: usize) -> Result<()> {
    let (records, size) = (records.to_string(), RECORD_BYTES.to_string());
    let out = java_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--num-records",
            &records,
            "--record-size",
            &size,
            "--throughput",
            "-1",
            "--producer-props",
            "acks=1",
            "linger.ms=5",
            "batch.size=65536",
        ],
    )?;
    ensure!(
        out.lines().any(|l| l.starts_with(&format!("{records} records sent"))),
        "ProducerPerformance did not send {records} records: {out}"
    );
    Ok(())
}

fn consumer_perf(bootstrap: &str, topic: &str, records: usize) -> Result<()> {
    let count = records.to_string();
    let out = java_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        &[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--num-records",
            &count,
            "--timeout",
            "120000",
            "--hide-header",
        ],
    )?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.split(',').count() >= 6)
        .with_context(|| format!("no result from ConsumerPerformance: {out}"))?;
    let consumed: f64 = line.split(',').nth(4).context("nMsg")?.trim().parse()?;
    ensure!(consumed as usize >= records, "consumed {consumed} of {records}: {line}");
    Ok(())
}
