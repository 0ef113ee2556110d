//! `POST /api/v1/import/analyze`: what a sample holds and a source that imports it.
//!
//! From the first 1000 rows it detects each column's role (timestamp, tag, value or
//! ignore), the timestamp format and the value type, and proposes a source that passes
//! validation as it is, with a preview of what importing the sample through it gives.
//! Imports never use this guess by themselves (spec §3: guesses from first rows break
//! later ones); a person or script confirms it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::format::{Compression, Format, Gunzip};
use super::framing::Framer;
use super::mapping::Clock;
use super::quarantine::{cut_value, CellError};
use super::source::{CsvOptions, HeaderMode, MetricSpec, Source, TagSpec, TimestampSpec, ValueColumns};
use super::time::{detect_format, TimeFormat, Unit};
use super::{Import, ImportError, ImportOptions, Output};

/// Rows looked at.
pub const SAMPLE_ROWS: usize = 1000;

/// Names that mark a timestamp column.
const TIME_NAMES: &[&str] = &[
    "time",
    "timestamp",
    "ts",
    "date",
    "datetime",
    "_time",
    "@timestamp",
    "event_time",
    "t",
];

#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    pub format: Option<Format>,
    /// A file name, for the format by extension and the proposed source's name.
    pub file_name: Option<String>,
    /// The proposed source's name (default: from the file name, else `import`).
    pub source_name: Option<String>,
    pub header: Option<HeaderMode>,
    pub delimiter: Option<u8>,
    /// Stamps rows in the preview when no timestamp column is found.
    pub receive_time: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detected {
    Timestamp,
    Tag,
    Value,
    Ignore,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectedColumn {
    pub name: String,
    /// 1-based position (CSV field, Parquet column, first-seen JSON key).
    pub index: usize,
    /// The JSON path of a nested key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub detected: Detected,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<String>,
    /// `long`, `double`, `string`, `boolean`, `timestamp`, `object`, or `empty`.
    pub value_type: &'static str,
    pub present_pct: f64,
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub rows: u64,
    pub points: u64,
    pub would_quarantine: u64,
    pub empty_values: u64,
    /// The first problems, as an import would list them.
    pub errors: Vec<CellError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Statistics {
    pub rows_analyzed: usize,
    pub bytes_analyzed: u64,
    pub columns: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub format: Format,
    pub compression: Compression,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    pub columns: Vec<DetectedColumn>,
    /// Ready to `POST /api/v1/sources`.
    pub source: Source,
    pub preview: Preview,
    pub statistics: Statistics,
}

/// A cell of the sample, owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sample {
    Absent,
    Text(String),
    Number(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Timestamp,
    Nested,
}

impl Sample {
    fn shown(&self) -> Option<String> {
        match self {
            Sample::Absent => None,
            Sample::Text(t) if t.trim().is_empty() => None,
            Sample::Text(t) | Sample::Number(t) => Some(cut_value(t.as_bytes())),
            Sample::Bool(b) => Some(b.to_string()),
            Sample::Int(v) => Some(v.to_string()),
            Sample::Float(v) => Some(v.to_string()),
            Sample::Timestamp => Some("(timestamp)".to_owned()),
            Sample::Nested => Some("(object)".to_owned()),
        }
    }
}

/// The table read from the sample: column names (and JSON paths) and rows of cells.
pub(crate) struct Table {
    pub names: Vec<String>,
    pub paths: Vec<Option<String>>,
    pub rows: Vec<Vec<Sample>>,
    /// Decompressed bytes that hold the rows (what the preview imports).
    pub end: usize,
}

/// Analyzes a sample body (the whole body or its start).
pub fn analyze(input: &[u8], options: &AnalyzeOptions) -> Result<Analysis, ImportError> {
    let compression = Compression::detect(input)?;
    let plain: Vec<u8> = match compression {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let mut out = Vec::new();
            let mut g = Gunzip::new();
            let mut sink = |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            };
            g.feed(input, &mut sink)?;
            // A sample may be cut anywhere: what decompressed is what there is.
            let _ = g.finish(&mut sink);
            out
        }
    };
    let format = options
        .format
        .or_else(|| options.file_name.as_deref().and_then(Format::from_name))
        .unwrap_or_else(|| Format::sniff(&plain));
    let name = source_name(options);
    let mut delimiter = None;
    let mut header = None;
    let table = match format {
        Format::Csv | Format::Tsv => {
            let d = options.delimiter.unwrap_or_else(|| {
                if format == Format::Tsv {
                    b'\t'
                } else {
                    sniff_delimiter(&plain)
                }
            });
            delimiter = Some(d);
            let (t, h) = csv_table(&plain, d, options.header)?;
            header = Some(h);
            t
        }
        Format::Ndjson | Format::Json => json_table(&plain, format == Format::Ndjson)?,
        Format::Parquet => super::parquet::sample(bytes::Bytes::from(plain.clone()), SAMPLE_ROWS)?,
        Format::Kairosdb => {
            return Err(ImportError::Mapping(
                "format kairosdb carries its own names and tags; it needs no analysis or source".to_owned(),
            ))
        }
    };
    let mut columns = detect(&table);
    let source = propose(&name, format, delimiter, header, &table, &mut columns);
    source
        .validate()
        .map_err(|e| ImportError::Mapping(format!("the proposed source is not valid: {e}")))?;

    let mut out = Output::default();
    let mut import = Import::new(
        Some(source.clone()),
        ImportOptions {
            format: Some(format),
            clock: Clock {
                event_time: None,
                receive_time: options.receive_time,
            },
            ..ImportOptions::default()
        },
    )?;
    let body = if format == Format::Parquet {
        &plain[..]
    } else {
        &plain[..table.end]
    };
    import.feed(body, &mut out)?;
    import.finish(&mut out)?;
    let preview = Preview {
        rows: out.stats.rows,
        points: out.stats.points,
        would_quarantine: out.stats.quarantine_rows + out.stats.invalid_lines,
        empty_values: out.stats.empty_values,
        errors: out
            .rejected
            .iter()
            .flat_map(|r| r.errors.iter().cloned())
            .take(20)
            .collect(),
    };
    Ok(Analysis {
        format,
        compression,
        delimiter: delimiter.map(|d| (d as char).to_string()),
        header,
        statistics: Statistics {
            rows_analyzed: table.rows.len(),
            bytes_analyzed: body.len() as u64,
            columns: columns.len(),
        },
        columns,
        source,
        preview,
    })
}

