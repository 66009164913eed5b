//! Kafka transactions with clients no one here wrote, on Apache Kafka and on the embedded broker: the Java
//! `KafkaProducer` (commit, abort, fencing), read_committed and read_uncommitted consumers (Java and
//! confluent-kafka), confluent-kafka's consume-transform-produce with `send_offsets_to_transaction`, Kafka's
//! `kafka-transactions.sh` tool, and a Kafka Streams `exactly_once_v2` app, also across a kill -9 of the broker.

#[macro_use]
mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::embedded::BrokerProcess;
use support::java_clients::{self, OpenTransaction};
use support::kafka::{TEST_JVM_OPTS, create_topic_with_cli};
use support::{ApacheKafka, TestBroker, clients, unique_name};

const TRANSACTIONS_TOOL: &str = "org.apache.kafka.tools.TransactionsCommand";

fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort();
    items
}

on_both_brokers!(
    committed_transactions_are_read_and_aborted_ones_only_by_read_uncommitted_consumers,
    a_second_producer_with_the_same_transactional_id_fences_the_first,
    a_fenced_producer_that_sends_again_fails_and_nothing_of_it_is_read,
    consume_transform_produce_commits_the_groups_offsets_inside_the_transaction,
    kafka_transactions_tool_lists_and_describes_open_and_completed_transactions,
    kafka_streams_exactly_once_v2_writes_every_input_record_exactly_once,
);

async fn committed_transactions_are_read_and_aborted_ones_only_by_read_uncommitted_consumers(broker: &dyn TestBroker) {
    let bootstrap = broker.bootstrap();
    let topic = unique_name("txn-visibility");
    broker.create_topic(&topic, 1);
    let txn_id = unique_name("txn-visibility-producer");

    java_clients::txn_produce(&bootstrap, &topic, &txn_id, 5, "committed-a", false);
    java_clients::txn_produce(&bootstrap, &topic, &txn_id, 4, "aborted", true);
    java_clients::txn_produce(&bootstrap, &topic, &txn_id, 3, "committed-b", false);

    let committed: Vec<String> = numbered("committed-a", 5)
        .into_iter()
        .chain(numbered("committed-b", 3))
        .collect();
    let everything: Vec<String> = numbered("committed-a", 5)
        .into_iter()
        .chain(numbered("aborted", 4))
        .chain(numbered("committed-b", 3))
        .collect();
    let name = broker.name();
    assert_eq!(
        java_clients::read_values(&bootstrap, &topic, "read_committed"),
        committed,
        "a read_committed Java consumer on {name} reads exactly the committed transactions, in order"
    );
    assert_eq!(
        clients::read_all_values(&bootstrap, &topic, "read_committed"),
        committed,
        "a read_committed confluent-kafka consumer on {name} reads exactly the committed transactions, in order"
    );
    assert_eq!(
        java_clients::read_values(&bootstrap, &topic, "read_uncommitted"),
        everything,
        "a read_uncommitted Java consumer on {name} reads the aborted transaction's records too"
    );
    assert_eq!(
        clients::read_all_values(&bootstrap, &topic, "read_uncommitted"),
        everything,
        "a read_uncommitted confluent-kafka consumer on {name} reads the aborted transaction's records too"
    );
}

/// The `errors` of line `key` of the fencing run, if that step failed.
fn fencing_errors(lines: &[Value], key: &str) -> Option<String> {
    let line = lines
        .iter()
        .find(|l| l.get(key).is_some())
        .unwrap_or_else(|| panic!("the fencing run printed no {key} line: {lines:?}"));
    (line[key] == "failed").then(|| line["errors"].to_string())
}

async fn a_second_producer_with_the_same_transactional_id_fences_the_first(broker: &dyn TestBroker) {
    let bootstrap = broker.bootstrap();
    let topic = unique_name("txn-fencing");
    broker.create_topic(&topic, 1);
    let txn_id = unique_name("txn-fencing-producer");

    let lines = java_clients::fencing(&bootstrap, &topic, &txn_id, 4, "fence", false);
    let name = broker.name();
    assert_fenced_run(name, &lines);
    let commit = fencing_errors(&lines, "a_commit").unwrap_or_default();
    assert!(
        commit.contains("ProducerFencedException"),
        "on {name} the fenced producer A's commitTransaction throws ProducerFencedException: {commit}"
    );
    assert_eq!(
        java_clients::read_values(&bootstrap, &topic, "read_committed"),
        numbered("fence-b", 4),
        "on {name} a read_committed consumer reads B's transaction and nothing of fenced A's"
    );
}

