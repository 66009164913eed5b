//! Consumer-group operations, for both protocols of a Kafka 4 cluster: `classic` (JoinGroup/SyncGroup,
//! described with DescribeGroups) and `consumer` (KIP-848, described with ConsumerGroupDescribe).
//! Every operation on many groups finds their coordinators in one batched FindCoordinator and then sends
//! one request per coordinator, all in flight together.
//!
//! - `state`: the group types and states Kafka names (`GroupType`, `GroupState`);
//! - `coordinators`: FindCoordinator batching and caching, and running a request on each coordinator;
//! - `list`: ListGroups, with group types and states;
//! - `describe`: DescribeGroups and ConsumerGroupDescribe, then the newer group types' describes
//!   (`describe_share`: ShareGroupDescribe; `describe_streams`: StreamsGroupDescribe, KIP-1071), decoded into
//!   one description;
//! - `offsets`: committed offsets (OffsetFetch, OffsetCommit, OffsetDelete);
//! - `share_offsets`: share groups' start offsets and lag (DescribeShareGroupOffsets), and moving them
//!   (AlterShareGroupOffsets);
//! - `admin`: DeleteGroups, and removing static members (LeaveGroup);
//! - `configs`: a group's configs (config resource GROUP): DescribeConfigs and IncrementalAlterConfigs.

mod admin;
mod configs;
mod coordinators;
mod describe;
mod describe_share;
mod describe_streams;
mod list;
mod offset_fetch_response;
mod offsets;
mod share_offsets;
mod state;

pub use configs::{GROUP_RESOURCE, GroupConfigChange, explicit_group_configs};
pub use describe::{GroupDescription, MemberDescription};
pub use describe_streams::{MemberTasks, StreamsTasks, StreamsTopology, Subtopology};
pub use list::{GroupFilter, GroupListing};
pub use offsets::{CommittedOffset, GroupOffsets, offset_fetch_request, unstable_offset_backoff};
pub use share_offsets::{ShareGroupOffsets, SharePartitionOffset, start_offsets_as_committed};
pub use state::{GroupState, GroupType};
