//! Rows to points: a [`Plan`] resolves the source's column names against what a
//! decoder knows (a CSV header, a Parquet schema, JSON keys), and a [`Mapper`] turns
//! each row's cells into points in a [`PointBatch`], or the whole row into a
//! [`Rejected`] record with every problem it has.
//!
//! The happy path allocates nothing per row once its buffers have grown: tags are
//! encoded into a reused key buffer, the metric part of each wide value column's key
//! is encoded once per import, and points go straight into the batch.

use std::ops::Range;

pub(crate) use super::cell::Cell;
use super::cell::{json_string, text_of, value_of};
use super::quarantine::{column_label, cut_raw, cut_value, CellError, Kind, Location, Rejected};
use super::source::{Source, ValueColumns, RESERVED_PREFIX};
use super::time::{TimeParser, TsError, Zone};
use super::{ImportError, Output};
use crate::datapoint::Value;
use crate::series_key;

/// The cells of one row, by slot (see [`Plan::slots`]).
pub(crate) trait RowCells {
    fn cell(&self, slot: usize) -> Cell<'_>;
    /// Columns no role names, for `"*"` over JSON, whose keys differ row to row.
    fn extras(&self, _each: &mut dyn FnMut(&str, Cell<'_>)) {}
}

/// What one slot of a row is called in messages.
#[derive(Debug, Clone)]
pub(crate) struct SlotInfo {
    pub name: String,
    /// 1-based position in the record (CSV) or schema (Parquet).
    pub index: Option<usize>,
}

#[derive(Debug, Clone)]
enum TagSource {
    Slot(usize),
    Static(String),
}

#[derive(Debug, Clone)]
struct TagSlot {
    name: String,
    source: TagSource,
}

#[derive(Debug, Clone)]
struct ValueSlot {
    slot: usize,
    /// The escaped, terminated metric name: the front of every key of this column.
    metric_key: Vec<u8>,
}

/// The source's roles resolved to slots.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub slots: Vec<SlotInfo>,
    ts: Option<usize>,
    /// Sorted by tag name, so keys need no sort per row.
    tags: Vec<TagSlot>,
    values: Vec<ValueSlot>,
    /// Name slot and value slot of narrow rows.
    narrow: Option<(usize, usize)>,
    /// `"*"` over a decoder that cannot list its columns up front (JSON).
    dynamic: bool,
    prefix: String,
    /// Names the roles claim, so `"*"` leaves them out.
    claimed: Vec<String>,
}

impl Plan {
    /// Resolves `source` against the columns a decoder knows in order (CSV header or
    /// `columns`, Parquet schema): every named column must exist (else a mapping
    /// error that lists what was found), and `"*"` takes every other column.
    /// Returns the plan and, for each position, its slot.
    pub(crate) fn for_columns(
        source: &Source,
        columns: &[String],
        found_in: &str,
    ) -> Result<(Plan, Vec<Option<usize>>), ImportError> {
        let mut plan = Plan::empty(source);
        let mut positions = vec![None; columns.len()];
        let find = |name: &str| -> Result<usize, ImportError> {
            let mut hits = columns.iter().enumerate().filter(|(_, c)| *c == name);
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) => Ok(i),
                (Some(_), Some(_)) => Err(ImportError::Mapping(format!(
                    "column \"{name}\" appears more than once in the {found_in}"
                ))),
                (None, _) => Err(ImportError::Mapping(format!(
                    "column \"{name}\" not in {found_in} (found: {})",
                    columns.join(",")
                ))),
            }
        };
        let mut missing = Vec::new();
        for name in source.mapped_columns() {
            match find(name) {
                Ok(pos) => {
                    let slot = plan.slots.len();
                    plan.slots.push(SlotInfo {
                        name: name.to_owned(),
                        index: Some(pos + 1),
                    });
                    positions[pos] = Some(slot);
                }
                Err(e) => missing.push(e.to_string()),
            }
        }
        if !missing.is_empty() {
            return Err(ImportError::Mapping(missing.join("; ")));
        }
        if source.metric.value_columns == Some(ValueColumns::All) {
            for (pos, name) in columns.iter().enumerate() {
                if positions[pos].is_none() {
                    if columns.iter().filter(|c| *c == name).count() > 1 {
                        return Err(ImportError::Mapping(format!(
                            "column \"{name}\" appears more than once in the {found_in}, so \"*\" would map two \
                             columns to one metric"
                        )));
                    }
                    positions[pos] = Some(plan.slots.len());
                    plan.slots.push(SlotInfo {
                        name: name.clone(),
                        index: Some(pos + 1),
                    });
                }
            }
        }
        plan.assign_roles(source, true)?;
        Ok((plan, positions))
    }

    /// The plan for keyed rows (JSON): one slot per named column, `"*"` resolved per row.
    pub(crate) fn for_keys(source: &Source) -> Result<Plan, ImportError> {
        let mut plan = Plan::empty(source);
        for name in source.mapped_columns() {
            plan.slots.push(SlotInfo {
                name: name.to_owned(),
                index: None,
            });
        }
        plan.dynamic = source.metric.value_columns == Some(ValueColumns::All);
        plan.assign_roles(source, false)?;
        Ok(plan)
    }

    fn empty(source: &Source) -> Plan {
        Plan {
            slots: Vec::new(),
            ts: None,
            tags: Vec::new(),
            values: Vec::new(),
            narrow: None,
            dynamic: false,
            prefix: source.metric.prefix.clone(),
            claimed: source.mapped_columns().into_iter().map(str::to_owned).collect(),
        }
    }

    /// Slots were pushed in `mapped_columns` order (timestamp, tags, name, value(s)),
    /// then the `"*"` columns.
    fn assign_roles(&mut self, source: &Source, all_listed: bool) -> Result<(), ImportError> {
        let mut next = 0;
        let mut take = || {
            next += 1;
            next - 1
        };
        if source.timestamp_column().is_some() {
            self.ts = Some(take());
        }
        for name in &source.tags.columns {
            self.tags.push(TagSlot {
                name: name.clone(),
                source: TagSource::Slot(take()),
            });
        }
        for (k, v) in &source.tags.fixed {
            self.tags.push(TagSlot {
                name: k.clone(),
                source: TagSource::Static(v.clone()),
            });
        }
        self.tags.sort_by(|a, b| a.name.cmp(&b.name));
        if source.metric.name_column.is_some() {
            let name = take();
            let value = take();
            self.narrow = Some((name, value));
        }
        let first_value = next;
        let value_slots = match &source.metric.value_columns {
            Some(ValueColumns::List(l)) => first_value..first_value + l.len(),
            Some(ValueColumns::All) if all_listed => first_value..self.slots.len(),
            _ => 0..0,
        };
        for slot in value_slots {
            let metric = format!("{}{}", self.prefix, self.slots[slot].name);
            if metric.starts_with(RESERVED_PREFIX) {
                return Err(ImportError::Mapping(format!(
                    "column \"{}\" would write the metric \"{metric}\", but names under \"{RESERVED_PREFIX}\" are \
                     kairosd's own",
                    self.slots[slot].name
                )));
            }
            let mut metric_key = Vec::with_capacity(metric.len() + 1);
            series_key::push_str(&mut metric_key, &metric);
            self.values.push(ValueSlot { slot, metric_key });
        }
        Ok(())
    }

    pub(crate) fn is_claimed(&self, name: &str) -> bool {
        self.claimed.iter().any(|c| c == name)
    }

    /// Whether a JSON row's extra keys become values.
    pub(crate) fn dynamic(&self) -> bool {
        self.dynamic
    }
}

