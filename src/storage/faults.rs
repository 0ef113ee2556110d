//! Fault injection for the write API, so the writer's failure paths (a failed commit, a
//! failed promotion, a full disk, RocksDB's sticky "Writer has previous error") have
//! tests without a broken disk.
//!
//! Always compiled and always consulted (one relaxed atomic load per commit or
//! promotion, never per point), so the paths CI tests are the paths production runs.
//! Tests arm it through [`crate::storage::StoreHandle::faults`] in-process, or through
//! the `KAIROSD_FAULTS` environment variable for a daemon process (see [`Faults::from_env`]);
//! nothing is injected unless one of them asks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use super::StoreError;

#[derive(Debug, Default)]
pub struct Faults {
    /// Group commits still to fail.
    pub fail_commits: AtomicU64,
    /// Promotions still to fail.
    pub fail_promotions: AtomicU64,
    /// Injected failures say "No space left on device" (else a plain I/O error).
    pub no_space: AtomicBool,
    /// Like RocksDB after a WAL write error: once one injected failure happened, every
    /// later write of this store fails too, until the store is closed and reopened.
    pub sticky: AtomicBool,
    /// Set when a sticky failure happened; cleared when the store is reopened.
    pub(super) stuck: AtomicBool,
    /// The writer panics at its next commit (a dead writer must end the process).
    pub panic_writer: AtomicBool,
    /// Whether anything was ever armed: the fast path is one load of this.
    armed: AtomicBool,
}

/// Which write is asking.
#[derive(Debug, Clone, Copy)]
pub(super) enum Site {
    Commit,
    Promotion,
}

impl Faults {
    /// Reads `KAIROSD_FAULTS`, a comma list of `fail_commits=N`, `fail_promotions=N`,
    /// `no_space`, `sticky`, `panic_writer`. For tests that drive a daemon process.
    pub fn from_env() -> Faults {
        let f = Faults::default();
        if let Ok(spec) = std::env::var("KAIROSD_FAULTS") {
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once('=').unwrap_or((part, "1"));
                let n = v.parse::<u64>().unwrap_or(1);
                match k {
                    "fail_commits" => f.fail_commits.store(n, Relaxed),
                    "fail_promotions" => f.fail_promotions.store(n, Relaxed),
                    "no_space" => f.no_space.store(n != 0, Relaxed),
                    "sticky" => f.sticky.store(n != 0, Relaxed),
                    "panic_writer" => f.panic_writer.store(n != 0, Relaxed),
                    other => tracing::warn!("KAIROSD_FAULTS: unknown fault {other:?} ignored"),
                }
            }
            tracing::warn!(spec, "fault injection armed (KAIROSD_FAULTS); for tests only");
            f.arm();
        }
        f
    }

    /// Makes the values set so far take effect.
    pub fn arm(&self) {
        self.armed.store(true, Relaxed);
    }

    /// The error an injected failure at `site` returns, if one is due.
    pub(super) fn check(&self, site: Site) -> Result<(), StoreError> {
        if !self.armed.load(Relaxed) {
            return Ok(());
        }
        let counter = match site {
            Site::Commit => &self.fail_commits,
            Site::Promotion => &self.fail_promotions,
        };
        let due = self.stuck.load(Relaxed) || counter.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok();
        if !due {
            return Ok(());
        }
        let message = if self.stuck.load(Relaxed) {
            "IO error: Writer has previous error. (injected)".to_string()
        } else if self.no_space.load(Relaxed) {
            "IO error: No space left on device (injected)".to_string()
        } else {
            "IO error: Input/output error (injected)".to_string()
        };
        if self.sticky.load(Relaxed) {
            self.stuck.store(true, Relaxed);
        }
        Err(StoreError::Injected(message))
    }

    /// Whether the writer should panic now (taken once).
    pub fn take_writer_panic(&self) -> bool {
        self.armed.load(Relaxed) && self.panic_writer.swap(false, Relaxed)
    }
}
