//! `GET|PUT|DELETE /api/v1/retention`: retention policies by metric name prefix (see
//! [`crate::storage::retention`]). `GET` lists `{"results":[{"prefix","retention",
//! "retention_ms"}]}`, `PUT` takes `{"prefix": "...", "retention": "7d"}` (`"0"` keeps
//! the prefix's metrics forever, overriding a shorter prefix), `DELETE ?prefix=...`
//! removes one. Each change is durable before the answer and applies to queries at once.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::response::{self, query_param, Resp};
use super::HttpContext;
use crate::storage::retention::{format_duration, parse_duration};
use crate::storage::StoreError;

pub async fn handle(req: Request<Incoming>, ctx: &HttpContext) -> Resp {
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()]),
    };
    match *req.method() {
        Method::GET => {
            let list: Vec<serde_json::Value> = store
                .retention()
                .list()
                .into_iter()
                .map(|(prefix, ms)| serde_json::json!({"prefix": prefix, "retention": format_duration(ms), "retention_ms": ms}))
                .collect();
            response::json(StatusCode::OK, serde_json::json!({ "results": list }).to_string())
        }
        Method::DELETE => {
            let Some(prefix) = query_param(req.uri().query().unwrap_or(""), "prefix") else {
                return response::errors(
                    StatusCode::BAD_REQUEST,
                    &["DELETE /api/v1/retention needs ?prefix=<metric name prefix>".into()],
                );
            };
            match tokio::task::spawn_blocking(move || store.remove_retention(&prefix).map(|found| (found, prefix)))
                .await
            {
                Ok(Ok((true, prefix))) => {
                    tracing::info!(%prefix, "retention policy removed");
                    response::empty(StatusCode::NO_CONTENT)
                }
                Ok(Ok((false, prefix))) => response::errors(
                    StatusCode::NOT_FOUND,
                    &[format!("no retention policy for prefix {prefix:?}")],
                ),
                Ok(Err(e)) => response::errors(store_status(&e), &[e.to_string()]),
                Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
            }
        }
        _ => {
            let body = match super::query::read_body(req, ctx).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let (prefix, ms) = match parse_policy(&body) {
                Ok(p) => p,
                Err(e) => return response::errors(StatusCode::BAD_REQUEST, &[e]),
            };
            match tokio::task::spawn_blocking(move || store.set_retention(&prefix, ms).map(|()| prefix)).await {
                Ok(Ok(prefix)) => {
                    tracing::info!(%prefix, retention = %format_duration(ms), "retention policy set");
                    response::empty(StatusCode::NO_CONTENT)
                }
                Ok(Err(e)) => response::errors(store_status(&e), &[e.to_string()]),
                Err(e) => response::errors(StatusCode::INTERNAL_SERVER_ERROR, &[e.to_string()]),
            }
        }
    }
}

/// The status of a storage failure: 507 for a full disk, 503 while it may pass, else 500.
pub(super) fn store_status(e: &StoreError) -> StatusCode {
    if e.is_no_space() {
        StatusCode::INSUFFICIENT_STORAGE
    } else if e.is_transient() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Reads `{"prefix": "...", "retention": "7d"}`; the retention may also be the number 0.
fn parse_policy(body: &[u8]) -> Result<(String, i64), String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("retention body must be JSON like {{\"prefix\":\"sys.\",\"retention\":\"7d\"}}: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("retention body must be a JSON object with \"prefix\" and \"retention\"")?;
    let prefix = match obj.get("prefix") {
        Some(serde_json::Value::String(p)) => p.clone(),
        Some(_) => return Err("\"prefix\" must be a string".into()),
        None => return Err("\"prefix\" is required (a metric name prefix; \"\" for every metric)".into()),
    };
    let ms = match obj.get("retention") {
        Some(serde_json::Value::String(r)) => parse_duration(r)?,
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(0) => 0,
        Some(other) => return Err(format!("\"retention\" must be a string like \"7d\", not {other}")),
        None => return Err("\"retention\" is required (e.g. \"7d\", \"12h\", \"30m\", or \"0\" for forever)".into()),
    };
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "prefix" | "retention")) {
        return Err(format!(
            "unknown field {k:?} in a retention policy (expected \"prefix\" and \"retention\")"
        ));
    }
    Ok((prefix, ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_with_clear_errors() {
        assert_eq!(
            parse_policy(br#"{"prefix":"sys.","retention":"7d"}"#),
            Ok(("sys.".into(), 604_800_000))
        );
        assert_eq!(parse_policy(br#"{"prefix":"","retention":0}"#), Ok(("".into(), 0)));
        let e = parse_policy(br#"{"prefix":"sys.","retention":"7 days"}"#).unwrap_err();
        assert!(e.contains("7 days") && e.contains("7d"), "{e}");
        assert!(parse_policy(br#"{"retention":"7d"}"#).unwrap_err().contains("prefix"));
        assert!(parse_policy(br#"{"prefix":"a"}"#).unwrap_err().contains("retention"));
        assert!(parse_policy(br#"{"prefix":"a","retention":7}"#).is_err());
        assert!(parse_policy(br#"{"prefix":"a","retention":"7d","x":1}"#)
            .unwrap_err()
            .contains("\"x\""));
        assert!(parse_policy(b"nope").is_err());
    }
}
