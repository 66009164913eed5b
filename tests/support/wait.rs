//! Waiting on custom resources and reading their Events, with deadlines (never fixed sleeps).

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::wait::await_condition;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;

/// Waits until `check` holds for the object `name`, or panics after `timeout` with the object's last state.
pub async fn until<K>(api: &Api<K>, name: &str, timeout: Duration, what: &str, check: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let cond = move |obj: Option<&K>| obj.is_some_and(&check);
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        _ => {
            let last = api.get_opt(name).await.ok().flatten();
            panic!("{name}: not {what} within {timeout:?}; last seen: {last:#?}");
        }
    }
}

/// Status and reason of condition `type_` in a `status.conditions` list (via JSON, for any resource).
pub fn condition<K: serde::Serialize>(obj: &K, type_: &str) -> Option<(String, String, String)> {
    let value = serde_json::to_value(obj).ok()?;
    value["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// Whether condition `type_` has `status` and `reason`.
pub fn has_condition<K: serde::Serialize>(obj: &K, type_: &str, status: &str, reason: &str) -> bool {
    condition(obj, type_).is_some_and(|(s, r, _)| s == status && r == reason)
}

/// Events about `name` in `namespace`, as (type, reason, note).
pub async fn events(client: &kube::Client, namespace: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until an Event with `reason` about `name` exists; returns its note.
pub async fn event(client: &kube::Client, namespace: &str, name: &str, reason: &str, timeout: Duration) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let all = events(client, namespace, name).await;
        if let Some((_, _, note)) = all.iter().find(|(_, r, _)| r == reason) {
            return note.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!("no {reason} Event about {name} within {timeout:?}; saw {all:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Name of an object, for messages.
pub fn name_of<K: Resource>(obj: &K) -> String {
    obj.name_any()
}
