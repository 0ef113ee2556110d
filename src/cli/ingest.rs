//! `kairosd ingest SOURCE FILE...|--stdin|-` (spec §3): each file streamed to the
//! daemon as one atomic import (or imported offline with `--data-dir`), a progress bar
//! on a terminal, one summary line per file, the worst exit code.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kairos_protocols::import::source::OnError;
use kairos_protocols::import::Format;
use serde_json::Value as Json;

use super::daemon::{encode, Daemon};
use super::offline::Offline;
use super::Target;
use crate::http::client::Body;
use crate::import::engine::{stored_source, Replace};
use crate::import::ImportParams;

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The stored source that maps the rows.
    pub source: String,
    /// Files to import, in order (`-` is stdin; an http(s):// URL is fetched by the daemon).
    pub files: Vec<String>,
    /// Read one file from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// csv, tsv, ndjson, json, parquet or kairosdb (default: by extension, else sniffed).
    #[arg(long)]
    pub format: Option<String>,
    /// append (default) or replace.
    #[arg(long, default_value = "append")]
    pub mode: String,
    /// Replace range start (epoch ms or RFC 3339), inclusive.
    #[arg(long)]
    pub replace_start: Option<String>,
    /// Replace range end (epoch ms or RFC 3339), inclusive.
    #[arg(long)]
    pub replace_end: Option<String>,
    /// Replace only series with this tag, name:value (repeatable).
    #[arg(long)]
    pub replace_tag: Vec<String>,
    /// Replace everything of the source's metrics.
    #[arg(long)]
    pub replace_all: bool,
    /// The time of rows with an empty timestamp cell (epoch ms, RFC 3339, or `now`).
    #[arg(long)]
    pub event_time: Option<String>,
    /// quarantine (default: the source's) or abort.
    #[arg(long)]
    pub on_error: Option<String>,
    /// Fail a file with more bad rows than this.
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// Parse and count, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on with the next file after one fails.
    #[arg(long)]
    pub keep_going: bool,
    /// Print each import's answer as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub target: Target,
}

/// One file's outcome, as an exit code rank: 2 > 1 > 3 > 0.
fn rank(code: u8) -> u8 {
    match code {
        2 => 3,
        1 => 2,
        3 => 1,
        _ => 0,
    }
}

/// The exit code of one import's answer.
fn code_of(status: u16, body: &Json) -> u8 {
    match status {
        200 => {
            let bad = body["invalid_lines"].as_u64().unwrap_or(0)
                + body["quarantine_rows"].as_u64().unwrap_or(0)
                + body["points_conflicting"].as_u64().unwrap_or(0);
            if bad > 0 {
                3
            } else {
                0
            }
        }
        400 | 404 | 409 => 2,
        _ => 1,
    }
}

#[derive(Default)]
struct Totals {
    files: u64,
    rows: u64,
    points: u64,
    quarantined: u64,
    invalid: u64,
    duplicates: u64,
}

fn summary(source: &str, name: &str, body: &Json, secs: f64) -> String {
    let n = |k: &str| body[k].as_u64().unwrap_or(0);
    let id = body["import_id"].as_str().unwrap_or("-");
    if body["status"] == "error" && n("rows") == 0 {
        return format!(
            "{source}: {name}: failed: {} [import {id}]",
            body["error"].as_str().unwrap_or("unknown error")
        );
    }
    let mut line = format!(
        "{source}: {name}: {} rows, {} points, {} quarantined, {} invalid, {} duplicates, {secs:.2}s [import {id}]",
        n("rows"),
        n("points_written").max(if body["dry_run"] == true { n("points") } else { 0 }),
        n("quarantine_rows"),
        n("invalid_lines"),
        n("points_skipped_duplicate"),
    );
    if body["status"] == "error" {
        line.push_str(&format!(
            ": failed, nothing committed: {}",
            body["error"].as_str().unwrap_or("unknown error")
        ));
    } else if body["dry_run"] == true {
        line.push_str(" (dry run: nothing written)");
    }
    line
}

/// Counts what passes through, for the progress bar.
struct Counting<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

fn progress_bar(total: Option<u64>, show: bool, name: &str) -> Option<ProgressBar> {
    if !show {
        return None;
    }
    let bar = match total {
        Some(t) => {
            let b = ProgressBar::new(t);
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        }
        None => {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        }
    };
    // At most 10 redraws a second.
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    bar.set_message(name.to_owned());
    Some(bar)
}

