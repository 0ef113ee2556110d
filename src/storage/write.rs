//! The write API: the only code that builds RocksDB batches. Each method that writes
//! is one atomic RocksDB write (commit, promote, apply a delete), so a crash leaves
//! either all of it or none of it.
//!
//! The writer thread is the only caller (it owns series-id allocation and the order of
//! writes). Commits and promotions pass through [`super::Faults`], so tests can make
//! them fail as a full or broken disk would.

use rocksdb::WriteBatch;

use super::faults::Site;
use super::keys::{self, SeriesId};
use super::{
    chunk, Store, StoreError, Tags, CF_META, CF_NAMES, CF_POINTS, CF_SERIES, CF_SERIES_BY_ID, CF_STAGING, CF_TAG_INDEX,
    META_NEXT_SERIES_ID,
};

/// One group commit being assembled: new series, new names, then the staging record.
pub struct Commit<'s> {
    store: &'s Store,
    batch: WriteBatch,
}

/// One promotion being assembled: chunk operands, then the staging records it replaces.
pub struct Promotion<'s> {
    store: &'s Store,
    batch: WriteBatch,
}

/// A delete worked out against the store as it is (see [`Store::plan_delete`]);
/// nothing of it is written until [`Store::apply_delete`].
pub struct DeletePlan {
    batch: WriteBatch,
    /// Series that hold no point once the plan is applied.
    pub emptied: Vec<SeriesId>,
    /// Stored chunks rewritten or dropped because the range cuts them.
    pub chunks_touched: usize,
}

impl Store {
    pub fn begin_commit(&self) -> Commit<'_> {
        Commit {
            store: self,
            batch: WriteBatch::default(),
        }
    }

    pub fn begin_promotion(&self) -> Promotion<'_> {
        Promotion {
            store: self,
            batch: WriteBatch::default(),
        }
    }

    /// Works out deleting the points of `series` with `start <= ts <= end`: buckets
    /// wholly inside the range go with a range delete; a bucket the range cuts is read,
    /// filtered and will be written back whole (a put replaces every older merge
    /// operand, so nothing comes back at compaction). Call it with nothing staged for
    /// these series (the writer promotes first) and nothing written in between.
    pub fn plan_delete(&self, series: &[SeriesId], start: i64, end: i64) -> Result<DeletePlan, StoreError> {
        self.plan_delete_with(WriteBatch::default(), series, start, end)
    }

    /// [`Store::plan_delete`] adding to `batch` (a replace's publish writes the delete
    /// and the import's points in one write).
    fn plan_delete_with(
        &self,
        batch: WriteBatch,
        series: &[SeriesId],
        start: i64,
        end: i64,
    ) -> Result<DeletePlan, StoreError> {
        let mut plan = DeletePlan {
            batch,
            emptied: Vec::new(),
            chunks_touched: 0,
        };
        if start > end {
            return Ok(plan);
        }
        let width = self.bucket_width() as i128;
        let points = self.cf(CF_POINTS);
        let mut decoded = Vec::new();
        let mut encoded = Vec::new();
        let mut expiries: Vec<i64> = Vec::new();
        let first = keys::bucket_start(start, self.bucket_width()) as i128;
        let last = keys::bucket_start(end, self.bucket_width()) as i128;
        // Whole buckets: [full_lo, full_hi) in bucket starts.
        let full_lo = if first == start as i128 { first } else { first + width };
        let full_hi = if last + width - 1 <= end as i128 {
            last + width
        } else {
            last
        };
        let mut it = self.db.raw_iterator_cf(points);
        for &id in series {
            if full_lo < full_hi {
                let from = keys::point_key(id, clamp(full_lo));
                match (full_hi <= i64::MAX as i128).then(|| keys::point_key(id, clamp(full_hi))) {
                    Some(to) => plan.batch.delete_range_cf(points, from, to),
                    None => plan.batch.delete_range_cf(points, from.to_vec(), series_end(id)),
                }
            }
            let mut partial = vec![first];
            if last != first {
                partial.push(last);
            }
            partial.retain(|&b| !(full_lo <= b && b < full_hi));
            let mut left = false;
            for bucket in partial {
                let key = keys::point_key(id, clamp(bucket));
                let Some(value) = self.db.get_pinned_cf(points, key)? else {
                    continue;
                };
                decoded.clear();
                expiries.clear();
                chunk::decode_expiring(&value, &mut decoded, &mut expiries).map_err(|_| StoreError::Corrupt {
                    cf: CF_POINTS,
                    what: "chunk",
                })?;
                let before = decoded.len();
                // Points and their expiries (ms, 0 = never) stay paired.
                let mut keep = 0;
                for i in 0..decoded.len() {
                    let ts = decoded[i].0;
                    if ts < start || ts > end {
                        decoded[keep] = decoded[i];
                        expiries[keep] = expiries[i];
                        keep += 1;
                    }
                }
                decoded.truncate(keep);
                expiries.truncate(keep);
                left |= !decoded.is_empty();
                if decoded.len() == before {
                    continue;
                }
                plan.chunks_touched += 1;
                if decoded.is_empty() {
                    plan.batch.delete_cf(points, key);
                } else {
                    encoded.clear();
                    chunk::encode_expiring(&decoded, &expiries, &mut encoded);
                    plan.batch.put_cf(points, key, &encoded);
                }
            }
            // Chunks before the first or after the last bucket the range touches.
            it.seek(keys::point_key(id, i64::MIN));
            left |= it
                .key()
                .and_then(keys::parse_point_key)
                .is_some_and(|(s, b)| s == id && (b as i128) < first);
            it.seek_for_prev(keys::point_key(id, i64::MAX));
            left |= it
                .key()
                .and_then(keys::parse_point_key)
                .is_some_and(|(s, b)| s == id && (b as i128) > last);
            it.status()?;
            if !left {
                plan.emptied.push(id);
            }
        }
        Ok(plan)
    }

    /// Writes `plan`, the removal of `remove` (series left without points: chunks,
    /// dictionary and index entries) and of the `names` entries nothing uses any more,
    /// as one atomic write.
    pub fn apply_delete(
        &self,
        plan: DeletePlan,
        remove: &[(SeriesId, String, Tags, Vec<u8>)],
        names: &[Vec<u8>],
        sync: bool,
    ) -> Result<(), StoreError> {
        let mut batch = plan.batch;
        for (id, metric, tags, key) in remove {
            batch.delete_range_cf(self.cf(CF_POINTS), id.to_be_bytes().to_vec(), series_end(*id));
            batch.delete_cf(self.cf(CF_SERIES), key);
            batch.delete_cf(self.cf(CF_SERIES_BY_ID), id.to_be_bytes());
            for (k, v) in tags {
                batch.delete_cf(self.cf(CF_TAG_INDEX), keys::tag_index_key(metric, k, v, *id));
            }
        }
        for name in names {
            batch.delete_cf(self.cf(CF_NAMES), name);
        }
        self.write(batch, sync)
    }
}

