//! The RocksDB store: column families, schema check, the chunk merge operator, and
//! the read paths queries use. Every write goes through [`write`], called by the writer
//! thread ([`crate::writer`]) alone.

pub mod check;
pub mod chunk;
pub mod corrupt;
pub mod expiry;
pub mod faults;
pub mod handle;
pub mod imports;
pub mod keys;
pub mod metadata;
pub mod retention;
pub mod staging;
pub mod view;
pub mod write;

pub use corrupt::Corruptions;
pub use faults::Faults;
pub use handle::StoreHandle;
pub use view::View;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, FlushOptions, MergeOperands, Options,
    SliceTransform, WriteBatch, WriteOptions, DB,
};

pub use keys::SeriesId;

/// A series' tags, sorted by name.
pub type Tags = Vec<(String, String)>;

/// Bumped whenever a key or value layout changes incompatibly. Version 2 put a crc32c
/// on every chunk and staging record and reserved the kinds and flags of the ledger
/// operand and the expiry column (see [`chunk`]), so those need no further bump.
pub const SCHEMA_VERSION: u32 = 2;

pub const CF_META: &str = "meta";
pub const CF_SERIES: &str = "series";
pub const CF_SERIES_BY_ID: &str = "series_by_id";
pub const CF_TAG_INDEX: &str = "tag_index";
pub const CF_NAMES: &str = "names";
pub const CF_POINTS: &str = "points";
pub const CF_STAGING: &str = "staging";
/// Records found unreadable, moved aside (never deleted): key = the column family's
/// name, a zero byte, the record's key, a zero byte, 8 bytes of nanoseconds since the
/// epoch when it was moved (so several versions of one key are kept).
pub const CF_QUARANTINE: &str = "quarantine";
/// Retention policies by metric name prefix (see [`retention`]).
pub const CF_RETENTION: &str = "retention";
/// The metadata API's service key/value store (see [`metadata`]).
pub const CF_METADATA: &str = "metadata";
pub const ALL_CFS: [&str; 15] = [
    CF_META,
    CF_SERIES,
    CF_SERIES_BY_ID,
    CF_TAG_INDEX,
    CF_NAMES,
    CF_POINTS,
    CF_STAGING,
    CF_QUARANTINE,
    CF_RETENTION,
    CF_METADATA,
    imports::CF_SOURCES,
    imports::CF_IMPORT_JOBS,
    imports::CF_IMPORT_QUARANTINE,
    imports::CF_IMPORT_STAGING,
    imports::CF_KAFKA_OFFSETS,
];

pub(crate) const META_SCHEMA_VERSION: &[u8] = b"schema_version";
pub(crate) const META_BUCKET_WIDTH: &[u8] = b"bucket_width_ms";
pub const META_NEXT_SERIES_ID: &[u8] = b"next_series_id";
/// Present once a point with an expiry (a ttl) has been written.
pub(crate) const META_EXPIRING: &[u8] = b"expiring_points";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store at {path}: {source}")]
    Open { path: PathBuf, source: rocksdb::Error },
    #[error(
        "store at {path} has schema version {found}, this kairosd reads version {SCHEMA_VERSION} \
         (version 2 added checksums to every stored chunk and staging record); \
         use a kairosd that matches the store, or a new data directory"
    )]
    Schema { path: PathBuf, found: String },
    #[error("storage error: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupt {what} in column family {cf}")]
    Corrupt { cf: &'static str, what: &'static str },
    /// The writer is reopening the store (after a storage error); try again shortly.
    #[error("the store is being reopened after a storage error; try again shortly")]
    Unavailable,
    /// A reopen gave up waiting for running queries.
    #[error("the store is busy with queries; reopening later")]
    Busy,
    /// A failure armed through [`Faults`] (tests only).
    #[error("storage error: {0}")]
    Injected(String),
}

impl StoreError {
    /// The disk (or its quota) is full: answer 507, and retry once space is back.
    pub fn is_no_space(&self) -> bool {
        let text = self.to_string();
        text.contains("No space left on device") || text.contains("Disk quota exceeded")
    }

    /// A failure of the database or the disk, which can go away (a full disk, an I/O
    /// error, a reopen in progress), as opposed to bad data, which will not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Db(_) | StoreError::Unavailable | StoreError::Busy | StoreError::Injected(_)
        )
    }
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes the struct it is given; `path` is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// The open database. Shared (`Arc`) by the writer thread and the query handlers.
pub struct Store {
    pub(crate) db: DB,
    path: PathBuf,
    bucket_width: i64,
    pub(crate) faults: Arc<Faults>,
    /// Unreadable records readers came across, for the writer to move aside.
    pub corrupt: Corruptions,
    /// Retention policies, shared with the `points` compaction filter.
    retention: Arc<retention::Retention>,
    /// Whether a point with an expiry was ever written (persisted in `meta`), so
    /// listings and compactions skip expiry work on stores that never had one.
    pub(crate) expiring: std::sync::atomic::AtomicBool,
}

