//! The writer thread: group commit of every sender's batches into one RocksDB write.
//!
//! It is the only code that allocates series ids, so the dictionary needs no lock: a
//! plain in-memory map caches canonical series key → id, falling back to the
//! `series` column family on a miss. Each flush groups its points by (series, time
//! bucket) and writes one merge operand per group, so RocksDB sees a handful of
//! operands per series per second rather than a key per point.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use kairos_protocols::{series_key, PointBatch, Value};
use rocksdb::WriteBatch;

use crate::ingest::{IngestReceiver, WriteFailed, WriteRequest};
use crate::metrics::Metrics;
use crate::storage::keys::{self, NameKind, SeriesId};
use crate::storage::{
    chunk, Store, StoreError, CF_META, CF_NAMES, CF_POINTS, CF_SERIES, CF_SERIES_BY_ID, CF_TAG_INDEX,
};

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Commit once this many points are pending.
    pub batch_points: usize,
    /// Commit at the latest this long after the first pending point arrived.
    pub flush_interval: Duration,
    /// ... or this long, when a sender is waiting for the commit (REST). Telnet senders
    /// wait for nothing, so their points can gather into bigger chunks.
    pub ack_flush_interval: Duration,
    /// fsync the WAL on every commit.
    pub sync: bool,
    /// Without `sync`, fsync the WAL this often while there are unsynced writes.
    pub wal_sync_interval: Option<Duration>,
    /// Write the memtables to disk once no point has arrived for this long.
    pub idle_flush: Option<Duration>,
}

/// One point of a flush, keyed for sorting: `seq` keeps arrival order so the last
/// write to a timestamp wins.
#[derive(Clone, Copy)]
struct Entry {
    series: SeriesId,
    ts: i64,
    seq: u32,
    value: Value,
}

pub struct Writer {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    config: WriterConfig,
    series: HashMap<Box<[u8]>, SeriesId>,
    next_id: SeriesId,
    entries: Vec<Entry>,
    created: Vec<Box<[u8]>>,
    points: Vec<(i64, Value)>,
    chunk: Vec<u8>,
}

/// Starts the writer thread; it runs until every [`crate::ingest::IngestHandle`] is
/// dropped and the queue is drained.
pub fn spawn(
    store: Arc<Store>,
    rx: IngestReceiver,
    metrics: Arc<Metrics>,
    config: WriterConfig,
) -> Result<JoinHandle<()>, StoreError> {
    let writer = Writer::new(store, metrics, config)?;
    Ok(std::thread::Builder::new()
        .name("kairosd-writer".into())
        .spawn(move || writer.run(rx))
        .expect("spawning the writer thread"))
}

