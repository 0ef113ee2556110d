//! The daemon's query parser, compiled here from its sources (the daemon crate links
//! RocksDB, which a fuzz build should not rebuild).

#[path = "../../../../src/query/aggregators/mod.rs"]
pub mod aggregators;
#[path = "../../../../src/query/group_by.rs"]
pub mod group_by;
/// Stands in for the response writer (which needs the executor): only group_by's
/// output rendering calls it, and parsing never does.
pub mod json {
    pub fn value(out: &mut String, v: kairos_protocols::Value) {
        use std::fmt::Write as _;
        let _ = write!(out, "{v:?}");
    }
}
#[path = "../../../../src/query/props.rs"]
pub mod props;
#[path = "../../../../src/query/request.rs"]
pub mod request;
#[path = "../../../../src/query/time.rs"]
pub mod time;
#[path = "../../../../src/query/tz.rs"]
pub mod tz;
