//! `kairosd compact` and `kairosd check`: offline work on a stopped store.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

use super::fail;

pub fn compact(data_dir: PathBuf) -> ExitCode {
    if !data_dir.join("CURRENT").exists() {
        return fail(format!("{} is not a kairosd data directory", data_dir.display()));
    }
    match crate::storage::Store::open(&data_dir, Config::default().bucket_width_ms) {
        Ok(store) => {
            store.compact();
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub fn check(data_dir: PathBuf) -> ExitCode {
    if !data_dir.join("CURRENT").exists() {
        eprintln!("kairosd: {} is not a kairosd data directory", data_dir.display());
        return ExitCode::from(2);
    }
    match crate::storage::check::check(&data_dir, true) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            for line in &report.bad {
                let _ = writeln!(out, "bad: {line}");
            }
            for line in &report.notes {
                let _ = writeln!(out, "note: {line}");
            }
            if report.bad.is_empty() {
                eprintln!(
                    "kairosd check: {} records in {}: all good",
                    report.records,
                    data_dir.display()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "kairosd check: {} records in {}: {} bad",
                    report.records,
                    data_dir.display(),
                    report.bad.len()
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("kairosd: {e}");
            ExitCode::from(2)
        }
    }
}