impl Writer {
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, config: WriterConfig) -> Result<Writer, StoreError> {
        let next_id = store.next_series_id()?;
        Ok(Writer {
            store,
            metrics,
            config,
            series: HashMap::new(),
            next_id,
            entries: Vec::new(),
            created: Vec::new(),
            points: Vec::new(),
            chunk: Vec::new(),
        })
    }

    fn run(mut self, rx: IngestReceiver) {
        let mut pending: Vec<WriteRequest> = Vec::new();
        let mut pending_points = 0usize;
        let mut flush_at: Option<Instant> = None;
        let mut unsynced_since: Option<Instant> = None;
        let mut idle_since: Option<Instant> = None;
        loop {
            let wal_at = unsynced_since.zip(self.config.wal_sync_interval).map(|(t, i)| t + i);
            let idle_at = idle_since.zip(self.config.idle_flush).map(|(t, i)| t + i);
            let deadline = [flush_at, wal_at, idle_at].into_iter().flatten().min();
            let received = match deadline {
                Some(d) => rx.recv_deadline(d),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let disconnected = match received {
                Ok(req) => {
                    let now = Instant::now();
                    let mut at = *flush_at.get_or_insert(now + self.config.flush_interval);
                    if req.ack.is_some() {
                        at = at.min(now + self.config.ack_flush_interval);
                    }
                    flush_at = Some(at);
                    pending_points += req.batch.len();
                    pending.push(req);
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let now = Instant::now();
            if !pending.is_empty()
                && (disconnected || pending_points >= self.config.batch_points || flush_at.is_some_and(|t| now >= t))
            {
                self.flush(&mut pending);
                pending_points = 0;
                flush_at = None;
                idle_since = Some(now);
                if !self.config.sync {
                    unsynced_since.get_or_insert(now);
                }
            }
            if unsynced_since.is_some() && (disconnected || wal_at.is_some_and(|t| now >= t)) {
                if let Err(err) = self.store.sync_wal() {
                    tracing::error!(%err, "background WAL sync failed");
                }
                unsynced_since = None;
            }
            if pending.is_empty() && idle_at.is_some_and(|t| now >= t) {
                idle_since = None;
                let started = Instant::now();
                match self.store.flush_memtables() {
                    Ok(()) => tracing::debug!(took = ?started.elapsed(), "ingest paused; memtables written to disk"),
                    Err(err) => tracing::error!(%err, "writing memtables to disk failed"),
                }
            }
            if disconnected {
                tracing::info!("writer drained its queue and stopped");
                return;
            }
        }
    }

    /// Commits every pending request in one WriteBatch, then answers their acks.
    fn flush(&mut self, pending: &mut Vec<WriteRequest>) {
        let started = Instant::now();
        let count: usize = pending.iter().map(|r| r.batch.len()).sum();
        let result = self.commit(pending.iter().map(|r| &r.batch));
        if let Err(err) = &result {
            self.metrics.flush_errors.fetch_add(1, Relaxed);
            tracing::error!(%err, points = count, "group commit failed; its senders get an error");
            // Series allocated in this flush were never stored.
            for key in self.created.drain(..) {
                self.series.remove(&key);
            }
            self.next_id = self.store.next_series_id().unwrap_or(self.next_id);
        } else {
            self.metrics.points_written.fetch_add(count as u64, Relaxed);
            self.metrics
                .series_created
                .fetch_add(self.created.len() as u64, Relaxed);
            self.created.clear();
        }
        self.metrics.observe_flush(started.elapsed().as_secs_f64());
        self.metrics.inflight_points.fetch_sub(count as u64, Relaxed);
        let result = result.map_err(|e| WriteFailed(e.to_string()));
        for req in pending.drain(..) {
            if let Some(ack) = req.ack {
                let _ = ack.send(result.clone());
            }
            // Dropping `req.permit` here hands its queue room back to the senders.
        }
    }

    /// Commits `batches` synchronously, outside the queue (benchmarks and tools).
    pub fn write_batches(&mut self, batches: &[PointBatch]) -> Result<(), StoreError> {
        let result = self.commit(batches.iter());
        if result.is_err() {
            for key in self.created.drain(..) {
                self.series.remove(&key);
            }
            self.next_id = self.store.next_series_id()?;
        }
        self.created.clear();
        result
    }

    fn commit<'a>(&mut self, batches: impl Iterator<Item = &'a PointBatch>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        self.entries.clear();
        let mut seq = 0u32;
        for points in batches {
            let mut last: Option<(&[u8], SeriesId)> = None;
            for rec in points.records() {
                let key = points.key(rec);
                let series = match last {
                    Some((k, id)) if k.as_ptr() == key.as_ptr() && k.len() == key.len() => id,
                    _ => self.resolve(key, &mut batch)?,
                };
                last = Some((key, series));
                self.entries.push(Entry {
                    series,
                    ts: rec.timestamp,
                    seq,
                    value: rec.value,
                });
                seq = seq.wrapping_add(1);
            }
        }
        if !self.created.is_empty() {
            batch.put_cf(
                self.store.cf(CF_META),
                crate::storage::META_NEXT_SERIES_ID,
                self.next_id.to_be_bytes(),
            );
        }
        self.entries.sort_unstable_by_key(|e| (e.series, e.ts, e.seq));
        let width = self.store.bucket_width();
        let points_cf = self.store.cf(CF_POINTS);
        let mut i = 0;
        while i < self.entries.len() {
            let Entry { series, ts, .. } = self.entries[i];
            let bucket = keys::bucket_start(ts, width);
            self.points.clear();
            while i < self.entries.len() {
                let e = self.entries[i];
                if e.series != series || keys::bucket_start(e.ts, width) != bucket {
                    break;
                }
                // Sorted by (ts, seq): a repeated timestamp overwrites, last write wins.
                match self.points.last_mut() {
                    Some(last) if last.0 == e.ts => last.1 = e.value,
                    _ => self.points.push((e.ts, e.value)),
                }
                i += 1;
            }
            self.chunk.clear();
            chunk::encode(&self.points, &mut self.chunk);
            batch.merge_cf(points_cf, keys::point_key(series, bucket), &self.chunk);
        }
        self.store.write(batch, self.config.sync)
    }

    /// The id of series `key`, allocating it (and writing its dictionary and index
    /// entries into `batch`) if it is new.
    fn resolve(&mut self, key: &[u8], batch: &mut WriteBatch) -> Result<SeriesId, StoreError> {
        if let Some(&id) = self.series.get(key) {
            return Ok(id);
        }
        if let Some(id) = self.store.series_id(key)? {
            self.series.insert(key.into(), id);
            return Ok(id);
        }
        let id = self.next_id;
        self.next_id += 1;
        let (metric, tags) = series_key::decode(key).map_err(|_| StoreError::Corrupt {
            cf: CF_SERIES,
            what: "series key from a listener",
        })?;
        let store = &self.store;
        batch.put_cf(store.cf(CF_SERIES), key, id.to_be_bytes());
        batch.put_cf(store.cf(CF_SERIES_BY_ID), id.to_be_bytes(), key);
        let names = store.cf(CF_NAMES);
        batch.put_cf(names, keys::name_key(NameKind::Metric, &metric), []);
        let tag_index = store.cf(CF_TAG_INDEX);
        for (k, v) in &tags {
            batch.put_cf(tag_index, keys::tag_index_key(&metric, k, v, id), []);
            batch.put_cf(names, keys::name_key(NameKind::TagName, k), []);
            batch.put_cf(names, keys::name_key(NameKind::TagValue, v), []);
        }
        let key: Box<[u8]> = key.into();
        self.created.push(key.clone());
        self.series.insert(key, id);
        Ok(id)
    }
}
