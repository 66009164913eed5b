//! Which APIs and versions the broker answers: its own (below) and the group coordinator's
//! (`GroupCoordinator::APIS`). ApiVersions announces exactly this list.

use super::coordinator::GroupCoordinator;
use super::transactions::api::APIS as TRANSACTION_APIS;
use kafka_protocol::messages::ApiKey;

/// APIs answered by the broker itself, with the versions implemented (min, max).
pub const BROKER_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
    // Answered by the connection itself (`authenticate`), before any request reaches the dispatch.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// Every API and version range the broker answers, in API key order.
pub fn supported() -> Vec<(ApiKey, i16, i16)> {
    let mut all: Vec<(ApiKey, i16, i16)> = BROKER_APIS.iter().chain(TRANSACTION_APIS).copied().collect();
    for api in GroupCoordinator::APIS {
        if !all.iter().any(|(key, _, _)| key == &api.0) {
            all.push(*api);
        }
    }
    all.sort_by_key(|(key, _, _)| *key as i16);
    all
}

/// The versions of `key` the broker answers, if any.
pub fn versions(key: ApiKey) -> Option<(i16, i16)> {
    BROKER_APIS
        .iter()
        .chain(TRANSACTION_APIS)
        .chain(GroupCoordinator::APIS.iter())
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// Whether the broker's handlers answer `key` (its own APIs and the transaction coordinator's).
pub fn is_handler_api(key: ApiKey) -> bool {
    BROKER_APIS.iter().chain(TRANSACTION_APIS).any(|(k, _, _)| *k == key)
}

/// Whether the group coordinator answers `key`.
pub fn is_coordinator_api(key: ApiKey) -> bool {
    GroupCoordinator::APIS.iter().any(|(k, _, _)| *k == key)
}
