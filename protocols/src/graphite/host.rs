//! KairosDB's `HostTagParser`: the whole path must match `metric_pattern` and
//! `host_pattern`; the metric name is `metric_replacement` and the `host` tag is
//! `host_replacement`, with `$1`, `${name}` and `\` escapes as in Java's
//! `Matcher.replaceAll`. With the defaults, `servers.web01.cpu.load` becomes metric
//! `servers.cpu.load` with `host=web01`.

use regex::{CaptureLocations, Regex};

use crate::datapoint::{PointBatch, Value};

use super::path::{quoted, MapperConfigError, PathError, PathScratch};

pub const HOST_PATTERN_KEY: &str = "kairosdb.carbon.host_tag_parser.host_pattern";
pub const HOST_REPLACEMENT_KEY: &str = "kairosdb.carbon.host_tag_parser.host_replacement";
pub const METRIC_PATTERN_KEY: &str = "kairosdb.carbon.host_tag_parser.metric_pattern";
pub const METRIC_REPLACEMENT_KEY: &str = "kairosdb.carbon.host_tag_parser.metric_replacement";

/// The four settings, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTagConfig {
    pub host_pattern: String,
    pub host_replacement: String,
    pub metric_pattern: String,
    pub metric_replacement: String,
}

impl Default for HostTagConfig {
    /// KairosDB's defaults: the second dotted segment is the host.
    fn default() -> HostTagConfig {
        HostTagConfig {
            host_pattern: r"[^.]*\.([^.]*)\..*".into(),
            host_replacement: "$1".into(),
            metric_pattern: r"([^.]*)\.[^.]*\.(.*)".into(),
            metric_replacement: "$1.$2".into(),
        }
    }
}

#[derive(Debug)]
pub struct HostTags {
    metric: Regex,
    metric_replacement: Replacement,
    host: Regex,
    host_replacement: Replacement,
}

/// Compiles `pattern` so that it must match a whole path, as Java's `matches()`.
pub fn whole_match(pattern: &str, key: &'static str) -> Result<Regex, MapperConfigError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| MapperConfigError {
        key,
        reason: format!("not a valid regular expression: {e}"),
    })
}

impl HostTags {
    pub fn new(c: &HostTagConfig) -> Result<HostTags, MapperConfigError> {
        let metric = whole_match(&c.metric_pattern, METRIC_PATTERN_KEY)?;
        let host = whole_match(&c.host_pattern, HOST_PATTERN_KEY)?;
        let metric_replacement =
            Replacement::parse(&c.metric_replacement, &metric).map_err(|reason| MapperConfigError {
                key: METRIC_REPLACEMENT_KEY,
                reason,
            })?;
        let host_replacement = Replacement::parse(&c.host_replacement, &host).map_err(|reason| MapperConfigError {
            key: HOST_REPLACEMENT_KEY,
            reason,
        })?;
        Ok(HostTags {
            metric,
            metric_replacement,
            host,
            host_replacement,
        })
    }

    pub(crate) fn capture_locations(&self) -> Vec<CaptureLocations> {
        vec![self.metric.capture_locations(), self.host.capture_locations()]
    }

    pub(crate) fn push(
        &self,
        path: &str,
        timestamp: i64,
        value: Value,
        batch: &mut PointBatch,
        scratch: &mut PathScratch,
    ) -> Result<(), PathError> {
        let [metric_caps, host_caps] = &mut scratch.captures[..] else {
            unreachable!("scratch made by this mapper")
        };
        let text = &mut scratch.text;
        text.clear();
        if self.metric.captures_read(metric_caps, path).is_none() {
            return Err(PathError::NoMatch {
                path: quoted(path),
                key: METRIC_PATTERN_KEY,
            });
        }
        self.metric_replacement.expand(path, metric_caps, text);
        let name_end = text.len();
        if self.host.captures_read(host_caps, path).is_none() {
            return Err(PathError::NoMatch {
                path: quoted(path),
                key: HOST_PATTERN_KEY,
            });
        }
        self.host_replacement.expand(path, host_caps, text);
        let (name, host) = text.split_at(name_end);
        for (part, what) in [(name, "metric name"), (host, "host tag")] {
            if part.is_empty() {
                return Err(PathError::EmptyPart {
                    path: quoted(path),
                    what: what.into(),
                });
            }
        }
        batch.push_parts(name, [("host", host)], timestamp, value, 0);
        Ok(())
    }
}

/// A replacement string in Java's `Matcher.appendReplacement` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Group(usize),
}

