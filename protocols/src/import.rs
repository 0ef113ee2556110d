//! Importing rows from files and bodies: source mappings, row decoders (CSV, TSV,
//! NDJSON, JSON, Parquet, KairosDB JSON), quarantine records and analyze (spec
//! `import.md` §1, §2, §4). Nothing here does IO; the daemon feeds bytes and stores
//! what comes out.
//!
//! # The seam
//!
//! An [`Import`] is push-based: the daemon calls [`Import::feed`] with every piece of a
//! body as it arrives (hyper frames, file reads, stdin) and [`Import::finish`] at the
//! end. Push rather than a pull iterator over `Read` because an HTTP body arrives as
//! frames on an async task, where blocking reads have no place, and a file or stdin
//! is fed just as easily from a read loop. Each call appends to an [`Output`]: points
//! to `batch` (a [`PointBatch`], as every listener sends to the writer), records set
//! aside to `rejected`, counts to `stats`. The daemon drains `batch` and `rejected`
//! between calls as it likes, so memory stays at one chunk's worth.
//!
//! Parquet needs its footer first, so it cannot stream: [`ParquetRows`] reads a
//! seekable source (a file, or a body spooled to one), and an [`Import`] of Parquet
//! spools what it is fed in memory until `finish`.
//!
//! Errors: a row that does not fit is never an error of the import, only a
//! [`Rejected`] record; [`ImportError`] ends the import (a mapping that does not fit
//! the input, unsupported compression, a corrupt file, too many bytes).
//!
//! # Layout
//!
//! - [`source`]: the source JSON, validation; [`descriptor`]: VictoriaMetrics' `columns=`.
//! - [`time`]: timestamp formats and the `auto` unit rule.
//! - [`format`]: format and compression detection, push-based gzip.
//! - `cell`: what a cell means (the REST number rule, tags, names); `mapping`: rows to
//!   points through a source (wide and narrow rows, atomic rows, the daemon's row check).
//! - `csv`, `framing` + `json`, `kairosdb`, [`parquet`]: the decoders.
//! - [`quarantine`]: the records of what was set aside.
//! - [`analyze`]: column detection and a ready-to-use source from a sample.

use std::fmt;

use crate::datapoint::PointBatch;

pub mod analyze;
mod cell;
mod csv;
pub mod descriptor;
pub mod format;
mod framing;
mod json;
pub mod kafka;
mod kairosdb;
mod mapping;
pub mod parquet;
mod parquet_thrift;
pub mod quarantine;
pub mod source;
#[cfg(test)]
mod tests;
pub mod time;

pub use self::csv::CsvDialect;
pub use format::{Compression, Format};
pub use json::parse_path;
pub use mapping::{Clock, RowCheck, RowInfo};
pub use parquet::ParquetRows;
pub use quarantine::{CellError, Kind, Location, Rejected};
pub use source::{HeaderMode, Source, SourceErrors};

/// The default limit on one record's size: a longer line or element is an invalid line.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Why an import cannot go on. Every variant's message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The source does not fit the input (a column not in the header, no header and no
    /// `columns`): HTTP 400, exit 2. Raised before any row is mapped.
    #[error("{0}")]
    Mapping(String),
    /// Compression or a Parquet feature kairosd does not read: HTTP 415.
    #[error("{0}")]
    Unsupported(String),
    /// The input as a whole is unreadable (corrupt gzip or Parquet): the file fails.
    #[error("{0}")]
    Input(String),
    /// More than the allowed decompressed bytes: HTTP 413.
    #[error("the input is larger than {0} bytes (decompressed)")]
    TooLarge(u64),
}

/// What an import produced so far; the caller drains it between calls.
#[derive(Debug, Default)]
pub struct Output {
    pub batch: PointBatch,
    pub rejected: Vec<Rejected>,
    pub stats: Stats,
    /// A CSV header's raw bytes, terminator included, once read: quarantine's `raw`
    /// download gives it first, then the bad records, byte-identical.
    pub header: Option<Vec<u8>>,
}

/// Counts of one import, as the import response names them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Records read (invalid lines and quarantined rows included; a CSV header not).
    pub rows: u64,
    pub rows_accepted: u64,
    pub points: u64,
    /// Value cells left empty: no point, no error.
    pub empty_values: u64,
    pub invalid_lines: u64,
    pub quarantine_rows: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
}

