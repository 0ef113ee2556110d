//! The Python client's pytest suite (`clients/python/tests`) against this build's
//! kairosd: the suite starts its own daemon from `KAIROSD_BIN` on `127.0.0.1:0` ports, so
//! `cargo test` covers the client without building anything else. Without Python or
//! pytest (the test command installs pytest) it says so loudly and skips.

use std::path::Path;
use std::process::Command;

#[test]
fn python_client_pytest_suite() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let probe = Command::new("python3").args(["-m", "pytest", "--version"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "\n*** SKIPPED python_client_pytest_suite: pytest is not installed for python3 ({}); \
                 ./scripts/test.sh installs it ***\n",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("\n*** SKIPPED python_client_pytest_suite: python3 cannot run ({e}) ***\n");
            return;
        }
    }
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "clients/python/tests"])
        .current_dir(repo)
        .env("KAIROSD_BIN", env!("CARGO_BIN_EXE_kairosd"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client's tests failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Exit 5 would mean no test ran; success with a count means they did.
    assert!(stdout.contains(" passed"), "pytest ran no test:\n{stdout}\n{stderr}");
    eprintln!("{}", stdout.lines().last().unwrap_or_default());
}
