//! Lag on transactional topics (issue 16), against a real API server, the operator and each broker
//! (Apache Kafka, the embedded one): a confluent-kafka transactional producer, a `read_committed`
//! confluent-kafka group, and what the ConsumerGroup's status and `kafka-group-operator lag` then report.

#[macro_use]
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kafka_group_operator::api::{ConsumerGroup, ConsumerGroupStatus, IsolationLevel, IsolationSource};
use kafka_group_operator::kafka::NewTopic;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::time::Duration;
use support::kubelet::deployment;
use support::scenario::{Scenario, resource};
use support::wait::{has_condition, until};
use support::{TestBroker, clients, unique_name};

const T: Duration = Duration::from_secs(90);

fn status(g: &ConsumerGroup) -> ConsumerGroupStatus {
    g.status.clone().unwrap_or_default()
}

/// The `lag` command's JSON for `group`: (lag, high-watermark lag) of partition 0.
fn cli_lags(bootstrap: &str, group: &str) -> (i64, i64) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
        .args(["lag", "--bootstrap-server", bootstrap, "--group", group, "-o", "json"])
        .output()
        .expect("run kafka-group-operator lag");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lag JSON");
    let p = &report["groups"][0]["partitions"][0];
    (
        p["lag"].as_i64().expect("lag"),
        p["highWatermarkLag"].as_i64().expect("highWatermarkLag"),
    )
}

async fn a_read_committed_group_is_measured_by_the_records_it_will_still_receive(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let env = Scenario::start("lag-txn", kafka).await;
    let topic = unique_name("txn");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    let txn_id = format!("{topic}-producer");
    let group_id = unique_name("txn-group");
    {
        let (b, t, id, g) = (bootstrap.clone(), topic.clone(), txn_id.clone(), group_id.clone());
        tokio::task::spawn_blocking(move || {
            for _ in 0..3 {
                clients::transactional_produce(&b, &t, &id, 4, false);
            }
            clients::consume_committed_and_commit(&b, &t, &g, 12)
        })
        .await
        .expect("produce and consume");
    }
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic],
        "lagBudget": {"maxMessages": 5}});
    env.groups()
        .create(&PostParams::default(), &resource("ConsumerGroup", "eos", spec))
        .await
        .expect("create");

    // Caught up behind the last COMMIT marker: lag 0, time lag 0, within budget; the marker shows only in the
    // high-watermark lag.
    let g = until(&env.groups(), "eos", T, "lag measured", |g| {
        status(g).isolation_source == Some(IsolationSource::Detected)
            && has_condition(g, "LagWithinBudget", "True", "WithinBudget")
    })
    .await;
    let s = status(&g);
    assert_eq!(
        (s.total_lag, s.high_watermark_lag, s.isolation),
        (Some(0), Some(1), Some(IsolationLevel::ReadCommitted)),
        "{s:?}"
    );
    assert_eq!(s.oldest_unconsumed_record, None, "{s:?}");
    assert_eq!(cli_lags(&bootstrap, &group_id), (0, 1));

    // An aborted transaction adds no lag.
    {
        let (b, t, id) = (bootstrap.clone(), topic.clone(), txn_id.clone());
        tokio::task::spawn_blocking(move || clients::transactional_produce(&b, &t, &id, 20, true))
            .await
            .expect("aborted transaction");
    }
    let g = until(&env.groups(), "eos", T, "the aborted transaction seen", |g| {
        status(g).high_watermark_lag == Some(22)
    })
    .await;
    let s = status(&g);
    assert_eq!((s.total_lag, &s.oldest_unconsumed_record), (Some(0), &None), "{s:?}");
    assert!(has_condition(&g, "LagWithinBudget", "True", "WithinBudget"), "{s:?}");
    assert_eq!(cli_lags(&bootstrap, &group_id), (0, 22));

    // A real backlog on top is exactly its record count, and its time lag is known.
    {
        let (b, t, id) = (bootstrap.clone(), topic.clone(), txn_id.clone());
        tokio::task::spawn_blocking(move || clients::transactional_produce(&b, &t, &id, 12, false))
            .await
            .expect("committed transaction");
    }
    let g = until(&env.groups(), "eos", T, "the backlog seen", |g| {
        status(g).high_watermark_lag == Some(35)
    })
    .await;
    let s = status(&g);
    assert_eq!(s.total_lag, Some(12), "{s:?}");
    assert!(s.oldest_unconsumed_record.is_some(), "{s:?}");
    until(&env.groups(), "eos", T, "over budget", |g| {
        has_condition(g, "LagWithinBudget", "False", "BudgetExceeded")
    })
    .await;
    assert_eq!(cli_lags(&bootstrap, &group_id), (12, 35));
    assert!(
        consumable_fetches(&env) > 0.0,
        "the transactional partition's headers were read"
    );
}

/// The sampler's header Fetches for consumable lag on cluster `main`, from the operator's /metrics.
fn consumable_fetches(env: &Scenario) -> f64 {
    let cluster = format!("{}/main", env.ns);
    env.operator
        .as_ref()
        .expect("operator")
        .metric(
            "kafka_group_operator_consumable_lag_fetches_total",
            &[("cluster_name", cluster.as_str())],
        )
        .expect("the consumable-lag Fetch counter")
}

