//! `/api/v1/sources` (spec §4, §9): list, create (201), show, replace, delete, enable
//! and disable (204) the stored sources.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::body::{self, BodyError};
use super::response::{self, Resp};
use super::HttpContext;
use crate::import::registry::{self, RegistryError};

fn failure(e: RegistryError) -> Resp {
    let status = match &e {
        RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
        RegistryError::Exists(_) => StatusCode::CONFLICT,
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    match e {
        RegistryError::Invalid(list) => response::errors(status, &list),
        other => response::errors(status, &[other.to_string()]),
    }
}

/// Parses a source and checks this build can run its Kafka block.
fn parse(json: &[u8]) -> Result<kairos_protocols::import::Source, Box<Resp>> {
    let source = registry::parse(json).map_err(|e| Box::new(failure(e)))?;
    crate::kafka::check(&source).map_err(|m| Box::new(response::errors(StatusCode::BAD_REQUEST, &[m])))?;
    Ok(source)
}

/// Starts and stops Kafka consumers after a change to the sources.
async fn sync_kafka(ctx: &HttpContext) {
    if let Some(k) = ctx.imports.kafka.clone() {
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = k.sync() {
                tracing::error!(%e, "kafka: cannot read the sources to start or stop consumers");
            }
        })
        .await;
    }
}

/// A source's JSON, with its Kafka consumer's state (`kafka_status`) when it has one.
fn show(source: &kairos_protocols::import::Source, ctx: &HttpContext) -> String {
    let mut json = serde_json::to_value(source).unwrap_or_default();
    if source.kafka.is_some() {
        let status = ctx
            .imports
            .kafka
            .as_ref()
            .and_then(|k| k.status(&source.name))
            .unwrap_or_else(|| json!({"state": if source.enabled { "stopped" } else { "disabled" }, "partitions": []}));
        json["kafka_status"] = status;
    }
    json.to_string()
}

async fn read_json(req: Request<Incoming>, ctx: &HttpContext) -> Result<bytes::Bytes, Resp> {
    let (parts, body) = req.into_parts();
    match body::read(&parts.headers, body, 1 << 20, &ctx.body_budget).await {
        Ok(b) => Ok(b.bytes),
        Err(e @ BodyError::TooLarge(_)) => Err(response::errors(StatusCode::PAYLOAD_TOO_LARGE, &[e.to_string()])),
        Err(e @ BodyError::Busy(_)) => Err(response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()])),
        Err(e) => Err(response::errors(StatusCode::BAD_REQUEST, &[e.to_string()])),
    }
}

/// `GET` or `POST /api/v1/sources`.
pub async fn collection(req: Request<Incoming>, ctx: &HttpContext) -> Resp {
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
    };
    if req.method() == Method::GET {
        return match registry::list(&store) {
            Ok(list) => response::json(StatusCode::OK, json!({ "results": list }).to_string()),
            Err(e) => failure(e.into()),
        };
    }
    let json = match read_json(req, ctx).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let source = match parse(&json) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match registry::put(&store, source, false) {
        Ok(s) => {
            sync_kafka(ctx).await;
            response::json(StatusCode::CREATED, serde_json::to_string(&s).unwrap_or_default())
        }
        Err(e) => failure(e),
    }
}

/// `GET|PUT|DELETE /api/v1/sources/{name}`, `POST .../{name}/enable|disable`.
pub async fn one(req: Request<Incoming>, name: &str, action: Option<&str>, ctx: &HttpContext) -> Resp {
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
    };
    if let Some(action) = action {
        let enabled = match action {
            "enable" => true,
            "disable" => false,
            other => {
                return response::errors(
                    StatusCode::NOT_FOUND,
                    &[format!("Resource not found: /api/v1/sources/{name}/{other}")],
                )
            }
        };
        return match registry::set_enabled(&store, name, enabled) {
            Ok(_) => {
                sync_kafka(ctx).await;
                response::empty(StatusCode::NO_CONTENT)
            }
            Err(e) => failure(e),
        };
    }
    match *req.method() {
        Method::GET => match registry::get(&store, name) {
            Ok(Some(s)) => response::json(StatusCode::OK, show(&s, ctx)),
            Ok(None) => failure(RegistryError::NotFound(name.to_owned())),
            Err(e) => failure(e.into()),
        },
        Method::DELETE => match registry::remove(&store, name) {
            Ok(()) => {
                sync_kafka(ctx).await;
                if let Some(k) = &ctx.imports.kafka {
                    if let Err(e) = k.forget(name) {
                        tracing::error!(source = name, %e, "kafka: cannot forget the offsets of a removed source");
                    }
                }
                response::empty(StatusCode::NO_CONTENT)
            }
            Err(e) => failure(e),
        },
        _ => {
            let json = match read_json(req, ctx).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let mut source = match parse(&json) {
                Ok(s) => s,
                Err(r) => return *r,
            };
            if source.name != name {
                return response::errors(
                    StatusCode::BAD_REQUEST,
                    &[format!("the body names source {:?}, the URL {name:?}", source.name)],
                );
            }
            source.name = name.to_owned();
            match registry::put(&store, source, true) {
                Ok(s) => {
                    sync_kafka(ctx).await;
                    response::json(StatusCode::OK, serde_json::to_string(&s).unwrap_or_default())
                }
                Err(e) => failure(e),
            }
        }
    }
}
