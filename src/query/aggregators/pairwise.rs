//! Aggregators whose every output comes from two neighbouring points: rate, sampler,
//! diff. A group of n points gives n - 1 outputs, stamped at the later point.

use super::{ChainError, Pt, Stage, Val};
use crate::query::props::Sampling;
use crate::query::tz::{Calendar, Tz};

/// `rate`: (v1 − v0) / (t1 − t0) × unit; `sampler`: v1 / (t1 − t0) × unit, where the
/// unit's length is measured from t0 in the time zone (a day may be 23 hours).
pub struct Rate {
    cal: Calendar,
    value: i64,
    sampler: bool,
    prev: Option<(i64, f64)>,
}

impl Rate {
    pub fn new(sampling: Sampling, tz: Tz, sampler: bool) -> Rate {
        Rate {
            cal: Calendar::new(sampling.unit, tz),
            value: sampling.value,
            sampler,
            prev: None,
        }
    }
}

impl Stage for Rate {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        let Some(x1) = p.1.as_f64() else { return Ok(()) };
        let t1 = p.0;
        if let Some((t0, x0)) = self.prev {
            if t1 == t0 {
                let name = if self.sampler { "sampler" } else { "rate" };
                return Err(ChainError(format!(
                    "The {name} aggregator cannot compute rate for data points with the same time stamp.  \
                     You must precede {name} with another aggregator."
                )));
            }
            let unit = self.cal.duration(t0, self.value) as f64;
            let dt = (t1 as i128 - t0 as i128) as f64;
            let v = if self.sampler {
                x1 / dt * unit
            } else {
                (x1 - x0) / dt * unit
            };
            out.push((t1, Val::Double(v)));
        }
        self.prev = Some((t1, x1));
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Pt>) -> Result<(), ChainError> {
        Ok(())
    }
}

/// `diff`: v1 − v0 at t1.
#[derive(Default)]
pub struct Diff {
    prev: Option<f64>,
}

impl Stage for Diff {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        let Some(x1) = p.1.as_f64() else { return Ok(()) };
        if let Some(x0) = self.prev {
            out.push((p.0, Val::Double(x1 - x0)));
        }
        self.prev = Some(x1);
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Pt>) -> Result<(), ChainError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::query::aggregators::{run_chain, AggSpec, Val};
    use crate::query::props::Sampling;
    use crate::query::time::Unit;
    use crate::query::tz::Tz;

    fn rate(unit: Unit) -> AggSpec {
        AggSpec::Rate {
            sampling: Sampling { value: 1, unit },
            tz: Tz::Utc,
        }
    }

    #[test]
    fn rate_per_second_stamped_at_the_later_point() {
        let pts = vec![(0, Val::Long(0)), (2000, Val::Long(10)), (3000, Val::Double(10.5))];
        let out = run_chain(&[rate(Unit::Seconds)], false, &pts).unwrap();
        assert_eq!(out, vec![(2000, Val::Double(5.0)), (3000, Val::Double(0.5))]);
        assert!(run_chain(&[rate(Unit::Seconds)], false, &pts[..1]).unwrap().is_empty());
    }

    #[test]
    fn rate_refuses_duplicate_timestamps() {
        let pts = vec![(0, Val::Long(0)), (1000, Val::Long(1)), (1000, Val::Long(2))];
        let err = run_chain(&[rate(Unit::Seconds)], false, &pts).unwrap_err();
        assert!(
            err.0
                .contains("cannot compute rate for data points with the same time stamp"),
            "{err}"
        );
        // Preceded by a range aggregator the duplicates are folded first, as KairosDB advises.
        let sum = AggSpec::Range(crate::query::aggregators::range::tests_support::spec_sum_1s());
        let out = run_chain(&[sum, rate(Unit::Seconds)], false, &pts).unwrap();
        assert_eq!(out, vec![(1000, Val::Double(3.0))]);
    }

    #[test]
    fn rate_over_a_day_of_23_hours() {
        let tz = Tz::parse("Europe/Berlin").unwrap();
        let d0 = tz.from_local(crate::query::time::days_from_civil(2024, 3, 31) * 86_400_000);
        let pts = vec![(d0, Val::Long(0)), (d0 + 3_600_000, Val::Long(1))];
        let spec = AggSpec::Rate {
            sampling: Sampling {
                value: 1,
                unit: Unit::Days,
            },
            tz,
        };
        let out = run_chain(&[spec], false, &pts).unwrap();
        assert_eq!(out, vec![(d0 + 3_600_000, Val::Double(23.0))]);
    }

    #[test]
    fn sampler_and_diff() {
        let pts = vec![(0, Val::Long(4)), (500, Val::Long(6)), (1500, Val::Long(3))];
        let sampler = AggSpec::Sampler {
            sampling: Sampling {
                value: 1,
                unit: Unit::Seconds,
            },
            tz: Tz::Utc,
        };
        assert_eq!(
            run_chain(&[sampler], false, &pts).unwrap(),
            vec![(500, Val::Double(12.0)), (1500, Val::Double(3.0))]
        );
        assert_eq!(
            run_chain(&[AggSpec::Diff], false, &pts).unwrap(),
            vec![(500, Val::Double(2.0)), (1500, Val::Double(-3.0))]
        );
    }
}