fn source_name(options: &AnalyzeOptions) -> String {
    if let Some(n) = &options.source_name {
        return n.clone();
    }
    let stem = options
        .file_name
        .as_deref()
        .and_then(|f| f.rsplit(['/', '\\']).next())
        .and_then(|f| f.split('.').next())
        .unwrap_or("");
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "import".to_owned()
    } else {
        clean
    }
}

/// The delimiter among `, ; \t |` that the first line holds most of.
fn sniff_delimiter(plain: &[u8]) -> u8 {
    let line = &plain[..memchr::memchr(b'\n', plain).unwrap_or(plain.len())];
    let mut best = (0, b',');
    for d in [b',', b';', b'\t', b'|'] {
        let n = line.iter().filter(|&&b| b == d).count();
        if n > best.0 {
            best = (n, d);
        }
    }
    best.1
}

fn csv_table(plain: &[u8], delimiter: u8, header: Option<HeaderMode>) -> Result<(Table, bool), ImportError> {
    let mut rdr = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut pos = 0;
    let mut out = vec![0u8; 1 << 16];
    let mut ends = vec![0usize; 1024];
    let mut end = 0;
    while records.len() <= SAMPLE_ROWS {
        let (res, nin, nout, nend) = rdr.read_record(&plain[pos..], &mut out, &mut ends);
        pos += nin;
        match res {
            csv_core::ReadRecordResult::Record => {
                let mut start = 0;
                let rec: Vec<String> = ends[..nend]
                    .iter()
                    .map(|&e| {
                        let f = String::from_utf8_lossy(&out[start..e.min(nout)]).trim().to_owned();
                        start = e;
                        f
                    })
                    .collect();
                end = pos;
                if !(rec.len() == 1 && rec[0].is_empty()) {
                    records.push(rec);
                }
            }
            csv_core::ReadRecordResult::End => break,
            csv_core::ReadRecordResult::InputEmpty => {}
            csv_core::ReadRecordResult::OutputFull | csv_core::ReadRecordResult::OutputEndsFull => {
                return Err(ImportError::Input(
                    "analyze: a record of the sample is too long (over 64 KiB)".to_owned(),
                ))
            }
        }
    }
    let is_header = match header {
        Some(HeaderMode::Present) => true,
        Some(HeaderMode::Absent) => false,
        _ => looks_like_header(&records),
    };
    let width = records.iter().map(Vec::len).max().unwrap_or(0);
    let names: Vec<String> = if is_header && !records.is_empty() {
        let h = records.remove(0);
        (0..width)
            .map(|i| {
                h.get(i)
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("c{}", i + 1))
            })
            .collect()
    } else {
        (1..=width).map(|i| format!("c{i}")).collect()
    };
    let rows = records
        .into_iter()
        .take(SAMPLE_ROWS)
        .map(|r| {
            (0..width)
                .map(|i| match r.get(i) {
                    Some(t) if t.is_empty() => Sample::Absent,
                    Some(t) => Sample::Text(t.clone()),
                    None => Sample::Absent,
                })
                .collect()
        })
        .collect();
    let paths = vec![None; names.len()];
    Ok((
        Table {
            names,
            paths,
            rows,
            end,
        },
        is_header,
    ))
}

