//! `POST /api/v1/datapoints` (spec 2): decode, hand the valid metrics to the writer,
//! answer once they are in the write-ahead log.

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::body::{self, BodyError};
use super::connection::Connection;
use super::response::{self, Resp};
use super::HttpContext;
use crate::ingest::IngestError;
use crate::metrics::Protocol;

pub async fn datapoints(req: Request<Incoming>, conn: &Connection, ctx: &HttpContext) -> Resp {
    let peer = conn.peer;
    let (parts, body) = req.into_parts();
    let body = match body::read(&parts.headers, body, ctx.max_body_bytes, &ctx.body_budget).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%peer, "rejected /api/v1/datapoints body: {e}");
            let status = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                BodyError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                BodyError::BadGzip(_) | BodyError::Read(_) => StatusCode::BAD_REQUEST,
            };
            return response::errors(status, &[e.to_string()]);
        }
    };
    // Read first (a response before the body is read would reset the connection).
    if let Some(refused) = refuse_while_full(ctx) {
        tracing::warn!(%peer, "refused /api/v1/datapoints: disk full");
        return refused;
    }
    let mut batch = ctx.ingest.batch();
    let problems = tokio::task::block_in_place(|| conn.decode_rest(&body, &mut batch));
    drop(body);
    let points = batch.len();
    if !problems.is_empty() {
        ctx.metrics.rejected(Protocol::Rest, problems.len());
        tracing::warn!(%peer, errors = problems.len(), first = %problems[0], "invalid data in /api/v1/datapoints body; valid metrics are kept");
    }
    ctx.metrics.accepted(Protocol::Rest, points);
    match ctx.ingest.submit_and_wait(batch, ctx.ack_timeout).await {
        Ok(c) if problems.is_empty() && c.refused_series_limit == 0 => response::empty(StatusCode::NO_CONTENT),
        Ok(c) => {
            let mut problems = problems;
            if c.refused_series_limit > 0 {
                tracing::warn!(%peer, points = c.refused_series_limit, "REST points of new series refused (kairosd.series.max)");
                problems.push(format!(
                    "{} points of new series were refused: kairosd holds kairosd.series.max ({}) series; \
                     points of existing series were stored",
                    c.refused_series_limit,
                    ctx.max_series.unwrap_or(0)
                ));
            }
            response::errors(StatusCode::BAD_REQUEST, &problems)
        }
        Err(e) => {
            tracing::error!(%peer, points, "REST write not acknowledged: {e}");
            let mut msgs = vec![e.to_string()];
            msgs.extend(problems);
            response::errors(write_error_status(&e), &msgs)
        }
    }
}

/// A full disk is a 507; any other storage failure, a writer that stays behind (its
/// points are held and still written) or stops is a 503: never a 500, since nothing is
/// wrong with the request and the client should send it again later.
pub fn write_error_status(e: &IngestError) -> StatusCode {
    match e {
        IngestError::Failed(f) if f.no_space => StatusCode::INSUFFICIENT_STORAGE,
        IngestError::Failed(_) | IngestError::ShuttingDown | IngestError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// While writes fail because the disk is full, a REST write is refused before anything
/// of it is queued (507), instead of waiting out `ack_timeout_ms`.
pub fn refuse_while_full(ctx: &HttpContext) -> Option<Resp> {
    let health = &ctx.metrics.health;
    if !health.storage_full() {
        return None;
    }
    let why = health
        .write_failing()
        .unwrap_or_else(|| "no space left on device".into());
    Some(response::errors(
        StatusCode::INSUFFICIENT_STORAGE,
        &[format!(
            "kairosd cannot store points now, the disk is full ({why}); nothing of this request was stored, send it again later"
        )],
    ))
}
