//! The embedded broker against clients no one here wrote: kcat (librdkafka 2.0), confluent-kafka
//! (librdkafka 2.16) with an idempotent acks=all producer and a consumer group, rskafka, and Apache Kafka's own
//! CLI tools from the harness classpath.

mod support;

use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::record::Record;
use support::clients::{GroupProtocol, confluent_client, consume_and_commit, kcat};
use support::{EmbeddedKafka, unique_name};

#[test]
fn kcat_lists_metadata_and_reads_back_what_it_produced() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("kcat");
    kafka.create_topic(&topic, 2);
    let metadata = kcat(&kafka.bootstrap(), &["-L"]);
    assert!(metadata.contains("1 brokers:"), "{metadata}");
    assert!(
        metadata.contains(&format!("broker 1 at {} (controller)", kafka.bootstrap())),
        "{metadata}"
    );
    assert!(
        metadata.contains(&format!("topic \"{topic}\" with 2 partitions")),
        "{metadata}"
    );

    let input: String = (0..5).map(|i| format!("key-{i}:value-{i}\n")).collect();
    let mut producer = std::process::Command::new("timeout")
        .args([
            "60",
            "kcat",
            "-b",
            &kafka.bootstrap(),
            "-P",
            "-t",
            &topic,
            "-p",
            "1",
            "-K:",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run kcat -P");
    std::io::Write::write_all(producer.stdin.as_mut().expect("stdin"), input.as_bytes()).expect("write");
    drop(producer.stdin.take());
    assert!(producer.wait().expect("kcat -P").success());

    let records = kcat(
        &kafka.bootstrap(),
        &[
            "-C",
            "-t",
            &topic,
            "-p",
            "1",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%s@%o\\n",
        ],
    );
    let lines: Vec<&str> = records.lines().collect();
    let expected: Vec<String> = (0..5).map(|i| format!("key-{i}=value-{i}@{i}")).collect();
    assert_eq!(lines, expected);
}

#[test]
fn confluent_idempotent_producer_with_acks_all_then_a_group_consumes_everything() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("idempotent");
    let group = unique_name("idempotent-group");
    kafka.create_topic(&topic, 3);
    let out = confluent_client(
        &[
            "idempotent-produce",
            "--bootstrap",
            &kafka.bootstrap(),
            "--topic",
            &topic,
            "--count",
            "300",
        ],
        &Default::default(),
    )
    .unwrap_or_else(|f| panic!("idempotent producer failed: {f}"));
    assert_eq!(out["produced"], 300, "{out}");
    // Every partition's offsets are dense from 0: nothing appended twice, nothing skipped.
    let offsets = out["offsets"].as_object().expect("offsets per partition");
    let total: i64 = offsets
        .values()
        .map(|range| {
            assert_eq!(range[0], 0, "{out}");
            range[1].as_i64().expect("last offset") + 1
        })
        .sum();
    assert_eq!(total, 300, "{out}");

    let committed = consume_and_commit(&kafka.bootstrap(), &topic, &group, GroupProtocol::Classic, 300);
    assert_eq!(committed.values().sum::<i64>(), 300, "{committed:?}");
    let rows = kafka.describe_group_offsets(&group);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.lag == Some(0)), "{rows:?}");
}

#[test]
fn rskafka_produces_and_fetches() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("rskafka");
    kafka.handle().block_on(async {
        let client = ClientBuilder::new(vec![kafka.bootstrap()])
            .build()
            .await
            .expect("rskafka client");
        client
            .controller_client()
            .expect("controller")
            .create_topic(&topic, 2, 1, 5_000)
            .await
            .expect("create topic");
        let partition = client
            .partition_client(&topic, 1, UnknownTopicHandling::Retry)
            .await
            .expect("partition client");
        let records: Vec<Record> = (0..10)
            .map(|i| Record {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(format!("v{i}").into_bytes()),
                headers: [("h".to_owned(), b"x".to_vec())].into_iter().collect(),
                timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + i).expect("timestamp"),
            })
            .collect();
        let first = partition
            .produce(records[..4].to_vec(), Compression::NoCompression)
            .await
            .expect("produce");
        let rest = partition
            .produce(records[4..].to_vec(), Compression::NoCompression)
            .await
            .expect("produce");
        assert_eq!(first, vec![0, 1, 2, 3]);
        assert_eq!(rest, (4..10).collect::<Vec<i64>>());

        let (fetched, high_watermark) = partition.fetch_records(2, 1..1_000_000, 1_000).await.expect("fetch");
        assert_eq!(high_watermark, 10);
        let read: Vec<(i64, Vec<u8>)> = fetched
            .into_iter()
            .filter(|r| r.offset >= 2)
            .map(|r| (r.offset, r.record.value.unwrap_or_default()))
            .collect();
        let expected: Vec<(i64, Vec<u8>)> = (2..10).map(|i| (i, format!("v{i}").into_bytes())).collect();
        assert_eq!(read, expected);

        assert_eq!(partition.get_offset(OffsetAt::Earliest).await.expect("earliest"), 0);
        assert_eq!(partition.get_offset(OffsetAt::Latest).await.expect("latest"), 10);
        let at = rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_005).expect("ts");
        assert_eq!(partition.get_offset(OffsetAt::Timestamp(at)).await.expect("by time"), 5);
    });
}

