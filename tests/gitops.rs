//! GitOps: the health Argo CD and Flux compute for the objects a real operator writes, with the engines they
//! use — the chart's Lua health checks run in gopher-lua (what Argo CD embeds) and kstatus
//! (`sigs.k8s.io/cli-utils`, what Flux's health checks use), both through `kgo-gitops-health`
//! (tests/tools/gitops-health, built from the Go module proxy) — the `argocd-cm` patch the chart renders
//! merged into a real Argo CD ConfigMap, the README's snippet generated from the chart, and the example
//! repository layouts in `examples/gitops/`.

#[macro_use]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::{ConsumerGroup, KafkaCluster, OffsetReset};
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::ApiResource;
use kube::runtime::watcher::watch_object;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::clients::{self, GroupProtocol as ClientProtocol};
use support::scenario::{Scenario, resource};
use support::tools::{gitops_health_bin, k8s_tool};
use support::wait::{has_condition, until};
use support::{ApacheKafka, ControlPlane, unique_name};

const T: Duration = Duration::from_secs(90);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts/kafka-group-operator")
}

/// What one engine says of an object: (status, message).
#[derive(Debug)]
struct Health {
    status: String,
    message: String,
}

fn run_tool(args: &[&str], object: &Value) -> Health {
    let tool = gitops_health_bin().join("kgo-gitops-health");
    let mut child = Command::new(&tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(object.to_string().as_bytes())
        .expect("write the object");
    let out = child.wait_with_output().expect("kgo-gitops-health");
    assert!(
        out.status.success(),
        "kgo-gitops-health {args:?} failed on {object}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    Health {
        status: v["status"].as_str().unwrap_or_default().to_owned(),
        message: v["message"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Argo CD's health of `object` with the chart's script for its kind.
fn argocd(object: &Value) -> Health {
    let kind = object["kind"].as_str().expect("kind").to_lowercase();
    let script = chart_dir().join("argocd").join(format!("{kind}.lua"));
    run_tool(&["lua", "--script", script.to_str().expect("path")], object)
}

/// kstatus's status of `object` (Flux).
fn kstatus(object: &Value) -> Health {
    run_tool(&["kstatus"], object)
}

fn api_resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The object as the API server serves it (what Argo CD and Flux read).
async fn served<K: Resource<DynamicType = ()>>(client: &kube::Client, ns: &str, name: &str) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource::<K>());
    serde_json::to_value(api.get(name).await.expect("get")).expect("JSON")
}

#[track_caller]
fn expect(object: &Value, argo_status: &str, argo_message: &str, flux_status: &str) {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let (a, k) = (argocd(object), kstatus(object));
    assert_eq!(
        a.status, argo_status,
        "Argo CD health of {name}: {a:?}\nobject: {object:#}"
    );
    assert!(
        a.message.contains(argo_message),
        "Argo CD message of {name} lacks {argo_message:?}: {a:?}"
    );
    assert_eq!(k.status, flux_status, "kstatus of {name}: {k:?}\nobject: {object:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_clusters_read_healthy_unreachable_and_waiting() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("gitops-kc", kafka).await;
    let main = served::<KafkaCluster>(&env.client, &env.ns, "main").await;
    expect(&main, "Healthy", "1 broker", "Current");

    let clusters: Api<KafkaCluster> = Api::namespaced(env.client.clone(), &env.ns);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port(); // bound, then released: nothing listens there
    let down: KafkaCluster = resource(
        "KafkaCluster",
        "down",
        json!({"bootstrapServers": [format!("127.0.0.1:{port}")]}),
    );
    clusters.create(&PostParams::default(), &down).await.expect("create");
    until(&clusters, "down", T, "not ready", |c| {
        has_condition(c, "Ready", "False", "Unreachable") && has_condition(c, "Reconciling", "True", "Unreachable")
    })
    .await;
    let down = served::<KafkaCluster>(&env.client, &env.ns, "down").await;
    // Argo CD: the user has something to look at; Flux: the operator is still trying (InProgress, not Failed).
    expect(&down, "Degraded", "Unreachable: ", "InProgress");

    // An object no operator has looked at yet: the CRD's status default makes it "observed generation 0".
    let (client, quiet_ns) = Scenario::namespace("gitops-unobserved").await;
    let quiet: Api<KafkaCluster> = Api::namespaced(client.clone(), &quiet_ns);
    quiet
        .create(
            &PostParams::default(),
            &resource::<KafkaCluster>("KafkaCluster", "main", json!({"bootstrapServers": [kafka.bootstrap()]})),
        )
        .await
        .expect("create");
    let waiting = served::<KafkaCluster>(&client, &quiet_ns, "main").await;
    assert_eq!(waiting["status"]["observedGeneration"], json!(0), "{waiting:#}");
    expect(&waiting, "Progressing", "waiting for the operator", "InProgress");
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_groups_read_healthy_over_budget_stalled_and_deletion_blocked() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("gitops-cg", kafka).await;
    let topic = unique_name("gitops");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    clients::produce(&kafka.bootstrap(), &topic, 20);
    let groups: Api<ConsumerGroup> = env.groups();
    let create = |name: &str, spec: Value| {
        let groups = groups.clone();
        let group: ConsumerGroup = resource("ConsumerGroup", name, spec);
        async move {
            groups
                .create(&PostParams::default(), &group)
                .await
                .expect("create group")
        }
    };

    // Within budget: Healthy / Current.
    let calm = unique_name("calm");
    env.kafka
        .commit_offsets(&calm, &BTreeMap::from([(TopicPartition::new(&topic, 0), 20)]))
        .await
        .expect("commit");
    create(
        "calm",
        json!({"clusterRef": {"name": "main"}, "groupId": calm, "topics": [topic], "lagBudget": {"maxMessages": 10}}),
    )
    .await;
    until(&groups, "calm", T, "within budget", |g| {
        has_condition(g, "LagWithinBudget", "True", "WithinBudget")
    })
    .await;
    let calm_obj = served::<ConsumerGroup>(&env.client, &env.ns, "calm").await;
    expect(&calm_obj, "Healthy", "Empty, 0 members, lag 0", "Current");

    // Over its lag budget: Degraded in Argo CD; the operator has done what it can, so Current for kstatus.
    let behind = unique_name("behind");
    env.kafka
        .commit_offsets(&behind, &BTreeMap::from([(TopicPartition::new(&topic, 0), 5)]))
        .await
        .expect("commit");
    create(
        "behind",
        json!({"clusterRef": {"name": "main"}, "groupId": behind, "topics": [topic], "lagBudget": {"maxMessages": 10}}),
    )
    .await;
    until(&groups, "behind", T, "over budget", |g| {
        has_condition(g, "LagWithinBudget", "False", "BudgetExceeded")
    })
    .await;
    let behind_obj = served::<ConsumerGroup>(&env.client, &env.ns, "behind").await;
    expect(&behind_obj, "Degraded", "LagWithinBudget: BudgetExceeded", "Current");

    // Declared a share group, but Kafka has a consumer group of that id: only a spec change helps (Stalled).
    create(
        "wrong-kind",
        json!({"clusterRef": {"name": "main"}, "groupId": calm, "type": "share"}),
    )
    .await;
    until(&groups, "wrong-kind", T, "stalled", |g| {
        has_condition(g, "Stalled", "True", "TypeMismatch")
    })
    .await;
    let wrong = served::<ConsumerGroup>(&env.client, &env.ns, "wrong-kind").await;
    expect(&wrong, "Degraded", "TypeMismatch: ", "Failed");

    // Its cluster is unreachable: Degraded for Argo CD, InProgress (Reconciling) for kstatus.
    let clusters: Api<KafkaCluster> = Api::namespaced(env.client.clone(), &env.ns);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    clusters
        .create(
            &PostParams::default(),
            &resource::<KafkaCluster>(
                "KafkaCluster",
                "down",
                json!({"bootstrapServers": [format!("127.0.0.1:{port}")]}),
            ),
        )
        .await
        .expect("cluster");
    create(
        "stranded",
        json!({"clusterRef": {"name": "down"}, "groupId": unique_name("stranded")}),
    )
    .await;
    until(&groups, "stranded", T, "not ready", |g| {
        has_condition(g, "Ready", "False", "KafkaUnavailable")
            && has_condition(g, "Reconciling", "True", "KafkaUnavailable")
    })
    .await;
    let stranded = served::<ConsumerGroup>(&env.client, &env.ns, "stranded").await;
    expect(&stranded, "Degraded", "KafkaUnavailable: ", "InProgress");

    // Deletion blocked while the group has a member: Degraded with the reason; kstatus says Terminating.
    let busy = unique_name("busy");
    let member = clients::GroupMember::join(&kafka.bootstrap(), &topic, &busy, ClientProtocol::Classic, None);
    create(
        "busy",
        json!({"clusterRef": {"name": "main"}, "groupId": busy, "topics": [topic], "deletionPolicy": "Delete"}),
    )
    .await;
    until(&groups, "busy", T, "finalized", |g| !g.finalizers().is_empty()).await;
    groups.delete("busy", &DeleteParams::default()).await.expect("delete");
    until(&groups, "busy", T, "blocked", |g| {
        has_condition(g, "DeletionBlocked", "True", "GroupNotEmpty")
    })
    .await;
    let blocked = served::<ConsumerGroup>(&env.client, &env.ns, "busy").await;
    expect(&blocked, "Degraded", "GroupNotEmpty: ", "Terminating");
    member.leave();
}

/// Every version of an OffsetReset from creation to its end, as a watch delivers them.
async fn lifecycle(client: &kube::Client, ns: &str, name: &str) -> Vec<Value> {
    use futures_util::StreamExt;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource::<OffsetReset>());
    let mut stream = std::pin::pin!(watch_object(api, name));
    let mut versions: Vec<Value> = Vec::new();
    let collect = async {
        while let Some(event) = stream.next().await {
            let Some(obj) = event.expect("watch") else { continue };
            let v = serde_json::to_value(obj).expect("JSON");
            let phase = v["status"]["phase"].as_str().unwrap_or_default().to_owned();
            let dry_run = v["spec"]["dryRun"] == json!(true);
            versions.push(v);
            if phase == "Succeeded" || phase == "Failed" || (dry_run && phase == "Planned") {
                break;
            }
        }
    };
    tokio::time::timeout(T, collect)
        .await
        .expect("the reset did not finish");
    versions
}

/// What each engine must say of a reset in `phase`.
fn expected_for_reset(phase: &str, dry_run: bool) -> (&'static str, &'static str) {
    match phase {
        "Succeeded" => ("Healthy", "Current"),
        "Planned" if dry_run => ("Healthy", "Current"),
        "Failed" => ("Degraded", "Failed"),
        _ => ("Progressing", "InProgress"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_phase_of_an_offset_reset_reads_as_a_user_expects() {
    let kafka = ApacheKafka::shared();
    let env = Scenario::start("gitops-ors", kafka).await;
    let topic = unique_name("gitops-reset");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .expect("topic");
    clients::produce(&kafka.bootstrap(), &topic, 20);
    let group = unique_name("gitops-reset-group");
    let offsets = (0..2).map(|p| (TopicPartition::new(&topic, p), 1)).collect();
    env.kafka.commit_offsets(&group, &offsets).await.expect("commit");
    // A Deployment at 0 replicas: a ScaleDown reset goes through every phase (ScalingDown, WaitingForInactive,
    // Applying, Restoring) without consumers to stop.
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .create(
            &PostParams::default(),
            &support::kubelet::deployment("consumers", 0, &[]),
        )
        .await
        .expect("deployment");

    let cases = [
        (
            "scale-down",
            json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"earliest": {}}, "strategy": "ScaleDown",
                   "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}}),
            "Succeeded",
        ),
        (
            "dry-run",
            json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"latest": {}}, "dryRun": true}),
            "Planned",
        ),
        (
            "no-topic",
            json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"earliest": {}}, "topics": [{"name": "no-such-topic"}]}),
            "Failed",
        ),
    ];
    let mut phases_seen: Vec<String> = Vec::new();
    for (name, spec, end) in cases {
        let watch = tokio::spawn(lifecycle_owned(env.client.clone(), env.ns.clone(), name.to_owned()));
        tokio::time::sleep(Duration::from_millis(300)).await; // the watch is established before the create
        env.resets()
            .create(
                &PostParams::default(),
                &resource::<OffsetReset>("OffsetReset", name, spec),
            )
            .await
            .expect("create");
        let versions = watch.await.expect("watch task");
        let last = versions.last().expect("versions");
        assert_eq!(last["status"]["phase"], json!(end), "{name}: {last:#}");
        for v in &versions {
            let phase = v["status"]["phase"].as_str().unwrap_or("Pending");
            let dry_run = v["spec"]["dryRun"] == json!(true);
            if v["status"]["observedGeneration"] == json!(0) {
                // Not yet looked at by the operator.
                expect(v, "Progressing", "waiting for the operator", "InProgress");
                continue;
            }
            let (argo, flux) = expected_for_reset(phase, dry_run);
            expect(v, argo, "", flux);
            phases_seen.push(format!("{name}:{phase}"));
        }
    }
    for phase in [
        "ScalingDown",
        "WaitingForInactive",
        "Applying",
        "Restoring",
        "Succeeded",
    ] {
        assert!(
            phases_seen.iter().any(|p| p == &format!("scale-down:{phase}")),
            "the watch never saw {phase}: {phases_seen:?}"
        );
    }
    let failed = served::<OffsetReset>(&env.client, &env.ns, "no-topic").await;
    expect(&failed, "Degraded", "no-such-topic", "Failed");
    let done = served::<OffsetReset>(&env.client, &env.ns, "scale-down").await;
    expect(&done, "Healthy", "Succeeded", "Current");

    // Re-created after it was applied (a sync after a TTL deletion): Healthy, saying it was applied before.
    env.resets()
        .delete("scale-down", &DeleteParams::default())
        .await
        .expect("delete");
    let deadline = tokio::time::Instant::now() + T;
    while env.resets().get_opt("scale-down").await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group, "to": {"earliest": {}}, "strategy": "ScaleDown",
                      "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}});
    env.resets()
        .create(
            &PostParams::default(),
            &resource::<OffsetReset>("OffsetReset", "scale-down", spec),
        )
        .await
        .expect("re-create");
    until(&env.resets(), "scale-down", T, "already applied", |r| {
        has_condition(r, "Complete", "True", "AlreadyApplied")
    })
    .await;
    let again = served::<OffsetReset>(&env.client, &env.ns, "scale-down").await;
    expect(&again, "Healthy", "AlreadyApplied: ", "Current");
}

