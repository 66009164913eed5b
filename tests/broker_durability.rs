//! Durability of the embedded broker with a data dir: the binary is killed with SIGKILL in the middle of an
//! acks=all produce loop (and a torn write is added to the log's tail); after a restart every acknowledged
//! record is there at its offset, the torn tail is gone, and committed group offsets survived too. Time-based
//! retention counts from the batches' own timestamps, so a restart does not reset it.

mod support;

use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::clients::{GroupProtocol, consume_and_commit};
use support::embedded::BrokerProcess;
use support::kafka::{kafka_tool_ok, parse_group_offsets};
use support::unique_name;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn partition(bootstrap: &str, topic: &str, index: i32) -> PartitionClient {
    ClientBuilder::new(vec![bootstrap.to_owned()])
        .build()
        .await
        .expect("rskafka client")
        .partition_client(topic, index, UnknownTopicHandling::Retry)
        .await
        .expect("partition client")
}

fn record(value: String) -> Record {
    Record {
        key: None,
        value: Some(value.into_bytes()),
        headers: Default::default(),
        timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("timestamp"),
    }
}

#[test]
fn every_acknowledged_record_and_committed_offset_survives_kill_9() {
    survives_kill_9(&[]);
}

/// The default is Apache Kafka's flush policy (written before the answer, fsynced within a second); with
/// `--sync-acks-all` acks=all produces are also fsynced before their answer. Both lose nothing to kill -9.
#[test]
fn with_an_fsync_before_every_acks_all_answer_acknowledged_records_survive_kill_9_too() {
    survives_kill_9(&["--sync-acks-all=true"]);
}

