//! Bad input closes only the connection that sent it: truncated frames, oversized and negative lengths,
//! unknown API keys and garbage bytes; another client on the same broker keeps working throughout. Versions
//! the broker does not answer get UNSUPPORTED_VERSION where the response can carry it. A property test
//! sends random bytes and checks the broker never hangs on them and keeps serving.

mod support;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_group_operator::wire::{decode_response, encode_request, read_frame, strip_length_prefix};
use kafka_protocol::messages::{ApiVersionsRequest, DescribeAclsRequest, MetadataRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;
use support::EmbeddedKafka;

fn connect(kafka: &EmbeddedKafka) -> TcpStream {
    let stream = TcpStream::connect(kafka.bootstrap()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
}

/// Reads one response frame (without its length prefix).
fn read_response(stream: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("response body");
    Bytes::from(body)
}

/// Whether the broker closed the connection (EOF or reset) rather than answering or hanging.
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("the broker answered {n} bytes instead of closing"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(e) => panic!("the broker neither answered nor closed: {e}"),
    }
}

/// A Metadata round trip on a connection that must stay usable.
fn still_served(stream: &mut TcpStream, correlation_id: i32) {
    let request = encode_request(&MetadataRequest::default(), 12, correlation_id, Some("bystander")).expect("encode");
    stream.write_all(&request).expect("write metadata");
    let response = read_response(stream);
    assert_eq!(
        kafka_group_operator::wire::peek_correlation_id(&response),
        Some(correlation_id)
    );
    let metadata = decode_response::<MetadataRequest>(response, 12).expect("metadata response");
    assert_eq!(metadata.brokers.len(), 1);
}

fn header(api_key: i16, version: i16, correlation_id: i32) -> BytesMut {
    let mut frame = BytesMut::new();
    frame.put_i16(api_key);
    frame.put_i16(version);
    frame.put_i32(correlation_id);
    frame.put_i16(-1); // null client id
    frame
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let kafka = EmbeddedKafka::shared();
    let mut bystander = connect(kafka);
    still_served(&mut bystander, 1);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated frame", {
            let mut bytes = 100i32.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 7, 0xff]);
            bytes
        }),
        ("oversized length", i32::MAX.to_be_bytes().to_vec()),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("frame shorter than a header", framed(&[0, 3, 0])),
        ("unknown API key", framed(&header(9_999, 0, 3))),
        ("garbage bytes", b"GET / HTTP/1.1\r\nHost: kafka\r\n\r\n".to_vec()),
        // A topic array "of 2^31 - 1 elements" must not size an allocation (see vendor/kafka-protocol/PATCHED.md).
        (
            "huge array length",
            framed(&{
                let mut f = header(3, 4, 5);
                f.put_i32(i32::MAX);
                f.put_slice(&[0, 1, b'x']);
                f
            }),
        ),
        (
            "undecodable body",
            framed(&{
                let mut f = header(3, 12, 4);
                f.put_slice(&[0xff; 9]);
                f
            }),
        ),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        let mut stream = connect(kafka);
        stream.write_all(&bytes).expect("write");
        // the truncated frame waits for the rest: the client gives up writing
        stream.shutdown(Shutdown::Write).expect("half-close");
        assert!(closed_by_broker(&mut stream), "{what}");
        still_served(&mut bystander, 10 + i as i32);
    }
}

#[test]
fn api_versions_at_an_unknown_version_gets_error_35_and_the_supported_list() {
    let kafka = EmbeddedKafka::shared();
    let mut stream = connect(kafka);
    let mut request = header(18, 99, 42);
    request.put_u8(0); // a flexible request header ends with its tagged fields
    stream.write_all(&framed(&request)).expect("write");
    let response = read_response(&mut stream);
    // The body is v0 (the client does not know the version it asked for).
    let decoded = decode_response::<ApiVersionsRequest>(response, 0).expect("v0 ApiVersions response");
    assert_eq!(decoded.error_code, 35);
    let produce = decoded
        .api_keys
        .iter()
        .find(|k| k.api_key == 0)
        .expect("Produce announced");
    assert_eq!((produce.min_version, produce.max_version), (3, 13));
    assert!(
        decoded.api_keys.iter().any(|k| k.api_key == 11),
        "JoinGroup (the coordinator's) announced"
    );
    // The connection stays open: the client retries with a version the broker knows.
    still_served(&mut stream, 43);
}

