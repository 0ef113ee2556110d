//! The UDP transport: one task reads datagrams, each a whole input whose last line
//! needs no newline (one datagram may hold many lines; graphyte sends 1,000 in one).
//! Datagrams already queued in the socket are decoded into the same batch, so a burst
//! costs one submit, not one per datagram. On shutdown, what is queued in the socket is
//! still taken in.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use kairos_protocols::decode::Decoder;
use kairos_protocols::framing::Framer;
use kairos_protocols::PointBatch;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::log_budget::LogBudget;
use super::{decode_frames, now_ms, SourceContext};

/// The largest UDP payload (65,507 bytes over IPv4) fits.
const DATAGRAM: usize = 64 * 1024;
/// Points gathered from queued datagrams before they are submitted.
const BATCH_POINTS: usize = 16 * 1024;

pub async fn serve<F, D>(
    socket: UdpSocket,
    ctx: Arc<SourceContext>,
    mut framer: F,
    mut decoder: D,
    shutdown: CancellationToken,
) where
    F: Framer,
    D: Decoder,
{
    let mut buf = vec![0u8; DATAGRAM];
    let mut log = LogBudget::default();
    let mut source = Datagrams {
        ctx: &ctx,
        framer: &mut framer,
        decoder: &mut decoder,
        log: &mut log,
    };
    loop {
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = shutdown.cancelled() => break,
        };
        let mut batch = ctx.ingest.batch();
        match first {
            Ok((n, peer)) => source.datagram(&buf[..n], peer, &mut batch),
            Err(err) => {
                tracing::debug!(%err, "{} receive failed", ctx.kind.name);
                continue;
            }
        }
        while batch.len() < BATCH_POINTS {
            match socket.try_recv_from(&mut buf) {
                Ok((n, peer)) => source.datagram(&buf[..n], peer, &mut batch),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        if !source.submit(batch).await {
            return;
        }
    }
    // Shutting down: datagrams already in the socket's queue were sent; take them in.
    loop {
        let mut batch = ctx.ingest.batch();
        while batch.len() < BATCH_POINTS {
            match socket.try_recv_from(&mut buf) {
                Ok((n, peer)) => source.datagram(&buf[..n], peer, &mut batch),
                Err(_) => break,
            }
        }
        let done = batch.len() < BATCH_POINTS;
        if !source.submit(batch).await || done {
            return;
        }
    }
}

struct Datagrams<'a, F, D> {
    ctx: &'a SourceContext,
    framer: &'a mut F,
    decoder: &'a mut D,
    log: &'a mut LogBudget,
}

impl<F: Framer, D: Decoder> Datagrams<'_, F, D> {
    fn datagram(&mut self, data: &[u8], peer: SocketAddr, batch: &mut PointBatch) {
        self.decoder.set_now(now_ms());
        if let Err(err) = decode_frames(self.framer, self.decoder, data, true, batch, peer, self.log, self.ctx) {
            if self.log.take() {
                tracing::warn!(%peer, "{} datagram refused: {err}", self.ctx.kind.name);
            }
            self.ctx.metrics.rejected(self.ctx.kind.protocol, 1);
        }
    }

    /// Hands the batch to the writer; `false` once the daemon is shutting down.
    async fn submit(&mut self, batch: PointBatch) -> bool {
        if batch.is_empty() {
            return true;
        }
        self.ctx.metrics.accepted(self.ctx.kind.protocol, batch.len());
        self.ctx.ingest.submit(batch).await.is_ok()
    }
}
