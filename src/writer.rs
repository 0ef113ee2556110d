//! The writer thread: group commit of every sender's batches into one RocksDB write.
//!
//! It is the only code that allocates series ids, so the dictionary needs no lock: a
//! plain in-memory map caches canonical series key → id, falling back to the
//! `series` column family on a miss.
//!
//! Each commit is cheap on purpose: the points go to the staging log as one record
//! (see [`crate::storage::staging`]), so the writer can commit as soon as its queue
//! is empty and a REST client waits microseconds, not a flush interval, for its 204.
//! Every promotion (by size or by time) then groups everything staged by (series,
//! time bucket) and writes one chunk merge operand per group, which keeps operands
//! large however small and frequent the commits were.
//!
//! # Failures
//!
//! A point a sender handed over is never dropped because a write failed. A failed
//! commit (full disk, I/O error) is retried with backoff while the batches keep their
//! permits, so telnet and Graphite connections stop reading and REST requests wait (a
//! 503 after `kairosd.writer.ack_timeout_ms`, a 507 up front while the disk is full).
//! After two failures in a row, and once the filesystem has room again, the store is
//! closed and reopened, which clears the background error RocksDB otherwise keeps
//! until a restart ("Writer has previous error"). A failed promotion loses nothing (the
//! staging records stay) and is retried with backoff, not on every loop pass. Health
//! ([`crate::health`]) says what is failing and since when; a writer that panics ends
//! the process (see [`crate::server`]). The WAL fsync and the idle flush run on their
//! own thread ([`crate::maintenance`]), not between commits.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use kairos_protocols::{series_key, PointBatch, Value};

use crate::ingest::{
    Committed, DeleteRequest, DeleteSpec, DeleteSummary, IngestReceiver, PublishRequest, Request, WriteFailed,
    WriteRequest,
};
use crate::maintenance::Activity;
use crate::metrics::Metrics;
use crate::storage::expiry::{self, TtlPolicy};
use crate::storage::keys::{self, NameKind, SeriesId};
use crate::storage::write::Commit;
use crate::storage::{chunk, free_bytes, staging, Store, StoreError, StoreHandle, CF_SERIES, CF_STAGING};

mod publish;

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most points in one commit.
    pub batch_points: usize,
    /// How long to wait for more points before a commit; zero commits as soon as the
    /// queue is empty.
    pub linger: Duration,
    /// Promote staged points to chunks once this many are staged ...
    pub promote_points: usize,
    /// ... or once the oldest staged point is this old.
    pub promote_interval: Duration,
    /// fsync the WAL on every commit.
    pub sync: bool,
}

/// First wait before a failed write is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Longest wait before a failed promotion is tried again.
const PROMOTE_RETRY_MAX: Duration = Duration::from_secs(5);
/// Least time between two reopens of the store.
const REOPEN_EVERY: Duration = Duration::from_secs(2);
/// Free bytes the data directory's filesystem needs before a reopen is worth trying.
const REOPEN_MIN_FREE: u64 = 1 << 20;
/// How long a reopen waits for running queries to let go of the store.
const REOPEN_WAIT: Duration = Duration::from_secs(10);
/// How often an idle writer looks for records readers reported unreadable.
const QUARANTINE_POLL: Duration = Duration::from_secs(1);
/// On shutdown, how long failing writes are still retried before the writer gives up.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(10);

/// One staged point, keyed for sorting: `seq` keeps arrival order so the last write
/// to a timestamp wins.
#[derive(Clone, Copy)]
struct Entry {
    series: SeriesId,
    ts: i64,
    seq: u32,
    value: Value,
    /// When the point stops being visible (ms since the epoch), 0 for never.
    expiry: i64,
}

pub struct Writer {
    /// `None` only while a reopen failed and is being retried.
    store: Option<Arc<Store>>,
    /// Where a reopened store comes from (the daemon's; benchmarks run without).
    handle: Option<Arc<StoreHandle>>,
    activity: Arc<Activity>,
    metrics: Arc<Metrics>,
    config: WriterConfig,
    /// Looked up once per point run. foldhash rather than SipHash: several times faster
    /// on short keys, and still seeded per process against crafted collisions.
    series: HashMap<Box<[u8]>, SeriesId, foldhash::fast::RandomState>,
    /// Every series in the store is in `series`: the store had none when this writer
    /// opened it, and since then only this writer has created series (and forgotten
    /// them only where they left the store: a failed commit, a delete). A miss is then
    /// a new series, with no dictionary look-up, which is most of a first-seen series'
    /// cost on a store that starts empty. Turned off for good by anything that could
    /// break it (a failed commit, whose outcome the store may still replay; a reopen).
    series_complete: bool,
    /// Scratch for the dictionary, index and name keys of a new series.
    key_scratch: Vec<u8>,
    next_id: SeriesId,
    /// Series allocated by the commit in progress (undone if it fails).
    created: Vec<Box<[u8]>>,
    /// `names` keys known to be stored (or in the commit in progress), so a new series
    /// writes only the metric, tag names and tag values that are new: most are shared
    /// by thousands of series. Cleared when it grows past [`MAX_KNOWN_NAMES`]; writing
    /// a name again is harmless.
    known_names: HashSet<Box<[u8]>, foldhash::fast::RandomState>,
    /// Names first written by the commit in progress (forgotten again if it fails).
    new_names: Vec<Box<[u8]>>,
    /// Everything committed to the staging log and not yet promoted, in arrival order.
    staged: Vec<Entry>,
    staged_since: Option<Instant>,
    /// Key of the next staging record.
    staging_seq: u64,
    record: Vec<u8>,
    points: Vec<(i64, Value)>,
    /// Expiries of `points` (0 = never), one each.
    expiries: Vec<i64>,
    chunk: Vec<u8>,
    /// KairosDB's ttl keys (see [`crate::storage::expiry::TtlPolicy`]).
    ttl: TtlPolicy,
    /// Scratch of [`sort_for_promotion`], one slot per series id in the staged range.
    sort_heads: Vec<usize>,
    /// After a failed promotion: not before then, and the next wait.
    promote_retry_at: Option<Instant>,
    promote_backoff: Duration,
    last_reopen: Option<Instant>,
    /// `kairosd.series.max`, and the series stored (counted only when there is a max).
    max_series: Option<u64>,
    series_count: u64,
    /// Points refused by the last commit, per batch, for the acks.
    refused: Vec<usize>,
    /// When refused points were last logged, and how many since.
    refused_logged: Option<Instant>,
}