/// The exclusive end of every `points` key of series `id`.
fn series_end(id: SeriesId) -> Vec<u8> {
    match id.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff; 17],
    }
}

fn clamp(bucket: i128) -> i64 {
    bucket.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl Commit<'_> {
    /// Adds a new series' dictionary and tag index entries.
    pub fn add_series(&mut self, id: SeriesId, key: &[u8], metric: &str, tags: &Tags) {
        let s = self.store;
        self.batch.put_cf(s.cf(CF_SERIES), key, id.to_be_bytes());
        self.batch.put_cf(s.cf(CF_SERIES_BY_ID), id.to_be_bytes(), key);
        let tag_index = s.cf(CF_TAG_INDEX);
        for (k, v) in tags {
            self.batch.put_cf(tag_index, keys::tag_index_key(metric, k, v, id), []);
        }
    }

    /// Notes in the store that points with an expiry exist (once; see
    /// [`Store::expiring`]).
    pub fn mark_expiring(&mut self) {
        let s = self.store;
        if !s.expiring.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.batch.put_cf(s.cf(CF_META), super::META_EXPIRING, [1]);
        }
    }

    /// [`Commit::add_series`] from the canonical key alone: the tag index keys are
    /// the key's own escaped parts (`tag_index_key` writes the same bytes), built in
    /// `scratch`, so a new series costs no decoding and no allocation. False (nothing
    /// added) if `key` is not a whole series key.
    pub fn add_series_key(&mut self, id: SeriesId, key: &[u8], scratch: &mut Vec<u8>) -> bool {
        let Some((metric, tags)) = keys::split_series_key(key) else {
            return false;
        };
        let s = self.store;
        self.batch.put_cf(s.cf(CF_SERIES), key, id.to_be_bytes());
        self.batch.put_cf(s.cf(CF_SERIES_BY_ID), id.to_be_bytes(), key);
        let tag_index = s.cf(CF_TAG_INDEX);
        for (k, v) in tags {
            scratch.clear();
            for part in [metric, k, v] {
                scratch.extend_from_slice(part);
                scratch.push(0);
            }
            scratch.extend_from_slice(&id.to_be_bytes());
            self.batch.put_cf(tag_index, &scratch[..], []);
        }
        true
    }

    /// Records a metric, tag name or tag value for the metadata endpoints.
    pub fn add_name(&mut self, key: &[u8]) {
        self.batch.put_cf(self.store.cf(CF_NAMES), key, []);
    }

    /// Writes everything added plus the staging record `record` under `seq`, and the
    /// next unused series id if series were created.
    pub fn finish(
        mut self,
        next_series_id: Option<SeriesId>,
        seq: u64,
        record: &[u8],
        sync: bool,
    ) -> Result<(), StoreError> {
        let s = self.store;
        if let Some(next) = next_series_id {
            self.batch
                .put_cf(s.cf(CF_META), META_NEXT_SERIES_ID, next.to_be_bytes());
        }
        self.batch.put_cf(s.cf(CF_STAGING), seq.to_be_bytes(), record);
        s.faults.check(Site::Commit)?;
        s.write(self.batch, sync)
    }
}

