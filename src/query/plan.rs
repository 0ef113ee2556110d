//! Planning from the tag index: which series a metric query reads, and how the tag
//! group-by splits them into groups, before any point is read.

use std::collections::{BTreeMap, HashSet};

use super::request::{MetricQuery, TagFilter, TagMatch};
use crate::storage::{SeriesId, StoreError, Tags, View};

/// A series to read, with its tags.
#[derive(Debug, Clone)]
pub struct SeriesInfo {
    pub id: SeriesId,
    pub tags: Tags,
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
    let series = select_series(view, &m.name, &m.tags)?;
    let Some(group_tags) = m.tag_group() else {
        let series = series.into_iter().map(|(id, tags)| SeriesInfo { id, tags }).collect();
        return Ok(MetricPlan {
            groups: vec![PlannedGroup {
                tag_values: Vec::new(),
                series,
            }],
        });
    };
    // KairosDB keys a group by the concatenated names and values, and sorts by that key.
    let mut groups: BTreeMap<String, PlannedGroup> = BTreeMap::new();
    for (id, tags) in series {
        let mut values = Vec::with_capacity(group_tags.len());
        let mut key = String::new();
        for name in group_tags {
            if let Some((_, v)) = tags.iter().find(|(k, _)| k == name) {
                key.push_str(name);
                key.push_str(v);
                values.push((name.clone(), v.clone()));
            }
        }
        groups
            .entry(key)
            .or_insert_with(|| PlannedGroup {
                tag_values: values,
                series: Vec::new(),
            })
            .series
            .push(SeriesInfo { id, tags });
    }
    Ok(MetricPlan {
        groups: groups.into_values().collect(),
    })
}

/// The series of `metric` that pass `filter`, with their tags, by id.
pub fn select_series(view: &View<'_>, metric: &str, filter: &TagFilter) -> Result<Vec<(SeriesId, Tags)>, StoreError> {
    if filter.is_empty() {
        return view.series_of_metric(metric);
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
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((_, tags)) = view.series_by_id(id)? {
            out.push((id, tags));
        }
    }
    Ok(out)
}
