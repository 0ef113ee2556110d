//! The write API: the only code that builds RocksDB batches. Each method is one atomic
//! RocksDB write, so a crash leaves either all of it or none of it.
//!
//! The writer thread is the only caller (it owns series-id allocation and the order of
//! writes); a later fault-injection layer can stand in for these few methods.

use rocksdb::WriteBatch;

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

/// What [`Store::delete_points`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Series that hold no point any more (candidates for [`Store::remove_series`]).
    pub emptied: Vec<SeriesId>,
    /// Stored chunks rewritten or dropped.
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

    /// Deletes the points of `series` with `start <= ts <= end`. Buckets wholly inside
    /// the range go with a range delete; a bucket the range cuts is read, filtered and
    /// written back whole (a put replaces every older merge operand, so nothing comes
    /// back at compaction). Call it with nothing staged for these series: the writer
    /// promotes first, so the chunks are all there is.
    pub fn delete_points(
        &self,
        series: &[SeriesId],
        start: i64,
        end: i64,
        sync: bool,
    ) -> Result<DeleteOutcome, StoreError> {
        let mut out = DeleteOutcome::default();
        if start > end {
            return Ok(out);
        }
        let width = self.bucket_width() as i128;
        let points = self.cf(CF_POINTS);
        let mut batch = WriteBatch::default();
        let mut decoded = Vec::new();
        let mut encoded = Vec::new();
        let first = keys::bucket_start(start, self.bucket_width()) as i128;
        let last = keys::bucket_start(end, self.bucket_width()) as i128;
        // Whole buckets: [full_lo, full_hi) in bucket starts.
        let full_lo = if first == start as i128 { first } else { first + width };
        let full_hi = if last + width - 1 <= end as i128 {
            last + width
        } else {
            last
        };
        for &id in series {
            if full_lo < full_hi {
                let from = keys::point_key(id, clamp(full_lo));
                match (full_hi <= i64::MAX as i128).then(|| keys::point_key(id, clamp(full_hi))) {
                    Some(to) => batch.delete_range_cf(points, from, to),
                    None => batch.delete_range_cf(points, from.to_vec(), series_end(id)),
                }
            }
            let mut partial = vec![first];
            if last != first {
                partial.push(last);
            }
            partial.retain(|&b| !(full_lo <= b && b < full_hi));
            for bucket in partial {
                let key = keys::point_key(id, clamp(bucket));
                let Some(value) = self.db.get_pinned_cf(points, key)? else {
                    continue;
                };
                decoded.clear();
                chunk::decode(&value, &mut decoded).map_err(|_| StoreError::Corrupt {
                    cf: CF_POINTS,
                    what: "chunk",
                })?;
                let before = decoded.len();
                decoded.retain(|&(ts, _)| ts < start || ts > end);
                if decoded.len() == before {
                    continue;
                }
                out.chunks_touched += 1;
                if decoded.is_empty() {
                    batch.delete_cf(points, key);
                } else {
                    encoded.clear();
                    chunk::encode(&decoded, &mut encoded);
                    batch.put_cf(points, key, &encoded);
                }
            }
        }
        self.write(batch, sync)?;
        for &id in series {
            if !self.series_has_points(id)? {
                out.emptied.push(id);
            }
        }
        Ok(out)
    }

    /// Whether any chunk of series `id` still holds a point.
    fn series_has_points(&self, id: SeriesId) -> Result<bool, StoreError> {
        let mut found = Ok(false);
        self.view().scan_prefix(CF_POINTS, &id.to_be_bytes(), |_, v| {
            found = match chunk::count(v) {
                Ok(0) => return true,
                Ok(_) => Ok(true),
                Err(_) => Err(StoreError::Corrupt {
                    cf: CF_POINTS,
                    what: "chunk",
                }),
            };
            false
        })?;
        found
    }

    /// Removes `series` entirely: every chunk, the dictionary and index entries, and the
    /// given `names` entries (the caller decides which names no series uses any more).
    pub fn remove_series(
        &self,
        series: &[(SeriesId, String, Tags, Vec<u8>)],
        names: &[Vec<u8>],
        sync: bool,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (id, metric, tags, key) in series {
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
        s.write(self.batch, sync)
    }
}
