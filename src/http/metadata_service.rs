//! KairosDB's metadata service API, `/api/v1/metadata/{service}[/{serviceKey}[/{key}]]`
//! (spec 4.1), the keyed tables of StreamSQL (see [`crate::storage::metadata`]).
//!
//! `GET` of a service lists its service keys, of a service key its keys (both
//! `{"results":[...]}`, filtered by `?startsWith=`), of a key its value as text (an
//! empty body when there is none, as KairosDB answers). `POST` of a key stores the body
//! as its value, `DELETE` removes a key (or a whole service key or service): both 204.
//! A service starting with `_` is KairosDB's internal namespace: 401 with an empty body.
//! `POST /api/v1/metadata/{service}/_snapshot?version=N` freezes a copy of the service
//! as the read-only service `{service}@N` (200 `{"service":..,"version":N,"entries":n}`);
//! writing to a snapshot is a 409.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::response::{self, percent_decode, query_param, Resp};
use super::retention::store_status;
use super::HttpContext;
use crate::query::json;
use crate::storage::metadata::MetadataError;

/// The decoded path segments after `/api/v1/metadata/` (1 to 3), if the path is one.
pub fn parts(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix("/api/v1/metadata/")?;
    let parts: Vec<String> = rest.split('/').map(percent_decode).collect();
    (!parts.is_empty() && parts.len() <= 3 && !parts.iter().any(String::is_empty)).then_some(parts)
}

fn error(e: MetadataError) -> Resp {
    match e {
        MetadataError::Store(e) => response::errors(store_status(&e), &[e.to_string()]),
        e => response::errors(StatusCode::CONFLICT, &[e.to_string()]),
    }
}

pub async fn handle(req: Request<Incoming>, parts: Vec<String>, ctx: &HttpContext) -> Resp {
    if parts[0].starts_with('_') {
        return response::empty(StatusCode::UNAUTHORIZED);
    }
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
    };
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    if method == Method::POST && parts.len() == 2 && parts[1] == "_snapshot" {
        let version = match query_param(&query, "version").map(|v| v.parse::<u64>()) {
            Some(Ok(v)) => v,
            _ => {
                return response::errors(
                    StatusCode::BAD_REQUEST,
                    &["a snapshot needs ?version=N, a whole number".into()],
                )
            }
        };
        let service = parts[0].clone();
        return match tokio::task::spawn_blocking(move || store.metadata_snapshot(&service, version)).await {
            Ok(Ok((name, n))) => response::json(
                StatusCode::OK,
                serde_json::json!({"service": name, "version": version, "entries": n}).to_string(),
            ),
            Ok(Err(e)) => error(e),
            Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
        };
    }
    match (method, parts.len()) {
        (Method::GET, 1 | 2) => {
            let starts_with = query_param(&query, "startsWith").unwrap_or_default();
            let listed = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                store.metadata_list(&refs, &starts_with)
            })
            .await;
            match listed {
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
                Ok(Err(e)) => response::errors(store_status(&e), &[e.to_string()]),
                Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
            }
        }
        (Method::GET, _) => {
            match tokio::task::spawn_blocking(move || store.metadata_get(&parts[0], &parts[1], &parts[2])).await {
                Ok(Ok(v)) => response::text(
                    StatusCode::OK,
                    String::from_utf8_lossy(&v.unwrap_or_default()).into_owned(),
                    "text/plain; charset=UTF-8",
                ),
                Ok(Err(e)) => response::errors(store_status(&e), &[e.to_string()]),
                Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
            }
        }
        (Method::POST, 3) => {
            let body = match super::query::read_body(req, ctx).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match tokio::task::spawn_blocking(move || store.metadata_put(&parts[0], &parts[1], &parts[2], &body)).await
            {
                Ok(Ok(())) => response::empty(StatusCode::NO_CONTENT),
                Ok(Err(e)) => error(e),
                Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
            }
        }
        (Method::POST, _) => response::errors(
            StatusCode::METHOD_NOT_ALLOWED,
            &["POST needs /api/v1/metadata/{service}/{serviceKey}/{key} with the value as the body".into()],
        ),
        (Method::DELETE, _) => {
            let deleted = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                store.metadata_delete(&refs)
            })
            .await;
            match deleted {
                Ok(Ok(())) => response::empty(StatusCode::NO_CONTENT),
                Ok(Err(e)) => error(e),
                Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
            }
        }
        (m, _) => response::errors(
            StatusCode::METHOD_NOT_ALLOWED,
            &[format!(
                "{m} is not allowed on the metadata API; use GET, POST or DELETE"
            )],
        ),
    }
}
