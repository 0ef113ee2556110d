//! Background upkeep that must not stall group commits: the WAL fsync every
//! `kairosd.wal.flush_interval_ms`, the idle flush (memtables to disk, then the
//! staging column family compacted) once ingest pauses for `kairosd.storage.idle_flush_ms`,
//! and every `kairosd.retention.compaction_interval_ms` a compaction of the `points`
//! column family whose filter drops expired chunks (only on a store where something can
//! expire: a point with a ttl was written, or a retention policy exists).
//!
//! Both used to run on the writer thread, so a commit waited behind an fsync or a
//! flush of every memtable. Here they run on their own thread, driven by what the
//! writer publishes in [`Activity`]; RocksDB allows them beside concurrent writes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::storage::StoreHandle;

/// What the writer tells the maintenance thread.
pub struct Activity {
    origin: Instant,
    /// Milliseconds since `origin` of the last commit, promotion or delete.
    last_write_ms: AtomicU64,
    /// Writes since the last WAL fsync.
    unsynced: AtomicBool,
    /// Points staged and not yet promoted (the idle flush waits for none).
    pub staged: AtomicUsize,
    stop: AtomicBool,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            origin: Instant::now(),
            last_write_ms: AtomicU64::new(0),
            unsynced: AtomicBool::new(false),
            staged: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

impl Activity {
    /// Called by the writer after every successful write.
    pub fn wrote(&self, synced: bool) {
        self.last_write_ms
            .store(self.origin.elapsed().as_millis() as u64 + 1, Relaxed);
        if !synced {
            self.unsynced.store(true, Relaxed);
        }
    }

    fn since_last_write(&self) -> Option<Duration> {
        match self.last_write_ms.load(Relaxed) {
            0 => None,
            t => Some(self.origin.elapsed().saturating_sub(Duration::from_millis(t - 1))),
        }
    }
}

/// The running maintenance thread; [`Maintenance::stop`] syncs the WAL once more and ends it.
pub struct Maintenance {
    activity: Arc<Activity>,
    thread: Option<JoinHandle<()>>,
}

/// How often the thread looks at the clock when neither interval is shorter.
const TICK: Duration = Duration::from_millis(250);

pub fn spawn(
    store: Arc<StoreHandle>,
    activity: Arc<Activity>,
    wal_sync_interval: Option<Duration>,
    idle_flush: Option<Duration>,
    expiry_compaction: Option<Duration>,
) -> Maintenance {
    let tick = [wal_sync_interval, idle_flush, expiry_compaction]
        .into_iter()
        .flatten()
        .map(|d| (d / 2).max(Duration::from_millis(5)))
        .chain([TICK])
        .min()
        .unwrap_or(TICK);
    let a = Arc::clone(&activity);
    let thread = std::thread::Builder::new()
        .name("kairosd-maintenance".into())
        .spawn(move || run(&store, &a, wal_sync_interval, idle_flush, expiry_compaction, tick))
        .expect("spawning the maintenance thread");
    Maintenance {
        activity,
        thread: Some(thread),
    }
}

fn run(
    handle: &StoreHandle,
    activity: &Activity,
    wal_sync_interval: Option<Duration>,
    idle_flush: Option<Duration>,
    expiry_compaction: Option<Duration>,
    tick: Duration,
) {
    let mut last_sync = Instant::now();
    let mut last_compaction = Instant::now();
    // The write the last idle flush covered (ms stamp), so a pause flushes once.
    let mut flushed_at = 0u64;
    loop {
        let stopping = activity.stop.load(Relaxed);
        if !stopping {
            std::thread::park_timeout(tick);
        }
        if let Some(interval) = wal_sync_interval {
            if (stopping || last_sync.elapsed() >= interval) && activity.unsynced.swap(false, Relaxed) {
                last_sync = Instant::now();
                if let Ok(store) = handle.get() {
                    if let Err(err) = store.sync_wal() {
                        activity.unsynced.store(true, Relaxed);
                        tracing::error!(%err, "background WAL sync failed; will retry");
                    }
                }
            }
        }
        if stopping {
            return;
        }
        if let (Some(idle), Some(quiet)) = (idle_flush, activity.since_last_write()) {
            let stamp = activity.last_write_ms.load(Relaxed);
            if quiet >= idle && stamp != flushed_at && activity.staged.load(Relaxed) == 0 {
                flushed_at = stamp;
                let started = Instant::now();
                match handle.get().and_then(|s| s.flush_memtables()) {
                    Ok(()) => tracing::debug!(took = ?started.elapsed(), "ingest paused; memtables written to disk"),
                    Err(err) => tracing::warn!(%err, "writing memtables to disk failed"),
                }
            }
        }
        if let Some(interval) = expiry_compaction {
            if last_compaction.elapsed() >= interval {
                last_compaction = Instant::now();
                let started = Instant::now();
                match handle.get().and_then(|s| s.compact_expired()) {
                    Ok(true) => tracing::debug!(took = ?started.elapsed(), "expired points compacted away"),
                    Ok(false) => {}
                    Err(err) => tracing::warn!(%err, "compacting expired points failed; will retry"),
                }
            }
        }
    }
}

impl Maintenance {
    pub fn stop(mut self) {
        self.activity.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
