//! Proves the Kafka half of the test harness is real: an Apache Kafka broker that confluent-kafka, kcat and
//! Kafka's own CLI tools use, with consumer groups of both protocols.

mod support;

use support::clients::{GroupProtocol, consume_and_commit, kcat, produce};
use support::{ApacheKafka, unique_name};

fn produce_consume_and_describe(protocol: GroupProtocol) {
    let kafka = ApacheKafka::shared();
    let topic = unique_name("smoke");
    let group = unique_name("smoke-group");
    kafka.create_topic(&topic, 3);
    produce(&kafka.bootstrap(), &topic, 30);

    let committed = consume_and_commit(&kafka.bootstrap(), &topic, &group, protocol, 30);
    assert_eq!(
        committed.values().sum::<i64>(),
        30,
        "confluent-kafka committed {committed:?}"
    );

    let rows = kafka.describe_group_offsets(&group);
    assert_eq!(rows.len(), 3, "one row per partition: {rows:?}");
    for row in &rows {
        assert_eq!(row.group, group);
        assert_eq!(row.topic, topic);
        let key = format!("{topic}:{}", row.partition);
        assert_eq!(row.current_offset, committed.get(&key).copied(), "{row:?}");
        assert_eq!(row.current_offset, row.log_end_offset, "{row:?}");
        assert_eq!(row.lag, Some(0), "{row:?}");
    }
}

#[test]
fn classic_group_commits_are_visible_to_kafka_consumer_groups() {
    produce_consume_and_describe(GroupProtocol::Classic);
}

#[test]
fn consumer_protocol_group_commits_are_visible_to_kafka_consumer_groups() {
    produce_consume_and_describe(GroupProtocol::Consumer);
}

#[test]
fn kcat_sees_the_broker_and_reads_what_was_produced() {
    let kafka = ApacheKafka::shared();
    let topic = unique_name("kcat");
    kafka.create_topic(&topic, 1);
    produce(&kafka.bootstrap(), &topic, 5);
    let metadata = kcat(&kafka.bootstrap(), &["-L", "-t", &topic]);
    assert!(
        metadata.contains(&format!("topic \"{topic}\" with 1 partitions")),
        "{metadata}"
    );
    let records = kcat(
        &kafka.bootstrap(),
        &["-C", "-t", &topic, "-o", "beginning", "-e", "-f", "%k=%s\\n"],
    );
    let lines: Vec<&str> = records.lines().collect();
    assert_eq!(lines, (0..5).map(|i| format!("key-{i}=value-{i}")).collect::<Vec<_>>());
}
