//! A full disk loses nothing that was acknowledged: the broker's data dir on a 4 MiB tmpfs is filled up, so
//! that a produce and an offset commit fail half-written (a short write, then ENOSPC); space is freed, more
//! records are produced and more offsets committed; the broker is killed with SIGKILL and restarted. Every
//! record and commit acknowledged before, and after, the full disk is there: a failed write left no fragment
//! for later writes to be appended after (recovery would have cut the log at it). A topic created while the
//! disk is full is refused rather than kept in memory only (a restart would forget it and its records), and
//! a commit that was refused is not served by OffsetFetch either. A group or offset deletion that was refused
//! deleted nothing, neither in what the broker serves nor in what it finds after a restart.
//!
//! Needs root to mount the tmpfs; it fails (never skips) when the mount is impossible.

mod support;

use bytes::{BufMut, Bytes};
use kafka_group_operator::wire::{decode_response, encode_request};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, GroupId, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use rskafka::client::ClientBuilder;
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::clients::{GroupProtocol, commit_offsets, consume_and_commit, produce};
use support::embedded::BrokerProcess;
use support::kafka::{create_topic_with_cli, describe_group_offsets_with_cli, kafka_tool};
use support::unique_name;

const PARTITIONS: i32 = 64;

/// A tmpfs of `size` mounted on a fresh directory, unmounted (and the directory removed) when dropped.
struct SmallFileSystem {
    dir: PathBuf,
}

impl SmallFileSystem {
    fn mount(size: &str) -> SmallFileSystem {
        let dir = tempfile::Builder::new()
            .prefix("kgo-full-disk-")
            .tempdir()
            .expect("mount point")
            .keep();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs a small file system: `mount -t tmpfs -o size={size} tmpfs {}` failed (run it as \
             root, or in a container allowed to mount): {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFileSystem { dir }
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes a file until the file system has no space left; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "filling the file system: {e}");
                break;
            }
        }
        // Down to the last page.
        while file.write_all(&[0x5a]).is_ok() {}
        path
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.dir).output();
        match out {
            Ok(out) if out.status.success() => {
                let _ = std::fs::remove_dir(&self.dir);
            }
            other => eprintln!("cannot unmount {}: {other:?}", self.dir.display()),
        }
    }
}

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

/// `count` records of about 1 KiB each, values `<tag>-<i>` padded.
fn records(tag: &str, count: usize) -> Vec<(String, Record)> {
    (0..count)
        .map(|i| {
            let value = format!("{tag}-{i}-{}", "x".repeat(1000));
            let record = Record {
                key: None,
                value: Some(value.clone().into_bytes()),
                headers: Default::default(),
                timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("timestamp"),
            };
            (value, record)
        })
        .collect()
}

/// Produces rounds of 40 records to partition 0 (acks=all), recording every acknowledged one by offset.
async fn produce_rounds(p: &PartitionClient, tag: &str, rounds: usize, acknowledged: &mut BTreeMap<i64, String>) {
    for round in 0..rounds {
        let (values, batch): (Vec<String>, Vec<Record>) = records(&format!("{tag}{round}"), 40).into_iter().unzip();
        let offsets = p
            .produce(batch, Compression::NoCompression)
            .await
            .unwrap_or_else(|e| panic!("produce round {round} of {tag}: {e}"));
        acknowledged.extend(offsets.into_iter().zip(values));
    }
}

/// Every record of a partition, by offset.
async fn read_all(p: &PartitionClient) -> BTreeMap<i64, String> {
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
}

/// `request` sent as is over a fresh connection: no client retries it, so the broker's first answer is what
/// comes back.
fn raw_request<R: Request>(bootstrap: &str, request: &R, version: i16) -> R::Response {
    let mut stream = TcpStream::connect(bootstrap).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let frame = encode_request(request, version, 1, Some("full-disk-test")).expect("encode");
    stream.write_all(&frame).expect("send");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("response");
    let mut framed = bytes::BytesMut::new();
    framed.put_slice(&body);
    decode_response::<R>(Bytes::from(framed), version).expect("decode")
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// An OffsetCommit (v8) of `offset` for partitions 0 to `partitions - 1` of `topic`, without a generation.
/// Returns the partitions' error codes.
fn raw_commit(bootstrap: &str, group: &str, topic: &str, partitions: i32, offset: i64) -> Vec<i16> {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(-1)
                                .with_committed_metadata(Some(StrBytes::from_static_str("")))
                        })
                        .collect(),
                ),
        ]);
    let response = raw_request(bootstrap, &request, 8);
    response.topics[0].partitions.iter().map(|p| p.error_code).collect()
}

/// A DeleteGroups (v2) of `group`: its error code.
fn raw_delete_group(bootstrap: &str, group: &str) -> i16 {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))]);
    raw_request(bootstrap, &request, 2).results[0].error_code
}

/// An OffsetDelete (v0) of `partitions` of `topic` in `group`: the request's error code, then the partitions'.
fn raw_delete_offsets(bootstrap: &str, group: &str, topic: &str, partitions: &[i32]) -> (i16, Vec<i16>) {
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                        .collect(),
                ),
        ]);
    let response = raw_request(bootstrap, &request, 0);
    let partitions = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    (response.error_code, partitions)
}