impl Promotion<'_> {
    /// Merges `chunk` (encoded points) into the stored chunk of (`series`, `bucket`).
    pub fn add_chunk(&mut self, series: SeriesId, bucket: i64, chunk: &[u8]) {
        self.batch
            .merge_cf(self.store.cf(CF_POINTS), keys::point_key(series, bucket), chunk);
    }

    /// Writes the chunks and drops every staging record below `staged_below`.
    pub fn finish(mut self, staged_below: u64, sync: bool) -> Result<(), StoreError> {
        let s = self.store;
        self.batch
            .delete_range_cf(s.cf(CF_STAGING), 0u64.to_be_bytes(), staged_below.to_be_bytes());
        s.faults.check(Site::Promotion)?;
        s.write(self.batch, sync)
    }
}

/// The publish of an import (see [`crate::import`]): the same commit as a group commit
/// (new series and names), plus chunk operands written straight to `points`, the
/// removal of the import's staging records and its job record, in one atomic write.
impl Commit<'_> {
    /// Merges `chunk` into the stored chunk of (`series`, `bucket`).
    pub fn add_chunk(&mut self, series: SeriesId, bucket: i64, chunk: &[u8]) {
        self.batch
            .merge_cf(self.store.cf(CF_POINTS), keys::point_key(series, bucket), chunk);
    }

    /// Puts a record of an import column family (the job) into the same write.
    pub fn put_import_record(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.batch.put_cf(self.store.cf(cf), key, value);
    }

    /// Deletes the points of `series` with `start <= ts <= end` in this write (see
    /// [`Store::plan_delete`]); the series stay in the index.
    pub fn delete_points(&mut self, series: &[SeriesId], start: i64, end: i64) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        let plan = self.store.plan_delete_with(batch, series, start, end)?;
        self.batch = plan.batch;
        Ok(())
    }

    /// Bytes of the write so far.
    pub fn size_in_bytes(&self) -> usize {
        self.batch.size_in_bytes()
    }

    /// Writes everything added and drops the staging records of `import`.
    pub fn finish_import(
        mut self,
        next_series_id: Option<SeriesId>,
        import: u64,
        sync: bool,
    ) -> Result<(), StoreError> {
        let s = self.store;
        if let Some(next) = next_series_id {
            self.batch
                .put_cf(s.cf(CF_META), META_NEXT_SERIES_ID, next.to_be_bytes());
        }
        self.batch.delete_range_cf(
            s.cf(super::imports::CF_IMPORT_STAGING),
            import.to_be_bytes().to_vec(),
            super::imports::staging_end(import),
        );
        s.faults.check(Site::Commit)?;
        s.write(self.batch, sync)
    }
}
