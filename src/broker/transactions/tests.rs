//! The transaction coordinator against a real store and group coordinator (in memory, or in a data dir for the
//! restart cases): the states and error codes Kafka's `TransactionCoordinator` gives.

use super::coordinator::TransactionCoordinator;
use super::state::PendingOffset;
use crate::broker::coordinator::{CoordinatorConfig, GroupCoordinator};
use crate::broker::log::batch::BatchHeader;
use crate::broker::log::{Store, StoreConfig, lock};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

struct Broker {
    store: Arc<Store>,
    groups: Arc<GroupCoordinator>,
    txns: Arc<TransactionCoordinator>,
}

async fn broker(dir: Option<&Path>) -> Broker {
    let store = Arc::new(
        Store::open(
            StoreConfig {
                data_dir: dir.map(|d| d.join("log")),
                segment_bytes: 1 << 20,
                retention_bytes: None,
                retention_ms: None,
                max_partitions: 100,
                fail_fsync_while: None,
            },
            "test".into(),
        )
        .expect("store"),
    );
    if store.topic("t").is_none() {
        store.create_topic("t", 2, BTreeMap::new(), false).expect("topic");
    }
    let groups = GroupCoordinator::new(CoordinatorConfig {
        data_dir: dir.map(|d| d.join("groups")),
        ..CoordinatorConfig::default()
    })
    .expect("groups");
    let txns = TransactionCoordinator::open(
        dir.map(|d| d.join("transactions")).as_deref(),
        store.clone(),
        groups.clone(),
        super::DEFAULT_MAX_TIMEOUT_MS,
    )
    .expect("transactions");
    txns.recover().await;
    Broker { store, groups, txns }
}

/// Appends a transactional data batch of `producer` to partition `p` of "t", as Produce does (verified first).
fn produce(b: &Broker, p: i32, id: i64, epoch: i16, sequence: i32) -> Result<i64, ResponseError> {
    let partition = b.store.topic("t").and_then(|t| t.partition(p)).expect("partition");
    let mut log = lock(&partition);
    b.txns.verify_produce(id, epoch, "t", p)?;
    let bytes = crate::broker::log::batch::tests::encoded_batch_with(&["v"], Some((id, epoch, sequence)), true);
    let header = BatchHeader::parse_checked(&bytes).expect("batch");
    match log.append(&header, &bytes) {
        Ok(crate::broker::log::partition::Appended::New(offset)) => Ok(offset),
        other => panic!("append: {other:?}"),
    }
}

fn lso(b: &Broker, p: i32) -> (i64, i64) {
    let partition = b.store.topic("t").and_then(|t| t.partition(p)).expect("partition");
    let log = lock(&partition);
    (log.last_stable_offset(), log.end_offset())
}

fn offset(group: &str, o: i64) -> PendingOffset {
    PendingOffset {
        group: group.into(),
        topic: "t".into(),
        partition: 0,
        offset: o,
        leader_epoch: -1,
        metadata: None,
    }
}

#[tokio::test]
async fn a_committed_transaction_ends_with_markers_and_commits_its_offsets() {
    let b = broker(None).await;
    let (id, epoch) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init");
    assert_eq!(epoch, 0);
    b.txns
        .add_partitions("tx", id, epoch, &[("t".into(), 0), ("t".into(), 1)])
        .await
        .expect("add partitions");
    assert_eq!(produce(&b, 0, id, epoch, 0), Ok(0));
    assert_eq!(lso(&b, 0), (0, 1), "the open transaction holds the stable offset");
    b.txns.add_offsets("tx", id, epoch, "g").await.expect("add offsets");
    b.txns
        .txn_offset_commit("tx", id, epoch, "g", vec![offset("g", 5)])
        .await
        .expect("txn offset commit");
    assert!(b.groups.has_pending_txn_offset("g", "t", 0));
    b.txns.end_txn("tx", id, epoch, true).await.expect("commit");
    assert_eq!(lso(&b, 0), (2, 2), "data and its COMMIT marker, all stable");
    assert_eq!(lso(&b, 1), (1, 1), "a marker also where the transaction wrote nothing");
    assert!(!b.groups.has_pending_txn_offset("g", "t", 0));
    assert_eq!(b.txns.describe("tx").expect("state").state.name(), "CompleteCommit");
    // A retry of the same decision is answered as before; the other decision is refused.
    assert_eq!(b.txns.end_txn("tx", id, epoch, true).await, Ok(()));
    assert_eq!(
        b.txns.end_txn("tx", id, epoch, false).await,
        Err(ResponseError::InvalidTxnState)
    );
}

