//! KafkaCluster reconciler: connect (ApiVersions, authentication, metadata) and report `Ready` with the
//! cluster id, broker count and Kafka version, or `Ready=False` with a reason a user can act on. Re-checks
//! every interval (with backoff while failing), re-reading referenced Secrets each time.

use super::embedded::FINALIZER as EMBEDDED_FINALIZER;
use super::finalizers::set_finalizer;
use super::shard_gate::{self, Gate};
use super::status::{apply_status, now};
use super::{Context, Error};
use crate::api::KafkaCluster;
use crate::api::conditions::{Progress, READY, condition, is_true, set_condition, set_progress};
use crate::kafka::KafkaError;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONTROLLER: &str = "kafkacluster";

pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<KafkaCluster> = super::scoped_api(&ctx);
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    super::shard_gate::index_clusters(&ctx, controller.store());
    let results = controller
        .reconcile_all_on(ctx.ownership_changes())
        .with_config(super::runner_config(&ctx))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    super::drain(CONTROLLER, results).await;
}

/// Why a cluster is not ready, as a condition reason.
fn reason_for(error: &Error) -> &'static str {
    match error {
        Error::Config(_) => "InvalidConfiguration",
        Error::InsecureCredentials(_) => "InsecureCredentials",
        Error::TypeMismatch(_) => "TypeMismatch",
        Error::Kube(_) => "KubernetesError",
        Error::Kafka(e) => kafka_reason(e),
    }
}

/// kstatus's view of a failed connection: Stalled (Failed) when only a change of the KafkaCluster or its
/// Secrets can fix it (credentials refused, TLS not trusted, credentials that would go out in clear text);
/// otherwise Reconciling (InProgress): an unreachable broker or a Secret not created yet may come right on
/// their own, and the operator keeps retrying either way.
fn progress_after_failure(reason: &str, error: &Error) -> Progress {
    let needs_a_change = matches!(reason, "AuthenticationFailed" | "TLSFailed" | "InsecureCredentials");
    Progress::after_failure(reason, error.to_string(), needs_a_change)
}

fn kafka_reason(error: &KafkaError) -> &'static str {
    match error {
        KafkaError::Authentication { .. } => "AuthenticationFailed",
        KafkaError::Tls { .. } => "TLSFailed",
        KafkaError::Config(_) => "InvalidConfiguration",
        KafkaError::DeadlineExceeded { last, .. } => kafka_reason(last),
        KafkaError::NoBrokers { last, .. } => kafka_reason(last),
        KafkaError::Connect { .. } | KafkaError::Disconnected { .. } | KafkaError::Timeout { .. } => "Unreachable",
        KafkaError::NoAttemptFinished(_) => "Unreachable",
        _ => "KafkaError",
    }
}