async fn lifecycle_owned(client: kube::Client, ns: String, name: String) -> Vec<Value> {
    lifecycle(&client, &ns, &name).await
}

fn helm(args: &[&str]) -> String {
    let (ok, stdout, stderr) = support::tools::helm(args);
    assert!(ok, "helm {args:?}:\n{stderr}");
    stdout
}

/// The README's command, as written there.
fn rendered_argocd_patch() -> String {
    helm(&[
        "template",
        "kafka-group-operator",
        chart_dir().to_str().expect("path"),
        "--set",
        "argocd.healthChecks.enabled=true",
        "--show-only",
        "templates/argocd-health-checks.yaml",
    ])
}

const BEGIN: &str = "<!-- BEGIN generated: argocd-health-checks -->\n";
const END: &str = "<!-- END generated: argocd-health-checks -->";

#[test]
fn the_readme_shows_the_health_checks_the_chart_renders() {
    let readme_path = repo().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README");
    let start = readme.find(BEGIN).expect("the README has the BEGIN marker") + BEGIN.len();
    let end = readme.find(END).expect("the README has the END marker");
    let block = format!("```yaml\n{}```\n", rendered_argocd_patch());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let updated = format!("{}{block}{}", &readme[..start], &readme[end..]);
        std::fs::write(&readme_path, updated).expect("write README");
        return;
    }
    assert!(
        readme[start..end] == block,
        "README's Argo CD snippet is not what the chart renders: run `UPDATE_GOLDEN=1 cargo test --test gitops the_readme` to regenerate it"
    );
    // Each key carries its Lua file byte for byte.
    for kind in ["KafkaCluster", "ConsumerGroup", "OffsetReset"] {
        let lua = std::fs::read_to_string(chart_dir().join("argocd").join(format!("{}.lua", kind.to_lowercase())))
            .expect("lua");
        let first = lua.lines().next().expect("a first line");
        assert!(
            block.contains(&format!("resource.customizations.health.kafkagroups.dev_{kind}: |"))
                && block.contains(first),
            "{kind}'s script is missing from the rendered patch"
        );
    }
}

