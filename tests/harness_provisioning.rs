//! A missing dependency must fail loudly, naming what is missing and how to get it — never skip silently.
//! These run the provisioning scripts against an empty cache with a PATH that lacks the tool in question.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of symlinks to the few coreutils the scripts need before they check for their tools.
fn minimal_path(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create bin dir");
    for tool in ["dirname", "sed", "sha256sum", "cut", "mkdir", "date"] {
        let target = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("coreutils tool {tool} not found"));
        std::os::unix::fs::symlink(target, bin.join(tool)).expect("symlink");
    }
    bin
}

fn run_script_without_tools(script: &str) -> (bool, String) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = minimal_path(tmp.path());
    let out = Command::new("/bin/bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .env_clear()
        .env("PATH", path)
        .env("HOME", tmp.path())
        .env("KGO_CACHE", tmp.path().join("cache"))
        .output()
        .expect("run script");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn kafka_provisioning_names_the_missing_java_and_how_to_install_it() {
    let (ok, stderr) = run_script_without_tools("scripts/provision-kafka.sh");
    assert!(!ok, "provisioning must fail without java");
    assert!(stderr.contains("'java' is missing: install"), "{stderr}");
}

#[test]
fn kubernetes_provisioning_names_the_missing_go_toolchain() {
    let (ok, stderr) = run_script_without_tools("scripts/provision-k8s.sh");
    assert!(!ok, "provisioning must fail without go");
    assert!(stderr.contains("'go' is missing: install"), "{stderr}");
}

#[test]
fn client_provisioning_names_the_missing_python() {
    let (ok, stderr) = run_script_without_tools("scripts/provision-clients.sh");
    assert!(!ok, "provisioning must fail without python3");
    assert!(stderr.contains("'python3' is missing: install"), "{stderr}");
}

#[test]
fn gitops_tool_provisioning_names_the_missing_go_toolchain() {
    let (ok, stderr) = run_script_without_tools("scripts/provision-gitops-tools.sh");
    assert!(!ok, "provisioning must fail without go");
    assert!(stderr.contains("'go' is missing: install"), "{stderr}");
}
