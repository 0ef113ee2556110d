//! The aggregator chain (spec 4.3): each aggregator is a push stage that turns the
//! points it is given into the points it passes on, so a group's points stream through
//! the whole chain and only what a stage must hold (a range's accumulator, sma's window,
//! a percentile's values) stays in memory.
//!
//! - [`range`]: avg, sum, min, max, count, dev, first, last, least_squares, percentile
//!   and gaps, over calendar-aware sampling ranges.
//! - [`pairwise`]: rate, sampler, diff (each output from two neighbouring points).
//! - [`transform`]: scale, div, trim, filter, sma.
//! - [`save_as`]: writes the stream back as a new metric and passes it on.
//! - [`parse`]: the JSON properties of each, with KairosDB's validation texts.

pub mod pairwise;
pub mod parse;
pub mod range;
pub mod save_as;
pub mod transform;

use kairos_protocols::Value;

use super::props::Sampling;
use super::tz::Tz;
pub use range::{RangeKind, RangeSpec};

/// A value in the chain: stored points are longs or doubles; `gaps` adds nulls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    Long(i64),
    Double(f64),
    Null,
}

impl Val {
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Val::Long(l) => Some(l as f64),
            Val::Double(d) => Some(d),
            Val::Null => None,
        }
    }
}

impl From<Value> for Val {
    fn from(v: Value) -> Val {
        match v {
            Value::Long(l) => Val::Long(l),
            Value::Double(d) => Val::Double(d),
        }
    }
}

/// One point in the chain: timestamp (ms) and value.
pub type Pt = (i64, Val);

/// A query the chain cannot answer; a 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChainError(pub String);

/// One aggregator of a metric query, parsed and validated.
#[derive(Debug, Clone)]
pub enum AggSpec {
    Range(RangeSpec),
    Rate { sampling: Sampling, tz: Tz },
    Sampler { sampling: Sampling, tz: Tz },
    Diff,
    Div(f64),
    Scale(f64),
    Trim(transform::TrimWhich),
    Filter(transform::FilterSpec),
    SaveAs(save_as::SaveAsSpec),
    Sma(usize),
}

/// A stage of the chain. `push` gets the points in stream order (ascending time, or
/// descending for `order: desc`); `finish` is called once after the last point.
pub trait Stage: Send {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError>;
    fn finish(&mut self, out: &mut Vec<Pt>) -> Result<(), ChainError>;
    /// Points a `save_as` stage collected, with the series to write them to.
    fn take_saved(&mut self) -> Option<save_as::Saved> {
        None
    }
}

/// What a group's chain knows about the group it runs for.
pub struct GroupContext<'a> {
    pub metric: &'a str,
    /// Union of the group's tag values.
    pub tags: &'a [(String, Vec<String>)],
    /// Tags named by the query's tag group-by (kept by save_as when single-valued).
    pub grouped_tags: &'a [String],
    pub desc: bool,
    /// Most points a stage may produce (gaps over a fine sampling could make billions).
    pub max_points: usize,
    pub now: i64,
}

/// The stages of one group, in query order.
pub struct Chain {
    stages: Vec<Box<dyn Stage>>,
    bufs: Vec<Vec<Pt>>,
}

impl Chain {
    pub fn new(specs: &[AggSpec], ctx: &GroupContext<'_>) -> Chain {
        let stages: Vec<Box<dyn Stage>> = specs.iter().map(|s| build(s, ctx)).collect();
        let bufs = stages.iter().map(|_| Vec::new()).collect();
        Chain { stages, bufs }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs `p` through every stage; what comes out the end goes to `sink`.
    pub fn push(&mut self, p: Pt, sink: &mut Vec<Pt>) -> Result<(), ChainError> {
        self.feed(0, p, sink)
    }

    fn feed(&mut self, level: usize, p: Pt, sink: &mut Vec<Pt>) -> Result<(), ChainError> {
        if level == self.stages.len() {
            sink.push(p);
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.bufs[level]);
        let result = self.stages[level].push(p, &mut buf);
        let result = result.and_then(|()| {
            for q in buf.drain(..) {
                self.feed(level + 1, q, sink)?;
            }
            Ok(())
        });
        buf.clear();
        self.bufs[level] = buf;
        result
    }

    /// Flushes every stage in order, each one's last outputs running through the rest.
    pub fn finish(&mut self, sink: &mut Vec<Pt>) -> Result<(), ChainError> {
        for level in 0..self.stages.len() {
            let mut buf = std::mem::take(&mut self.bufs[level]);
            let result = self.stages[level].finish(&mut buf).and_then(|()| {
                for q in buf.drain(..) {
                    self.feed(level + 1, q, sink)?;
                }
                Ok(())
            });
            buf.clear();
            self.bufs[level] = buf;
            result?;
        }
        Ok(())
    }

    /// Everything `save_as` stages collected.
    pub fn take_saved(&mut self) -> Vec<save_as::Saved> {
        self.stages.iter_mut().filter_map(|s| s.take_saved()).collect()
    }
}

fn build(spec: &AggSpec, ctx: &GroupContext<'_>) -> Box<dyn Stage> {
    match spec {
        AggSpec::Range(r) if r.kind == RangeKind::Gaps => Box::new(range::GapsStage::new(r, ctx)),
        AggSpec::Range(r) => Box::new(range::RangeStage::new(r, ctx.desc)),
        AggSpec::Rate { sampling, tz } => Box::new(pairwise::Rate::new(*sampling, tz.clone(), false)),
        AggSpec::Sampler { sampling, tz } => Box::new(pairwise::Rate::new(*sampling, tz.clone(), true)),
        AggSpec::Diff => Box::new(pairwise::Diff::default()),
        AggSpec::Div(d) => Box::new(transform::Map::divide(*d)),
        AggSpec::Scale(f) => Box::new(transform::Map::scale(*f)),
        AggSpec::Trim(which) => Box::new(transform::Trim::new(*which)),
        AggSpec::Filter(f) => Box::new(transform::Filter::new(f.clone())),
        AggSpec::SaveAs(s) => Box::new(save_as::SaveAs::new(s, ctx)),
        AggSpec::Sma(n) => Box::new(transform::Sma::new(*n)),
    }
}

/// Runs `points` through a chain built from `specs` and returns what comes out (tests).
#[cfg(test)]
pub fn run_chain(specs: &[AggSpec], desc: bool, points: &[(i64, Val)]) -> Result<Vec<Pt>, ChainError> {
    let ctx = GroupContext {
        metric: "m",
        tags: &[],
        grouped_tags: &[],
        desc,
        max_points: 1 << 30,
        now: i64::MAX,
    };
    let mut chain = Chain::new(specs, &ctx);
    let mut out = Vec::new();
    for &p in points {
        chain.push(p, &mut out)?;
    }
    chain.finish(&mut out)?;
    Ok(out)
}
