//! The embedded broker's server: requests pipelined on one connection are answered in order, idle
//! connections are closed, and a graceful shutdown lets a request in progress finish, then closes.

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
