//! The consumer workload, reached through its `/scale` subresource (Deployment, StatefulSet, or any kind that
//! has one), and the HorizontalPodAutoscalers that might fight over its replica count.

use super::Error;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

/// A workload by apiVersion, kind and name, in one namespace.
pub struct Workload {
    api: Api<DynamicObject>,
    pub kind: String,
    pub name: String,
}

impl Workload {
    pub fn new(kube: &kube::Client, namespace: &str, api_version: &str, kind: &str, name: &str) -> Workload {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        Workload {
            api: Api::namespaced_with(kube.clone(), namespace, &ApiResource::from_gvk(&gvk)),
            kind: kind.to_owned(),
            name: name.to_owned(),
        }
    }

    /// `spec.replicas` as `/scale` reports it.
    pub async fn replicas(&self) -> Result<i32, Error> {
        let scale = self.api.get_scale(&self.name).await?;
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
    }

    /// `spec.replicas` and the resourceVersion it was read at, for a write that must not race another.
    pub async fn replicas_at_version(&self) -> Result<(i32, Option<String>), Error> {
        let scale = self.api.get_scale(&self.name).await?;
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        Ok((replicas, scale.metadata.resource_version))
    }

    /// Writes `spec.replicas` through `/scale`, failing with 409 Conflict if the workload changed since
    /// `resource_version` was read (when one is given).
    pub async fn set_replicas_at_version(&self, replicas: i32, resource_version: Option<String>) -> Result<(), Error> {
        let patch = match resource_version {
            Some(rv) => serde_json::json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": replicas}}),
            None => serde_json::json!({"spec": {"replicas": replicas}}),
        };
        self.api
            .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Whether a HorizontalPodAutoscaler that KEDA does not manage targets this workload (it would undo any
    /// replica count the operator writes).
    pub async fn has_foreign_hpa(&self, kube: &kube::Client, namespace: &str) -> Result<bool, Error> {
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(kube.clone(), namespace);
        let list = api.list(&ListParams::default()).await?;
        Ok(list.items.iter().any(|hpa| {
            let keda = hpa.labels().contains_key("scaledobject.keda.sh/name")
                || hpa.owner_references().iter().any(|o| o.kind == "ScaledObject");
            let t = &hpa.spec.scale_target_ref;
            !keda && t.kind == self.kind && t.name == self.name
        }))
    }
}
