//! The column families of file imports (spec `import.md` §1, §2, §4): stored sources,
//! import jobs, the rows imports set aside, and the per-import staging area.
//!
//! Sources, jobs and quarantine records are small JSON values kept in the store (not in
//! side files), so a backup of the data directory holds them and a restart finds them.
//! The staging area holds the points of imports in progress, keyed so that RocksDB
//! sorts them by series and time for the publish step ([`crate::import`] explains why
//! imports are staged there and published by the writer in one write).
//!
//! Only the import code writes these column families, and the writer's publish is the
//! only write that moves points out of the staging area into `points`.

use rocksdb::{DBCompressionType, Options, WriteBatch, WriteOptions};

use super::keys::{self, ordered_i64};
use super::{Store, StoreError};

/// Sources by name: key = the name's bytes, value = the source's JSON.
pub const CF_SOURCES: &str = "import_sources";
/// Import jobs: key = the 8-byte import id, value = the job's JSON.
pub const CF_IMPORT_JOBS: &str = "import_jobs";
/// Rows imports set aside: key = [`quarantine_key`], value = the record's JSON.
pub const CF_IMPORT_QUARANTINE: &str = "import_quarantine";
/// Points of imports not yet published: key = [`staging_key`], value = a points chunk.
pub const CF_IMPORT_STAGING: &str = "import_staging";

/// Kafka sources' next offsets: key = [`kafka_offset_key`], value = the next offset
/// (8 bytes, big-endian), written in the same write as the points it follows.
pub const CF_KAFKA_OFFSETS: &str = "kafka_offsets";

const OURS: [&str; 5] = [
    CF_SOURCES,
    CF_IMPORT_JOBS,
    CF_IMPORT_QUARANTINE,
    CF_IMPORT_STAGING,
    CF_KAFKA_OFFSETS,
];

/// `kafka_offsets` key: the source name (escaped and terminated), the partition.
pub fn kafka_offset_key(source: &str, partition: i32) -> Vec<u8> {
    let mut key = quarantine_prefix(Some(source), None);
    key.extend_from_slice(&(partition as u32).to_be_bytes());
    key
}

/// Splits a `kafka_offsets` key into (source, partition).
pub fn parse_kafka_offset_key(key: &[u8]) -> Option<(String, i32)> {
    let (source, rest) = kairos_protocols::series_key::read_str(key).ok()?;
    Some((source, u32::from_be_bytes(rest.try_into().ok()?) as i32))
}

/// Staging records are written once, read once in order and range-deleted; they never
/// need the WAL (an import does not survive a restart) nor strong compression.
pub(crate) fn import_staging_cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_write_buffer_size(32 << 20);
    opts.set_max_write_buffer_number(3);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts
}

/// `import_staging` key: import id, series key length, series key, bucket start, run.
/// A run is one sorted batch of the file (see [`crate::import::engine`]); its value is
/// the run's points of that (series, bucket) as a points chunk. Runs are numbered in
/// file order, so the publish step can let the last (append) or the first (ledger)
/// write of a repeated timestamp win.
pub fn staging_key(out: &mut Vec<u8>, import: u64, series: &[u8], bucket: i64, run: u32) {
    out.clear();
    out.extend_from_slice(&import.to_be_bytes());
    out.extend_from_slice(&(series.len() as u32).to_be_bytes());
    out.extend_from_slice(series);
    out.extend_from_slice(&ordered_i64(bucket));
    out.extend_from_slice(&run.to_be_bytes());
}

/// Splits a staging key into (series key, bucket start, run).
pub fn parse_staging_key(key: &[u8]) -> Option<(&[u8], i64, u32)> {
    let len = u32::from_be_bytes(key.get(8..12)?.try_into().ok()?) as usize;
    let series = key.get(12..12 + len)?;
    let rest = key.get(12 + len..)?;
    if rest.len() != 12 {
        return None;
    }
    let bucket = keys::from_ordered_i64(rest[..8].try_into().ok()?);
    let run = u32::from_be_bytes(rest[8..].try_into().ok()?);
    Some((series, bucket, run))
}

