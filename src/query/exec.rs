//! Executing one metric query over its plan: per group, the series' points stream
//! either
//!
//! - **folded**: when the first aggregator is a range aggregator whose result does not
//!   depend on point order (sum, avg, count, min, max, dev, first, last, percentile,
//!   least_squares) and there is no `limit`, each series is read on its own and its
//!   points go straight into the per-range accumulators. No merge, no per-point heap
//!   work; memory is one accumulator per output range. This is the common dashboard
//!   query (and the benchmark's).
//! - **merged**: otherwise the group's series are merged by (time, value) with a heap
//!   over per-series cursors (one bucket each in memory), cut at `limit`, and pushed
//!   through the aggregator chain point by point.
//!
//! Either way `time`, `value` and `bin` group-bys split the stream per point, and the
//! query's point budget is charged per bucket read, so a query that would read too
//! much stops early with a message saying how far it got.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use kairos_protocols::Value;

use super::aggregators::range::{value_key, RangeAcc, RangeSpec, Ranges};
use super::aggregators::save_as::Saved;
use super::aggregators::{AggSpec, Chain, ChainError, GroupContext, Pt, Val};
use super::group_by::GroupBySpec;
use super::json;
use super::plan::{MetricPlan, PlannedGroup};
use super::request::{MetricQuery, Order};
use super::scan::{SeriesCursor, Staged};
use crate::storage::view::PointReader;
use crate::storage::StoreError;

/// The state one query shares across its metrics.
pub struct ExecCtx<'a, 'v> {
    pub reader: &'a mut PointReader<'v>,
    pub staged: &'a Staged,
    pub start: i64,
    pub end: i64,
    /// Most points the whole query may read.
    pub max_points: u64,
    /// Points read so far by the whole query (in range).
    pub read: u64,
    pub now: i64,
    pub saved: Vec<Saved>,
}

#[derive(Debug)]
pub enum ExecError {
    TooManyPoints {
        read: u64,
        series_read: usize,
        series_total: usize,
    },
    Chain(ChainError),
    Store(StoreError),
}

impl From<StoreError> for ExecError {
    fn from(e: StoreError) -> Self {
        ExecError::Store(e)
    }
}

impl From<ChainError> for ExecError {
    fn from(e: ChainError) -> Self {
        ExecError::Chain(e)
    }
}

/// One result of a metric query.
#[derive(Debug, Default)]
pub struct GroupOutput {
    /// Union of the tag values of the group's series that had points, sorted.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    /// The rendered entries of its `group_by` list (without brackets).
    pub group_by: String,
    pub values: Vec<Pt>,
}

#[derive(Debug, Default)]
pub struct MetricOutput {
    /// Raw points read for this metric query (before limit and aggregation).
    pub sample_size: u64,
    /// Empty when no series had a point in range (rendered as KairosDB 1.3 does).
    pub groups: Vec<GroupOutput>,
}

/// Charges the budget for `n` points read.
struct Budget {
    series_read: usize,
    series_total: usize,
}

impl ExecCtx<'_, '_> {
    fn charge(&mut self, n: usize, sample: &mut u64, b: &Budget) -> Result<(), ExecError> {
        self.read += n as u64;
        *sample += n as u64;
        if self.read > self.max_points {
            return Err(ExecError::TooManyPoints {
                read: self.read,
                series_read: b.series_read,
                series_total: b.series_total,
            });
        }
        Ok(())
    }
}

pub fn run_metric(ctx: &mut ExecCtx<'_, '_>, m: &MetricQuery, plan: &MetricPlan) -> Result<MetricOutput, ExecError> {
    let mut out = MetricOutput::default();
    let mut budget = Budget {
        series_read: 0,
        series_total: plan.series_count(),
    };
    let non_tag: Vec<&GroupBySpec> = m
        .group_by
        .iter()
        .filter(|g| !matches!(g, GroupBySpec::Tag(_)))
        .collect();
    let fold = match m.aggregators.first() {
        Some(AggSpec::Range(r)) if r.kind.folds() && m.limit.is_none() => Some(r),
        _ => None,
    };
    for group in &plan.groups {
        let outputs = match fold {
            Some(r) => fold_group(ctx, m, group, r, &non_tag, &mut out.sample_size, &mut budget)?,
            None => merge_group(ctx, m, group, &non_tag, &mut out.sample_size, &mut budget)?,
        };
        out.groups.extend(outputs);
    }
    Ok(out)
}

