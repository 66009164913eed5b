//! `make dev`: the local development environment. Starts a real kube-apiserver + etcd and a real Apache Kafka
//! broker with the same fixtures the integration tests use, prints how to reach them, and keeps them running
//! until interrupted (Ctrl-C). Everything it started dies with it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use support::operator::Operator;
use support::{ApacheKafka, ControlPlane};

fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let control_plane = ControlPlane::start();
    let kafka = ApacheKafka::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;

    // The operator at work: its CRDs, the operator watching `default`, and a KafkaCluster on the local broker.
    runtime.block_on(async {
        let client = control_plane.client().await;
        support::crds::install(&client).await;
        let clusters: kube::Api<kafka_group_operator::api::KafkaCluster> = kube::Api::namespaced(client, "default");
        let cluster = support::scenario::resource(
            "KafkaCluster",
            "local",
            serde_json::json!({"bootstrapServers": [kafka.bootstrap()]}),
        );
        clusters.create(&Default::default(), &cluster).await
    })?;
    let operator = Operator::start(&control_plane, "default", &[]);

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
        "  operator:         /metrics on 127.0.0.1:{} (watching namespace default)",
        operator.metrics_port
    );
    println!(
        "  logs:             {} and {}",
        control_plane.dir().display(),
        kafka.dir().display()
    );
    println!();
    println!("In another shell:");
    println!("  source {}", env_file.display());
    println!("  kubectl get kafkaclusters,consumergroups,offsetresets");
    println!(
        "  kubectl apply -f - <<< '{{\"apiVersion\": \"kafkagroups.dev/v1alpha1\", \"kind\": \"ConsumerGroup\", \"metadata\": {{\"name\": \"demo\"}}, \"spec\": {{\"clusterRef\": {{\"name\": \"local\"}}}}}}'"
    );
    println!();
    println!("Press Ctrl-C to stop everything.");

    runtime.block_on(tokio::signal::ctrl_c())?;
    println!("stopping");
    drop(operator);
    drop(kafka);
    drop(control_plane);
    Ok(())
}