#[tracing::instrument(skip_all, fields(namespace = cluster.namespace().unwrap_or_default(), name = cluster.name_any()))]
async fn reconcile(cluster: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = format!("kc/{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
    let api: Api<KafkaCluster> = Api::namespaced(ctx.kube.clone(), &cluster.namespace().unwrap_or_default());
    let metric_name = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
    if let Gate::Elsewhere(shard) = shard_gate::cluster(&ctx, &cluster) {
        // Another replica's shard: no write; whatever this replica ran for it (broker, sampler) stops.
        tracing::debug!(shard, "not this replica's shard");
        let_go(&cluster, &ctx).await;
        return Ok(Action::requeue(shard_gate::ELSEWHERE_RECHECK));
    }
    let serves_broker = cluster.finalizers().iter().any(|f| f == EMBEDDED_FINALIZER);
    if cluster.meta().deletion_timestamp.is_some() {
        let_go(&cluster, &ctx).await;
        if serves_broker {
            set_finalizer(&api, cluster.as_ref(), EMBEDDED_FINALIZER, false).await?;
        }
        return Ok(Action::await_change());
    }
    // An embedded cluster holds a finalizer so that its broker stops with it; one that became external stops
    // the broker now.
    if cluster.spec.embedded.is_none() && serves_broker {
        ctx.clients.stop_embedded(&cluster).await;
    }
    set_finalizer(
        &api,
        cluster.as_ref(),
        EMBEDDED_FINALIZER,
        cluster.spec.embedded.is_some(),
    )
    .await?;
    let outcome = async {
        let client = ctx.clients.refresh(&ctx.kube, &cluster, &ctx.config.client).await?;
        let info = client.cluster_info().await?;
        // Needed by the retention guard; a cluster that denies DescribeConfigs still works without it.
        let retention = client.offsets_retention_minutes().await.ok().flatten();
        ctx.clients.set_retention_minutes(&cluster, retention);
        Ok::<_, Error>(info)
    }
    .await;

    let old = cluster.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = cluster.metadata.generation;
    let was_ready = is_true(&old.conditions, READY);
    let (ready, action) = match &outcome {
        Ok(info) => {
            status.cluster_id = info.cluster_id.clone();
            status.broker_count = Some(info.broker_count as i32);
            status.kafka_version = Some(info.kafka_version.clone());
            let message = format!(
                "connected to {} broker(s), Kafka {}",
                info.broker_count, info.kafka_version
            );
            set_condition(
                &mut status.conditions,
                condition(READY, true, "Connected", message, cluster.metadata.generation, now()),
            );
            set_progress(
                &mut status.conditions,
                Progress::Done,
                cluster.metadata.generation,
                now(),
            );
            ctx.reset_backoff(&key);
            (true, Action::requeue(ctx.config.cluster_interval))
        }
        Err(e) => {
            let reason = reason_for(e);
            set_condition(
                &mut status.conditions,
                condition(READY, false, reason, e.to_string(), cluster.metadata.generation, now()),
            );
            set_progress(
                &mut status.conditions,
                progress_after_failure(reason, e),
                cluster.metadata.generation,
                now(),
            );
            ctx.metrics.failed(CONTROLLER, e.kind());
            (false, Action::requeue(ctx.backoff(&key, ctx.config.cluster_interval)))
        }
    };
    apply_status(&api, cluster.as_ref(), cluster.status.as_ref(), &status).await?;
    ctx.metrics.set_cluster_ready(&metric_name, Some(ready));

    // Events only on transitions, so a steady failure does not flood the namespace.
    let reason_changed = crate::api::conditions::find(&old.conditions, READY).map(|c| c.reason.as_str())
        != crate::api::conditions::find(&status.conditions, READY).map(|c| c.reason.as_str());
    if ready != was_ready || (!ready && reason_changed) {
        let (type_, reason, note) = match &outcome {
            Ok(info) => (
                EventType::Normal,
                "Connected".to_owned(),
                format!("Connected to {} broker(s)", info.broker_count),
            ),
            Err(e) => (EventType::Warning, reason_for(e).to_owned(), e.to_string()),
        };
        let event = Event {
            type_,
            reason,
            note: Some(note),
            action: "Connect".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }
    ctx.metrics.reconciled(CONTROLLER, started.elapsed().as_secs_f64());
    Ok(action)
}

/// Stops what this replica runs for a cluster it no longer reconciles: the embedded broker it served, the
/// client, the lag sampler and the cluster's metrics.
async fn let_go(cluster: &KafkaCluster, ctx: &Context) {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let serves_broker = cluster.finalizers().iter().any(|f| f == EMBEDDED_FINALIZER);
    if cluster.spec.embedded.is_some() || serves_broker {
        ctx.clients.stop_embedded(cluster).await;
    } else {
        ctx.clients.remove(&ns, &name);
    }
    ctx.samplers.remove(&ns, &name);
    ctx.metrics.set_cluster_ready(&format!("{ns}/{name}"), None);
}

fn error_policy(cluster: Arc<KafkaCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = cluster.name_any(), error = %error, "kafkacluster reconcile failed");
    ctx.metrics.failed(CONTROLLER, error.kind());
    let key = format!("kc/{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
    Action::requeue(ctx.backoff(&key, Duration::from_secs(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_what_a_user_can_fix() {
        let auth = Error::Kafka(KafkaError::Authentication {
            broker: "b:9093".into(),
            mechanism: "SCRAM-SHA-512".into(),
            message: "invalid credentials".into(),
        });
        assert_eq!(reason_for(&auth), "AuthenticationFailed");
        let unreachable = Error::Kafka(KafkaError::DeadlineExceeded {
            operation: "Metadata".into(),
            deadline: Duration::from_secs(1),
            last: Box::new(KafkaError::Connect {
                broker: "b:9092".into(),
                message: "refused".into(),
            }),
        });
        assert_eq!(reason_for(&unreachable), "Unreachable");
        assert_eq!(
            reason_for(&Error::Config("Secret pw does not exist".into())),
            "InvalidConfiguration"
        );
    }
}
