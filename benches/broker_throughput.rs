//! `make bench` (`cargo bench --bench broker_throughput`): the embedded broker against Apache Kafka on this
//! machine, with the same clients in the same run: Kafka's own `ProducerPerformance`, `ConsumerPerformance`
//! and `EndToEndLatency` from the harness's classpath, and confluent-kafka (librdkafka) producing.
//!
//! The brokers run as their own processes, one at a time while measured: Apache Kafka with
//! `kafka-server-start.sh`'s JVM options; the embedded broker as the release binary `kafka-group-operator
//! broker` with a data dir, twice: with its default flush policy (Apache Kafka's: records written before the
//! answer, fsynced within a second) and with `--sync-acks-all` (an fsync before every acks=all answer).
//! Apache Kafka is warmed up first (its first million records run about 3× slower, see HARNESS.md); each
//! measurement is repeated over several rounds, alternating the brokers, and medians are reported. Also:
//! start-up time (spawn to the first answered Metadata request) and idle RSS.
//!
//! Both brokers run once more with SCRAM-SHA-512 over TLS (SASL_SSL), measured by the same clients in the
//! same rounds: Apache Kafka as the tests' `SecureKafka` fixture (a SASL_SSL listener with a PEM keystore and
//! truststore, the SCRAM user created at format time) with the same JVM options and warm-up; the embedded
//! broker (default flush policy) with `--sasl-mechanisms SCRAM-SHA-512 --users-file --tls-cert --tls-key` and
//! the same user. Both have an RSA 2048 certificate. The clients read the password from files only, never
//! from their arguments: the perf tools' `--command-config` (Kafka 4.4's name for the deprecated
//! `--producer.config`/`--consumer.config`), EndToEndLatency's properties file, a librdkafka properties file.
//! A second table gives each broker's SASL_SSL figures ÷ its plaintext ones (the cost of TLS + SCRAM) and
//! ours ÷ Kafka's in each variant.
//!
//! Results go to stdout and target/bench-broker-throughput.md. Settings: KGO_BENCH_ROUNDS (3),
//! KGO_BENCH_RECORDS per run (500000), KGO_BENCH_WARMUP_RECORDS for each Apache Kafka broker (1000000).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, ensure};
use common::{BROKER_JVM_OPTS, machine, median};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic, SaslConfig, SaslMechanism, Secret, TlsConfig};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::pki::{KeyAlgorithm, Pki};
use support::secure_kafka::{SaslCredentials, SaslMechanism as FixtureMechanism};
use support::tools::clients_venv;
use support::{ApacheKafka, SecureKafka};

const KAFKA: &str = "Apache Kafka 4.4.0";
const OURS: &str = "embedded broker";
const OURS_SYNCED: &str = "embedded broker, --sync-acks-all";
const KAFKA_SASL_SSL: &str = "Apache Kafka 4.4.0, SASL_SSL";
const OURS_SASL_SSL: &str = "embedded broker, SASL_SSL";

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
    /// How the clients reach a SASL_SSL contender; `None`: PLAINTEXT.
    secured: Option<Secured>,
    pid: u32,
    startup: Duration,
    idle_rss_kib: u64,
    /// Held for its Drop.
    process: Process,
}

impl Contender {
    /// Our client's configuration for this broker (topic creation, the readiness probe).
    fn client_config(&self) -> ClientConfig {
        client_config(&self.bootstrap, self.secured.as_ref())
    }
}

/// How every client reaches a SASL_SSL broker (SCRAM-SHA-512 over TLS, trusting the broker's CA), from files
/// only: no password is ever a process argument.
struct Secured {
    /// Kafka's Java clients: the perf tools' `--command-config` and EndToEndLatency's properties file.
    java_properties: PathBuf,
    /// confluent-kafka (librdkafka) settings, read by `confluent_produce.py`.
    librdkafka_properties: PathBuf,
    /// Our client.
    sasl: SaslConfig,
    tls: TlsConfig,
}

