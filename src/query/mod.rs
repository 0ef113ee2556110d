//! Raw-point queries: find the series a metric query selects, read their points from
//! the store and render KairosDB's response shape (spec 4.5).

pub mod json;
pub mod request;
pub mod time;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kairos_protocols::Value;

use crate::storage::{SeriesId, Store, StoreError, Tags};
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

/// Runs every metric query of `query`, reading at most `max_points` points each.
pub fn run(store: &Store, query: &Query, max_points: usize) -> Result<Vec<MetricResult>, QueryError> {
    query
        .metrics
        .iter()
        .enumerate()
        .map(|(index, m)| run_metric(store, query, m, max_points).map_err(|e| e.at(index, max_points)))
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

fn run_metric(store: &Store, query: &Query, m: &MetricQuery, max_points: usize) -> Result<MetricResult, MetricError> {
    let mut result = MetricResult::default();
    for (id, tags) in select_series(store, m)? {
        let before = result.values.len();
        let n = store.read_points(id, query.start, query.end, &mut result.values)?;
        if result.values.len() > max_points {
            return Err(MetricError::TooMany);
        }
        if n > 0 {
            for (k, v) in tags {
                result.tags.entry(k).or_default().insert(v);
            }
        }
        debug_assert_eq!(result.values.len() - before, n);
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
    }
    Ok(result)
}

fn value_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let f = |v: &Value| match *v {
        Value::Long(l) => l as f64,
        Value::Double(d) => d,
    };
    f(a).total_cmp(&f(b))
}

/// The series of `m.name` that pass its tag filter, with their tags.
fn select_series(store: &Store, m: &MetricQuery) -> Result<Vec<(SeriesId, Tags)>, StoreError> {
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
