//! Range aggregators (KairosDB's `RangeAggregator` family).
//!
//! Ranges start at the query start (or `start_time`), aligned with `align_sampling`
//! (default true) to the start of the second, day, week, month or year in the time
//! zone, and step by `sampling` with Joda-Time's field arithmetic (see
//! [`crate::query::tz::Calendar`]). A point belongs to range
//! `difference(ts, origin) / sampling.value`, as KairosDB computes it. Each range's
//! output is stamped with its first point's time, or the range start or end with
//! `align_start_time` / `align_end_time`. Empty ranges produce nothing, except for gaps.
//!
//! Accumulators are order-independent where the answer is (sum uses compensated
//! addition; first and last compare (time, value)), so the engine can fold a group's
//! series one after another without merging them, and get what a time-ordered pass
//! would give.

use super::{ChainError, GroupContext, Pt, Stage, Val};
use crate::query::props::Sampling;
use crate::query::tz::{elapsed_ms, Calendar, Tz};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevReturn {
    Value,
    PosSd,
    NegSd,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RangeKind {
    Avg,
    Sum,
    Min,
    Max,
    Count,
    Dev { ret: DevReturn, count: i64 },
    First,
    Last,
    LeastSquares,
    Percentile(f64),
    Gaps,
}

impl RangeKind {
    /// Whether the result of a range does not depend on the order its points arrive in
    /// (so a group's series can be folded one by one).
    pub fn folds(&self) -> bool {
        !matches!(self, RangeKind::Gaps)
    }
}

#[derive(Debug, Clone)]
pub struct RangeSpec {
    pub kind: RangeKind,
    pub sampling: Sampling,
    pub align_sampling: bool,
    pub align_start_time: bool,
    pub align_end_time: bool,
    /// Where ranges are counted from, before alignment: the query start unless the
    /// aggregator sets `start_time`.
    pub start_time: i64,
    /// The inclusive query end (gaps stops there, or at now).
    pub end_time: i64,
    pub tz: Tz,
    /// gaps: start at the first point instead of the query start.
    pub trim: bool,
}

/// The range arithmetic of one aggregator.
#[derive(Debug, Clone)]
pub struct Ranges {
    cal: Calendar,
    origin: i64,
    step: i64,
    /// Width in ms when the unit is elapsed time (ms to hours): no calendar needed.
    fixed: Option<i128>,
    /// The last range looked up, to skip the calendar for the next point.
    cache: Option<(i64, i64, i64)>,
}

impl Ranges {
    pub fn new(spec: &RangeSpec) -> Ranges {
        let cal = Calendar::new(spec.sampling.unit, spec.tz.clone());
        let origin = if spec.align_sampling {
            cal.align(spec.start_time)
        } else {
            spec.start_time
        };
        let step = spec.sampling.value.max(1);
        let fixed = elapsed_ms(spec.sampling.unit).map(|ms| ms as i128 * step as i128);
        Ranges {
            cal,
            origin,
            step,
            fixed,
            cache: None,
        }
    }

    /// Index of the range holding `ts`.
    #[inline]
    pub fn index(&mut self, ts: i64) -> i64 {
        if let Some(w) = self.fixed {
            return ((ts as i128 - self.origin as i128) / w) as i64;
        }
        if let Some((start, end, idx)) = self.cache {
            if ts >= start && ts < end && ts >= self.origin {
                return idx;
            }
        }
        let idx = self.cal.difference(ts, self.origin) / self.step;
        let (start, end) = self.bounds(idx);
        self.cache = Some((start, end, idx));
        idx
    }

    /// The range of `ts` and the first timestamp after `ts` that lies in another range
    /// (so a time-sorted run of points up to it shares the range).
    #[inline]
    pub fn locate(&mut self, ts: i64) -> (i64, i64) {
        if ts < self.origin {
            // Before the origin KairosDB's truncating division makes odd ranges: one
            // point at a time.
            return (self.index(ts), ts.saturating_add(1));
        }
        if let Some(w) = self.fixed {
            if let (Some(d), Ok(w64)) = (ts.checked_sub(self.origin), i64::try_from(w)) {
                let idx = d / w64;
                let end = self.origin.saturating_add((idx + 1).saturating_mul(w64));
                return (idx, end);
            }
            let idx = self.index(ts);
            return (idx, self.bounds(idx).1);
        }
        let idx = self.index(ts);
        let end = self.cache.map_or(ts.saturating_add(1), |c| c.1);
        (idx, end.max(ts.saturating_add(1)))
    }

    /// `[start, end)` of range `idx`.
    pub fn bounds(&self, idx: i64) -> (i64, i64) {
        if let Some(w) = self.fixed {
            let start = self.origin as i128 + idx as i128 * w;
            let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            return (clamp(start), clamp(start + w));
        }
        let n = idx.saturating_mul(self.step);
        (
            self.cal.add(self.origin, n),
            self.cal.add(self.origin, n.saturating_add(self.step)),
        )
    }
}

/// A u64 that sorts like the value (as a double), for (time, value) order.
#[inline]
pub fn value_key(v: Val) -> u64 {
    let d = v.as_f64().unwrap_or(0.0);
    let bits = d.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Whether `a` comes before `b` in stream order.
#[inline]
fn before(a: Pt, b: Pt, desc: bool) -> bool {
    let (ka, kb) = ((a.0, value_key(a.1)), (b.0, value_key(b.1)));
    if desc {
        ka > kb
    } else {
        ka < kb
    }
}

/// What one range has seen.
#[derive(Debug, Clone)]
pub struct RangeAcc {
    /// Every point, nulls included.
    pub n: u64,
    num: u64,
    min_ts: i64,
    max_ts: i64,
    sum: f64,
    comp: f64,
    min: f64,
    max: f64,
    mean: f64,
    m2: f64,
    /// first, second and last in stream order (kept for first, last, least_squares).
    first: Option<Pt>,
    second: Option<Pt>,
    last: Option<Pt>,
    values: Vec<f64>,
    lsq_x0: i64,
    lsq: [f64; 4],
}

impl Default for RangeAcc {
    fn default() -> Self {
        RangeAcc {
            n: 0,
            num: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            sum: 0.0,
            comp: 0.0,
            min: 0.0,
            max: 0.0,
            mean: 0.0,
            m2: 0.0,
            first: None,
            second: None,
            last: None,
            values: Vec::new(),
            lsq_x0: 0,
            lsq: [0.0; 4],
        }
    }
}

/// Whether a kind needs the points' (time, value) order, not just their values.
#[inline]
fn ordered(kind: &RangeKind) -> bool {
    matches!(kind, RangeKind::First | RangeKind::Last | RangeKind::LeastSquares)
}

impl RangeAcc {
    pub fn clear(&mut self) {
        let values = std::mem::take(&mut self.values);
        *self = RangeAcc::default();
        self.values = values;
        self.values.clear();
    }

    /// Neumaier's compensated sum: the same result whatever the order.
    #[inline(always)]
    fn sum_in(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub fn add(&mut self, kind: &RangeKind, desc: bool, p: Pt) {
        self.n += 1;
        self.min_ts = self.min_ts.min(p.0);
        self.max_ts = self.max_ts.max(p.0);
        if ordered(kind) {
            self.track(desc, p);
        }
        let Some(x) = p.1.as_f64() else { return };
        self.num += 1;
        self.fold_value(kind, p.0, x);
    }

    fn track(&mut self, desc: bool, p: Pt) {
        match self.first {
            None => {
                self.first = Some(p);
                self.last = Some(p);
            }
            Some(f) => {
                if before(p, f, desc) {
                    self.second = self.first;
                    self.first = Some(p);
                } else if self.second.is_none_or(|s| before(p, s, desc)) {
                    self.second = Some(p);
                }
                if self.last.is_none_or(|l| before(l, p, desc)) {
                    self.last = Some(p);
                }
            }
        }
    }

    #[inline(always)]
    fn fold_value(&mut self, kind: &RangeKind, ts: i64, x: f64) {
        match kind {
            RangeKind::Sum | RangeKind::Avg => self.sum_in(x),
            RangeKind::Min => self.min = if self.num == 1 { x } else { self.min.min(x) },
            RangeKind::Max => self.max = if self.num == 1 { x } else { self.max.max(x) },
            RangeKind::Dev { .. } => {
                let delta = x - self.mean;
                self.mean += delta / self.num as f64;
                self.m2 += delta * (x - self.mean);
            }
            RangeKind::Percentile(_) => self.values.push(x),
            RangeKind::LeastSquares => {
                if self.num == 1 {
                    self.lsq_x0 = ts;
                }
                let dx = (ts as i128 - self.lsq_x0 as i128) as f64;
                self.lsq[0] += dx;
                self.lsq[1] += x;
                self.lsq[2] += dx * dx;
                self.lsq[3] += dx * x;
            }
            RangeKind::Count | RangeKind::First | RangeKind::Last | RangeKind::Gaps => {}
        }
    }

    /// Adds a run of stored points (time-sorted, one series, all in this range): the
    /// folding engine's inner loop.
    #[inline]
    pub fn add_run(&mut self, kind: &RangeKind, desc: bool, run: &[(i64, kairos_protocols::Value)]) {
        let (Some(lo), Some(hi)) = (run.first(), run.last()) else {
            return;
        };
        if ordered(kind) {
            for &(ts, v) in run {
                self.add(kind, desc, (ts, v.into()));
            }
            return;
        }
        self.n += run.len() as u64;
        self.min_ts = self.min_ts.min(lo.0);
        self.max_ts = self.max_ts.max(hi.0);
        let value = |v: &kairos_protocols::Value| match *v {
            kairos_protocols::Value::Long(l) => l as f64,
            kairos_protocols::Value::Double(d) => d,
        };
        match kind {
            RangeKind::Count => self.num += run.len() as u64,
            RangeKind::Sum | RangeKind::Avg => {
                for (_, v) in run {
                    self.sum_in(value(v));
                }
                self.num += run.len() as u64;
            }
            RangeKind::Min | RangeKind::Max => {
                let it = run.iter().map(|(_, v)| value(v));
                let m = if *kind == RangeKind::Min {
                    it.fold(f64::INFINITY, f64::min)
                } else {
                    it.fold(f64::NEG_INFINITY, f64::max)
                };
                self.num += run.len() as u64;
                if self.num == run.len() as u64 {
                    (self.min, self.max) = (m, m);
                } else if *kind == RangeKind::Min {
                    self.min = self.min.min(m);
                } else {
                    self.max = self.max.max(m);
                }
            }
            _ => {
                for &(ts, ref v) in run {
                    self.num += 1;
                    self.fold_value(kind, ts, value(v));
                }
            }
        }
    }

    /// Adds `n` points of a chunk whose first point is at `first_ts` (a count's
    /// header-only shortcut, ascending order).
    pub fn add_count(&mut self, n: u64, first_ts: i64) {
        self.n += n;
        self.num += n;
        self.min_ts = self.min_ts.min(first_ts);
        self.max_ts = self.max_ts.max(first_ts);
    }

    /// Folds `other` (the same range, seen by another reader) into this accumulator,
    /// with the result of having seen both sets of points.
    pub fn merge(&mut self, kind: &RangeKind, desc: bool, other: &RangeAcc) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        for p in [other.first, other.second, other.last].into_iter().flatten() {
            self.track(desc, p);
        }
        let (na, nb) = (self.num, other.num);
        self.n += other.n;
        self.num += other.num;
        self.min_ts = self.min_ts.min(other.min_ts);
        self.max_ts = self.max_ts.max(other.max_ts);
        if nb == 0 {
            return;
        }
        match kind {
            RangeKind::Sum | RangeKind::Avg => {
                self.sum_in(other.sum);
                self.sum_in(other.comp);
            }
            RangeKind::Min => self.min = if na == 0 { other.min } else { self.min.min(other.min) },
            RangeKind::Max => self.max = if na == 0 { other.max } else { self.max.max(other.max) },
            RangeKind::Dev { .. } => {
                // Chan et al.'s pairwise update of mean and sum of squared deviations.
                let n = (na + nb) as f64;
                let delta = other.mean - self.mean;
                self.mean += delta * nb as f64 / n;
                self.m2 += other.m2 + delta * delta * na as f64 * nb as f64 / n;
            }
            RangeKind::Percentile(_) => self.values.extend_from_slice(&other.values),
            RangeKind::LeastSquares => {
                if na == 0 {
                    self.lsq_x0 = other.lsq_x0;
                    self.lsq = other.lsq;
                    return;
                }
                // Re-base the other's sums from its x0 onto ours.
                let d = (other.lsq_x0 as i128 - self.lsq_x0 as i128) as f64;
                let [sx, sy, sxx, sxy] = other.lsq;
                let nbf = nb as f64;
                self.lsq[0] += sx + nbf * d;
                self.lsq[1] += sy;
                self.lsq[2] += sxx + 2.0 * d * sx + nbf * d * d;
                self.lsq[3] += sxy + d * sy;
            }
            RangeKind::Count | RangeKind::First | RangeKind::Last | RangeKind::Gaps => {}
        }
    }

    /// The range's output points. `bounds` is the range's `[start, end)`; `desc` says
    /// which end of the range the stream met first.
    pub fn emit(&mut self, spec: &RangeSpec, desc: bool, bounds: (i64, i64), out: &mut Vec<Pt>) {
        if self.n == 0 {
            return;
        }
        let aligned = if spec.align_start_time {
            Some(bounds.0)
        } else if spec.align_end_time {
            Some(bounds.1)
        } else {
            None
        };
        let first_ts = if desc { self.max_ts } else { self.min_ts };
        let rt = aligned.unwrap_or(first_ts);
        let num = self.num;
        let double = Val::Double;
        match &spec.kind {
            RangeKind::Count => out.push((rt, Val::Long(self.n as i64))),
            RangeKind::First => {
                if let Some(first) = self.first {
                    out.push((rt, first.1));
                }
            }
            RangeKind::Last => {
                if let Some(last) = self.last {
                    out.push((aligned.unwrap_or(last.0), last.1));
                }
            }
            _ if num == 0 => {}
            RangeKind::Sum => out.push((rt, double(self.sum + self.comp))),
            RangeKind::Avg => out.push((rt, double((self.sum + self.comp) / num as f64))),
            RangeKind::Min => out.push((rt, double(self.min))),
            RangeKind::Max => out.push((rt, double(self.max))),
            RangeKind::Dev { ret, count } => {
                let sd = if num > 1 {
                    (self.m2 / (num - 1) as f64).max(0.0).sqrt()
                } else {
                    0.0
                };
                let v = match ret {
                    DevReturn::Value => sd,
                    DevReturn::PosSd => self.mean + sd * *count as f64,
                    DevReturn::NegSd => self.mean - sd * *count as f64,
                };
                out.push((rt, double(v)));
            }
            RangeKind::Percentile(p) => {
                self.values.sort_unstable_by(f64::total_cmp);
                out.push((rt, double(percentile(&self.values, *p))));
            }
            RangeKind::LeastSquares => {
                let Some(first) = self.first else { return };
                match num {
                    1 => out.push(first),
                    2 => {
                        out.push(first);
                        if let Some(s) = self.second {
                            out.push(s);
                        }
                    }
                    _ => {
                        let n = num as f64;
                        let [sx, sy, sxx, sxy] = self.lsq;
                        let vxx = sxx - sx * sx / n;
                        let slope = if vxx > 0.0 { (sxy - sx * sy / n) / vxx } else { 0.0 };
                        let intercept = (sy - slope * sx) / n;
                        let predict = |t: i64| intercept + slope * (t as i128 - self.lsq_x0 as i128) as f64;
                        let last = self.last.unwrap_or(first);
                        out.push((first.0, double(predict(first.0))));
                        out.push((last.0, double(predict(last.0))));
                    }
                }
            }
            RangeKind::Gaps => {}
        }
    }
}

/// KairosDB's percentile of sorted `values`: linear interpolation at `p·(n+1)`.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let pos = p * (values.len() as f64 + 1.0);
    if pos < 1.0 {
        return values[0];
    }
    if pos >= values.len() as f64 {
        return values[values.len() - 1];
    }
    let lower = values[pos as usize - 1];
    let upper = values[pos as usize];
    lower + (pos - pos.floor()) * (upper - lower)
}

/// A range aggregator as a stream stage: the stream's ranges come one after another.
pub struct RangeStage {
    spec: RangeSpec,
    ranges: Ranges,
    desc: bool,
    current: Option<i64>,
    acc: RangeAcc,
}

impl RangeStage {
    pub fn new(spec: &RangeSpec, desc: bool) -> RangeStage {
        RangeStage {
            ranges: Ranges::new(spec),
            spec: spec.clone(),
            desc,
            current: None,
            acc: RangeAcc::default(),
        }
    }

    fn flush(&mut self, out: &mut Vec<Pt>) {
        if let Some(idx) = self.current.take() {
            let bounds = self.ranges.bounds(idx);
            self.acc.emit(&self.spec, self.desc, bounds, out);
            self.acc.clear();
        }
    }
}

impl Stage for RangeStage {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        let idx = self.ranges.index(p.0);
        if self.current != Some(idx) {
            self.flush(out);
            self.current = Some(idx);
        }
        self.acc.add(&self.spec.kind, self.desc, p);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        self.flush(out);
        Ok(())
    }
}