#[test]
fn a_waiting_fetch_wakes_when_records_arrive() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("long-poll");
    kafka.create_topic(&topic, 1);
    kafka.handle().block_on(async {
        // Two clients, so two connections: a connection's requests are answered in order (as by Kafka), so a
        // produce on the fetching connection would wait behind the fetch.
        let connect = || async {
            ClientBuilder::new(vec![kafka.bootstrap()])
                .build()
                .await
                .expect("client")
                .partition_client(&topic, 0, UnknownTopicHandling::Retry)
                .await
                .expect("partition client")
        };
        let reader = connect().await;
        let partition = connect().await;
        let started = std::time::Instant::now();
        let waiting = tokio::spawn(async move { reader.fetch_records(0, 1..1_000_000, 20_000).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let record = Record {
            key: None,
            value: Some(b"late".to_vec()),
            headers: Default::default(),
            timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("timestamp"),
        };
        partition
            .produce(vec![record], Compression::NoCompression)
            .await
            .expect("produce");
        let (records, _) = waiting.await.expect("join").expect("fetch");
        assert_eq!(records.len(), 1);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the fetch waited {:?} instead of waking on the append",
            started.elapsed()
        );
    });
}

#[test]
fn kafka_topics_creates_and_describes() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("topics");
    let created = kafka.tool_ok(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--create",
            "--topic",
            &topic,
            "--partitions",
            "4",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(created.contains(&format!("Created topic {topic}.")), "{created}");
    let described = kafka.tool_ok(
        "org.apache.kafka.tools.TopicCommand",
        &["--describe", "--topic", &topic],
    );
    assert!(described.contains("PartitionCount: 4"), "{described}");
    assert!(described.contains("ReplicationFactor: 1"), "{described}");
    assert!(described.contains("retention.ms=3600000"), "{described}");
    for partition in 0..4 {
        assert!(
            described.contains(&format!("Partition: {partition}\tLeader: 1\tReplicas: 1\tIsr: 1")),
            "{described}"
        );
    }
    let duplicate = kafka.tool(
        "org.apache.kafka.tools.TopicCommand",
        &["--create", "--topic", &topic, "--partitions", "1"],
    );
    let stderr = String::from_utf8_lossy(&duplicate.stderr);
    let stdout = String::from_utf8_lossy(&duplicate.stdout);
    assert!(
        format!("{stdout}{stderr}").contains("already exists"),
        "{stdout}{stderr}"
    );
    kafka.tool_ok(
        "org.apache.kafka.tools.TopicCommand",
        &["--alter", "--topic", &topic, "--partitions", "6"],
    );
    let listed = kafka.tool_ok(
        "org.apache.kafka.tools.TopicCommand",
        &["--describe", "--topic", &topic],
    );
    assert!(listed.contains("PartitionCount: 6"), "{listed}");
    kafka.tool_ok("org.apache.kafka.tools.TopicCommand", &["--delete", "--topic", &topic]);
    let all = kafka.tool_ok("org.apache.kafka.tools.TopicCommand", &["--list"]);
    assert!(!all.lines().any(|l| l == topic), "{all}");
}

