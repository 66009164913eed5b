//! `plan`: what applying OffsetReset and ConsumerGroup (`offsetInit`) manifests would do to the committed
//! offsets, per partition, resolved against the cluster with the operator's own resolver. Exit code 0 when
//! nothing would change, 2 when something would, 1 on error (like `terraform plan -detailed-exitcode`).

use super::connect::ConnectArgs;
use super::export;
use super::ledger::Ledgers;
use super::manifest::{self, Manifest};
use super::output::{self, Format, opt, signed};
use anyhow::{Result, anyhow, bail};
use clap::Args;
use kafka_group_operator::api::reset::{PartitionOffset, ResetTo};
use kafka_group_operator::api::{ConsumerGroup, IsolationLevel, OffsetInitPolicy, OffsetReset};
use kafka_group_operator::controller::resolve::{ResetRequest, ResolveError, resolve_offset_init, resolve_reset};
use kafka_group_operator::kafka::{GroupDescription, GroupOffsets, GroupState, GroupType, KafkaClient, KafkaError};
use kafka_group_operator::plan::offset_init::InitPolicy;
use kafka_group_operator::plan::reset::Clamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code of `plan` when applying would change offsets.
pub const EXIT_CHANGES: u8 = 2;

/// What to plan: manifests, or an offsets file for one group.
#[derive(Args, Debug, Clone)]
pub struct PlanSource {
    /// OffsetReset and ConsumerGroup manifests (multi-document YAML; a directory: its .yaml/.yml files).
    /// KafkaCluster documents are skipped; ConsumerGroups plan their `offsetInit`.
    #[arg(
        long = "filename",
        short = 'f',
        value_name = "MANIFEST",
        required_unless_present = "from_file",
        conflicts_with = "from_file"
    )]
    pub manifests: Vec<PathBuf>,
    /// Offsets to restore, as `topic,partition,offset` lines (what `export` and `apply` write, and
    /// `kafka-consumer-groups --reset-offsets --from-file` reads); `group,topic,partition,offset` lines name
    /// their group.
    #[arg(long, value_name = "CSV")]
    pub from_file: Option<PathBuf>,
    /// The group of --from-file's `topic,partition,offset` lines.
    #[arg(long, short = 'g', requires = "from_file")]
    pub group: Option<String>,
    /// How long to wait for a pending transactional offset commit of a group (UNSTABLE_OFFSET_COMMIT: an
    /// exactly-once consumer's open transaction) to commit or abort before failing (e.g. 60s, 0s): nothing
    /// is planned from a pending offset.
    #[arg(long, default_value = "60s", value_parser = super::duration_arg, value_name = "DURATION")]
    pub unstable_offset_wait: Duration,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: PlanSource,
    /// How to print the plan.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The plan of one group.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlan {
    /// Where the request came from: `OffsetReset rewind (resets.yaml)`.
    pub source: String,
    pub group: String,
    /// The target in words (`earliest`, `shiftBy -100`, `offsetInit latest`, …).
    pub target: String,
    pub state: String,
    pub members: usize,
    /// `classic`, `consumer`, `share` or `streams`: a share group's start offsets move with
    /// AlterShareGroupOffsets, every other group's committed offsets with OffsetCommit.
    pub group_type: String,
    pub partitions: Vec<PartitionChange>,
    /// For a streams group (KIP-1071): the application state the reset leaves as it is, and how to reset it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// An OffsetReset of this name and spec was applied before (when and where it is recorded): nothing to
    /// change, as the operator would end it at once as `AlreadyApplied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_applied: Option<String>,
    /// The record `apply` commits with the offsets of an OffsetReset manifest (`cli::ledger`).
    #[serde(skip)]
    pub record: Option<kafka_group_operator::plan::reset_record::ResetRecord>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionChange {
    pub topic: String,
    pub partition: i32,
    /// The committed offset now (absent: none).
    pub current: Option<i64>,
    pub target: i64,
    pub delta: Option<i64>,
    /// `logStart` or `logEnd` when the requested offset lay outside the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped: Option<&'static str>,
}

impl PartitionChange {
    pub fn changes(&self) -> bool {
        self.current != Some(self.target)
    }
}