/// A first record is a header when none of its cells is a number or timestamp while a
/// later record has one in the same column, or when it is the only record and holds
/// no number.
fn looks_like_header(records: &[Vec<String>]) -> bool {
    let Some(first) = records.first() else {
        return false;
    };
    let typed = |s: &str| is_number(s) || detect_format(&[s.as_bytes()]).is_some();
    if first.iter().any(|c| typed(c) || c.is_empty()) {
        return false;
    }
    if records.len() == 1 {
        return true;
    }
    (0..first.len()).any(|i| records[1..].iter().any(|r| r.get(i).is_some_and(|c| typed(c))))
}

fn is_number(s: &str) -> bool {
    matches!(
        super::cell::value_of(&super::cell::Cell::Text(s.as_bytes())),
        Ok(Some(_))
    )
}

fn json_table(plain: &[u8], lines: bool) -> Result<Table, ImportError> {
    let mut framer = if lines {
        Framer::lines(super::MAX_RECORD_BYTES)
    } else {
        Framer::values(super::MAX_RECORD_BYTES)
    };
    let mut objects: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    let mut end = 0usize;
    let mut sink = |r: super::framing::Record| {
        if objects.len() >= SAMPLE_ROWS {
            return Ok(());
        }
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(r.bytes) {
            objects.push(m);
        }
        end = (r.location.offset.unwrap_or(0) as usize + r.bytes.len()).max(end);
        Ok(())
    };
    framer.feed(plain, &mut sink)?;
    framer.finish(&mut sink)?;
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut rows_flat: Vec<BTreeMap<Vec<String>, Sample>> = Vec::new();
    for m in &objects {
        let mut flat = BTreeMap::new();
        flatten(&mut Vec::new(), m, &mut flat, &mut order);
        rows_flat.push(flat);
    }
    // A nested key is named by its last segment unless another column has that name.
    let last = |p: &Vec<String>| p.last().cloned().unwrap_or_default();
    let names: Vec<String> = order
        .iter()
        .map(|p| {
            if p.len() == 1 || order.iter().filter(|q| last(q) == last(p)).count() > 1 {
                p.join("_")
            } else {
                last(p)
            }
        })
        .collect();
    let paths = order
        .iter()
        .map(|p| (p.len() > 1).then(|| format!("$.{}", p.join("."))))
        .collect();
    let rows = rows_flat
        .into_iter()
        .map(|mut flat| order.iter().map(|p| flat.remove(p).unwrap_or(Sample::Absent)).collect())
        .collect();
    // A JSON array sample may end inside the array; the preview imports what framed.
    let end = if lines { end } else { plain.len() };
    Ok(Table {
        names,
        paths,
        rows,
        end,
    })
}

