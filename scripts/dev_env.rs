//! `make dev`: the operator at work on one machine. Starts a real kube-apiserver + etcd with the integration
//! tests' fixtures, the operator (watching `default`) serving an embedded Kafka broker (SCRAM-SHA-512, the
//! example's users), and applies the
//! examples (`examples/*.yaml`, adapted for a laptop: the embedded cluster in memory on a free port, groups on
//! it, quicker scaling). A producer writes to `orders`, the consumers of the `shipping` Deployment run as real
//! confluent-kafka processes (the kubelet stand-in), the operator scales them on lag, and a minute in, an
//! OffsetReset rewinds the group (scaling the consumers down and back). A live view prints until Ctrl-C; then
//! everything it started stops.

#[path = "../tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result};
use kafka_group_operator::api::{ConsumerGroup, KafkaCluster, OffsetReset};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic, SaslConfig, SaslMechanism, Secret};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::clients::{ClientSecurity, SecurityProtocol};
use support::kubelet::Kubelet;
use support::operator::Operator;
use support::secure_kafka::{SaslCredentials, SaslMechanism as FixtureMechanism};
use support::{ControlPlane, clients};

const NAMESPACE: &str = "default";
/// Records per second the demo producer writes; each consumer replica handles about 20 (50 ms per record).
const PRODUCE_PER_SECOND: usize = 50;

fn main() -> Result<()> {
    let started = Instant::now();
    let control_plane = ControlPlane::start();
    let operator = Operator::start(
        &control_plane,
        NAMESPACE,
        &["--embedded-brokers=true", "--embedded-bind-address=127.0.0.1"],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dev = root.join(".dev");
    std::fs::create_dir_all(&dev)?;
    let kubeconfig = dev.join("kubeconfig");
    std::fs::copy(control_plane.kubeconfig(), &kubeconfig)?;

    let result = runtime.block_on(async {
        let client = control_plane.client().await;
        support::crds::install(&client).await;
        let port = support::process::free_port();
        let bootstrap = format!("127.0.0.1:{port}");

        // The embedded cluster from the example (SCRAM-SHA-512, its users' Secret), in memory on a free port.
        let mut documents = example(root, "kafkacluster-embedded.yaml")?;
        for doc in &mut documents {
            if doc["kind"] == "KafkaCluster" {
                doc["spec"]["embedded"]["port"] = json!(port);
                if let Some(embedded) = doc["spec"]["embedded"].as_object_mut() {
                    embedded.remove("dataDir");
                }
            }
        }
        let password = |user: &str| {
            documents
                .iter()
                .find(|d| d["kind"] == "Secret")
                .and_then(|s| s["stringData"][user].as_str())
                .map(str::to_owned)
                .with_context(|| format!("the example's Secret has no password for {user}"))
        };
        // `shipping` may use the orders topic and the shipping group only; `reports` may use everything.
        let shipping_password = password("shipping")?;
        let reports = ClientSecurity {
            protocol: SecurityProtocol::SaslPlaintext,
            sasl: Some(SaslCredentials {
                username: "reports".into(),
                password: password("reports")?,
                mechanism: FixtureMechanism::ScramSha512,
            }),
            ..Default::default()
        };
        apply(&control_plane, &dev, &documents)?;
        let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), NAMESPACE);
        support::wait::until(&clusters, "local", Duration::from_secs(60), "Ready", |c| {
            support::wait::has_condition(c, "Ready", "True", "Connected")
        })
        .await;
        let mut admin = ClientConfig::new([bootstrap.clone()]);
        admin.sasl = Some(SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: "reports".into(),
            password: Secret::new(password("reports")?.into_bytes()),
        });
        let kafka = KafkaClient::new(admin)?;
        kafka
            .create_topics(&[NewTopic::new("orders", 4), NewTopic::new("refunds", 2)])
            .await?;

        // The groups of the examples, on that cluster; the shipping consumers read `orders` at ~20 msg/s each.
        let mut objects = example(root, "consumergroup-lag-budget.yaml")?;
        objects.extend(example(root, "consumergroup-scaling.yaml")?);
        for o in &mut objects {
            match o["kind"].as_str() {
                Some("ConsumerGroup") => {
                    o["spec"]["clusterRef"]["name"] = json!("local");
                    if o["spec"].get("scaling").is_some() {
                        let s = &mut o["spec"]["scaling"];
                        s["maxReplicas"] = json!(4);
                        s["scaleDownStabilizationSeconds"] = json!(30);
                        s["cooldownSeconds"] = json!(10);
                        s["catchUpSeconds"] = json!(30);
                    }
                }
                Some("Deployment") => {
                    o["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
                        {"name": "KAFKA_GROUP_ID", "value": "shipping"},
                        {"name": "KAFKA_TOPICS", "value": "orders"},
                        {"name": "KAFKA_PROCESSING_DELAY_MS", "value": "50"},
                        {"name": "KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
                        {"name": "KAFKA_SASL_USERNAME", "value": "shipping"},
                        {"name": "KAFKA_SASL_PASSWORD", "value": shipping_password}
                    ]);
                }
                _ => {}
            }
        }
        apply(&control_plane, &dev, &objects)?;
        let kubelet = Kubelet::start(client.clone(), NAMESPACE, "shipping", &bootstrap).await;

        // The producer: PRODUCE_PER_SECOND records a second, in bursts every 2 s.
        let producer_bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            loop {
                clients::produce_with(&producer_bootstrap, &reports, "orders", PRODUCE_PER_SECOND * 2);
                std::thread::sleep(Duration::from_secs(2));
            }
        });

        print_banner(&control_plane, &kubeconfig, &bootstrap, &operator, started.elapsed());
        let mut reset_applied = false;
        let demo_started = Instant::now();
        loop {
            if !reset_applied && demo_started.elapsed() > Duration::from_secs(60) {
                // The example's reset, for real: rewind the shipping group by 300 records per partition, with
                // its consumers scaled down meanwhile.
                let mut reset = example(root, "offsetreset-shiftby.yaml")?.remove(0);
                reset["metadata"]["name"] = json!("shipping-rewind");
                reset["spec"] = json!({
                    "groupRef": {"name": "shipping"}, "to": {"shiftBy": -300},
                    "strategy": "ScaleDown", "scaleTargetRef": {"kind": "Deployment", "name": "shipping"}
                });
                apply(&control_plane, &dev, &[reset])?;
                reset_applied = true;
            }
            print_view(&client, &kubelet).await?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            }
        }
        Ok::<_, anyhow::Error>(())
    });
    println!("stopping");
    drop(operator);
    drop(control_plane);
    result
}

