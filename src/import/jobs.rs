//! Import jobs (spec §4): every import is one, stored in the `import_jobs` column
//! family under its id. A synchronous import's job is written when it starts and, as
//! `done`, in the same write that publishes its points; an async import (or one from a
//! URL) answers 202 and runs as a task. A restart turns jobs left `waiting` or
//! `working` into `error`: nothing of them was committed.

use serde::{Deserialize, Serialize};

use crate::storage::imports::{ImportBatch, CF_IMPORT_JOBS};
use crate::storage::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Waiting,
    Working,
    Done,
    Error,
    Cancelled,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    pub fn finished(self) -> bool {
        matches!(self, Status::Done | Status::Error | Status::Cancelled)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub bytes_read: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    pub rows: u64,
    pub points: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub status: Status,
    pub source: String,
    pub mode: String,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    pub updated_at: String,
    pub progress: Progress,
    /// The import's answer, as a synchronous import gives it.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_default()
}

pub fn now() -> String {
    rfc3339(crate::http::response::now_millis())
}

pub fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

pub fn encode(job: &Job) -> Vec<u8> {
    serde_json::to_vec(job).expect("a job serializes")
}

pub fn put(store: &Store, id: u64, job: &Job) -> Result<(), StoreError> {
    let mut batch = ImportBatch::default();
    batch.put(store, CF_IMPORT_JOBS, &key(id), &encode(job));
    store.import_write(batch, true)
}

pub fn get(store: &Store, id: u64) -> Result<Option<Job>, StoreError> {
    Ok(store
        .import_get(CF_IMPORT_JOBS, &key(id))?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .map(as_shown))
}

/// The record written with an import's points says `done` (so a crash right after
/// still knows it committed), and its result, whose counts come from that write, follows
/// a moment later: until then the job shows as still `working`, so a client that sees
/// `done` always finds the result.
fn as_shown(mut job: Job) -> Job {
    if job.status == Status::Done && job.result.is_none() {
        job.status = Status::Working;
    }
    job
}

/// The newest `limit` jobs passing the filters, newest first.
pub fn list(store: &Store, source: Option<&str>, status: Option<Status>, limit: usize) -> Result<Vec<Job>, StoreError> {
    let mut all = Vec::new();
    store.import_scan(CF_IMPORT_JOBS, &[], |_, v| {
        if let Ok(job) = serde_json::from_slice::<Job>(v).map(as_shown) {
            if source.is_none_or(|s| s == job.source) && status.is_none_or(|s| s == job.status) {
                all.push(job);
            }
        }
        true
    })?;
    all.reverse();
    all.truncate(limit);
    Ok(all)
}

/// At start: every job a stop interrupted ends in `error` (nothing of it was
/// committed; its staged points are dropped with the whole staging area).
pub fn recover(store: &Store) -> Result<usize, StoreError> {
    let mut stale = Vec::new();
    let mut uncounted = Vec::new();
    store.import_scan(CF_IMPORT_JOBS, &[], |k, v| {
        if let Ok(job) = serde_json::from_slice::<Job>(v) {
            if !job.status.finished() {
                stale.push((k.to_vec(), job));
            } else if job.status == Status::Done && job.result.is_none() {
                uncounted.push((k.to_vec(), job));
            }
        }
        true
    })?;
    let mut batch = ImportBatch::default();
    // Committed, but stopped before its counts were stored: done, saying so.
    for (k, mut job) in uncounted {
        job.result = Some(serde_json::json!({
            "status": "done",
            "import_id": job.id,
            "source": job.source,
            "error": "kairosd stopped right after committing this import, before storing its counts; its points are stored",
        }));
        batch.put(store, CF_IMPORT_JOBS, &k, &encode(&job));
    }
    for (k, mut job) in stale.iter().cloned() {
        job.status = Status::Error;
        job.error = Some("kairosd stopped during the import; nothing of it was committed".to_owned());
        job.updated_at = now();
        batch.put(store, CF_IMPORT_JOBS, &k, &encode(&job));
    }
    if !batch.is_empty() {
        store.import_write(batch, true)?;
    }
    store.clear_import_staging()?;
    Ok(stale.len())
}
