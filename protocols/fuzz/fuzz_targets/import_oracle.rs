//! What every import fuzz target checks, whatever the decoder: no panic, the same
//! result however the input is split into chunks, counts that add up, records within
//! their limits, and only finite values in keys that read back.

use kairos_protocols::import::quarantine::RAW_LIMIT;
use kairos_protocols::import::{Format, Import, ImportError, ImportOptions, Output, Source};
use kairos_protocols::{DataPoint, Value};

// Not every target maps through a source (KairosDB JSON carries its own names).
#[allow(dead_code)]
pub fn source(json: &str) -> Source {
    Source::from_json(json.as_bytes()).expect("fuzz source is valid")
}

type Digest = (Vec<DataPoint>, Vec<String>, String, Option<Vec<u8>>);

fn digest(out: &Output) -> Digest {
    let rejected = out.rejected.iter().map(|r| format!("{:?}", r)).collect();
    (
        out.batch.to_points(),
        rejected,
        format!("{:?}", out.stats),
        out.header.clone(),
    )
}

fn run(source: &Option<Source>, format: Format, data: &[u8], cuts: &[usize]) -> Result<Output, ImportError> {
    let options = ImportOptions {
        format: Some(format),
        max_record_bytes: 4096,
        max_bytes: Some(1 << 24),
        ..ImportOptions::default()
    };
    let mut import = Import::new(source.clone(), options)?;
    let mut out = Output::default();
    let mut at = 0;
    for &c in cuts.iter().chain([&data.len()]) {
        import.feed(&data[at..c], &mut out)?;
        at = c;
    }
    import.finish(&mut out)?;
    Ok(out)
}

pub fn check(source: Option<Source>, format: Format, data: &[u8]) {
    let whole = run(&source, format, data, &[]);
    // Cut points from the data itself, so the fuzzer explores splits too.
    let mut cuts: Vec<usize> = data
        .iter()
        .take(8)
        .scan(0usize, |acc, &b| {
            *acc = acc.wrapping_mul(31).wrapping_add(b as usize);
            Some(*acc % (data.len() + 1))
        })
        .collect();
    cuts.sort_unstable();
    let split = run(&source, format, data, &cuts);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(digest(a), digest(b), "chunk splits changed the result"),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("whole {:?} vs split {:?}", whole.as_ref().err(), split.as_ref().err()),
    }
    let Ok(out) = whole else {
        let e = whole.unwrap_err();
        assert!(!e.to_string().is_empty());
        return;
    };
    let s = out.stats;
    assert_eq!(s.rows, s.rows_accepted + s.invalid_lines + s.quarantine_rows, "{s:?}");
    assert_eq!(out.rejected.len() as u64, s.invalid_lines + s.quarantine_rows);
    assert_eq!(out.batch.len() as u64, s.points);
    for r in &out.rejected {
        assert!(r.raw.len() <= RAW_LIMIT);
        assert!(!r.errors.is_empty());
        assert_eq!(r.kind, r.errors[0].kind);
    }
    for p in out.batch.to_points() {
        if let Value::Double(v) = p.value {
            assert!(v.is_finite());
        }
        assert!(!p.tags.is_empty());
    }
}
