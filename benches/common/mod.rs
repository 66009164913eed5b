//! What the benchmarks share: the lag benchmark's seed (topics, records, 2,000 committed groups), a Produce
//! with chosen record timestamps, the broker's own request counters over JMX, and the machine's description.
#![allow(dead_code)] // each bench uses a different part

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use kafka_group_operator::kafka::{ClientConfig, Isolation, KafkaClient, NewTopic, OffsetSpec, TopicPartition};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub const PARTITIONS_PER_TOPIC: i32 = 10;

pub const TOPICS_PER_GROUP: usize = 5;

/// The broker runs as `kafka-server-start.sh` starts it (its heap default and KAFKA_JVM_PERFORMANCE_OPTS), with
/// the JIT's optimizing tier: the tests' fixture stops at C1 for a faster start, which makes every request
/// slower and would flatter no one.
pub const BROKER_JVM_OPTS: &str = "-Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true";

/// Requests the broker sends itself in this one-node KRaft cluster (broker → controller heartbeats, the
/// metadata log): left out of every count, no contender sends them.
pub const INTERNAL_APIS: &[&str] = &[
    "BrokerHeartbeat",
    "BrokerRegistration",
    "ControllerRegistration",
    "Fetch",
    "FetchSnapshot",
    "Vote",
    "BeginQuorumEpoch",
    "EndQuorumEpoch",
    "DescribeQuorum",
    "AlterPartition",
    "AssignReplicasToDirs",
    "UpdateRaftVoter",
    "Envelope",
    // Not requests of their own: the broker marks every Fetch twice, under `Fetch` and under `FetchConsumer`
    // (a client's) or `FetchFollower` (a replica's). Client Fetches are counted once, as `Fetch` (see delta).
    "FetchConsumer",
    "FetchFollower",
];

pub struct Expected {
    pub total_lag: i64,
    pub group_partitions: usize,
}

pub fn topic_name(t: usize) -> String {
    format!("lag-bench-t{t:03}")
}

