//! Committed offsets read with `require_stable` (OffsetFetch v7+) on both brokers: a group whose
//! transactional offset commit (a confluent-kafka producer's `send_offsets_to_transaction`) is still open is
//! waited for, never read as it stands; once the transaction ends, the stable offset is read.

#[macro_use]
mod support;

use kafka_group_operator::kafka::{ClientConfig, KafkaClient, KafkaError, NewTopic, TopicPartition};
use std::time::{Duration, Instant};
use support::clients;
use support::{TestBroker, unique_name};

/// A topic of 10 records and a group with offset 3 committed plainly, then offset 7 committed inside a
/// transaction that stays open (commits on stop, or aborts with `abort`).
async fn group_with_open_transactional_commit(
    kafka: &dyn TestBroker,
    abort: bool,
) -> (KafkaClient, String, TopicPartition, clients::ScriptProcess) {
    let bootstrap = kafka.bootstrap();
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()])).expect("client");
    let topic = unique_name("stable");
    client
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("create topic");
    clients::produce(&bootstrap, &topic, 10);
    let group = unique_name("stable-group");
    clients::commit_offsets(&bootstrap, &topic, &group, 1, 3).expect("plain commit");
    let open = clients::open_transactional_commit(&bootstrap, &topic, 0, &group, 7, 0, abort);
    (client, group, TopicPartition::new(&topic, 0), open)
}

fn unstable_partitions(result: Result<impl std::fmt::Debug, KafkaError>) -> Vec<String> {
    match result {
        Err(KafkaError::UnstableOffsetCommit { partitions, .. }) => partitions,
        other => panic!("expected UNSTABLE_OFFSET_COMMIT, got {other:?}"),
    }
}

async fn a_pending_transactional_offset_commit_is_waited_for_and_the_committed_offset_read(kafka: &dyn TestBroker) {
    let (client, group, tp, open) = group_with_open_transactional_commit(kafka, false).await;
    assert_eq!(
        unstable_partitions(client.stable_group_offsets(&group).await),
        [tp.to_string()]
    );
    let waiting = {
        let (client, group) = (client.clone(), group.clone());
        tokio::spawn(async move {
            client
                .stable_group_offsets_within(&group, Duration::from_secs(60))
                .await
        })
    };
    // Still waiting while the transaction is open: nothing is read from the pending commit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !waiting.is_finished(),
        "read offsets while a transactional commit was pending"
    );
    let log = tokio::task::spawn_blocking(move || open.stop()).await.expect("stop");
    assert!(log.contains("\"committed\": true"), "{log}");
    let offsets = waiting.await.expect("join").expect("stable offsets after the commit");
    assert_eq!(offsets[&tp].offset, 7);
}

async fn an_aborted_transactional_offset_commit_leaves_the_previous_offset(kafka: &dyn TestBroker) {
    let (client, group, tp, open) = group_with_open_transactional_commit(kafka, true).await;
    let waiting = {
        let (client, group) = (client.clone(), group.clone());
        tokio::spawn(async move {
            client
                .stable_group_offsets_within(&group, Duration::from_secs(60))
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished());
    let log = tokio::task::spawn_blocking(move || open.stop()).await.expect("stop");
    assert!(log.contains("\"aborted\": true"), "{log}");
    let offsets = waiting.await.expect("join").expect("stable offsets after the abort");
    assert_eq!(offsets[&tp].offset, 3);
}

async fn the_wait_for_a_pending_transactional_commit_is_bounded(kafka: &dyn TestBroker) {
    let (client, group, tp, open) = group_with_open_transactional_commit(kafka, true).await;
    let started = Instant::now();
    let result = client.stable_group_offsets_within(&group, Duration::from_secs(2)).await;
    let waited = started.elapsed();
    assert_eq!(unstable_partitions(result), [tp.to_string()]);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "waited {waited:?}"
    );
    tokio::task::spawn_blocking(move || open.stop()).await.expect("stop");
}

on_both_brokers!();

on_both_brokers!(
    a_pending_transactional_offset_commit_is_waited_for_and_the_committed_offset_read,
    an_aborted_transactional_offset_commit_leaves_the_previous_offset,
    the_wait_for_a_pending_transactional_commit_is_bounded,
);
