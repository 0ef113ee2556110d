//! Routing and handlers of the KairosDB REST API (spec 2 and 4).

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use kairos_protocols::rest;

use super::body::{self, BodyError};
use crate::ingest::{IngestError, IngestHandle};
use crate::metrics::{Metrics, Protocol};
use crate::query::{self, json, request, QueryError};
use crate::storage::keys::NameKind;
use crate::storage::Store;

pub struct HttpContext {
    pub store: Arc<Store>,
    pub ingest: IngestHandle,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub ack_timeout: Duration,
    pub query_max_points: usize,
    pub version: Arc<str>,
}

type Resp = Response<Full<Bytes>>;

/// Responses smaller than this are not worth gzipping.
const GZIP_MIN_BYTES: usize = 1024;

/// The routes: path, then the methods it answers (OPTIONS is added for CORS).
const ROUTES: &[(&str, &[Method])] = &[
    ("/api/v1/datapoints", &[Method::POST]),
    ("/api/v1/datapoints/query", &[Method::POST, Method::GET]),
    ("/api/v1/metricnames", &[Method::GET]),
    ("/api/v1/version", &[Method::GET]),
    ("/api/v1/health/check", &[Method::GET]),
    ("/api/v1/health/status", &[Method::GET]),
    ("/metrics", &[Method::GET]),
];

pub async fn handle(req: Request<Incoming>, peer: SocketAddr, ctx: &HttpContext) -> Resp {
    ctx.metrics.http_requests.fetch_add(1, Relaxed);
    let path = req.uri().path().trim_end_matches('/').to_string();
    let Some((_, methods)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return errors(
            StatusCode::NOT_FOUND,
            &[format!("Resource not found: {}", req.uri().path())],
        );
    };
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return preflight(&req);
    }
    if !methods.contains(&method) {
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        let mut r = errors(
            StatusCode::METHOD_NOT_ALLOWED,
            &[format!("{method} is not allowed on {path}; use {}", allow.join(" or "))],
        );
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_str(&allow.join(", ")).expect("method names"),
        );
        return r;
    }
    let accepts_gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let resp = match path.as_str() {
        "/api/v1/datapoints" => ingest(req, peer, ctx).await,
        "/api/v1/datapoints/query" => query(req, ctx).await,
        "/api/v1/metricnames" => metric_names(&req, ctx).await,
        "/api/v1/version" => json_response(StatusCode::OK, format!("{{\"version\": \"{}\"}}\n", ctx.version)),
        "/api/v1/health/check" => match datastore_ok(ctx) {
            true => empty(StatusCode::NO_CONTENT),
            false => empty(StatusCode::INTERNAL_SERVER_ERROR),
        },
        "/api/v1/health/status" => {
            let state = if datastore_ok(ctx) { "OK" } else { "FAIL" };
            json_response(StatusCode::OK, format!("[\"Datastore-Query: {state}\"]"))
        }
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(ctx.metrics.render())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => unreachable!("every route is matched above"),
    };
    if accepts_gzip {
        gzip(resp).await
    } else {
        resp
    }
}

async fn ingest(req: Request<Incoming>, peer: SocketAddr, ctx: &HttpContext) -> Resp {
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
            return errors(status, &[e.to_string()]);
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
        Ok(()) if problems.is_empty() => empty(StatusCode::NO_CONTENT),
        Ok(()) => errors(StatusCode::BAD_REQUEST, &problems),
        Err(e) => {
            tracing::error!(%peer, points, "REST write not acknowledged: {e}");
            let mut msgs = vec![e.to_string()];
            msgs.extend(problems);
            let status = match e {
                IngestError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
                IngestError::ShuttingDown | IngestError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            errors(status, &msgs)
        }
    }
}

