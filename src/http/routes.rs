//! The router of the KairosDB REST API (spec 2 and 4): path → handler, the methods each
//! path answers (OPTIONS is CORS preflight everywhere), and the endpoint groups
//! `kairosdb.server.type` can switch off.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use super::response::{self, Resp};
use super::{delete, health, import, ingest, metadata, metadata_service, quarantine, query, retention, sources};
use kairos_protocols::series_cache::CacheLimits;

use super::connection::Connection;
use crate::config::ServerType;
use crate::ingest::IngestHandle;
use crate::metrics::Metrics;
use crate::storage::keys::NameKind;
use crate::storage::StoreHandle;

pub struct HttpContext {
    /// The store; take it per request with [`StoreHandle::get`] (the writer may reopen it).
    pub store: Arc<StoreHandle>,
    pub ingest: IngestHandle,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// Request-body bytes all connections together may hold (`kairosd.http.max_buffered_bytes`).
    pub body_budget: super::body::BodyBudget,
    /// `kairosd.series.max`, named when points are refused.
    pub max_series: Option<u64>,
    pub ack_timeout: Duration,
    pub query_max_points: usize,
    pub version: Arc<str>,
    /// One permit per query allowed to run at once.
    pub query_slots: Arc<Semaphore>,
    pub query_slots_total: usize,
    pub query_queue_timeout: Duration,
    pub query_threads: usize,
    pub server_type: ServerType,
    /// Bounds of each connection's REST series cache (`kairosd.ingest.series_cache_*`).
    pub series_cache: CacheLimits,
    /// File imports: sources, jobs, the import engine's limits.
    pub imports: Arc<crate::import::ImportContext>,
}

impl HttpContext {
    pub fn query_slots(max_concurrent: usize) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(max_concurrent.max(1)))
    }
}

/// KairosDB's endpoint groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Ingest,
    Query,
    Delete,
    /// Version, health and self-metrics: always served.
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Datapoints,
    Query,
    QueryTags,
    Delete,
    DeleteMetric(String),
    Names(NameKind),
    Version,
    HealthCheck,
    HealthStatus,
    SelfMetrics,
    Retention,
    /// `/api/v1/metadata/...`: its decoded path segments.
    MetadataService(Vec<String>),
    Import {
        vm: bool,
    },
    ImportAnalyze,
    ImportJobs,
    ImportJob(String),
    Sources,
    Source(String, Option<String>),
    Quarantine,
}

/// The import endpoints (spec `import.md` §4).
fn import_route(path: &str) -> Option<(Route, &'static [Method], Group)> {
    const GET: &[Method] = &[Method::GET];
    const POST: &[Method] = &[Method::POST];
    Some(match path {
        "/api/v1/import" => (Route::Import { vm: false }, POST, Group::Ingest),
        "/api/v1/import/csv" => (Route::Import { vm: true }, POST, Group::Ingest),
        "/api/v1/import/analyze" => (Route::ImportAnalyze, POST, Group::Ingest),
        "/api/v1/import/jobs" => (Route::ImportJobs, GET, Group::Ingest),
        "/api/v1/sources" => (Route::Sources, &[Method::GET, Method::POST], Group::Ingest),
        "/api/v1/quarantine" => (Route::Quarantine, &[Method::GET, Method::DELETE], Group::Ingest),
        _ => {
            if let Some(id) = path.strip_prefix("/api/v1/import/jobs/") {
                return Some((
                    Route::ImportJob(id.to_owned()),
                    &[Method::GET, Method::DELETE],
                    Group::Ingest,
                ));
            }
            let rest = path.strip_prefix("/api/v1/sources/")?;
            let (name, action) = match rest.split_once('/') {
                Some((n, a)) => (n, Some(a.to_owned())),
                None => (rest, None),
            };
            let methods: &'static [Method] = if action.is_some() {
                POST
            } else {
                &[Method::GET, Method::PUT, Method::DELETE]
            };
            let _ = GET;
            (
                Route::Source(response::percent_decode(name), action),
                methods,
                Group::Ingest,
            )
        }
    })
}

