//! The KafkaCluster reconciler against a real API server and real Apache Kafka brokers (plain and with
//! TLS + SASL): Ready with what it found, or Ready=False with a reason a user can act on.

mod support;

use k8s_openapi::api::core::v1::Secret;
use kafka_group_operator::api::KafkaCluster;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;
use support::operator::Operator;
use support::wait::{condition, event, has_condition, until};
use support::{ApacheKafka, ControlPlane, SecureKafka};

const T: Duration = Duration::from_secs(60);

async fn setup(prefix: &str) -> (kube::Client, String, Operator) {
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    support::crds::install(&client).await;
    let ns = cp.fresh_namespace(&client, prefix).await;
    let operator = Operator::start(cp, &ns, &[]);
    (client, ns, operator)
}

fn cluster(name: &str, spec: serde_json::Value) -> KafkaCluster {
    serde_json::from_value(json!({
        "apiVersion": "kafkagroups.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("KafkaCluster JSON")
}

#[tokio::test]
async fn a_reachable_cluster_is_ready_with_its_id_brokers_and_version() {
    let kafka = ApacheKafka::shared();
    let (client, ns, operator) = setup("kc-ready").await;
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &cluster("main", json!({"bootstrapServers": [kafka.bootstrap()]})),
    )
    .await
    .expect("create");
    let ready = until(&api, "main", T, "Ready", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
    let status = ready.status.expect("status");
    assert_eq!(status.broker_count, Some(1));
    assert_eq!(status.kafka_version.as_deref(), Some(">= 4.0"));
    assert_eq!(status.observed_generation, ready.metadata.generation);
    let ours = kafka_group_operator::kafka::KafkaClient::new(kafka_group_operator::kafka::ClientConfig::new([
        kafka.bootstrap()
    ]))
    .expect("client")
    .metadata()
    .await
    .expect("metadata");
    assert_eq!(status.cluster_id, ours.cluster_id);
    event(&client, &ns, "main", "Connected", T).await;

    // /healthz, /readyz and /metrics answer, and the metrics count reconciles.
    assert_eq!(operator.http_get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(operator.http_get("/readyz").map(|r| r.0), Some(200));
    let (code, metrics) = operator.http_get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("kafka_group_operator_reconciles_total{controller=\"kafkacluster\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unreachable_cluster_says_so_and_recovers_when_reachable() {
    let kafka = ApacheKafka::shared();
    let (client, ns, _operator) = setup("kc-unreach").await;
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let dead = format!("127.0.0.1:{}", support::process::free_port());
    api.create(
        &PostParams::default(),
        &cluster("main", json!({"bootstrapServers": [dead]})),
    )
    .await
    .expect("create");
    let down = until(&api, "main", T, "Unreachable", |c| {
        has_condition(c, "Ready", "False", "Unreachable")
    })
    .await;
    let (_, _, message) = condition(&down, "Ready").expect("condition");
    assert!(message.contains(&dead), "{message}");
    let note = event(&client, &ns, "main", "Unreachable", T).await;
    assert!(note.contains(&dead), "{note}");

    let patch = json!({"spec": {"bootstrapServers": [kafka.bootstrap()]}});
    api.patch("main", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    until(&api, "main", T, "Ready", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
}

/// The label without which the operator reads no Secret.
const CREDENTIALS: (&str, &str) = ("kafkagroups.dev/credentials", "true");

async fn password_secret(client: &kube::Client, ns: &str, password: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "kafka-password", "labels": {CREDENTIALS.0: CREDENTIALS.1}},
        "stringData": {"password": password}
    }))
    .expect("secret");
    secrets
        .patch(
            "kafka-password",
            &PatchParams::apply("kgo-tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("apply secret");
}

/// The fixture's CA as the Secret `kafka-ca` (labelled for the operator).
async fn ca_secret(secrets: &Api<Secret>, kafka: &SecureKafka) {
    let ca: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "kafka-ca", "labels": {CREDENTIALS.0: CREDENTIALS.1}},
        "stringData": {"ca.crt": std::fs::read_to_string(kafka.ca_pem()).expect("ca")}
    }))
    .expect("ca secret");
    secrets.create(&PostParams::default(), &ca).await.expect("ca secret");
}

/// A KafkaCluster can name any Secret of its namespace: the operator reads only those labelled
/// `kafkagroups.dev/credentials: "true"`, and the condition says how to label one that is not.
#[tokio::test]
async fn a_secret_without_the_credentials_label_is_not_read_and_the_condition_says_how_to_label_it() {
    let kafka = SecureKafka::shared();
    let (client, ns, operator) = setup("kc-label").await;
    let user = kafka.scram_sha_512_user();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    ca_secret(&secrets, kafka).await;
    let unlabelled: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kafka-password"},
        "stringData": {"password": user.password}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &unlabelled)
        .await
        .expect("create secret");
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let spec = json!({
        "bootstrapServers": [kafka.sasl_ssl_bootstrap()],
        "tls": {"caSecretRef": {"name": "kafka-ca", "key": "ca.crt"}},
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": user.username, "passwordSecretRef": {"name": "kafka-password", "key": "password"}}
    });
    api.create(&PostParams::default(), &cluster("secure", spec))
        .await
        .expect("create");
    let refused = until(&api, "secure", T, "InvalidConfiguration", |c| {
        has_condition(c, "Ready", "False", "InvalidConfiguration")
    })
    .await;
    let (_, _, message) = condition(&refused, "Ready").expect("condition");
    assert!(
        message.contains("Secret kafka-password is not labelled kafkagroups.dev/credentials=true")
            && message.contains(&format!(
                "kubectl label secret kafka-password -n {ns} kafkagroups.dev/credentials=true"
            )),
        "{message}"
    );
    assert!(
        !message.contains(&user.password),
        "the password leaked into status: {message}"
    );
    let note = event(&client, &ns, "secure", "InvalidConfiguration", T).await;
    assert!(note.contains("is not labelled"), "{note}");

    // A label with another value is no opt-in either.
    let label = |value: &str| {
        let out = ControlPlane::shared().kubectl(&[
            "label",
            "--overwrite",
            "secret",
            "kafka-password",
            "-n",
            &ns,
            &format!("kafkagroups.dev/credentials={value}"),
        ]);
        assert!(out.status.success(), "kubectl label: {out:?}");
    };
    label("yes");
    tokio::time::sleep(Duration::from_secs(8)).await; // more than two checks (--cluster-interval=3s)
    let still = api.get("secure").await.expect("get");
    assert!(
        has_condition(&still, "Ready", "False", "InvalidConfiguration"),
        "{:?}",
        still.status
    );
    label("true");
    until(&api, "secure", T, "Ready once the Secret is labelled", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
    assert!(
        !operator.log().contains(&user.password),
        "the password leaked into the log"
    );
}

/// Counts the TCP connections made to a loopback port nothing else listens on.
struct Decoy {
    address: String,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Decoy {
    fn start() -> Decoy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Decoy { address, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// SASL without `tls` is refused before anything is sent (a listener that counts connections gets none) unless
/// the KafkaCluster says `allowPlaintextCredentials: true`; then the real SASL_PLAINTEXT listener accepts it.
#[tokio::test]
async fn sasl_over_plaintext_is_refused_before_anything_is_sent_unless_the_cluster_allows_it() {
    let kafka = SecureKafka::shared();
    let (client, ns, _operator) = setup("kc-plainsasl").await;
    let user = kafka.plain_user();
    password_secret(&client, &ns, &user.password).await;
    let decoy = Decoy::start();
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let sasl = json!({"mechanism": "PLAIN", "username": user.username, "passwordSecretRef": {"name": "kafka-password", "key": "password"}});
    for (name, bootstrap) in [
        ("decoy", decoy.address.clone()),
        ("plain", kafka.sasl_plaintext_bootstrap()),
    ] {
        let spec = json!({"bootstrapServers": [bootstrap], "sasl": sasl});
        api.create(&PostParams::default(), &cluster(name, spec))
            .await
            .expect("create");
    }
    for name in ["decoy", "plain"] {
        let refused = until(&api, name, T, "InsecureCredentials", |c| {
            has_condition(c, "Ready", "False", "InsecureCredentials")
        })
        .await;
        let (_, _, message) = condition(&refused, "Ready").expect("condition");
        assert!(
            message
                .contains("refusing to send SASL credentials (PLAIN (the password as is)) over a plaintext connection")
                && message.contains("set `allowPlaintextCredentials: true`")
                && message.contains("add `tls`"),
            "{message}"
        );
    }
    let note = event(&client, &ns, "plain", "InsecureCredentials", T).await;
    assert!(note.contains("allowPlaintextCredentials"), "{note}");
    tokio::time::sleep(Duration::from_secs(8)).await; // more than two checks (--cluster-interval=3s)
    assert_eq!(
        decoy.accepted(),
        0,
        "the operator connected although it refused the cluster"
    );

    let allow = json!({"spec": {"allowPlaintextCredentials": true}});
    for name in ["decoy", "plain"] {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&allow))
            .await
            .expect("patch");
    }
    let ready = until(&api, "plain", T, "Ready over SASL_PLAINTEXT once allowed", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
    assert!(ready.spec.allow_plaintext_credentials);
    // The decoy does see the operator once it is allowed: it would have seen the refused attempts too.
    let deadline = std::time::Instant::now() + T;
    while decoy.accepted() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the allowed cluster was never connected to"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_wrong_sasl_password_is_reported_and_a_fixed_secret_is_picked_up_without_restart() {
    let kafka = SecureKafka::shared();
    let (client, ns, operator) = setup("kc-sasl").await;
    let user = kafka.scram_sha_512_user();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    ca_secret(&secrets, kafka).await;
    password_secret(&client, &ns, "definitely-wrong").await;
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let spec = json!({
        "bootstrapServers": [kafka.sasl_ssl_bootstrap()],
        "tls": {"caSecretRef": {"name": "kafka-ca", "key": "ca.crt"}},
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": user.username, "passwordSecretRef": {"name": "kafka-password", "key": "password"}}
    });
    api.create(&PostParams::default(), &cluster("secure", spec))
        .await
        .expect("create");
    // Stalled (kstatus: Failed): only a change of the Secret helps, though the operator keeps trying.
    let failed = until(&api, "secure", T, "AuthenticationFailed", |c| {
        has_condition(c, "Ready", "False", "AuthenticationFailed")
            && has_condition(c, "Stalled", "True", "AuthenticationFailed")
    })
    .await;
    assert!(condition(&failed, "Reconciling").is_none(), "{:#?}", failed.status);
    let (_, _, message) = condition(&failed, "Ready").expect("condition");
    assert!(
        !message.contains("definitely-wrong"),
        "the password leaked into status: {message}"
    );
    let note = event(&client, &ns, "secure", "AuthenticationFailed", T).await;
    assert!(
        !note.contains("definitely-wrong"),
        "the password leaked into an Event: {note}"
    );
    assert!(
        !operator.log().contains("definitely-wrong"),
        "the password leaked into the log"
    );

    password_secret(&client, &ns, &user.password).await;
    let fixed = until(&api, "secure", T, "Ready after the Secret was fixed", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
    assert!(
        condition(&fixed, "Stalled").is_none() && condition(&fixed, "Reconciling").is_none(),
        "{:#?}",
        fixed.status
    );
}

#[tokio::test]
async fn a_missing_secret_is_an_invalid_configuration() {
    let kafka = ApacheKafka::shared();
    let (client, ns, _operator) = setup("kc-nosecret").await;
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let spec = json!({
        "bootstrapServers": [kafka.bootstrap()],
        "allowPlaintextCredentials": true,
        "sasl": {"mechanism": "PLAIN", "username": "u", "passwordSecretRef": {"name": "absent", "key": "password"}}
    });
    api.create(&PostParams::default(), &cluster("main", spec))
        .await
        .expect("create");
    let c = until(&api, "main", T, "InvalidConfiguration", |c| {
        has_condition(c, "Ready", "False", "InvalidConfiguration")
    })
    .await;
    let (_, _, message) = condition(&c, "Ready").expect("condition");
    assert!(message.contains("Secret absent does not exist"), "{message}");
    // A Secret a GitOps sync has not created yet may come: Reconciling (kstatus: InProgress), not Stalled.
    let c = until(&api, "main", T, "Reconciling", |c| {
        has_condition(c, "Reconciling", "True", "InvalidConfiguration")
    })
    .await;
    assert!(condition(&c, "Stalled").is_none(), "{:#?}", c.status);
}

/// `spec.embedded` with SCRAM-SHA-512 over TLS: the operator serves a broker for the cluster in its own
/// process, reads the users' passwords and the certificate from labelled Secrets, connects with a credential
/// of its own; real clients authenticate as the declared user, an unauthenticated one is refused, a rotated
/// password applies without a restart, and deleting the cluster stops the broker.
#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_cluster_is_served_by_the_operator_to_real_clients_and_stops_with_it() {
    use kafka_group_operator::api::ConsumerGroup;
    use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic, SaslConfig, SaslMechanism, TlsConfig};
    use support::clients::{ClientSecurity, GroupProtocol, SecurityProtocol, consume_and_commit_with, produce_with};
    use support::secure_kafka::{SaslCredentials, SaslMechanism as FixtureMechanism};
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    support::crds::install(&client).await;
    let ns = cp.fresh_namespace(&client, "kc-embedded").await;
    let _operator = Operator::start(
        cp,
        &ns,
        &["--embedded-brokers=true", "--embedded-bind-address=127.0.0.1"],
    );
    let port = support::process::free_port();

    let pki_dir = support::process::fixture_dir("embedded-pki");
    let pki = support::pki::Pki::create(&pki_dir, "kgo-embedded-ca", support::pki::KeyAlgorithm::EcP256);
    let server = pki.server_cert("broker", "/CN=localhost", &[]);
    let read = |p: &std::path::Path| String::from_utf8(std::fs::read(p).expect("read PEM")).expect("PEM text");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let labelled = |name: &str, data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": {"kafkagroups.dev/credentials": "true"}},
            "stringData": data
        }))
        .expect("Secret JSON")
    };
    secrets
        .create(
            &PostParams::default(),
            &labelled("dev-users", json!({"app": "first-password"})),
        )
        .await
        .expect("users Secret");
    secrets
        .create(
            &PostParams::default(),
            &labelled(
                "dev-tls",
                json!({"tls.crt": read(&server.cert), "tls.key": read(&server.key)}),
            ),
        )
        .await
        .expect("TLS Secret");
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &cluster(
            "dev",
            json!({"embedded": {"port": port, "authentication": {
                "mechanism": "SCRAM-SHA-512",
                "users": [{"name": "app", "passwordSecretRef": {"name": "dev-users", "key": "app"}}],
                "tls": {"secretName": "dev-tls"}
            }}}),
        ),
    )
    .await
    .expect("create");
    let ready = until(&api, "dev", T, "Ready", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
    assert_eq!(ready.status.as_ref().and_then(|s| s.broker_count), Some(1));
    assert!(
        ready
            .finalizers()
            .iter()
            .any(|f| f == "kafkagroups.dev/embedded-broker"),
        "an embedded cluster holds the finalizer that stops its broker: {:?}",
        ready.finalizers()
    );

    // Real clients over SASL_SSL as the declared user: confluent-kafka produces and a consumer group commits.
    let bootstrap = format!("127.0.0.1:{port}");
    let app = |password: &str| {
        let mut config = ClientConfig::new([bootstrap.clone()]);
        config.operation_timeout = Duration::from_secs(5);
        config.sasl = Some(SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: "app".into(),
            password: kafka_group_operator::kafka::Secret::new(password.as_bytes().to_vec()),
        });
        config.tls = Some(TlsConfig {
            ca_pem: Some(std::fs::read(pki.ca_cert()).expect("ca")),
            ..Default::default()
        });
        KafkaClient::new(config).expect("client")
    };
    let topic = support::unique_name("embedded");
    let group = support::unique_name("embedded-group");
    app("first-password")
        .create_topics(&[NewTopic::new(topic.clone(), 2)])
        .await
        .expect("create topic as app");
    let security = ClientSecurity {
        protocol: SecurityProtocol::SaslSsl,
        sasl: Some(SaslCredentials {
            username: "app".into(),
            password: "first-password".into(),
            mechanism: FixtureMechanism::ScramSha512,
        }),
        ca: Some(pki.ca_cert().to_path_buf()),
        cert: None,
        key: None,
    };
    produce_with(&bootstrap, &security, &topic, 20);
    let committed = consume_and_commit_with(&bootstrap, &security, &topic, &group, GroupProtocol::Classic, 20);
    assert_eq!(committed.values().sum::<i64>(), 20, "{committed:?}");
    // No credentials, or plaintext to the TLS port: no metadata.
    let mut anonymous = ClientConfig::new([bootstrap.clone()]);
    anonymous.operation_timeout = Duration::from_secs(3);
    assert!(KafkaClient::new(anonymous).expect("client").metadata().await.is_err());

    // A rotated password reaches the broker at the next check, without a restart.
    secrets
        .patch(
            "dev-users",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"app": "second-password"}})),
        )
        .await
        .expect("rotate the password");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let new_works = app("second-password").metadata().await.is_ok();
        let old_fails = app("first-password").metadata().await.is_err();
        if new_works && old_fails {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotated password: new works {new_works}, old refused {old_fails}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The operator observes the group on the embedded cluster like on any other.
    let groups: Api<ConsumerGroup> = Api::namespaced(client.clone(), &ns);
    let cg: ConsumerGroup = serde_json::from_value(json!({
        "apiVersion": "kafkagroups.dev/v1alpha1", "kind": "ConsumerGroup", "metadata": {"name": "readers"},
        "spec": {"clusterRef": {"name": "dev"}, "groupId": group, "topics": [topic]}
    }))
    .expect("ConsumerGroup JSON");
    groups.create(&PostParams::default(), &cg).await.expect("create group");
    until(&groups, "readers", T, "observed with no lag", |g| {
        g.status
            .as_ref()
            .is_some_and(|s| s.total_lag == Some(0) && s.state.as_deref() == Some("Empty"))
    })
    .await;

    // Deleting the cluster stops its broker.
    api.delete("dev", &Default::default()).await.expect("delete");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let gone = api.get_opt("dev").await.expect("get").is_none();
        let refused = tokio::net::TcpStream::connect(&bootstrap).await.is_err();
        if gone && refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster gone: {gone}, broker stopped: {refused}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `spec.embedded.dataDir` lies under the operator's data volume (`--embedded-data-root`) and belongs to one
/// cluster: a second cluster on the same (or a nested) directory, or a directory elsewhere, is
/// InvalidConfiguration with a message that says why.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_data_dirs_are_confined_to_the_data_volume_and_never_shared() {
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    support::crds::install(&client).await;
    let ns = cp.fresh_namespace(&client, "kc-datadir").await;
    let root = support::process::fixture_dir("embedded-data-root");
    let root_flag = format!("--embedded-data-root={}", root.display());
    let _operator = Operator::start(
        cp,
        &ns,
        &[
            "--embedded-brokers=true",
            "--embedded-bind-address=127.0.0.1",
            &root_flag,
        ],
    );
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    let none = json!({"mechanism": "none"});
    let one = root.join("one").display().to_string();
    let spec = |dir: &str| json!({"embedded": {"port": support::process::free_port(), "dataDir": dir, "authentication": none}});
    api.create(&PostParams::default(), &cluster("one", spec(&one)))
        .await
        .expect("create one");
    until(&api, "one", T, "Ready", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await;
    assert!(
        root.join("one").join(".lock").exists(),
        "the broker holds a lock in its data dir"
    );

    let nested = root.join("one").join("two").display().to_string();
    for (name, dir, expected) in [
        ("same", one.as_str(), "overlaps"),
        ("nested", nested.as_str(), "overlaps"),
        ("elsewhere", "/tmp/kgo-not-the-data-volume", "must be a directory under"),
    ] {
        api.create(&PostParams::default(), &cluster(name, spec(dir)))
            .await
            .expect("create");
        let c = until(&api, name, T, "InvalidConfiguration", |c| {
            has_condition(c, "Ready", "False", "InvalidConfiguration")
        })
        .await;
        let (_, _, message) = condition(&c, "Ready").expect("condition");
        assert!(message.contains(expected), "{name}: {message}");
    }
    assert!(!std::path::Path::new("/tmp/kgo-not-the-data-volume").exists());
}

/// `mechanism: none` with `tls.clientCaSecretRef` (an SSL listener with required client certificates): the
/// certificate's CN is the principal, a user declared without a password limits the certificate of that CN,
/// an undeclared CN may name nothing, and the operator still connects with its own credential.
#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_cluster_with_mutual_tls_limits_each_certificate_to_its_users_allow() {
    use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic, TlsConfig};
    use support::clients::{ClientSecurity, SecurityProtocol, produce_with};
    let cp = ControlPlane::shared();
    let client = cp.client().await;
    support::crds::install(&client).await;
    let ns = cp.fresh_namespace(&client, "kc-mtls").await;
    let _operator = Operator::start(
        cp,
        &ns,
        &["--embedded-brokers=true", "--embedded-bind-address=127.0.0.1"],
    );
    let port = support::process::free_port();
    let pki_dir = support::process::fixture_dir("embedded-mtls-pki");
    let pki = support::pki::Pki::create(&pki_dir, "kgo-embedded-ca", support::pki::KeyAlgorithm::EcP256);
    let server = pki.server_cert("broker", "/CN=localhost", &[]);
    let read = |p: &std::path::Path| String::from_utf8(std::fs::read(p).expect("read PEM")).expect("PEM text");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let tls_secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "dev-tls", "labels": {"kafkagroups.dev/credentials": "true"}},
        "stringData": {"tls.crt": read(&server.cert), "tls.key": read(&server.key), "ca.crt": read(pki.ca_cert())}
    }))
    .expect("Secret JSON");
    secrets
        .create(&PostParams::default(), &tls_secret)
        .await
        .expect("TLS Secret");
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &cluster(
            "dev",
            json!({"embedded": {"port": port, "authentication": {
                "mechanism": "none",
                "users": [{"name": "alice", "allow": {"topics": ["alice-"], "groups": ["alice-"]}}],
                "tls": {"secretName": "dev-tls", "clientCaSecretRef": {"name": "dev-tls", "key": "ca.crt"}}
            }}}),
        ),
    )
    .await
    .expect("create");
    until(&api, "dev", T, "Ready", |c| {
        has_condition(c, "Ready", "True", "Connected")
    })
    .await; // the operator's own connection: internal listener, generated credential, as before

    let bootstrap = format!("127.0.0.1:{port}");
    let as_certificate = |cert: &support::pki::IssuedCert| {
        let mut config = ClientConfig::new([bootstrap.clone()]);
        config.operation_timeout = Duration::from_secs(5);
        config.tls = Some(TlsConfig {
            ca_pem: Some(std::fs::read(pki.ca_cert()).expect("ca")),
            client_cert_pem: Some(std::fs::read(&cert.cert).expect("cert")),
            client_key_pem: Some(kafka_group_operator::kafka::Secret::new(
                std::fs::read(&cert.key).expect("key"),
            )),
            ..Default::default()
        });
        KafkaClient::new(config).expect("client")
    };
    let alice = pki.client_cert("alice", "/O=apps/CN=alice");
    let topic = support::unique_name("alice-orders");
    as_certificate(&alice)
        .create_topics(&[NewTopic::new(topic.clone(), 1)])
        .await
        .expect("CN=alice creates an alice- topic");
    let refused = as_certificate(&alice)
        .create_topics(&[NewTopic::new(support::unique_name("bob-orders"), 1)])
        .await
        .expect_err("CN=alice may not create a bob- topic");
    assert!(refused.to_string().contains("TOPIC_AUTHORIZATION_FAILED"), "{refused}");
    let security = ClientSecurity {
        protocol: SecurityProtocol::Ssl,
        sasl: None,
        ca: Some(pki.ca_cert().to_path_buf()),
        cert: Some(alice.cert.clone()),
        key: Some(alice.key.clone()),
    };
    produce_with(&bootstrap, &security, &topic, 5);

    let mallory = pki.client_cert("mallory", "/CN=mallory");
    let listed = as_certificate(&mallory).metadata().await.expect("CN=mallory connects");
    assert!(
        listed.topics.is_empty(),
        "an undeclared CN sees no topic: {:?}",
        listed.topics
    );
}
