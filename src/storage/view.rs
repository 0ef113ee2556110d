//! Reads from one RocksDB snapshot (see [`Store::view`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kairos_protocols::{series_key, Value};
use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, Snapshot, DB};

use super::keys::{self, SeriesId};
use super::{
    chunk, staging, Corruptions, Store, StoreError, Tags, CF_NAMES, CF_POINTS, CF_SERIES, CF_SERIES_BY_ID, CF_STAGING,
    CF_TAG_INDEX,
};

/// Reports a chunk that could not be decoded (the reader then treats it as empty), or
/// a salvage envelope (decoded, but with unreadable operands to move aside).
fn check_chunk(corrupt: &Corruptions, key: &[u8], value: &[u8], decoded: Result<(), chunk::ChunkError>) {
    match decoded {
        Err(e) => corrupt.report(CF_POINTS, key, e),
        Ok(()) if value.first() == Some(&chunk::KIND_SALVAGE) => {
            corrupt.report(CF_POINTS, key, "salvage envelope: the chunk has unreadable operands")
        }
        Ok(()) => {}
    }
}

pub struct View<'a> {
    store: &'a Store,
    snapshot: Snapshot<'a>,
    /// The time the view hides expired points at (ttl expiries), fixed at creation so
    /// one query sees one consistent set of points.
    now: i64,
    /// Per series, the time before which its points are hidden (its metric's
    /// retention, see [`View::hide_before`]); readers made afterwards apply it.
    cutoffs: std::sync::Mutex<Arc<HashMap<SeriesId, i64>>>,
}

/// Points of one series still in the staging log, with their arrival order and
/// whether they have expired.
pub type StagedPoints = HashMap<SeriesId, Vec<(i64, u64, Value, bool)>>;

