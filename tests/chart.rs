//! The Helm chart (charts/kafka-group-operator) against the real helm and kube-apiserver: it lints, renders with
//! default and non-default values, its values schema rejects bad values with a readable message, its manifests
//! are accepted by the API server (server-side dry run, then for real, and through helm install/upgrade/
//! uninstall), and the operator running with the chart's ServiceAccount token does its whole job while RBAC
//! forbids it everything else.

mod support;

use kafka_group_operator::api::{ConsumerGroup, KafkaCluster, OffsetReset, ResetPhase};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::process::{free_port, spawn_tied, stop, tail};
use support::scenario::{Scenario, resource};
use support::tools::helm;
use support::wait::{events, has_condition, until};
use support::{ApacheKafka, ControlPlane, unique_name};

const T: Duration = Duration::from_secs(60);

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kafka-group-operator")
}

/// `helm template RELEASE chart -n NS --set …`, which must succeed.
fn render(release: &str, ns: &str, sets: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        ns,
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (ok, stdout, stderr) = helm(&args);
    assert!(ok, "helm template {sets:?} failed:\n{stderr}");
    stdout
}

/// The rendered documents, as JSON values.
fn documents(rendered: &str) -> Vec<Value> {
    rendered
        .split("\n---")
        .filter_map(|doc| {
            let v: Value =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{doc}"));
            (!v.is_null()).then_some(v)
        })
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn kubectl_ok(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Server-side dry run of the manifests, then the real server-side apply.
fn apply_dry_run_then_for_real(cp: &ControlPlane, manifests: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, manifests).expect("write manifests");
    let f = file.to_str().expect("utf-8 path");
    let dry = kubectl_ok(cp, &["apply", "--server-side", "--dry-run=server", "-f", f]);
    assert!(dry.contains("(server dry run)"), "{dry}");
    kubectl_ok(cp, &["apply", "--server-side", "-f", f])
}

/// Whether the ServiceAccount may do `verb resource` (e.g. `get secrets`) in `ns`, asked of the API server by
/// impersonation.
/// `resource/status` and `resource/scale` name subresources; `resource/NAME` one object.
fn can_i(cp: &ControlPlane, sa: &str, ns: &str, verb: &str, resource: &str) -> bool {
    let as_sa = format!("--as={sa}");
    let mut args = vec!["auth", "can-i", verb, "-n", ns, as_sa.as_str()];
    let subresource;
    match resource.split_once('/') {
        Some((kind, sub @ ("status" | "scale"))) => {
            subresource = format!("--subresource={sub}");
            args.extend([kind, subresource.as_str()]);
        }
        _ => args.push(resource),
    }
    let out = cp.kubectl(&args);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl auth can-i {verb} {resource} answered {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A CRD with an open schema under another project's name (ServiceMonitor, KEDA's ScaledObject), so that their
/// objects and RBAC rules resolve on this bare control plane.
fn stand_in_crd(cp: &ControlPlane, group: &str, kind: &str, plural: &str) {
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
            "versions": [{"name": if group == "keda.sh" { "v1alpha1" } else { "v1" }, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    apply_dry_run_then_for_real(cp, &crd.to_string());
    kubectl_ok(
        cp,
        &[
            "wait",
            "--for=condition=Established",
            &format!("crd/{plural}.{group}"),
            "--timeout=30s",
        ],
    );
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/kafka-group-operator.yaml"))
            .expect("read crds/kafka-group-operator.yaml");
    let in_chart = std::fs::read_to_string(chart_dir().join("crds/kafka-group-operator.yaml"))
        .expect("read charts/kafka-group-operator/crds/kafka-group-operator.yaml");
    assert!(
        generated == in_chart,
        "the chart's CRDs differ from crds/: run `cp crds/kafka-group-operator.yaml charts/kafka-group-operator/crds/`"
    );
}

#[test]
fn helm_lint_passes_with_default_and_non_default_values() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    for sets in [
        vec![],
        vec![
            "replicaCount=3",
            "watchNamespace=team-a",
            "logFormat=text",
            "intervals.lag=10s",
        ],
        vec![
            "embedded.enabled=true",
            "embedded.persistence.enabled=true",
            "metrics.serviceMonitor.enabled=true",
        ],
        vec!["replicaCount=3", "sharding.enabled=true", "sharding.shards=12"],
    ] {
        let mut args = vec!["lint", "--strict", chart];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let (ok, stdout, stderr) = helm(&args);
        assert!(ok, "helm lint {sets:?}:\n{stdout}\n{stderr}");
        assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
    }
}

#[test]
fn default_values_render_a_hardened_single_replica_operator_for_all_namespaces() {
    let docs = documents(&render("kgo", "ops", &[]));
    let deployment = find(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--embedded-brokers=false"), "{args:?}");
    assert!(args.contains(&"--lag-metrics=partition"), "{args:?}");
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--leader-elect") || a.starts_with("--namespace")),
        "{args:?}"
    );
    assert_eq!(find(&docs, "ClusterRole").len(), 1);
    assert!(
        find(&docs, "Role").is_empty(),
        "no leader-election Role with one replica"
    );
    assert!(find(&docs, "ServiceMonitor").is_empty());
    assert_eq!(find(&docs, "Service").len(), 1, "only the metrics Service");
}

#[test]
fn sharding_runs_every_replica_with_shards_instead_of_leader_election() {
    let docs = documents(&render(
        "kgo",
        "ops",
        &[
            "replicaCount=3",
            "sharding.enabled=true",
            "leaderElection.leaseDuration=10s",
        ],
    ));
    let deployment = find(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 3);
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    for flag in [
        "--shards=8",
        "--lease-namespace=ops",
        "--lease-name=kgo-kafka-group-operator",
        "--lease-duration=10s",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a == "--leader-elect"),
        "sharding replaces leader election: {args:?}"
    );
    let roles = find(&docs, "Role");
    let shards_role = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "kgo-kafka-group-operator-shards")
        .expect("the shards Role");
    assert_eq!(shards_role["metadata"]["namespace"], "ops");
    let verbs = shards_role["rules"][0]["verbs"].to_string();
    for verb in ["get", "list", "create", "update", "delete"] {
        assert!(verbs.contains(verb), "{verb} missing in {verbs}");
    }
    assert!(
        !roles
            .iter()
            .any(|r| r["metadata"]["name"] == "kgo-kafka-group-operator-leader-election"),
        "no leader-election Role with sharding"
    );

    let docs = documents(&render("kgo", "ops", &["sharding.enabled=true", "sharding.shards=32"]));
    let args = find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--shards=32"), "{args}");
}

#[test]
fn non_default_values_render_leader_election_a_namespaced_role_and_the_embedded_broker() {
    let docs = documents(&render("kgo", "ops", &["replicaCount=3", "watchNamespace=team-a"]));
    let deployment = find(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 3);
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    for flag in ["--leader-elect", "--lease-namespace=ops", "--namespace=team-a"] {
        assert!(args.contains(flag), "{flag} missing in {args}");
    }
    assert!(find(&docs, "ClusterRole").is_empty());
    let roles = find(&docs, "Role");
    assert_eq!(
        roles.len(),
        2,
        "the watched namespace's Role and the leader-election Role"
    );
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "team-a"));
    assert!(
        roles
            .iter()
            .any(|r| r["metadata"]["namespace"] == "ops" && r.to_string().contains("leases"))
    );

    let docs = documents(&render(
        "kgo",
        "ops",
        &[
            "embedded.enabled=true",
            "embedded.persistence.enabled=true",
            "metrics.serviceMonitor.enabled=true",
        ],
    ));
    let deployment = find(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = c["args"].to_string();
    assert!(args.contains("--embedded-brokers=true"), "{args}");
    assert!(
        args.contains("--embedded-advertised-host=kgo-kafka-group-operator-broker.ops.svc"),
        "{args}"
    );
    assert!(c["env"].to_string().contains("KGO_EMBEDDED_ADVERTISED_HOST"));
    let services = find(&docs, "Service");
    let broker = services
        .iter()
        .find(|s| s["metadata"]["name"] == "kgo-kafka-group-operator-broker")
        .expect("the broker Service");
    assert_eq!(broker["spec"]["ports"][0]["port"], 9092);
    assert_eq!(find(&docs, "PersistentVolumeClaim").len(), 1);
    assert_eq!(find(&docs, "ServiceMonitor").len(), 1);

    // The broker port admits only the release namespace by default; the metrics port stays open.
    let policies = find(&docs, "NetworkPolicy");
    assert_eq!(policies.len(), 1, "one NetworkPolicy for the embedded broker");
    let ingress = &policies[0]["spec"]["ingress"];
    assert_eq!(
        ingress[0]["from"],
        serde_json::json!([{"podSelector": {}}]),
        "{ingress}"
    );
    assert_eq!(ingress[0]["ports"][0]["port"], 9092, "{ingress}");
    assert!(
        ingress[1].get("from").is_none() && ingress[1]["ports"][0]["port"] == 8080,
        "{ingress}"
    );
    assert_eq!(
        policies[0]["spec"]["podSelector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
        "the policy selects the operator's pods"
    );
    let docs = documents(&render(
        "kgo",
        "ops",
        &[
            "embedded.enabled=true",
            "embedded.allowedClients[0].namespaceSelector.matchLabels.team=shipping",
        ],
    ));
    let ingress = &find(&docs, "NetworkPolicy")[0]["spec"]["ingress"];
    assert_eq!(
        ingress[0]["from"],
        serde_json::json!([{"namespaceSelector": {"matchLabels": {"team": "shipping"}}}]),
        "{ingress}"
    );
    // Without the embedded broker there is no broker port to guard.
    assert!(find(&documents(&render("kgo", "ops", &[])), "NetworkPolicy").is_empty());
}

#[test]
fn the_values_schema_rejects_bad_values_with_a_readable_message() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    for (sets, expected) in [
        (vec!["replicaCount=-1"], "at '/replicaCount': minimum: got -1, want 0"),
        (
            vec!["sharding.enabled=true", "sharding.shards=1"],
            "at '/sharding/shards': minimum: got 1, want 2",
        ),
        (
            vec!["logFormat=xml"],
            "at '/logFormat': value must be one of 'json', 'text'",
        ),
        (
            vec!["intervals.lag=5 minutes"],
            "at '/intervals/lag': '5 minutes' does not match pattern",
        ),
        (vec!["watchNamespace=Team_A"], "at '/watchNamespace'"),
        (
            vec!["embedded.port=70000"],
            "at '/embedded/port': maximum: got 70,000, want 65,535",
        ),
        (vec!["concurrency=0"], "at '/concurrency': minimum: got 0, want 1"),
        (
            vec!["metrics.lagSeries=partitions"],
            "at '/metrics/lagSeries': value must be one of 'partition', 'group'",
        ),
        (
            vec!["replicaCount=2", "embedded.enabled=true"],
            "at '/replicaCount': maximum: got 2, want 1",
        ),
        (
            vec!["lagIntervall=5s"],
            "additional properties 'lagIntervall' not allowed",
        ),
    ] {
        let mut args = vec!["template", "kgo", chart];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let (ok, _, stderr) = helm(&args);
        assert!(!ok, "helm accepted {sets:?}");
        assert!(
            stderr.contains("values don't meet the specifications of the schema") && stderr.contains(expected),
            "{sets:?}: expected {expected:?} in:\n{stderr}"
        );
    }
    // The same through `helm install`, before anything reaches the cluster.
    let kubeconfig = ControlPlane::shared()
        .kubeconfig()
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    let (ok, _, stderr) = helm(&[
        "install",
        "kgo",
        chart,
        "--kubeconfig",
        &kubeconfig,
        "--set",
        "logFormat=yaml",
    ]);
    assert!(!ok && stderr.contains("at '/logFormat'"), "{stderr}");
}

