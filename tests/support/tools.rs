//! Where the provisioned dependencies live. An environment variable wins (the Makefile sets them);
//! otherwise the project's own provisioning script is run, which is instant when its cache is warm.
//! A dependency that cannot be found or built fails the test with a message saying how to get it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn provisioned(env_var: &str, script: &str, cell: &'static OnceLock<PathBuf>) -> &'static Path {
    cell.get_or_init(|| {
        if let Ok(dir) = std::env::var(env_var)
            && !dir.is_empty()
        {
            let dir = PathBuf::from(dir);
            assert!(
                dir.is_dir(),
                "{env_var}={} is not a directory: unset it or run `bash {script}`",
                dir.display()
            );
            return dir;
        }
        let path = repo_root().join(script);
        let out = Command::new("bash")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{script} failed ({}), so a test dependency is missing.\n\
             Run `bash {script}` (or `make provision`) to see why; its output was:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = stdout.lines().last().unwrap_or_default().trim().to_owned();
        assert!(!dir.is_empty(), "{script} printed no directory");
        PathBuf::from(dir)
    })
}

/// Directory holding `kube-apiserver`, `etcd`, `kubectl` and `helm` (`scripts/provision-k8s.sh`).
pub fn k8s_bin() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    provisioned("KGO_K8S_BIN", "scripts/provision-k8s.sh", &CELL)
}

/// Apache Kafka's home: `libs/` (the classpath) and log4j2 configs (`scripts/provision-kafka.sh`).
pub fn kafka_home() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    provisioned("KGO_KAFKA_HOME", "scripts/provision-kafka.sh", &CELL)
}

/// The virtualenv with confluent-kafka; also makes sure kcat is installed (`scripts/provision-clients.sh`).
pub fn clients_venv() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    provisioned("KGO_CLIENTS_VENV", "scripts/provision-clients.sh", &CELL)
}

/// Directory holding `kubectl-krew`, the kubectl plugin manager (`scripts/provision-krew.sh`).
pub fn krew_bin() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    provisioned("KGO_KREW_BIN", "scripts/provision-krew.sh", &CELL)
}

/// A binary from `k8s_bin()`, checked to exist.
pub fn k8s_tool(name: &str) -> PathBuf {
    let path = k8s_bin().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/provision-k8s.sh` to build it",
        path.display()
    );
    path
}

/// A command on PATH, checked to exist (for tools installed from Debian such as `java`, `openssl`).
pub fn system_tool(name: &str, how_to_get_it: &str) -> PathBuf {
    let path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    path.unwrap_or_else(|| panic!("`{name}` is not on PATH: {how_to_get_it}"))
}

/// Directory with `hadolint`, `containers.conf` (for podman here) and `standins.env`, after buildah, podman and
/// skopeo are installed and the stand-ins of the Dockerfile's base images are built (`scripts/provision-image.sh`).
pub fn image_tools() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    provisioned("KGO_IMAGE_TOOLS", "scripts/provision-image.sh", &CELL)
}

/// Directory holding `kgo-gitops-health`, which computes an object's health as Argo CD (the chart's Lua health
/// checks in gopher-lua) and Flux (kstatus) do (`scripts/provision-gitops-tools.sh`).
pub fn gitops_health_bin() -> &'static Path {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    provisioned("KGO_GITOPS_HEALTH_BIN", "scripts/provision-gitops-tools.sh", &CELL)
}

/// Runs the provisioned helm with its caches in a temp dir (never the user's); returns (success, stdout, stderr).
pub fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(k8s_tool("helm"))
        .env("HELM_CACHE_HOME", std::env::temp_dir().join("kgo-helm/cache"))
        .env("HELM_CONFIG_HOME", std::env::temp_dir().join("kgo-helm/config"))
        .env("HELM_DATA_HOME", std::env::temp_dir().join("kgo-helm/data"))
        .args(args)
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