/// Files older than this are compacted again, so the compaction filter also reaches
/// data that no longer sees writes (RocksDB's `periodic_compaction_seconds`).
const PERIODIC_COMPACTION_SECONDS: u64 = 86_400;

fn points_cf_options(retention: Arc<retention::Retention>) -> Options {
    let mut opts = Options::default();
    opts.set_merge_operator("kairosd.chunk.v2", merge_chunks, merge_chunks_partial);
    // Chunks whose every point has expired (ttl or retention) are dropped when a
    // compaction meets them; see `retention::filter_chunk`.
    opts.set_compaction_filter("kairosd.expiry", move |_level: u32, key: &[u8], value: &[u8]| {
        if retention::filter_chunk(&retention, key, value) {
            rocksdb::CompactionDecision::Remove
        } else {
            rocksdb::CompactionDecision::Keep
        }
    });
    opts.set_periodic_compaction_seconds(PERIODIC_COMPACTION_SECONDS);
    // The default skiplist memtable: a promotion adds one operand per (series, bucket),
    // which it handles well. A hash-skiplist memtable (tried when every commit wrote
    // operands) must sort all its keys at every flush: with it, 1M series cost 25% more
    // CPU, and even 10,000 series a little more.
    // Keys start with the series id; a query's iterator stays within one series.
    opts.set_prefix_extractor(SliceTransform::create_fixed_prefix(8));
    opts.set_write_buffer_size(64 << 20);
    opts.set_max_write_buffer_number(4);
    opts.set_min_write_buffer_number_to_merge(1);
    opts.set_target_file_size_base(64 << 20);
    opts.set_max_bytes_for_level_base(256 << 20);
    // Chunks are already compact; LZ4 is nearly free, ZSTD pays off where data settles.
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    let mut table = BlockBasedOptions::default();
    table.set_block_size(16 << 10);
    opts.set_block_based_table_factory(&table);
    opts
}

/// Staging records live for one promotion interval and are then range-deleted. A
/// flush drops the records its memtable's range tombstones cover, so only the few
/// not yet promoted reach disk; a small memtable therefore costs little I/O, and it
/// is most of the daemon's resident memory under load. Measured with the benchmark
/// load (10M points): 16 MB instead of 64 MB took peak RSS from 180 to 147 MB over
/// telnet and from 142 to 103 MB over REST, at the same CPU.
fn staging_cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_write_buffer_size(16 << 20);
    opts.set_max_write_buffer_number(2);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts
}

fn index_cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_write_buffer_size(16 << 20);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts
}

/// The series dictionary is read by point lookups, nearly all of them misses (a series
/// the writer has not seen since it started is usually new): bloom filters in the
/// memtable and the table files answer those without searching either.
fn series_cf_options() -> Options {
    let mut opts = index_cf_options();
    opts.set_memtable_prefix_bloom_ratio(0.1);
    opts.set_memtable_whole_key_filtering(true);
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_whole_key_filtering(true);
    opts.set_block_based_table_factory(&table);
    opts
}

/// Merge inputs kept inside salvage envelopes since the start (see [`chunk`]).
pub static MERGE_SALVAGED: AtomicU64 = AtomicU64::new(0);

/// RocksDB merge operator of the `points` column family: folds chunks by timestamp,
/// the later operand winning a tie. An input that cannot be read is neither dropped
/// (compaction would make that permanent) nor fatal (every read and compaction of the
/// key would fail): the readable inputs are merged and the unreadable ones kept
/// verbatim beside them in a salvage envelope, which readers report and the writer
/// moves to the `quarantine` column family.
fn merge_chunks(key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    merge_chunks_at(key, existing, operands, true)
}

/// The partial merge (operands only, older versions may lie below): the same fold, but
/// expired points are kept, since dropping one here would let an older version of it
/// show again once the full merge meets that version.
fn merge_chunks_partial(key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    merge_chunks_at(key, existing, operands, false)
}