fn kubectl(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(k8s_tool("kubectl"))
        .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_argocd_cm_patch_merges_into_an_existing_argocd_cm_and_keeps_its_keys() {
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    let ns = cp.fresh_namespace(&client, "argocd").await;
    // Argo CD's own ConfigMap, installed the way its install manifest is (client-side kubectl apply).
    let installed = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {ns}\n  labels:\n    app.kubernetes.io/part-of: argocd\n    app.kubernetes.io/name: argocd-cm\ndata:\n  url: https://argocd.example.com\n  timeout.reconciliation: 180s\n  resource.customizations.health.apps_Deployment: |\n    return {{status = \"Healthy\"}}\n"
    );
    kubectl(cp, &["apply", "-f", "-"], Some(&installed));
    let patch = helm(&[
        "template",
        "kafka-group-operator",
        chart_dir().to_str().expect("path"),
        "--set",
        "argocd.healthChecks.enabled=true",
        "--set",
        &format!("argocd.namespace={ns}"),
        "--show-only",
        "templates/argocd-health-checks.yaml",
    ]);
    // The README's command.
    kubectl(
        cp,
        &[
            "patch",
            "configmap",
            "argocd-cm",
            "-n",
            &ns,
            "--type",
            "merge",
            "--field-manager=kafka-group-operator",
            "--patch-file",
            "/dev/stdin",
        ],
        Some(&patch),
    );
    let merged: Value = serde_json::from_str(&kubectl(
        cp,
        &["get", "configmap", "argocd-cm", "-n", &ns, "-o", "json"],
        None,
    ))
    .expect("JSON");
    let data = merged["data"].as_object().expect("data");
    assert_eq!(data["url"], json!("https://argocd.example.com"), "{data:#?}");
    assert_eq!(data["timeout.reconciliation"], json!("180s"));
    assert!(data.contains_key("resource.customizations.health.apps_Deployment"));
    for kind in ["KafkaCluster", "ConsumerGroup", "OffsetReset"] {
        let lua = std::fs::read_to_string(chart_dir().join("argocd").join(format!("{}.lua", kind.to_lowercase())))
            .expect("lua");
        assert_eq!(
            data[&format!("resource.customizations.health.kafkagroups.dev_{kind}")],
            json!(lua),
            "{kind}"
        );
    }
    assert_eq!(
        merged["metadata"]["labels"]["app.kubernetes.io/name"],
        json!("argocd-cm")
    );
    // Argo CD's installer applying its manifest again keeps our keys (they are not in its last-applied set).
    kubectl(cp, &["apply", "-f", "-"], Some(&installed));
    let again: Value = serde_json::from_str(&kubectl(
        cp,
        &["get", "configmap", "argocd-cm", "-n", &ns, "-o", "json"],
        None,
    ))
    .expect("JSON");
    assert!(
        again["data"]
            .as_object()
            .expect("data")
            .contains_key("resource.customizations.health.kafkagroups.dev_OffsetReset")
    );
}

