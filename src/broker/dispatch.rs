//! From a request frame to a response frame: the header is read first (API key, version, correlation id),
//! versions the broker does not answer get UNSUPPORTED_VERSION, the body is decoded with `kafka-protocol`
//! and routed to the broker's handlers or to the group coordinator. Anything that cannot be understood well
//! enough to answer closes the connection, as Kafka does; nothing here panics on input.

use super::apis;
use super::auth::Principal;
use super::authorize::{self, Denied};
use super::coordinator::ClientInfo;
use super::handlers::{self, Handled};
use super::{Endpoint, Node};
use crate::wire::{Api, encode_response_kind};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::Decodable;
use std::net::SocketAddr;
use std::time::Instant;

/// What the connection does after a request.
#[derive(Debug)]
pub enum Outcome {
    /// Send this frame (length prefix included).
    Respond(Bytes),
    /// Send this frame, then close the connection (a failed authentication); the text says why.
    RespondAndClose(Bytes, String),
    /// Send nothing (a Produce with acks=0).
    NoResponse,
    /// Close the connection; the text says why (for the log).
    Close(String),
}

/// Who sends a request, through which listener.
pub struct Caller<'a> {
    pub peer: Option<SocketAddr>,
    /// What the listener advertises (Metadata, FindCoordinator answer with it).
    pub endpoint: &'a Endpoint,
    pub principal: &'a Principal,
}

/// A decoded request's context: its header and version, and where it came from.
pub struct Request<'a> {
    pub header: RequestHeader,
    pub version: i16,
    pub endpoint: &'a Endpoint,
    /// What the principal may name (None: everything), for handlers that authorize per item themselves.
    pub allow: Option<&'a super::auth::Allow>,
}