impl GroupPlan {
    pub fn changes(&self) -> usize {
        if self.already_applied.is_some() {
            return 0;
        }
        self.partitions.iter().filter(|p| p.changes()).count()
    }
    pub fn active(&self) -> bool {
        self.members > 0
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Whether applying would change any committed offset.
    pub changes: bool,
    pub groups: Vec<GroupPlan>,
}

pub async fn run(args: PlanArgs) -> Result<ExitCode> {
    let requests = load(&args.source)?;
    let client = args.connect.client().await?;
    let ledgers = Ledgers::for_connection(&args.connect).await?;
    let plan = build(&client, &ledgers, &requests, args.source.unstable_offset_wait).await?;
    match args.output {
        Format::Table => print!("{}", render_table(&plan)),
        other => print!("{}", output::structured(other, &plan)?),
    }
    Ok(if plan.changes {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}

/// What to plan, read and checked before any connection is made.
pub enum Requests {
    Manifests(Vec<Manifest>),
    /// Offsets per group from an offsets file.
    Offsets {
        path: PathBuf,
        groups: BTreeMap<String, Vec<PartitionOffset>>,
    },
}

pub fn load(source: &PlanSource) -> Result<Requests> {
    if let Some(path) = &source.from_file {
        return Ok(Requests::Offsets {
            path: path.clone(),
            groups: export::read_csv(path, source.group.as_deref())?,
        });
    }
    let manifests = manifest::read_all(&source.manifests)?;
    let plannable = manifests.iter().any(|m| match m {
        Manifest::Reset { .. } => true,
        Manifest::Group { group, .. } => group
            .spec
            .offset_init
            .as_ref()
            .is_some_and(|i| i.policy != OffsetInitPolicy::None),
        Manifest::Cluster => false,
    });
    if !plannable {
        bail!(
            "nothing to plan: the manifests hold no OffsetReset and no ConsumerGroup with offsetInit (earliest or latest)"
        );
    }
    Ok(Requests::Manifests(manifests))
}

/// Resolves every request against the cluster, waiting at most `wait` for a group's pending transactional
/// offset commit. Nothing is changed.
pub async fn build(client: &KafkaClient, ledgers: &Ledgers, requests: &Requests, wait: Duration) -> Result<Plan> {
    let mut groups: Vec<GroupPlan> = Vec::new();
    match requests {
        Requests::Offsets { path, groups: offsets } => {
            for (group, offsets) in offsets {
                let to = ResetTo {
                    partitions: Some(offsets.clone()),
                    ..ResetTo::default()
                };
                let origin = format!("offsets file {}", path.display());
                let mut plan = plan_reset_request(
                    Cluster {
                        client,
                        unstable_offset_wait: wait,
                    },
                    &origin,
                    group,
                    &to,
                    &[],
                    &[],
                    None,
                )
                .await?;
                plan.target = "the file's offsets".to_owned();
                groups.push(plan);
            }
        }
        Requests::Manifests(manifests) => {
            let consumer_groups: Vec<&ConsumerGroup> = manifests
                .iter()
                .filter_map(|m| match m {
                    Manifest::Group { group, .. } => Some(group.as_ref()),
                    _ => None,
                })
                .collect();
            for m in manifests {
                match m {
                    Manifest::Reset { source, reset } => {
                        groups.push(plan_offset_reset(client, ledgers, source, reset, &consumer_groups, wait).await?);
                    }
                    Manifest::Group { source, group } => {
                        if let Some(plan) = plan_offset_init(client, source, group, wait).await? {
                            groups.push(plan);
                        }
                    }
                    Manifest::Cluster => {}
                }
            }
        }
    }
    // Two requests for one group would each be planned from today's offsets: the second would not see the first.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for g in &groups {
        if let Some(first) = seen.insert(&g.group, &g.source) {
            bail!(
                "{first} and {} both move group {}: plan and apply them one at a time",
                g.source,
                g.group
            );
        }
    }
    let changes = groups.iter().any(|g| g.changes() > 0);
    Ok(Plan { changes, groups })
}

/// The group and what a plan moves from: its committed offsets, or a share group's start offsets.
async fn observe(client: &KafkaClient, group: &str, wait: Duration) -> Result<(GroupDescription, GroupOffsets)> {
    let description = client
        .describe_group(group)
        .await
        .map_err(|e| super::kafka_error(e, ""))?;
    if description.exists() && description.group_type == GroupType::Share {
        let offsets = share_offsets(client, group).await?;
        return Ok((description, offsets));
    }
    Ok((description, stable_offsets(client, group, wait).await?))
}

/// A share group's start offsets, in the shape of committed offsets.
pub async fn share_offsets(client: &KafkaClient, group: &str) -> Result<GroupOffsets> {
    let share = client
        .share_group_offsets_of(group)
        .await
        .map_err(|e| super::kafka_error(e, ""))?;
    Ok(kafka_group_operator::kafka::start_offsets_as_committed(&share))
}

/// The group's committed offsets read with require_stable, as the operator reads them: a pending
/// transactional offset commit is waited for (saying so on stderr), at most `wait`, and never planned from.
async fn stable_offsets(client: &KafkaClient, group: &str, wait: Duration) -> Result<GroupOffsets> {
    let partitions = match client.stable_group_offsets(group).await {
        Err(KafkaError::UnstableOffsetCommit { partitions, .. }) => partitions,
        other => return other.map_err(|e| super::kafka_error(e, "")),
    };
    let wait_text = output::age(Some(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)));
    eprintln!(
        "group {group} has a pending transactional offset commit (UNSTABLE_OFFSET_COMMIT) on {}: waiting up to {wait_text} (--unstable-offset-wait) for its transaction to commit or abort",
        partitions.join(", ")
    );
    let started = std::time::Instant::now();
    match client.stable_group_offsets_within(group, wait).await {
        Err(e @ KafkaError::UnstableOffsetCommit { .. }) => bail!(
            "{e}; waited {} (--unstable-offset-wait {wait_text}): nothing was planned from the pending offsets. Run again once the transaction has ended (or the broker aborted it at its transaction.timeout.ms), or wait longer with --unstable-offset-wait",
            output::age(Some(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)))
        ),
        other => other.map_err(|e| super::kafka_error(e, "")),
    }
}

