//! Imports that run as jobs after the request is answered (spec §4, §10):
//! `async=true` spools the body to `<data_dir>/import-spool/<id>` and answers 202;
//! `url=` answers 202 and fetches the file itself, guarded against request forgery.

use std::io::Read;
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::client::{self, Body, Url};
use super::response::{self, Resp};
use crate::import::engine::ImportRun;
use crate::import::jobs::{self, Job, Progress, Status};
use crate::import::{ids, ImportContext, ImportParams};

/// Redirects an import from a URL follows at most.
const MAX_REDIRECTS: usize = 5;

fn waiting_job(id: u64, p: &ImportParams) -> Job {
    let now = jobs::now();
    Job {
        id: ids::format(id),
        kind: "import".to_owned(),
        status: Status::Waiting,
        source: p.source.name.clone(),
        mode: if p.replace.is_some() { "replace" } else { "append" }.to_owned(),
        format: p.format.map(|f| f.as_str().to_owned()),
        url: p.url.clone(),
        created_at: now.clone(),
        started_at: None,
        updated_at: now,
        progress: Progress::default(),
        result: None,
        error: None,
    }
}

fn accepted(id: u64) -> Resp {
    response::json(
        StatusCode::ACCEPTED,
        json!({"import_id": ids::format(id), "status": "waiting", "job": format!("/api/v1/import/jobs/{}", ids::format(id))})
            .to_string(),
    )
}

fn unavailable(e: impl std::fmt::Display) -> Resp {
    response::errors(StatusCode::SERVICE_UNAVAILABLE, &[e.to_string()])
}

/// Ends a job that never got to run.
fn fail_job(ctx: &ImportContext, id: u64, p: &ImportParams, error: String) {
    let Ok(store) = ctx.store.get() else { return };
    let mut job = waiting_job(id, p);
    job.status = Status::Error;
    job.error = Some(error);
    let _ = jobs::put(&store, id, &job);
}

/// `async=true`: the body goes to a spool file, then the import runs from it.
pub async fn spooled(req: Request<Incoming>, ctx: &Arc<ImportContext>, p: ImportParams) -> Resp {
    let id = ids::next();
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    if let Err(e) = tokio::fs::create_dir_all(&ctx.spool_dir).await {
        return unavailable(format!("cannot create {}: {e}", ctx.spool_dir.display()));
    }
    let path = ctx.spool_dir.join(ids::format(id));
    let mut file = match tokio::fs::File::create(&path).await {
        Ok(f) => f,
        Err(e) => return unavailable(format!("cannot create {}: {e}", path.display())),
    };
    let multipart = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(super::multipart::boundary);
    let mut parser = multipart.map(|b| super::multipart::Multipart::new(&b));
    let mut in_file = parser.is_none();
    let mut body = req.into_body();
    let mut written: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return response::errors(
                    StatusCode::BAD_REQUEST,
                    &[format!("reading the request body failed: {e}")],
                );
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        let mut out: Vec<u8> = Vec::new();
        match parser.as_mut() {
            None => out.extend_from_slice(&data),
            Some(m) => {
                let r = m.feed(&data, &mut |e| match e {
                    super::multipart::Event::Start(info) => {
                        in_file = info.filename.is_some()
                            || matches!(
                                info.name.as_deref(),
                                Some("csv" | "tsv" | "ndjson" | "json" | "parquet" | "data" | "file")
                            );
                    }
                    super::multipart::Event::Data(d) if in_file => out.extend_from_slice(d),
                    super::multipart::Event::Data(_) => {}
                    super::multipart::Event::End => in_file = false,
                });
                if let Err(e) = r {
                    let _ = tokio::fs::remove_file(&path).await;
                    return response::errors(StatusCode::BAD_REQUEST, &[e]);
                }
            }
        }
        written += out.len() as u64;
        if written > ctx.max_bytes {
            let _ = tokio::fs::remove_file(&path).await;
            return response::errors(
                StatusCode::PAYLOAD_TOO_LARGE,
                &[format!(
                    "the body is larger than kairosd.import.max_bytes ({})",
                    ctx.max_bytes
                )],
            );
        }
        if let Err(e) = file.write_all(&out).await {
            let _ = tokio::fs::remove_file(&path).await;
            return unavailable(format!("spooling the body failed: {e}"));
        }
    }
    if let Err(e) = file.sync_all().await {
        return unavailable(format!("spooling the body failed: {e}"));
    }
    drop(file);
    let mut job = waiting_job(id, &p);
    job.progress.bytes_total = Some(written);
    if let Err(e) = jobs::put(&store, id, &job) {
        return unavailable(e);
    }
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let file = std::fs::File::open(&path);
        match file {
            Ok(f) => run_from_reader(&ctx, id, p, Box::new(f), Some(written)).await,
            Err(e) => fail_job(&ctx, id, &p, format!("the spooled body is gone: {e}")),
        }
        let _ = std::fs::remove_file(&path);
    });
    accepted(id)
}

