//! A Graphite path to a metric name and tags, the way `kairosdb.carbon.tag_parser` says.
//!
//! The mapper is built once from the config and shared by every connection; each
//! connection keeps a [`PathScratch`] so that mapping a path allocates nothing once
//! warm (regex capture slots and the text of built names live there).

use std::ops::Range;

use crate::datapoint::{PointBatch, Value};
use crate::number::quote;

use super::host::HostTags;
use super::tags;
use super::templates::Templates;

/// Which parser turns paths into metrics and tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagParserKind {
    /// Graphite 1.1: `metric;tag=value;...`; the path before the first `;` is the metric.
    Graphite,
    /// KairosDB's `HostTagParser`: two regexes pick a host tag out of the path.
    Host,
    /// KairosDB's `TemplatesTagParser` (InfluxDB-style templates).
    Templates,
}

impl TagParserKind {
    /// Every name `kairosdb.carbon.tag_parser` accepts: ours, and KairosDB's class names
    /// (kairos-carbon 1.x and the older core module), so an existing config works as is.
    pub const NAMES: &'static [(&'static str, TagParserKind)] = &[
        ("graphite", TagParserKind::Graphite),
        ("host", TagParserKind::Host),
        ("templates", TagParserKind::Templates),
        ("org.kairosdb.plugin.carbon.GraphiteTagsParser", TagParserKind::Graphite),
        ("org.kairosdb.plugin.carbon.HostTagParser", TagParserKind::Host),
        (
            "org.kairosdb.plugin.carbon.TemplatesTagParser",
            TagParserKind::Templates,
        ),
        ("org.kairosdb.core.carbon.HostTagParser", TagParserKind::Host),
    ];

    pub fn from_name(name: &str) -> Result<TagParserKind, String> {
        let name = name.trim();
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, k)| k)
            .ok_or_else(|| {
                format!("unknown tag parser {name:?}; use graphite, host or templates (or KairosDB's class names)")
            })
    }
}

/// A setting the mapper cannot be built from; `key` is the config key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct MapperConfigError {
    pub key: &'static str,
    pub reason: String,
}

/// Why a path could not be turned into a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the metric path is empty")]
    Empty,
    #[error("path '{path}': tag segment '{segment}' is not 'name=value'")]
    TagFormat { path: String, segment: String },
    #[error("path '{path}': tag name '{tag}' may not contain '{ch}'")]
    TagNameChar { path: String, tag: String, ch: char },
    #[error("path '{path}': the value of tag '{tag}' is empty")]
    TagValueEmpty { path: String, tag: String },
    #[error("path '{path}': the value of tag '{tag}' may not start with '~'")]
    TagValueTilde { path: String, tag: String },
    #[error("path '{path}' does not match {key}")]
    NoMatch { path: String, key: &'static str },
    #[error("path '{path}' maps to an empty {what}")]
    EmptyPart { path: String, what: String },
    #[error("path '{path}' dropped by the template with filter '{filter}'")]
    Dropped { path: String, filter: String },
}

impl PathError {
    /// A template that drops paths does so by design.
    pub fn is_routine(&self) -> bool {
        matches!(self, PathError::Dropped { .. })
    }
}

/// The configured path parser.
#[derive(Debug)]
pub enum PathMapper {
    Graphite,
    Host(HostTags),
    Templates(Templates),
}

/// Per-connection buffers for [`PathMapper::push`].
#[derive(Debug, Default)]
pub struct PathScratch {
    /// Tag spans: into the path (Graphite tags) or into `text` (host, templates).
    pub(crate) tags: Vec<(Range<usize>, Range<usize>)>,
    /// Names and values built from the path.
    pub(crate) text: String,
    /// Capture slots, one per regex of the mapper, in the mapper's order.
    pub(crate) captures: Vec<regex::CaptureLocations>,
    /// Where the metric name built in `text` ends (templates).
    pub(crate) name_end: usize,
    /// The path's segments (templates).
    pub(crate) segments: Vec<Range<usize>>,
}

impl PathMapper {
    /// Builds the mapper `kind` names; the other settings matter only to their parser.
    pub fn new(
        kind: TagParserKind,
        host: &super::host::HostTagConfig,
        templates: &str,
    ) -> Result<PathMapper, MapperConfigError> {
        Ok(match kind {
            TagParserKind::Graphite => PathMapper::Graphite,
            TagParserKind::Host => PathMapper::Host(HostTags::new(host)?),
            TagParserKind::Templates => {
                let t = Templates::parse(templates).map_err(|reason| MapperConfigError {
                    key: super::templates::KEY,
                    reason,
                })?;
                if t.is_empty() {
                    return Err(MapperConfigError {
                        key: super::templates::KEY,
                        reason: "kairosdb.carbon.tag_parser is templates, but no template is configured".into(),
                    });
                }
                PathMapper::Templates(t)
            }
        })
    }

    /// Buffers sized for this mapper's regexes.
    pub fn scratch(&self) -> PathScratch {
        let captures = match self {
            PathMapper::Graphite => Vec::new(),
            PathMapper::Host(h) => h.capture_locations(),
            PathMapper::Templates(t) => t.capture_locations(),
        };
        PathScratch {
            captures,
            ..PathScratch::default()
        }
    }

    /// Appends the point of `path` to `batch`.
    #[inline]
    pub fn push(
        &self,
        path: &str,
        timestamp: i64,
        value: Value,
        batch: &mut PointBatch,
        scratch: &mut PathScratch,
    ) -> Result<(), PathError> {
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        match self {
            PathMapper::Graphite => tags::push(path, timestamp, value, batch, scratch),
            PathMapper::Host(h) => h.push(path, timestamp, value, batch, scratch),
            PathMapper::Templates(t) => t.push(path, timestamp, value, batch, scratch),
        }
    }
}

/// Sorts tag spans by name and keeps the last of each name (a later tag of the same
/// name overrides an earlier one, as a Python dict or Java map does).
pub(crate) fn sort_dedup_last(spans: &mut Vec<(Range<usize>, Range<usize>)>, text: &str) {
    // A path has a handful of tags: a stable insertion sort beats the general one.
    if spans.len() > 16 {
        spans.sort_by(|a, b| text[a.0.clone()].cmp(&text[b.0.clone()]));
    } else {
        for i in 1..spans.len() {
            let mut j = i;
            while j > 0 && text[spans[j - 1].0.clone()] > text[spans[j].0.clone()] {
                spans.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    let mut out = 0;
    for i in 0..spans.len() {
        if i + 1 < spans.len() && text[spans[i].0.clone()] == text[spans[i + 1].0.clone()] {
            continue;
        }
        spans.swap(out, i);
        out += 1;
    }
    spans.truncate(out);
}

/// A path as it may appear in an error message.
pub(crate) fn quoted(path: &str) -> String {
    quote(path.as_bytes())
}