async fn plan_offset_reset(
    client: &KafkaClient,
    ledgers: &Ledgers,
    source: &str,
    reset: &OffsetReset,
    consumer_groups: &[&ConsumerGroup],
    wait: Duration,
) -> Result<GroupPlan> {
    let name = reset.metadata.name.clone().unwrap_or_default();
    let origin = format!("OffsetReset {name} ({source})");
    let (group_id, declared, isolation) = match (&reset.spec.group_ref, &reset.spec.group_id) {
        (Some(r), _) => {
            let group = consumer_groups
                .iter()
                .find(|g| g.metadata.name.as_deref() == Some(r.name.as_str()))
                .ok_or_else(|| {
                    anyhow!(
                        "{origin}: groupRef names ConsumerGroup {}, which is not among the manifests: pass its file with -f too, or use clusterRef and groupId",
                        r.name
                    )
                })?;
            (group.group_id(), group.spec.topics.clone(), group.spec.isolation)
        }
        (None, Some(g)) => (g.clone(), Vec::new(), None),
        (None, None) => bail!("{origin}: the reset names no group"),
    };
    if let Some(when) = ledgers.applied_before(client, reset, &group_id).await? {
        // Nothing is planned: the group's state is all the line shows (its offsets are neither read nor waited for).
        let description = client
            .describe_group(&group_id)
            .await
            .map_err(|e| super::kafka_error(e, ""))?;
        return Ok(GroupPlan {
            source: origin,
            group: group_id,
            target: kafka_group_operator::controller::resolve::target_words(&reset.spec.to),
            state: description.state.as_str().to_owned(),
            members: description.members.len(),
            group_type: description.group_type.as_str().to_owned(),
            partitions: Vec::new(),
            note: None,
            already_applied: Some(when),
            record: None,
        });
    }
    if let Some(previous) = &reset.spec.to.previous_of {
        bail!(
            "{origin}: previousOf {previous} needs that OffsetReset's status, which only the cluster has: apply it with kubectl, or undo a command-line apply with `apply --from-file` and the file it wrote"
        );
    }
    let mut plan = plan_reset_request(
        Cluster {
            client,
            unstable_offset_wait: wait,
        },
        &origin,
        &group_id,
        &reset.spec.to,
        &reset.spec.topics,
        &declared,
        isolation,
    )
    .await?;
    plan.record = Some(super::ledger::cli_record(reset));
    Ok(plan)
}