/// A full merge (`full`) sees every version of the key, so points expired by
/// the wall clock can go; the clock is read only when an input has an expiry column.
fn merge_chunks_at(key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands, full: bool) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut salvaging, mut expiring) = (false, false);
    for b in existing.into_iter().chain(operands.iter()) {
        salvaging |= b.first() == Some(&chunk::KIND_SALVAGE);
        expiring |= chunk::has_expiry(b);
    }
    let now = (full && (expiring || salvaging)).then(expiry::now_ms);
    if !salvaging {
        let merged = if expiring {
            let inputs: Vec<&[u8]> = existing.into_iter().chain(operands.iter()).collect();
            chunk::merge_expiring(&inputs, now, &mut out)
        } else {
            chunk::merge(existing, operands.iter(), &mut out)
        };
        if merged.is_ok() {
            return Some(out);
        }
    }
    out.clear();
    salvage_merge(key, existing.into_iter().chain(operands.iter()), now, &mut out);
    Some(out)
}

/// The merge of readable `inputs`, with the unreadable ones (and those already in
/// salvage envelopes) kept in an envelope beside it.
fn salvage_merge<'a>(key: &[u8], inputs: impl Iterator<Item = &'a [u8]>, now: Option<i64>, out: &mut Vec<u8>) {
    let mut good: Vec<&[u8]> = Vec::new();
    let mut bad: Vec<&[u8]> = Vec::new();
    for input in inputs {
        if let Some((readable, parts)) = chunk::salvaged(input) {
            good.push(readable);
            bad.extend(parts);
        } else if chunk::count(input).is_ok() {
            good.push(input);
        } else {
            bad.push(input);
        }
    }
    let mut merged = Vec::new();
    if chunk::merge_expiring(&good, now, &mut merged).is_err() {
        // Cannot happen (every input was checked), but never lose one if it does.
        merged.clear();
        chunk::encode(&[], &mut merged);
        bad.extend(good.iter().copied());
    }
    if bad.is_empty() {
        *out = merged;
        return;
    }
    MERGE_SALVAGED.fetch_add(1, Relaxed);
    tracing::error!(
        key = ?keys::parse_point_key(key),
        unreadable = bad.len(),
        "unreadable chunk in a merge; kept aside in a salvage envelope with the readable points"
    );
    chunk::encode_salvage(&merged, &bad, out);
}

/// The options of the database as a whole.
pub(crate) fn db_options() -> Options {
    // Preallocated WAL space shows as used disk while holding nothing.
    let mut db_opts = Options::default()
        .get_options_from_string("allow_fallocate=false")
        .unwrap_or_default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_background_jobs(2);
    db_opts.increase_parallelism(2);
    db_opts.set_bytes_per_sync(1 << 20);
    db_opts.set_keep_log_file_num(4);
    // The small column families hold on to old WAL files until they flush; past this
    // size RocksDB flushes them so the WAL cannot grow without bound.
    db_opts.set_max_total_wal_size(256 << 20);
    // A corrupt block found by a compaction must cost the data in it, not every
    // later write: with paranoid checks RocksDB makes such an error permanent (every
    // write then fails with "Corruption: block checksum mismatch"); without, the
    // compaction fails, writes go on, reads of the block report it, and
    // `kairosd check` names the keys. Checksums are still verified on every read.
    db_opts.set_paranoid_checks(false);
    db_opts
}

