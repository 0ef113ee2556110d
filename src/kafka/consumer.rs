//! One Kafka source's consumer: a thread that assigns the source's partitions at the
//! offsets stored with the points (no group membership), decodes each batch of
//! messages, and hands the points with each partition's next offset to the writer as
//! one write, waiting for it before reading on. Waiting is the backpressure: a slow
//! writer holds the consumer, and librdkafka's prefetch is bounded
//! (`queued.max.messages.kbytes`). Any failure drops the consumer and starts again
//! from the stored offsets, so what was not committed is read again, once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kairos_protocols::import::kafka::{KafkaSpec, Partitions, Start};
use kairos_protocols::import::Source;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::offsets;
use super::payload::MessageDecoder;
use super::status::SourceStatus;
use super::Shared;
use crate::ingest::{IngestError, Record};

/// Metadata and watermark requests (a stopping consumer may wait this long).
const META_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_secs(1);
const WATERMARKS_EVERY: Duration = Duration::from_secs(2);

/// Why one run of the consumer ended.
enum End {
    Stopped,
    Failed(String),
}

/// The thread's body: runs the consumer until `stop`, starting again after a failure.
pub fn run(shared: Arc<Shared>, source: Source, stop: Arc<AtomicBool>, status: Arc<SourceStatus>) {
    let Some(spec) = source.kafka.clone() else {
        return;
    };
    shared.metrics.kafka.consumers.fetch_add(1, Relaxed);
    while !stop.load(Relaxed) {
        match consume(&shared, &source, &spec, &stop, &status) {
            End::Stopped => break,
            End::Failed(message) => {
                shared.metrics.kafka.errors.fetch_add(1, Relaxed);
                tracing::warn!(source = %source.name, topic = %spec.topic, brokers = %spec.brokers, "kafka: {message}; retrying");
                status.error(message);
                status.set_state("retrying");
                let until = Instant::now() + RETRY;
                while Instant::now() < until && !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    shared.metrics.kafka.consumers.fetch_sub(1, Relaxed);
}

fn client_config(source: &Source, spec: &KafkaSpec) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &spec.brokers)
        .set("client.id", format!("kairosd-{}", source.name))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Only for an offset the broker no longer has (see `start_offsets` for the count).
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.wait.max.ms", "100")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "2000");
    // librdkafka's consumer needs a group even for assign(); without `group_id` no
    // offset is ever committed under it and it never joins (no subscribe).
    let group = spec
        .group_id
        .clone()
        .unwrap_or_else(|| format!("kairosd-{}", source.name));
    c.set("group.id", group);
    c
}

fn consume(shared: &Shared, source: &Source, spec: &KafkaSpec, stop: &AtomicBool, status: &SourceStatus) -> End {
    status.set_state("connecting");
    let consumer: BaseConsumer = match client_config(source, spec).create() {
        Ok(c) => c,
        Err(e) => return End::Failed(format!("cannot create a consumer: {e}")),
    };
    let partitions = match partitions(&consumer, spec) {
        Ok(p) => p,
        Err(e) => return End::Failed(e),
    };
    let store = match shared.store.get() {
        Ok(s) => s,
        Err(e) => return End::Failed(format!("the store is unavailable: {e}")),
    };
    let stored = match offsets::load(&store, &source.name) {
        Ok(o) => o,
        Err(e) => return End::Failed(format!("cannot read the stored offsets: {e}")),
    };
    drop(store);
    let tpl = match start_offsets(shared, &consumer, spec, &partitions, &stored, status) {
        Ok(t) => t,
        Err(e) => return End::Failed(e),
    };
    if let Err(e) = consumer.assign(&tpl) {
        return End::Failed(format!(
            "cannot assign partitions {partitions:?} of topic {:?}: {e}",
            spec.topic
        ));
    }
    status.set_state("running");
    let mut decoder = MessageDecoder::new(source, spec.payload, shared.graphite.clone());
    let wait = Duration::from_millis(spec.max_batch_wait_ms);
    let max = spec.max_batch_messages as usize;
    let mut watermarks_at = Instant::now();
    let mut logged: Option<Instant> = None;
    loop {
        if stop.load(Relaxed) {
            return End::Stopped;
        }
        if watermarks_at.elapsed() >= WATERMARKS_EVERY {
            watermarks_at = Instant::now();
            for &p in &partitions {
                if let Ok((_, high)) = consumer.fetch_watermarks(&spec.topic, p, Duration::from_secs(1)) {
                    status.high_watermark(p, high);
                }
            }
        }
        // One batch: up to `max` messages, at most `wait` after the first one.
        let mut batch = shared.ingest.batch();
        let mut records: Vec<Record> = Vec::new();
        let mut next: BTreeMap<i32, (i64, u64)> = BTreeMap::new();
        let mut messages = 0usize;
        let mut bad = 0u64;
        let mut first: Option<Instant> = None;
        let now_ms = crate::http::response::now_millis();
        while messages < max {
            let timeout = match first {
                None => Duration::from_millis(100),
                Some(t) => match wait.checked_sub(t.elapsed()) {
                    Some(d) if !d.is_zero() => d,
                    _ => break,
                },
            };
            let Some(polled) = consumer.poll(timeout) else {
                if first.is_none() && stop.load(Relaxed) {
                    return End::Stopped;
                }
                if first.is_none() {
                    break;
                }
                continue;
            };
            let msg = match polled {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(_)) => continue,
                Err(e) => {
                    shared.metrics.kafka.errors.fetch_add(1, Relaxed);
                    status.error(format!("consumer error (brokers {}): {e}", spec.brokers));
                    // librdkafka repeats a broker outage on every reconnect: logged every 10 s at most.
                    if logged.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
                        logged = Some(Instant::now());
                        tracing::warn!(source = %source.name, topic = %spec.topic, "kafka: consumer error: {e}");
                    }
                    if first.is_none() {
                        break;
                    }
                    continue;
                }
            };
            first.get_or_insert_with(Instant::now);
            messages += 1;
            let (partition, offset) = (msg.partition(), msg.offset());
            let entry = next.entry(partition).or_insert((offset + 1, 0));
            entry.0 = offset + 1;
            entry.1 += 1;
            let time = msg.timestamp().to_millis().unwrap_or(now_ms);
            let rejected = match msg.payload() {
                Some(bytes) => decoder.decode(bytes, msg.key(), time, &mut batch),
                None => vec![kairos_protocols::import::Rejected::record(
                    kairos_protocols::import::Kind::Malformed,
                    Default::default(),
                    b"",
                    "the message has no payload".to_owned(),
                )],
            };
            if !rejected.is_empty() {
                bad += 1;
                let message = rejected[0]
                    .errors
                    .first()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                status.partition_error(partition, format!("offset {offset}: {message}"));
                for (i, r) in rejected.into_iter().take(offsets::MAX_REJECTS_PER_MESSAGE).enumerate() {
                    records.push(offsets::quarantine_record(
                        &source.name,
                        &spec.topic,
                        partition,
                        offset,
                        i,
                        r,
                        now_ms,
                    ));
                }
            }
        }
        if messages == 0 {
            continue;
        }
        for (&p, &(o, _)) in &next {
            records.push(offsets::record(&source.name, p, o));
        }
        let points = batch.len() as u64;
        let committed = shared.runtime.block_on(async {
            shared
                .ingest
                .submit_with_records(batch, records)
                .await?
                .await
                .map_err(|_| IngestError::ShuttingDown)?
                .map_err(IngestError::from)
        });
        match committed {
            Ok(c) => {
                if c.refused_series_limit > 0 {
                    tracing::warn!(source = %source.name, points = c.refused_series_limit, "kafka: points of new series refused by kairosd.series.max");
                }
            }
            Err(IngestError::ShuttingDown) => return End::Stopped,
            Err(e) => return End::Failed(format!("the writer could not commit a batch: {e}")),
        }
        let k = &shared.metrics.kafka;
        k.messages.fetch_add(messages as u64, Relaxed);
        k.points.fetch_add(points, Relaxed);
        k.bad_messages.fetch_add(bad, Relaxed);
        for (&p, &(o, n)) in &next {
            status.committed(p, o, n);
        }
        if spec.group_id.is_some() {
            // For lag dashboards only: where kairosd resumes is what it stored above.
            let mut tpl = TopicPartitionList::new();
            for (&p, &(o, _)) in &next {
                let _ = tpl.add_partition_offset(&spec.topic, p, Offset::Offset(o));
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(source = %source.name, "kafka: group commit failed: {e}");
            }
        }
    }
}

