//! Corruption is found, named and contained: a damaged staging record, an unreadable
//! chunk operand, a bad block inside a table file. Each is reported with its column
//! family and key, counted, moved aside (kept), and the daemon starts and serves the
//! rest; `kairosd check` names every bad record of a stopped store.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Daemon;
use kairos_protocols::{PointBatch, Value};
use kairosd::metrics::Metrics;
use kairosd::storage::{keys, staging, Store, StoreHandle};
use kairosd::writer::{Writer, WriterConfig};
use serde_json::json;

/// A raw RocksDB record.
type KeyValue = (Box<[u8]>, Box<[u8]>);

/// The store opened with RocksDB alone, to damage it. The `points` family gets a merge
/// operator that keeps the newest operand (only so that merges can be written; nothing
/// here reads them).
fn raw_db(dir: &Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, dir).unwrap().into_iter().map(|name| {
        let mut o = rocksdb::Options::default();
        if name == "points" {
            o.set_merge_operator_associative("kairosd.chunk.v2", |_, existing, ops| {
                ops.iter().last().or(existing).map(<[u8]>::to_vec)
            });
        }
        rocksdb::ColumnFamilyDescriptor::new(name, o)
    });
    rocksdb::DB::open_cf_descriptors(&opts, dir, cfs).unwrap_or_else(|e| panic!("{e}"))
}

fn check(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kairosd"))
        .arg("check")
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn post(d: &Daemon, host: &str, from: i64, n: i64) {
    let pts: Vec<_> = (from..from + n).map(|t| json!([t, t])).collect();
    let body = json!([{"name": "c.m", "tags": {"h": host}, "datapoints": pts}]);
    let r = d.post("/api/v1/datapoints", &body.to_string());
    assert_eq!(r.status, 204, "{}", r.text());
}

fn count(d: &Daemon, host: &str) -> u64 {
    let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "c.m", "tags": {"h": [host]}}]}));
    r["queries"][0]["sample_size"].as_u64().unwrap()
}

