//! `make bench` (`cargo bench --bench broker_throughput`): the embedded broker against Apache Kafka on this
//! machine, with the same clients in the same run: Kafka's own `ProducerPerformance`, `ConsumerPerformance`
//! and `EndToEndLatency` from the harness's classpath, and confluent-kafka (librdkafka) producing.
//!
//! The brokers run as their own processes, one at a time while measured: Apache Kafka with
//! `kafka-server-start.sh`'s JVM options; the embedded broker as the release binary `kafka-group-operator
//! broker` with a data dir, twice: with its default flush policy (Apache Kafka's: records written before the
//! answer, fsynced within a second) and with `--sync-acks-all` (an fsync before every acks=all answer). Apache Kafka is warmed up first (its first million records run about
//! 3× slower, see HARNESS.md); each measurement is repeated over several rounds, alternating the brokers, and
//! medians are reported. Also: start-up time (spawn to the first answered Metadata request) and idle RSS.
//!
//! Results go to stdout and target/bench-broker-throughput.md. Settings: KGO_BENCH_ROUNDS (3),
//! KGO_BENCH_RECORDS per run (500000), KGO_BENCH_WARMUP_RECORDS for Apache Kafka (1000000).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, ensure};
use common::{BROKER_JVM_OPTS, machine, median};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::ApacheKafka;
use support::tools::{clients_venv, kafka_home, system_tool};

/// JVM options of Kafka's CLI tools, as `kafka-run-class.sh` starts them.
const TOOL_JVM_OPTS: &[&str] = &["-Xmx512M", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"];

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "broker_throughput is a benchmark: run it with `make bench` or `cargo bench --bench broker_throughput`"
        );
        return Ok(());
    }
    let num = common::env_number;
    let settings = Settings {
        rounds: num("KGO_BENCH_ROUNDS", 3)?,
        records: num("KGO_BENCH_RECORDS", 500_000)?,
        warmup: num("KGO_BENCH_WARMUP_RECORDS", 1_000_000)?,
    };
    ensure!(
        settings.rounds >= 1 && settings.records >= 1000,
        "at least 1 round of 1000 records"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(&settings))
}

struct Settings {
    rounds: usize,
    records: usize,
    warmup: usize,
}

/// One broker under test.
struct Contender {
    name: &'static str,
    bootstrap: String,
    pid: u32,
    startup: Duration,
    idle_rss_kib: u64,
    _process: Process,
}