pub fn run(args: IngestArgs) -> ExitCode {
    let stdin_named = args.files.iter().any(|f| f == "-");
    if args.stdin && !args.files.is_empty() {
        return super::usage("give files or --stdin, not both");
    }
    if !args.stdin && args.files.is_empty() {
        return super::usage("give files to import, or --stdin (or -) to read standard input");
    }
    if stdin_named && args.files.len() > 1 {
        return super::usage("- (standard input) cannot be mixed with files");
    }
    let format = match args.format.as_deref() {
        None => None,
        Some(f) => match Format::parse(f) {
            Some(f) => Some(f),
            None => {
                return super::usage(format!(
                    "--format {f:?}: use csv, tsv, ndjson, json, parquet or kairosdb"
                ))
            }
        },
    };
    if args.mode != "append" && args.mode != "replace" {
        return super::usage(format!("--mode {:?}: use append or replace", args.mode));
    }
    let files: Vec<String> = if args.stdin {
        vec!["-".to_owned()]
    } else {
        args.files.clone()
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let offline = match &args.target.data_dir {
        Some(dir) => match Offline::open(dir) {
            Ok(o) => Some(o),
            Err(e) => return super::usage(e),
        },
        None => None,
    };
    let daemon = match &offline {
        Some(_) => None,
        None => match Daemon::new(&args.target) {
            Ok(d) => Some(d),
            Err(e) => return super::usage(e),
        },
    };
    let mut worst = 0u8;
    let mut totals = Totals::default();
    for file in &files {
        let started = Instant::now();
        let name = if file == "-" { "stdin".to_owned() } else { file.clone() };
        let (status, body) = match (&offline, &daemon) {
            (Some(o), _) => import_offline(o, &args, format, file),
            (None, Some(d)) => import_http(d, &args, format, file, show_progress),
            (None, None) => unreachable!("one target is set"),
        };
        let code = code_of(status, &body);
        if args.json {
            println!("{body}");
        }
        eprintln!(
            "{}",
            summary(&args.source, &name, &body, started.elapsed().as_secs_f64())
        );
        let n = |k: &str| body[k].as_u64().unwrap_or(0);
        totals.files += 1;
        totals.rows += n("rows");
        totals.points += n("points_written");
        totals.quarantined += n("quarantine_rows");
        totals.invalid += n("invalid_lines");
        totals.duplicates += n("points_skipped_duplicate");
        if rank(code) > rank(worst) {
            worst = code;
        }
        if (code == 1 || code == 2) && !args.keep_going {
            break;
        }
    }
    if let Some(o) = offline {
        o.close();
    }
    eprintln!(
        "total: {} files, {} rows, {} points, {} quarantined, {} invalid, {} duplicates",
        totals.files, totals.rows, totals.points, totals.quarantined, totals.invalid, totals.duplicates
    );
    ExitCode::from(worst)
}

fn failed(message: impl Into<String>) -> (u16, Json) {
    let m = message.into();
    (0, serde_json::json!({"status": "error", "error": m, "errors": [m]}))
}

fn query(args: &IngestArgs, format: Option<Format>, file: &str) -> String {
    let mut q = format!("source={}", encode(&args.source));
    let mut add = |k: &str, v: &str| q.push_str(&format!("&{k}={}", encode(v)));
    if let Some(f) = format {
        add("format", f.as_str());
    }
    if file != "-" && !is_url(file) {
        let name = std::path::Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        add("file", &name);
    }
    if args.mode == "replace" {
        add("mode", "replace");
    }
    if let Some(v) = &args.replace_start {
        add("replace_start", v);
    }
    if let Some(v) = &args.replace_end {
        add("replace_end", v);
    }
    for t in &args.replace_tag {
        add("replace_tag", t);
    }
    if args.replace_all {
        add("replace_all", "true");
    }
    if let Some(v) = &args.event_time {
        add("event_time", v);
    }
    if let Some(v) = &args.on_error {
        add("on_error", v);
    }
    if let Some(v) = args.max_errors {
        add("max_errors", &v.to_string());
    }
    if args.dry_run {
        add("dry_run", "true");
    }
    if is_url(file) {
        add("url", file);
    }
    q
}

fn is_url(f: &str) -> bool {
    f.starts_with("http://") || f.starts_with("https://")
}

fn import_http(d: &Daemon, args: &IngestArgs, format: Option<Format>, file: &str, show: bool) -> (u16, Json) {
    let path = format!("/api/v1/import?{}", query(args, format, file));
    if is_url(file) {
        // The daemon fetches it as a job; wait for the job's end.
        let a = match d.call("POST", &path, &[], Body::Empty) {
            Ok(a) => a,
            Err(e) => return failed(e),
        };
        if a.status != 202 {
            return (a.status, a.json());
        }
        let id = a.json()["import_id"].as_str().unwrap_or("").to_owned();
        return match d.wait_job(&id) {
            Ok(job) => match job.get("result").filter(|r| !r.is_null()) {
                Some(r) => (if job["status"] == "done" { 200 } else { 422 }, r.clone()),
                None => (
                    502,
                    serde_json::json!({"import_id": id, "status": "error", "error": job["error"], "errors": [job["error"]]}),
                ),
            },
            Err(e) => failed(e),
        };
    }
    let (reader, total): (Box<dyn Read>, Option<u64>) = if file == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        match File::open(file) {
            Ok(f) => {
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            }
            Err(e) => return failed(format!("cannot open {file}: {e}")),
        }
    };
    let bar = progress_bar(total, show, file);
    let mut counting = Counting {
        inner: reader,
        bar: bar.clone(),
    };
    let result = d.call(
        "POST",
        &path,
        &[("Content-Type", "application/octet-stream")],
        Body::Stream(&mut counting),
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(a) => {
            let mut body = a.json();
            if body.is_null() {
                body = serde_json::json!({"status": "error", "error": a.message(), "errors": [a.message()]});
            }
            (a.status, body)
        }
        Err(e) => failed(e),
    }
}

