//! Parquet rows, read column by column with Parquet's own typed readers (no Arrow:
//! it would double the build for nothing a row import needs).
//!
//! Only the columns the mapping reads are decoded, a bounded batch of rows at a time,
//! so memory follows the batch, not the row group. Types map as a user expects:
//! TIMESTAMP (and the legacy TIMESTAMP_MILLIS/MICROS and INT96) in its declared unit,
//! DATE as midnight in the source's timezone, DECIMAL as a double, strings as text,
//! integers as longs, floats as doubles. Nested and repeated columns cannot be cells.

use std::fmt::Write as _;
use std::sync::Arc;

use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as Physical};
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::column::reader::{get_column_reader, get_typed_column_reader, ColumnReader, ColumnReaderImpl};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType, FloatType, Int32Type,
    Int64Type, Int96, Int96Type,
};
use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, Length, RowGroupReader, SerializedFileReader};
use parquet::schema::types::ColumnDescPtr;

/// What [`ParquetRows`] reads from: a `std::fs::File` or `bytes::Bytes` implement it.
pub use parquet::file::reader::ChunkReader;

use super::mapping::{Cell, Clock, Mapper, Plan, RowCells, RowCheck};
use super::quarantine::Location;
use super::source::Source;
use super::time::Unit;
use super::{ImportError, Output};

/// Rows decoded per column per step.
const BATCH: usize = 4096;

/// How a column's physical values become cells.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conv {
    Bool,
    Int,
    UInt,
    Date,
    Decimal(i32),
    /// The unit, and whether the values are UTC (else wall-clock times).
    Timestamp(Unit, bool),
    Int96,
    Float,
    Text,
    Float16,
}

enum Values {
    Bool(ColumnReaderImpl<BoolType>, Vec<bool>),
    I32(ColumnReaderImpl<Int32Type>, Vec<i32>),
    I64(ColumnReaderImpl<Int64Type>, Vec<i64>),
    I96(ColumnReaderImpl<Int96Type>, Vec<Int96>),
    F32(ColumnReaderImpl<FloatType>, Vec<f32>),
    F64(ColumnReaderImpl<DoubleType>, Vec<f64>),
    Bytes(ColumnReaderImpl<ByteArrayType>, Vec<ByteArray>),
    Fixed(ColumnReaderImpl<FixedLenByteArrayType>, Vec<FixedLenByteArray>),
}

struct Column {
    leaf: usize,
    conv: Conv,
    max_def: i16,
    values: Option<Values>,
    defs: Vec<i16>,
    /// Per row of the batch, the index of its value (None: null).
    index: Vec<Option<u32>>,
}

/// The rows of one Parquet file through one source mapping. Read with [`ParquetRows::read`]
/// until it returns `false`.
pub struct ParquetRows<R: ChunkReader + 'static> {
    reader: SerializedFileReader<Shared<R>>,
    /// The same file, for walking page headers before the crate reads them.
    file: Arc<R>,
    mapper: Mapper,
    /// One per slot of the plan.
    columns: Vec<Column>,
    /// The slots' column names, for rejected rows' NDJSON.
    names: Vec<String>,
    row_group: usize,
    /// Rows of the current row group not yet read, and rows read from it.
    left: u64,
    done_in_group: u64,
    /// Rows before the current row group.
    rows_before: u64,
    started: bool,
}

/// A file both the `parquet` crate's reader and the page-header walk read from.
struct Shared<R>(Arc<R>);

impl<R: Length> Length for Shared<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: ChunkReader> ChunkReader for Shared<R> {
    type T = R::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<R::T> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

fn corrupt(e: parquet::errors::ParquetError) -> ImportError {
    ImportError::Input(format!("the Parquet file cannot be read: {e}"))
}

/// Runs a call into the `parquet` crate, turning a panic into an error. Some corrupt
/// files make it panic instead of returning an error (a dictionary-encoded page with no
/// dictionary, found by fuzzing); a bad upload must fail its import, not the daemon.
fn guarded<T>(f: impl FnOnce() -> Result<T, ImportError>) -> Result<T, ImportError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ImportError::Input(format!("the Parquet file is corrupt ({why})")))
    })
}

