//! Proves the test kubelet (tests/support/kubelet.rs) is real: a Deployment's or StatefulSet's replicas become
//! confluent-kafka consumers that Kafka's own tools see in the group, scaling starts and stops them, and the
//! workload's status reports them.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};
use support::clients::produce;
use support::kubelet::{Kubelet, deployment, template};
use support::{ApacheKafka, ControlPlane, unique_name};

/// Consumers take about a second each to start on an idle machine; other test binaries may run concurrently.
const DEADLINE: Duration = Duration::from_secs(120);
const GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

/// The pod template of a consumer workload: `env` as the kubelet reads it.
/// A member row of `kafka-consumer-groups --describe --members`, by column name.
type MemberRow = std::collections::BTreeMap<String, String>;

/// Runs a Kafka CLI tool off the async runtime (a JVM takes a second or two to start).
async fn kafka_tool(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ApacheKafka::shared().tool(GROUP_COMMAND, &args)
    })
    .await
    .expect("Kafka tool thread")
}

/// `kafka-consumer-groups --describe --group G --members`, parsed by the header's column names (the table
/// has a GROUP-INSTANCE-ID column since Kafka 4). Empty when the group has no members.
async fn members(group: &str) -> Vec<MemberRow> {
    let out = kafka_tool(&["--describe", "--group", group, "--members"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.find(|l| l.starts_with("GROUP ")) else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split_whitespace().collect();
    lines
        .map(|l| {
            columns
                .iter()
                .zip(l.split_whitespace())
                .map(|(c, v)| ((*c).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Polls `members` until `check` accepts them: the kubelet's ready line comes from the client, the tool
/// asks the coordinator, and a rebalance may be completing in between.
async fn members_until(group: &str, what: &str, check: impl Fn(&[MemberRow]) -> bool) -> Vec<MemberRow> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rows = members(group).await;
        if check(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "group {group}: {what}; members now: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kafka-consumer-groups --describe --group G --state`: the STATE column (`Stable`, `Empty`, …).
async fn group_state(group: &str) -> String {
    let out = kafka_tool(&["--describe", "--group", group, "--state"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    [
        "Stable",
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Reconciling",
        "Assigning",
        "Dead",
    ]
    .into_iter()
    .find(|s| stdout.split_whitespace().any(|w| w == *s))
    .map_or_else(|| format!("unknown: {stdout}"), str::to_owned)
}

/// The sum of the group's committed offsets (`kafka-consumer-groups --describe --offsets`) and the rows.
async fn committed(group: &str) -> (i64, Vec<support::kafka::GroupOffsetRow>) {
    let group = group.to_owned();
    let rows = tokio::task::spawn_blocking(move || ApacheKafka::shared().describe_group_offsets(&group))
        .await
        .expect("Kafka tool thread");
    (rows.iter().filter_map(|r| r.current_offset).sum(), rows)
}

fn client_ids(rows: &[MemberRow]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| r["CLIENT-ID"].clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_replicas_run_as_consumers_in_the_kafka_group_and_in_its_status() {
    let cp = ControlPlane::shared();
    let kafka = ApacheKafka::shared();
    let client = cp.client().await;
    let ns = cp.fresh_namespace(&client, "kubelet").await;
    let (topic, group) = (unique_name("kubelet"), unique_name("kubelet-group"));
    kafka.create_topic(&topic, 2);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let env = [("KAFKA_GROUP_ID", group.as_str()), ("KAFKA_TOPICS", topic.as_str())];
    deployments
        .create(&PostParams::default(), &deployment("orders", 2, &env))
        .await
        .expect("create deployment");
    let kubelet = Kubelet::start(client, &ns, "orders", &kafka.bootstrap()).await;
    kubelet.wait_running(2, DEADLINE).await;
    assert_eq!(kubelet.running(), 2);

    let rows = members_until(&group, "two members", |rows| rows.len() == 2).await;
    assert_eq!(client_ids(&rows), ["orders-0", "orders-1"], "{rows:#?}");
    let pods = kubelet.pods();
    for row in &rows {
        assert!(
            pods.iter().any(|p| p.member_id.as_deref() == Some(&row["CONSUMER-ID"])),
            "member {row:?} is none of the kubelet's pods {pods:?}"
        );
    }

    let deployment = deployments.get("orders").await.expect("get deployment");
    let status = deployment.status.expect("the kubelet writes the status");
    assert_eq!(status.replicas, Some(2), "{status:?}");
    assert_eq!(status.ready_replicas, Some(2), "{status:?}");
    assert_eq!(status.available_replicas, Some(2), "{status:?}");
    assert_eq!(status.updated_replicas, Some(2), "{status:?}");
    assert_eq!(status.observed_generation, deployment.metadata.generation, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_to_zero_empties_the_group_keeps_its_offsets_and_scaling_up_starts_consumers_again() {
    let cp = ControlPlane::shared();
    let kafka = ApacheKafka::shared();
    let client = cp.client().await;
    let ns = cp.fresh_namespace(&client, "kubelet").await;
    let (topic, group) = (unique_name("kubelet"), unique_name("kubelet-group"));
    kafka.create_topic(&topic, 2);
    produce(&kafka.bootstrap(), &topic, 20);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let env = [("KAFKA_GROUP_ID", group.as_str()), ("KAFKA_TOPICS", topic.as_str())];
    deployments
        .create(&PostParams::default(), &deployment("billing", 2, &env))
        .await
        .expect("create deployment");
    let kubelet = Kubelet::start(client, &ns, "billing", &kafka.bootstrap()).await;
    kubelet.wait_running(2, DEADLINE).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (sum, rows) = committed(&group).await;
        if sum == 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumers did not commit all 20 records: {rows:?}\n{}",
            kubelet.report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let scale = |replicas: i32| {
        let deployments = deployments.clone();
        async move {
            deployments
                .patch_scale(
                    "billing",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                )
                .await
                .expect("patch /scale");
        }
    };
    scale(0).await;
    kubelet.wait_running(0, DEADLINE).await;
    assert_eq!(kubelet.running(), 0);
    assert_eq!(group_state(&group).await, "Empty");
    let (sum, rows) = committed(&group).await;
    assert_eq!(
        (sum, rows.len()),
        (20, 2),
        "the group's offsets outlive its members: {rows:?}"
    );
    let status = deployments.get_status("billing").await.expect("status").status;
    // Zero counts are left out of the stored status (omitempty), as in a real cluster.
    let status = status.expect("the kubelet writes the status");
    assert_eq!(status.replicas.unwrap_or(0), 0, "{status:?}");
    assert_eq!(status.ready_replicas.unwrap_or(0), 0, "{status:?}");

    scale(1).await;
    kubelet.wait_running(1, DEADLINE).await;
    assert_eq!(
        kubelet.pods().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["billing-0"]
    );

    deployments
        .delete("billing", &DeleteParams::default())
        .await
        .expect("delete deployment");
    kubelet.wait_running(0, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_protocol_members_join_a_kip_848_group_even_without_partitions() {
    let cp = ControlPlane::shared();
    let kafka = ApacheKafka::shared();
    let client = cp.client().await;
    let ns = cp.fresh_namespace(&client, "kubelet").await;
    let (topic, group) = (unique_name("kubelet"), unique_name("kubelet-group"));
    kafka.create_topic(&topic, 1); // one of the two members gets no partition

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let env = [
        ("KAFKA_GROUP_ID", group.as_str()),
        ("KAFKA_TOPICS", topic.as_str()),
        ("KAFKA_GROUP_PROTOCOL", "consumer"),
    ];
    deployments
        .create(&PostParams::default(), &deployment("events", 2, &env))
        .await
        .expect("create deployment");
    let kubelet = Kubelet::start(client, &ns, "events", &kafka.bootstrap()).await;
    kubelet.wait_running(2, DEADLINE).await;

    let rows = members_until(&group, "two members", |rows| rows.len() == 2).await;
    assert_eq!(client_ids(&rows), ["events-0", "events-1"], "{rows:#?}");
    let mut partitions: Vec<&str> = rows.iter().map(|r| r["#PARTITIONS"].as_str()).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, ["0", "1"], "{rows:#?}");
    let out = kafka_tool(&["--list", "--type"]).await;
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [group.as_str(), "Consumer"]),
        "{group} is not a KIP-848 (Consumer type) group:\n{list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn statefulset_with_static_membership_runs_members_named_after_their_pods() {
    let cp = ControlPlane::shared();
    let kafka = ApacheKafka::shared();
    let client = cp.client().await;
    let ns = cp.fresh_namespace(&client, "kubelet").await;
    let (topic, group) = (unique_name("kubelet"), unique_name("kubelet-group"));
    kafka.create_topic(&topic, 2);

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let env = [
        ("KAFKA_GROUP_ID", group.as_str()),
        ("KAFKA_TOPICS", topic.as_str()),
        ("KAFKA_STATIC_MEMBERSHIP", "true"),
    ];
    let statefulset: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "ledger"},
        "spec": {
            "replicas": 2,
            "serviceName": "ledger",
            "selector": {"matchLabels": {"app": "ledger"}},
            "template": template("ledger", &env),
        }
    }))
    .expect("statefulset JSON");
    statefulsets
        .create(&PostParams::default(), &statefulset)
        .await
        .expect("create statefulset");
    let kubelet = Kubelet::start_for_statefulset(client, &ns, "ledger", &kafka.bootstrap()).await;
    kubelet.wait_running(2, DEADLINE).await;

    let rows = members_until(&group, "two members", |rows| rows.len() == 2).await;
    let mut instance_ids: Vec<&str> = rows.iter().map(|r| r["GROUP-INSTANCE-ID"].as_str()).collect();
    instance_ids.sort_unstable();
    assert_eq!(instance_ids, ["ledger-0", "ledger-1"], "{rows:#?}");

    let statefulset = statefulsets.get("ledger").await.expect("get statefulset");
    let status = statefulset.status.expect("the kubelet writes the status");
    assert_eq!(status.replicas, 2, "{status:?}");
    assert_eq!(status.ready_replicas, Some(2), "{status:?}");
    assert_eq!(status.current_replicas, Some(2), "{status:?}");
    assert_eq!(
        status.observed_generation, statefulset.metadata.generation,
        "{status:?}"
    );
}
