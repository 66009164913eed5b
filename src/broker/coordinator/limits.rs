//! Kafka's limit on the strings of a request: at most 32767 bytes (`Short.MAX_VALUE`). The non-flexible
//! versions cannot encode more (an int16 length); Kafka's parser refuses more in the flexible ones ("string
//! field groupId had invalid length") and closes the connection. The group coordinator's APIs are checked
//! here after decoding, so that no group id, member id, protocol type or commit metadata ever reaches the
//! group log larger than that: every record then stays far below what the log's replay accepts. The transaction
//! coordinator's APIs likewise, for its journal.

use kafka_protocol::messages::RequestKind;
use kafka_protocol::protocol::StrBytes;

/// `Short.MAX_VALUE`: the longest string Kafka's protocol carries.
pub const MAX_STRING: usize = i16::MAX as usize;

fn opt(s: &Option<StrBytes>) -> &str {
    s.as_ref().map_or("", |s| s.as_str())
}

/// The first string field of a group request longer than Kafka allows: its name (as Kafka's schema names
/// it) and length.
pub fn oversized_string(request: &RequestKind) -> Option<(&'static str, usize)> {
    let mut fields: Vec<(&'static str, &str)> = Vec::new();
    match request {
        RequestKind::JoinGroup(r) => {
            fields.extend([
                ("groupId", r.group_id.0.as_str()),
                ("memberId", r.member_id.as_str()),
                ("groupInstanceId", opt(&r.group_instance_id)),
                ("protocolType", r.protocol_type.as_str()),
                ("reason", opt(&r.reason)),
            ]);
            fields.extend(r.protocols.iter().map(|p| ("name", p.name.as_str())));
        }
        RequestKind::SyncGroup(r) => {
            fields.extend([
                ("groupId", r.group_id.0.as_str()),
                ("memberId", r.member_id.as_str()),
                ("groupInstanceId", opt(&r.group_instance_id)),
                ("protocolType", opt(&r.protocol_type)),
                ("protocolName", opt(&r.protocol_name)),
            ]);
            fields.extend(r.assignments.iter().map(|a| ("memberId", a.member_id.as_str())));
        }
        RequestKind::Heartbeat(r) => fields.extend([
            ("groupId", r.group_id.0.as_str()),
            ("memberId", r.member_id.as_str()),
            ("groupInstanceId", opt(&r.group_instance_id)),
        ]),
        RequestKind::LeaveGroup(r) => {
            fields.extend([("groupId", r.group_id.0.as_str()), ("memberId", r.member_id.as_str())]);
            for m in &r.members {
                fields.extend([
                    ("memberId", m.member_id.as_str()),
                    ("groupInstanceId", opt(&m.group_instance_id)),
                    ("reason", opt(&m.reason)),
                ]);
            }
        }
        RequestKind::OffsetCommit(r) => {
            fields.extend([
                ("groupId", r.group_id.0.as_str()),
                ("memberId", r.member_id.as_str()),
                ("groupInstanceId", opt(&r.group_instance_id)),
            ]);
            for t in &r.topics {
                fields.push(("name", t.name.0.as_str()));
                fields.extend(
                    t.partitions
                        .iter()
                        .map(|p| ("committedMetadata", opt(&p.committed_metadata))),
                );
            }
        }
        RequestKind::OffsetFetch(r) => {
            fields.push(("groupId", r.group_id.0.as_str()));
            fields.extend(r.topics.iter().flatten().map(|t| ("name", t.name.0.as_str())));
            for g in &r.groups {
                fields.extend([("groupId", g.group_id.0.as_str()), ("memberId", opt(&g.member_id))]);
                fields.extend(g.topics.iter().flatten().map(|t| ("name", t.name.0.as_str())));
            }
        }
        RequestKind::OffsetDelete(r) => {
            fields.push(("groupId", r.group_id.0.as_str()));
            fields.extend(r.topics.iter().map(|t| ("name", t.name.0.as_str())));
        }
        RequestKind::DescribeGroups(r) => fields.extend(r.groups.iter().map(|g| ("groups", g.0.as_str()))),
        RequestKind::DeleteGroups(r) => fields.extend(r.groups_names.iter().map(|g| ("groupsNames", g.0.as_str()))),
        RequestKind::ListGroups(r) => {
            fields.extend(r.states_filter.iter().map(|s| ("statesFilter", s.as_str())));
            fields.extend(r.types_filter.iter().map(|s| ("typesFilter", s.as_str())));
        }
        RequestKind::FindCoordinator(r) => {
            fields.push(("key", r.key.as_str()));
            fields.extend(r.coordinator_keys.iter().map(|k| ("coordinatorKeys", k.as_str())));
        }
        // The transaction coordinator's: what reaches its journal.
        RequestKind::InitProducerId(r) => fields.push((
            "transactionalId",
            r.transactional_id.as_ref().map_or("", |t| t.0.as_str()),
        )),
        RequestKind::AddPartitionsToTxn(r) => {
            fields.push(("transactionalId", r.v3_and_below_transactional_id.0.as_str()));
            fields.extend(r.v3_and_below_topics.iter().map(|t| ("name", t.name.0.as_str())));
        }
        RequestKind::AddOffsetsToTxn(r) => fields.extend([
            ("transactionalId", r.transactional_id.0.as_str()),
            ("groupId", r.group_id.0.as_str()),
        ]),
        RequestKind::TxnOffsetCommit(r) => {
            fields.extend([
                ("transactionalId", r.transactional_id.0.as_str()),
                ("groupId", r.group_id.0.as_str()),
                ("memberId", r.member_id.as_str()),
                ("groupInstanceId", opt(&r.group_instance_id)),
            ]);
            for t in &r.topics {
                fields.push(("name", t.name.0.as_str()));
                fields.extend(
                    t.partitions
                        .iter()
                        .map(|p| ("committedMetadata", opt(&p.committed_metadata))),
                );
            }
        }
        RequestKind::EndTxn(r) => fields.push(("transactionalId", r.transactional_id.0.as_str())),
        _ => {}
    }
    fields
        .into_iter()
        .find(|(_, value)| value.len() > MAX_STRING)
        .map(|(name, value)| (name, value.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest};

    #[test]
    fn a_group_id_of_32767_bytes_passes_and_one_more_does_not() {
        let request = |len: usize| {
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default().with_group_id(GroupId(StrBytes::from_string("g".repeat(len)))),
            )
        };
        assert_eq!(oversized_string(&request(MAX_STRING)), None);
        assert_eq!(
            oversized_string(&request(MAX_STRING + 1)),
            Some(("groupId", MAX_STRING + 1))
        );
    }
}