/// Most tag-index look-ups a delete spends finding tag names and values no longer used.
const MAX_NAME_CHECKS: usize = 100_000;

/// Most distinct names the writer remembers as stored (see `Writer::known_names`).
const MAX_KNOWN_NAMES: usize = 1 << 20;

/// Starts the writer thread; it runs until every [`crate::ingest::IngestHandle`] is
/// dropped and the queue is drained, and promotes everything before it stops. It tells
/// `activity` what it wrote (for [`crate::maintenance`]) and `metrics.health` when it
/// ends, panicking or not.
pub fn spawn(
    handle: Arc<StoreHandle>,
    rx: IngestReceiver,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
    config: WriterConfig,
    max_series: Option<u64>,
    ttl: TtlPolicy,
) -> Result<JoinHandle<()>, StoreError> {
    let mut writer = Writer::new(handle.get()?, metrics, config)?;
    writer.set_max_series(max_series)?;
    writer.set_ttl_policy(ttl);
    writer.handle = Some(handle);
    writer.activity = activity;
    writer.metrics.health.writer_started();
    Ok(std::thread::Builder::new()
        .name("kairosd-writer".into())
        .spawn(move || {
            let health = Arc::clone(&writer.metrics);
            let ended = EndGuard(health);
            writer.run(rx);
            drop(ended);
        })
        .expect("spawning the writer thread"))
}

/// Tells health that the writer thread ended, also when it unwinds from a panic.
struct EndGuard(Arc<Metrics>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        let panicked = std::thread::panicking();
        if panicked {
            tracing::error!("the writer thread panicked; no point can be written any more");
        }
        self.0.health.writer_ended(panicked);
    }
}