/// Every committed offset of `group` (OffsetFetch v8 of all its partitions), as `"topic:partition" -> offset`.
fn raw_fetch(bootstrap: &str, group: &str) -> BTreeMap<String, i64> {
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(None),
    ]);
    let response = raw_request(bootstrap, &request, 8);
    assert_eq!(response.groups[0].error_code, 0, "OffsetFetch of {group}");
    response.groups[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (format!("{}:{}", t.name.0, p.partition_index), p.committed_offset))
        })
        .collect()
}

#[test]
fn a_full_disk_loses_no_acknowledged_record_or_commit() {
    // Dropped last: the brokers below are stopped before the file system is unmounted.
    let fs = SmallFileSystem::mount("4m");
    let data_dir = fs.path().join("data");
    let data_arg = data_dir.to_str().expect("utf-8 path").to_owned();
    let args = ["--data-dir", data_arg.as_str()];
    let broker = BrokerProcess::start(&args);
    let bootstrap = broker.bootstrap();
    let topic = unique_name("full-disk");
    let consumers = unique_name("full-disk-consumers");
    let committer = unique_name("full-disk-committer");
    create_topic_with_cli(&bootstrap, &topic, PARTITIONS as u32);
    let rt = runtime();
    let p0 = rt.block_on(partition(&bootstrap, &topic, 0));
    let mut acknowledged = BTreeMap::new();

    // Before: records, and a consumer group's commit.
    rt.block_on(produce_rounds(&p0, "before", 5, &mut acknowledged));
    let committed = consume_and_commit(&bootstrap, &topic, &consumers, GroupProtocol::Classic, 200);
    assert_eq!(committed.get(&format!("{topic}:0")), Some(&200), "{committed:?}");
    commit_offsets(&bootstrap, &topic, &committer, PARTITIONS, 3).expect("commit before the disk is full");

    // Full: a batch of 40 KiB does not fit, nor does one commit of 64 offsets (7 KiB); the first pages of
    // each fit into what the last page of the segment and of the group log had left: short writes.
    let filler = fs.fill();
    for attempt in 0..3 {
        let (_, batch): (Vec<String>, Vec<Record>) = records(&format!("full{attempt}"), 40).into_iter().unzip();
        match rt.block_on(p0.produce(batch, Compression::NoCompression)) {
            Err(ClientError::ServerError {
                protocol_error: ProtocolError::KafkaStorageError,
                ..
            }) => {}
            other => panic!("produce {attempt} to a full disk: expected KAFKA_STORAGE_ERROR, got {other:?}"),
        }
        let errors = raw_commit(&bootstrap, &committer, &topic, PARTITIONS, 100 + attempt);
        assert!(
            errors
                .iter()
                .all(|e| *e == ResponseError::CoordinatorNotAvailable.code()),
            "commit {attempt} to a full disk: {errors:?}"
        );
    }

    // A commit that was refused is not served either (Kafka caches a commit only once it is written).
    let while_full = describe_group_offsets_with_cli(&bootstrap, &committer);
    assert!(
        while_full.len() == PARTITIONS as usize && while_full.iter().all(|r| r.current_offset == Some(3)),
        "the refused commits are not served: {while_full:?}"
    );

    // A topic created on the full disk is refused, not half-created: the catalog on disk could not say it
    // exists, so it must not take records that a restart would forget.
    let late_topic = unique_name("full-disk-late");
    let refused = kafka_tool(
        &bootstrap,
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--create",
            "--topic",
            &late_topic,
            "--partitions",
            "2",
            "--replication-factor",
            "1",
        ],
    );
    assert!(
        !refused.status.success(),
        "creating a topic on a full disk: {}",
        String::from_utf8_lossy(&refused.stdout)
    );

    assert!(
        !data_dir.join("topics.json.tmp").exists(),
        "a failed catalog write leaves no half-written file taking space"
    );

    // Freed: more records (rskafka to partition 0, confluent-kafka to every partition) and commits.
    std::fs::remove_file(&filler).expect("free the file system");
    rt.block_on(produce_rounds(&p0, "after", 5, &mut acknowledged));
    produce(&bootstrap, &topic, 300);
    create_topic_with_cli(&bootstrap, &late_topic, 2);
    produce(&bootstrap, &late_topic, 50);
    commit_offsets(&bootstrap, &topic, &committer, PARTITIONS, 7).expect("commit after space was freed");
    consume_and_commit(&bootstrap, &topic, &consumers, GroupProtocol::Classic, 200);
    let commits_before_kill = group_offsets(&bootstrap, &consumers, &topic);
    assert!(
        commits_before_kill.values().sum::<i64>() >= 400,
        "{commits_before_kill:?}"
    );

    broker.kill9();
    let restarted = BrokerProcess::start(&args);
    let bootstrap = restarted.bootstrap();

    let (p0_stored, others, late): (BTreeMap<i64, String>, usize, usize) = rt.block_on(async {
        let p0 = partition(&bootstrap, &topic, 0).await;
        let stored = read_all(&p0).await;
        let mut confluent = 0;
        for index in 0..PARTITIONS {
            let p = partition(&bootstrap, &topic, index).await;
            confluent += read_all(&p).await.values().filter(|v| v.starts_with("value-")).count();
        }
        let mut late = 0;
        for index in 0..2 {
            late += read_all(&partition(&bootstrap, &late_topic, index).await).await.len();
        }
        (stored, confluent, late)
    });
    for (offset, value) in &acknowledged {
        assert_eq!(
            p0_stored.get(offset).map(|v| &v[..v.len().min(40)]),
            Some(&value[..value.len().min(40)]),
            "acknowledged record at offset {offset} of partition 0 is lost or changed (restarted broker: {})",
            restarted.log_tail(20)
        );
    }
    assert!(
        !p0_stored.values().any(|v| v.starts_with("full")),
        "a refused batch was stored"
    );
    assert_eq!(
        others, 300,
        "every record confluent-kafka produced after the disk was freed"
    );
    assert_eq!(late, 50, "every record of the topic created after the disk was freed");

    let committer_rows = describe_group_offsets_with_cli(&bootstrap, &committer);
    assert_eq!(committer_rows.len(), PARTITIONS as usize, "{committer_rows:?}");
    assert!(
        committer_rows.iter().all(|r| r.current_offset == Some(7)),
        "the commit acknowledged after the full disk: {committer_rows:?}"
    );
    let after = group_offsets(&bootstrap, &consumers, &topic);
    assert_eq!(
        after, commits_before_kill,
        "the consumer group's commits survive kill -9"
    );
}