fn survives_kill_9(policy: &[&str]) {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_str().expect("utf-8 path").to_owned();
    let mut args = vec!["--data-dir", data_dir.as_str()];
    args.extend_from_slice(policy);
    let broker = BrokerProcess::start(&args);
    let bootstrap = broker.bootstrap();
    let topic = unique_name("durable");
    let group = unique_name("durable-group");
    let rt = runtime();

    // A group commits offsets first (the coordinator keeps them in the same data dir).
    rt.block_on(async {
        let client = ClientBuilder::new(vec![bootstrap.clone()])
            .build()
            .await
            .expect("client");
        client
            .controller_client()
            .expect("controller")
            .create_topic(&topic, 1, 1, 5_000)
            .await
            .expect("create topic");
        let p = partition(&bootstrap, &topic, 0).await;
        let first: Vec<Record> = (0..10).map(|i| record(format!("committed-{i}"))).collect();
        p.produce(first, Compression::NoCompression).await.expect("produce");
    });
    let committed = consume_and_commit(&bootstrap, &topic, &group, GroupProtocol::Classic, 10);
    assert_eq!(committed.get(&format!("{topic}:0")), Some(&10), "{committed:?}");

    // Produce (acks=all, rskafka's only mode) until the broker dies; remember what was acknowledged.
    let acknowledged: Arc<Mutex<BTreeMap<i64, String>>> = Arc::default();
    let producer = {
        let acknowledged = acknowledged.clone();
        let bootstrap = bootstrap.clone();
        let topic = topic.clone();
        rt.spawn(async move {
            let p = partition(&bootstrap, &topic, 0).await;
            for round in 0.. {
                let values: Vec<String> = (0..20).map(|i| format!("r{round}-{i}")).collect();
                let records = values.iter().cloned().map(record).collect();
                match tokio::time::timeout(Duration::from_secs(2), p.produce(records, Compression::NoCompression)).await
                {
                    Ok(Ok(offsets)) => {
                        let mut acked = acknowledged.lock().expect("lock");
                        acked.extend(offsets.into_iter().zip(values));
                    }
                    _ => return round,
                }
            }
            unreachable!("the loop only ends when the broker is gone")
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().expect("lock").len() < 2_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.kill9();
    let rounds = rt.block_on(producer).expect("producer task");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 2_000,
        "only {} records acknowledged in {rounds} rounds",
        acknowledged.len()
    );

    // A torn write: half a batch header at the end of the segment, as a crash mid-write leaves it.
    let segment_dir = data.path().join("logs").join(format!("{topic}-0"));
    let segment = std::fs::read_dir(&segment_dir)
        .expect("segment dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .expect("a segment file");
    let before = std::fs::metadata(&segment).expect("stat").len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open segment")
        .write_all(&[0, 0, 0, 0, 0, 0, 0x30, 0x39, 0, 0, 0x10, 0, 0, 0, 0, 0, 2, 0xde, 0xad])
        .expect("tear the tail");

    let restarted = BrokerProcess::start(&args);
    assert!(
        std::fs::read_to_string(restarted.log_path())
            .unwrap_or_default()
            .contains("truncating a torn or corrupt log tail"),
        "{}",
        restarted.log_tail(20)
    );
    assert_eq!(
        std::fs::metadata(&segment).expect("stat").len(),
        before,
        "the torn tail is cut off"
    );
    let bootstrap = restarted.bootstrap();
    let stored: BTreeMap<i64, String> = rt.block_on(async {
        let p = partition(&bootstrap, &topic, 0).await;
        let mut stored = BTreeMap::new();
        let mut next = 0;
        loop {
            let (records, high_watermark) = p.fetch_records(next, 1..10_000_000, 1_000).await.expect("fetch");
            let from = next;
            for r in records.into_iter().filter(|r| r.offset >= from) {
                next = r.offset + 1;
                stored.insert(
                    r.offset,
                    String::from_utf8(r.record.value.unwrap_or_default()).expect("utf-8"),
                );
            }
            if next >= high_watermark {
                return stored;
            }
        }
    });
    for (offset, value) in &acknowledged {
        assert_eq!(
            stored.get(offset),
            Some(value),
            "acknowledged record at offset {offset} is lost or changed"
        );
    }
    // Offsets are dense: nothing served from the torn tail, no gaps.
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (0..stored.len() as i64).collect::<Vec<_>>()
    );

    let described = kafka_tool_ok(
        &bootstrap,
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &["--describe", "--group", &group, "--offsets"],
    );
    let rows = parse_group_offsets(&described);
    assert_eq!(rows.len(), 1, "{described}");
    assert_eq!(rows[0].current_offset, Some(10), "{described}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// The partition's log start offset, once it is `expected` (retention runs when the broker starts, then every
/// 30 s), or whatever it is after 10 s.
fn log_start_once(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str, expected: i64) -> i64 {
    use rskafka::client::partition::OffsetAt;
    rt.block_on(async {
        let p = partition(bootstrap, topic, 0).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let start = p.get_offset(OffsetAt::Earliest).await.expect("earliest offset");
            if start == expected || tokio::time::Instant::now() > deadline {
                return start;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// `--retention` (Kafka's `retention.ms`) counts from each batch's largest timestamp, as Kafka counts from a
/// segment's: records produced with old timestamps go at the first retention pass although they were just
/// appended, and a restart (which re-reads the log) does not restart the clock of the ones that are kept.
#[test]
fn time_based_retention_counts_from_the_batches_timestamps_across_restarts() {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_str().expect("utf-8 path").to_owned();
    let args = ["--data-dir", data_dir.as_str(), "--retention", "20s"];
    let broker = BrokerProcess::start(&args);
    let topic = unique_name("retention");
    support::kafka::create_topic_with_cli(&broker.bootstrap(), &topic, 1);
    let rt = runtime();
    let now = now_ms();
    let young = now - 12_000;
    rt.block_on(async {
        let p = partition(&broker.bootstrap(), &topic, 0).await;
        for (i, ts) in [now - 7_200_000, now - 7_200_000, young, now].into_iter().enumerate() {
            let record = Record {
                timestamp: rskafka::chrono::DateTime::from_timestamp_millis(ts).expect("timestamp"),
                ..record(format!("record-{i}"))
            };
            let offsets = p
                .produce(vec![record], Compression::NoCompression)
                .await
                .expect("produce");
            assert_eq!(offsets, vec![i as i64]);
        }
    });

    // Restarted (kill -9), the broker runs retention at once: the two-hour-old batches go although they were
    // appended seconds ago; the 12-second-old one stays.
    broker.kill9();
    let broker = BrokerProcess::start(&args);
    assert_eq!(
        log_start_once(&rt, &broker.bootstrap(), &topic, 2),
        2,
        "{}",
        broker.log_tail(20)
    );
    assert!(
        now_ms() - young < 20_000,
        "too slow to check that the young batch is kept"
    );

    // Once the young batch's own timestamp is more than 20 s old, the next start drops it: the restart in
    // between did not reset its clock.
    let wait = (young + 21_000 - now_ms()).max(0) as u64;
    std::thread::sleep(Duration::from_millis(wait));
    broker.kill9();
    let broker = BrokerProcess::start(&args);
    assert_eq!(
        log_start_once(&rt, &broker.bootstrap(), &topic, 3),
        3,
        "{}",
        broker.log_tail(20)
    );
    // The last batch always stays (the active tail), and is read back.
    let (records, high_watermark) = rt.block_on(async {
        partition(&broker.bootstrap(), &topic, 0)
            .await
            .fetch_records(3, 1..1_000_000, 1_000)
            .await
            .expect("fetch")
    });
    assert_eq!(high_watermark, 4);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].offset, 3);
}

/// A failed fsync takes the log directory offline, as Kafka does (KIP-112): the kernel may have dropped pages
/// it could not write and will not say so again, so from then on every partition answers KAFKA_STORAGE_ERROR
/// (produce and fetch alike), also once fsync works again, until the broker is restarted. After the restart
/// every record acknowledged before the failure is there, and the log takes records again. The failure is
/// injected with the broker's test hook (`--test-fail-fsync-while FILE`: fsync fails with EIO while FILE
/// exists); no file system here can be made to fail fsync on demand.
#[test]
fn a_failed_fsync_takes_the_log_offline_until_a_restart_and_loses_nothing_acknowledged() {
    use rskafka::client::error::{Error as ClientError, ProtocolError};
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().join("data");
    let trigger = data.path().join("fail-fsync");
    let metrics_addr = format!("127.0.0.1:{}", support::process::free_port());
    let args = [
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
        "--sync-acks-all=true",
        "--test-fail-fsync-while",
        trigger.to_str().expect("utf-8 path"),
        "--metrics-addr",
        &metrics_addr,
    ];
    let broker = BrokerProcess::start(&args);
    let topic = unique_name("fsync");
    support::kafka::create_topic_with_cli(&broker.bootstrap(), &topic, 1);
    let rt = runtime();
    let storage_error = |result: Result<_, ClientError>, what: &str| match result {
        Err(ClientError::ServerError {
            protocol_error: ProtocolError::KafkaStorageError,
            ..
        }) => {}
        other => panic!("{what}: expected KAFKA_STORAGE_ERROR, got {other:?}"),
    };
    rt.block_on(async {
        let p = partition(&broker.bootstrap(), &topic, 0).await;
        for i in 0..5 {
            let offsets = p
                .produce(vec![record(format!("acknowledged-{i}"))], Compression::NoCompression)
                .await
                .expect("produce before the failure");
            assert_eq!(offsets, vec![i]);
        }
        std::fs::write(&trigger, b"").expect("trigger");
        storage_error(
            p.produce(vec![record("during".into())], Compression::NoCompression)
                .await
                .map(|_| ()),
            "produce while fsync fails",
        );
        std::fs::remove_file(&trigger).expect("fsync works again");
        storage_error(
            p.produce(vec![record("after".into())], Compression::NoCompression)
                .await
                .map(|_| ()),
            "produce after a failed fsync",
        );
        storage_error(
            p.fetch_records(0, 1..1_000_000, 1_000).await.map(|_| ()),
            "fetch after a failed fsync",
        );
    });
    assert!(
        broker.log_tail(50).contains("the log directory is offline"),
        "the broker says why: {}",
        broker.log_tail(50)
    );

    let metrics = http_get(&metrics_addr, "/metrics");
    assert!(
        metrics.contains("kafka_broker_offline_log_directories 1"),
        "the metric says so: {metrics}"
    );

    broker.kill9();
    let broker = BrokerProcess::start(&args);
    let (records, high_watermark) = rt.block_on(async {
        let p = partition(&broker.bootstrap(), &topic, 0).await;
        let read = p
            .fetch_records(0, 1..1_000_000, 1_000)
            .await
            .expect("fetch after the restart");
        let next = p
            .produce(vec![record("restarted".into())], Compression::NoCompression)
            .await
            .expect("produce after the restart");
        assert_eq!(next, vec![read.1], "appended at the end");
        read
    });
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone().unwrap_or_default()).expect("utf-8"))
        .collect();
    assert_eq!(
        &values[..5],
        (0..5)
            .map(|i| format!("acknowledged-{i}"))
            .collect::<Vec<_>>()
            .as_slice(),
        "every acknowledged record is there: {values:?}"
    );
    assert!(
        (5..=6).contains(&high_watermark),
        "at most the unacknowledged record written before the failed fsync follows them: {values:?}"
    );
}

/// The body of a plain HTTP GET (the broker's metrics endpoint).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}
