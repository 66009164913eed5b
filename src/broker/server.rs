//! The accept loop of each listener: one task per connection; a background task that fsyncs the logs every
//! flush interval and applies retention; graceful shutdown (stop accepting, let connections finish, wait).

use super::connection;
use super::log::Store;
use super::{Listener, Node};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// How often retention runs (when configured).
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);

pub async fn run(socket: TcpListener, listener: Arc<Listener>, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => match node.connection_limits.try_acquire(peer.ip()) {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        let span = tracing::info_span!("connection", %peer);
                        let serve = connection::serve(stream, peer, node.clone(), listener.clone(), stop.clone());
                        connections.spawn(
                            async move {
                                serve.await;
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                    Err(refused) => {
                        // Closed at once, as Kafka closes a connection over its quota.
                        node.metrics.closed(refused.reason());
                        tracing::debug!(%peer, reason = refused.reason(), "refusing a connection");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(socket);
    let grace = node.config.shutdown_grace + Duration::from_secs(1);
    if tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            left = connections.len(),
            "connections still busy after the shutdown grace: closing them"
        );
        connections.shutdown().await;
    }
}

pub async fn flush_loop(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut flush = tokio::time::interval(node.config.flush_interval);
    let mut retention = tokio::time::interval(RETENTION_INTERVAL);
    loop {
        tokio::select! {
            _ = flush.tick() => sync_all(&node.store).await,
            _ = retention.tick() => node.store.apply_retention(crate::broker::log::partition::now_ms()),
            _ = stop.changed() => return,
        }
    }
}

/// fsyncs every partition with unsynced writes, off the async threads (a failure takes the log offline).
pub async fn sync_all(store: &Store) {
    store.sync(store.unsynced_files()).await;
}
