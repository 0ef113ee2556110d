//! The TCP transport: one task per connection reads into a buffer, frames and decodes
//! what arrived into a batch, and hands the batch to the writer once per read. While the
//! writer is behind, `submit` waits and the task stops reading, which is TCP
//! backpressure on that sender alone.
//!
//! Two rules hold for every stream source:
//!
//! - **Idle with part of a frame.** A connection that holds an unfinished line or frame
//!   and sends nothing for `kairosd.telnet.idle_timeout_ms` is closed with a log line
//!   (a half-sent line is never completed by a client that went away without a FIN).
//!   A connection with nothing pending may stay idle: agents keep theirs open for days.
//! - **Shutdown drain.** On SIGTERM a connection keeps being read until its client
//!   closes it or `kairosd.shutdown.drain_timeout_ms` passes, so what a client already
//!   sent is not lost; one that has nothing pending and stays silent for [`QUIET`] is
//!   closed early, so idle agents do not hold the shutdown up.
//! - **Read buffers are bounded in total.** A connection holds a read buffer only while
//!   its client is sending: once a read drained the socket and left nothing pending, the
//!   buffer is freed and the task waits for readability holding no memory. Every buffer
//!   is charged to one budget shared by all stream sources
//!   (`kairosd.ingest.max_buffered_bytes`); a connection that finds it spent waits before
//!   reading (its client is slowed down by TCP), so 20,000 connections cost their
//!   sockets, not 20,000 × 64 KiB.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kairos_protocols::decode::Decoder;
use kairos_protocols::framing::Framer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::log_budget::LogBudget;
use super::{decode_frames, now_ms, SourceContext};
use crate::listener::accept_loop;

const READ_BUFFER: usize = 64 * 1024;

/// While draining, how long a connection with nothing pending may stay silent.
pub const QUIET: Duration = Duration::from_millis(500);

/// Accepts connections until `shutdown`, at most `max_connections` at once, each read
/// with the framer and decoder `make` returns.
pub async fn serve<F, D, M>(
    listener: TcpListener,
    ctx: Arc<SourceContext>,
    max_connections: usize,
    open: Arc<AtomicU64>,
    shutdown: CancellationToken,
    make: M,
) where
    F: Framer + Send + 'static,
    D: Decoder + Send + 'static,
    M: Fn() -> (F, D) + Send + 'static,
{
    let token = shutdown.clone();
    let name = ctx.kind.name;
    let keepalive = ctx.keepalive;
    accept_loop(
        listener,
        name,
        max_connections,
        keepalive,
        open,
        shutdown,
        move |stream, peer| {
            let ctx = Arc::clone(&ctx);
            let shutdown = token.clone();
            let (framer, decoder) = make();
            async move {
                if let Err(err) = connection(stream, peer, &ctx, framer, decoder, shutdown).await {
                    tracing::debug!(%peer, %err, "{} connection ended with an error", ctx.kind.name);
                }
            }
        },
    )
    .await;
}

