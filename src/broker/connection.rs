//! One client connection: frames are read, handled and answered strictly in order (like Kafka, which mutes
//! a connection until its response is sent), so a waiting Fetch or JoinGroup holds back the requests behind
//! it on the same connection and no other. A malformed frame closes only this connection.

use super::Node;
use super::dispatch::{self, Outcome};
use crate::wire::{WireError, read_frame};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub async fn serve(stream: TcpStream, peer: SocketAddr, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    node.metrics.connections.inc();
    let reason = run(stream, peer, &node, &mut stop).await;
    node.metrics.connections.dec();
    match reason {
        Closed::ByClient | Closed::Shutdown => tracing::debug!(%peer, ?reason, "connection closed"),
        Closed::Error(kind, message) => {
            node.metrics.closed(kind);
            tracing::info!(%peer, reason = kind, message, "closing connection");
        }
    }
}

#[derive(Debug)]
enum Closed {
    ByClient,
    Shutdown,
    /// A bounded kind for metrics, and what happened.
    Error(&'static str, String),
}

async fn run(stream: TcpStream, peer: SocketAddr, node: &Node, stop: &mut watch::Receiver<bool>) -> Closed {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    loop {
        if *stop.borrow() {
            return Closed::Shutdown;
        }
        let frame = tokio::select! {
            frame = tokio::time::timeout(node.config.idle_timeout, read_frame(&mut read, node.config.max_request_bytes)) => frame,
            _ = stop.changed() => return Closed::Shutdown,
        };
        let frame = match frame {
            Err(_) => return Closed::Error("idle", format!("no request for {:?}", node.config.idle_timeout)),
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return Closed::ByClient,
            Ok(Err(WireError::FrameTooLarge { size, limit })) => {
                return Closed::Error("too_large", format!("request of {size} bytes exceeds {limit}"));
            }
            Ok(Err(WireError::NegativeLength(n))) => return Closed::Error("malformed", format!("frame length {n}")),
            Ok(Err(e)) => return Closed::Error("io", e.to_string()),
        };
        node.metrics.bytes_in.inc_by(frame.len() as u64 + 4);
        // A request in progress may finish within the shutdown grace; then the connection closes.
        let handling = dispatch::handle(node, frame, Some(peer));
        tokio::pin!(handling);
        let outcome = tokio::select! {
            outcome = &mut handling => outcome,
            _ = stop.changed() => match tokio::time::timeout(node.config.shutdown_grace, &mut handling).await {
                Ok(outcome) => outcome,
                Err(_) => return Closed::Shutdown,
            },
        };
        match outcome {
            Outcome::Respond(bytes) => {
                node.metrics.bytes_out.inc_by(bytes.len() as u64);
                if let Err(e) = write.write_all(&bytes).await {
                    return Closed::Error("io", e.to_string());
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(message) => return Closed::Error("malformed", message),
        }
    }
}
