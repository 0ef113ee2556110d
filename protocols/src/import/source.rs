//! A source: the named, versioned mapping from rows to datapoints (spec §1), as JSON.
//!
//! Columns are addressed by name (a CSV header cell, an NDJSON key, a `paths` entry
//! for nested JSON, a Parquet column), so one source takes any format. Validation
//! collects every problem at once, each naming the field, so a user fixes the source
//! in one round trip.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::format::Format;
use super::time::{TimeFormat, Zone};

/// Metric names under this prefix are kairosd's own (`kairosd.import.rows`).
pub const RESERVED_PREFIX: &str = "kairosd.";

/// Longest source name; names appear in URLs and tags.
pub const NAME_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// Set by the daemon when it stores a new version; ignored on input.
    #[serde(default)]
    pub version: u64,
    /// The format imports use when the request names none; `null`: by file name, else sniffed.
    #[serde(default)]
    pub format: Option<Format>,
    /// CSV and TSV options.
    #[serde(default)]
    pub csv: CsvOptions,
    /// Column names in order, for CSV without a header line.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// JSON paths (`$.a.b`) of columns nested in JSON rows, by column name. A column not
    /// listed is the top-level key of its name. Names, not paths, become metric and tag names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<String, String>,
    /// Required: `{"column": null}` stamps each row with the time it arrives.
    #[serde(default, deserialize_with = "present")]
    pub timestamp: Option<TimestampSpec>,
    pub metric: MetricSpec,
    #[serde(default)]
    pub tags: TagSpec,
    #[serde(default)]
    pub merge: Merge,
    /// `0` keeps points forever; else a duration such as `30d`, `12h`, `90m`.
    #[serde(default = "forever")]
    pub retention: String,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Consume a Kafka topic into this source (spec §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<super::kafka::KafkaSpec>,
}

fn forever() -> String {
    "0".to_owned()
}

fn yes() -> bool {
    true
}

/// Tells a missing `timestamp` (an error: stamping rows on arrival must be asked for)
/// from an explicit one.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimestampSpec>, D::Error> {
    TimestampSpec::deserialize(d).map(Some)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// One character; `null` means `,` for CSV and a tab for TSV.
    #[serde(default)]
    pub delimiter: Option<char>,
    #[serde(default)]
    pub header: HeaderMode,
    /// The quote character; `null` turns quoting off.
    #[serde(default = "double_quote")]
    pub quote: Option<char>,
}

fn double_quote() -> Option<char> {
    Some('"')
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: None,
            header: HeaderMode::Auto,
            quote: double_quote(),
        }
    }
}

/// Whether the first CSV record names the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMode {
    /// A header iff the first record holds the timestamp column's name (deterministic:
    /// no guessing from cell types); without a timestamp column, any mapped name.
    #[default]
    Auto,
    Present,
    Absent,
}

impl HeaderMode {
    /// `auto`, `true` or `false`, as in the `header=` query parameter.
    pub fn parse(s: &str) -> Option<HeaderMode> {
        match s {
            "auto" => Some(HeaderMode::Auto),
            "true" => Some(HeaderMode::Present),
            "false" => Some(HeaderMode::Absent),
            _ => None,
        }
    }
}

impl Serialize for HeaderMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HeaderMode::Auto => s.serialize_str("auto"),
            HeaderMode::Present => s.serialize_bool(true),
            HeaderMode::Absent => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for HeaderMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HeaderMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\", true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<HeaderMode, E> {
                Ok(if v { HeaderMode::Present } else { HeaderMode::Absent })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderMode, E> {
                HeaderMode::parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    /// `null`: the time the row arrives (or the import's `event_time`).
    pub column: Option<String>,
    #[serde(default)]
    pub format: TimeFormat,
    /// For timestamps without an offset: `UTC`, an IANA name (`Europe/Berlin`) or `+02:00`.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    #[serde(default)]
    pub prefix: String,
    /// Wide rows: each value cell is a point named prefix + column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_columns: Option<ValueColumns>,
    /// Narrow rows: the metric is prefix + this cell, the value `value_column`'s cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_column: Option<String>,
}

/// `"*"` (every column no other role maps) or a list of column names.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueColumns {
    All,
    List(Vec<String>),
}