/// The partitions to read: every one of the topic, or the listed ones (each checked).
fn partitions(consumer: &BaseConsumer, spec: &KafkaSpec) -> Result<Vec<i32>, String> {
    let meta = consumer
        .fetch_metadata(Some(&spec.topic), META_TIMEOUT)
        .map_err(|e| format!("cannot reach Kafka brokers {}: {e}", spec.brokers))?;
    let Some(topic) = meta.topics().iter().find(|t| t.name() == spec.topic) else {
        return Err(format!(
            "topic {:?} does not exist on brokers {}",
            spec.topic, spec.brokers
        ));
    };
    if let Some(e) = topic.error() {
        return Err(format!(
            "topic {:?} on brokers {}: {}",
            spec.topic,
            spec.brokers,
            rdkafka::types::RDKafkaErrorCode::from(e)
        ));
    }
    let all: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    if all.is_empty() {
        return Err(format!("topic {:?} has no partitions yet", spec.topic));
    }
    match &spec.partitions {
        Partitions::All => Ok(all),
        Partitions::List(list) => {
            let missing: Vec<String> = list
                .iter()
                .filter(|p| !all.contains(p))
                .map(|p| p.to_string())
                .collect();
            if missing.is_empty() {
                Ok(list.clone())
            } else {
                Err(format!(
                    "topic {:?} has no partition {} (it has {})",
                    spec.topic,
                    missing.join(", "),
                    all.len()
                ))
            }
        }
    }
}

