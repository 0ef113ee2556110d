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
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use kairos_protocols::Value;

use super::aggregators::range::{value_key, RangeAcc, RangeKind, RangeSpec, Ranges};
use super::aggregators::save_as::Saved;
use super::aggregators::{AggSpec, Chain, ChainError, GroupContext, Pt, Val};
use super::group_by::GroupBySpec;
use super::json;
use super::plan::{raw_tags, unescape, MetricPlan, PlannedGroup, SeriesInfo, SeriesKeys};
use super::request::{MetricQuery, Order};
use super::scan::{SeriesCursor, Staged};
use crate::storage::keys::bucket_start;
use crate::storage::view::PointReader;
use crate::storage::{StoreError, View};

/// The state one query shares across its metrics.
pub struct ExecCtx<'a, 'v> {
    pub view: &'v View<'v>,
    pub reader: &'a mut PointReader<'v>,
    /// Points decoded by readers other than `reader` (parallel folds).
    pub decoded_elsewhere: u64,
    pub staged: &'a Staged,
    pub start: i64,
    pub end: i64,
    /// Most points the whole query may read.
    pub max_points: u64,
    /// Points read so far by the whole query (in range).
    pub read: u64,
    pub now: i64,
    /// Most readers for one group (0 = one per core, at most 4).
    pub threads: usize,
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
    /// Union of the tag values of the group's series that had points, sorted (shared
    /// by the sub-groups of one tag group).
    pub tags: Arc<TagUnion>,
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
    match fold {
        Some(r) => out.groups = fold_groups(ctx, m, plan, r, &non_tag, &mut out.sample_size, &mut budget)?,
        None => {
            for group in &plan.groups {
                let outputs = merge_group(ctx, m, group, &plan.keys, &non_tag, &mut out.sample_size, &mut budget)?;
                out.groups.extend(outputs);
            }
        }
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

/// Tag names with their sorted values.
pub type TagUnion = Vec<(String, Vec<String>)>;

/// The union of the tags of the series with these canonical `keys`, built once per
/// group. A group can have a million series sharing a few dozen values, so it works
/// on the escaped key parts (one-to-one with the texts): a short list of tag names,
/// tried first at the position the name had in the previous series, and a hash set of
/// values per name; only the distinct names and values are turned into strings.
pub(crate) fn union_of<'a>(keys: impl Iterator<Item = &'a [u8]>) -> TagUnion {
    type Values<'a> = HashSet<&'a [u8], foldhash::fast::RandomState>;
    let mut names: Vec<(&[u8], Values<'a>)> = Vec::new();
    for key in keys {
        for (j, (k, v)) in raw_tags(key).enumerate() {
            let i = match names.get(j) {
                Some((n, _)) if *n == k => j,
                _ => match names.iter().position(|(n, _)| *n == k) {
                    Some(i) => i,
                    None => {
                        names.push((k, Values::default()));
                        names.len() - 1
                    }
                },
            };
            names[i].1.insert(v);
        }
    }
    let mut union: TagUnion = names
        .into_iter()
        .map(|(k, vs)| {
            let mut vs: Vec<String> = vs.into_iter().map(|v| unescape(v).into_owned()).collect();
            vs.sort_unstable();
            vs.dedup();
            (unescape(k).into_owned(), vs)
        })
        .collect();
    union.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    union.dedup_by(|b, a| {
        // Equal names only from damaged (non-UTF-8) keys: keep one, with both's values.
        if a.0 != b.0 {
            return false;
        }
        a.1.append(&mut b.1);
        a.1.sort_unstable();
        a.1.dedup();
        true
    });
    union
}

/// What save_as names a group by: every series' tags, only worked out when needed.
fn plan_tags(m: &MetricQuery, group: &PlannedGroup, keys: &SeriesKeys) -> TagUnion {
    if m.aggregators.iter().any(|a| matches!(a, AggSpec::SaveAs(_))) {
        union_of(group.series.iter().map(|s| keys.get(&s.key)))
    } else {
        Vec::new()
    }
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
    slots: HashMap<i64, usize, foldhash::fast::RandomState>,
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

/// The point budget shared by the threads folding one group.
struct SharedBudget {
    read: AtomicU64,
    max: u64,
    series_read: AtomicUsize,
    series_total: usize,
}

impl SharedBudget {
    fn charge(&self, n: usize) -> Result<(), ExecError> {
        let read = self.read.fetch_add(n as u64, Relaxed) + n as u64;
        if read > self.max {
            return Err(ExecError::TooManyPoints {
                read,
                series_read: self.series_read.load(Relaxed),
                series_total: self.series_total,
            });
        }
        Ok(())
    }
}

/// What one reader folded from its share of a group's series.
#[derive(Default)]
struct FoldPart {
    subs: Vec<Sub<RangeTable>>,
    index: HashMap<Vec<i32>, usize>,
    /// Keys of the series (of the group) that had a point in range.
    had: Vec<std::ops::Range<usize>>,
    sample: u64,
}

/// Shared inputs of the fold of one group.
struct FoldInput<'a> {
    staged: &'a Staged,
    start: i64,
    end: i64,
    spec: &'a RangeSpec,
    non_tag: &'a [&'a GroupBySpec],
    desc: bool,
    budget: &'a SharedBudget,
}

/// Folds `series` into per-range accumulators with `reader`.
fn fold_series(
    reader: &mut PointReader<'_>,
    series: &[(&SeriesInfo, usize)],
    groups: usize,
    f: &FoldInput<'_>,
) -> Result<Vec<FoldPart>, ExecError> {
    let mut parts: Vec<FoldPart> = (0..groups).map(|_| FoldPart::default()).collect();
    let (desc, kind, non_tag) = (f.desc, &f.spec.kind, f.non_tag);
    let width = reader.bucket_width();
    let mut ranges = Ranges::new(f.spec);
    let mut batch = Vec::new();
    // count needs no value: chunks wholly inside one range are counted from their
    // headers (ascending only: descending stamps need each range's last point).
    let headers_only = *kind == RangeKind::Count && non_tag.is_empty() && !desc;
    let (first_bucket, last_bucket) = (bucket_start(f.start, width), bucket_start(f.end, width));
    for &(s, g) in series {
        let part = &mut parts[g];
        let mut had = false;
        if headers_only && f.staged.of(s.id).is_empty() {
            let mut from = Some(first_bucket);
            while let Some(b) = from {
                let Some((bucket, n, ts0)) = reader.next_chunk_header(s.id, b, last_bucket)? else {
                    break;
                };
                from = bucket.checked_add(width).filter(|b| *b <= last_bucket);
                let bucket_last = bucket.saturating_add(width - 1);
                let (idx, range_end) = ranges.locate(ts0);
                // Every point of the chunk lies in [ts0, bucket_last].
                if n > 0 && ts0 >= f.start && bucket_last <= f.end && range_end > bucket_last {
                    had = true;
                    part.sample += n as u64;
                    f.budget.charge(n)?;
                    if part.subs.is_empty() {
                        let p = (ts0, Val::Null);
                        sub_of(
                            &mut part.subs,
                            &mut part.index,
                            non_tag,
                            f.start,
                            p,
                            desc,
                            RangeTable::default,
                        );
                    }
                    let sub = &mut part.subs[0];
                    sub.first = sub.first.min((ts0, 0));
                    sub.state.slot(idx).add_count(n as u64, ts0);
                } else {
                    batch.clear();
                    reader.decode_found(&mut batch)?;
                    batch.retain(|p| p.0 >= f.start && p.0 <= f.end);
                    if !batch.is_empty() {
                        had = true;
                        fold_batch(part, &batch, &mut ranges, f)?;
                    }
                }
            }
        } else {
            let mut cursor = SeriesCursor::new(s.id, f.start, f.end, false, width, f.staged.of(s.id));
            while cursor.next_batch(reader, &mut batch)? {
                had = true;
                fold_batch(part, &batch, &mut ranges, f)?;
            }
        }
        f.budget.series_read.fetch_add(1, Relaxed);
        if had {
            part.had.push(s.key.clone());
        }
    }
    Ok(parts)
}

/// Folds one time-sorted batch of a series' points into `part`.
fn fold_batch(
    part: &mut FoldPart,
    batch: &[(i64, Value)],
    ranges: &mut Ranges,
    f: &FoldInput<'_>,
) -> Result<(), ExecError> {
    let (desc, kind, non_tag) = (f.desc, &f.spec.kind, f.non_tag);
    part.sample += batch.len() as u64;
    f.budget.charge(batch.len())?;
    let subs = &mut part.subs;
    if non_tag.is_empty() {
        if subs.is_empty() {
            let p = (batch[0].0, Val::from(batch[0].1));
            sub_of(subs, &mut part.index, non_tag, f.start, p, desc, RangeTable::default);
        }
        let sub = &mut subs[0];
        let (lo, hi) = (batch[0], batch[batch.len() - 1]);
        for p in [lo, hi] {
            let key = (p.0, value_key(Val::from(p.1)));
            if (desc && key > sub.first) || (!desc && key < sub.first) {
                sub.first = key;
            }
        }
        // Runs of points in one range go into its accumulator in one call.
        let mut i = 0;
        while i < batch.len() {
            let (idx, end) = ranges.locate(batch[i].0);
            // Runs are short (a few points per range) or the whole rest of the batch:
            // check the end, else step; a binary search costs more.
            let rest = &batch[i..];
            let n = if rest[rest.len() - 1].0 < end {
                rest.len()
            } else {
                rest.iter().position(|p| p.0 >= end).unwrap_or(rest.len()).max(1)
            };
            sub.state.slot(idx).add_run(kind, desc, &batch[i..i + n]);
            i += n;
        }
    } else {
        for &(ts, v) in batch {
            let p = (ts, Val::from(v));
            let i = sub_of(subs, &mut part.index, non_tag, f.start, p, desc, RangeTable::default);
            let idx = ranges.index(ts);
            subs[i].state.slot(idx).add(kind, desc, p);
        }
    }
    Ok(())
}

/// Readers to fold a group of `series` with: one per core (at most 4) for groups
/// large enough that a thread pays for itself.
fn fold_threads(series: usize, limit: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = if limit == 0 { cores.min(4) } else { limit };
    most.min(series / 64).max(1)
}

/// Folds every group of a metric in one pass over its series in id order: each
/// stored block is read once however many groups share it, and the readers' seeks
/// only move forward.
fn fold_groups(
    ctx: &mut ExecCtx<'_, '_>,
    m: &MetricQuery,
    plan: &MetricPlan,
    spec: &RangeSpec,
    non_tag: &[&GroupBySpec],
    sample: &mut u64,
    budget: &mut Budget,
) -> Result<Vec<GroupOutput>, ExecError> {
    let desc = m.order == Order::Desc;
    let shared = SharedBudget {
        read: AtomicU64::new(ctx.read),
        max: ctx.max_points,
        series_read: AtomicUsize::new(budget.series_read),
        series_total: budget.series_total,
    };
    let input = FoldInput {
        staged: ctx.staged,
        start: ctx.start,
        end: ctx.end,
        spec,
        non_tag,
        desc,
        budget: &shared,
    };
    let groups = plan.groups.len();
    let mut series: Vec<(&SeriesInfo, usize)> = plan
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| group.series.iter().map(move |s| (s, g)))
        .collect();
    series.sort_unstable_by_key(|(s, _)| s.id);
    let threads = fold_threads(series.len(), ctx.threads);
    let parts: Vec<Result<Vec<FoldPart>, ExecError>> = if threads == 1 {
        vec![fold_series(ctx.reader, &series, groups, &input)]
    } else {
        let view = ctx.view;
        let per = series.len().div_ceil(threads);
        let input = &input;
        let done: Vec<(Result<Vec<FoldPart>, ExecError>, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = series
                .chunks(per)
                .map(|share| {
                    scope.spawn(move || {
                        let mut reader = view.points();
                        let parts = fold_series(&mut reader, share, groups, input);
                        (parts, reader.decoded())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a fold thread panicked"))
                .collect()
        });
        ctx.decoded_elsewhere += done.iter().map(|(_, d)| d).sum::<u64>();
        done.into_iter().map(|(p, _)| p).collect()
    };
    ctx.read = shared.read.load(Relaxed);
    budget.series_read = shared.series_read.load(Relaxed);
    let mut merged: Vec<FoldPart> = (0..groups).map(|_| FoldPart::default()).collect();
    for parts in parts {
        for (merged, part) in merged.iter_mut().zip(parts?) {
            merge_part(merged, part, &spec.kind, non_tag.is_empty(), desc);
        }
    }
    let mut outputs = Vec::new();
    for (group, part) in plan.groups.iter().zip(merged) {
        outputs.extend(fold_outputs(ctx, m, group, &plan.keys, spec, non_tag, part, sample)?);
    }
    Ok(outputs)
}

/// Adds one reader's `part` of a group into `merged`.
fn merge_part(merged: &mut FoldPart, part: FoldPart, kind: &RangeKind, single: bool, desc: bool) {
    merged.sample += part.sample;
    merged.had.extend(part.had);
    for sub in part.subs {
        let found = if single {
            (!merged.subs.is_empty()).then_some(0)
        } else {
            merged.index.get(&sub.ids).copied()
        };
        let Some(i) = found else {
            merged.index.insert(sub.ids.clone(), merged.subs.len());
            merged.subs.push(sub);
            continue;
        };
        let target = &mut merged.subs[i];
        if (desc && sub.first > target.first) || (!desc && sub.first < target.first) {
            target.first = sub.first;
        }
        for (idx, acc) in &sub.state.accs {
            target.state.slot(*idx).merge(kind, desc, acc);
        }
    }
}

/// A folded group's outputs: its sub-groups' ranges, through the rest of the chain.
#[allow(clippy::too_many_arguments)] // the fold's parts, each used once
fn fold_outputs(
    ctx: &mut ExecCtx<'_, '_>,
    m: &MetricQuery,
    group: &PlannedGroup,
    keys: &SeriesKeys,
    spec: &RangeSpec,
    non_tag: &[&GroupBySpec],
    merged: FoldPart,
    sample: &mut u64,
) -> Result<Vec<GroupOutput>, ExecError> {
    let desc = m.order == Order::Desc;
    *sample += merged.sample;
    let FoldPart { mut subs, had, .. } = merged;
    let union = Arc::new(union_of(had.iter().map(|at| keys.get(at))));
    let ranges = Ranges::new(spec);
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    order_subs(&mut subs, desc);
    let tags = plan_tags(m, group, keys);
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
            acc.emit(spec, desc, ranges.bounds(*idx), &mut emitted);
            for &p in &emitted {
                chain.push(p, &mut values)?;
            }
        }
        chain.finish(&mut values)?;
        ctx.saved.extend(chain.take_saved());
        outputs.push(GroupOutput {
            tags: Arc::clone(&union),
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
    keys: &SeriesKeys,
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
    let tags = plan_tags(m, group, keys);
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
    let union = Arc::new(union_of(
        group
            .series
            .iter()
            .zip(&merger.had)
            .filter(|(_, had)| **had)
            .map(|(s, _)| keys.get(&s.key)),
    ));
    order_subs(&mut subs, desc);
    let mut outputs = Vec::with_capacity(subs.len());
    for sub in subs {
        let (mut chain, mut values) = sub.state;
        chain.finish(&mut values)?;
        ctx.saved.extend(chain.take_saved());
        outputs.push(GroupOutput {
            tags: Arc::clone(&union),
            group_by: render_group_by(m, non_tag, &sub.ids, group),
            values,
        });
    }
    Ok(outputs)
}