fn flatten(
    prefix: &mut Vec<String>,
    m: &serde_json::Map<String, serde_json::Value>,
    flat: &mut BTreeMap<Vec<String>, Sample>,
    order: &mut Vec<Vec<String>>,
) {
    for (k, v) in m {
        if k.contains('.') {
            continue; // not addressable by a `$.a.b` path
        }
        prefix.push(k.clone());
        if let serde_json::Value::Object(inner) = v {
            flatten(prefix, inner, flat, order);
        } else {
            let s = match v {
                serde_json::Value::Null => Sample::Absent,
                serde_json::Value::Bool(b) => Sample::Bool(*b),
                serde_json::Value::Number(n) => Sample::Number(n.to_string()),
                serde_json::Value::String(s) => Sample::Text(s.clone()),
                _ => Sample::Nested,
            };
            if !order.contains(prefix) {
                order.push(prefix.clone());
            }
            flat.insert(prefix.clone(), s);
        }
        prefix.pop();
    }
}

/// Each column's role and types.
fn detect(table: &Table) -> Vec<DetectedColumn> {
    let n = table.rows.len().max(1);
    let mut columns = Vec::new();
    for (i, name) in table.names.iter().enumerate() {
        let cells: Vec<&Sample> = table.rows.iter().map(|r| &r[i]).collect();
        let present: Vec<&Sample> = cells.iter().copied().filter(|c| c.shown().is_some()).collect();
        let mut samples: Vec<String> = Vec::new();
        for c in &present {
            if let Some(s) = c.shown() {
                if !samples.contains(&s) {
                    samples.push(s);
                }
            }
            if samples.len() == 3 {
                break;
            }
        }
        let texts: Vec<&[u8]> = present
            .iter()
            .filter_map(|c| match c {
                Sample::Text(t) | Sample::Number(t) => Some(t.as_bytes()),
                _ => None,
            })
            .collect();
        let all_numeric = !present.is_empty()
            && present.iter().all(|c| match c {
                Sample::Int(_) | Sample::Float(_) => true,
                Sample::Text(t) | Sample::Number(t) => is_number(t),
                _ => false,
            });
        let all_long = present.iter().all(|c| match c {
            Sample::Int(_) => true,
            Sample::Text(t) | Sample::Number(t) => matches!(
                super::cell::value_of(&super::cell::Cell::Text(t.as_bytes())),
                Ok(Some(crate::Value::Long(_)))
            ),
            _ => false,
        });
        let value_type = if present.is_empty() {
            "empty"
        } else if present.iter().all(|c| matches!(c, Sample::Timestamp)) {
            "timestamp"
        } else if all_numeric && all_long {
            "long"
        } else if all_numeric {
            "double"
        } else if present.iter().all(|c| matches!(c, Sample::Bool(_))) {
            "boolean"
        } else if present.iter().any(|c| matches!(c, Sample::Nested)) {
            "object"
        } else {
            "string"
        };
        let ts_format = if value_type == "timestamp" {
            Some(TimeFormat::Auto)
        } else if texts.len() == present.len() {
            detect_format(&texts)
        } else {
            present
                .iter()
                .map(|c| match c {
                    Sample::Int(v) => Some(*v),
                    _ => None,
                })
                .collect::<Option<Vec<i64>>>()
                .and_then(|v| {
                    let t: Vec<String> = v.iter().map(i64::to_string).collect();
                    let t: Vec<&[u8]> = t.iter().map(|s| s.as_bytes()).collect();
                    detect_format(&t)
                })
        };
        let detected = if present.is_empty() || value_type == "object" {
            Detected::Ignore
        } else if all_numeric {
            Detected::Value
        } else if value_type == "timestamp" || ts_format.is_some() {
            Detected::Timestamp
        } else if present
            .iter()
            .all(|c| c.shown().is_some_and(|s| s.chars().count() <= 200))
        {
            Detected::Tag
        } else {
            Detected::Ignore
        };
        columns.push(DetectedColumn {
            name: name.clone(),
            index: i + 1,
            path: table.paths[i].clone(),
            detected,
            timestamp_format: ts_format.as_ref().map(TimeFormat::name),
            value_type,
            present_pct: (present.len() as f64 * 1000.0 / n as f64).round() / 10.0,
            samples,
        });
    }
    // One timestamp column: a time-ish name first, then typed or RFC 3339 text, then
    // a numeric column of epoch-like numbers with a time-ish name. The others are
    // values (numbers) or tags (text).
    let time_named = |c: &DetectedColumn| TIME_NAMES.contains(&c.name.to_ascii_lowercase().as_str());
    let pick = columns
        .iter()
        .position(|c| c.detected == Detected::Timestamp && time_named(c))
        .or_else(|| columns.iter().position(|c| c.detected == Detected::Timestamp))
        .or_else(|| {
            columns
                .iter()
                .position(|c| c.timestamp_format.is_some() && time_named(c))
        });
    for (i, c) in columns.iter_mut().enumerate() {
        if Some(i) == pick {
            c.detected = Detected::Timestamp;
        } else {
            if c.detected == Detected::Timestamp {
                c.detected = Detected::Tag;
            }
            c.timestamp_format = None;
        }
    }
    columns
}

