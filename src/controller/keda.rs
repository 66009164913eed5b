//! KEDA's ScaledObjects: a reset pauses the one that scales its workload (`autoscaling.keda.sh/paused-replicas`)
//! while the consumers must stay down, and unpauses it afterwards. KEDA not installed is not an error.

use super::Error;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

pub const PAUSE_ANNOTATION: &str = "autoscaling.keda.sh/paused-replicas";

fn scaled_objects(kube: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(kube.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// The ScaledObject that scales the workload `kind`/`name` and that a reset must pause (None if KEDA is not
/// installed, none targets the workload, or it is already paused by someone else, whose pause is then left
/// alone).
pub async fn scaled_object_to_pause(
    kube: &kube::Client,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<Option<String>, Error> {
    let list = match scaled_objects(kube, namespace).list(&ListParams::default()).await {
        Ok(l) => l,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(list
        .items
        .into_iter()
        .find(|so| {
            let t = &so.data["spec"]["scaleTargetRef"];
            let target_kind = t["kind"].as_str().unwrap_or("Deployment");
            t["name"].as_str() == Some(name) && target_kind == kind
        })
        .filter(|so| !so.annotations().contains_key(PAUSE_ANNOTATION))
        .map(|so| so.name_any()))
}

/// Pauses (at zero replicas) or unpauses a ScaledObject. A ScaledObject that is gone needs no unpausing.
pub async fn set_paused(kube: &kube::Client, namespace: &str, scaled_object: &str, paused: bool) -> Result<(), Error> {
    let value = if paused {
        serde_json::json!("0")
    } else {
        serde_json::Value::Null
    };
    let patch = serde_json::json!({"metadata": {"annotations": {PAUSE_ANNOTATION: value}}});
    match scaled_objects(kube, namespace)
        .patch(scaled_object, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 && !paused => Ok(()),
        Err(e) => Err(e.into()),
    }
}
