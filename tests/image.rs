//! The container image: the Dockerfile passes hadolint, builds unchanged with buildah (no Docker engine here),
//! and the image runs read-only as non-root: `--version`, and a start against the test control plane that
//! reconciles a KafkaCluster. Prints the image's size.
//!
//! Base images cannot be pulled here, so `scripts/provision-image.sh` builds local stand-ins under the upstream
//! names (`rust:1.95-bookworm`, `gcr.io/distroless/cc-debian12:nonroot`) from a Debian 12 rootfs. The build
//! stand-in has no Rust toolchain: its `cargo` installs the binary this test mounts at /prebuilt (the test's own
//! build, or `KGO_IMAGE_BINARY`, e.g. target/release/kafka-group-operator), so the test does not spend minutes
//! on a second release build on 2 cores. A user's `docker build .` runs the real cargo in the real rust image.

mod support;

use kafka_group_operator::api::KafkaCluster;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::process::free_port;
use support::scenario::{Scenario, resource};
use support::tools::image_tools;
use support::wait::{has_condition, until};
use support::{ApacheKafka, ControlPlane};

const IMAGE: &str = "localhost/kafka-group-operator:test";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// buildah, podman or skopeo with this machine's containers.conf and the overlay driver.
fn tool(name: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(name);
    cmd.env("CONTAINERS_CONF", image_tools().join("containers.conf"));
    if name != "skopeo" {
        cmd.arg("--storage-driver=overlay");
    }
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{name}` could not run ({e}): run `bash scripts/provision-image.sh`"))
}

fn tool_ok(name: &str, args: &[&str]) -> String {
    let out = tool(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = Command::new(image_tools().join("hadolint"))
        .arg(repo().join("Dockerfile"))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint Dockerfile:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The binary the build stand-in installs: `KGO_IMAGE_BINARY`, else the one cargo built for this test run.
fn prebuilt_binary() -> PathBuf {
    match std::env::var("KGO_IMAGE_BINARY") {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => support::operator::binary(),
    }
}

/// A kubeconfig with the admin credentials inline, readable by the image's user 65532.
fn inline_kubeconfig(cp: &ControlPlane, dir: &Path) {
    use base64::Engine as _;
    let b64 = |p: PathBuf| {
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
    };
    let original = std::fs::read_to_string(cp.kubeconfig()).expect("read kubeconfig");
    let path_of = |key: &str| {
        original
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")).map(PathBuf::from))
            .unwrap_or_else(|| panic!("no {key} in the test kubeconfig"))
    };
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
         users:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        cp.server(),
        b64(path_of("certificate-authority")),
        b64(path_of("client-certificate")),
        b64(path_of("client-key")),
    );
    let file = dir.join("kubeconfig");
    std::fs::write(&file, config).expect("write kubeconfig");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod kubeconfig");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_builds_from_the_dockerfile_and_runs_read_only_as_non_root() {
    image_tools();
    // Build: the Dockerfile as a user has it, base images from the local stand-ins.
    let prebuilt = tempfile::tempdir().expect("temp dir");
    let binary = prebuilt_binary();
    std::fs::copy(&binary, prebuilt.path().join("kafka-group-operator")).expect("copy the binary");
    let mount = format!("{}:/prebuilt:ro", prebuilt.path().display());
    let started = Instant::now();
    let repo = repo().to_str().expect("utf-8 path");
    let dockerfile = format!("{repo}/Dockerfile");
    tool_ok(
        "buildah",
        &[
            "bud",
            "--pull=never",
            "--isolation=chroot",
            "--timestamp=0",
            "--layers=false",
            "-v",
            &mount,
            "-t",
            IMAGE,
            "-f",
            &dockerfile,
            repo,
        ],
    );
    let build_time = started.elapsed();
    let _image = Image; // removed when the test ends: each run would otherwise leave one behind

    // User and entrypoint, as the image's config says.
    let config: Value = serde_json::from_str(&tool_ok(
        "skopeo",
        &["inspect", "--config", &format!("containers-storage:{IMAGE}")],
    ))
    .expect("image config JSON");
    assert_eq!(config["config"]["User"], "65532:65532", "{config}");
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/usr/local/bin/kafka-group-operator"]),
        "{config}"
    );
    let size: u64 = tool_ok("podman", &["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .trim()
        .parse()
        .expect("image size");
    eprintln!(
        "image {IMAGE}: {:.1} MiB (binary {} from {}: {:.1} MiB), built in {:.1} s",
        size as f64 / 1048576.0,
        binary.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        binary.parent().map(|p| p.display().to_string()).unwrap_or_default(),
        std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0,
        build_time.as_secs_f64()
    );

    // Read-only root, every capability dropped, no network: --version.
    let hardened = [
        "--rm",
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
    ];
    let mut args = vec!["run"];
    args.extend(hardened);
    args.extend(["--network=none", IMAGE, "--version"]);
    let version = tool_ok("podman", &args);
    assert!(version.starts_with("kafka-group-operator "), "{version}");

    // A start against the test control plane: ready, running as 65532, reconciling a KafkaCluster.
    let cp = ControlPlane::shared();
    let kafka = ApacheKafka::shared();
    let (client, ns) = Scenario::namespace("image").await;
    let config_dir = tempfile::tempdir().expect("temp dir");
    inline_kubeconfig(cp, config_dir.path());
    let port = free_port();
    let name = format!("kgo-image-test-{}", std::process::id());
    let volume = format!("{}:/config:ro", config_dir.path().display());
    let namespace = format!("--namespace={ns}");
    let metrics = format!("--metrics-addr=127.0.0.1:{port}");
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend(&hardened[1..]);
    args.extend([
        "--network=host",
        "-v",
        &volume,
        IMAGE,
        "--log-format=json",
        "run",
        "--kubeconfig=/config/kubeconfig",
        &namespace,
        &metrics,
        "--cluster-interval=3s",
    ]);
    tool_ok("podman", &args);
    let container = Container(name.clone());

    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(port) {
        assert!(
            Instant::now() < deadline,
            "the container never became ready on :{port}:\n{}",
            container.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let pid = tool_ok("podman", &["inspect", "--format", "{{.State.Pid}}", &name]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("the container's process");
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or_default();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "the operator runs as {uid}, not 65532"
    );

    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KafkaCluster = resource("KafkaCluster", "main", json!({"bootstrapServers": [kafka.bootstrap()]}));
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create KafkaCluster");
    until(&clusters, "main", Duration::from_secs(60), "Ready", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
    drop(container);
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// Removes the container when the test ends, and shows its logs if the test failed.
struct Container(String);

impl Container {
    fn logs(&self) -> String {
        let out = tool("podman", &["logs", "--tail", "60", &self.0]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("container log:\n{}", self.logs());
        }
        let _ = tool("podman", &["stop", "--time=10", &self.0]);
        let _ = tool("podman", &["rm", "--force", &self.0]);
    }
}

/// Removes the test image when the test ends.
struct Image;

impl Drop for Image {
    fn drop(&mut self) {
        let _ = tool("podman", &["rmi", "--force", IMAGE]);
    }
}
