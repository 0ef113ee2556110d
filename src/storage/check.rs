//! `kairosd check DIR`: verifies a stopped store offline and names every bad record.
//!
//! Opens the store read-only (a store killed with SIGKILL is checked as the next start
//! would see it: RocksDB replays the WAL into memory) and reads every record of every
//! column family with block checksums verified: each chunk decoded (its crc32c and its
//! structure), each staging record decoded (crc32c, and series ids the store has
//! allocated), the series dictionary both ways, the tag index against it, and the
//! metadata. A block RocksDB cannot read ends that column family's scan with the key
//! before it named. Records in `quarantine` were moved aside by a running kairosd and
//! are listed as a note, not as damage.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use kairos_protocols::series_key;
use rocksdb::{ColumnFamilyDescriptor, ReadOptions, DB};

use super::keys::{self, SeriesId};
use super::{
    cf_options, chunk, db_options, staging, StoreError, CF_META, CF_NAMES, CF_POINTS, CF_QUARANTINE, CF_SERIES,
    CF_SERIES_BY_ID, CF_STAGING, CF_TAG_INDEX, META_BUCKET_WIDTH, META_NEXT_SERIES_ID, META_SCHEMA_VERSION,
    SCHEMA_VERSION,
};
use crate::health::hex;

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Records read, every column family.
    pub records: u64,
    /// One line per bad record (or unreadable stretch), naming its column family and key.
    pub bad: Vec<String>,
    /// Things worth knowing that are not damage (records in quarantine).
    pub notes: Vec<String>,
}

impl Report {
    fn bad(&mut self, cf: &str, key: &[u8], what: impl std::fmt::Display) {
        self.bad.push(format!("{cf} {}: {what}", describe_key(cf, key)));
    }
}

/// A key as people read it: `points` keys as series id and bucket, others in hex.
fn describe_key(cf: &str, key: &[u8]) -> String {
    match (cf, keys::parse_point_key(key)) {
        (CF_POINTS, Some((series, bucket))) => format!("series {series} bucket {bucket} (key {})", hex(key)),
        _ => format!("key {}", hex(key)),
    }
}

