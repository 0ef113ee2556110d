//! The Graphite plaintext listener on 2003: `path value [timestamp]` lines of at most
//! `kairosdb.carbon.text.max_size` bytes, over TCP and, on the same port, UDP
//! (`kairosd.carbon.udp.enabled`). Paths become metrics and tags through the
//! `kairosdb.carbon.tag_parser` mapper, which the pickle listener shares.

use std::net::SocketAddr;
use std::sync::Arc;

use kairos_protocols::framing::LineFramer;
use kairos_protocols::graphite::{PathMapper, TextDecoder};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{tcp, udp, SourceContext, SourceKind};
use crate::config::Config;
use crate::ingest::IngestHandle;
use crate::metrics::{Metrics, Protocol};
use crate::server::StartError;

const PORT_KEY: &str = "kairosdb.carbon.text.port";
const MAX_KEY: &str = "kairosdb.carbon.text.max_size";

pub const TCP: SourceKind = SourceKind {
    protocol: Protocol::Graphite,
    name: "Graphite",
    max_key: MAX_KEY,
};

pub const UDP: SourceKind = SourceKind {
    protocol: Protocol::GraphiteUdp,
    name: "Graphite UDP",
    max_key: MAX_KEY,
};

/// The path mapper the config asks for; a bad setting refuses to start, naming its key.
pub fn mapper(config: &Config) -> Result<PathMapper, StartError> {
    PathMapper::new(
        config.carbon_tag_parser,
        &config.carbon_host_tags,
        &config.carbon_templates,
    )
    .map_err(|e| StartError::Config {
        key: e.key,
        reason: e.reason,
    })
}

/// Starts the TCP listener and, if enabled, the UDP socket on the same port; returns
/// their addresses.
pub async fn start(
    config: &Config,
    mapper: &Arc<PathMapper>,
    ingest: &IngestHandle,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(SocketAddr, Option<SocketAddr>), StartError> {
    let (listener, udp_socket) = bind_pair(config.carbon_text_addr, config.carbon_udp_enabled).await?;
    let addr = listener.local_addr().expect("bound socket has an address");
    let max = config.carbon_text_max_size;
    let ctx = Arc::new(SourceContext::new(TCP, ingest, metrics, config));
    let m = Arc::clone(mapper);
    let cache = config.series_cache;
    tasks.spawn(tcp::serve(
        listener,
        ctx,
        config.carbon_max_connections,
        Arc::clone(&metrics.graphite_connections),
        shutdown.clone(),
        move || {
            (
                LineFramer::new(max),
                TextDecoder::new(Arc::clone(&m)).with_cache_limits(cache),
            )
        },
    ));
    let udp_addr = match udp_socket {
        Some(socket) => {
            let a = socket.local_addr().expect("bound socket has an address");
            let ctx = Arc::new(SourceContext::new(UDP, ingest, metrics, config));
            // One socket for every sender: one cache for all of them.
            let decoder = TextDecoder::new(Arc::clone(mapper)).with_cache_limits(cache);
            tasks.spawn(udp::serve(socket, ctx, LineFramer::new(max), decoder, shutdown.clone()));
            Some(a)
        }
        None => None,
    };
    Ok((addr, udp_addr))
}

/// A TCP listener and a UDP socket on one port. With port 0 the kernel picks the TCP
/// port; if that port is taken for UDP, another is tried.
async fn bind_pair(addr: SocketAddr, with_udp: bool) -> Result<(TcpListener, Option<UdpSocket>), StartError> {
    let bind_error = |addr, source| StartError::Bind {
        addr,
        key: PORT_KEY,
        source,
    };
    let mut tries = 0;
    loop {
        let listener = TcpListener::bind(addr).await.map_err(|e| bind_error(addr, e))?;
        if !with_udp {
            return Ok((listener, None));
        }
        let local = listener.local_addr().expect("bound socket has an address");
        match UdpSocket::bind(local).await {
            Ok(socket) => return Ok((listener, Some(socket))),
            Err(_) if addr.port() == 0 && tries < 20 => tries += 1,
            Err(e) => return Err(bind_error(local, e)),
        }
    }
}