/// Plain topics keep their cost: a lagging group whose committed offset moves and whose log grows is scanned
/// again and again without a single consumable-lag Fetch.
async fn a_plain_topic_costs_no_consumable_lag_fetch(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let env = Scenario::start("lag-plain", kafka).await;
    let topic = unique_name("plain");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    clients::produce(&bootstrap, &topic, 30);
    let group_id = unique_name("plain-group");
    let tp = kafka_group_operator::kafka::TopicPartition::new(&topic, 0);
    let commit = |offset: i64| {
        let tp = tp.clone();
        let (kafka, group) = (&env.kafka, group_id.clone());
        async move {
            kafka
                .commit_offsets(&group, &std::collections::BTreeMap::from([(tp, offset)]))
                .await
                .expect("commit")
        }
    };
    commit(10).await;
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic]});
    env.groups()
        .create(&PostParams::default(), &resource("ConsumerGroup", "plain", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "plain", T, "lag 20 with its time lag", |g| {
        let s = status(g);
        s.total_lag == Some(20) && s.oldest_unconsumed_record.is_some()
    })
    .await;
    let s = status(&g);
    assert_eq!(
        (s.high_watermark_lag, s.isolation, s.isolation_source),
        (
            Some(20),
            Some(IsolationLevel::ReadUncommitted),
            Some(IsolationSource::Default)
        ),
        "{s:?}"
    );
    commit(15).await;
    until(&env.groups(), "plain", T, "lag 15", |g| status(g).total_lag == Some(15)).await;
    clients::produce(&bootstrap, &topic, 5);
    until(&env.groups(), "plain", T, "lag 20 again", |g| {
        status(g).total_lag == Some(20)
    })
    .await;
    assert_eq!(consumable_fetches(&env), 0.0);
}

async fn a_group_declared_read_uncommitted_keeps_the_high_watermark_lag(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let env = Scenario::start("lag-txn-ru", kafka).await;
    let topic = unique_name("txn-ru");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    let group_id = unique_name("txn-ru-group");
    {
        let (b, t, g) = (bootstrap.clone(), topic.clone(), group_id.clone());
        tokio::task::spawn_blocking(move || {
            clients::transactional_produce(&b, &t, &format!("{t}-producer"), 4, false);
            clients::consume_committed_and_commit(&b, &t, &g, 4)
        })
        .await
        .expect("produce and consume");
    }
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic],
        "isolation": "readUncommitted"});
    env.groups()
        .create(&PostParams::default(), &resource("ConsumerGroup", "ru", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "ru", T, "lag measured", |g| {
        status(g).total_lag.is_some()
    })
    .await;
    let s = status(&g);
    assert_eq!(
        (s.total_lag, s.high_watermark_lag, s.isolation, s.isolation_source),
        (
            Some(1),
            Some(1),
            Some(IsolationLevel::ReadUncommitted),
            Some(IsolationSource::Declared)
        ),
        "{s:?}"
    );
    // The metrics follow the declaration too.
    let lag = env.operator.as_ref().expect("operator").metric(
        "kafka_consumergroup_group_lag",
        &[("group", group_id.as_str()), ("partition", "0")],
    );
    assert_eq!(lag, Some(1.0));
}

/// `minReplicas: 0` with `activationLag: 0`: markers and an aborted transaction (high-watermark lag 22) leave the
/// workload at zero; three committed records wake it.
async fn a_workload_scaled_to_zero_is_woken_by_records_not_by_transaction_markers(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let env = Scenario::start("lag-txn-scale", kafka).await;
    let topic = unique_name("txn-scale");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("topic");
    let txn_id = format!("{topic}-producer");
    let group_id = unique_name("txn-scale-group");
    {
        let (b, t, id, g) = (bootstrap.clone(), topic.clone(), txn_id.clone(), group_id.clone());
        tokio::task::spawn_blocking(move || {
            clients::transactional_produce(&b, &t, &id, 4, false);
            clients::consume_committed_and_commit(&b, &t, &g, 4);
            clients::transactional_produce(&b, &t, &id, 20, true);
        })
        .await
        .expect("produce, consume, abort");
    }
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .create(&PostParams::default(), &deployment("eos-workers", 0, &[]))
        .await
        .expect("deployment");
    let spec = json!({"clusterRef": {"name": "main"}, "groupId": group_id, "topics": [topic],
        "scaling": {"targetRef": {"kind": "Deployment", "name": "eos-workers"}, "minReplicas": 0, "maxReplicas": 1,
            "lagPerReplica": 100, "activationLag": 0}});
    env.groups()
        .create(&PostParams::default(), &resource("ConsumerGroup", "eos-scale", spec))
        .await
        .expect("create");
    let g = until(&env.groups(), "eos-scale", T, "a decision on the markers", |g| {
        let s = status(g);
        s.high_watermark_lag == Some(22) && s.desired_replicas.is_some()
    })
    .await;
    let s = status(&g);
    assert_eq!((s.total_lag, s.desired_replicas), (Some(0), Some(0)), "{s:?}");
    let replicas = deployments.get("eos-workers").await.expect("deployment").spec.replicas;
    assert_eq!(replicas, Some(0));

    {
        let (b, t, id) = (bootstrap.clone(), topic.clone(), txn_id.clone());
        tokio::task::spawn_blocking(move || clients::transactional_produce(&b, &t, &id, 3, false))
            .await
            .expect("committed transaction");
    }
    let g = until(&env.groups(), "eos-scale", T, "woken by the backlog", |g| {
        status(g).desired_replicas == Some(1)
    })
    .await;
    assert_eq!(status(&g).total_lag, Some(3), "{:?}", status(&g));
    until(&deployments, "eos-workers", T, "one replica", |d: &Deployment| {
        d.spec.replicas == Some(1)
    })
    .await;
}

on_both_brokers!(
    a_read_committed_group_is_measured_by_the_records_it_will_still_receive,
    a_plain_topic_costs_no_consumable_lag_fetch,
    a_group_declared_read_uncommitted_keeps_the_high_watermark_lag,
    a_workload_scaled_to_zero_is_woken_by_records_not_by_transaction_markers,
);
