//! Talking to a running daemon over its HTTP API (the client commands' default).

use std::time::Duration;

use serde_json::Value as Json;

use super::Target;
use crate::config::Config;
use crate::http::client::{self, Body, Url};

/// The daemon's base URL: `--url`, else the HTTP address of `--config`, else
/// `http://127.0.0.1:8080`.
pub fn base_url(target: &Target) -> Result<Url, String> {
    if let Some(u) = &target.url {
        let u = if u.contains("://") {
            u.clone()
        } else {
            format!("http://{u}")
        };
        return Url::parse(u.trim_end_matches('/'));
    }
    let config = match &target.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?.0,
        None => Config::default(),
    };
    let mut addr = config.http_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    if addr.port() == 0 {
        addr.set_port(8080);
    }
    Url::parse(&format!("http://{addr}"))
}

/// A daemon's answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or(Json::Null)
    }

    /// The first message of a `{"errors":[...]}` body, or the body.
    pub fn message(&self) -> String {
        let j = self.json();
        j["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join("; "))
            .filter(|m| !m.is_empty())
            .or_else(|| j["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.body.trim().to_owned())
    }
}

pub struct Daemon {
    base: Url,
}

impl Daemon {
    pub fn new(target: &Target) -> Result<Daemon, String> {
        Ok(Daemon {
            base: base_url(target)?,
        })
    }

    pub fn url(&self, path_and_query: &str) -> Url {
        Url {
            target: path_and_query.to_owned(),
            ..self.base.clone()
        }
    }

    fn describe(&self, e: std::io::Error) -> String {
        format!(
            "cannot reach kairosd at http://{} ({e}); start it, pass --url, or use --data-dir with the daemon stopped",
            self.base.authority()
        )
    }

    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Body<'_>) -> Result<Answer, String> {
        let url = self.url(path);
        let resp = client::request(&url, method, headers, body, None).map_err(|e| self.describe(e))?;
        let status = resp.status;
        let body = resp.text().map_err(|e| self.describe(e))?;
        Ok(Answer { status, body })
    }

    pub fn get(&self, path: &str) -> Result<Answer, String> {
        self.call("GET", path, &[], Body::Empty)
    }

    pub fn send_json(&self, method: &str, path: &str, json: &[u8]) -> Result<Answer, String> {
        self.call(method, path, &[("Content-Type", "application/json")], Body::Bytes(json))
    }

    /// Polls an import job until it ends; its `result` (the import's answer) and status.
    pub fn wait_job(&self, id: &str) -> Result<Json, String> {
        loop {
            let a = self.get(&format!("/api/v1/import/jobs/{id}"))?;
            if a.status != 200 {
                return Err(a.message());
            }
            let job = a.json();
            match job["status"].as_str() {
                Some("done" | "error" | "cancelled") => return Ok(job),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// `a b` → `a%20b`: a query parameter's value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
