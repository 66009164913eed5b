//! The embedded broker's server: requests pipelined on one connection are answered in order, idle
//! connections are closed, connections beyond `--max-connections` / `--max-connections-per-ip` are closed at
//! once (and counted), and a graceful shutdown lets a request in progress finish, then closes.

mod support;

use bytes::Bytes;
use kafka_group_operator::broker::BrokerConfig;
use kafka_group_operator::wire::{decode_response, encode_request, peek_correlation_id};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiVersionsRequest, FetchRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{EmbeddedKafka, unique_name};

fn read_response(stream: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("response body");
    Bytes::from(body)
}

fn fetch(topic: &str, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("pipeline");
    kafka.create_topic(&topic, 1);
    let mut stream = TcpStream::connect(kafka.bootstrap()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // A fetch that waits 500 ms for data first: the two quick requests behind it wait their turn.
    let mut pipeline = Vec::new();
    pipeline.extend_from_slice(&encode_request(&fetch(&topic, 500), 12, 1, None).expect("fetch"));
    pipeline.extend_from_slice(&encode_request(&ApiVersionsRequest::default(), 3, 2, None).expect("versions"));
    pipeline.extend_from_slice(&encode_request(&MetadataRequest::default(), 12, 3, None).expect("metadata"));
    let started = Instant::now();
    stream.write_all(&pipeline).expect("write");
    let first = read_response(&mut stream);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "the fetch waited for data"
    );
    assert_eq!(peek_correlation_id(&first), Some(1));
    let fetched = decode_response::<FetchRequest>(first, 12).expect("fetch response");
    assert_eq!(fetched.responses[0].partitions[0].high_watermark, 0);
    let second = read_response(&mut stream);
    assert_eq!(peek_correlation_id(&second), Some(2));
    decode_response::<ApiVersionsRequest>(second, 3).expect("versions response");
    let third = read_response(&mut stream);
    assert_eq!(peek_correlation_id(&third), Some(3));
    decode_response::<MetadataRequest>(third, 12).expect("metadata response");
}

#[test]
fn idle_connections_are_closed() {
    let kafka = EmbeddedKafka::start_with(BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        idle_timeout: Duration::from_millis(300),
        ..BrokerConfig::default()
    });
    let mut stream = TcpStream::connect(kafka.bootstrap()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(stream.read(&mut buf).expect("closed, not timed out"), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn graceful_shutdown_finishes_the_request_in_progress_then_closes() {
    let kafka = EmbeddedKafka::start();
    let topic = unique_name("shutdown");
    kafka.create_topic(&topic, 1);
    let mut waiting = TcpStream::connect(kafka.bootstrap()).expect("connect");
    waiting
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut idle = TcpStream::connect(kafka.bootstrap()).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    waiting
        .write_all(&encode_request(&fetch(&topic, 1_500), 12, 7, None).expect("fetch"))
        .expect("write");
    std::thread::sleep(Duration::from_millis(200)); // the fetch is waiting for data
    let started = Instant::now();
    kafka.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let response = read_response(&mut waiting);
    assert_eq!(
        peek_correlation_id(&response),
        Some(7),
        "the fetch in progress is answered"
    );
    let mut buf = [0u8; 8];
    assert_eq!(waiting.read(&mut buf).expect("then closed"), 0);
    assert_eq!(idle.read(&mut buf).expect("idle connection closed"), 0);
    assert!(TcpStream::connect(kafka.bootstrap()).is_err(), "no longer listening");
}

#[test]
fn the_binary_serves_per_api_metrics() {
    let metrics_port = support::process::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let broker = support::embedded::BrokerProcess::start(&["--metrics-addr", &metrics_addr]);
    support::clients::kcat(&broker.bootstrap(), &["-L"]);
    let mut http = TcpStream::connect(&metrics_addr).expect("connect to /metrics");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    http.read_to_string(&mut text).expect("response");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("kafka_broker_requests_total{api=\"Metadata\"}"), "{text}");
    assert!(
        text.contains("kafka_broker_requests_total{api=\"ApiVersions\"}"),
        "{text}"
    );
    assert!(
        text.contains("kafka_broker_request_duration_seconds_count{api=\"Metadata\"}"),
        "{text}"
    );
    assert!(text.contains("kafka_broker_connections"), "{text}");
}

/// A TCP connection to `broker` from the loopback address `source` (any of 127.0.0.0/8 is local on Linux).
fn connect_from(source: &str, broker: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("source address"))
            .expect("bind the source address");
        socket
            .connect(broker.parse().expect("broker address"))
            .await
            .expect("connect")
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
}

/// Whether the broker answers an ApiVersions on `stream` (false: it closed the connection instead).
fn answers(stream: &mut TcpStream, correlation_id: i32) -> bool {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("limits-test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let frame = encode_request(&request, 3, correlation_id, Some("limits-test")).expect("encode");
    if stream.write_all(&frame).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return false;
        }
        Err(e) => panic!("neither an answer nor a closed connection: {e}"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("response body");
    decode_response::<ApiVersionsRequest>(Bytes::from(body), 3).expect("ApiVersions response");
    true
}

/// The value of `kafka_broker_connections_closed_total{reason=REASON}` in the broker's metrics.
fn closed_for(kafka: &EmbeddedKafka, reason: &str) -> u64 {
    let prefix = format!("kafka_broker_connections_closed_total{{reason=\"{reason}\"}} ");
    kafka
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn connections_beyond_the_limits_are_closed_at_once_and_counted() {
    let kafka = EmbeddedKafka::start_with(BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        max_connections: 5,
        max_connections_per_ip: 3,
        ..BrokerConfig::default()
    });
    let broker = kafka.bootstrap();
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };
    let mut first: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.1", &broker)).collect();
    for stream in &mut first {
        assert!(answers(stream, next()), "within both limits");
    }
    // A fourth from the same address: closed without an answer.
    let started = Instant::now();
    let mut over_ip = connect_from("127.0.0.1", &broker);
    assert!(
        !answers(&mut over_ip, next()),
        "a 4th connection from one address was served"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(closed_for(&kafka, "max_connections_per_ip"), 1);

    // Other addresses may connect, up to the total.
    let mut second: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.2", &broker)).collect();
    for stream in &mut second {
        assert!(answers(stream, next()), "another address within the total");
    }
    let mut over_total = connect_from("127.0.0.3", &broker);
    assert!(!answers(&mut over_total, next()), "a 6th connection was served");
    assert_eq!(closed_for(&kafka, "max_connections"), 1);
    // The refused connections were never counted as open.
    assert!(
        kafka.metrics_text().contains("kafka_broker_connections 5\n"),
        "{}",
        kafka.metrics_text()
    );

    // A closed connection frees its place (once the broker has seen it close).
    drop(first.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from("127.0.0.1", &broker);
        if answers(&mut again, next()) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was never given again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two brokers never share a data dir: the second refuses to start while the first holds its lock, and
/// starts once the first is gone (a crash releases the lock too).
#[test]
fn a_data_dir_in_use_by_another_broker_is_refused() {
    let dir = support::process::fixture_dir("shared-data-dir").join("data");
    let data = dir.display().to_string();
    let first = support::embedded::BrokerProcess::start(&["--data-dir", &data]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-group-operator"))
        .args(["broker", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .output()
        .expect("run a second broker");
    assert!(!out.status.success(), "a second broker on the same data dir started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another broker"), "{stderr}");
    first.kill9();
    let again = support::embedded::BrokerProcess::start(&["--data-dir", &data]);
    assert!(!again.bootstrap().is_empty());
}