#[tokio::test]
async fn rendered_manifests_are_accepted_dry_run_then_for_real_and_helm_installs_upgrades_and_uninstalls() {
    let cp = ControlPlane::shared();
    let (client, ns) = Scenario::namespace("chart-apply").await;
    // The ServiceMonitor kind comes with the Prometheus Operator: a stand-in CRD of the same name accepts it here.
    stand_in_crd(cp, "monitoring.coreos.com", "ServiceMonitor", "servicemonitors");

    for (release, sets) in [
        ("defaults", vec![]),
        (
            "custom",
            vec![
                "replicaCount=2".to_owned(),
                format!("watchNamespace={ns}"),
                "rbac.extraScaleTargets[0].apiGroup=argoproj.io".to_owned(),
                "rbac.extraScaleTargets[0].resources[0]=rollouts".to_owned(),
                "metrics.serviceMonitor.enabled=true".to_owned(),
                "grafanaDashboard.enabled=true".to_owned(),
            ],
        ),
        (
            "embedded",
            vec![
                "embedded.enabled=true".to_owned(),
                "embedded.persistence.enabled=true".to_owned(),
            ],
        ),
        (
            "sharded",
            vec!["replicaCount=3".to_owned(), "sharding.enabled=true".to_owned()],
        ),
    ] {
        let release = format!("{release}-{}", &ns[ns.len() - 4..]);
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let rendered = render(&release, &ns, &sets);
        let applied = apply_dry_run_then_for_real(cp, &rendered);
        assert!(applied.contains("deployment.apps/"), "{applied}");
    }
    // With the default values the ClusterRole reaches every namespace, with the same least privilege.
    let who = format!(
        "system:serviceaccount:{ns}:defaults-{}-kafka-group-operator",
        &ns[ns.len() - 4..]
    );
    for other in ["default", "kube-system"] {
        assert!(can_i(cp, &who, other, "watch", "consumergroups.kafkagroups.dev"));
        assert!(can_i(cp, &who, other, "get", "secrets"));
        assert!(can_i(cp, &who, other, "patch", "deployments.apps/scale"));
        assert!(!can_i(cp, &who, other, "list", "secrets"));
        assert!(!can_i(cp, &who, other, "update", "deployments.apps"));
        assert!(
            !can_i(cp, &who, other, "create", "leases.coordination.k8s.io"),
            "no Lease with one replica"
        );
    }
    assert!(!can_i(
        cp,
        &who,
        "",
        "create",
        "customresourcedefinitions.apiextensions.k8s.io"
    ));
    // The dashboard ConfigMap carries valid JSON.
    let cm = kubectl_ok(cp, &["get", "configmap", "-n", &ns, "-o", "json"]);
    let cms: Value = serde_json::from_str(&cm).expect("configmaps JSON");
    let dashboard = cms["items"]
        .as_array()
        .expect("items")
        .iter()
        .find_map(|c| c["data"]["kafka-group-operator.json"].as_str())
        .expect("the dashboard ConfigMap");
    let dashboard: Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()));

    // helm itself, against the same API server: install, upgrade with other values, uninstall.
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    let kubeconfig = cp.kubeconfig().to_str().expect("utf-8 path").to_owned();
    let release = format!("helm-{}", &ns[ns.len() - 4..]);
    let base = ["--kubeconfig", kubeconfig.as_str(), "--namespace", ns.as_str()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(base);
        let (ok, stdout, stderr) = helm(&all);
        assert!(ok, "helm {args:?}:\n{stdout}\n{stderr}");
        stdout
    };
    // --skip-crds: this control plane has them already (from the same file, checked above).
    let notes = run(&[
        "install",
        &release,
        chart,
        "--skip-crds",
        "--set",
        &format!("watchNamespace={ns}"),
    ]);
    assert!(
        notes.contains("STATUS: deployed") && notes.contains("kubectl get consumergroups -w"),
        "{notes}"
    );
    run(&["upgrade", &release, chart, "--reuse-values", "--set", "replicaCount=2"]);
    let replicas = kubectl_ok(
        cp,
        &[
            "get",
            "deployment",
            "-n",
            &ns,
            &format!("{release}-kafka-group-operator"),
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!(replicas, "2");
    run(&["uninstall", &release]);
    let left = kubectl_ok(
        cp,
        &[
            "get",
            "deployments,roles,serviceaccounts",
            "-n",
            &ns,
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
            "-o",
            "name",
        ],
    );
    assert!(left.trim().is_empty(), "left after uninstall: {left}");
    drop(client);
}

/// A kubeconfig with only the ServiceAccount's token (a token next to a client certificate would not be used).
fn token_kubeconfig(cp: &ControlPlane, dir: &Path, ns: &str, sa: &str) -> PathBuf {
    let token = kubectl_ok(cp, &["create", "token", sa, "-n", ns, "--duration=1h"]);
    let path = dir.join("sa.kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
         users:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: sa\n    namespace: {ns}\n\
         current-context: c\n",
        cp.server(),
        cp.dir().join("pki/ca.crt").display(),
        token.trim()
    );
    std::fs::write(&path, config).expect("write kubeconfig");
    path
}

/// The container args of the chart's Deployment, as the operator binary here understands them: flags it does not
/// know yet (added by a parallel change) are left out and printed, the metrics address moves to a free loopback
/// port.
fn operator_args(docs: &[Value], metrics_port: u16) -> Vec<String> {
    let help = Command::new(support::operator::binary())
        .args(["run", "--help"])
        .output()
        .expect("kafka-group-operator run --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let deployment = find(docs, "Deployment")[0];
    let mut args = Vec::new();
    for arg in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
    {
        let flag = arg.split('=').next().unwrap_or(arg);
        if flag.starts_with("--metrics-addr") {
            args.push(format!("--metrics-addr=127.0.0.1:{metrics_port}"));
        } else if flag.starts_with("--") && !help.split_whitespace().any(|word| word == flag) {
            eprintln!("the operator binary here has no {flag} yet: left out of the chart's args");
        } else {
            args.push(arg.to_owned());
        }
    }
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_with_the_charts_service_account_does_its_job_and_nothing_more() {
    let cp = ControlPlane::shared();
    let kafka = ApacheKafka::shared();
    let (client, ns) = Scenario::namespace("chart-rbac").await;
    stand_in_crd(cp, "keda.sh", "ScaledObject", "scaledobjects");
    let release = format!("rbac-{}", &ns[ns.len() - 4..]);
    let sets = [
        format!("watchNamespace={ns}"),
        "leaderElection.enabled=true".to_owned(),
        "intervals.group=2s".to_owned(),
        "intervals.cluster=3s".to_owned(),
        "intervals.lag=2s".to_owned(),
        "kafkaTimeout=5s".to_owned(),
        "logFormat=text".to_owned(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let rendered = render(&release, &ns, &sets);
    apply_dry_run_then_for_real(cp, &rendered);
    let docs = documents(&rendered);
    let sa = find(&docs, "ServiceAccount")[0]["metadata"]["name"]
        .as_str()
        .expect("sa name")
        .to_owned();

    // The operator process, authenticated only by the ServiceAccount's token, with the chart's args.
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = token_kubeconfig(cp, dir.path(), &ns, &sa);
    let metrics_port = free_port();
    let log = dir.path().join("operator.log");
    let mut cmd = Command::new(support::operator::binary());
    cmd.args(operator_args(&docs, metrics_port))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .env("POD_NAMESPACE", &ns)
        .env("POD_NAME", "operator-0")
        .env("RUST_LOG", "info,kafka_group_operator=debug,kube=warn");
    let mut operator = spawn_tied(cmd, &log);
    let result = std::panic::AssertUnwindSafe(does_its_job(&client, kafka, &ns))
        .catch_unwind()
        .await;
    stop(&mut operator, Duration::from_secs(10));
    let operator_log = tail(&log, 400);
    if let Err(panic) = result {
        eprintln!("operator log:\n{}", tail(&log, 80));
        std::panic::resume_unwind(panic);
    }
    // "code: 403" as kube's ErrorResponse prints it; a bare "403" also matches a port such as 38403.
    for refused in ["code: 403", "forbidden", "Forbidden"] {
        assert!(
            !operator_log.contains(refused),
            "the operator was refused something:\n{operator_log}"
        );
    }
    assert!(
        operator_log.contains("leading"),
        "it took the leader Lease:\n{operator_log}"
    );

    // Least privilege, asked of the API server for the same identity.
    let who = format!("system:serviceaccount:{ns}:{sa}");
    for (verb, resource) in [
        ("watch", "consumergroups.kafkagroups.dev"),
        ("patch", "consumergroups.kafkagroups.dev/status"),
        ("patch", "offsetresets.kafkagroups.dev/status"),
        ("delete", "offsetresets.kafkagroups.dev"),
        ("create", "workloadclaims.kafkagroups.dev"),
        ("delete", "workloadclaims.kafkagroups.dev"),
        ("update", "resetledgers.kafkagroups.dev"),
        ("get", "secrets"),
        ("create", "events.events.k8s.io"),
        ("patch", "deployments.apps/scale"),
        ("get", "statefulsets.apps/scale"),
        ("list", "horizontalpodautoscalers.autoscaling"),
        ("patch", "scaledobjects.keda.sh"),
    ] {
        assert!(
            can_i(cp, &who, &ns, verb, resource),
            "{who} should be allowed to {verb} {resource}"
        );
    }
    for (verb, resource) in [
        ("list", "secrets"),
        ("watch", "secrets"),
        ("create", "secrets"),
        ("get", "configmaps"),
        ("get", "pods"),
        ("create", "kafkaclusters.kafkagroups.dev"),
        ("delete", "consumergroups.kafkagroups.dev"),
        ("create", "consumergroups.kafkagroups.dev"),
        ("patch", "deployments.apps"),
        ("create", "deployments.apps"),
        ("delete", "horizontalpodautoscalers.autoscaling"),
        ("create", "roles.rbac.authorization.k8s.io"),
    ] {
        assert!(
            !can_i(cp, &who, &ns, verb, resource),
            "{who} must not {verb} {resource}"
        );
    }
    // Watching one namespace: nothing in the others, and nothing cluster-wide.
    assert!(!can_i(cp, &who, "default", "get", "secrets"));
    assert!(!can_i(cp, &who, "default", "list", "consumergroups.kafkagroups.dev"));
    assert!(!can_i(
        cp,
        &who,
        "",
        "list",
        "customresourcedefinitions.apiextensions.k8s.io"
    ));
    // The leader Lease: its own, in the release namespace.
    assert!(can_i(
        cp,
        &who,
        &ns,
        "update",
        &format!("leases.coordination.k8s.io/{release}-kafka-group-operator")
    ));
    assert!(!can_i(
        cp,
        &who,
        &ns,
        "update",
        "leases.coordination.k8s.io/someone-else"
    ));
}

/// What the operator must manage with the chart's RBAC: a KafkaCluster becomes Ready, a ConsumerGroup is observed
/// and its offsets initialized, its workload scaled through /scale, an OffsetReset planned, Events published.
async fn does_its_job(client: &kube::Client, kafka: &ApacheKafka, ns: &str) {
    let clusters: Api<KafkaCluster> = Api::namespaced(client.clone(), ns);
    let groups: Api<ConsumerGroup> = Api::namespaced(client.clone(), ns);
    let resets: Api<OffsetReset> = Api::namespaced(client.clone(), ns);
    let cluster: KafkaCluster = resource("KafkaCluster", "main", json!({"bootstrapServers": [kafka.bootstrap()]}));
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create KafkaCluster");
    until(&clusters, "main", T, "Ready", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;

    let topic = unique_name("chart");
    kafka.create_topic(&topic, 2);
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "consumers"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "consumers"}},
            "template": {"metadata": {"labels": {"app": "consumers"}},
                "spec": {"containers": [{"name": "c", "image": "consumer:dev"}]}}}
    }))
    .expect("deployment");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create Deployment");

    let group_id = unique_name("chart-group");
    let group: ConsumerGroup = resource(
        "ConsumerGroup",
        "orders",
        json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic],
            "offsetInit": {"policy": "earliest"}, "lagBudget": {"maxMessages": 1000},
            "scaling": {"targetRef": {"kind": "Deployment", "name": "consumers"}, "minReplicas": 1, "maxReplicas": 2,
                "lagPerReplica": 100, "cooldownSeconds": 1}}),
    );
    groups
        .create(&PostParams::default(), &group)
        .await
        .expect("create ConsumerGroup");
    until(&groups, "orders", T, "observed and initialized", |g| {
        has_condition(g, "Ready", "True", "Observed")
            && has_condition(g, "OffsetsInitialized", "True", "AllPartitionsHaveOffsets")
    })
    .await;
    // Scaled through /scale: from 0 to minReplicas.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let d = deployments.get("consumers").await.expect("get Deployment");
        if d.spec.replicas == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator never scaled the Deployment: {:?}",
            d.spec.replicas
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let reset: OffsetReset = resource(
        "OffsetReset",
        "rewind",
        json!({"groupRef": {"name": "orders"}, "to": {"earliest": {}}, "dryRun": true}),
    );
    resets
        .create(&PostParams::default(), &reset)
        .await
        .expect("create OffsetReset");
    until(&resets, "rewind", T, "Planned", |r| {
        r.status.as_ref().is_some_and(|s| s.phase == ResetPhase::Planned)
    })
    .await;

    // Events: published under the chart's RBAC (the cluster's transition to Ready has one).
    let deadline = tokio::time::Instant::now() + T;
    while events(client, ns, "main").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Event was published for KafkaCluster main"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