/// A fenced producer that goes on sending: on Apache Kafka 4.4 the send fails with
/// `InvalidProducerEpochException` (Produce with the old epoch) and so does the commit that follows.
async fn a_fenced_producer_that_sends_again_fails_and_nothing_of_it_is_read(broker: &dyn TestBroker) {
    let bootstrap = broker.bootstrap();
    let topic = unique_name("txn-fencing-send");
    broker.create_topic(&topic, 1);
    let txn_id = unique_name("txn-fencing-send-producer");

    let lines = java_clients::fencing(&bootstrap, &topic, &txn_id, 4, "fence", true);
    let name = broker.name();
    assert_fenced_run(name, &lines);
    let send = fencing_errors(&lines, "a_send")
        .unwrap_or_else(|| panic!("on {name} the fenced producer A's late send succeeded: {lines:?}"));
    assert!(
        send.contains("InvalidProducerEpochException") || send.contains("ProducerFencedException"),
        "on {name} the fenced producer A's late send fails for its old epoch: {send}"
    );
    assert_eq!(
        java_clients::read_values(&bootstrap, &topic, "read_committed"),
        numbered("fence-b", 4),
        "on {name} a read_committed consumer reads B's transaction and nothing of fenced A's"
    );
}

/// What every fencing run shows: A opened, B initialized, A's commit failed, B committed.
fn assert_fenced_run(name: &str, lines: &[Value]) {
    assert!(
        lines.iter().any(|l| l["a_open"] == true) && lines.iter().any(|l| l["b_initialized"] == true),
        "on {name} producer A opened a transaction and producer B initialized: {lines:?}"
    );
    assert!(
        fencing_errors(lines, "a_commit").is_some(),
        "on {name} the fenced producer A committed its transaction after B's initTransactions: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l["b_committed"] == true),
        "on {name} producer B committed after fencing A: {lines:?}"
    );
}

async fn consume_transform_produce_commits_the_groups_offsets_inside_the_transaction(broker: &dyn TestBroker) {
    let bootstrap = broker.bootstrap();
    let input = unique_name("txn-ctp-in");
    let output = unique_name("txn-ctp-out");
    let group = unique_name("txn-ctp-group");
    broker.create_topic(&input, 3);
    broker.create_topic(&output, 1);
    clients::produce(&bootstrap, &input, 30);

    let transactions = clients::transactional_transform(
        &bootstrap,
        &input,
        &output,
        &group,
        &unique_name("txn-ctp-producer"),
        30,
        7,
    );
    let name = broker.name();
    assert!(
        transactions >= 5,
        "30 records in batches of at most 7: {transactions} transactions"
    );

    let rows = broker.describe_group_offsets(&group);
    assert_eq!(
        rows.len(),
        3,
        "on {name} the group committed offsets for the input's 3 partitions: {rows:?}"
    );
    for row in &rows {
        assert_eq!(
            (row.topic.as_str(), row.current_offset),
            (input.as_str(), row.log_end_offset),
            "on {name} the group's committed offset is the input partition's end: {rows:?}"
        );
    }
    assert_eq!(
        rows.iter().filter_map(|r| r.current_offset).sum::<i64>(),
        30,
        "on {name} the committed offsets add up to the 30 input records: {rows:?}"
    );
    let expected: Vec<String> = numbered("t-value", 30);
    assert_eq!(
        sorted(&java_clients::read_values(&bootstrap, &output, "read_committed")),
        sorted(&expected),
        "on {name} the output holds exactly one transformed record per input record"
    );
}

/// The rows of a `kafka-transactions.sh` table (header line, then whitespace-separated columns) as maps.
fn table(stdout: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = stdout.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().map(|h| h.split_whitespace().collect()).unwrap_or_default();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split_whitespace())
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn describe_transaction(broker: &dyn TestBroker, txn_id: &str) -> BTreeMap<String, String> {
    let out = broker.tool_ok(TRANSACTIONS_TOOL, &["describe", "--transactional-id", txn_id]);
    let rows = table(&out);
    assert_eq!(
        rows.len(),
        1,
        "kafka-transactions describe on {}:\n{out}",
        broker.name()
    );
    let row = rows.into_iter().next().unwrap_or_default();
    assert_eq!(row.get("TransactionalId").map(String::as_str), Some(txn_id), "{out}");
    row
}

