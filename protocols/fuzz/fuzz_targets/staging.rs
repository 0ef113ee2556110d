//! The staging record decoder on any bytes, as is and with a valid checksum appended:
//! never a panic, no point handed out from a record that fails, and a record that
//! decodes re-encodes to the same points; any points round-trip.
#![no_main]

#[allow(dead_code)]
mod keys {
    pub type SeriesId = u64;
}

#[allow(dead_code)]
#[path = "../../../src/storage/staging.rs"]
mod staging;

use kairos_protocols::Value;
use libfuzzer_sys::fuzz_target;

type Point = (u64, i64, u8, u64);

fn flat(s: u64, t: i64, v: Value) -> Point {
    match v {
        Value::Long(l) => (s, t, 0, l as u64),
        Value::Double(d) => (s, t, 1, d.to_bits()),
    }
}

fn unflat(p: &Point) -> (u64, i64, Value) {
    let v = if p.2 == 0 {
        Value::Long(p.3 as i64)
    } else {
        Value::Double(f64::from_bits(p.3))
    };
    (p.0, p.1, v)
}

fn check(bytes: &[u8]) {
    let mut got = Vec::new();
    match staging::decode(bytes, |s, t, v| got.push(flat(s, t, v))) {
        Ok(()) => {
            let mut again = Vec::new();
            staging::encode(got.iter().map(unflat), &mut again);
            let mut back = Vec::new();
            staging::decode(&again, |s, t, v| back.push(flat(s, t, v))).expect("re-encoded record decodes");
            assert_eq!(back, got);
        }
        Err(_) => assert!(got.is_empty(), "a record that fails its checksum handed out points"),
    }
}

fuzz_target!(|data: &[u8]| {
    // Structural errors after a valid checksum may hand out the points before them, so
    // only the raw input is held to "nothing from a failed record".
    check(data);
    let mut sealed = data.to_vec();
    if !sealed.is_empty() {
        sealed[0] = 2;
    }
    staging::seal(&mut sealed);
    let _ = staging::decode(&sealed, |_, _, _| {});

    let points: Vec<Point> = data
        .chunks_exact(17)
        .map(|c| {
            let s = u64::from_le_bytes(c[0..8].try_into().unwrap());
            let v = u64::from_le_bytes(c[8..16].try_into().unwrap());
            (s, i64::from(c[16] as i8) * 1000, c[16] & 1, v)
        })
        .collect();
    let mut enc = Vec::new();
    staging::encode(points.iter().map(unflat), &mut enc);
    let mut back = Vec::new();
    staging::decode(&enc, |s, t, v| back.push(flat(s, t, v))).unwrap();
    assert_eq!(back, points);
});
