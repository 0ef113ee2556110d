//! A real full disk: the data directory on an 8 MiB tmpfs, ingest until ENOSPC, then the
//! filesystem grown. The daemon must stay up, answer 507 or 503 (never 500), say why in
//! health, keep every acknowledged point and every telnet line it read, and resume by
//! itself once there is room. Needs root to mount; skipped with a message otherwise.
//! Also: a writer that dies ends the process with a non-zero status.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::json;

struct Tmpfs {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let tmp = tempfile::tempdir().ok()?;
        let dir = tmp.path().join("fs");
        std::fs::create_dir(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir, _tmp: tmp })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn body(batch: usize) -> String {
    let pts: Vec<_> = (0..1000).map(|j| json!([batch * 1000 + j + 1, j])).collect();
    json!([{"name": "full.rest", "tags": {"h": format!("h{}", batch % 7)}, "datapoints": pts}]).to_string()
}

fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(d: &Daemon, metric: &str) -> u64 {
    let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": metric}]}));
    r["queries"][0]["sample_size"].as_u64().unwrap()
}

#[test]
fn a_full_disk_slows_ingest_down_loses_nothing_and_recovers_without_a_restart() {
    let Some(fs) = Tmpfs::mount("8m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run");
        return;
    };
    let data: &Path = &fs.dir.join("data");
    let d = Daemon::start_in(
        data,
        &[
            ("kairosd.writer.ack_timeout_ms", "2000"),
            ("kairosd.storage.idle_flush_ms", "0"),
        ],
    );
    // Telnet keeps sending the whole time: its points must all land in the end.
    let telnet_lines = 30_000;
    let mut telnet = d.telnet();
    let sender = std::thread::spawn(move || {
        for i in 0..telnet_lines {
            let line = format!("put full.telnet {} {} h=t\n", 1_000_000 + i, i);
            telnet.write_all(line.as_bytes()).unwrap();
            if i % 1000 == 999 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        telnet
    });

    let mut acked = 0usize;
    let mut refusal = None;
    let started = Instant::now();
    while refusal.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the 8 MiB disk never filled"
        );
        let r = d.post("/api/v1/datapoints", &body(acked));
        match r.status {
            204 => acked += 1,
            507 | 503 => refusal = Some(r),
            other => panic!("a full disk answered {other}: {}", r.text()),
        }
    }
    let refusal = refusal.unwrap();
    let errors = refusal.errors();
    eprintln!(
        "disk full after {acked} acknowledged requests: {} {errors:?}",
        refusal.status
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("No space left on device") || e.contains("did not commit")),
        "{errors:?}"
    );

    // Health says why; the daemon keeps serving reads.
    let status = wait("health to report the full disk", Duration::from_secs(20), || {
        let s = d.get("/api/v1/health/status").json();
        s.to_string().contains("disk full").then_some(s)
    });
    assert!(status.to_string().contains("Datastore-Write: FAIL"), "{status}");
    assert_eq!(d.get("/api/v1/health/check").status, 503);
    for _ in 0..3 {
        let r = d.post("/api/v1/datapoints", &body(999_999));
        assert!(r.status == 507 || r.status == 503, "{} {}", r.status, r.text());
    }
    assert_eq!(
        count(&d, "full.rest"),
        acked as u64 * 1000,
        "a query while the disk is full"
    );

    // Room again: ingest resumes by itself, and what was held is written.
    fs.resize("256m");
    wait("writes to be accepted again", Duration::from_secs(60), || {
        (d.post("/api/v1/datapoints", &body(acked)).status == 204).then_some(())
    });
    acked += 1;
    assert_eq!(d.get("/api/v1/health/check").status, 204);
    let telnet = sender.join().unwrap();
    drop(telnet);
    wait("every telnet line", Duration::from_secs(60), || {
        (count(&d, "full.telnet") == telnet_lines as u64).then_some(())
    });
    assert_eq!(count(&d, "full.rest"), acked as u64 * 1000, "acknowledged points lost");
    assert!(d.metric("kairosd_write_retries_total") >= 1.0);
    assert_eq!(d.metric("kairosd_writes_failing"), 0.0);

    // And all of it survives a restart.
    let (dir, _) = d.stop();
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(count(&d, "full.rest"), acked as u64 * 1000);
    assert_eq!(count(&d, "full.telnet"), telnet_lines as u64);
    d.stop();
}

#[test]
fn a_dead_writer_ends_the_process_with_an_error_status() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_with_env(&tmp.path().join("data"), &[], &[("KAIROSD_FAULTS", "panic_writer")]);
    let mut s = d.telnet();
    s.write_all(b"put dead.writer 1700000000 1 h=a\n").unwrap();
    let status =
        common::wait_timeout(&mut d.child, Duration::from_secs(20)).expect("kairosd kept running without its writer");
    assert_eq!(status.code(), Some(70), "{status}");
}
