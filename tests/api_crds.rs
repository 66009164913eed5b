//! The CRDs: generated from the Rust types without drift, accepted by a real API server, documented for
//! `kubectl explain`, and every CEL rule rejecting what it should with a message a user understands.

mod support;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use support::ControlPlane;

#[test]
fn checked_in_crds_equal_the_generated_ones() {
    let generated = kafka_group_operator::api::crds_yaml().expect("render CRDs");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/kafka-group-operator.yaml");
    let checked_in = std::fs::read_to_string(&path).expect("read crds/kafka-group-operator.yaml");
    assert!(
        generated == checked_in,
        "crds/kafka-group-operator.yaml is out of date: run `cargo run -- crds > crds/kafka-group-operator.yaml`"
    );
}

fn api_for(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kafkagroups.dev", "v1alpha1", kind);
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "kafkagroups.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("object JSON")
}

async fn setup() -> (kube::Client, String) {
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    support::crds::install(&client).await;
    let ns = cp.fresh_namespace(&client, "crd").await;
    (client, ns)
}

/// Creating `spec` must fail with HTTP 422 and a message containing `expected`.
async fn assert_rejected(client: &kube::Client, ns: &str, kind: &str, spec: Value, expected: &str) {
    let err = api_for(client, ns, kind)
        .create(&PostParams::default(), &object(kind, "invalid", spec.clone()))
        .await
        .expect_err(&format!("{kind} {spec} must be rejected"));
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains(expected), "{kind} {spec}: {}", status.message);
        }
        other => panic!("unexpected error {other}"),
    }
}

#[tokio::test]
async fn valid_objects_are_accepted() {
    let (client, ns) = setup().await;
    let cluster = json!({
        "bootstrapServers": ["kafka-0.kafka:9092", "[::1]:9093"],
        "tls": {"caSecretRef": {"name": "ca", "key": "ca.crt"}, "clientCertificate": {"secretName": "client"}},
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "alice", "passwordSecretRef": {"name": "pw", "key": "password"}}
    });
    let created = api_for(&client, &ns, "KafkaCluster")
        .create(&PostParams::default(), &object("KafkaCluster", "main", cluster))
        .await
        .expect("valid KafkaCluster");
    // Defaults from the schema are filled in.
    assert_eq!(
        created.data["spec"]["tls"]["clientCertificate"]["certificateKey"],
        "tls.crt"
    );
    api_for(&client, &ns, "KafkaCluster")
        .create(
            &PostParams::default(),
            &object(
                "KafkaCluster",
                "dev",
                json!({"embedded": {"port": 19092, "dataDir": "/var/lib/kgo/dev"}}),
            ),
        )
        .await
        .expect("valid embedded KafkaCluster");
    for (name, authentication) in [
        ("open", json!({"mechanism": "none"})),
        ("scram-default", json!({})),
        (
            "scram-users",
            json!({"users": [{"name": "app", "passwordSecretRef": {"name": "s", "key": "k"}, "allow": {"topics": ["orders"]}}],
                   "tls": {"secretName": "broker-tls", "clientCaSecretRef": {"name": "broker-tls", "key": "ca.crt"}}}),
        ),
        (
            "certificate-users",
            json!({"mechanism": "none", "users": [{"name": "alice", "allow": {"topics": ["alice-"]}}],
                   "tls": {"secretName": "broker-tls", "clientCaSecretRef": {"name": "broker-tls", "key": "ca.crt"}}}),
        ),
    ] {
        api_for(&client, &ns, "KafkaCluster")
            .create(
                &PostParams::default(),
                &object(
                    "KafkaCluster",
                    name,
                    json!({"embedded": {"authentication": authentication}}),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("valid embedded authentication {name}: {e}"));
    }
    let group = json!({
        "clusterRef": {"name": "main"},
        "topics": ["orders", "payments.v2"],
        "offsetInit": {"policy": "earliest"},
        "deletionPolicy": "Delete",
        "retentionGuard": {"warnBefore": "12h"}
    });
    api_for(&client, &ns, "ConsumerGroup")
        .create(&PostParams::default(), &object("ConsumerGroup", "orders", group))
        .await
        .expect("valid ConsumerGroup");
}