#[test]
fn console_producer_and_consumer_with_a_group() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("console");
    let group = unique_name("console-group");
    kafka.create_topic(&topic, 2);
    let mut producer = std::process::Command::new("timeout");
    let home = support::tools::kafka_home();
    producer
        .arg("120")
        .arg("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            home.join("tools-log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}/libs/*", home.display()))
        .args([
            "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server",
            &kafka.bootstrap(),
        ])
        .args(["--topic", &topic, "--command-property", "acks=all"])
        .stdin(std::process::Stdio::piped());
    let mut child = producer.spawn().expect("console producer");
    let lines: String = (0..20).map(|i| format!("line-{i}\n")).collect();
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), lines.as_bytes()).expect("write");
    drop(child.stdin.take());
    assert!(child.wait().expect("console producer").success());

    let consumed = kafka.tool_ok(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "20",
            "--timeout-ms",
            "30000",
        ],
    );
    let mut got: Vec<&str> = consumed.lines().filter(|l| l.starts_with("line-")).collect();
    got.sort_by_key(|l| l[5..].parse::<u32>().unwrap_or(0));
    let expected: Vec<String> = (0..20).map(|i| format!("line-{i}")).collect();
    assert_eq!(got, expected);
    let rows = kafka.describe_group_offsets(&group);
    assert_eq!(
        rows.iter().filter_map(|r| r.current_offset).sum::<i64>(),
        20,
        "{rows:?}"
    );
}

#[test]
fn metrics_count_requests_per_api() {
    let kafka = EmbeddedKafka::shared();
    kcat(&kafka.bootstrap(), &["-L"]);
    let text = kafka.metrics_text();
    assert!(text.contains("kafka_broker_requests_total{api=\"Metadata\"}"), "{text}");
    assert!(text.contains("kafka_broker_request_duration_seconds_bucket{"), "{text}");
}

#[test]
fn a_batch_above_the_topics_max_message_bytes_is_refused() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("small-messages");
    kafka.tool_ok(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--create",
            "--topic",
            &topic,
            "--partitions",
            "1",
            "--config",
            "max.message.bytes=2000",
        ],
    );
    kafka.handle().block_on(async {
        let partition = ClientBuilder::new(vec![kafka.bootstrap()])
            .build()
            .await
            .expect("client")
            .partition_client(&topic, 0, UnknownTopicHandling::Retry)
            .await
            .expect("partition client");
        let record = |size: usize| Record {
            key: None,
            value: Some(vec![b'x'; size]),
            headers: Default::default(),
            timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("timestamp"),
        };
        let refused = partition
            .produce(vec![record(5_000)], Compression::NoCompression)
            .await
            .expect_err("a 5 kB batch on a 2 kB topic");
        assert!(format!("{refused:?}").contains("MessageTooLarge"), "{refused:?}");
        let accepted = partition
            .produce(vec![record(100)], Compression::NoCompression)
            .await
            .expect("a small batch");
        assert_eq!(accepted, vec![0]);
    });
}

#[test]
fn compressed_batches_are_stored_as_received_and_read_back() {
    let kafka = EmbeddedKafka::shared();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_name(&format!("compressed-{codec}"));
        kafka.create_topic(&topic, 1);
        let input: String = (0..50).map(|i| format!("{codec}-record-{i}\n")).collect();
        let mut producer = std::process::Command::new("timeout")
            .args(["60", "kcat", "-b", &kafka.bootstrap(), "-P", "-t", &topic, "-z", codec])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run kcat -P");
        std::io::Write::write_all(producer.stdin.as_mut().expect("stdin"), input.as_bytes()).expect("write");
        drop(producer.stdin.take());
        assert!(producer.wait().expect("kcat -P").success(), "{codec}");
        let read = kcat(
            &kafka.bootstrap(),
            &["-C", "-t", &topic, "-o", "beginning", "-e", "-f", "%s@%o\\n"],
        );
        let expected: Vec<String> = (0..50).map(|i| format!("{codec}-record-{i}@{i}")).collect();
        assert_eq!(read.lines().collect::<Vec<_>>(), expected, "{codec}");
    }
}

#[test]
fn delete_records_moves_the_log_start() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("delete-records");
    kafka.create_topic(&topic, 1);
    kafka.handle().block_on(async {
        let partition = ClientBuilder::new(vec![kafka.bootstrap()])
            .build()
            .await
            .expect("client")
            .partition_client(&topic, 0, UnknownTopicHandling::Retry)
            .await
            .expect("partition client");
        let records = (0..6)
            .map(|i| Record {
                key: None,
                value: Some(format!("v{i}").into_bytes()),
                headers: Default::default(),
                timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("timestamp"),
            })
            .collect();
        partition
            .produce(records, Compression::NoCompression)
            .await
            .expect("produce");
        partition.delete_records(4, 5_000).await.expect("delete records");
        assert_eq!(partition.get_offset(OffsetAt::Earliest).await.expect("earliest"), 4);
        assert_eq!(partition.get_offset(OffsetAt::Latest).await.expect("latest"), 6);
        let below = partition.fetch_records(2, 1..100_000, 100).await;
        assert!(format!("{below:?}").contains("OffsetOutOfRange"), "{below:?}");
    });
}
