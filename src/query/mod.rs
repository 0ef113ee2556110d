//! Raw-point queries: find the series a metric query selects, read their points from
//! the store and render KairosDB's response shape (spec 4.5).

pub mod json;
pub mod request;
pub mod time;

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::ops::Range;

use kairos_protocols::Value;

use crate::storage::{SeriesId, Store, StoreError, Tags, View};
use request::{MetricQuery, Order, Query, TagMatch};

/// The points and tags of one metric query (one group: aggregation and group_by come later).
#[derive(Debug, Default)]
pub struct MetricResult {
    pub sample_size: usize,
    /// Union of tag values over the series that had points, sorted.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    pub values: Vec<(i64, Value)>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The client asked for too much; a 400 telling it how to narrow the query.
    #[error(
        "query.metric[{index}] would read more than {limit} data points; narrow the time range or \
         add tag filters (limit: kairosd.query.max_points)"
    )]
    TooManyPoints { index: usize, limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs every metric query of `query`, reading at most `max_points` points each,
/// all from one consistent view of the store.
pub fn run(store: &Store, query: &Query, max_points: usize) -> Result<Vec<MetricResult>, QueryError> {
    let view = store.view();
    query
        .metrics
        .iter()
        .enumerate()
        .map(|(index, m)| run_metric(&view, query, m, max_points).map_err(|e| e.at(index, max_points)))
        .collect()
}

enum MetricError {
    TooMany,
    Store(StoreError),
}

impl From<StoreError> for MetricError {
    fn from(e: StoreError) -> Self {
        MetricError::Store(e)
    }
}

impl MetricError {
    fn at(self, index: usize, limit: usize) -> QueryError {
        match self {
            MetricError::TooMany => QueryError::TooManyPoints { index, limit },
            MetricError::Store(e) => QueryError::Store(e),
        }
    }
}

fn run_metric(view: &View, query: &Query, m: &MetricQuery, max_points: usize) -> Result<MetricResult, MetricError> {
    let mut result = MetricResult::default();
    let series = select_series(view, m)?;
    let ids: HashSet<SeriesId> = series.iter().map(|(id, _)| *id).collect();
    let mut staged = view.staged_points(&ids, query.start, query.end)?;
    let mut points = Vec::new();
    let mut reader = view.points();
    let mut runs = Vec::with_capacity(series.len());
    for (id, tags) in series {
        points.clear();
        reader.read(id, query.start, query.end, &mut points)?;
        if let Some(newer) = staged.remove(&id) {
            overlay(&mut points, newer);
        }
        if result.values.len() + points.len() > max_points {
            return Err(MetricError::TooMany);
        }
        if !points.is_empty() {
            for (k, v) in tags {
                result.tags.entry(k).or_default().insert(v);
            }
        }
        let start = result.values.len();
        result.values.extend_from_slice(&points);
        runs.push(start..result.values.len());
    }
    // sample_size counts the raw points read, before `limit` cuts the answer.
    result.sample_size = result.values.len();
    let values = std::mem::take(&mut result.values);
    result.values = merge_runs(values, &runs, m.order, m.limit.unwrap_or(usize::MAX));
    Ok(result)
}

/// Merges the series' runs of `values` (each sorted by time) into one sequence in
/// `order`, stopping after `limit` points. Series are merged by timestamp, and equal
/// timestamps from different series are all kept, ordered by value (spec 4.5).
///
/// A heap over the runs rather than a sort of everything: the runs are already sorted,
/// so this is one pass with a comparison per level of a heap as small as the number of
/// series, and a `limit` (a count query sends `"limit": 0`) ends it early.
fn merge_runs(mut values: Vec<(i64, Value)>, runs: &[Range<usize>], order: Order, limit: usize) -> Vec<(i64, Value)> {
    let desc = order == Order::Desc;
    if desc {
        // Reversed, every run is sorted newest first and the merge below is the same.
        values.reverse();
    }
    let n = values.len();
    let mut runs: Vec<Range<usize>> = runs
        .iter()
        .filter(|r| r.start < r.end)
        .map(|r| if desc { n - r.end..n - r.start } else { r.clone() })
        .collect();
    if runs.len() <= 1 {
        if values.len() > limit {
            values.truncate(limit);
            // Later metrics of the query are read while this result waits to be rendered.
            values.shrink_to_fit();
        }
        return values;
    }
    // Smallest first: ascending (time, value), or for `desc` the complement of both.
    let flip = if desc { u64::MAX } else { 0 };
    let key = |i: usize| {
        let (ts, v) = &values[i];
        ((*ts as u64 ^ 1 << 63) ^ flip, value_key(v) ^ flip)
    };
    let mut heap: BinaryHeap<Reverse<((u64, u64), usize)>> = runs
        .iter()
        .enumerate()
        .map(|(r, run)| Reverse((key(run.start), r)))
        .collect();
    let mut out = Vec::with_capacity(n.min(limit));
    while out.len() < limit {
        let Some(mut top) = heap.peek_mut() else { break };
        let run = &mut runs[top.0 .1];
        out.push(values[run.start]);
        run.start += 1;
        if run.start == run.end {
            PeekMut::pop(top);
        } else {
            top.0 .0 = key(run.start);
        }
    }
    out
}

/// A value as a `u64` that sorts like `f64::total_cmp` of the value as a double.
fn value_key(v: &Value) -> u64 {
    let d = match *v {
        Value::Long(l) => l as f64,
        Value::Double(d) => d,
    };
    let bits = d.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Lays staged points (newer than anything in chunks, in arrival order) over a
/// series' chunk points: a staged point replaces a chunk point at its timestamp, and
/// of two staged points at one timestamp the later wins.
fn overlay(points: &mut Vec<(i64, Value)>, mut newer: Vec<(i64, u64, Value)>) {
    newer.sort_unstable_by_key(|&(ts, seq, _)| (ts, seq));
    let mut merged = Vec::with_capacity(points.len() + newer.len());
    let mut old = points.iter().peekable();
    let mut new = newer.iter().peekable();
    loop {
        let take_new = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(o), Some(n)) => n.0 <= o.0,
        };
        let (ts, value) = if take_new {
            let &(ts, _, v) = new.next().expect("peeked");
            while old.peek().is_some_and(|o| o.0 == ts) {
                old.next();
            }
            (ts, v)
        } else {
            *old.next().expect("peeked")
        };
        match merged.last_mut() {
            Some((last_ts, last_v)) if *last_ts == ts => *last_v = value,
            _ => merged.push((ts, value)),
        }
    }
    *points = merged;
}

