//! One import run: bytes in (from an HTTP body, a file, stdin or a URL), accepted points
//! staged under the import id, set-aside rows stored in quarantine, then one publish by
//! the writer (see the module docs of [`crate::import`]) and the answer of spec §4.
//!
//! The run is transport-free: the HTTP handler, async jobs and `kairosd ingest
//! --data-dir` all drive it with [`ImportRun::feed`] and [`ImportRun::finish`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use kairos_protocols::import::source::{Merge, OnError, ValueColumns};
use kairos_protocols::import::{
    Clock, Format, HeaderMode, Import, ImportError, ImportOptions, Kind, Output, Rejected, RowCheck, RowInfo, Source,
    Stats,
};
use kairos_protocols::{PointBatch, Value};
use serde_json::{json, Value as Json};

use super::jobs::{self, Job, Progress, Status};
use super::quarantine;
use super::{ids, registry};
use crate::ingest::{DeleteSpec, IngestHandle, PublishSpec, PublishSummary};
use crate::query::request::TagMatch;
use crate::storage::imports::{self, ImportBatch, CF_IMPORT_STAGING};
use crate::storage::keys::{self, NameKind};
use crate::storage::{chunk, Store, StoreError, StoreHandle};

/// Repeats of one (series, timestamp) a ledger run keeps apart; more are folded into
/// the last layer (the last of those wins among them).
const MAX_LAYERS: usize = 255;

/// Points one run holds in memory before it is sorted and staged as chunks (about
/// 32 MB): the engine's memory whatever the file's size.
const RUN_POINTS: usize = 1 << 20;
/// Errors listed in an answer (the rest are counted and stored).
const LISTED_ERRORS: usize = 20;
/// The metric every commit writes its row counts to (spec §2).
pub const ROWS_METRIC: &str = "kairosd.import.rows";

/// What every import shares: the store, the writer, the limits.
pub struct ImportContext {
    pub store: Arc<StoreHandle>,
    pub ingest: IngestHandle,
    /// `kairosd.import.max_bytes`: decompressed bytes one import may read.
    pub max_bytes: u64,
    /// Where async imports spool their bodies (`<data_dir>/import-spool`).
    pub spool_dir: PathBuf,
    /// `kairosd.import.url.allow_private`.
    pub allow_private_urls: bool,
    /// `kairosd.import.url.timeout_ms`.
    pub url_timeout: Duration,
    /// Sources with a replace running (a second one answers 409).
    replacing: Mutex<HashSet<String>>,
    /// Cancel flags of running jobs, by id.
    running: Mutex<BTreeMap<u64, Arc<AtomicBool>>>,
    /// `kairosd.import.quarantine_retention` (None: forever).
    pub quarantine_retention: Option<u64>,
    /// `kairosd.import.quarantine_max_bytes`: what one source's records may take.
    pub quarantine_max_bytes: u64,
    /// Bytes each source's records take, counted once from the store, then kept up.
    quarantine_used: Mutex<HashMap<String, u64>>,
    /// The Kafka sources' consumers (the daemon's; none offline).
    pub kafka: Option<Arc<crate::kafka::KafkaSources>>,
}

impl ImportContext {
    pub fn new(store: Arc<StoreHandle>, ingest: IngestHandle, data_dir: &std::path::Path) -> ImportContext {
        ImportContext {
            store,
            ingest,
            max_bytes: 16 << 30,
            spool_dir: data_dir.join("import-spool"),
            allow_private_urls: false,
            url_timeout: Duration::from_secs(60),
            replacing: Mutex::new(HashSet::new()),
            running: Mutex::new(BTreeMap::new()),
            quarantine_retention: Some(30 * 86_400_000),
            quarantine_max_bytes: 1 << 30,
            quarantine_used: Mutex::new(HashMap::new()),
            kafka: None,
        }
    }

    /// The first import id whose quarantine records are still kept.
    pub fn quarantine_not_before(&self) -> u64 {
        quarantine::oldest_kept(self.quarantine_retention, crate::http::response::now_millis())
    }

    /// Bytes `source`'s quarantine records take.
    fn quarantine_used(&self, store: &Store, source: &str) -> Result<u64, StoreError> {
        if let Some(&n) = self
            .quarantine_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(source)
        {
            return Ok(n);
        }
        let n = quarantine::bytes_of(store, source)?;
        self.quarantine_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(source.to_owned(), n);
        Ok(n)
    }

    fn quarantine_added(&self, source: &str, bytes: u64) {
        if let Some(n) = self
            .quarantine_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(source)
        {
            *n += bytes;
        }
    }