/// The cluster planned against, and how long a group's pending transactional offset commit is waited for.
#[derive(Clone, Copy)]
struct Cluster<'a> {
    client: &'a KafkaClient,
    unstable_offset_wait: Duration,
}

async fn plan_reset_request(
    cluster: Cluster<'_>,
    origin: &str,
    group_id: &str,
    to: &ResetTo,
    topics: &[kafka_group_operator::api::reset::TopicSelection],
    declared: &[String],
    isolation: Option<IsolationLevel>,
) -> Result<GroupPlan> {
    let client = cluster.client;
    let (description, committed) = observe(client, group_id, cluster.unstable_offset_wait).await?;
    if description.group_type == GroupType::Share && to.shift_by.is_some() {
        bail!(
            "{origin}: {group_id} is a share group: its start offsets move to earliest, latest, offset, timestamp, duration, partitions or previousOf, not by shiftBy"
        );
    }
    let request = ResetRequest {
        group_id,
        topics,
        to,
        declared_topics: declared,
        isolation,
        previous_of: None,
        streams: description.streams.as_ref(),
    };
    let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let resolved = match resolve_reset(client, &request, &committed, now_ms).await {
        Ok(r) => r,
        Err(ResolveError::NothingToReset(_)) if !description.exists() => bail!(
            "{origin}: unknown group {group_id}: it has no members and no committed offsets on this cluster (check the group id, or list spec.topics to give a new group its first offsets)"
        ),
        Err(ResolveError::Kafka(e)) => return Err(super::kafka_error(e, "").context(origin.to_owned())),
        Err(e) => bail!("{origin}: {e}"),
    };
    Ok(GroupPlan {
        source: origin.to_owned(),
        group: group_id.to_owned(),
        target: resolved.target,
        state: description.state.as_str().to_owned(),
        members: description.members.len(),
        group_type: description.group_type.as_str().to_owned(),
        note: description
            .streams
            .as_ref()
            .map(|t| kafka_group_operator::controller::resolve::streams_state_note(group_id, t)),
        already_applied: None,
        record: None,
        partitions: resolved
            .partitions
            .iter()
            .map(|p| PartitionChange {
                topic: p.partition.topic.to_string(),
                partition: p.partition.partition,
                current: p.from,
                target: p.to,
                delta: p.delta(),
                clamped: p.clamped.map(|c| match c {
                    Clamp::ToLogStart => "logStart",
                    Clamp::ToLogEnd => "logEnd",
                }),
            })
            .collect(),
    })
}

/// A ConsumerGroup's `offsetInit`: starting offsets for its topics' partitions that have none.
async fn plan_offset_init(
    client: &KafkaClient,
    source: &str,
    group: &ConsumerGroup,
    wait: Duration,
) -> Result<Option<GroupPlan>> {
    let policy = match group.spec.offset_init.as_ref().map(|i| i.policy) {
        Some(OffsetInitPolicy::Earliest) => InitPolicy::Earliest,
        Some(OffsetInitPolicy::Latest) => InitPolicy::Latest,
        _ => return Ok(None),
    };
    if group.spec.group_type == Some(kafka_group_operator::api::DeclaredGroupType::Share) {
        // A share group's offsetInit is its group config share.auto.offset.reset: no offsets to plan.
        return Ok(None);
    }
    let name = group.metadata.name.clone().unwrap_or_default();
    let origin = format!("ConsumerGroup {name} ({source})");
    if group.spec.topics.is_empty() {
        bail!("{origin}: offsetInit needs spec.topics: the topics whose partitions get a first offset");
    }
    let group_id = group.group_id();
    let (description, committed) = observe(client, &group_id, wait).await?;
    if description.group_type == GroupType::Share {
        // A share group's offsetInit is its group config share.auto.offset.reset: no offsets to plan.
        return Ok(None);
    }
    let init = resolve_offset_init(client, policy, &group.spec.topics, &committed)
        .await
        .map_err(|e| match e {
            ResolveError::Kafka(k) => super::kafka_error(k, "").context(origin.clone()),
            other => anyhow!("{origin}: {other}"),
        })?;
    // Partitions that already have an offset stay as they are: shown as unchanged.
    let mut partitions: Vec<PartitionChange> = committed
        .iter()
        .filter(|(tp, _)| group.spec.topics.iter().any(|t| **t == *tp.topic))
        .map(|(tp, c)| PartitionChange {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            current: Some(c.offset),
            target: c.offset,
            delta: Some(0),
            clamped: None,
        })
        .collect();
    partitions.extend(init.into_iter().map(|(tp, offset)| PartitionChange {
        topic: tp.topic.to_string(),
        partition: tp.partition,
        current: None,
        target: offset,
        delta: None,
        clamped: None,
    }));
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(Some(GroupPlan {
        source: origin,
        group: group_id,
        target: format!(
            "offsetInit {}",
            if policy == InitPolicy::Earliest {
                "earliest"
            } else {
                "latest"
            }
        ),
        state: description.state.as_str().to_owned(),
        members: description.members.len(),
        group_type: description.group_type.as_str().to_owned(),
        partitions,
        note: None,
        already_applied: None,
        record: None,
    }))
}