impl<R: ChunkReader + 'static> ParquetRows<R> {
    /// Opens the file and resolves the mapping against its schema (a mapping error
    /// names the columns found).
    pub fn new(reader: R, source: &Source, clock: Clock, check: Option<RowCheck>) -> Result<Self, ImportError> {
        check_footer(&reader)?;
        let file = Arc::new(reader);
        let reader = guarded(|| SerializedFileReader::new(Shared(Arc::clone(&file))).map_err(corrupt))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        // Leaf columns by dotted path; a column nested in groups answers to the source
        // column whose `paths` entry names it.
        let mut names = Vec::new();
        let mut leaves = Vec::new();
        for i in 0..schema.num_columns() {
            let col = schema.column(i);
            if col.max_rep_level() > 0 {
                continue; // lists and maps have no single cell per row
            }
            let path = col.path().string();
            let name = source
                .paths
                .iter()
                .find(|(_, p)| p.strip_prefix("$.") == Some(path.as_str()))
                .map(|(n, _)| n.clone())
                .unwrap_or(path);
            names.push(name);
            leaves.push(i);
        }
        let (plan, positions) = Plan::for_columns(source, &names, "Parquet schema")?;
        let mut columns: Vec<Option<Column>> = (0..plan.slots.len()).map(|_| None).collect();
        for (pos, slot) in positions.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let desc = schema.column(leaves[pos]);
            let conv = conv_of(
                desc.physical_type(),
                desc.logical_type_ref(),
                desc.converted_type(),
                desc.type_scale(),
            )
            .ok_or_else(|| {
                ImportError::Unsupported(format!(
                    "Parquet column \"{}\" has the type {} that kairosd cannot read as a cell",
                    names[pos],
                    desc.physical_type()
                ))
            })?;
            columns[*slot] = Some(Column {
                leaf: leaves[pos],
                conv,
                max_def: desc.max_def_level(),
                values: None,
                defs: Vec::new(),
                index: Vec::new(),
            });
        }
        let columns = columns
            .into_iter()
            .map(|c| c.expect("every slot has a column"))
            .collect();
        let names = plan.slots.iter().map(|s| s.name.clone()).collect();
        let mapper = Mapper::new(plan, source, clock, check)?;
        Ok(ParquetRows {
            reader,
            file,
            mapper,
            columns,
            names,
            row_group: 0,
            left: 0,
            done_in_group: 0,
            rows_before: 0,
            started: false,
        })
    }

    /// Rows in the file, from its footer (for progress).
    pub fn num_rows(&self) -> u64 {
        self.reader.metadata().file_metadata().num_rows().max(0) as u64
    }

    fn open_group(&mut self) -> Result<bool, ImportError> {
        if self.started {
            self.rows_before += self.done_in_group;
            self.row_group += 1;
        }
        self.started = true;
        self.done_in_group = 0;
        if self.row_group >= self.reader.num_row_groups() {
            return Ok(false);
        }
        let (reader, row_group, columns) = (&self.reader, self.row_group, &mut self.columns);
        let file = &*self.file;
        self.left = guarded(|| {
            let group = reader.get_row_group(row_group).map_err(corrupt)?;
            for col in columns.iter_mut() {
                col.values = Some(typed(checked_column(file, &*group, col.leaf)?));
            }
            Ok(group.metadata().num_rows().max(0) as u64)
        })?;
        Ok(true)
    }

    /// Maps up to about `max_rows` more rows into `out`; `false` once the file is done.
    pub fn read(&mut self, out: &mut Output, max_rows: usize) -> Result<bool, ImportError> {
        let mut budget = max_rows.max(1);
        while budget > 0 {
            while self.left == 0 {
                if !self.open_group()? {
                    return Ok(false);
                }
            }
            let n = (self.left as usize).min(BATCH).min(budget.max(1));
            for col in &mut self.columns {
                guarded(|| read_batch(col, n))?;
            }
            for r in 0..n {
                let row_number = self.rows_before + self.done_in_group + r as u64 + 1;
                let loc = Location {
                    row_group: Some(self.row_group as u64),
                    row: Some(row_number),
                    ..Location::default()
                };
                let row = ParquetRow {
                    columns: &self.columns,
                    r,
                };
                let names = &self.names;
                let mut raw = || row_as_ndjson(&row, names);
                self.mapper.row(&row, loc, &mut raw, out);
            }
            self.left -= n as u64;
            self.done_in_group += n as u64;
            budget = budget.saturating_sub(n);
        }
        Ok(true)
    }
}

