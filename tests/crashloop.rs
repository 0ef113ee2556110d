//! A short run of the kill -9 crash loop (`kairosd-crashloop`, 3 cycles): every
//! acknowledged point survives with its last acknowledged value, nothing appears that
//! was never sent, and `kairosd check` passes after every kill. The long run is
//! `target/release/kairosd-crashloop --cycles 20`.

use std::process::Command;

#[test]
fn three_kill_9_cycles_lose_no_acknowledged_point() {
    let out = Command::new(env!("CARGO_BIN_EXE_kairosd-crashloop"))
        .args(["--cycles", "3", "--min-ms", "300", "--max-ms", "1200"])
        .arg("--kairosd")
        .arg(env!("CARGO_BIN_EXE_kairosd"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("crashloop: 0 of "), "{stdout}\n{stderr}");
    let acked: u64 = stdout
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(acked > 100, "too few acknowledged points to mean anything: {stdout}");
}
