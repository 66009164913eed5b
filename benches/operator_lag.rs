//! `make bench` (`cargo bench --bench operator_lag`): the operator's lag monitoring and lag-driven scaling,
//! measured against a real kube-apiserver + etcd and a real Apache Kafka broker from the test harness, with
//! the operator binary at its default intervals.
//!
//! 1. **Reaction time**: from the moment lag crosses the threshold at the broker (our Produce acknowledged) to
//!    the operator's write of the new replica count (seen by polling the Deployment every 20 ms), over
//!    repeated bursts at random phases; from zero (activation) and from one replica up.
//! 2. **Scale of one operator**: 500 ConsumerGroup resources (each with a lag budget, so each is evaluated
//!    after every scan) over 2,000 Kafka groups on one cluster: the Kafka requests per sampling interval (the
//!    broker's own `RequestMetrics` over JMX), API-server writes per minute in steady state (the API server's
//!    own `apiserver_request_total`), and the operator's RSS and CPU.
//! 3. **Time-lag accuracy**: the exact time lag (timestamp of the record at the committed offset, read from
//!    the broker) against Kafka Lag Exporter's interpolation from sampled log-end offsets, on the same data: a
//!    bursty producer, and one that goes idle while its consumer is stuck.
//!
//! Results go to stdout and target/bench-operator-lag.md. Settings (environment): KGO_BENCH_BURSTS per
//! reaction scenario (15), KGO_BENCH_RESOURCES (500), KGO_BENCH_GROUPS (2000), KGO_BENCH_TOPICS (200),
//! KGO_BENCH_STEADY_SECONDS (60), KGO_BENCH_SETTLE_SECONDS (60), KGO_BENCH_SCALE_BURSTS (10: reaction bursts per
//! scenario beside the scale part's resources), KGO_BENCH_LAG_METRICS (partition: the scale part's operator
//! `--lag-metrics`).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, ensure};
use common::{
    BROKER_JVM_OPTS, Jmx, PARTITIONS_PER_TOPIC, TOPICS_PER_GROUP, delta, find_broker_pid, machine, now_ms, produce_at,
    seed, topic_name,
};
use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::ConsumerGroup;
use kafka_group_operator::kafka::{ClientConfig, Isolation, KafkaClient, NewTopic, OffsetSpec, TopicPartition};
use kafka_group_operator::lag::interpolated_time_lag_ms;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::operator::Operator;
use support::scenario::{Scenario, resource};
use support::tools::{kafka_home, system_tool};
use support::{ApacheKafka, ControlPlane, unique_name};

/// The operator's default `--lag-interval`; the bench runs the operator with its defaults.
const LAG_INTERVAL: Duration = Duration::from_secs(5);
/// KEDA's documented defaults: the ScaledObject's `pollingInterval` and the HPA's `--horizontal-pod-autoscaler-sync-period`.
const KEDA_POLLING: Duration = Duration::from_secs(30);
const HPA_SYNC: Duration = Duration::from_secs(15);

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without `--bench`: nothing to test here.
        println!("operator_lag is a benchmark: run it with `make bench` or `cargo bench --bench operator_lag`");
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(bench(&settings))
}

struct Settings {
    bursts: usize,
    /// Bursts per reaction scenario beside the scale part's resources (KGO_BENCH_SCALE_BURSTS, 10).
    scale_bursts: usize,
    resources: usize,
    groups: usize,
    topics: usize,
    steady: Duration,
    settle: Duration,
    /// Which of reaction, accuracy and scale to run (KGO_BENCH_PARTS, comma-separated; default all).
    parts: Vec<String>,
    /// The scale part's operator `--lag-metrics` (KGO_BENCH_LAG_METRICS: `partition`, the default, or `group`).
    lag_metrics: String,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let num = common::env_number;
        let settings = Settings {
            bursts: num("KGO_BENCH_BURSTS", 15)?,
            scale_bursts: num("KGO_BENCH_SCALE_BURSTS", 10)?,
            resources: num("KGO_BENCH_RESOURCES", 500)?,
            groups: num("KGO_BENCH_GROUPS", 2000)?,
            topics: num("KGO_BENCH_TOPICS", 200)?,
            steady: Duration::from_secs(num("KGO_BENCH_STEADY_SECONDS", 60)? as u64),
            settle: Duration::from_secs(num("KGO_BENCH_SETTLE_SECONDS", 60)? as u64),
            parts: std::env::var("KGO_BENCH_PARTS")
                .unwrap_or_else(|_| "reaction,accuracy,scale".to_owned())
                .split(',')
                .map(|p| p.trim().to_owned())
                .collect(),
            lag_metrics: std::env::var("KGO_BENCH_LAG_METRICS").unwrap_or_else(|_| "partition".to_owned()),
        };
        ensure!(
            ["partition", "group"].contains(&settings.lag_metrics.as_str()),
            "KGO_BENCH_LAG_METRICS must be partition or group"
        );
        ensure!(
            settings.bursts >= 1 && settings.scale_bursts >= 1,
            "KGO_BENCH_BURSTS and KGO_BENCH_SCALE_BURSTS must be at least 1"
        );
        ensure!(
            settings.resources <= settings.groups,
            "KGO_BENCH_RESOURCES must not exceed KGO_BENCH_GROUPS"
        );
        ensure!(
            settings.topics >= TOPICS_PER_GROUP && settings.topics.is_multiple_of(TOPICS_PER_GROUP),
            "KGO_BENCH_TOPICS must be a multiple of {TOPICS_PER_GROUP}"
        );
        Ok(settings)
    }
}