/// A row about to be committed, as the daemon's [`RowCheck`] sees it.
pub struct RowInfo<'a> {
    pub timestamp: i64,
    pub location: &'a Location,
    text: &'a str,
    tags: &'a [(Range<usize>, Range<usize>)],
}

impl<'a> RowInfo<'a> {
    /// The row's tags, sorted by name.
    pub fn tags(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.tags
            .iter()
            .map(|(k, v)| (&self.text[k.clone()], &self.text[v.clone()]))
    }

    pub fn tag(&self, name: &str) -> Option<&'a str> {
        self.tags().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// The daemon's last word on a row that decoded cleanly: `Err((kind, message))` sets it
/// aside (e.g. [`Kind::OutsideReplaceRange`], [`Kind::BeyondRetention`]).
pub type RowCheck = Box<dyn FnMut(&RowInfo<'_>) -> Result<(), (Kind, String)> + Send>;

/// When rows carry no timestamp of their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    /// Stamps rows whose timestamp cell is empty (kamu's `--event-time`).
    pub event_time: Option<i64>,
    /// Stamps every row of a source without a timestamp column: the time the import
    /// (or Kafka message) arrived, in ms.
    pub receive_time: i64,
}

/// Maps rows of one import.
pub(crate) struct Mapper {
    plan: Plan,
    time: TimeParser,
    clock: Clock,
    check: Option<RowCheck>,
    errors: Vec<CellError>,
    /// Tag names and values of the row, as text, and where each sits.
    tag_text: String,
    tag_ranges: Vec<(Range<usize>, Range<usize>)>,
    tag_key: Vec<u8>,
    /// (index into plan.values or usize::MAX for dynamic, value, metric range in `names`).
    values: Vec<(usize, Value, Range<usize>)>,
    /// Metric keys of narrow rows and `"*"` JSON columns, encoded.
    names: Vec<u8>,
    key: Vec<u8>,
    scratch: String,
}

impl Mapper {
    pub(crate) fn new(
        plan: Plan,
        source: &Source,
        clock: Clock,
        check: Option<RowCheck>,
    ) -> Result<Mapper, ImportError> {
        let ts = source
            .timestamp
            .as_ref()
            .ok_or_else(|| ImportError::Mapping("the source has no timestamp mapping".to_owned()))?;
        let zone = Zone::parse(&ts.timezone).map_err(ImportError::Mapping)?;
        Ok(Mapper {
            plan,
            time: TimeParser::new(ts.format.clone(), zone),
            clock,
            check,
            errors: Vec::new(),
            tag_text: String::new(),
            tag_ranges: Vec::new(),
            tag_key: Vec::new(),
            values: Vec::new(),
            names: Vec::new(),
            key: Vec::new(),
            scratch: String::new(),
        })
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    fn fail(&mut self, kind: Kind, loc: &Location, slot: Option<usize>, cell: Option<&Cell>, message: String) {
        let (column, column_index) = match slot {
            Some(s) => (Some(self.plan.slots[s].name.clone()), self.plan.slots[s].index),
            None => (None, None),
        };
        self.push_error(kind, loc, column, column_index, cell, message);
    }

    fn push_error(
        &mut self,
        kind: Kind,
        loc: &Location,
        column: Option<String>,
        column_index: Option<usize>,
        cell: Option<&Cell>,
        message: String,
    ) {
        let value = cell.map(|c| cut_value(&c.shown()));
        let message = match &column {
            Some(c) => format!("{loc}, {}: {message}", column_label(c, column_index)),
            None => format!("{loc}: {message}"),
        };
        self.errors.push(CellError {
            kind,
            column,
            column_index,
            value,
            message,
        });
    }

    /// Maps one row: its points go to `out.batch`, or the row to `out.rejected`.
    pub(crate) fn row(
        &mut self,
        row: &dyn RowCells,
        loc: Location,
        raw: &mut dyn FnMut() -> Vec<u8>,
        out: &mut Output,
    ) {
        out.stats.rows += 1;
        self.errors.clear();
        self.values.clear();
        self.names.clear();
        self.tag_text.clear();
        self.tag_ranges.clear();

        let timestamp = self.timestamp(row, &loc);
        self.tags(row, &loc);
        let mut empty = 0;
        let errors_before_values = self.errors.len();
        if let Some((name_slot, value_slot)) = self.plan.narrow {
            self.narrow(row, &loc, name_slot, value_slot, &mut empty);
        } else {
            for i in 0..self.plan.values.len() {
                let slot = self.plan.values[i].slot;
                let cell = row.cell(slot);
                match value_of(&cell) {
                    Ok(Some(v)) => self.values.push((i, v, 0..0)),
                    Ok(None) => empty += 1,
                    Err((kind, msg)) => self.fail(kind, &loc, Some(slot), Some(&cell), msg),
                }
            }
            if self.plan.dynamic {
                self.dynamic_values(row, &loc, &mut empty);
            }
        }
        let had_values = !self.values.is_empty() || self.errors.len() > errors_before_values;
        if had_values && self.tag_ranges.is_empty() {
            self.push_error(
                Kind::NoTags,
                &loc,
                None,
                None,
                None,
                "every tag cell is empty, and KairosDB refuses points without tags".to_owned(),
            );
        }
        let Some(timestamp) = timestamp.filter(|_| self.errors.is_empty()) else {
            self.reject(loc, raw, out);
            return;
        };
        if let Some(check) = self.check.as_mut() {
            let info = RowInfo {
                timestamp,
                location: &loc,
                text: &self.tag_text,
                tags: &self.tag_ranges,
            };
            if let Err((kind, message)) = check(&info) {
                self.push_error(kind, &loc, None, None, None, message);
                self.reject(loc, raw, out);
                return;
            }
        }

        self.tag_key.clear();
        for (k, v) in &self.tag_ranges {
            series_key::push_str(&mut self.tag_key, &self.tag_text[k.clone()]);
            series_key::push_str(&mut self.tag_key, &self.tag_text[v.clone()]);
        }
        for (i, value, name) in &self.values {
            self.key.clear();
            if *i == usize::MAX {
                self.key.extend_from_slice(&self.names[name.clone()]);
            } else {
                self.key.extend_from_slice(&self.plan.values[*i].metric_key);
            }
            self.key.extend_from_slice(&self.tag_key);
            out.batch.push_encoded(&self.key, timestamp, *value, 0);
        }
        out.stats.rows_accepted += 1;
        out.stats.points += self.values.len() as u64;
        out.stats.empty_values += empty;
    }

    fn reject(&mut self, location: Location, raw: &mut dyn FnMut() -> Vec<u8>, out: &mut Output) {
        let errors = std::mem::take(&mut self.errors);
        let kind = errors.first().map_or(Kind::BadValue, |e| e.kind);
        let (raw, raw_truncated) = cut_raw(&raw());
        out.stats.quarantine_rows += 1;
        out.rejected.push(Rejected {
            kind,
            location,
            raw,
            raw_truncated,
            errors,
        });
    }

    fn timestamp(&mut self, row: &dyn RowCells, loc: &Location) -> Option<i64> {
        let Some(slot) = self.plan.ts else {
            return Some(self.clock.event_time.unwrap_or(self.clock.receive_time));
        };
        let cell = row.cell(slot);
        let parsed: Result<i64, TsError> = match cell {
            Cell::Absent => Err(missing()),
            Cell::Text(t) if t.trim_ascii().is_empty() => Err(missing()),
            Cell::Text(t) => self.time.text(t),
            Cell::JsonStr(s) => {
                let s = json_string(s);
                if s.trim().is_empty() {
                    Err(missing())
                } else {
                    self.time.text(s.as_bytes())
                }
            }
            Cell::Number(t) => self.time.number_text(t.as_bytes()),
            Cell::Int(v) => self.time.int(v),
            Cell::Float(v) => self.time.float(v),
            Cell::Timestamp(v, unit) => TimeParser::in_unit(v, unit),
            Cell::LocalTimestamp(v, unit) => self.time.local(v, unit),
            Cell::Date(d) => self.time.days(d),
            Cell::Bool(_) | Cell::Nested => Err(TsError {
                kind: Kind::BadTimestamp,
                message: format!("value \"{}\" is not a timestamp", cut_value(&cell.shown())),
            }),
        };
        match parsed {
            Ok(ms) => Some(ms),
            Err(e) if e.kind == Kind::MissingTimestamp && self.clock.event_time.is_some() => self.clock.event_time,
            Err(e) => {
                let shown = (e.kind != Kind::MissingTimestamp).then_some(&cell);
                self.fail(e.kind, loc, Some(slot), shown, e.message);
                None
            }
        }
    }

    fn tags(&mut self, row: &dyn RowCells, loc: &Location) {
        for i in 0..self.plan.tags.len() {
            let start = self.tag_text.len();
            self.tag_text.push_str(&self.plan.tags[i].name);
            let name = start..self.tag_text.len();
            let vstart = self.tag_text.len();
            let slot = match &self.plan.tags[i].source {
                TagSource::Static(v) => {
                    self.tag_text.push_str(v);
                    self.tag_ranges.push((name, vstart..self.tag_text.len()));
                    continue;
                }
                TagSource::Slot(s) => *s,
            };
            let cell = row.cell(slot);
            match text_of(&cell, &mut self.tag_text) {
                Ok(()) if self.tag_text.len() > vstart => {
                    self.tag_ranges.push((name, vstart..self.tag_text.len()));
                }
                Ok(()) => self.tag_text.truncate(start),
                Err(msg) => {
                    self.tag_text.truncate(start);
                    self.fail(Kind::BadValue, loc, Some(slot), Some(&cell), format!("tag {msg}"));
                }
            }
        }
    }

    fn narrow(&mut self, row: &dyn RowCells, loc: &Location, name_slot: usize, value_slot: usize, empty: &mut u64) {
        let name_cell = row.cell(name_slot);
        self.scratch.clear();
        self.scratch.push_str(&self.plan.prefix);
        let name_ok = match text_of(&name_cell, &mut self.scratch) {
            Ok(()) if self.scratch.len() == self.plan.prefix.len() => {
                self.fail(
                    Kind::BadName,
                    loc,
                    Some(name_slot),
                    None,
                    "the metric name cell is empty".to_owned(),
                );
                false
            }
            Ok(()) if self.scratch.starts_with(RESERVED_PREFIX) => {
                let msg = format!(
                    "metric \"{}\": names under \"{RESERVED_PREFIX}\" are kairosd's own",
                    cut_value(self.scratch.as_bytes())
                );
                self.fail(Kind::BadName, loc, Some(name_slot), Some(&name_cell), msg);
                false
            }
            Ok(()) => true,
            Err(msg) => {
                self.fail(
                    Kind::BadName,
                    loc,
                    Some(name_slot),
                    Some(&name_cell),
                    format!("metric name {msg}"),
                );
                false
            }
        };
        let cell = row.cell(value_slot);
        match value_of(&cell) {
            Ok(Some(v)) if name_ok => {
                let start = self.names.len();
                series_key::push_str(&mut self.names, &self.scratch);
                self.values.push((usize::MAX, v, start..self.names.len()));
            }
            Ok(Some(_)) => {}
            Ok(None) => *empty += 1,
            Err((kind, msg)) => self.fail(kind, loc, Some(value_slot), Some(&cell), msg),
        }
    }

    fn dynamic_values(&mut self, row: &dyn RowCells, loc: &Location, empty: &mut u64) {
        let Mapper {
            plan,
            errors,
            values,
            names,
            scratch,
            ..
        } = self;
        row.extras(&mut |name, cell| {
            if plan.is_claimed(name) || matches!(cell, Cell::Nested) {
                return;
            }
            let mut fail = |kind: Kind, msg: String, value: Option<String>| {
                errors.push(CellError {
                    kind,
                    column: Some(name.to_owned()),
                    column_index: None,
                    value,
                    message: format!("{loc}, {}: {msg}", column_label(name, None)),
                });
            };
            match value_of(&cell) {
                Ok(Some(v)) => {
                    scratch.clear();
                    scratch.push_str(&plan.prefix);
                    scratch.push_str(name);
                    if scratch.starts_with(RESERVED_PREFIX) {
                        let msg = format!("metric \"{scratch}\": names under \"{RESERVED_PREFIX}\" are kairosd's own");
                        fail(Kind::BadName, msg, None);
                        return;
                    }
                    let start = names.len();
                    series_key::push_str(names, scratch);
                    values.push((usize::MAX, v, start..names.len()));
                }
                Ok(None) => *empty += 1,
                Err((kind, msg)) => fail(kind, msg, Some(cut_value(&cell.shown()))),
            }
        });
    }
}

fn missing() -> TsError {
    TsError {
        kind: Kind::MissingTimestamp,
        message: "the timestamp cell is empty".to_owned(),
    }
}
