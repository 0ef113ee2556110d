//! The query engine, in the order a query runs through it:
//!
//! 1. [`request`] (with [`props`], [`aggregators::parse`], [`group_by::parse`]): the
//!    JSON body, validated with KairosDB's texts.
//! 2. [`plan`]: the series each metric query selects (tag index) and its tag groups.
//! 3. [`scan`]: per-series cursors over one RocksDB snapshot, chunks plus the staged
//!    points (the staging log is decoded once per query).
//! 4. [`exec`]: per group, fold each series into range accumulators or merge the
//!    series by time; time/value/bin group-bys; the [`aggregators`] chain.
//! 5. [`json`]: KairosDB's response shape, written straight into the response text.
//!
//! Memory grows with the number of groups and output points: a metric's result is
//! rendered before the next metric is read, and a series is read a bucket at a time.

pub mod aggregators;
pub mod exec;
pub mod group_by;
pub mod json;
pub mod plan;
pub mod props;
pub mod request;
pub mod scan;
pub mod time;
pub mod tz;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use aggregators::save_as::Saved;
use exec::{ExecCtx, ExecError};
use request::Query;
use scan::{SeriesCursor, Staged};

use crate::storage::{Store, StoreError};

/// What bounds a query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most raw points the whole query may read (`kairosd.query.max_points`).
    pub max_points: u64,
    /// The clock (ms): gaps stop here, relative times were taken from it.
    pub now: i64,
}

/// A query's answer.
#[derive(Debug, Default)]
pub struct Answer {
    /// The response body.
    pub json: String,
    /// Points for `save_as` to write.
    pub saved: Vec<Saved>,
    /// Points decoded from storage (the points-scanned self-metric).
    pub points_scanned: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The client asked for too much; a 400 telling it how far the query got.
    #[error(
        "query.metric[{index}] would read more than {limit} data points (the query had read {read} points, \
         {series_read} of the {series_total} series of this metric done); narrow the time range or add tag \
         filters (limit: kairosd.query.max_points)"
    )]
    TooManyPoints {
        index: usize,
        limit: u64,
        read: u64,
        series_read: usize,
        series_total: usize,
    },
    /// A query the aggregators cannot answer (a 400), e.g. rate over equal timestamps.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs every metric query of `query` from one consistent view of the store.
pub fn run(store: &Store, query: &Query, limits: &Limits) -> Result<Answer, QueryError> {
    let view = store.view();
    let plans = query
        .metrics
        .iter()
        .map(|m| plan::plan_metric(&view, m))
        .collect::<Result<Vec<_>, _>>()?;
    let ids: HashSet<_> = plans.iter().flat_map(|p| p.series_ids()).collect();
    let staged = Staged::load(&view, &ids, query.start, query.end)?;
    let mut reader = view.points();
    let mut ctx = ExecCtx {
        reader: &mut reader,
        staged: &staged,
        start: query.start,
        end: query.end,
        max_points: limits.max_points,
        read: 0,
        now: limits.now,
        saved: Vec::new(),
    };
    let mut json = String::with_capacity(256);
    json.push_str("{\"queries\":[");
    for (index, (m, plan)) in query.metrics.iter().zip(&plans).enumerate() {
        let out = exec::run_metric(&mut ctx, m, plan).map_err(|e| match e {
            ExecError::TooManyPoints {
                read,
                series_read,
                series_total,
            } => QueryError::TooManyPoints {
                index,
                limit: limits.max_points,
                read,
                series_read,
                series_total,
            },
            ExecError::Chain(c) => QueryError::Invalid(c.0),
            ExecError::Store(s) => QueryError::Store(s),
        })?;
        if index > 0 {
            json.push(',');
        }
        json::render_metric(&mut json, m, &out);
    }
    json.push_str("]}");
    let saved = std::mem::take(&mut ctx.saved);
    drop(ctx);
    Ok(Answer {
        json,
        saved,
        points_scanned: reader.decoded(),
    })
}

/// `/datapoints/query/tags`: per metric query, the union of the tags of the series
/// that match its filter and hold a point in the time range.
pub fn tags(store: &Store, query: &Query) -> Result<Answer, QueryError> {
    let view = store.view();
    let selected = query
        .metrics
        .iter()
        .map(|m| plan::select_series(&view, &m.name, &m.tags))
        .collect::<Result<Vec<_>, _>>()?;
    let ids: HashSet<_> = selected.iter().flatten().map(|(id, _)| *id).collect();
    let staged = Staged::load(&view, &ids, query.start, query.end)?;
    let mut reader = view.points();
    let width = reader.bucket_width();
    let mut json = String::from("{\"queries\":[");
    let mut batch = Vec::new();
    for (i, (m, series)) in query.metrics.iter().zip(&selected).enumerate() {
        let mut union: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (id, tags) in series {
            let mut cursor = SeriesCursor::new(*id, query.start, query.end, false, width, staged.of(*id));
            if cursor.next_batch(&mut reader, &mut batch)? {
                for (k, v) in tags {
                    union.entry(k).or_default().insert(v);
                }
            }
        }
        if i > 0 {
            json.push(',');
        }
        json.push_str("{\"results\":[{\"name\":");
        json::string(&mut json, &m.name);
        json::tags(&mut json, union.iter().map(|(k, v)| (*k, v.iter().copied())));
        json.push_str(",\"values\":[]}]}");
    }
    json.push_str("]}");
    Ok(Answer {
        json,
        saved: Vec::new(),
        points_scanned: reader.decoded(),
    })
}
