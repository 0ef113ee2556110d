//! KairosDB's `TemplatesTagParser` (InfluxDB-style templates), from
//! `kairosdb.carbon.templates_tag_parser.templates`: a `;`-separated list of
//! `<filter regex> <template> [<separator>] [<tag>=<value>,...]`.
//!
//! - The first template whose filter matches the start of the path wins; a template
//!   whose filter is exactly `.*` is a default, tried after all the others.
//! - The template is split on the separator (default `.`). `metric` parts form the
//!   metric name, `metric*` takes the rest of the path into it, any other word names a
//!   tag taken from that segment, an empty part skips a segment. InfluxDB's
//!   `measurement` and `measurement*` are accepted for `metric` and `metric*`.
//!   `.metric.host.metric*` turns `test.foo.skinny.pop.bar` into `foo.pop.bar` with
//!   `host=skinny`.
//! - `[x]` sets the separator, `[x,y]` also joins the name's parts with `y` instead
//!   (and replaces `x` with `y` inside a `metric*` part).
//! - `tag=value` words (comma-separated, or several words) add static tags, which
//!   override a tag of the same name from the path.
//! - A template that is only a filter drops the paths it matches.
//! - A path no template fits is not dropped: it is stored as metric `invalidMetrics`
//!   with tags `metricName` (the path) and `cause`, plus `templateFilter` when a
//!   template matched but the path did not fit it.

use std::ops::Range;

use regex::{CaptureLocations, Regex};

use crate::datapoint::{PointBatch, Value};

use super::path::{quoted, sort_dedup_last, PathError, PathScratch};

pub const KEY: &str = "kairosdb.carbon.templates_tag_parser.templates";

const INVALID_METRIC: &str = "invalidMetrics";

#[derive(Debug)]
pub struct Templates {
    /// In lookup order: the configured order, defaults (`.*` filters) last.
    list: Vec<Template>,
}

#[derive(Debug)]
struct Template {
    filter: Regex,
    filter_source: String,
    /// `None`: a filter alone, which drops what it matches.
    map: Option<Mapping>,
}

#[derive(Debug)]
struct Mapping {
    /// Captures the name parts, in order.
    name: Regex,
    /// Captures the tag values, in the order of `tag_names`.
    tags: Regex,
    tag_names: Vec<String>,
    source_sep: char,
    target_sep: char,
    static_tags: Vec<(String, String)>,
}

