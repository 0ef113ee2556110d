//! Raw-point queries: find the series a metric query selects, read their points from
//! the store and render KairosDB's response shape (spec 4.5).

pub mod json;
pub mod request;
pub mod time;

use std::collections::{BTreeMap, BTreeSet, HashSet};

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
    for (id, tags) in series {
        points.clear();
        view.read_points(id, query.start, query.end, &mut points)?;
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
        result.values.extend_from_slice(&points);
    }
    // Series are merged by timestamp; equal timestamps from different series are all
    // kept, ordered by value (spec 4.5).
    result
        .values
        .sort_by(|a, b| a.0.cmp(&b.0).then_with(|| value_order(&a.1, &b.1)));
    if m.order == Order::Desc {
        result.values.reverse();
    }
    // sample_size counts the raw points read, before `limit` cuts the answer.
    result.sample_size = result.values.len();
    if let Some(limit) = m.limit {
        result.values.truncate(limit);
        // Later metrics of the query are read while this result waits to be rendered.
        result.values.shrink_to_fit();
    }
    Ok(result)
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

fn value_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let f = |v: &Value| match *v {
        Value::Long(l) => l as f64,
        Value::Double(d) => d,
    };
    f(a).total_cmp(&f(b))
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
}