/// Reads the next `n` rows of one column and indexes their values.
fn read_batch(col: &mut Column, n: usize) -> Result<(), ImportError> {
    col.defs.clear();
    let defs = if col.max_def > 0 { Some(&mut col.defs) } else { None };
    macro_rules! read {
        ($reader:expr, $buf:expr) => {{
            $buf.clear();
            $reader.read_records(n, defs, None, $buf).map_err(corrupt)?
        }};
    }
    let (records, _, _) = match col.values.as_mut().expect("row group open") {
        Values::Bool(r, b) => read!(r, b),
        Values::I32(r, b) => read!(r, b),
        Values::I64(r, b) => read!(r, b),
        Values::I96(r, b) => read!(r, b),
        Values::F32(r, b) => read!(r, b),
        Values::F64(r, b) => read!(r, b),
        Values::Bytes(r, b) => read!(r, b),
        Values::Fixed(r, b) => read!(r, b),
    };
    if records != n {
        return Err(ImportError::Input(format!(
            "the Parquet file is cut short: a column chunk holds {records} of {n} rows"
        )));
    }
    col.index.clear();
    if col.max_def == 0 {
        col.index.extend((0..n as u32).map(Some));
    } else {
        let mut next = 0u32;
        for &d in &col.defs {
            if d == col.max_def {
                col.index.push(Some(next));
                next += 1;
            } else {
                col.index.push(None);
            }
        }
    }
    Ok(())
}

/// Walks the footer before the `parquet` crate decodes it (see `parquet_footer`).
fn check_footer<R: ChunkReader>(reader: &R) -> Result<(), ImportError> {
    let len = reader.len();
    if len < 12 {
        return Err(ImportError::Input(
            "the Parquet file is too short to hold a footer".to_owned(),
        ));
    }
    let tail = reader.get_bytes(len - 8, 8).map_err(corrupt)?;
    if &tail[4..] != b"PAR1" {
        return Err(ImportError::Input(
            "the Parquet file does not end with PAR1 (cut short?)".to_owned(),
        ));
    }
    let meta_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if meta_len + 12 > len {
        return Err(ImportError::Input(format!(
            "the Parquet footer claims {meta_len} bytes of a {len}-byte file"
        )));
    }
    let meta = reader
        .get_bytes(len - 8 - meta_len, meta_len as usize)
        .map_err(corrupt)?;
    super::parquet_thrift::check(&meta)
        .map_err(|e| ImportError::Input(format!("the Parquet file's footer is corrupt: {e}")))
}

/// The most bytes a page header may take (real ones take tens of bytes, or a few KB
/// with long min/max statistics).
const MAX_PAGE_HEADER: u64 = 16 << 20;

/// Walks the page headers of one column chunk (see `parquet_thrift`): each must be sound
/// Thrift, and the pages must tile the chunk. Costs a read of each header, not of the
/// pages.
fn check_pages<R: ChunkReader>(file: &R, group: &dyn RowGroupReader, leaf: usize) -> Result<(), ImportError> {
    let column = group.metadata().column(leaf);
    let (start, len) = column.byte_range();
    let path = column.column_path().string();
    let corrupt_at =
        |what: String| ImportError::Input(format!("the Parquet file is corrupt: column \"{path}\" {what}"));
    let end = start.checked_add(len).filter(|&e| e <= file.len()).ok_or_else(|| {
        corrupt_at(format!(
            "claims bytes {start}..{start}+{len} of a {}-byte file",
            file.len()
        ))
    })?;
    let mut at = start;
    while at < end {
        // Read a small window first; a header with long statistics gets a larger one.
        let mut window = 4096u64;
        let (header, size) = loop {
            let take = window.min(end - at);
            let bytes = file.get_bytes(at, take as usize).map_err(corrupt)?;
            match super::parquet_thrift::page_header(&bytes) {
                Ok(found) => break found,
                Err(_) if take < end - at && window < MAX_PAGE_HEADER => window *= 16,
                Err(e) => return Err(corrupt_at(format!("has a bad page header at byte {at}: {e}"))),
            }
        };
        at = (at + header as u64)
            .checked_add(size)
            .filter(|&next| next <= end)
            .ok_or_else(|| corrupt_at(format!("has a page at byte {at} that runs past its column chunk")))?;
    }
    Ok(())
}