fn propose(
    name: &str,
    format: Format,
    delimiter: Option<u8>,
    header: Option<bool>,
    table: &Table,
    columns: &mut [DetectedColumn],
) -> Source {
    let ts = columns.iter().find(|c| c.detected == Detected::Timestamp);
    let ts_format = ts
        .and_then(|c| c.timestamp_format.as_deref())
        .and_then(|f| TimeFormat::parse(f).ok())
        .unwrap_or(TimeFormat::Auto);
    // Parquet TIMESTAMP columns carry their unit; `auto` lets them.
    let ts_format = if matches!(ts_format, TimeFormat::Unix(Unit::Seconds | Unit::Millis)) && format == Format::Parquet
    {
        TimeFormat::Auto
    } else {
        ts_format
    };
    let tags: Vec<String> = columns
        .iter()
        .filter(|c| c.detected == Detected::Tag)
        .map(|c| c.name.clone())
        .collect();
    let values: Vec<String> = columns
        .iter()
        .filter(|c| c.detected == Detected::Value)
        .map(|c| c.name.clone())
        .collect();
    let mut fixed = BTreeMap::new();
    if tags.is_empty() {
        // KairosDB needs a tag on every point.
        fixed.insert("source".to_owned(), name.to_owned());
    }
    let paths = columns
        .iter()
        .filter(|c| c.detected != Detected::Ignore)
        .filter_map(|c| c.path.clone().map(|p| (c.name.clone(), p)))
        .collect();
    let headerless = header == Some(false);
    Source {
        name: name.to_owned(),
        version: 0,
        format: Some(format),
        csv: CsvOptions {
            delimiter: delimiter.map(char::from),
            header: match header {
                Some(true) => HeaderMode::Present,
                Some(false) => HeaderMode::Absent,
                None => HeaderMode::Auto,
            },
            quote: Some('"'),
        },
        columns: headerless.then(|| table.names.clone()),
        paths,
        timestamp: Some(TimestampSpec {
            column: ts.map(|c| c.name.clone()),
            format: ts_format,
            timezone: "UTC".to_owned(),
        }),
        metric: MetricSpec {
            prefix: format!("{name}."),
            value_columns: Some(if values.is_empty() {
                ValueColumns::All
            } else {
                ValueColumns::List(values)
            }),
            name_column: None,
            value_column: None,
        },
        tags: TagSpec { columns: tags, fixed },
        merge: Default::default(),
        retention: "0".to_owned(),
        on_error: Default::default(),
        enabled: true,
        kafka: None,
    }
}
