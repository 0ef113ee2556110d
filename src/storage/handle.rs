//! The store as the rest of the daemon holds it: an [`Arc<Store>`] that the writer can
//! close and open again.
//!
//! RocksDB keeps a background error (a WAL write that hit a full disk, a failed flush)
//! until the database is resumed or reopened, answering every later write with `IO
//! error: Writer has previous error.`; its own recovery waits for a whole memtable's
//! worth of free space. The writer therefore reopens the store itself once space is
//! back (see [`crate::writer`]). Readers take a fresh `Arc` per request, so a reopen
//! waits only for the queries already running; while it runs they get
//! [`StoreError::Unavailable`] (503).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::faults::Faults;
use super::{Store, StoreError};

pub struct StoreHandle {
    current: RwLock<Option<Arc<Store>>>,
    dir: PathBuf,
    bucket_width: i64,
    faults: Arc<Faults>,
}

impl StoreHandle {
    /// Opens the store in `dir` (see [`Store::open`]) with `faults` armed on it.
    pub fn open(dir: &Path, bucket_width: i64, faults: Faults) -> Result<StoreHandle, StoreError> {
        let faults = Arc::new(faults);
        let store = Store::open_with(dir, bucket_width, Arc::clone(&faults))?;
        Ok(StoreHandle {
            bucket_width: store.bucket_width(),
            current: RwLock::new(Some(Arc::new(store))),
            dir: dir.to_path_buf(),
            faults,
        })
    }

    /// The open store, or `Unavailable` while the writer reopens it.
    pub fn get(&self) -> Result<Arc<Store>, StoreError> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Unavailable)
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes `old` (the store the caller holds, if any) once the readers using it are
    /// done, at most `wait`, and opens the store again. Readers get `Unavailable`
    /// meanwhile. If readers hold on longer, `old` is put back and `Busy` returned; if
    /// opening fails, the handle stays empty and the caller tries again later.
    pub fn reopen(&self, old: Option<Arc<Store>>, wait: Duration) -> Result<Arc<Store>, StoreError> {
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        let taken = slot.take();
        drop(slot);
        drop(taken);
        if let Some(old) = old {
            let deadline = Instant::now() + wait;
            while Arc::strong_count(&old) > 1 {
                if Instant::now() >= deadline {
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(old);
                    return Err(StoreError::Busy);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
        }
        let store = Arc::new(Store::open_with(
            &self.dir,
            self.bucket_width,
            Arc::clone(&self.faults),
        )?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&store));
        Ok(store)
    }
}