/// `gaps`: the points, plus a null at the start of every empty range from the query
/// start (or the first point, with `trim`) up to the query end or now, whichever is
/// first. Descending streams are marked as ascending ones and handed on reversed.
pub struct GapsStage {
    ranges: Ranges,
    next_start: i64,
    started: bool,
    trim: bool,
    end: i64,
    /// The current range's end and whether a point fell into it.
    range: Option<(i64, bool, i64)>,
    desc: bool,
    held: Vec<Pt>,
    produced: usize,
    max_points: usize,
}

impl GapsStage {
    pub fn new(spec: &RangeSpec, ctx: &GroupContext<'_>) -> GapsStage {
        GapsStage {
            ranges: Ranges::new(spec),
            next_start: spec.start_time,
            started: false,
            trim: spec.trim,
            end: spec.end_time.min(ctx.now),
            range: None,
            desc: ctx.desc,
            held: Vec::new(),
            produced: 0,
            max_points: ctx.max_points,
        }
    }

    fn emit(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        self.produced += 1;
        if self.produced > self.max_points {
            return Err(ChainError(format!(
                "gaps would produce more than {} points; use a coarser sampling or a shorter range \
                 (limit: kairosd.query.max_points)",
                self.max_points
            )));
        }
        out.push(p);
        Ok(())
    }

