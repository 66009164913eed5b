//! Proves the secure Kafka fixture is real: confluent-kafka (librdkafka) produces and consumes over SASL_SSL
//! with each SASL mechanism and over mutual TLS, verifying the broker's certificate and host name against the
//! fixture's CA, and over SASL_PLAINTEXT; wrong credentials and missing certificates are refused.

mod support;

use std::time::{Duration, Instant};
use support::clients::{
    ClientFailure, ClientSecurity, GroupProtocol, confluent_client, consume_and_commit_with, produce_with,
};
use support::{SecureKafka, unique_name};

/// Produces and consumes `count` records on a fresh topic through `bootstrap` with `security`; returns the
/// topic, the group and the offsets the group committed.
fn round_trip(
    kafka: &SecureKafka,
    bootstrap: &str,
    security: &ClientSecurity,
    protocol: GroupProtocol,
) -> (String, String, std::collections::BTreeMap<String, i64>) {
    let topic = unique_name("secure");
    let group = unique_name("secure-group");
    kafka.plaintext().create_topic(&topic, 2);
    produce_with(bootstrap, security, &topic, 20);
    let committed = consume_and_commit_with(bootstrap, security, &topic, &group, protocol, 20);
    assert_eq!(
        committed.values().sum::<i64>(),
        20,
        "confluent-kafka over {security:?} committed {committed:?}"
    );
    (topic, group, committed)
}

#[test]
fn scram_sha_512_user_produces_and_consumes_over_sasl_ssl() {
    let kafka = SecureKafka::shared();
    let alice = kafka.scram_sha_512_user();
    round_trip(
        kafka,
        &kafka.sasl_ssl_bootstrap(),
        &kafka.sasl_ssl_client(alice),
        GroupProtocol::Classic,
    );
}

#[test]
fn scram_sha_256_user_produces_and_consumes_over_sasl_ssl() {
    let kafka = SecureKafka::shared();
    let bob = kafka.scram_sha_256_user();
    round_trip(
        kafka,
        &kafka.sasl_ssl_bootstrap(),
        &kafka.sasl_ssl_client(bob),
        GroupProtocol::Consumer,
    );
}

#[test]
fn plain_user_produces_and_consumes_over_sasl_ssl() {
    let kafka = SecureKafka::shared();
    let carol = kafka.plain_user();
    round_trip(
        kafka,
        &kafka.sasl_ssl_bootstrap(),
        &kafka.sasl_ssl_client(carol),
        GroupProtocol::Classic,
    );
}

#[test]
fn every_sasl_user_produces_and_consumes_over_sasl_plaintext_too() {
    let kafka = SecureKafka::shared();
    for user in kafka.users() {
        round_trip(
            kafka,
            &kafka.sasl_plaintext_bootstrap(),
            &kafka.sasl_plaintext_client(user),
            GroupProtocol::Classic,
        );
    }
    let wrong = kafka.scram_sha_512_user().with_password("wrong-password");
    let topic = unique_name("secure-refused");
    kafka.plaintext().create_topic(&topic, 1);
    let failure = refused_producer(
        &kafka.sasl_plaintext_bootstrap(),
        &kafka.sasl_plaintext_client(&wrong),
        &topic,
    );
    assert!(failure.stderr.contains("produce: authentication failed"), "{failure}");
}

#[test]
fn client_certificate_produces_and_consumes_over_mutual_tls_on_the_same_broker() {
    let kafka = SecureKafka::shared();
    let (topic, group, committed) = round_trip(
        kafka,
        &kafka.ssl_bootstrap(),
        &kafka.mtls_client(),
        GroupProtocol::Consumer,
    );
    // What the mTLS client committed is what Kafka's own tool sees through the PLAINTEXT listener.
    let rows = kafka.plaintext().describe_group_offsets(&group);
    assert_eq!(rows.len(), 2, "one row per partition: {rows:?}");
    for row in &rows {
        assert_eq!(row.topic, topic);
        let key = format!("{topic}:{}", row.partition);
        assert_eq!(row.current_offset, committed.get(&key).copied(), "{row:?}");
        assert_eq!(row.lag, Some(0), "{row:?}");
    }
}

/// Runs a producer that must be refused; returns how it failed, after checking it failed fast (librdkafka
/// itself would retry forever; the script ends on the first authentication or TLS error).
fn refused_producer(bootstrap: &str, security: &ClientSecurity, topic: &str) -> ClientFailure {
    let started = Instant::now();
    let args = [
        "produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--count",
        "1",
        "--timeout",
        "30",
    ];
    let failure = match confluent_client(&args, security) {
        Ok(out) => panic!("confluent-kafka with {security:?} should have been refused, but printed {out}"),
        Err(failure) => failure,
    };
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refusal took {:?}, not reported promptly: {failure}",
        started.elapsed()
    );
    assert_eq!(
        failure.status.code(),
        Some(3),
        "expected confluent_client.py's exit status for a security failure: {failure}"
    );
    failure
}

#[test]
fn wrong_credentials_fail_with_an_authentication_error() {
    let kafka = SecureKafka::shared();
    let topic = unique_name("refused");
    kafka.plaintext().create_topic(&topic, 1); // so that only security can make producing fail
    let alice = kafka.scram_sha_512_user();
    let bob = kafka.scram_sha_256_user();
    let carol = kafka.plain_user();
    let mut bob_under_sha_512 = bob.clone();
    bob_under_sha_512.mechanism = alice.mechanism;
    for user in [
        alice.with_password("not-alices-password"),
        carol.with_password("not-carols-password"),
        bob_under_sha_512, // bob's SCRAM credentials exist for SCRAM-SHA-256 only
    ] {
        let failure = refused_producer(&kafka.sasl_ssl_bootstrap(), &kafka.sasl_ssl_client(&user), &topic);
        assert!(
            failure.stderr.contains("produce: authentication failed"),
            "{user:?}: {failure}"
        );
    }
}

#[test]
fn tls_is_verified_in_both_directions() {
    let kafka = SecureKafka::shared();
    let topic = unique_name("refused");
    kafka.plaintext().create_topic(&topic, 1); // so that only security can make producing fail

    // The SSL listener requires a client certificate.
    let no_certificate = ClientSecurity {
        cert: None,
        key: None,
        ..kafka.mtls_client()
    };
    let failure = refused_producer(&kafka.ssl_bootstrap(), &no_certificate, &topic);
    assert!(failure.stderr.contains("produce: TLS failed"), "{failure}");

    // A client that does not trust the fixture's CA (only the system's) refuses the broker.
    let untrusting = ClientSecurity {
        ca: None,
        ..kafka.sasl_ssl_client(kafka.scram_sha_512_user())
    };
    let failure = refused_producer(&kafka.sasl_ssl_bootstrap(), &untrusting, &topic);
    assert!(
        failure.stderr.contains("produce: TLS failed") && failure.stderr.contains("certificate verify failed"),
        "{failure}"
    );
}
