//! kairosd: a KairosDB-compatible metrics daemon on an embedded RocksDB.
//!
//! # Layout
//!
//! - [`cli`] — the command line: `serve`, `ingest`, `tail`, `sources`, `check`, `compact`.
//! - [`config`] / [`properties`] — `kairos.properties` and its keys.
//! - [`server`] — starts the store, the writer and the listeners; shuts them down in order.
//! - [`listener`] — the accept loop with its connection cap, shared by every listener.
//! - [`sources`] — socket ingest as transport × framer × decoder: telnet on 4242,
//!   Graphite plaintext on 2003 (TCP and UDP), Graphite pickle on 2004.
//! - [`http`] — the REST API: a router and one handler file per endpoint group (ingest,
//!   query, delete, metadata, health, `/metrics`).
//! - [`import`] — file imports: stored sources, the import engine (staged, published in
//!   one write), jobs, quarantine.
//! - [`ingest`] — the bounded, permit-counted queue between listeners and the writer.
//! - [`writer`] — the single thread that allocates series ids, group-commits batches and
//!   applies deletes in order with them.
//! - [`storage`] — RocksDB column families, key layouts, the chunk codec and merge operator,
//!   snapshot reads and the write API (one atomic write per method).
//! - [`query`] — the streaming query engine: parse, plan, scan, fold or merge, group_by,
//!   the aggregator chain, JSON.
//! - [`metrics`] — self-metrics; [`health`] — what the health endpoints report.
//! - [`maintenance`] — the WAL fsync, the idle flush and the expiry compaction, off the writer thread.
//!
//! Decoding of every wire format lives in the IO-free `kairos-protocols` crate.

pub mod cli;
pub mod config;
pub mod health;
pub mod http;
pub mod import;
pub mod ingest;
pub mod kafka;
pub mod listener;
pub mod maintenance;
pub mod metrics;
pub mod procstat;
pub mod properties;
pub mod query;
pub mod server;
pub mod sources;
pub mod storage;
pub mod writer;