/// A sub-group made by the time/value/bin group-bys (or the whole group without them).
struct Sub<T> {
    ids: Vec<i32>,
    /// Its first point in stream order, for KairosDB's first-seen group order.
    first: (i64, u64),
    state: T,
}

/// Finds or makes the sub-group of point `p`.
fn sub_of<T>(
    subs: &mut Vec<Sub<T>>,
    index: &mut HashMap<Vec<i32>, usize>,
    non_tag: &[&GroupBySpec],
    start: i64,
    p: Pt,
    desc: bool,
    make: impl FnOnce() -> T,
) -> usize {
    let key = (p.0, value_key(p.1));
    let i = if non_tag.is_empty() {
        if subs.is_empty() {
            subs.push(Sub {
                ids: Vec::new(),
                first: key,
                state: make(),
            });
        }
        0
    } else {
        let ids: Vec<i32> = non_tag.iter().map(|g| g.group_id(p, start)).collect();
        match index.get(&ids) {
            Some(&i) => i,
            None => {
                index.insert(ids.clone(), subs.len());
                subs.push(Sub {
                    ids,
                    first: key,
                    state: make(),
                });
                subs.len() - 1
            }
        }
    };
    let s = &mut subs[i];
    if (desc && key > s.first) || (!desc && key < s.first) {
        s.first = key;
    }
    i
}

fn add_tags(union: &mut BTreeMap<String, BTreeSet<String>>, tags: &[(String, String)]) {
    for (k, v) in tags {
        union.entry(k.clone()).or_default().insert(v.clone());
    }
}

/// The union of every series' tags in the plan group (what save_as names a group by).
fn plan_tags(group: &PlannedGroup) -> Vec<(String, Vec<String>)> {
    let mut union = BTreeMap::new();
    for s in &group.series {
        add_tags(&mut union, &s.tags);
    }
    union
        .into_iter()
        .map(|(k, v): (String, BTreeSet<String>)| (k, v.into_iter().collect()))
        .collect()
}

/// The `group_by` entries of one output: time/value/bin first, then tag, then type.
fn render_group_by(m: &MetricQuery, non_tag: &[&GroupBySpec], ids: &[i32], group: &PlannedGroup) -> String {
    let mut s = String::new();
    for (g, id) in non_tag.iter().zip(ids) {
        g.render(*id, &mut s);
        s.push(',');
    }
    if let Some(names) = m.tag_group() {
        s.push_str("{\"name\":\"tag\",\"tags\":[");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json::string(&mut s, n);
        }
        s.push_str("],\"group\":{");
        for (i, (k, v)) in group.tag_values.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json::string(&mut s, k);
            s.push(':');
            json::string(&mut s, v);
        }
        s.push_str("}},");
    }
    s.push_str("{\"name\":\"type\",\"type\":\"number\"}");
    s
}

/// Per-range accumulators of one sub-group, with a shortcut for consecutive points of
/// a series landing in the same range.
#[derive(Default)]
struct RangeTable {
    slots: HashMap<i64, usize>,
    accs: Vec<(i64, RangeAcc)>,
    last: Option<(i64, usize)>,
}

impl RangeTable {
    #[inline]
    fn slot(&mut self, idx: i64) -> &mut RangeAcc {
        let slot = match self.last {
            Some((i, s)) if i == idx => s,
            _ => {
                let next = self.accs.len();
                let s = *self.slots.entry(idx).or_insert(next);
                if s == next {
                    self.accs.push((idx, RangeAcc::default()));
                }
                self.last = Some((idx, s));
                s
            }
        };
        &mut self.accs[slot].1
    }
}