/// Handles one request frame (without its length prefix).
pub async fn handle(node: &Node, frame: Bytes, caller: &Caller<'_>) -> Outcome {
    let started = Instant::now();
    if frame.len() < 8 {
        return Outcome::Close(format!("a {}-byte frame cannot hold a request header", frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Outcome::Close(format!("unknown API key {api_key} (correlation id {correlation_id})"));
    };
    let mut body = frame;
    let header = match RequestHeader::decode(&mut body, key.request_header_version(version)) {
        Ok(header) => header,
        Err(e) => return Outcome::Close(format!("{} v{version} request header: {e}", Api(api_key))),
    };
    let outcome = if key == ApiKey::ApiVersions {
        api_versions(&header, version, &mut body)
    } else {
        match apis::versions(key) {
            Some((min, max)) if (min..=max).contains(&version) => {
                dispatch(node, key, header, version, body, caller).await
            }
            _ => unsupported(key, version, correlation_id),
        }
    };
    let elapsed = started.elapsed();
    node.metrics.observe(&format!("{key:?}"), elapsed.as_secs_f64());
    tracing::debug!(api = ?key, version, correlation_id, elapsed_us = elapsed.as_micros() as u64, "request");
    outcome
}

async fn dispatch(
    node: &Node,
    key: ApiKey,
    header: RequestHeader,
    version: i16,
    mut body: Bytes,
    caller: &Caller<'_>,
) -> Outcome {
    let mut request = match RequestKind::decode(key, &mut body, version) {
        Ok(request) => request,
        Err(e) => return Outcome::Close(format!("{key:?} v{version} request body: {e:#}")),
    };
    if let Some((field, len)) = super::coordinator::limits::oversized_string(&request) {
        // What Kafka's parser says of such a request before it closes the connection.
        return Outcome::Close(format!(
            "{key:?} v{version} request body: string field {field} had invalid length {len}"
        ));
    }
    let correlation_id = header.correlation_id;
    let allow = caller.principal.allow.as_deref();
    let denied = match allow {
        Some(allow) => authorize::filter(node, allow, &mut request, version),
        None => Denied::Nothing,
    };
    if matches!(denied, Denied::Group | Denied::Topic) {
        let refused = if matches!(denied, Denied::Topic) {
            kafka_protocol::ResponseError::TopicAuthorizationFailed
        } else {
            authorize::GROUP_REFUSED
        };
        tracing::debug!(api = ?key, principal = caller.principal.name, error = ?refused, "authorization failed");
        return match error_response(key, refused.code()) {
            Some(response) => encode(
                key,
                &response,
                version,
                correlation_id,
                key.response_header_version(version),
            ),
            None => Outcome::Close(format!("{key:?}: group authorization failed")),
        };
    }
    let context = Request {
        header,
        version,
        endpoint: caller.endpoint,
        allow,
    };
    let mut response = if apis::is_handler_api(key) {
        match handlers::handle(node, &context, request).await {
            Handled::Response(response) => *response,
            Handled::NoResponse => return Outcome::NoResponse,
            Handled::NotMine => return unsupported(key, version, correlation_id),
        }
    } else if apis::is_coordinator_api(key) {
        let client = ClientInfo::new(context.header.client_id.as_deref(), caller.peer);
        node.coordinator
            .handle_from(request, version, &client, node.store.as_ref())
            .await
    } else {
        // versions() only names APIs of the two lists above
        return unsupported(key, version, correlation_id);
    };
    if let Some(allow) = allow {
        authorize::restore(allow, &mut response, denied);
    }
    encode(
        key,
        &response,
        version,
        correlation_id,
        key.response_header_version(version),
    )
}

fn encode(key: ApiKey, response: &ResponseKind, version: i16, correlation_id: i32, header_version: i16) -> Outcome {
    match encode_response_kind(key as i16, response, version, correlation_id, header_version) {
        Ok(frame) => Outcome::Respond(frame),
        Err(e) => {
            tracing::error!(api = ?key, version, error = %e, "cannot encode a response");
            Outcome::Close(e.to_string())
        }
    }
}

/// ApiVersions is answered at any version: one the broker does not know gets error 35 and the supported
/// list in a v0 body, so that the client can retry with a version both sides know (KIP-511). Its response
/// header is always v0.
fn api_versions(header: &RequestHeader, version: i16, body: &mut Bytes) -> Outcome {
    let (min, max) = apis::versions(ApiKey::ApiVersions).unwrap_or((0, 0));
    if !(min..=max).contains(&version) {
        let response = handlers::cluster::api_versions(ResponseError::UnsupportedVersion.code());
        return encode(
            ApiKey::ApiVersions,
            &ResponseKind::ApiVersions(response),
            0,
            header.correlation_id,
            0,
        );
    }
    if let Err(e) = kafka_protocol::messages::ApiVersionsRequest::decode(body, version) {
        return Outcome::Close(format!("ApiVersions v{version} request body: {e:#}"));
    }
    let response = handlers::cluster::api_versions(0);
    encode(
        ApiKey::ApiVersions,
        &ResponseKind::ApiVersions(response),
        version,
        header.correlation_id,
        0,
    )
}

/// A known API at a version (or an API) the broker does not answer: UNSUPPORTED_VERSION in the response's
/// top-level error code where that version of the response has one. Other responses cannot carry the error,
/// so the connection is closed (Kafka does the same for requests it cannot parse).
fn unsupported(key: ApiKey, version: i16, correlation_id: i32) -> Outcome {
    let code = ResponseError::UnsupportedVersion.code();
    let Some(response) = error_response(key, code) else {
        return Outcome::Close(format!(
            "{key:?} v{version} is not supported and its response has no error code"
        ));
    };
    let header_version = key.response_header_version(version);
    let Outcome::Respond(frame) = encode_quiet(key, &response, version, correlation_id, header_version) else {
        return Outcome::Close(format!("{key:?} v{version} is not supported"));
    };
    // The field may not exist at this version (it would be dropped silently): check that the client will see it.
    let mut payload = frame.slice(4..);
    let readable = kafka_protocol::messages::ResponseHeader::decode(&mut payload, header_version)
        .ok()
        .and_then(|_| ResponseKind::decode(key, &mut payload, version).ok())
        .and_then(|decoded| top_level_error(&decoded));
    if readable == Some(code) {
        tracing::debug!(api = ?key, version, "answered UNSUPPORTED_VERSION");
        Outcome::Respond(frame)
    } else {
        Outcome::Close(format!(
            "{key:?} v{version} is not supported and its response cannot say so"
        ))
    }
}

fn encode_quiet(
    key: ApiKey,
    response: &ResponseKind,
    version: i16,
    correlation_id: i32,
    header_version: i16,
) -> Outcome {
    match encode_response_kind(key as i16, response, version, correlation_id, header_version) {
        Ok(frame) => Outcome::Respond(frame),
        Err(e) => Outcome::Close(e.to_string()),
    }
}

macro_rules! top_level_errors {
    ($($name:ident),* $(,)?) => {
        /// A default response of `key` with `code` as its top-level error, for responses that have one.
        fn error_response(key: ApiKey, code: i16) -> Option<ResponseKind> {
            let mut response = match key {
                $(ApiKey::$name => ResponseKind::$name(Default::default()),)*
                _ => return None,
            };
            match &mut response {
                $(ResponseKind::$name(r) => r.error_code = code,)*
                _ => return None,
            }
            Some(response)
        }

        fn top_level_error(response: &ResponseKind) -> Option<i16> {
            match response {
                $(ResponseKind::$name(r) => Some(r.error_code),)*
                _ => None,
            }
        }
    };
}

top_level_errors!(
    AddOffsetsToTxn,
    AddPartitionsToTxn,
    AddRaftVoter,
    AllocateProducerIds,
    AlterPartitionReassignments,
    AlterPartition,
    AlterShareGroupOffsets,
    AssignReplicasToDirs,
    BeginQuorumEpoch,
    BrokerHeartbeat,
    BrokerRegistration,
    ConsumerGroupHeartbeat,
    ControllerRegistration,
    CreateDelegationToken,
    DeleteShareGroupOffsets,
    DescribeAcls,
    DescribeClientQuotas,
    DescribeCluster,
    DescribeDelegationToken,
    DescribeLogDirs,
    DescribeQuorum,
    DescribeUserScramCredentials,
    ElectLeaders,
    EndQuorumEpoch,
    EndTxn,
    Envelope,
    ExpireDelegationToken,
    Fetch,
    FetchSnapshot,
    FindCoordinator,
    GetTelemetrySubscriptions,
    Heartbeat,
    InitProducerId,
    JoinGroup,
    LeaveGroup,
    ListConfigResources,
    ListGroups,
    ListPartitionReassignments,
    ListTransactions,
    Metadata,
    OffsetDelete,
    OffsetFetch,
    PushTelemetry,
    RemoveRaftVoter,
    RenewDelegationToken,
    SaslAuthenticate,
    SaslHandshake,
    ShareAcknowledge,
    ShareFetch,
    ShareGroupHeartbeat,
    SyncGroup,
    UnregisterBroker,
    UpdateFeatures,
    UpdateRaftVoter,
    Vote,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::coordinator::{CoordinatorConfig, GroupCoordinator};
    use crate::broker::log::{Store, StoreConfig};
    use crate::broker::{BrokerConfig, Node};
    use bytes::BufMut;
    use proptest::prelude::*;
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    fn node() -> &'static Node {
        static NODE: OnceLock<Node> = OnceLock::new();
        NODE.get_or_init(|| {
            let store = Store::open(
                StoreConfig {
                    data_dir: None,
                    segment_bytes: 1 << 20,
                    retention_bytes: None,
                    retention_ms: None,
                    max_partitions: crate::broker::log::DEFAULT_MAX_PARTITIONS,
                    fail_fsync_while: None,
                },
                "test-cluster".into(),
            )
            .expect("store");
            let store = Arc::new(store);
            let coordinator = GroupCoordinator::new(CoordinatorConfig::default()).expect("coordinator");
            let transactions = crate::broker::transactions::TransactionCoordinator::open(
                None,
                store.clone(),
                coordinator.clone(),
                crate::broker::transactions::DEFAULT_MAX_TIMEOUT_MS,
            )
            .expect("transaction coordinator");
            Node {
                config: BrokerConfig::default(),
                listeners: Vec::new(),
                users: Arc::new(crate::broker::auth::UserStore::open(None).expect("users")),
                connection_limits: crate::broker::connection_limits::ConnectionLimits::new(10, 10),
                store,
                coordinator,
                transactions,
                metrics: Default::default(),
            }
        })
    }

    /// A current-thread runtime with paused time: waits (Fetch max wait, JoinGroup) end at once when idle.
    fn runtime() -> &'static tokio::runtime::Runtime {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("runtime")
        })
    }

    fn frame(key: i16, version: i16, body: &[u8]) -> Bytes {
        let mut frame = bytes::BytesMut::new();
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(1);
        if ApiKey::try_from(key).is_ok_and(|k| k.request_header_version(version) >= 1) {
            frame.put_i16(-1); // null client id
        }
        if ApiKey::try_from(key).is_ok_and(|k| k.request_header_version(version) >= 2) {
            frame.put_u8(0); // no tagged fields
        }
        frame.put_slice(body);
        frame.freeze()
    }

    fn run(frame: Bytes) -> Outcome {
        runtime().block_on(async {
            let endpoint = crate::broker::Endpoint {
                host: "127.0.0.1".into(),
                port: 9092,
            };
            let principal = Principal::anonymous();
            let caller = Caller {
                peer: None,
                endpoint: &endpoint,
                principal: &principal,
            };
            tokio::time::timeout(Duration::from_secs(3600), handle(node(), frame, &caller))
                .await
                .unwrap_or(Outcome::Close("timed out".into()))
        })
    }

    #[test]
    fn api_versions_announces_the_coordinator_apis_too() {
        // v3 body: two empty compact strings (client software name and version), no tagged fields
        let Outcome::Respond(bytes) = run(frame(18, 3, &[1, 1, 0])) else {
            panic!("ApiVersions must be answered");
        };
        let payload = crate::wire::strip_length_prefix(bytes).expect("prefix");
        let response =
            crate::wire::decode_response::<kafka_protocol::messages::ApiVersionsRequest>(payload, 3).expect("decode");
        for (key, min, max) in GroupCoordinator::APIS {
            assert!(
                response
                    .api_keys
                    .iter()
                    .any(|k| k.api_key == *key as i16 && k.min_version == *min && k.max_version == *max),
                "{key:?} missing"
            );
        }
    }

    #[test]
    fn an_unknown_api_key_closes_the_connection() {
        assert!(matches!(run(frame(7_777, 0, &[])), Outcome::Close(_)));
    }

    /// Sends `request` at `version` through the dispatch and decodes the answer (None: no response).
    fn call<R: kafka_protocol::protocol::Request>(request: &R, version: i16) -> Option<R::Response> {
        let frame = crate::wire::encode_request(request, version, 11, Some("unit")).expect("encode");
        let payload = crate::wire::strip_length_prefix(frame).expect("prefix");
        match run(payload) {
            Outcome::Respond(bytes) => {
                let payload = crate::wire::strip_length_prefix(bytes).expect("prefix");
                Some(crate::wire::decode_response::<R>(payload, version).expect("decode"))
            }
            Outcome::NoResponse => None,
            Outcome::Close(why) | Outcome::RespondAndClose(_, why) => panic!("connection closed: {why}"),
        }
    }

    fn produce_request(topic: &str, acks: i16, batch: Bytes) -> kafka_protocol::messages::ProduceRequest {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        kafka_protocol::messages::ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(kafka_protocol::messages::TopicName(topic.to_owned().into()))
                    .with_partition_data(vec![
                        PartitionProduceData::default().with_index(0).with_records(Some(batch)),
                    ]),
            ])
    }

    fn metadata_for(topic: &str) -> kafka_protocol::messages::MetadataResponse {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        let request = kafka_protocol::messages::MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default()
                    .with_name(Some(kafka_protocol::messages::TopicName(topic.to_owned().into()))),
            ]))
            .with_allow_auto_topic_creation(true);
        call(&request, 12).expect("metadata answered")
    }

    #[test]
    fn metadata_auto_creates_a_topic_with_an_id() {
        let response = metadata_for("unit-auto-created");
        let topic = &response.topics[0];
        assert_eq!(topic.error_code, 0);
        assert_eq!(topic.partitions.len(), 1);
        assert!(!topic.topic_id.is_nil());
        assert_eq!(
            metadata_for("unit-auto-created").topics[0].topic_id,
            topic.topic_id,
            "created once"
        );
    }

    #[test]
    fn an_idempotent_retry_is_answered_with_the_first_offset_and_not_appended() {
        use crate::broker::log::batch::tests::encoded_batch;
        metadata_for("unit-idempotent");
        let id = node().store.allocate_producer_id().expect("a producer id");
        let first = encoded_batch(&["a", "b"], Some((id, 0, 0)));
        let second = encoded_batch(&["c"], Some((id, 0, 2)));
        let offset = |batch: &Bytes| {
            let response = call(&produce_request("unit-idempotent", -1, batch.clone()), 9).expect("answered");
            let partition = &response.responses[0].partition_responses[0];
            (partition.error_code, partition.base_offset)
        };
        assert_eq!(offset(&first), (0, 0));
        assert_eq!(offset(&second), (0, 2));
        assert_eq!(offset(&first), (0, 0), "a retry of the first batch");
        let gap = encoded_batch(&["z"], Some((id, 0, 7)));
        assert_eq!(offset(&gap).0, ResponseError::OutOfOrderSequenceNumber.code());
        let log = node()
            .store
            .topic("unit-idempotent")
            .and_then(|t| t.partition(0))
            .expect("partition");
        assert_eq!(crate::broker::log::lock(&log).end_offset(), 3);
    }

    #[test]
    fn acks_zero_gets_no_response_but_is_appended() {
        use crate::broker::log::batch::tests::encoded_batch;
        metadata_for("unit-acks-zero");
        let request = produce_request("unit-acks-zero", 0, encoded_batch(&["x"], None));
        assert!(call(&request, 9).is_none());
        let log = node()
            .store
            .topic("unit-acks-zero")
            .and_then(|t| t.partition(0))
            .expect("partition");
        assert_eq!(crate::broker::log::lock(&log).end_offset(), 1);
    }

    #[test]
    fn create_topics_refuses_a_replication_factor_above_one() {
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        let request = kafka_protocol::messages::CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(kafka_protocol::messages::TopicName("unit-rf3".to_owned().into()))
                .with_num_partitions(1)
                .with_replication_factor(3),
        ]);
        let response = call(&request, 7).expect("answered");
        assert_eq!(
            response.topics[0].error_code,
            ResponseError::InvalidReplicationFactor.code()
        );
        assert!(node().store.topic("unit-rf3").is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random bodies behind well-formed headers of every API the broker answers (and some it does not):
        /// each is answered or refused, never a panic.
        #[test]
        fn random_requests_never_panic(
            key in prop_oneof![
                proptest::sample::select(apis::supported().into_iter().map(|(k, _, _)| k as i16).collect::<Vec<_>>()),
                -2i16..100,
            ],
            version in -1i16..20,
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let _ = run(frame(key, version, &body));
        }

        /// Entirely random frames.
        #[test]
        fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = run(Bytes::from(bytes));
        }
    }
}
