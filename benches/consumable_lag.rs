//! `make bench` (`cargo bench --bench consumable_lag`): what the consumable lag (issue 16) costs a scan of every
//! group when the topics carry transactions, against the same scan of plain topics.
//!
//! On each broker (Apache Kafka from the test harness, run as `kafka-server-start.sh` runs it, and the
//! embedded broker, in-process), two brokers with identical layouts: 200 topics × 10 partitions, 2,000 groups
//! each committed on 5 topics (`common::seed`'s offsets, all below the committed records):
//! - **plain**: `common::seed` itself, 100–199 non-transactional records per partition;
//! - **transactional**: per partition the same number of records in a committed transaction, its COMMIT
//!   marker, then KGO_BENCH_ABORTED records (3) in an aborted transaction and its ABORT marker, written by one
//!   transactional confluent-kafka producer (`scripts/bench/confluent_txn_seed.py`).
//!
//! The consumable lag of the transactional layout therefore equals the plain layout's lag exactly, and its
//! high-watermark lag is larger by (aborted + 2 markers) per group-partition; every scan must report both.
//!
//! Measured in the same run, interleaved over several rounds (which layout goes first alternates), medians:
//! - `kafka-group-operator lag --all -o json` (the release binary), one process per scan: wall time, CPU and
//!   peak RSS of the process;
//! - the library scan alone, in this process, one warm `KafkaClient` on a current-thread runtime: ListGroups,
//!   `lag_snapshot`, then for every lagging partition what the CLI does (`first_record`, and where it is
//!   transactional `consumable_lag`, plus `record_timestamp` when the first consumable record is further).
//!
//! For each scan, the requests per API the broker counted: Apache Kafka's own `RequestMetrics` meters over JMX
//! (`common::Jmx`), the embedded broker's `kafka_broker_requests` counters (its /metrics text).
//!
//! Results go to stdout and target/bench-consumable-lag.md. Settings (environment): KGO_BENCH_ROUNDS (5),
//! KGO_BENCH_GROUPS (2000), KGO_BENCH_TOPICS (200, 10 partitions each), KGO_BENCH_ABORTED (3),
//! KGO_BENCH_BROKERS (`kafka,embedded`), KGO_BENCH_LIBRARY=0 to leave out the library scan.

mod common;
use common::median_per_api;
#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, anyhow, ensure};
use common::{
    BROKER_JVM_OPTS, Jmx, PARTITIONS_PER_TOPIC, TOPICS_PER_GROUP, find_broker_pid, machine, median, seed, seed_commits,
    seed_records_of, topic_name, vm_hwm_kib,
};
use futures_util::{StreamExt, TryStreamExt};
use kafka_group_operator::kafka::{
    ClientConfig, GroupFilter, Isolation, KafkaClient, NewTopic, OffsetSpec, TopicPartition,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::tools::{clients_venv, kafka_home, system_tool};
use support::{ApacheKafka, EmbeddedKafka};

/// What the CLI reads at once for the time lag and the consumable lag (`TIMESTAMP_CONCURRENCY` in
/// src/cli/lag.rs): the library scan does the same.
const CONCURRENCY: usize = 16;

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--bench") {
        return bench();
    }
    // `cargo test --benches` runs bench targets without `--bench`: nothing to test here.
    println!("consumable_lag is a benchmark: run it with `make bench` or `cargo bench --bench consumable_lag`");
    Ok(())
}

struct Settings {
    rounds: usize,
    groups: usize,
    topics: usize,
    aborted: usize,
    brokers: Vec<String>,
    library: bool,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let num = common::env_number;
        let settings = Settings {
            rounds: num("KGO_BENCH_ROUNDS", 5)?,
            groups: num("KGO_BENCH_GROUPS", 2000)?,
            topics: num("KGO_BENCH_TOPICS", 200)?,
            aborted: num("KGO_BENCH_ABORTED", 3)?,
            brokers: std::env::var("KGO_BENCH_BROKERS")
                .unwrap_or_else(|_| "kafka,embedded".to_owned())
                .split(',')
                .map(|b| b.trim().to_owned())
                .filter(|b| !b.is_empty())
                .collect(),
            library: std::env::var("KGO_BENCH_LIBRARY").map_or(true, |v| v != "0"),
        };
        ensure!(settings.rounds >= 1, "at least one round");
        ensure!(
            settings.topics >= TOPICS_PER_GROUP && settings.topics.is_multiple_of(TOPICS_PER_GROUP),
            "KGO_BENCH_TOPICS must be a multiple of {TOPICS_PER_GROUP}"
        );
        ensure!(
            settings.brokers.iter().all(|b| b == "kafka" || b == "embedded"),
            "KGO_BENCH_BROKERS: kafka and/or embedded"
        );
        Ok(settings)
    }
}

