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
///
/// With `keepalive`, each connection is probed after that long without traffic: an
/// agent that vanished (power loss, a NAT that forgot it, a client killed mid-handshake
/// in a flood) would otherwise hold one of the `max_connections` slots forever, since a
/// metrics agent may legitimately stay silent between sends.
#[allow(clippy::too_many_arguments)]
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    max_connections: usize,
    keepalive: Option<Duration>,
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
        if let Some(idle) = keepalive {
            if let Err(err) = set_keepalive(&stream, idle) {
                tracing::debug!(%peer, %err, "{what}: could not enable TCP keepalive");
            }
        }
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

/// Turns on TCP keepalive: the first probe after `idle` without traffic, then three more
/// a sixth of that apart (at least 1 s), so a dead peer is noticed within 1.5 × `idle`.
fn set_keepalive(stream: &TcpStream, idle: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let secs = |d: Duration| d.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
    let options = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs(idle)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs(idle / 6)),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    ];
    for (level, name, value) in options {
        // SAFETY: `fd` is an open socket owned by `stream` for the whole call, and the
        // option value is a c_int whose size is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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