impl<'a> View<'a> {
    pub(super) fn new(store: &'a Store) -> View<'a> {
        View {
            store,
            snapshot: store.db.snapshot(),
            now: super::expiry::now_ms(),
            cutoffs: Default::default(),
        }
    }

    /// Hides the points of `series` before `cutoff` from the readers and staged points
    /// read afterwards (a retention policy's limit).
    pub fn hide_before(&self, series: impl IntoIterator<Item = SeriesId>, cutoff: i64) {
        let mut guard = self.cutoffs.lock().unwrap_or_else(|e| e.into_inner());
        let map = Arc::make_mut(&mut guard);
        map.extend(series.into_iter().map(|id| (id, cutoff)));
    }

    /// Hides, for each metric of `metrics` under a retention policy, the points of its
    /// series (`series_of(metric)`) before the policy's cutoff at [`View::now`].
    pub fn apply_retention<'m, I: IntoIterator<Item = SeriesId>>(
        &self,
        metrics: impl IntoIterator<Item = &'m str>,
        mut series_of: impl FnMut(&'m str) -> I,
    ) {
        let retention = self.store.retention();
        if retention.is_empty() {
            return;
        }
        for m in metrics {
            if let Some(cutoff) = retention.cutoff_for_metric(m, self.now) {
                self.hide_before(series_of(m), cutoff);
            }
        }
    }

    fn cutoffs(&self) -> Arc<HashMap<SeriesId, i64>> {
        Arc::clone(&self.cutoffs.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The time this view hides expired points at.
    pub fn now(&self) -> i64 {
        self.now
    }

    fn read_options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        opts
    }

    /// Calls `f(key, value)` for every key of `cf` starting with `prefix`, in order,
    /// until `f` returns false.
    pub fn scan_prefix(
        &self,
        cf: &str,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mut opts = self.read_options();
        if let Some(end) = keys::prefix_end(prefix) {
            opts.set_iterate_upper_bound(end);
        }
        let mut it = self.store.db.raw_iterator_cf_opt(self.store.cf(cf), opts);
        it.seek(prefix);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !f(k, v) {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Names of the given kind starting with `prefix`, sorted.
    pub fn names(&self, kind: keys::NameKind, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        self.scan_prefix(CF_NAMES, &keys::name_key(kind, prefix), |k, _| {
            out.push(String::from_utf8_lossy(&k[1..]).into_owned());
            true
        })?;
        Ok(out)
    }

    /// Those of `names` (metric names) that still hold a visible point: a metric whose
    /// every point has expired (ttl or retention) is left out. Costs nothing on a store
    /// where nothing can expire; otherwise, per metric, its series are read newest
    /// chunk first until a visible point turns up (usually the first chunk read).
    pub fn live_metrics(&self, names: Vec<String>) -> Result<Vec<String>, StoreError> {
        if !self.store.may_expire() {
            return Ok(names);
        }
        let mut reader = self.points();
        let mut out = Vec::with_capacity(names.len());
        let mut unsure: Vec<(String, Vec<SeriesId>, i64)> = Vec::new();
        for name in names {
            let cutoff = self
                .store
                .retention()
                .cutoff_for_metric(&name, self.now)
                .unwrap_or(i64::MIN);
            let ids: Vec<SeriesId> = self.series_of_metric(&name)?.into_iter().map(|(id, _)| id).collect();
            let mut live = false;
            for &id in &ids {
                if reader.has_visible_point(id, cutoff)? {
                    live = true;
                    break;
                }
            }
            if live {
                out.push(name);
            } else if !ids.is_empty() {
                unsure.push((name, ids, cutoff));
            }
        }
        if !unsure.is_empty() {
            // Points not yet promoted count too (one pass over the staging log).
            let all: HashSet<SeriesId> = unsure.iter().flat_map(|u| u.1.iter().copied()).collect();
            let staged = self.staged_points(&all, i64::MIN, i64::MAX)?;
            for (name, ids, cutoff) in unsure {
                let live = ids.iter().any(|id| {
                    staged.get(id).is_some_and(|pts| {
                        let mut last: HashMap<i64, (u64, bool)> = HashMap::new();
                        for &(ts, seq, _, dead) in pts {
                            let e = last.entry(ts).or_insert((seq, dead));
                            if seq >= e.0 {
                                *e = (seq, dead);
                            }
                        }
                        last.iter().any(|(&ts, &(_, dead))| !dead && ts >= cutoff)
                    })
                });
                if live {
                    out.push(name);
                }
            }
            out.sort();
        }
        Ok(out)
    }

    /// Every series of `metric` with its id and tags.
    pub fn series_of_metric(&self, metric: &str) -> Result<Vec<(SeriesId, Tags)>, StoreError> {
        let mut out = Vec::new();
        let mut bad = false;
        self.scan_prefix(CF_SERIES, &series_key::metric_prefix(metric), |k, v| {
            match (series_key::decode(k), <[u8; 8]>::try_from(v)) {
                (Ok((_, tags)), Ok(id)) => out.push((u64::from_be_bytes(id), tags)),
                _ => bad = true,
            }
            true
        })?;
        if bad {
            return Err(StoreError::Corrupt {
                cf: CF_SERIES,
                what: "series entry",
            });
        }
        Ok(out)
    }

    /// Calls `f(id, canonical key)` for every series of `metric`, in key order, without
    /// decoding the keys (a plan over a million series reads tags only where needed).
    pub fn series_keys_of_metric(&self, metric: &str, mut f: impl FnMut(SeriesId, &[u8])) -> Result<(), StoreError> {
        let mut bad = false;
        self.scan_prefix(CF_SERIES, &series_key::metric_prefix(metric), |k, v| {
            match <[u8; 8]>::try_from(v) {
                Ok(id) => f(u64::from_be_bytes(id), k),
                Err(_) => bad = true,
            }
            true
        })?;
        if bad {
            return Err(StoreError::Corrupt {
                cf: CF_SERIES,
                what: "series entry",
            });
        }
        Ok(())
    }

    /// Ids of the series of `metric` that carry tag `name` with value `value`.
    pub fn series_with_tag(&self, metric: &str, name: &str, value: &str) -> Result<Vec<SeriesId>, StoreError> {
        let prefix = keys::tag_index_prefix(metric, name, Some(value));
        let mut out = Vec::new();
        self.scan_prefix(CF_TAG_INDEX, &prefix, |k, _| {
            if let Ok(id) = <[u8; 8]>::try_from(&k[prefix.len()..]) {
                out.push(u64::from_be_bytes(id));
            }
            true
        })?;
        Ok(out)
    }

    /// Every value of tag `name` on `metric`'s series, with the series carrying it.
    pub fn tag_values(&self, metric: &str, name: &str) -> Result<Vec<(String, SeriesId)>, StoreError> {
        let prefix = keys::tag_index_prefix(metric, name, None);
        let mut out = Vec::new();
        let mut bad = false;
        self.scan_prefix(CF_TAG_INDEX, &prefix, |k, _| {
            let rest = &k[prefix.len()..];
            match series_key::read_str(rest) {
                Ok((value, id)) if id.len() == 8 => {
                    out.push((value, u64::from_be_bytes(id.try_into().expect("length checked"))));
                }
                _ => bad = true,
            }
            true
        })?;
        if bad {
            return Err(StoreError::Corrupt {
                cf: CF_TAG_INDEX,
                what: "tag index entry",
            });
        }
        Ok(out)
    }

    /// Whether a `tag_index` entry under `prefix` belongs to a series not in `except`.
    pub fn tag_index_has_other(&self, prefix: &[u8], except: &HashSet<SeriesId>) -> Result<bool, StoreError> {
        let mut found = false;
        self.scan_prefix(CF_TAG_INDEX, prefix, |k, _| {
            let id = k
                .len()
                .checked_sub(8)
                .and_then(|at| <[u8; 8]>::try_from(&k[at..]).ok())
                .map(u64::from_be_bytes);
            found = id.is_none_or(|id| !except.contains(&id));
            !found
        })?;
        Ok(found)
    }

    /// The metric and tags of series `id`.
    pub fn series_by_id(&self, id: SeriesId) -> Result<Option<(String, Tags)>, StoreError> {
        match self
            .store
            .db
            .get_pinned_cf_opt(self.store.cf(CF_SERIES_BY_ID), id.to_be_bytes(), &self.read_options())?
        {
            None => Ok(None),
            Some(v) => series_key::decode(&v).map(Some).map_err(|_| StoreError::Corrupt {
                cf: CF_SERIES_BY_ID,
                what: "series key",
            }),
        }
    }

    /// Calls `f` with the canonical key of series `id`, as stored; false if there is none.
    pub fn with_series_key(&self, id: SeriesId, f: impl FnOnce(&[u8])) -> Result<bool, StoreError> {
        match self
            .store
            .db
            .get_pinned_cf_opt(self.store.cf(CF_SERIES_BY_ID), id.to_be_bytes(), &self.read_options())?
        {
            Some(v) => {
                f(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A reader of series' points from this view. Make one per query and reuse it for
    /// every series: creating a RocksDB iterator costs more than reading a series' few
    /// chunks, so a query over a million series would spend most of its time there.
    pub fn points(&self) -> PointReader<'_> {
        let mut opts = self.read_options();
        // In key order across series: a query over many series with adjacent ids
        // steps from one series' chunk to the next instead of seeking (see
        // `PointReader::seek_to`); every read checks the series id of what it finds.
        opts.set_total_order_seek(true);
        PointReader {
            it: self.store.db.raw_iterator_cf_opt(self.store.cf(CF_POINTS), opts),
            corrupt: &self.store.corrupt,
            width: self.store.bucket_width,
            scratch: Vec::new(),
            decoded: 0,
            now: self.now,
            cutoffs: self.cutoffs(),
            at_or_after: None,
        }
    }

    /// The staged (not yet promoted) points of `series` with `start <= ts <= end`. A
    /// record that fails its checksum is reported (see [`super::corrupt`]) and skipped:
    /// the writer still holds its points and promotes them.
    pub fn staged_points(&self, series: &HashSet<SeriesId>, start: i64, end: i64) -> Result<StagedPoints, StoreError> {
        let mut out = StagedPoints::new();
        let mut seq = 0u64;
        let mut record_points = Vec::new();
        let cutoffs = self.cutoffs();
        self.scan_prefix(CF_STAGING, &[], |key, record| {
            record_points.clear();
            let now = self.now;
            let decoded = staging::decode_expiring(record, |id, ts, value, expiry| {
                // An expired point still replaces an older one at its timestamp (last
                // write wins), so it is kept here as a marker and dropped after the fold.
                if ts >= start && ts <= end && series.contains(&id) {
                    let hidden = !cutoffs.is_empty() && cutoffs.get(&id).is_some_and(|&c| ts < c);
                    record_points.push((id, ts, value, hidden || super::expiry::expired(expiry, now)));
                }
            });
            match decoded {
                Ok(()) => {
                    for &(id, ts, value, dead) in &record_points {
                        seq += 1;
                        out.entry(id).or_default().push((ts, seq, value, dead));
                    }
                }
                Err(e) => self.store.corrupt.report(CF_STAGING, key, e),
            }
            true
        })?;
        Ok(out)
    }
}

/// Reads series' points through one iterator (see [`View::points`]).
pub struct PointReader<'v> {
    it: DBRawIteratorWithThreadMode<'v, DB>,
    /// Where an unreadable chunk is reported; the reader skips it and goes on.
    corrupt: &'v Corruptions,
    width: i64,
    scratch: Vec<(i64, Value)>,
    decoded: u64,
    /// Points expired by then are hidden (see [`View::now`]).
    now: i64,
    /// See [`View::hide_before`].
    cutoffs: Arc<HashMap<SeriesId, i64>>,
    /// The iterator stands on the first key at or after this one (set by
    /// [`PointReader::seek_to`]; cleared by any other move).
    at_or_after: Option<[u8; 16]>,
}

impl PointReader<'_> {
    /// The retention cutoff of series `id`, if any.
    #[inline]
    fn cutoff(&self, id: SeriesId) -> Option<i64> {
        if self.cutoffs.is_empty() {
            return None;
        }
        self.cutoffs.get(&id).copied()
    }

    /// Drops the points of `out[before..]` hidden by series `id`'s retention.
    #[inline]
    fn hide(&self, id: SeriesId, out: &mut Vec<(i64, Value)>, before: usize) {
        if let Some(c) = self.cutoff(id) {
            let mut keep = before;
            for i in before..out.len() {
                if out[i].0 >= c {
                    out[keep] = out[i];
                    keep += 1;
                }
            }
            out.truncate(keep);
        }
    }

    /// The store's bucket width in ms.
    pub fn bucket_width(&self) -> i64 {
        self.width
    }

    /// Points read from chunks so far (decoded, or counted from a header), whether or
    /// not they fell in a queried range (the "points scanned" self-metric).
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Decodes the first chunk of series `id` whose bucket is in `from..=last`,
    /// appending all its points (in time order) to `out`. Returns the chunk's bucket.
    pub fn next_chunk(
        &mut self,
        id: SeriesId,
        from: i64,
        last: i64,
        out: &mut Vec<(i64, Value)>,
    ) -> Result<Option<i64>, StoreError> {
        if from > last {
            return Ok(None);
        }
        self.seek_to(id, from);
        self.take_chunk(id, from, last, out)
    }

    /// Like [`PointReader::next_chunk`], but only reads the chunk's header: its bucket,
    /// point count and first timestamp. The points count as scanned.
    pub fn next_chunk_header(
        &mut self,
        id: SeriesId,
        from: i64,
        last: i64,
    ) -> Result<Option<(i64, usize, i64)>, StoreError> {
        if from > last {
            return Ok(None);
        }
        self.seek_to(id, from);
        if !self.it.valid() {
            self.it.status()?;
            return Ok(None);
        }
        let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
            return Ok(None);
        };
        let Some((series, bucket)) = keys::parse_point_key(k) else {
            return Ok(None);
        };
        if series != id || bucket < from || bucket > last {
            return Ok(None);
        }
        let cutoff = self.cutoff(id).filter(|&c| bucket < c);
        let header = if chunk::has_expiry(v) || cutoff.is_some() {
            // The header counts hidden points too: count the visible ones instead.
            self.scratch.clear();
            let mut scratch = std::mem::take(&mut self.scratch);
            let r = chunk::decode_live(v, self.now, &mut scratch).map(|()| {
                self.hide(id, &mut scratch, 0);
                (scratch.len(), scratch.first().map_or(0, |p| p.0))
            });
            self.scratch = scratch;
            r
        } else {
            chunk::header(v)
        };
        let (n, first) = match header {
            Ok(h) => h,
            Err(e) => {
                self.corrupt.report(CF_POINTS, k, e);
                (0, 0)
            }
        };
        if v.first() == Some(&chunk::KIND_SALVAGE) {
            self.corrupt
                .report(CF_POINTS, k, "salvage envelope: the chunk has unreadable operands");
        }
        self.decoded += n as u64;
        Ok(Some((bucket, n, first)))
    }

    /// Positions the iterator at the first key at or after (`id`, `from`). When it
    /// stands just before that key (on an earlier bucket of `id`, or on the series
    /// before `id`: a metric whose series were created together has adjacent ids), one
    /// step usually lands there, for a fraction of a seek's cost (a seek searches every
    /// memtable and level); a step that falls short is followed by the seek. Further
    /// away it seeks at once: a step resolves the key it lands on (merging its
    /// operands), wasted on a series the query did not ask for.
    ///
    /// Where the iterator already stands on the first key at or after an earlier
    /// target no greater than this one, and that key is at or after this target, it is
    /// the answer as it is: a series' last bucket read, the next series' first chunk is
    /// where the iterator landed.
    fn seek_to(&mut self, id: SeriesId, from: i64) {
        let target = keys::point_key(id, from);
        if self.at_or_after.is_some_and(|prev| prev <= target)
            && (!self.it.valid() || self.it.key().is_some_and(|k| k >= &target[..]))
        {
            self.at_or_after = Some(target);
            return;
        }
        let near = self.it.valid()
            && self.it.key().is_some_and(|k| {
                keys::parse_point_key(k)
                    .is_some_and(|(s, _)| (s == id || s.checked_add(1) == Some(id)) && k < &target[..])
            });
        self.at_or_after = Some(target);
        if near {
            self.it.next();
            if !self.it.valid() || self.it.key().is_some_and(|k| k >= &target[..]) {
                return;
            }
        }
        self.it.seek(target);
    }

    /// Decodes the chunk the last [`PointReader::next_chunk_header`] found (no second
    /// seek), appending its points to `out`.
    pub fn decode_found(&mut self, out: &mut Vec<(i64, Value)>) -> Result<(), StoreError> {
        let Some(v) = self.it.value() else {
            return Ok(());
        };
        let before = out.len();
        // The header already counted these points as scanned.
        if let Err(e) = chunk::decode_live(v, self.now, out) {
            if let Some(k) = self.it.key() {
                self.corrupt.report(CF_POINTS, k, e);
            }
        }
        if let Some((id, _)) = self.it.key().and_then(keys::parse_point_key) {
            self.hide(id, out, before);
        }
        Ok(())
    }

    /// The bucket of the first chunk of series `id` in `from..=last`, without decoding it.
    pub fn first_bucket(&mut self, id: SeriesId, from: i64, last: i64) -> Result<Option<i64>, StoreError> {
        if from > last {
            return Ok(None);
        }
        self.seek_to(id, from);
        if !self.it.valid() {
            self.it.status()?;
            return Ok(None);
        }
        Ok(self
            .it
            .key()
            .and_then(keys::parse_point_key)
            .filter(|&(s, b)| s == id && b <= last)
            .map(|(_, b)| b))
    }

    /// Whether series `id` holds a stored point not expired and at or after `cutoff`,
    /// reading its chunks newest first and stopping at the first such point or at the
    /// first bucket wholly before `cutoff`.
    pub fn has_visible_point(&mut self, id: SeriesId, cutoff: i64) -> Result<bool, StoreError> {
        self.it.seek_for_prev(keys::point_key(id, i64::MAX));
        while self.it.valid() {
            let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
                break;
            };
            let Some((series, bucket)) = keys::parse_point_key(k) else {
                break;
            };
            if series != id || bucket.saturating_add(self.width) <= cutoff {
                break;
            }
            self.scratch.clear();
            check_chunk(self.corrupt, k, v, chunk::decode_live(v, self.now, &mut self.scratch));
            if self.scratch.last().is_some_and(|p| p.0 >= cutoff) {
                return Ok(true);
            }
            self.it.prev();
        }
        self.it.status()?;
        Ok(false)
    }

    /// Decodes the last chunk of series `id` whose bucket is in `first..=to`.
    pub fn prev_chunk(
        &mut self,
        id: SeriesId,
        to: i64,
        first: i64,
        out: &mut Vec<(i64, Value)>,
    ) -> Result<Option<i64>, StoreError> {
        if first > to {
            return Ok(None);
        }
        self.at_or_after = None;
        self.it.seek_for_prev(keys::point_key(id, to));
        self.take_chunk(id, first, to, out)
    }

    fn take_chunk(
        &mut self,
        id: SeriesId,
        first: i64,
        last: i64,
        out: &mut Vec<(i64, Value)>,
    ) -> Result<Option<i64>, StoreError> {
        if !self.it.valid() {
            self.it.status()?;
            return Ok(None);
        }
        let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
            return Ok(None);
        };
        let Some((series, bucket)) = keys::parse_point_key(k) else {
            return Ok(None);
        };
        if series != id || bucket < first || bucket > last {
            return Ok(None);
        }
        let before = out.len();
        check_chunk(self.corrupt, k, v, chunk::decode_live(v, self.now, out));
        self.decoded += (out.len() - before) as u64;
        self.hide(id, out, before);
        Ok(Some(bucket))
    }

    /// Appends the points of series `id` with `start <= ts <= end` to `out`, in time
    /// order. Returns how many were appended.
    pub fn read(
        &mut self,
        id: SeriesId,
        start: i64,
        end: i64,
        out: &mut Vec<(i64, Value)>,
    ) -> Result<usize, StoreError> {
        let before = out.len();
        let last_bucket = keys::bucket_start(end, self.width);
        self.at_or_after = None;
        self.it.seek(keys::point_key(id, keys::bucket_start(start, self.width)));
        while self.it.valid() {
            let (Some(k), Some(v)) = (self.it.key(), self.it.value()) else {
                break;
            };
            let Some((series, bucket)) = keys::parse_point_key(k) else {
                break;
            };
            if series != id || bucket > last_bucket {
                break;
            }
            self.scratch.clear();
            check_chunk(self.corrupt, k, v, chunk::decode_live(v, self.now, &mut self.scratch));
            self.decoded += self.scratch.len() as u64;
            let start = self.cutoff(id).map_or(start, |c| c.max(start));
            out.extend(self.scratch.iter().filter(|(ts, _)| *ts >= start && *ts <= end));
            // Stepping past the last bucket would make RocksDB resolve a key we do not want.
            if bucket == last_bucket {
                break;
            }
            self.it.next();
        }
        self.it.status()?;
        Ok(out.len() - before)
    }
}
