//! Kafka's request limits, over the wire: what no real client sends, but any client could.
//!
//! - A group id (or member id, protocol type, …) longer than Kafka's 32767-byte strings is refused at the
//!   API (the connection is closed, as Kafka's parser does), never written to the group log, where a record
//!   larger than replay accepts would drop itself and every later record at the next start.
//! - Fetch: `max_bytes <= 0` is a limit of 0 bytes (the first batch only, KIP-74), not "unlimited"; a
//!   partition named twice in one Fetch is served once (with the last occurrence's fetch offset, like
//!   Kafka's map of fetch partitions).
//! - Produce: a batch whose `last_offset_delta` does not match its `records_count` is INVALID_RECORD and
//!   takes no offsets.
//! - Producer ids: a Produce with a producer id the broker never handed out is UNKNOWN_PRODUCER_ID; an
//!   InitProducerId without a transactional id always gets a new id (as Apache Kafka answers it), so naming
//!   another producer's id and epoch cannot bump, and so fence, that producer; handed-out ids stay valid,
//!   and are never handed out again, across a restart on the same data dir.
//! - Partitions: `--max-partitions` bounds the partitions of all topics together; CreateTopics (even
//!   validate-only, even with a count of 2^31-1), CreatePartitions and auto-creation beyond it are
//!   POLICY_VIOLATION, and nothing is allocated.

mod support;

use bytes::{Bytes, BytesMut};
use kafka_group_operator::wire::{decode_response, encode_request};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, GroupId, JoinGroupRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression as ClientCompression, PartitionClient, UnknownTopicHandling};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::EmbeddedKafka;
use support::clients::commit_offsets;
use support::embedded::BrokerProcess;
use support::kafka::{create_topic_with_cli, describe_group_offsets_with_cli};
use support::unique_name;

fn connect(bootstrap: &str) -> TcpStream {
    let stream = TcpStream::connect(bootstrap).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream
}

/// Sends `request` at `version`; the decoded response, or None when the broker closed the connection
/// instead of answering.
fn call<R: Request>(stream: &mut TcpStream, request: &R, version: i16) -> Option<R::Response> {
    let frame = encode_request(request, version, 7, Some("limits-test")).expect("encode");
    stream.write_all(&frame).expect("send");
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(e) => panic!("neither an answer nor a closed connection: {e}"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("response body");
    Some(decode_response::<R>(Bytes::from(body), version).expect("decode response"))
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn commit_request(group: &str, topic: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(s(""))),
                ]),
        ])
}

fn committed_offset(bootstrap: &str, group: &str, topic: &str) -> i64 {
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![0]),
            ])),
    ]);
    let response = call(&mut connect(bootstrap), &request, 8).expect("OffsetFetch answered");
    response.groups[0].topics[0].partitions[0].committed_offset
}