impl Templates {
    /// Parses the `;`-separated list (empty entries are skipped).
    pub fn parse(list: &str) -> Result<Templates, String> {
        let mut parsed = Vec::new();
        for (i, entry) in list.split(';').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let t = Template::parse(entry).map_err(|e| format!("template {} ({entry:?}): {e}", i + 1))?;
            parsed.push(t);
        }
        let (defaults, mut list): (Vec<Template>, Vec<Template>) =
            parsed.into_iter().partition(|t| t.filter_source == ".*");
        list.extend(defaults);
        Ok(Templates { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn capture_locations(&self) -> Vec<CaptureLocations> {
        self.list
            .iter()
            .flat_map(|t| match &t.map {
                Some(m) => vec![m.name.capture_locations(), m.tags.capture_locations()],
                None => vec![t.filter.capture_locations(), t.filter.capture_locations()],
            })
            .collect()
    }

    pub(crate) fn push(
        &self,
        path: &str,
        timestamp: i64,
        value: Value,
        batch: &mut PointBatch,
        scratch: &mut PathScratch,
    ) -> Result<(), PathError> {
        let Some((index, template)) = self.list.iter().enumerate().find(|(_, t)| t.filter.is_match(path)) else {
            push_invalid(path, "no matching template", None, timestamp, value, batch);
            return Ok(());
        };
        let Some(m) = &template.map else {
            return Err(PathError::Dropped {
                path: quoted(path),
                filter: template.filter_source.clone(),
            });
        };
        let (name_caps, rest) = scratch.captures[index * 2..]
            .split_first_mut()
            .expect("scratch made by this mapper");
        let tag_caps = &mut rest[0];
        let filter = Some(template.filter_source.as_str());
        if m.name.captures_read(name_caps, path).is_none() {
            push_invalid(
                path,
                "does not match metric name pattern",
                filter,
                timestamp,
                value,
                batch,
            );
            return Ok(());
        }
        if m.tags.captures_read(tag_caps, path).is_none() {
            push_invalid(path, "does not match tags pattern", filter, timestamp, value, batch);
            return Ok(());
        }
        let text = &mut scratch.text;
        text.clear();
        for group in 1..name_caps.len() {
            if group > 1 {
                text.push(m.target_sep);
            }
            if let Some((s, e)) = name_caps.get(group) {
                text.extend(
                    path[s..e]
                        .chars()
                        .map(|c| if c == m.source_sep { m.target_sep } else { c }),
                );
            }
        }
        let name_end = text.len();
        if name_end == 0 {
            return Err(PathError::EmptyPart {
                path: quoted(path),
                what: "metric name".into(),
            });
        }
        let spans = &mut scratch.tags;
        spans.clear();
        let mut add = |text: &mut String, name: &str, value: &str| -> Range<usize> {
            let n = text.len();
            text.push_str(name);
            let v = text.len();
            text.push_str(value);
            spans.push((n..v, v..text.len()));
            v..text.len()
        };
        for (i, tag) in m.tag_names.iter().enumerate() {
            let (s, e) = tag_caps.get(i + 1).unwrap_or((0, 0));
            if add(text, tag, &path[s..e]).is_empty() {
                return Err(PathError::EmptyPart {
                    path: quoted(path),
                    what: format!("value for tag '{tag}'"),
                });
            }
        }
        for (k, v) in &m.static_tags {
            add(text, k, v);
        }
        sort_dedup_last(spans, text);
        let name = &text[..name_end];
        let pairs = spans.iter().map(|(n, v)| (&text[n.clone()], &text[v.clone()]));
        batch.push_parts(name, pairs, timestamp, value, 0);
        Ok(())
    }
}

/// Where KairosDB puts a path no template fits, so the data is not lost.
fn push_invalid(path: &str, cause: &str, filter: Option<&str>, ts: i64, value: Value, batch: &mut PointBatch) {
    let mut tags = vec![("cause", cause), ("metricName", path)];
    if let Some(f) = filter {
        tags.push(("templateFilter", f));
    }
    batch.push_parts(INVALID_METRIC, tags, ts, value, 0);
}

impl Template {
    fn parse(entry: &str) -> Result<Template, String> {
        let mut words = entry.split_whitespace();
        let filter_source = words.next().expect("entry is not blank").to_string();
        let filter = Regex::new(&format!("^(?:{filter_source})"))
            .map_err(|e| format!("filter {filter_source:?} is not a valid regular expression: {e}"))?;
        let Some(template) = words.next() else {
            return Ok(Template {
                filter,
                filter_source,
                map: None,
            });
        };
        let (mut source_sep, mut target_sep) = ('.', '.');
        let mut static_tags = Vec::new();
        for word in words {
            if let Some(seps) = word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
                let chars: Vec<char> = seps.chars().collect();
                match chars[..] {
                    [s] if !s.is_whitespace() => (source_sep, target_sep) = (s, s),
                    [s, ',', t] if !s.is_whitespace() && !t.is_whitespace() => (source_sep, target_sep) = (s, t),
                    _ => return Err(format!("separator {word:?} must be [x] or [x,y], one character each")),
                }
            } else if word.contains('=') {
                for pair in word.split(',').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some((k, v)) if is_word(k) && is_word(v) => static_tags.push((k.to_string(), v.to_string())),
                        _ => return Err(format!("static tag {pair:?} must be name=value (letters, digits, _)")),
                    }
                }
            } else {
                return Err(format!(
                    "unknown part {word:?} (expected a separator like [.] or [.,_], or tags like type=web)"
                ));
            }
        }
        Ok(Template {
            filter,
            filter_source,
            map: Some(Mapping::build(template, source_sep, target_sep, static_tags)?),
        })
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

impl Mapping {
    fn build(
        template: &str,
        source_sep: char,
        target_sep: char,
        static_tags: Vec<(String, String)>,
    ) -> Result<Mapping, String> {
        let sep = regex::escape(&source_sep.to_string());
        let skip = format!("[^{sep}]*");
        let capture = format!("({skip})");
        // Java's String.split drops trailing empty parts.
        let mut parts: Vec<&str> = template.split(source_sep).collect();
        while parts.last() == Some(&"") {
            parts.pop();
        }
        let (mut name, mut tags, mut tag_names) = (Vec::new(), Vec::new(), Vec::new());
        let mut has_name = false;
        for part in parts {
            match part {
                "metric" | "measurement" => {
                    name.push(capture.as_str());
                    tags.push(skip.as_str());
                    has_name = true;
                }
                "metric*" | "measurement*" => {
                    name.push("(.*)");
                    tags.push(".*");
                    has_name = true;
                }
                "" => {
                    name.push(skip.as_str());
                    tags.push(skip.as_str());
                }
                tag => {
                    name.push(skip.as_str());
                    tags.push(capture.as_str());
                    tag_names.push(tag.to_string());
                }
            }
        }
        if !has_name {
            return Err(format!("template {template:?} has no metric or metric* part"));
        }
        let anchored = |parts: Vec<&str>| {
            Regex::new(&format!("^{}$", parts.join(&sep))).map_err(|e| format!("template {template:?}: {e}"))
        };
        Ok(Mapping {
            name: anchored(name)?,
            tags: anchored(tags)?,
            tag_names,
            source_sep,
            target_sep,
            static_tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataPoint;

    fn map(t: &Templates, path: &str) -> Result<DataPoint, PathError> {
        let mut batch = PointBatch::new();
        let mut scratch = PathScratch {
            captures: t.capture_locations(),
            ..PathScratch::default()
        };
        t.push(path, 1000, Value::Long(1), &mut batch, &mut scratch)?;
        Ok(batch.to_points().remove(0))
    }

    fn tags(p: &DataPoint) -> Vec<(&str, &str)> {
        p.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// The cases of kairos-carbon's TemplatesTagParserTest and its README.
    #[test]
    fn kairosdb_template_cases() {
        let t = Templates::parse(
            "^test.metric .metric.host.metric*;\
             ^test2.metric .metric.host.metric* [.,_];\
             ^test3.metric .metric.host.metric* type=static;\
             ^test.foo .metric.host.metric*",
        )
        .unwrap();
        let p = map(&t, "test.metric.host_name.name").unwrap();
        assert_eq!(
            (p.metric.as_str(), tags(&p)),
            ("metric.name", vec![("host", "host_name")])
        );
        let p = map(&t, "test2.metric.host_name.name").unwrap();
        assert_eq!(p.metric, "metric_name");
        let p = map(&t, "test3.metric.host_name.name").unwrap();
        assert_eq!(tags(&p), vec![("host", "host_name"), ("type", "static")]);
        let p = map(&t, "test.foo.skinny.pop.bar").unwrap();
        assert_eq!((p.metric.as_str(), tags(&p)), ("foo.pop.bar", vec![("host", "skinny")]));

        let p = map(&t, "metric.host_name.name").unwrap();
        assert_eq!(p.metric, "invalidMetrics");
        assert_eq!(
            tags(&p),
            vec![
                ("cause", "no matching template"),
                ("metricName", "metric.host_name.name")
            ]
        );
        let p = map(&t, "test.metric.host_name").unwrap();
        assert_eq!(
            tags(&p),
            vec![
                ("cause", "does not match metric name pattern"),
                ("metricName", "test.metric.host_name"),
                ("templateFilter", "^test.metric")
            ]
        );
    }

    #[test]
    fn defaults_drops_separators_and_influx_words() {
        let t = Templates::parse(
            " .* measurement.measurement.host.dc.svc ;\n\
             ^drop.me ;\
             ^under _metric_type_metric* [_] a=1,b=2 c=3",
        )
        .unwrap();
        // The default comes last even though it is listed first.
        let p = map(&t, "bench.m3.h042.dc3.s1").unwrap();
        assert_eq!(p.metric, "bench.m3");
        assert_eq!(tags(&p), vec![("dc", "dc3"), ("host", "h042"), ("svc", "s1")]);
        let err = map(&t, "drop.me.now").unwrap_err();
        assert!(err.is_routine(), "{err}");
        let p = map(&t, "under_cpu_web_user_total").unwrap();
        assert_eq!(p.metric, "cpu_user_total");
        assert_eq!(tags(&p), vec![("a", "1"), ("b", "2"), ("c", "3"), ("type", "web")]);
        // An empty segment gives an empty tag value: refused, not stored with "".
        assert!(map(&t, "bench.m3..dc3.s1").is_err());
    }

    #[test]
    fn bad_templates_say_which() {
        for (list, want) in [
            ("^a( .metric", "template 1"),
            ("^a .metric;^b .metric [..]", "template 2"),
            ("^a .host.dc", "no metric or metric* part"),
            ("^a .metric bogus", "unknown part \"bogus\""),
            ("^a .metric t=a-b", "static tag \"t=a-b\""),
        ] {
            let err = Templates::parse(list).unwrap_err();
            assert!(err.contains(want), "{list}: {err}");
        }
        assert!(Templates::parse(" ; ").unwrap().is_empty());
    }
}
