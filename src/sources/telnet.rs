//! The telnet listener (`put`, `putm`, `version` on 4242): TCP, `\n` lines of at most
//! `kairosdb.telnetserver.max_command_size` bytes, KairosDB's telnet decoder.

use std::net::SocketAddr;
use std::sync::Arc;

use kairos_protocols::framing::LineFramer;
use kairos_protocols::telnet::TelnetDecoder;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{bind_tcp, tcp, SourceContext, SourceKind};
use crate::config::Config;
use crate::ingest::IngestHandle;
use crate::metrics::{Metrics, Protocol};
use crate::server::StartError;

pub const KIND: SourceKind = SourceKind {
    protocol: Protocol::Telnet,
    name: "telnet",
    max_key: "kairosdb.telnetserver.max_command_size",
};

pub async fn start(
    config: &Config,
    ingest: &IngestHandle,
    metrics: &Arc<Metrics>,
    version: &str,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<SocketAddr, StartError> {
    let (listener, addr) = bind_tcp(config.telnet_addr, "kairosdb.telnetserver.port").await?;
    let ctx = Arc::new(SourceContext::new(KIND, ingest, metrics, config));
    let max_line = config.telnet_max_command_size;
    let version: Arc<str> = version.into();
    let cache = config.series_cache;
    tasks.spawn(tcp::serve(
        listener,
        ctx,
        config.telnet_max_connections,
        Arc::clone(&metrics.telnet_connections),
        shutdown.clone(),
        move || {
            (
                LineFramer::new(max_line),
                TelnetDecoder::new(&version).with_cache_limits(cache),
            )
        },
    ));
    Ok(addr)
}
