//! Unreadable records: found by readers (queries, recovery, the merge operator's
//! salvage envelopes), reported once each with their column family and key, and moved
//! aside by the writer into the `quarantine` column family, never silently deleted.
//!
//! Readers cannot write (the writer owns the order of writes: moving a `points` value
//! aside between a promotion's read and write would lose the promoted operand), so they
//! skip what they cannot read, serve everything else, and queue the key here; the
//! writer takes the queue on its next pass ([`Store::quarantine`]).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rocksdb::WriteBatch;

use super::{chunk, staging, Store, StoreError, CF_POINTS, CF_QUARANTINE, CF_STAGING};

/// One unreadable record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BadRecord {
    pub cf: &'static str,
    pub key: Vec<u8>,
    pub what: String,
}

#[derive(Default)]
pub struct Corruptions {
    pending: Mutex<Vec<BadRecord>>,
    /// (cf, key) already reported, so a record read by every query is reported once.
    seen: Mutex<HashSet<(&'static str, Vec<u8>)>>,
}

impl Corruptions {
    /// A reader found `key` of `cf` unreadable (`what` says how).
    pub fn report(&self, cf: &'static str, key: &[u8], what: impl ToString) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.insert((cf, key.to_vec())) {
            return;
        }
        drop(seen);
        let what = what.to_string();
        tracing::error!(cf, key = %crate::health::hex(key), %what, "unreadable record; skipped, and moved aside by the writer");
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push(BadRecord {
            cf,
            key: key.to_vec(),
            what,
        });
    }

    /// Whether reports wait for the writer.
    pub fn any_pending(&self) -> bool {
        !self.pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// The reports the writer has not handled yet.
    pub fn take(&self) -> Vec<BadRecord> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Lets the key be reported again (after it was moved aside, a new bad value is news).
    pub fn forget(&self, cf: &'static str, key: &[u8]) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(cf, key.to_vec()));
    }
}

/// The `quarantine` key for `key` of `cf`, moved at `nanos`; `part` tells apart the
/// pieces of one salvage envelope.
pub fn quarantine_key(cf: &str, key: &[u8], nanos: u64, part: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(cf.len() + key.len() + 14);
    k.extend_from_slice(cf.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k.push(0);
    k.extend_from_slice(&nanos.to_be_bytes());
    k.extend_from_slice(&part.to_be_bytes());
    k
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Store {
    /// Moves record `key` of `cf` to the quarantine column family if it is (still)
    /// unreadable, in one atomic write: a `points` salvage envelope leaves its readable
    /// chunk in place and its unreadable parts in quarantine; anything else unreadable
    /// is moved whole. Returns what was moved (`None` if the record is readable now or
    /// gone). Only the writer calls this (see the module doc).
    pub fn quarantine(&self, cf: &'static str, key: &[u8]) -> Result<Option<String>, StoreError> {
        let Some(value) = self.db.get_cf(self.cf(cf), key)? else {
            self.corrupt.forget(cf, key);
            return Ok(None);
        };
        let nanos = now_nanos();
        let q = self.cf(CF_QUARANTINE);
        let mut batch = WriteBatch::default();
        let moved = match cf {
            CF_POINTS => match chunk::salvaged(&value) {
                Some((good, bad)) => {
                    for (i, part) in bad.iter().enumerate() {
                        batch.put_cf(q, quarantine_key(cf, key, nanos, i as u32), part);
                    }
                    batch.put_cf(self.cf(cf), key, good);
                    format!("{} unreadable chunk operands (the readable points stay)", bad.len())
                }
                None => match chunk::count(&value) {
                    Ok(_) => {
                        self.corrupt.forget(cf, key);
                        return Ok(None);
                    }
                    Err(e) => {
                        batch.put_cf(q, quarantine_key(cf, key, nanos, 0), &value);
                        batch.delete_cf(self.cf(cf), key);
                        format!("the chunk ({e})")
                    }
                },
            },
            CF_STAGING => match staging::decode(&value, |_, _, _| {}) {
                Ok(()) => {
                    self.corrupt.forget(cf, key);
                    return Ok(None);
                }
                Err(e) => {
                    batch.put_cf(q, quarantine_key(cf, key, nanos, 0), &value);
                    batch.delete_cf(self.cf(cf), key);
                    format!("the staging record ({e})")
                }
            },
            _ => return self.quarantine_whole(cf, key),
        };
        self.write(batch, true)?;
        self.corrupt.forget(cf, key);
        Ok(Some(moved))
    }

    /// Moves record `key` of `cf` to quarantine whole, readable or not (a staging record
    /// that decodes but names series that were never allocated, say).
    pub fn quarantine_whole(&self, cf: &'static str, key: &[u8]) -> Result<Option<String>, StoreError> {
        let Some(value) = self.db.get_cf(self.cf(cf), key)? else {
            return Ok(None);
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_QUARANTINE), quarantine_key(cf, key, now_nanos(), 0), &value);
        batch.delete_cf(self.cf(cf), key);
        self.write(batch, true)?;
        self.corrupt.forget(cf, key);
        Ok(Some("the record".to_string()))
    }
}
