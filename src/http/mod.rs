//! The HTTP API on hyper: accept loop with a connection cap, header-read and idle
//! timeouts, graceful shutdown. Routing and handlers live in [`routes`].

pub mod body;
pub mod idle;
pub mod routes;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use routes::HttpContext;

pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

pub async fn serve(listener: TcpListener, ctx: Arc<HttpContext>, limits: HttpLimits, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p.expect("never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(%err, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let metrics = Arc::clone(&ctx.metrics);
        let shutdown = shutdown.clone();
        let io = TokioIo::new(idle::IdleTimeout::new(stream, limits.idle_timeout));
        let header_timeout = limits.header_read_timeout;
        tasks.spawn(async move {
            metrics.http_connections.fetch_add(1, Relaxed);
            let service = service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                async move { Ok::<_, std::convert::Infallible>(routes::handle(req, peer, &ctx).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
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
            metrics.http_connections.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}