pub async fn seed(bootstrap: &str, topic_count: usize, group_count: usize) -> Result<Expected> {
    let client = KafkaClient::new(ClientConfig::new([bootstrap]))?;
    let topics: Vec<String> = (0..topic_count).map(topic_name).collect();
    // Kafka refuses a CreateTopics of more than 10,000 partitions ("Excessively large number of partitions per
    // request"): 500 topics (5,000 partitions) per request.
    for chunk in topics.chunks(500) {
        client
            .create_topics(
                &chunk
                    .iter()
                    .map(|t| NewTopic::new(t.clone(), PARTITIONS_PER_TOPIC))
                    .collect::<Vec<_>>(),
            )
            .await?;
    }
    let all: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| (0..PARTITIONS_PER_TOPIC).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();

    // Wait until every partition has a leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    let metadata = loop {
        let m = client.refresh_metadata().await?;
        if all.iter().all(|tp| m.leader(tp).is_some()) {
            break m;
        }
        ensure!(Instant::now() < deadline, "partitions without a leader after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // 100–199 records per partition, one Produce per leader; partitions whose leader is not ready yet (a
    // fresh broker takes a while to host 2,000 new partitions) are produced to again.
    let records_of = seed_records_of;
    let mut pending = all.clone();
    let mut last_error = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !pending.is_empty() && Instant::now() < deadline {
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        for tp in pending.drain(..) {
            by_leader
                .entry(metadata.leader(&tp).unwrap_or(-1))
                .or_default()
                .push(tp);
        }
        for (leader, tps) in by_leader {
            // At most 2,000 partitions per Produce: 20,000 in one request is a request of tens of MiB.
            for chunk in tps.chunks(2_000) {
                let failed = produce(&client, leader, chunk, &records_of)
                    .await
                    .context("seeding: Produce")?;
                for (tp, code) in failed {
                    last_error = format!("{tp}: error code {code}");
                    pending.push(tp);
                }
            }
        }
        if !pending.is_empty() {
            eprintln!(
                "[bench] producing again to {} partitions ({last_error}, …)",
                pending.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    ensure!(
        pending.is_empty(),
        "could not produce to {} partitions ({last_error})",
        pending.len()
    );
    let ends = client
        .list_offsets(&all, OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await
        .context("seeding: log ends")?;
    for tp in &all {
        let end = ends.get(tp).map(|o| o.offset);
        ensure!(
            end == Some(records_of(tp)),
            "{tp}: log end {end:?}, expected {}",
            records_of(tp)
        );
    }

    // Every group commits on 5 topics spread over the cluster, at an offset below the log end.
    let commits = seed_commits(topic_count, group_count);
    let total_lag = commits
        .iter()
        .flat_map(|(_, offsets)| offsets.iter().map(|(tp, c)| records_of(tp) - c))
        .sum();
    let group_partitions = commits.iter().map(|(_, o)| o.len()).sum();
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
    Ok(Expected {
        total_lag,
        group_partitions,
    })
}

/// One Produce (acks=1) with `records_of(tp)` small records, timestamped now, for every partition in `tps`;
/// returns the partitions that failed (nothing was appended to them) with their error codes.
async fn produce(
    client: &KafkaClient,
    leader: i32,
    tps: &[TopicPartition],
    records_of: &impl Fn(&TopicPartition) -> i64,
) -> Result<Vec<(TopicPartition, i16)>> {
    let now = now_ms();
    let batches: Vec<(TopicPartition, Vec<i64>)> = tps
        .iter()
        .map(|tp| (tp.clone(), vec![now; records_of(tp) as usize]))
        .collect();
    produce_at(client, leader, &batches).await
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One Produce (acks=1) to `leader`: for each partition, one record per timestamp given (CreateTime), as one
/// batch. Returns the partitions that failed (nothing was appended to them) with their error codes.
pub async fn produce_at(
    client: &KafkaClient,
    leader: i32,
    batches: &[(TopicPartition, Vec<i64>)],
) -> Result<Vec<(TopicPartition, i16)>> {
    let conn = client.broker(leader).await?;
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for (tp, timestamps) in batches {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset - sequence stays the same; the batch's
                // base sequence is then -1, as it must be without a producer id.
                sequence: i as i32 - 1,
                timestamp: *ts,
                key: None,
                value: Some(Bytes::from(format!("record-{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| anyhow!("encode records: {e}"))?;
        topics.entry(&*tp.topic).or_default().push(
            PartitionProduceData::default()
                .with_index(tp.partition)
                .with_records(Some(buf.freeze())),
        );
    }
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partition_data(partitions)
                })
                .collect(),
        );
    // v12 is the newest version that names topics (v13 uses topic ids).
    let version = conn.version_in::<ProduceRequest>(3, 12)?;
    let response = conn.send_version(&request, version).await?;
    let mut failed = Vec::new();
    for t in response.responses {
        for p in t.partition_responses {
            if p.error_code != 0 {
                failed.push((TopicPartition::new(t.name.0.to_string(), p.index), p.error_code));
            }
        }
    }
    Ok(failed)
}

/// Peak resident set size (KiB) of a live process since its exec: VmHWM in /proc/PID/status.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The broker's request meters, read through `JmxRequestCounts` (attached to the broker JVM by pid).
pub struct Jmx {
    pub url: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Jmx {
    pub fn start(java: &Path, classpath: &str, broker_pid: u32, logs: &Path) -> Result<Jmx> {
        let mut child = Command::new(java)
            .args([
                "-Xmx64m",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                classpath,
                "JmxRequestCounts",
            ])
            .arg(broker_pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(logs.join("jmx.stderr"))?)
            .spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let url = serde_json::from_str::<serde_json::Value>(line.trim())
            .ok()
            .and_then(|v| v["jmx_url"].as_str().map(str::to_owned))
            .with_context(|| {
                format!(
                    "JmxRequestCounts printed {line:?}; see {}",
                    logs.join("jmx.stderr").display()
                )
            })?;
        Ok(Jmx {
            url,
            child,
            stdin,
            stdout,
        })
    }

    pub fn snapshot(&mut self) -> Result<BTreeMap<String, u64>> {
        writeln!(self.stdin)?;
        self.stdin.flush()?;
        let mut line = String::new();
        ensure!(self.stdout.read_line(&mut line)? > 0, "JmxRequestCounts exited");
        Ok(serde_json::from_str(line.trim())?)
    }
}

impl Drop for Jmx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests per API between two snapshots, without the broker's own traffic.
pub fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (meter, n) in after {
        let Some(api) = client_api(meter) else { continue };
        let n = n - before.get(meter).copied().unwrap_or(0);
        if n > 0 {
            *out.entry(api).or_insert(0) += n;
        }
    }
    out
}

/// The API name under which a meter counts client requests, or `None` for the broker's own. JmxRequestCounts
/// reports Fetch per version (`Fetch@v12`): the KRaft metadata log fetches with topic ids (v13+); a client
/// Fetch by topic name (v4–v12, what our `__consumer_offsets` tail and `record_timestamp` send) counts as
/// `Fetch`.
fn client_api(meter: &str) -> Option<String> {
    if let Some(version) = meter.strip_prefix("Fetch@v") {
        return match version.parse::<i16>() {
            Ok(v) if v <= 12 => Some("Fetch".to_owned()),
            _ => None,
        };
    }
    (!INTERNAL_APIS.contains(&meter)).then(|| meter.to_owned())
}

/// The broker JVM: the `kafka.Kafka` process whose command line names the fixture's server.properties.
pub fn find_broker_pid(dir: &Path) -> Result<u32> {
    let props = dir.join("server.properties").display().to_string();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "kafka.Kafka") && args.contains(&props) {
            return Ok(pid);
        }
    }
    bail!("no kafka.Kafka process for {props}")
}

pub fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem_gib:.1} GiB RAM; load average at the end {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

/// Compiles the bench's Java helpers into `classes`; returns the classpath with Kafka's jars.
pub fn compile_bench_java(
    javac: &Path,
    kafka_home: &Path,
    classes: &Path,
    sources: &[std::path::PathBuf],
) -> Result<String> {
    std::fs::create_dir_all(classes)?;
    let libs = format!("{}/libs/*", kafka_home.display());
    eprintln!(
        "[bench] compiling {} Java helper(s) into {}",
        sources.len(),
        classes.display()
    );
    let status = Command::new(javac)
        .args(["-nowarn", "-d"])
        .arg(classes)
        .args(["-cp", &libs])
        .args(sources)
        .status()?;
    ensure!(status.success(), "javac failed ({status})");
    Ok(format!("{}:{libs}", classes.display()))
}

/// A bench setting from the environment: `name`'s value as a number, `default` when unset.
pub fn env_number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

/// JVM options of Kafka's CLI tools, as `kafka-run-class.sh` starts them.
pub const TOOL_JVM_OPTS: &[&str] = &["-Xmx512M", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"];

/// Runs one of Kafka's tools (`org.apache.kafka.tools.ProducerPerformance`, …) from the harness's classpath,
/// killed after `timeout_secs`; its stdout, or an error with everything it printed.
pub fn java_tool<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    class: &str,
    args: &[S],
    timeout_secs: u64,
) -> Result<String> {
    let home = crate::support::tools::kafka_home();
    let java = crate::support::tools::system_tool("java", "install a Java 17+ runtime");
    let out = Command::new("timeout")
        .arg(timeout_secs.to_string())
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

/// The records `seed` writes to `tp` (100–199), for benches that lay out the same partitions another way.
pub fn seed_records_of(tp: &TopicPartition) -> i64 {
    let t: usize = tp.topic.trim_start_matches("lag-bench-t").parse().unwrap_or(0);
    100 + ((t * 10 + tp.partition as usize) * 37 % 100) as i64
}

/// The groups and committed offsets `seed` commits (every group on `TOPICS_PER_GROUP` topics, below
/// `seed_records_of`), for benches that commit the same offsets on another layout.
pub fn seed_commits(topic_count: usize, group_count: usize) -> Vec<(String, BTreeMap<TopicPartition, i64>)> {
    let stride = topic_count / TOPICS_PER_GROUP;
    (0..group_count)
        .map(|g| {
            let offsets = (0..TOPICS_PER_GROUP)
                .map(|k| (g + k * stride) % topic_count)
                .flat_map(|t| {
                    (0..PARTITIONS_PER_TOPIC).map(move |p| {
                        let tp = TopicPartition::new(topic_name(t), p);
                        let end = seed_records_of(&tp);
                        let committed = (g as i64 * 7 + t as i64 * 3 + i64::from(p) * 11) % end;
                        (tp, committed)
                    })
                })
                .collect();
            (format!("lag-bench-g{g:04}"), offsets)
        })
        .collect()
}

/// The median count of each API over samples of per-API request counts (APIs that no sample's median used are
/// left out).
pub fn median_per_api<'a>(samples: impl Iterator<Item = &'a BTreeMap<String, u64>> + Clone) -> BTreeMap<String, u64> {
    let apis: std::collections::BTreeSet<&String> = samples.clone().flat_map(|s| s.keys()).collect();
    apis.into_iter()
        .map(|api| {
            (
                api.clone(),
                median(samples.clone().map(|s| s.get(api).copied().unwrap_or(0)).collect()),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}