/// Each partition's first offset: the stored one (the log start if the broker no
/// longer holds it, counting what is skipped), else where `start` says.
fn start_offsets(
    shared: &Shared,
    consumer: &BaseConsumer,
    spec: &KafkaSpec,
    partitions: &[i32],
    stored: &BTreeMap<i32, i64>,
    status: &SourceStatus,
) -> Result<TopicPartitionList, String> {
    let start = spec.start().map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    let mut by_time = TopicPartitionList::new();
    for &p in partitions {
        let watermarks = consumer.fetch_watermarks(&spec.topic, p, META_TIMEOUT);
        if let Ok((_, high)) = watermarks {
            status.high_watermark(p, high);
        }
        let offset = match stored.get(&p) {
            Some(&o) => match watermarks {
                Ok((low, _)) if low > o => {
                    shared
                        .metrics
                        .kafka
                        .offsets_skipped
                        .fetch_add((low - o) as u64, Relaxed);
                    tracing::warn!(topic = %spec.topic, partition = p, stored = o, log_start = low, "kafka: the stored offset is below the log start; resuming at the log start");
                    status.started(p, Some(low));
                    Offset::Offset(low)
                }
                _ => {
                    status.started(p, Some(o));
                    Offset::Offset(o)
                }
            },
            None => match start {
                Start::Earliest => {
                    status.started(p, None);
                    Offset::Beginning
                }
                Start::Latest => {
                    status.started(p, None);
                    Offset::End
                }
                Start::Time(ms) => {
                    let _ = by_time.add_partition_offset(&spec.topic, p, Offset::Offset(ms));
                    continue;
                }
            },
        };
        tpl.add_partition_offset(&spec.topic, p, offset)
            .map_err(|e| format!("partition {p}: {e}"))?;
    }
    if by_time.count() > 0 {
        let found = consumer
            .offsets_for_times(by_time, META_TIMEOUT)
            .map_err(|e| format!("cannot find the offsets for start {:?}: {e}", spec.start))?;
        for e in found.elements() {
            let o = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                // No message at or after the time yet: from the end.
                _ => Offset::End,
            };
            status.started(e.partition(), None);
            tpl.add_partition_offset(&spec.topic, e.partition(), o)
                .map_err(|err| format!("partition {}: {err}", e.partition()))?;
        }
    }
    Ok(tpl)
}
