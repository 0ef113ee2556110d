//! The accept loop every TCP listener shares: a connection cap, one task per
//! connection, and a shutdown that waits for the open connections to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Accepts until `shutdown`, with at most `max_connections` open (more wait in the
/// kernel's accept queue), running `handle` on its own task for each and counting the
/// open ones in `open`. Returns once every connection has finished.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    max_connections: usize,
    open: Arc<AtomicU64>,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
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
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%err, "{what} accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let open = Arc::clone(&open);
        let connection = handle(stream, peer);
        tasks.spawn(async move {
            open.fetch_add(1, Relaxed);
            connection.await;
            open.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// Lifts the process's soft open-file limit to its hard limit and returns the soft
/// limit now in force (`None` if it cannot be read). Many systems start processes with
/// a soft limit of 1024, fewer than the connections kairosd accepts by default.
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}
