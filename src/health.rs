//! What `/api/v1/health/check` and `/api/v1/health/status` report: whether the writer
//! runs, whether its last write succeeded (and if not, why and since when), corrupt
//! records found, and RocksDB's background errors.
//!
//! The writer, the readers and the listeners update it; the health handlers only read
//! it, so a check costs no storage access beyond one property read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use crate::storage::StoreError;

#[derive(Default)]
pub struct Health {
    writer_running: AtomicBool,
    writer_died: AtomicBool,
    stopping: AtomicBool,
    no_space: AtomicBool,
    failing: Mutex<Option<Failure>>,
    /// Corrupt records found since the start (each reported, counted and moved aside).
    pub corrupt_records: AtomicU64,
    last_corruption: Mutex<Option<String>>,
    /// Commits and promotions retried after a failure.
    pub write_retries: AtomicU64,
    /// Times the writer closed and reopened the store to clear a storage error.
    pub store_reopens: AtomicU64,
}

struct Failure {
    since: Instant,
    what: &'static str,
    error: String,
}

impl Health {
    pub fn writer_started(&self) {
        self.writer_running.store(true, Relaxed);
    }

    /// The writer thread ended; `panicked` when it died rather than stopped.
    pub fn writer_ended(&self, panicked: bool) {
        self.writer_running.store(false, Relaxed);
        if panicked {
            self.writer_died.store(true, Relaxed);
        }
    }

    pub fn writer_died(&self) -> bool {
        self.writer_died.load(Relaxed)
    }

    pub fn writer_running(&self) -> bool {
        self.writer_running.load(Relaxed)
    }

    /// A clean shutdown has begun (the writer's end is then expected).
    pub fn set_stopping(&self) {
        self.stopping.store(true, Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// A commit, promotion or delete (`what`) failed and will be retried.
    pub fn write_failed(&self, what: &'static str, err: &StoreError) {
        self.no_space.store(err.is_no_space(), Relaxed);
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let since = failing.as_ref().map_or_else(Instant::now, |f| f.since);
        *failing = Some(Failure {
            since,
            what,
            error: err.to_string(),
        });
    }

    /// A write succeeded: whatever failed before is over.
    pub fn write_ok(&self) {
        if self.no_space.swap(false, Relaxed) | self.failing.lock().map(|f| f.is_some()).unwrap_or(true) {
            *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Writes fail because the disk is full (REST answers 507 without queueing).
    pub fn storage_full(&self) -> bool {
        self.no_space.load(Relaxed)
    }

    /// Writes are failing (and being retried).
    pub fn write_failing(&self) -> Option<String> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        failing.as_ref().map(|f| {
            format!(
                "{} failing for {:.1} s, retrying: {}",
                f.what,
                f.since.elapsed().as_secs_f64(),
                f.error
            )
        })
    }

    /// A record that could not be read: `cf` and `key` name it, `what` says what is wrong.
    pub fn corruption(&self, cf: &str, key: &[u8], what: &str) {
        self.corrupt_records.fetch_add(1, Relaxed);
        let text = format!("corrupt record in column family {cf}, key {}: {what}", hex(key));
        tracing::error!("{text}");
        *self.last_corruption.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }

    /// What stops writes now (the health check fails while there is any), one line each.
    pub fn write_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.writer_died() {
            out.push("writer thread died; kairosd is exiting".to_string());
        } else if !self.writer_running() && !self.stopping() {
            out.push("writer thread is not running".to_string());
        }
        if let Some(f) = self.write_failing() {
            if self.storage_full() {
                out.push(format!("disk full: {f}"));
            } else {
                out.push(f);
            }
        }
        out
    }

    /// Damage that costs data but not service: corrupt records found, and RocksDB's
    /// count of failed flushes and compactions since the store was opened.
    pub fn data_problems(&self, background_errors: Option<u64>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(n) = background_errors.filter(|&n| n > 0) {
            out.push(format!(
                "{n} background errors in RocksDB (a flush or compaction failed, e.g. on a corrupt block; \
                 see LOG in the data directory, and run kairosd check on the stopped store)"
            ));
        }
        let corrupt = self.corrupt_records.load(Relaxed);
        if corrupt > 0 {
            let last = self.last_corruption.lock().unwrap_or_else(|e| e.into_inner()).clone();
            out.push(format!(
                "{corrupt} corrupt records found and moved aside; last: {}",
                last.unwrap_or_default()
            ));
        }
        out
    }
}

/// A key as lowercase hex (keys are binary).
pub fn hex(key: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(key.len() * 2);
    for b in key {
        let _ = write!(s, "{b:02x}");
    }
    s
}
