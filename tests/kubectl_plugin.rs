//! The binary as a kubectl plugin, run through a real `kubectl` that finds `kubectl-kafkagroups` on PATH (a
//! symlink to the built binary, as krew installs it): `kubectl plugin list`, its `kubectl kafkagroups` usage,
//! `lag`, `plan`, `apply` and `export` with `--cluster NAME` resolved from a KafkaCluster of the kubeconfig's
//! current namespace (SASL_SSL with SCRAM, the CA and password from Secrets), `-n` and `--context` respected,
//! clear errors; krew installing the plugin from the manifest and the archive scripts/krew-release.sh builds;
//! and the printer columns of `kubectl get consumergroups` / `offsetresets` against golden files.

#[macro_use]
mod support;

use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic, TopicPartition};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::tools::{k8s_bin, k8s_tool, krew_bin};
use support::{ControlPlane, SecureKafka, unique_name};

const BINARY: &str = env!("CARGO_BIN_EXE_kafka-group-operator");

/// One run of a command.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The exit code must be `code`; an error must be one line on stderr.
    fn expect(self, code: i32, what: &str) -> Run {
        assert_eq!(
            self.code, code,
            "{what}: exit code {}, expected {code}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        if code == 1 {
            assert_eq!(
                self.stderr.trim_end().lines().count(),
                1,
                "{what}: one line: {}",
                self.stderr
            );
            assert!(self.stderr.starts_with("error: "), "{what}: {}", self.stderr);
        }
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// A user's machine: a directory on PATH holding `kubectl-kafkagroups` (a symlink to the built binary), kubectl,
/// an empty HOME, and a kubeconfig with contexts `team-a` (current, namespace `ns_a`) and `team-b` (`ns_b`).
struct Workstation {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    ns_a: String,
    ns_b: String,
}

impl Workstation {
    async fn new(control_plane: &ControlPlane, kube: &kube::Client) -> Workstation {
        let dir = tempfile::tempdir().expect("dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        std::os::unix::fs::symlink(BINARY, bin.join("kubectl-kafkagroups")).expect("symlink the plugin");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        let ns_a = control_plane.fresh_namespace(kube, "plugin-a").await;
        let ns_b = control_plane.fresh_namespace(kube, "plugin-b").await;
        // The admin kubeconfig, with two contexts made by kubectl itself.
        let kubeconfig = dir.path().join("config");
        let view = control_plane.kubectl(&["config", "view", "--raw"]);
        assert!(view.status.success(), "kubectl config view");
        std::fs::write(&kubeconfig, &view.stdout).expect("write kubeconfig");
        let ws = Workstation {
            dir,
            kubeconfig,
            ns_a,
            ns_b,
        };
        for (context, ns) in [("team-a", &ws.ns_a), ("team-b", &ws.ns_b)] {
            let namespace = format!("--namespace={ns}");
            ws.kubectl(&[
                "config",
                "set-context",
                context,
                "--cluster=kgo-test",
                "--user=kgo-admin",
                &namespace,
            ])
            .expect(0, "set-context");
        }
        ws.kubectl(&["config", "use-context", "team-a"])
            .expect(0, "use-context");
        ws
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The environment of a user's shell: PATH with the plugin and kubectl, KUBECONFIG, an empty HOME.
    fn command(&self, program: &Path, path_dirs: &[&Path]) -> Command {
        let mut cmd = Command::new(program);
        let path = std::env::join_paths(
            path_dirs
                .iter()
                .copied()
                .chain([Path::new("/usr/bin"), Path::new("/bin")]),
        )
        .expect("PATH");
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path().join("home"))
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// The real kubectl, finding the plugin on PATH.
    fn kubectl(&self, args: &[&str]) -> Run {
        let out = self
            .command(&k8s_tool("kubectl"), &[&self.bin(), k8s_bin()])
            .args(args)
            .output()
            .expect("run kubectl");
        Run::of(out)
    }

    /// `kubectl kafkagroups ARGS`.
    fn plugin(&self, args: &[&str]) -> Run {
        let mut all = vec!["kafkagroups"];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    fn apply_yaml(&self, yaml: &str) {
        let file = self.dir.path().join(format!("{}.yaml", unique_name("obj")));
        std::fs::write(&file, yaml).expect("write manifest");
        self.kubectl(&["apply", "-f", &file.display().to_string()])
            .expect(0, "kubectl apply");
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

fn client(bootstrap: &str) -> KafkaClient {
    KafkaClient::new(ClientConfig::new([bootstrap.to_owned()])).expect("client")
}

/// A 2-partition topic with 10 records per partition, and a group committed at 3 and 5.
async fn topic_and_group(secure: &SecureKafka) -> (String, String) {
    let bootstrap = secure.plaintext_bootstrap();
    let topic = unique_name("plugin");
    client(&bootstrap)
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .expect("create topic");
    for p in 0..2 {
        support::clients::produce_with_timestamps(&bootstrap, &topic, p, 10, 1_700_000_000_000, 1000);
    }
    let group = unique_name("plugin-group");
    let offsets = [(TopicPartition::new(&topic, 0), 3), (TopicPartition::new(&topic, 1), 5)]
        .into_iter()
        .collect();
    client(&bootstrap)
        .commit_offsets(&group, &offsets)
        .await
        .expect("commit");
    (topic, group)
}

async fn committed(secure: &SecureKafka, group: &str) -> BTreeMap<(String, i32), i64> {
    support::kafka::committed_by_partition(&client(&secure.plaintext_bootstrap()), group).await
}

async fn control_plane_with_crds() -> (&'static ControlPlane, kube::Client) {
    let control_plane = ControlPlane::shared();
    let kube = control_plane.client().await;
    support::crds::install(&kube).await;
    (control_plane, kube)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_finds_the_plugin_which_presents_itself_as_kubectl_kafkagroups() {
    let (control_plane, kube) = control_plane_with_crds().await;
    let ws = Workstation::new(control_plane, &kube).await;

    let list = ws.kubectl(&["plugin", "list"]).expect(0, "kubectl plugin list");
    let expected = ws.bin().join("kubectl-kafkagroups").display().to_string();
    assert!(list.stdout.lines().any(|l| l.trim() == expected), "{}", list.stdout);

    let help = ws.plugin(&["--help"]).expect(0, "kubectl kafkagroups --help");
    assert!(
        help.stdout.contains("Usage: kubectl kafkagroups [OPTIONS] <COMMAND>"),
        "{}",
        help.stdout
    );
    for command in ["lag", "plan", "apply", "export"] {
        assert!(
            help.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} listed: {}",
            help.stdout
        );
    }
    for operator_only in ["run ", "broker ", "crds "] {
        assert!(
            !help.stdout.lines().any(|l| l.trim_start().starts_with(operator_only)),
            "{operator_only}hidden: {}",
            help.stdout
        );
    }
    assert!(!help.stdout.contains("kafka-group-operator"), "{}", help.stdout);
    let lag_help = ws.plugin(&["lag", "--help"]).expect(0, "lag --help");
    assert!(
        lag_help.stdout.contains("Usage: kubectl kafkagroups lag [OPTIONS]"),
        "{}",
        lag_help.stdout
    );
    assert!(
        lag_help.stdout.contains("kubectl kafkagroups lag --cluster main"),
        "{}",
        lag_help.stdout
    );
    assert!(lag_help.stdout.contains("--context <CONTEXT>"), "{}", lag_help.stdout);
    assert!(
        lag_help.stdout.contains("-n, --namespace <NAMESPACE>"),
        "{}",
        lag_help.stdout
    );

    // The operator's own commands are not the plugin's; a usage error exits 1 (2 is plan's "changes").
    for args in [&["run"][..], &["help", "broker"], &["crds"]] {
        let run = ws.plugin(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        let name = args[args.len() - 1];
        assert!(
            run.stderr
                .contains(&format!("'{name}' is a command of the operator's binary")),
            "{}",
            run.stderr
        );
    }
    let version = ws.plugin(&["version"]).expect(0, "version");
    assert!(
        version.stdout.starts_with("kafka-group-operator "),
        "{}",
        version.stdout
    );

    // The same binary under its own name is still the operator's.
    let own = Run::of(Command::new(BINARY).arg("--help").output().expect("run binary"));
    assert!(own.stdout.contains("Usage: kafka-group-operator"), "{}", own.stdout);
    assert!(own.stdout.contains("  run "), "{}", own.stdout);
}

/// `--cluster NAME` for every command, from the current context's namespace: a SASL_SSL KafkaCluster whose CA
/// and SCRAM password are Secrets, read as the operator reads them.
#[tokio::test(flavor = "multi_thread")]
async fn lag_plan_apply_and_export_resolve_cluster_name_from_the_current_namespace() {
    let secure = SecureKafka::shared();
    let (topic, group) = topic_and_group(secure).await;
    let (control_plane, kube) = control_plane_with_crds().await;
    let ws = Workstation::new(control_plane, &kube).await;
    let user = secure.scram_sha_512_user();
    let ca = std::fs::read_to_string(secure.ca_pem()).expect("CA");
    let secret = |name: &str, key: &str, value: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ws.ns_a, "labels": {"kafkagroups.dev/credentials": "true"}},
            "stringData": {key: value},
        })
        .to_string()
    };
    ws.apply_yaml(&secret("kafka-ca", "ca.crt", &ca));
    ws.apply_yaml(&secret("kafka-password", "password", &user.password));
    ws.apply_yaml(&format!(
        "apiVersion: kafkagroups.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: main\n  namespace: {}\nspec:\n  bootstrapServers: [\"{}\"]\n  tls:\n    caSecretRef: {{name: kafka-ca, key: ca.crt}}\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: {}\n    passwordSecretRef: {{name: kafka-password, key: password}}\n",
        ws.ns_a,
        secure.sasl_ssl_bootstrap(),
        user.username
    ));

    let export = ws
        .plugin(&["export", "--group", &group, "--cluster", "main"])
        .expect(0, "export --cluster main");
    assert_eq!(export.stdout, format!("{topic},0,3\n{topic},1,5\n"));

    let lag = ws
        .plugin(&["lag", "--group", &group, "--cluster", "main", "-o", "json"])
        .expect(0, "lag --cluster main")
        .json();
    assert_eq!(lag["groups"][0]["group"], group.as_str(), "{lag}");
    assert_eq!(lag["groups"][0]["totalLag"].as_i64(), Some(7 + 5), "{lag}");

    let reset = ws.write(
        "rewind.yaml",
        &format!(
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata:\n  name: rewind\nspec:\n  clusterRef: {{name: main}}\n  groupId: {group}\n  topics: [{{name: {topic}}}]\n  to: {{offset: 1}}\n"
        ),
    );
    let plan = ws
        .plugin(&["plan", "-f", &reset, "--cluster", "main", "-o", "json"])
        .expect(2, "plan --cluster main: changes")
        .json();
    let targets: Vec<(Option<i64>, Option<i64>)> = plan["groups"][0]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| (p["current"].as_i64(), p["target"].as_i64()))
        .collect();
    assert_eq!(targets, [(Some(3), Some(1)), (Some(5), Some(1))], "{plan}");

    let undo = ws.dir.path().join("undo");
    let undo_dir = undo.display().to_string();
    ws.plugin(&[
        "apply",
        "-f",
        &reset,
        "--cluster",
        "main",
        "--yes",
        "--undo-dir",
        &undo_dir,
    ])
    .expect(0, "apply --cluster main");
    let now = committed(secure, &group).await;
    assert_eq!(now.values().copied().collect::<Vec<_>>(), [1, 1], "{now:?}");
    assert_eq!(std::fs::read_dir(&undo).expect("undo dir").count(), 1, "one undo file");
    ws.plugin(&["plan", "-f", &reset, "--cluster", "main"])
        .expect(0, "plan after apply: no change");

    // The operator's binary under its own name resolves names the same way.
    let own = Run::of(
        Command::new(BINARY)
            .args(["export", "--group", &group, "--cluster", "main", "--kubeconfig"])
            .arg(&ws.kubeconfig)
            .env_remove("KUBECONFIG")
            .env_remove("RUST_LOG")
            .output()
            .expect("run binary"),
    )
    .expect(0, "kafka-group-operator export --cluster main --kubeconfig");
    assert_eq!(own.stdout, format!("{topic},0,1\n{topic},1,1\n"));
}

/// `-n`, `--context`, a manifest file still accepted, and one-line errors: a missing KafkaCluster (name,
/// namespace and context), an embedded one, an unknown context, no kubeconfig at all.
#[tokio::test(flavor = "multi_thread")]
async fn namespace_and_context_are_respected_and_errors_say_what_to_fix() {
    let secure = SecureKafka::shared();
    let (topic, group) = topic_and_group(secure).await;
    let (control_plane, kube) = control_plane_with_crds().await;
    let ws = Workstation::new(control_plane, &kube).await;
    let plain = |name: &str, ns: &str| {
        format!(
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  bootstrapServers: [\"{}\"]\n",
            secure.plaintext_bootstrap()
        )
    };
    ws.apply_yaml(&plain("only-in-b", &ws.ns_b));
    ws.apply_yaml(&format!(
        "apiVersion: kafkagroups.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: local\n  namespace: {}\nspec:\n  embedded: {{}}\n",
        ws.ns_a
    ));
    let expected = format!("{topic},0,3\n{topic},1,5\n");

    let missing = ws
        .plugin(&["export", "--group", &group, "--cluster", "only-in-b"])
        .expect(1, "not in the current namespace");
    assert!(
        missing.stderr.contains(&format!(
            "KafkaCluster only-in-b not found in namespace {} (context team-a)",
            ws.ns_a
        )),
        "{}",
        missing.stderr
    );
    for args in [
        ["-n", ws.ns_b.as_str()],
        ["--namespace", ws.ns_b.as_str()],
        ["--context", "team-b"],
    ] {
        let mut all = vec!["export", "--group", &group, "--cluster", "only-in-b"];
        all.extend(args);
        let run = ws.plugin(&all).expect(0, &format!("export {args:?}"));
        assert_eq!(run.stdout, expected, "{args:?}");
    }
    let lag = ws
        .plugin(&[
            "lag",
            "-g",
            &group,
            "--cluster",
            "only-in-b",
            "--context",
            "team-b",
            "-o",
            "json",
        ])
        .expect(0, "lag --context team-b")
        .json();
    assert_eq!(lag["groups"][0]["totalLag"].as_i64(), Some(12), "{lag}");
    // -n wins over the context's namespace.
    let run = ws
        .plugin(&[
            "export",
            "-g",
            &group,
            "--cluster",
            "only-in-b",
            "--context",
            "team-b",
            "-n",
            &ws.ns_a,
        ])
        .expect(1, "-n over the context's namespace");
    assert!(
        run.stderr
            .contains(&format!("not found in namespace {} (context team-b)", ws.ns_a)),
        "{}",
        run.stderr
    );

    let embedded = ws
        .plugin(&["export", "--group", &group, "--cluster", "local"])
        .expect(1, "embedded");
    assert!(
        embedded.stderr.contains("is embedded") && embedded.stderr.contains("--bootstrap-server"),
        "{}",
        embedded.stderr
    );
    let context = ws
        .plugin(&["export", "--group", &group, "--cluster", "main", "--context", "nowhere"])
        .expect(1, "unknown context");
    assert!(
        context.stderr.contains("context nowhere is not in the kubeconfig"),
        "{}",
        context.stderr
    );

    // A manifest file, as before: an existing path is a file, not a name.
    let file = ws.write("plain.yaml", &plain("whatever", &ws.ns_b));
    let run = ws
        .plugin(&["export", "--group", &group, "--cluster", &file])
        .expect(0, "--cluster FILE");
    assert_eq!(run.stdout, expected);
    let typo = ws
        .plugin(&["export", "--group", &group, "--cluster", "absent.yaml"])
        .expect(1, "a missing file");
    assert!(
        typo.stderr.contains("--cluster absent.yaml: no such file"),
        "{}",
        typo.stderr
    );

    // No kubeconfig anywhere (no KUBECONFIG, an empty HOME, not in a cluster).
    let mut cmd = ws.command(&ws.bin().join("kubectl-kafkagroups"), &[]);
    cmd.env_remove("KUBECONFIG")
        .args(["export", "--group", &group, "--cluster", "main"]);
    let none = Run::of(cmd.output().expect("run plugin")).expect(1, "no kubeconfig");
    assert!(
        none.stderr.contains("no kubeconfig and not running in a cluster"),
        "{}",
        none.stderr
    );
}

/// krew (built from its Go module) installs the plugin from the repository's manifest and the archive
/// scripts/krew-release.sh builds, and kubectl then finds `kubectl kafkagroups` in $KREW_ROOT/bin.
#[tokio::test(flavor = "multi_thread")]
async fn krew_installs_the_plugin_from_the_manifest_and_the_release_archive() {
    let krew_bin = krew_bin();
    assert!(
        krew_bin.join("kubectl-krew").is_file(),
        "no kubectl-krew in {}",
        krew_bin.display()
    );
    let (control_plane, kube) = control_plane_with_crds().await;
    let ws = Workstation::new(control_plane, &kube).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    // The release binary stands in for a stripped copy of the test build (same program, smaller archive).
    let stripped = ws.dir.path().join("kafka-group-operator");
    let strip = support::tools::system_tool("strip", "install binutils (Debian: binutils)");
    let out = Command::new(strip)
        .arg("-o")
        .arg(&stripped)
        .arg(BINARY)
        .output()
        .expect("run strip");
    assert!(out.status.success(), "strip: {}", String::from_utf8_lossy(&out.stderr));
    let dist = ws.dir.path().join("dist");
    let out = Command::new("bash")
        .arg(root.join("scripts/krew-release.sh"))
        .args(["0.1.0", &dist.display().to_string()])
        .arg(format!("linux/amd64={}", stripped.display()))
        .output()
        .expect("run krew-release.sh");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "krew-release.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = dist.join("kubectl-kafkagroups-v0.1.0-linux-amd64.tar.gz");
    let sum = sha256(&archive);
    assert_eq!(printed.trim(), format!("{sum}  {}", archive.display()));

    // The generated manifest differs from the repository's only in this archive's sha256.
    let manifest = dist.join("kafkagroups.yaml");
    let generated = std::fs::read_to_string(&manifest).expect("manifest");
    let template = std::fs::read_to_string(root.join("plugins/krew/kafkagroups.yaml")).expect("template");
    assert_eq!(generated.replacen(&sum, &"0".repeat(64), 1), template);
    let doc: Value = serde_saphyr::from_str(&generated).expect("manifest YAML");
    assert_eq!(doc["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(doc["kind"], "Plugin");
    assert_eq!(doc["metadata"]["name"], "kafkagroups");
    let platforms = doc["spec"]["platforms"].as_array().expect("platforms");
    let mut selectors: Vec<String> = platforms
        .iter()
        .map(|p| {
            let labels = &p["selector"]["matchLabels"];
            assert_eq!(p["bin"], "kubectl-kafkagroups", "{p}");
            assert_eq!(p["files"][0]["from"], "kubectl-kafkagroups", "{p}");
            let (os, arch) = (
                labels["os"].as_str().expect("os"),
                labels["arch"].as_str().expect("arch"),
            );
            assert!(
                p["uri"]
                    .as_str()
                    .expect("uri")
                    .ends_with(&format!("/v0.1.0/kubectl-kafkagroups-v0.1.0-{os}-{arch}.tar.gz")),
                "{p}"
            );
            format!("{os}/{arch}")
        })
        .collect();
    selectors.sort();
    assert_eq!(
        selectors,
        ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"]
    );

    // krew itself: install offline from the manifest and the archive into a fresh KREW_ROOT.
    let krew_root = ws.dir.path().join("krew");
    let path_dirs = [krew_root.join("bin"), krew_bin.to_owned(), k8s_bin().to_owned()];
    let dirs: Vec<&Path> = path_dirs.iter().map(PathBuf::as_path).collect();
    let kubectl = |args: &[&str]| {
        Run::of(
            ws.command(&k8s_tool("kubectl"), &dirs)
                .env("KREW_ROOT", &krew_root)
                .args(args)
                .output()
                .expect("run kubectl"),
        )
    };
    let install = kubectl(&[
        "krew",
        "install",
        &format!("--manifest={}", manifest.display()),
        &format!("--archive={}", archive.display()),
    ]);
    assert_eq!(install.code, 0, "krew install:\n{}\n{}", install.stdout, install.stderr);
    let installed = krew_root.join("bin/kubectl-kafkagroups");
    assert!(installed.exists(), "{} after krew install", installed.display());
    // krew's receipt of the install (`krew list` needs the index, which an offline install has not fetched).
    let receipt = krew_root.join("receipts/kafkagroups.yaml");
    let receipt = std::fs::read_to_string(&receipt).unwrap_or_else(|e| panic!("{}: {e}", receipt.display()));
    assert!(receipt.contains("name: kafkagroups"), "{receipt}");
    let help = kubectl(&["kafkagroups", "--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(help.stdout.contains("Usage: kubectl kafkagroups"), "{}", help.stdout);
    let plugins = kubectl(&["plugin", "list"]);
    assert!(
        plugins.stdout.contains(&installed.display().to_string()),
        "{}",
        plugins.stdout
    );
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sum")
        .to_owned()
}

/// `kubectl get consumergroups` and `offsetresets` (and `-o wide`) from the real API server, with statuses
/// written through the status subresource (nothing reconciles these namespaces' objects here), against
/// tests/golden/*.txt; only the date columns (AGE, TIME LAG) are normalised.
/// `UPDATE_GOLDEN=1 cargo test --test kubectl_plugin printer_columns` rewrites the files after a deliberate change.
#[tokio::test(flavor = "multi_thread")]
async fn printer_columns_match_the_golden_files() {
    let (control_plane, kube) = control_plane_with_crds().await;
    let ws = Workstation::new(control_plane, &kube).await;
    let ns = &ws.ns_a;
    let condition = |status: &str, reason: &str| {
        serde_json::json!([{"type": "Ready", "status": status, "reason": reason, "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    };
    let groups = [
        (
            "billing",
            "orders",
            serde_json::json!({"groupId": "billing-v2", "protocol": "consumer", "state": "Stable", "members": 3,
                "totalLag": 1200, "oldestUnconsumedRecord": "2026-01-01T00:00:00Z", "lagStatus": "WARN",
                "currentReplicas": 3, "desiredReplicas": 4, "conditions": condition("True", "Observed")}),
        ),
        (
            "audit",
            "orders",
            serde_json::json!({"groupId": "audit", "protocol": "classic", "state": "Empty", "members": 0,
                "totalLag": 0, "lagStatus": "OK", "conditions": condition("True", "Observed")}),
        ),
        (
            "unreachable",
            "legacy",
            serde_json::json!({"conditions": condition("False", "ClusterNotReady")}),
        ),
        ("fresh", "orders", Value::Null),
    ];
    for (name, cluster, status) in &groups {
        ws.apply_yaml(&format!(
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: ConsumerGroup\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  clusterRef: {{name: {cluster}}}\n  topics: [orders]\n"
        ));
        if !status.is_null() {
            patch_status(&ws, ns, "consumergroup", name, status);
        }
    }
    let resets = [
        (
            "billing-rewind-20260101",
            serde_json::json!({"phase": "Succeeded", "groupId": "billing-v2", "target": "earliest", "partitions": 6}),
        ),
        (
            "audit-shift",
            serde_json::json!({"phase": "WaitingForInactive", "groupId": "audit", "target": "shiftBy -100",
                "partitions": 3}),
        ),
        ("just-created", Value::Null),
    ];
    for (name, status) in &resets {
        ws.apply_yaml(&format!(
            "apiVersion: kafkagroups.dev/v1alpha1\nkind: OffsetReset\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  groupRef: {{name: billing}}\n  to: {{earliest: {{}}}}\n"
        ));
        if !status.is_null() {
            patch_status(&ws, ns, "offsetreset", name, status);
        }
    }
    for (resource, file) in [("consumergroups", "consumergroups"), ("offsetresets", "offsetresets")] {
        for wide in [false, true] {
            let mut args = vec!["get", resource, "-n", ns.as_str(), "--sort-by=.metadata.name"];
            if wide {
                args.extend(["-o", "wide"]);
            }
            let run = ws.kubectl(&args).expect(0, "kubectl get");
            let table = normalise_dates(&run.stdout, &["AGE", "TIME LAG"]);
            let name = if wide {
                format!("{file}_wide.txt")
            } else {
                format!("{file}.txt")
            };
            golden(&name, &table);
        }
    }
}

fn patch_status(ws: &Workstation, ns: &str, kind: &str, name: &str, status: &Value) {
    let patch = serde_json::json!({ "status": status }).to_string();
    ws.kubectl(&[
        "patch",
        kind,
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
    .expect(0, &format!("patch the status of {kind} {name}"));
}

/// kubectl's table with the cells of the named date columns (relative times) replaced by `<age>` (an absent
/// value, an empty cell, is kept), re-aligned as kubectl aligns (3 spaces between columns).
fn normalise_dates(table: &str, date_columns: &[&str]) -> String {
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    // Column starts: where a header name begins after two or more spaces (names such as `TIME LAG` have one).
    let mut starts = vec![0];
    let bytes = header.as_bytes();
    for i in 2..bytes.len() {
        if bytes[i] != b' ' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let cells = |line: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(n, &start)| {
                let end = starts.get(n + 1).copied().unwrap_or(line.len()).min(line.len());
                line.get(start.min(line.len())..end).unwrap_or("").trim().to_owned()
            })
            .collect()
    };
    let names = cells(header);
    let mut rows = vec![names.clone()];
    for line in lines {
        let mut row = cells(line);
        for (cell, name) in row.iter_mut().zip(&names) {
            if date_columns.contains(&name.as_str()) && !cell.is_empty() && cell != "<none>" {
                let (number, unit) = cell.split_at(cell.len() - 1);
                assert!(
                    "smhdy".contains(unit) && !number.is_empty() && number.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{name} is not a relative time: {cell:?}\n{table}"
                );
                *cell = "<age>".to_owned();
            }
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..names.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[c] - cell.len() + 3));
                }
            }
            line.trim_end().to_owned() + "\n"
        })
        .collect()
}

fn golden(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).expect("write the golden file");
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        text,
        golden,
        "kubectl get output changed: compare with {}",
        path.display()
    );
}
