//! Scanning: a series' points in the query range, one stored bucket at a time, from one
//! RocksDB snapshot (chunks with the staged points laid over them).
//!
//! The staging log is decoded once per query for every series the query selected (see
//! [`Staged::load`]); a series' cursor then walks its chunks forward or backward with
//! the query's single points iterator, so memory holds one bucket per open series.

use std::collections::{HashMap, HashSet};

use kairos_protocols::Value;

use crate::storage::keys::{self, SeriesId};
use crate::storage::view::PointReader;
use crate::storage::{StoreError, View};

/// Staged (not yet promoted) points of the query's series, each series' sorted by
/// time with the last write to a timestamp kept.
#[derive(Default)]
pub struct Staged {
    by_series: HashMap<SeriesId, Vec<(i64, Value)>, foldhash::fast::RandomState>,
}

impl Staged {
    pub fn load(view: &View<'_>, series: &HashSet<SeriesId>, start: i64, end: i64) -> Result<Staged, StoreError> {
        if series.is_empty() {
            return Ok(Staged::default());
        }
        let raw = view.staged_points(series, start, end)?;
        let by_series = raw
            .into_iter()
            .map(|(id, mut pts)| {
                pts.sort_unstable_by_key(|&(ts, seq, _, _)| (ts, seq));
                let mut out: Vec<(i64, Value)> = Vec::with_capacity(pts.len());
                let mut dead: Vec<bool> = Vec::with_capacity(pts.len());
                for (ts, _, v, expired) in pts {
                    match out.last_mut() {
                        Some(last) if last.0 == ts => {
                            last.1 = v;
                            *dead.last_mut().expect("one flag per point") = expired;
                        }
                        _ => {
                            out.push((ts, v));
                            dead.push(expired);
                        }
                    }
                }
                // An expired last write hides the point (and any older write of it).
                if dead.contains(&true) {
                    let mut flags = dead.iter();
                    out.retain(|_| !*flags.next().expect("one flag per point"));
                }
                (id, out)
            })
            .collect();
        Ok(Staged { by_series })
    }

    /// Staged points the query selected (they count as scanned).
    pub fn len(&self) -> usize {
        self.by_series.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    pub fn of(&self, id: SeriesId) -> &[(i64, Value)] {
        self.by_series.get(&id).map_or(&[], Vec::as_slice)
    }
}

/// Walks one series' points in `[start, end]`, a bucket at a time, ascending or
/// descending. Each batch is in ascending time order; in descending mode batches come
/// newest bucket first.
pub struct SeriesCursor<'s> {
    pub id: SeriesId,
    start: i64,
    end: i64,
    desc: bool,
    /// Next bucket to look at (ascending: at or after; descending: at or before).
    next: Option<i64>,
    first_bucket: i64,
    last_bucket: i64,
    staged: &'s [(i64, Value)],
    chunk: Vec<(i64, Value)>,
    /// A decoded chunk not yet returned, because staged points of an earlier bucket
    /// came first.
    pending: Option<i64>,
}

impl<'s> SeriesCursor<'s> {
    pub fn new(id: SeriesId, start: i64, end: i64, desc: bool, width: i64, staged: &'s [(i64, Value)]) -> Self {
        let first_bucket = keys::bucket_start(start, width);
        let last_bucket = keys::bucket_start(end, width);
        SeriesCursor {
            id,
            start,
            end,
            desc,
            next: Some(if desc { last_bucket } else { first_bucket }),
            first_bucket,
            last_bucket,
            staged,
            chunk: Vec::new(),
            pending: None,
        }
    }