#[tokio::test]
async fn kafka_cluster_rules_reject_bad_input_with_clear_messages() {
    let (client, ns) = setup().await;
    let cases = [
        (
            json!({"bootstrapServers": []}),
            "bootstrapServers needs at least one host:port",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092", "no-port"]}),
            "each bootstrap server must be host:port",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092"], "clientId": ""}),
            "clientId must be 1 to 255 characters",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092"], "sasl": {"mechanism": "SCRAM-SHA-512", "username": "", "passwordSecretRef": {"name": "pw", "key": "password"}}}),
            "sasl.username must not be empty",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092"], "sasl": {"mechanism": "GSSAPI", "username": "a", "passwordSecretRef": {"name": "pw", "key": "k"}}}),
            "Unsupported value: \"GSSAPI\"",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092"], "sasl": {"mechanism": "PLAIN", "username": "a", "passwordSecretRef": {"name": "", "key": "k"}}}),
            "a Secret reference needs the Secret's name",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092"], "tls": {"caSecretRef": {"name": "ca", "key": ""}}}),
            "a Secret reference needs the key within the Secret",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092"], "tls": {"clientCertificate": {"secretName": ""}}}),
            "clientCertificate needs the Secret's name",
        ),
        (
            json!({}),
            "set exactly one of bootstrapServers (an external Kafka cluster) and embedded: {}",
        ),
        (
            json!({"bootstrapServers": ["kafka:9092"], "embedded": {}}),
            "set exactly one of bootstrapServers",
        ),
        (
            json!({"embedded": {}, "sasl": {"mechanism": "PLAIN", "username": "a", "passwordSecretRef": {"name": "pw", "key": "k"}}}),
            "tls and sasl are for external clusters: the operator connects to its embedded broker with a credential of its own",
        ),
        (
            json!({"embedded": {"port": 70000}}),
            "embedded.port must be a TCP port, 1 to 65535",
        ),
        (
            json!({"embedded": {"dataDir": "data"}}),
            "embedded.dataDir must be an absolute path in the operator's pod",
        ),
        (
            json!({"embedded": {"dataDir": "/var/lib/kafka-group-operator/../../etc"}}),
            "embedded.dataDir must not contain '..'",
        ),
        (
            json!({"embedded": {"authentication": {"users": [{"name": "app"}]}}}),
            "users of a SASL mechanism (SCRAM-SHA-512, the default, SCRAM-SHA-256 or PLAIN) need passwordSecretRef",
        ),
        (
            json!({"embedded": {"authentication": {"users": [{"name": "app", "passwordSecretRef": null}]}}}),
            "users of a SASL mechanism (SCRAM-SHA-512, the default, SCRAM-SHA-256 or PLAIN) need passwordSecretRef",
        ),
        (
            json!({"embedded": {"authentication": {"mechanism": "PLAIN", "users": [{"name": "app"}],
                   "tls": {"secretName": "broker-tls", "clientCaSecretRef": {"name": "broker-tls", "key": "ca.crt"}}}}}),
            "users of a SASL mechanism (SCRAM-SHA-512, the default, SCRAM-SHA-256 or PLAIN) need passwordSecretRef",
        ),
        (
            json!({"embedded": {"authentication": {"mechanism": "none", "users": [{"name": "app"}]}}}),
            "with mechanism none, users are client certificates (a user's name is its certificate's CN): set tls.clientCaSecretRef",
        ),
        (
            json!({"embedded": {"authentication": {"mechanism": "none", "users": [{"name": "app"}],
                   "tls": {"secretName": "broker-tls"}}}}),
            "with mechanism none, users are client certificates (a user's name is its certificate's CN): set tls.clientCaSecretRef",
        ),
        (
            json!({"embedded": {"authentication": {"mechanism": "none", "users": [
                {"name": "app", "passwordSecretRef": {"name": "s", "key": "k"}}
            ], "tls": {"secretName": "broker-tls", "clientCaSecretRef": {"name": "broker-tls", "key": "ca.crt"}}}}}),
            "with mechanism none, users authenticate with their client certificate, not a password: remove passwordSecretRef",
        ),
        (
            json!({"embedded": {"authentication": {"users": [
                {"name": "kafka-group-operator", "passwordSecretRef": {"name": "s", "key": "k"}}
            ]}}}),
            "the user name kafka-group-operator is the operator's own",
        ),
        (
            json!({"embedded": {"authentication": {"users": [
                {"name": "app", "passwordSecretRef": {"name": "s", "key": "k"}},
                {"name": "app", "passwordSecretRef": {"name": "s", "key": "j"}}
            ]}}}),
            "each user name may appear only once",
        ),
    ];
    for (spec, message) in cases {
        assert_rejected(&client, &ns, "KafkaCluster", spec, message).await;
    }
}