fn fold_group(
    ctx: &mut ExecCtx<'_, '_>,
    m: &MetricQuery,
    group: &PlannedGroup,
    spec: &RangeSpec,
    non_tag: &[&GroupBySpec],
    sample: &mut u64,
    budget: &mut Budget,
) -> Result<Vec<GroupOutput>, ExecError> {
    let desc = m.order == Order::Desc;
    let width = ctx.reader.bucket_width();
    let mut ranges = Ranges::new(spec);
    let mut subs: Vec<Sub<RangeTable>> = Vec::new();
    let mut index = HashMap::new();
    let mut union = BTreeMap::new();
    let mut batch = Vec::new();
    let kind = &spec.kind;
    for series in &group.series {
        let mut cursor = SeriesCursor::new(series.id, ctx.start, ctx.end, false, width, ctx.staged.of(series.id));
        let mut had = false;
        while cursor.next_batch(ctx.reader, &mut batch)? {
            had = true;
            ctx.charge(batch.len(), sample, budget)?;
            if non_tag.is_empty() {
                if subs.is_empty() {
                    let p = (batch[0].0, Val::from(batch[0].1));
                    sub_of(&mut subs, &mut index, non_tag, ctx.start, p, desc, RangeTable::default);
                }
                let sub = &mut subs[0];
                let (lo, hi) = (batch[0], batch[batch.len() - 1]);
                for p in [lo, hi] {
                    let key = (p.0, value_key(Val::from(p.1)));
                    if (desc && key > sub.first) || (!desc && key < sub.first) {
                        sub.first = key;
                    }
                }
                for &(ts, v) in &batch {
                    let idx = ranges.index(ts);
                    sub.state.slot(idx).add(kind, desc, (ts, Val::from(v)));
                }
            } else {
                for &(ts, v) in &batch {
                    let p = (ts, Val::from(v));
                    let i = sub_of(&mut subs, &mut index, non_tag, ctx.start, p, desc, RangeTable::default);
                    let idx = ranges.index(ts);
                    subs[i].state.slot(idx).add(kind, desc, p);
                }
            }
        }
        budget.series_read += 1;
        if had {
            add_tags(&mut union, &series.tags);
        }
    }
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    order_subs(&mut subs, desc);
    let tags = plan_tags(group);
    let grouped: Vec<String> = m.tag_group().map(<[String]>::to_vec).unwrap_or_default();
    let gctx = GroupContext {
        metric: &m.name,
        tags: &tags,
        grouped_tags: &grouped,
        desc,
        max_points: ctx.max_points as usize,
        now: ctx.now,
    };
    let mut outputs = Vec::with_capacity(subs.len());
    let mut emitted = Vec::new();
    for mut sub in subs {
        let mut chain = Chain::new(&m.aggregators[1..], &gctx);
        let mut values = Vec::new();
        let accs = &mut sub.state.accs;
        if desc {
            accs.sort_unstable_by_key(|(idx, _)| Reverse(*idx));
        } else {
            accs.sort_unstable_by_key(|(idx, _)| *idx);
        }
        for (idx, acc) in accs.iter_mut() {
            emitted.clear();
            acc.emit(spec, ranges.bounds(*idx), &mut emitted);
            for &p in &emitted {
                chain.push(p, &mut values)?;
            }
        }
        chain.finish(&mut values)?;
        ctx.saved.extend(chain.take_saved());
        outputs.push(GroupOutput {
            tags: union.clone(),
            group_by: render_group_by(m, non_tag, &sub.ids, group),
            values,
        });
    }
    Ok(outputs)
}

fn order_subs<T>(subs: &mut [Sub<T>], desc: bool) {
    if desc {
        subs.sort_by_key(|s| Reverse(s.first));
    } else {
        subs.sort_by_key(|s| s.first);
    }
}

/// A group's series merged by (time, value), ascending or descending.
struct Merger<'s> {
    cursors: Vec<SeriesCursor<'s>>,
    bufs: Vec<Vec<(i64, Value)>>,
    /// Ascending: index of the next point; descending: number of points left.
    pos: Vec<usize>,
    had: Vec<bool>,
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    desc: bool,
    started: bool,
}

