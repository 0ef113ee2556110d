//! `save_as`: passes the stream on unchanged and keeps a copy to write back as a new
//! metric once the query has run (through the ingest queue, like any other write).

use std::collections::BTreeMap;

use kairos_protocols::Value;

use super::{ChainError, GroupContext, Pt, Stage, Val};

#[derive(Debug, Clone)]
pub struct SaveAsSpec {
    pub metric_name: String,
    pub tags: Vec<(String, String)>,
    /// Accepted as KairosDB does; kairosd keeps no per-point TTL.
    pub ttl: i64,
    /// Adds `saved_from=<queried metric>` (default true).
    pub add_saved_from: bool,
}

/// Points to write: one series of the new metric.
#[derive(Debug, Clone)]
pub struct Saved {
    pub metric: String,
    pub tags: Vec<(String, String)>,
    pub points: Vec<(i64, Value)>,
}

pub struct SaveAs {
    saved: Saved,
}

impl SaveAs {
    pub fn new(spec: &SaveAsSpec, ctx: &GroupContext<'_>) -> SaveAs {
        let mut tags: BTreeMap<String, String> = spec.tags.iter().cloned().collect();
        if spec.add_saved_from {
            tags.insert("saved_from".into(), ctx.metric.to_string());
        }
        // A grouped-by tag with one value in this group names the group: keep it.
        for (name, values) in ctx.tags {
            if values.len() == 1 && ctx.grouped_tags.contains(name) {
                tags.insert(name.clone(), values[0].clone());
            }
        }
        SaveAs {
            saved: Saved {
                metric: spec.metric_name.clone(),
                tags: tags.into_iter().collect(),
                points: Vec::new(),
            },
        }
    }
}

impl Stage for SaveAs {
    fn push(&mut self, p: Pt, out: &mut Vec<Pt>) -> Result<(), ChainError> {
        match p.1 {
            Val::Long(l) => self.saved.points.push((p.0, Value::Long(l))),
            Val::Double(d) if d.is_finite() => self.saved.points.push((p.0, Value::Double(d))),
            _ => {}
        }
        out.push(p);
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Pt>) -> Result<(), ChainError> {
        Ok(())
    }

    fn take_saved(&mut self) -> Option<Saved> {
        if self.saved.points.is_empty() {
            return None;
        }
        let points = std::mem::take(&mut self.saved.points);
        Some(Saved {
            metric: self.saved.metric.clone(),
            tags: self.saved.tags.clone(),
            points,
        })
    }
}