    /// Opens the range after the current one (or the first), starting at `from`.
    fn open(&mut self, from: i64) {
        let idx = self.ranges.index(from);
        let (start, end) = self.ranges.bounds(idx);
        self.range = Some((end, false, start));
        self.next_start = end;
    }

    /// Closes the current range: a null at its start if it held no point.
    fn close(&mut self, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        if let Some((_, seen, start)) = self.range.take() {
            if !seen {
                self.emit((start, Val::Null), out)?;
            }
        }
        Ok(())
    }

    fn push_asc(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        if !self.started {
            self.started = true;
            let from = if self.trim { p.0 } else { self.next_start };
            self.open(from);
        }
        while let Some((end, _, _)) = self.range {
            if p.0 < end {
                break;
            }
            self.close(out)?;
            let from = self.next_start;
            self.open(from);
            if self.next_start <= end {
                break; // at the end of time: the calendar cannot step further
            }
        }
        if let Some(r) = self.range.as_mut() {
            r.1 = true;
        }
        self.emit(p, out)
    }

    fn finish_asc(&mut self, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        if !self.started {
            if self.trim || self.next_start > self.end {
                return Ok(());
            }
            self.started = true;
            let from = self.next_start;
            self.open(from);
        }
        self.close(out)?;
        while self.next_start <= self.end {
            let from = self.next_start;
            self.open(from);
            self.close(out)?;
            if self.next_start <= from {
                break;
            }
        }
        Ok(())
    }
}

