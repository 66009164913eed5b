//! Who may connect to the embedded broker (issue 15): SASL PLAIN and SCRAM-SHA-256/512 over SASL_SSL and
//! SASL_PLAINTEXT, TLS with and without client certificates, tried with clients no one here wrote —
//! confluent-kafka (librdkafka), kcat and Kafka's Java CLI tools (AdminClient) — and with the operator's own
//! client. A wrong password, a missing client certificate and an unauthenticated client each fail with the
//! error Kafka gives; credentials are stored salted in the data dir and survive a restart; users and
//! passwords change without a restart. On an SSL listener with required client certificates the principal is
//! the certificate's CN, and a user declared without a password is that certificate's `allow`.

mod support;

use kafka_group_operator::broker::BrokerConfig;
use kafka_group_operator::broker::auth::{Allow, Mechanism, SecurityConfig, TlsIdentity, User};
use kafka_group_operator::kafka::{
    ClientConfig, KafkaClient, KafkaError, SaslConfig, SaslMechanism, Secret, TlsConfig,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::clients::{
    ClientSecurity, GroupProtocol, SecurityProtocol, confluent_client, consume_and_commit_with, produce_with,
};
use support::embedded::BrokerProcess;

use support::pki::{IssuedCert, KeyAlgorithm, Pki};
use support::secure_kafka::{SaslCredentials, SaslMechanism as FixtureMechanism};
use support::tools::{clients_venv, system_tool};
use support::{EmbeddedKafka, unique_name};

const PASSWORD: &str = "a-long-password-for-alice";

struct Tls {
    pki: Pki,
    server: IssuedCert,
    client: IssuedCert,
}

fn tls() -> Tls {
    let dir = support::process::fixture_dir("broker-security-pki");
    let pki = Pki::create(&dir, "kgo-embedded-ca", KeyAlgorithm::EcP256);
    let server = pki.server_cert("broker", "/CN=localhost", &[]);
    let client = pki.client_cert("client", "/CN=kgo-embedded-client");
    Tls { pki, server, client }
}

fn alice() -> User {
    User {
        name: "alice".into(),
        password: Some(PASSWORD.as_bytes().to_vec()),
        allow: None,
    }
}

/// A user without a password: the client certificate whose CN is `name` (mutual TLS, no SASL).
fn certificate_user(name: &str, allow: Option<Allow>) -> User {
    User {
        name: name.into(),
        password: None,
        allow,
    }
}

fn prefixes(prefix: &str) -> Allow {
    Allow {
        topics: vec![prefix.into()],
        groups: vec![prefix.into()],
    }
}

/// An SSL client of the broker with `cert` (confluent-kafka).
fn with_certificate(tls: &Tls, cert: &IssuedCert) -> ClientSecurity {
    ClientSecurity {
        protocol: SecurityProtocol::Ssl,
        sasl: None,
        ca: Some(tls.pki.ca_cert().to_path_buf()),
        cert: Some(cert.cert.clone()),
        key: Some(cert.key.clone()),
    }
}

/// kcat's configuration for an SSL connection with `cert`.
fn kcat_certificate(tls: &Tls, cert: &IssuedCert) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SSL".to_owned()),
        ("ssl.ca.location", tls.pki.ca_cert().display().to_string()),
        ("ssl.certificate.location", cert.cert.display().to_string()),
        ("ssl.key.location", cert.key.display().to_string()),
    ]
}

/// Our client over mutual TLS with `cert`.
fn our_certificate_client(bootstrap: &str, tls: &Tls, cert: &IssuedCert) -> KafkaClient {
    let mut config = ClientConfig::new([bootstrap.to_owned()]);
    config.operation_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(5);
    config.tls = Some(TlsConfig {
        ca_pem: Some(std::fs::read(tls.pki.ca_cert()).expect("ca")),
        client_cert_pem: Some(std::fs::read(&cert.cert).expect("cert")),
        client_key_pem: Some(Secret::new(std::fs::read(&cert.key).expect("key"))),
        ..Default::default()
    });
    KafkaClient::new(config).expect("client")
}

