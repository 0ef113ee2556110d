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
use crate::storage::keys::{self, SeriesId};
use crate::storage::{chunk, Store, StoreError};

/// Conflicts listed by name in a ledger import's answer; the rest are counted.
const MAX_LISTED_CONFLICTS: usize = 20;

impl Writer {
    pub(super) fn apply_publish(&mut self, req: PublishRequest) {
        if !self.ensure_store() {
            let _ = req.ack.send(Err(WriteFailed::from(&StoreError::Unavailable)));
            return;
        }
        let result = self.publish(&req.spec);
        match &result {
            Ok(s) => {
                tracing::info!(import = req.spec.import, written = s.points_written, "published an import");
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
            store
                .db
                .raw_iterator_cf_opt(store.cf(CF_IMPORT_STAGING), opts)
        };
        it.seek(spec.import.to_be_bytes());
        let mut current: Vec<u8> = Vec::new();
        let mut points: Vec<(i64, u32, Value)> = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let (Some((series, ts, seq)), Some(value)) = (imports::parse_staging_key(k), imports::decode_value(v))
            else {
                return Err(StoreError::Corrupt {
                    cf: CF_IMPORT_STAGING,
                    what: "staged import point",
                });
            };
            if series != current.as_slice() {
                if !points.is_empty() {
                    self.publish_series(store, &view, &current, &points, spec.ledger, commit, summary)?;
                }
                current.clear();
                current.extend_from_slice(series);
                points.clear();
            }
            points.push((ts, seq, value));
            it.next();
        }
        it.status()?;
        if !points.is_empty() {
            self.publish_series(store, &view, &current, &points, spec.ledger, commit, summary)?;
        }
        Ok(())
    }

    /// Adds the chunks of one series' staged points (sorted by time, then file order).
    #[allow(clippy::too_many_arguments)]
    fn publish_series(
        &mut self,
        store: &Store,
        view: &crate::storage::View<'_>,
        key: &[u8],
        staged: &[(i64, u32, Value)],
        ledger: bool,
        commit: &mut crate::storage::write::Commit<'_>,
        summary: &mut PublishSummary,
    ) -> Result<(), StoreError> {
        let Some(id) = self.resolve(key, commit)? else {
            summary.refused_series_limit += staged.len() as u64;
            return Ok(());
        };
        let width = store.bucket_width();
        let mut reader = view.points();
        let mut existing: Vec<(i64, Value)> = Vec::new();
        let mut i = 0;
        while i < staged.len() {
            let bucket = keys::bucket_start(staged[i].0, width);
            self.points.clear();
            existing.clear();
            if ledger {
                reader.read(id, bucket, bucket.saturating_add(width - 1), &mut existing)?;
            }
            while i < staged.len() && keys::bucket_start(staged[i].0, width) == bucket {
                let (ts, _, value) = staged[i];
                i += 1;
                let repeated = self.points.last().is_some_and(|p| p.0 == ts);
                if !ledger {
                    // Sorted by (time, file order): the last of a repeated time wins.
                    match self.points.last_mut() {
                        Some(last) if repeated => last.1 = value,
                        _ => self.points.push((ts, value)),
                    }
                    continue;
                }
                let first = if repeated {
                    self.points.last().map(|p| p.1)
                } else {
                    existing
                        .binary_search_by_key(&ts, |p| p.0)
                        .ok()
                        .map(|at| existing[at].1)
                };
                match first {
                    None => self.points.push((ts, value)),
                    Some(kept) if same_value(kept, value) => summary.points_skipped_duplicate += 1,
                    Some(kept) => {
                        summary.points_conflicting += 1;
                        if summary.conflicts.len() < MAX_LISTED_CONFLICTS {
                            let name = kairos_protocols::series_key::decode(key)
                                .map(|(m, tags)| {
                                    let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                                    format!("{m}{{{}}}", tags.join(","))
                                })
                                .unwrap_or_default();
                            summary.conflicts.push(format!(
                                "{name} at {ts}: kept {}, the import's {} differs (ledger: first write wins)",
                                show(kept),
                                show(value)
                            ));
                        }
                    }
                }
            }
            if self.points.is_empty() {
                continue;
            }
            summary.points_written += self.points.len() as u64;
            self.chunk.clear();
            chunk::encode(&self.points, &mut self.chunk);
            commit.add_chunk(id, bucket, &self.chunk);
        }
        Ok(())
    }
}

/// `5` and `5.0` are the same value (the type is not part of a point's identity).
fn same_value(a: Value, b: Value) -> bool {
    as_f64(a) == as_f64(b)
}

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