/// Held for its Drop: dropping it stops the broker (and removes the embedded broker's data dir).
#[allow(dead_code)]
enum Process {
    Kafka(Box<ApacheKafka>),
    Embedded(Child, tempfile::TempDir),
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Process::Embedded(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// (workload, broker) -> measurements over the rounds.
type Results = BTreeMap<(String, &'static str), Vec<f64>>;

async fn bench(settings: &Settings) -> Result<()> {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target");

    eprintln!("[bench] starting Apache Kafka ({BROKER_JVM_OPTS})");
    let kafka = start_kafka().await?;
    eprintln!("[bench] starting the embedded broker twice: as by default (Apache Kafka's flush policy), and with");
    eprintln!("[bench] --sync-acks-all (an fsync before every acks=all answer)");
    let embedded = start_embedded("embedded broker", &[]).await?;
    let embedded_synced = start_embedded("embedded broker, --sync-acks-all", &["--sync-acks-all=true"]).await?;
    let contenders = [&kafka, &embedded, &embedded_synced];
    for c in contenders {
        eprintln!(
            "[bench] {}: {} (pid {}), start-up {:.0} ms, idle RSS {:.1} MiB",
            c.name,
            c.bootstrap,
            c.pid,
            ms(c.startup),
            c.idle_rss_kib as f64 / 1024.0
        );
    }

    eprintln!("[bench] warming Apache Kafka up with {} records", settings.warmup);
    let warm_topic = topic(&kafka, "warmup").await?;
    producer_perf(&kafka, &warm_topic, settings.warmup, 100, "1")?;

    let mut results: Results = BTreeMap::new();
    for round in 0..settings.rounds {
        // Rotate which broker goes first.
        let mut order: Vec<&Contender> = contenders.to_vec();
        order.rotate_left(round % contenders.len());
        for c in order {
            for (size, acks) in [(100, "1"), (100, "all"), (1024, "1"), (1024, "all")] {
                let t = topic(c, "perf").await?;
                let produced = producer_perf(c, &t, settings.records, size, acks)?;
                eprintln!(
                    "[bench] round {round} {}: produce {size} B acks={acks}: {produced:.0} records/s",
                    c.name
                );
                push(
                    &mut results,
                    format!("Kafka ProducerPerformance, {size} B, acks={acks} (records/s)"),
                    c,
                    produced,
                );
                if acks == "1" {
                    let consumed = consumer_perf(c, &t, settings.records)?;
                    eprintln!(
                        "[bench] round {round} {}: consume {size} B: {consumed:.0} records/s",
                        c.name
                    );
                    push(
                        &mut results,
                        format!("Kafka ConsumerPerformance, {size} B (records/s)"),
                        c,
                        consumed,
                    );
                }
            }
            let t = topic(c, "confluent").await?;
            let confluent = confluent_produce(c, &t, settings.records, 100)?;
            eprintln!(
                "[bench] round {round} {}: confluent-kafka produce 100 B acks=all: {confluent:.0} records/s",
                c.name
            );
            push(
                &mut results,
                "confluent-kafka producer, 100 B, acks=all (records/s)".to_owned(),
                c,
                confluent,
            );
            let t = topic(c, "latency").await?;
            let p99 = end_to_end_p99(c, &t, 10_000)?;
            eprintln!("[bench] round {round} {}: end-to-end p99 {p99:.2} ms", c.name);
            push(
                &mut results,
                "Kafka EndToEndLatency, 100 B, acks=all, p99 (ms, lower is better)".to_owned(),
                c,
                p99,
            );
        }
    }

    let report = report(settings, &contenders, &results, started.elapsed());
    println!("{report}");
    let path = target.join("bench-broker-throughput.md");
    std::fs::write(&path, &report)?;
    eprintln!("[bench] written to {}", path.display());
    Ok(())
}

fn push(results: &mut Results, workload: String, c: &Contender, value: f64) {
    results.entry((workload, c.name)).or_default().push(value);
}

async fn start_kafka() -> Result<Contender> {
    let started = Instant::now();
    let kafka = ApacheKafka::start_with_jvm_opts(BROKER_JVM_OPTS, &[]);
    let bootstrap = kafka.bootstrap();
    wait_answering(&bootstrap).await?;
    let startup = started.elapsed();
    let pid = common::find_broker_pid(kafka.dir())?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Contender {
        name: "Apache Kafka 4.4.0",
        bootstrap,
        pid,
        startup,
        idle_rss_kib: rss_kib(pid)?,
        _process: Process::Kafka(Box::new(kafka)),
    })
}

async fn start_embedded(name: &'static str, extra: &[&str]) -> Result<Contender> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kafka-group-operator"));
    let data = tempfile::tempdir()?;
    let port = support::process::free_port();
    let started = Instant::now();
    let child = Command::new(&binary)
        .args(["broker", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data.path())
        // As the harness configures Apache Kafka (group.initial.rebalance.delay.ms=0): a consumer's join is
        // not held back 3 s by either broker.
        .args(["--group-initial-rebalance-delay", "0s"])
        .args(extra)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let bootstrap = format!("127.0.0.1:{port}");
    wait_answering(&bootstrap).await?;
    let startup = started.elapsed();
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Contender {
        name,
        bootstrap,
        pid,
        startup,
        idle_rss_kib: rss_kib(pid)?,
        _process: Process::Embedded(child, data),
    })
}

/// Until a Metadata request is answered (or 120 s).
async fn wait_answering(bootstrap: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut config = ClientConfig::new([bootstrap]);
        config.operation_timeout = Duration::from_millis(500);
        config.connect_timeout = Duration::from_millis(200);
        if let Ok(client) = KafkaClient::new(config)
            && client.metadata().await.is_ok()
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{bootstrap} did not answer within 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn topic(c: &Contender, prefix: &str) -> Result<String> {
    let name = support::unique_name(prefix);
    let client = KafkaClient::new(ClientConfig::new([c.bootstrap.clone()]))?;
    client.create_topics(&[NewTopic::new(&name, 1)]).await?;
    Ok(name)
}

fn java_tool(class: &str, args: &[String]) -> Result<String> {
    let home = kafka_home();
    let java = system_tool("java", "install a Java 17+ runtime");
    let out = Command::new("timeout")
        .arg("600")
        .arg(java)
        .args(TOOL_JVM_OPTS)
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            home.join("tools-log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}/libs/*", home.display()))
        .arg(class)
        .args(args)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "{class} {args:?} failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// records/s from ProducerPerformance's summary line ("N records sent, X records/sec (...), ...").
fn producer_perf(c: &Contender, topic: &str, records: usize, size: usize, acks: &str) -> Result<f64> {
    let args: Vec<String> = [
        "--bootstrap-server",
        &c.bootstrap,
        "--topic",
        topic,
        "--num-records",
        &records.to_string(),
        "--record-size",
        &size.to_string(),
        "--throughput",
        "-1",
        "--producer-props",
        &format!("acks={acks}"),
        "linger.ms=5",
        "batch.size=65536",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = java_tool("org.apache.kafka.tools.ProducerPerformance", &args)?;
    let summary = out
        .lines()
        .rev()
        .find(|l| l.contains("records sent"))
        .with_context(|| format!("no summary from ProducerPerformance: {out}"))?;
    let sent: usize = summary.split_whitespace().next().unwrap_or("0").parse()?;
    ensure!(
        sent == records,
        "ProducerPerformance sent {sent} of {records}: {summary}"
    );
    rate_before(summary, "records/sec")
}

/// records/s from ConsumerPerformance's CSV line: fetch.nMsg.sec (its 10th column: the group join is left out),
/// or nMsg.sec (6th) where the tool prints no fetch columns.
fn consumer_perf(c: &Contender, topic: &str, records: usize) -> Result<f64> {
    let args: Vec<String> = [
        "--bootstrap-server",
        &c.bootstrap,
        "--topic",
        topic,
        "--num-records",
        &records.to_string(),
        "--timeout",
        "60000",
        "--hide-header",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = java_tool("org.apache.kafka.tools.ConsumerPerformance", &args)?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.split(',').count() >= 6)
        .with_context(|| format!("no result from ConsumerPerformance: {out}"))?;
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let consumed: f64 = fields[4].parse()?;
    ensure!(
        consumed as usize >= records,
        "ConsumerPerformance consumed {consumed} of {records}: {line}"
    );
    Ok(fields.get(9).unwrap_or(&fields[5]).parse()?)
}

/// p99 (ms) from EndToEndLatency's "Percentiles: 50th = 1, 99th = 2, 99.9th = 3".
fn end_to_end_p99(c: &Contender, topic: &str, records: usize) -> Result<f64> {
    let args: Vec<String> = [c.bootstrap.as_str(), topic, &records.to_string(), "all", "100"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = java_tool("org.apache.kafka.tools.EndToEndLatency", &args)?;
    let line = out
        .lines()
        .find(|l| l.contains("99th"))
        .with_context(|| format!("no percentiles from EndToEndLatency: {out}"))?;
    let value = line
        .split("99th = ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .context("99th")?;
    Ok(value.trim().parse()?)
}

/// confluent-kafka producing `records` records of `size` bytes with acks=all (scripts/bench/confluent_produce.py).
fn confluent_produce(c: &Contender, topic: &str, records: usize, size: usize) -> Result<f64> {
    let venv = clients_venv();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench/confluent_produce.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(script)
        .args([&c.bootstrap, topic, &records.to_string(), &size.to_string()])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "confluent_produce.py failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim())?;
    ensure!(
        v["delivered"].as_u64() == Some(records as u64),
        "not all delivered: {v}"
    );
    v["records_per_sec"].as_f64().context("records_per_sec")
}

fn rate_before(line: &str, unit: &str) -> Result<f64> {
    let before = line.split(unit).next().context("unit")?;
    let number = before.trim_end().rsplit([' ', ',']).next().context("number")?;
    Ok(number.parse()?)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(settings: &Settings, contenders: &[&Contender], results: &Results, took: Duration) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Embedded broker vs Apache Kafka (`cargo bench --bench broker_throughput`)\n"
    );
    let _ = writeln!(r, "{}\n", machine());
    let _ = writeln!(
        r,
        "{} rounds of {} records per run, brokers alternating; medians. Total bench time {:.0} s.\n",
        settings.rounds,
        settings.records,
        took.as_secs_f64()
    );
    let names: Vec<&'static str> = contenders.iter().map(|c| c.name).collect();
    let _ = writeln!(
        r,
        "| workload | {} | {} |",
        names.join(" | "),
        names[1..]
            .iter()
            .map(|n| format!("{n} ÷ Kafka"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(r, "|---|{}", "---:|".repeat(names.len() * 2 - 1));
    let workloads: Vec<String> = {
        let mut w: Vec<String> = results.keys().map(|(w, _)| w.clone()).collect();
        w.dedup();
        w
    };
    for w in workloads {
        let values: Option<Vec<f64>> = names
            .iter()
            .map(|name| results.get(&(w.clone(), *name)).map(|v| median(v.clone())))
            .collect();
        if let Some(values) = values {
            let _ = writeln!(
                r,
                "| {w} | {} | {} |",
                values.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" | "),
                values[1..]
                    .iter()
                    .map(|v| format!("{:.2}×", v / values[0]))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
    let row = |label: &str, value: &dyn Fn(&Contender) -> f64| {
        let values: Vec<f64> = contenders.iter().map(|c| value(c)).collect();
        format!(
            "| {label} | {} | {} |",
            values.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" | "),
            values[1..]
                .iter()
                .map(|v| format!("{:.3}×", v / values[0]))
                .collect::<Vec<_>>()
                .join(" | ")
        )
    };
    let _ = writeln!(
        r,
        "{}",
        row("start-up (spawn to first Metadata answer, ms)", &|c| ms(c.startup))
    );
    let _ = writeln!(r, "{}", row("idle RSS (MiB)", &|c| c.idle_rss_kib as f64 / 1024.0));
    r
}