/// Every YAML document of the files under `dir`.
fn documents_under(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(documents_under(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).expect("read");
            for doc in text.split("\n---") {
                let v: Value = serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if !v.is_null() {
                    out.push((path.clone(), v));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gitops_examples_hold_valid_resources_and_point_at_the_chart() {
    let root = repo().join("examples/gitops");
    // Our resources are accepted by a real API server with the project's CRDs (server-side dry run).
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    support::crds::install(&client).await;
    let ns = cp.fresh_namespace(&client, "gitops-examples").await;
    let apps = documents_under(&root.join("apps"));
    assert!(apps.len() >= 3, "{apps:?}");
    for (path, doc) in &apps {
        assert_eq!(
            doc["apiVersion"],
            json!("kafkagroups.dev/v1alpha1"),
            "{}",
            path.display()
        );
        let mut doc = doc.clone();
        doc["metadata"]["namespace"] = json!(ns);
        kubectl(cp, &["apply", "--dry-run=server", "-f", "-"], Some(&doc.to_string()));
    }
    let resets: Vec<&Value> = apps
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "OffsetReset")
        .collect();
    assert!(
        resets.iter().all(|r| r["metadata"]["name"].as_str().is_some_and(|n| n
            .chars()
            .rev()
            .take(10)
            .all(|c| c.is_ascii_digit() || c == '-'))),
        "the example resets follow the date-suffix naming convention: {resets:?}"
    );
    // Argo CD and Flux objects: the kinds their controllers serve, pointing at this chart and the apps directory.
    let argocd = documents_under(&root.join("argocd"));
    let flux = documents_under(&root.join("flux"));
    let kinds = |docs: &[(PathBuf, Value)]| -> Vec<String> {
        docs.iter()
            .map(|(_, d)| {
                format!(
                    "{}/{}",
                    d["apiVersion"].as_str().unwrap_or_default(),
                    d["kind"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    assert!(
        kinds(&argocd).iter().all(|k| k == "argoproj.io/v1alpha1/Application"),
        "{:?}",
        kinds(&argocd)
    );
    assert!(argocd.len() >= 2);
    let flux_kinds = kinds(&flux);
    for kind in [
        "kustomize.toolkit.fluxcd.io/v1/Kustomization",
        "helm.toolkit.fluxcd.io/v2/HelmRelease",
    ] {
        assert!(
            flux_kinds.iter().any(|k| k == kind),
            "flux example lacks {kind}: {flux_kinds:?}"
        );
    }
    let text: String = [&argocd, &flux]
        .iter()
        .flat_map(|docs| docs.iter().map(|(_, d)| d.to_string()))
        .collect();
    assert!(
        text.contains("charts/kafka-group-operator") || text.contains("kafka-group-operator"),
        "{text}"
    );
    // The layout is a repository of its own: the syncs read its `apps/` directory.
    assert!(
        text.contains(r#""path":"apps""#) && text.contains(r#""path":"./apps""#),
        "the Argo CD and Flux syncs point at the apps directory: {text}"
    );
    let _ = client.default_namespace();
}
