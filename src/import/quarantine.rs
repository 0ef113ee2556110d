//! The rows imports set aside (spec §2), stored in the `import_quarantine` column
//! family: the raw record (≤ 64 KiB), where it was, why, and every problem of the row.
//! Sequence 0 of an import is its CSV header, so `format=raw` gives back a file that
//! imports again once its lines are fixed.

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
}

impl Filter {
    fn prefix(&self) -> Vec<u8> {
        imports::quarantine_prefix(self.source.as_deref(), self.import)
    }

    fn takes(&self, key: &[u8], e: &Entry) -> bool {
        let Some((source, import, _)) = imports::parse_quarantine_key(key) else {
            return false;
        };
        self.source.as_ref().is_none_or(|s| *s == source)
            && self.import.is_none_or(|i| i == import)
            && (e.header || self.kind.is_none_or(|k| k == e.record.kind))
    }
}

/// Adds records of one import to `batch`.
pub fn add(store: &Store, batch: &mut ImportBatch, source: &str, import: u64, seq: u64, entry: &Entry) {
    let json = serde_json::to_vec(entry).expect("a quarantine entry serializes");
    batch.put(
        store,
        CF_IMPORT_QUARANTINE,
        &imports::quarantine_key(source, import, seq),
        &json,
    );
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
