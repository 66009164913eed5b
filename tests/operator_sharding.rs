//! Sharding for fleets (issue 19), against a real API server: three operator processes with `--shards 6` share 30
//! embedded KafkaClusters — each cluster served by exactly one replica (its shard's Lease holder, seen in the
//! replicas' metrics), an OffsetReset whose owner freezes mid-flight applied exactly once by the replica that
//! takes the shard over, and the shards of a replica killed with SIGKILL taken over within the Lease duration,
//! their clusters Ready again on their new owners.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kafka_group_operator::api::{ConsumerGroup, KafkaCluster, OffsetReset, ResetPhase};
use kafka_group_operator::controller::shards::{lease_name, member_lease_name, shard_of};
use kafka_group_operator::kafka::{NewTopic, TopicPartition};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::clients::{self, GroupMember, GroupProtocol};
use support::kubelet::deployment;
use support::operator::{Operator, metric_in};
use support::recorders::OffsetHistory;
use support::scenario::{Scenario, resource};
use support::wait::{events, has_condition, until};
use support::{ControlPlane, EmbeddedKafka, unique_name};
use tokio::time::Instant;

const SHARDS: u32 = 6;
const CLUSTERS: usize = 30;
const LEASE: &str = "kgo-fleet";
const LEASE_DURATION: Duration = Duration::from_secs(4);
const T: Duration = Duration::from_secs(60);
const READY: &str = "kafka_group_operator_cluster_ready";
const COMMITS: &str = "kafka_group_operator_offset_commits_total";

/// The three replicas (None once killed) and the API objects they share.
struct Fleet {
    client: kube::Client,
    ns: String,
    replicas: Vec<Option<Operator>>,
}

