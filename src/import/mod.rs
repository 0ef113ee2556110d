//! File imports on the daemon's side (spec `import.md` §1–§5, §10): stored sources, the
//! import engine, jobs, the quarantine store. The decoders are IO-free in
//! `kairos_protocols::import`; this module feeds them bytes and stores what comes out.
//!
//! # Atomic imports: staging, then one publish
//!
//! A file's points must appear all at once or not at all, and a kill -9 mid-import must
//! leave nothing visible, not even the names of series only the import would create.
//! The engine therefore never hands an import's points to the normal write path while
//! the file is read. Accepted points are written, a batch at a time, to the
//! `import_staging` column family under the import's id, keyed by (series key,
//! timestamp, file order), without the WAL: RocksDB sorts them on disk, so the engine's
//! memory stays at one batch whatever the file's size. Series ids are not allocated
//! then (only the writer does that), so an abandoned import leaves no series, no names
//! and no points; its staging records are dropped when it fails and, after a crash, at
//! the next start (no import survives a restart; its job turns to `error`).
//!
//! At the end, the writer ([`crate::writer`], `publish`) reads the import's staging
//! records in key order, one series at a time, allocates the series it creates, folds
//! each (series, bucket) into one chunk merge operand, and writes all of it together
//! with the deletion of a replace's range, the removal of the staging records and the
//! job's `done` record as **one** RocksDB write batch. The write is atomic; it runs in
//! the writer's order with live writes, so a ledger check or a replace sees exactly the
//! points written before it.
//!
//! Why one write batch rather than SST files ingested with `ingest_external_file`: an
//! ingestion is atomic per column family, but a publish also writes the series
//! dictionary, the tag index and the names (in other column families), and those must
//! appear with the points. The cost is that the publish's batch holds the file's
//! encoded chunks (about 2 bytes a point at the benchmark's shape, not the raw rows)
//! while it is written; reading, mapping and staging stay at flat memory.
//!
//! # Layout
//!
//! - [`registry`]: stored, versioned sources (`/api/v1/sources`, `kairosd sources`).
//! - [`engine`]: one import run: bytes in, staged points, quarantined rows, the answer.
//! - [`quarantine`]: the rows imports set aside, stored, listed, downloaded, deleted.
//! - [`jobs`]: every import is a job; async imports and imports from a URL run as one.
//! - [`ids`]: import ids (time-ordered, printed as 13 Crockford base-32 characters).

pub mod engine;
pub mod ids;
pub mod jobs;
pub mod quarantine;
pub mod registry;

pub use engine::{ImportContext, ImportParams, ImportResult};