#[test]
fn strings_longer_than_kafka_allows_are_refused_and_never_reach_the_group_log() {
    let data = tempfile::tempdir().expect("data dir");
    let data_arg = data.path().to_str().expect("utf-8 path").to_owned();
    let args = ["--data-dir", data_arg.as_str()];
    let broker = BrokerProcess::start(&args);
    let bootstrap = broker.bootstrap();
    let topic = unique_name("limits");
    create_topic_with_cli(&bootstrap, &topic, 1);

    // The longest group id Kafka takes is taken.
    let longest = "g".repeat(32_767);
    let mut stream = connect(&bootstrap);
    let answer = call(&mut stream, &commit_request(&longest, &topic, 4), 8).expect("a 32767-byte group id");
    assert_eq!(answer.topics[0].partitions[0].error_code, 0);

    // One byte more, or 1.1 MiB (beyond the group log's 1 MiB records), closes the connection unanswered.
    for len in [32_768, 1_153_434] {
        let group = "x".repeat(len);
        assert!(
            call(&mut connect(&bootstrap), &commit_request(&group, &topic, 9), 8).is_none(),
            "an OffsetCommit with a {len}-byte group id was answered"
        );
    }
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s(&unique_name("limits-join"))))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s(&"c".repeat(40_000)))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s("range"))]);
    assert!(
        call(&mut connect(&bootstrap), &join, 9).is_none(),
        "a JoinGroup with a 40000-byte protocol type was answered"
    );
    // The broker serves the next client as ever.
    let metadata = call(&mut stream, &MetadataRequest::default(), 12).expect("metadata");
    assert_eq!(metadata.brokers.len(), 1);

    // A real client commits after them; after a restart its commit, and the longest group's, are there.
    let after = unique_name("limits-after");
    commit_offsets(&bootstrap, &topic, &after, 1, 5).expect("commit");
    broker.kill9();
    let restarted = BrokerProcess::start(&args);
    let bootstrap = restarted.bootstrap();
    let rows = describe_group_offsets_with_cli(&bootstrap, &after);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].current_offset, Some(5), "{rows:?}");
    assert_eq!(committed_offset(&bootstrap, &longest, &topic), 4);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn partition(bootstrap: &str, topic: &str) -> PartitionClient {
    ClientBuilder::new(vec![bootstrap.to_owned()])
        .build()
        .await
        .expect("rskafka client")
        .partition_client(topic, 0, UnknownTopicHandling::Retry)
        .await
        .expect("partition client")
}

/// A topic of one partition holding `batches` batches (rskafka, one produce each) of 10 records.
fn topic_with_batches(kafka: &EmbeddedKafka, batches: usize) -> String {
    let topic = unique_name("limits-fetch");
    kafka.create_topic(&topic, 1);
    runtime().block_on(async {
        let p = partition(&kafka.bootstrap(), &topic).await;
        for b in 0..batches {
            let records = (0..10)
                .map(|i| rskafka::record::Record {
                    key: None,
                    value: Some(format!("batch-{b}-record-{i}").into_bytes()),
                    headers: Default::default(),
                    timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("ts"),
                })
                .collect();
            p.produce(records, ClientCompression::NoCompression)
                .await
                .expect("produce");
        }
    });
    topic
}

fn fetch_partition(offset: i64) -> FetchPartition {
    FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)
        .with_current_leader_epoch(-1)
        .with_log_start_offset(-1)
        .with_last_fetched_epoch(-1)
}

fn fetch_request(max_bytes: i32, topics: Vec<FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// (base offset, batch length) of each batch in a fetch response's records.
fn batches(records: &Bytes) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= records.len() {
        let base = i64::from_be_bytes(records[at..at + 8].try_into().expect("8 bytes"));
        let len = 12 + i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        out.push((base, len));
        at += len;
    }
    out
}

#[test]
fn fetch_max_bytes_of_zero_or_less_is_a_limit_not_unlimited() {
    let kafka = EmbeddedKafka::shared();
    let topic = topic_with_batches(kafka, 20);
    let mut stream = connect(&kafka.bootstrap());
    let one_topic = || {
        vec![
            FetchTopic::default()
                .with_topic(TopicName(s(&topic)))
                .with_partitions(vec![fetch_partition(0)]),
        ]
    };
    let all = call(&mut stream, &fetch_request(50 << 20, one_topic()), 12).expect("fetch");
    let everything = batches(all.responses[0].partitions[0].records.as_ref().expect("records"));
    assert_eq!(everything.len(), 20, "{everything:?}");
    for max_bytes in [0, -1, i32::MIN] {
        let response = call(&mut stream, &fetch_request(max_bytes, one_topic()), 12).expect("fetch");
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(
            batches(partition.records.as_ref().expect("records")),
            everything[..1].to_vec(),
            "max_bytes {max_bytes}: the first batch only (KIP-74), not the whole log"
        );
    }
}