async fn query(req: Request<Incoming>, ctx: &HttpContext) -> Resp {
    let body = if req.method() == Method::GET {
        match query_param(req.uri().query().unwrap_or(""), "query") {
            Some(q) => Bytes::from(q),
            None => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &["GET needs the query as ?query=<url-encoded JSON>".into()],
                )
            }
        }
    } else {
        let (parts, body) = req.into_parts();
        match body::read(&parts.headers, body, ctx.max_body_bytes).await {
            Ok(b) => b,
            Err(e @ BodyError::TooLarge(_)) => return errors(StatusCode::PAYLOAD_TOO_LARGE, &[e.to_string()]),
            Err(e) => return errors(StatusCode::BAD_REQUEST, &[e.to_string()]),
        }
    };
    let now = now_millis();
    let q = match request::parse(&body, now) {
        Ok(q) => q,
        Err(errs) => return errors(StatusCode::BAD_REQUEST, &errs),
    };
    let store = Arc::clone(&ctx.store);
    let max = ctx.query_max_points;
    let limits = query::Limits {
        max_points: max as u64,
        now,
    };
    let result = tokio::task::spawn_blocking(move || query::run(&store, &q, &limits).map(|a| a.json)).await;
    match result {
        Ok(Ok(text)) => json_response(StatusCode::OK, text),
        Ok(Err(e @ QueryError::TooManyPoints { .. })) => errors(StatusCode::BAD_REQUEST, &[e.to_string()]),
        Ok(Err(e)) => {
            tracing::error!("query failed: {e}");
            errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()])
        }
        Err(e) => errors(StatusCode::INTERNAL_SERVER_ERROR, &[format!("query task failed: {e}")]),
    }
}

async fn metric_names(req: &Request<Incoming>, ctx: &HttpContext) -> Resp {
    let prefix = query_param(req.uri().query().unwrap_or(""), "prefix").unwrap_or_default();
    let store = Arc::clone(&ctx.store);
    match tokio::task::spawn_blocking(move || store.view().names(NameKind::Metric, &prefix)).await {
        Ok(Ok(names)) => {
            let mut out = String::from("{\"results\":[");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::string(&mut out, n);
            }
            out.push_str("]}");
            json_response(StatusCode::OK, out)
        }
        Ok(Err(e)) => errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
        Err(e) => errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
    }
}

fn datastore_ok(ctx: &HttpContext) -> bool {
    ctx.store.next_series_id().is_ok()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The percent-decoded value of `name` in a query string (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_common_headers(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    r
}

fn json_response(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    with_common_headers(r)
}

fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    with_common_headers(r)
}

/// `{"errors":[...]}` with `status`.
pub fn errors(status: StatusCode, messages: &[String]) -> Resp {
    let body = serde_json::json!({ "errors": messages }).to_string();
    json_response(status, body)
}

/// CORS preflight, including KairosDB's misspelt `Access-Control-Allow_Method`.
fn preflight(req: &Request<Incoming>) -> Resp {
    let mut r = empty(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    if let Some(v) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
        h.insert("Access-Control-Allow_Method", v.clone());
    }
    r
}

async fn gzip(resp: Resp) -> Resp {
    use http_body_util::BodyExt;
    let (mut parts, body) = resp.into_parts();
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    if bytes.len() < GZIP_MIN_BYTES {
        return Response::from_parts(parts, Full::new(bytes));
    }
    let compressed = tokio::task::block_in_place(|| {
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
        enc.write_all(&bytes).and_then(|()| enc.finish())
    });
    match compressed {
        Ok(c) => {
            parts
                .headers
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Full::new(Bytes::from(c)))
        }
        Err(_) => Response::from_parts(parts, Full::new(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_percent_decoded() {
        assert_eq!(query_param("prefix=a%2Eb+c&x=1", "prefix").as_deref(), Some("a.b c"));
        assert_eq!(query_param("x=1", "prefix"), None);
        assert_eq!(query_param("prefix=100%", "prefix").as_deref(), Some("100%"));
        assert_eq!(query_param("prefix=%zz", "prefix").as_deref(), Some("%zz"));
    }
}