/// Checks the store in `dir`. `progress` prints a running count to stderr (on a terminal).
pub fn check(dir: &Path, progress: bool) -> Result<Report, StoreError> {
    let opts = db_options();
    let names = DB::list_cf(&opts, dir).map_err(|source| StoreError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    let cfs = names
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(name, cf_options(name)));
    let db = DB::open_cf_descriptors_read_only(&opts, dir, cfs, false).map_err(|source| StoreError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut report = Report::default();
    let mut ticker = Progress::new(progress && std::io::stderr().is_terminal());

    // Metadata first: the schema version decides whether the rest can be read at all.
    let mut next_id: Option<SeriesId> = None;
    scan(&db, CF_META, &mut report, &mut ticker, |r, k, v| match k {
        META_SCHEMA_VERSION => match <[u8; 4]>::try_from(v).map(u32::from_be_bytes) {
            Ok(SCHEMA_VERSION) => {}
            Ok(other) => r.bad(
                CF_META,
                k,
                format!("schema version {other}, this kairosd reads {SCHEMA_VERSION}"),
            ),
            Err(_) => r.bad(CF_META, k, "schema version is not 4 bytes"),
        },
        META_BUCKET_WIDTH if !<[u8; 8]>::try_from(v).is_ok_and(|w| i64::from_be_bytes(w) > 0) => {
            r.bad(CF_META, k, "bucket width is not a positive 8-byte number")
        }
        META_NEXT_SERIES_ID => match <[u8; 8]>::try_from(v) {
            Ok(b) => next_id = Some(u64::from_be_bytes(b)),
            Err(_) => r.bad(CF_META, k, "next series id is not 8 bytes"),
        },
        _ => {}
    });
    let next_id = next_id.unwrap_or(1);

    let mut series: HashMap<SeriesId, Vec<u8>> = HashMap::new();
    scan(&db, CF_SERIES, &mut report, &mut ticker, |r, k, v| {
        if let Err(e) = series_key::decode(k) {
            r.bad(CF_SERIES, k, format!("series key does not decode: {e:?}"));
        }
        match <[u8; 8]>::try_from(v).map(u64::from_be_bytes) {
            Ok(id) if id < next_id => {
                series.insert(id, k.to_vec());
            }
            Ok(id) => r.bad(
                CF_SERIES,
                k,
                format!("series id {id} was never allocated (next is {next_id})"),
            ),
            Err(_) => r.bad(CF_SERIES, k, "series id is not 8 bytes"),
        }
    });
    scan(&db, CF_SERIES_BY_ID, &mut report, &mut ticker, |r, k, v| {
        let Ok(id) = <[u8; 8]>::try_from(k).map(u64::from_be_bytes) else {
            return r.bad(CF_SERIES_BY_ID, k, "key is not an 8-byte series id");
        };
        match series.get(&id) {
            Some(key) if key.as_slice() == v => {}
            Some(_) => r.bad(
                CF_SERIES_BY_ID,
                k,
                format!("series {id} names another key than the dictionary"),
            ),
            None => r.bad(CF_SERIES_BY_ID, k, format!("series {id} is not in the dictionary")),
        }
    });
    scan(&db, CF_TAG_INDEX, &mut report, &mut ticker, |r, k, _| {
        let id = k
            .len()
            .checked_sub(8)
            .map(|at| u64::from_be_bytes(k[at..].try_into().unwrap()));
        if !id.is_some_and(|id| series.contains_key(&id)) {
            r.bad(CF_TAG_INDEX, k, "entry for a series not in the dictionary");
        }
    });
    scan(&db, CF_NAMES, &mut report, &mut ticker, |r, k, _| {
        if k.is_empty() || std::str::from_utf8(&k[1..]).is_err() {
            r.bad(CF_NAMES, k, "name is not UTF-8");
        }
    });
    scan(&db, CF_POINTS, &mut report, &mut ticker, |r, k, v| {
        let Some((id, _)) = keys::parse_point_key(k) else {
            return r.bad(CF_POINTS, k, "key is not 16 bytes");
        };
        if let Some((_, bad)) = chunk::salvaged(v) {
            r.bad(
                CF_POINTS,
                k,
                format!(
                    "chunk holds {} unreadable merge operands beside its readable points (a running kairosd moves them to quarantine when it reads the chunk)",
                    bad.len()
                ),
            );
        } else if let Err(e) = chunk::count(v) {
            r.bad(CF_POINTS, k, e);
        } else if !series.contains_key(&id) {
            r.bad(
                CF_POINTS,
                k,
                format!("points of series {id}, which is not in the dictionary"),
            );
        }
    });
    scan(&db, CF_STAGING, &mut report, &mut ticker, |r, k, v| {
        if k.len() != 8 {
            return r.bad(CF_STAGING, k, "key is not an 8-byte sequence number");
        }
        let mut unknown = None;
        match staging::decode(v, |id, _, _| {
            if id >= next_id {
                unknown.get_or_insert(id);
            }
        }) {
            Err(e) => r.bad(CF_STAGING, k, e),
            Ok(()) => {
                if let Some(id) = unknown {
                    r.bad(
                        CF_STAGING,
                        k,
                        format!("point of series {id}, which was never allocated"),
                    );
                }
            }
        }
    });
    let mut quarantined = 0u64;
    scan(&db, CF_QUARANTINE, &mut report, &mut ticker, |_, _, _| quarantined += 1);
    if quarantined > 0 {
        report.notes.push(format!(
            "{quarantined} records in the quarantine column family (moved aside by kairosd when found unreadable)"
        ));
    }
    ticker.done();
    Ok(report)
}

/// Calls `f` for every record of `cf` (if the store has it); an iterator error ends the
/// scan with a report naming the last key read before it.
fn scan(
    db: &DB,
    cf: &'static str,
    report: &mut Report,
    ticker: &mut Progress,
    mut f: impl FnMut(&mut Report, &[u8], &[u8]),
) {
    let Some(handle) = db.cf_handle(cf) else {
        return;
    };
    let mut opts = ReadOptions::default();
    opts.set_verify_checksums(true);
    opts.fill_cache(false);
    let mut it = db.raw_iterator_cf_opt(handle, opts);
    it.seek_to_first();
    let mut last: Vec<u8> = Vec::new();
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        report.records += 1;
        f(report, k, v);
        last.clear();
        last.extend_from_slice(k);
        ticker.tick(cf, report.records);
        it.next();
    }
    if let Err(e) = it.status() {
        let after = if last.is_empty() {
            "at its start".to_string()
        } else {
            format!("after {}", describe_key(cf, &last))
        };
        report.bad.push(format!(
            "{cf} {after}: unreadable ({e}); the rest of this column family was not checked"
        ));
    }
}

/// A running count on stderr, at most twice a second; nothing when not a terminal.
struct Progress {
    on: bool,
    last: Instant,
}

impl Progress {
    fn new(on: bool) -> Progress {
        Progress {
            on,
            last: Instant::now(),
        }
    }

    fn tick(&mut self, cf: &str, records: u64) {
        if self.on && records.is_multiple_of(4096) && self.last.elapsed() >= Duration::from_millis(500) {
            self.last = Instant::now();
            eprint!("\rchecked {records} records (now: {cf})        ");
        }
    }

    fn done(&self) {
        if self.on {
            eprint!("\r{:60}\r", "");
        }
    }
}