impl Fleet {
    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn clusters(&self) -> Api<KafkaCluster> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Operator)> {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
    }

    /// The replica a Lease holder identity (`<host>-<pid>`) names.
    fn replica_of(&self, holder: &str) -> Option<usize> {
        self.live()
            .find(|(_, r)| holder.ends_with(&format!("-{}", r.pid())))
            .map(|(i, _)| i)
    }

    /// Which live replica holds each shard's Lease now (None: free, expired, or a dead replica's).
    async fn owners(&self) -> Vec<Option<usize>> {
        let now = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        let mut owners = Vec::new();
        for shard in 0..SHARDS {
            let lease = self
                .leases()
                .get_opt(&lease_name(LEASE, shard, SHARDS))
                .await
                .expect("get lease");
            let spec = lease.and_then(|l| l.spec).unwrap_or_default();
            let fresh = spec.renew_time.as_ref().is_some_and(|t| {
                now <= t.0.as_millisecond() + i64::from(spec.lease_duration_seconds.unwrap_or(0)) * 1000
            });
            owners.push(spec.holder_identity.filter(|_| fresh).and_then(|h| self.replica_of(&h)));
        }
        owners
    }

    /// Waits until every shard is held by a live replica and each holds `per_replica` of them.
    async fn wait_spread(&self, per_replica: usize, timeout: Duration) -> Vec<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let owners = self.owners().await;
            if owners.iter().all(Option::is_some) {
                let owners: Vec<usize> = owners.into_iter().flatten().collect();
                if self
                    .live()
                    .all(|(i, _)| owners.iter().filter(|o| **o == i).count() == per_replica)
                {
                    return owners;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the shards did not spread {per_replica} per replica within {timeout:?}: {:?}",
                self.owners().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Each live replica's /metrics (empty when it does not answer).
    fn scrape(&self) -> BTreeMap<usize, String> {
        self.live()
            .map(|(i, r)| {
                let body = r.http_get("/metrics").map(|(_, b)| b).unwrap_or_default();
                (i, body)
            })
            .collect()
    }

    /// Waits until every cluster is Ready on the replica holding its shard's Lease (`owners`), and reported by
    /// no other replica; also each replica's `shard_owned` gauge says the shards it holds.
    async fn wait_each_cluster_served_once(&self, clusters: &[(String, u32)], owners: &[usize], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let scraped = self.scrape();
            let mut wrong = Vec::new();
            for (name, shard) in clusters {
                let owner = owners[*shard as usize];
                let label = format!("{}/{name}", self.ns);
                for (i, body) in &scraped {
                    let ready = metric_in(body, READY, &[("cluster_name", label.as_str())]);
                    let expected = (*i == owner).then_some(1.0);
                    if ready != expected {
                        wrong.push(format!("{name} (shard {shard}) on replica {i}: {ready:?}"));
                    }
                }
            }
            for (i, body) in &scraped {
                for shard in 0..SHARDS {
                    let owned = metric_in(
                        body,
                        "kafka_group_operator_shard_owned",
                        &[("shard", shard.to_string().as_str())],
                    );
                    let expected = if owners[shard as usize] == *i { 1.0 } else { 0.0 };
                    if owned != Some(expected) {
                        wrong.push(format!("shard {shard} on replica {i}: owned {owned:?}"));
                    }
                }
            }
            if wrong.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not every cluster served by exactly its shard's owner within {timeout:?}: {wrong:#?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `n` distinct ports free now for the embedded brokers, below Linux's ephemeral range (32768 and up), where a
/// client connection's local port can never take one before its broker binds it (a port from `free_port` can).
fn broker_ports(n: usize) -> Vec<u16> {
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 10;
    (start..32_000)
        .chain(20_000..start)
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .take(n)
        .collect()
}

/// An admin commit, retried while a fresh broker answers NOT_COORDINATOR.
async fn commit_admin(env: &Scenario, group: &str, offsets: &BTreeMap<TopicPartition, i64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match env.kafka.commit_offsets(group, offsets).await {
            Ok(()) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "admin commit to {group}: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

fn phase(r: &OffsetReset) -> Option<ResetPhase> {
    r.status.as_ref().map(|s| s.phase)
}

fn commits(op: &Operator, ns: &str, name: &str) -> u64 {
    op.metric(COMMITS, &[("namespace", ns), ("name", name)])
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_thirty_embedded_clusters_and_take_over_each_others_shards() {
    let started = Instant::now();
    let cp = ControlPlane::shared();
    let (client, ns) = Scenario::namespace("shards").await;
    let lease_ns = format!("--lease-namespace={ns}");
    let shards = format!("--shards={SHARDS}");
    let lease_name_flag = format!("--lease-name={LEASE}");
    let lease_duration = format!("--lease-duration={}s", LEASE_DURATION.as_secs());
    let flags = [
        shards.as_str(),
        lease_ns.as_str(),
        lease_name_flag.as_str(),
        lease_duration.as_str(),
        "--embedded-brokers=true",
        "--embedded-bind-address=127.0.0.1",
    ];
    let mut fleet = Fleet {
        client: client.clone(),
        ns: ns.clone(),
        replicas: (0..3).map(|_| Some(Operator::start(cp, &ns, &flags))).collect(),
    };

    // 1. Thirty embedded clusters: each Ready, served by exactly the replica holding its shard.
    let mut clusters = Vec::new();
    for (i, port) in broker_ports(CLUSTERS).into_iter().enumerate() {
        let name = format!("c{i:02}");
        let spec = json!({"embedded": {"port": port, "authentication": {"mechanism": "none"}}});
        let created = fleet
            .clusters()
            .create(&PostParams::default(), &resource("KafkaCluster", &name, spec))
            .await
            .expect("create KafkaCluster");
        let uid = created.uid().expect("uid");
        clusters.push((name, shard_of(&uid, SHARDS)));
    }
    for (name, _) in &clusters {
        until(&fleet.clusters(), name, T, "Ready", |c| {
            has_condition(c, "Ready", "True", "Connected")
        })
        .await;
    }
    let owners = fleet.wait_spread(2, T).await;
    fleet.wait_each_cluster_served_once(&clusters, &owners, T).await;
    eprintln!("30 clusters served once each after {:?}", started.elapsed());

    // 2. An OffsetReset mid-flight when its shard's owner freezes past its Lease: the replica that takes the
    //    shard over finishes it, the frozen one never acts after it wakes up, the offsets arrive once.
    let kafka = EmbeddedKafka::shared();
    let env = Scenario::with_cluster(client.clone(), ns.clone(), kafka, None).await;
    let main = fleet.clusters().get("main").await.expect("get main");
    let main_shard = shard_of(&main.uid().expect("uid"), SHARDS);
    let topic = unique_name("sharded");
    env.kafka
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .expect("topic");
    for p in 0..2 {
        let (b, t) = (env.bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || clients::produce_with_timestamps(&b, &t, p, 10, 1_700_000_000_000, 1000))
            .await
            .expect("produce");
    }
    let group = unique_name("sharded-group");
    let at_end = (0..2).map(|p| (TopicPartition::new(&topic, p), 10)).collect();
    commit_admin(&env, &group, &at_end).await;
    env.groups()
        .create(
            &PostParams::default(),
            &resource::<ConsumerGroup>(
                "ConsumerGroup",
                "orders",
                json!({"clusterRef": {"name": "main"}, "groupId": group, "topics": [topic]}),
            ),
        )
        .await
        .expect("create ConsumerGroup");
    let owner = owners[main_shard as usize];
    // The group's lag is in its shard owner's metrics only.
    let deadline = Instant::now() + T;
    loop {
        let scraped = fleet.scrape();
        let seen: Vec<usize> = scraped
            .iter()
            .filter(|(_, body)| {
                metric_in(
                    body,
                    "kafka_consumergroup_group_lag",
                    &[("group", group.as_str()), ("partition", "0")],
                )
                .is_some()
            })
            .map(|(i, _)| *i)
            .collect();
        if seen == vec![owner] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group's lag should be served by replica {owner} only, is by {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("consumers", 2, &[]))
        .await
        .expect("deployment");
    let outsider_topic = unique_name("outsider");
    env.kafka
        .create_topics(&[NewTopic::new(&outsider_topic, 1)])
        .await
        .expect("outsider topic");
    let (bootstrap, member_group) = (env.bootstrap.clone(), group.clone());
    let outsider = tokio::task::block_in_place(move || {
        GroupMember::join(&bootstrap, &outsider_topic, &member_group, GroupProtocol::Classic, None)
    });
    let offsets = OffsetHistory::start(&env.kafka, &group);
    env.resets()
        .create(
            &PostParams::default(),
            &resource::<OffsetReset>(
                "OffsetReset",
                "rewind",
                json!({"groupRef": {"name": "orders"}, "to": {"offset": 4}, "strategy": "ScaleDown",
                    "scaleTargetRef": {"kind": "Deployment", "name": "consumers"}, "timeoutSeconds": 120}),
            ),
        )
        .await
        .expect("create OffsetReset");
    until(&env.resets(), "rewind", T, "WaitingForInactive", |r| {
        phase(r) == Some(ResetPhase::WaitingForInactive)
    })
    .await;
    fleet.replicas[owner].as_mut().expect("owner").pause();
    let paused_at = Instant::now();
    let takeover = loop {
        if let Some(new) = fleet.owners().await[main_shard as usize].filter(|o| *o != owner) {
            break new;
        }
        assert!(paused_at.elapsed() < T, "shard {main_shard} was not taken over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "shard {main_shard} of a frozen replica taken over after {:?}",
        paused_at.elapsed()
    );
    outsider.leave();
    let done = until(&env.resets(), "rewind", T, "finished", |r| {
        matches!(phase(r), Some(ResetPhase::Succeeded | ResetPhase::Failed))
    })
    .await;
    assert_eq!(phase(&done), Some(ResetPhase::Succeeded), "{:#?}", done.status);
    fleet.replicas[owner].as_mut().expect("owner").resume();
    let woke = Instant::now();
    // The woken replica finds its Lease taken at its next look (the Lease duration at most) and lets go.
    let plan: support::recorders::Offsets = [((topic.clone(), 0), 4), ((topic.clone(), 1), 4)].into();
    while woke.elapsed() < LEASE_DURATION * 2 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    offsets.sync().await;
    assert_eq!(offsets.arrivals(&plan), 1, "committed once: {:?}", offsets.summary());
    let applied = events(&client, &ns, "rewind")
        .await
        .iter()
        .filter(|(_, reason, _)| reason == "Applied")
        .count();
    assert_eq!(applied, 1, "one Applied Event");
    let replicas = |i: usize| fleet.replicas[i].as_ref().expect("replica");
    assert_eq!(
        commits(replicas(takeover), &ns, "rewind"),
        1,
        "the new owner committed once"
    );
    assert_eq!(
        commits(replicas(owner), &ns, "rewind"),
        0,
        "the frozen owner committed after waking:\n{}",
        replicas(owner).log()
    );
    assert_eq!(
        deployments.get("consumers").await.expect("deployment").spec.replicas,
        Some(2),
        "the workload is back at its count"
    );

    // 3. SIGKILL a replica: its shards are taken over within the Lease duration (plus one renewal round of
    //    the others) and its clusters are Ready again on their new owners, each still served once.
    let owners = fleet.wait_spread(2, T).await;
    let victim = (0..3).find(|i| *i != takeover).expect("a victim");
    let victim_shards: BTreeSet<u32> = (0..SHARDS).filter(|s| owners[*s as usize] == victim).collect();
    fleet.replicas[victim].take().expect("victim").kill();
    let killed_at = Instant::now();
    let owners = loop {
        let owners = fleet.owners().await;
        if owners.iter().all(Option::is_some) {
            break owners.into_iter().flatten().collect::<Vec<usize>>();
        }
        assert!(
            killed_at.elapsed() < T,
            "the dead replica's shards {victim_shards:?} were not taken over: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let taken_over_after = killed_at.elapsed();
    eprintln!("shards {victim_shards:?} of a killed replica taken over after {taken_over_after:?}");
    // Expiry (the Lease duration) + one round of the survivors (a third of it) + the API round trips.
    assert!(
        taken_over_after < LEASE_DURATION + LEASE_DURATION / 3 + Duration::from_secs(2),
        "takeover took {taken_over_after:?}"
    );
    fleet.wait_each_cluster_served_once(&clusters, &owners, T).await;
    eprintln!(
        "clusters of the killed replica Ready on their new owners {:?} after the kill",
        killed_at.elapsed()
    );
    let moved: Vec<&String> = clusters
        .iter()
        .filter(|(_, s)| victim_shards.contains(s))
        .map(|(n, _)| n)
        .collect();
    assert!(!moved.is_empty(), "the killed replica served clusters");
    for name in moved {
        let c = fleet.clusters().get(name).await.expect("get cluster");
        assert!(
            has_condition(&c, "Ready", "True", "Connected"),
            "{name}: {:?}",
            c.status
        );
    }

    // 4. A graceful shutdown (SIGTERM) releases the shards at once: the last replica takes them over well within
    //    the Lease duration, and the stopped replica's membership Lease is gone.
    let owners = fleet.wait_spread(3, T).await;
    let leaving = owners[0];
    let held_by_leaving = owners
        .iter()
        .position(|o| *o == leaving)
        .expect("a shard of the leaving replica") as u32;
    let identity = fleet
        .leases()
        .get(&lease_name(LEASE, held_by_leaving, SHARDS))
        .await
        .expect("get lease")
        .spec
        .and_then(|s| s.holder_identity)
        .expect("holder");
    let membership = member_lease_name(LEASE, &identity);
    assert!(
        fleet.leases().get_opt(&membership).await.expect("get").is_some(),
        "a live replica keeps its membership Lease {membership}"
    );
    let mut stopped = fleet.replicas[leaving].take().expect("leaving replica");
    stopped.stop();
    let exited = Instant::now();
    // Released Leases are free at once; the survivor takes one per round (a third of the Lease duration).
    let released: Vec<usize> = (0..SHARDS as usize).filter(|s| owners[*s] == leaving).collect();
    let mut first_taken = None;
    let owners = loop {
        let owners = fleet.owners().await;
        if first_taken.is_none() && released.iter().any(|s| owners[*s].is_some()) {
            first_taken = Some(exited.elapsed());
        }
        if owners.iter().all(Option::is_some) {
            break owners.into_iter().flatten().collect::<Vec<usize>>();
        }
        assert!(exited.elapsed() < T, "released shards not taken over: {owners:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first_taken = first_taken.unwrap_or_else(|| exited.elapsed());
    eprintln!(
        "shards {released:?} released on SIGTERM: the first taken over {first_taken:?}, all {:?} after the replica exited",
        exited.elapsed()
    );
    assert!(
        first_taken < LEASE_DURATION,
        "a released shard waited for its expiry: {first_taken:?}"
    );
    assert!(
        fleet.leases().get_opt(&membership).await.expect("get").is_none(),
        "the stopped replica deleted its membership Lease {membership}"
    );
    fleet.wait_each_cluster_served_once(&clusters, &owners, T).await;
    eprintln!("done after {:?}", started.elapsed());
}
