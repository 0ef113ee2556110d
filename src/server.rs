//! Starting and stopping the daemon: store, writer thread, listeners, shutdown order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, WalSync};
use crate::http::{self, HttpContext, HttpLimits};
use crate::ingest::IngestHandle;
use crate::maintenance::{self, Activity, Maintenance};
use crate::metrics::Metrics;
use crate::sources;
use crate::storage::{Faults, StoreError, StoreHandle};
use crate::writer::{self, WriterConfig};

/// What `version` and `/api/v1/version` report: KairosDB's protocol level, then ours.
pub fn version() -> String {
    format!("KairosDB 1.3.0-kairosd.{}", env!("CARGO_PKG_VERSION"))
}

/// Deletes quarantine records past `kairosd.import.quarantine_retention` hourly (start
/// does it once; listings hide them at once, this gives their space back).
async fn expire_quarantine(imports: Arc<crate::import::ImportContext>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = shutdown.cancelled() => return,
        }
        let ctx = Arc::clone(&imports);
        match tokio::task::spawn_blocking(move || ctx.expire_quarantine()).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => tracing::info!(
                sources = n,
                "deleted quarantine records past kairosd.import.quarantine_retention"
            ),
            Ok(Err(e)) => tracing::warn!(%e, "deleting expired quarantine records failed; trying again in an hour"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        addr: SocketAddr,
        key: &'static str,
        source: std::io::Error,
    },
    #[error("bad value for {key}: {reason}")]
    Config { key: &'static str, reason: String },
}

/// A running daemon; [`Running::shutdown`] stops it cleanly.
pub struct Running {
    pub telnet_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    /// Graphite plaintext TCP, its UDP socket (same port), and pickle.
    pub carbon_text_addr: Option<SocketAddr>,
    pub carbon_udp_addr: Option<SocketAddr>,
    pub carbon_pickle_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    listeners: JoinSet<()>,
    ingest: IngestHandle,
    writer: std::thread::JoinHandle<()>,
    maintenance: Maintenance,
    pub store: Arc<StoreHandle>,
    kafka: Option<Arc<crate::kafka::KafkaSources>>,
}

async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, key, source })
}