#[test]
fn a_partition_named_twice_in_one_fetch_is_served_once() {
    let kafka = EmbeddedKafka::shared();
    let topic = topic_with_batches(kafka, 5);
    let mut stream = connect(&kafka.bootstrap());
    let name = TopicName(s(&topic));
    let request = fetch_request(
        50 << 20,
        vec![
            FetchTopic::default().with_topic(name.clone()).with_partitions(vec![
                fetch_partition(0),
                fetch_partition(0),
                fetch_partition(10),
            ]),
            FetchTopic::default()
                .with_topic(name.clone())
                .with_partitions(vec![fetch_partition(20)]),
        ],
    );
    let response = call(&mut stream, &request, 12).expect("fetch");
    let served: Vec<_> = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), p)))
        .collect();
    assert_eq!(served.len(), 1, "partition 0 once: {:?}", response.responses);
    let (served_topic, partition) = &served[0];
    assert_eq!(served_topic, &topic);
    assert_eq!(partition.partition_index, 0);
    let fetched = batches(partition.records.as_ref().expect("records"));
    assert_eq!(
        fetched.first().map(|b| b.0),
        Some(20),
        "from the last occurrence's offset, as Kafka: {fetched:?}"
    );
    assert_eq!(fetched.len(), 3, "{fetched:?}");

    // v13+ names topics by id: the same.
    let metadata_request = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name.clone())),
    ]));
    let topic_id = call(&mut stream, &metadata_request, 12).expect("metadata").topics[0].topic_id;
    let by_id = |offset| {
        FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![fetch_partition(offset)])
    };
    let request = fetch_request(50 << 20, vec![by_id(0), by_id(30), by_id(40)]);
    let response = call(&mut stream, &request, 13).expect("fetch v13");
    assert_eq!(response.responses.len(), 1, "{:?}", response.responses);
    assert_eq!(response.responses[0].topic_id, topic_id);
    let partitions = &response.responses[0].partitions;
    assert_eq!(partitions.len(), 1);
    let fetched = batches(partitions[0].records.as_ref().expect("records"));
    assert_eq!(fetched, vec![(40, fetched[0].1)], "once, from offset 40");
}

/// A v2 batch of `count` records from kafka-protocol's encoder, with its `last_offset_delta` replaced by
/// `last_offset_delta` and its CRC recomputed (so only the inconsistency is wrong).
fn batch_with_last_offset_delta(count: usize, last_offset_delta: i32) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol's encoder starts a new batch where offset - sequence changes
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

fn produce(stream: &mut TcpStream, topic: &str, batch: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    PartitionProduceData::default().with_index(0).with_records(Some(batch)),
                ]),
        ]);
    let response = call(stream, &request, 9).expect("produce answered");
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn a_batch_whose_last_offset_delta_disagrees_with_its_record_count_is_refused() {
    let kafka = EmbeddedKafka::shared();
    let topic = unique_name("limits-produce");
    kafka.create_topic(&topic, 1);
    let mut stream = connect(&kafka.bootstrap());
    assert_eq!(produce(&mut stream, &topic, batch_with_last_offset_delta(2, 1)), (0, 0));
    for (count, delta) in [(1, 99), (1, i32::MAX), (3, 0), (3, 1)] {
        let (error, _) = produce(&mut stream, &topic, batch_with_last_offset_delta(count, delta));
        assert_eq!(
            error,
            ResponseError::InvalidRecord.code(),
            "{count} records with last offset delta {delta}"
        );
    }
    assert_eq!(
        produce(&mut stream, &topic, batch_with_last_offset_delta(1, 0)),
        (0, 2),
        "the refused batches took no offsets"
    );
}

fn create_topic_request(
    name: &str,
    partitions: i32,
    validate_only: bool,
) -> kafka_protocol::messages::CreateTopicsRequest {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    kafka_protocol::messages::CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(-1),
        ])
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
}

/// (error code, message) of the one topic of a CreateTopics.
fn create_topic(stream: &mut TcpStream, name: &str, partitions: i32, validate_only: bool) -> (i16, String) {
    let response =
        call(stream, &create_topic_request(name, partitions, validate_only), 5).expect("CreateTopics answer");
    let topic = &response.topics[0];
    (
        topic.error_code,
        topic.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default(),
    )
}