/// Produces one record with confluent-kafka and expects TOPIC_AUTHORIZATION_FAILED.
fn produce_is_refused(bootstrap: &str, security: &ClientSecurity, topic: &str) {
    let failure = confluent_client(
        &[
            "produce",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--count",
            "1",
            "--timeout",
            "15",
        ],
        security,
    )
    .expect_err("a produce the principal may not make");
    assert!(
        failure.stderr.contains("TOPIC_AUTHORIZATION_FAILED") || failure.stderr.contains("Topic authorization failed"),
        "{failure}"
    );
}

fn identity(tls: &Tls, mutual: bool) -> TlsIdentity {
    TlsIdentity {
        certificate_chain_pem: std::fs::read(&tls.server.cert).expect("server cert"),
        private_key_pem: std::fs::read(&tls.server.key).expect("server key"),
        client_ca_pem: mutual.then(|| std::fs::read(tls.pki.ca_cert()).expect("ca")),
    }
}

fn broker(security: SecurityConfig) -> EmbeddedKafka {
    EmbeddedKafka::start_with(BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        group_initial_rebalance_delay: Duration::ZERO,
        auto_create_topics: false,
        security,
        ..BrokerConfig::default()
    })
}

fn fixture_mechanism(mechanism: Mechanism) -> FixtureMechanism {
    match mechanism {
        Mechanism::Plain => FixtureMechanism::Plain,
        Mechanism::ScramSha256 => FixtureMechanism::ScramSha256,
        Mechanism::ScramSha512 => FixtureMechanism::ScramSha512,
    }
}

fn librdkafka(
    protocol: SecurityProtocol,
    mechanism: Option<Mechanism>,
    password: &str,
    ca: Option<&Path>,
) -> ClientSecurity {
    ClientSecurity {
        protocol,
        sasl: mechanism.map(|m| SaslCredentials {
            username: "alice".into(),
            password: password.into(),
            mechanism: fixture_mechanism(m),
        }),
        ca: ca.map(Path::to_path_buf),
        cert: None,
        key: None,
    }
}

/// The operator's client (our own SASL and TLS implementation) against the broker.
fn our_client(bootstrap: &str, mechanism: Option<Mechanism>, password: &str, ca: Option<&Path>) -> KafkaClient {
    let mut config = ClientConfig::new([bootstrap.to_owned()]);
    config.operation_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(5);
    config.sasl = mechanism.map(|m| SaslConfig {
        mechanism: match m {
            Mechanism::Plain => SaslMechanism::Plain,
            Mechanism::ScramSha256 => SaslMechanism::ScramSha256,
            Mechanism::ScramSha512 => SaslMechanism::ScramSha512,
        },
        username: "alice".into(),
        password: Secret::new(password.as_bytes().to_vec()),
    });
    config.tls = ca.map(|ca| TlsConfig {
        ca_pem: Some(std::fs::read(ca).expect("ca")),
        ..Default::default()
    });
    KafkaClient::new(config).expect("client")
}

/// A client properties file for Kafka's Java tools.
fn java_properties(
    dir: &Path,
    protocol: &str,
    mechanism: Option<Mechanism>,
    password: &str,
    ca: Option<&Path>,
) -> PathBuf {
    let mut text = format!("security.protocol={protocol}\n");
    if let Some(m) = mechanism {
        let module = match m {
            Mechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
            _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
        };
        text.push_str(&format!(
            "sasl.mechanism={}\nsasl.jaas.config={module} required username=\"alice\" password=\"{password}\";\n",
            m.name()
        ));
    }
    if let Some(ca) = ca {
        text.push_str(&format!(
            "ssl.truststore.type=PEM\nssl.truststore.location={}\n",
            ca.display()
        ));
    }
    let path = dir.join(format!("{}.properties", unique_name("client")));
    std::fs::write(&path, text).expect("write properties");
    path
}

