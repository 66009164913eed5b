//! The operator's HTTP endpoints: `/healthz` (the process serves), `/readyz` (it is ready to do its job:
//! reconciling as the leader, or standing by), `/metrics` (Prometheus text format, streamed: at 5,000 groups ×
//! 50 partitions the text is tens of MiB, and it is written out in chunks as it is encoded, never held whole).

use crate::telemetry::metrics::Metrics;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Anything that renders its metrics in Prometheus' text format: the operator's and the embedded broker's.
pub trait MetricsText: Send + Sync + 'static {
    /// Writes the text into `out`; an error from `out` (the scraper went away) stops the encoding.
    fn encode_into(&self, out: &mut dyn std::fmt::Write) -> std::fmt::Result;

    /// The whole text at once (tests, small registries).
    fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.encode_into(&mut out);
        out
    }
}

impl MetricsText for Metrics {
    fn encode_into(&self, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
        Metrics::encode_into(self, out)
    }
}

/// Bytes per chunk of a streamed scrape.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks encoded ahead of the scraper: with the chunk size, what a scrape holds in memory at most.
const CHUNKS_AHEAD: usize = 4;

/// `fmt::Write` into chunks sent to the response body; fails once the body is gone.
struct ChunkWriter {
    buffer: String,
    chunks: tokio::sync::mpsc::Sender<Bytes>,
}

impl ChunkWriter {
    fn flush(&mut self) -> std::fmt::Result {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, String::with_capacity(CHUNK_BYTES)));
        self.chunks.blocking_send(chunk).map_err(|_| std::fmt::Error)
    }
}

impl std::fmt::Write for ChunkWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buffer.push_str(s);
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }
}

/// The metrics text as a body written while it is encoded, on a blocking thread (the encoding is CPU work),
/// at most `CHUNKS_AHEAD` chunks ahead of the scraper.
fn streamed_metrics<M: MetricsText>(metrics: Arc<M>) -> UnsyncBoxBody<Bytes, std::convert::Infallible> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter {
            buffer: String::with_capacity(CHUNK_BYTES),
            chunks: tx,
        };
        if metrics.encode_into(&mut writer).is_ok() {
            let _ = writer.flush();
        }
    });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(Frame::data(chunk)), rx))
    });
    StreamBody::new(frames).boxed_unsync()
}

#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Binds `addr` and serves until the task is dropped. Returns the bound address (port 0 picks one).
pub async fn serve<M: MetricsText>(
    addr: SocketAddr,
    metrics: Arc<M>,
    health: Arc<Health>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let response = respond(req.uri().path(), &metrics, &health);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn respond<M: MetricsText>(
    path: &str,
    metrics: &Arc<M>,
    health: &Health,
) -> Response<UnsyncBoxBody<Bytes, std::convert::Infallible>> {
    let text = |body: &'static str| Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync();
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", text("ok\n")),
        "/readyz" if health.is_ready() => (StatusCode::OK, "text/plain", text("ready\n")),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", text("not ready\n")),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            streamed_metrics(metrics.clone()),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", text("not found\n")),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