/// A column's reader whose pages are checked before the `parquet` crate trusts them.
fn checked_column<R: ChunkReader>(
    file: &R,
    group: &dyn RowGroupReader,
    leaf: usize,
) -> Result<ColumnReader, ImportError> {
    check_pages(file, group, leaf)?;
    let descr = group.metadata().column(leaf).column_descr_ptr();
    let pages = group.get_column_page_reader(leaf).map_err(corrupt)?;
    Ok(get_column_reader(
        descr.clone(),
        Box::new(CheckedPages { inner: pages, descr }),
    ))
}

/// Refuses a dictionary page that declares more values than its bytes can hold: the
/// `parquet` crate allocates the dictionary by the declared count first (a 1 KB file
/// asked for gigabytes, found by fuzzing).
struct CheckedPages {
    inner: Box<dyn PageReader>,
    descr: ColumnDescPtr,
}

impl CheckedPages {
    fn check(&self, page: &Page) -> parquet::errors::Result<()> {
        let Page::DictionaryPage { buf, num_values, .. } = page else {
            return Ok(());
        };
        // The smallest a PLAIN dictionary entry can be, in bits.
        let bits: u64 = match self.descr.physical_type() {
            Physical::BOOLEAN => 1,
            Physical::INT32 | Physical::FLOAT => 32,
            Physical::INT64 | Physical::DOUBLE => 64,
            Physical::INT96 => 96,
            Physical::BYTE_ARRAY => 32, // the length prefix
            Physical::FIXED_LEN_BYTE_ARRAY => 8 * self.descr.type_length().max(1) as u64,
        };
        if u64::from(*num_values) * bits > buf.len() as u64 * 8 {
            return Err(ParquetError::General(format!(
                "a dictionary page of column \"{}\" declares {num_values} values in {} bytes",
                self.descr.path(),
                buf.len()
            )));
        }
        Ok(())
    }
}

impl Iterator for CheckedPages {
    type Item = parquet::errors::Result<Page>;
    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for CheckedPages {
    fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
        let page = self.inner.get_next_page()?;
        if let Some(p) = &page {
            self.check(p)?;
        }
        Ok(page)
    }

    fn peek_next_page(&mut self) -> parquet::errors::Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
        self.inner.skip_next_page()
    }

    fn at_record_boundary(&mut self) -> parquet::errors::Result<bool> {
        self.inner.at_record_boundary()
    }
}

fn typed(reader: ColumnReader) -> Values {
    match reader {
        ColumnReader::BoolColumnReader(_) => Values::Bool(get_typed_column_reader::<BoolType>(reader), Vec::new()),
        ColumnReader::Int32ColumnReader(_) => Values::I32(get_typed_column_reader::<Int32Type>(reader), Vec::new()),
        ColumnReader::Int64ColumnReader(_) => Values::I64(get_typed_column_reader::<Int64Type>(reader), Vec::new()),
        ColumnReader::Int96ColumnReader(_) => Values::I96(get_typed_column_reader::<Int96Type>(reader), Vec::new()),
        ColumnReader::FloatColumnReader(_) => Values::F32(get_typed_column_reader::<FloatType>(reader), Vec::new()),
        ColumnReader::DoubleColumnReader(_) => Values::F64(get_typed_column_reader::<DoubleType>(reader), Vec::new()),
        ColumnReader::ByteArrayColumnReader(_) => {
            Values::Bytes(get_typed_column_reader::<ByteArrayType>(reader), Vec::new())
        }
        ColumnReader::FixedLenByteArrayColumnReader(_) => {
            Values::Fixed(get_typed_column_reader::<FixedLenByteArrayType>(reader), Vec::new())
        }
    }
}