    /// Records were deleted (a `DELETE`, or the retention sweep): count again when needed.
    pub fn quarantine_changed(&self) {
        self.quarantine_used.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Deletes the quarantine records past their retention; returns the sources swept.
    pub fn expire_quarantine(&self) -> Result<usize, StoreError> {
        if self.quarantine_retention.is_none() {
            return Ok(0);
        }
        let store = self.store.get()?;
        let n = quarantine::expire(&store, self.quarantine_not_before())?;
        if n > 0 {
            self.quarantine_changed();
        }
        Ok(n)
    }

    /// Asks a running job to stop; false if it is not running here.
    pub fn cancel(&self, id: u64) -> bool {
        match self.running.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            Some(flag) => {
                flag.store(true, Relaxed);
                true
            }
            None => false,
        }
    }
}

/// `mode=replace`: which stored points the file replaces.
#[derive(Debug, Clone, Default)]
pub struct Replace {
    /// Inclusive, in ms; `None` with `all`.
    pub range: Option<(i64, i64)>,
    /// `replace_tag=k:v`: OR within a key, AND across keys.
    pub tags: Vec<(String, Vec<String>)>,
    pub all: bool,
    pub truncate_when_empty: bool,
}

/// How one import runs (query parameters or CLI flags), the source resolved.
#[derive(Debug, Clone)]
pub struct ImportParams {
    pub source: Source,
    pub replace: Option<Replace>,
    pub format: Option<Format>,
    pub header: Option<HeaderMode>,
    pub delimiter: Option<u8>,
    pub event_time: Option<i64>,
    pub on_error: Option<OnError>,
    pub max_errors: Option<u64>,
    pub dry_run: bool,
    /// The file's name, for the format by extension and the quarantine records.
    pub file_name: Option<String>,
    pub url: Option<String>,
}

impl ImportParams {
    pub fn new(source: Source) -> ImportParams {
        ImportParams {
            source,
            replace: None,
            format: None,
            header: None,
            delimiter: None,
            event_time: None,
            on_error: None,
            max_errors: None,
            dry_run: false,
            file_name: None,
            url: None,
        }
    }

    fn mode(&self) -> &'static str {
        if self.replace.is_some() {
            "replace"
        } else {
            "append"
        }
    }
}

/// An import's answer: the HTTP status and the JSON body (spec §4).
#[derive(Debug, Clone)]
pub struct ImportResult {
    pub status: StatusCode,
    pub body: Json,
}

impl ImportResult {
    pub fn error(status: StatusCode, message: impl Into<String>) -> ImportResult {
        let message = message.into();
        ImportResult {
            status,
            body: json!({"status": "error", "error": message, "errors": [message]}),
        }
    }
}

/// Checks a source may take an import: 404 unknown, 409 disabled.
pub fn stored_source(store: &Store, name: &str) -> Result<Source, ImportResult> {
    match registry::get(store, name) {
        Ok(Some(s)) if s.enabled => Ok(s),
        Ok(Some(_)) => Err(ImportResult::error(
            StatusCode::CONFLICT,
            format!("source {name:?} is disabled; enable it first (kairosd sources enable {name})"),
        )),
        Ok(None) => Err(ImportResult::error(
            StatusCode::NOT_FOUND,
            format!("source {name:?} does not exist (kairosd sources list shows the sources)"),
        )),
        Err(e) => Err(store_failure(&e)),
    }
}

fn store_failure(e: &StoreError) -> ImportResult {
    ImportResult::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// A point of a run: timestamp, file order, value.
type RunPoint = (i64, u32, Value);

/// How often a running import writes its progress into its job record.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub struct ImportRun {
    ctx: Arc<ImportContext>,
    store: Arc<Store>,
    id: u64,
    params: ImportParams,
    import: Import,
    out: Output,
    /// The run being filled: each series' points with their file order.
    run: HashMap<Box<[u8]>, Vec<RunPoint>, foldhash::fast::RandomState>,
    run_points: usize,
    run_no: u32,
    key: Vec<u8>,
    seq: u32,
    /// Ledger repeats within one run (the publish counts those across runs).
    ledger: PublishSummary,
    quarantine: ImportBatch,
    /// Bytes of the records in `quarantine`, not yet written.
    quarantine_pending: u64,
    quarantine_seq: u64,
    header_stored: bool,
    errors: Vec<Json>,
    by_kind: BTreeMap<Kind, u64>,
    /// Why the import stopped taking rows (abort, max_errors): 422.
    tripped: Option<String>,
    /// Why the import failed: the status and message.
    failed: Option<(StatusCode, String)>,
    started: Instant,
    /// When the job record last got this run's progress (at most once a second).
    progress_written: Instant,
    cancel: Arc<AtomicBool>,
    job: Job,
    _replace_guard: Option<ReplaceGuard>,
    clock: Clock,
    /// Parquet needs its footer first: the body goes to a file, read at the end in
    /// row batches (drained between them, so memory stays flat).
    parquet: Option<(std::fs::File, PathBuf, u64)>,
    fed: bool,
}