impl Stage for GapsStage {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        if self.desc {
            self.held.push(p);
            return Ok(());
        }
        self.push_asc(p, out)
    }

    fn finish(&mut self, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        if !self.desc {
            return self.finish_asc(out);
        }
        let held = std::mem::take(&mut self.held);
        let mut asc = Vec::with_capacity(held.len());
        for p in held.into_iter().rev() {
            self.push_asc(p, &mut asc)?;
        }
        self.finish_asc(&mut asc)?;
        out.extend(asc.into_iter().rev());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::aggregators::{run_chain, AggSpec};
    use crate::query::time::Unit;

    pub fn spec(kind: RangeKind, value: i64, unit: Unit) -> RangeSpec {
        RangeSpec {
            kind,
            sampling: Sampling { value, unit },
            align_sampling: false,
            align_start_time: false,
            align_end_time: false,
            start_time: 0,
            end_time: i64::MAX,
            tz: Tz::Utc,
            trim: false,
        }
    }

    fn longs(points: &[(i64, i64)]) -> Vec<Pt> {
        points.iter().map(|&(t, v)| (t, Val::Long(v))).collect()
    }

    fn run(s: RangeSpec, points: &[Pt]) -> Vec<Pt> {
        run_chain(&[AggSpec::Range(s)], false, points).unwrap()
    }

    #[test]
    fn kairosdb_percentile_interpolation() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 5.5);
        assert_eq!(percentile(&v, 0.9), 9.9);
        assert_eq!(percentile(&v, 0.05), 1.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(percentile(&[7.0], 0.5), 7.0);
    }

    #[test]
    fn sample_standard_deviation_of_one_to_ten() {
        let pts = longs(&(1..=10).map(|i| (i, i)).collect::<Vec<_>>());
        let out = run(
            spec(
                RangeKind::Dev {
                    ret: DevReturn::Value,
                    count: 1,
                },
                1,
                Unit::Hours,
            ),
            &pts,
        );
        let Val::Double(d) = out[0].1 else { panic!() };
        assert!((d - 3.0276503540974917).abs() < 1e-12, "{d}");
        assert_eq!(out[0].0, 1);
    }

    #[test]
    fn sampling_that_does_not_divide_the_range() {
        // 7 ms ranges from 0: [0,7) [7,14) [14,21); stamps are each range's first point.
        let pts = longs(&[(1, 1), (6, 2), (7, 3), (13, 4), (20, 5)]);
        let out = run(spec(RangeKind::Sum, 7, Unit::Milliseconds), &pts);
        assert_eq!(
            out,
            vec![(1, Val::Double(3.0)), (7, Val::Double(7.0)), (20, Val::Double(5.0))]
        );
        let mut s = spec(RangeKind::Count, 7, Unit::Milliseconds);
        s.align_end_time = true;
        let out = run(s, &pts);
        assert_eq!(out, vec![(7, Val::Long(2)), (14, Val::Long(2)), (21, Val::Long(1))]);
    }

    #[test]
    fn empty_ranges_produce_nothing_and_gaps_marks_them() {
        let pts = longs(&[(0, 1), (25, 2)]);
        let out = run(spec(RangeKind::Max, 10, Unit::Milliseconds), &pts);
        assert_eq!(out, vec![(0, Val::Double(1.0)), (25, Val::Double(2.0))]);
        let mut g = spec(RangeKind::Gaps, 10, Unit::Milliseconds);
        g.end_time = 45;
        let out = run(g, &pts);
        assert_eq!(
            out,
            vec![
                (0, Val::Long(1)),
                (10, Val::Null),
                (25, Val::Long(2)),
                (30, Val::Null),
                (40, Val::Null)
            ]
        );
    }

    #[test]
    fn first_last_keep_type_and_least_squares_fits_a_line() {
        let pts = vec![(5, Val::Long(9)), (6, Val::Double(1.5)), (8, Val::Long(4))];
        assert_eq!(
            run(spec(RangeKind::First, 1, Unit::Hours), &pts),
            vec![(5, Val::Long(9))]
        );
        assert_eq!(
            run(spec(RangeKind::Last, 1, Unit::Hours), &pts),
            vec![(8, Val::Long(4))]
        );
        let line = longs(&[(0, 1), (10, 3), (20, 5), (30, 7)]);
        assert_eq!(
            run(spec(RangeKind::LeastSquares, 1, Unit::Hours), &line),
            vec![(0, Val::Double(1.0)), (30, Val::Double(7.0))]
        );
        let two = longs(&[(0, 1), (10, 3)]);
        assert_eq!(run(spec(RangeKind::LeastSquares, 1, Unit::Hours), &two), two);
    }

    #[test]
    fn month_ranges_in_a_non_utc_zone() {
        // Kabul is UTC+4:30: local month starts fall at 19:30 UTC of the day before.
        let tz = Tz::parse("Asia/Kabul").unwrap();
        let local = |y, m, d, h: i64| crate::query::time::days_from_civil(y, m, d) * 86_400_000 + h * 3_600_000;
        let utc = |y, m, d, h| tz.from_local(local(y, m, d, h));
        let mut s = spec(RangeKind::Count, 1, Unit::Months);
        s.tz = tz.clone();
        s.align_sampling = true;
        s.align_start_time = true;
        s.start_time = utc(2024, 1, 10, 0);
        // Jan 31 23:00 local is Jan 31 18:30 UTC (January); Feb 1 01:00 local is Jan 31 20:30 UTC.
        let pts = longs(&[
            (utc(2024, 1, 31, 23), 1),
            (utc(2024, 2, 1, 1), 1),
            (utc(2024, 2, 29, 23), 1),
        ]);
        let out = run(s, &pts);
        assert_eq!(
            out,
            vec![(utc(2024, 1, 1, 0), Val::Long(1)), (utc(2024, 2, 1, 0), Val::Long(2))]
        );
        assert_eq!(utc(2024, 2, 1, 0), local(2024, 1, 31, 19) + 1_800_000);
    }

    #[test]
    fn align_sampling_starts_hour_ranges_at_midnight() {
        let mut s = spec(RangeKind::Sum, 1, Unit::Hours);
        s.align_sampling = true;
        s.align_start_time = true;
        s.start_time = 90 * 60_000; // 01:30
        let pts = longs(&[(100 * 60_000, 1), (119 * 60_000, 1), (121 * 60_000, 5)]);
        let out = run(s, &pts);
        assert_eq!(out, vec![(3_600_000, Val::Double(2.0)), (7_200_000, Val::Double(5.0))]);
    }

    #[test]
    fn merged_accumulators_equal_one_pass() {
        let pts: Vec<Pt> = (0..40)
            .map(|i| (i * 7 % 40, Val::Double(((i * 13) % 17) as f64 - 3.5)))
            .collect();
        let kinds = [
            RangeKind::Sum,
            RangeKind::Avg,
            RangeKind::Min,
            RangeKind::Max,
            RangeKind::Count,
            RangeKind::Dev {
                ret: DevReturn::Value,
                count: 1,
            },
            RangeKind::First,
            RangeKind::Last,
            RangeKind::LeastSquares,
            RangeKind::Percentile(0.3),
        ];
        for kind in kinds {
            for split in [0, 1, 17, 39, 40] {
                let s = spec(kind.clone(), 1, Unit::Hours);
                let (mut one, mut a, mut b) = (RangeAcc::default(), RangeAcc::default(), RangeAcc::default());
                for (i, &p) in pts.iter().enumerate() {
                    one.add(&kind, false, p);
                    if i < split {
                        a.add(&kind, false, p)
                    } else {
                        b.add(&kind, false, p)
                    }
                }
                a.merge(&kind, false, &b);
                let (mut x, mut y) = (Vec::new(), Vec::new());
                one.emit(&s, false, (0, 1 << 40), &mut x);
                a.emit(&s, false, (0, 1 << 40), &mut y);
                assert_eq!(x.len(), y.len(), "{kind:?}");
                for (p, q) in x.iter().zip(&y) {
                    assert_eq!(p.0, q.0, "{kind:?} split {split}");
                    let (p, q) = (p.1.as_f64().unwrap(), q.1.as_f64().unwrap());
                    assert!((p - q).abs() < 1e-9, "{kind:?} split {split}: {p} vs {q}");
                }
            }
        }
    }

    #[test]
    fn descending_streams_keep_their_ranges() {
        let pts = longs(&[(25, 2), (21, 1), (5, 1)]);
        let out = run_chain(
            &[AggSpec::Range(spec(RangeKind::Sum, 10, Unit::Milliseconds))],
            true,
            &pts,
        )
        .unwrap();
        assert_eq!(out, vec![(25, Val::Double(3.0)), (5, Val::Double(1.0))]);
    }
}

#[cfg(test)]
pub mod tests_support {
    use super::*;
    use crate::query::time::Unit;

    /// sum with 1 s ranges from 0, unaligned.
    pub fn spec_sum_1s() -> RangeSpec {
        RangeSpec {
            kind: RangeKind::Sum,
            sampling: Sampling {
                value: 1,
                unit: Unit::Seconds,
            },
            align_sampling: false,
            align_start_time: false,
            align_end_time: false,
            start_time: 0,
            end_time: i64::MAX,
            tz: Tz::Utc,
            trim: false,
        }
    }
}
