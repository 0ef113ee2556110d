//! KairosDB's own JSON as an import format: metric objects as `POST /api/v1/datapoints`
//! takes them, either a REST body (an array) or an export (one object per line). Each
//! object is one row, decoded by [`crate::rest`] with KairosDB's rules and messages;
//! the object's names and tags are its own, so no source mapping applies.
//!
//! Rows are atomic here too: where REST keeps the good `datapoints` entries of an
//! object with a bad one, an import sets the whole object aside, so that the fixed
//! object re-imports exactly what was missing.

use super::framing::{Framer, Record};
use super::json::malformed;
use super::quarantine::{CellError, Kind, Rejected};
use super::{ImportError, Output};
use crate::datapoint::PointBatch;
use crate::rest;

pub(crate) struct KairosDecoder {
    framer: Framer,
    scratch: PointBatch,
}

impl KairosDecoder {
    pub(crate) fn new(lines: bool, max_record: usize) -> KairosDecoder {
        KairosDecoder {
            framer: if lines {
                Framer::lines(max_record)
            } else {
                Framer::values(max_record)
            },
            scratch: PointBatch::new(),
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Output) -> Result<(), ImportError> {
        let scratch = &mut self.scratch;
        self.framer.feed(chunk, &mut |r| {
            object(r, scratch, out);
            Ok(())
        })
    }

    pub(crate) fn finish(&mut self, out: &mut Output) -> Result<(), ImportError> {
        let scratch = &mut self.scratch;
        self.framer.finish(&mut |r| {
            object(r, scratch, out);
            Ok(())
        })
    }
}

/// The kind of one of `rest`'s messages.
fn kind_of(message: &str) -> Kind {
    if message.starts_with("Invalid json") || message.contains("must be a JSON object") {
        Kind::Malformed
    } else if message.contains("not a finite number") {
        Kind::NonFinite
    } else if message.contains(".name ") || message.contains("name may not") {
        Kind::BadName
    } else if message.contains("tags count") {
        Kind::NoTags
    } else if message.contains("timestamp") || message.contains(".time ") {
        Kind::BadTimestamp
    } else {
        Kind::BadValue
    }
}

fn object(r: Record, scratch: &mut PointBatch, out: &mut Output) {
    if let Some(problem) = &r.problem {
        malformed(&r, problem.clone(), out);
        return;
    }
    let body = r.bytes.trim_ascii();
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.first() != Some(&b'{') {
        malformed(&r, "not a JSON object".to_owned(), out);
        return;
    }
    scratch.clear();
    let errors = rest::decode_into(body, scratch);
    if errors.is_empty() {
        out.stats.rows += 1;
        out.stats.rows_accepted += 1;
        out.stats.points += scratch.len() as u64;
        out.batch.append(scratch);
        return;
    }
    out.stats.rows += 1;
    let loc = r.location;
    // `rest` numbers the objects of one body; here every record is its own body.
    let errors: Vec<CellError> = errors
        .into_iter()
        .map(|m| CellError {
            kind: kind_of(&m),
            column: None,
            column_index: None,
            value: None,
            message: format!(
                "{loc}: {}",
                m.strip_prefix("metric[0]")
                    .map_or(m.as_str(), |s| s.trim_start_matches('.'))
            ),
        })
        .collect();
    let kind = errors[0].kind;
    if kind.is_invalid_line() {
        out.stats.invalid_lines += 1;
    } else {
        out.stats.quarantine_rows += 1;
    }
    let (raw, raw_truncated) = super::quarantine::cut_raw(r.bytes);
    out.rejected.push(Rejected {
        kind,
        location: loc,
        raw,
        raw_truncated,
        errors,
    });
}
