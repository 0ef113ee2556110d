//! The writer's failure paths, driven in-process through the storage fault injection
//! (`kairosd::storage::Faults`): a failed commit, RocksDB's sticky background error, a
//! full disk, a failed promotion, a writer that panics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kairos_protocols::{series_key, PointBatch, Value};
use kairosd::ingest::{IngestError, IngestHandle};
use kairosd::metrics::Metrics;
use kairosd::storage::{Faults, StoreHandle};
use kairosd::writer::{Writer, WriterConfig};

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<StoreHandle>,
    metrics: Arc<Metrics>,
    ingest: Option<IngestHandle>,
    writer: Option<JoinHandle<()>>,
}

fn config() -> WriterConfig {
    WriterConfig {
        batch_points: 10_000,
        linger: Duration::ZERO,
        promote_points: 100_000,
        promote_interval: Duration::from_secs(60),
        sync: false,
    }
}

fn rig(config: WriterConfig, arm: impl FnOnce(&Faults)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    arm(&faults);
    faults.arm();
    let store = Arc::new(StoreHandle::open(dir.path(), 7_200_000, faults).unwrap());
    let metrics = Arc::new(Metrics::default());
    let (ingest, rx) = IngestHandle::new(10_000, Arc::clone(&metrics));
    let writer = Writer::new(store.get().unwrap(), Arc::clone(&metrics), config).unwrap();
    let handle = Arc::clone(&store);
    let thread = std::thread::spawn(move || writer.run_with(handle, rx));
    Rig {
        _dir: dir,
        store,
        metrics,
        ingest: Some(ingest),
        writer: Some(thread),
    }
}

impl Rig {
    fn ingest(&self) -> &IngestHandle {
        self.ingest.as_ref().unwrap()
    }

    fn faults(&self) -> &Faults {
        self.store.faults()
    }

    /// Closes the queue and waits for the writer to drain it.
    fn stop(&mut self) {
        self.metrics.health.set_stopping();
        self.ingest.take().unwrap().close();
        self.writer.take().unwrap().join().unwrap();
    }

    /// Points of `m{h=a}`, staged or promoted.
    fn points(&self) -> Vec<(i64, Value)> {
        let store = self.store.get().unwrap();
        let Some(id) = store.series_id(&series_key::encode("m", [("h", "a")])).unwrap() else {
            return Vec::new();
        };
        let view = store.view();
        let mut out = Vec::new();
        view.points().read(id, i64::MIN, i64::MAX, &mut out).unwrap();
        let staged = view
            .staged_points(&[id].into_iter().collect(), i64::MIN, i64::MAX)
            .unwrap();
        out.extend(staged.values().flatten().map(|&(ts, _, v)| (ts, v)));
        out.sort_by_key(|p| p.0);
        out
    }
}

