//! `POST /api/v1/datapoints/delete` (a query body: name, tag filter, time range) and
//! `DELETE /api/v1/metric/{name}` (everything of a metric). Both go through the
//! writer's queue, so they apply after every write acknowledged before them.

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::response::{self, Resp};
use super::HttpContext;
use crate::ingest::DeleteSpec;
use crate::query::request;

pub async fn datapoints(req: Request<Incoming>, ctx: &HttpContext) -> Resp {
    let body = match super::query::read_body(req, ctx).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let q = match request::parse(&body, response::now_millis()) {
        Ok(q) => q,
        Err(errs) => return response::errors(StatusCode::BAD_REQUEST, &errs),
    };
    let specs = q
        .metrics
        .iter()
        .map(|m| DeleteSpec {
            metric: m.name.clone(),
            tags: m.tags.clone(),
            start: q.start,
            end: q.end,
        })
        .collect();
    apply(ctx, specs).await
}

pub async fn metric(name: &str, ctx: &HttpContext) -> Resp {
    if name.is_empty() {
        return response::errors(StatusCode::BAD_REQUEST, &["metric name may not be empty".into()]);
    }
    let spec = DeleteSpec {
        metric: name.to_string(),
        tags: Vec::new(),
        start: i64::MIN,
        end: i64::MAX,
    };
    apply(ctx, vec![spec]).await
}

async fn apply(ctx: &HttpContext, specs: Vec<DeleteSpec>) -> Resp {
    for spec in specs {
        let metric = spec.metric.clone();
        if let Err(e) = ctx.ingest.delete(spec, ctx.ack_timeout).await {
            tracing::error!(%metric, "delete not applied: {e}");
            return response::errors(super::ingest::write_error_status(&e), &[e.to_string()]);
        }
        ctx.metrics.deletes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    response::empty(StatusCode::NO_CONTENT)
}