/// How one import reads its input, beyond the source.
pub struct ImportOptions {
    /// Explicit format (`--format`, `format=`), else by `name`, else sniffed.
    pub format: Option<Format>,
    /// A file name, for the format by extension.
    pub name: Option<String>,
    /// Overrides the source's `csv.header` (`header=`).
    pub header: Option<HeaderMode>,
    /// Overrides the source's `csv.delimiter` (`delimiter=`).
    pub delimiter: Option<u8>,
    pub clock: Clock,
    /// The daemon's per-row check (replace range, retention).
    pub check: Option<RowCheck>,
    /// Decompressed bytes allowed (`kairosd.import.max_bytes`).
    pub max_bytes: Option<u64>,
    pub max_record_bytes: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: None,
            name: None,
            header: None,
            delimiter: None,
            clock: Clock::default(),
            check: None,
            max_bytes: None,
            max_record_bytes: MAX_RECORD_BYTES,
        }
    }
}

impl fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field("format", &self.format)
            .field("name", &self.name)
            .field("header", &self.header)
            .field("delimiter", &self.delimiter)
            .field("clock", &self.clock)
            .field("check", &self.check.is_some())
            .field("max_bytes", &self.max_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish()
    }
}

enum Decoder {
    Csv(Box<csv::CsvDecoder>),
    Json(Box<json::JsonDecoder>),
    Kairos(kairosdb::KairosDecoder),
    /// Parquet is read at `finish`, from everything fed.
    Parquet(Vec<u8>),
}

enum Body {
    /// Waiting for enough bytes to tell the format.
    Sniffing(Vec<u8>),
    Decoding(Decoder),
    Done,
}

enum Gz {
    Sniffing(Vec<u8>),
    Plain,
    Gzip(Box<format::Gunzip>),
}

/// One import of one input (a file, a request body): bytes in, points and rejected
/// records out. See the module docs.
pub struct Import {
    source: Option<Source>,
    options: ImportOptions,
    gz: Gz,
    body: Body,
    format: Option<Format>,
    compression: Option<Compression>,
}

/// Leading whitespace buffered at most while looking for the first byte that tells the format.
const SNIFF_LIMIT: usize = 1 << 20;

impl Import {
    /// Starts an import through `source` (validated here too). `source` may be `None`
    /// only for [`Format::Kairosdb`], which carries its own names.
    pub fn new(source: Option<Source>, options: ImportOptions) -> Result<Import, ImportError> {
        match &source {
            Some(s) => s.validate().map_err(|e| ImportError::Mapping(e.to_string()))?,
            None if options.format == Some(Format::Kairosdb) => {}
            None => {
                return Err(ImportError::Mapping(
                    "a source is needed to map rows (only format kairosdb carries its own names)".to_owned(),
                ))
            }
        }
        let format = options
            .format
            .or_else(|| options.name.as_deref().and_then(Format::from_name));
        Ok(Import {
            source,
            options,
            gz: Gz::Sniffing(Vec::new()),
            body: Body::Sniffing(Vec::new()),
            format,
            compression: None,
        })
    }

    /// The format, once known (explicit, by name, or after the first bytes).
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// The compression, once the first bytes were seen.
    pub fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// Feeds the next piece of input. An error ends the import.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Output) -> Result<(), ImportError> {
        let Import {
            source,
            options,
            gz,
            body,
            format,
            compression,
        } = self;
        let mut sink = |b: &[u8]| feed_body(source, options, body, format, b, out);
        match gz {
            Gz::Plain => sink(bytes),
            Gz::Gzip(g) => g.feed(bytes, &mut sink),
            Gz::Sniffing(head) => {
                head.extend_from_slice(bytes);
                if head.len() < Compression::MAGIC_LEN {
                    return Ok(());
                }
                let head = std::mem::take(head);
                start_gz(gz, compression, &head, &mut sink)
            }
        }
    }

    /// Ends the input: the last record, Parquet's whole file, and any error that only
    /// the end reveals (a cut-off gzip stream, an empty CSV that needed a header).
    pub fn finish(&mut self, out: &mut Output) -> Result<(), ImportError> {
        let Import {
            source,
            options,
            gz,
            body,
            format,
            compression,
        } = self;
        {
            let mut sink = |b: &[u8]| feed_body(source, options, body, format, b, out);
            if let Gz::Sniffing(head) = gz {
                let head = std::mem::take(head);
                start_gz(gz, compression, &head, &mut sink)?;
            }
            if let Gz::Gzip(g) = gz {
                g.finish(&mut sink)?;
            }
        }
        if let Body::Sniffing(head) = body {
            let head = std::mem::take(head);
            start_body(source, options, body, format, &head, out, true)?;
        }
        let decoder = std::mem::replace(body, Body::Done);
        match decoder {
            Body::Decoding(Decoder::Csv(mut d)) => d.finish(out),
            Body::Decoding(Decoder::Json(mut d)) => d.finish(out),
            Body::Decoding(Decoder::Kairos(mut d)) => d.finish(out),
            Body::Decoding(Decoder::Parquet(bytes)) => {
                let source = source
                    .take()
                    .ok_or_else(|| ImportError::Mapping("no source".to_owned()))?;
                let clock = options.clock;
                let check = options.check.take();
                let mut rows = ParquetRows::new(bytes::Bytes::from(bytes), &source, clock, check)?;
                while rows.read(out, 64 * 1024)? {}
                Ok(())
            }
            Body::Sniffing(_) | Body::Done => Ok(()),
        }
    }
}

