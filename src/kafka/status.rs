//! What `GET /api/v1/sources/{name}` shows of a Kafka source's consumer: its state,
//! the last error, and per partition the next offset, the lag and the last error.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value as Json};

#[derive(Default)]
pub struct SourceStatus {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    state: &'static str,
    last_error: Option<String>,
    partitions: BTreeMap<i32, Partition>,
}

#[derive(Default, Clone)]
struct Partition {
    next_offset: Option<i64>,
    high_watermark: Option<i64>,
    /// Where this run of the consumer started reading.
    resumed_from: Option<i64>,
    /// Messages committed by this run of the consumer.
    messages: u64,
    last_error: Option<String>,
}

impl SourceStatus {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `connecting`, `running`, `retrying` (after an error, see `last_error`).
    pub fn set_state(&self, state: &'static str) {
        self.with(|i| {
            if !(state == "connecting" && i.state == "retrying") {
                i.state = state;
            }
        });
    }

    /// A problem of the whole consumer (brokers unreachable, no such topic), logged by the caller.
    pub fn error(&self, message: String) {
        self.with(|i| {
            i.state = "error";
            i.last_error = Some(message);
        });
    }

    pub fn partition_error(&self, partition: i32, message: String) {
        self.with(|i| i.partitions.entry(partition).or_default().last_error = Some(message));
    }

    pub fn started(&self, partition: i32, from: Option<i64>) {
        self.with(|i| {
            let p = i.partitions.entry(partition).or_default();
            p.resumed_from = from;
            if from.is_some() {
                p.next_offset = from;
            }
        });
    }

    pub fn committed(&self, partition: i32, next: i64, messages: u64) {
        self.with(|i| {
            i.state = "running";
            i.last_error = None;
            let p = i.partitions.entry(partition).or_default();
            p.next_offset = Some(next);
            p.messages += messages;
        });
    }

    pub fn high_watermark(&self, partition: i32, high: i64) {
        self.with(|i| i.partitions.entry(partition).or_default().high_watermark = Some(high));
    }

    pub fn to_json(&self) -> Json {
        self.with(|i| {
            let partitions: Vec<Json> = i
                .partitions
                .iter()
                .map(|(n, p)| {
                    let lag = match (p.high_watermark, p.next_offset) {
                        (Some(h), Some(o)) => Some((h - o).max(0)),
                        (Some(h), None) => Some(h.max(0)),
                        _ => None,
                    };
                    json!({
                        "partition": n,
                        "next_offset": p.next_offset,
                        "lag": lag,
                        "resumed_from": p.resumed_from,
                        "messages": p.messages,
                        "last_error": p.last_error,
                    })
                })
                .collect();
            json!({
                "state": if i.state.is_empty() { "starting" } else { i.state },
                "last_error": i.last_error,
                "partitions": partitions,
            })
        })
    }
}