fn import_offline(o: &Offline, args: &IngestArgs, format: Option<Format>, file: &str) -> (u16, Json) {
    if is_url(file) {
        return failed("an import from a URL needs the daemon (drop --data-dir)");
    }
    let store = match o.store() {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let source = match stored_source(&store, &args.source) {
        Ok(s) => s,
        Err(r) => return (r.status.as_u16(), r.body),
    };
    drop(store);
    let mut p = ImportParams::new(source);
    p.format = format;
    p.dry_run = args.dry_run;
    p.max_errors = args.max_errors;
    if file != "-" {
        p.file_name = std::path::Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
    }
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
        v.as_deref()
            .map(|v| crate::http::import::parse_time(name, v))
            .transpose()
    };
    match time("--event-time", &args.event_time) {
        Ok(t) => p.event_time = t,
        Err(e) => return (400, serde_json::json!({"status": "error", "error": e, "errors": [e]})),
    }
    if let Some(e) = &args.on_error {
        p.on_error = match e.as_str() {
            "quarantine" => Some(OnError::Quarantine),
            "abort" => Some(OnError::Abort),
            _ => {
                let m = format!("--on-error {e:?}: use quarantine or abort");
                return (400, serde_json::json!({"status": "error", "error": m, "errors": [m]}));
            }
        };
    }
    if args.mode == "replace" {
        let range = match (
            time("--replace-start", &args.replace_start),
            time("--replace-end", &args.replace_end),
        ) {
            (Ok(Some(s)), Ok(Some(e))) => Some((s, e)),
            (Ok(None), Ok(None)) => None,
            (Err(m), _) | (_, Err(m)) => {
                return (400, serde_json::json!({"status": "error", "error": m, "errors": [m]}))
            }
            _ => {
                let m = "--mode replace needs both --replace-start and --replace-end";
                return (400, serde_json::json!({"status": "error", "error": m, "errors": [m]}));
            }
        };
        let mut tags: Vec<(String, Vec<String>)> = Vec::new();
        for t in &args.replace_tag {
            let Some((k, v)) = t.split_once(':') else {
                let m = format!("--replace-tag {t:?} must be name:value");
                return (400, serde_json::json!({"status": "error", "error": m, "errors": [m]}));
            };
            match tags.iter_mut().find(|(n, _)| n == k) {
                Some((_, vs)) => vs.push(v.to_owned()),
                None => tags.push((k.to_owned(), vec![v.to_owned()])),
            }
        }
        p.replace = Some(Replace {
            range,
            tags,
            all: args.replace_all,
            truncate_when_empty: false,
        });
    }
    let mut reader: Box<dyn Read> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match File::open(PathBuf::from(file)) {
            Ok(f) => Box::new(f),
            Err(e) => return failed(format!("cannot open {file}: {e}")),
        }
    };
    let r = o.import(p, &mut reader);
    let _ = Duration::ZERO;
    (r.status.as_u16(), r.body)
}
