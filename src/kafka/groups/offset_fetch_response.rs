//! OffsetFetch v8–v9 responses (one request for many groups) read straight from the frame, one group at a
//! time. kafka_protocol's decoder builds the whole response first, ≈ 90 bytes per group-partition (90 MB for
//! a cluster's 20,000 groups × 50 partitions), and the committed offsets were then copied out of it: the
//! scan held both. Here each group's partitions are handed over as soon as the group's record ends, with
//! topic names shared across the response (`TopicNames`).
//!
//! The layout (Kafka's `OffsetFetchResponse.json`, flexible versions): throttle time, then the groups, each
//! with its id, its topics (name, partitions: index, committed offset, leader epoch, metadata, error code)
//! and its error code; every struct ends with tagged fields, which are skipped.

use crate::kafka::metadata::{TopicNames, TopicPartition};
use crate::wire::{Api, WireError};
use kafka_protocol::messages::{OffsetFetchRequest, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Request};

/// One partition of a group as the response gives it.
pub(super) struct FetchedPartition<'a> {
    pub tp: TopicPartition,
    pub committed_offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<&'a str>,
    pub error_code: i16,
}

/// Reads `frame` (the response, header included) and calls `each_group(group id, group error code,
/// partitions)` once per group, in the response's order.
pub(super) fn read_groups(
    mut frame: bytes::Bytes,
    version: i16,
    mut each_group: impl FnMut(String, i16, Vec<FetchedPartition<'_>>),
) -> Result<(), WireError> {
    let fail = |message: String| WireError::Decode {
        api: Api(OffsetFetchRequest::KEY),
        version,
        message,
    };
    if !(8..=9).contains(&version) {
        return Err(fail(format!("version {version} is not read here (8 and 9 are)")));
    }
    // Flexible responses have header v1 (correlation id and tagged fields).
    ResponseHeader::decode(&mut frame, 1).map_err(|e| fail(e.to_string()))?;
    let mut r = Reader { buf: &frame };
    let mut names = TopicNames::default();
    let body = (|| {
        r.i32()?; // throttle time
        let groups = r.array_len()?.unwrap_or(0);
        for _ in 0..groups {
            let group = r.string()?.unwrap_or_default().to_owned();
            let mut partitions = Vec::new();
            for _ in 0..r.array_len()?.unwrap_or(0) {
                let topic = names.intern(r.string()?.unwrap_or_default());
                for _ in 0..r.array_len()?.unwrap_or(0) {
                    let partition = r.i32()?;
                    let committed_offset = r.i64()?;
                    let leader_epoch = r.i32()?;
                    let metadata = r.string()?;
                    let error_code = r.i16()?;
                    r.skip_tagged_fields()?;
                    partitions.push(FetchedPartition {
                        tp: TopicPartition::new(&topic, partition),
                        committed_offset,
                        leader_epoch,
                        metadata,
                        error_code,
                    });
                }
                r.skip_tagged_fields()?;
            }
            let error_code = r.i16()?;
            r.skip_tagged_fields()?;
            each_group(group, error_code, partitions);
        }
        r.skip_tagged_fields()
    })();
    body.map_err(|short: Short| fail(short.0.to_owned()))
}

/// Why a response could not be read.
struct Short(&'static str);

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(Short("the response ends early"))?;
        self.buf = rest;
        Ok(*head)
    }

    fn i16(&mut self) -> Result<i16, Short> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, Short> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, Short> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    /// An unsigned varint of at most 32 bits.
    fn uvarint(&mut self) -> Result<u32, Short> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [byte] = self.take()?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Short("a varint longer than 5 bytes"))
    }

    /// A compact array's or string's length; None for null.
    fn compact_len(&mut self) -> Result<Option<usize>, Short> {
        Ok(self.uvarint()?.checked_sub(1).map(|n| n as usize))
    }

    /// A compact array's length, never more than the bytes left could hold (a hostile length must not
    /// make the caller reserve or loop for more than the frame carries).
    fn array_len(&mut self) -> Result<Option<usize>, Short> {
        match self.compact_len()? {
            Some(n) if n > self.buf.len() => Err(Short("an array longer than the response")),
            n => Ok(n),
        }
    }

    fn string(&mut self) -> Result<Option<&'a str>, Short> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        if len > self.buf.len() {
            return Err(Short("a string longer than the response"));
        }
        let (bytes, rest) = self.buf.split_at(len);
        self.buf = rest;
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Short("a string that is not UTF-8"))
    }

    fn skip_tagged_fields(&mut self) -> Result<(), Short> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?; // tag
            let size = self.uvarint()? as usize;
            if size > self.buf.len() {
                return Err(Short("a tagged field longer than the response"));
            }
            self.buf = &self.buf[size..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
    };
    use kafka_protocol::messages::{GroupId, OffsetFetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    type Read = (String, i16, Vec<(String, i32, i64, i32, Option<String>, i16)>);

    fn response() -> OffsetFetchResponse {
        let partition = |index: i32, offset: i64, epoch: i32, metadata: Option<&str>, error: i16| {
            let mut p = OffsetFetchResponsePartitions::default()
                .with_partition_index(index)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(metadata.map(|m| StrBytes::from_string(m.to_owned())))
                .with_error_code(error);
            // A tagged field a newer broker might add: skipped.
            p.unknown_tagged_fields.insert(7, bytes::Bytes::from_static(b"later"));
            p
        };
        let topic = |name: &str, partitions| {
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(partitions)
        };
        OffsetFetchResponse::default()
            .with_throttle_time_ms(3)
            .with_groups(vec![
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("orders-app")))
                    .with_topics(vec![
                        topic(
                            "orders",
                            vec![partition(0, 42, 3, Some("m"), 0), partition(1, -1, -1, None, 0)],
                        ),
                        topic("payments", vec![partition(0, 7, -1, Some(""), 88)]),
                    ]),
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("gone")))
                    .with_error_code(69),
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("billing")))
                    .with_topics(vec![topic("orders", vec![partition(2, 9, 1, None, 0)])]),
            ])
    }

    fn frame(response: &OffsetFetchResponse, version: i16) -> bytes::Bytes {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(11)
            .encode(&mut buf, 1)
            .expect("header");
        response.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    fn read(frame: bytes::Bytes, version: i16) -> Result<Vec<Read>, WireError> {
        let mut out = Vec::new();
        read_groups(frame, version, |group, error, partitions| {
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    (
                        p.tp.topic.to_string(),
                        p.tp.partition,
                        p.committed_offset,
                        p.leader_epoch,
                        p.metadata.map(str::to_owned),
                        p.error_code,
                    )
                })
                .collect();
            out.push((group, error, partitions));
        })?;
        Ok(out)
    }

    #[test]
    fn every_group_and_partition_is_read_as_kafka_protocol_decodes_it() {
        for version in [8, 9] {
            let sent = response();
            let mut body = frame(&sent, version);
            ResponseHeader::decode(&mut body, 1).expect("header");
            let theirs = OffsetFetchResponse::decode(&mut body, version).expect("kafka_protocol");
            let want: Vec<Read> = theirs
                .groups
                .iter()
                .map(|g| {
                    let partitions = g
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(|p| {
                                (
                                    t.name.0.to_string(),
                                    p.partition_index,
                                    p.committed_offset,
                                    p.committed_leader_epoch,
                                    p.metadata.as_ref().map(|m| m.to_string()),
                                    p.error_code,
                                )
                            })
                        })
                        .collect();
                    (g.group_id.0.to_string(), g.error_code, partitions)
                })
                .collect();
            let ours = read(frame(&sent, version), version).expect("read");
            assert_eq!(ours, want, "v{version}");
            assert_eq!(ours.len(), 3);
            assert_eq!(ours[1].1, 69, "a group's own error is kept");
        }
    }

    #[test]
    fn partitions_of_one_topic_share_its_name_across_groups() {
        let mut names = Vec::new();
        read_groups(frame(&response(), 9), 9, |_, _, partitions| {
            names.extend(
                partitions
                    .into_iter()
                    .filter(|p| &*p.tp.topic == "orders")
                    .map(|p| p.tp.topic),
            );
        })
        .expect("read");
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|n| std::sync::Arc::ptr_eq(n, &names[0])));
    }

    #[test]
    fn a_cut_or_lying_frame_is_an_error_not_a_panic_or_a_huge_allocation() {
        let whole = frame(&response(), 9);
        for cut in 0..whole.len() {
            assert!(read(whole.slice(..cut), 9).is_err(), "cut at {cut}");
        }
        // A group count of 2^31 in a frame of a few bytes.
        let mut lying = BytesMut::new();
        ResponseHeader::default().encode(&mut lying, 1).expect("header");
        lying.extend_from_slice(&[0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x08]);
        assert!(read(lying.freeze(), 9).is_err());
        assert!(read(whole, 7).is_err(), "only the flexible batched versions");
    }
}