fn create_partitions(stream: &mut TcpStream, name: &str, count: i32) -> (i16, String) {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let request = kafka_protocol::messages::CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(TopicName(s(name)))
                .with_count(count),
        ])
        .with_timeout_ms(10_000);
    let response = call(stream, &request, 2).expect("CreatePartitions answer");
    let result = &response.results[0];
    (
        result.error_code,
        result.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default(),
    )
}

/// Topic name -> partition count, from a Metadata request for all topics.
fn topics(stream: &mut TcpStream) -> std::collections::BTreeMap<String, usize> {
    let response = call(stream, &MetadataRequest::default().with_topics(None), 9).expect("Metadata answer");
    response
        .topics
        .iter()
        .filter_map(|t| Some((t.name.as_ref()?.0.to_string(), t.partitions.len())))
        .collect()
}

#[test]
fn partitions_beyond_max_partitions_are_a_policy_violation_and_nothing_is_allocated() {
    // The binary, so that the flag is what is tested; auto-creation on (its default).
    let broker = BrokerProcess::start(&["--max-partitions", "10"]);
    let bootstrap = broker.bootstrap();
    let policy = ResponseError::PolicyViolation.code();
    let (full, other, auto) = (
        unique_name("limit-full"),
        unique_name("limit-other"),
        unique_name("limit-auto"),
    );
    create_topic_with_cli(&bootstrap, &full, 8);
    let mut stream = connect(&bootstrap);

    let (code, message) = create_topic(&mut stream, &other, 3, false);
    assert_eq!(code, policy, "{message}");
    assert!(
        message.contains("would bring this broker to 11 partitions, more than its limit of 10"),
        "{message}"
    );
    assert_eq!(
        create_topic(&mut stream, &other, 3, true).0,
        policy,
        "validate-only too"
    );
    // A count no broker could allocate is refused at once, and the broker carries on.
    let started = std::time::Instant::now();
    let (code, message) = create_topic(&mut stream, &other, i32::MAX, false);
    assert_eq!(code, policy, "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        create_topic(&mut stream, &other, 2, false).0,
        0,
        "up to the limit is fine"
    );

    let (code, message) = create_partitions(&mut stream, &full, 9);
    assert_eq!(code, policy, "{message}");
    assert!(message.contains("limit of 10"), "{message}");

    // Auto-creation through Metadata is refused the same way.
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s(&auto)))),
        ]))
        .with_allow_auto_topic_creation(true);
    let response = call(&mut stream, &request, 9).expect("Metadata answer");
    assert_eq!(response.topics[0].error_code, policy, "{:?}", response.topics[0]);
    let expected: std::collections::BTreeMap<String, usize> = [(full.clone(), 8), (other.clone(), 2)].into();
    assert_eq!(topics(&mut stream), expected, "nothing beyond the limit was created");

    // Kafka's own tool reports the refusal with the broker's message.
    let out = support::kafka::kafka_tool(
        &bootstrap,
        "org.apache.kafka.tools.TopicCommand",
        &["--create", "--topic", &auto, "--partitions", "1"],
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("PolicyViolationException") && printed.contains("limit of 10"),
        "{printed}"
    );

    // The limit counts what exists: deleting a topic makes room again.
    support::kafka::kafka_tool_ok(
        &bootstrap,
        "org.apache.kafka.tools.TopicCommand",
        &["--delete", "--topic", &other],
    );
    assert_eq!(create_partitions(&mut stream, &full, 10).0, 0);
    let expected: std::collections::BTreeMap<String, usize> = [(full.clone(), 10)].into();
    assert_eq!(topics(&mut stream), expected);
}