use futures_util::FutureExt as _;

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_operator_exports() {
    let path = chart_dir().join("dashboards/kafka-group-operator.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
    // Every family the operator registers, as `# TYPE name kind` in its /metrics text (one series each, since
    // families without series are not written).
    use kafka_group_operator::telemetry::metrics::{GroupLabels, GroupLagPoint, LagSource, Metrics, PartitionLagPoint};
    struct OneGroup;
    impl LagSource for OneGroup {
        fn visit(&self, f: &mut dyn FnMut(&GroupLagPoint<'_>)) {
            f(&GroupLagPoint {
                cluster_name: "c",
                group: "g",
                group_type: "consumer",
                members: 1,
                max_lag_seconds: Some(3),
                partitions: vec![PartitionLagPoint {
                    topic: "t",
                    partition: 0,
                    committed: 5,
                    log_end: Some(9),
                    measured_lag: None,
                    lag_seconds: Some(3),
                }],
            });
        }
    }
    let metrics = Metrics::default();
    let source: std::sync::Arc<dyn LagSource> = std::sync::Arc::new(OneGroup);
    metrics.add_lag_source(std::sync::Arc::downgrade(&source));
    let g = GroupLabels {
        cluster_name: "c".to_owned(),
        group: "g".to_owned(),
    };
    let lag = &metrics.lag;
    for family in [&lag.status, &lag.desired_replicas, &lag.current_replicas] {
        let _ = family.get_or_create(&g);
    }
    let _ = lag.rebalances.get_or_create(&g);
    metrics.reconciled("consumergroup", 0.01);
    metrics.failed("consumergroup", "kafka");
    let exported = metrics.encode();
    let mut used = std::collections::BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("kafka_") {
            used.insert(word.to_owned());
        }
    }
    for needed in [
        "kafka_consumergroup_group_lag",
        "kafka_consumergroup_group_lag_seconds",
        "kafka_group_operator_desired_replicas",
        "kafka_group_operator_current_replicas",
    ] {
        assert!(used.contains(needed), "the dashboard does not show {needed}");
    }
    for name in &used {
        let family = ["_total", "_bucket"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            exported.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {name}, which the operator does not export:\n{exported}"
        );
    }
}
