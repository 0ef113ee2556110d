//! `GET /api/v1/health/check`, `/api/v1/health/status` and the self-metrics at `/metrics`.

use http::StatusCode;

use super::response::{self, Resp};
use super::HttpContext;

fn datastore_ok(ctx: &HttpContext) -> bool {
    ctx.store.next_series_id().is_ok()
}

pub fn check(ctx: &HttpContext) -> Resp {
    match datastore_ok(ctx) {
        true => response::empty(StatusCode::NO_CONTENT),
        false => response::empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

pub fn status(ctx: &HttpContext) -> Resp {
    let state = if datastore_ok(ctx) { "OK" } else { "FAIL" };
    response::json(StatusCode::OK, format!("[\"Datastore-Query: {state}\"]"))
}

pub fn metrics(ctx: &HttpContext) -> Resp {
    response::text(StatusCode::OK, ctx.metrics.render(), "text/plain; version=0.0.4")
}
