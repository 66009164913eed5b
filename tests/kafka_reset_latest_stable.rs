//! `latest` in a reset, on both brokers: for a group that reads committed (declared, or undeclared on a topic
//! with an open transaction) it is the last stable offset (ListOffsets READ_COMMITTED), not the high watermark,
//! so the reset does not skip the records of a transaction that may still commit.

#[macro_use]
mod support;

use kafka_group_operator::api::IsolationLevel;
use kafka_group_operator::api::reset::{Empty, ResetTo};
use kafka_group_operator::controller::resolve::{ResetRequest, resolve_reset};
use kafka_group_operator::kafka::{ClientConfig, KafkaClient, NewTopic};
use support::clients;
use support::{TestBroker, unique_name};

async fn latest_for(client: &KafkaClient, group: &str, isolation: Option<IsolationLevel>) -> i64 {
    let to = ResetTo {
        latest: Some(Empty {}),
        ..Default::default()
    };
    let request = ResetRequest {
        group_id: group,
        topics: &[],
        to: &to,
        declared_topics: &[],
        isolation,
        previous_of: None,
        streams: None,
    };
    let committed = client.stable_group_offsets(group).await.expect("committed offsets");
    let resolved = resolve_reset(client, &request, &committed, 0).await.expect("resolve");
    assert_eq!(resolved.partitions.len(), 1);
    resolved.partitions[0].to
}

async fn latest_for_a_read_committed_group_is_the_last_stable_offset(kafka: &dyn TestBroker) {
    use IsolationLevel::*;
    let bootstrap = kafka.bootstrap();
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()])).expect("client");
    let topic = unique_name("lso-reset");
    client
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("create topic");
    clients::produce(&bootstrap, &topic, 10);
    let group = unique_name("lso-reset-group");
    clients::commit_offsets(&bootstrap, &topic, &group, 1, 3).expect("plain commit");
    // Another application's transaction writes 5 records to the topic and stays open: LSO 10, high watermark 15.
    let other = unique_name("lso-other-group");
    let open = clients::open_transactional_commit(&bootstrap, &topic, 0, &other, 0, 5, true);

    assert_eq!(latest_for(&client, &group, Some(ReadCommitted)).await, 10);
    assert_eq!(
        latest_for(&client, &group, None).await,
        10,
        "an open transaction means readCommitted"
    );
    assert_eq!(latest_for(&client, &group, Some(ReadUncommitted)).await, 15);

    // Aborted: the 5 records and the ABORT marker are all behind the last stable offset.
    let log = tokio::task::spawn_blocking(move || open.stop()).await.expect("stop");
    assert!(log.contains("\"aborted\": true"), "{log}");
    assert_eq!(latest_for(&client, &group, Some(ReadCommitted)).await, 16);
    assert_eq!(latest_for(&client, &group, Some(ReadUncommitted)).await, 16);
}

on_both_brokers!();

on_both_brokers!(latest_for_a_read_committed_group_is_the_last_stable_offset);