async fn connection<F: Framer, D: Decoder>(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: &SourceContext,
    mut framer: F,
    mut decoder: D,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let kind = ctx.kind;
    let mut buf = BytesMut::new();
    // The part of the read-buffer budget this connection's buffer holds.
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut log = LogBudget::default();
    let idle = ctx.idle_timeout;
    let idle_timer = tokio::time::sleep(idle.unwrap_or(Duration::MAX / 4));
    tokio::pin!(idle_timer);
    let mut drain_until: Option<Instant> = None;
    loop {
        if buf.capacity() == 0 {
            // Nothing pending and no buffer: wait for the client without holding memory.
            let ready = match drain_until {
                None => tokio::select! {
                    r = stream.readable() => r,
                    _ = shutdown.cancelled() => {
                        drain_until = Some(Instant::now() + ctx.drain_timeout);
                        continue;
                    }
                },
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline.min(Instant::now() + QUIET), stream.readable()).await {
                        Ok(r) => r,
                        Err(_) => return Ok(()),
                    }
                }
            };
            ready?;
        }
        let needed = framer.needed(&buf);
        reserve(&mut buf, needed.max(READ_BUFFER / 4));
        ctx.read_budget.hold(buf.capacity(), &mut held).await;
        let pending = framer.pending(buf.len()) > 0;
        let spare = buf.capacity() - buf.len();
        let n = match drain_until {
            None => tokio::select! {
                r = stream.read_buf(&mut buf) => end_on_reset(r)?,
                _ = shutdown.cancelled() => {
                    drain_until = Some(Instant::now() + ctx.drain_timeout);
                    continue;
                }
                _ = &mut idle_timer, if pending && idle.is_some() => {
                    let idle_ms = idle.map_or(0, |d| d.as_millis());
                    tracing::warn!(
                        %peer, idle_ms, pending_bytes = framer.pending(buf.len()),
                        "closing {} connection idle with an unfinished {} (kairosd.telnet.idle_timeout_ms); that {} is discarded",
                        kind.name, F::UNIT, F::UNIT
                    );
                    ctx.metrics.idle_closed.fetch_add(1, Relaxed);
                    ctx.metrics.rejected(kind.protocol, 1);
                    return Ok(());
                }
            },
            Some(deadline) => {
                let until = if pending {
                    deadline
                } else {
                    deadline.min(Instant::now() + QUIET)
                };
                match tokio::time::timeout_at(until, stream.read_buf(&mut buf)).await {
                    Ok(r) => end_on_reset(r)?,
                    Err(_) => {
                        if pending {
                            tracing::warn!(
                                %peer, pending_bytes = framer.pending(buf.len()),
                                "shutting down: {} connection still in the middle of a {} after kairosd.shutdown.drain_timeout_ms; that {} is discarded",
                                kind.name, F::UNIT, F::UNIT
                            );
                            ctx.metrics.rejected(kind.protocol, 1);
                        }
                        return Ok(());
                    }
                }
            }
        };
        if n == 0 {
            let partial = framer.pending(buf.len());
            if partial > 0 {
                tracing::warn!(
                    %peer, bytes = partial,
                    "{} connection closed in the middle of a {}; that {} is discarded (end every line with a newline)",
                    kind.name, F::UNIT, F::UNIT
                );
                ctx.metrics.rejected(kind.protocol, 1);
            }
            return Ok(());
        }
        if let Some(idle) = idle {
            idle_timer.as_mut().reset(Instant::now() + idle);
        }
        let mut batch = ctx.ingest.batch();
        decoder.set_now(now_ms());
        let result = decode_frames(&mut framer, &mut decoder, &buf, false, &mut batch, peer, &mut log, ctx);
        // The frames before a bad one are kept, whatever happens to the connection.
        if !batch.is_empty() {
            ctx.metrics.accepted(kind.protocol, batch.len());
            if ctx.ingest.submit(batch).await.is_err() {
                tracing::warn!(%peer, "shutting down; closing {} connection", kind.name);
                return Ok(());
            }
        }
        match result {
            Ok(d) => {
                buf.advance(d.used);
                for _ in 0..d.replies {
                    stream.write_all(decoder.reply()).await?;
                }
                // The read did not fill the buffer, so the socket is drained: with
                // nothing pending, give the buffer (and its budget) back until more comes.
                if buf.is_empty() && n < spare {
                    buf = BytesMut::new();
                    held = None;
                }
            }
            Err(err) => {
                tracing::warn!(%peer, max_key = kind.max_key, "{} {err}; closing the connection", kind.name);
                ctx.metrics.too_long(kind.protocol);
                ctx.metrics.rejected(kind.protocol, 1);
                return Ok(());
            }
        }
    }
}

/// A client that resets the connection (carbon-relay does when it stops) has ended the
/// stream like one that closes it: what it sent completely is kept, a frame it cut off
/// is reported as such.
fn end_on_reset(r: std::io::Result<usize>) -> std::io::Result<usize> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    match r {
        Err(e) if matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) => Ok(0),
        r => r,
    }
}

/// The read-buffer bytes all stream connections together may hold.
pub struct ReadBudget {
    permits: Arc<tokio::sync::Semaphore>,
    total: usize,
}

impl ReadBudget {
    pub fn new(total: usize) -> ReadBudget {
        let total = total.clamp(READ_BUFFER, tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        ReadBudget {
            permits: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
        }
    }

    /// Bytes of the budget in use now.
    pub fn in_use(&self) -> usize {
        self.total - self.permits.available_permits()
    }

    /// Makes `held` cover `bytes` (at most the whole budget), waiting for room.
    async fn hold(&self, bytes: usize, held: &mut Option<OwnedSemaphorePermit>) {
        let have = held.as_ref().map_or(0, |p| p.num_permits());
        let want = bytes.min(self.total);
        if want <= have {
            return;
        }
        let Ok(more) = Arc::clone(&self.permits).acquire_many_owned((want - have) as u32).await else {
            return; // never closed
        };
        match held {
            Some(h) => h.merge(more),
            None => *held = Some(more),
        }
    }
}

/// Makes room to read into: at least a quarter buffer, and the whole of a large frame
/// whose header is in.
fn reserve(buf: &mut BytesMut, needed: usize) {
    let want = needed.saturating_sub(buf.len()).max(READ_BUFFER / 4);
    if buf.capacity() - buf.len() < want {
        buf.reserve(want.max(READ_BUFFER));
    }
}
