//! The telnet listener (`put`, `putm`, `version` on 4242).
//!
//! One task per connection reads into a buffer, frames lines in place, parses them
//! into a [`kairos_protocols::PointBatch`] and hands the batch to the writer once per read. A bad line
//! is logged with the peer address, counted and skipped; the connection stays open.
//! While the writer is behind, `submit` waits and the task stops reading, which is
//! TCP backpressure on that sender alone.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use kairos_protocols::telnet::{self, Line, Scratch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::framing::{Frame, LineFramer};
use crate::ingest::IngestHandle;
use crate::listener::accept_loop;
use crate::metrics::{Metrics, Protocol};

const READ_BUFFER: usize = 64 * 1024;

#[derive(Clone)]
pub struct TelnetContext {
    pub ingest: IngestHandle,
    pub metrics: Arc<Metrics>,
    pub max_line: usize,
    pub version: Arc<str>,
}

/// Accepts connections until `shutdown`, at most `max_connections` at once.
pub async fn serve(listener: TcpListener, ctx: TelnetContext, max_connections: usize, shutdown: CancellationToken) {
    let open = Arc::clone(&ctx.metrics.telnet_connections);
    let token = shutdown.clone();
    accept_loop(
        listener,
        "telnet",
        max_connections,
        open,
        shutdown,
        move |stream, peer| {
            let ctx = ctx.clone();
            let shutdown = token.clone();
            async move {
                if let Err(err) = connection(stream, peer, &ctx, shutdown).await {
                    tracing::debug!(%peer, %err, "telnet connection ended with an error");
                }
            }
        },
    )
    .await;
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: &TelnetContext,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut framer = LineFramer::new(ctx.max_line);
    let mut scratch = Scratch::default();
    let mut draining = false;
    let mut log_budget = LogBudget::default();
    loop {
        if buf.capacity() - buf.len() < READ_BUFFER / 4 {
            buf.reserve(READ_BUFFER);
        }
        // On shutdown, whatever the client already sent is still taken in (it is in
        // our socket buffer, so the sender thinks it delivered it); then the
        // connection closes.
        let n = if draining {
            match stream.try_read_buf(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            }
        } else {
            tokio::select! {
                r = stream.read_buf(&mut buf) => r?,
                _ = shutdown.cancelled() => {
                    draining = true;
                    continue;
                }
            }
        };
        if n == 0 {
            let partial = framer.partial_len(&buf);
            if partial > 0 {
                tracing::warn!(%peer, bytes = partial, "connection closed in the middle of a line; that line is discarded (end every command with a newline)");
                ctx.metrics.rejected(Protocol::Telnet, 1);
            }
            return Ok(());
        }
        let mut batch = ctx.ingest.batch();
        let mut versions = 0;
        let mut rejected = 0;
        framer.drain(&mut buf, |frame| match frame {
            Frame::Line(line) => match telnet::parse_line(line, &mut batch, &mut scratch) {
                Ok(Line::Point) | Ok(Line::Blank) => {}
                Ok(Line::Version) => versions += 1,
                Err(err) => {
                    rejected += 1;
                    if log_budget.take() {
                        tracing::warn!(%peer, line = %quote(line), "{err}");
                    }
                }
            },
            Frame::TooLong { len } => {
                rejected += 1;
                ctx.metrics.lines_too_long.fetch_add(1, Relaxed);
                if log_budget.take() {
                    tracing::warn!(%peer, len, max = ctx.max_line, "line longer than kairosdb.telnetserver.max_command_size discarded");
                }
            }
        });
        if rejected > 0 {
            ctx.metrics.rejected(Protocol::Telnet, rejected);
        }
        if let Some(suppressed) = log_budget.refill() {
            tracing::warn!(%peer, suppressed, "more bad lines from this client were not logged (see kairosd_points_rejected_total)");
        }
        if !batch.is_empty() {
            ctx.metrics.accepted(Protocol::Telnet, batch.len());
            if ctx.ingest.submit(batch).await.is_err() {
                tracing::warn!(%peer, "shutting down; closing telnet connection");
                return Ok(());
            }
        }
        for _ in 0..versions {
            stream.write_all(ctx.version.as_bytes()).await?;
            stream.write_all(b"\n").await?;
        }
    }
}

/// A line as it may appear in a log: lossy UTF-8, at most 200 bytes.
fn quote(line: &[u8]) -> String {
    let cut = &line[..line.len().min(200)];
    let mut s = String::from_utf8_lossy(cut).trim_end().to_string();
    if line.len() > cut.len() {
        s.push('…');
    }
    s
}

/// How many bad lines one connection may log per window: enough to show what is wrong,
/// not so many that a misbehaving client floods the log at line rate.
const LOG_LINES_PER_WINDOW: u32 = 10;
const LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

struct LogBudget {
    left: u32,
    suppressed: u64,
    window_start: std::time::Instant,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            left: LOG_LINES_PER_WINDOW,
            suppressed: 0,
            window_start: std::time::Instant::now(),
        }
    }
}

impl LogBudget {
    /// Whether this bad line may be logged.
    fn take(&mut self) -> bool {
        if self.left > 0 {
            self.left -= 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Starts a new window once the current one is over, returning how many lines the
    /// old one did not log (if any).
    fn refill(&mut self) -> Option<u64> {
        if self.left == LOG_LINES_PER_WINDOW || self.window_start.elapsed() < LOG_WINDOW {
            return None;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        *self = LogBudget::default();
        (suppressed > 0).then_some(suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budget_caps_a_window_and_reports_what_it_dropped() {
        let mut b = LogBudget::default();
        assert_eq!((0..25).filter(|_| b.take()).count(), LOG_LINES_PER_WINDOW as usize);
        assert_eq!(b.refill(), None, "window not over yet");
        b.window_start -= LOG_WINDOW;
        assert_eq!(b.refill(), Some(15));
        assert!(b.take());
    }
}