/// The group's committed offsets as `"topic:partition" -> offset` (Kafka's `kafka-consumer-groups`).
fn group_offsets(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<String, i64> {
    describe_group_offsets_with_cli(bootstrap, group)
        .into_iter()
        .filter(|r| r.topic == topic)
        .filter_map(|r| r.current_offset.map(|o| (format!("{}:{}", r.topic, r.partition), o)))
        .collect()
}

/// A DeleteGroups and an OffsetDelete refused on a full disk delete nothing: the group and the offsets are still
/// served, and still there after kill -9 and a restart (the log kept them). With space, both deletions succeed
/// and stay done after another kill -9.
#[test]
fn deletions_refused_on_a_full_disk_delete_nothing() {
    // Dropped last: the brokers below are stopped before the file system is unmounted.
    let fs = SmallFileSystem::mount("4m");
    let data_dir = fs.path().join("data");
    let data_arg = data_dir.to_str().expect("utf-8 path").to_owned();
    let args = ["--data-dir", data_arg.as_str()];
    let broker = BrokerProcess::start(&args);
    let bootstrap = broker.bootstrap();
    let topic = unique_name("full-disk-deletions");
    create_topic_with_cli(&bootstrap, &topic, 4);
    // Group ids longer than a page: a deletion's record cannot fit into what the last page of the group log has
    // left, so its write fails however full that page is.
    let long = |prefix: &str| format!("{}-{}", unique_name(prefix), "x".repeat(5000));
    let (deleted, trimmed) = (long("full-disk-deleted"), long("full-disk-trimmed"));
    for group in [&deleted, &trimmed] {
        assert_eq!(
            raw_commit(&bootstrap, group, &topic, 4, 3),
            vec![0; 4],
            "commit to {group:.40}"
        );
    }
    let offsets = |partitions: std::ops::Range<i32>| -> BTreeMap<String, i64> {
        partitions.map(|p| (format!("{topic}:{p}"), 3)).collect()
    };

    let filler = fs.fill();
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    assert_eq!(raw_delete_group(&bootstrap, &deleted), unavailable);
    assert_eq!(raw_delete_offsets(&bootstrap, &trimmed, &topic, &[0, 1]).0, unavailable);
    assert_eq!(
        group_offsets(&bootstrap, &deleted, &topic),
        offsets(0..4),
        "the group is still served"
    );
    assert_eq!(
        group_offsets(&bootstrap, &trimmed, &topic),
        offsets(0..4),
        "the offsets are still served"
    );

    std::fs::remove_file(&filler).expect("free the file system");
    broker.kill9();
    let restarted = BrokerProcess::start(&args);
    let bootstrap = restarted.bootstrap();
    assert_eq!(
        group_offsets(&bootstrap, &deleted, &topic),
        offsets(0..4),
        "the group after kill -9"
    );
    assert_eq!(
        group_offsets(&bootstrap, &trimmed, &topic),
        offsets(0..4),
        "the offsets after kill -9"
    );

    assert_eq!(raw_delete_group(&bootstrap, &deleted), 0);
    assert_eq!(
        raw_delete_offsets(&bootstrap, &trimmed, &topic, &[0, 1]),
        (0, vec![0, 0])
    );
    restarted.kill9();
    let again = BrokerProcess::start(&args);
    let bootstrap = again.bootstrap();
    assert!(
        raw_fetch(&bootstrap, &deleted).is_empty(),
        "the deleted group after kill -9"
    );
    assert_eq!(
        raw_fetch(&bootstrap, &trimmed),
        offsets(2..4),
        "the deleted offsets after kill -9"
    );
}
