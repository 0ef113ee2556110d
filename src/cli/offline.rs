//! `--data-dir`: the client commands on the store itself, with the daemon stopped. The
//! same import engine and writer run in this process, so an offline import is as
//! atomic as one over HTTP.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use http::StatusCode;

use crate::import::engine::ImportRun;
use crate::import::{ImportContext, ImportParams, ImportResult};
use crate::ingest::IngestHandle;
use crate::maintenance::Activity;
use crate::metrics::Metrics;
use crate::storage::{Faults, Store, StoreError, StoreHandle};
use crate::writer::{self, WriterConfig};

/// Opens the store in `dir`; a store held by a running daemon gives an error that
/// says to use `--url`.
pub fn open_store(dir: &Path) -> Result<Arc<StoreHandle>, String> {
    let config = crate::config::Config::default();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    match StoreHandle::open(dir, config.bucket_width_ms, Faults::default()) {
        Ok(h) => Ok(Arc::new(h)),
        Err(StoreError::Open { source, .. }) if source.to_string().to_ascii_lowercase().contains("lock") => {
            Err(format!(
                "the store in {} is in use (a running kairosd holds its lock): talk to that daemon with --url \
             http://HOST:PORT instead of --data-dir",
                dir.display()
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The store, a writer thread and the import engine, in this process.
pub struct Offline {
    pub runtime: tokio::runtime::Runtime,
    pub store: Arc<StoreHandle>,
    ingest: Option<IngestHandle>,
    writer: Option<JoinHandle<()>>,
    pub ctx: Arc<ImportContext>,
}

impl Offline {
    pub fn open(dir: &Path) -> Result<Offline, String> {
        let store = open_store(dir)?;
        {
            let s = store.get().map_err(|e| e.to_string())?;
            crate::import::jobs::recover(&s).map_err(|e| e.to_string())?;
        }
        let config = crate::config::Config::default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let metrics = Arc::new(Metrics::default());
        let (ingest, rx) = IngestHandle::new(config.writer_max_inflight_points, Arc::clone(&metrics));
        let writer = writer::spawn(
            Arc::clone(&store),
            rx,
            metrics,
            Arc::new(Activity::default()),
            WriterConfig {
                batch_points: config.writer_batch_points,
                linger: config.writer_linger,
                promote_points: config.writer_promote_points,
                promote_interval: config.writer_promote_interval,
                sync: false,
            },
            None,
            config.ttl,
        )
        .map_err(|e| e.to_string())?;
        let ctx = Arc::new(ImportContext::new(Arc::clone(&store), ingest.clone(), dir));
        Ok(Offline {
            runtime,
            store,
            ingest: Some(ingest),
            writer: Some(writer),
            ctx,
        })
    }

    pub fn store(&self) -> Result<Arc<Store>, String> {
        self.store.get().map_err(|e| e.to_string())
    }

    /// One import of everything `reader` gives.
    pub fn import(&self, params: ImportParams, reader: &mut dyn Read) -> ImportResult {
        self.runtime.block_on(async {
            let mut run = match ImportRun::start(&self.ctx, params, None).await {
                Ok(r) => r,
                Err(r) => return r,
            };
            let mut buf = vec![0u8; 1 << 20];
            loop {
                if run.stopped() {
                    break;
                }
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => tokio::task::block_in_place(|| run.feed(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        run.fail(StatusCode::BAD_REQUEST, format!("reading the file failed: {e}"));
                        break;
                    }
                }
            }
            run.finish().await
        })
    }
}

impl Offline {
    /// Lets the writer commit and promote everything, then stops it.
    pub fn close(self) {
        let Offline {
            runtime,
            store,
            ingest,
            writer,
            ctx,
        } = self;
        drop(ctx);
        drop(ingest);
        if let Some(w) = writer {
            let _ = w.join();
        }
        drop(runtime);
        drop(store);
    }
}