pub fn render_table(plan: &Plan) -> String {
    let mut out = String::new();
    for g in &plan.groups {
        // Kafka describes a group it does not know as Dead without members.
        let state = if GroupState::from_kafka(&g.state) == GroupState::Dead
            && g.members == 0
            && g.partitions.iter().all(|p| p.current.is_none())
        {
            "a new group".to_owned()
        } else {
            format!("{}, {} member(s)", g.state, g.members)
        };
        if let Some(when) = &g.already_applied {
            out.push_str(&format!(
                "{}: group {} to {}: already applied on {when}: no change (a reset meant to run again needs another name)\n\n",
                g.source, g.group, g.target
            ));
            continue;
        }
        out.push_str(&format!("{}: group {} to {} ({state})\n", g.source, g.group, g.target));
        let rows: Vec<Vec<String>> = g
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    opt(p.current),
                    p.target.to_string(),
                    signed(p.delta),
                    match (p.changes(), p.clamped) {
                        (_, Some("logStart")) => "clamped to the log start".to_owned(),
                        (_, Some(_)) => "clamped to the log end".to_owned(),
                        (false, None) => "unchanged".to_owned(),
                        (true, None) => String::new(),
                    },
                ]
            })
            .collect();
        out.push_str(&output::table(
            "  ",
            &["TOPIC", "PARTITION", "CURRENT", "TARGET", "DELTA", "NOTE"],
            &rows,
        ));
        if g.active() && g.changes() > 0 {
            out.push_str(&format!(
                "  ! group {} has {} member(s): apply refuses active groups; stop its consumers first\n",
                g.group, g.members
            ));
        }
        if let Some(note) = &g.note {
            out.push_str(&format!("  ! {note}\n"));
        }
        out.push('\n');
    }
    let changing: usize = plan.groups.iter().map(GroupPlan::changes).sum();
    let total: usize = plan.groups.iter().map(|g| g.partitions.len()).sum();
    if plan.changes {
        let groups = plan.groups.iter().filter(|g| g.changes() > 0).count();
        out.push_str(&format!(
            "Plan: {changing} partition(s) of {groups} group(s) to change, {} unchanged.\n",
            total - changing
        ));
    } else {
        out.push_str("No changes: the committed offsets already match.\n");
    }
    out
}

/// The offsets a plan commits, per group (only partitions that change).
pub fn commits(group: &GroupPlan) -> BTreeMap<kafka_group_operator::kafka::TopicPartition, i64> {
    group
        .partitions
        .iter()
        .filter(|p| p.changes())
        .map(|p| {
            (
                kafka_group_operator::kafka::TopicPartition::new(&p.topic, p.partition),
                p.target,
            )
        })
        .collect()
}

/// The committed offsets a plan replaces (partitions that change and had one), for the undo file.
pub fn previous(group: &GroupPlan) -> Vec<PartitionOffset> {
    group
        .partitions
        .iter()
        .filter(|p| p.changes())
        .filter_map(|p| {
            p.current.map(|offset| PartitionOffset {
                topic: p.topic.clone(),
                partition: p.partition,
                offset,
            })
        })
        .collect()
}