fn wait_metric(d: &Daemon, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.metric(name) < at_least {
        assert!(Instant::now() < deadline, "{name} stayed below {at_least}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn damaged_staging_records_are_moved_aside_and_the_rest_recovered() {
    let d = Daemon::start(&[
        ("kairosd.writer.promote_interval_ms", "600000"),
        ("kairosd.storage.idle_flush_ms", "0"),
    ]);
    post(&d, "a", 1, 100);
    post(&d, "a", 101, 100);
    post(&d, "a", 201, 100);
    let (dir, _tmp) = d.kill9();
    {
        let db = raw_db(&dir);
        let cf = db.cf_handle("staging").unwrap();
        let records: Vec<KeyValue> = db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 3, "one staging record per acknowledged request");
        // A flipped bit in the second record, and a well-formed record naming a series
        // that was never allocated (which used to make the promotion sort panic).
        let mut bad = records[1].1.to_vec();
        bad[5] ^= 0x10;
        db.put_cf(cf, &records[1].0, bad).unwrap();
        let mut forged = Vec::new();
        staging::encode([(1u64 << 60, 5, Value::Long(1)), (0, 6, Value::Long(2))], &mut forged);
        db.put_cf(cf, 1000u64.to_be_bytes(), forged).unwrap();
    }
    let (code, text) = check(&dir);
    assert_eq!(code, 1, "{text}");
    assert_eq!(text.matches("bad: staging").count(), 2, "{text}");
    assert!(text.contains("checksum"), "{text}");

    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(count(&d, "a"), 200, "the undamaged records are recovered");
    assert_eq!(d.metric("kairosd_corrupt_records_total"), 2.0);
    let status = d.get("/api/v1/health/status").text();
    assert!(
        status.contains("corrupt records") && status.contains("staging"),
        "{status}"
    );
    assert_eq!(
        d.get("/api/v1/health/check").status,
        204,
        "damage moved aside does not stop writes"
    );
    post(&d, "a", 1000, 10);
    assert_eq!(count(&d, "a"), 210);
    let (dir, _tmp2) = d.stop();
    let (code, text) = check(&dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 records in the quarantine"), "{text}");
}

#[test]
fn an_unreadable_chunk_operand_is_kept_aside_not_dropped() {
    let d = Daemon::start(&[("kairosd.writer.promote_interval_ms", "20")]);
    post(&d, "a", 1, 100);
    post(&d, "b", 1, 100);
    let (dir, _tmp) = d.stop();
    {
        // Series 1 (h=a), the bucket holding its points.
        let db = raw_db(&dir);
        let key = keys::point_key(1, keys::bucket_start(1, 7_200_000));
        db.merge_cf(db.cf_handle("points").unwrap(), key, b"not a chunk")
            .unwrap();
    }
    let (code, text) = check(&dir);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("bad: points series 1") && text.contains("unreadable merge operands"),
        "{text}"
    );

    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(count(&d, "a"), 100, "the readable points of the damaged key are served");
    assert_eq!(count(&d, "b"), 100);
    wait_metric(&d, "kairosd_corrupt_records_total", 1.0);
    assert!(d.get("/api/v1/health/status").text().contains("corrupt records"));
    post(&d, "a", 1000, 1);
    assert_eq!(count(&d, "a"), 101);
    let (dir, _tmp2) = d.stop();
    let (code, text) = check(&dir);
    assert_eq!(code, 0, "{text}");
    let db = raw_db(&dir);
    let q: Vec<_> = db
        .iterator_cf(db.cf_handle("quarantine").unwrap(), rocksdb::IteratorMode::Start)
        .map(Result::unwrap)
        .collect();
    assert_eq!(q.len(), 1);
    assert_eq!(&q[0].1[..], b"not a chunk", "the unreadable operand is kept as it was");
    assert!(q[0].0.starts_with(b"points\0"));
}

fn writer_config() -> WriterConfig {
    WriterConfig {
        batch_points: 1 << 20,
        linger: Duration::ZERO,
        promote_points: 1 << 20,
        promote_interval: Duration::from_secs(60),
        sync: false,
    }
}

fn batch(metric: &str, from: i64, n: i64) -> PointBatch {
    let mut b = PointBatch::new();
    for s in 0..50 {
        let host = format!("h{s}");
        for t in from..from + n {
            // Noisy doubles, so the table file does not compress to nothing.
            let v = ((t * 7919 + s * 104_729) % 1_000_003) as f64 / 7.3;
            b.push_parts(metric, [("h", host.as_str())], t * 10_000, Value::Double(v), 0);
        }
    }
    b
}

#[test]
fn a_bad_block_costs_its_data_not_the_ability_to_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(Store::open(dir.path(), 7_200_000).unwrap());
        let mut w = Writer::new(Arc::clone(&store), Arc::new(Metrics::default()), writer_config()).unwrap();
        for m in 0..4 {
            w.write_batches(&[batch(&format!("bb.m{m}"), 0, 2000)]).unwrap();
        }
        store.compact();
    }
    // 4 KiB of garbage in the middle of the largest table file.
    let largest = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let len = largest.metadata().unwrap().len();
    assert!(
        len > 64 << 10,
        "table file of {len} bytes is too small to damage in the middle"
    );
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&largest)
            .unwrap();
        f.seek(SeekFrom::Start(len / 2)).unwrap();
        let mut probe = [0u8; 1];
        f.read_exact(&mut probe).unwrap();
        f.seek(SeekFrom::Start(len / 2)).unwrap();
        f.write_all(&[0xa5; 4096]).unwrap();
    }
    let report = kairosd::storage::check::check(dir.path(), false).unwrap();
    assert!(!report.bad.is_empty(), "check did not see the bad block");
    assert!(
        report
            .bad
            .iter()
            .any(|l| l.contains("points") && l.contains("unreadable")),
        "{:?}",
        report.bad
    );

    let handle = Arc::new(StoreHandle::open(dir.path(), 7_200_000, Default::default()).unwrap());
    let store = handle.get().unwrap();
    let metrics = Arc::new(Metrics::default());
    let mut w = Writer::new(Arc::clone(&store), Arc::clone(&metrics), writer_config()).unwrap();
    // New points at both ends of the damaged file's key range, flushed: the compaction
    // that merges them with it reads the bad block and fails...
    w.write_batches(&[batch("bb.m0", 5000, 10), batch("bb.m3", 5000, 10)])
        .unwrap();
    store.flush_memtables().unwrap();
    store.compact();
    let background = store.db_property_int("rocksdb.background-errors").unwrap_or(0);
    assert!(background >= 1, "the compaction over the bad block did not fail");
    // ... and writes go on (with paranoid checks every later write failed with
    // "Corruption: block checksum mismatch").
    w.write_batches(&[batch("bb.after", 0, 100)])
        .expect("writes keep working after a bad block");
    w.write_batches(&[batch("bb.m0", 6000, 10)])
        .expect("even to a metric in the bad block");
    store.flush_memtables().expect("flushes too");
    let problems = metrics.health.data_problems(Some(background));
    assert!(problems.iter().any(|p| p.contains("background errors")), "{problems:?}");
    // Undamaged series are still served.
    let view = store.view();
    let mut reader = view.points();
    let mut readable = 0;
    for id in 1..=200u64 {
        let mut out = Vec::new();
        if reader.read(id, i64::MIN, i64::MAX, &mut out).is_ok() && out.len() >= 2000 {
            readable += 1;
        }
    }
    assert!(
        readable >= 100,
        "only {readable} of 200 series readable after one bad block"
    );
}
