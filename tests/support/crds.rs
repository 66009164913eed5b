//! Installs the operator's CRDs (generated from the Rust types) into a control plane and waits until
//! they are served.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use std::time::Duration;

/// Server-side applies every CRD of `kafka_group_operator::api::crds()` and waits until each is Established.
pub async fn install(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kafka_group_operator::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply("kgo-tests").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established in 30 s"))
        .unwrap_or_else(|e| panic!("watch CRD {name}: {e}"));
    }
}