#[tokio::test]
async fn an_aborted_transaction_drops_its_offsets_and_is_listed_for_read_committed_fetches() {
    let b = broker(None).await;
    let (id, epoch) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init");
    b.txns
        .add_partitions("tx", id, epoch, &[("t".into(), 0)])
        .await
        .expect("add");
    produce(&b, 0, id, epoch, 0).expect("produce");
    produce(&b, 0, id, epoch, 1).expect("produce");
    b.txns.add_offsets("tx", id, epoch, "g").await.expect("add offsets");
    b.txns
        .txn_offset_commit("tx", id, epoch, "g", vec![offset("g", 5)])
        .await
        .expect("txn offset commit");
    b.txns.end_txn("tx", id, epoch, false).await.expect("abort");
    assert!(!b.groups.has_pending_txn_offset("g", "t", 0));
    let partition = b.store.topic("t").and_then(|t| t.partition(0)).expect("partition");
    let read = lock(&partition).read(0, 1 << 20, true, true).expect("read");
    assert_eq!(read.last_stable_offset, 3);
    assert_eq!(read.aborted.len(), 1);
    assert_eq!((read.aborted[0].producer_id, read.aborted[0].first_offset), (id, 0));
    assert_eq!(
        b.txns.end_txn("tx", id, epoch, true).await,
        Err(ResponseError::InvalidTxnState),
        "no transaction is open"
    );
}

#[tokio::test]
async fn a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction() {
    let b = broker(None).await;
    let (id, first) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init");
    b.txns
        .add_partitions("tx", id, first, &[("t".into(), 0)])
        .await
        .expect("add");
    produce(&b, 0, id, first, 0).expect("produce");
    let (same_id, second) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init again");
    assert_eq!((same_id, second), (id, first + 1));
    assert_eq!(lso(&b, 0), (2, 2), "the open transaction was aborted");
    assert_eq!(
        b.txns.end_txn("tx", id, first, true).await,
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        b.txns.add_partitions("tx", id, first, &[("t".into(), 1)]).await,
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(produce(&b, 0, id, first, 1), Err(ResponseError::InvalidProducerEpoch));
    assert_eq!(
        b.txns.add_partitions("tx", id + 1, second, &[("t".into(), 1)]).await,
        Err(ResponseError::InvalidProducerIdMapping)
    );
}

#[tokio::test]
async fn init_producer_id_retried_with_the_previous_epoch_gets_the_current_one_and_others_are_fenced() {
    let b = broker(None).await;
    let (id, e0) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init");
    // KIP-360: the producer bumps its own epoch, naming it.
    let (_, e1) = b.txns.init_producer_id("tx", 60_000, id, e0).await.expect("bump");
    assert_eq!(e1, e0 + 1);
    // Its retry (the response was lost) names the old pair again: answered with the current one, no bump.
    assert_eq!(b.txns.init_producer_id("tx", 60_000, id, e0).await, Ok((id, e1)));
    assert_eq!(
        b.txns.init_producer_id("tx", 60_000, id, e0 + 7).await,
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        b.txns.init_producer_id("tx", 0, -1, -1).await,
        Err(ResponseError::InvalidTransactionTimeout)
    );
    assert_eq!(
        b.txns
            .init_producer_id("tx", super::DEFAULT_MAX_TIMEOUT_MS + 1, -1, -1)
            .await,
        Err(ResponseError::InvalidTransactionTimeout)
    );
}

#[tokio::test]
async fn data_for_a_partition_not_in_the_transaction_is_refused() {
    let b = broker(None).await;
    let (id, epoch) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init");
    assert_eq!(produce(&b, 0, id, epoch, 0), Err(ResponseError::InvalidTxnState));
    b.txns
        .add_partitions("tx", id, epoch, &[("t".into(), 0)])
        .await
        .expect("add");
    assert_eq!(produce(&b, 1, id, epoch, 0), Err(ResponseError::InvalidTxnState));
    assert_eq!(produce(&b, 0, 99_999, 0, 0), Err(ResponseError::InvalidTxnState));
    assert_eq!(
        b.txns
            .txn_offset_commit("tx", id, epoch, "g", vec![offset("g", 1)])
            .await,
        Err(ResponseError::InvalidTxnState),
        "offsets of a group the transaction did not add"
    );
}

#[tokio::test]
async fn a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let b = broker(None).await;
    let (id, epoch) = b.txns.init_producer_id("tx", 1, -1, -1).await.expect("init");
    b.txns
        .add_partitions("tx", id, epoch, &[("t".into(), 0)])
        .await
        .expect("add");
    produce(&b, 0, id, epoch, 0).expect("produce");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    b.txns.tick().await;
    let state = b.txns.describe("tx").expect("state");
    assert_eq!(state.state.name(), "CompleteAbort");
    assert_eq!(state.producer_epoch, epoch + 1);
    assert_eq!(lso(&b, 0), (2, 2));
    let (open, timed_out) = b.txns.metrics();
    assert_eq!((open.get(), timed_out.get()), (0, 1));
    assert_eq!(
        b.txns.end_txn("tx", id, epoch, true).await,
        Err(ResponseError::ProducerFenced)
    );
}

