//! IO-free decoders for the protocols kairosd speaks.
//!
//! # Layout
//!
//! - [`datapoint`]: the common [`DataPoint`], its [`Value`], and [`PointBatch`], the
//!   allocation-lean form in which decoded points travel to the writer.
//! - [`series_key`]: the canonical, prefix-free byte form of a series identity.
//! - [`series_cache`]: per-connection raw name → series key, so a repeated series is
//!   decoded once.
//! - [`timestamp`]: the seconds/milliseconds rule, in exactly one place.
//! - [`number`]: KairosDB's strict long parser and Java's double grammar.
//! - [`framing`]: byte streams to frames (lines; length-prefixed), with an end-of-input
//!   mode for datagrams and files.
//! - [`decode`]: the [`Decoder`](decode::Decoder) interface every frame decoder offers
//!   its transports (TCP, UDP, later files and Kafka).
//! - [`telnet`]: `put` / `putm` / `version` lines.
//! - [`rest`]: `POST /api/v1/datapoints` JSON bodies, with per-metric partial success.
//! - [`graphite`]: carbon plaintext lines, pickle frames behind an opcode validator, and
//!   the path-to-metric-and-tags parsers.
//! - [`import`]: file and body import: source mappings, CSV/TSV/NDJSON/JSON/Parquet/KairosDB
//!   row decoders, quarantine records, analyze.
//!
//! Nothing here opens a socket, spawns a task or touches storage; every parser works
//! on bytes already framed by its caller and reports errors a user can act on.

pub mod datapoint;
pub mod decode;
pub mod framing;
pub mod graphite;
pub mod import;
pub mod number;
pub mod rest;
mod scan;
pub mod series_cache;
pub mod series_key;
pub mod telnet;
pub mod timestamp;

pub use datapoint::{DataPoint, PointBatch, PointRecord, Value};
