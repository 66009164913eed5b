//! Manifests on disk: multi-document YAML files (or directories of them) holding our kinds, checked as the
//! API server would check the parts that planning relies on, with one-line errors that say what to fix.

use anyhow::{Result, anyhow, bail};
use kafka_group_operator::api::{ConsumerGroup, GROUP, KafkaCluster, OffsetReset};
use std::path::{Path, PathBuf};

const API_VERSION: &str = "kafkagroups.dev/v1alpha1";

/// One of our resources, read from `source` (`file` or `file#N` for the N-th document).
#[derive(Clone, Debug)]
pub enum Manifest {
    Reset {
        source: String,
        reset: Box<OffsetReset>,
    },
    Group {
        source: String,
        group: Box<ConsumerGroup>,
    },
    /// A KafkaCluster: connection settings, not something to plan.
    Cluster,
}

/// Reads every document of every file (a directory: its `.yaml`/`.yml` files, sorted by name).
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| anyhow!("cannot read directory {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{}: no .yaml or .yml files in this directory", path.display());
            }
            for f in files {
                out.extend(read_file(&f)?);
            }
        } else {
            out.extend(read_file(path)?);
        }
    }
    Ok(out)
}

/// The documents of one file.
pub fn read_file(path: &Path) -> Result<Vec<Manifest>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Parses a multi-document YAML stream.
pub fn parse(name: &str, text: &str) -> Result<Vec<Manifest>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| anyhow!("{name}: not valid YAML: {}", one_line(&e.to_string())))?;
    let docs: Vec<serde_json::Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.is_empty() {
        bail!("{name}: no documents: expected OffsetReset or ConsumerGroup manifests ({API_VERSION})");
    }
    let many = docs.len() > 1;
    docs.into_iter()
        .enumerate()
        .map(|(i, doc)| {
            let source = if many {
                format!("{name}#{}", i + 1)
            } else {
                name.to_owned()
            };
            typed(source, doc)
        })
        .collect()
}

fn typed(source: String, doc: serde_json::Value) -> Result<Manifest> {
    let text = |key: &str| doc.get(key).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let (api_version, kind) = (api_version.as_str(), kind.as_str());
    if api_version.split('/').next() != Some(GROUP) || kind.is_empty() {
        let what = if kind.is_empty() {
            "a document without apiVersion/kind".to_owned()
        } else {
            format!("a {kind} ({api_version})")
        };
        bail!("{source}: {what} is not one of ours: expected an OffsetReset or ConsumerGroup of {API_VERSION}");
    }
    if api_version != API_VERSION {
        bail!("{source}: {kind} has apiVersion {api_version}: this version understands {API_VERSION}");
    }
    let invalid = |e: serde_json::Error| anyhow!("{source}: invalid {kind}: {}", one_line(&e.to_string()));
    match kind {
        "OffsetReset" => {
            let reset: OffsetReset = serde_json::from_value(doc).map_err(invalid)?;
            check_reset(&source, &reset)?;
            Ok(Manifest::Reset {
                source,
                reset: Box::new(reset),
            })
        }
        "ConsumerGroup" => {
            let group: ConsumerGroup = serde_json::from_value(doc).map_err(invalid)?;
            Ok(Manifest::Group {
                source,
                group: Box::new(group),
            })
        }
        "KafkaCluster" => {
            let _: KafkaCluster = serde_json::from_value(doc).map_err(invalid)?;
            Ok(Manifest::Cluster)
        }
        other => bail!("{source}: kind {other} is not one of ours: expected OffsetReset or ConsumerGroup"),
    }
}

/// The rules of the CRD's CEL validation that planning depends on.
fn check_reset(source: &str, reset: &OffsetReset) -> Result<()> {
    let name = reset.metadata.name.as_deref().unwrap_or("");
    let to = &reset.spec.to;
    let targets = [
        to.earliest.is_some(),
        to.latest.is_some(),
        to.offset.is_some(),
        to.timestamp.is_some(),
        to.duration.is_some(),
        to.shift_by.is_some(),
        to.partitions.is_some(),
        to.previous_of.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if targets != 1 {
        bail!(
            "{source}: OffsetReset {name}: spec.to needs exactly one target: earliest, latest, offset, timestamp, duration, shiftBy, partitions or previousOf"
        );
    }
    if to.offset.is_some_and(|o| o < 0) {
        bail!("{source}: OffsetReset {name}: offset must not be negative: use shiftBy to move back");
    }
    let spec = &reset.spec;
    if spec.group_ref.is_some() == (spec.cluster_ref.is_some() || spec.group_id.is_some()) {
        bail!(
            "{source}: OffsetReset {name}: name the group either with groupRef (a ConsumerGroup) or with clusterRef and groupId"
        );
    }
    if spec.group_ref.is_none() && spec.group_id.as_deref().is_none_or(str::is_empty) {
        bail!("{source}: OffsetReset {name}: clusterRef and groupId go together");
    }
    Ok(())
}

/// A KafkaCluster manifest (`--cluster`): the file must hold exactly one.
pub fn read_cluster(path: &Path) -> Result<KafkaCluster> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let name = path.display().to_string();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow!("{name}: not valid YAML: {}", one_line(&e.to_string())))?;
    let mut clusters = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc.get("kind").and_then(|k| k.as_str()) == Some("KafkaCluster")
            && doc.get("apiVersion").and_then(|k| k.as_str()) == Some(API_VERSION)
        {
            let cluster: KafkaCluster = serde_json::from_value(doc)
                .map_err(|e| anyhow!("{name}: invalid KafkaCluster: {}", one_line(&e.to_string())))?;
            clusters.push(cluster);
        }
    }
    match clusters.len() {
        1 => Ok(clusters.remove(0)),
        0 => bail!("{name}: no KafkaCluster ({API_VERSION}) in this file"),
        n => bail!("{name}: {n} KafkaClusters in this file: --cluster needs a file with exactly one"),
    }
}

/// Error texts of parsers can span lines (a caret under the column): the command line prints one.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_streams_yield_each_of_our_kinds() {
        let text = "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata: {name: r}\nspec:\n  clusterRef: {name: main}\n  groupId: g\n  to: {earliest: {}}\n---\napiVersion: kafkagroups.dev/v1alpha1\nkind: ConsumerGroup\nmetadata: {name: g}\nspec:\n  clusterRef: {name: main}\n  topics: [t]\n  offsetInit: {policy: latest}\n";
        let docs = parse("m.yaml", text).expect("parse");
        assert!(matches!(&docs[0], Manifest::Reset { source, .. } if source == "m.yaml#1"));
        assert!(matches!(&docs[1], Manifest::Group { source, .. } if source == "m.yaml#2"));
    }

    #[test]
    fn invalid_yaml_is_one_line_naming_the_file() {
        let err = parse("bad.yaml", "kind: [unclosed\n  x: {").expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("bad.yaml: not valid YAML"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn other_kinds_are_refused_with_what_was_found() {
        let err = parse("d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n").expect_err("kind");
        assert!(
            err.to_string().contains("a Deployment (apps/v1) is not one of ours"),
            "{err}"
        );
    }

    #[test]
    fn a_reset_needs_exactly_one_target() {
        let text = "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata: {name: r}\nspec:\n  clusterRef: {name: main}\n  groupId: g\n  to: {earliest: {}, latest: {}}\n";
        let err = parse("r.yaml", text).expect_err("two targets");
        assert!(err.to_string().contains("exactly one target"), "{err}");
    }
}
