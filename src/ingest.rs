//! The listeners' side of the writer: a bounded queue with permits counted in points.
//!
//! A sender first takes permits for its batch from a semaphore sized
//! `kairosd.writer.max_inflight_points`; the writer gives them back once the batch is
//! committed. When the writer falls behind, `submit` waits, so a telnet connection
//! stops reading (TCP backpressure) and an HTTP request waits, and the queue never
//! holds more than the configured number of points.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use kairos_protocols::PointBatch;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::query::request::TagFilter;

/// What travels the queue to the writer, in order: a delete is applied after every
/// write queued before it and before every write queued after it.
pub enum Request {
    Write(WriteRequest),
    Delete(DeleteRequest),
    /// Publish a staged import (see [`crate::import`]), in order like a delete.
    Publish(PublishRequest),
}

/// What a publish does beyond moving the import's staged points into `points`.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    pub import: u64,
    /// First write wins on (series, timestamp), against the store and within the file.
    pub ledger: bool,
    /// Delete these points first, in the same write (`mode=replace`).
    pub replace: Vec<DeleteSpec>,
    /// The job's record, written in the same write (status `done`).
    pub job: Option<(Vec<u8>, Vec<u8>)>,
    /// The source's retention (ms): each point written gets the expiry `ts + retention`,
    /// so the source's data expires by point time wherever its metric names lie.
    pub retention_ms: Option<i64>,
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishSummary {
    pub points_written: u64,
    pub points_skipped_duplicate: u64,
    pub points_conflicting: u64,
    pub points_replaced: u64,
    /// Points of new series refused by `kairosd.series.max`.
    pub refused_series_limit: u64,
    /// The first conflicts (ledger): a message each.
    pub conflicts: Vec<String>,
}

pub struct PublishRequest {
    pub spec: PublishSpec,
    pub ack: oneshot::Sender<Result<PublishSummary, WriteFailed>>,
    pub permit: OwnedSemaphorePermit,
}

/// Delete the points of the series of `metric` that pass `tags`, with
/// `start <= ts <= end`; series left without points leave the index, and a metric
/// left without series leaves `metricnames`.
#[derive(Debug, Clone)]
pub struct DeleteSpec {
    pub metric: String,
    pub tags: TagFilter,
    pub start: i64,
    pub end: i64,
}

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteSummary {
    /// Series whose points were looked at.
    pub series: usize,
    /// Series removed from the index (no point left).
    pub series_removed: usize,
}

pub struct DeleteRequest {
    pub spec: DeleteSpec,
    pub ack: oneshot::Sender<Result<DeleteSummary, WriteFailed>>,
    pub permit: OwnedSemaphorePermit,
}

/// One batch on its way to the writer.
pub struct WriteRequest {
    pub batch: PointBatch,
    /// Answered once the batch is in the WAL (or the write failed).
    pub ack: Option<oneshot::Sender<Result<Committed, WriteFailed>>>,
    /// Returned to the pool when the request is dropped, i.e. after the commit.
    pub permit: OwnedSemaphorePermit,
    /// Records of the import column families written in the same RocksDB write as the
    /// batch's points (a Kafka partition's next offset, its quarantined messages).
    pub records: Vec<Record>,
}

/// A put into one of the import column families ([`crate::storage::imports`]).
#[derive(Debug, Clone)]
pub struct Record {
    pub cf: &'static str,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What the writer did with an acknowledged batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// Points of new series refused because the store holds `kairosd.series.max` series.
    pub refused_series_limit: usize,
}

/// The writer could not commit a batch (a storage error, already logged).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the write could not be committed: {message}")]
pub struct WriteFailed {
    pub message: String,
    /// The disk is full (507 rather than 503).
    pub no_space: bool,
}

