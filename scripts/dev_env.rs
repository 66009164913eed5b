//! `make dev`: the local development environment. Starts a real kube-apiserver + etcd and a real Apache Kafka
//! broker with the same fixtures the integration tests use, prints how to reach them, and keeps them running
//! until interrupted (Ctrl-C). Everything it started dies with it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use support::{ApacheKafka, ControlPlane};

fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let control_plane = ControlPlane::start();
    let kafka = ApacheKafka::start();

    // A stable place for the kubeconfig, so that shells and editors can keep pointing at it across restarts.
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join(".dev");
    std::fs::create_dir_all(&dev)?;
    let kubeconfig = dev.join("kubeconfig");
    std::fs::copy(control_plane.kubeconfig(), &kubeconfig)?;
    let kubectl = support::tools::k8s_tool("kubectl");
    let env_file = dev.join("env");
    std::fs::write(
        &env_file,
        format!(
            "export KUBECONFIG={}\nexport KAFKA_BOOTSTRAP={}\nexport PATH={}:$PATH\n",
            kubeconfig.display(),
            kafka.bootstrap(),
            kubectl.parent().map(|p| p.display().to_string()).unwrap_or_default()
        ),
    )?;

    println!(
        "kafka-group-operator development environment is up ({:.1?})",
        started.elapsed()
    );
    println!();
    println!("  Kubernetes API:   {}", control_plane.server());
    println!("  kubeconfig:       {}", kubeconfig.display());
    println!("  Kafka bootstrap:  {}", kafka.bootstrap());
    println!(
        "  logs:             {} and {}",
        control_plane.dir().display(),
        kafka.dir().display()
    );
    println!();
    println!("In another shell:");
    println!("  source {}", env_file.display());
    println!("  kubectl get ns");
    println!();
    println!("Press Ctrl-C to stop everything.");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    println!("stopping");
    drop(kafka);
    drop(control_plane);
    Ok(())
}
