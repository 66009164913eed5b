//! Proves the Kubernetes half of the test harness is real: a kube-apiserver + etcd that kube-rs and kubectl
//! talk to, serving CRDs generated from Rust types and the `/scale` subresource.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use support::ControlPlane;

/// A throwaway resource, only to prove CRDs generated from Rust types are served.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "harness.kafkagroups.dev", version = "v1", kind = "HarnessProbe", namespaced)]
struct HarnessProbeSpec {
    message: String,
    replicas: i32,
}

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn crd_generated_from_a_rust_type_is_served_and_round_trips_an_object() {
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    let ns = cp.fresh_namespace(&client, "probe").await;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = HarnessProbe::crd();
    let crd_name = crd.name_any();
    crds.patch(
        &crd_name,
        &PatchParams::apply("kgo-harness-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    tokio::time::timeout(
        DEADLINE,
        await_condition(crds, &crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .expect("watch CRD");

    let probes: Api<HarnessProbe> = Api::namespaced(client, &ns);
    let spec = HarnessProbeSpec {
        message: "hello from kube-rs".into(),
        replicas: 3,
    };
    probes
        .create(&PostParams::default(), &HarnessProbe::new("probe", spec.clone()))
        .await
        .expect("create object");
    let back = probes.get("probe").await.expect("read object back");
    assert_eq!(back.spec, spec);
    assert_eq!(back.namespace().as_deref(), Some(ns.as_str()));
}

#[tokio::test]
async fn deployment_replicas_change_through_the_scale_subresource() {
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    let ns = cp.fresh_namespace(&client, "scale").await;
    let deployments: Api<Deployment> = Api::namespaced(client, &ns);
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "consumer"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {
                "metadata": {"labels": {"app": "consumer"}},
                "spec": {"containers": [{"name": "consumer", "image": "example.invalid/consumer:1"}]}
            }
        }
    }))
    .expect("deployment JSON");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let scale = deployments.get_scale("consumer").await.expect("get /scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));

    let patch = serde_json::json!({"spec": {"replicas": 0}});
    deployments
        .patch_scale("consumer", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch /scale");
    let after = deployments.get("consumer").await.expect("get deployment");
    assert_eq!(after.spec.replicas, Some(0));
}

#[tokio::test]
async fn kubectl_reaches_the_control_plane_with_the_generated_kubeconfig() {
    let cp = ControlPlane::shared();
    let out = cp.kubectl(&["get", "namespaces", "-o", "name"]);
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l == "namespace/default"),
        "kubectl get ns printed {stdout}"
    );

    let version = cp.kubectl(&["version", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&version.stdout).expect("kubectl version JSON");
    assert_eq!(json["serverVersion"]["gitVersion"], "v1.37.2", "{json}");
}
