//! Adding and removing one finalizer of ours, as a compare-and-swap on the object's resourceVersion.

use super::Error;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Makes `finalizer` present on `obj` exactly when `wanted`; a no-op when it already is (or is not). An object
/// already gone counts as done.
pub async fn set_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str, wanted: bool) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let has = obj.finalizers().iter().any(|f| f == finalizer);
    if wanted == has {
        return Ok(());
    }
    let mut finalizers: Vec<String> = obj.finalizers().iter().filter(|f| *f != finalizer).cloned().collect();
    if wanted {
        finalizers.push(finalizer.to_owned());
    }
    // The resourceVersion makes this a compare-and-swap: a concurrent change of the list fails the patch.
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
    });
    match api
        .patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