impl Serialize for ValueColumns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ValueColumns::All => s.serialize_str("*"),
            ValueColumns::List(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ValueColumns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d) {
            Ok(Raw::One(s)) if s == "*" => Ok(ValueColumns::All),
            Ok(Raw::One(s)) => Ok(ValueColumns::List(vec![s])),
            Ok(Raw::List(l)) if l.len() == 1 && l[0] == "*" => Ok(ValueColumns::All),
            Ok(Raw::List(l)) => Ok(ValueColumns::List(l)),
            Err(_) => Err(de::Error::custom(
                "metric.value_columns must be \"*\" or a list of column names",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagSpec {
    /// Each becomes a tag named after the column; an empty cell leaves its tag out.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Tags every point of the source gets.
    #[serde(default, rename = "static")]
    pub fixed: BTreeMap<String, String>,
}

/// What a point whose (series, timestamp) already exists does (spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Merge {
    /// Last write wins, as telnet and REST.
    #[default]
    Append,
    /// First write wins; duplicates and conflicts are counted.
    Ledger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Bad rows go to quarantine; the rest is committed.
    #[default]
    Quarantine,
    /// One bad row fails the import; nothing is committed.
    Abort,
}

/// Why a source cannot be used, every problem listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceErrors(pub Vec<String>);

impl fmt::Display for SourceErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for SourceErrors {}

impl Source {
    /// Parses and validates a source's JSON.
    pub fn from_json(json: &[u8]) -> Result<Source, SourceErrors> {
        let source: Source =
            serde_json::from_slice(json).map_err(|e| SourceErrors(vec![format!("source is not valid: {e}")]))?;
        source.validate()?;
        Ok(source)
    }

    /// Every problem of the mapping, each naming its field.
    pub fn validate(&self) -> Result<(), SourceErrors> {
        let mut errors = Vec::new();
        let e = &mut errors;
        if self.name.is_empty() {
            e.push("name may not be empty".to_owned());
        } else if self.name.len() > NAME_MAX
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            e.push(format!(
                "name {:?} must be 1 to {NAME_MAX} characters of A-Z a-z 0-9 _ . -",
                self.name
            ));
        }

        match &self.timestamp {
            None => e.push(
                "timestamp is required: {\"column\": \"<name>\", \"format\": \"auto\"}, or {\"column\": null} \
                 to stamp rows with the time they arrive"
                    .to_owned(),
            ),
            Some(ts) => {
                if ts.column.as_deref() == Some("") {
                    e.push("timestamp.column may not be empty (use null for the arrival time)".to_owned());
                }
                if let Err(msg) = ts.format.check() {
                    e.push(format!("timestamp.format: {msg}"));
                }
                if let Err(msg) = Zone::parse(&ts.timezone) {
                    e.push(format!("timestamp.timezone: {msg}"));
                }
            }
        }

        let m = &self.metric;
        if m.prefix.starts_with(RESERVED_PREFIX) {
            e.push(format!(
                "metric.prefix {:?}: names under \"{RESERVED_PREFIX}\" are reserved for kairosd's own metrics",
                m.prefix
            ));
        }
        match (&m.value_columns, &m.name_column, &m.value_column) {
            (Some(_), None, None) => {}
            (None, Some(_), Some(_)) => {}
            (None, None, None) => e.push(
                "metric needs value_columns (wide rows: one point per value cell) or name_column and \
                 value_column (narrow rows)"
                    .to_owned(),
            ),
            (Some(_), _, _) => {
                e.push("metric: give either value_columns or name_column and value_column, not both".to_owned())
            }
            (None, Some(_), None) => e.push("metric.name_column needs metric.value_column".to_owned()),
            (None, None, Some(_)) => e.push("metric.value_column needs metric.name_column".to_owned()),
        }
        if let Some(ValueColumns::List(list)) = &m.value_columns {
            if list.is_empty() {
                e.push("metric.value_columns may not be empty (use \"*\" for every unmapped column)".to_owned());
            }
            if list.iter().any(|c| c == "*") {
                e.push("metric.value_columns: \"*\" stands alone, not in a list of names".to_owned());
            }
            for c in list {
                if m.prefix.is_empty() && c.starts_with(RESERVED_PREFIX) {
                    e.push(format!(
                        "metric.value_columns: {c:?} is under the reserved \"{RESERVED_PREFIX}\""
                    ));
                }
            }
        }

        if self.tags.columns.is_empty() && self.tags.fixed.is_empty() {
            e.push(
                "tags: the source maps no tags, and KairosDB refuses points without one; add tags.columns \
                 or tags.static"
                    .to_owned(),
            );
        }
        for (k, v) in &self.tags.fixed {
            if k.is_empty() {
                e.push("tags.static: a tag name may not be empty".to_owned());
            }
            if v.is_empty() {
                e.push(format!("tags.static.{k}: the value may not be empty"));
            }
            if self.tags.columns.contains(k) {
                e.push(format!("tags: {k:?} is both a tag column and a static tag"));
            }
        }

        // Each column plays one role.
        let mut roles: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut claim = |e: &mut Vec<String>, name: &str, what: &'static str| {
            if name.is_empty() {
                e.push(format!("{what}: a column name may not be empty"));
            } else if let Some(prev) = roles.get(name) {
                e.push(format!("column {name:?} is mapped twice: as {prev} and as {what}"));
            } else {
                roles.insert(name.to_owned(), what);
            }
        };
        let mut mapped: Vec<String> = Vec::new();
        if let Some(TimestampSpec { column: Some(c), .. }) = &self.timestamp {
            if !c.is_empty() {
                claim(e, c, "timestamp.column");
                mapped.push(c.clone());
            }
        }
        for c in &self.tags.columns {
            claim(e, c, "tags.columns");
            mapped.push(c.clone());
        }
        if let Some(c) = &m.name_column {
            claim(e, c, "metric.name_column");
            mapped.push(c.clone());
        }
        if let Some(c) = &m.value_column {
            claim(e, c, "metric.value_column");
            mapped.push(c.clone());
        }
        if let Some(ValueColumns::List(list)) = &m.value_columns {
            for c in list.iter().filter(|c| *c != "*") {
                claim(e, c, "metric.value_columns");
                mapped.push(c.clone());
            }
        }

        if let Some(cols) = &self.columns {
            let mut seen = std::collections::BTreeSet::new();
            for c in cols {
                if c.is_empty() {
                    e.push("columns: a column name may not be empty".to_owned());
                } else if !seen.insert(c.as_str()) {
                    e.push(format!("columns: {c:?} is listed twice"));
                }
            }
            for c in &mapped {
                if !seen.contains(c.as_str()) {
                    e.push(format!("column {c:?} is not in columns (found: {})", cols.join(",")));
                }
            }
        }
        for (name, path) in &self.paths {
            if let Err(msg) = super::json::parse_path(path) {
                e.push(format!("paths.{name}: {msg}"));
            }
        }

        if let Some(d) = self.csv.delimiter {
            if !d.is_ascii() || d == '\n' || d == '\r' || Some(d) == self.csv.quote {
                e.push(format!(
                    "csv.delimiter {d:?} must be one ASCII character other than a newline or the quote"
                ));
            }
        }
        if let Some(q) = self.csv.quote {
            if !q.is_ascii() || q == '\n' || q == '\r' {
                e.push(format!(
                    "csv.quote {q:?} must be one ASCII character other than a newline"
                ));
            }
        }
        if let Err(msg) = parse_retention(&self.retention) {
            e.push(format!("retention: {msg}"));
        }
        if let Some(k) = &self.kafka {
            e.extend(k.problems());
            if k.payload == super::kafka::Payload::Csv && self.columns.is_none() {
                e.push(
                    "kafka.payload csv: messages carry no header, so the source needs columns (the names in order)"
                        .to_owned(),
                );
            }
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(SourceErrors(errors))
        }
    }

    /// How long the source's points are kept, in milliseconds; `None` is forever.
    pub fn retention_ms(&self) -> Option<u64> {
        parse_retention(&self.retention).ok().flatten()
    }

    /// The timestamp column, if rows carry their time.
    pub fn timestamp_column(&self) -> Option<&str> {
        self.timestamp.as_ref().and_then(|t| t.column.as_deref())
    }

    /// Every column name the mapping names explicitly (not the `"*"` ones), roles in
    /// the order timestamp, tags, name, value(s).
    pub fn mapped_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        out.extend(self.timestamp_column());
        out.extend(self.tags.columns.iter().map(String::as_str));
        out.extend(self.metric.name_column.as_deref());
        out.extend(self.metric.value_column.as_deref());
        if let Some(ValueColumns::List(l)) = &self.metric.value_columns {
            out.extend(l.iter().map(String::as_str));
        }
        out
    }
}

/// `0` (forever, `None`) or a positive whole number with a unit: `ms s m h d w`.
pub fn parse_retention(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(None);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not 0 or a duration such as 30d, 12h, 90m"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("{s:?}: the unit must be one of ms s m h d w")),
    };
    if n == 0 {
        return Err(format!("{s:?}: use \"0\" to keep points forever"));
    }
    n.checked_mul(ms).map(Some).ok_or_else(|| format!("{s:?} is too long"))
}