impl Writer {
    /// Opens the writer; points a crash left in the staging log are promoted first.
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, config: WriterConfig) -> Result<Writer, StoreError> {
        let next_id = store.next_series_id()?;
        let mut no_series = true;
        store.view().scan_prefix(CF_SERIES, &[], |_, _| {
            no_series = false;
            false
        })?;
        let mut writer = Writer {
            store: Some(store),
            handle: None,
            activity: Arc::new(Activity::default()),
            metrics,
            config,
            series: HashMap::default(),
            series_complete: no_series,
            key_scratch: Vec::new(),
            next_id,
            created: Vec::new(),
            known_names: HashSet::default(),
            new_names: Vec::new(),
            staged: Vec::new(),
            staged_since: None,
            staging_seq: 0,
            record: Vec::new(),
            points: Vec::new(),
            expiries: Vec::new(),
            chunk: Vec::new(),
            ttl: TtlPolicy::default(),
            sort_heads: Vec::new(),
            promote_retry_at: None,
            promote_backoff: RETRY_MIN,
            last_reopen: None,
            max_series: None,
            series_count: 0,
            refused: Vec::new(),
            refused_logged: None,
        };
        writer.recover_staged()?;
        Ok(writer)
    }

    /// The open store. Every caller runs after [`Writer::ensure_store`] succeeded.
    fn store(&self) -> &Arc<Store> {
        self.store.as_ref().expect("the writer holds an open store here")
    }

    /// Opens the store again if a reopen failed before; false while it still cannot.
    fn ensure_store(&mut self) -> bool {
        if self.store.is_some() {
            return true;
        }
        self.reopen();
        self.store.is_some()
    }

    /// Closes and reopens the store (clearing a RocksDB background error), if this
    /// writer has a handle, the last try is [`REOPEN_EVERY`] ago and the disk has room.
    fn maybe_reopen(&mut self) {
        let Some(handle) = &self.handle else { return };
        if self.last_reopen.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return;
        }
        if free_bytes(handle.dir()).is_some_and(|free| free < REOPEN_MIN_FREE) {
            return;
        }
        self.reopen();
    }

    fn reopen(&mut self) {
        let Some(handle) = self.handle.clone() else { return };
        self.last_reopen = Some(Instant::now());
        self.series_complete = false;
        tracing::warn!("closing and reopening the store to clear a storage error");
        match handle.reopen(self.store.take(), REOPEN_WAIT) {
            Ok(store) => {
                self.metrics.health.store_reopens.fetch_add(1, Relaxed);
                self.next_id = store.next_series_id().unwrap_or(self.next_id).max(self.next_id);
                self.store = Some(store);
                tracing::info!("store reopened");
            }
            Err(StoreError::Busy) => {
                self.store = handle.get().ok();
                tracing::warn!("queries held the store; reopening later");
            }
            Err(err) => tracing::error!(%err, "reopening the store failed; will retry"),
        }
    }

    /// Reads back what a crash left staged and promotes it. A record that fails its
    /// checksum, or names a series that was never allocated, is reported and moved to
    /// quarantine; the others are recovered (the daemon starts either way).
    fn recover_staged(&mut self) -> Result<(), StoreError> {
        let store = Arc::clone(self.store());
        let view = store.view();
        let mut last_key = None;
        let mut bad: Vec<(Vec<u8>, String)> = Vec::new();
        let mut record = Vec::new();
        let next_id = self.next_id;
        let staged = &mut self.staged;
        view.scan_prefix(CF_STAGING, &[], |key, value| {
            last_key = <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes).or(last_key);
            record.clear();
            let decoded = staging::decode_expiring(value, |series, ts, value, expiry| {
                record.push((series, ts, value, expiry))
            });
            let problem = match decoded {
                Err(e) => Some(e.to_string()),
                Ok(()) if key.len() != 8 => Some("key is not an 8-byte sequence number".to_string()),
                Ok(()) => record
                    .iter()
                    .find(|p| p.0 >= next_id || p.0 == 0)
                    .map(|p| format!("names series {}, which was never allocated", p.0)),
            };
            match problem {
                Some(what) => bad.push((key.to_vec(), what)),
                None => {
                    for &(series, ts, value, expiry) in &record {
                        let seq = staged.len() as u32;
                        staged.push(Entry {
                            series,
                            ts,
                            seq,
                            value,
                            expiry,
                        });
                    }
                }
            }
            true
        })?;
        drop(view);
        for (key, what) in bad {
            self.metrics.health.corruption(CF_STAGING, &key, &what);
            store.quarantine_whole(CF_STAGING, &key)?;
        }
        if let Some(last) = last_key {
            self.staging_seq = last + 1;
            tracing::info!(
                points = self.staged.len(),
                "promoting points staged before the last stop"
            );
            self.promote()?;
        }
        Ok(())
    }

    /// Moves the records readers reported unreadable to quarantine (see
    /// [`crate::storage::corrupt`]); a failure leaves them to the next report.
    fn quarantine_reported(&mut self) {
        let store = Arc::clone(self.store());
        for bad in store.corrupt.take() {
            match store.quarantine(bad.cf, &bad.key) {
                Ok(Some(moved)) => {
                    self.metrics.health.corruption(
                        bad.cf,
                        &bad.key,
                        &format!("{}; moved {moved} to quarantine", bad.what),
                    );
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(%err, cf = bad.cf, "moving an unreadable record to quarantine failed");
                    store.corrupt.forget(bad.cf, &bad.key);
                }
            }
        }
    }

    fn run(mut self, rx: IngestReceiver) {
        let mut pending: Vec<WriteRequest> = Vec::new();
        let mut pending_points = 0usize;
        let mut commit_at: Option<Instant> = None;
        loop {
            self.metrics.writer_wakeups.fetch_add(1, Relaxed);
            if !self.ensure_store() {
                // Nothing can be written until the store opens again.
                std::thread::sleep(REOPEN_EVERY);
                continue;
            }
            if self.store().corrupt.any_pending() {
                self.quarantine_reported();
            }
            // Idle, wake once a second anyway, for records readers reported unreadable.
            let idle_wake = Instant::now() + QUARANTINE_POLL;
            let deadline = [commit_at, self.promote_at(), Some(idle_wake)]
                .into_iter()
                .flatten()
                .min();
            let received = match deadline {
                Some(d) => rx.requests.recv_deadline(d),
                None => rx.requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut disconnected = false;
            let mut deletes: Vec<DeleteRequest> = Vec::new();
            let mut publishes: Vec<PublishRequest> = Vec::new();
            match received {
                Ok(Request::Write(req)) => {
                    commit_at.get_or_insert_with(|| Instant::now() + self.config.linger);
                    pending_points += req.batch.len();
                    pending.push(req);
                    // Take whatever else is queued: one commit for all of it (up to a
                    // delete, which must see exactly the writes queued before it).
                    while pending_points < self.config.batch_points {
                        match rx.requests.try_recv() {
                            Ok(Request::Write(req)) => {
                                pending_points += req.batch.len();
                                pending.push(req);
                            }
                            Ok(Request::Delete(d)) => {
                                deletes.push(d);
                                break;
                            }
                            Ok(Request::Publish(p)) => {
                                publishes.push(p);
                                break;
                            }
                            Err(crossbeam_channel::TryRecvError::Empty) => break,
                            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                                disconnected = true;
                                break;
                            }
                        }
                    }
                }
                Ok(Request::Delete(d)) => deletes.push(d),
                Ok(Request::Publish(p)) => publishes.push(p),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
            let now = Instant::now();
            if !pending.is_empty()
                && (disconnected
                    || !deletes.is_empty()
                    || !publishes.is_empty()
                    || pending_points >= self.config.batch_points
                    || commit_at.is_some_and(|t| now >= t))
            {
                self.commit_pending(&mut pending, &rx);
                pending_points = 0;
                commit_at = None;
            }
            for d in deletes {
                self.apply_delete(d);
            }
            for p in publishes {
                self.apply_publish(p);
            }
            if !self.staged.is_empty() && (disconnected || self.promote_at().is_some_and(|t| now >= t)) {
                self.try_promote();
            }
            if disconnected {
                self.finish();
                return;
            }
        }
    }

    /// When the next promotion is due: `None` with nothing staged; never before the
    /// backoff of a failed one ends.
    fn promote_at(&self) -> Option<Instant> {
        let since = self.staged_since?;
        let due = if self.staged.len() >= self.config.promote_points {
            since
        } else {
            since + self.config.promote_interval
        };
        Some(self.promote_retry_at.map_or(due, |r| r.max(due)))
    }

    /// Promotes; a failure loses nothing (the staging records stay) and is retried after
    /// a backoff that doubles up to [`PROMOTE_RETRY_MAX`].
    fn try_promote(&mut self) -> bool {
        match self.promote() {
            Ok(()) => {
                self.promote_retry_at = None;
                self.promote_backoff = RETRY_MIN;
                self.metrics.health.write_ok();
                true
            }
            Err(err) => {
                self.metrics.flush_errors.fetch_add(1, Relaxed);
                self.metrics.health.write_retries.fetch_add(1, Relaxed);
                self.metrics.health.write_failed("promotion", &err);
                tracing::error!(%err, retry_in = ?self.promote_backoff, "promoting staged points failed; they stay staged and are retried");
                self.promote_retry_at = Some(Instant::now() + self.promote_backoff);
                self.promote_backoff = (self.promote_backoff * 2).min(PROMOTE_RETRY_MAX);
                if err.is_transient() {
                    self.maybe_reopen();
                }
                false
            }
        }
    }

    /// The queue is closed and drained: promote what is staged (retrying a while if that
    /// fails; what is left stays staged and is promoted at the next start), sync the WAL.
    fn finish(&mut self) {
        let started = Instant::now();
        while !self.staged.is_empty() && self.ensure_store() && !self.try_promote() {
            if started.elapsed() >= SHUTDOWN_RETRY {
                tracing::error!(
                    points = self.staged.len(),
                    "stopping with points still staged (they are in the WAL and promoted at the next start)"
                );
                break;
            }
            std::thread::sleep(self.promote_backoff);
        }
        if let Some(store) = &self.store {
            if let Err(err) = store.sync_wal() {
                tracing::error!(%err, "final WAL sync failed");
            }
        }
        tracing::info!("writer drained its queue and stopped");
    }

    /// Commits every pending request in one WriteBatch, then answers their acks. A
    /// storage failure is retried with backoff (the requests keep their permits, so
    /// senders wait); only bad data, or a shutdown that cannot wait any longer, fails them.
    fn commit_pending(&mut self, pending: &mut Vec<WriteRequest>, rx: &IngestReceiver) {
        let started = Instant::now();
        let count: usize = pending.iter().map(|r| r.batch.len()).sum();
        let mut backoff = RETRY_MIN;
        let mut failures = 0u32;
        let mut logged: Option<Instant> = None;
        let result = loop {
            if !self.ensure_store() {
                if self.metrics.health.stopping() && started.elapsed() >= SHUTDOWN_RETRY {
                    break Err(StoreError::Unavailable);
                }
                std::thread::sleep(REOPEN_EVERY);
                continue;
            }
            let records = pending.iter().flat_map(|r| r.records.iter());
            match self.commit_with(pending.iter().map(|r| &r.batch), records) {
                Ok(()) => break Ok(()),
                Err(err) if !err.is_transient() => break Err(err),
                Err(err) => {
                    failures += 1;
                    self.metrics.flush_errors.fetch_add(1, Relaxed);
                    self.metrics.health.write_retries.fetch_add(1, Relaxed);
                    self.metrics.health.write_failed("group commit", &err);
                    if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        logged = Some(Instant::now());
                        tracing::error!(%err, points = count, failures, "group commit failed; holding its points and retrying (senders wait)");
                    }
                    if self.metrics.health.stopping() && started.elapsed() >= SHUTDOWN_RETRY {
                        break Err(err);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                    if failures >= 2 {
                        self.maybe_reopen();
                    }
                }
            }
        };
        match &result {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(points = count, failures, took = ?started.elapsed(), "group commit succeeded after retrying");
                }
                self.metrics.health.write_ok();
                self.metrics.points_written.fetch_add(count as u64, Relaxed);
                self.activity.wrote(self.config.sync);
                self.activity.staged.store(self.staged.len(), Relaxed);
            }
            Err(err) => {
                self.metrics.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(%err, points = count, "group commit failed for good; its senders get an error");
            }
        }
        self.metrics.observe_flush(started.elapsed().as_secs_f64());
        self.metrics.inflight_points.fetch_sub(count as u64, Relaxed);
        let refused_total: usize = if result.is_ok() { self.refused.iter().sum() } else { 0 };
        if refused_total > 0 {
            self.note_refused(refused_total);
        }
        let result = result.map_err(|e| WriteFailed::from(&e));
        for (i, req) in pending.drain(..).enumerate() {
            if let Some(ack) = req.ack {
                let refused = self.refused.get(i).copied().unwrap_or(0);
                let _ = ack.send(result.clone().map(|()| Committed {
                    refused_series_limit: refused,
                }));
            }
            rx.recycle(req.batch);
            // Dropping `req.permit` here hands its queue room back to the senders.
        }
    }

    /// Counts and logs (at most every 10 s) points refused by `kairosd.series.max`.
    fn note_refused(&mut self, n: usize) {
        self.metrics.series_limit_refused.fetch_add(n as u64, Relaxed);
        if self
            .refused_logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.refused_logged = Some(Instant::now());
            tracing::warn!(
                points = n,
                max = self.max_series.unwrap_or(0),
                "points of new series refused: the store holds kairosd.series.max series (see kairosd_points_refused_series_limit_total)"
            );
        }
    }

    /// Commits `batches` synchronously, outside the queue, and promotes them at once
    /// (benchmarks and tools).
    pub fn write_batches(&mut self, batches: &[PointBatch]) -> Result<(), StoreError> {
        self.commit(batches.iter())?;
        self.promote()
    }

    /// Runs the writer loop on this thread until the queue closes (tests of the failure
    /// paths drive it this way, with faults armed on `handle`).
    pub fn run_with(mut self, handle: Arc<StoreHandle>, rx: IngestReceiver) {
        self.handle = Some(handle);
        self.metrics.health.writer_started();
        let ended = EndGuard(Arc::clone(&self.metrics));
        self.run(rx);
        drop(ended);
    }

    /// Writes the points of `batches` (and any new series) to the staging log in one
    /// atomic write. On failure nothing of it stays, in RocksDB or in memory.
    fn commit<'a>(&mut self, batches: impl Iterator<Item = &'a PointBatch>) -> Result<(), StoreError> {
        self.commit_with(batches, std::iter::empty())
    }

    /// [`Writer::commit`] plus `records`, in the same atomic write.
    fn commit_with<'a>(
        &mut self,
        batches: impl Iterator<Item = &'a PointBatch>,
        records: impl Iterator<Item = &'a crate::ingest::Record>,
    ) -> Result<(), StoreError> {
        let store = Arc::clone(self.store());
        if store.faults.take_writer_panic() {
            panic!("injected writer panic (KAIROSD_FAULTS=panic_writer)");
        }
        let mut commit = store.begin_commit();
        for r in records {
            commit.put_import_record(r.cf, &r.key, &r.value);
        }
        let staged_before = self.staged.len();
        let result = self.stage(batches, &mut commit).and_then(|()| {
            self.record.clear();
            let new = &self.staged[staged_before..];
            staging::encode_expiring(
                new.iter().map(|e| (e.series, e.ts, e.value, e.expiry)),
                &mut self.record,
            );
            let next = (!self.created.is_empty()).then_some(self.next_id);
            commit.finish(next, self.staging_seq, &self.record, self.config.sync)
        });
        match result {
            Ok(()) => {
                self.staging_seq += 1;
                self.metrics
                    .series_created
                    .fetch_add(self.created.len() as u64, Relaxed);
                self.series_count += self.created.len() as u64;
                self.created.clear();
                self.new_names.clear();
                if self.staged.len() > staged_before {
                    self.staged_since.get_or_insert_with(Instant::now);
                }
                Ok(())
            }
            Err(err) => {
                self.series_complete = false;
                self.staged.truncate(staged_before);
                for key in self.created.drain(..) {
                    self.series.remove(&key);
                }
                for name in self.new_names.drain(..) {
                    self.known_names.remove(&name);
                }
                self.next_id = self.store().next_series_id().unwrap_or(self.next_id);
                Err(err)
            }
        }
    }

    /// Resolves series ids and appends the points to `staged`. A point of a new series
    /// past `kairosd.series.max` is refused (counted in `self.refused`, per batch).
    fn stage<'a>(
        &mut self,
        batches: impl Iterator<Item = &'a PointBatch>,
        commit: &mut Commit<'_>,
    ) -> Result<(), StoreError> {
        self.refused.clear();
        let now = expiry::now_ms();
        let mut dead = 0u64;
        let mut expiring = false;
        for points in batches {
            let mut last: Option<(&[u8], Option<SeriesId>)> = None;
            let mut refused = 0;
            for rec in points.records() {
                let key = points.key(rec);
                let series = match last {
                    // Consecutive points of one series share their key in the batch.
                    Some((k, id)) if std::ptr::eq(k, key) => id,
                    _ => self.resolve(key, commit)?,
                };
                last = Some((key, series));
                let Some(series) = series else {
                    refused += 1;
                    continue;
                };
                let expiry = if rec.ttl == 0 && self.ttl.is_noop() {
                    0
                } else {
                    match self.ttl.expiry(rec.ttl, rec.timestamp, now) {
                        Some(e) => e,
                        None => {
                            // KairosDB drops a point whose aligned ttl has already run out.
                            dead += 1;
                            continue;
                        }
                    }
                };
                expiring |= expiry != 0;
                let seq = self.staged.len() as u32;
                self.staged.push(Entry {
                    series,
                    ts: rec.timestamp,
                    seq,
                    value: rec.value,
                    expiry,
                });
            }
            self.refused.push(refused);
        }
        if dead > 0 {
            self.metrics.points_expired_on_arrival.fetch_add(dead, Relaxed);
        }
        if expiring {
            commit.mark_expiring();
        }
        Ok(())
    }

    /// Sets KairosDB's ttl keys for the points staged from now on.
    pub fn set_ttl_policy(&mut self, ttl: TtlPolicy) {
        self.ttl = ttl;
    }

    /// Limits the number of series to `max` (`kairosd.series.max`): counts those stored.
    pub fn set_max_series(&mut self, max: Option<u64>) -> Result<(), StoreError> {
        self.max_series = max;
        if max.is_some() {
            let store = Arc::clone(self.store());
            let view = store.view();
            let mut n = 0u64;
            view.scan_prefix(CF_SERIES, &[], |_, _| {
                n += 1;
                true
            })?;
            self.series_count = n;
        }
        Ok(())
    }

    /// Turns everything staged into one chunk merge operand per (series, bucket) and
    /// drops the staging records, in one atomic write.
    fn promote(&mut self) -> Result<(), StoreError> {
        if self.staged.is_empty() && self.staging_seq == 0 {
            return Ok(());
        }
        let mut entries = std::mem::take(&mut self.staged);
        sort_for_promotion(&mut entries, &mut self.sort_heads);
        let store = Arc::clone(self.store());
        let mut promotion = store.begin_promotion();
        let width = store.bucket_width();
        let mut i = 0;
        while i < entries.len() {
            let Entry { series, ts, .. } = entries[i];
            let bucket = keys::bucket_start(ts, width);
            self.points.clear();
            self.expiries.clear();
            while i < entries.len() {
                let e = entries[i];
                if e.series != series || keys::bucket_start(e.ts, width) != bucket {
                    break;
                }
                // Sorted by (ts, seq): a repeated timestamp overwrites, last write wins.
                // The expiry goes with the value: a rewrite with another ttl replaces it.
                match self.points.last_mut() {
                    Some(last) if last.0 == e.ts => {
                        last.1 = e.value;
                        *self.expiries.last_mut().expect("one expiry per point") = e.expiry;
                    }
                    _ => {
                        self.points.push((e.ts, e.value));
                        self.expiries.push(e.expiry);
                    }
                }
                i += 1;
            }
            self.chunk.clear();
            chunk::encode_expiring(&self.points, &self.expiries, &mut self.chunk);
            promotion.add_chunk(series, bucket, &self.chunk);
        }
        match promotion.finish(self.staging_seq, self.config.sync) {
            Ok(()) => {
                entries.clear();
                self.staged = entries;
                self.staged_since = None;
                self.activity.wrote(self.config.sync);
                self.activity.staged.store(0, Relaxed);
                Ok(())
            }
            Err(err) => {
                // Restore arrival order so later commits keep appending after these.
                entries.sort_unstable_by_key(|e| e.seq);
                self.staged = entries;
                Err(err)
            }
        }
    }

    fn apply_delete(&mut self, req: DeleteRequest) {
        if !self.ensure_store() {
            let _ = req.ack.send(Err(WriteFailed::from(&StoreError::Unavailable)));
            return;
        }
        let result = self.delete(&req.spec);
        match &result {
            Ok(summary) => tracing::info!(
                metric = %req.spec.metric,
                series = summary.series,
                removed = summary.series_removed,
                "deleted points"
            ),
            Err(err) => {
                self.metrics.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(metric = %req.spec.metric, %err, "delete failed; nothing of it was applied");
            }
        }
        if result.is_ok() {
            self.activity.wrote(self.config.sync);
        }
        let _ = req.ack.send(result.map_err(|e| WriteFailed::from(&e)));
        // Dropping `req.permit` hands its queue room back.
    }

    /// Applies a delete: promotes everything staged (so the chunks are all there is),
    /// then in one atomic write deletes the points and removes the series left empty
    /// (dictionary, index, unused names); then forgets them in this writer's caches, so
    /// a point written afterwards creates the series afresh and is visible at once.
    pub fn delete(&mut self, spec: &DeleteSpec) -> Result<DeleteSummary, StoreError> {
        self.promote()?;
        let series = {
            let view = self.store().view();
            crate::query::plan::select_series(&view, &spec.metric, &spec.tags)?
        };
        let ids: Vec<SeriesId> = series.iter().map(|(id, _)| *id).collect();
        let plan = self.store().plan_delete(&ids, spec.start, spec.end)?;
        let emptied: HashSet<SeriesId> = plan.emptied.iter().copied().collect();
        let removed: Vec<_> = series
            .into_iter()
            .filter(|(id, _)| emptied.contains(id))
            .map(|(id, tags)| {
                let key = series_key::encode(&spec.metric, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                (id, spec.metric.clone(), tags, key)
            })
            .collect();
        let names = if removed.is_empty() {
            Vec::new()
        } else {
            self.unused_names(&spec.metric, &removed)?
        };
        self.store().apply_delete(plan, &removed, &names, self.config.sync)?;
        let summary = DeleteSummary {
            series: ids.len(),
            series_removed: removed.len(),
        };
        self.series_count = self.series_count.saturating_sub(removed.len() as u64);
        for (_, _, _, key) in &removed {
            self.series.remove(key.as_slice());
        }
        if !removed.is_empty() {
            // Names may have gone with the series; they are written again when next used.
            self.known_names.clear();
        }
        Ok(summary)
    }

    /// The `names` entries nothing uses once `removed` (series of `metric`) are gone:
    /// the metric if it has no series left, and tag names and values no other series
    /// carries. Tag names and values are global, so finding out costs a look-up per
    /// metric (and per tag name, for values); past [`MAX_NAME_CHECKS`] look-ups they
    /// are left listed rather than stalling ingest, which is harmless.
    fn unused_names(
        &self,
        metric: &str,
        removed: &[(SeriesId, String, crate::storage::Tags, Vec<u8>)],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let view = self.store().view();
        let gone: HashSet<SeriesId> = removed.iter().map(|r| r.0).collect();
        let mut names = Vec::new();
        let left = view.series_of_metric(metric)?.len();
        if left <= removed.len() {
            names.push(keys::name_key(NameKind::Metric, metric));
        }
        let mut tag_names = std::collections::BTreeSet::new();
        let mut tag_values = std::collections::BTreeSet::new();
        for (_, _, tags, _) in removed {
            for (k, v) in tags {
                tag_names.insert(k.as_str());
                tag_values.insert(v.as_str());
            }
        }
        let metrics = view.names(NameKind::Metric, "")?;
        let all_tag_names = view.names(NameKind::TagName, "")?;
        let checks = metrics.len() * (tag_names.len() + tag_values.len() * all_tag_names.len());
        if checks > MAX_NAME_CHECKS {
            tracing::info!(
                checks,
                "tag names and values of deleted series stay listed (too many to check)"
            );
            return Ok(names);
        }
        for k in tag_names {
            let mut used = false;
            for m in &metrics {
                if view.tag_index_has_other(&keys::tag_index_prefix(m, k, None), &gone)? {
                    used = true;
                    break;
                }
            }
            if !used {
                names.push(keys::name_key(NameKind::TagName, k));
            }
        }
        for v in tag_values {
            let mut used = false;
            'metrics: for m in &metrics {
                for k in &all_tag_names {
                    if view.tag_index_has_other(&keys::tag_index_prefix(m, k, Some(v)), &gone)? {
                        used = true;
                        break 'metrics;
                    }
                }
            }
            if !used {
                names.push(keys::name_key(NameKind::TagValue, v));
            }
        }
        Ok(names)
    }

    /// The id of series `key`, allocating it (and writing its dictionary and index
    /// entries into `batch`) if it is new; `None` if it is new and the store already
    /// holds `kairosd.series.max` series.
    fn resolve(&mut self, key: &[u8], commit: &mut Commit<'_>) -> Result<Option<SeriesId>, StoreError> {
        if let Some(&id) = self.series.get(key) {
            return Ok(Some(id));
        }
        if !self.series_complete {
            if let Some(id) = self.store().series_id(key)? {
                self.series.insert(key.into(), id);
                return Ok(Some(id));
            }
        }
        if let Some(max) = self.max_series {
            if self.series_count + self.created.len() as u64 >= max {
                return Ok(None);
            }
        }
        let id = self.next_id;
        let mut scratch = std::mem::take(&mut self.key_scratch);
        if !commit.add_series_key(id, key, &mut scratch) {
            self.key_scratch = scratch;
            return Err(StoreError::Corrupt {
                cf: CF_SERIES,
                what: "series key from a listener",
            });
        }
        self.next_id += 1;
        if self.known_names.len() > MAX_KNOWN_NAMES {
            self.known_names.clear();
        }
        let (metric, tags) = keys::split_series_key(key).expect("checked by add_series_key");
        let names = std::iter::once((NameKind::Metric, metric))
            .chain(tags.flat_map(|(k, v)| [(NameKind::TagName, k), (NameKind::TagValue, v)]));
        for (kind, part) in names {
            // The `names` key holds the text (unescaped), as `keys::name_key` writes it.
            scratch.clear();
            scratch.push(kind as u8);
            keys::unescape_into(part, &mut scratch);
            if !self.known_names.contains(scratch.as_slice()) {
                commit.add_name(&scratch);
                let name: Box<[u8]> = scratch.as_slice().into();
                self.known_names.insert(name.clone());
                self.new_names.push(name);
            }
        }
        self.key_scratch = scratch;
        let key: Box<[u8]> = key.into();
        self.created.push(key.clone());
        self.series.insert(key, id);
        Ok(Some(id))
    }
}

