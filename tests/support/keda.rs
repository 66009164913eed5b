//! KEDA's ScaledObject as the tests need it: its CRD, reduced to what the operator reads (KEDA itself does not
//! run in the harness), and an Api over a namespace's ScaledObjects.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use std::time::Duration;

pub fn scaled_objects(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Installs the ScaledObject CRD (idempotent) and waits until it is served.
pub async fn install_crd(client: &kube::Client) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "scaledobjects.keda.sh"},
        "spec": {"group": "keda.sh", "scope": "Namespaced",
            "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        "scaledobjects.keda.sh",
        &PatchParams::apply("kgo-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply KEDA CRD");
    tokio::time::timeout(
        Duration::from_secs(30),
        kube::runtime::wait::await_condition(
            api,
            "scaledobjects.keda.sh",
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established")
    .expect("watch");
}