    /// Replaces `out` with the next non-empty batch; false once the series is done.
    pub fn next_batch(
        &mut self,
        reader: &mut PointReader<'_>,
        out: &mut Vec<(i64, Value)>,
    ) -> Result<bool, StoreError> {
        let width = reader.bucket_width();
        loop {
            out.clear();
            let Some(next) = self.next else { return Ok(false) };
            let chunk_bucket = match self.pending {
                Some(b) => Some(b),
                None => {
                    self.chunk.clear();
                    let b = if self.desc {
                        reader.prev_chunk(self.id, next, self.first_bucket, &mut self.chunk)?
                    } else {
                        reader.next_chunk(self.id, next, self.last_bucket, &mut self.chunk)?
                    };
                    self.pending = b;
                    b
                }
            };
            let staged_bucket = if self.desc {
                self.staged.last()
            } else {
                self.staged.first()
            }
            .map(|p| keys::bucket_start(p.0, width));
            let bucket = match (chunk_bucket, staged_bucket) {
                (None, None) => {
                    self.next = None;
                    return Ok(false);
                }
                (Some(c), None) => c,
                (None, Some(s)) => s,
                (Some(c), Some(s)) if self.desc => c.max(s),
                (Some(c), Some(s)) => c.min(s),
            };
            // Staged points of this bucket, taken off the front (or back).
            let split = |pts: &[(i64, Value)]| {
                if self.desc {
                    pts.partition_point(|p| keys::bucket_start(p.0, width) < bucket)
                } else {
                    pts.partition_point(|p| keys::bucket_start(p.0, width) <= bucket)
                }
            };
            let at = split(self.staged);
            let staged_here: &[(i64, Value)] = if self.desc {
                let (rest, here) = self.staged.split_at(at);
                self.staged = rest;
                here
            } else {
                let (here, rest) = self.staged.split_at(at);
                self.staged = rest;
                here
            };
            let from_chunk = chunk_bucket == Some(bucket);
            if from_chunk {
                self.pending = None;
            }
            let (start, end) = (self.start, self.end);
            let in_range = |p: &&(i64, Value)| p.0 >= start && p.0 <= end;
            match (from_chunk, staged_here.is_empty()) {
                // The whole chunk is in range (the common case): hand it over as it is.
                (true, true)
                    if self.chunk.first().is_some_and(|p| p.0 >= start)
                        && self.chunk.last().is_some_and(|p| p.0 <= end) =>
                {
                    std::mem::swap(out, &mut self.chunk)
                }
                (true, true) => out.extend(self.chunk.iter().filter(in_range)),
                (false, _) => out.extend(staged_here.iter().filter(in_range)),
                (true, false) => overlay(&self.chunk, staged_here, start, end, out),
            }
            self.next = if self.desc {
                bucket.checked_sub(width).filter(|b| *b >= self.first_bucket)
            } else {
                bucket.checked_add(width).filter(|b| *b <= self.last_bucket)
            };
            if self.next.is_none() && self.pending.is_some() {
                // Cannot happen: a pending chunk lies beyond the bucket just returned.
                self.pending = None;
            }
            if !out.is_empty() {
                return Ok(true);
            }
        }
    }
}

/// Merges a bucket's chunk points with its staged points (newer: a staged point
/// replaces the chunk point at its timestamp), keeping `[start, end]`.
fn overlay(chunk: &[(i64, Value)], staged: &[(i64, Value)], start: i64, end: i64, out: &mut Vec<(i64, Value)>) {
    let (mut i, mut j) = (0, 0);
    while i < chunk.len() || j < staged.len() {
        let take_staged = match (chunk.get(i), staged.get(j)) {
            (Some(c), Some(s)) => s.0 <= c.0,
            (None, Some(_)) => true,
            _ => false,
        };
        let p = if take_staged {
            let p = staged[j];
            j += 1;
            while chunk.get(i).is_some_and(|c| c.0 == p.0) {
                i += 1;
            }
            p
        } else {
            let p = chunk[i];
            i += 1;
            p
        };
        if p.0 >= start && p.0 <= end {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_points_replace_chunk_points() {
        let chunk = [(1, Value::Long(1)), (2, Value::Long(2)), (4, Value::Long(4))];
        let staged = [(2, Value::Long(22)), (3, Value::Long(3)), (5, Value::Long(5))];
        let mut out = Vec::new();
        overlay(&chunk, &staged, 2, 4, &mut out);
        assert_eq!(out, [(2, Value::Long(22)), (3, Value::Long(3)), (4, Value::Long(4))]);
    }
}