#[tokio::test]
async fn open_and_decided_transactions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (id, epoch) = {
        let b = broker(Some(dir.path())).await;
        let (id, epoch) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init");
        b.txns
            .add_partitions("tx", id, epoch, &[("t".into(), 0)])
            .await
            .expect("add");
        produce(&b, 0, id, epoch, 0).expect("produce");
        b.txns.add_offsets("tx", id, epoch, "g").await.expect("add offsets");
        b.txns
            .txn_offset_commit("tx", id, epoch, "g", vec![offset("g", 1)])
            .await
            .expect("txn offset commit");
        b.groups.shutdown();
        (id, epoch)
    };
    let b = broker(Some(dir.path())).await;
    assert_eq!(b.txns.describe("tx").expect("state").state.name(), "Ongoing");
    assert_eq!(lso(&b, 0), (0, 1), "the open transaction still holds the stable offset");
    assert!(
        b.groups.has_pending_txn_offset("g", "t", 0),
        "its offset is still pending"
    );
    // The producer goes on after the restart and commits.
    b.txns
        .end_txn("tx", id, epoch, true)
        .await
        .expect("commit after the restart");
    assert_eq!(lso(&b, 0), (2, 2));
    assert!(!b.groups.has_pending_txn_offset("g", "t", 0));
    b.groups.shutdown();
    drop(b);
    let b = broker(Some(dir.path())).await;
    assert_eq!(b.txns.describe("tx").expect("state").state.name(), "CompleteCommit");
    assert_eq!(lso(&b, 0), (2, 2), "the marker was recovered from the log");
    let (next_id, _) = b.txns.init_producer_id("other", 60_000, -1, -1).await.expect("init");
    assert!(next_id > id, "producer ids are not handed out twice");
}

#[tokio::test]
async fn a_transaction_decided_before_a_crash_is_completed_at_the_next_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (id, epoch) = {
        let b = broker(Some(dir.path())).await;
        let (id, epoch) = b.txns.init_producer_id("tx", 60_000, -1, -1).await.expect("init");
        b.txns
            .add_partitions("tx", id, epoch, &[("t".into(), 0)])
            .await
            .expect("add");
        produce(&b, 0, id, epoch, 0).expect("produce");
        b.groups.shutdown();
        (id, epoch)
    };
    // What the journal holds when the process dies between PrepareCommit and the markers.
    {
        let (mut journal, state) = super::journal::TxnJournal::open(&dir.path().join("transactions")).expect("journal");
        let mut decided = state["tx"].clone();
        decided.state = super::state::TxnState::PrepareCommit;
        journal.write(&decided).expect("write");
    }
    let b = broker(Some(dir.path())).await;
    let state = b.txns.describe("tx").expect("state");
    assert_eq!(state.state.name(), "CompleteCommit");
    assert_eq!((state.producer_id, state.producer_epoch), (id, epoch));
    assert_eq!(lso(&b, 0), (2, 2), "the COMMIT marker was written at the start");
}