impl Replacement {
    /// Parses `s` against `regex`'s groups: `$n` takes as many digits as still name a
    /// group (so `$12` is group 1 then `2` when there is no group 12), `${name}` a named
    /// group, `\x` the character `x`. A reference to a missing group is an error now,
    /// where Java would fail on every line.
    pub fn parse(s: &str, regex: &Regex) -> Result<Replacement, String> {
        let groups = regex.captures_len() - 1;
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(next) => literal.push(next),
                    None => return Err("a replacement may not end with '\\'".into()),
                },
                '$' => {
                    let group = if chars.peek() == Some(&'{') {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                        regex
                            .capture_names()
                            .position(|n| n == Some(name.as_str()))
                            .ok_or_else(|| format!("the pattern has no group named {name:?}"))?
                    } else {
                        let Some(first) = chars.peek().and_then(|c| c.to_digit(10)) else {
                            return Err(
                                "'$' must be followed by a group number or {name} (write \\$ for a dollar sign)".into(),
                            );
                        };
                        chars.next();
                        let mut n = first as usize;
                        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                            let longer = n * 10 + d as usize;
                            if longer > groups {
                                break;
                            }
                            n = longer;
                            chars.next();
                        }
                        if n > groups {
                            return Err(format!(
                                "${n} refers to a group the pattern does not have (it has {groups})"
                            ));
                        }
                        n
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Group(group));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Replacement { parts })
    }

    /// Appends the replacement for a match of `input` whose groups are in `caps`; a group
    /// that did not take part in the match is empty, as in Java.
    pub fn expand(&self, input: &str, caps: &CaptureLocations, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Group(i) => {
                    if let Some((start, end)) = caps.get(*i) {
                        out.push_str(&input[start..end]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataPoint;

    fn map(h: &HostTags, path: &str) -> Result<DataPoint, PathError> {
        let mut batch = PointBatch::new();
        let mut scratch = PathScratch {
            captures: h.capture_locations(),
            ..PathScratch::default()
        };
        h.push(path, 1000, Value::Long(1), &mut batch, &mut scratch)?;
        Ok(batch.to_points().remove(0))
    }

    #[test]
    fn kairosdb_defaults_take_the_second_segment_as_host() {
        let h = HostTags::new(&HostTagConfig::default()).unwrap();
        let p = map(&h, "servers.web01.cpu.load").unwrap();
        assert_eq!(p.metric, "servers.cpu.load");
        assert_eq!(p.tags, vec![("host".to_string(), "web01".to_string())]);
        let p = map(&h, "test.host_name.metric_name").unwrap();
        assert_eq!(
            (p.metric.as_str(), p.tags[0].1.as_str()),
            ("test.metric_name", "host_name")
        );
        let err = map(&h, "too.short").unwrap_err();
        assert!(err.to_string().contains(METRIC_PATTERN_KEY), "{err}");
        let err = map(&h, "a..b").unwrap_err();
        assert!(err.to_string().contains("empty host tag"), "{err}");
    }

    #[test]
    fn custom_patterns_and_java_replacements() {
        let c = HostTagConfig {
            host_pattern: r"(?P<h>[^.]+)\..*".into(),
            host_replacement: "${h}-x".into(),
            metric_pattern: r"[^.]+\.(.*)".into(),
            metric_replacement: r"pre_$1\$".into(),
        };
        let h = HostTags::new(&c).unwrap();
        let p = map(&h, "web7.disk.free").unwrap();
        assert_eq!(p.metric, "pre_disk.free$");
        assert_eq!(p.tags[0].1, "web7-x");
    }

    #[test]
    fn bad_settings_name_their_key() {
        let bad = |f: fn(&mut HostTagConfig)| {
            let mut c = HostTagConfig::default();
            f(&mut c);
            HostTags::new(&c).unwrap_err()
        };
        assert_eq!(bad(|c| c.host_pattern = "([".into()).key, HOST_PATTERN_KEY);
        assert_eq!(bad(|c| c.metric_pattern = "(?<=x)y".into()).key, METRIC_PATTERN_KEY);
        assert_eq!(bad(|c| c.metric_replacement = "$3".into()).key, METRIC_REPLACEMENT_KEY);
        assert_eq!(bad(|c| c.host_replacement = "${nope}".into()).key, HOST_REPLACEMENT_KEY);
        assert_eq!(bad(|c| c.host_replacement = "cost $".into()).key, HOST_REPLACEMENT_KEY);
    }

    #[test]
    fn dollar_digits_stop_at_the_last_group() {
        let re = Regex::new("(a)(b)").unwrap();
        let r = Replacement::parse("$12$2", &re).unwrap();
        assert_eq!(r.parts, vec![Part::Group(1), Part::Literal("2".into()), Part::Group(2)]);
    }
}
