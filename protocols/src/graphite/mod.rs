//! Graphite's carbon protocols: plaintext lines (TCP and UDP, port 2003) and pickle
//! frames (TCP, port 2004), and the mapping of a dotted path to a metric and tags.
//!
//! - [`text`]: `path value [timestamp]` lines, values and timestamps read as carbon
//!   reads them (Python's `float()`).
//! - [`pickle`]: pickled lists of `(path, (timestamp, value))`, decoded by serde-pickle
//!   only after an opcode validator has checked that the frame asks for nothing but
//!   lists, tuples, strings and numbers, within depth and size caps.
//! - [`path`]: the three path parsers selected by `kairosdb.carbon.tag_parser`:
//!   Graphite 1.1 tags ([`tags`]), KairosDB's host parser ([`host`]) and its
//!   InfluxDB-style templates ([`templates`]).

pub mod host;
pub mod path;
pub mod pickle;
pub mod tags;
pub mod templates;
pub mod text;

pub use path::{MapperConfigError, PathError, PathMapper, PathScratch, TagParserKind};
pub use pickle::PickleDecoder;
pub use text::TextDecoder;

use crate::decode::DecodeError;
use crate::number::NumberError;

/// Why a Graphite line or pickled point was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphiteError {
    #[error("line is not valid UTF-8 (first bad byte at offset {offset}); Graphite lines are read as UTF-8")]
    NotUtf8 { offset: usize },
    #[error("expected '<path> <value> [<timestamp>]', got {fields} fields")]
    Fields { fields: usize },
    #[error("value: {0}")]
    Value(NumberError),
    #[error("value '{0}' is not a finite number; NaN and Infinity are skipped")]
    NotFinite(String),
    #[error("timestamp: {0}")]
    Timestamp(NumberError),
    #[error("timestamp '{0}' is not a number of seconds kairosd can store")]
    TimestampRange(String),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("pickle frame refused: {0}")]
    Pickle(#[from] pickle::PickleError),
    #[error("pickled point {index}: {error}")]
    PickleItem { index: usize, error: Box<GraphiteError> },
    #[error("pickled point {index}: {what}; carbon sends (path, (timestamp, value))")]
    PickleShape { index: usize, what: String },
}

impl DecodeError for GraphiteError {
    fn is_routine(&self) -> bool {
        match self {
            GraphiteError::NotFinite(_) => true,
            GraphiteError::Path(p) => p.is_routine(),
            GraphiteError::PickleItem { error, .. } => error.is_routine(),
            _ => false,
        }
    }
}
