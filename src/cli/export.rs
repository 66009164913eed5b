//! `export`, and the offsets files of `apply --from-file`: `topic,partition,offset` lines, the format of
//! `kafka-consumer-groups --reset-offsets --from-file` (and of its `--export`); `group,topic,partition,offset`
//! lines, what that tool exports for several groups, are read too.

use super::connect::ConnectArgs;
use anyhow::{Result, anyhow, bail};
use clap::Args;
use kafka_group_operator::api::reset::PartitionOffset;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The group whose committed offsets to export.
    #[arg(long, short = 'g')]
    pub group: String,
    /// Only these topics (repeat for several). Default: every topic the group committed on.
    #[arg(long, short = 't')]
    pub topic: Vec<String>,
    /// Write to this file instead of stdout.
    #[arg(long = "output-file", short = 'O', value_name = "CSV")]
    pub output_file: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: ExportArgs) -> Result<ExitCode> {
    let client = args.connect.client().await?;
    let (description, committed) = tokio::join!(client.describe_group(&args.group), client.group_offsets(&args.group));
    let description = description.map_err(|e| super::kafka_error(e, ""))?;
    let committed = committed.map_err(|e| super::kafka_error(e, ""))?;
    if committed.is_empty() {
        if description.exists() {
            bail!(
                "group {} has no committed offsets ({}, {} member(s)): nothing to export",
                args.group,
                description.state,
                description.members.len()
            );
        }
        bail!(
            "unknown group {}: no members and no committed offsets on this cluster (check the name; `lag --all` lists every group)",
            args.group
        );
    }
    if let Some(missing) = args.topic.iter().find(|t| !committed.keys().any(|tp| *tp.topic == **t)) {
        bail!("group {} has no committed offsets on topic {missing}", args.group);
    }
    let offsets: Vec<PartitionOffset> = committed
        .iter()
        .filter(|(tp, _)| args.topic.is_empty() || args.topic.iter().any(|t| **t == *tp.topic))
        .map(|(tp, c)| PartitionOffset {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            offset: c.offset,
        })
        .collect();
    let text = to_csv(&offsets);
    match &args.output_file {
        Some(path) => {
            write_file(path, &text)?;
            eprintln!(
                "Exported {} offset(s) of group {} to {}",
                offsets.len(),
                args.group,
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `topic,partition,offset` lines.
pub fn to_csv(offsets: &[PartitionOffset]) -> String {
    offsets
        .iter()
        .map(|o| format!("{},{},{}\n", o.topic, o.partition, o.offset))
        .collect()
}

pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// The offsets in `path` by group: `topic,partition,offset` lines belong to `group`, `group,topic,partition,offset`
/// lines to their own. Blank lines are skipped.
pub fn read_csv(path: &Path, group: Option<&str>) -> Result<BTreeMap<String, Vec<PartitionOffset>>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    parse_csv(&path.display().to_string(), &text, group)
}

pub fn parse_csv(name: &str, text: &str, group: Option<&str>) -> Result<BTreeMap<String, Vec<PartitionOffset>>> {
    let mut out: BTreeMap<String, Vec<PartitionOffset>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{name} line {}", i + 1);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (owner, topic, partition, offset) = match fields.as_slice() {
            [t, p, o] => {
                let g = group.ok_or_else(|| {
                    anyhow!(
                        "{}: topic,partition,offset lines need --group to say whose offsets they are",
                        at()
                    )
                })?;
                (g.to_owned(), *t, *p, *o)
            }
            [g, t, p, o] => ((*g).to_owned(), *t, *p, *o),
            _ => bail!("{}: expected topic,partition,offset, found {line:?}", at()),
        };
        let partition: i32 = partition
            .parse()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| anyhow!("{}: partition {partition:?} is not a partition number", at()))?;
        let offset: i64 = offset
            .parse()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| anyhow!("{}: offset {offset:?} is not an offset (a number, 0 or more)", at()))?;
        if topic.is_empty() {
            bail!("{}: the topic is empty", at());
        }
        let offsets = out.entry(owner.clone()).or_default();
        if offsets.iter().any(|o| o.topic == topic && o.partition == partition) {
            bail!(
                "{}: partition {partition} of {topic} is listed twice for group {owner}",
                at()
            );
        }
        offsets.push(PartitionOffset {
            topic: topic.to_owned(),
            partition,
            offset,
        });
    }
    if out.is_empty() {
        bail!("{name}: no offsets: expected topic,partition,offset lines");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn po(topic: &str, partition: i32, offset: i64) -> PartitionOffset {
        PartitionOffset {
            topic: topic.to_owned(),
            partition,
            offset,
        }
    }

    #[test]
    fn csv_round_trips() {
        let offsets = vec![po("orders", 0, 12), po("orders", 1, 0)];
        let text = to_csv(&offsets);
        assert_eq!(text, "orders,0,12\norders,1,0\n");
        let back = parse_csv("f", &text, Some("g")).expect("parse");
        assert_eq!(back, BTreeMap::from([("g".to_owned(), offsets)]));
    }

    #[test]
    fn lines_with_a_group_column_name_their_group() {
        let back = parse_csv("f", "a,t,0,5\n\nb,t,1,7\n", None).expect("parse");
        assert_eq!(back["a"], vec![po("t", 0, 5)]);
        assert_eq!(back["b"], vec![po("t", 1, 7)]);
    }

    #[test]
    fn bad_lines_say_where_and_what() {
        let err = parse_csv("f.csv", "t,0,5\nt,x,5\n", Some("g")).expect_err("bad partition");
        assert_eq!(
            err.to_string(),
            "f.csv line 2: partition \"x\" is not a partition number"
        );
        let err = parse_csv("f.csv", "t,0,5\n", None).expect_err("no group");
        assert!(err.to_string().contains("need --group"), "{err}");
        let err = parse_csv("f.csv", "t,0,5\nt,0,6\n", Some("g")).expect_err("twice");
        assert_eq!(
            err.to_string(),
            "f.csv line 2: partition 0 of t is listed twice for group g"
        );
        let err = parse_csv("f.csv", "t;0;5\n", Some("g")).expect_err("format");
        assert!(err.to_string().contains("expected topic,partition,offset"), "{err}");
    }
}
