//! Lag in messages and time, the lag budget, and scaling on lag, against a real API server, consumers run by
//! the kubelet stand-in, and each broker: Apache Kafka and the embedded broker (`on_both_brokers!`).

#[macro_use]
mod support;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::ConsumerGroup;
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use support::kubelet::{Kubelet, deployment};
use support::scenario::{Scenario, resource};
use support::wait::{event, has_condition, until};
use support::{TestBroker, clients, unique_name};

const T: Duration = Duration::from_secs(90);

type Env = Scenario;

async fn setup(prefix: &str, kafka: &dyn TestBroker) -> Env {
    Scenario::start(prefix, kafka).await
}

fn group(name: &str, spec: serde_json::Value) -> ConsumerGroup {
    resource("ConsumerGroup", name, spec)
}

async fn time_lag_is_the_age_of_the_oldest_unconsumed_record_while_producers_are_idle(kafka: &'static dyn TestBroker) {
    let env = setup("lag-time", kafka).await;
    let topic = unique_name("lag");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    // Ten records, one a second, ending two minutes ago; then nothing.
    let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let start = now - 130_000;
    let (b, t) = (kafka.bootstrap(), topic.clone());
    tokio::task::spawn_blocking(move || clients::produce_with_timestamps(&b, &t, 0, 10, start, 1000))
        .await
        .expect("produce");
    let group_id = unique_name("lag-group");
    env.kafka
        .commit_offsets(&group_id, &BTreeMap::from([(TopicPartition::new(&topic, 0), 3)]))
        .await
        .expect("commit");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic]});
    env.groups()
        .create(&PostParams::default(), &group("lagging", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "lagging", T, "time lag known", |g| {
        g.status.as_ref().is_some_and(|s| s.oldest_unconsumed_record.is_some())
    })
    .await;
    let status = g.status.expect("status");
    assert_eq!(status.total_lag, Some(7));
    // The record at the committed offset 3 was produced at start + 3 s.
    let oldest = status.oldest_unconsumed_record.expect("time").0.as_millisecond();
    assert_eq!(oldest / 1000, (start + 3000) / 1000);
    // The metric agrees with the producer's timestamps within a second, although nothing is being produced.
    let (_, metrics) = env
        .operator
        .as_ref()
        .expect("operator")
        .http_get("/metrics")
        .expect("metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("kafka_consumergroup_group_lag_seconds{") && l.contains(&group_id))
        .unwrap_or_else(|| panic!("no lag_seconds series:\n{metrics}"));
    let seconds: i64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("value");
    let expected = (k8s_openapi::jiff::Timestamp::now().as_millisecond() - (start + 3000)) / 1000;
    assert!(
        (seconds - expected).abs() <= 3,
        "metric {seconds}s, producer says {expected}s"
    );
    assert!(metrics.contains(&format!("kafka_consumergroup_group_lag{{cluster_name=\"{}/main\",group=\"{group_id}\",group_type=\"classic\",topic=\"{topic}\",partition=\"0\"}} 7", env.ns)), "{metrics}");
}

async fn the_lag_budget_is_reported_when_breached_and_when_met_again(kafka: &'static dyn TestBroker) {
    let env = setup("lag-budget", kafka).await;
    let topic = unique_name("budget");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    clients::produce(&kafka.bootstrap(), &topic, 20);
    let group_id = unique_name("budget-group");
    let tp = TopicPartition::new(&topic, 0);
    env.kafka
        .commit_offsets(&group_id, &BTreeMap::from([(tp.clone(), 5)]))
        .await
        .expect("commit");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic], "lagBudget": {"maxMessages": 10}});
    env.groups()
        .create(&PostParams::default(), &group("budget", spec))
        .await
        .expect("create");
    until(&env.groups(), "budget", T, "over budget", |g| {
        has_condition(g, "LagWithinBudget", "False", "BudgetExceeded")
    })
    .await;
    let note = event(&env.client, &env.ns, "budget", "LagBudgetExceeded", T).await;
    assert!(note.contains("15"), "{note}");
    env.kafka
        .commit_offsets(&group_id, &BTreeMap::from([(tp, 18)]))
        .await
        .expect("commit");
    let g = until(&env.groups(), "budget", T, "within budget", |g| {
        has_condition(g, "LagWithinBudget", "True", "WithinBudget")
    })
    .await;
    event(&env.client, &env.ns, "budget", "LagBudgetMet", T).await;
    assert!(g.status.and_then(|s| s.lag_status).is_some());
}