/// `import_quarantine` key: the source name (escaped and terminated, so no name is a
/// prefix of another's), the import id, the record's sequence in its import (0 is the
/// CSV header, kept for `format=raw`).
pub fn quarantine_key(source: &str, import: u64, seq: u64) -> Vec<u8> {
    let mut key = quarantine_prefix(Some(source), None);
    key.extend_from_slice(&import.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The prefix of every record of `source` (all sources: empty), of `import` if given.
pub fn quarantine_prefix(source: Option<&str>, import: Option<u64>) -> Vec<u8> {
    let mut key = Vec::new();
    if let Some(s) = source {
        kairos_protocols::series_key::push_str(&mut key, s);
        if let Some(i) = import {
            key.extend_from_slice(&i.to_be_bytes());
        }
    }
    key
}

/// Splits a quarantine key into (source, import id, sequence).
pub fn parse_quarantine_key(key: &[u8]) -> Option<(String, u64, u64)> {
    let (source, rest) = kairos_protocols::series_key::read_str(key).ok()?;
    if rest.len() != 16 {
        return None;
    }
    Some((
        source,
        u64::from_be_bytes(rest[..8].try_into().ok()?),
        u64::from_be_bytes(rest[8..].try_into().ok()?),
    ))
}

/// A group of writes to the import column families, applied at once.
#[derive(Default)]
pub struct ImportBatch {
    batch: WriteBatch,
}

impl ImportBatch {
    pub fn put(&mut self, store: &Store, cf: &'static str, key: &[u8], value: &[u8]) {
        debug_assert!(OURS.contains(&cf));
        self.batch.put_cf(store.cf(cf), key, value);
    }

    pub fn delete(&mut self, store: &Store, cf: &'static str, key: &[u8]) {
        debug_assert!(OURS.contains(&cf));
        self.batch.delete_cf(store.cf(cf), key);
    }

    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    pub fn size_in_bytes(&self) -> usize {
        self.batch.size_in_bytes()
    }
}

impl Store {
    /// Reads one value of an import column family.
    pub fn import_get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        debug_assert!(OURS.contains(&cf));
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Applies `batch`; `durable` puts it through the WAL (sources, jobs, quarantine),
    /// else not (staged points: an import does not outlive the process anyway).
    pub fn import_write(&self, batch: ImportBatch, durable: bool) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.disable_wal(!durable);
        self.db.write_opt(batch.batch, &opts)?;
        Ok(())
    }

    /// Calls `f` with every record of `cf` under `prefix`, in key order, until it returns false.
    pub fn import_scan(
        &self,
        cf: &'static str,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        debug_assert!(OURS.contains(&cf));
        self.view().scan_prefix(cf, prefix, f)
    }

    /// Drops every staged point of `import` (an import that failed or was cancelled).
    pub fn drop_import_staging(&self, import: u64) -> Result<(), StoreError> {
        let cf = self.cf(CF_IMPORT_STAGING);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, import.to_be_bytes().to_vec(), staging_end(import));
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Drops the whole staging area (at start: no import survives a restart).
    pub fn clear_import_staging(&self) -> Result<(), StoreError> {
        let cf = self.cf(CF_IMPORT_STAGING);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, Vec::new(), vec![0xffu8; 9]);
        self.db.write(batch)?;
        self.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Deletes the quarantine records in each `[start, end)` (their retention passed).
    pub fn delete_quarantine_ranges(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let cf = self.cf(CF_IMPORT_QUARANTINE);
        let mut batch = WriteBatch::default();
        for (start, end) in ranges {
            batch.delete_range_cf(cf, start, end);
        }
        self.write(batch, false)
    }

    /// Deletes the quarantine records between two keys (`DELETE /api/v1/quarantine`).
    pub fn delete_quarantine_keys(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let cf = self.cf(CF_IMPORT_QUARANTINE);
        let mut batch = WriteBatch::default();
        for k in keys {
            batch.delete_cf(cf, k);
        }
        self.write(batch, false)
    }
}

/// The exclusive end of every staging key of `import`.
pub fn staging_end(import: u64) -> Vec<u8> {
    match import.checked_add(1) {
        Some(n) => n.to_be_bytes().to_vec(),
        None => vec![0xff; 9],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_keys_sort_by_series_then_bucket_then_run() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        staging_key(&mut a, 7, b"s1", -5, 3);
        staging_key(&mut b, 7, b"s1", 10, 0);
        assert!(a < b);
        assert_eq!(parse_staging_key(&a), Some((&b"s1"[..], -5, 3)));
        staging_key(&mut b, 7, b"s1", -5, 4);
        assert!(a < b);
        let q = quarantine_key("w", 9, 2);
        assert_eq!(parse_quarantine_key(&q), Some(("w".to_string(), 9, 2)));
        assert!(q.starts_with(&quarantine_prefix(Some("w"), Some(9))));
        assert!(!q.starts_with(&quarantine_prefix(Some("w2"), None)));
    }
}