async fn kafka_transactions_tool_lists_and_describes_open_and_completed_transactions(broker: &dyn TestBroker) {
    let bootstrap = broker.bootstrap();
    let name = broker.name();
    let topic = unique_name("txn-tool");
    broker.create_topic(&topic, 1);
    let txn_id = unique_name("txn-tool-producer");

    let open = OpenTransaction::start(&bootstrap, &topic, &txn_id, 3, "held");
    let listed = broker.tool_ok(TRANSACTIONS_TOOL, &["list"]);
    let listed_row = table(&listed)
        .into_iter()
        .find(|r| r.get("TransactionalId") == Some(&txn_id))
        .unwrap_or_else(|| panic!("kafka-transactions list on {name} does not show {txn_id}:\n{listed}"));
    assert_eq!(
        listed_row.get("TransactionState").map(String::as_str),
        Some("Ongoing"),
        "kafka-transactions list on {name}:\n{listed}"
    );

    let ongoing = describe_transaction(broker, &txn_id);
    assert_eq!(
        ongoing.get("TransactionState").map(String::as_str),
        Some("Ongoing"),
        "{ongoing:?}"
    );
    let producer_id: i64 = ongoing["ProducerId"].parse().expect("ProducerId");
    let epoch: i64 = ongoing["ProducerEpoch"].parse().expect("ProducerEpoch");
    assert!(producer_id >= 0 && epoch >= 0, "on {name}: {ongoing:?}");
    assert_eq!(
        listed_row.get("ProducerId"),
        ongoing.get("ProducerId"),
        "list vs describe on {name}"
    );
    assert_eq!(
        ongoing.get("TopicPartitions").map(String::as_str),
        Some(format!("{topic}-0").as_str()),
        "on {name} the open transaction holds the partition it wrote to: {ongoing:?}"
    );

    open.commit();
    // The coordinator writes the markers, then moves PrepareCommit to CompleteCommit.
    let deadline = Instant::now() + Duration::from_secs(30);
    let completed = loop {
        let row = describe_transaction(broker, &txn_id);
        if row.get("TransactionState").map(String::as_str) == Some("CompleteCommit") {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "on {name} the committed transaction did not reach CompleteCommit within 30 s: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        completed.get("ProducerId").map(String::as_str),
        Some(producer_id.to_string().as_str()),
        "on {name}: {completed:?}"
    );
    let completed_epoch: i64 = completed["ProducerEpoch"].parse().expect("ProducerEpoch");
    // Transactions v2 (KIP-890) bumps the epoch at every commit: Apache Kafka 4.4 finalizes
    // transaction.version=2, the embedded broker advertises no transaction.version, so the Java 4.4 client falls
    // back to transactions v1 there (EndTxn v4, AddPartitionsToTxn v3) and the epoch stays.
    let expected_epoch = if broker.name() == "Apache Kafka" {
        epoch + 1
    } else {
        epoch
    };
    assert_eq!(
        completed_epoch, expected_epoch,
        "on {name} the epoch after a commit (transactions v2 bumps it, v1 keeps it): {ongoing:?} -> {completed:?}"
    );
    let listed = broker.tool_ok(TRANSACTIONS_TOOL, &["list"]);
    assert!(
        table(&listed).iter().any(|r| r.get("TransactionalId") == Some(&txn_id)
            && r.get("TransactionState").map(String::as_str) == Some("CompleteCommit")),
        "kafka-transactions list on {name} shows {txn_id} CompleteCommit:\n{listed}"
    );
    assert_eq!(
        java_clients::read_values(&bootstrap, &topic, "read_committed"),
        numbered("held", 3),
        "on {name} the held transaction's records are visible once committed"
    );
}

/// Waits until a read_committed Java consumer reads at least `count` records of `topic`; returns them.
fn await_committed(
    bootstrap: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
    streams: &java_clients::JavaProcess,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = java_clients::read_records(bootstrap, topic, "read_committed");
        if records.len() >= count {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} records in {topic} (read_committed) after {timeout:?}; {}",
            records.len(),
            streams.tail(30)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Checks what the `EosStreams` app wrote for `input`: `output` has exactly one `out-<value>` per input record
/// (same key), and `counts` for each key exactly the counts 1, 2, ... up to that key's number of input records.
fn assert_exactly_once(
    bootstrap: &str,
    input: &[(String, String)],
    output: &str,
    counts: &str,
    streams: &java_clients::JavaProcess,
) {
    let expected: Vec<(String, String)> = input.iter().map(|(k, v)| (k.clone(), format!("out-{v}"))).collect();
    let written = await_committed(bootstrap, output, expected.len(), Duration::from_secs(120), streams);
    assert_eq!(
        sorted(&written),
        sorted(&expected),
        "the output (read_committed) is exactly the input, each record once ({} vs {})",
        written.len(),
        expected.len()
    );
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, _) in input {
        *per_key.entry(key).or_default() += 1;
    }
    let updates = await_committed(bootstrap, counts, input.len(), Duration::from_secs(60), streams);
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, count) in &updates {
        seen.entry(key.clone())
            .or_default()
            .push(count.parse().unwrap_or_else(|_| panic!("count {count:?}")));
    }
    for (key, n) in per_key {
        assert_eq!(
            seen.remove(key).unwrap_or_default(),
            (1..=n as u64).collect::<Vec<_>>(),
            "the counts of {key} (read_committed): each input record counted exactly once"
        );
    }
    assert!(seen.is_empty(), "counts for keys never produced: {seen:?}");
}

