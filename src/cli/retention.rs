//! `kairosd retention list|set|remove`: the retention policies of a running daemon,
//! through its HTTP API (`/api/v1/retention`), so they take effect without a restart.
//!
//! A tiny blocking HTTP/1.1 client over `std::net` is enough for these three calls and
//! keeps an HTTP client crate out of the build.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::storage::retention::parse_duration;

/// What a CLI call ends with: the text to print and the exit status.
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

fn ok(stdout: String) -> Outcome {
    Outcome {
        stdout,
        stderr: String::new(),
        code: 0,
    }
}

fn failed(code: u8, stderr: String) -> Outcome {
    Outcome {
        stdout: String::new(),
        stderr,
        code,
    }
}

/// `(host:port, path prefix)` of a base URL like `http://localhost:8080`.
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url:?}: only http:// URLs are supported"))?;
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if host.is_empty() {
        return Err(format!("--url {url:?}: no host"));
    }
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((
        host,
        format!("/{}", path.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string(),
    ))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request; returns the status and the body.
fn request(url: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String), String> {
    let (host, base) = split_url(url)?;
    let mut stream = TcpStream::connect(&host).map_err(|e| format!("cannot connect to kairosd at {url}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {base}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("sending to kairosd at {url}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading kairosd's answer from {url}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("kairosd at {url} sent no HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("kairosd at {url} sent a bad status line"))?;
    Ok((status, body.to_string()))
}

/// The server's error list, one per line.
fn server_errors(status: u16, body: &str) -> String {
    let errors: Vec<String> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
        .map(|a| a.iter().map(|e| e.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_else(|| vec![body.trim().to_string()]);
    format!("kairosd answered {status}: {}", errors.join("; "))
}

pub fn list(url: &str) -> Outcome {
    match request(url, "GET", "/api/v1/retention", None) {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let mut out = String::new();
            for p in v.get("results").and_then(|r| r.as_array()).into_iter().flatten() {
                let prefix = p.get("prefix").and_then(|x| x.as_str()).unwrap_or_default();
                let retention = p.get("retention").and_then(|x| x.as_str()).unwrap_or_default();
                out.push_str(&format!("{prefix}\t{retention}\n"));
            }
            ok(out)
        }
        Ok((status, body)) => failed(1, server_errors(status, &body)),
        Err(e) => failed(2, e),
    }
}

pub fn set(url: &str, prefix: &str, retention: &str) -> Outcome {
    if let Err(e) = parse_duration(retention) {
        return failed(2, e);
    }
    let body = serde_json::json!({"prefix": prefix, "retention": retention}).to_string();
    match request(url, "PUT", "/api/v1/retention", Some(&body)) {
        Ok((204, _)) => ok(format!("{prefix}\t{retention}\n")),
        Ok((status, body)) => failed(1, server_errors(status, &body)),
        Err(e) => failed(2, e),
    }
}

pub fn remove(url: &str, prefix: &str) -> Outcome {
    let path = format!("/api/v1/retention?prefix={}", percent_encode(prefix));
    match request(url, "DELETE", &path, None) {
        Ok((204, _)) => ok(String::new()),
        Ok((status, body)) => failed(1, server_errors(status, &body)),
        Err(e) => failed(2, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://localhost:8080").unwrap(),
            ("localhost:8080".into(), "".into())
        );
        assert_eq!(split_url("http://h/").unwrap(), ("h:80".into(), "".into()));
        assert_eq!(split_url("http://h:1/base/").unwrap(), ("h:1".into(), "/base".into()));
        assert!(split_url("https://h").is_err());
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
