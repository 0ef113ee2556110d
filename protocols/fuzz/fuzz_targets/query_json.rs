//! The query body parser (`POST /api/v1/datapoints/query`) on any bytes, and on JSON
//! built around them: never a panic, and a refusal always says why.
#![no_main]

#[allow(dead_code, unused_imports)]
pub mod query;

use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fn check(body: &[u8]) {
    if let Err(errors) = query::request::parse(body, NOW) {
        assert!(!errors.is_empty(), "a refused query says why");
        assert!(errors.iter().all(|e| !e.is_empty()));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The bytes as a string in the places a query has strings, so the fuzzer reaches
    // past the JSON syntax quickly.
    let s = String::from_utf8_lossy(data);
    for template in [
        r#"{"start_relative":{"value":1,"unit":"hours"},"metrics":[{"name":"m","aggregators":[{"name":"X","sampling":{"value":1,"unit":"minutes"}}]}]}"#,
        r#"{"start_absolute":0,"time_zone":"X","metrics":[{"name":"m","group_by":[{"name":"X","tags":["h"]}]}]}"#,
        r#"{"start_absolute":0,"metrics":[{"name":"m","tags":{"h":["X"]},"limit":1}]}"#,
    ] {
        let body = template.replacen('X', &s.replace(['"', '\\'], ""), 1);
        check(body.as_bytes());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let wrapped = format!(r#"{{"start_absolute":0,"metrics":[{}]}}"#, text);
        check(wrapped.as_bytes());
    }
});
