//! Self-metrics: plain atomics bumped once per batch (never per point on the hot
//! path), rendered in Prometheus text format at `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Where points came from; one counter pair each. Graphite plaintext over TCP and over
/// UDP are counted apart, since UDP is where a sender's points can be lost unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Telnet,
    Rest,
    /// Graphite plaintext over TCP.
    Graphite,
    /// Graphite plaintext over UDP.
    GraphiteUdp,
    /// Graphite pickle.
    Pickle,
}

impl Protocol {
    const COUNT: usize = 5;
    const ALL: [Protocol; Protocol::COUNT] = [
        Protocol::Telnet,
        Protocol::Rest,
        Protocol::Graphite,
        Protocol::GraphiteUdp,
        Protocol::Pickle,
    ];

    fn label(self) -> &'static str {
        match self {
            Protocol::Telnet => "telnet",
            Protocol::Rest => "rest",
            Protocol::Graphite => "graphite",
            Protocol::GraphiteUdp => "graphite_udp",
            Protocol::Pickle => "pickle",
        }
    }
}

/// Upper bounds (seconds) of the flush latency histogram buckets.
const FLUSH_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    accepted: [AtomicU64; Protocol::COUNT],
    rejected: [AtomicU64; Protocol::COUNT],
    too_long: [AtomicU64; Protocol::COUNT],
    pub points_written: AtomicU64,
    pub series_created: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_errors: AtomicU64,
    flush_seconds_bucket: [AtomicU64; FLUSH_BUCKETS.len()],
    flush_micros_sum: AtomicU64,
    pub inflight_points: AtomicU64,
    pub telnet_connections: Arc<AtomicU64>,
    pub http_connections: Arc<AtomicU64>,
    pub graphite_connections: Arc<AtomicU64>,
    pub pickle_connections: Arc<AtomicU64>,
    /// TCP connections closed for sitting idle with part of a frame.
    pub idle_closed: AtomicU64,
    pub http_requests: AtomicU64,
    pub lines_too_long: AtomicU64,
    pub queries: AtomicU64,
    pub queries_running: AtomicU64,
    pub queries_rejected: AtomicU64,
    pub queries_refused: AtomicU64,
    pub query_points_scanned: AtomicU64,
    pub deletes: AtomicU64,
    /// Points of new series refused by `kairosd.series.max`.
    pub series_limit_refused: AtomicU64,
    /// Points dropped at ingest because their aligned ttl had already run out
    /// (`kairosdb.datastore.cassandra.align_datapoint_ttl_with_timestamp`).
    pub points_expired_on_arrival: AtomicU64,
    /// Passes of the writer's loop (a spinning writer shows here, not only as CPU).
    pub writer_wakeups: AtomicU64,
    /// Writer, write outcome and corruption state behind the health endpoints.
    pub health: crate::health::Health,
    pub kafka: KafkaMetrics,
}

/// Kafka sources' counters (all sources together; per partition in `GET /api/v1/sources/{name}`).
#[derive(Default)]
pub struct KafkaMetrics {
    /// Messages committed (their points and the next offset in one write).
    pub messages: AtomicU64,
    pub points: AtomicU64,
    /// Messages quarantined (undecodable, or a row of them refused).
    pub bad_messages: AtomicU64,
    /// Broker, consumer and commit errors (each also in the partition's `last_error`).
    pub errors: AtomicU64,
    /// Messages skipped because the stored offset had fallen below the log start.
    pub offsets_skipped: AtomicU64,
    /// Consumers running.
    pub consumers: AtomicU64,
}

impl Metrics {
    pub fn accepted(&self, p: Protocol, n: usize) {
        self.accepted[p as usize].fetch_add(n as u64, Relaxed);
    }

    pub fn rejected(&self, p: Protocol, n: usize) {
        self.rejected[p as usize].fetch_add(n as u64, Relaxed);
    }

    /// A line or frame over its protocol's size limit.
    pub fn too_long(&self, p: Protocol) {
        self.too_long[p as usize].fetch_add(1, Relaxed);
        if p == Protocol::Telnet {
            self.lines_too_long.fetch_add(1, Relaxed);
        }
    }

