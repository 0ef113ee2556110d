//! CSV and TSV rows, fed in chunks of any size.
//!
//! `csv-core` splits records (quoting, doubled quotes, embedded newlines, CR/LF/CRLF
//! endings, a UTF-8 BOM) without allocating; this module adds what an import needs on
//! top: the header rule, exact locations (physical line of the record's first byte,
//! the header counted, and byte offset), the raw bytes of records that are set aside,
//! and the limits that make a record an invalid line (field count, UTF-8, length,
//! an unclosed quote). A record split across two chunks keeps only its own bytes
//! from the earlier chunk, so memory stays at one record, not one body.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::mapping::{Cell, Clock, Mapper, Plan, RowCells, RowCheck};
use super::quarantine::{cut_value, Kind, Location, Rejected};
use super::source::{HeaderMode, Source};
use super::{ImportError, Output};

/// The settings that decide how a CSV body splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvDialect {
    pub delimiter: u8,
    pub quote: Option<u8>,
    pub header: HeaderMode,
}

enum State {
    /// Waiting for the first record to decide whether it is a header.
    Header {
        source: Box<Source>,
        clock: Clock,
        check: Option<RowCheck>,
    },
    Rows {
        mapper: Box<Mapper>,
        /// For each field position, its slot in the plan.
        positions: Vec<Option<usize>>,
        /// `field position -> slot`, inverted: the field each slot reads.
        fields_of_slot: Vec<usize>,
        /// What the field count is checked against, for the message.
        names_from: &'static str,
    },
    /// A mapping error ended the import; later records get it again.
    Failed(ImportError),
}

pub(crate) struct CsvDecoder {
    rdr: Reader,
    dialect: CsvDialect,
    out: Vec<u8>,
    outlen: usize,
    ends: Vec<usize>,
    endlen: usize,
    /// (start, end) of each field of the record being mapped, in its data.
    spans: Vec<(usize, usize)>,
    /// The fast path found the line all ASCII (so it is UTF-8).
    ascii: bool,
    /// Bytes of the current record that came in earlier chunks.
    carry: Vec<u8>,
    /// Byte offset and physical line at which the current record began.
    rec_offset: u64,
    rec_line: u64,
    /// Total bytes handed to the reader.
    consumed: u64,
    /// Discarding the rest of a physical line after a too-long record.
    skip_line: bool,
    max_record: usize,
    state: State,
}

