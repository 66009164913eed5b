//! Coordinators: FindCoordinator for many groups at once (cached), and running a request on the
//! coordinator of each group with retries that re-resolve coordinators.

use crate::kafka::client::KafkaClient;
use crate::kafka::connection::Connection;
use crate::kafka::error::{KafkaError, check};
use crate::wire::Api;
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

impl KafkaClient {
    /// Coordinators (node ids) of `groups`: one FindCoordinator for all uncached groups (v4+), or one per
    /// group on older brokers.
    pub async fn find_coordinators(&self, groups: &[String]) -> Result<HashMap<String, i32>, KafkaError> {
        let mut found = HashMap::with_capacity(groups.len());
        let mut missing = Vec::new();
        {
            let cache = self.inner.coordinators.lock().unwrap_or_else(|p| p.into_inner());
            for g in groups {
                match cache.get(g) {
                    Some(node) => {
                        found.insert(g.clone(), *node);
                    }
                    None => missing.push(g.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        missing.sort();
        missing.dedup();
        let looked_up = self
            .with_retries("FindCoordinator", || {
                let missing = missing.clone();
                async move { self.lookup_coordinators(&missing).await }
            })
            .await?;
        let mut cache = self.inner.coordinators.lock().unwrap_or_else(|p| p.into_inner());
        for (g, node) in looked_up {
            cache.insert(g.clone(), node);
            found.insert(g, node);
        }
        Ok(found)
    }

    async fn lookup_coordinators(&self, groups: &[String]) -> Result<Vec<(String, i32)>, KafkaError> {
        let conn = self.any_broker().await?;
        let api = Api(FindCoordinatorRequest::KEY);
        if let Ok(version) = conn.version_in::<FindCoordinatorRequest>(4, i16::MAX) {
            // Kafka caps the keys per request only by size: one request carries every group (chunks of 10,000
            // keep a request below a few hundred KiB), as the Java AdminClient sends them.
            let chunks = groups.chunks(10_000).map(|chunk| {
                let request = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(chunk.iter().map(|g| StrBytes::from_string(g.clone())).collect());
                let conn = conn.clone();
                async move { conn.send_version(&request, version).await }
            });
            let mut out = Vec::with_capacity(groups.len());
            for response in join_all(chunks).await {
                for c in response?.coordinators {
                    let key = c.key.to_string();
                    check(c.error_code, conn.addr(), api, || format!("group {key}"))?;
                    out.push((key, *c.node_id));
                }
            }
            Ok(out)
        } else {
            let version = conn.version_of::<FindCoordinatorRequest>()?;
            let lookups = groups.iter().map(|g| {
                let request = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_key(StrBytes::from_string(g.clone()));
                let conn = conn.clone();
                async move {
                    let r = conn.send_version(&request, version).await?;
                    check(r.error_code, conn.addr(), api, || format!("group {g}"))?;
                    Ok::<_, KafkaError>((g.clone(), *r.node_id))
                }
            });
            join_all(lookups).await.into_iter().collect()
        }
    }

    /// Runs `per_coordinator(connection, groups on it)` once per coordinator of `groups`, all at once, and
    /// retries groups whose result was retriable (re-resolving their coordinators) within the deadline.
    pub(super) async fn on_coordinators<T, F, Fut>(
        &self,
        operation: &str,
        groups: &[String],
        per_coordinator: F,
    ) -> HashMap<String, Result<T, KafkaError>>
    where
        F: Fn(Arc<Connection>, i32, Vec<String>) -> Fut + Clone,
        Fut: Future<Output = Vec<(String, Result<T, KafkaError>)>>,
    {
        let mut unique = groups.to_vec();
        unique.sort();
        unique.dedup();
        self.with_batch_retries(operation, unique, |pending| {
            let per_coordinator = per_coordinator.clone();
            async move {
                let coordinators = match self.find_coordinators(&pending).await {
                    Ok(c) => c,
                    Err(e) => return pending.into_iter().map(|g| (g, Err(e.clone()))).collect(),
                };
                let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
                for g in pending {
                    let node = coordinators.get(&g).copied().unwrap_or(-1);
                    by_node.entry(node).or_default().push(g);
                }
                let calls = by_node.into_iter().map(|(node, groups)| {
                    let per_coordinator = per_coordinator.clone();
                    async move {
                        let conn = match self.broker(node).await {
                            Ok(c) => c,
                            Err(e) => {
                                for g in &groups {
                                    self.forget_coordinator(g);
                                }
                                return groups.into_iter().map(|g| (g, Err(e.clone()))).collect();
                            }
                        };
                        let results = per_coordinator(conn, node, groups).await;
                        for (g, r) in &results {
                            if let Err(e) = r
                                && e.invalidates_metadata()
                            {
                                self.forget_coordinator(g);
                            }
                        }
                        results
                    }
                });
                join_all(calls).await.into_iter().flatten().collect::<Vec<_>>()
            }
        })
        .await
    }

    /// Runs `call` on the coordinator of one group, retrying what is retriable (re-resolving the coordinator).
    pub(super) async fn on_group_coordinator<F, Fut>(
        &self,
        operation: &str,
        group: &str,
        call: F,
    ) -> Result<(), KafkaError>
    where
        F: Fn(Arc<Connection>) -> Fut + Clone,
        Fut: Future<Output = Result<(), KafkaError>>,
    {
        let results = self
            .on_coordinators(operation, &[group.to_owned()], |conn, _node, groups| {
                let call = call.clone();
                async move {
                    let result = call(conn).await;
                    groups.into_iter().map(|g| (g, result.clone())).collect()
                }
            })
            .await;
        take_one(results, group)
    }
}

/// Gives every requested group an answer: one the broker left out is reported as a retriable omission.
pub(super) fn answer_missing<T>(
    out: &mut Vec<(String, Result<T, KafkaError>)>,
    asked: &[String],
    broker: &str,
    api: Api,
) {
    let answered: std::collections::HashSet<String> = out.iter().map(|(k, _)| k.clone()).collect();
    for g in asked {
        if !answered.contains(g) {
            out.push((
                g.clone(),
                Err(KafkaError::Response {
                    broker: broker.to_owned(),
                    api,
                    error: ResponseError::CoordinatorNotAvailable,
                    context: format!("group {g} missing from the response"),
                }),
            ));
        }
    }
}

pub(super) fn take_one<T>(mut results: HashMap<String, Result<T, KafkaError>>, key: &str) -> Result<T, KafkaError> {
    results
        .remove(key)
        .unwrap_or_else(|| Err(KafkaError::Config(format!("no result for {key}"))))
}
