//! `GET|DELETE /api/v1/quarantine?source=&import_id=&kind=&limit=&format=json|ndjson|raw`
//! (spec §2): the rows imports set aside; `raw` gives the original lines back, header
//! first, to fix and import again.

use http::{Method, Request, StatusCode};
use kairos_protocols::import::Kind;
use serde_json::json;

use super::response::{self, query_param, Resp};
use super::HttpContext;
use crate::import::{ids, quarantine};

/// Rows a listing gives unless `limit=` says otherwise.
const DEFAULT_LIMIT: usize = 1000;

pub fn handle<B>(req: &Request<B>, ctx: &HttpContext) -> Resp {
    let query = req.uri().query().unwrap_or("");
    let q = |n: &str| query_param(query, n);
    let mut filter = quarantine::Filter {
        source: q("source"),
        not_before: ctx.imports.quarantine_not_before(),
        ..Default::default()
    };
    if let Some(i) = q("import_id") {
        match ids::parse(&i) {
            Some(i) => filter.import = Some(i),
            None => {
                return response::errors(
                    StatusCode::BAD_REQUEST,
                    &[format!("import_id={i:?} is not an import id")],
                )
            }
        }
        if filter.source.is_none() {
            return response::errors(StatusCode::BAD_REQUEST, &["import_id= needs source= too".to_owned()]);
        }
    }
    if let Some(k) = q("kind") {
        match Kind::parse(&k) {
            Some(k) => filter.kind = Some(k),
            None => {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                return response::errors(
                    StatusCode::BAD_REQUEST,
                    &[format!("kind={k:?} is not one of {}", all.join(", "))],
                );
            }
        }
    }
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
    };
    if req.method() == Method::DELETE {
        let deleted = quarantine::delete(&store, &filter);
        ctx.imports.quarantine_changed();
        return match deleted {
            Ok(_) => response::empty(StatusCode::NO_CONTENT),
            Err(e) => response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
        };
    }
    let limit = match q("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(0) => usize::MAX,
            Ok(n) => n,
            Err(_) => {
                return response::errors(
                    StatusCode::BAD_REQUEST,
                    &[format!("limit={l:?} must be a whole number")],
                )
            }
        },
    };
    let entries = match quarantine::list(&store, &filter, limit) {
        Ok(e) => e,
        Err(e) => return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
    };
    match q("format").as_deref() {
        None | Some("json") => {
            let rows: Vec<_> = entries.iter().filter(|(_, e)| !e.header).map(|(_, e)| e).collect();
            response::json(StatusCode::OK, json!({ "results": rows }).to_string())
        }
        Some("ndjson") => {
            let mut out = String::new();
            for (_, e) in entries.iter().filter(|(_, e)| !e.header) {
                out.push_str(&serde_json::to_string(e).unwrap_or_default());
                out.push('\n');
            }
            response::text(StatusCode::OK, out, "application/x-ndjson")
        }
        Some("raw") => {
            let raw = quarantine::raw(&entries);
            let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(raw)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        Some(f) => response::errors(
            StatusCode::BAD_REQUEST,
            &[format!("format={f:?} must be json, ndjson or raw")],
        ),
    }
}
