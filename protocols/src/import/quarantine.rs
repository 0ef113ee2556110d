//! What an import keeps of the records it could not use, so that nothing is dropped
//! silently: the raw bytes, where they were, why, and every problem of the row.
//!
//! Two classes, counted apart as Tinybird does: a record that cannot even be split into
//! cells (bad quoting, wrong field count, broken JSON, not UTF-8, too long) is an
//! *invalid line* ([`Kind::Malformed`]); a record that splits but does not fit the
//! mapping is a *quarantined row* (every other kind). Both are stored by the daemon.

use serde::{Deserialize, Serialize};

use crate::number::quote;

/// Raw bytes kept per record; a longer record is stored cut, with `raw_truncated` set.
pub const RAW_LIMIT: usize = 64 * 1024;

/// Characters of a cell quoted in an error's `value` and message.
pub const VALUE_LIMIT: usize = 200;

/// Why a record or row was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The record could not be split into cells (an invalid line).
    Malformed,
    BadTimestamp,
    MissingTimestamp,
    /// An `auto` timestamp of another unit than the import's first one.
    UnitMismatch,
    BadValue,
    NonFinite,
    BadName,
    NoTags,
    /// Decided by the daemon (replace imports), never by a decoder.
    OutsideReplaceRange,
    /// Decided by the daemon (retention), never by a decoder.
    BeyondRetention,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Malformed,
        Kind::BadTimestamp,
        Kind::MissingTimestamp,
        Kind::UnitMismatch,
        Kind::BadValue,
        Kind::NonFinite,
        Kind::BadName,
        Kind::NoTags,
        Kind::OutsideReplaceRange,
        Kind::BeyondRetention,
    ];

    /// The name used in JSON, in `kind=` filters and as the `kind` tag of `kairosd.import.rows`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Malformed => "malformed",
            Kind::BadTimestamp => "bad_timestamp",
            Kind::MissingTimestamp => "missing_timestamp",
            Kind::UnitMismatch => "unit_mismatch",
            Kind::BadValue => "bad_value",
            Kind::NonFinite => "non_finite",
            Kind::BadName => "bad_name",
            Kind::NoTags => "no_tags",
            Kind::OutsideReplaceRange => "outside_replace_range",
            Kind::BeyondRetention => "beyond_retention",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Invalid lines and quarantined rows are counted apart (`invalid_lines`, `quarantine_rows`).
    pub fn is_invalid_line(self) -> bool {
        self == Kind::Malformed
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a record sat in its input. Numbers a person counts are 1-based (line,
/// element, row); `offset` is the 0-based byte offset of the record's first byte in the
/// decompressed input; `row_group` is 0-based as Parquet tools print it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Physical line of the record's first byte, the CSV header counted (CSV, NDJSON, JSON).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
    /// Element of a top-level JSON array (JSON, KairosDB REST bodies).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub element: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub row_group: Option<u64>,
    /// Row of a Parquet file, counted over the whole file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub row: Option<u64>,
}

impl std::fmt::Display for Location {
    /// `line 17`, `element 3 (line 5)`, `row 12 (row group 0)`: the start of every message.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match (self.element, self.line, self.row) {
            (Some(e), Some(l), _) => write!(f, "element {e} (line {l})"),
            (Some(e), None, _) => write!(f, "element {e}"),
            (None, Some(l), _) => write!(f, "line {l}"),
            (None, None, Some(r)) => match self.row_group {
                Some(g) => write!(f, "row {r} (row group {g})"),
                None => write!(f, "row {r}"),
            },
            (None, None, None) => f.write_str("input"),
        }
    }
}

/// One problem of a row: which cell, its text, and a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellError {
    pub kind: Kind,
    /// The column's name in the source mapping, when the problem is one cell's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column: Option<String>,
    /// 1-based position of the column in the record (CSV, Parquet schema); JSON keys have none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column_index: Option<usize>,
    /// The cell as sent, cut at [`VALUE_LIMIT`] characters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
    /// E.g. `line 17, column 3 "temp": value "abc" is not a number`.
    pub message: String,
}