fn start_gz(
    gz: &mut Gz,
    compression: &mut Option<Compression>,
    head: &[u8],
    sink: &mut dyn FnMut(&[u8]) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let c = Compression::detect(head)?;
    *compression = Some(c);
    match c {
        Compression::None => {
            *gz = Gz::Plain;
            sink(head)
        }
        Compression::Gzip => {
            let mut g = Box::new(format::Gunzip::new());
            let r = g.feed(head, sink);
            *gz = Gz::Gzip(g);
            r
        }
    }
}

fn feed_body(
    source: &mut Option<Source>,
    options: &mut ImportOptions,
    body: &mut Body,
    format: &mut Option<Format>,
    bytes: &[u8],
    out: &mut Output,
) -> Result<(), ImportError> {
    out.stats.bytes += bytes.len() as u64;
    if let Some(max) = options.max_bytes {
        if out.stats.bytes > max {
            return Err(ImportError::TooLarge(max));
        }
    }
    match body {
        Body::Decoding(Decoder::Csv(d)) => d.feed(bytes, out),
        Body::Decoding(Decoder::Json(d)) => d.feed(bytes, out),
        Body::Decoding(Decoder::Kairos(d)) => d.feed(bytes, out),
        Body::Decoding(Decoder::Parquet(buf)) => {
            buf.extend_from_slice(bytes);
            Ok(())
        }
        Body::Done => Ok(()),
        Body::Sniffing(head) => {
            head.extend_from_slice(bytes);
            // The format (and KairosDB's framing) is told by the first byte that is not
            // whitespace; a body of nothing but whitespace is decided at some point too.
            let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
            let has_text = text.iter().any(|b| !b.is_ascii_whitespace());
            let decided =
                has_text && (format.is_some() || head.len() >= Compression::MAGIC_LEN) || head.len() >= SNIFF_LIMIT;
            if !decided {
                return Ok(());
            }
            let head = std::mem::take(head);
            start_body(source, options, body, format, &head, out, false)
        }
    }
}

/// Picks and builds the decoder once the first bytes are in, then feeds them.
fn start_body(
    source: &mut Option<Source>,
    options: &mut ImportOptions,
    body: &mut Body,
    format: &mut Option<Format>,
    head: &[u8],
    out: &mut Output,
    at_end: bool,
) -> Result<(), ImportError> {
    let _ = at_end;
    // `PAR1`, `{` and `[` are certain enough; text that is none of them is CSV, or TSV
    // when that is the source's usual format.
    let f = *format.get_or_insert_with(|| match Format::sniff(head) {
        Format::Csv if source.as_ref().and_then(|s| s.format) == Some(Format::Tsv) => Format::Tsv,
        sniffed => sniffed,
    });
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = text.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let max = options.max_record_bytes;
    let clock = options.clock;
    let decoder = match f {
        Format::Kairosdb => Decoder::Kairos(kairosdb::KairosDecoder::new(first != Some(b'['), max)),
        Format::Parquet => Decoder::Parquet(Vec::new()),
        _ => {
            let src = source
                .as_ref()
                .ok_or_else(|| ImportError::Mapping(format!("format {f} needs a source mapping")))?;
            match f {
                Format::Csv | Format::Tsv => {
                    let dialect = CsvDialect {
                        // The source's delimiter is its CSV's; TSV is tab-separated.
                        delimiter: match f {
                            Format::Tsv => options.delimiter.unwrap_or(b'\t'),
                            _ => options.delimiter.or(src.csv.delimiter.map(|c| c as u8)).unwrap_or(b','),
                        },
                        quote: src.csv.quote.map(|c| c as u8),
                        header: options.header.unwrap_or(src.csv.header),
                    };
                    Decoder::Csv(Box::new(csv::CsvDecoder::new(
                        src.clone(),
                        dialect,
                        clock,
                        options.check.take(),
                        max,
                    )?))
                }
                // A `.json` file whose first value is an object may be NDJSON or
                // pretty-printed objects; the value scanner reads both.
                Format::Ndjson => Decoder::Json(Box::new(json::JsonDecoder::new(
                    src,
                    true,
                    clock,
                    options.check.take(),
                    max,
                )?)),
                _ => Decoder::Json(Box::new(json::JsonDecoder::new(
                    src,
                    false,
                    clock,
                    options.check.take(),
                    max,
                )?)),
            }
        }
    };
    *body = Body::Decoding(decoder);
    // `head` was counted on its way in; feed it without counting again.
    out.stats.bytes -= head.len() as u64;
    feed_body(source, options, body, format, head, out)
}