impl CsvDecoder {
    pub(crate) fn new(
        source: Source,
        dialect: CsvDialect,
        clock: Clock,
        check: Option<RowCheck>,
        max_record: usize,
    ) -> Result<CsvDecoder, ImportError> {
        if dialect.header == HeaderMode::Absent && source.columns.is_none() {
            return Err(no_header());
        }
        let mut b = ReaderBuilder::new();
        // Records end at `\n` only, so a CRLF record's raw bytes keep both bytes of its
        // terminator; the `\r` left on the last field is trimmed with its whitespace.
        b.delimiter(dialect.delimiter)
            .terminator(csv_core::Terminator::Any(b'\n'));
        match dialect.quote {
            Some(q) => b.quote(q),
            None => b.quoting(false),
        };
        Ok(CsvDecoder {
            rdr: b.build(),
            dialect,
            out: vec![0; 1024],
            outlen: 0,
            ends: vec![0; 64],
            endlen: 0,
            spans: Vec::new(),
            ascii: false,
            carry: Vec::new(),
            rec_offset: 0,
            rec_line: 1,
            consumed: 0,
            skip_line: false,
            max_record,
            state: State::Header {
                source: Box::new(source),
                clock,
                check,
            },
        })
    }

    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Output) -> Result<(), ImportError> {
        let mut pos = 0;
        // Where the current record began in this chunk (0 if in an earlier one).
        let mut rec_start = 0;
        while pos < chunk.len() {
            if self.skip_line {
                match memchr::memchr(b'\n', &chunk[pos..]) {
                    Some(i) => {
                        pos += i + 1;
                        self.consumed += (i + 1) as u64;
                        self.skip_line = false;
                        // The reader never saw the skipped newline.
                        self.rdr.set_line(self.rdr.line() + 1);
                        self.rec_offset = self.consumed;
                        self.rec_line = self.rdr.line();
                        self.outlen = 0;
                        self.endlen = 0;
                        rec_start = pos;
                    }
                    None => {
                        self.consumed += (chunk.len() - pos) as u64;
                        return Ok(());
                    }
                }
                continue;
            }
            // The common line, whole in this chunk and without quotes, is split here with
            // memchr at a fraction of the reader's cost per byte; the reader, at a record
            // boundary, needs to know nothing of it. The first record goes through the
            // reader, which strips a byte order mark.
            if rec_start == pos && self.carry.is_empty() && self.outlen == 0 && self.endlen == 0 && self.consumed > 0 {
                if let Some(i) = memchr::memchr(b'\n', &chunk[pos..]) {
                    let line = &chunk[pos..pos + i];
                    if line.len() <= self.max_record && self.split_plain(line) {
                        pos += i + 1;
                        self.consumed += (i + 1) as u64;
                        self.rdr.set_line(self.rdr.line() + 1);
                        self.record(&[&chunk[rec_start..pos]], Some(line), out)?;
                        rec_start = pos;
                        continue;
                    }
                }
            }
            let (res, nin, nout, nend) = self.rdr.read_record(
                &chunk[pos..],
                &mut self.out[self.outlen..],
                &mut self.ends[self.endlen..],
            );
            pos += nin;
            self.consumed += nin as u64;
            self.outlen += nout;
            self.endlen += nend;
            match res {
                ReadRecordResult::Record => {
                    if self.carry.is_empty() {
                        self.record(&[&chunk[rec_start..pos]], None, out)?;
                    } else {
                        let carry = std::mem::take(&mut self.carry);
                        self.record(&[&carry, &chunk[rec_start..pos]], None, out)?;
                        self.carry = carry;
                        self.carry.clear();
                    }
                    rec_start = pos;
                }
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    let len = self.out.len();
                    self.out.resize(len * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                ReadRecordResult::End => break,
            }
            if self.carry.len() + (pos - rec_start) > self.max_record {
                let carry = std::mem::take(&mut self.carry);
                self.too_long(&[&carry, &chunk[rec_start..pos]], out);
                rec_start = pos;
            }
        }
        if rec_start < chunk.len() && !self.skip_line {
            self.carry.extend_from_slice(&chunk[rec_start..]);
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self, out: &mut Output) -> Result<(), ImportError> {
        loop {
            if self.skip_line {
                break;
            }
            let (res, _, _, nend) =
                self.rdr
                    .read_record(&[], &mut self.out[self.outlen..], &mut self.ends[self.endlen..]);
            self.endlen += nend;
            match res {
                ReadRecordResult::Record => {
                    let carry = std::mem::take(&mut self.carry);
                    if self
                        .dialect
                        .quote
                        .is_some_and(|q| unclosed_quote(&carry, q, self.dialect.delimiter))
                    {
                        self.unclosed(carry, out)?;
                        continue;
                    }
                    self.record(&[&carry], None, out)?;
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                ReadRecordResult::OutputFull => {
                    let len = self.out.len();
                    self.out.resize(len * 2, 0);
                }
                ReadRecordResult::InputEmpty | ReadRecordResult::End => break,
            }
        }
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Splits a line that has no quote character into `spans` (fields are short: a
    /// byte loop beats a memchr call per field), noting whether it is all ASCII;
    /// `false` if a quote means the reader must split it.
    fn split_plain(&mut self, line: &[u8]) -> bool {
        let (delimiter, quote) = (self.dialect.delimiter, self.dialect.quote);
        self.spans.clear();
        let mut start = 0;
        let mut high = 0u8;
        for (i, &b) in line.iter().enumerate() {
            high |= b;
            if b == delimiter {
                self.spans.push((start, i));
                start = i + 1;
            } else if Some(b) == quote {
                return false;
            }
        }
        self.spans.push((start, line.len()));
        self.ascii = high < 0x80;
        true
    }

    /// A record that ran to the end of the input inside a quoted field: its first
    /// physical line is the invalid line, and the lines after it are read again as
    /// records, so one stray quote costs one line, not the rest of the file.
    fn unclosed(&mut self, raw: Vec<u8>, out: &mut Output) -> Result<(), ImportError> {
        let (lead, lead_lines) = leading_blank(&raw);
        let body = &raw[lead..];
        let cut = memchr::memchr(b'\n', body).map_or(body.len(), |i| i + 1);
        let loc = Location {
            line: Some(self.rec_line + lead_lines),
            offset: Some(self.rec_offset + lead as u64),
            ..Location::default()
        };
        out.stats.rows += 1;
        out.stats.invalid_lines += 1;
        out.rejected.push(Rejected::record(
            Kind::Malformed,
            loc,
            &body[..cut],
            format!("{loc}: a quoted field is not closed before the end of the input"),
        ));
        let rest = body[cut..].to_vec();
        let line = self.rec_line + lead_lines + 1;
        self.rdr.reset();
        self.rdr.set_line(line);
        self.rec_offset += (lead + cut) as u64;
        self.rec_line = line;
        // The rest is counted again as it is read again.
        self.consumed = self.rec_offset;
        self.outlen = 0;
        self.endlen = 0;
        self.feed(&rest, out)
    }

    fn too_long(&mut self, parts: &[&[u8]], out: &mut Output) {
        let raw: Vec<u8> = parts
            .iter()
            .flat_map(|p| p.iter().copied())
            .take(super::quarantine::RAW_LIMIT + 1)
            .collect();
        let (lead, lead_lines) = leading_blank(&raw);
        let loc = Location {
            line: Some(self.rec_line + lead_lines),
            offset: Some(self.rec_offset + lead as u64),
            ..Location::default()
        };
        out.stats.rows += 1;
        out.stats.invalid_lines += 1;
        let mut r = Rejected::record(
            Kind::Malformed,
            loc,
            &raw[lead..],
            format!(
                "{loc}: the record is longer than {} bytes (an unclosed quote?); it is skipped to the end of its line",
                self.max_record
            ),
        );
        r.raw_truncated = true;
        out.rejected.push(r);
        let line = self.rdr.line();
        self.rdr.reset();
        self.rdr.set_line(line);
        self.skip_line = true;
        self.outlen = 0;
        self.endlen = 0;
    }

    /// One complete record, whose raw bytes are `parts` concatenated.
    /// Its fields are the reader's output, or `line` split into `spans` already.
    fn record(&mut self, parts: &[&[u8]], line: Option<&[u8]>, out: &mut Output) -> Result<(), ImportError> {
        let rec_offset = self.rec_offset;
        let rec_line = self.rec_line;
        // The next record starts where this one ended.
        self.rec_offset = self.consumed;
        self.rec_line = self.rdr.line();
        let (outlen, endlen) = (self.outlen, self.endlen);
        self.outlen = 0;
        self.endlen = 0;

        let ascii = std::mem::take(&mut self.ascii) && line.is_some();
        let data: &[u8] = match line {
            Some(line) => line,
            None => {
                self.spans.clear();
                let mut start = 0;
                for &end in &self.ends[..endlen] {
                    self.spans.push((start, end));
                    start = end;
                }
                &self.out[..outlen]
            }
        };
        let spans = &self.spans[..];
        let endlen = spans.len();
        // csv-core skips blank lines before a record; they belong to no record.
        let (lead, lead_lines) = leading_blank_parts(parts);
        let loc = Location {
            line: Some(rec_line + lead_lines),
            offset: Some(rec_offset + lead as u64),
            ..Location::default()
        };
        let raw = || -> Vec<u8> {
            let mut v: Vec<u8> = Vec::new();
            for p in parts {
                v.extend_from_slice(p);
            }
            v.drain(..lead.min(v.len()));
            v
        };
        // A line of only spaces is blank too.
        if endlen == 1 && data.trim_ascii().is_empty() {
            return Ok(());
        }

        if let State::Header { .. } = self.state {
            let State::Header { source, clock, check } =
                std::mem::replace(&mut self.state, State::Failed(ImportError::Mapping(String::new())))
            else {
                unreachable!()
            };
            let fields: Vec<String> = spans
                .iter()
                .map(|&(a, b)| &data[a..b])
                .enumerate()
                .map(|(i, f)| {
                    let f = if i == 0 {
                        f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
                    } else {
                        f
                    };
                    String::from_utf8_lossy(f.trim_ascii()).into_owned()
                })
                .collect();
            let is_header = match self.dialect.header {
                HeaderMode::Present => true,
                HeaderMode::Absent => false,
                HeaderMode::Auto => match source.timestamp_column() {
                    Some(ts) => fields.iter().any(|f| f == ts),
                    None => source.mapped_columns().iter().any(|c| fields.iter().any(|f| f == c)),
                },
            };
            let (names, names_from): (Vec<String>, &'static str) = match (&source.columns, is_header) {
                (Some(cols), _) => (cols.clone(), "source's columns"),
                (None, true) => (fields, "header"),
                (None, false) => {
                    let e = no_header_found(&source, &fields);
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
            };
            let mapped = Plan::for_columns(&source, &names, names_from)
                .and_then(|(plan, positions)| Ok((Mapper::new(plan.clone(), &source, clock, check)?, plan, positions)));
            let (mapper, plan, positions) = match mapped {
                Ok(m) => m,
                Err(e) => {
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
            };
            let fields_of_slot = slot_fields(&plan, &positions);
            self.state = State::Rows {
                mapper: Box::new(mapper),
                positions,
                fields_of_slot,
                names_from,
            };
            if is_header {
                out.header = Some(raw());
                return Ok(());
            }
        }
        let (mapper, positions, fields_of_slot, names_from) = match &mut self.state {
            State::Rows {
                mapper,
                positions,
                fields_of_slot,
                names_from,
            } => (mapper, positions, fields_of_slot, names_from),
            State::Failed(e) => return Err(e.clone()),
            State::Header { .. } => unreachable!("the header was just read"),
        };
        if endlen != positions.len() {
            out.stats.rows += 1;
            out.stats.invalid_lines += 1;
            out.rejected.push(Rejected::record(
                Kind::Malformed,
                loc,
                &raw(),
                format!(
                    "{loc}: {endlen} field{}, but the {names_from} {} {} column{}",
                    if endlen == 1 { "" } else { "s" },
                    if *names_from == "header" { "has" } else { "have" },
                    positions.len(),
                    if positions.len() == 1 { "" } else { "s" },
                ),
            ));
            return Ok(());
        }
        // Field by field: the reader's output has no delimiters between fields, so the
        // halves of two broken characters could meet there and look valid.
        let bad_field = if ascii {
            None
        } else if line.is_some() {
            std::str::from_utf8(data)
                .err()
                .map(|e| spans.iter().position(|&(_, end)| end > e.valid_up_to()).unwrap_or(0))
        } else {
            spans
                .iter()
                .position(|&(a, b)| std::str::from_utf8(&data[a..b]).is_err())
        };
        if let Some(field) = bad_field {
            out.stats.rows += 1;
            out.stats.invalid_lines += 1;
            let field = field + 1;
            out.rejected.push(Rejected::record(
                Kind::Malformed,
                loc,
                &raw(),
                format!("{loc}, column {field}: the text is not UTF-8"),
            ));
            return Ok(());
        }
        let row = CsvRow {
            data,
            spans,
            fields_of_slot,
        };
        mapper.row(&row, loc, &mut { raw }, out);
        Ok(())
    }
}

/// The field a slot reads, for each slot.
fn slot_fields(plan: &Plan, positions: &[Option<usize>]) -> Vec<usize> {
    let mut of_slot = vec![0; plan.slots.len()];
    for (pos, slot) in positions.iter().enumerate() {
        if let Some(s) = slot {
            of_slot[*s] = pos;
        }
    }
    of_slot
}

struct CsvRow<'a> {
    data: &'a [u8],
    spans: &'a [(usize, usize)],
    fields_of_slot: &'a [usize],
}

impl RowCells for CsvRow<'_> {
    fn cell(&self, slot: usize) -> Cell<'_> {
        let (start, end) = self.spans[self.fields_of_slot[slot]];
        Cell::Text(&self.data[start..end])
    }
}

/// Bytes of blank lines before a record, and how many newlines they hold.
fn leading_blank(raw: &[u8]) -> (usize, u64) {
    let n = raw.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    (n, raw[..n].iter().filter(|&&b| b == b'\n').count() as u64)
}

fn leading_blank_parts(parts: &[&[u8]]) -> (usize, u64) {
    let (mut n, mut lines) = (0, 0);
    for p in parts {
        let (pn, pl) = leading_blank(p);
        n += pn;
        lines += pl;
        if pn < p.len() {
            break;
        }
    }
    (n, lines)
}

/// Whether a record's bytes end inside a quoted field (only a quote at the start of
/// a field opens one, as in csv-core).
fn unclosed_quote(raw: &[u8], quote: u8, delimiter: u8) -> bool {
    let mut at_field_start = true;
    let mut quoted = false;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if quoted {
            if b == quote {
                if raw.get(i + 1) == Some(&quote) {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if b == quote && at_field_start {
            quoted = true;
        } else {
            at_field_start = b == delimiter || b == b'\n' || b == b'\r';
            i += 1;
            continue;
        }
        at_field_start = false;
        i += 1;
    }
    quoted
}

fn no_header() -> ImportError {
    ImportError::Mapping(
        "the CSV has no header line and the source has no \"columns\": name the columns in the source \
         (\"columns\": [...]) or send a header line"
            .to_owned(),
    )
}

fn no_header_found(source: &Source, first: &[String]) -> ImportError {
    let shown: Vec<String> = first.iter().take(20).map(|f| cut_value(f.as_bytes())).collect();
    let wanted = source
        .timestamp_column()
        .map(|t| format!("the timestamp column \"{t}\""))
        .unwrap_or_else(|| "any mapped column".to_owned());
    ImportError::Mapping(format!(
        "the CSV has no header line (its first record \"{}\" does not hold {wanted}) and the source has no \
         \"columns\": name the columns in the source or send a header line",
        shown.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unclosed_quotes() {
        assert!(unclosed_quote(b"1,\"s1,2\n3,4", b'"', b','));
        assert!(!unclosed_quote(b"1,\"s\"\"1\",2", b'"', b','));
        assert!(!unclosed_quote(b"1,a\"b,2", b'"', b','));
        assert!(unclosed_quote(b"\"", b'"', b','));
        assert!(!unclosed_quote(b"\"a\"\n", b'"', b','));
    }
}
