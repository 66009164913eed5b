//! One surface over both brokers the tests run against, Apache Kafka and the embedded broker, so that a test
//! written once runs on each with the same assertions (`on_both_brokers!`).

use super::kafka::GroupOffsetRow;
use super::{ApacheKafka, EmbeddedKafka};
use std::process::Output;

pub trait TestBroker: Sync {
    /// "Apache Kafka" or "the embedded broker", for messages.
    fn name(&self) -> &'static str;
    fn bootstrap(&self) -> String;
    /// Runs one of Kafka's CLI tools against this broker.
    fn tool(&self, class: &str, args: &[&str]) -> Output;
    fn tool_ok(&self, class: &str, args: &[&str]) -> String;
    /// Creates a topic with `kafka-topics --create`.
    fn create_topic(&self, topic: &str, partitions: u32);
    /// `kafka-consumer-groups --describe --group G --offsets`, parsed.
    fn describe_group_offsets(&self, group: &str) -> Vec<GroupOffsetRow>;
    /// Whether the broker serves KIP-848 consumer groups (`group.protocol=consumer`).
    fn serves_kip848(&self) -> bool;
}

macro_rules! delegate {
    ($type:ty, $name:literal, $kip848:literal) => {
        impl TestBroker for $type {
            fn name(&self) -> &'static str {
                $name
            }
            fn bootstrap(&self) -> String {
                <$type>::bootstrap(self)
            }
            fn tool(&self, class: &str, args: &[&str]) -> Output {
                <$type>::tool(self, class, args)
            }
            fn tool_ok(&self, class: &str, args: &[&str]) -> String {
                <$type>::tool_ok(self, class, args)
            }
            fn create_topic(&self, topic: &str, partitions: u32) {
                <$type>::create_topic(self, topic, partitions)
            }
            fn describe_group_offsets(&self, group: &str) -> Vec<GroupOffsetRow> {
                <$type>::describe_group_offsets(self, group)
            }
            fn serves_kip848(&self) -> bool {
                $kip848
            }
        }
    };
}

delegate!(ApacheKafka, "Apache Kafka", true);
delegate!(EmbeddedKafka, "the embedded broker", true);

/// For each `async fn test(broker: &dyn TestBroker)` named, two tests: `test::apache_kafka` and
/// `test::embedded_broker`, each on its broker shared by the test binary.
#[macro_export]
macro_rules! on_both_brokers {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread")]
                async fn apache_kafka() {
                    super::$test($crate::support::ApacheKafka::shared()).await
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn embedded_broker() {
                    super::$test($crate::support::EmbeddedKafka::shared()).await
                }
            }
        )*
    };
}