fn route(path: &str) -> Option<(Route, &'static [Method], Group)> {
    const GET: &[Method] = &[Method::GET];
    const POST: &[Method] = &[Method::POST];
    Some(match path {
        "/api/v1/datapoints" => (Route::Datapoints, POST, Group::Ingest),
        "/api/v1/datapoints/query" => (Route::Query, &[Method::POST, Method::GET], Group::Query),
        "/api/v1/datapoints/query/tags" => (Route::QueryTags, POST, Group::Query),
        "/api/v1/datapoints/delete" => (Route::Delete, POST, Group::Delete),
        "/api/v1/metricnames" => (Route::Names(NameKind::Metric), GET, Group::Query),
        "/api/v1/tagnames" => (Route::Names(NameKind::TagName), GET, Group::Query),
        "/api/v1/tagvalues" => (Route::Names(NameKind::TagValue), GET, Group::Query),
        "/api/v1/version" => (Route::Version, GET, Group::Always),
        "/api/v1/health/check" => (Route::HealthCheck, GET, Group::Always),
        "/api/v1/health/status" => (Route::HealthStatus, GET, Group::Always),
        "/metrics" => (Route::SelfMetrics, GET, Group::Always),
        // Retention deletes data, so it belongs to the DELETE group.
        "/api/v1/retention" => (
            Route::Retention,
            &[Method::GET, Method::PUT, Method::DELETE],
            Group::Delete,
        ),
        _ if path.starts_with("/api/v1/metadata/") => (
            Route::MetadataService(metadata_service::parts(path)?),
            &[Method::GET, Method::POST, Method::DELETE],
            Group::Always,
        ),
        p if p.starts_with("/api/v1/import") || p.starts_with("/api/v1/sources") || p == "/api/v1/quarantine" => {
            return import_route(p)
        }
        _ => {
            let name = path.strip_prefix("/api/v1/metric/")?;
            (
                Route::DeleteMetric(response::percent_decode(name)),
                &[Method::DELETE],
                Group::Delete,
            )
        }
    })
}

fn enabled(t: ServerType, g: Group) -> Option<&'static str> {
    match g {
        Group::Ingest if !t.ingest => Some("INGEST"),
        Group::Query if !t.query => Some("QUERY"),
        Group::Delete if !t.delete => Some("DELETE"),
        _ => None,
    }
}

pub async fn handle(req: Request<Incoming>, conn: &Connection, ctx: &HttpContext) -> Resp {
    ctx.metrics.http_requests.fetch_add(1, Relaxed);
    let path = req.uri().path().trim_end_matches('/').to_string();
    let Some((route, methods, group)) = route(&path) else {
        return response::errors(
            StatusCode::NOT_FOUND,
            &[format!("Resource not found: {}", req.uri().path())],
        );
    };
    if let Some(name) = enabled(ctx.server_type, group) {
        return response::errors(
            StatusCode::FORBIDDEN,
            &[format!(
                "Forbidden: {name} API methods are disabled on this KairosDB instance."
            )],
        );
    }
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return response::preflight(&req);
    }
    if !methods.contains(&method) {
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        let mut r = response::errors(
            StatusCode::METHOD_NOT_ALLOWED,
            &[format!("{method} is not allowed on {path}; use {}", allow.join(" or "))],
        );
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_str(&allow.join(", ")).expect("method names"),
        );
        return r;
    }
    let gzip = response::accepts_gzip(&req);
    let resp = match route {
        Route::Datapoints => ingest::datapoints(req, conn, ctx).await,
        Route::Query => query::datapoints(req, ctx).await,
        Route::QueryTags => query::tags(req, ctx).await,
        Route::Delete => delete::datapoints(req, ctx).await,
        Route::DeleteMetric(name) => delete::metric(&name, ctx).await,
        Route::Names(kind) => metadata::names(&req, ctx, kind).await,
        Route::Version => metadata::version(ctx),
        Route::HealthCheck => health::check(ctx),
        Route::HealthStatus => health::status(ctx),
        Route::SelfMetrics => health::metrics(ctx),
        Route::Retention => retention::handle(req, ctx).await,
        Route::MetadataService(parts) => metadata_service::handle(req, parts, ctx).await,
        Route::Import { vm } => import::import(req, ctx, vm).await,
        Route::ImportAnalyze => import::analyze(req, ctx).await,
        Route::ImportJobs => import::list_jobs(req.uri().query().unwrap_or(""), ctx),
        Route::ImportJob(id) => import::job(&id, method == Method::DELETE, ctx),
        Route::Sources => sources::collection(req, ctx).await,
        Route::Source(name, action) => sources::one(req, &name, action.as_deref(), ctx).await,
        Route::Quarantine => quarantine::handle(&req, ctx),
    };
    if gzip {
        response::gzip(resp).await
    } else {
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_groups() {
        assert_eq!(route("/api/v1/datapoints/query").unwrap().2, Group::Query);
        let (r, m, g) = route("/api/v1/metric/a%2Fb").unwrap();
        assert_eq!(
            (r, m, g),
            (Route::DeleteMetric("a/b".into()), &[Method::DELETE][..], Group::Delete)
        );
        assert!(route("/api/v1/nope").is_none());
        let only_ingest = ServerType {
            ingest: true,
            query: false,
            delete: false,
        };
        assert_eq!(enabled(only_ingest, Group::Query), Some("QUERY"));
        assert_eq!(enabled(only_ingest, Group::Always), None);
    }
}
