//! Consumable lag (`KafkaClient::consumable_lag`) on both brokers: what a `read_committed` group will still
//! receive of a transactional topic, from batch headers, checked against what a confluent-kafka `read_committed`
//! consumer read.

#[macro_use]
mod support;

use kafka_group_operator::kafka::consumable::HEADER_FETCHES;
use kafka_group_operator::kafka::{ClientConfig, Isolation, KafkaClient, NewTopic, OffsetSpec, TopicPartition};
use kafka_group_operator::lag::high_watermark_lag;
use support::clients;
use support::{TestBroker, unique_name};

struct Lags {
    high_watermark: i64,
    consumable: i64,
    first_offset: Option<i64>,
    exact: bool,
    transactional: bool,
}

async fn lags(client: &KafkaClient, tp: &TopicPartition, committed: i64) -> Lags {
    let end = client
        .list_offsets(std::slice::from_ref(tp), OffsetSpec::Latest, Isolation::ReadUncommitted)
        .await
        .expect("log end")[tp]
        .offset;
    let read = client.consumable_lag(tp, committed).await.expect("consumable lag");
    Lags {
        high_watermark: high_watermark_lag(committed, end),
        consumable: read.lag.records,
        first_offset: read.lag.first_offset,
        exact: read.lag.exact,
        transactional: read.transactional,
    }
}

async fn consumable_lag_counts_only_the_records_a_read_committed_consumer_will_receive(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()])).expect("client");
    let topic = unique_name("txn-lag");
    client
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("create topic");
    let tp = TopicPartition::new(&topic, 0);
    let txn_id = format!("{topic}-producer");
    for _ in 0..3 {
        clients::transactional_produce(&bootstrap, &topic, &txn_id, 4, false);
    }
    let group = unique_name("txn-lag-group");
    let committed = clients::consume_committed_and_commit(&bootstrap, &topic, &group, 12);
    let committed = committed[&format!("{topic}:0")];

    // Caught up: the offsets left are the last COMMIT marker's.
    let caught_up = lags(&client, &tp, committed).await;
    assert!(
        caught_up.high_watermark > 0,
        "the last marker is behind the committed offset"
    );
    assert_eq!(
        (
            caught_up.consumable,
            caught_up.first_offset,
            caught_up.exact,
            caught_up.transactional
        ),
        (0, None, true, true)
    );

    // An aborted transaction is never received.
    clients::transactional_produce(&bootstrap, &topic, &txn_id, 20, true);
    let after_abort = lags(&client, &tp, committed).await;
    assert_eq!(after_abort.high_watermark, caught_up.high_watermark + 21);
    assert_eq!(
        (after_abort.consumable, after_abort.first_offset, after_abort.exact),
        (0, None, true)
    );

    // A committed backlog on top is exactly its record count, starting after the aborted range and its marker.
    clients::transactional_produce(&bootstrap, &topic, &txn_id, 12, false);
    let backlog = lags(&client, &tp, committed).await;
    assert_eq!(backlog.high_watermark, after_abort.high_watermark + 13);
    assert_eq!(backlog.consumable, 12);
    assert_eq!(backlog.first_offset, Some(committed + after_abort.high_watermark));
    assert!(backlog.exact);

    // What a read_committed consumer then reads is that backlog, no more.
    let consumed = clients::consume_committed_and_commit(&bootstrap, &topic, &group, 12);
    let committed = consumed[&format!("{topic}:0")];
    let drained = lags(&client, &tp, committed).await;
    assert_eq!((drained.consumable, drained.high_watermark), (0, 1));
}

async fn consumable_lag_of_a_plain_topic_is_its_high_watermark_lag(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()])).expect("client");
    let topic = unique_name("plain-lag");
    client
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("create topic");
    clients::produce(&bootstrap, &topic, 30);
    let tp = TopicPartition::new(&topic, 0);
    let got = lags(&client, &tp, 7).await;
    assert_eq!(
        (
            got.high_watermark,
            got.consumable,
            got.first_offset,
            got.exact,
            got.transactional
        ),
        (23, 23, Some(7), true, false)
    );
}

