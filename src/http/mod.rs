//! The HTTP API on hyper: accept loop with a connection cap, header-read and idle
//! timeouts, graceful shutdown. [`routes`] dispatches to one handler file per endpoint
//! group: [`ingest`], [`query`], [`delete`], [`metadata`], [`health`]; [`response`]
//! builds KairosDB's headers, errors and gzip.

pub mod body;
pub mod client;
pub mod connection;
pub mod delete;
pub mod health;
pub mod idle;
pub mod import;
pub mod import_jobs;
pub mod ingest;
pub mod metadata;
pub mod metadata_service;
pub mod multipart;
pub mod quarantine;
pub mod query;
pub mod response;
pub mod retention;
pub mod routes;
pub mod sources;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::listener::accept_loop;

pub use routes::HttpContext;

pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Option<Duration>,
}

pub async fn serve(listener: TcpListener, ctx: Arc<HttpContext>, limits: HttpLimits, shutdown: CancellationToken) {
    let open = Arc::clone(&ctx.metrics.http_connections);
    let token = shutdown.clone();
    let HttpLimits {
        max_connections,
        header_read_timeout,
        idle_timeout,
        keepalive,
    } = limits;
    accept_loop(
        listener,
        "HTTP",
        max_connections,
        keepalive,
        open,
        shutdown,
        move |stream, peer| {
            let ctx = Arc::clone(&ctx);
            let shutdown = token.clone();
            async move {
                let conn = Arc::new(connection::Connection::new(peer, ctx.series_cache));
                let service = service_fn(move |req| {
                    let ctx = Arc::clone(&ctx);
                    let conn = Arc::clone(&conn);
                    async move { Ok::<_, std::convert::Infallible>(routes::handle(req, &conn, &ctx).await) }
                });
                let io = TokioIo::new(idle::IdleTimeout::new(stream, idle_timeout));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_read_timeout)
                    .keep_alive(true)
                    .serve_connection(io, service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "HTTP connection ended with an error");
                }
            }
        },
    )
    .await;
}
