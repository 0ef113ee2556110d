//! Where each partition of a Kafka source resumes: its next offset, kept in the
//! `kafka_offsets` column family and written only in the same RocksDB write as the
//! points of the messages before it (see [`crate::ingest::Record`]). So after a crash
//! the stored offset is exactly past what is stored: nothing lost, nothing twice.

use std::collections::BTreeMap;

use kairos_protocols::import::Rejected;

use crate::import::{ids, quarantine};
use crate::ingest::Record;
use crate::storage::imports::{self, ImportBatch, CF_IMPORT_QUARANTINE, CF_KAFKA_OFFSETS};
use crate::storage::{Store, StoreError};

/// The stored next offset of every partition of `source`.
pub fn load(store: &Store, source: &str) -> Result<BTreeMap<i32, i64>, StoreError> {
    let mut out = BTreeMap::new();
    let prefix = imports::quarantine_prefix(Some(source), None);
    store.import_scan(CF_KAFKA_OFFSETS, &prefix, |k, v| {
        if let (Some((s, p)), Ok(b)) = (imports::parse_kafka_offset_key(k), <[u8; 8]>::try_from(v)) {
            if s == source {
                out.insert(p, i64::from_be_bytes(b));
            }
        }
        true
    })?;
    Ok(out)
}

/// Forgets the offsets of `source` (the source was removed: a new one of that name
/// starts where its `start` says).
pub fn clear(store: &Store, source: &str) -> Result<(), StoreError> {
    let mut batch = ImportBatch::default();
    for p in load(store, source)?.into_keys() {
        batch.delete(store, CF_KAFKA_OFFSETS, &imports::kafka_offset_key(source, p));
    }
    if batch.is_empty() {
        return Ok(());
    }
    store.import_write(batch, true)
}

/// The record that moves `partition`'s next offset to `next`.
pub fn record(source: &str, partition: i32, next: i64) -> Record {
    Record {
        cf: CF_KAFKA_OFFSETS,
        key: imports::kafka_offset_key(source, partition),
        value: next.to_be_bytes().to_vec(),
    }
}

/// The import id a partition's quarantine records are filed under (`import_id=` of
/// `GET /api/v1/quarantine` picks one partition's bad messages). The top bit keeps
/// them apart from file imports, whose ids are times.
pub fn quarantine_import(partition: i32) -> u64 {
    (1 << 63) | partition as u32 as u64
}

/// Bad rows one message may file (more are counted but not stored).
pub const MAX_REJECTS_PER_MESSAGE: usize = 1 << 16;

/// The quarantine record of one refused row of one message: the sequence is the
/// offset then the row, so re-consuming a message after a crash overwrites its records
/// instead of adding new ones.
pub fn quarantine_record(
    source: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    index: usize,
    rejected: Rejected,
    now_ms: i64,
) -> Record {
    let import = quarantine_import(partition);
    let seq = ((offset as u64) << 16) | (index as u64 & 0xffff);
    let entry = quarantine::Entry {
        source: source.to_owned(),
        import_id: ids::format(import),
        file: Some(topic.to_owned()),
        created_at: now_ms,
        header: false,
        kafka: Some(quarantine::KafkaAt {
            topic: topic.to_owned(),
            partition,
            offset,
        }),
        record: rejected,
    };
    Record {
        cf: CF_IMPORT_QUARANTINE,
        key: imports::quarantine_key(source, import, seq),
        value: serde_json::to_vec(&entry).expect("a quarantine entry serializes"),
    }
}
