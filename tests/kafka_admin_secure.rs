//! The admin client over TLS and SASL against a real Apache Kafka broker configured with them
//! (SASL_SSL with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN; SSL with client certificates).

mod support;

use kafka_group_operator::kafka::{
    ClientConfig, KafkaClient, KafkaError, NewTopic, SaslConfig, SaslMechanism, Secret, TlsConfig, TopicPartition,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::secure_kafka::{SaslCredentials, SaslMechanism as FixtureMechanism};
use support::{SecureKafka, unique_name};

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn trusting_ca(kafka: &SecureKafka) -> TlsConfig {
    TlsConfig {
        ca_pem: Some(read(kafka.ca_pem())),
        ..Default::default()
    }
}

fn sasl(user: &SaslCredentials) -> SaslConfig {
    SaslConfig {
        mechanism: match user.mechanism {
            FixtureMechanism::Plain => SaslMechanism::Plain,
            FixtureMechanism::ScramSha256 => SaslMechanism::ScramSha256,
            FixtureMechanism::ScramSha512 => SaslMechanism::ScramSha512,
        },
        username: user.username.clone(),
        password: Secret::new(user.password.clone()),
    }
}

fn sasl_ssl_client(kafka: &SecureKafka, user: &SaslCredentials) -> KafkaClient {
    let mut config = ClientConfig::new([kafka.sasl_ssl_bootstrap()]);
    config.tls = Some(trusting_ca(kafka));
    config.sasl = Some(sasl(user));
    config.operation_timeout = Duration::from_secs(20);
    KafkaClient::new(config).expect("client")
}

/// Creates a topic, commits offsets for a new group and reads them back, all over the given client.
async fn round_trip(client: &KafkaClient) {
    let topic = unique_name("secure");
    client
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .expect("create topic");
    let group = unique_name("secure-group");
    let offsets = BTreeMap::from([(TopicPartition::new(&topic, 0), 0), (TopicPartition::new(&topic, 1), 0)]);
    client.commit_offsets(&group, &offsets).await.expect("commit");
    let back = client.group_offsets(&group).await.expect("read back");
    assert_eq!(back.len(), 2, "{back:?}");
}

#[tokio::test]
async fn scram_sha_512_over_tls_works_end_to_end() {
    let kafka = SecureKafka::shared();
    round_trip(&sasl_ssl_client(kafka, kafka.scram_sha_512_user())).await;
}

#[tokio::test]
async fn scram_sha_256_over_tls_works_end_to_end() {
    let kafka = SecureKafka::shared();
    round_trip(&sasl_ssl_client(kafka, kafka.scram_sha_256_user())).await;
}

#[tokio::test]
async fn plain_over_tls_works_end_to_end() {
    let kafka = SecureKafka::shared();
    round_trip(&sasl_ssl_client(kafka, kafka.plain_user())).await;
}

#[tokio::test]
async fn a_client_certificate_works_end_to_end_over_mutual_tls() {
    let kafka = SecureKafka::shared();
    let mut config = ClientConfig::new([kafka.ssl_bootstrap()]);
    config.tls = Some(TlsConfig {
        ca_pem: Some(read(kafka.ca_pem())),
        client_cert_pem: Some(read(kafka.client_cert_pem())),
        client_key_pem: Some(Secret::new(read(kafka.client_key_pem()))),
        server_name: None,
    });
    round_trip(&KafkaClient::new(config).expect("client")).await;
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_at_once() {
    let kafka = SecureKafka::shared();
    for user in kafka.users() {
        let client = sasl_ssl_client(kafka, &user.with_password("wrong-password"));
        let started = Instant::now();
        let err = client.metadata().await.expect_err("wrong password");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, KafkaError::Authentication { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&user.username) || text.contains(user.mechanism.as_str()),
            "{text}"
        );
        assert!(
            !text.contains("wrong-password"),
            "the password must not be in the error: {text}"
        );
        assert!(!text.contains(&user.password), "{text}");
    }
}

#[tokio::test]
async fn a_missing_client_certificate_is_a_tls_error_that_says_so() {
    let kafka = SecureKafka::shared();
    let mut config = ClientConfig::new([kafka.ssl_bootstrap()]);
    config.tls = Some(trusting_ca(kafka));
    let err = KafkaClient::new(config)
        .expect("client")
        .metadata()
        .await
        .expect_err("no client certificate");
    assert!(matches!(err, KafkaError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("client certificate"), "{err}");
}

#[tokio::test]
async fn an_untrusted_broker_certificate_is_a_tls_error() {
    let kafka = SecureKafka::shared();
    let mut config = ClientConfig::new([kafka.sasl_ssl_bootstrap()]);
    // The system trust store does not know the fixture's CA.
    config.tls = Some(TlsConfig::default());
    config.sasl = Some(sasl(kafka.scram_sha_512_user()));
    let err = KafkaClient::new(config)
        .expect("client")
        .metadata()
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, KafkaError::Tls { .. }), "{err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}
