//! Transactions on the embedded broker (exactly-once producers, `read_committed` consumers, Kafka Streams
//! `exactly_once_v2`): `state` is one transactional id's data, `journal` its durable log, `coordinator` the
//! coordinator after Kafka's `TransactionCoordinator`, `api` the wire APIs. What a partition knows of transactions
//! (open ones, aborted ones, the last stable offset, markers) is in `log/transactions.rs`.

pub mod api;
mod coordinator;
mod journal;
mod state;
#[cfg(test)]
mod tests;

pub use coordinator::{DEFAULT_MAX_TIMEOUT_MS, TransactionCoordinator};

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often timed-out transactions are looked for (Kafka: `transaction.abort.timed.out.transaction.cleanup.interval.ms`,
/// 10 s; sooner here, it costs one pass over the ids).
const TIMER_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the coordinator's timer until `stop`.
pub async fn run_timer(coordinator: Arc<TransactionCoordinator>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TIMER_INTERVAL);
    loop {
        tokio::select! {
            _ = interval.tick() => coordinator.tick().await,
            _ = stop.changed() => return,
        }
    }
}
