//! Everything that takes points in over a socket: a source is a transport (a TCP
//! stream, a UDP socket) × a framer (lines, length-prefixed frames, from
//! `kairos_protocols::framing`) × a decoder (telnet, Graphite text, pickle), feeding the
//! [`IngestHandle`].
//!
//! The parts every source shares are written once: the accept loop and connection cap
//! ([`crate::listener`]), the per-connection read loop with its idle timeout and
//! shutdown drain ([`tcp`]), the datagram loop ([`udp`]), the bad-input log budget
//! ([`log_budget`]) and the per-protocol counters ([`decode_frames`]). A protocol file
//! only says which framer and decoder it uses and what its keys are called:
//!
//! - [`telnet`]: `put`/`putm`/`version` lines on 4242.
//! - [`graphite`]: plaintext lines on 2003, TCP and UDP on the same port.
//! - [`pickle`]: length-prefixed pickle frames on 2004.
//!
//! Decoders never see their transport, so a file, stdin or Kafka source can drive the
//! same ones through [`decode_frames`].

pub mod graphite;
pub mod log_budget;
pub mod pickle;
pub mod tcp;
pub mod telnet;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kairos_protocols::decode::{DecodeError, Decoder};
use kairos_protocols::framing::{Frame, Framer, FramingError};
use kairos_protocols::PointBatch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ingest::IngestHandle;
use crate::metrics::{Metrics, Protocol};
use crate::server::StartError;
use log_budget::LogBudget;

/// What a source is called in counters and log lines.
#[derive(Debug, Clone, Copy)]
pub struct SourceKind {
    pub protocol: Protocol,
    /// The listener's name in log lines.
    pub name: &'static str,
    /// The config key that sets the longest frame, named when one is too long.
    pub max_key: &'static str,
}

/// What every connection of one source needs.
pub struct SourceContext {
    pub kind: SourceKind,
    pub ingest: IngestHandle,
    pub metrics: Arc<Metrics>,
    /// Close a TCP connection that holds part of a frame and sends nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// On shutdown, how long a TCP connection may still be read.
    pub drain_timeout: Duration,
    /// TCP keepalive idle time for accepted connections (`kairosd.tcp.keepalive_ms`).
    pub keepalive: Option<Duration>,
    /// Read buffers of every stream connection, all sources together.
    pub read_budget: Arc<tcp::ReadBudget>,
}

impl SourceContext {
    pub fn new(kind: SourceKind, ingest: &IngestHandle, metrics: &Arc<Metrics>, config: &Config) -> SourceContext {
        SourceContext {
            read_budget: Arc::clone(ingest.read_budget()),
            kind,
            ingest: ingest.clone(),
            metrics: Arc::clone(metrics),
            idle_timeout: (!config.telnet_idle_timeout.is_zero()).then_some(config.telnet_idle_timeout),
            drain_timeout: config.shutdown_drain_timeout,
            keepalive: config.tcp_keepalive,
        }
    }
}

/// What [`decode_frames`] did with one buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoded {
    /// Bytes of the buffer used up; the rest is an incomplete frame.
    pub used: usize,
    /// Frames that asked for an answer (telnet `version`).
    pub replies: usize,
}

/// Frames `buf` and decodes every complete frame into `batch`; counts what is refused
/// per protocol and logs it with the peer address, within `log`'s budget. With `end`,
/// `buf` is a whole input (a datagram): its last line needs no newline.
#[allow(clippy::too_many_arguments)]
pub fn decode_frames<F: Framer, D: Decoder>(
    framer: &mut F,
    decoder: &mut D,
    buf: &[u8],
    end: bool,
    batch: &mut PointBatch,
    peer: SocketAddr,
    log: &mut LogBudget,
    ctx: &SourceContext,
) -> Result<Decoded, FramingError> {
    let kind = ctx.kind;
    let mut rejected = 0;
    let mut replies = 0;
    let mut reporter = Reporter { peer, log, kind };
    let result = framer.split(buf, end, |frame| match frame {
        Frame::Data(data) => {
            let d = decoder.decode(data, batch, &mut |err| reporter.report::<D>(&err, data));
            rejected += d.rejected as usize;
            replies += usize::from(d.reply);
        }
        Frame::TooLong { len } => {
            rejected += 1;
            ctx.metrics.too_long(kind.protocol);
            if reporter.log.take() {
                tracing::warn!(%peer, len, "{} {} longer than {} discarded", kind.name, F::UNIT, kind.max_key);
            }
        }
    });
    if rejected > 0 {
        ctx.metrics.rejected(kind.protocol, rejected);
    }
    if let Some(suppressed) = reporter.log.refill() {
        tracing::warn!(%peer, suppressed, "more bad {} input was not logged (see kairosd_points_rejected_total)", kind.name);
    }
    result.map(|used| Decoded { used, replies })
}

/// Where refusals are logged, kept apart so the per-frame closure stays small.
struct Reporter<'a> {
    peer: SocketAddr,
    log: &'a mut LogBudget,
    kind: SourceKind,
}

impl Reporter<'_> {
    /// Logs one refusal: real mistakes at warn within the budget, routine skips
    /// (Graphite's `nan` samples) at debug only.
    #[cold]
    fn report<D: Decoder>(&mut self, err: &D::Error, frame: &[u8]) {
        let peer = self.peer;
        if err.is_routine() {
            if tracing::enabled!(tracing::Level::DEBUG) && self.log.take() {
                tracing::debug!(%peer, "{} input skipped: {err}", self.kind.name);
            }
            return;
        }
        if !self.log.take() {
            return;
        }
        if D::TEXT {
            tracing::warn!(%peer, line = %quote(frame), "{err}");
        } else {
            tracing::warn!(%peer, frame_bytes = frame.len(), "{err}");
        }
    }
}

/// A line as it may appear in a log: lossy UTF-8, at most 200 bytes.
pub fn quote(line: &[u8]) -> String {
    let cut = &line[..line.len().min(200)];
    let mut s = String::from_utf8_lossy(cut).trim_end().to_string();
    if line.len() > cut.len() {
        s.push('…');
    }
    s
}

/// Milliseconds since the epoch, for points that come without a timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where the listeners ended up (ports 0 become real ports); `None` = turned off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bound {
    pub telnet: Option<SocketAddr>,
    pub carbon_text: Option<SocketAddr>,
    pub carbon_udp: Option<SocketAddr>,
    pub carbon_pickle: Option<SocketAddr>,
}

/// Binds every configured socket listener and runs it on `tasks` until `shutdown`.
pub async fn start(
    config: &Config,
    ingest: &IngestHandle,
    metrics: &Arc<Metrics>,
    version: &str,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<Bound, StartError> {
    let mut bound = Bound::default();
    if config.telnet_enabled {
        bound.telnet = Some(telnet::start(config, ingest, metrics, version, shutdown, tasks).await?);
    }
    if config.carbon_enabled {
        let mapper = Arc::new(graphite::mapper(config)?);
        let (text, udp) = graphite::start(config, &mapper, ingest, metrics, shutdown, tasks).await?;
        bound.carbon_text = Some(text);
        bound.carbon_udp = udp;
        bound.carbon_pickle = Some(pickle::start(config, &mapper, ingest, metrics, shutdown, tasks).await?);
    }
    Ok(bound)
}

/// Binds a TCP listener; a failure names the key that set the port.
pub(crate) async fn bind_tcp(
    addr: SocketAddr,
    key: &'static str,
) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, key, source })?;
    let local = listener.local_addr().expect("bound socket has an address");
    Ok((listener, local))
}
