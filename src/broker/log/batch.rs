//! Kafka's record batch v2 ("magic 2") header: parsed and checked, never decompressed. The broker stores
//! batches as producers send them and only rewrites the base offset (which the batch CRC does not cover).

use bytes::{Bytes, BytesMut};

/// Bytes of the v2 batch header, from the base offset to the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before the CRC-covered part: base offset, length, leader epoch, magic, crc.
pub const CRC_START: usize = 21;
/// The batch length field counts the bytes after itself (base offset and length are 12 bytes).
const LOG_OVERHEAD: usize = 12;

const TRANSACTIONAL: i16 = 1 << 4;
const CONTROL: i16 = 1 << 5;

/// The fields of a v2 batch header the broker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes of the whole batch, header included.
    pub size: usize,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch shorter than its {HEADER_LEN}-byte header ({0} bytes)")]
    Truncated(usize),
    #[error("batch length {declared} does not fit the {available} bytes available")]
    BadLength { declared: i64, available: usize },
    #[error("record batch magic {0} is not supported (only v2 batches are)")]
    Magic(i8),
    #[error("batch CRC {stored:#010x} does not match its contents ({computed:#010x})")]
    Crc { stored: u32, computed: u32 },
    #[error("batch declares {0} records")]
    BadCount(i32),
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the header at the start of `bytes` and checks that the whole batch is there, is v2 and
    /// matches its CRC-32C.
    pub fn parse_checked(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        let header = BatchHeader::parse_header(bytes)?;
        if header.size > bytes.len() {
            return Err(BatchError::BadLength {
                declared: header.size as i64 - LOG_OVERHEAD as i64,
                available: bytes.len(),
            });
        }
        let computed = crc32c::crc32c(&bytes[CRC_START..header.size]);
        if computed != header.crc {
            return Err(BatchError::Crc {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }

    /// Parses the header at the start of `bytes` (at least its [`HEADER_LEN`] bytes) without the batch's body:
    /// the length, magic and record count are checked, the CRC is not (the body may not have been read).
    /// What a log reads back from its own files to find batches.
    pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::Truncated(bytes.len()));
        }
        let length = i32_at(bytes, 8);
        let size = LOG_OVERHEAD as i64 + i64::from(length);
        if length < 0 || size < HEADER_LEN as i64 {
            return Err(BatchError::BadLength {
                declared: i64::from(length),
                available: bytes.len(),
            });
        }
        let magic = bytes[16] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        let header = BatchHeader {
            base_offset: i64_at(bytes, 0),
            size: size as usize,
            magic,
            crc: u32::from_be_bytes([bytes[17], bytes[18], bytes[19], bytes[20]]),
            attributes: i16_at(bytes, 21),
            last_offset_delta: i32_at(bytes, 23),
            base_timestamp: i64_at(bytes, 27),
            max_timestamp: i64_at(bytes, 35),
            producer_id: i64_at(bytes, 43),
            producer_epoch: i16_at(bytes, 51),
            base_sequence: i32_at(bytes, 53),
            records_count: i32_at(bytes, 57),
        };
        if header.records_count <= 0 || header.last_offset_delta < 0 {
            return Err(BatchError::BadCount(header.records_count));
        }
        Ok(header)
    }

    /// Offsets this batch takes in the log.
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    /// The sequence number of the batch's last record; sequences wrap from i32::MAX to 0.
    pub fn last_sequence(&self) -> i32 {
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// The batch with its base offset set to `base_offset` and its partition leader epoch to `leader_epoch`
/// (neither is covered by the CRC).
pub fn assign_offset(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Bytes {
    let mut out = BytesMut::from(batch);
    out[..8].copy_from_slice(&base_offset.to_be_bytes());
    out[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    out.freeze()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    /// A real v2 batch from kafka-protocol's encoder, as a client would send it.
    pub(crate) fn encoded_batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
        encoded_batch_with(values, producer, false)
    }

    /// `encoded_batch`, transactional when asked (a transactional producer's batch).
    pub(crate) fn encoded_batch_with(values: &[&str], producer: Option<(i64, i16, i32)>, transactional: bool) -> Bytes {
        let (producer_id, producer_epoch, sequence) = producer.unwrap_or((-1, -1, -1));
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional,
                control: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // the encoder starts a new batch where offset - sequence changes, so sequences always count up
                sequence: sequence.max(0) + i as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: None,
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
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

    #[test]
    fn parses_a_batch_from_a_real_encoder() {
        let batch = encoded_batch(&["a", "b", "c"], Some((7, 1, 10)));
        let header = BatchHeader::parse_checked(&batch).expect("valid");
        assert_eq!(header.size, batch.len());
        assert_eq!(header.records_count, 3);
        assert_eq!(header.offset_count(), 3);
        assert_eq!((header.producer_id, header.producer_epoch), (7, 1));
        assert_eq!((header.base_sequence, header.last_sequence()), (10, 12));
        assert_eq!(header.max_timestamp, 1_700_000_000_002);
    }

    #[test]
    fn rewriting_the_base_offset_keeps_the_crc_valid() {
        let batch = encoded_batch(&["a"], None);
        let moved = assign_offset(&batch, 42, 0);
        let header = BatchHeader::parse_checked(&moved).expect("still valid");
        assert_eq!(header.base_offset, 42);
    }

    #[test]
    fn a_flipped_byte_or_a_short_tail_is_detected() {
        let batch = encoded_batch(&["hello"], None);
        let mut corrupt = batch.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            BatchHeader::parse_checked(&corrupt),
            Err(BatchError::Crc { .. })
        ));
        assert!(matches!(
            BatchHeader::parse_checked(&batch[..batch.len() - 1]),
            Err(BatchError::BadLength { .. })
        ));
        assert!(matches!(
            BatchHeader::parse_checked(&batch[..20]),
            Err(BatchError::Truncated(20))
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let batch = encoded_batch(&["a", "b"], Some((1, 0, 0)));
        // the encoder wraps too, but our header only needs the base sequence and the delta
        let mut header = BatchHeader::parse_checked(&batch).expect("valid");
        header.base_sequence = i32::MAX;
        assert_eq!(header.last_sequence(), 0);
    }
}