#[test]
fn an_api_the_broker_does_not_implement_gets_unsupported_version() {
    let kafka = EmbeddedKafka::shared();
    let mut stream = connect(kafka);
    let request = DescribeAclsRequest::default();
    stream
        .write_all(&encode_request(&request, 1, 5, None).expect("encode"))
        .expect("write");
    let response = decode_response::<DescribeAclsRequest>(read_response(&mut stream), 1).expect("decode");
    assert_eq!(response.error_code, 35);
    still_served(&mut stream, 6);
}

/// On a listener without SASL, SaslHandshake is ILLEGAL_SASL_STATE (34), as Kafka answers it, and the
/// connection goes on.
#[test]
fn sasl_handshake_on_a_plaintext_listener_is_an_illegal_sasl_state() {
    let kafka = EmbeddedKafka::shared();
    let mut stream = connect(kafka);
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    stream
        .write_all(&encode_request(&request, 1, 5, None).expect("encode"))
        .expect("write");
    let response = decode_response::<SaslHandshakeRequest>(read_response(&mut stream), 1).expect("decode");
    assert_eq!(response.error_code, 34);
    still_served(&mut stream, 6);
}

#[test]
fn frames_above_the_request_size_limit_are_refused_without_reading_them() {
    let kafka = EmbeddedKafka::shared();
    let mut stream = connect(kafka);
    // 200 MiB announced (the limit is 100 MiB): refused at the length, long before any body arrives.
    stream.write_all(&(200 * 1024 * 1024i32).to_be_bytes()).expect("write");
    assert!(closed_by_broker(&mut stream));
}

#[test]
fn read_frame_round_trip_helper_agrees_with_the_broker() {
    // The test's own framing helpers match the crate's, so the cases above test the broker, not the test.
    let frame = encode_request(&ApiVersionsRequest::default(), 0, 1, None).expect("encode");
    let payload = strip_length_prefix(frame.clone()).expect("prefix");
    assert_eq!(framed(&payload), frame.to_vec());
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut reader: &[u8] = &frame;
    let read = rt
        .block_on(read_frame(&mut reader, 1024))
        .expect("read")
        .expect("frame");
    assert_eq!(read, payload);
}

/// Random frames: a random payload, or a well-formed header of a real API and version with a random body.
fn random_frame() -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..300);
    let with_header = (
        prop_oneof![
            Just(0i16),
            Just(1),
            Just(2),
            Just(3),
            Just(8),
            Just(9),
            Just(10),
            Just(11),
            Just(18),
            Just(19),
            Just(32),
            0i16..80
        ],
        0i16..14,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(key, version, body)| {
            let mut frame = header(key, version, 7);
            frame.put_slice(&body);
            framed(&frame)
        });
    prop_oneof![raw, with_header]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_hang_or_kill_the_broker(bytes in random_frame()) {
        let kafka = EmbeddedKafka::shared();
        let mut stream = connect(kafka);
        stream.write_all(&bytes).expect("write");
        stream.shutdown(Shutdown::Write).expect("half-close");
        // Whatever the broker makes of it (an answer, an error response, a closed connection), it finishes.
        let mut sink = Vec::new();
        let finished = match stream.read_to_end(&mut sink) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        prop_assert!(finished, "the broker did not finish with {} bytes", bytes.len());
        let mut probe = connect(kafka);
        still_served(&mut probe, 99);
    }
}
