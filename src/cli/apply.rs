//! `apply`: commits what `plan` shows, for groups without members only (the command line cannot scale
//! workloads the way the operator's ScaleDown strategy does). Before committing it writes the offsets it
//! replaces to an undo file that `apply --from-file` restores, then prints each partition before and after.

use super::connect::ConnectArgs;
use super::export;
use super::plan::{self, GroupPlan, PlanSource};
use anyhow::{Result, anyhow, bail};
use clap::Args;
use kafka_group_operator::kafka::{KafkaError, TopicPartition};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub source: PlanSource,
    /// Apply without asking (pipelines). Without it, apply asks on the terminal and accepts only `yes`.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Directory for the undo files: one per group, `<group>-<UTC time>.undo.csv`, holding the offsets
    /// the apply replaces (restore them with `apply --group G --from-file FILE`).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub undo_dir: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: ApplyArgs) -> Result<ExitCode> {
    let requests = plan::load(&args.source)?;
    let client = args.connect.client().await?;
    let ledgers = super::ledger::Ledgers::for_connection(&args.connect).await?;
    let plan = plan::build(&client, &ledgers, &requests, args.source.unstable_offset_wait).await?;
    print!("{}", plan::render_table(&plan));
    if !plan.changes {
        return Ok(ExitCode::SUCCESS);
    }
    let changing: Vec<&GroupPlan> = plan.groups.iter().filter(|g| g.changes() > 0).collect();
    if let Some(active) = changing.iter().find(|g| g.active()) {
        bail!(
            "group {} has {} member(s) ({}): apply only changes groups without members and cannot stop consumers outside Kubernetes; stop them (or let the operator do it with an OffsetReset, strategy ScaleDown) and run apply again. Nothing was changed.",
            active.group,
            active.members,
            active.state
        );
    }
    if !args.yes {
        confirm()?;
    }
    std::fs::create_dir_all(&args.undo_dir)
        .map_err(|e| anyhow!("cannot create --undo-dir {}: {e}", args.undo_dir.display()))?;
    let stamp = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    for group in changing {
        let undo = undo_file(&args.undo_dir, &group.group, &stamp);
        let previous = plan::previous(group);
        if !previous.is_empty() {
            export::write_file(&undo, &export::to_csv(&previous))?;
        }
        let commits = plan::commits(group);
        let share = group.group_type == "share";
        let committed = if share {
            client.alter_share_group_offsets(&group.group, &commits).await
        } else {
            // An OffsetReset manifest's commit carries its record, as the operator's does (`cli::ledger`).
            let metadata = group
                .record
                .as_ref()
                .map(|r| r.to_commit_metadata())
                .unwrap_or_default();
            client
                .commit_offsets_with_metadata(&group.group, &commits, &metadata)
                .await
        };
        match committed {
            Ok(()) => {}
            Err(e @ KafkaError::GroupNotEmpty { .. }) => bail!("{e}; nothing was committed for this group"),
            Err(e) => return Err(super::kafka_error(e, "").context(format!("committing group {}", group.group))),
        }
        let after = if share {
            plan::share_offsets(&client, &group.group).await?
        } else {
            client
                .group_offsets(&group.group)
                .await
                .map_err(|e| super::kafka_error(e, ""))?
        };
        print!("{}", before_after(group, &commits, &after));
        if previous.is_empty() {
            println!("No undo file: none of these partitions had a committed offset before.");
        } else {
            println!(
                "Undo: kafka-group-operator apply --group {} --from-file {}",
                group.group,
                undo.display()
            );
        }
        let new_partitions = group.partitions.iter().filter(|p| p.current.is_none()).count();
        if new_partitions > 0 && !previous.is_empty() {
            println!(
                "  ({new_partitions} partition(s) had no committed offset before: an undo leaves them where they are now)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn undo_file(dir: &Path, group: &str, stamp: &str) -> PathBuf {
    let safe: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}-{stamp}.undo.csv"))
}

/// Asks on the terminal; anything but `yes` stops.
fn confirm() -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal, so apply cannot ask: pass --yes to apply without confirmation");
    }
    print!("Apply these changes? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("apply cancelled: nothing was changed");
    }
    Ok(())
}

fn before_after(
    group: &GroupPlan,
    commits: &BTreeMap<TopicPartition, i64>,
    after: &kafka_group_operator::kafka::GroupOffsets,
) -> String {
    let rows: Vec<Vec<String>> = group
        .partitions
        .iter()
        .filter(|p| p.changes())
        .map(|p| {
            let tp = TopicPartition::new(&p.topic, p.partition);
            let now = after.get(&tp).map(|c| c.offset);
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                super::output::opt(p.current),
                super::output::opt(now),
                if now == commits.get(&tp).copied() {
                    String::new()
                } else {
                    format!("expected {}", p.target)
                },
            ]
        })
        .collect();
    format!(
        "Applied to group {}:\n{}",
        group.group,
        super::output::table("  ", &["TOPIC", "PARTITION", "BEFORE", "AFTER", "NOTE"], &rows)
    )
}
