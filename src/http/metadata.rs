//! Names: `GET /api/v1/metricnames`, `/tagnames`, `/tagvalues` (the last two from
//! KairosDB 1.2; each takes an optional `?prefix=`), and `/version`.

use http::{Request, StatusCode};

use super::response::{self, query_param, Resp};
use super::HttpContext;
use crate::query::json;
use crate::storage::keys::NameKind;

pub async fn names<B>(req: &Request<B>, ctx: &HttpContext, kind: NameKind) -> Resp {
    let prefix = query_param(req.uri().query().unwrap_or(""), "prefix").unwrap_or_default();
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
    };
    let names = move || {
        let view = store.view();
        let names = view.names(kind, &prefix)?;
        // A metric whose data has all expired (ttl or retention) is no longer listed.
        match kind {
            NameKind::Metric => view.live_metrics(names),
            _ => Ok(names),
        }
    };
    match tokio::task::spawn_blocking(names).await {
        Ok(Ok(names)) => {
            let mut out = String::from("{\"results\":[");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::string(&mut out, n);
            }
            out.push_str("]}");
            response::json(StatusCode::OK, out)
        }
        Ok(Err(e)) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
        Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
    }
}

pub fn version(ctx: &HttpContext) -> Resp {
    response::json(StatusCode::OK, format!("{{\"version\": \"{}\"}}\n", ctx.version))
}
