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

use std::collections::HashSet;

use aggregators::save_as::Saved;
use exec::{ExecCtx, ExecError};
use request::Query;
use scan::{SeriesCursor, Staged};

use crate::storage::keys::bucket_start as storage_bucket;
use crate::storage::{Store, StoreError};

/// What bounds a query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most raw points the whole query may read (`kairosd.query.max_points`).
    pub max_points: u64,
    /// The clock (ms): gaps stop here, relative times were taken from it.
    pub now: i64,
    /// Most threads reading one group (`kairosd.query.threads`; 0 = one per core, ≤ 4).
    pub threads: usize,
}

/// A query's answer.
#[derive(Debug, Default)]
pub struct Answer {
    /// The response body.
    pub json: String,
    /// Points for `save_as` to write.
    pub saved: Vec<Saved>,
    /// Points decoded from chunks plus the staged points of the selected series (the
    /// points-scanned self-metric).
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
    view.apply_retention(query.metrics.iter().zip(&plans).map(|(m, _)| m.name.as_str()), |name| {
        query
            .metrics
            .iter()
            .zip(&plans)
            .filter(|(m, _)| m.name == name)
            .flat_map(|(_, p)| p.series_ids())
            .collect::<Vec<_>>()
    });
    let staged = Staged::load(&view, &ids, query.start, query.end)?;
    let mut reader = view.points();
    let mut ctx = ExecCtx {
        view: &view,
        reader: &mut reader,
        decoded_elsewhere: 0,
        staged: &staged,
        start: query.start,
        end: query.end,
        max_points: limits.max_points,
        read: 0,
        now: limits.now,
        threads: limits.threads,
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
    let elsewhere = ctx.decoded_elsewhere;
    drop(ctx);
    Ok(Answer {
        json,
        saved,
        points_scanned: reader.decoded() + elsewhere + staged.len() as u64,
    })
}

/// `/datapoints/query/tags`: per metric query, the union of the tags of the series
/// that match its filter and hold a point in the time range.
pub fn tags(store: &Store, query: &Query) -> Result<Answer, QueryError> {
    let view = store.view();
    let selected = query
        .metrics
        .iter()
        .map(|m| plan::select_series_keys(&view, &m.name, &m.tags))
        .collect::<Result<Vec<_>, _>>()?;
    let ids: HashSet<_> = selected.iter().flat_map(|(s, _)| s.iter().map(|s| s.id)).collect();
    view.apply_retention(query.metrics.iter().map(|m| m.name.as_str()), |name| {
        query
            .metrics
            .iter()
            .zip(&selected)
            .filter(|(m, _)| m.name == name)
            .flat_map(|(_, (s, _))| s.iter().map(|s| s.id))
            .collect::<Vec<_>>()
    });
    let staged = Staged::load(&view, &ids, query.start, query.end)?;
    let mut reader = view.points();
    let width = reader.bucket_width();
    let may_expire = store.may_expire();
    let mut json = String::from("{\"queries\":[");
    let mut batch = Vec::new();
    for (i, (m, (series, keys))) in query.metrics.iter().zip(&selected).enumerate() {
        let mut had: Vec<&[u8]> = Vec::new();
        let (first, last) = (storage_bucket(query.start, width), storage_bucket(query.end, width));
        for s in series {
            let id = s.id;
            // A chunk strictly inside the range holds a point in it: no need to decode
            // (unless its points may have expired).
            let inside = first < last
                && !may_expire
                && reader
                    .first_bucket(id, first.saturating_add(width), last.saturating_sub(width))?
                    .is_some();
            let mut cursor = SeriesCursor::new(id, query.start, query.end, false, width, staged.of(id));
            if inside || cursor.next_batch(&mut reader, &mut batch)? {
                had.push(keys.get(&s.key));
            }
        }
        let union = exec::union_of(had.into_iter());
        if i > 0 {
            json.push(',');
        }
        json.push_str("{\"results\":[{\"name\":");
        json::string(&mut json, &m.name);
        json::tags(
            &mut json,
            union.iter().map(|(k, v)| (k.as_str(), v.iter().map(String::as_str))),
        );
        json.push_str(",\"values\":[]}]}");
    }
    json.push_str("]}");
    Ok(Answer {
        json,
        saved: Vec::new(),
        points_scanned: reader.decoded() + staged.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kairos_protocols::{PointBatch, Value};
    use proptest::prelude::*;

    use super::aggregators::range::{RangeKind, RangeSpec};
    use super::aggregators::AggSpec;
    use super::props::Sampling;
    use super::request::{MetricQuery, Order, Query};
    use super::time::Unit;
    use super::tz::Tz;
    use super::*;
    use crate::metrics::Metrics;
    use crate::writer::{Writer, WriterConfig};

    fn store_with(series: &[Vec<(i64, i64, bool)>]) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        // Small buckets, so a query crosses several chunks per series.
        let store = Arc::new(Store::open(dir.path(), 16).unwrap());
        let config = WriterConfig {
            batch_points: 1000,
            linger: std::time::Duration::ZERO,
            promote_points: 1000,
            promote_interval: std::time::Duration::from_secs(60),
            sync: false,
        };
        let mut w = Writer::new(Arc::clone(&store), Arc::new(Metrics::default()), config).unwrap();
        let mut batch = PointBatch::new();
        for (i, pts) in series.iter().enumerate() {
            let host = format!("h{i}");
            for &(ts, v, double) in pts {
                let value = if double {
                    Value::Double(v as f64 + 0.5)
                } else {
                    Value::Long(v)
                };
                batch.push_parts("m", [("host", host.as_str())], ts, value, 0);
            }
        }
        w.write_batches(&[batch]).unwrap();
        (dir, store)
    }

    fn query(m: MetricQuery, start: i64, end: i64) -> Query {
        Query {
            start,
            end,
            time_zone: Tz::Utc,
            metrics: vec![m],
        }
    }

    fn run_json(store: &Store, q: &Query) -> serde_json::Value {
        let limits = Limits {
            max_points: u64::MAX,
            now: i64::MAX,
            threads: 0,
        };
        serde_json::from_str(&run(store, q, &limits).unwrap().json).unwrap()
    }

    fn kinds() -> impl Strategy<Value = RangeKind> {
        prop_oneof![
            Just(RangeKind::Sum),
            Just(RangeKind::Count),
            Just(RangeKind::Min),
            Just(RangeKind::Max),
            Just(RangeKind::Avg),
            Just(RangeKind::First),
            Just(RangeKind::Last),
        ]
    }

    fn series() -> impl Strategy<Value = Vec<Vec<(i64, i64, bool)>>> {
        prop::collection::vec(
            prop::collection::vec((-20i64..200, -5i64..5, any::<bool>()), 0..30),
            1..4,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Folding each series into the ranges gives what merging the series by time
        /// and aggregating the merged stream gives (the merged path runs when a limit is set).
        #[test]
        fn folding_equals_merging(
            data in series(),
            kind in kinds(),
            width in 1i64..40,
            start in -30i64..60,
            len in 0i64..250,
            align in any::<bool>(),
            align_start in any::<bool>(),
            desc in any::<bool>(),
            by_value in any::<bool>(),
        ) {
            let (_dir, store) = store_with(&data);
            let end = start + len;
            let spec = RangeSpec {
                kind,
                sampling: Sampling { value: width, unit: Unit::Milliseconds },
                align_sampling: align,
                align_start_time: align_start,
                align_end_time: false,
                start_time: start,
                end_time: end,
                tz: Tz::Utc,
                trim: false,
            };
            let mut m = MetricQuery::raw("m");
            m.aggregators = vec![AggSpec::Range(spec)];
            m.order = if desc { Order::Desc } else { Order::Asc };
            if by_value {
                m.group_by = vec![group_by::GroupBySpec::Value(3)];
            }
            let folded = run_json(&store, &query(m.clone(), start, end));
            m.limit = Some(usize::MAX);
            let merged = run_json(&store, &query(m, start, end));
            prop_assert_eq!(folded, merged);
        }

        /// A raw query returns every stored point in range, ordered by (time, value),
        /// reversed for desc, cut at the limit; sample_size counts all of them.
        #[test]
        fn raw_queries_equal_sorting_everything(
            data in series(),
            start in -30i64..60,
            len in 0i64..250,
            desc in any::<bool>(),
            limit in proptest::option::of(1usize..20),
        ) {
            let (_dir, store) = store_with(&data);
            let end = start + len;
            let mut m = MetricQuery::raw("m");
            m.order = if desc { Order::Desc } else { Order::Asc };
            m.limit = limit;
            let got = run_json(&store, &query(m, start, end));
            // The reference: last write per (series, ts), filtered, sorted, cut.
            let mut all: Vec<(i64, f64)> = Vec::new();
            for pts in &data {
                let mut last = std::collections::BTreeMap::new();
                for &(ts, v, d) in pts {
                    last.insert(ts, if d { v as f64 + 0.5 } else { v as f64 });
                }
                all.extend(last.into_iter().filter(|(ts, _)| *ts >= start && *ts <= end));
            }
            let sample = all.len();
            all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            if desc {
                all.reverse();
            }
            all.truncate(limit.unwrap_or(usize::MAX));
            let q = &got["queries"][0];
            prop_assert_eq!(q["sample_size"].as_u64().unwrap() as usize, sample);
            let values: Vec<(i64, f64)> = q["results"][0]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            prop_assert_eq!(values, all);
        }
    }

    /// Enough series that the fold runs on several threads: still what a merge gives.
    #[test]
    fn parallel_folds_equal_merging() {
        let data: Vec<Vec<(i64, i64, bool)>> = (0..300i64)
            .map(|s| {
                (0..12)
                    .map(|i| ((s * 37 + i * 53) % 400, (s * i) % 11 - 5, (s + i) % 3 == 0))
                    .collect()
            })
            .collect();
        let (_dir, store) = store_with(&data);
        assert!(exec_threads(300) > 1 || std::thread::available_parallelism().map_or(1, |n| n.get()) == 1);
        let kinds = [
            RangeKind::Sum,
            RangeKind::Count,
            RangeKind::Min,
            RangeKind::Max,
            RangeKind::Avg,
            RangeKind::First,
            RangeKind::Last,
            RangeKind::Percentile(0.25),
        ];
        for kind in kinds {
            for desc in [false, true] {
                let spec = RangeSpec {
                    kind: kind.clone(),
                    sampling: Sampling {
                        value: 30,
                        unit: Unit::Milliseconds,
                    },
                    align_sampling: false,
                    align_start_time: false,
                    align_end_time: false,
                    start_time: 0,
                    end_time: 500,
                    tz: Tz::Utc,
                    trim: false,
                };
                for by_host in [false, true] {
                    let mut m = MetricQuery::raw("m");
                    m.aggregators = vec![AggSpec::Range(spec.clone())];
                    m.order = if desc { Order::Desc } else { Order::Asc };
                    if by_host {
                        m.group_by = vec![group_by::GroupBySpec::Tag(vec!["host".into()])];
                    }
                    let folded = run_json(&store, &query(m.clone(), 0, 500));
                    m.limit = Some(usize::MAX);
                    let merged = run_json(&store, &query(m, 0, 500));
                    assert_eq!(folded, merged, "{kind:?} desc={desc} by_host={by_host}");
                }
            }
        }
    }

    fn exec_threads(series: usize) -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
            .min(series / 64)
            .max(1)
    }

    #[test]
    fn the_point_budget_counts_every_metric_and_says_how_far_it_got() {
        let (_dir, store) = store_with(&[(0..10).map(|t| (t, 1, false)).collect()]);
        let mut q = query(MetricQuery::raw("m"), 0, 100);
        q.metrics.push(MetricQuery::raw("m"));
        let limits = Limits {
            max_points: 15,
            now: 0,
            threads: 0,
        };
        let err = run(&store, &q, &limits).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("query.metric[1] would read more than 15 data points"),
            "{text}"
        );
        assert!(text.contains("had read 20 points"), "{text}");
        let limits = Limits {
            max_points: 20,
            now: 0,
            threads: 0,
        };
        assert!(run(&store, &q, &limits).is_ok());
    }
}