impl Secured {
    /// Writes the clients' files for `user` and the CA `ca` into `dir` (readable by the owner only).
    fn write(dir: &Path, name: &str, user: &SaslCredentials, ca: &Path) -> Result<Secured> {
        ensure!(
            user.mechanism == FixtureMechanism::ScramSha512,
            "{} is not a SCRAM-SHA-512 user",
            user.username
        );
        let java_properties = dir.join(format!("{name}-java.properties"));
        private_file(
            &java_properties,
            &format!(
                "security.protocol=SASL_SSL\n\
                 sasl.mechanism=SCRAM-SHA-512\n\
                 sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
                 username=\"{}\" password=\"{}\";\n\
                 ssl.truststore.type=PEM\n\
                 ssl.truststore.location={}\n",
                user.username,
                user.password,
                ca.display()
            ),
        )?;
        let librdkafka_properties = dir.join(format!("{name}-librdkafka.properties"));
        private_file(
            &librdkafka_properties,
            &format!(
                "security.protocol=SASL_SSL\n\
                 sasl.mechanisms=SCRAM-SHA-512\n\
                 sasl.username={}\n\
                 sasl.password={}\n\
                 ssl.ca.location={}\n",
                user.username,
                user.password,
                ca.display()
            ),
        )?;
        Ok(Secured {
            java_properties,
            librdkafka_properties,
            sasl: SaslConfig {
                mechanism: SaslMechanism::ScramSha512,
                username: user.username.clone(),
                password: Secret::new(user.password.as_bytes().to_vec()),
            },
            tls: TlsConfig {
                ca_pem: Some(std::fs::read(ca).with_context(|| format!("read {}", ca.display()))?),
                ..TlsConfig::default()
            },
        })
    }
}

/// Creates `path` with mode 0600 and writes `text` into it.
fn private_file(path: &Path, text: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("write {}", path.display()))
}

fn client_config(bootstrap: &str, secured: Option<&Secured>) -> ClientConfig {
    let mut config = ClientConfig::new([bootstrap]);
    if let Some(s) = secured {
        config.sasl = Some(s.sasl.clone());
        config.tls = Some(s.tls.clone());
    }
    config
}

/// Held for its Drop: dropping it stops the broker (and removes the embedded broker's data dir).
#[allow(dead_code)]
enum Process {
    Kafka(Box<ApacheKafka>),
    SecureKafka(Box<SecureKafka>),
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

/// (workload, broker) -> measurements over the rounds; workloads in the order first measured.
#[derive(Default)]
struct Results {
    workloads: Vec<String>,
    values: BTreeMap<(String, &'static str), Vec<f64>>,
}

impl Results {
    fn push(&mut self, workload: String, c: &Contender, value: f64) {
        if !self.workloads.contains(&workload) {
            self.workloads.push(workload.clone());
        }
        self.values.entry((workload, c.name)).or_default().push(value);
    }