/// The series of `m.name` that pass its tag filter, with their tags.
fn select_series(store: &View, m: &MetricQuery) -> Result<Vec<(SeriesId, Tags)>, StoreError> {
    if m.tags.is_empty() {
        return store.series_of_metric(&m.name);
    }
    // Intersect, across filtered tag names, the ids the tag index gives for each name.
    let mut selected: Option<HashSet<SeriesId>> = None;
    for (name, matches) in &m.tags {
        let mut ids = HashSet::new();
        if matches.iter().all(|t| matches!(t, TagMatch::Exact(_))) {
            for t in matches {
                if let TagMatch::Exact(v) = t {
                    ids.extend(store.series_with_tag(&m.name, name, v)?);
                }
            }
        } else {
            for (value, id) in store.tag_values(&m.name, name)? {
                if matches.iter().any(|t| t.matches(&value)) {
                    ids.insert(id);
                }
            }
        }
        selected = Some(match selected {
            None => ids,
            Some(prev) => prev.intersection(&ids).copied().collect(),
        });
        if selected.as_ref().is_some_and(HashSet::is_empty) {
            break;
        }
    }
    let mut ids: Vec<SeriesId> = selected.unwrap_or_default().into_iter().collect();
    ids.sort_unstable();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((_, tags)) = store.series_by_id(id)? {
            out.push((id, tags));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_points_override_chunk_points_and_later_staged_wins() {
        let mut points = vec![(1, Value::Long(1)), (2, Value::Long(2)), (4, Value::Long(4))];
        let staged = vec![
            (2, 7, Value::Double(2.5)),
            (3, 5, Value::Long(3)),
            (2, 9, Value::Long(22)),
            (5, 1, Value::Long(5)),
        ];
        overlay(&mut points, staged);
        assert_eq!(
            points,
            vec![
                (1, Value::Long(1)),
                (2, Value::Long(22)),
                (3, Value::Long(3)),
                (4, Value::Long(4)),
                (5, Value::Long(5))
            ]
        );
    }

    /// The straightforward definition `merge_runs` must agree with: sort everything by
    /// time then value, reverse for `desc`, cut at the limit.
    fn reference(values: &[(i64, Value)], order: Order, limit: usize) -> Vec<(i64, Value)> {
        let f = |v: &Value| match *v {
            Value::Long(l) => l as f64,
            Value::Double(d) => d,
        };
        let mut all = values.to_vec();
        all.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| f(&a.1).total_cmp(&f(&b.1))));
        if order == Order::Desc {
            all.reverse();
        }
        all.truncate(limit);
        all
    }

    proptest::proptest! {
        #[test]
        fn merging_runs_equals_sorting_everything(
            runs in proptest::collection::vec(
                proptest::collection::vec((-3i64..3, -2i64..2, proptest::bool::ANY), 0..6), 0..6),
            desc in proptest::bool::ANY,
            limit in proptest::option::of(0usize..12),
        ) {
            let mut values = Vec::new();
            let mut ranges = Vec::new();
            for run in runs {
                let mut run: Vec<(i64, Value)> = run
                    .into_iter()
                    .map(|(ts, v, d)| (ts, if d { Value::Double(v as f64 + 0.5) } else { Value::Long(v) }))
                    .collect();
                run.sort_by_key(|p| p.0);
                run.dedup_by_key(|p| p.0);
                let start = values.len();
                values.extend(run);
                ranges.push(start..values.len());
            }
            let order = if desc { Order::Desc } else { Order::Asc };
            let limit = limit.unwrap_or(usize::MAX);
            let got = merge_runs(values.clone(), &ranges, order, limit);
            proptest::prop_assert_eq!(got, reference(&values, order, limit));
        }
    }

    #[test]
    fn value_keys_order_like_total_cmp() {
        let vals = [
            Value::Double(f64::NEG_INFINITY),
            Value::Long(-5),
            Value::Double(-0.5),
            Value::Double(-0.0),
            Value::Long(0),
            Value::Double(0.25),
            Value::Long(3),
            Value::Double(1e300),
        ];
        for w in vals.windows(2) {
            assert!(value_key(&w[0]) < value_key(&w[1]), "{:?} < {:?}", w[0], w[1]);
        }
    }
}