impl Settings {
    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

async fn bench(settings: &Settings) -> Result<()> {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target");
    let classes = target.join("bench-java");
    let logs = target.join("bench-logs");
    std::fs::create_dir_all(&logs)?;
    let home = kafka_home().to_path_buf();
    let java = system_tool("java", "install a Java 17+ runtime");
    let javac = system_tool("javac", "install a Java 17+ JDK (Debian: openjdk-17-jdk-headless)");
    let classpath = common::compile_bench_java(
        &javac,
        &home,
        &classes,
        &[root.join("scripts/bench/JmxRequestCounts.java")],
    )?;

    eprintln!("[bench] starting the control plane and Apache Kafka ({BROKER_JVM_OPTS})");
    let cp = ControlPlane::shared();
    let kafka = ApacheKafka::start_with_jvm_opts(BROKER_JVM_OPTS, &[]);
    eprintln!("[bench] API server {}, broker {}", cp.server(), kafka.bootstrap());

    let reaction = if settings.runs("reaction") {
        reaction_time(&kafka, settings.bursts).await?
    } else {
        Reaction::default()
    };
    let accuracy = if settings.runs("accuracy") {
        time_lag_accuracy(&kafka).await?
    } else {
        Vec::new()
    };
    let scale = if settings.runs("scale") {
        Some(scale_of_one_operator(cp, &kafka, &java, &classpath, &logs, settings).await?)
    } else {
        None
    };

    let report = report(settings, &reaction, scale.as_ref(), &accuracy, started.elapsed());
    println!("{report}");
    let path = target.join("bench-operator-lag.md");
    std::fs::write(&path, &report)?;
    eprintln!("[bench] written to {}", path.display());
    ensure!(
        accuracy.iter().all(|a| a.exact_checked),
        "the exact time lag disagreed with the producer's timestamps"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// 1. Reaction time.

#[derive(Default)]
struct Reaction {
    /// 0 → 1 replica (KEDA: its own polling).
    activation: Vec<Duration>,
    /// 1 → N replicas (KEDA: the HPA's sync on KEDA's metrics).
    scale_up: Vec<Duration>,
}

async fn reaction_time(kafka: &ApacheKafka, bursts: usize) -> Result<Reaction> {
    let cp = ControlPlane::shared();
    let (client, ns) = Scenario::namespace("bench-react").await;
    let operator = Operator::start_with_flags(cp, &ns, &["--log-level=info"]);
    let env = Scenario::with_cluster(client, ns, kafka, Some(operator)).await;
    let out = react(&env, bursts).await?;
    drop(env);
    Ok(out)
}

/// Bursts of lag on a fresh topic, for a ConsumerGroup that scales from zero and one that scales up from one,
/// timed from the acknowledged burst to the operator's write of the Deployment's replicas. Run alone, and
/// beside the scale part's thousands of resources on the same operator.
async fn react(env: &Scenario, bursts: usize) -> Result<Reaction> {
    let topic = unique_name("react");
    env.kafka.create_topics(&[NewTopic::new(topic.clone(), 4)]).await?;
    let tps: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new(topic.clone(), p)).collect();
    let leader = wait_for_leader(&env.kafka, &tps).await?;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let mut random = Random::seeded();
    let mut out = Reaction::default();

    // (name, minReplicas, records per burst): 60 > activationLag 50; 500 = 5 × lagPerReplica 100.
    for (name, min, records) in [("activation", 0, 60usize), ("scale-up", 1, 500)] {
        let group = unique_name(&format!("react-{name}"));
        commit_to_end(&env.kafka, &group, &tps).await?;
        deployments
            .create(&PostParams::default(), &support::kubelet::deployment(name, min, &[]))
            .await?;
        let spec = json!({
            "clusterRef": {"name": "main"}, "groupId": group, "topics": [topic],
            "scaling": {
                "targetRef": {"kind": "Deployment", "name": name},
                "minReplicas": min, "maxReplicas": 4, "lagPerReplica": 100, "activationLag": 50,
                "scaleDownStabilizationSeconds": 0, "cooldownSeconds": 0
            }
        });
        let cg: ConsumerGroup = resource("ConsumerGroup", name, spec);
        env.groups().create(&PostParams::default(), &cg).await?;
        wait_settled(&env.groups(), name, min).await?;
        for burst in 0..bursts {
            // A random phase against the operator's scan schedule.
            tokio::time::sleep(Duration::from_millis(random.below(LAG_INTERVAL.as_millis() as u64))).await;
            let now = now_ms();
            let batches: Vec<(TopicPartition, Vec<i64>)> = tps
                .iter()
                .enumerate()
                .map(|(i, tp)| {
                    (
                        tp.clone(),
                        vec![now; records / tps.len() + usize::from(i < records % tps.len())],
                    )
                })
                .collect();
            let failed = produce_at(&env.kafka, leader, &batches).await?;
            ensure!(failed.is_empty(), "produce failed: {failed:?}");
            let crossed = Instant::now();
            let deadline = crossed + Duration::from_secs(60);
            loop {
                let replicas = deployments.get(name).await?.spec.replicas.unwrap_or(0);
                if replicas > min {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{name}: no scale-up within 60 s of burst {burst}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let took = crossed.elapsed();
            eprintln!("[bench] reaction {name} burst {burst}: {:.0} ms", ms(took));
            if name == "activation" {
                out.activation.push(took);
            } else {
                out.scale_up.push(took);
            }
            // Back to the start: consumed to the end, then the replicas the scenario starts from.
            commit_to_end(&env.kafka, &group, &tps).await?;
            wait_lag(&env.groups(), name, 0).await?;
            deployments
                .patch_scale(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": min}})),
                )
                .await?;
            wait_settled(&env.groups(), name, min).await?;
        }
    }
    Ok(out)
}

/// The partitions' one leader (the harness broker is a single node), once every partition has it.
async fn wait_for_leader(client: &KafkaClient, tps: &[TopicPartition]) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metadata = client.refresh_metadata().await?;
        if let Some(leader) = tps.iter().map(|tp| metadata.leader(tp)).collect::<Option<Vec<i32>>>() {
            return leader.first().copied().context("no partitions");
        }
        ensure!(Instant::now() < deadline, "partitions without a leader after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Commits the log end of every partition for `group` (which has no members): as if consumed.
async fn commit_to_end(client: &KafkaClient, group: &str, tps: &[TopicPartition]) -> Result<()> {
    let ends = client
        .list_offsets(tps, OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await?;
    let offsets: BTreeMap<TopicPartition, i64> = ends.into_iter().map(|(tp, o)| (tp, o.offset)).collect();
    client.commit_offsets(group, &offsets).await?;
    Ok(())
}

async fn wait_lag(groups: &Api<ConsumerGroup>, name: &str, lag: i64) -> Result<()> {
    wait_status(groups, name, |s| s.total_lag == Some(lag)).await
}

/// Until the operator reports no lag and `replicas` as both desired and current.
async fn wait_settled(groups: &Api<ConsumerGroup>, name: &str, replicas: i32) -> Result<()> {
    wait_status(groups, name, |s| {
        s.total_lag == Some(0)
            && s.current_replicas == Some(replicas)
            && s.desired_replicas.is_none_or(|d| d == replicas)
    })
    .await
}

async fn wait_status(
    groups: &Api<ConsumerGroup>,
    name: &str,
    done: impl Fn(&kafka_group_operator::api::ConsumerGroupStatus) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cg = groups.get(name).await?;
        if cg.status.as_ref().is_some_and(&done) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{name}: status not reached within 120 s: {:?}",
            cg.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// xorshift64*, seeded from the clock: random phases need no crate.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        Random(now_ms() as u64 | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2. Scale of one operator.

struct Scale {
    resources: usize,
    groups: usize,
    steady: Duration,
    /// Requests per API during the steady window, without the broker's internal traffic.
    requests: BTreeMap<String, u64>,
    /// API-server write requests during the steady window, by "verb resource[/subresource]".
    writes: BTreeMap<String, u64>,
    ready_after: Duration,
    /// The longest any one resource waited from its creation to being observed.
    slowest_observation: Duration,
    rss_kib: u64,
    hwm_kib: u64,
    cpu: Duration,
    /// Scrapes of /metrics after the steady window: median time to the last byte, and size.
    scrape: Duration,
    scrape_bytes: usize,
    /// Reaction times of one more scaling group beside all the resources.
    reaction: Reaction,
}

/// One GET of /metrics over plain HTTP/1.1 (what Prometheus does): time to the last byte, and the body's size.
fn scrape_metrics(port: u16) -> Result<(Duration, usize)> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&response);
    ensure!(
        text.starts_with("HTTP/1.1 200"),
        "scrape: {}",
        text.lines().next().unwrap_or("")
    );
    ensure!(
        text.contains("kafka_consumergroup_group_sum_lag{"),
        "scrape without lag series"
    );
    Ok((elapsed, response.len()))
}

async fn scale_of_one_operator(
    cp: &ControlPlane,
    kafka: &ApacheKafka,
    java: &Path,
    classpath: &str,
    logs: &Path,
    settings: &Settings,
) -> Result<Scale> {
    eprintln!(
        "[bench] seeding {} topics × {PARTITIONS_PER_TOPIC} partitions and {} groups",
        settings.topics, settings.groups
    );
    seed(&kafka.bootstrap(), settings.topics, settings.groups).await?;
    let broker_pid = find_broker_pid(kafka.dir())?;
    let mut jmx = Jmx::start(java, classpath, broker_pid, logs)?;

    let (client, ns) = Scenario::namespace("bench-scale").await;
    let lag_metrics = format!("--lag-metrics={}", settings.lag_metrics);
    let operator = Operator::start_with_flags(cp, &ns, &["--log-level=info", &lag_metrics]);
    let operator_pid = operator.pid();
    let metrics_port = operator.metrics_port;
    let env = Scenario::with_cluster(client, ns, kafka, Some(operator)).await;
    let created = Instant::now();
    // Resources for groups spread over all 2,000, each declaring the 5 topics its group committed on.
    let stride = settings.topics / TOPICS_PER_GROUP;
    let step = settings.groups / settings.resources.max(1);
    for r in 0..settings.resources {
        let g = r * step;
        let topics: Vec<String> = (0..TOPICS_PER_GROUP)
            .map(|k| topic_name((g + k * stride) % settings.topics))
            .collect();
        let spec = json!({
            "clusterRef": {"name": "main"}, "groupId": format!("lag-bench-g{g:04}"), "topics": topics,
            "lagBudget": {"maxMessages": 1_000_000, "maxSeconds": 86_400 * 365 * 10}
        });
        let cg: ConsumerGroup = resource("ConsumerGroup", &format!("g{g:04}"), spec);
        env.groups().create(&PostParams::default(), &cg).await?;
    }
    eprintln!(
        "[bench] {} ConsumerGroups created; waiting until all are observed",
        settings.resources
    );
    // Followed by a watch, not a LIST per second: listing 5,000 objects with their status every second would
    // load the API server more than the operator does.
    let (ready_groups, writer) = kube::runtime::reflector::store::<ConsumerGroup>();
    let follow = tokio::spawn(
        kube::runtime::reflector(writer, kube::runtime::watcher(env.groups(), Default::default()))
            .for_each(|_| async {}),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ready = ready_groups
            .state()
            .iter()
            .filter(|g| support::wait::has_condition(g.as_ref(), "Ready", "True", "Observed"))
            .count();
        if ready == settings.resources {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {ready} of {} ConsumerGroups Ready after 600 s",
            settings.resources
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ready_after = created.elapsed();
    // Each resource's own wait: its creation to its Ready condition (both as the API server stores them, to
    // the second).
    let slowest_observation = ready_groups
        .state()
        .iter()
        .filter_map(|g| {
            let created = g.metadata.creation_timestamp.as_ref()?.0.as_second();
            let ready = g.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")?;
            Some(ready.last_transition_time.0.as_second() - created)
        })
        .max()
        .map_or(Duration::MAX, |s| Duration::from_secs(s.max(0) as u64));
    follow.abort();
    eprintln!(
        "[bench] all observed after {:.1} s; settling {} s (the lag window fills), then measuring {} s",
        ready_after.as_secs_f64(),
        settings.settle.as_secs(),
        settings.steady.as_secs()
    );
    tokio::time::sleep(settings.settle).await;

    let requests_before = jmx.snapshot()?;
    let writes_before = apiserver_writes(cp)?;
    let cpu_before = process_cpu(operator_pid)?;
    tokio::time::sleep(settings.steady).await;
    let requests_after = jmx.snapshot()?;
    let writes_after = apiserver_writes(cp)?;
    let cpu = process_cpu(operator_pid)?.saturating_sub(cpu_before);
    let mut scrapes = Vec::new();
    let mut scrape_bytes = 0;
    for _ in 0..5 {
        let (took, bytes) = scrape_metrics(metrics_port)?;
        scrapes.push(took);
        scrape_bytes = bytes;
    }
    scrapes.sort();
    let scrape = scrapes[scrapes.len() / 2];
    let (rss_kib, hwm_kib) = memory_kib(operator_pid)?;
    // Reaction to lag on one more group while the operator samples all the others (after the steady window,
    // whose writes and requests it would disturb).
    eprintln!("[bench] reaction time beside {} resources", settings.resources);
    let reaction = react(&env, settings.scale_bursts).await?;
    let writes = writes_after
        .iter()
        .map(|(k, n)| (k.clone(), n - writes_before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    drop(env);
    Ok(Scale {
        resources: settings.resources,
        groups: settings.groups,
        steady: settings.steady,
        requests: delta(&requests_before, &requests_after),
        writes,
        ready_after,
        slowest_observation,
        rss_kib,
        hwm_kib,
        cpu,
        scrape,
        scrape_bytes,
        reaction,
    })
}

/// Write requests the API server has served, by "VERB resource[/subresource]", from its own
/// `apiserver_request_total`. Leases are left out: the API server renews its own identity lease every 10 s
/// (the operator's leader election is off by default).
fn apiserver_writes(cp: &ControlPlane) -> Result<BTreeMap<String, u64>> {
    let out = cp.kubectl(&["get", "--raw", "/metrics"]);
    ensure!(
        out.status.success(),
        "kubectl get --raw /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut writes = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| -> String {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        let verb = label("verb");
        if !matches!(
            verb.as_str(),
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
        ) {
            continue;
        }
        let resource = label("resource");
        if resource == "leases" {
            continue;
        }
        let subresource = label("subresource");
        let key = if subresource.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{subresource}")
        };
        *writes.entry(key).or_insert(0) += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
    }
    Ok(writes)
}

/// User + system CPU time of a process, from /proc/PID/stat (clock ticks of 10 ms).
fn process_cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name.
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// (VmRSS, VmHWM) in KiB.
fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Ok((field("VmRSS:").context("VmRSS")?, field("VmHWM:").context("VmHWM")?))
}

// ---------------------------------------------------------------------------------------------------------
// 3. Time-lag accuracy.

/// Kafka Lag Exporter's defaults: a poll every 30 s, a lookup table of 60 points per partition.
const KLE_POLL: Duration = Duration::from_secs(30);
const KLE_TABLE: usize = 60;

struct Accuracy {
    scenario: &'static str,
    what: &'static str,
    samples: usize,
    /// Absolute errors (s) where the method gave an estimate.
    exact_errors: Vec<f64>,
    interpolated_errors: Vec<f64>,
    interpolated_missing: usize,
    /// The exact method read every record timestamp the producer wrote.
    exact_checked: bool,
}

/// One partition's history, written in one go with the producer's timestamps over the last hour: what the
/// producer appended when (`timestamps`, in offset order) and what the consumer had committed when.
struct Timeline {
    scenario: &'static str,
    what: &'static str,
    timestamps: Vec<i64>,
    committed_at: Box<dyn Fn(i64) -> i64>,
    start_ms: i64,
    end_ms: i64,
}

fn timelines(start_ms: i64) -> Vec<Timeline> {
    let minute = 60_000;
    let end_ms = start_ms + 60 * minute;
    // Bursty: 600 records within one second at the top of every minute; the consumer handles 15 msg/s.
    let bursty: Vec<i64> = (0..60)
        .flat_map(|m| (0..600).map(move |i| start_ms + m * minute + i * 1000 / 600))
        .collect();
    let bursty_committed = {
        let ts = bursty.clone();
        move |t: i64| consumed_by(&ts, t, 15.0)
    };
    // Idle: 20 msg/s for 20 minutes, then nothing; the consumer handles 15 msg/s and is stuck from minute 15,
    // so its lag keeps growing with the clock while the log end stands still.
    let idle: Vec<i64> = (0..20 * 60 * 20).map(|i| start_ms + i * 50).collect();
    let idle_committed = {
        let ts = idle.clone();
        move |t: i64| consumed_by(&ts, t.min(start_ms + 15 * minute), 15.0)
    };
    vec![
        Timeline {
            scenario: "bursty",
            what: "600 records in one second every minute; the consumer takes 15 msg/s",
            timestamps: bursty,
            committed_at: Box::new(bursty_committed),
            start_ms,
            end_ms,
        },
        Timeline {
            scenario: "idle",
            what: "20 msg/s for 20 min, then idle for 40 min; the consumer takes 15 msg/s and is stuck from minute 15",
            timestamps: idle,
            committed_at: Box::new(idle_committed),
            start_ms,
            end_ms,
        },
    ]
}

/// The committed offset at `t` of a consumer that handles `rate` msg/s whenever records are there: a queue
/// simulation over the producer's timestamps.
fn consumed_by(timestamps: &[i64], t: i64, rate: f64) -> i64 {
    let per_record = 1000.0 / rate;
    let mut clock = f64::MIN;
    let mut done = 0i64;
    for &ts in timestamps {
        let start = clock.max(ts as f64);
        let finished = start + per_record;
        if finished > t as f64 {
            break;
        }
        clock = finished;
        done += 1;
    }
    done
}

async fn time_lag_accuracy(kafka: &ApacheKafka) -> Result<Vec<Accuracy>> {
    let client = KafkaClient::new(ClientConfig::new([kafka.bootstrap()]))?;
    let start_ms = now_ms() - 2 * 3_600_000;
    let mut results = Vec::new();
    for timeline in timelines(start_ms) {
        let tp = TopicPartition::new(unique_name(&format!("accuracy-{}", timeline.scenario)), 0);
        client.create_topics(&[NewTopic::new(tp.topic.to_string(), 1)]).await?;
        let leader = wait_for_leader(&client, std::slice::from_ref(&tp)).await?;
        for chunk in timeline.timestamps.chunks(5_000) {
            let failed = produce_at(&client, leader, &[(tp.clone(), chunk.to_vec())]).await?;
            ensure!(failed.is_empty(), "produce failed: {failed:?}");
        }
        eprintln!(
            "[bench] accuracy {}: {} records on {tp}",
            timeline.scenario,
            timeline.timestamps.len()
        );
        let mut table: VecDeque<(i64, i64)> = VecDeque::new();
        let mut result = Accuracy {
            scenario: timeline.scenario,
            what: timeline.what,
            samples: 0,
            exact_errors: Vec::new(),
            interpolated_errors: Vec::new(),
            interpolated_missing: 0,
            exact_checked: true,
        };
        let mut t = timeline.start_ms + KLE_POLL.as_millis() as i64;
        while t <= timeline.end_ms {
            // The log end at t, from the broker: the first offset whose record is newer than t, or the log end
            // when no record is (Kafka answers -1 then).
            let log_end = match client
                .list_offsets(
                    std::slice::from_ref(&tp),
                    OffsetSpec::Timestamp(t + 1),
                    Isolation::ReadUncommitted,
                )
                .await?
                .get(&tp)
                .map(|o| o.offset)
                .context("no offset for the timestamp")?
            {
                -1 => timeline.timestamps.len() as i64,
                offset => offset,
            };
            table.push_back((t, log_end));
            if table.len() > KLE_TABLE {
                table.pop_front();
            }
            let committed = (timeline.committed_at)(t);
            let truth_ms = if committed >= log_end {
                0
            } else {
                t - timeline.timestamps[committed as usize]
            };
            let exact_ms = if committed >= log_end {
                0
            } else {
                let ts = client
                    .record_timestamp(&tp, committed)
                    .await?
                    .context("no record at the committed offset")?;
                if ts != timeline.timestamps[committed as usize] {
                    result.exact_checked = false;
                }
                (t - ts).max(0)
            };
            result.exact_errors.push((exact_ms - truth_ms).abs() as f64 / 1000.0);
            let table_now: Vec<(i64, i64)> = table.iter().copied().collect();
            match interpolated_time_lag_ms(&table_now, committed, t) {
                Some(estimate) => result
                    .interpolated_errors
                    .push((estimate - truth_ms).abs() as f64 / 1000.0),
                None => result.interpolated_missing += 1,
            }
            result.samples += 1;
            t += KLE_POLL.as_millis() as i64;
        }
        results.push(result);
    }
    Ok(results)
}

// ---------------------------------------------------------------------------------------------------------
// Report.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v[rank.min(v.len() - 1)]
}

fn report(
    settings: &Settings,
    reaction: &Reaction,
    scale: Option<&Scale>,
    accuracy: &[Accuracy],
    took: Duration,
) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Lag monitoring and scaling (`cargo bench --bench operator_lag`)\n"
    );
    let _ = writeln!(r, "{}\n", machine());
    let _ = writeln!(r, "Total bench time {:.0} s.\n", took.as_secs_f64());

    let keda_activation = (KEDA_POLLING / 2 + HPA_SYNC / 2, KEDA_POLLING + HPA_SYNC);
    let keda_hpa = (HPA_SYNC / 2, HPA_SYNC);
    let mut targets = Vec::new();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if !reaction.activation.is_empty() {
        let _ = writeln!(
            r,
            "### Reaction time (operator defaults: `--lag-interval={}s`)\n",
            LAG_INTERVAL.as_secs()
        );
        let _ = writeln!(
            r,
            "| scenario | bursts | median | p99 (max) | KEDA defaults on paper, median / worst | median ratio | worst ratio |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|");
        for (name, samples, keda, how) in [
            (
                "0 → 1 (activation)",
                &reaction.activation,
                keda_activation,
                "pollingInterval 30 s, then the HPA's 15 s sync",
            ),
            (
                "1 → 4 (scale-up)",
                &reaction.scale_up,
                keda_hpa,
                "the HPA's 15 s sync alone",
            ),
        ] {
            let values: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
            let med = percentile(&values, 50.0);
            let p99 = percentile(&values, 99.0);
            let _ = writeln!(
                r,
                "| {name} | {} | {:.0} ms | {:.0} ms | {:.1} s / {:.0} s ({how}) | {:.1}× | {:.1}× |",
                values.len(),
                med,
                p99,
                keda.0.as_secs_f64(),
                keda.1.as_secs_f64(),
                ms(keda.0) / med,
                ms(keda.1) / p99
            );
        }
        let activation_ratio =
            ms(keda_activation.0) / percentile(&reaction.activation.iter().map(|d| ms(*d)).collect::<Vec<_>>(), 50.0);
        targets.push(format!(
            "- reaction ≥ 6× faster than KEDA's defaults (activation, median): {activation_ratio:.1}× — {}",
            verdict(activation_ratio >= 6.0)
        ));
    }
    if let Some(scale) = scale {
        let _ = writeln!(
            r,
            "\n### One operator, {} ConsumerGroups over {} Kafka groups (steady state, {} s)\n",
            scale.resources,
            scale.groups,
            scale.steady.as_secs()
        );
        let intervals = scale.steady.as_secs_f64() / LAG_INTERVAL.as_secs_f64();
        let per_interval: Vec<String> = scale
            .requests
            .iter()
            .map(|(api, n)| format!("{api} {:.1}", *n as f64 / intervals))
            .collect();
        let total: u64 = scale.requests.values().sum();
        let writes: u64 = scale.writes.values().sum();
        let minutes = scale.steady.as_secs_f64() / 60.0;
        let _ = writeln!(r, "| measure | value |");
        let _ = writeln!(r, "|---|---|");
        let _ = writeln!(
            r,
            "| Kafka requests per sampling interval ({} s) | {:.1} ({}) |",
            LAG_INTERVAL.as_secs(),
            total as f64 / intervals,
            per_interval.join(", ")
        );
        let _ = writeln!(
            r,
            "| API-server writes per minute | {:.1} ({}) |",
            writes as f64 / minutes,
            if scale.writes.is_empty() {
                "none".to_owned()
            } else {
                scale
                    .writes
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let _ = writeln!(
            r,
            "| operator RSS at the end / peak | {:.1} MiB / {:.1} MiB |",
            scale.rss_kib as f64 / 1024.0,
            scale.hwm_kib as f64 / 1024.0
        );
        let _ = writeln!(
            r,
            "| operator CPU | {:.1} % of one core ({:.0} ms per interval) |",
            100.0 * scale.cpu.as_secs_f64() / scale.steady.as_secs_f64(),
            ms(scale.cpu) / intervals
        );
        let _ = writeln!(
            r,
            "| all {} resources observed after creation of the first / longest wait of one resource | {:.1} s / {} s |",
            scale.resources,
            scale.ready_after.as_secs_f64(),
            scale.slowest_observation.as_secs()
        );
        let _ = writeln!(
            r,
            "| scrape of /metrics (`--lag-metrics={}`, median of 5, to the last byte) | {:.0} ms, {:.1} MiB |",
            settings.lag_metrics,
            ms(scale.scrape),
            scale.scrape_bytes as f64 / (1024.0 * 1024.0)
        );
        targets.push(format!(
            "- no API-server writes in steady state: {writes} — {}",
            verdict(writes == 0)
        ));
        // Issue 19's figures from 5,000 resources on (32 KiB per resource); 64 MiB at the 500 of before.
        let rss_target_mib = if scale.resources >= 5_000 { 160 } else { 64 };
        targets.push(format!(
            "- operator RSS ≤ {rss_target_mib} MiB: peak {:.1} MiB ({:.1} KiB per resource) — {}",
            scale.hwm_kib as f64 / 1024.0,
            scale.hwm_kib as f64 / scale.resources.max(1) as f64,
            verdict(scale.hwm_kib <= rss_target_mib * 1024)
        ));
        targets.push(format!(
            "- Kafka requests per interval ≤ 5: {:.1} — {}",
            total as f64 / intervals,
            verdict(total as f64 / intervals <= 5.0)
        ));
        targets.push(format!(
            "- every resource observed within 60 s of its creation: at most {} s (all {} after {:.1} s) — {}",
            scale.slowest_observation.as_secs(),
            scale.resources,
            scale.ready_after.as_secs_f64(),
            verdict(scale.slowest_observation <= Duration::from_secs(60))
        ));
        let reacted: Vec<f64> = scale.reaction.scale_up.iter().map(|d| ms(*d)).collect();
        let activated: Vec<f64> = scale.reaction.activation.iter().map(|d| ms(*d)).collect();
        let _ = writeln!(
            r,
            "| reaction beside them, activation / scale-up (median, max of {} bursts each) | {:.0} / {:.0} ms, {:.0} / {:.0} ms |",
            reacted.len(),
            percentile(&activated, 50.0),
            percentile(&activated, 100.0),
            percentile(&reacted, 50.0),
            percentile(&reacted, 100.0)
        );
        let median_reaction = percentile(&reacted, 50.0).max(percentile(&activated, 50.0));
        targets.push(format!(
            "- reaction beside all resources, median ≤ 2.5 s: {median_reaction:.0} ms — {}",
            verdict(median_reaction <= 2_500.0)
        ));
        targets.push(format!(
            "- a scrape of /metrics ≤ 200 ms: {:.0} ms — {}",
            ms(scale.scrape),
            verdict(scale.scrape <= Duration::from_millis(200))
        ));
    }
    if !accuracy.is_empty() {
        let _ = writeln!(
            r,
            "\n### Time-lag accuracy: exact vs interpolation (Kafka Lag Exporter's, polled every {} s with a {}-point table)\n",
            KLE_POLL.as_secs(),
            KLE_TABLE
        );
        let _ = writeln!(
            r,
            "| producer | samples | exact: median / p99 / max error | interpolation: median / p99 / max error | interpolation without an estimate |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|");
        for a in accuracy {
            let e = &a.exact_errors;
            let i = &a.interpolated_errors;
            let _ = writeln!(
                r,
                "| {} ({}) | {} | {:.1} s / {:.1} s / {:.1} s | {:.1} s / {:.1} s / {:.1} s | {} of {} |",
                a.scenario,
                a.what,
                a.samples,
                percentile(e, 50.0),
                percentile(e, 99.0),
                percentile(e, 100.0),
                percentile(i, 50.0),
                percentile(i, 99.0),
                percentile(i, 100.0),
                a.interpolated_missing,
                a.samples
            );
        }
    }
    let _ = writeln!(r, "\n### Targets\n\n{}", targets.join("\n"));
    let _ = writeln!(
        r,
        "\nSettings: KGO_BENCH_BURSTS={} KGO_BENCH_SCALE_BURSTS={} KGO_BENCH_RESOURCES={} KGO_BENCH_GROUPS={} KGO_BENCH_TOPICS={} KGO_BENCH_STEADY_SECONDS={} KGO_BENCH_SETTLE_SECONDS={} KGO_BENCH_LAG_METRICS={}",
        settings.bursts,
        settings.scale_bursts,
        settings.resources,
        settings.groups,
        settings.topics,
        settings.steady.as_secs(),
        settings.settle.as_secs(),
        settings.lag_metrics
    );
    r
}
