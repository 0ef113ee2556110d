//! The Graphite pickle listener on 2004: TCP frames of a 4-byte big-endian length and a
//! pickle of at most `kairosdb.carbon.pickle.max_size` bytes. A larger length header
//! closes the connection before its body is read (the frames before it are kept); a
//! frame cut off by the client closing is dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use kairos_protocols::framing::LengthPrefixed;
use kairos_protocols::graphite::{PathMapper, PickleDecoder};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{bind_tcp, tcp, SourceContext, SourceKind};
use crate::config::Config;
use crate::ingest::IngestHandle;
use crate::metrics::{Metrics, Protocol};
use crate::server::StartError;

pub const KIND: SourceKind = SourceKind {
    protocol: Protocol::Pickle,
    name: "pickle",
    max_key: "kairosdb.carbon.pickle.max_size",
};

pub async fn start(
    config: &Config,
    mapper: &Arc<PathMapper>,
    ingest: &IngestHandle,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<SocketAddr, StartError> {
    let (listener, addr) = bind_tcp(config.carbon_pickle_addr, "kairosdb.carbon.pickle.port").await?;
    let ctx = Arc::new(SourceContext::new(KIND, ingest, metrics, config));
    let max = config.carbon_pickle_max_size;
    let mapper = Arc::clone(mapper);
    let cache = config.series_cache;
    tasks.spawn(tcp::serve(
        listener,
        ctx,
        config.carbon_max_connections,
        Arc::clone(&metrics.pickle_connections),
        shutdown.clone(),
        move || {
            (
                LengthPrefixed::new(max),
                PickleDecoder::new(Arc::clone(&mapper)).with_cache_limits(cache),
            )
        },
    ));
    Ok(addr)
}
