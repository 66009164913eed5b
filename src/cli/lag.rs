//! `lag`: committed offset, log end, lag in messages and in time, state and members of consumer groups, in
//! a handful of batched requests however many groups (one describe and one OffsetFetch per coordinator, one
//! ListOffsets per leader), plus the exact time lag of every lagging partition read together (`first_records`:
//! one Fetch per leader per round). Where those reads meet transactional batches, the lag is the consumable lag (what a `read_committed` consumer will still
//! receive, read from batch headers) and the high-watermark lag (what `kafka-consumer-groups` shows) is shown too.

use super::connect::ConnectArgs;
use super::output::{self, Format, age, opt};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use futures_util::StreamExt;
use kafka_group_operator::kafka::{
    GroupDescription, GroupFilter, GroupLag, GroupType, Isolation, KafkaClient, LagScanner, OffsetSpec, PartitionLag,
    TopicPartition,
};
use kafka_group_operator::lag::{ConsumableLag, Sample, time_lag_ms};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Consumable-lag reads at once (partitions that carry transactions).
const TIMESTAMP_CONCURRENCY: usize = 16;

#[derive(Args, Debug)]
pub struct LagArgs {
    /// The group to show; repeat for several.
    #[arg(long, short = 'g', required_unless_present = "all", conflicts_with = "all")]
    pub group: Vec<String>,
    /// Every group of the cluster that reads topics: consumer (classic and KIP-848), share and streams groups.
    #[arg(long)]
    pub all: bool,
    /// How to print the result.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Refresh in place until Ctrl-C.
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// How often --watch refreshes (e.g. 5s).
    #[arg(long, default_value = "5s", value_parser = super::duration_arg)]
    pub interval: Duration,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LagReport {
    pub groups: Vec<GroupReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupReport {
    pub group: String,
    /// As the coordinator reports it (`Empty`, `Stable`, …).
    pub state: String,
    /// The group's type: `classic`, `consumer` (KIP-848), `share` (KIP-932) or `streams` (KIP-1071). A share
    /// group's `committed` is its share-partition start offset and its lag the broker's (KIP-1226).
    pub protocol: String,
    pub members: usize,
    /// Sum of the partitions' lag in messages: records the group will still read.
    pub total_lag: i64,
    /// Sum of the partitions' log end − committed, as `kafka-consumer-groups` shows it.
    pub high_watermark_lag: i64,
    /// The largest time lag of its partitions.
    pub max_time_lag_ms: Option<i64>,
    pub partitions: Vec<PartitionReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionReport {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    /// None for a partition a member owns but the group has not committed on yet.
    pub committed: Option<i64>,
    /// Unknown when the partition's end could not be read (e.g. the topic was deleted).
    pub log_end: Option<i64>,
    /// Records the group will still read: on a partition carrying transactions, the consumable lag
    /// (transaction markers and aborted transactions left out), elsewhere the high-watermark lag.
    pub lag: Option<i64>,
    /// Log end − committed, as `kafka-consumer-groups` shows it.
    pub high_watermark_lag: Option<i64>,
    /// `lag` is an upper bound: the partition's backlog was larger than what is read of its batch headers
    /// (`kafka::consumable::HEADER_FETCHES` Fetches of `HEADER_FETCH_BYTES`); the table shows it as `<=N`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lag_is_upper_bound: bool,
    /// Age of the next record the group will read (0 when caught up).
    pub time_lag_ms: Option<i64>,
    /// The member that owns the partition: its client id and host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

pub async fn run(args: LagArgs) -> Result<ExitCode> {
    let client = args.connect.client().await?;
    if !args.watch {
        let report = collect(&client, &args, None).await?;
        print!("{}", render(args.output, &report)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Refreshes read the commits since the last one from `__consumer_offsets` (where the broker has it)
    // instead of fetching every committed offset again: see `LagScanner`.
    let mut scanner = LagScanner::new(client.clone());
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let report = collect(&client, &args, Some(&mut scanner)).await?;
        let text = render(args.output, &report)?;
        let now = k8s_openapi::jiff::Timestamp::now().strftime("%H:%M:%S");
        // Home the cursor and clear the screen: the table refreshes in place.
        let mut stdout = std::io::stdout().lock();
        write!(
            stdout,
            "\x1b[H\x1b[2J{now}  every {}s, Ctrl-C to stop\n\n{text}",
            args.interval.as_secs()
        )?;
        stdout.flush()?;
        drop(stdout);
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(args.interval) => {}
        }
    }
}

/// Which groups: the named ones (each must exist), or every group that commits offsets (consumer groups of
/// either protocol and streams groups; not share groups, which have no committed offsets).
async fn groups(client: &KafkaClient, args: &LagArgs) -> Result<Vec<String>> {
    if !args.all {
        return Ok(args.group.clone());
    }
    let listings = client
        .list_groups(&GroupFilter::default())
        .await
        .map_err(|e| super::kafka_error(e, ""))?;
    Ok(listings
        .into_iter()
        .filter(|l| matches!(l.protocol_type.as_str(), "consumer" | "share" | "streams" | ""))
        .map(|l| l.group_id)
        .collect())
}

/// Share groups' start offsets as a snapshot's committed offsets (with their log ends read here), and the
/// broker's lag of each share-partition (KIP-1226) where it computed one.
async fn share_snapshot(
    client: &KafkaClient,
    groups: &[String],
) -> Result<(Vec<GroupLag>, HashMap<(String, TopicPartition), i64>)> {
    if groups.is_empty() {
        return Ok((Vec::new(), HashMap::new()));
    }
    let mut offsets = BTreeMap::new();
    for (group, result) in client.share_group_offsets(groups).await {
        offsets.insert(
            group.clone(),
            result
                .map_err(|e| super::kafka_error(e, ""))
                .with_context(|| format!("share group {group}"))?,
        );
    }
    let partitions: Vec<TopicPartition> = offsets
        .values()
        .flat_map(|o| o.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let ends: BTreeMap<TopicPartition, i64> = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        client
            .list_offsets(&partitions, OffsetSpec::Latest, Isolation::ReadUncommitted)
            .await
            .map_err(|e| super::kafka_error(e, ""))?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect()
    };
    let mut broker_lag = HashMap::new();
    let mut lags = Vec::new();
    for (group, partitions) in offsets {
        let partitions: Vec<PartitionLag> = partitions
            .into_iter()
            .map(|(tp, p)| {
                if let Some(lag) = p.lag {
                    broker_lag.insert((group.clone(), tp.clone()), lag);
                }
                let log_end = ends.get(&tp).copied();
                PartitionLag {
                    lag: log_end.map(|end| kafka_group_operator::lag::high_watermark_lag(p.start_offset, end)),
                    topic: tp.topic,
                    partition: tp.partition,
                    committed: p.start_offset,
                    log_end,
                }
            })
            .collect();
        lags.push(GroupLag {
            total_lag: partitions.iter().filter_map(|p| p.lag).sum(),
            group,
            partitions,
        });
    }
    Ok((lags, broker_lag))
}

/// One report; with a `scanner` (repeated refreshes), its committed offsets come from the scanner's tail.
pub async fn collect(client: &KafkaClient, args: &LagArgs, scanner: Option<&mut LagScanner>) -> Result<LagReport> {
    let names = groups(client, args).await?;
    // Described first: a share group has no committed offsets to fetch, but share-partition start offsets.
    let mut described: HashMap<String, GroupDescription> = HashMap::new();
    for (group, result) in client.describe_groups(&names).await {
        described.insert(group, result.map_err(|e| super::kafka_error(e, ""))?);
    }
    let (share, committed): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|g| described.get(g).is_some_and(|d| d.group_type == GroupType::Share));
    let snapshot = async {
        match scanner {
            Some(scanner) => scanner
                .scan(&committed, Isolation::ReadUncommitted)
                .await
                .map(|scan| scan.snapshot),
            None => client.lag_snapshot(&committed, Isolation::ReadUncommitted).await,
        }
    };
    let (snapshot, share_lags) = tokio::join!(snapshot, share_snapshot(client, &share));
    let mut snapshot = snapshot.map_err(|e| super::kafka_error(e, ""))?;
    let (share_lags, broker_lag) = share_lags?;
    for lag in share_lags {
        snapshot.groups.insert(lag.group.clone(), lag);
    }
    if let Some((group, error)) = snapshot.errors.into_iter().next() {
        return Err(super::kafka_error(error, "").context(format!("group {group}")));
    }
    let unknown: Vec<&String> = names
        .iter()
        .filter(|g| {
            let has_offsets = snapshot.groups.get(*g).is_some_and(|l| !l.partitions.is_empty());
            !has_offsets && described.get(*g).is_none_or(|d| !d.exists())
        })
        .collect();
    if !args.all && !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|g| g.as_str()).collect();
        bail!(
            "unknown group {}: no members and no committed offsets on this cluster (check the name; `lag --all` lists every group)",
            list.join(", ")
        );
    }
    // What each lagging partition's lag and time lag need (see `measure`).
    let lagging: Vec<(TopicPartition, i64)> = snapshot
        .groups
        .values()
        .flat_map(|g| g.partitions.iter())
        .filter(|p| p.lag.is_some_and(|l| l > 0))
        .map(|p| (TopicPartition::new(&p.topic, p.partition), p.committed))
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    let measured = measure(client, lagging).await;
    // Partitions that members own but the group has not committed on: shown with their log end, as
    // `kafka-consumer-groups --describe` shows them.
    let uncommitted: Vec<TopicPartition> = described
        .iter()
        .flat_map(|(name, d)| {
            let committed = snapshot.groups.get(name);
            d.members.iter().flat_map(|m| m.assignment.iter()).filter(move |tp| {
                committed.is_none_or(|g| {
                    !g.partitions
                        .iter()
                        .any(|p| p.topic == tp.topic && p.partition == tp.partition)
                })
            })
        })
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let uncommitted_ends: BTreeMap<TopicPartition, i64> = if uncommitted.is_empty() {
        BTreeMap::new()
    } else {
        client
            .list_offsets(&uncommitted, OffsetSpec::Latest, Isolation::ReadUncommitted)
            .await
            .map_err(|e| super::kafka_error(e, ""))?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect()
    };
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let mut report = LagReport { groups: Vec::new() };
    for name in &names {
        if unknown.contains(&name) {
            continue;
        }
        let description = described.get(name);
        let owners: HashMap<TopicPartition, String> = description
            .map(|d| {
                d.members
                    .iter()
                    .flat_map(|m| {
                        m.assignment.iter().map(move |tp| {
                            (
                                tp.clone(),
                                format!("{}/{}", m.client_id, m.host.trim_start_matches('/')),
                            )
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut partitions: Vec<PartitionReport> = snapshot
            .groups
            .get(name)
            .map(|g| {
                g.partitions
                    .iter()
                    .map(|p| {
                        let tp = TopicPartition::new(&p.topic, p.partition);
                        let m = if p.lag.is_some_and(|l| l > 0) {
                            measured.get(&(tp.clone(), p.committed)).copied().unwrap_or_default()
                        } else {
                            Measured::default()
                        };
                        let consumable = m.consumable.map(|c| c.records);
                        let time_lag = p.log_end.and_then(|log_end| {
                            let sample = Sample {
                                committed: Some(p.committed),
                                log_end,
                                committed_record_ms: m.timestamp,
                                consumable,
                            };
                            time_lag_ms(&sample, now_ms)
                        });
                        PartitionReport {
                            topic: p.topic.clone(),
                            partition: p.partition,
                            committed: Some(p.committed),
                            log_end: p.log_end,
                            // Share groups' lag as their broker computes it (absent without share groups).
                            lag: (!broker_lag.is_empty())
                                .then(|| broker_lag.get(&(name.clone(), tp.clone())).copied())
                                .flatten()
                                .or(consumable)
                                .or(p.lag),
                            high_watermark_lag: p.lag,
                            lag_is_upper_bound: m.consumable.is_some_and(|c| !c.exact),
                            time_lag_ms: time_lag,
                            consumer: owners.get(&tp).cloned(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (tp, owner) in &owners {
            if !partitions
                .iter()
                .any(|p| *p.topic == *tp.topic && p.partition == tp.partition)
            {
                partitions.push(PartitionReport {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    committed: None,
                    log_end: uncommitted_ends.get(tp).copied(),
                    lag: None,
                    high_watermark_lag: None,
                    lag_is_upper_bound: false,
                    time_lag_ms: None,
                    consumer: Some(owner.clone()),
                });
            }
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        report.groups.push(GroupReport {
            group: name.clone(),
            state: description.map_or_else(|| "Unknown".to_owned(), |d| d.state.as_str().to_owned()),
            protocol: description.map_or_else(String::new, |d| d.group_type.as_str().to_owned()),
            members: description.map_or(0, |d| d.members.len()),
            total_lag: partitions.iter().filter_map(|p| p.lag).sum(),
            high_watermark_lag: partitions.iter().filter_map(|p| p.high_watermark_lag).sum(),
            max_time_lag_ms: partitions.iter().filter_map(|p| p.time_lag_ms).max(),
            partitions,
        });
    }
    report.groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(report)
}

/// What a lagging partition's lag and time lag need, read at its committed offset.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    /// The timestamp of the first record the group will read.
    timestamp: Option<i64>,
    /// The consumable lag, on a partition whose first Fetch met transactional batches.
    consumable: Option<ConsumableLag>,
}

/// The first record at every lagging (partition, committed offset), read together (`first_records`: one Fetch
/// per leader per round); where a read met transactional batches, the consumable lag from batch headers and the
/// timestamp of the first consumable record instead. Plain topics cost the batched reads only. A read that fails
/// leaves that figure unknown (the lag is then the high-watermark lag).
async fn measure(
    client: &KafkaClient,
    lagging: Vec<(TopicPartition, i64)>,
) -> BTreeMap<(TopicPartition, i64), Measured> {
    let firsts = client.first_records(lagging.iter().cloned()).await.found;
    let mut measured: BTreeMap<(TopicPartition, i64), Measured> = BTreeMap::new();
    let mut transactional = Vec::new();
    for key in lagging {
        match firsts.get(&key) {
            Some(first) if first.transactional => transactional.push((key, first.timestamp)),
            Some(first) => {
                measured.insert(
                    key,
                    Measured {
                        timestamp: first.timestamp,
                        consumable: None,
                    },
                );
            }
            None => {
                measured.insert(key, Measured::default());
            }
        }
    }
    let consumable: Vec<((TopicPartition, i64), Measured)> = futures_util::stream::iter(transactional)
        .map(|((tp, committed), first_timestamp)| async move {
            let m = consumable_measure(client, &tp, committed, first_timestamp).await;
            ((tp, committed), m)
        })
        .buffer_unordered(TIMESTAMP_CONCURRENCY)
        .collect()
        .await;
    measured.extend(consumable);
    measured
}

/// On a partition that carries transactions: the consumable lag from batch headers, and the timestamp of the
/// first consumable record (the committed offset's own when that is it).
async fn consumable_measure(
    client: &KafkaClient,
    tp: &TopicPartition,
    committed: i64,
    first_timestamp: Option<i64>,
) -> Measured {
    let Ok(read) = client.consumable_lag(tp, committed).await else {
        return Measured {
            timestamp: first_timestamp,
            consumable: None,
        };
    };
    let timestamp = match read.lag.first_offset {
        None => None,
        Some(offset) if offset == committed => first_timestamp,
        Some(offset) => client.record_timestamp(tp, offset).await.ok().flatten(),
    };
    Measured {
        timestamp,
        consumable: Some(read.lag),
    }
}

pub fn render(format: Format, report: &LagReport) -> Result<String> {
    match format {
        Format::Table => Ok(render_table(report)),
        other => output::structured(other, report),
    }
}

/// One block per group: a line with its state, members and totals, then a row per partition.
pub fn render_table(report: &LagReport) -> String {
    if report.groups.is_empty() {
        return "No consumer groups.\n".to_owned();
    }
    let mut out = String::new();
    for (i, g) in report.groups.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "GROUP {}  state={} protocol={} members={} lag={}{} time-lag={} hw-lag={}\n",
            g.group,
            g.state,
            if g.protocol.is_empty() { "-" } else { &g.protocol },
            g.members,
            if g.partitions.iter().any(|p| p.lag_is_upper_bound) {
                "<="
            } else {
                ""
            },
            g.total_lag,
            age(g.max_time_lag_ms),
            g.high_watermark_lag
        ));
        if g.partitions.is_empty() {
            out.push_str("  (no committed offsets)\n");
            continue;
        }
        let rows: Vec<Vec<String>> = g
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.topic.to_string(),
                    p.partition.to_string(),
                    opt(p.committed),
                    opt(p.log_end),
                    match (p.lag, p.lag_is_upper_bound) {
                        (Some(lag), true) => format!("<={lag}"),
                        (lag, _) => opt(lag),
                    },
                    age(p.time_lag_ms),
                    opt(p.high_watermark_lag),
                    p.consumer.clone().unwrap_or_else(|| "-".to_owned()),
                ]
            })
            .collect();
        out.push_str(&output::table(
            "  ",
            &[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "TIME-LAG",
                "HW-LAG",
                "CONSUMER",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(topic: &str, p: i32, committed: i64, end: i64, time_lag: Option<i64>) -> PartitionReport {
        PartitionReport {
            topic: topic.into(),
            partition: p,
            committed: Some(committed),
            log_end: Some(end),
            lag: Some(end - committed),
            high_watermark_lag: Some(end - committed),
            lag_is_upper_bound: false,
            time_lag_ms: time_lag,
            consumer: None,
        }
    }

    /// The table format, checked against `tests/golden/lag_table.txt` (fixed data: no clock involved).
    /// `UPDATE_GOLDEN=1 cargo test --bin kafka-group-operator golden` rewrites the file after a deliberate change.
    #[test]
    fn lag_table_matches_the_golden_file() {
        let mut stable = vec![
            partition("orders", 0, 1200, 1212, Some(4_300)),
            partition("orders", 1, 1187, 1187, Some(0)),
            partition("orders", 2, 990, 1410, Some(192_000)),
        ];
        stable[0].consumer = Some("shipping-7f9c/10.0.3.17".to_owned());
        stable[1].consumer = Some("shipping-7f9c/10.0.3.17".to_owned());
        stable[2].consumer = Some("shipping-2b41/10.0.3.22".to_owned());
        let report = LagReport {
            groups: vec![
                GroupReport {
                    group: "billing".to_owned(),
                    state: "Empty".to_owned(),
                    protocol: "classic".to_owned(),
                    members: 0,
                    total_lag: 5000,
                    high_watermark_lag: 5000,
                    max_time_lag_ms: Some(183_600_000),
                    partitions: vec![
                        partition("invoices", 0, 0, 5000, Some(183_600_000)),
                        PartitionReport {
                            log_end: None,
                            lag: None,
                            high_watermark_lag: None,
                            time_lag_ms: None,
                            ..partition("invoices-old", 0, 17, 0, None)
                        },
                    ],
                },
                GroupReport {
                    group: "new-group".to_owned(),
                    state: "Stable".to_owned(),
                    protocol: "consumer".to_owned(),
                    members: 1,
                    total_lag: 0,
                    high_watermark_lag: 0,
                    max_time_lag_ms: None,
                    partitions: vec![PartitionReport {
                        committed: None,
                        lag: None,
                        high_watermark_lag: None,
                        time_lag_ms: None,
                        consumer: Some("consumer-new-group-1/10.0.3.40".to_owned()),
                        ..partition("payments", 0, 0, 77, None)
                    }],
                },
                GroupReport {
                    group: "old-group".to_owned(),
                    state: "Empty".to_owned(),
                    protocol: "classic".to_owned(),
                    members: 0,
                    total_lag: 0,
                    high_watermark_lag: 0,
                    max_time_lag_ms: None,
                    partitions: Vec::new(),
                },
                GroupReport {
                    group: "payments-eos".to_owned(),
                    state: "Empty".to_owned(),
                    protocol: "classic".to_owned(),
                    members: 0,
                    total_lag: 90_012,
                    high_watermark_lag: 90_037,
                    max_time_lag_ms: Some(60_000),
                    partitions: vec![
                        // Caught up behind a COMMIT marker.
                        PartitionReport {
                            lag: Some(0),
                            time_lag_ms: Some(0),
                            ..partition("payments", 0, 14, 15, None)
                        },
                        // An aborted transaction (20 records and its marker), then 12 committed records.
                        PartitionReport {
                            lag: Some(12),
                            time_lag_ms: Some(9_000),
                            ..partition("payments", 1, 14, 50, None)
                        },
                        // A backlog larger than the header reads of one scan.
                        PartitionReport {
                            lag: Some(90_000),
                            lag_is_upper_bound: true,
                            time_lag_ms: Some(60_000),
                            ..partition("payments", 2, 10_000, 100_000, None)
                        },
                    ],
                },
                GroupReport {
                    group: "shipping".to_owned(),
                    state: "Stable".to_owned(),
                    protocol: "classic".to_owned(),
                    members: 2,
                    total_lag: 432,
                    high_watermark_lag: 432,
                    max_time_lag_ms: Some(192_000),
                    partitions: stable,
                },
            ],
        };
        let text = render_table(&report);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lag_table.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).expect("write the golden file");
        }
        let golden = std::fs::read_to_string(&path).expect("tests/golden/lag_table.txt");
        assert_eq!(text, golden, "the lag table changed: compare with {}", path.display());
    }
}