/// A v2 batch of `count` records from producer `id` at `epoch`, its first record at `first_sequence`.
fn idempotent_batch(id: i64, epoch: i16, first_sequence: i32, count: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_sequence + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

/// InitProducerId without a transactional id, naming `(id, epoch)` as a KIP-360 client does (-1, -1: none).
fn init_producer_id(stream: &mut TcpStream, id: i64, epoch: i16) -> (i16, i64, i16) {
    let request = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(id))
        .with_producer_epoch(epoch);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = call(stream, &request, 4).expect("InitProducerId answer");
        // A fresh Apache Kafka answers COORDINATOR_LOAD_IN_PROGRESS (or NOT_AVAILABLE) for a moment.
        let retriable = [
            ResponseError::CoordinatorLoadInProgress.code(),
            ResponseError::CoordinatorNotAvailable.code(),
        ];
        if !retriable.contains(&response.error_code) || std::time::Instant::now() > deadline {
            return (response.error_code, response.producer_id.0, response.producer_epoch);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn init_producer_id_never_bumps_a_named_producer_on_apache_kafka_either() {
    let kafka = support::ApacheKafka::shared();
    let mut stream = connect(&kafka.bootstrap());
    let (error, first, epoch) = init_producer_id(&mut stream, -1, -1);
    assert_eq!((error, epoch), (0, 0));
    let (error, second, epoch) = init_producer_id(&mut stream, first, 0);
    assert_eq!((error, epoch), (0, 0), "Apache Kafka hands out a new id at epoch 0");
    assert_ne!(second, first);
}

#[test]
fn producer_ids_are_only_those_handed_out_and_no_client_bumps_another_producers_epoch() {
    let dir = tempfile::tempdir().expect("data dir");
    let data_dir = dir.path().display().to_string();
    let broker = BrokerProcess::start(&["--data-dir", &data_dir]);
    let topic = unique_name("limits-pid");
    create_topic_with_cli(&broker.bootstrap(), &topic, 1);
    let mut stream = connect(&broker.bootstrap());
    let unknown = ResponseError::UnknownProducerId.code();

    let (error, a, epoch) = init_producer_id(&mut stream, -1, -1);
    assert_eq!((error, epoch), (0, 0));
    assert_eq!(produce(&mut stream, &topic, idempotent_batch(a, 0, 0, 2)), (0, 0));
    for never in [a + 1, a + 10_000, 0, 999, i64::MAX] {
        assert_eq!(
            produce(&mut stream, &topic, idempotent_batch(never, 0, 0, 1)).0,
            unknown,
            "producer id {never} was never handed out"
        );
    }
    // Non-idempotent batches (producer id -1) need no id.
    assert_eq!(produce(&mut stream, &topic, idempotent_batch(-1, -1, -1, 1)), (0, 2));

    // Another client naming a's id and epoch gets an id of its own: a is not bumped, so not fenced.
    let (error, b, epoch) = init_producer_id(&mut stream, a, 0);
    assert_eq!((error, epoch), (0, 0));
    assert_ne!(b, a);
    assert_eq!(
        produce(&mut stream, &topic, idempotent_batch(a, 0, 2, 1)),
        (0, 3),
        "a carries on at epoch 0"
    );
    // A producer may still bump its own epoch (the Java client does so locally after an error).
    assert_eq!(produce(&mut stream, &topic, idempotent_batch(a, 1, 0, 1)), (0, 4));

    // After a kill -9 and a restart on the same data dir, ids handed out before stay valid — also b, which
    // never wrote — and new ones are new.
    drop(stream);
    broker.kill9();
    let broker = BrokerProcess::start(&["--data-dir", &data_dir]);
    let mut stream = connect(&broker.bootstrap());
    assert_eq!(produce(&mut stream, &topic, idempotent_batch(a, 1, 1, 1)), (0, 5));
    assert_eq!(produce(&mut stream, &topic, idempotent_batch(b, 0, 0, 1)), (0, 6));
    let (error, c, _) = init_producer_id(&mut stream, -1, -1);
    assert_eq!(error, 0);
    assert!(
        c > a && c > b,
        "a new id ({c}) collides with one handed out before the restart ({a}, {b})"
    );
    assert_eq!(
        produce(&mut stream, &topic, idempotent_batch(c + 1, 0, 0, 1)).0,
        unknown,
        "an id not handed out yet"
    );
}
