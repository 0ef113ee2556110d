//! `GET /api/v1/health/check`, `/api/v1/health/status` and the self-metrics at `/metrics`.
//!
//! The check fails (503) while points cannot be written: the writer died or is not
//! running, writes are failing and being retried (a full disk, an I/O error), or the
//! store is being reopened; it also fails when the store cannot be read. Damage that
//! costs data but not service (corrupt records moved aside, a failed compaction) keeps
//! the check at 204 and is listed by the status, which says what is wrong.

use http::StatusCode;

use super::response::{self, Resp};
use super::HttpContext;
use crate::query::json;

/// Everything `status` lists, and whether writes or reads are blocked.
fn report(ctx: &HttpContext) -> (bool, Vec<String>) {
    let health = &ctx.metrics.health;
    let mut lines = Vec::new();
    let (query_ok, background) = match ctx.store.get() {
        Ok(store) => (
            store.next_series_id().is_ok(),
            store.db_property_int("rocksdb.background-errors"),
        ),
        Err(_) => (false, None),
    };
    lines.push(format!("Datastore-Query: {}", if query_ok { "OK" } else { "FAIL" }));
    let write = health.write_problems();
    lines.push(format!(
        "Datastore-Write: {}",
        if write.is_empty() { "OK" } else { "FAIL" }
    ));
    let blocked = !query_ok || !write.is_empty();
    lines.extend(write);
    lines.extend(health.data_problems(background));
    (blocked, lines)
}

pub fn check(ctx: &HttpContext) -> Resp {
    match report(ctx).0 {
        false => response::empty(StatusCode::NO_CONTENT),
        true => response::empty(StatusCode::SERVICE_UNAVAILABLE),
    }
}

pub fn status(ctx: &HttpContext) -> Resp {
    let (_, lines) = report(ctx);
    let mut out = String::from("[");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::string(&mut out, l);
    }
    out.push(']');
    response::json(StatusCode::OK, out)
}

pub fn metrics(ctx: &HttpContext) -> Resp {
    let mut text = ctx.metrics.render();
    if let Ok(store) = ctx.store.get() {
        // Disk used by stored points, so expiry and retention can be seen to give it back.
        let bytes = store
            .property(crate::storage::CF_POINTS, "rocksdb.total-sst-files-size")
            .unwrap_or(0);
        text.push_str(&format!(
            "# HELP kairosd_points_sst_bytes Bytes of the points column family's table files on disk (rocksdb.total-sst-files-size).\n\
             # TYPE kairosd_points_sst_bytes gauge\nkairosd_points_sst_bytes {bytes}\n"
        ));
    }
    // Request-body bytes held now, against kairosd.http.max_buffered_bytes: how close
    // the HTTP API is to answering 503 for want of room.
    text.push_str(&format!(
        "# HELP kairosd_http_buffered_body_bytes Request-body bytes HTTP connections hold now (limit kairosd.http.max_buffered_bytes).\n\
         # TYPE kairosd_http_buffered_body_bytes gauge\nkairosd_http_buffered_body_bytes {}\n",
        ctx.body_budget.in_use()
    ));
    response::text(StatusCode::OK, text, "text/plain; version=0.0.4")
}