/// The options of column family `name` (the merge operator for `points`).
pub(crate) fn cf_options(name: &str, retention: &Arc<retention::Retention>) -> Options {
    match name {
        CF_POINTS => points_cf_options(Arc::clone(retention)),
        CF_STAGING => staging_cf_options(),
        CF_SERIES => series_cf_options(),
        imports::CF_IMPORT_STAGING => imports::import_staging_cf_options(),
        _ => index_cf_options(),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. `bucket_width` applies only to a new
    /// store; an existing one keeps the width it was created with.
    pub fn open(dir: &Path, bucket_width: i64) -> Result<Store, StoreError> {
        Store::open_with(dir, bucket_width, Arc::new(Faults::default()))
    }

    /// [`Store::open`] with fault injection (see [`StoreHandle`]).
    pub fn open_with(dir: &Path, bucket_width: i64, faults: Arc<Faults>) -> Result<Store, StoreError> {
        faults.stuck.store(false, std::sync::atomic::Ordering::Relaxed);
        let db_opts = db_options();
        let retention = Arc::new(retention::Retention::default());
        let cfs = ALL_CFS
            .iter()
            .map(|&name| ColumnFamilyDescriptor::new(name, cf_options(name, &retention)));
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(|source| StoreError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            db,
            path: dir.to_path_buf(),
            bucket_width,
            faults,
            corrupt: Corruptions::default(),
            retention: Arc::clone(&retention),
            expiring: Default::default(),
        };
        store.check_schema(bucket_width)?;
        let expiring = store.db.get_cf(store.cf(CF_META), META_EXPIRING)?.is_some();
        store.expiring.store(expiring, Relaxed);
        retention.bucket_width.store(store.bucket_width, Relaxed);
        retention.load(&store)?;
        Ok(store)
    }

    fn check_schema(&mut self, bucket_width: i64) -> Result<(), StoreError> {
        let meta = self.cf(CF_META);
        match self.db.get_cf(meta, META_SCHEMA_VERSION)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice()).ok().map(u32::from_be_bytes);
                if found != Some(SCHEMA_VERSION) {
                    let found = found.map(|v| v.to_string()).unwrap_or_else(|| format!("{v:?}"));
                    return Err(StoreError::Schema {
                        path: self.path.clone(),
                        found,
                    });
                }
                let width = self
                    .db
                    .get_cf(meta, META_BUCKET_WIDTH)?
                    .and_then(|w| <[u8; 8]>::try_from(w.as_slice()).ok());
                let width = width.map(i64::from_be_bytes).filter(|&w| w > 0);
                self.bucket_width = width.ok_or(StoreError::Corrupt {
                    cf: CF_META,
                    what: "bucket width",
                })?;
                if self.bucket_width != bucket_width {
                    tracing::warn!(
                        stored = self.bucket_width,
                        configured = bucket_width,
                        "kairosd.storage.bucket_width_ms differs from the store's; keeping the store's"
                    );
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, META_SCHEMA_VERSION, SCHEMA_VERSION.to_be_bytes());
                batch.put_cf(meta, META_BUCKET_WIDTH, bucket_width.to_be_bytes());
                let mut sync = WriteOptions::default();
                sync.set_sync(true);
                self.db.write_opt(batch, &sync)?;
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bucket_width(&self) -> i64 {
        self.bucket_width
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("every column family is created at open")
    }

    /// The next unused series id, as last committed.
    pub fn next_series_id(&self) -> Result<SeriesId, StoreError> {
        match self.db.get_cf(self.cf(CF_META), META_NEXT_SERIES_ID)? {
            None => Ok(1),
            Some(v) => <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    cf: CF_META,
                    what: "next series id",
                }),
        }
    }

    /// The id of the series with canonical key `key`, if it exists.
    pub fn series_id(&self, key: &[u8]) -> Result<Option<SeriesId>, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_SERIES), key)? {
            None => Ok(None),
            Some(v) => <[u8; 8]>::try_from(&v[..])
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| StoreError::Corrupt {
                    cf: CF_SERIES,
                    what: "series id",
                }),
        }
    }

    /// Commits one group of writes; `sync` fsyncs the WAL first.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Forces the WAL to disk (the background durability bound when writes are unsynced).
    pub fn sync_wal(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// A consistent read view: every read through it sees the store as of now, so a
    /// query never sees a point both staged and promoted, or neither.
    pub fn view(&self) -> View<'_> {
        View::new(self)
    }

    /// Writes every memtable to disk, so the WAL can be dropped (the writer does this
    /// when ingest pauses, which also keeps recovery after a crash short).
    pub fn flush_memtables(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|n| self.cf(n)).collect();
        self.db.flush_cfs_opt(&cfs, &FlushOptions::default())?;
        // Staging records that reached disk before their promotion are dead weight
        // under range tombstones; compacting the (small) column family drops them.
        self.db
            .compact_range_cf(self.cf(CF_STAGING), None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Whether anything in the store can expire: a point with a ttl was written, or a
    /// retention policy exists.
    pub fn may_expire(&self) -> bool {
        self.expiring.load(Relaxed) || !self.retention.is_empty()
    }

    /// Compacts the `points` column family so its filter drops what has expired, after
    /// recomputing the series under retention policies. Does nothing when nothing can
    /// expire.
    pub fn compact_expired(&self) -> Result<bool, StoreError> {
        if !self.may_expire() {
            return Ok(false);
        }
        self.retention.refresh(self)?;
        let cf = self.cf(CF_POINTS);
        self.db.flush_cf(cf)?;
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
        Ok(true)
    }

    /// Compacts every column family fully (benchmarks and the disk-usage figure).
    pub fn compact(&self) {
        for name in ALL_CFS {
            self.db.compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// An integer RocksDB property of the whole database, e.g. `rocksdb.background-errors`.
    pub fn db_property_int(&self, name: &str) -> Option<u64> {
        self.db.property_int_value(name).ok().flatten()
    }

    /// An integer RocksDB property of `cf`, e.g. `rocksdb.estimate-num-keys`.
    pub fn property(&self, cf: &str, name: &str) -> Option<u64> {
        self.db.property_int_value_cf(self.cf(cf), name).ok().flatten()
    }
}
