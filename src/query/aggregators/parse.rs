//! Aggregator JSON → [`AggSpec`], property by property as KairosDB's QueryParser sets
//! them (an unknown property is refused with its "no matching setter" text), then the
//! same bean validations (`m_divisor may not be zero`, `percentile may not be zero`).

use serde_json::Value as Json;

use super::range::{DevReturn, RangeKind, RangeSpec};
use super::save_as::SaveAsSpec;
use super::transform::{FilterOp, FilterSpec, TrimWhich};
use super::AggSpec;
use crate::query::props::{self, Problem, Sampling};
use crate::query::time::Unit;
use crate::query::tz::Tz;

/// What an aggregator inherits from its query.
pub struct QueryDefaults<'a> {
    pub start: i64,
    pub end: i64,
    pub tz: &'a Tz,
}

const PKG: &str = "org.kairosdb.core.aggregator";

/// The names KairosDB registers, with the class its error texts name.
fn class_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "avg" => "AvgAggregator",
        "sum" => "SumAggregator",
        "min" => "MinAggregator",
        "max" => "MaxAggregator",
        "count" => "CountAggregator",
        "dev" => "StdAggregator",
        "first" => "FirstAggregator",
        "last" => "LastAggregator",
        "least_squares" => "LeastSquaresAggregator",
        "percentile" => "PercentileAggregator",
        "gaps" => "DataGapsMarkingAggregator",
        "rate" => "RateAggregator",
        "sampler" => "SamplerAggregator",
        "diff" => "DiffAggregator",
        "div" => "DivideAggregator",
        "scale" => "ScaleAggregator",
        "trim" => "TrimAggregator",
        "filter" => "FilterAggregator",
        "save_as" => "SaveAsAggregator",
        "sma" => "SmaAggregator",
        _ => return None,
    })
}

/// One error message of a 400.
type Msg = String;