/// Sorts staged entries by (series, timestamp, arrival), in place.
///
/// A promotion sorts hundreds of thousands of entries that belong to comparatively few
/// series with dense ids, so instead of a comparison sort over everything it first
/// moves every entry into its series' slot range (an in-place counting sort, linear
/// time), then sorts each series' short run. Sparse ids (a few staged points of a
/// store with many series) take the plain sort.
///
/// In place on purpose: std's stable sort was a little faster on the telnet load, but
/// its scratch buffer (half the input, fresh pages every promotion) added about 25 MB
/// to peak RSS and cost more CPU than it saved on the REST load.
fn sort_for_promotion(entries: &mut [Entry], heads: &mut Vec<usize>) {
    let Some(min) = entries.iter().map(|e| e.series).min() else {
        return;
    };
    let max = entries.iter().map(|e| e.series).max().unwrap_or(min);
    // Saturating: ids from a damaged record may span the whole u64 range.
    let range = (max - min).saturating_add(1);
    if range > (entries.len() as u64).saturating_mul(4) + 4096 {
        entries.sort_unstable_by_key(|e| (e.series, e.ts, e.seq));
        return;
    }
    let slot = |e: &Entry| (e.series - min) as usize;
    // heads[s] = where series s's next entry goes; heads[s + 1] starts as its end.
    heads.clear();
    heads.resize(range as usize + 1, 0);
    for e in entries.iter() {
        heads[slot(e) + 1] += 1;
    }
    for s in 1..heads.len() {
        heads[s] += heads[s - 1];
    }
    let ends: Vec<usize> = heads[1..].to_vec();
    for s in 0..range as usize {
        while heads[s] < ends[s] {
            let target = slot(&entries[heads[s]]);
            if target == s {
                heads[s] += 1;
            } else {
                entries.swap(heads[s], heads[target]);
                heads[target] += 1;
            }
        }
    }
    let mut start = 0;
    for &end in &ends {
        entries[start..end].sort_unstable_by_key(|e| (e.ts, e.seq));
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(e: &Entry) -> (SeriesId, i64, u32) {
        (e.series, e.ts, e.seq)
    }

    proptest! {
        #[test]
        fn promotion_sort_equals_a_full_sort(
            raw in prop::collection::vec((0u64..50, -5i64..5), 0..400),
            base in prop_oneof![Just(1u64), Just(1u64 << 40)],
            sparse in any::<bool>(),
        ) {
            let mut entries: Vec<Entry> = raw
                .iter()
                .enumerate()
                .map(|(i, &(s, ts))| Entry {
                    series: base + if sparse { s * 1_000_003 } else { s },
                    ts,
                    seq: i as u32,
                    value: Value::Long(i as i64),
                    expiry: 0,
                })
                .collect();
            let mut expected: Vec<_> = entries.iter().map(key).collect();
            expected.sort_unstable();
            sort_for_promotion(&mut entries, &mut Vec::new());
            let got: Vec<_> = entries.iter().map(key).collect();
            prop_assert_eq!(got, expected);
        }
    }

    fn config() -> WriterConfig {
        WriterConfig {
            batch_points: 1000,
            linger: Duration::ZERO,
            promote_points: 1000,
            promote_interval: Duration::from_secs(60),
            sync: false,
        }
    }

    #[test]
    fn a_promotion_keeps_the_last_write_to_each_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 7_200_000).unwrap());
        let mut w = Writer::new(Arc::clone(&store), Arc::new(Metrics::default()), config()).unwrap();
        let tags = [("h", "a")];
        let mut first = PointBatch::new();
        first.push_parts("m", tags, 5, Value::Long(1), 0);
        first.push_parts("m", [("h", "b")], 5, Value::Long(7), 0);
        first.push_parts("m", tags, 5, Value::Double(2.5), 0);
        first.push_parts("m", tags, 3, Value::Long(0), 0);
        let mut second = PointBatch::new();
        second.push_parts("m", tags, 5, Value::Long(3), 0);
        second.push_parts("m", tags, 7_200_001, Value::Long(9), 0);
        w.write_batches(&[first, second]).unwrap();

        let id = store.series_id(&series_key::encode("m", tags)).unwrap().unwrap();
        let view = store.view();
        let mut points = Vec::new();
        view.points().read(id, i64::MIN, i64::MAX, &mut points).unwrap();
        assert_eq!(
            points,
            [(3, Value::Long(0)), (5, Value::Long(3)), (7_200_001, Value::Long(9))]
        );
        let staged = view
            .staged_points(&[id].into_iter().collect(), i64::MIN, i64::MAX)
            .unwrap();
        assert!(staged.is_empty(), "promotion left staging records behind");
    }

    /// A writer that opened an empty store skips the dictionary look-up for series it
    /// has not seen; one that opened a store with series looks them up, so a series
    /// written before a restart keeps its id (and gets no second dictionary entry).
    #[test]
    fn series_keep_their_ids_across_writers_with_and_without_look_ups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 7_200_000).unwrap());
        let batch = |hosts: std::ops::Range<u32>| {
            let mut b = PointBatch::new();
            for h in hosts {
                let host = format!("h{h}\u{1}");
                b.push_parts(
                    "m",
                    [("dc", "eu"), ("host", host.as_str())],
                    5,
                    Value::Long(h.into()),
                    0,
                );
            }
            b
        };
        let ids = |store: &Store| -> Vec<(SeriesId, Vec<(String, String)>)> {
            let mut out = store.view().series_of_metric("m").unwrap();
            out.sort();
            out
        };
        let mut w = Writer::new(Arc::clone(&store), Arc::new(Metrics::default()), config()).unwrap();
        assert!(w.series_complete, "an empty store");
        w.write_batches(&[batch(0..3)]).unwrap();
        w.write_batches(&[batch(1..4)]).unwrap();
        drop(w);
        let first = ids(&store);
        assert_eq!(first.len(), 4);
        let mut w = Writer::new(Arc::clone(&store), Arc::new(Metrics::default()), config()).unwrap();
        assert!(!w.series_complete, "a store with series");
        w.write_batches(&[batch(2..6)]).unwrap();
        drop(w);
        let second = ids(&store);
        assert_eq!(second.len(), 6);
        assert_eq!(&second[..4], &first[..], "old series kept their ids");
        // The index and the names hold what the decoding path wrote.
        let view = store.view();
        assert_eq!(view.series_with_tag("m", "host", "h5\u{1}").unwrap(), [second[5].0]);
        assert_eq!(view.series_with_tag("m", "dc", "eu").unwrap().len(), 6);
        assert_eq!(view.names(NameKind::TagValue, "h").unwrap().len(), 6);
        assert_eq!(view.names(NameKind::TagName, "").unwrap(), ["dc", "host"]);
    }

    #[test]
    fn names_shared_by_series_are_stored_once_and_all_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 7_200_000).unwrap());
        let mut w = Writer::new(Arc::clone(&store), Arc::new(Metrics::default()), config()).unwrap();
        let mut b = PointBatch::new();
        b.push_parts("m1", [("dc", "eu"), ("h", "a")], 1, Value::Long(1), 0);
        b.push_parts("m2", [("dc", "eu"), ("h", "b")], 1, Value::Long(1), 0);
        w.write_batches(&[b]).unwrap();
        let mut b = PointBatch::new();
        b.push_parts("m1", [("dc", "us"), ("h", "a")], 1, Value::Long(1), 0);
        w.write_batches(&[b]).unwrap();
        assert_eq!(w.known_names.len(), 8, "m1 m2, dc h, eu a b us: each once");
        let view = store.view();
        assert_eq!(view.names(NameKind::Metric, "").unwrap(), ["m1", "m2"]);
        assert_eq!(view.names(NameKind::TagName, "").unwrap(), ["dc", "h"]);
        assert_eq!(view.names(NameKind::TagValue, "").unwrap(), ["a", "b", "eu", "us"]);
    }
}
