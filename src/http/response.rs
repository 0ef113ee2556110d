//! Building responses: KairosDB's headers, JSON bodies and errors, CORS preflight,
//! gzip for clients that accept it.

use std::io::Write as _;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

pub type Resp = Response<Full<Bytes>>;

/// Responses smaller than this are not worth gzipping.
const GZIP_MIN_BYTES: usize = 1024;

fn with_common_headers(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    r
}

pub fn json(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    with_common_headers(r)
}

/// An empty body (204 and the like), still typed `application/json` as KairosDB's.
pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    with_common_headers(r)
}

/// `{"errors":[...]}` with `status`.
pub fn errors(status: StatusCode, messages: &[String]) -> Resp {
    let body = serde_json::json!({ "errors": messages }).to_string();
    json(status, body)
}

pub fn text(status: StatusCode, body: String, content_type: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// CORS preflight, including KairosDB's misspelt `Access-Control-Allow_Method`.
pub fn preflight<B>(req: &Request<B>) -> Resp {
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

pub fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|e| {
                let mut parts = e.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
                coding.eq_ignore_ascii_case("gzip") && !refused
            })
        })
}

/// Gzips `resp`'s body if it is large enough to gain from it.
pub async fn gzip(resp: Resp) -> Resp {
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
            parts
                .headers
                .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Full::new(Bytes::from(c)))
        }
        Err(_) => Response::from_parts(parts, Full::new(bytes)),
    }
}

/// The percent-decoded value of `name` in a query string (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

pub fn percent_decode(s: &str) -> String {
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

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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

    #[test]
    fn gzip_acceptance() {
        let req = |v: &str| Request::builder().header("Accept-Encoding", v).body(()).unwrap();
        assert!(accepts_gzip(&req("gzip, deflate")));
        assert!(accepts_gzip(&req("deflate, GZIP;q=0.5")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
    }
}