/// Holds a source's replace slot while its replace runs.
struct ReplaceGuard {
    ctx: Arc<ImportContext>,
    source: String,
}

impl Drop for ReplaceGuard {
    fn drop(&mut self) {
        self.ctx
            .replacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.source);
    }
}

impl ImportRun {
    /// Starts an import with a new id (or `id`, for a job made earlier). A problem of
    /// the parameters or the mapping is the answer (400, 409, 503).
    pub async fn start(
        ctx: &Arc<ImportContext>,
        params: ImportParams,
        id: Option<u64>,
    ) -> Result<ImportRun, ImportResult> {
        let store = ctx.store.get().map_err(|e| store_failure(&e))?;
        let id = id.unwrap_or_else(ids::next);
        let mut guard = None;
        if let Some(r) = &params.replace {
            if r.range.is_none() && !r.all {
                return Err(ImportResult::error(
                    StatusCode::BAD_REQUEST,
                    "mode=replace needs replace_start and replace_end, or replace_all=true",
                ));
            }
            if let Some((s, e)) = r.range {
                if s > e {
                    return Err(ImportResult::error(
                        StatusCode::BAD_REQUEST,
                        format!("replace_start ({s}) is after replace_end ({e})"),
                    ));
                }
            }
            if replace_scope(&store, &params.source)?.is_empty() && params.source.metric.prefix.is_empty() {
                return Err(ImportResult::error(
                    StatusCode::BAD_REQUEST,
                    "mode=replace needs the metrics it replaces: a source with value_columns listed, or a metric \
                     prefix",
                ));
            }
            let name = params.source.name.clone();
            if !ctx
                .replacing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone())
            {
                return Err(ImportResult::error(
                    StatusCode::CONFLICT,
                    format!("a replace of source {name:?} is already running; try again when it ends"),
                ));
            }
            guard = Some(ReplaceGuard {
                ctx: Arc::clone(ctx),
                source: name,
            });
            // Promote what live writes staged so far: the replace deletes those, and
            // keeps what arrives while it runs (see the writer's publish).
            if !params.dry_run {
                let barrier = PublishSpec {
                    import: 0,
                    ledger: false,
                    replace: Vec::new(),
                    job: None,
                    retention_ms: None,
                };
                ctx.ingest
                    .publish(barrier)
                    .await
                    .map_err(|e| ImportResult::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            }
        }
        let now = crate::http::response::now_millis();
        let options = ImportOptions {
            format: params.format,
            name: params.file_name.clone(),
            header: params.header,
            delimiter: params.delimiter,
            clock: Clock {
                event_time: params.event_time,
                receive_time: now,
            },
            check: row_check(&params, now),
            max_bytes: Some(ctx.max_bytes),
            ..ImportOptions::default()
        };
        let params_event_time = params.event_time;
        let import = Import::new(Some(params.source.clone()), options)
            .map_err(|e| ImportResult::error(StatusCode::BAD_REQUEST, e.to_string()))?;
        let stamp = jobs::now();
        let job = Job {
            id: ids::format(id),
            kind: "import".to_owned(),
            status: Status::Working,
            source: params.source.name.clone(),
            mode: params.mode().to_owned(),
            format: params.format.map(|f| f.as_str().to_owned()),
            url: params.url.clone(),
            created_at: stamp.clone(),
            started_at: Some(stamp.clone()),
            updated_at: stamp,
            progress: Progress::default(),
            result: None,
            error: None,
        };
        if !params.dry_run {
            jobs::put(&store, id, &job).map_err(|e| store_failure(&e))?;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        ctx.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&cancel));
        Ok(ImportRun {
            ctx: Arc::clone(ctx),
            store,
            id,
            params,
            import,
            out: Output::default(),
            run: HashMap::default(),
            run_points: 0,
            run_no: 0,
            key: Vec::new(),
            seq: 0,
            ledger: PublishSummary::default(),
            quarantine: ImportBatch::default(),
            quarantine_pending: 0,
            quarantine_seq: 1,
            header_stored: false,
            errors: Vec::new(),
            by_kind: BTreeMap::new(),
            tripped: None,
            failed: None,
            started: Instant::now(),
            progress_written: Instant::now(),
            cancel,
            job,
            _replace_guard: guard,
            clock: Clock {
                event_time: params_event_time,
                receive_time: now,
            },
            parquet: None,
            fed: false,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The input's size when known (a spooled body, a URL's Content-Length), for progress.
    pub fn set_bytes_total(&mut self, total: Option<u64>) {
        self.job.progress.bytes_total = total;
    }

    /// Rows read so far (for progress).
    pub fn stats(&self) -> Stats {
        self.out.stats
    }

    /// Whether the run stopped taking input (failed, tripped, cancelled): the rest of
    /// the body is read and dropped.
    pub fn stopped(&self) -> bool {
        self.failed.is_some() || self.tripped.is_some() || self.cancel.load(Relaxed)
    }

    /// Feeds the next bytes. Blocking (decoding, staging writes): run it where blocking
    /// is allowed.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.stopped() {
            return;
        }
        if !self.fed {
            self.fed = true;
            let by_name = self.params.file_name.as_deref().and_then(Format::from_name);
            let parquet = self.params.format.or(by_name) == Some(Format::Parquet)
                || (self.params.format.is_none() && bytes.starts_with(b"PAR1"));
            if parquet {
                let _ = std::fs::create_dir_all(&self.ctx.spool_dir);
                let path = self.ctx.spool_dir.join(format!("{}.parquet", ids::format(self.id)));
                match std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&path)
                {
                    Ok(f) => self.parquet = Some((f, path, 0)),
                    Err(e) => {
                        self.fail(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("cannot spool the Parquet file: {e}"),
                        );
                        return;
                    }
                }
            }
        }
        if let Some((file, _, n)) = self.parquet.as_mut() {
            use std::io::Write as _;
            *n += bytes.len() as u64;
            if *n > self.ctx.max_bytes {
                self.fail_import(ImportError::TooLarge(self.ctx.max_bytes));
            } else if let Err(e) = file.write_all(bytes) {
                self.fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot spool the Parquet file: {e}"),
                );
            }
            return;
        }
        if let Err(e) = self.import.feed(bytes, &mut self.out) {
            self.fail_import(e);
        }
        self.drain();
        self.note_progress();
    }

    /// Writes the bytes, rows and points read so far into the job record, at most once
    /// a second, so `GET /api/v1/import/jobs/{id}` shows a long import moving.
    fn note_progress(&mut self) {
        if self.params.dry_run || self.stopped() || self.progress_written.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.progress_written = Instant::now();
        let mut job = self.job.clone();
        job.updated_at = jobs::now();
        job.progress = progress(&self.out.stats, self.job.progress.bytes_total);
        if let Err(e) = jobs::put(&self.store, self.id, &job) {
            tracing::warn!(import = %ids::format(self.id), %e, "storing the job's progress failed");
        }
    }

    /// Fails the run with `status` (e.g. the body could not be read).
    pub fn fail(&mut self, status: StatusCode, message: String) {
        if self.failed.is_none() {
            self.failed = Some((status, message));
        }
    }

    fn fail_import(&mut self, e: ImportError) {
        let status = match e {
            ImportError::Mapping(_) => StatusCode::BAD_REQUEST,
            ImportError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ImportError::Input(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ImportError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        };
        self.fail(status, e.to_string());
    }

    fn drain(&mut self) {
        if let Some(h) = self.out.header.as_ref().filter(|_| !self.header_stored) {
            self.header_stored = true;
            if !self.params.dry_run {
                let entry = quarantine::Entry {
                    source: self.params.source.name.clone(),
                    import_id: ids::format(self.id),
                    file: self.params.file_name.clone(),
                    created_at: crate::http::response::now_millis(),
                    header: true,
                    kafka: None,
                    record: Rejected::record(Kind::Malformed, Default::default(), h, String::new()),
                };
                self.quarantine_pending += quarantine::add(
                    &self.store,
                    &mut self.quarantine,
                    &self.params.source.name,
                    self.id,
                    0,
                    &entry,
                );
            }
        }
        let rejected = std::mem::take(&mut self.out.rejected);
        for r in rejected {
            self.reject(r);
        }
        if !self.out.batch.is_empty() {
            let batch = std::mem::take(&mut self.out.batch);
            self.stage_batch(&batch);
            let mut batch = batch;
            batch.clear();
            self.out.batch = batch;
        }
        if self.run_points >= RUN_POINTS {
            self.flush_stage();
        }
        if self.quarantine.len() >= 1024 {
            self.flush_quarantine();
        }
    }

    fn stage_batch(&mut self, batch: &PointBatch) {
        if self.params.dry_run || self.stopped() {
            return;
        }
        for rec in batch.records() {
            let key = batch.key(rec);
            let p = (rec.timestamp, self.seq, rec.value);
            self.seq = self.seq.wrapping_add(1);
            match self.run.get_mut(key) {
                Some(v) => v.push(p),
                None => {
                    self.run.insert(key.into(), vec![p]);
                }
            }
        }
        self.run_points += batch.len();
    }

    /// Sorts the run and stages it: one chunk per (series, bucket), so the staging
    /// area holds a few records per series instead of one per point.
    fn flush_stage(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let width = self.store.bucket_width();
        let ledger = self.params.source.merge == Merge::Ledger;
        let mut batch = ImportBatch::default();
        let mut points: Vec<(i64, Value)> = Vec::new();
        let mut chunk = Vec::new();
        let mut layers: Vec<Vec<(i64, Value)>> = Vec::new();
        for (series, mut v) in self.run.drain() {
            v.sort_unstable_by_key(|p| (p.0, p.1));
            let mut i = 0;
            while i < v.len() {
                let bucket = keys::bucket_start(v[i].0, width);
                points.clear();
                layers.iter_mut().for_each(Vec::clear);
                let mut repeat = 0usize;
                while i < v.len() && keys::bucket_start(v[i].0, width) == bucket {
                    let (ts, _, value) = v[i];
                    i += 1;
                    let same = points.last().is_some_and(|l| l.0 == ts)
                        || (repeat > 0 && layers[repeat - 1].last().is_some_and(|l| l.0 == ts));
                    if !same {
                        repeat = 0;
                        points.push((ts, value));
                    } else if ledger {
                        // Ledger: a repeat is kept in its own layer (first write wins
                        // is decided at the publish, against what is stored too).
                        repeat = (repeat + 1).min(MAX_LAYERS);
                        if layers.len() < repeat {
                            layers.resize_with(repeat, Vec::new);
                        }
                        match layers[repeat - 1].last_mut() {
                            Some(l) if l.0 == ts => l.1 = value,
                            _ => layers[repeat - 1].push((ts, value)),
                        }
                    } else if let Some(last) = points.last_mut() {
                        last.1 = value;
                    }
                }
                for (layer, pts) in std::iter::once(&points).chain(layers.iter()).enumerate() {
                    if pts.is_empty() {
                        continue;
                    }
                    chunk.clear();
                    chunk::encode(pts, &mut chunk);
                    let run = (self.run_no << 8) | layer as u32;
                    imports::staging_key(&mut self.key, self.id, &series, bucket, run);
                    batch.put(&self.store, CF_IMPORT_STAGING, &self.key, &chunk);
                }
            }
        }
        self.run_no += 1;
        self.run_points = 0;
        if let Err(e) = self.store.import_write(batch, false) {
            self.fail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("staging the import failed: {e}"),
            );
        }
    }

    fn flush_quarantine(&mut self) {
        if self.quarantine.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.quarantine);
        let pending = std::mem::take(&mut self.quarantine_pending);
        let source = &self.params.source.name;
        let max = self.ctx.quarantine_max_bytes;
        match self.ctx.quarantine_used(&self.store, source) {
            Ok(used) if used.saturating_add(pending) > max => {
                let msg = format!(
                    "the quarantine of source {source:?} would pass kairosd.import.quarantine_max_bytes ({max} bytes; \
                     it holds {used}): nothing of this import was committed, so no row is lost; \
                     fix and delete what it holds (DELETE /api/v1/quarantine?source={source}), then import again"
                );
                tracing::warn!(source = %source, used, max, "import refused: its source's quarantine is full");
                self.fail(StatusCode::CONFLICT, msg);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                self.fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("counting the quarantine failed: {e}"),
                );
                return;
            }
        }
        match self.store.import_write(batch, true) {
            Ok(()) => self.ctx.quarantine_added(source, pending),
            Err(e) => self.fail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("storing quarantined rows failed (the import is not committed, so none is lost): {e}"),
            ),
        }
    }

    fn reject(&mut self, r: Rejected) {
        *self.by_kind.entry(r.kind).or_default() += 1;
        for e in &r.errors {
            if self.errors.len() >= LISTED_ERRORS {
                break;
            }
            let loc = &r.location;
            let mut item = json!({"kind": e.kind, "message": e.message});
            for (k, v) in [
                ("line", loc.line),
                ("element", loc.element),
                ("row", loc.row),
                ("row_group", loc.row_group),
            ] {
                if let Some(v) = v {
                    item[k] = json!(v);
                }
            }
            if let Some(c) = &e.column {
                item["column"] = json!(c);
            }
            if let Some(i) = e.column_index {
                item["column_index"] = json!(i);
            }
            if let Some(v) = &e.value {
                item["value"] = json!(v);
            }
            self.errors.push(item);
        }
        let bad = self.out.stats.invalid_lines + self.out.stats.quarantine_rows;
        if self.tripped.is_none() {
            let on_error = self.params.on_error.unwrap_or(self.params.source.on_error);
            if on_error == OnError::Abort {
                self.tripped = Some(format!(
                    "{}: {} (on_error=abort: nothing was committed)",
                    r.location,
                    r.errors.first().map_or("", |e| e.message.as_str())
                ));
            } else if let Some(max) = self.params.max_errors.filter(|&m| bad > m) {
                self.tripped = Some(format!("more than max_errors={max} bad rows: nothing was committed"));
            }
        }
        if self.params.dry_run {
            return;
        }
        let entry = quarantine::Entry {
            source: self.params.source.name.clone(),
            import_id: ids::format(self.id),
            file: self.params.file_name.clone(),
            created_at: crate::http::response::now_millis(),
            header: false,
            kafka: None,
            record: r,
        };
        self.quarantine_pending += quarantine::add(
            &self.store,
            &mut self.quarantine,
            &self.params.source.name,
            self.id,
            self.quarantine_seq,
            &entry,
        );
        self.quarantine_seq += 1;
    }

    /// Ends the input, publishes (unless it failed, tripped or is a dry run) and
    /// answers. The job record ends `done`, `error` or `cancelled`.
    pub async fn finish(mut self) -> ImportResult {
        if !self.stopped() {
            if self.parquet.is_some() {
                if let Err(e) = tokio::task::block_in_place(|| self.read_parquet()) {
                    self.fail_import(e);
                }
            } else if let Err(e) = tokio::task::block_in_place(|| self.import.finish(&mut self.out)) {
                self.fail_import(e);
            }
            tokio::task::block_in_place(|| self.drain());
        }
        tokio::task::block_in_place(|| {
            self.flush_quarantine();
            self.flush_stage();
        });
        let s = self.out.stats;
        let cancelled = self.cancel.load(Relaxed);
        let none_usable = s.rows > 0 && s.rows_accepted == 0;
        let empty_replace = self
            .params
            .replace
            .as_ref()
            .is_some_and(|r| s.rows == 0 && !r.truncate_when_empty);
        let mut publish = PublishSummary::default();
        let mut status = StatusCode::OK;
        let mut failure: Option<String> = None;
        if cancelled {
            status = StatusCode::CONFLICT;
            failure = Some("the import was cancelled; nothing was committed".to_owned());
        } else if let Some((st, msg)) = self.failed.clone() {
            status = st;
            failure = Some(msg);
        } else if let Some(why) = self.tripped.clone() {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            failure = Some(why);
        } else if none_usable {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            failure = Some(format!(
                "none of the {} rows could be used ({} invalid lines, {} rows in quarantine); nothing was committed",
                s.rows, s.invalid_lines, s.quarantine_rows
            ));
        } else if empty_replace {
            status = StatusCode::BAD_REQUEST;
            failure = Some(
                "an empty body would only delete the replace range; add replace_truncate_when_empty=true to do that"
                    .to_owned(),
            );
        } else if !self.params.dry_run {
            let replace = match self.replace_specs() {
                Ok(r) => r,
                Err(e) => return self.end_failed(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).await,
            };
            let mut done = self.job.clone();
            done.status = Status::Done;
            done.updated_at = jobs::now();
            done.progress = progress(&s, self.job.progress.bytes_total);
            // The job's result is the answer; its published counts are known only after
            // the write, so the record written with the points says `done` and the
            // counts are filled in right after.
            let spec = PublishSpec {
                import: self.id,
                ledger: self.params.source.merge == Merge::Ledger,
                replace,
                job: Some((jobs::key(self.id).to_vec(), jobs::encode(&done))),
                retention_ms: self
                    .params
                    .source
                    .retention_ms()
                    .map(|ms| ms.min(i64::MAX as u64) as i64),
            };
            match self.ctx.ingest.publish(spec).await {
                Ok(mut p) => {
                    p.points_skipped_duplicate += self.ledger.points_skipped_duplicate;
                    p.points_conflicting += self.ledger.points_conflicting;
                    let mut listed = std::mem::take(&mut self.ledger.conflicts);
                    listed.append(&mut p.conflicts);
                    listed.truncate(LISTED_ERRORS);
                    p.conflicts = listed;
                    publish = p;
                }
                Err(e) => {
                    return self
                        .end_failed(crate::http::ingest::write_error_status(&e), e.to_string())
                        .await
                }
            }
        }
        if let Some(msg) = failure {
            let body = self.body(&s, &publish, Some(msg.clone()), "error");
            let _ = self.store.drop_import_staging(self.id);
            self.end_job(
                if cancelled { Status::Cancelled } else { Status::Error },
                Some(msg),
                Some(body.clone()),
            );
            return ImportResult { status, body };
        }
        for c in &publish.conflicts {
            if self.errors.len() < LISTED_ERRORS {
                self.errors.push(json!({"kind": "conflict", "message": c}));
            }
        }
        let error = summary_error(&s, &publish);
        let body = self.body(&s, &publish, error, "done");
        if !self.params.dry_run {
            self.end_job(Status::Done, None, Some(body.clone()));
            let counts = self.row_counts(&s);
            let ingest = self.ctx.ingest.clone();
            if let Err(e) = ingest.submit_and_wait(counts, Duration::from_secs(30)).await {
                tracing::warn!(%e, "writing kairosd.import.rows failed");
            }
        }
        ImportResult { status, body }
    }

    /// Reads the spooled Parquet file in row batches, staging each before the next.
    fn read_parquet(&mut self) -> Result<(), ImportError> {
        let Some((file, _, n)) = self.parquet.as_ref() else {
            return Ok(());
        };
        let file = file
            .try_clone()
            .map_err(|e| ImportError::Input(format!("cannot read the spooled Parquet file: {e}")))?;
        let spooled = *n;
        let check = row_check(&self.params, self.clock.receive_time);
        let mut rows = kairos_protocols::import::ParquetRows::new(file, &self.params.source, self.clock, check)?;
        while rows.read(&mut self.out, 64 * 1024)? {
            self.drain();
            if self.stopped() {
                break;
            }
        }
        self.out.stats.bytes = spooled;
        Ok(())
    }

    async fn end_failed(mut self, status: StatusCode, msg: String) -> ImportResult {
        let s = self.out.stats;
        let body = self.body(&s, &PublishSummary::default(), Some(msg.clone()), "error");
        let _ = self.store.drop_import_staging(self.id);
        self.end_job(Status::Error, Some(msg), Some(body.clone()));
        let _ = &mut self;
        ImportResult { status, body }
    }

    fn end_job(&mut self, status: Status, error: Option<String>, result: Option<Json>) {
        self.ctx
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        if self.params.dry_run {
            return;
        }
        let mut job = self.job.clone();
        job.status = status;
        job.error = error;
        job.result = result;
        job.updated_at = jobs::now();
        job.progress = progress(&self.out.stats, self.job.progress.bytes_total);
        if let Err(e) = jobs::put(&self.store, self.id, &job) {
            tracing::error!(import = %ids::format(self.id), %e, "storing the job's end failed");
        }
    }

    fn body(&self, s: &Stats, p: &PublishSummary, error: Option<String>, status: &str) -> Json {
        let parquet = self.parquet.is_some();
        let compression = if parquet {
            Some("none")
        } else {
            self.import.compression().map(|c| c.as_str())
        };
        let format = if parquet {
            Some("parquet")
        } else {
            self.import.format().map(|f| f.as_str())
        };
        json!({
            "import_id": ids::format(self.id),
            "source": self.params.source.name,
            "source_version": self.params.source.version,
            "mode": self.params.mode(),
            "merge": self.params.source.merge,
            "format": format,
            "compression": compression,
            "file": self.params.file_name,
            "dry_run": self.params.dry_run,
            "status": status,
            "rows": s.rows,
            "rows_accepted": s.rows_accepted,
            "points": s.points,
            "points_written": p.points_written,
            "points_skipped_duplicate": p.points_skipped_duplicate,
            "points_conflicting": p.points_conflicting,
            "points_replaced": p.points_replaced,
            "points_refused_series_limit": p.refused_series_limit,
            "empty_values": s.empty_values,
            "invalid_lines": s.invalid_lines,
            "quarantine_rows": s.quarantine_rows,
            "bytes": s.bytes,
            "elapsed_ms": self.started.elapsed().as_millis() as u64,
            "error": error,
            "errors": self.errors,
        })
    }

    /// The deletes of a replace: its metrics, range and tag condition.
    fn replace_specs(&self) -> Result<Vec<DeleteSpec>, StoreError> {
        let Some(r) = &self.params.replace else {
            return Ok(Vec::new());
        };
        let (start, end) = r.range.unwrap_or((i64::MIN, i64::MAX));
        let tags = r
            .tags
            .iter()
            .map(|(k, vs)| (k.clone(), vs.iter().map(|v| TagMatch::Exact(v.clone())).collect()))
            .collect::<Vec<_>>();
        let metrics = replace_scope(&self.store, &self.params.source).map_err(|_| StoreError::Unavailable)?;
        Ok(metrics
            .into_iter()
            .map(|metric| DeleteSpec {
                metric,
                tags: tags.clone(),
                start,
                end,
            })
            .collect())
    }

    /// The commit's row counts as points of `kairosd.import.rows{source,kind}`.
    fn row_counts(&self, s: &Stats) -> PointBatch {
        let now = crate::http::response::now_millis();
        let mut batch = PointBatch::new();
        let source = self.params.source.name.as_str();
        batch.push_parts(
            ROWS_METRIC,
            [("kind", "accepted"), ("source", source)],
            now,
            Value::Long(s.rows_accepted as i64),
            0,
        );
        for (kind, n) in &self.by_kind {
            batch.push_parts(
                ROWS_METRIC,
                [("kind", kind.as_str()), ("source", source)],
                now,
                Value::Long(*n as i64),
                0,
            );
        }
        batch
    }
}

