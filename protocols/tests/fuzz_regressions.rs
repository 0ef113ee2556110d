//! Replays every input kept under `fuzz/regressions/<target>/` through that fuzz target's
//! own code (oracle included), so a crash the fuzzer found stays fixed without a fuzz
//! build or a nightly toolchain.
//!
//! The targets are compiled here from their files, unchanged: `fuzz_target!` is defined
//! below to turn the target's body into a plain `replay(&[u8])`, and this crate names
//! itself `libfuzzer_sys` so the targets' `use libfuzzer_sys::fuzz_target;` finds it.
//! The chunk, staging and query targets compile the daemon's own sources the same way
//! the fuzz build does (`#[path]`), so no RocksDB is linked.
//!
//! To keep a new finding: copy `fuzz/artifacts/<target>/crash-*` into
//! `fuzz/regressions/<target>/`, fix the decoder, and `cargo test -p kairos-protocols`.

extern crate self as libfuzzer_sys;

use std::path::{Path, PathBuf};

#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        pub fn replay($data: &[u8]) $body
    };
}

#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/chunk.rs"]
mod chunk;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/framers.rs"]
mod framers;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/graphite_line.rs"]
mod graphite_line;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/import_csv.rs"]
mod import_csv;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/import_json.rs"]
mod import_json;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/import_kairosdb.rs"]
mod import_kairosdb;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/import_parquet.rs"]
mod import_parquet;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/pickle_frame.rs"]
mod pickle_frame;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/query_json.rs"]
mod query_json;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/rest_body.rs"]
mod rest_body;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/staging.rs"]
mod staging;
#[allow(unused_attributes, dead_code, unused_imports)]
#[path = "../fuzz/fuzz_targets/telnet_line.rs"]
mod telnet_line;

/// Each fuzz target by its name in `fuzz/Cargo.toml` (and its `regressions/` directory).
const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("telnet_line", telnet_line::replay),
    ("rest_body", rest_body::replay),
    ("pickle_frame", pickle_frame::replay),
    ("graphite_line", graphite_line::replay),
    ("framers", framers::replay),
    ("chunk", chunk::replay),
    ("staging", staging::replay),
    ("query_json", query_json::replay),
    ("import_csv", import_csv::replay),
    ("import_json", import_json::replay),
    ("import_kairosdb", import_kairosdb::replay),
    ("import_parquet", import_parquet::replay),
];

// The daemon's query sources name each other as `crate::query::...`.
use query_json::query;

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

/// Every kept input of every target, each run through its target's checks.
#[test]
fn kept_crash_inputs_replay_clean() {
    let mut replayed = 0;
    for &(name, run) in TARGETS {
        let dir = regressions().join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries.map(|e| e.expect("read regressions dir").path()).collect();
        files.sort();
        for file in files {
            let input = std::fs::read(&file).expect("read a kept input");
            eprintln!("replaying {}", file.display());
            run(&input);
            replayed += 1;
        }
    }
    eprintln!("{replayed} kept inputs replayed");
}

/// A directory that names no target would never be replayed: refuse it.
#[test]
fn every_regressions_dir_names_a_target() {
    let Ok(entries) = std::fs::read_dir(regressions()) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("read regressions dir");
        if !entry.file_type().expect("file type").is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().expect("utf-8 dir name");
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/regressions/{name} names no fuzz target (known: {:?})",
            TARGETS.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
    }
}