/// A record set aside: an invalid line or a quarantined row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The first error's kind.
    pub kind: Kind,
    pub location: Location,
    /// The record's bytes as read, its line terminator included (CSV, NDJSON), so that
    /// a CSV header followed by the raw bad records is a file that imports again. A
    /// Parquet row has no text of its own: its mapped cells are given as one NDJSON
    /// line, which imports into the same source.
    #[serde(with = "raw_text")]
    pub raw: Vec<u8>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_truncated: bool,
    /// Every problem of the row, in column order (rows are atomic: one bad cell sets
    /// the whole row aside, and a fixed row re-imports exactly its points).
    pub errors: Vec<CellError>,
}

impl Rejected {
    /// A record with one problem that is not a single cell's (`kind`, `message`).
    pub fn record(kind: Kind, location: Location, raw: &[u8], message: String) -> Rejected {
        let (raw, raw_truncated) = cut_raw(raw);
        Rejected {
            kind,
            location,
            raw,
            raw_truncated,
            errors: vec![CellError {
                kind,
                column: None,
                column_index: None,
                value: None,
                message,
            }],
        }
    }

    /// Adds a problem the daemon decided (e.g. [`Kind::OutsideReplaceRange`]) to an
    /// accepted row's record, or builds the first one.
    pub fn push_error(&mut self, error: CellError) {
        if self.errors.is_empty() {
            self.kind = error.kind;
        }
        self.errors.push(error);
    }
}

/// The first [`RAW_LIMIT`] bytes, and whether anything was left off.
pub fn cut_raw(raw: &[u8]) -> (Vec<u8>, bool) {
    if raw.len() > RAW_LIMIT {
        (raw[..RAW_LIMIT].to_vec(), true)
    } else {
        (raw.to_vec(), false)
    }
}

/// A cell's text for `value` and messages: at most [`VALUE_LIMIT`] characters, `…` when cut.
pub fn cut_value(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    match s.char_indices().nth(VALUE_LIMIT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// `column 3 "temp"` or, where positions mean nothing (JSON keys), `column "temp"`.
pub fn column_label(name: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("column {i} \"{}\"", quote(name.as_bytes())),
        None => format!("column \"{}\"", quote(name.as_bytes())),
    }
}

/// Raw bytes serialize as a string when they are UTF-8 (the usual case, readable in
/// `format=json`), else as an array of bytes.
mod raw_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(raw: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(raw) {
            Ok(text) => text.serialize(s),
            Err(_) => raw.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Raw::deserialize(d)? {
            Raw::Text(t) => t.into_bytes(),
            Raw::Bytes(b) => b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!(Kind::Malformed.is_invalid_line());
        assert!(!Kind::BadValue.is_invalid_line());
    }

    #[test]
    fn values_and_raw_are_cut() {
        let long = "x".repeat(250);
        let v = cut_value(long.as_bytes());
        assert_eq!(v.chars().count(), VALUE_LIMIT + 1);
        assert!(v.ends_with('…'));
        let raw = vec![b'a'; RAW_LIMIT + 5];
        let r = Rejected::record(Kind::Malformed, Location::default(), &raw, "m".into());
        assert!(r.raw_truncated);
        assert_eq!(r.raw.len(), RAW_LIMIT);
        let json = serde_json::to_string(&r).unwrap();
        let back: Rejected = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn locations_read_like_messages() {
        let l = Location {
            line: Some(17),
            offset: Some(3),
            ..Location::default()
        };
        assert_eq!(l.to_string(), "line 17");
        let p = Location {
            row_group: Some(0),
            row: Some(12),
            ..Location::default()
        };
        assert_eq!(p.to_string(), "row 12 (row group 0)");
        assert_eq!(column_label("temp", Some(3)), "column 3 \"temp\"");
    }
}