    fn median(&self, workload: &str, name: &str) -> Option<f64> {
        self.values.get(&(workload.to_owned(), name)).map(|v| median(v.clone()))
    }
}

/// The 1-minute load average, sampled before the brokers start, at the start of every round and at the end.
#[derive(Default)]
struct Load {
    before: f64,
    rounds: Vec<f64>,
    end: f64,
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

async fn bench(settings: &Settings) -> Result<()> {
    let started = Instant::now();
    let mut load = Load {
        before: load1(),
        ..Load::default()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target");
    // The SASL_SSL clients' files and the embedded broker's PKI and users file; removed at the end.
    let files = tempfile::tempdir()?;

    eprintln!("[bench] starting Apache Kafka ({BROKER_JVM_OPTS})");
    let kafka = start_kafka().await?;
    eprintln!("[bench] starting Apache Kafka with a SASL_SSL listener (SCRAM-SHA-512 user made at format time)");
    let kafka_sasl_ssl = start_secure_kafka(files.path()).await?;
    eprintln!("[bench] starting the embedded broker twice: as by default (Apache Kafka's flush policy), and with");
    eprintln!("[bench] --sync-acks-all (an fsync before every acks=all answer); and a third time with SASL_SSL");
    let embedded = start_embedded(OURS, &[]).await?;
    let embedded_synced = start_embedded(OURS_SYNCED, &["--sync-acks-all=true"]).await?;
    let embedded_sasl_ssl = start_secure_embedded(files.path(), kafka_sasl_ssl_user(&kafka_sasl_ssl)).await?;
    // Kafka and ours alternate in this order, which rotates by one every round.
    let contenders = [&kafka, &embedded, &kafka_sasl_ssl, &embedded_sasl_ssl, &embedded_synced];
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

    for c in [&kafka, &kafka_sasl_ssl] {
        eprintln!("[bench] warming {} up with {} records", c.name, settings.warmup);
        let warm_topic = topic(c, "warmup").await?;
        producer_perf(c, &warm_topic, settings.warmup, 100, "1")?;
    }

    let mut results = Results::default();
    for round in 0..settings.rounds {
        load.rounds.push(load1());
        // Rotate which broker goes first.
        let mut order: Vec<&Contender> = contenders.to_vec();
        order.rotate_left(round % contenders.len());
        for c in order {
            for (size, acks) in [(100, "1"), (100, "all"), (1024, "1"), (1024, "all")] {
                let t = topic(c, "perf").await?;
                let produced = producer_perf(c, &t, settings.records, size, acks)?;
                eprintln!(
                    "[bench] round {round} {}: produce {size} B acks={acks}: {:.0} records/s, {:.1} MB/s",
                    c.name, produced.records_per_sec, produced.mb_per_sec
                );
                let workload = format!("Kafka ProducerPerformance, {size} B, acks={acks}");
                results.push(format!("{workload} (records/s)"), c, produced.records_per_sec);
                results.push(format!("{workload} (MB/s)"), c, produced.mb_per_sec);
                if acks == "1" {
                    let consumed = consumer_perf(c, &t, settings.records)?;
                    eprintln!(
                        "[bench] round {round} {}: consume {size} B: {consumed:.0} records/s",
                        c.name
                    );
                    results.push(format!("Kafka ConsumerPerformance, {size} B (records/s)"), c, consumed);
                }
            }
            let t = topic(c, "confluent").await?;
            let confluent = confluent_produce(c, &t, settings.records, 100)?;
            eprintln!(
                "[bench] round {round} {}: confluent-kafka produce 100 B acks=all: {confluent:.0} records/s",
                c.name
            );
            results.push(
                "confluent-kafka producer, 100 B, acks=all (records/s)".to_owned(),
                c,
                confluent,
            );
            let t = topic(c, "latency").await?;
            let p99 = end_to_end_p99(c, &t, 10_000)?;
            eprintln!("[bench] round {round} {}: end-to-end p99 {p99:.2} ms", c.name);
            results.push(
                "Kafka EndToEndLatency, 100 B, acks=all, p99 (ms, lower is better)".to_owned(),
                c,
                p99,
            );
        }
    }
    load.end = load1();

    let report = report(settings, &contenders, &results, &load, started.elapsed());
    println!("{report}");
    let path = target.join("bench-broker-throughput.md");
    std::fs::write(&path, &report)?;
    eprintln!("[bench] written to {}", path.display());
    Ok(())
}

/// The SCRAM-SHA-512 user of the SASL_SSL Apache Kafka, which the SASL_SSL embedded broker gets too.
fn kafka_sasl_ssl_user(c: &Contender) -> &SaslCredentials {
    match &c.process {
        Process::SecureKafka(kafka) => kafka.scram_sha_512_user(),
        _ => unreachable!("only the SASL_SSL Apache Kafka has SASL users"),
    }
}

async fn start_kafka() -> Result<Contender> {
    let started = Instant::now();
    let kafka = ApacheKafka::start_with_jvm_opts(BROKER_JVM_OPTS, &[]);
    let bootstrap = kafka.bootstrap();
    wait_answering(&client_config(&bootstrap, None)).await?;
    let startup = started.elapsed();
    let pid = common::find_broker_pid(kafka.dir())?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Contender {
        name: KAFKA,
        bootstrap,
        secured: None,
        pid,
        startup,
        idle_rss_kib: rss_kib(pid)?,
        process: Process::Kafka(Box::new(kafka)),
    })
}

/// The tests' SASL_SSL Apache Kafka (`SecureKafka`: PEM keystore and truststore from its own PKI, RSA 2048; its
/// SCRAM-SHA-512 user created at format time), started with the production JVM options; measured through its
/// SASL_SSL listener. Its start-up includes making the PKI (openssl) and formatting with the SCRAM users.
async fn start_secure_kafka(files: &Path) -> Result<Contender> {
    let started = Instant::now();
    let kafka = SecureKafka::start_with_jvm_opts(BROKER_JVM_OPTS);
    let bootstrap = kafka.sasl_ssl_bootstrap();
    let secured = Secured::write(files, "kafka", kafka.scram_sha_512_user(), kafka.ca_pem())?;
    wait_answering(&client_config(&bootstrap, Some(&secured))).await?;
    let startup = started.elapsed();
    let pid = common::find_broker_pid(kafka.dir())?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Contender {
        name: KAFKA_SASL_SSL,
        bootstrap,
        secured: Some(secured),
        pid,
        startup,
        idle_rss_kib: rss_kib(pid)?,
        process: Process::SecureKafka(Box::new(kafka)),
    })
}

async fn start_embedded(name: &'static str, extra: &[&str]) -> Result<Contender> {
    spawn_embedded(name, extra.iter().map(|a| a.to_string()).collect(), None).await
}

/// The embedded broker with SCRAM-SHA-512 over TLS: a PKI of its own (RSA 2048 like the SASL_SSL Apache
/// Kafka's, server certificate with SANs 127.0.0.1 and localhost), `user` in a users file.
async fn start_secure_embedded(files: &Path, user: &SaslCredentials) -> Result<Contender> {
    let pki = Pki::create(&files.join("embedded-pki"), "kgo-bench-ca", KeyAlgorithm::Rsa2048);
    let server = pki.server_cert("broker", "/CN=localhost", &[]);
    let users = files.join("embedded-users");
    private_file(&users, &format!("{}:{}\n", user.username, user.password))?;
    let secured = Secured::write(files, "embedded", user, pki.ca_cert())?;
    let args = vec![
        "--sasl-mechanisms".to_owned(),
        "SCRAM-SHA-512".to_owned(),
        "--users-file".to_owned(),
        users.display().to_string(),
        "--tls-cert".to_owned(),
        server.cert.display().to_string(),
        "--tls-key".to_owned(),
        server.key.display().to_string(),
    ];
    spawn_embedded(OURS_SASL_SSL, args, Some(secured)).await
}

async fn spawn_embedded(name: &'static str, extra: Vec<String>, secured: Option<Secured>) -> Result<Contender> {
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
        .args(&extra)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let bootstrap = format!("127.0.0.1:{port}");
    wait_answering(&client_config(&bootstrap, secured.as_ref())).await?;
    let startup = started.elapsed();
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Contender {
        name,
        bootstrap,
        secured,
        pid,
        startup,
        idle_rss_kib: rss_kib(pid)?,
        process: Process::Embedded(child, data),
    })
}

/// Until a Metadata request is answered (or 120 s).
async fn wait_answering(config: &ClientConfig) -> Result<()> {
    let bootstrap = config.bootstrap_servers.join(",");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut config = config.clone();
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
    let client = KafkaClient::new(c.client_config())?;
    client.create_topics(&[NewTopic::new(&name, 1)]).await?;
    Ok(name)
}

fn java_tool<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(class: &str, args: &[S]) -> Result<String> {
    common::java_tool(class, args, 600)
}

/// What ProducerPerformance measured.
struct Produced {
    records_per_sec: f64,
    /// The tool's MB/sec: records/s × record size ÷ 2^20.
    mb_per_sec: f64,
}

/// From ProducerPerformance's summary line ("N records sent, X records/sec (Y MB/sec), ...").
fn producer_perf(c: &Contender, topic: &str, records: usize, size: usize, acks: &str) -> Result<Produced> {
    let mut args: Vec<String> = [
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
    if let Some(s) = &c.secured {
        args.extend(["--command-config".to_owned(), s.java_properties.display().to_string()]);
    }
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
    Ok(Produced {
        records_per_sec: rate_before(summary, "records/sec")?,
        mb_per_sec: rate_before(summary, "MB/sec")?,
    })
}

/// records/s from ConsumerPerformance's CSV line: fetch.nMsg.sec (its 10th column: the group join is left out),
/// or nMsg.sec (6th) where the tool prints no fetch columns.
fn consumer_perf(c: &Contender, topic: &str, records: usize) -> Result<f64> {
    let mut args: Vec<String> = [
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
    if let Some(s) = &c.secured {
        args.extend(["--command-config".to_owned(), s.java_properties.display().to_string()]);
    }
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

/// p99 (ms) from EndToEndLatency's "Percentiles: 50th = 1, 99th = 2, 99.9th = 3". Its arguments are
/// positional: bootstrap, topic, records, acks, record size, and the client properties file if any.
fn end_to_end_p99(c: &Contender, topic: &str, records: usize) -> Result<f64> {
    let mut args: Vec<String> = [c.bootstrap.as_str(), topic, &records.to_string(), "all", "100"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(s) = &c.secured {
        args.push(s.java_properties.display().to_string());
    }
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

/// confluent-kafka producing `records` records of `size` bytes with acks=all (scripts/bench/confluent_produce.py;
/// a SASL_SSL contender's librdkafka settings from a file).
fn confluent_produce(c: &Contender, topic: &str, records: usize, size: usize) -> Result<f64> {
    let venv = clients_venv();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench/confluent_produce.py");
    let mut cmd = Command::new("timeout");
    cmd.arg("600").arg(venv.join("bin/python")).arg(script).args([
        &c.bootstrap,
        topic,
        &records.to_string(),
        &size.to_string(),
    ]);
    if let Some(s) = &c.secured {
        cmd.arg(&s.librdkafka_properties);
    }
    let out = cmd.output()?;
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
    let number = before.trim_end().rsplit([' ', ',', '(']).next().context("number")?;
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

fn report(settings: &Settings, contenders: &[&Contender], results: &Results, load: &Load, took: Duration) -> String {
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
    let _ = writeln!(
        r,
        "1-minute load average: {:.2} before the brokers started; {} at the start of each round; {:.2} at the \
         end (the bench's own broker and client keep about 2 busy).\n",
        load.before,
        load.rounds
            .iter()
            .map(|l| format!("{l:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        load.end
    );
    let by_name = |name: &str| contenders.iter().find(|c| c.name == name).copied();
    let fmt = |v: f64| {
        if v >= 1000.0 { thousands(v) } else { format!("{v:.1}") }
    };

    // Plaintext: Apache Kafka and the embedded broker with either flush policy.
    let _ = writeln!(r, "### Plaintext\n");
    let names = [KAFKA, OURS, OURS_SYNCED];
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
    for w in &results.workloads {
        let values: Option<Vec<f64>> = names.iter().map(|name| results.median(w, name)).collect();
        if let Some(values) = values {
            let _ = writeln!(
                r,
                "| {w} | {} | {} |",
                values.iter().map(|v| fmt(*v)).collect::<Vec<_>>().join(" | "),
                values[1..]
                    .iter()
                    .map(|v| format!("{:.2}×", v / values[0]))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
    }
    let plaintext: Vec<&Contender> = names.iter().filter_map(|n| by_name(n)).collect();
    let row = |label: &str, value: &dyn Fn(&Contender) -> f64| {
        let values: Vec<f64> = plaintext.iter().map(|c| value(c)).collect();
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

    // SCRAM-SHA-512 over TLS beside plaintext: each broker's cost of TLS + SCRAM, and ours ÷ Kafka's per variant.
    let _ = writeln!(
        r,
        "\n### SCRAM-SHA-512 over TLS (SASL_SSL) beside plaintext\n\n\
         Embedded broker with its default flush policy. \"÷ plain\": the broker's SASL_SSL figure ÷ its plaintext \
         one (below 1 = slower with TLS + SCRAM; for latency, above 1 = slower). \"ours ÷ Kafka\": the embedded \
         broker's figure ÷ Apache Kafka's, in the same variant.\n"
    );
    let _ = writeln!(
        r,
        "| workload | Kafka plain | Kafka SASL_SSL | Kafka ÷ plain | ours plain | ours SASL_SSL | ours ÷ plain \
         | ours ÷ Kafka, plain | ours ÷ Kafka, SASL_SSL |"
    );
    let _ = writeln!(r, "|---|{}", "---:|".repeat(8));
    let columns = [KAFKA, KAFKA_SASL_SSL, OURS, OURS_SASL_SSL];
    let secure_row = |label: &str, v: [f64; 4]| {
        let [kp, ks, op, os] = v;
        format!(
            "| {label} | {} | {} | {:.2}× | {} | {} | {:.2}× | {:.2}× | {:.2}× |",
            fmt(kp),
            fmt(ks),
            ks / kp,
            fmt(op),
            fmt(os),
            os / op,
            op / kp,
            os / ks
        )
    };
    for w in &results.workloads {
        let values: Option<Vec<f64>> = columns.iter().map(|name| results.median(w, name)).collect();
        if let Some(values) = values {
            let _ = writeln!(r, "{}", secure_row(w, [values[0], values[1], values[2], values[3]]));
        }
    }
    let secure: Option<Vec<&Contender>> = columns.iter().map(|n| by_name(n)).collect();
    if let Some(c) = secure {
        let rss = |c: &Contender| c.idle_rss_kib as f64 / 1024.0;
        let _ = writeln!(
            r,
            "{}",
            secure_row("idle RSS (MiB)", [rss(c[0]), rss(c[1]), rss(c[2]), rss(c[3])])
        );
    }
    r
}

/// `v` rounded, with thousands separated by commas: 262009.4 -> "262,009".
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}
