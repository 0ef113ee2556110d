//! Planning from the tag index: which series a metric query reads, and how the tag
//! group-by splits them into groups, before any point is read.
//!
//! A plan keeps each selected series' canonical key as stored, in one arena
//! ([`SeriesKeys`]), and reads tags out of it only where they are needed (a tag
//! group-by, the union of tags in the answer, `save_as`): a count over a million
//! series then costs no allocation per series before its points are read.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use super::request::{MetricQuery, TagFilter, TagMatch};
use crate::storage::keys::{unescape_into, RawTags};
use crate::storage::{SeriesId, StoreError, Tags, View};

/// A series to read, with where its canonical key lies in the plan's [`SeriesKeys`].
#[derive(Debug, Clone)]
pub struct SeriesInfo {
    pub id: SeriesId,
    pub key: Range<usize>,
}

/// The canonical keys (metric, then sorted tags; see `kairos_protocols::series_key`)
/// of a plan's series, back to back.
#[derive(Debug, Clone, Default)]
pub struct SeriesKeys {
    bytes: Vec<u8>,
}

impl SeriesKeys {
    pub fn push(&mut self, key: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        start..self.bytes.len()
    }

    pub fn get(&self, at: &Range<usize>) -> &[u8] {
        &self.bytes[at.clone()]
    }

    /// The tags of the series whose key is at `at`.
    pub fn tags(&self, at: &Range<usize>) -> RawTags<'_> {
        raw_tags(self.get(at))
    }
}

/// The (name, value) pairs of a canonical series key, still escaped and without their
/// terminators; [`unescape`] turns a part into text.
pub fn raw_tags(key: &[u8]) -> RawTags<'_> {
    RawTags::of(key)
}

/// The text of an escaped key part (`0x01 0x01` → `0x00`, `0x01 0x02` → `0x01`).
/// Keys are validated UTF-8 when written; a damaged one reads with replacement
/// characters rather than failing the query.
pub fn unescape(part: &[u8]) -> Cow<'_, str> {
    if !part.contains(&1) {
        return String::from_utf8_lossy(part);
    }
    let mut out = Vec::with_capacity(part.len());
    unescape_into(part, &mut out);
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The series of one tag group (or of the whole metric without a tag group-by).
#[derive(Debug, Clone)]
pub struct PlannedGroup {
    /// The group's values of the grouped tags, in query order (tags a series lacks are
    /// left out, as in KairosDB).
    pub tag_values: Vec<(String, String)>,
    pub series: Vec<SeriesInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct MetricPlan {
    pub groups: Vec<PlannedGroup>,
    pub keys: SeriesKeys,
}

impl MetricPlan {
    pub fn series_ids(&self) -> impl Iterator<Item = SeriesId> + '_ {
        self.groups.iter().flat_map(|g| g.series.iter().map(|s| s.id))
    }

    pub fn series_count(&self) -> usize {
        self.groups.iter().map(|g| g.series.len()).sum()
    }
}

pub fn plan_metric(view: &View<'_>, m: &MetricQuery) -> Result<MetricPlan, StoreError> {
    let (series, keys) = select_series_keys(view, &m.name, &m.tags)?;
    let Some(group_tags) = m.tag_group() else {
        return Ok(MetricPlan {
            groups: vec![PlannedGroup {
                tag_values: Vec::new(),
                series,
            }],
            keys,
        });
    };
    // KairosDB keys a group by the concatenated names and values, and sorts by that key.
    let mut groups: BTreeMap<String, PlannedGroup> = BTreeMap::new();
    let mut key = String::new();
    for s in series {
        key.clear();
        let mut values = Vec::new();
        for name in group_tags {
            if let Some((_, v)) = keys.tags(&s.key).find(|(k, _)| unescape(k) == name.as_str()) {
                let v = unescape(v);
                key.push_str(name);
                key.push_str(&v);
                values.push((name.clone(), v.into_owned()));
            }
        }
        match groups.get_mut(key.as_str()) {
            Some(g) => g.series.push(s),
            None => {
                groups.insert(
                    key.clone(),
                    PlannedGroup {
                        tag_values: values,
                        series: vec![s],
                    },
                );
            }
        }
    }
    Ok(MetricPlan {
        groups: groups.into_values().collect(),
        keys,
    })
}

/// The series of `metric` that pass `filter`, by id, with their keys.
pub fn select_series_keys(
    view: &View<'_>,
    metric: &str,
    filter: &TagFilter,
) -> Result<(Vec<SeriesInfo>, SeriesKeys), StoreError> {
    let mut keys = SeriesKeys::default();
    let mut out = Vec::new();
    if filter.is_empty() {
        view.series_keys_of_metric(metric, |id, key| {
            out.push(SeriesInfo {
                id,
                key: keys.push(key),
            })
        })?;
        // Series ids are allocated in arrival order, not key order.
        out.sort_unstable_by_key(|s| s.id);
        return Ok((out, keys));
    }
    // Intersect, across filtered tag names, the ids the tag index gives for each name.
    let mut selected: Option<HashSet<SeriesId>> = None;
    for (name, matches) in filter {
        let mut ids = HashSet::new();
        if matches.iter().all(|t| matches!(t, TagMatch::Exact(_))) {
            for t in matches {
                if let TagMatch::Exact(v) = t {
                    ids.extend(view.series_with_tag(metric, name, v)?);
                }
            }
        } else {
            for (value, id) in view.tag_values(metric, name)? {
                if matches.iter().any(|t| t.matches(&value)) {
                    ids.insert(id);
                }
            }
        }
        selected = Some(match selected {
            None => ids,
            Some(prev) => prev.intersection(&ids).copied().collect(),
        });
        if selected.as_ref().is_some_and(HashSet::is_empty) {
            break;
        }
    }
    let mut ids: Vec<SeriesId> = selected.unwrap_or_default().into_iter().collect();
    ids.sort_unstable();
    out.reserve(ids.len());
    for id in ids {
        view.with_series_key(id, |key| {
            out.push(SeriesInfo {
                id,
                key: keys.push(key),
            })
        })?;
    }
    Ok((out, keys))
}

/// [`select_series_keys`] with each series' tags decoded (for deletes, which need few).
pub fn select_series(view: &View<'_>, metric: &str, filter: &TagFilter) -> Result<Vec<(SeriesId, Tags)>, StoreError> {
    let (series, keys) = select_series_keys(view, metric, filter)?;
    Ok(series
        .iter()
        .map(|s| {
            let tags = keys
                .tags(&s.key)
                .map(|(k, v)| (unescape(k).into_owned(), unescape(v).into_owned()))
                .collect();
            (s.id, tags)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairos_protocols::series_key;
    use proptest::prelude::*;

    proptest! {
        /// Reading tags from the raw key gives what the full decoder gives.
        #[test]
        fn raw_tags_equal_decoding(
            metric in "[\\x00-\\x03a-c]{0,4}",
            tags in prop::collection::btree_map("[\\x00-\\x03a-c\u{e9}]{0,4}", "[\\x00-\\x03a-c\u{e9}]{0,4}", 0..4),
        ) {
            let key = series_key::encode(&metric, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let (_, decoded) = series_key::decode(&key).unwrap();
            let raw: Vec<(String, String)> = raw_tags(&key)
                .map(|(k, v)| (unescape(k).into_owned(), unescape(v).into_owned()))
                .collect();
            prop_assert_eq!(raw, decoded);
        }
    }
}