fn conv_of(physical: Physical, logical: Option<&LogicalType>, converted: ConvertedType, scale: i32) -> Option<Conv> {
    let unit = |u: &TimeUnit| match u {
        TimeUnit::MILLIS => Unit::Millis,
        TimeUnit::MICROS => Unit::Micros,
        TimeUnit::NANOS => Unit::Nanos,
    };
    Some(match (physical, logical) {
        (Physical::BOOLEAN, _) => Conv::Bool,
        (Physical::INT32 | Physical::INT64, Some(LogicalType::Timestamp(t))) => {
            Conv::Timestamp(unit(&t.unit), t.is_adjusted_to_u_t_c)
        }
        (Physical::INT32, Some(LogicalType::Date)) => Conv::Date,
        (Physical::INT32 | Physical::INT64, Some(LogicalType::Decimal(_))) => Conv::Decimal(scale),
        (Physical::INT32 | Physical::INT64, Some(LogicalType::Integer(i))) if !i.is_signed => Conv::UInt,
        (Physical::INT32 | Physical::INT64, None) => match converted {
            // The legacy types are UTC by definition.
            ConvertedType::TIMESTAMP_MILLIS => Conv::Timestamp(Unit::Millis, true),
            ConvertedType::TIMESTAMP_MICROS => Conv::Timestamp(Unit::Micros, true),
            ConvertedType::DATE => Conv::Date,
            ConvertedType::DECIMAL => Conv::Decimal(scale),
            ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 | ConvertedType::UINT_64 => {
                Conv::UInt
            }
            _ => Conv::Int,
        },
        (Physical::INT32 | Physical::INT64, _) => Conv::Int,
        (Physical::INT96, _) => Conv::Int96,
        (Physical::FLOAT | Physical::DOUBLE, _) => Conv::Float,
        (Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY, Some(LogicalType::Decimal(_))) => Conv::Decimal(scale),
        (Physical::FIXED_LEN_BYTE_ARRAY, Some(LogicalType::Float16)) => Conv::Float16,
        (Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY, None) if converted == ConvertedType::DECIMAL => {
            Conv::Decimal(scale)
        }
        (Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY, _) => Conv::Text,
    })
}

/// A two's-complement big-endian integer (Parquet's DECIMAL bytes), scaled.
fn decimal_bytes(b: &[u8], scale: i32) -> Option<f64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut v: i128 = if b[0] & 0x80 != 0 { -1 } else { 0 };
    for &x in b {
        v = (v << 8) | i128::from(x);
    }
    Some(v as f64 / 10f64.powi(scale))
}

fn half_to_f64(b: &[u8]) -> Option<f64> {
    let bits = u16::from_le_bytes(b.try_into().ok()?);
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    Some(
        sign * match exp {
            0 => frac * 2f64.powi(-24),
            31 if frac == 0.0 => f64::INFINITY,
            31 => f64::NAN,
            _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
        },
    )
}

struct ParquetRow<'a> {
    columns: &'a [Column],
    r: usize,
}

impl RowCells for ParquetRow<'_> {
    fn cell(&self, slot: usize) -> Cell<'_> {
        let col = &self.columns[slot];
        let Some(i) = col.index[self.r] else {
            return Cell::Absent;
        };
        let i = i as usize;
        let conv = col.conv;
        match col.values.as_ref().expect("row group open") {
            Values::Bool(_, b) => Cell::Bool(b[i]),
            Values::I32(_, b) => int_cell(i64::from(b[i]), conv, true),
            Values::I64(_, b) => int_cell(b[i], conv, false),
            Values::I96(_, b) => Cell::Timestamp(b[i].to_nanos(), Unit::Nanos),
            Values::F32(_, b) => Cell::Float(f64::from(b[i])),
            Values::F64(_, b) => Cell::Float(b[i]),
            Values::Bytes(_, b) => bytes_cell(b[i].data(), conv),
            Values::Fixed(_, b) => bytes_cell(b[i].data(), conv),
        }
    }
}

fn int_cell(v: i64, conv: Conv, is32: bool) -> Cell<'static> {
    match conv {
        Conv::Timestamp(u, true) => Cell::Timestamp(v, u),
        Conv::Timestamp(u, false) => Cell::LocalTimestamp(v, u),
        Conv::Date => Cell::Date(v as i32),
        Conv::Decimal(scale) => Cell::Float(v as f64 / 10f64.powi(scale)),
        // Parquet stores unsigned integers in the signed type's bits.
        Conv::UInt if is32 => Cell::Int(i64::from(v as i32 as u32)),
        Conv::UInt if v < 0 => Cell::Float(v as u64 as f64),
        _ => Cell::Int(v),
    }
}

