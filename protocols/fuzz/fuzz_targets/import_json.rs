//! Any bytes as an NDJSON and as a JSON import (with a nested path): see `import_oracle`.
#![no_main]

use kairos_protocols::import::Format;
use libfuzzer_sys::fuzz_target;

#[path = "import_oracle.rs"]
mod import_oracle;

fuzz_target!(|data: &[u8]| {
    let source = import_oracle::source(
        r#"{"name":"f","timestamp":{"column":"time"},"metric":{"prefix":"f.","value_columns":"*"},
        "tags":{"columns":["station","host"]},"paths":{"host":"$.meta.host"}}"#,
    );
    import_oracle::check(Some(source.clone()), Format::Ndjson, data);
    import_oracle::check(Some(source), Format::Json, data);
});