/// A backlog larger than the header reads of one scan (HEADER_FETCHES × HEADER_FETCH_BYTES = 1 MiB) is reported
/// as an upper bound, never below the truth and never above the high-watermark lag, after exactly the cap.
async fn a_backlog_past_the_read_cap_is_an_upper_bound(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()])).expect("client");
    let topic = unique_name("txn-cap");
    client
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .expect("create topic");
    let tp = TopicPartition::new(&topic, 0);
    // ≈ 2.4 MB of records in one transaction.
    clients::transactional_produce(&bootstrap, &topic, &format!("{topic}-producer"), 120_000, false);
    let end = client
        .list_offsets(
            std::slice::from_ref(&tp),
            OffsetSpec::Latest,
            Isolation::ReadUncommitted,
        )
        .await
        .expect("log end")[&tp]
        .offset;
    let read = client.consumable_lag(&tp, 0).await.expect("consumable lag");
    assert!(!read.lag.exact, "{read:?}");
    assert_eq!(read.fetches, HEADER_FETCHES);
    assert!((120_000..=end).contains(&read.lag.records), "{read:?}, log end {end}");
    assert_eq!(read.lag.first_offset, Some(0));
}

/// `first_records` (every wanted offset of a cluster read together) answers exactly what one `first_record` per
/// offset answers, on plain, large-batch and transactional partitions and at the log end, with far fewer Fetches.
async fn first_records_read_together_agree_with_one_read_per_offset(kafka: &dyn TestBroker) {
    let bootstrap = kafka.bootstrap();
    let client = KafkaClient::new(ClientConfig::new([bootstrap.clone()])).expect("client");
    let plain = unique_name("first-plain");
    let txn = unique_name("first-txn");
    client
        .create_topics(&[NewTopic::new(&plain, 3), NewTopic::new(&txn, 1)])
        .await
        .expect("create topics");
    let start = 1_700_000_000_000_i64;
    clients::produce_with_timestamps(&bootstrap, &plain, 0, 40, start, 1000);
    // 300 records of 1 KiB in batches of up to 1 MiB: batches far larger than the 16 KiB asked for at first.
    clients::produce_large_batches(&bootstrap, &plain, 1, 300, start, 1024);
    let txn_id = format!("{txn}-producer");
    clients::transactional_produce(&bootstrap, &txn, &txn_id, 5, false);
    clients::transactional_produce(&bootstrap, &txn, &txn_id, 5, true);
    clients::transactional_produce(&bootstrap, &txn, &txn_id, 5, false);
    // Partition 2 stays empty: its only offset is the log end.

    let ends = client
        .list_offsets(
            &[
                TopicPartition::new(&plain, 0),
                TopicPartition::new(&plain, 1),
                TopicPartition::new(&plain, 2),
                TopicPartition::new(&txn, 0),
            ],
            OffsetSpec::Latest,
            Isolation::ReadUncommitted,
        )
        .await
        .expect("log ends");
    let wanted: Vec<(TopicPartition, i64)> = ends
        .iter()
        .flat_map(|(tp, end)| (0..=end.offset).map(move |o| (tp.clone(), o)))
        .collect();
    assert_eq!(wanted.len(), 41 + 301 + 1 + 19, "{ends:?}");

    let together = client.first_records(wanted.iter().cloned()).await;
    for (tp, offset) in &wanted {
        let one = client.first_record(tp, *offset).await.expect("first record");
        assert_eq!(
            together.found.get(&(tp.clone(), *offset)),
            Some(&one),
            "{tp} at {offset}"
        );
    }
    assert_eq!(
        together.found[&(TopicPartition::new(&plain, 0), 7)].timestamp,
        Some(start + 7000)
    );
    assert_eq!(
        together.found[&(TopicPartition::new(&plain, 1), 299)].timestamp,
        Some(start + 299_000)
    );
    assert!(together.found[&(TopicPartition::new(&txn, 0), 0)].transactional);
    assert!(
        together.fetches <= 12,
        "{} Fetches for {} offsets: the batched reads did not batch",
        together.fetches,
        wanted.len()
    );
}

on_both_brokers!(
    consumable_lag_counts_only_the_records_a_read_committed_consumer_will_receive,
    consumable_lag_of_a_plain_topic_is_its_high_watermark_lag,
    a_backlog_past_the_read_cap_is_an_upper_bound,
    first_records_read_together_agree_with_one_read_per_offset,
);