async fn kafka_streams_exactly_once_v2_writes_every_input_record_exactly_once(broker: &dyn TestBroker) {
    let bootstrap = broker.bootstrap();
    let [input, output, counts] = ["in", "out", "counts"].map(|t| unique_name(&format!("eos-{t}")));
    broker.create_topic(&input, 2);
    broker.create_topic(&output, 2);
    broker.create_topic(&counts, 2);
    let streams = java_clients::eos_streams(&bootstrap, &unique_name("eos-app"), &input, &output, Some(&counts));

    // Every key twice: each count goes 1, 2.
    clients::produce(&bootstrap, &input, 100);
    clients::produce(&bootstrap, &input, 100);
    let records = java_clients::read_records(&bootstrap, &input, "read_committed");
    assert_eq!(records.len(), 200, "input on {}", broker.name());
    assert_exactly_once(&bootstrap, &records, &output, &counts, &streams);
    let uncaught: Vec<Value> = streams
        .json_lines()
        .into_iter()
        .filter(|l| l.get("uncaught").is_some())
        .collect();
    assert!(
        uncaught.is_empty(),
        "the Streams app on {} failed: {uncaught:?}",
        broker.name()
    );
}

/// The kill -9 scenario on any broker: topics, the Streams app, a steady producer; `kill9_and_restart` in the
/// middle; then the output read_committed must be exactly the input.
fn streams_exactly_once_across_kill_9(what: &str, bootstrap: &str, kill9_and_restart: impl FnOnce()) {
    let [input, output, counts] = ["in", "out", "counts"].map(|t| unique_name(&format!("eos-kill-{t}")));
    for topic in [&input, &output, &counts] {
        create_topic_with_cli(bootstrap, topic, 2);
    }
    let streams = java_clients::eos_streams(bootstrap, &unique_name("eos-kill-app"), &input, &output, Some(&counts));
    let producer = clients::live_producer(bootstrap, &input, 50);
    // Some processed output before the kill, so the kill lands mid-run.
    await_committed(bootstrap, &output, 50, Duration::from_secs(60), &streams);
    std::thread::sleep(Duration::from_secs(2));

    kill9_and_restart();
    let restarted = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let produced = producer.stop();
    let produced = produced.lines().last().unwrap_or_default();
    eprintln!(
        "{what}: the producer stopped {:?} after the restart: {produced}",
        restarted.elapsed()
    );

    // What the input holds (a producer retrying across the kill may have written a record twice: both count).
    let records = java_clients::read_records(bootstrap, &input, "read_committed");
    assert!(records.len() >= 100, "{what}: only {} input records", records.len());
    eprintln!(
        "{what}: {} input records (read_committed) to check the output against",
        records.len()
    );
    assert_exactly_once(bootstrap, &records, &output, &counts, &streams);
}

#[test]
fn kafka_streams_exactly_once_v2_survives_kill_9_of_the_embedded_broker() {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_str().expect("utf-8 path").to_owned();
    let args = ["--data-dir", data_dir.as_str()];
    let mut broker = BrokerProcess::start(&args);
    let bootstrap = broker.bootstrap();
    streams_exactly_once_across_kill_9("the embedded broker", &bootstrap, || {
        broker.kill9_and_restart(&args);
    });
}

#[test]
fn kafka_streams_exactly_once_v2_survives_kill_9_of_apache_kafka() {
    let kafka = ApacheKafka::start();
    streams_exactly_once_across_kill_9("Apache Kafka", &kafka.bootstrap(), || {
        kafka.kill9_and_restart(TEST_JVM_OPTS);
    });
}
