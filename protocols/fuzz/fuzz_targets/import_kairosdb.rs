//! Any bytes as a KairosDB JSON import (REST array body or export lines): see `import_oracle`.
#![no_main]

use kairos_protocols::import::Format;
use libfuzzer_sys::fuzz_target;

#[path = "import_oracle.rs"]
mod import_oracle;

fuzz_target!(|data: &[u8]| {
    import_oracle::check(None, Format::Kairosdb, data);
});
