//! The writer's half of an import: publishing its staged points (see [`crate::import`]).
//!
//! The staging area is sorted by (series key, timestamp, file order), so the publish
//! holds one series' points at a time: it resolves (or allocates) the series id, folds
//! the points into one chunk operand per bucket, and adds those to a single commit
//! that also creates the new series, deletes a replace's range, drops the staging
//! records and stores the job as done. Either all of that is written or none of it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use kairos_protocols::Value;

use super::Writer;
use crate::ingest::{PublishRequest, PublishSpec, PublishSummary, WriteFailed};
use crate::storage::imports::{self, CF_IMPORT_JOBS, CF_IMPORT_STAGING};
use crate::storage::keys::SeriesId;
use crate::storage::{chunk, Store, StoreError};

impl Writer {
    pub(super) fn apply_publish(&mut self, req: PublishRequest) {
        if !self.ensure_store() {
            let _ = req.ack.send(Err(WriteFailed::from(&StoreError::Unavailable)));
            return;
        }
        let result = self.publish(&req.spec);
        match &result {
            Ok(s) => {
                tracing::info!(
                    import = req.spec.import,
                    written = s.points_written,
                    "published an import"
                );
                self.activity.wrote(self.config.sync);
            }
            Err(err) => {
                self.metrics.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(import = req.spec.import, %err, "publishing an import failed; nothing of it was applied");
            }
        }
        let _ = req.ack.send(result.map_err(|e| WriteFailed::from(&e)));
    }