/// Runs a Kafka Java tool class with `--command-config`; (success, stdout + stderr).
fn java_tool(bootstrap: &str, properties: &Path, class: &str, args: &[&str]) -> (bool, String) {
    let properties = properties.display().to_string();
    let args: Vec<&str> = ["--command-config", properties.as_str()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let out = support::kafka::kafka_tool(bootstrap, class, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// kcat with a config file (`-F`) so that the password is not an argument.
fn kcat<V: AsRef<str>>(bootstrap: &str, config: &[(&str, V)], args: &[&str]) -> (bool, String) {
    clients_venv();
    let kcat = system_tool(
        "kcat",
        "run `bash scripts/provision-clients.sh` (Debian: apt-get install kcat)",
    );
    let file = support::process::fixture_dir("kcat").join("kcat.conf");
    let text: String = config.iter().map(|(k, v)| format!("{k}={}\n", v.as_ref())).collect();
    std::fs::write(&file, text).expect("kcat config");
    let out = Command::new("timeout")
        .arg("30")
        .arg(kcat)
        .arg("-F")
        .arg(&file)
        .args(["-b", bootstrap])
        .args(args)
        .output()
        .expect("run kcat");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_mechanism_works_over_sasl_ssl_with_confluent_kafka_kcat_and_the_java_tools() {
    let tls = tls();
    let kafka = broker(SecurityConfig {
        mechanisms: Mechanism::ALL.to_vec(),
        tls: Some(identity(&tls, false)),
        users: Some(vec![alice()]),
    });
    let bootstrap = kafka.bootstrap();
    let ca = tls.pki.ca_cert();
    for mechanism in Mechanism::ALL {
        let security = librdkafka(SecurityProtocol::SaslSsl, Some(mechanism), PASSWORD, Some(ca));
        let topic = unique_name("sasl-ssl");
        let group = unique_name("sasl-ssl-group");
        let properties = java_properties(tls.pki.dir(), "SASL_SSL", Some(mechanism), PASSWORD, Some(ca));
        let (ok, out) = java_tool(
            &bootstrap,
            &properties,
            "org.apache.kafka.tools.TopicCommand",
            &["--create", "--topic", &topic, "--partitions", "2"],
        );
        assert!(ok, "kafka-topics --create over SASL_SSL {}: {out}", mechanism.name());
        produce_with(&bootstrap, &security, &topic, 10);
        let committed = consume_and_commit_with(&bootstrap, &security, &topic, &group, GroupProtocol::Classic, 10);
        assert_eq!(committed.values().sum::<i64>(), 10, "{committed:?}");
        let (ok, out) = java_tool(
            &bootstrap,
            &properties,
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            &["--describe", "--group", &group],
        );
        assert!(ok && out.contains(&topic), "kafka-consumer-groups --describe: {out}");
        let ca_text = ca.display().to_string();
        let (ok, out) = kcat(
            &bootstrap,
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanisms", mechanism.name()),
                ("sasl.username", "alice"),
                ("sasl.password", PASSWORD),
                ("ssl.ca.location", &ca_text),
            ],
            &["-L", "-t", &topic],
        );
        assert!(
            ok && out.contains("2 partitions"),
            "kcat -L over SASL_SSL {}: {out}",
            mechanism.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_plaintext_authenticates_our_client_and_refuses_an_unauthenticated_one() {
    let kafka = broker(SecurityConfig {
        mechanisms: vec![Mechanism::ScramSha512],
        tls: None,
        users: Some(vec![alice()]),
    });
    let bootstrap = kafka.bootstrap();
    let metadata = our_client(&bootstrap, Some(Mechanism::ScramSha512), PASSWORD, None)
        .metadata()
        .await
        .expect("SCRAM-SHA-512 over SASL_PLAINTEXT");
    assert_eq!(metadata.brokers.len(), 1);

    // No SASL at all: the broker answers ApiVersions, then closes on the first other request.
    let err = our_client(&bootstrap, None, "", None)
        .metadata()
        .await
        .expect_err("an unauthenticated client");
    assert!(
        !matches!(err, KafkaError::Authentication { .. }),
        "a client that does not authenticate just loses its connection: {err}"
    );
    // A mechanism the listener does not offer: UNSUPPORTED_SASL_MECHANISM with the list.
    let err = our_client(&bootstrap, Some(Mechanism::Plain), PASSWORD, None)
        .metadata()
        .await
        .expect_err("PLAIN is not offered");
    let text = err.to_string();
    assert!(
        text.contains("SCRAM-SHA-512") || text.to_lowercase().contains("mechanism"),
        "{text}"
    );
    // librdkafka with the wrong protocol (no SASL) does not get metadata either.
    let failure = confluent_client(
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "t",
            "--count",
            "1",
            "--timeout",
            "8",
        ],
        &ClientSecurity::default(),
    )
    .expect_err("a PLAINTEXT client of a SASL_PLAINTEXT listener");
    assert!(!failure.status.success(), "{failure}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_fails_at_once_with_kafkas_error_for_every_client() {
    let tls = tls();
    let kafka = broker(SecurityConfig {
        mechanisms: Mechanism::ALL.to_vec(),
        tls: Some(identity(&tls, false)),
        users: Some(vec![alice()]),
    });
    let bootstrap = kafka.bootstrap();
    let ca = tls.pki.ca_cert();
    for mechanism in Mechanism::ALL {
        let started = std::time::Instant::now();
        let err = our_client(&bootstrap, Some(mechanism), "wrong", Some(ca))
            .metadata()
            .await
            .expect_err("wrong password");
        assert!(matches!(err, KafkaError::Authentication { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

        let failure = confluent_client(
            &["produce", "--bootstrap", &bootstrap, "--topic", "t", "--count", "1"],
            &librdkafka(SecurityProtocol::SaslSsl, Some(mechanism), "wrong", Some(ca)),
        )
        .expect_err("wrong password");
        let expected = match mechanism {
            Mechanism::Plain => "Invalid username or password".to_owned(),
            m => format!("invalid credentials with SASL mechanism {}", m.name()),
        };
        assert_eq!(failure.status.code(), Some(3), "{failure}");
        assert!(failure.stderr.contains(&expected), "{failure}");

        let properties = java_properties(tls.pki.dir(), "SASL_SSL", Some(mechanism), "wrong", Some(ca));
        let (ok, out) = java_tool(
            &bootstrap,
            &properties,
            "org.apache.kafka.tools.TopicCommand",
            &["--list"],
        );
        assert!(
            !ok && out.contains("SaslAuthenticationException") && out.contains(&expected),
            "{out}"
        );
    }
    // An unknown user gets the same answer as a wrong password.
    let mut config = ClientConfig::new([bootstrap.clone()]);
    config.operation_timeout = Duration::from_secs(5);
    config.sasl = Some(SaslConfig {
        mechanism: SaslMechanism::ScramSha256,
        username: "mallory".into(),
        password: Secret::new(PASSWORD.as_bytes().to_vec()),
    });
    config.tls = Some(TlsConfig {
        ca_pem: Some(std::fs::read(ca).expect("ca")),
        ..Default::default()
    });
    let err = KafkaClient::new(config)
        .expect("client")
        .metadata()
        .await
        .expect_err("unknown user");
    assert!(matches!(err, KafkaError::Authentication { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_serves_one_with_it() {
    let tls = tls();
    let kafka = broker(SecurityConfig {
        mechanisms: Vec::new(),
        tls: Some(identity(&tls, true)),
        users: None,
    });
    let bootstrap = kafka.bootstrap();
    let ca = tls.pki.ca_cert();
    let topic = unique_name("mtls");
    let with_cert = ClientSecurity {
        protocol: SecurityProtocol::Ssl,
        sasl: None,
        ca: Some(ca.to_path_buf()),
        cert: Some(tls.client.cert.clone()),
        key: Some(tls.client.key.clone()),
    };
    let mut config = ClientConfig::new([bootstrap.clone()]);
    config.tls = Some(TlsConfig {
        ca_pem: Some(std::fs::read(ca).expect("ca")),
        client_cert_pem: Some(std::fs::read(&tls.client.cert).expect("cert")),
        client_key_pem: Some(Secret::new(std::fs::read(&tls.client.key).expect("key"))),
        ..Default::default()
    });
    let client = KafkaClient::new(config).expect("client");
    client
        .create_topics(&[kafka_group_operator::kafka::NewTopic::new(topic.clone(), 1)])
        .await
        .expect("create over mutual TLS");
    produce_with(&bootstrap, &with_cert, &topic, 3);

    let without_cert = ClientSecurity {
        cert: None,
        key: None,
        ..with_cert.clone()
    };
    let failure = confluent_client(
        &["produce", "--bootstrap", &bootstrap, "--topic", &topic, "--count", "1"],
        &without_cert,
    )
    .expect_err("no client certificate");
    assert_eq!(failure.status.code(), Some(3), "{failure}");
    assert!(failure.stderr.contains("TLS failed"), "{failure}");
    let mut config = ClientConfig::new([bootstrap.clone()]);
    config.operation_timeout = Duration::from_secs(5);
    config.tls = Some(TlsConfig {
        ca_pem: Some(std::fs::read(ca).expect("ca")),
        ..Default::default()
    });
    let err = KafkaClient::new(config)
        .expect("client")
        .metadata()
        .await
        .expect_err("no client certificate");
    assert!(matches!(err, KafkaError::Tls { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_stored_salted_in_the_data_dir_and_known_after_a_restart_without_the_users_file() {
    let dir = support::process::fixture_dir("broker-users");
    let data = dir.join("data");
    let users = dir.join("users");
    std::fs::write(
        &users,
        format!("# the broker's users\nalice:{PASSWORD}\nbob:bobs-password\n"),
    )
    .expect("users");
    let data_arg = data.display().to_string();
    let users_arg = users.display().to_string();
    let broker = BrokerProcess::start(&[
        "--data-dir",
        &data_arg,
        "--sasl-mechanisms",
        "SCRAM-SHA-256,SCRAM-SHA-512",
        "--users-file",
        &users_arg,
    ]);
    our_client(&broker.bootstrap(), Some(Mechanism::ScramSha256), PASSWORD, None)
        .metadata()
        .await
        .expect("alice");
    let stored = std::fs::read_to_string(data.join("credentials.json")).expect("credentials.json");
    assert!(
        !stored.contains(PASSWORD) && !stored.contains("bobs-password"),
        "{stored}"
    );
    assert!(stored.contains("storedKey") && stored.contains("\"bob\""), "{stored}");
    broker.kill9();

    let broker = BrokerProcess::start(&["--data-dir", &data_arg, "--sasl-mechanisms", "SCRAM-SHA-512"]);
    our_client(&broker.bootstrap(), Some(Mechanism::ScramSha512), PASSWORD, None)
        .metadata()
        .await
        .expect("alice after a restart without the users file");
    let err = our_client(&broker.bootstrap(), Some(Mechanism::ScramSha512), "bobs-password", None)
        .metadata()
        .await
        .expect_err("alice with bob's password");
    assert!(matches!(err, KafkaError::Authentication { .. }), "{err}");
}

#[test]
fn sasl_without_any_user_refuses_to_start() {
    let dir = support::process::fixture_dir("broker-no-users");
    let data = dir.join("data").display().to_string();
    let binary = env!("CARGO_BIN_EXE_kafka-group-operator");
    let out = Command::new(binary)
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--sasl-mechanisms",
            "PLAIN",
        ])
        .output()
        .expect("run the broker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no user"), "{stderr}");
}

/// `users[].allow`: a user limited to topic and group prefixes gets TOPIC_AUTHORIZATION_FAILED and
/// GROUP_AUTHORIZATION_FAILED for anything else, from every client, and sees only what it may in listings.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_limited_to_prefixes_is_refused_everything_else_as_kafka_refuses_it() {
    let admin = User {
        name: "admin".into(),
        password: Some(b"admin-password".to_vec()),
        allow: None,
    };
    let limited = User {
        allow: Some(Allow {
            topics: vec!["orders".into()],
            groups: vec!["shipping".into()],
        }),
        ..alice()
    };
    let kafka = broker(SecurityConfig {
        mechanisms: vec![Mechanism::ScramSha512],
        tls: None,
        users: Some(vec![admin, limited]),
    });
    let bootstrap = kafka.bootstrap();
    let orders = unique_name("orders");
    let payments = unique_name("payments");
    let mut admin_config = ClientConfig::new([bootstrap.clone()]);
    admin_config.sasl = Some(SaslConfig {
        mechanism: SaslMechanism::ScramSha512,
        username: "admin".into(),
        password: Secret::new(b"admin-password".to_vec()),
    });
    let admin_client = KafkaClient::new(admin_config).expect("admin client");
    admin_client
        .create_topics(&[
            kafka_group_operator::kafka::NewTopic::new(orders.clone(), 1),
            kafka_group_operator::kafka::NewTopic::new(payments.clone(), 1),
        ])
        .await
        .expect("admin creates both topics");
    let admin_security = ClientSecurity {
        protocol: SecurityProtocol::SaslPlaintext,
        sasl: Some(SaslCredentials {
            username: "admin".into(),
            password: "admin-password".into(),
            mechanism: FixtureMechanism::ScramSha512,
        }),
        ..Default::default()
    };
    produce_with(&bootstrap, &admin_security, &payments, 3);
    let committed = consume_and_commit_with(
        &bootstrap,
        &admin_security,
        &payments,
        "billing",
        GroupProtocol::Classic,
        3,
    );
    assert_eq!(committed.values().sum::<i64>(), 3);

    let security = librdkafka(
        SecurityProtocol::SaslPlaintext,
        Some(Mechanism::ScramSha512),
        PASSWORD,
        None,
    );
    // Allowed: its topic and its group.
    produce_with(&bootstrap, &security, &orders, 5);
    let committed = consume_and_commit_with(&bootstrap, &security, &orders, "shipping-eu", GroupProtocol::Classic, 5);
    assert_eq!(committed.values().sum::<i64>(), 5);
    // Another topic: refused, nothing written.
    let failure = confluent_client(
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            &payments,
            "--count",
            "1",
            "--timeout",
            "15",
        ],
        &security,
    )
    .expect_err("produce to a topic outside the prefixes");
    assert!(
        failure.stderr.contains("TOPIC_AUTHORIZATION_FAILED") || failure.stderr.contains("Topic authorization failed"),
        "{failure}"
    );
    // Another group: refused.
    let out = confluent_client(
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            &orders,
            "--group",
            "billing",
            "--count",
            "1",
            "--timeout",
            "15",
        ],
        &security,
    );
    let failure = out.expect_err("a group outside the prefixes");
    assert!(
        failure.stderr.contains("GROUP_AUTHORIZATION_FAILED") || failure.stderr.contains("Group authorization failed"),
        "{failure}"
    );
    // Listings show only what it may see; describing another group is refused.
    let dir = support::process::fixture_dir("authz");
    let properties = java_properties(&dir, "SASL_PLAINTEXT", Some(Mechanism::ScramSha512), PASSWORD, None);
    let (ok, out) = java_tool(
        &bootstrap,
        &properties,
        "org.apache.kafka.tools.TopicCommand",
        &["--list"],
    );
    assert!(ok && out.contains(&orders) && !out.contains(&payments), "{out}");
    let (ok, out) = java_tool(
        &bootstrap,
        &properties,
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &["--list"],
    );
    assert!(ok && out.contains("shipping-eu") && !out.contains("billing"), "{out}");
    let (_, out) = java_tool(
        &bootstrap,
        &properties,
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &["--describe", "--group", "billing"],
    );
    assert!(
        out.contains("GroupAuthorizationException") || out.contains("Not authorized"),
        "{out}"
    );
    // The admin still sees everything, and the refused produce wrote nothing.
    let partition = kafka_group_operator::kafka::TopicPartition {
        topic: payments.as_str().into(),
        partition: 0,
    };
    let offsets = admin_client
        .list_offsets(
            std::slice::from_ref(&partition),
            kafka_group_operator::kafka::OffsetSpec::Latest,
            kafka_group_operator::kafka::Isolation::ReadUncommitted,
        )
        .await
        .expect("log end of payments");
    assert_eq!(offsets[&partition].offset, 3, "{offsets:?}");
}

/// An SSL listener with required client certificates and certificate users: `admin` may name everything,
/// `alice` only what starts with `alice-`. The topics `alice-x…` and `bob-x…` exist.
struct CertificateUsers {
    tls: Tls,
    kafka: EmbeddedKafka,
    alice_topic: String,
    bob_topic: String,
}

fn certificate_users() -> CertificateUsers {
    let tls = tls();
    let kafka = broker(SecurityConfig {
        mechanisms: Vec::new(),
        tls: Some(identity(&tls, true)),
        users: Some(vec![
            certificate_user("admin", None),
            certificate_user("alice", Some(prefixes("alice-"))),
        ]),
    });
    let admin = tls.pki.client_cert("admin", "/O=kgo/CN=admin");
    let alice_topic = unique_name("alice-x");
    let bob_topic = unique_name("bob-x");
    let topics = [
        kafka_group_operator::kafka::NewTopic::new(alice_topic.clone(), 1),
        kafka_group_operator::kafka::NewTopic::new(bob_topic.clone(), 1),
    ];
    kafka
        .handle()
        .block_on(our_certificate_client(&kafka.bootstrap(), &tls, &admin).create_topics(&topics))
        .expect("the admin certificate creates both topics");
    CertificateUsers {
        tls,
        kafka,
        alice_topic,
        bob_topic,
    }
}

/// Kafka's principal of an SSL listener is the certificate's subject; with the usual mapping rule
/// `RULE:^CN=(.*?),.*$/$1/` it is the CN, and the user of that name is what the authorizer checks.
#[test]
fn a_client_certificates_cn_is_its_principal_and_that_users_allow_applies() {
    let setup = certificate_users();
    let bootstrap = setup.kafka.bootstrap();
    let alice = setup.tls.pki.client_cert("alice", "/O=kgo/OU=apps/CN=alice");
    let security = with_certificate(&setup.tls, &alice);

    produce_with(&bootstrap, &security, &setup.alice_topic, 3);
    let group = unique_name("alice-group");
    let committed = consume_and_commit_with(
        &bootstrap,
        &security,
        &setup.alice_topic,
        &group,
        GroupProtocol::Classic,
        3,
    );
    assert_eq!(committed.values().sum::<i64>(), 3, "{committed:?}");
    produce_is_refused(&bootstrap, &security, &setup.bob_topic);

    let (ok, out) = kcat(&bootstrap, &kcat_certificate(&setup.tls, &alice), &["-L"]);
    assert!(
        ok && out.contains(&setup.alice_topic) && !out.contains(&setup.bob_topic),
        "kcat -L as CN=alice lists only alice- topics: {out}"
    );
}

/// With certificate users declared, a certificate whose CN is none of them is like a principal without ACLs
/// under Kafka's authorizer: it may connect, and name nothing.
#[test]
fn a_certificate_whose_cn_is_not_declared_may_name_nothing() {
    let setup = certificate_users();
    let bootstrap = setup.kafka.bootstrap();
    let mallory = setup.tls.pki.client_cert("mallory", "/O=kgo/CN=mallory");

    let (_, out) = kcat(
        &bootstrap,
        &kcat_certificate(&setup.tls, &mallory),
        &["-L", "-t", &setup.alice_topic],
    );
    assert!(
        out.contains("Topic authorization failed"),
        "kcat -L -t as CN=mallory: {out}"
    );
    let (ok, out) = kcat(&bootstrap, &kcat_certificate(&setup.tls, &mallory), &["-L"]);
    assert!(
        ok && out.contains("0 topics") && !out.contains(&setup.alice_topic),
        "kcat -L as CN=mallory lists nothing: {out}"
    );
    produce_is_refused(&bootstrap, &with_certificate(&setup.tls, &mallory), &setup.alice_topic);
}

/// The CN names the user; a certificate without one names nobody and its connection is closed.
#[test]
fn a_client_certificate_without_a_cn_is_refused_at_authentication() {
    let setup = certificate_users();
    let bootstrap = setup.kafka.bootstrap();
    let nameless = setup.tls.pki.client_cert("nameless", "/O=kgo/OU=no-common-name");
    setup
        .kafka
        .handle()
        .block_on(our_certificate_client(&bootstrap, &setup.tls, &nameless).metadata())
        .expect_err("a certificate without a CN");
    // The handshake succeeds (the CA issued the certificate), then the broker closes for want of a CN. Our
    // client cannot tell that close from a refused handshake; the broker's metrics can.
    let metrics = setup.kafka.metrics_text();
    let closed = |reason: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with(&format!("kafka_broker_connections_closed_total{{reason=\"{reason}\"}}")))
    };
    assert!(closed("authentication") && !closed("tls"), "{metrics}");
    let (ok, out) = kcat(&bootstrap, &kcat_certificate(&setup.tls, &nameless), &["-L", "-m", "5"]);
    assert!(!ok && !out.contains(&setup.alice_topic), "kcat -L with no CN: {out}");
}

/// On SASL_SSL with required client certificates the principal is the SASL user (Kafka's rule), whatever the
/// certificate's CN.
#[test]
fn on_sasl_ssl_the_principal_is_the_sasl_user_not_the_certificate() {
    let tls = tls();
    let kafka = broker(SecurityConfig {
        mechanisms: vec![Mechanism::ScramSha512],
        tls: Some(identity(&tls, true)),
        users: Some(vec![User {
            allow: Some(prefixes("alice-")),
            ..alice()
        }]),
    });
    let bootstrap = kafka.bootstrap();
    let admin = tls.pki.client_cert("admin", "/CN=admin");
    let topic = unique_name("alice-sasl");
    let mut config = ClientConfig::new([bootstrap.clone()]);
    config.sasl = Some(SaslConfig {
        mechanism: SaslMechanism::ScramSha512,
        username: "alice".into(),
        password: Secret::new(PASSWORD.as_bytes().to_vec()),
    });
    config.tls = Some(TlsConfig {
        ca_pem: Some(std::fs::read(tls.pki.ca_cert()).expect("ca")),
        client_cert_pem: Some(std::fs::read(&admin.cert).expect("cert")),
        client_key_pem: Some(Secret::new(std::fs::read(&admin.key).expect("key"))),
        ..Default::default()
    });
    kafka
        .handle()
        .block_on(
            KafkaClient::new(config)
                .expect("client")
                .create_topics(&[kafka_group_operator::kafka::NewTopic::new(topic.clone(), 1)]),
        )
        .expect("alice creates an alice- topic");
    let security = ClientSecurity {
        cert: Some(admin.cert.clone()),
        key: Some(admin.key.clone()),
        ..librdkafka(
            SecurityProtocol::SaslSsl,
            Some(Mechanism::ScramSha512),
            PASSWORD,
            Some(tls.pki.ca_cert()),
        )
    };
    produce_with(&bootstrap, &security, &topic, 1);
    produce_is_refused(&bootstrap, &security, &unique_name("bob-sasl"));
}

/// `broker --users-file` on an SSL listener with `--tls-client-ca`: a line without a password declares the
/// certificate of that CN; a `name:password` line there (SASL is off) is refused, never stored as a name.
#[test]
fn the_users_file_declares_certificate_users_by_cn() {
    let tls = tls();
    let dir = support::process::fixture_dir("broker-certificate-users");
    let users = dir.join("users");
    std::fs::write(&users, "# client certificates, by CN\nalice\n").expect("users");
    let path = |p: &Path| p.display().to_string();
    let (cert, key, ca, users_arg) = (
        path(&tls.server.cert),
        path(&tls.server.key),
        path(tls.pki.ca_cert()),
        path(&users),
    );
    let broker = BrokerProcess::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        &ca,
        "--users-file",
        &users_arg,
    ]);
    let bootstrap = broker.bootstrap();
    let topic = unique_name("declared");
    let alice = tls.pki.client_cert("alice", "/CN=alice");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(
            our_certificate_client(&bootstrap, &tls, &alice)
                .create_topics(&[kafka_group_operator::kafka::NewTopic::new(topic.clone(), 1)]),
        )
        .expect("alice creates a topic");
    produce_with(&bootstrap, &with_certificate(&tls, &alice), &topic, 2);
    let mallory = tls.pki.client_cert("mallory", "/CN=mallory");
    let (_, out) = kcat(&bootstrap, &kcat_certificate(&tls, &mallory), &["-L", "-t", &topic]);
    assert!(
        out.contains("Topic authorization failed"),
        "kcat -L -t as CN=mallory: {out}"
    );
    drop(broker);

    std::fs::write(&users, "alice:a-password-not-a-name\n").expect("users");
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .args(["--tls-client-ca", &ca, "--users-file", &users_arg])
        .output()
        .expect("run the broker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1") && stderr.contains("--sasl-mechanisms") && !stderr.contains("a-password-not-a-name"),
        "{stderr}"
    );
}