pub async fn start(config: &Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    if config.ttl.align && config.ttl.default_ttl == 0 {
        // KairosDB refuses this too: every point without a client ttl would be dropped.
        return Err(StartError::Config {
            key: "kairosdb.datastore.cassandra.align_datapoint_ttl_with_timestamp",
            reason: "needs kairosdb.datastore.cassandra.datapoint_ttl set to a non-zero value".into(),
        });
    }
    let store = Arc::new(tokio::task::block_in_place(|| {
        StoreHandle::open(&config.data_dir, config.bucket_width_ms, Faults::from_env())
    })?);
    let metrics = Arc::new(Metrics::default());
    let (ingest, rx) = IngestHandle::new(config.writer_max_inflight_points, Arc::clone(&metrics));
    let ingest = ingest.with_read_budget(config.ingest_max_buffered_bytes);
    let writer_config = WriterConfig {
        batch_points: config.writer_batch_points,
        linger: config.writer_linger,
        promote_points: config.writer_promote_points,
        promote_interval: config.writer_promote_interval,
        sync: config.wal_sync == WalSync::Always,
    };
    let activity = Arc::new(Activity::default());
    let writer = writer::spawn(
        Arc::clone(&store),
        rx,
        Arc::clone(&metrics),
        Arc::clone(&activity),
        writer_config,
        (config.series_max > 0).then_some(config.series_max),
        config.ttl,
    )?;
    let maintenance = maintenance::spawn(
        Arc::clone(&store),
        activity,
        (config.wal_sync != WalSync::Always && !config.wal_flush_interval.is_zero())
            .then_some(config.wal_flush_interval),
        (!config.idle_flush.is_zero()).then_some(config.idle_flush),
        (!config.retention_compaction_interval.is_zero()).then_some(config.retention_compaction_interval),
    );
    watch_writer(Arc::clone(&metrics));
    let shutdown = CancellationToken::new();
    let mut listeners = JoinSet::new();
    let version: Arc<str> = version().into();

    let imports = {
        let opened = store.get()?;
        let stale = tokio::task::block_in_place(|| crate::import::jobs::recover(&opened))?;
        if stale > 0 {
            tracing::warn!(
                jobs = stale,
                "imports interrupted by the last stop ended in error; nothing of them was committed"
            );
        }
        let mut ctx = crate::import::ImportContext::new(Arc::clone(&store), ingest.clone(), &config.data_dir);
        ctx.max_bytes = config.import_max_bytes;
        ctx.allow_private_urls = config.import_url_allow_private;
        ctx.url_timeout = config.import_url_timeout;
        ctx.quarantine_retention = config.import_quarantine_retention;
        ctx.quarantine_max_bytes = config.import_quarantine_max_bytes;
        // Before serving, so nothing past its retention is counted against a source.
        match tokio::task::block_in_place(|| ctx.expire_quarantine()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sources = n,
                "deleted quarantine records past kairosd.import.quarantine_retention"
            ),
            Err(e) => tracing::warn!(%e, "deleting expired quarantine records failed; trying again in an hour"),
        }
        let kafka = crate::kafka::KafkaSources::new(crate::kafka::Shared {
            store: Arc::clone(&store),
            ingest: ingest.clone(),
            metrics: Arc::clone(&metrics),
            graphite: sources::graphite::mapper(config).ok().map(Arc::new),
            runtime: tokio::runtime::Handle::current(),
        });
        tokio::task::block_in_place(|| kafka.sync())?;
        ctx.kafka = Some(kafka);
        Arc::new(ctx)
    };
    listeners.spawn(expire_quarantine(Arc::clone(&imports), shutdown.clone()));
    let kafka = imports.kafka.clone();
    let bound = sources::start(config, &ingest, &metrics, &version, &shutdown, &mut listeners).await?;
    let mut http_addr = None;
    if config.http_enabled {
        let listener = bind(config.http_addr, "kairosdb.jetty.port").await?;
        http_addr = Some(listener.local_addr().expect("bound socket has an address"));
        let ctx = Arc::new(HttpContext {
            store: Arc::clone(&store),
            ingest: ingest.clone(),
            metrics: Arc::clone(&metrics),
            max_body_bytes: config.http_max_body_bytes,
            body_budget: http::body::BodyBudget::new(config.http_max_buffered_bytes, config.writer_ack_timeout),
            max_series: (config.series_max > 0).then_some(config.series_max),
            ack_timeout: config.writer_ack_timeout,
            query_max_points: config.query_max_points,
            version,
            query_slots: HttpContext::query_slots(config.query_max_concurrent),
            query_slots_total: config.query_max_concurrent,
            query_queue_timeout: config.query_queue_timeout,
            query_threads: config.query_threads,
            server_type: config.server_type,
            series_cache: config.series_cache,
            imports,
        });
        let limits = HttpLimits {
            max_connections: config.http_max_connections,
            header_read_timeout: config.http_header_read_timeout,
            idle_timeout: config.http_idle_timeout,
            keepalive: config.tcp_keepalive,
        };
        listeners.spawn(http::serve(listener, ctx, limits, shutdown.clone()));
    }
    Ok(Running {
        telnet_addr: bound.telnet,
        http_addr,
        carbon_text_addr: bound.carbon_text,
        carbon_udp_addr: bound.carbon_udp,
        carbon_pickle_addr: bound.carbon_pickle,
        metrics,
        shutdown,
        listeners,
        ingest,
        writer,
        maintenance,
        store,
        kafka,
    })
}

/// Ends the process with status 70 (EX_SOFTWARE) if the writer thread dies while the
/// daemon runs: every later write would fail, and a supervisor restarts a process that
/// exits, not one that answers errors. What was acknowledged is in the WAL.
fn watch_writer(metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let health = &metrics.health;
            if health.stopping() {
                return;
            }
            if !health.writer_running() {
                tracing::error!("the writer thread is gone; exiting so a supervisor can restart kairosd");
                std::process::exit(70);
            }
        }
    });
}

impl Running {
    /// Stops accepting, lets open connections hand over what they read, then lets the
    /// writer commit everything queued before returning.
    pub async fn shutdown(mut self) {
        self.metrics.health.set_stopping();
        self.shutdown.cancel();
        while self.listeners.join_next().await.is_some() {}
        if let Some(k) = self.kafka.take() {
            // Each consumer finishes the batch it is committing, then stops.
            let _ = tokio::task::spawn_blocking(move || k.stop_all()).await;
        }
        self.ingest.close();
        drop(self.ingest);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        let maintenance = self.maintenance;
        let _ = tokio::task::spawn_blocking(move || maintenance.stop()).await;
    }
}