#[tokio::test]
async fn consumer_group_rules_reject_bad_input_with_clear_messages() {
    let (client, ns) = setup().await;
    let base = |extra: Value| {
        let mut spec = json!({"clusterRef": {"name": "main"}, "topics": ["orders"]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        spec
    };
    let cases = [
        (
            json!({"clusterRef": {"name": ""}}),
            "clusterRef.name must name a KafkaCluster",
        ),
        (base(json!({"groupId": ""})), "groupId must be 1 to 255 characters"),
        (
            base(json!({"topics": ["bad topic"]})),
            "topic names are 1 to 249 characters",
        ),
        (base(json!({"topics": ["a", "a"]})), "Duplicate value: \"a\""),
        (
            json!({"clusterRef": {"name": "main"}, "offsetInit": {"policy": "earliest"}}),
            "offsetInit needs spec.topics",
        ),
        (
            base(json!({"offsetInit": {"policy": "oldest"}})),
            "Unsupported value: \"oldest\"",
        ),
        (
            base(json!({"deletionPolicy": "Orphan"})),
            "Unsupported value: \"Orphan\"",
        ),
        (
            base(json!({"retentionGuard": {"warnBefore": "tomorrow"}})),
            "warnBefore is a duration",
        ),
        (
            base(json!({"retentionGuard": {"offsetsRetention": "7 days"}})),
            "offsetsRetention is a duration",
        ),
        (base(json!({"type": "queue"})), "Unsupported value: \"queue\""),
        (
            base(json!({"type": "share", "isolation": "readCommitted"})),
            "isolation does not apply to a share group",
        ),
        (
            base(
                json!({"type": "share", "scaling": {"targetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 9, "capToLaggingPartitions": true}}),
            ),
            "capToLaggingPartitions does not apply to a share group",
        ),
        (
            base(json!({"type": "share", "retentionGuard": {}})),
            "retentionGuard does not apply to a share group",
        ),
    ];
    for (spec, message) in cases {
        assert_rejected(&client, &ns, "ConsumerGroup", spec, message).await;
    }
    // A share group's offsetInit is a group config: it needs no topics.
    api_for(&client, &ns, "ConsumerGroup")
        .create(
            &PostParams::default(),
            &object(
                "ConsumerGroup",
                "share-init",
                json!({"clusterRef": {"name": "main"}, "type": "share", "offsetInit": {"policy": "earliest"}}),
            ),
        )
        .await
        .expect("a share group with offsetInit and no topics");
}

#[tokio::test]
async fn share_group_resets_take_only_the_targets_share_groups_accept() {
    let (client, ns) = setup().await;
    let reset = |to: Value| json!({"clusterRef": {"name": "main"}, "groupId": "jobs", "groupType": "share", "to": to});
    assert_rejected(
        &client,
        &ns,
        "OffsetReset",
        reset(json!({"shiftBy": -10})),
        "a share group's start offsets move to earliest, latest, offset, timestamp, duration, partitions or previousOf",
    )
    .await;
    for (name, to) in [
        ("earliest", json!({"earliest": {}})),
        ("latest", json!({"latest": {}})),
        ("offset", json!({"offset": 5})),
        ("timestamp", json!({"timestamp": "2026-11-25T08:00:00Z"})),
        ("duration", json!({"duration": "2h"})),
        (
            "partitions",
            json!({"partitions": [{"topic": "jobs", "partition": 0, "offset": 3}]}),
        ),
    ] {
        api_for(&client, &ns, "OffsetReset")
            .create(&PostParams::default(), &object("OffsetReset", name, reset(to)))
            .await
            .unwrap_or_else(|e| panic!("a share-group reset to {name}: {e}"));
    }
    // The same shiftBy for a consumer group is fine.
    let mut consumer = reset(json!({"shiftBy": -10}));
    consumer["groupType"] = json!("consumer");
    api_for(&client, &ns, "OffsetReset")
        .create(
            &PostParams::default(),
            &object("OffsetReset", "consumer-shift", consumer),
        )
        .await
        .expect("a consumer-group reset by shiftBy");
}

#[tokio::test]
async fn group_id_and_cluster_ref_cannot_change() {
    let (client, ns) = setup().await;
    let api = api_for(&client, &ns, "ConsumerGroup");
    api.create(
        &PostParams::default(),
        &object(
            "ConsumerGroup",
            "fixed",
            json!({"clusterRef": {"name": "main"}, "groupId": "orders"}),
        ),
    )
    .await
    .expect("create");
    for (patch, message) in [
        (json!({"spec": {"groupId": "other"}}), "groupId cannot change"),
        (
            json!({"spec": {"clusterRef": {"name": "other"}}}),
            "clusterRef cannot change",
        ),
    ] {
        let err = api
            .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("immutable");
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[tokio::test]
async fn kubectl_explain_reads_like_reference_docs() {
    let (_client, _ns) = setup().await;
    let out = ControlPlane::shared().kubectl(&["explain", "consumergroup.spec.offsetInit"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("auto.offset.reset"), "{text}");
    let out = ControlPlane::shared().kubectl(&["explain", "kafkacluster.spec.sasl.passwordSecretRef"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Secret"), "{out:?}");
}