    fn publish(&mut self, spec: &PublishSpec) -> Result<PublishSummary, StoreError> {
        // Points staged by live writes before now are older than the import: promoted
        // first, so the import's win over them. A replace leaves them staged instead:
        // the import promoted everything when it started (its own empty publish), so
        // what is staged now arrived during the import and goes on top of it (spec §8
        // case 17).
        if spec.replace.is_empty() {
            self.promote()?;
        }
        let store = Arc::clone(self.store());
        let mut summary = PublishSummary::default();
        let mut commit = store.begin_commit();
        let result = self.fill_publish(&store, spec, &mut commit, &mut summary);
        let result = result.and_then(|()| {
            if let Some((key, value)) = &spec.job {
                commit.put_import_record(CF_IMPORT_JOBS, key, value);
            }
            let next = (!self.created.is_empty()).then_some(self.next_id);
            commit.finish_import(next, spec.import, self.config.sync)
        });
        match result {
            Ok(()) => {
                self.metrics
                    .series_created
                    .fetch_add(self.created.len() as u64, Relaxed);
                self.metrics.points_written.fetch_add(summary.points_written, Relaxed);
                self.series_count += self.created.len() as u64;
                self.created.clear();
                self.new_names.clear();
                Ok(summary)
            }
            Err(err) => {
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

    fn fill_publish(
        &mut self,
        store: &Store,
        spec: &PublishSpec,
        commit: &mut crate::storage::write::Commit<'_>,
        summary: &mut PublishSummary,
    ) -> Result<(), StoreError> {
        for d in &spec.replace {
            let series = {
                let view = store.view();
                crate::query::plan::select_series(&view, &d.metric, &d.tags)?
            };
            let ids: Vec<SeriesId> = series.iter().map(|(id, _)| *id).collect();
            let view = store.view();
            let mut reader = view.points();
            let mut scratch = Vec::new();
            for &id in &ids {
                scratch.clear();
                summary.points_replaced += reader.read(id, d.start, d.end, &mut scratch)? as u64;
            }
            commit.delete_points(&ids, d.start, d.end)?;
        }
        let view = store.view();
        let mut it = {
            let mut opts = rocksdb::ReadOptions::default();
            opts.set_iterate_upper_bound(imports::staging_end(spec.import));
            store.db.raw_iterator_cf_opt(store.cf(CF_IMPORT_STAGING), opts)
        };
        it.seek(spec.import.to_be_bytes());
        let mut current: Vec<u8> = Vec::new();
        // One series' staged chunks: (bucket, run, chunk), in key order.
        let mut chunks: Vec<(i64, u32, Vec<u8>)> = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let Some((series, bucket, run)) = imports::parse_staging_key(k) else {
                return Err(StoreError::Corrupt {
                    cf: CF_IMPORT_STAGING,
                    what: "staged import key",
                });
            };
            if series != current.as_slice() {
                if !chunks.is_empty() {
                    self.publish_series(store, &view, &current, &chunks, spec, commit, summary)?;
                }
                current.clear();
                current.extend_from_slice(series);
                chunks.clear();
            }
            chunks.push((bucket, run, v.to_vec()));
            it.next();
        }
        it.status()?;
        if !chunks.is_empty() {
            self.publish_series(store, &view, &current, &chunks, spec, commit, summary)?;
        }
        Ok(())
    }

    /// Adds one chunk operand per bucket of one series: its runs' chunks folded, the
    /// later run winning a repeated timestamp (append) or the earlier one (ledger,
    /// which also skips what is stored already).
    #[allow(clippy::too_many_arguments)]
    fn publish_series(
        &mut self,
        store: &Store,
        view: &crate::storage::View<'_>,
        key: &[u8],
        chunks: &[(i64, u32, Vec<u8>)],
        spec: &PublishSpec,
        commit: &mut crate::storage::write::Commit<'_>,
        summary: &mut PublishSummary,
    ) -> Result<(), StoreError> {
        let Some(id) = self.resolve(key, commit)? else {
            for (_, _, c) in chunks {
                summary.refused_series_limit += chunk::count(c).unwrap_or(0) as u64;
            }
            return Ok(());
        };
        let ledger = spec.ledger;
        let width = store.bucket_width();
        let mut reader = view.points();
        let mut existing: Vec<(i64, Value)> = Vec::new();
        let mut decoded: Vec<(i64, Value)> = Vec::new();
        let mut i = 0;
        while i < chunks.len() {
            let bucket = chunks[i].0;
            let mut j = i;
            while j < chunks.len() && chunks[j].0 == bucket {
                j += 1;
            }
            let runs = &chunks[i..j];
            i = j;
            if !ledger {
                // The merge operator folds inputs by time, a later input winning a
                // tie: runs in file order are exactly append's last write wins.
                self.chunk.clear();
                let (first, rest) = runs.split_first().expect("a bucket has a run");
                chunk::merge(Some(&first.2), rest.iter().map(|r| r.2.as_slice()), &mut self.chunk).map_err(|_| {
                    StoreError::Corrupt {
                        cf: CF_IMPORT_STAGING,
                        what: "staged import chunk",
                    }
                })?;
                if let Some(ms) = spec.retention_ms {
                    self.points.clear();
                    chunk::decode(&self.chunk, &mut self.points).map_err(|_| StoreError::Corrupt {
                        cf: CF_IMPORT_STAGING,
                        what: "staged import chunk",
                    })?;
                    self.chunk.clear();
                    encode_retained(&self.points, ms, &mut self.chunk);
                }
                summary.points_written += chunk::count(&self.chunk).unwrap_or(0) as u64;
                commit.add_chunk(id, bucket, &self.chunk);
                continue;
            }
            // Ledger: every run's points with their run, the first of a time kept.
            let mut all: Vec<(i64, u32, Value)> = Vec::new();
            for (_, run, c) in runs {
                decoded.clear();
                chunk::decode(c, &mut decoded).map_err(|_| StoreError::Corrupt {
                    cf: CF_IMPORT_STAGING,
                    what: "staged import chunk",
                })?;
                all.extend(decoded.iter().map(|&(ts, v)| (ts, *run, v)));
            }
            all.sort_unstable_by_key(|p| (p.0, p.1));
            existing.clear();
            reader.read(id, bucket, bucket.saturating_add(width - 1), &mut existing)?;
            self.points.clear();
            for (ts, _, value) in all {
                let kept = match self.points.last() {
                    Some(last) if last.0 == ts => Some(last.1),
                    _ => existing
                        .binary_search_by_key(&ts, |p| p.0)
                        .ok()
                        .map(|at| existing[at].1),
                };
                match kept {
                    None => self.points.push((ts, value)),
                    Some(kept) => crate::import::engine::note_repeat(summary, key, ts, kept, value),
                }
            }
            if self.points.is_empty() {
                continue;
            }
            summary.points_written += self.points.len() as u64;
            self.chunk.clear();
            match spec.retention_ms {
                Some(ms) => encode_retained(&self.points, ms, &mut self.chunk),
                None => chunk::encode(&self.points, &mut self.chunk),
            }
            commit.add_chunk(id, bucket, &self.chunk);
        }
        Ok(())
    }
}

/// Encodes `points` with the expiry a retention of `ms` gives each: hidden once it is
/// older than `ms`, exactly where a prefix policy's cutoff (`now - ms`, kept at the
/// boundary) would hide it. One run of `expiry - ts` in the chunk's expiry column.
fn encode_retained(points: &[(i64, Value)], ms: i64, out: &mut Vec<u8>) {
    let expiry: Vec<i64> = points
        .iter()
        .map(|&(ts, _)| ts.saturating_add(ms).saturating_add(1).max(1))
        .collect();
    chunk::encode_expiring(points, &expiry, out);
}