fn bytes_cell(b: &[u8], conv: Conv) -> Cell<'_> {
    match conv {
        Conv::Decimal(scale) => decimal_bytes(b, scale).map_or(Cell::Text(b), Cell::Float),
        Conv::Float16 => half_to_f64(b).map_or(Cell::Text(b), Cell::Float),
        _ => Cell::Text(b),
    }
}

/// A Parquet row has no text of its own: its mapped cells as one NDJSON line, which
/// imports into the same source once fixed.
fn row_as_ndjson(row: &ParquetRow, names: &[String]) -> Vec<u8> {
    let mut s = String::from("{");
    for (slot, name) in names.iter().enumerate() {
        if slot > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::to_string(name).unwrap_or_default());
        s.push(':');
        match row.cell(slot) {
            Cell::Absent => s.push_str("null"),
            Cell::Bool(b) => {
                let _ = write!(s, "{b}");
            }
            Cell::Int(v) | Cell::Timestamp(v, _) | Cell::LocalTimestamp(v, _) => {
                let _ = write!(s, "{v}");
            }
            Cell::Date(v) => {
                let _ = write!(s, "{v}");
            }
            Cell::Float(v) if v.is_finite() => {
                let _ = write!(s, "{v:?}");
            }
            other => {
                let text = String::from_utf8_lossy(&other.shown()).into_owned();
                s.push_str(&serde_json::to_string(&text).unwrap_or_default());
            }
        }
    }
    s.push_str("}\n");
    s.into_bytes()
}

/// The first `max_rows` rows of every flat column, for analyze.
pub(crate) fn sample(bytes: bytes::Bytes, max_rows: usize) -> Result<super::analyze::Table, ImportError> {
    use super::analyze::Sample;
    check_footer(&bytes)?;
    let reader = guarded(|| SerializedFileReader::new(bytes.clone()).map_err(corrupt))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let mut columns = Vec::new();
    let mut names = Vec::new();
    let mut paths = Vec::new();
    for i in 0..schema.num_columns() {
        let desc = schema.column(i);
        if desc.max_rep_level() > 0 {
            continue;
        }
        let Some(conv) = conv_of(
            desc.physical_type(),
            desc.logical_type_ref(),
            desc.converted_type(),
            desc.type_scale(),
        ) else {
            continue;
        };
        let parts = desc.path().parts();
        names.push(parts.join("_"));
        paths.push((parts.len() > 1).then(|| format!("$.{}", parts.join("."))));
        columns.push(Column {
            leaf: i,
            conv,
            max_def: desc.max_def_level(),
            values: None,
            defs: Vec::new(),
            index: Vec::new(),
        });
    }
    let mut rows = Vec::new();
    for g in 0..reader.num_row_groups() {
        if rows.len() >= max_rows {
            break;
        }
        let want = max_rows - rows.len();
        let n = guarded(|| {
            let group = reader.get_row_group(g).map_err(corrupt)?;
            let n = (group.metadata().num_rows().max(0) as usize).min(want);
            for col in columns.iter_mut() {
                col.values = Some(typed(checked_column(&bytes, &*group, col.leaf)?));
                read_batch(col, n)?;
            }
            Ok(n)
        })?;
        for r in 0..n {
            let row = ParquetRow { columns: &columns, r };
            rows.push(
                (0..columns.len())
                    .map(|slot| match row.cell(slot) {
                        Cell::Absent => Sample::Absent,
                        Cell::Bool(b) => Sample::Bool(b),
                        Cell::Int(v) => Sample::Int(v),
                        Cell::Float(v) => Sample::Float(v),
                        Cell::Timestamp(..) | Cell::LocalTimestamp(..) | Cell::Date(_) => Sample::Timestamp,
                        other => Sample::Text(String::from_utf8_lossy(&other.shown()).into_owned()),
                    })
                    .collect(),
            );
        }
    }
    Ok(super::analyze::Table {
        names,
        paths,
        rows,
        end: 0,
    })
}