/// What the seeds must make every scan report.
#[derive(Clone, Copy, Debug)]
struct Expected {
    /// The plain layout's lag = the transactional layout's consumable lag.
    lag: i64,
    /// The transactional layout's high-watermark lag: `lag` + (aborted + 2 markers) per group-partition.
    txn_high_watermark_lag: i64,
    group_partitions: usize,
    /// Distinct (partition, committed offset) pairs with lag > 0: what the CLI reads records at.
    lagging_reads: usize,
}

fn expected(settings: &Settings) -> Expected {
    let commits = seed_commits(settings.topics, settings.groups);
    let lag: i64 = commits
        .iter()
        .flat_map(|(_, o)| o.iter().map(|(tp, c)| seed_records_of(tp) - c))
        .sum();
    let group_partitions: usize = commits.iter().map(|(_, o)| o.len()).sum();
    let lagging_reads = commits
        .iter()
        .flat_map(|(_, o)| o.iter().filter(|(tp, c)| seed_records_of(tp) > **c))
        .collect::<BTreeSet<_>>()
        .len();
    Expected {
        lag,
        txn_high_watermark_lag: lag + (settings.aborted as i64 + 2) * group_partitions as i64,
        group_partitions,
        lagging_reads,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Brokers and their request counters.

enum Broker {
    Kafka { kafka: ApacheKafka, jmx: Jmx },
    Embedded(EmbeddedKafka),
}

impl Broker {
    fn bootstrap(&self) -> String {
        match self {
            Broker::Kafka { kafka, .. } => kafka.bootstrap(),
            Broker::Embedded(e) => e.bootstrap(),
        }
    }

    /// Requests per API the broker has counted so far.
    fn snapshot(&mut self) -> Result<BTreeMap<String, u64>> {
        match self {
            Broker::Kafka { jmx, .. } => jmx.snapshot(),
            Broker::Embedded(e) => Ok(embedded_requests(&e.metrics_text())),
        }
    }

    /// Requests per API between two snapshots (Apache Kafka: without its own KRaft traffic).
    fn delta(&self, before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        match self {
            Broker::Kafka { .. } => common::delta(before, after),
            Broker::Embedded(_) => after
                .iter()
                .map(|(api, n)| (api.clone(), n - before.get(api).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// `kafka_broker_requests_total{api="Fetch"} 123` lines of the embedded broker's metrics.
fn embedded_requests(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("kafka_broker_requests_total{api=\""))
        .filter_map(|rest| {
            let (api, value) = rest.split_once("\"}")?;
            Some((api.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

struct Tools {
    java: PathBuf,
    classpath: String,
    python: PathBuf,
    txn_seed: PathBuf,
    binary: PathBuf,
    logs: PathBuf,
}

fn start_broker(kind: &str, layout: &str, tools: &Tools) -> Result<Broker> {
    if kind == "embedded" {
        return Ok(Broker::Embedded(EmbeddedKafka::start()));
    }
    eprintln!("[bench] starting Apache Kafka ({layout}) with {BROKER_JVM_OPTS}");
    let kafka = ApacheKafka::start_with_jvm_opts(BROKER_JVM_OPTS, &[]);
    let pid = find_broker_pid(kafka.dir())?;
    let logs = tools.logs.join(format!("kafka-{layout}"));
    std::fs::create_dir_all(&logs)?;
    let jmx = Jmx::start(&tools.java, &tools.classpath, pid, &logs)?;
    Ok(Broker::Kafka { kafka, jmx })
}

// ---------------------------------------------------------------------------------------------------------
// The transactional layout.

/// The same topics and committed offsets as `common::seed`, each partition's records written as a committed
/// transaction followed by an aborted one of `aborted` records.
async fn seed_transactional(bootstrap: &str, settings: &Settings, tools: &Tools) -> Result<()> {
    let client = KafkaClient::new(ClientConfig::new([bootstrap]))?;
    let topics: Vec<String> = (0..settings.topics).map(topic_name).collect();
    client
        .create_topics(
            &topics
                .iter()
                .map(|t| NewTopic::new(t.clone(), PARTITIONS_PER_TOPIC))
                .collect::<Vec<_>>(),
        )
        .await?;
    let all: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| (0..PARTITIONS_PER_TOPIC).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = client.refresh_metadata().await?;
        if all.iter().all(|tp| m.leader(tp).is_some()) {
            break;
        }
        ensure!(Instant::now() < deadline, "partitions without a leader after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut child = Command::new(&tools.python)
        .arg(&tools.txn_seed)
        .arg(bootstrap)
        .arg(settings.aborted.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tools.logs.join("txn-seed.stderr"))?)
        .spawn()
        .context("start confluent_txn_seed.py")?;
    {
        let mut stdin = child.stdin.take().context("stdin")?;
        for tp in &all {
            writeln!(stdin, "{} {} {}", tp.topic, tp.partition, seed_records_of(tp))?;
        }
    }
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "confluent_txn_seed.py failed ({}); see {}",
        out.status,
        tools.logs.join("txn-seed.stderr").display()
    );
    eprintln!(
        "[bench] transactional seed: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );

    // Every partition: N records, COMMIT, `aborted` records, ABORT; nothing left open. The coordinator writes
    // the markers after it answers EndTxn: wait for them.
    let end_of = |tp: &TopicPartition| seed_records_of(tp) + settings.aborted as i64 + 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    for isolation in [Isolation::ReadUncommitted, Isolation::ReadCommitted] {
        loop {
            let ends = client.list_offsets(&all, OffsetSpec::Latest, isolation).await?;
            let wrong = all
                .iter()
                .find(|tp| ends.get(*tp).map(|o| o.offset) != Some(end_of(tp)));
            let Some(tp) = wrong else { break };
            ensure!(
                Instant::now() < deadline,
                "{tp}: {isolation:?} end {:?}, expected {}",
                ends.get(tp).map(|o| o.offset),
                end_of(tp)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let commits = seed_commits(settings.topics, settings.groups);
    futures_util::stream::iter(commits.iter().map(|(group, offsets)| {
        let client = &client;
        async move {
            client
                .commit_offsets(group, offsets)
                .await
                .with_context(|| format!("commit for {group}"))
        }
    }))
    .buffer_unordered(64)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// One scan: the CLI (a process) or the library (in this process).

#[derive(Clone, Debug, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    rss_kib: u64,
    requests: BTreeMap<String, u64>,
    lag: i64,
    high_watermark_lag: i64,
    upper_bounds: usize,
}

/// `kafka-group-operator lag --all -o json`: wall time from spawn to exit, the process's CPU (wait4) and
/// peak RSS (VmHWM, sampled every 5 ms until it exits), and the totals it printed.
fn cli_scan(binary: &Path, bootstrap: &str, stderr_log: &Path) -> Result<Sample> {
    let mut cmd = Command::new(binary);
    cmd.args(["lag", "--all", "-o", "json", "--bootstrap-server", bootstrap])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_log)?);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawn {}", binary.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let exited = Arc::new(Mutex::new(false));
    let monitor = {
        let exited = exited.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            loop {
                {
                    // The pid is ours while the child is not reaped (we reap it only after setting `exited`).
                    let guard = exited.lock().unwrap_or_else(|p| p.into_inner());
                    if *guard {
                        return peak;
                    }
                    peak = peak.max(vm_hwm_kib(pid as u32).unwrap_or(0));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // SAFETY: plain syscalls on our own child; the structs are zero-initialised and owned here.
    let (status, wall, usage) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        while libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) != 0 {
            ensure!(
                std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted,
                "waitid failed"
            );
        }
        let wall = started.elapsed();
        *exited.lock().unwrap_or_else(|p| p.into_inner()) = true;
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        ensure!(libc::wait4(pid, &mut status, 0, &mut usage) == pid, "wait4 failed");
        (status, wall, usage)
    };
    let rss_kib = monitor.join().map_err(|_| anyhow!("monitor panicked"))?;
    let stdout = reader.join().map_err(|_| anyhow!("stdout reader panicked"))?;
    drop(child); // already reaped
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "kafka-group-operator lag failed (wait status {status}); stderr in {}",
        stderr_log.display()
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let report: serde_json::Value = serde_json::from_str(&stdout).context("lag -o json printed no JSON")?;
    let groups = report["groups"].as_array().context("no groups")?;
    let sum = |key: &str| groups.iter().filter_map(|g| g[key].as_i64()).sum::<i64>();
    let upper_bounds = groups
        .iter()
        .filter_map(|g| g["partitions"].as_array())
        .flatten()
        .filter(|p| p["lagIsUpperBound"].as_bool() == Some(true))
        .count();
    Ok(Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        rss_kib,
        requests: BTreeMap::new(),
        lag: sum("totalLag"),
        high_watermark_lag: sum("highWatermarkLag"),
        upper_bounds,
    })
}

/// What the CLI's `lag --all` does through the library, without describing groups or printing: list the
/// groups, one lag snapshot, then for every lagging (partition, committed offset) one small Fetch for its first
/// record, and where that meets transactional batches the consumable lag (plus the timestamp of the first
/// consumable record when it is further on). `CONCURRENCY` reads in flight, as the CLI.
async fn library_scan(client: &KafkaClient) -> Result<Sample> {
    let wall0 = Instant::now();
    let cpu0 = thread_cpu();
    let groups: Vec<String> = client
        .list_groups(&GroupFilter::default())
        .await?
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    let snapshot = client.lag_snapshot(&groups, Isolation::ReadUncommitted).await?;
    if let Some((group, error)) = snapshot.errors.iter().next() {
        anyhow::bail!("{} groups failed, e.g. {group}: {error}", snapshot.errors.len());
    }
    let lagging: BTreeSet<(TopicPartition, i64)> = snapshot
        .groups
        .values()
        .flat_map(|g| g.partitions.iter())
        .filter(|p| p.lag.is_some_and(|l| l > 0))
        .map(|p| (TopicPartition::new(&p.topic, p.partition), p.committed))
        .collect();
    // (partition, committed) → (consumable records, exact), for transactional partitions.
    let consumable: BTreeMap<(TopicPartition, i64), (i64, bool)> = futures_util::stream::iter(lagging)
        .map(|(tp, committed)| async move {
            let first = client.first_record(&tp, committed).await?;
            if !first.transactional {
                return Ok::<_, anyhow::Error>(None);
            }
            let read = client.consumable_lag(&tp, committed).await?;
            if let Some(offset) = read.lag.first_offset.filter(|o| *o != committed) {
                client.record_timestamp(&tp, offset).await?;
            }
            Ok(Some(((tp, committed), (read.lag.records, read.lag.exact))))
        })
        .buffer_unordered(CONCURRENCY)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    let mut sample = Sample::default();
    for g in snapshot.groups.values() {
        for p in &g.partitions {
            let hw = p.lag.unwrap_or(0);
            sample.high_watermark_lag += hw;
            match consumable.get(&(TopicPartition::new(&p.topic, p.partition), p.committed)) {
                Some((records, exact)) => {
                    sample.lag += records;
                    sample.upper_bounds += usize::from(!exact);
                }
                None => sample.lag += hw,
            }
        }
    }
    sample.wall = wall0.elapsed();
    sample.cpu = thread_cpu().saturating_sub(cpu0);
    Ok(sample)
}

/// CPU time of the calling thread: on a current-thread runtime, everything the library scan does.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

// ---------------------------------------------------------------------------------------------------------
// The benchmark.

const LAYOUTS: [&str; 2] = ["plain", "transactional"];

/// Samples per (broker, scanner, layout).
type Samples = BTreeMap<(String, &'static str, &'static str), Vec<Sample>>;

fn bench() -> Result<()> {
    let settings = Settings::from_env()?;
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let logs = target.join("bench-logs").join("consumable-lag");
    std::fs::create_dir_all(&logs)?;
    let home = kafka_home().to_path_buf();
    let java = system_tool("java", "install a Java 17+ runtime");
    let classpath = if settings.brokers.iter().any(|b| b == "kafka") {
        let javac = system_tool("javac", "install a Java 17+ JDK (Debian: openjdk-17-jdk-headless)");
        common::compile_bench_java(
            &javac,
            &home,
            &target.join("bench-java"),
            &[root.join("scripts/bench/JmxRequestCounts.java")],
        )?
    } else {
        String::new()
    };
    let tools = Tools {
        java,
        classpath,
        python: clients_venv().join("bin/python"),
        txn_seed: root.join("scripts/bench/confluent_txn_seed.py"),
        binary: PathBuf::from(env!("CARGO_BIN_EXE_kafka-group-operator")),
        logs: logs.clone(),
    };
    let expected = expected(&settings);
    eprintln!(
        "[bench] {} topics × {PARTITIONS_PER_TOPIC} partitions, {} groups: expected lag {} (= consumable lag), \
         transactional high-watermark lag {}, {} group-partitions, {} lagging reads",
        settings.topics,
        settings.groups,
        expected.lag,
        expected.txn_high_watermark_lag,
        expected.group_partitions,
        expected.lagging_reads
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;

    let mut samples: Samples = BTreeMap::new();
    let mut mismatches: Vec<String> = Vec::new();
    let mut seed_times: Vec<String> = Vec::new();
    for kind in &settings.brokers {
        let mut brokers: Vec<Broker> = Vec::new();
        for layout in LAYOUTS {
            let broker = start_broker(kind, layout, &tools)?;
            let bootstrap = broker.bootstrap();
            let t = Instant::now();
            if layout == "plain" {
                let seeded = runtime.block_on(seed(&bootstrap, settings.topics, settings.groups))?;
                ensure!(
                    seeded.total_lag == expected.lag && seeded.group_partitions == expected.group_partitions,
                    "common::seed gave lag {} over {} group-partitions, expected {} over {}",
                    seeded.total_lag,
                    seeded.group_partitions,
                    expected.lag,
                    expected.group_partitions
                );
            } else {
                runtime.block_on(seed_transactional(&bootstrap, &settings, &tools))?;
            }
            eprintln!("[bench] {kind} {layout} seeded in {:.1?} ({bootstrap})", t.elapsed());
            seed_times.push(format!("{kind} {layout} {:.0} s", t.elapsed().as_secs_f64()));
            brokers.push(broker);
        }
        let clients: Vec<KafkaClient> = brokers
            .iter()
            .map(|b| KafkaClient::new(ClientConfig::new([b.bootstrap()])))
            .collect::<Result<_, _>>()?;

        // Warm-up (the broker's JIT, page cache, the client's connections): one scan of each kind, unmeasured.
        for (i, broker) in brokers.iter().enumerate() {
            cli_scan(&tools.binary, &broker.bootstrap(), &logs.join("warmup.stderr"))?;
            if settings.library {
                runtime.block_on(library_scan(&clients[i]))?;
            }
        }

        for round in 0..settings.rounds {
            for j in 0..LAYOUTS.len() {
                let i = (j + round) % LAYOUTS.len();
                let layout = LAYOUTS[i];
                let broker = &mut brokers[i];
                let bootstrap = broker.bootstrap();
                let mut scanners: Vec<&'static str> = vec!["cli"];
                if settings.library {
                    scanners.push("library");
                }
                for scanner in scanners {
                    let before = broker.snapshot()?;
                    let mut sample = if scanner == "cli" {
                        cli_scan(&tools.binary, &bootstrap, &logs.join(format!("{kind}-{layout}.stderr")))?
                    } else {
                        runtime.block_on(library_scan(&clients[i]))?
                    };
                    // Let the broker finish accounting for the last response.
                    std::thread::sleep(Duration::from_millis(100));
                    let after = broker.snapshot()?;
                    sample.requests = broker.delta(&before, &after);
                    let (want_lag, want_hw) = if layout == "plain" {
                        (expected.lag, expected.lag)
                    } else {
                        (expected.lag, expected.txn_high_watermark_lag)
                    };
                    if sample.lag != want_lag || sample.high_watermark_lag != want_hw || sample.upper_bounds != 0 {
                        mismatches.push(format!(
                            "{kind} {layout} {scanner} round {}: lag {} (expected {want_lag}), high-watermark lag {} \
                             (expected {want_hw}), {} upper bounds",
                            round + 1,
                            sample.lag,
                            sample.high_watermark_lag,
                            sample.upper_bounds
                        ));
                    }
                    eprintln!(
                        "[bench] round {} {kind:>8} {layout:>13} {scanner:>7}: {}",
                        round + 1,
                        describe(&sample)
                    );
                    samples.entry((kind.clone(), scanner, layout)).or_default().push(sample);
                }
            }
        }
        drop(clients);
        drop(brokers);
    }

    let report = report(
        &settings,
        &expected,
        &samples,
        &mismatches,
        &seed_times,
        started.elapsed(),
    );
    println!("{report}");
    let path = target.join("bench-consumable-lag.md");
    std::fs::write(&path, &report)?;
    eprintln!("[bench] written to {}; logs in {}", path.display(), logs.display());
    ensure!(mismatches.is_empty(), "scans reported unexpected lags: {mismatches:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Report.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn per_api(requests: &BTreeMap<String, u64>) -> String {
    requests
        .iter()
        .map(|(api, n)| format!("{api} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(s: &Sample) -> String {
    format!(
        "wall {:>9.1} ms, cpu {:>8.1} ms, rss {:>6.1} MiB, requests {:>6} ({}), lag {}, high-watermark lag {}",
        ms(s.wall),
        ms(s.cpu),
        s.rss_kib as f64 / 1024.0,
        s.requests.values().sum::<u64>(),
        per_api(&s.requests),
        s.lag,
        s.high_watermark_lag
    )
}

struct Summary {
    runs: usize,
    wall_ms: f64,
    wall_min_ms: f64,
    wall_max_ms: f64,
    cpu_ms: f64,
    rss_mib: f64,
    requests: u64,
    per_api: BTreeMap<String, u64>,
    lags: BTreeSet<(i64, i64)>,
}

fn summarize(samples: &[Sample]) -> Summary {
    let walls: Vec<f64> = samples.iter().map(|s| ms(s.wall)).collect();
    Summary {
        runs: samples.len(),
        wall_ms: median(walls.clone()),
        wall_min_ms: walls.iter().copied().fold(f64::INFINITY, f64::min),
        wall_max_ms: walls.iter().copied().fold(0.0, f64::max),
        cpu_ms: median(samples.iter().map(|s| ms(s.cpu)).collect()),
        rss_mib: median(samples.iter().map(|s| s.rss_kib as f64 / 1024.0).collect()),
        requests: median(samples.iter().map(|s| s.requests.values().sum::<u64>()).collect()),
        per_api: median_per_api(samples.iter().map(|s| &s.requests)),
        lags: samples.iter().map(|s| (s.lag, s.high_watermark_lag)).collect(),
    }
}

fn broker_label(kind: &str) -> &'static str {
    match kind {
        "kafka" => "Apache Kafka 4.4",
        "embedded" => "embedded broker",
        _ => "?",
    }
}

fn scanner_label(scanner: &str) -> &'static str {
    match scanner {
        "cli" => "`lag --all -o json` (process)",
        "library" => "library scan (warm client)",
        _ => "?",
    }
}

fn report(
    settings: &Settings,
    expected: &Expected,
    samples: &Samples,
    mismatches: &[String],
    seed_times: &[String],
    elapsed: Duration,
) -> String {
    let summaries: BTreeMap<&(String, &'static str, &'static str), Summary> =
        samples.iter().map(|(k, s)| (k, summarize(s))).collect();
    let mut out = format!(
        "## Consumable lag on transactional topics: {} groups × {} partitions ({} topics × {PARTITIONS_PER_TOPIC} \
         partitions)\n\n",
        settings.groups,
        expected.group_partitions / settings.groups.max(1),
        settings.topics
    );
    out.push_str(&format!(
        "Expected: lag {} on the plain layout = consumable lag on the transactional layout; transactional \
         high-watermark lag {} (+{} per group-partition: {} aborted records and 2 markers); {} group-partitions, \
         {} distinct lagging (partition, committed offset) reads.\n\n",
        expected.lag,
        expected.txn_high_watermark_lag,
        settings.aborted + 2,
        settings.aborted,
        expected.group_partitions,
        expected.lagging_reads
    ));
    out.push_str(&format!("Machine: {}\n\n", machine()));
    out.push_str(&format!(
        "{} rounds, plain and transactional interleaved (which goes first alternates); seeding: {}. Bench took \
         {:.0} s.\n\n",
        settings.rounds,
        seed_times.join(", "),
        elapsed.as_secs_f64()
    ));
    out.push_str(
        "| broker | scanner | layout | runs | wall time, median (min–max) | CPU | peak RSS | requests | requests \
         per API | lag / high-watermark lag |\n|---|---|---|---:|---:|---:|---:|---:|---|---|\n",
    );
    for kind in &settings.brokers {
        for scanner in ["cli", "library"] {
            for layout in LAYOUTS {
                let Some(s) = summaries.get(&(kind.clone(), scanner, layout)) else {
                    continue;
                };
                let lags = s
                    .lags
                    .iter()
                    .map(|(l, hw)| format!("{l} / {hw}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let rss = if scanner == "cli" {
                    format!("{:.1} MiB", s.rss_mib)
                } else {
                    "–".to_owned()
                };
                out.push_str(&format!(
                    "| {} | {} | {layout} | {} | {:.1} ms ({:.1}–{:.1}) | {:.1} ms | {rss} | {} | {} | {lags} |\n",
                    broker_label(kind),
                    scanner_label(scanner),
                    s.runs,
                    s.wall_ms,
                    s.wall_min_ms,
                    s.wall_max_ms,
                    s.cpu_ms,
                    s.requests,
                    per_api(&s.per_api)
                ));
            }
        }
    }
    out.push_str(
        "\n### Transactional ÷ plain\n\n| broker | scanner | wall time | CPU | requests | Fetch requests | extra \
         requests per lagging read | extra requests per API |\n|---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for kind in &settings.brokers {
        for scanner in ["cli", "library"] {
            let (Some(p), Some(t)) = (
                summaries.get(&(kind.clone(), scanner, "plain")),
                summaries.get(&(kind.clone(), scanner, "transactional")),
            ) else {
                continue;
            };
            let fetch = |s: &Summary| s.per_api.get("Fetch").copied().unwrap_or(0);
            let extra = t.requests as f64 - p.requests as f64;
            let apis: BTreeSet<&String> = p.per_api.keys().chain(t.per_api.keys()).collect();
            let extra_per_api = apis
                .into_iter()
                .filter_map(|api| {
                    let d = t.per_api.get(api).copied().unwrap_or(0) as i64
                        - p.per_api.get(api).copied().unwrap_or(0) as i64;
                    (d != 0).then(|| format!("{api} {d:+}"))
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "| {} | {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2} | {} |\n",
                broker_label(kind),
                scanner_label(scanner),
                t.wall_ms / p.wall_ms,
                t.cpu_ms / p.cpu_ms,
                t.requests as f64 / p.requests.max(1) as f64,
                fetch(t) as f64 / fetch(p).max(1) as f64,
                extra / expected.lagging_reads.max(1) as f64,
                if extra_per_api.is_empty() {
                    "none".to_owned()
                } else {
                    extra_per_api
                }
            ));
        }
    }
    out.push('\n');
    if mismatches.is_empty() {
        out.push_str(&format!(
            "Every scan reported lag {} on both layouts, high-watermark lag {} (plain) and {} (transactional), and \
             no upper bound.\n",
            expected.lag, expected.lag, expected.txn_high_watermark_lag
        ));
    } else {
        for m in mismatches {
            out.push_str(&format!("- LAG MISMATCH: {m}\n"));
        }
    }
    out.push_str(
        "\n### Commands\n\n```\nkafka-group-operator lag --all -o json --bootstrap-server $BOOTSTRAP   \
         (target/release, one process per scan)\npython scripts/bench/confluent_txn_seed.py $BOOTSTRAP $ABORTED \
         < partitions   (the transactional seed)\n```\n",
    );
    out
}
