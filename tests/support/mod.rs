//! Fixtures for integration tests against REAL dependencies: a kube-apiserver + etcd control plane, an
//! Apache Kafka broker (plain, and one with TLS and SASL), and clients no one here wrote (confluent-kafka,
//! kcat, Kafka's own CLI tools).
//! Each test binary shares one instance of each (`shared()`); tests take fresh namespaces, topics and groups.
#![allow(dead_code, unused_imports)] // every test binary uses a different part of the fixtures

pub mod brokers;
pub mod clients;
pub mod control_plane;
pub mod crds;
pub mod embedded;
pub mod java_clients;
pub mod kafka;
pub mod keda;
pub mod kubelet;
pub mod operator;
pub mod pki;
pub mod process;
pub mod recorders;
pub mod scenario;
pub mod secure_kafka;
pub mod tools;
pub mod wait;

pub use brokers::TestBroker;
pub use control_plane::ControlPlane;
pub use embedded::EmbeddedKafka;
pub use kafka::ApacheKafka;
pub use secure_kafka::SecureKafka;

/// A name no other test (in this run or a concurrent one) uses: `prefix-<pid>-<counter>-<random>`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos & 0xffff)
}