impl<'s> Merger<'s> {
    fn new(cursors: Vec<SeriesCursor<'s>>, desc: bool) -> Merger<'s> {
        let n = cursors.len();
        Merger {
            cursors,
            bufs: (0..n).map(|_| Vec::new()).collect(),
            pos: vec![0; n],
            had: vec![false; n],
            heap: BinaryHeap::with_capacity(n),
            desc,
            started: false,
        }
    }

    fn key(&self, c: usize) -> (u64, u64) {
        let i = if self.desc { self.pos[c] - 1 } else { self.pos[c] };
        let (ts, v) = self.bufs[c][i];
        let k = ((ts as u64) ^ (1 << 63), value_key(Val::from(v)));
        if self.desc {
            (!k.0, !k.1)
        } else {
            k
        }
    }

    fn remaining(&self, c: usize) -> bool {
        if self.desc {
            self.pos[c] > 0
        } else {
            self.pos[c] < self.bufs[c].len()
        }
    }

    /// Loads cursor `c`'s next batch; false when it is done.
    fn refill(
        &mut self,
        c: usize,
        reader: &mut PointReader<'_>,
        charge: &mut impl FnMut(usize) -> Result<(), ExecError>,
    ) -> Result<bool, ExecError> {
        if !self.cursors[c].next_batch(reader, &mut self.bufs[c])? {
            return Ok(false);
        }
        self.had[c] = true;
        charge(self.bufs[c].len())?;
        self.pos[c] = if self.desc { self.bufs[c].len() } else { 0 };
        Ok(true)
    }

    fn next(
        &mut self,
        reader: &mut PointReader<'_>,
        charge: &mut impl FnMut(usize) -> Result<(), ExecError>,
    ) -> Result<Option<(i64, Value)>, ExecError> {
        if !self.started {
            self.started = true;
            for c in 0..self.cursors.len() {
                if self.refill(c, reader, charge)? {
                    let (a, b) = self.key(c);
                    self.heap.push(Reverse((a, b, c)));
                }
            }
        }
        let Some(Reverse((_, _, c))) = self.heap.pop() else {
            return Ok(None);
        };
        let p = if self.desc {
            self.pos[c] -= 1;
            self.bufs[c][self.pos[c]]
        } else {
            self.pos[c] += 1;
            self.bufs[c][self.pos[c] - 1]
        };
        if self.remaining(c) || self.refill(c, reader, charge)? {
            let (a, b) = self.key(c);
            self.heap.push(Reverse((a, b, c)));
        }
        Ok(Some(p))
    }

    /// Reads what is left without merging it (after `limit`): sample_size still counts
    /// every raw point, as KairosDB's does.
    fn drain(
        &mut self,
        reader: &mut PointReader<'_>,
        charge: &mut impl FnMut(usize) -> Result<(), ExecError>,
    ) -> Result<(), ExecError> {
        self.heap.clear();
        for c in 0..self.cursors.len() {
            while self.refill(c, reader, charge)? {}
        }
        Ok(())
    }
}

fn merge_group(
    ctx: &mut ExecCtx<'_, '_>,
    m: &MetricQuery,
    group: &PlannedGroup,
    non_tag: &[&GroupBySpec],
    sample: &mut u64,
    budget: &mut Budget,
) -> Result<Vec<GroupOutput>, ExecError> {
    let desc = m.order == Order::Desc;
    let width = ctx.reader.bucket_width();
    let staged = ctx.staged;
    let cursors = group
        .series
        .iter()
        .map(|s| SeriesCursor::new(s.id, ctx.start, ctx.end, desc, width, staged.of(s.id)))
        .collect();
    let mut merger = Merger::new(cursors, desc);
    let tags = plan_tags(group);
    let grouped: Vec<String> = m.tag_group().map(<[String]>::to_vec).unwrap_or_default();
    let gctx = GroupContext {
        metric: &m.name,
        tags: &tags,
        grouped_tags: &grouped,
        desc,
        max_points: ctx.max_points as usize,
        now: ctx.now,
    };
    let mut subs: Vec<Sub<(Chain, Vec<Pt>)>> = Vec::new();
    let mut index = HashMap::new();
    let limit = m.limit.unwrap_or(usize::MAX);
    let mut taken = 0usize;
    let (start, max_points) = (ctx.start, ctx.max_points);
    let mut read = ctx.read;
    let result = (|| -> Result<(), ExecError> {
        let mut charge = |n: usize| {
            read += n as u64;
            *sample += n as u64;
            if read > max_points {
                return Err(ExecError::TooManyPoints {
                    read,
                    series_read: budget.series_read,
                    series_total: budget.series_total,
                });
            }
            Ok(())
        };
        while taken < limit {
            let Some((ts, v)) = merger.next(ctx.reader, &mut charge)? else {
                break;
            };
            taken += 1;
            let p = (ts, Val::from(v));
            let i = sub_of(&mut subs, &mut index, non_tag, start, p, desc, || {
                (Chain::new(&m.aggregators, &gctx), Vec::new())
            });
            let (chain, values) = &mut subs[i].state;
            chain.push(p, values)?;
        }
        if taken >= limit {
            merger.drain(ctx.reader, &mut charge)?;
        }
        Ok(())
    })();
    ctx.read = read;
    result?;
    budget.series_read += group.series.len();
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    let mut union = BTreeMap::new();
    for (s, had) in group.series.iter().zip(&merger.had) {
        if *had {
            add_tags(&mut union, &s.tags);
        }
    }
    order_subs(&mut subs, desc);
    let mut outputs = Vec::with_capacity(subs.len());
    for sub in subs {
        let (mut chain, mut values) = sub.state;
        chain.finish(&mut values)?;
        ctx.saved.extend(chain.take_saved());
        outputs.push(GroupOutput {
            tags: union.clone(),
            group_by: render_group_by(m, non_tag, &sub.ids, group),
            values,
        });
    }
    Ok(outputs)
}
