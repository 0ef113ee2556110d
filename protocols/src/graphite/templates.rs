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
    /// Stands in for the capture slots of templates that need none.
    no_captures: Regex,
}

#[derive(Debug)]
struct Template {
    /// `None` for the default filter `.*`, which matches every path.
    filter: Option<Regex>,
    filter_source: String,
    /// `None`: a filter alone, which drops what it matches.
    map: Option<Mapping>,
}

/// What a template does with each segment of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `metric`: this segment is part of the name.
    Name,
    /// `metric*`: the segments up to the fixed parts after it are part of the name.
    Rest,
    /// A tag named `tag_names[i]` takes this segment.
    Tag(usize),
    /// An empty part: the segment is skipped.
    Skip,
}

#[derive(Debug)]
struct Mapping {
    parts: Vec<Part>,
    /// Parts before and after the `metric*`, when there is exactly one.
    before: usize,
    after: usize,
    rests: usize,
    /// With two or more `metric*` parts, KairosDB's greedy regexes decide: the name
    /// pattern captures the name parts, the tags pattern the tag values.
    regex: Option<(Regex, Regex)>,
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
        let (defaults, mut list): (Vec<Template>, Vec<Template>) = parsed.into_iter().partition(|t| t.filter.is_none());
        list.extend(defaults);
        Ok(Templates {
            list,
            no_captures: Regex::new("").expect("empty regex"),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn capture_locations(&self) -> Vec<CaptureLocations> {
        self.list
            .iter()
            .flat_map(|t| match t.map.as_ref().and_then(|m| m.regex.as_ref()) {
                Some((name, tags)) => [name.capture_locations(), tags.capture_locations()],
                None => [
                    self.no_captures.capture_locations(),
                    self.no_captures.capture_locations(),
                ],
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
        let found = self
            .list
            .iter()
            .enumerate()
            .find(|(_, t)| t.filter.as_ref().is_none_or(|f| f.is_match(path)));
        let Some((index, template)) = found else {
            push_invalid(path, "no matching template", None, timestamp, value, batch);
            return Ok(());
        };
        let Some(m) = &template.map else {
            return Err(PathError::Dropped {
                path: quoted(path),
                filter: template.filter_source.clone(),
            });
        };
        let fits = match &m.regex {
            None => m.positional(path, scratch),
            Some((name, tags)) => m.by_regex(name, tags, index, path, scratch),
        };
        if let Err(cause) = fits {
            push_invalid(path, cause, Some(&template.filter_source), timestamp, value, batch);
            return Ok(());
        }
        let text = &scratch.text;
        let name_end = scratch.name_end;
        if name_end == 0 {
            return Err(PathError::EmptyPart {
                path: quoted(path),
                what: "metric name".into(),
            });
        }
        if let Some((n, _)) = scratch.tags.iter().find(|(_, v)| v.is_empty()) {
            return Err(PathError::EmptyPart {
                path: quoted(path),
                what: format!("value for tag '{}'", &text[n.clone()]),
            });
        }
        sort_dedup_last(&mut scratch.tags, text);
        let name = &text[..name_end];
        let pairs = scratch.tags.iter().map(|(n, v)| (&text[n.clone()], &text[v.clone()]));
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

impl Mapping {
    /// Writes the name (then the tags, as spans) into `scratch.text`.
    fn positional(&self, path: &str, scratch: &mut PathScratch) -> Result<(), &'static str> {
        let segs = &mut scratch.segments;
        segs.clear();
        let mut start = 0;
        for (i, _) in path.match_indices(self.source_sep) {
            segs.push(start..i);
            start = i + self.source_sep.len_utf8();
        }
        segs.push(start..path.len());
        let fixed = self.before + self.after;
        if (self.rests == 0 && segs.len() != self.parts.len()) || (self.rests == 1 && segs.len() <= fixed) {
            return Err("does not match metric name pattern");
        }
        // The segment each part starts at; `metric*` spans all but the fixed ones.
        let rest_len = segs.len() - fixed;
        let text = &mut scratch.text;
        text.clear();
        let mut seg = 0;
        let mut first = true;
        for part in &self.parts {
            match part {
                Part::Name | Part::Rest => {
                    let span = if *part == Part::Name { 1 } else { rest_len };
                    let piece = &path[segs[seg].start..segs[seg + span - 1].end];
                    if !first {
                        text.push(self.target_sep);
                    }
                    first = false;
                    if self.target_sep == self.source_sep {
                        text.push_str(piece);
                    } else {
                        text.extend(
                            piece
                                .chars()
                                .map(|c| if c == self.source_sep { self.target_sep } else { c }),
                        );
                    }
                    seg += span;
                }
                Part::Tag(_) | Part::Skip => seg += 1,
            }
        }
        scratch.name_end = text.len();
        let spans = &mut scratch.tags;
        spans.clear();
        let mut seg = 0;
        for part in &self.parts {
            match part {
                Part::Rest => seg += rest_len,
                Part::Name | Part::Skip => seg += 1,
                Part::Tag(t) => {
                    spans.push(add(text, &self.tag_names[*t], &path[segs[seg].clone()]));
                    seg += 1;
                }
            }
        }
        for (k, v) in &self.static_tags {
            spans.push(add(text, k, v));
        }
        Ok(())
    }

    /// KairosDB's way, for templates with more than one `metric*`.
    fn by_regex(
        &self,
        name: &Regex,
        tags: &Regex,
        index: usize,
        path: &str,
        scratch: &mut PathScratch,
    ) -> Result<(), &'static str> {
        let (name_caps, rest) = scratch.captures[index * 2..]
            .split_first_mut()
            .expect("scratch made by this mapper");
        let tag_caps = &mut rest[0];
        if name.captures_read(name_caps, path).is_none() {
            return Err("does not match metric name pattern");
        }
        if tags.captures_read(tag_caps, path).is_none() {
            return Err("does not match tags pattern");
        }
        let text = &mut scratch.text;
        text.clear();
        for group in 1..name_caps.len() {
            if group > 1 {
                text.push(self.target_sep);
            }
            if let Some((s, e)) = name_caps.get(group) {
                text.extend(
                    path[s..e]
                        .chars()
                        .map(|c| if c == self.source_sep { self.target_sep } else { c }),
                );
            }
        }
        scratch.name_end = text.len();
        let spans = &mut scratch.tags;
        spans.clear();
        for (i, tag) in self.tag_names.iter().enumerate() {
            let (s, e) = tag_caps.get(i + 1).unwrap_or((0, 0));
            spans.push(add(text, tag, &path[s..e]));
        }
        for (k, v) in &self.static_tags {
            spans.push(add(text, k, v));
        }
        Ok(())
    }
}

/// Appends a tag's name and value to `text`, returning where they sit.
fn add(text: &mut String, name: &str, value: &str) -> (Range<usize>, Range<usize>) {
    let n = text.len();
    text.push_str(name);
    let v = text.len();
    text.push_str(value);
    (n..v, v..text.len())
}

impl Template {
    fn parse(entry: &str) -> Result<Template, String> {
        let mut words = entry.split_whitespace();
        let filter_source = words.next().expect("entry is not blank").to_string();
        let filter = if filter_source == ".*" {
            None
        } else {
            Some(
                Regex::new(&format!("^(?:{filter_source})"))
                    .map_err(|e| format!("filter {filter_source:?} is not a valid regular expression: {e}"))?,
            )
        };
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
        // Java's String.split drops trailing empty parts.
        let mut words: Vec<&str> = template.split(source_sep).collect();
        while words.last() == Some(&"") {
            words.pop();
        }
        let mut tag_names = Vec::new();
        let parts: Vec<Part> = words
            .iter()
            .map(|w| match *w {
                "metric" | "measurement" => Part::Name,
                "metric*" | "measurement*" => Part::Rest,
                "" => Part::Skip,
                tag => {
                    tag_names.push(tag.to_string());
                    Part::Tag(tag_names.len() - 1)
                }
            })
            .collect();
        if !parts.iter().any(|p| matches!(p, Part::Name | Part::Rest)) {
            return Err(format!("template {template:?} has no metric or metric* part"));
        }
        let rests = parts.iter().filter(|p| **p == Part::Rest).count();
        let before = parts.iter().take_while(|p| **p != Part::Rest).count();
        let after = if rests == 0 { 0 } else { parts.len() - before - 1 };
        let regex = if rests > 1 {
            Some(Self::regexes(&parts, source_sep).map_err(|e| format!("template {template:?}: {e}"))?)
        } else {
            None
        };
        Ok(Mapping {
            parts,
            before,
            after,
            rests,
            regex,
            tag_names,
            source_sep,
            target_sep,
            static_tags,
        })
    }

    /// KairosDB's name and tags patterns for `parts`.
    fn regexes(parts: &[Part], source_sep: char) -> Result<(Regex, Regex), regex::Error> {
        let sep = regex::escape(&source_sep.to_string());
        let skip = format!("[^{sep}]*");
        let capture = format!("({skip})");
        let (mut name, mut tags) = (Vec::new(), Vec::new());
        for part in parts {
            let (n, t) = match part {
                Part::Name => (capture.as_str(), skip.as_str()),
                Part::Rest => ("(.*)", ".*"),
                Part::Skip => (skip.as_str(), skip.as_str()),
                Part::Tag(_) => (skip.as_str(), capture.as_str()),
            };
            name.push(n);
            tags.push(t);
        }
        Ok((
            Regex::new(&format!("^{}$", name.join(&sep)))?,
            Regex::new(&format!("^{}$", tags.join(&sep)))?,
        ))
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
    fn two_wildcards_take_kairosdb_regexes() {
        let t = Templates::parse("^x metric*.host.metric*").unwrap();
        // Java's first greedy (.*) takes all it can.
        let p = map(&t, "x.a.b.c.d").unwrap();
        assert_eq!((p.metric.as_str(), tags(&p)), ("x.a.b.d", vec![("host", "c")]));
    }

    /// Whatever the path, the positional matcher decides as KairosDB's regexes do.
    fn same_as_regex(template: &str, path: &str) {
        let m = Mapping::build(template, '.', '_', vec![]).unwrap();
        let (name, tags) = Mapping::regexes(&m.parts, '.').unwrap();
        let mut a = PathScratch::default();
        let mut b = PathScratch {
            captures: vec![name.capture_locations(), tags.capture_locations()],
            ..PathScratch::default()
        };
        let ra = m.positional(path, &mut a);
        let rb = m.by_regex(&name, &tags, 0, path, &mut b);
        assert_eq!(ra.is_ok(), rb.is_ok(), "{template} on {path:?}");
        if ra.is_ok() {
            let show = |s: &PathScratch| {
                let tags: Vec<_> = s
                    .tags
                    .iter()
                    .map(|(n, v)| (&s.text[n.clone()], &s.text[v.clone()]))
                    .collect();
                (s.text[..s.name_end].to_string(), format!("{tags:?}"))
            };
            assert_eq!(show(&a), show(&b), "{template} on {path:?}");
        }
    }

    #[test]
    fn positional_matching_equals_the_regexes() {
        for template in [
            ".metric.host.metric*",
            "metric.metric.host",
            "host..metric",
            "metric*",
            "metric*.a",
            "a.metric*.b.c",
            "metric",
        ] {
            for path in [
                "",
                ".",
                "a",
                "a.b",
                "a.b.c",
                "a..c",
                "a.b.c.d",
                "a.b.c.d.e.f",
                ".a.",
                "ä.ö.ü.x",
            ] {
                same_as_regex(template, path);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn positional_matching_equals_the_regexes_on_anything(
            template in proptest::collection::vec(proptest::prop_oneof!["metric", "metric\\*", "h", "d", ""], 1..5),
            path in "[a.b]{0,12}",
        ) {
            let template = template.join(".");
            if Mapping::build(&template, '.', '_', vec![]).is_ok_and(|m| m.rests <= 1) {
                same_as_regex(&template, &path);
            }
        }
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