/// Runs job `id` over everything `reader` gives.
async fn run_from_reader(
    ctx: &Arc<ImportContext>,
    id: u64,
    p: ImportParams,
    mut reader: Box<dyn Read + Send>,
    total: Option<u64>,
) {
    let mut run = match ImportRun::start(ctx, p.clone(), Some(id)).await {
        Ok(r) => r,
        Err(r) => {
            let msg = r.body["error"]
                .as_str()
                .unwrap_or("the import could not start")
                .to_owned();
            fail_job(ctx, id, &p, msg);
            return;
        }
    };
    run.set_bytes_total(total);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if run.stopped() {
            break;
        }
        let n = tokio::task::block_in_place(|| reader.read(&mut buf));
        match n {
            Ok(0) => break,
            Ok(n) => tokio::task::block_in_place(|| run.feed(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                run.fail(StatusCode::BAD_GATEWAY, format!("reading the file failed: {e}"));
                break;
            }
        }
    }
    let _ = run.finish().await;
}

/// `url=`: fetched by the daemon as a job (spec §10).
pub async fn from_url(req: Request<Incoming>, ctx: &Arc<ImportContext>, p: ImportParams) -> Resp {
    // The body (if any) is not the file; read it so the connection stays usable.
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let url = p.url.clone().unwrap_or_default();
    if let Err(e) = Url::parse(&url) {
        return response::errors(StatusCode::BAD_REQUEST, &[format!("url: {e}")]);
    }
    let id = ids::next();
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    if let Err(e) = jobs::put(&store, id, &waiting_job(id, &p)) {
        return unavailable(e);
    }
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let fetched = {
            let ctx = Arc::clone(&ctx);
            let url = url.clone();
            tokio::task::spawn_blocking(move || fetch(&url, ctx.allow_private_urls, ctx.url_timeout)).await
        };
        match fetched {
            Ok(Ok((resp, total))) => {
                let mut p = p;
                if p.file_name.is_none() {
                    p.file_name = Url::parse(&url)
                        .ok()
                        .and_then(|u| {
                            u.target
                                .split('?')
                                .next()
                                .map(|t| t.rsplit('/').next().unwrap_or("").to_owned())
                        })
                        .filter(|n| !n.is_empty());
                }
                run_from_reader(&ctx, id, p, Box::new(ResponseReader(resp)), total).await
            }
            Ok(Err(e)) => fail_job(&ctx, id, &p, e),
            Err(e) => fail_job(&ctx, id, &p, format!("the fetch failed: {e}")),
        }
    });
    accepted(id)
}

struct ResponseReader(client::Response);

impl Read for ResponseReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.reader().read(buf)
    }
}

/// Fetches `url`, following at most [`MAX_REDIRECTS`] redirects, each hop's addresses
/// checked (a DNS name that resolves to a private address is refused too, and the
/// connection goes to the address that was checked).
pub fn fetch(
    url: &str,
    allow_private: bool,
    timeout: std::time::Duration,
) -> Result<(client::Response, Option<u64>), String> {
    let mut url = Url::parse(url)?;
    for _ in 0..=MAX_REDIRECTS {
        if url.scheme == "https" {
            return Err(format!(
                "{}: https is not supported by this build yet (no TLS stack); fetch the file over http or send it \
                 in the body",
                url.host
            ));
        }
        let addrs = client::resolve(&url).map_err(|e| format!("url host {} cannot be resolved: {e}", url.host))?;
        let addr = addrs
            .first()
            .copied()
            .ok_or_else(|| format!("url host {} has no address", url.host))?;
        if !allow_private {
            for a in &addrs {
                if let Some(why) = client::forbidden(a.ip()) {
                    return Err(format!(
                        "url host {} is {why} ({}); set kairosd.import.url.allow_private=true to allow it",
                        url.host,
                        a.ip()
                    ));
                }
            }
        }
        let resp = client::request_to(
            addr,
            &url,
            "GET",
            &[("Accept-Encoding", "gzip")],
            Body::Empty,
            Some(timeout),
        )
        .map_err(|e| format!("fetching {} failed: {e}", url.authority()))?;
        match resp.status {
            200..=299 => {
                let total = resp.content_length();
                return Ok((resp, total));
            }
            301 | 302 | 303 | 307 | 308 => {
                let loc = resp
                    .header("location")
                    .ok_or_else(|| format!("HTTP {} from {} without a Location", resp.status, url.authority()))?
                    .to_owned();
                url = url.join(&loc)?;
            }
            s => return Err(format!("HTTP {s} from {}{}", url.authority(), url.target)),
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}
