//! Point-by-point aggregators: scale, div, trim, filter, sma.

use std::collections::VecDeque;

use super::{ChainError, Pt, Stage, Val};

/// `scale` (v × factor) and `div` (v / divisor); the result is a double.
pub struct Map {
    factor: f64,
    divide: bool,
}

impl Map {
    pub fn scale(factor: f64) -> Map {
        Map { factor, divide: false }
    }

    pub fn divide(divisor: f64) -> Map {
        Map {
            factor: divisor,
            divide: true,
        }
    }
}

impl Stage for Map {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        let v = match p.1.as_f64() {
            Some(x) if self.divide => Val::Double(x / self.factor),
            Some(x) => Val::Double(x * self.factor),
            None => p.1,
        };
        out.push((p.0, v));
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Pt>) -> Result<(), ChainError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimWhich {
    First,
    Last,
    Both,
}

/// `trim`: drops the first and/or the last point of the stream (the newest first
/// with `order: desc`, as in KairosDB).
pub struct Trim {
    which: TrimWhich,
    seen_first: bool,
    held: Option<Pt>,
}

impl Trim {
    pub fn new(which: TrimWhich) -> Trim {
        Trim {
            which,
            seen_first: false,
            held: None,
        }
    }
}

impl Stage for Trim {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        if !self.seen_first {
            self.seen_first = true;
            if self.which != TrimWhich::Last {
                return Ok(());
            }
        }
        if self.which == TrimWhich::First {
            out.push(p);
        } else if let Some(prev) = self.held.replace(p) {
            out.push(prev);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Pt>) -> Result<(), ChainError> {
        // The held point is the last one: trimmed.
        self.held = None;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Lte,
    Lt,
    Gte,
    Gt,
    Equal,
    Ne,
}

#[derive(Debug, Clone)]
pub struct FilterSpec {
    pub op: FilterOp,
    pub threshold: f64,
}

/// `filter`: removes the points for which `value <op> threshold` holds.
pub struct Filter {
    spec: FilterSpec,
}

impl Filter {
    pub fn new(spec: FilterSpec) -> Filter {
        Filter { spec }
    }
}

impl Stage for Filter {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        let Some(x) = p.1.as_f64() else {
            out.push(p);
            return Ok(());
        };
        // Java's Double.compareTo: a total order (NaN cannot be stored, so plain
        // comparisons agree with it here).
        let t = self.spec.threshold;
        let drop = match self.spec.op {
            FilterOp::Lte => x <= t,
            FilterOp::Lt => x < t,
            FilterOp::Gte => x >= t,
            FilterOp::Gt => x > t,
            FilterOp::Equal => x == t,
            FilterOp::Ne => x != t,
        };
        if !drop {
            out.push(p);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Pt>) -> Result<(), ChainError> {
        Ok(())
    }
}

/// `sma`: the mean of the last `size` values at each point from the `size`-th on
/// (KairosDB swallows the first size − 1 points).
pub struct Sma {
    size: usize,
    window: VecDeque<f64>,
    sum: f64,
}

impl Sma {
    pub fn new(size: usize) -> Sma {
        Sma {
            size: size.max(1),
            window: VecDeque::new(),
            sum: 0.0,
        }
    }
}

impl Stage for Sma {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        let Some(x) = p.1.as_f64() else { return Ok(()) };
        self.window.push_back(x);
        if self.window.len() > self.size {
            self.window.pop_front();
        }
        if self.window.len() < self.size {
            return Ok(());
        }
        // Summed afresh each time, as KairosDB does: no drift from a running sum.
        self.sum = self.window.iter().sum();
        out.push((p.0, Val::Double(self.sum / self.window.len() as f64)));
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Pt>) -> Result<(), ChainError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::aggregators::{run_chain, AggSpec};

    fn pts(vals: &[i64]) -> Vec<Pt> {
        vals.iter()
            .enumerate()
            .map(|(i, &v)| (i as i64, Val::Long(v)))
            .collect()
    }

    #[test]
    fn scale_div_trim() {
        let p = pts(&[1, 2, 3]);
        assert_eq!(
            run_chain(&[AggSpec::Scale(2.5)], false, &p).unwrap(),
            vec![(0, Val::Double(2.5)), (1, Val::Double(5.0)), (2, Val::Double(7.5))]
        );
        assert_eq!(
            run_chain(&[AggSpec::Div(4.0)], false, &p).unwrap()[1],
            (1, Val::Double(0.5))
        );
        assert_eq!(
            run_chain(&[AggSpec::Trim(TrimWhich::Both)], false, &p).unwrap(),
            vec![(1, Val::Long(2))]
        );
        assert_eq!(
            run_chain(&[AggSpec::Trim(TrimWhich::First)], false, &p).unwrap(),
            vec![(1, Val::Long(2)), (2, Val::Long(3))]
        );
        assert_eq!(
            run_chain(&[AggSpec::Trim(TrimWhich::Last)], false, &p).unwrap(),
            vec![(0, Val::Long(1)), (1, Val::Long(2))]
        );
        assert!(run_chain(&[AggSpec::Trim(TrimWhich::Both)], false, &p[..1])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn filter_removes_matches() {
        let p = pts(&[1, 5, 9]);
        let f = |op| AggSpec::Filter(FilterSpec { op, threshold: 5.0 });
        assert_eq!(
            run_chain(&[f(FilterOp::Gte)], false, &p).unwrap(),
            vec![(0, Val::Long(1))]
        );
        assert_eq!(run_chain(&[f(FilterOp::Equal)], false, &p).unwrap().len(), 2);
        assert_eq!(
            run_chain(&[f(FilterOp::Ne)], false, &p).unwrap(),
            vec![(1, Val::Long(5))]
        );
        assert_eq!(run_chain(&[f(FilterOp::Lt)], false, &p).unwrap().len(), 2);
    }

    #[test]
    fn sma_over_three() {
        let p = pts(&[3, 6, 9, 12]);
        assert_eq!(
            run_chain(&[AggSpec::Sma(3)], false, &p).unwrap(),
            vec![(2, Val::Double(6.0)), (3, Val::Double(9.0))]
        );
    }
}
