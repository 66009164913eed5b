//! Kafka's framing and request/response headers on top of the `kafka-protocol` crate, shared by the admin
//! client (`kafka/`) and the embedded broker. A frame is a big-endian i32 length followed by that many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt};

pub mod scram;

/// Largest frame accepted by default (Kafka's `socket.request.max.bytes` is 100 MiB).
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("could not encode {api} v{version}: {message}")]
    Encode { api: Api, version: i16, message: String },
    #[error("could not decode {api} v{version}: {message}")]
    Decode { api: Api, version: i16, message: String },
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge { size: usize, limit: usize },
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An API key that displays as the API's name (`OffsetFetch`), for errors and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Api(pub i16);

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match kafka_protocol::messages::ApiKey::try_from(self.0) {
            Ok(key) => write!(f, "{key:?}"),
            Err(_) => write!(f, "API key {}", self.0),
        }
    }
}

/// Encodes one request (header + body) as a complete frame, length prefix included.
pub fn encode_request<R: Request>(
    body: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<Bytes, WireError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_owned())));
    encode_frame(R::KEY, &header, R::header_version(version), body, version)
}

/// Encodes a response (header + body) as a complete frame, for the broker side.
pub fn encode_response<M: Encodable + HeaderVersion>(
    api_key: i16,
    body: &M,
    version: i16,
    correlation_id: i32,
    header_version: i16,
) -> Result<Bytes, WireError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    encode_frame(api_key, &header, header_version, body, version)
}

/// Encodes a response of any API (the broker's dispatch produces `ResponseKind`s) as a complete frame.
/// `header_version` is the caller's: ApiVersions responses always carry a v0 header (KIP-511).
pub fn encode_response_kind(
    api_key: i16,
    body: &kafka_protocol::messages::ResponseKind,
    version: i16,
    correlation_id: i32,
    header_version: i16,
) -> Result<Bytes, WireError> {
    let err = |e: anyhow::Error| WireError::Encode {
        api: Api(api_key),
        version,
        message: e.to_string(),
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // the length, written once the size is known
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| WireError::FrameTooLarge {
        size: buf.len() - 4,
        limit: i32::MAX as usize,
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A header and a body as one frame, length prefix included.
fn encode_frame<H: Encodable, B: Encodable>(
    api_key: i16,
    header: &H,
    header_version: i16,
    body: &B,
    version: i16,
) -> Result<Bytes, WireError> {
    let err = |e: anyhow::Error| WireError::Encode {
        api: Api(api_key),
        version,
        message: e.to_string(),
    };
    let size = header.compute_size(header_version).map_err(err)? + body.compute_size(version).map_err(err)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version).map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    Ok(buf.freeze())
}

/// The correlation id of a response frame (its first four bytes, whatever the header version).
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    frame.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes a response frame (without its length prefix) for request type `R` at `version`.
/// ApiVersions responses always carry a v0 header, whatever the request version (KIP-511).
pub fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> Result<R::Response, WireError> {
    let header_version = if R::KEY == kafka_protocol::messages::ApiKey::ApiVersions as i16 {
        0
    } else {
        <R::Response as HeaderVersion>::header_version(version)
    };
    let err = |e: anyhow::Error| WireError::Decode {
        api: Api(R::KEY),
        version,
        message: e.to_string(),
    };
    ResponseHeader::decode(&mut frame, header_version).map_err(err)?;
    let response = R::Response::decode(&mut frame, version).map_err(err)?;
    Ok(response)
}

/// Reads one frame's payload (without the length prefix). `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, max_frame: usize) -> Result<Option<Bytes>, WireError> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 {
        return Err(WireError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max_frame {
        return Err(WireError::FrameTooLarge {
            size: len,
            limit: max_frame,
        });
    }
    let mut buf = BytesMut::zeroed(len);
    stream.read_exact(&mut buf).await?;
    Ok(Some(buf.freeze()))
}

/// Splits a length-prefixed frame into its payload (for tests and in-memory round trips).
pub fn strip_length_prefix(mut frame: Bytes) -> Option<Bytes> {
    if frame.len() < 4 {
        return None;
    }
    let len = frame.get_i32();
    (len >= 0 && len as usize == frame.len()).then_some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse};
    use kafka_protocol::protocol::Message;

    #[test]
    fn request_frame_carries_length_key_version_and_correlation_id() {
        let frame = encode_request(&MetadataRequest::default(), 12, 42, Some("kgo")).expect("encode");
        let mut payload = strip_length_prefix(frame).expect("length prefix matches");
        assert_eq!(payload.get_i16(), 3, "Metadata api key");
        assert_eq!(payload.get_i16(), 12);
        assert_eq!(payload.get_i32(), 42);
    }

    #[test]
    fn response_round_trips_through_encode_and_decode() {
        let response = MetadataResponse::default().with_throttle_time_ms(7);
        let version = 12;
        let header_version = <MetadataResponse as HeaderVersion>::header_version(version);
        let frame = encode_response(3, &response, version, 9, header_version).expect("encode");
        let payload = strip_length_prefix(frame).expect("prefix");
        assert_eq!(peek_correlation_id(&payload), Some(9));
        let decoded = decode_response::<MetadataRequest>(payload, version).expect("decode");
        assert_eq!(decoded.throttle_time_ms, 7);
    }

    #[test]
    fn api_versions_response_header_is_always_v0() {
        let version = ApiVersionsRequest::VERSIONS.max;
        let response = ApiVersionsResponse::default().with_error_code(35);
        let frame = encode_response(18, &response, version, 1, 0).expect("encode");
        let payload = strip_length_prefix(frame).expect("prefix");
        let decoded = decode_response::<ApiVersionsRequest>(payload, version).expect("decode");
        assert_eq!(decoded.error_code, 35);
    }

    #[test]
    fn api_names_are_readable() {
        assert_eq!(Api(9).to_string(), "OffsetFetch");
        assert_eq!(Api(-5).to_string(), "API key -5");
    }

    #[tokio::test]
    async fn oversized_and_negative_frames_are_rejected() {
        let mut big: &[u8] = &[0, 0, 1, 0, 1, 2];
        assert!(matches!(
            read_frame(&mut big, 16).await,
            Err(WireError::FrameTooLarge { .. })
        ));
        let mut negative: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut negative, 16).await,
            Err(WireError::NegativeLength(-1))
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 16).await.expect("clean eof").is_none());
    }
}