/// The documents of one example file, as JSON.
fn example(root: &Path, file: &str) -> Result<Vec<Value>> {
    let path = root.join("examples").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    text.split("\n---")
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|doc| serde_saphyr::from_str::<Value>(doc).with_context(|| format!("parse {}", path.display())))
        .collect()
}

/// `kubectl apply` of `objects` in the demo namespace (through a file in .dev/, kept for a look).
fn apply(cp: &ControlPlane, dev: &Path, objects: &[Value]) -> Result<()> {
    let file: PathBuf = dev.join("applied.json");
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&json!({"apiVersion": "v1", "kind": "List", "items": objects}))?,
    )?;
    let out = cp.kubectl(&["apply", "-n", NAMESPACE, "-f", &file.display().to_string()]);
    anyhow::ensure!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

fn print_banner(cp: &ControlPlane, kubeconfig: &Path, bootstrap: &str, operator: &Operator, took: Duration) {
    let kubectl = support::tools::k8s_tool("kubectl");
    println!();
    println!("kafka-group-operator development environment is up ({took:.1?})");
    println!("  Kubernetes API:   {}", cp.server());
    println!("  Kafka (embedded): {bootstrap}   (KafkaCluster `local`, served by the operator; SASL_PLAINTEXT,");
    println!("                    SCRAM-SHA-512 as `shipping` or `reports`, passwords in Secret local-kafka-users)");
    println!("  operator:         /metrics on 127.0.0.1:{}", operator.metrics_port);
    println!("In another shell:");
    println!(
        "  export KUBECONFIG={} PATH={}:$PATH",
        kubeconfig.display(),
        kubectl.parent().map(|p| p.display().to_string()).unwrap_or_default()
    );
    println!("  kubectl get kafkaclusters,consumergroups,offsetresets -w");
    println!("Press Ctrl-C to stop everything. Live view (every 3 s):");
}

async fn print_view(client: &kube::Client, kubelet: &Kubelet) -> Result<()> {
    let groups: Api<ConsumerGroup> = Api::namespaced(client.clone(), NAMESPACE);
    let resets: Api<OffsetReset> = Api::namespaced(client.clone(), NAMESPACE);
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%H:%M:%S");
    let mut line = format!("{now}");
    for g in groups.list(&ListParams::default()).await?.items {
        let s = g.status.unwrap_or_default();
        line.push_str(&format!(
            " | {} {} members={} lag={} {} replicas={}/{}",
            g.metadata.name.unwrap_or_default(),
            s.state.unwrap_or_else(|| "-".into()),
            s.members,
            s.total_lag.map_or("-".into(), |l| l.to_string()),
            s.lag_status.unwrap_or_else(|| "-".into()),
            s.current_replicas.map_or("-".into(), |r| r.to_string()),
            s.desired_replicas.map_or("-".into(), |r| r.to_string()),
        ));
    }
    for r in resets.list(&ListParams::default()).await?.items {
        let phase = r.status.map(|s| format!("{:?}", s.phase)).unwrap_or_else(|| "-".into());
        line.push_str(&format!(" | reset {} {phase}", r.metadata.name.unwrap_or_default()));
    }
    line.push_str(&format!(" | consumer pods running={}", kubelet.running()));
    println!("{line}");
    Ok(())
}