    pub fn accepted_total(&self, p: Protocol) -> u64 {
        self.accepted[p as usize].load(Relaxed)
    }

    pub fn rejected_total(&self, p: Protocol) -> u64 {
        self.rejected[p as usize].load(Relaxed)
    }

    pub fn observe_flush(&self, seconds: f64) {
        self.flushes.fetch_add(1, Relaxed);
        self.flush_micros_sum.fetch_add((seconds * 1e6) as u64, Relaxed);
        if let Some(i) = FLUSH_BUCKETS.iter().position(|&b| seconds <= b) {
            self.flush_seconds_bucket[i].fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, kind: &str, rows: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let per_proto = |a: &[AtomicU64; Protocol::COUNT]| -> Vec<(String, u64)> {
            Protocol::ALL
                .iter()
                .map(|p| (format!("{{protocol=\"{}\"}}", p.label()), a[*p as usize].load(Relaxed)))
                .collect()
        };
        let one = |a: &AtomicU64| vec![(String::new(), a.load(Relaxed))];
        counter(
            "kairosd_points_accepted_total",
            "Points decoded and handed to the writer.",
            "counter",
            &per_proto(&self.accepted),
        );
        counter(
            "kairosd_points_rejected_total",
            "Lines or points refused as invalid.",
            "counter",
            &per_proto(&self.rejected),
        );
        counter(
            "kairosd_points_written_total",
            "Points committed to the write-ahead log.",
            "counter",
            &one(&self.points_written),
        );
        counter(
            "kairosd_series_created_total",
            "New series added to the dictionary.",
            "counter",
            &one(&self.series_created),
        );
        counter(
            "kairosd_flush_errors_total",
            "Group commits that failed.",
            "counter",
            &one(&self.flush_errors),
        );
        counter(
            "kairosd_telnet_lines_too_long_total",
            "Telnet lines discarded for exceeding max_command_size.",
            "counter",
            &one(&self.lines_too_long),
        );
        counter(
            "kairosd_frames_too_long_total",
            "Lines or pickle frames over their listener's size limit (counted in rejected too).",
            "counter",
            &per_proto(&self.too_long),
        );
        counter(
            "kairosd_connections_idle_closed_total",
            "TCP connections closed for sitting idle with part of a line or frame (kairosd.telnet.idle_timeout_ms).",
            "counter",
            &one(&self.idle_closed),
        );
        counter(
            "kairosd_http_requests_total",
            "HTTP requests served.",
            "counter",
            &one(&self.http_requests),
        );
        counter(
            "kairosd_queries_total",
            "Queries and query/tags requests run.",
            "counter",
            &one(&self.queries),
        );
        counter(
            "kairosd_queries_rejected_total",
            "Queries answered 503 because kairosd.query.max_concurrent were running.",
            "counter",
            &one(&self.queries_rejected),
        );
        counter(
            "kairosd_queries_refused_total",
            "Queries stopped with a 400 while running (point budget, rate over equal timestamps).",
            "counter",
            &one(&self.queries_refused),
        );
        counter(
            "kairosd_query_points_scanned_total",
            "Stored points queries read (decoded, or counted from a chunk header), staged ones included.",
            "counter",
            &one(&self.query_points_scanned),
        );
        counter(
            "kairosd_deletes_total",
            "Delete requests applied (one per metric of a delete body).",
            "counter",
            &one(&self.deletes),
        );
        counter(
            "kairosd_write_retries_total",
            "Group commits and promotions tried again after a storage error (the points are held meanwhile).",
            "counter",
            &one(&self.health.write_retries),
        );
        counter(
            "kairosd_store_reopens_total",
            "Times the writer closed and reopened the store to clear a storage error.",
            "counter",
            &one(&self.health.store_reopens),
        );
        counter(
            "kairosd_corrupt_records_total",
            "Records found unreadable (checksum or format), reported with their key and moved to the quarantine column family.",
            "counter",
            &one(&self.health.corrupt_records),
        );
        counter(
            "kairosd_points_refused_series_limit_total",
            "Points of new series refused because the store holds kairosd.series.max series.",
            "counter",
            &one(&self.series_limit_refused),
        );
        counter(
            "kairosd_points_expired_on_arrival_total",
            "Points not stored because their ttl, aligned with their timestamp, had already run out (as KairosDB drops them).",
            "counter",
            &one(&self.points_expired_on_arrival),
        );
        counter(
            "kairosd_merge_salvaged_total",
            "Chunk merges that met an unreadable input and kept it aside in a salvage envelope instead of dropping it.",
            "counter",
            &one(&crate::storage::MERGE_SALVAGED),
        );
        counter(
            "kairosd_writer_wakeups_total",
            "Passes of the writer thread's loop.",
            "counter",
            &one(&self.writer_wakeups),
        );
        let failing = [(String::new(), u64::from(self.health.write_failing().is_some()))];
        counter(
            "kairosd_writes_failing",
            "1 while writes fail and are being retried (see /api/v1/health/status).",
            "gauge",
            &failing,
        );
        counter(
            "kairosd_queries_running",
            "Queries running now.",
            "gauge",
            &one(&self.queries_running),
        );
        counter(
            "kairosd_writer_queue_points",
            "Points accepted but not yet committed.",
            "gauge",
            &one(&self.inflight_points),
        );
        counter(
            "kairosd_telnet_connections",
            "Open telnet connections.",
            "gauge",
            &one(&self.telnet_connections),
        );
        counter(
            "kairosd_http_connections",
            "Open HTTP connections.",
            "gauge",
            &one(&self.http_connections),
        );
        counter(
            "kairosd_graphite_connections",
            "Open Graphite plaintext TCP connections.",
            "gauge",
            &one(&self.graphite_connections),
        );
        counter(
            "kairosd_pickle_connections",
            "Open Graphite pickle connections.",
            "gauge",
            &one(&self.pickle_connections),
        );
        let _ = writeln!(
            out,
            "# HELP kairosd_flush_duration_seconds Time of one group commit.\n# TYPE kairosd_flush_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in FLUSH_BUCKETS.iter().enumerate() {
            cumulative += self.flush_seconds_bucket[i].load(Relaxed);
            let _ = writeln!(
                out,
                "kairosd_flush_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.flushes.load(Relaxed);
        let _ = writeln!(out, "kairosd_flush_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.flush_micros_sum.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "kairosd_flush_duration_seconds_sum {sum}\nkairosd_flush_duration_seconds_count {count}"
        );
        let k = &self.kafka;
        for (name, help, kind, v) in [
            (
                "kairosd_kafka_messages_total",
                "Kafka messages committed with their offsets.",
                "counter",
                &k.messages,
            ),
            (
                "kairosd_kafka_points_total",
                "Points from Kafka messages committed.",
                "counter",
                &k.points,
            ),
            (
                "kairosd_kafka_bad_messages_total",
                "Kafka messages quarantined.",
                "counter",
                &k.bad_messages,
            ),
            (
                "kairosd_kafka_errors_total",
                "Kafka broker, consumer and commit errors.",
                "counter",
                &k.errors,
            ),
            (
                "kairosd_kafka_offsets_skipped_total",
                "Kafka messages skipped because the stored offset fell below the log start.",
                "counter",
                &k.offsets_skipped,
            ),
            (
                "kairosd_kafka_consumers",
                "Kafka source consumers running.",
                "gauge",
                &k.consumers,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.accepted(Protocol::Telnet, 3);
        m.rejected(Protocol::Rest, 2);
        m.accepted(Protocol::GraphiteUdp, 4);
        m.too_long(Protocol::Telnet);
        m.observe_flush(0.003);
        m.observe_flush(10.0);
        let text = m.render();
        assert!(
            text.contains("kairosd_points_accepted_total{protocol=\"telnet\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("kairosd_points_rejected_total{protocol=\"rest\"} 2\n"));
        assert!(text.contains("kairosd_points_accepted_total{protocol=\"graphite_udp\"} 4\n"));
        assert!(text.contains("kairosd_points_accepted_total{protocol=\"pickle\"} 0\n"));
        assert!(text.contains("kairosd_frames_too_long_total{protocol=\"telnet\"} 1\n"));
        assert!(text.contains("kairosd_telnet_lines_too_long_total 1\n"));
        assert!(text.contains("kairosd_flush_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("kairosd_flush_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("kairosd_flush_duration_seconds_count 2\n"));
    }
}