/// Parses aggregator `j` of a metric query whose context is `metric_ctx`
/// (`query.metric[i]`).
pub fn aggregator(json: &Json, metric_ctx: &str, j: usize, q: &QueryDefaults<'_>) -> Result<AggSpec, Msg> {
    let list_ctx = format!("{metric_ctx}.aggregators[{j}]");
    let Json::Object(obj) = json else {
        return Err(format!("{list_ctx} must be an object with a name"));
    };
    let name = match obj.get("name") {
        Some(Json::String(s)) if !s.is_empty() => s.as_str(),
        Some(Json::Null) | None => return Err(format!("{list_ctx} must have a name")),
        Some(Json::String(_)) => return Err(format!("{list_ctx} must have a name")),
        Some(other) => return Err(format!("{list_ctx}.{other} invalid aggregators name")),
    };
    let Some(class) = class_of(name) else {
        return Err(format!("{list_ctx}.{name} invalid aggregators name"));
    };
    let ctx = list_ctx.as_str();
    let no_setter = |prop: &str| props::no_setter(prop, name, &format!("{PKG}.{class}"));
    let at = |p: Problem| p.at(ctx);
    let props = obj.iter().filter(|(k, _)| k.as_str() != "name");

    let range_kind = match name {
        "avg" => Some(RangeKind::Avg),
        "sum" => Some(RangeKind::Sum),
        "min" => Some(RangeKind::Min),
        "max" => Some(RangeKind::Max),
        "count" => Some(RangeKind::Count),
        "dev" => Some(RangeKind::Dev {
            ret: DevReturn::Value,
            count: 1,
        }),
        "first" => Some(RangeKind::First),
        "last" => Some(RangeKind::Last),
        "least_squares" => Some(RangeKind::LeastSquares),
        "percentile" => Some(RangeKind::Percentile(0.0)),
        "gaps" => Some(RangeKind::Gaps),
        _ => None,
    };
    if let Some(mut kind) = range_kind {
        let mut spec = RangeSpec {
            kind: RangeKind::Count,
            sampling: Sampling {
                value: 1,
                unit: Unit::Milliseconds,
            },
            align_sampling: true,
            align_start_time: false,
            align_end_time: false,
            start_time: q.start,
            end_time: q.end,
            tz: q.tz.clone(),
            trim: false,
        };
        let mut percentile_set = false;
        for (k, v) in props {
            match (k.as_str(), &mut kind) {
                ("sampling", _) => spec.sampling = props::sampling(v, "sampling").map_err(at)?,
                ("align_sampling", _) => spec.align_sampling = props::boolean(v, k).map_err(at)?,
                ("align_start_time", _) => spec.align_start_time = props::boolean(v, k).map_err(at)?,
                ("align_end_time", _) => spec.align_end_time = props::boolean(v, k).map_err(at)?,
                ("start_time", _) => spec.start_time = props::integer(v, k).map_err(at)?,
                ("end_time", _) => spec.end_time = props::integer(v, k).map_err(at)?,
                ("time_zone", _) => spec.tz = props::time_zone(v).map_err(at)?,
                ("trim", _) => spec.trim = props::boolean(v, k).map_err(at)?,
                ("return_type", RangeKind::Dev { ret, .. }) => {
                    *ret = match props::string(v).to_ascii_lowercase().as_str() {
                        "value" => DevReturn::Value,
                        "pos_sd" => DevReturn::PosSd,
                        "neg_sd" => DevReturn::NegSd,
                        other => {
                            return Err(format!(
                                "{ctx}.{other} is not a valid return type, must be 'value', 'pos_sd' or 'neg_sd'."
                            ))
                        }
                    }
                }
                ("dev_count", RangeKind::Dev { count, .. }) => *count = props::integer(v, k).map_err(at)?,
                ("percentile", RangeKind::Percentile(p)) => {
                    *p = props::double(v, k).map_err(at)?;
                    percentile_set = true;
                }
                _ => return Err(no_setter(k)),
            }
        }
        if let RangeKind::Percentile(p) = kind {
            if !percentile_set || p == 0.0 {
                return Err(format!("{ctx}.percentile may not be zero"));
            }
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{ctx}.percentile {p} is not in [0..1]"));
            }
        }
        if spec.sampling.value == 0 {
            return Err(format!("{ctx}.sampling.value must be greater than 0"));
        }
        spec.kind = kind;
        return Ok(AggSpec::Range(spec));
    }

    match name {
        "rate" | "sampler" => {
            let mut sampling = Sampling {
                value: 1,
                unit: Unit::Milliseconds,
            };
            let mut tz = q.tz.clone();
            for (k, v) in props {
                match k.as_str() {
                    "unit" => {
                        sampling = Sampling {
                            value: 1,
                            unit: props::unit(v).map_err(at)?,
                        }
                    }
                    "sampling" if name == "rate" => sampling = props::sampling(v, "sampling").map_err(at)?,
                    "time_zone" => tz = props::time_zone(v).map_err(at)?,
                    _ => return Err(no_setter(k)),
                }
            }
            Ok(if name == "rate" {
                AggSpec::Rate { sampling, tz }
            } else {
                AggSpec::Sampler { sampling, tz }
            })
        }
        "diff" => match props.map(|(k, _)| k).next() {
            Some(k) => Err(no_setter(k)),
            None => Ok(AggSpec::Diff),
        },
        "div" | "scale" => {
            let prop = if name == "div" { "divisor" } else { "factor" };
            let mut value = 0.0;
            for (k, v) in props {
                if k != prop {
                    return Err(no_setter(k));
                }
                value = props::double(v, k).map_err(at)?;
            }
            if name == "div" {
                if value == 0.0 {
                    return Err(format!("{ctx}.m_divisor may not be zero"));
                }
                Ok(AggSpec::Div(value))
            } else {
                Ok(AggSpec::Scale(value))
            }
        }
        "trim" => {
            let mut which = None;
            for (k, v) in props {
                if k != "trim" {
                    return Err(no_setter(k));
                }
                which = Some(match props::string(v).to_ascii_lowercase().as_str() {
                    "first" => TrimWhich::First,
                    "last" => TrimWhich::Last,
                    "both" => TrimWhich::Both,
                    _ => {
                        return Err(format!(
                            "{ctx}.{} is not a valid trim type, must be 'first', 'last' or 'both'.",
                            props::string(v)
                        ))
                    }
                });
            }
            which
                .map(AggSpec::Trim)
                .ok_or_else(|| format!("{ctx}.trim may not be null"))
        }
        "filter" => {
            let (mut op, mut threshold) = (None, 0.0);
            for (k, v) in props {
                match k.as_str() {
                    "filter_op" => {
                        op = Some(match props::string(v).to_ascii_lowercase().as_str() {
                            "lte" => FilterOp::Lte,
                            "lt" => FilterOp::Lt,
                            "gte" => FilterOp::Gte,
                            "gt" => FilterOp::Gt,
                            "equal" => FilterOp::Equal,
                            "ne" => FilterOp::Ne,
                            _ => {
                                // KairosDB's shared enum text, "trim type" and all.
                                return Err(format!(
                                    "{ctx}.{} is not a valid trim type, must be 'lte', 'lt', 'gte', 'gt', 'equal' or 'ne'.",
                                    props::string(v)
                                ));
                            }
                        })
                    }
                    "threshold" => threshold = props::double(v, k).map_err(at)?,
                    _ => return Err(no_setter(k)),
                }
            }
            let op = op.ok_or_else(|| format!("{ctx}.filter_op may not be null"))?;
            Ok(AggSpec::Filter(FilterSpec { op, threshold }))
        }
        "save_as" => {
            let mut spec = SaveAsSpec {
                metric_name: String::new(),
                tags: Vec::new(),
                ttl: 0,
                add_saved_from: true,
            };
            for (k, v) in props {
                match k.as_str() {
                    "metric_name" => spec.metric_name = props::string(v),
                    "add_saved_from" => spec.add_saved_from = props::boolean(v, k).map_err(at)?,
                    "ttl" => spec.ttl = props::integer(v, k).map_err(at)?,
                    "tags" => match v {
                        Json::Object(t) => {
                            for (tk, tv) in t {
                                let tv = props::string(tv);
                                if tk.is_empty() || tv.is_empty() {
                                    return Err(format!("{ctx}.tags may not contain an empty name or value"));
                                }
                                spec.tags.push((tk.clone(), tv));
                            }
                        }
                        Json::Null => {}
                        _ => return Err(format!("{ctx}.tags must be an object of tag name to value")),
                    },
                    _ => return Err(no_setter(k)),
                }
            }
            if spec.metric_name.is_empty() {
                return Err(format!("{ctx}.metric_name may not be empty"));
            }
            Ok(AggSpec::SaveAs(spec))
        }
        "sma" => {
            let mut size = 0;
            for (k, v) in props {
                if k != "size" {
                    return Err(no_setter(k));
                }
                size = props::integer(v, k).map_err(at)?;
            }
            if size < 1 {
                return Err(format!("{ctx}.size must be greater than or equal to 1"));
            }
            Ok(AggSpec::Sma(size.min(1 << 20) as usize))
        }
        _ => Err(format!("{ctx}.{name} invalid aggregators name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(j: Json) -> Result<AggSpec, String> {
        aggregator(
            &j,
            "query.metric[0]",
            0,
            &QueryDefaults {
                start: 1000,
                end: 2000,
                tz: &Tz::Utc,
            },
        )
    }

    #[test]
    fn kairosdb_texts() {
        let e = |j| parse(j).unwrap_err();
        assert_eq!(e(json!({})), "query.metric[0].aggregators[0] must have a name");
        assert_eq!(
            e(json!({"name": ""})),
            "query.metric[0].aggregators[0] must have a name"
        );
        assert_eq!(
            e(json!({"name": "bogus"})),
            "query.metric[0].aggregators[0].bogus invalid aggregators name"
        );
        assert_eq!(
            e(json!({"name": "div"})),
            "query.metric[0].aggregators[0].m_divisor may not be zero"
        );
        assert_eq!(
            e(json!({"name": "div", "divisor": 0})),
            "query.metric[0].aggregators[0].m_divisor may not be zero"
        );
        assert_eq!(
            e(json!({"name": "percentile", "sampling": {"value": 1, "unit": "hours"}})),
            "query.metric[0].aggregators[0].percentile may not be zero"
        );
        assert_eq!(
            e(json!({"name": "percentile", "percentile": "0.7.1"})),
            "query.metric[0].aggregators[0].percentile multiple points"
        );
        assert_eq!(
            e(json!({"name": "sum", "bogus": 1})),
            "Property 'bogus' was specified for object 'sum' but no matching setter was found on \
             'class org.kairosdb.core.aggregator.SumAggregator'"
        );
        assert_eq!(
            e(json!({"name": "sum", "time_zone": "bogus"}))
                .split(", must")
                .next()
                .unwrap(),
            "query.metric[0].aggregators[0].bogus is not a valid time zone"
        );
        assert_eq!(
            e(json!({"name": "trim", "trim": "middle"})),
            "query.metric[0].aggregators[0].middle is not a valid trim type, must be 'first', 'last' or 'both'."
        );
        assert!(e(json!({"name": "percentile", "percentile": 1.5})).contains("is not in [0..1]"));
    }

    #[test]
    fn defaults_and_strings() {
        let AggSpec::Range(r) = parse(json!({"name": "avg", "sampling": {"value": "10", "unit": "MINUTES"}})).unwrap()
        else {
            panic!()
        };
        assert!(r.align_sampling && !r.align_start_time);
        assert_eq!(
            (r.sampling.value, r.sampling.unit, r.start_time),
            (10, Unit::Minutes, 1000)
        );
        let AggSpec::Rate { sampling, .. } = parse(json!({"name": "rate", "unit": "seconds"})).unwrap() else {
            panic!()
        };
        assert_eq!((sampling.value, sampling.unit), (1, Unit::Seconds));
        assert!(matches!(parse(json!({"name": "div", "divisor": "2"})).unwrap(), AggSpec::Div(d) if d == 2.0));
        assert!(matches!(
            parse(json!({"name": "sma", "size": 5})).unwrap(),
            AggSpec::Sma(5)
        ));
        assert!(parse(json!({"name": "sampler", "sampling": {"value": 1, "unit": "hours"}})).is_err());
    }
}
