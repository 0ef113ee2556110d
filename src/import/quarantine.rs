//! The rows imports set aside (spec §2), stored in the `import_quarantine` column
//! family: the raw record (≤ 64 KiB), where it was, why, and every problem of the row.
//! Sequence 0 of an import is its CSV header, so `format=raw` gives back a file that
//! imports again once its lines are fixed.
//!
//! Records are kept `kairosd.import.quarantine_retention` (30 days) by their import's
//! time (an import id is its start in ms, shifted): listings hide older ones at once and
//! a sweep deletes them (a range delete per source). A source's records may take
//! `kairosd.import.quarantine_max_bytes` (1 GiB); an import that would pass that fails,
//! since dropping a bad row would lose it.

use kairos_protocols::import::{Kind, Rejected};
use serde::{Deserialize, Serialize};

use super::ids;
use crate::storage::imports::{self, ImportBatch, CF_IMPORT_QUARANTINE};
use crate::storage::{Store, StoreError};

/// One stored record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub source: String,
    pub import_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// A CSV header (sequence 0), kept for `format=raw`; not a bad row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub header: bool,
    /// Where a Kafka source's bad message sat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaAt>,
    #[serde(flatten)]
    pub record: Rejected,
}

/// A Kafka message's place: topic, partition, offset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KafkaAt {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Which records a listing or a delete takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub source: Option<String>,
    pub import: Option<u64>,
    pub kind: Option<Kind>,
    /// Records of imports before this id have expired (see [`oldest_kept`]).
    pub not_before: u64,
}

/// The first import id whose records are still kept at `now` (ms) under `retention_ms`.
pub fn oldest_kept(retention_ms: Option<u64>, now: i64) -> u64 {
    match retention_ms {
        None => 0,
        Some(ms) => (now.max(0) as u64).saturating_sub(ms) << 16,
    }
}

impl Filter {
    fn prefix(&self) -> Vec<u8> {
        imports::quarantine_prefix(self.source.as_deref(), self.import)
    }

    fn takes(&self, key: &[u8], e: &Entry) -> bool {
        let Some((source, import, _)) = imports::parse_quarantine_key(key) else {
            return false;
        };
        import >= self.not_before
            && self.source.as_ref().is_none_or(|s| *s == source)
            && self.import.is_none_or(|i| i == import)
            && (e.header || self.kind.is_none_or(|k| k == e.record.kind))
    }
}

/// Adds records of one import to `batch`; returns the bytes they take (key and value).
pub fn add(store: &Store, batch: &mut ImportBatch, source: &str, import: u64, seq: u64, entry: &Entry) -> u64 {
    let json = serde_json::to_vec(entry).expect("a quarantine entry serializes");
    let key = imports::quarantine_key(source, import, seq);
    batch.put(store, CF_IMPORT_QUARANTINE, &key, &json);
    (key.len() + json.len()) as u64
}

/// The bytes (keys and values) `source`'s records take now.
pub fn bytes_of(store: &Store, source: &str) -> Result<u64, StoreError> {
    let mut total = 0u64;
    store.import_scan(
        CF_IMPORT_QUARANTINE,
        &imports::quarantine_prefix(Some(source), None),
        |k, v| {
            total += (k.len() + v.len()) as u64;
            true
        },
    )?;
    Ok(total)
}

/// Deletes every record of an import before `not_before` (see [`oldest_kept`]), one
/// range per source that has any; returns how many sources had some.
pub fn expire(store: &Store, not_before: u64) -> Result<usize, StoreError> {
    let mut ranges = Vec::new();
    let mut it = store.db.raw_iterator_cf(store.cf(CF_IMPORT_QUARANTINE));
    it.seek_to_first();
    while let Some(key) = it.key() {
        let Some((source, first_import, _)) = imports::parse_quarantine_key(key) else {
            it.next();
            continue;
        };
        let start = imports::quarantine_prefix(Some(&source), None);
        if first_import < not_before {
            ranges.push((
                start.clone(),
                imports::quarantine_prefix(Some(&source), Some(not_before)),
            ));
        }
        // Past every key of this source: its prefix, then more than 16 bytes of 0xff.
        let mut next = start;
        next.extend_from_slice(&[0xff; 17]);
        it.seek(&next);
    }
    it.status()?;
    drop(it);
    let n = ranges.len();
    if n > 0 {
        store.delete_quarantine_ranges(&ranges)?;
    }
    Ok(n)
}

/// Records matching `filter`, oldest import first, at most `limit` bad rows (headers
/// are given with the rows of their import and not counted).
pub fn list(store: &Store, filter: &Filter, limit: usize) -> Result<Vec<(Vec<u8>, Entry)>, StoreError> {
    let mut out = Vec::new();
    let mut rows = 0usize;
    let mut bad = 0usize;
    store.import_scan(CF_IMPORT_QUARANTINE, &filter.prefix(), |k, v| {
        let Ok(e) = serde_json::from_slice::<Entry>(v) else {
            bad += 1;
            return true;
        };
        if !filter.takes(k, &e) {
            return true;
        }
        if !e.header {
            if rows >= limit {
                return false;
            }
            rows += 1;
        }
        out.push((k.to_vec(), e));
        true
    })?;
    if bad > 0 {
        tracing::warn!(bad, "unreadable quarantine records left out of a listing");
    }
    // A header whose import has no listed row is not worth giving.
    let with_rows: std::collections::HashSet<String> = out
        .iter()
        .filter(|(_, e)| !e.header)
        .map(|(_, e)| e.import_id.clone())
        .collect();
    out.retain(|(_, e)| !e.header || with_rows.contains(&e.import_id));
    Ok(out)
}

/// Deletes the records matching `filter` (a kind filter keeps the headers); returns how many rows went.
pub fn delete(store: &Store, filter: &Filter) -> Result<usize, StoreError> {
    let entries = list(store, filter, usize::MAX)?;
    let keys: Vec<Vec<u8>> = entries
        .iter()
        .filter(|(_, e)| !e.header || filter.kind.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    let rows = entries.iter().filter(|(_, e)| !e.header).count();
    store.delete_quarantine_keys(&keys)?;
    Ok(rows)
}

/// The original lines: each import's header (once while it does not change), then its
/// bad records, byte for byte.
pub fn raw(entries: &[(Vec<u8>, Entry)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut last_header: Option<&[u8]> = None;
    for (_, e) in entries {
        if e.header {
            if last_header != Some(e.record.raw.as_slice()) {
                out.extend_from_slice(&e.record.raw);
                last_header = Some(&e.record.raw);
            }
            continue;
        }
        out.extend_from_slice(&e.record.raw);
        if !e.record.raw.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out
}

/// The import id of a key, printed.
pub fn import_of(key: &[u8]) -> Option<String> {
    imports::parse_quarantine_key(key).map(|(_, i, _)| ids::format(i))
}
