//! `POST /api/v1/datapoints` (spec 2): decode, hand the valid metrics to the writer,
//! answer once they are in the write-ahead log.

use std::net::SocketAddr;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use kairos_protocols::rest;

use super::body::{self, BodyError};
use super::response::{self, Resp};
use super::HttpContext;
use crate::ingest::IngestError;
use crate::metrics::Protocol;

pub async fn datapoints(req: Request<Incoming>, peer: SocketAddr, ctx: &HttpContext) -> Resp {
    let (parts, body) = req.into_parts();
    let body = match body::read(&parts.headers, body, ctx.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%peer, "rejected /api/v1/datapoints body: {e}");
            let status = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                BodyError::BadGzip(_) | BodyError::Read(_) => StatusCode::BAD_REQUEST,
            };
            return response::errors(status, &[e.to_string()]);
        }
    };
    let mut batch = ctx.ingest.batch();
    let problems = tokio::task::block_in_place(|| rest::decode_into(&body, &mut batch));
    drop(body);
    let points = batch.len();
    if !problems.is_empty() {
        ctx.metrics.rejected(Protocol::Rest, problems.len());
        tracing::warn!(%peer, errors = problems.len(), first = %problems[0], "invalid data in /api/v1/datapoints body; valid metrics are kept");
    }
    ctx.metrics.accepted(Protocol::Rest, points);
    match ctx.ingest.submit_and_wait(batch, ctx.ack_timeout).await {
        Ok(()) if problems.is_empty() => response::empty(StatusCode::NO_CONTENT),
        Ok(()) => response::errors(StatusCode::BAD_REQUEST, &problems),
        Err(e) => {
            tracing::error!(%peer, points, "REST write not acknowledged: {e}");
            let mut msgs = vec![e.to_string()];
            msgs.extend(problems);
            response::errors(write_error_status(&e), &msgs)
        }
    }
}

/// A storage failure is ours (500); a writer that stays behind or stops is a 503.
pub fn write_error_status(e: &IngestError) -> StatusCode {
    match e {
        IngestError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        IngestError::ShuttingDown | IngestError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