fn batch(from: i64, n: i64) -> PointBatch {
    let mut b = PointBatch::new();
    for ts in from..from + n {
        b.push_parts("m", [("h", "a")], ts, Value::Long(ts * 10), 0);
    }
    b
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_failed_commit_is_retried_and_every_point_is_kept() {
    let mut r = rig(config(), |f| f.fail_commits.store(3, Relaxed));
    let rt = runtime();
    // An acknowledged REST-style write and a fire-and-forget telnet-style one.
    rt.block_on(r.ingest().submit_and_wait(batch(0, 100), Duration::from_secs(30)))
        .expect("the write is acknowledged once a retry succeeds");
    rt.block_on(r.ingest().submit(batch(100, 50))).unwrap();
    wait_until("the second batch", || r.points().len() == 150);
    assert!(r.metrics.health.write_retries.load(Relaxed) >= 3);
    assert!(
        r.metrics.health.write_failing().is_none(),
        "health clears after a success"
    );
    r.stop();
    assert_eq!(
        r.points(),
        (0..150).map(|t| (t, Value::Long(t * 10))).collect::<Vec<_>>()
    );
}

#[test]
fn a_sticky_storage_error_is_cleared_by_reopening_the_store() {
    let mut r = rig(config(), |f| {
        f.fail_commits.store(1, Relaxed);
        f.sticky.store(true, Relaxed);
    });
    let rt = runtime();
    rt.block_on(r.ingest().submit_and_wait(batch(0, 10), Duration::from_secs(30)))
        .expect("acknowledged after the reopen");
    assert!(r.metrics.health.store_reopens.load(Relaxed) >= 1);
    rt.block_on(r.ingest().submit_and_wait(batch(10, 10), Duration::from_secs(30)))
        .unwrap();
    r.stop();
    assert_eq!(r.points().len(), 20);
}

#[test]
fn a_full_disk_holds_the_points_says_so_and_resumes_by_itself() {
    let mut r = rig(config(), |f| {
        f.fail_commits.store(u64::MAX, Relaxed);
        f.no_space.store(true, Relaxed);
    });
    let rt = runtime();
    let err = rt
        .block_on(r.ingest().submit_and_wait(batch(0, 10), Duration::from_millis(300)))
        .unwrap_err();
    assert!(matches!(err, IngestError::Timeout(_)), "{err}");
    assert!(r.metrics.health.storage_full());
    let problems = r.metrics.health.write_problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("disk full") && p.contains("No space left on device")),
        "{problems:?}"
    );
    // Space comes back: the held points are written without anyone sending them again.
    r.faults().fail_commits.store(0, Relaxed);
    wait_until("the held points", || r.points().len() == 10);
    assert!(!r.metrics.health.storage_full());
    assert!(r.metrics.health.write_problems().is_empty());
    r.stop();
}

#[test]
// The staged points borrow the view, so the result is bound before the block ends.
#[allow(clippy::let_and_return)]
fn a_failed_promotion_backs_off_instead_of_spinning() {
    let mut c = config();
    c.promote_points = 1;
    let mut r = rig(c, |f| f.fail_promotions.store(u64::MAX, Relaxed));
    let rt = runtime();
    rt.block_on(r.ingest().submit_and_wait(batch(0, 5), Duration::from_secs(30)))
        .unwrap();
    let wakeups = r.metrics.writer_wakeups.load(Relaxed);
    std::thread::sleep(Duration::from_millis(1000));
    let passes = r.metrics.writer_wakeups.load(Relaxed) - wakeups;
    let failures = r.metrics.flush_errors.load(Relaxed);
    // Backoff 50, 100, 200, 400 ms...: a handful of tries a second, not thousands.
    assert!(passes < 30, "the writer loop ran {passes} times in a second");
    assert!((1..=10).contains(&failures), "{failures} promotion attempts");
    assert!(r
        .metrics
        .health
        .write_failing()
        .is_some_and(|f| f.contains("promotion")));
    // Staged points stay readable meanwhile, and are promoted once it works.
    assert_eq!(r.points().len(), 5);
    r.faults().fail_promotions.store(0, Relaxed);
    wait_until("the promotion", || {
        r.metrics.health.write_failing().is_none() && {
            let store = r.store.get().unwrap();
            let view = store.view();
            let empty = view
                .staged_points(&[1].into_iter().collect(), i64::MIN, i64::MAX)
                .unwrap()
                .is_empty();
            empty
        }
    });
    r.stop();
    assert_eq!(r.points().len(), 5);
}

#[test]
fn an_idle_writer_sleeps() {
    let mut r = rig(config(), |_| {});
    let rt = runtime();
    rt.block_on(r.ingest().submit_and_wait(batch(0, 5), Duration::from_secs(30)))
        .unwrap();
    let wakeups = r.metrics.writer_wakeups.load(Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    let passes = r.metrics.writer_wakeups.load(Relaxed) - wakeups;
    assert!(passes < 5, "an idle writer ran its loop {passes} times");
    r.stop();
}

#[test]
fn a_panicking_writer_is_seen_by_health() {
    let r = rig(config(), |f| f.panic_writer.store(true, Relaxed));
    let rt = runtime();
    let err = rt
        .block_on(r.ingest().submit_and_wait(batch(0, 1), Duration::from_secs(30)))
        .unwrap_err();
    assert!(matches!(err, IngestError::ShuttingDown), "{err}");
    wait_until("health to see the dead writer", || r.metrics.health.writer_died());
    assert!(r.metrics.health.write_problems()[0].contains("writer thread died"));
}