async fn scaling_follows_lag_up_down_to_zero_and_back_without_losing_a_record(kafka: &'static dyn TestBroker) {
    let env = setup("lag-scale", kafka).await;
    let topic = unique_name("scale");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 4)])
        .await
        .expect("topic");
    let group_id = unique_name("scale-group");
    // 20 ms per record: 50 records/s per consumer.
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let settings = [
        ("KAFKA_GROUP_ID", group_id.as_str()),
        ("KAFKA_TOPICS", topic.as_str()),
        ("KAFKA_PROCESSING_DELAY_MS", "20"),
    ];
    deployments
        .create(&PostParams::default(), &deployment("workers", 0, &settings))
        .await
        .expect("deployment");
    let kubelet = Kubelet::start(env.client.clone(), &env.ns, "workers", &kafka.bootstrap()).await;

    // Record every replica count the operator writes.
    let replicas = std::sync::Arc::new(std::sync::Mutex::new(vec![0]));
    let seen = replicas.clone();
    let watch_api = deployments.clone();
    let recorder = tokio::spawn(async move {
        let mut stream = watcher::watch_object(watch_api, "workers").boxed();
        while let Some(Ok(Some(d))) = stream.next().await {
            let r = d.spec.replicas.unwrap_or(0);
            let mut v = seen.lock().expect("lock");
            if v.last() != Some(&r) {
                v.push(r);
            }
        }
    });
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic], "offsetInit": {"policy": "earliest"},
        "scaling": {"targetRef": {"kind": "Deployment", "name": "workers"}, "minReplicas": 0, "maxReplicas": 4,
            "lagPerReplica": 100, "catchUpSeconds": 5, "scaleDownStabilizationSeconds": 8, "cooldownSeconds": 3}});
    env.groups()
        .create(&PostParams::default(), &group("workers", spec))
        .await
        .expect("create");
    until(&env.groups(), "workers", T, "initialized", |g| {
        has_condition(g, "OffsetsInitialized", "True", "AllPartitionsHaveOffsets")
    })
    .await;

    let produced_total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let burst = |n: usize| {
        let (b, t) = (kafka.bootstrap(), topic.clone());
        produced_total.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        tokio::task::spawn_blocking(move || clients::produce(&b, &t, n))
    };
    burst(1200).await.expect("burst");
    let history = |v: &std::sync::Arc<std::sync::Mutex<Vec<i32>>>| v.lock().expect("lock").clone();
    // Up from zero, to several replicas while the backlog is large.
    wait_for(T, || history(&replicas).iter().any(|r| *r >= 2)).await;
    // Drained, then down to zero after the stabilization window.
    wait_for(Duration::from_secs(150), || {
        history(&replicas).last() == Some(&0) && history(&replicas).len() > 2
    })
    .await;
    // New data wakes it up again.
    burst(200).await.expect("burst");
    let woke_from = history(&replicas).len();
    wait_for(T, || history(&replicas)[woke_from..].iter().any(|r| *r >= 1)).await;
    // Every record was consumed: the committed offsets reach the log end on every partition.
    let total = produced_total.load(std::sync::atomic::Ordering::SeqCst) as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    loop {
        let committed: i64 = env
            .kafka
            .group_offsets(&group_id)
            .await
            .expect("offsets")
            .values()
            .map(|c| c.offset)
            .sum();
        if committed == total {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "committed {committed} of {total}; replicas {:?}\n{}",
            history(&replicas),
            kubelet.report()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sequence = history(&replicas);
    assert_eq!(sequence[0], 0, "{sequence:?}");
    assert!(
        sequence.iter().all(|r| *r <= 4),
        "never more than the partitions: {sequence:?}"
    );
    support::wait::event(&env.client, &env.ns, "workers", "Scaled", Duration::from_secs(10)).await;
    recorder.abort();
}

async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scaling_refuses_a_workload_that_a_horizontal_pod_autoscaler_also_scales(kafka: &'static dyn TestBroker) {
    let env = setup("lag-hpa", kafka).await;
    let topic = unique_name("hpa");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .expect("topic");
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .create(
            &PostParams::default(),
            &deployment("workers", 1, &[("KAFKA_GROUP_ID", "g"), ("KAFKA_TOPICS", &topic)]),
        )
        .await
        .expect("deployment");
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(env.client.clone(), &env.ns);
    let hpa = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "workers"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "workers"}, "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}
    }))
    .expect("hpa");
    hpas.create(&PostParams::default(), &hpa).await.expect("hpa");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": unique_name("hpa-group"), "topics": [topic],
        "scaling": {"targetRef": {"kind": "Deployment", "name": "workers"}, "maxReplicas": 2, "lagPerReplica": 10}});
    env.groups()
        .create(&PostParams::default(), &group("workers", spec))
        .await
        .expect("create");
    until(&env.groups(), "workers", T, "refusing", |g| {
        has_condition(g, "Scaling", "False", "HorizontalPodAutoscalerConflict")
    })
    .await;
    assert_eq!(
        deployments.get("workers").await.expect("get").spec.replicas,
        Some(1),
        "untouched"
    );
}

on_both_brokers!(
    the_lag_budget_is_reported_when_breached_and_when_met_again,
    scaling_refuses_a_workload_that_a_horizontal_pod_autoscaler_also_scales,
    time_lag_is_the_age_of_the_oldest_unconsumed_record_while_producers_are_idle,
    scaling_follows_lag_up_down_to_zero_and_back_without_losing_a_record,
);