impl From<&crate::storage::StoreError> for WriteFailed {
    fn from(e: &crate::storage::StoreError) -> WriteFailed {
        WriteFailed {
            message: e.to_string(),
            no_space: e.is_no_space(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("kairosd is shutting down")]
    ShuttingDown,
    #[error("the writer did not commit within {0:?}; the points may still be written")]
    Timeout(Duration),
    #[error(transparent)]
    Failed(#[from] WriteFailed),
}

#[derive(Clone)]
pub struct IngestHandle {
    tx: crossbeam_channel::Sender<Request>,
    permits: Arc<Semaphore>,
    max_cost: u32,
    min_cost: u32,
    metrics: Arc<Metrics>,
    pool: BatchPool,
    /// What the stream listeners' read buffers may hold before points reach the queue.
    read_budget: Arc<crate::sources::tcp::ReadBudget>,
}

/// The writer's end of the queue.
pub struct IngestReceiver {
    pub requests: crossbeam_channel::Receiver<Request>,
    pool: BatchPool,
}

impl IngestReceiver {
    /// Hands a committed batch's memory back to the listeners.
    pub fn recycle(&self, batch: PointBatch) {
        self.pool.put(batch);
    }
}

/// Emptied batches on their way back from the writer to the listeners.
///
/// A telnet read or a REST body fills a batch of tens of kilobytes that the writer
/// frees on another thread; allocating a fresh one every time made the kernel fault in
/// and zero new pages for a few percent of all ingest CPU. Reusing committed batches
/// keeps that memory warm. The pool is small and refuses oversized batches, so it
/// holds at most `POOLED_BATCHES × MAX_POOLED_BYTES`.
#[derive(Clone)]
struct BatchPool {
    tx: crossbeam_channel::Sender<PointBatch>,
    rx: crossbeam_channel::Receiver<PointBatch>,
}

const POOLED_BATCHES: usize = 64;
const MAX_POOLED_BYTES: usize = 512 << 10;

impl BatchPool {
    fn new() -> BatchPool {
        let (tx, rx) = crossbeam_channel::bounded(POOLED_BATCHES);
        BatchPool { tx, rx }
    }

    fn take(&self) -> PointBatch {
        self.rx.try_recv().unwrap_or_default()
    }

    fn put(&self, mut batch: PointBatch) {
        if batch.capacity_bytes() <= MAX_POOLED_BYTES {
            batch.clear();
            let _ = self.tx.try_send(batch);
        }
    }
}

/// `kairosd.ingest.max_buffered_bytes`' default.
const DEFAULT_READ_BUDGET: usize = 128 << 20;

/// Most batches the queue can hold; a batch smaller than `max_inflight / MAX_BATCHES`
/// points is charged that many permits, so the channel can never be full.
const MAX_BATCHES: usize = 4096;

impl IngestHandle {
    pub fn new(max_inflight_points: usize, metrics: Arc<Metrics>) -> (IngestHandle, IngestReceiver) {
        let max = max_inflight_points.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let min_cost = (max / MAX_BATCHES).max(1);
        let (tx, rx) = crossbeam_channel::bounded(max / min_cost + 1);
        let pool = BatchPool::new();
        let handle = IngestHandle {
            tx,
            permits: Arc::new(Semaphore::new(max)),
            max_cost: max as u32,
            min_cost: min_cost as u32,
            metrics,
            pool: pool.clone(),
            read_budget: Arc::new(crate::sources::tcp::ReadBudget::new(DEFAULT_READ_BUDGET)),
        };
        (handle, IngestReceiver { requests: rx, pool })
    }

    /// Sets the read-buffer bytes every stream connection together may hold
    /// (`kairosd.ingest.max_buffered_bytes`); before the listeners start.
    pub fn with_read_budget(mut self, bytes: usize) -> IngestHandle {
        self.read_budget = Arc::new(crate::sources::tcp::ReadBudget::new(bytes));
        self
    }

    pub fn read_budget(&self) -> &Arc<crate::sources::tcp::ReadBudget> {
        &self.read_budget
    }

    /// An empty batch to decode into, reusing the memory of one already committed.
    pub fn batch(&self) -> PointBatch {
        self.pool.take()
    }

    async fn enqueue(
        &self,
        batch: PointBatch,
        ack: Option<oneshot::Sender<Result<Committed, WriteFailed>>>,
    ) -> Result<(), IngestError> {
        self.enqueue_with(batch, Vec::new(), ack).await
    }

    async fn enqueue_with(
        &self,
        batch: PointBatch,
        records: Vec<Record>,
        ack: Option<oneshot::Sender<Result<Committed, WriteFailed>>>,
    ) -> Result<(), IngestError> {
        let cost = (batch.len() as u32).clamp(self.min_cost, self.max_cost);
        let permit = Arc::clone(&self.permits)
            .acquire_many_owned(cost)
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        let n = batch.len() as u64;
        self.metrics.inflight_points.fetch_add(n, Relaxed);
        self.tx
            .try_send(Request::Write(WriteRequest {
                batch,
                ack,
                permit,
                records,
            }))
            .map_err(|_| {
                self.metrics.inflight_points.fetch_sub(n, Relaxed);
                IngestError::ShuttingDown
            })
    }

    /// Queues a delete behind every write already queued and waits until the writer
    /// has applied it, at most `timeout`.
    pub async fn delete(&self, spec: DeleteSpec, timeout: Duration) -> Result<DeleteSummary, IngestError> {
        let work = async {
            let permit = Arc::clone(&self.permits)
                .acquire_many_owned(self.min_cost)
                .await
                .map_err(|_| IngestError::ShuttingDown)?;
            let (ack, rx) = oneshot::channel();
            self.tx
                .try_send(Request::Delete(DeleteRequest { spec, ack, permit }))
                .map_err(|_| IngestError::ShuttingDown)?;
            match rx.await {
                Ok(result) => result.map_err(IngestError::from),
                Err(_) => Err(IngestError::ShuttingDown),
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| IngestError::Timeout(timeout))?
    }

    /// Queues the publish of a staged import behind every write already queued and
    /// waits until the writer has applied it (no timeout: a large import takes a while,
    /// and the writer answers or goes away).
    pub async fn publish(&self, spec: PublishSpec) -> Result<PublishSummary, IngestError> {
        let permit = Arc::clone(&self.permits)
            .acquire_many_owned(self.min_cost)
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        let (ack, rx) = oneshot::channel();
        self.tx
            .try_send(Request::Publish(PublishRequest { spec, ack, permit }))
            .map_err(|_| IngestError::ShuttingDown)?;
        match rx.await {
            Ok(result) => result.map_err(IngestError::from),
            Err(_) => Err(IngestError::ShuttingDown),
        }
    }

    /// Queues `batch`, waiting while the writer is behind. Returns once queued.
    pub async fn submit(&self, batch: PointBatch) -> Result<(), IngestError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.enqueue(batch, None).await
    }

    /// Queues `batch` and waits until it is in the write-ahead log, at most `timeout`
    /// (counting the wait for queue room).
    pub async fn submit_and_wait(&self, batch: PointBatch, timeout: Duration) -> Result<Committed, IngestError> {
        if batch.is_empty() {
            return Ok(Committed::default());
        }
        let work = async {
            let (tx, rx) = oneshot::channel();
            self.enqueue(batch, Some(tx)).await?;
            match rx.await {
                Ok(result) => result.map_err(IngestError::from),
                Err(_) => Err(IngestError::ShuttingDown),
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| IngestError::Timeout(timeout))?
    }

    /// Queues `batch` with `records` to be written in the same RocksDB write, waiting
    /// while the writer is behind; the answer comes once both are in the WAL. Kafka
    /// sources put each partition's next offset here, so it advances exactly with the
    /// points it produced. No timeout: the caller waits for the writer or its shutdown.
    pub async fn submit_with_records(
        &self,
        batch: PointBatch,
        records: Vec<Record>,
    ) -> Result<oneshot::Receiver<Result<Committed, WriteFailed>>, IngestError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue_with(batch, records, Some(tx)).await?;
        Ok(rx)
    }

    /// Refuses every later submit; the writer drains what is queued and stops once
    /// every handle is dropped.
    pub fn close(&self) {
        self.permits.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairos_protocols::Value;

    fn write(r: Request) -> WriteRequest {
        match r {
            Request::Write(w) => w,
            Request::Delete(_) | Request::Publish(_) => panic!("expected a write"),
        }
    }

    fn batch(n: usize) -> PointBatch {
        let mut b = PointBatch::new();
        for i in 0..n {
            b.push_parts("m", [("h", "a")], i as i64, Value::Long(1), 0);
        }
        b
    }

    #[tokio::test]
    async fn full_queue_makes_senders_wait_until_the_writer_commits() {
        let (handle, rx) = IngestHandle::new(10, Arc::new(Metrics::default()));
        handle.submit(batch(6)).await.unwrap();
        // 6 of 10 permits are out: a batch of 6 more must wait for the first to commit.
        let h2 = handle.clone();
        let second = tokio::spawn(async move { h2.submit(batch(6)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "second batch went past a full queue");
        let first = write(rx.requests.try_recv().unwrap());
        assert_eq!(first.batch.len(), 6);
        drop(first); // the writer committed it and returned the permits
        second.await.unwrap().unwrap();
        assert_eq!(write(rx.requests.try_recv().unwrap()).batch.len(), 6);
    }

    #[test]
    fn committed_batches_come_back_empty_with_their_memory() {
        let (handle, rx) = IngestHandle::new(10, Arc::new(Metrics::default()));
        let b = batch(100);
        let capacity = b.capacity_bytes();
        rx.recycle(b);
        let again = handle.batch();
        assert!(again.is_empty());
        assert_eq!(again.capacity_bytes(), capacity);
        assert_eq!(handle.batch().capacity_bytes(), 0, "pool was empty: a new batch");
        let mut huge = PointBatch::with_capacity(1 << 20, 0);
        huge.push_parts("m", [("h", "a")], 1, Value::Long(1), 0);
        rx.recycle(huge);
        assert_eq!(handle.batch().capacity_bytes(), 0, "oversized batches are not kept");
    }

    #[tokio::test]
    async fn closed_handle_refuses_and_times_out_cleanly() {
        let (handle, rx) = IngestHandle::new(10, Arc::new(Metrics::default()));
        let err = handle
            .submit_and_wait(batch(1), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, IngestError::Timeout(_)), "{err}");
        drop(rx.requests.try_recv().unwrap());
        handle.close();
        assert!(matches!(handle.submit(batch(1)).await, Err(IngestError::ShuttingDown)));
    }
}
