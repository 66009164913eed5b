//! The manifests in examples/ are what users apply first: each says what it shows, together they cover every
//! OffsetReset target (each as a dry run) and a transactional workload scaled on its consumable lag, and the
//! real API server accepts every one of them (server-side dry run, then for real) with the CRDs as generated.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::ControlPlane;
use support::scenario::Scenario;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "examples/ has only {files:?}");
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read example");
    text.split("\n---")
        .filter_map(|doc| {
            let v: Value =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            (!v.is_null()).then_some(v)
        })
        .collect()
}

#[test]
fn every_example_says_what_it_shows() {
    for path in examples() {
        let text = std::fs::read_to_string(&path).expect("read example");
        let comment: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        assert!(
            comment.join(" ").len() > 40,
            "{} must start with a comment saying what it shows",
            path.display()
        );
    }
}

#[test]
fn the_examples_cover_both_kinds_of_cluster_and_every_reset_target_as_a_dry_run() {
    let docs: Vec<Value> = examples().iter().flat_map(|p| documents(p)).collect();
    let clusters: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "KafkaCluster").collect();
    assert!(
        clusters.iter().any(|c| c["spec"]["embedded"].is_object()),
        "an embedded KafkaCluster"
    );
    assert!(
        clusters.iter().any(|c| c["spec"]["sasl"]["mechanism"]
            .as_str()
            .is_some_and(|m| m.starts_with("SCRAM"))),
        "an external KafkaCluster with SCRAM"
    );
    let groups: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ConsumerGroup").collect();
    assert!(
        groups.iter().any(|g| g["spec"]["lagBudget"].is_object()),
        "a ConsumerGroup with a lag budget"
    );
    assert!(
        groups.iter().any(|g| g["spec"]["scaling"].is_object()),
        "a ConsumerGroup that scales"
    );
    assert!(
        groups.iter().any(|g| g["spec"]["config"].is_object()),
        "a ConsumerGroup that declares group configs"
    );
    assert!(
        groups
            .iter()
            .any(|g| g["spec"]["isolation"] == "readCommitted" && g["spec"]["scaling"]["minReplicas"] == 0),
        "a transactional (readCommitted) ConsumerGroup scaled on its consumable lag down to zero"
    );
    assert!(
        groups
            .iter()
            .any(|g| g["spec"]["type"] == "share" && g["spec"]["scaling"].is_object()),
        "a share group that scales"
    );
    let resets: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "OffsetReset").collect();
    assert!(
        resets.iter().any(|r| r["spec"]["groupType"] == "share"),
        "an OffsetReset of a share group"
    );
    for target in [
        "earliest",
        "latest",
        "offset",
        "timestamp",
        "duration",
        "shiftBy",
        "partitions",
        "previousOf",
    ] {
        assert!(
            resets.iter().any(|r| !r["spec"]["to"][target].is_null()),
            "no OffsetReset example with to.{target}"
        );
    }
    for r in resets {
        assert_eq!(
            r["spec"]["dryRun"], true,
            "{}: examples only plan",
            r["metadata"]["name"]
        );
    }
}

#[tokio::test]
async fn the_api_server_accepts_every_example_dry_run_then_for_real() {
    let cp = ControlPlane::shared();
    let (_client, ns) = Scenario::namespace("examples").await;
    for path in examples() {
        let file = path.to_str().expect("utf-8 path");
        for dry_run in [true, false] {
            let mut args = vec!["apply", "--server-side", "-n", ns.as_str(), "-f", file];
            if dry_run {
                args.push("--dry-run=server");
            }
            let out = cp.kubectl(&args);
            assert!(
                out.status.success(),
                "the API server refused {} (dry run: {dry_run}):\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Every object of the file now exists.
        for doc in documents(&path) {
            let kind = doc["kind"].as_str().expect("kind").to_lowercase();
            let name = doc["metadata"]["name"].as_str().expect("name");
            let resource = if doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("kafkagroups.dev/"))
            {
                format!("{kind}.kafkagroups.dev")
            } else {
                kind
            };
            let out = cp.kubectl(&["get", &resource, name, "-n", &ns, "-o", "name"]);
            assert!(
                out.status.success(),
                "{resource}/{name} from {} is not there: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
