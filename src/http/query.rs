//! `POST|GET /api/v1/datapoints/query` and `POST /api/v1/datapoints/query/tags`.
//!
//! Queries run on the blocking pool, at most `kairosd.query.max_concurrent` at once;
//! a query that waits longer than `kairosd.query.queue_timeout_ms` for a turn gets a
//! 503, so a burst of heavy dashboards cannot starve ingest of CPU or memory.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use kairos_protocols::PointBatch;
use tokio::sync::OwnedSemaphorePermit;

use super::body::{self, BodyError};
use super::response::{self, query_param, Resp};
use super::HttpContext;
use crate::query::{self, request, Answer, QueryError};

/// A query body: `?query=` on GET, the request body on POST.
pub async fn read_body(req: Request<Incoming>, ctx: &HttpContext) -> Result<Bytes, Resp> {
    if req.method() == Method::GET {
        return match query_param(req.uri().query().unwrap_or(""), "query") {
            Some(q) => Ok(Bytes::from(q)),
            None => Err(response::errors(
                StatusCode::BAD_REQUEST,
                &["GET needs the query as ?query=<url-encoded JSON>".into()],
            )),
        };
    }
    let (parts, body) = req.into_parts();
    match body::read(&parts.headers, body, ctx.max_body_bytes, &ctx.body_budget).await {
        Ok(b) => Ok(b.bytes),
        Err(e @ BodyError::TooLarge(_)) => Err(response::errors(StatusCode::PAYLOAD_TOO_LARGE, &[e.to_string()])),
        Err(e @ BodyError::Busy(_)) => Err(response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()])),
        Err(e) => Err(response::errors(StatusCode::BAD_REQUEST, &[e.to_string()])),
    }
}

/// Waits for a query turn; a 503 if none frees up in time.
pub async fn turn(ctx: &HttpContext) -> Result<OwnedSemaphorePermit, Resp> {
    let wait = Arc::clone(&ctx.query_slots).acquire_owned();
    match tokio::time::timeout(ctx.query_queue_timeout, wait).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            ctx.metrics.queries_rejected.fetch_add(1, Relaxed);
            let mut r = response::errors(
                StatusCode::SERVICE_UNAVAILABLE,
                &[format!(
                    "too many queries at once: {} running and none finished within {} ms \
                     (kairosd.query.max_concurrent, kairosd.query.queue_timeout_ms); try again",
                    ctx.query_slots_total,
                    ctx.query_queue_timeout.as_millis()
                )],
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(r)
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Datapoints,
    Tags,
}

pub async fn datapoints(req: Request<Incoming>, ctx: &HttpContext) -> Resp {
    run(req, ctx, Kind::Datapoints).await
}

pub async fn tags(req: Request<Incoming>, ctx: &HttpContext) -> Resp {
    run(req, ctx, Kind::Tags).await
}

async fn run(req: Request<Incoming>, ctx: &HttpContext, kind: Kind) -> Resp {
    let body = match read_body(req, ctx).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = response::now_millis();
    let q = match request::parse(&body, now) {
        Ok(q) => q,
        Err(errs) => return response::errors(StatusCode::BAD_REQUEST, &errs),
    };
    drop(body);
    let permit = match turn(ctx).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    ctx.metrics.queries.fetch_add(1, Relaxed);
    ctx.metrics.queries_running.fetch_add(1, Relaxed);
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => {
            ctx.metrics.queries_running.fetch_sub(1, Relaxed);
            return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]);
        }
    };
    let limits = query::Limits {
        max_points: ctx.query_max_points as u64,
        now,
        threads: ctx.query_threads,
    };
    let result = tokio::task::spawn_blocking(move || {
        let _turn = permit;
        match kind {
            Kind::Datapoints => query::run(&store, &q, &limits),
            Kind::Tags => query::tags(&store, &q),
        }
    })
    .await;
    ctx.metrics.queries_running.fetch_sub(1, Relaxed);
    let answer: Answer = match result {
        Ok(Ok(a)) => a,
        Ok(Err(e @ (QueryError::TooManyPoints { .. } | QueryError::Invalid(_)))) => {
            ctx.metrics.queries_refused.fetch_add(1, Relaxed);
            return response::errors(StatusCode::BAD_REQUEST, &[e.to_string()]);
        }
        Ok(Err(e)) => {
            tracing::error!("query failed: {e}");
            return response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]);
        }
        Err(e) => return response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[format!("query task failed: {e}")]),
    };
    ctx.metrics
        .query_points_scanned
        .fetch_add(answer.points_scanned, Relaxed);
    if !answer.saved.is_empty() {
        if let Err(r) = save(ctx, &answer).await {
            return r;
        }
    }
    response::json(StatusCode::OK, answer.json)
}

/// Writes what `save_as` collected, through the ingest queue like any write.
async fn save(ctx: &HttpContext, answer: &Answer) -> Result<(), Resp> {
    let mut batch = PointBatch::new();
    for s in &answer.saved {
        for &(ts, v) in &s.points {
            batch.push_parts(
                &s.metric,
                s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ts,
                v,
                0,
            );
        }
    }
    let n = batch.len();
    ctx.metrics.accepted(crate::metrics::Protocol::Rest, n);
    let committed = ctx.ingest.submit_and_wait(batch, ctx.ack_timeout).await.map_err(|e| {
        tracing::error!(points = n, "save_as write not acknowledged: {e}");
        response::errors(
            super::ingest::write_error_status(&e),
            &[format!("save_as could not write its points: {e}")],
        )
    })?;
    if committed.refused_series_limit > 0 {
        return Err(response::errors(
            StatusCode::BAD_REQUEST,
            &[format!(
                "save_as could not write {} points: kairosd holds kairosd.series.max series",
                committed.refused_series_limit
            )],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerType;
    use crate::ingest::IngestHandle;
    use crate::metrics::Metrics;
    use crate::storage::StoreHandle;
    use std::time::Duration;

    #[tokio::test]
    async fn a_query_that_finds_no_turn_in_time_gets_503() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (ingest, _rx) = IngestHandle::new(100, Arc::clone(&metrics));
        let store = Arc::new(StoreHandle::open(dir.path(), 7_200_000, Default::default()).unwrap());
        let imports = Arc::new(crate::import::ImportContext::new(
            Arc::clone(&store),
            ingest.clone(),
            dir.path(),
        ));
        let ctx = HttpContext {
            store,
            imports,
            ingest,
            metrics,
            max_body_bytes: 1 << 20,
            body_budget: super::body::BodyBudget::new(1 << 24, Duration::from_secs(1)),
            max_series: None,
            ack_timeout: Duration::from_secs(1),
            query_max_points: 1000,
            version: "test".into(),
            query_slots: HttpContext::query_slots(1),
            query_slots_total: 1,
            query_queue_timeout: Duration::from_millis(20),
            query_threads: 1,
            server_type: ServerType {
                ingest: true,
                query: true,
                delete: true,
            },
            series_cache: Default::default(),
        };
        let running = turn(&ctx).await.expect("the only turn is free");
        let r = turn(&ctx).await.expect_err("no second turn");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(ctx.metrics.queries_rejected.load(Relaxed), 1);
        // A waiting query gets the turn as soon as the running one ends.
        let waiter = async { turn(&ctx).await.is_ok() };
        let release = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(running);
        };
        let (ok, ()) = tokio::join!(waiter, release);
        assert!(ok);
    }
}