impl Drop for ImportRun {
    fn drop(&mut self) {
        if let Some((_, path, _)) = self.parquet.take() {
            let _ = std::fs::remove_file(path);
        }
        self.ctx
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Counts a ledger repeat of (series, `ts`): the same value is a duplicate, another one
/// a conflict (listed, up to [`LISTED_ERRORS`]).
pub fn note_repeat(summary: &mut PublishSummary, series: &[u8], ts: i64, kept: Value, new: Value) {
    if as_f64(kept) == as_f64(new) {
        summary.points_skipped_duplicate += 1;
        return;
    }
    summary.points_conflicting += 1;
    if summary.conflicts.len() < LISTED_ERRORS {
        summary.conflicts.push(format!(
            "{} at {}: kept {}, the import's {} differs (ledger: first write wins)",
            describe_series(series),
            jobs::rfc3339(ts),
            show(kept),
            show(new)
        ));
    }
}

/// `5` and `5.0` are the same value (the type is not part of a point's identity).
fn as_f64(v: Value) -> f64 {
    match v {
        Value::Long(l) => l as f64,
        Value::Double(d) => d,
    }
}

fn show(v: Value) -> String {
    match v {
        Value::Long(l) => l.to_string(),
        Value::Double(d) => d.to_string(),
    }
}

/// `w.temp{station=s1}` from a canonical series key.
pub fn describe_series(key: &[u8]) -> String {
    kairos_protocols::series_key::decode(key)
        .map(|(m, tags)| {
            let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{m}{{{}}}", tags.join(","))
        })
        .unwrap_or_else(|_| "(unreadable series)".to_owned())
}

fn progress(s: &Stats, total: Option<u64>) -> Progress {
    Progress {
        bytes_read: s.bytes,
        bytes_total: total,
        rows: s.rows,
        points: s.points,
    }
}

/// `1 invalid line and 2 rows in quarantine`, or `None` when clean.
fn summary_error(s: &Stats, p: &PublishSummary) -> Option<String> {
    let mut parts = Vec::new();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if s.invalid_lines > 0 {
        parts.push(plural(s.invalid_lines, "invalid line", "invalid lines"));
    }
    if s.quarantine_rows > 0 {
        parts.push(plural(s.quarantine_rows, "row in quarantine", "rows in quarantine"));
    }
    if p.points_conflicting > 0 {
        parts.push(plural(p.points_conflicting, "conflicting point", "conflicting points"));
    }
    if p.refused_series_limit > 0 {
        parts.push(format!(
            "{} points of new series refused (kairosd.series.max)",
            p.refused_series_limit
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// The metrics a replace of `source` covers: its listed value columns, or every stored
/// metric under its prefix (narrow rows, `"*"` columns).
fn replace_scope(store: &Store, source: &Source) -> Result<Vec<String>, ImportResult> {
    let prefix = &source.metric.prefix;
    if let Some(ValueColumns::List(cols)) = &source.metric.value_columns {
        return Ok(cols.iter().map(|c| format!("{prefix}{c}")).collect());
    }
    if prefix.is_empty() {
        return Ok(Vec::new());
    }
    store
        .view()
        .names(NameKind::Metric, prefix)
        .map_err(|e| store_failure(&e))
}

/// The daemon's check of each decoded row: the replace condition
/// (`outside_replace_range`) and the source's retention (`beyond_retention`). Every
/// row of a source passes here, so a retention policy has this one place to refuse.
/// Messages leave the row's location out: the quarantine record puts it in front.
fn row_check(params: &ImportParams, now: i64) -> Option<RowCheck> {
    let retention = params.source.retention_ms();
    let replace = params.replace.clone();
    if retention.is_none() && replace.is_none() {
        return None;
    }
    Some(Box::new(move |row: &RowInfo<'_>| {
        if let Some(ms) = retention {
            let oldest = now.saturating_sub(ms.min(i64::MAX as u64) as i64);
            if row.timestamp < oldest {
                return Err((
                    Kind::BeyondRetention,
                    format!(
                        "timestamp {} is older than the source's retention allows (oldest kept: {})",
                        jobs::rfc3339(row.timestamp),
                        jobs::rfc3339(oldest)
                    ),
                ));
            }
        }
        if let Some(r) = &replace {
            if let Some((start, end)) = r.range {
                if row.timestamp < start || row.timestamp > end {
                    return Err((
                        Kind::OutsideReplaceRange,
                        format!(
                            "timestamp {} is outside the replace range {}..{}",
                            jobs::rfc3339(row.timestamp),
                            jobs::rfc3339(start),
                            jobs::rfc3339(end)
                        ),
                    ));
                }
            }
            for (k, values) in &r.tags {
                let v = row.tag(k);
                if !v.is_some_and(|v| values.iter().any(|w| w == v)) {
                    return Err((
                        Kind::OutsideReplaceRange,
                        format!(
                            "tag {k}={} is outside the replace condition {k}={}",
                            v.unwrap_or("(none)"),
                            values.join("|")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }))
}
