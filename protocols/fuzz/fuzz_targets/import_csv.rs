//! Any bytes as a CSV import (wide rows, `"*"` values): see `import_oracle`.
#![no_main]

use kairos_protocols::import::Format;
use libfuzzer_sys::fuzz_target;

#[path = "import_oracle.rs"]
mod import_oracle;

fuzz_target!(|data: &[u8]| {
    let wide = import_oracle::source(
        r#"{"name":"f","timestamp":{"column":"time"},"metric":{"prefix":"f.","value_columns":"*"},"tags":{"columns":["station"]}}"#,
    );
    import_oracle::check(Some(wide), Format::Csv, data);
    let narrow = import_oracle::source(
        r#"{"name":"f","timestamp":{"column":"t","format":"rfc3339","timezone":"Europe/Berlin"},"columns":["t","n","v","h"],
        "csv":{"header":false},"metric":{"name_column":"n","value_column":"v"},"tags":{"columns":["h"],"static":{"s":"x"}}}"#,
    );
    import_oracle::check(Some(narrow), Format::Csv, data);
});
