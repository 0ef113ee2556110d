//! `POST /api/v1/import` (spec §4): a raw or multipart body streamed into an import
//! run, `async=true` and `url=` as jobs, `/api/v1/import/analyze`, the job resource,
//! and VictoriaMetrics' `/api/v1/import/csv?format=` alias.

use std::sync::Arc;

use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use kairos_protocols::import::analyze::{analyze as analyze_sample, AnalyzeOptions};
use kairos_protocols::import::source::OnError;
use kairos_protocols::import::{descriptor, Format, HeaderMode};
use serde_json::json;

use super::multipart::{self, Event, Multipart};
use super::response::{self, query_param, Resp};
use super::HttpContext;
use crate::import::engine::{self, ImportRun, Replace};
use crate::import::jobs::{self, Status};
use crate::import::{ids, ImportContext, ImportParams, ImportResult};

/// Bytes of a body `analyze` reads (enough for its 1000 rows of most files).
const ANALYZE_BYTES: usize = 8 << 20;

fn answer(r: ImportResult) -> Resp {
    response::json(r.status, r.body.to_string())
}

fn bad(msg: impl Into<String>) -> ImportResult {
    ImportResult::error(StatusCode::BAD_REQUEST, msg)
}

/// Epoch milliseconds, RFC 3339, or `now`: the time the request is read, so a client
/// can have rows without a timestamp stamped on arrival by the daemon's clock
/// (`event_time=now`, as StreamSQL stamps events) instead of its own.
pub fn parse_time(name: &str, v: &str) -> Result<i64, String> {
    if let Ok(ms) = v.trim().parse::<i64>() {
        return Ok(ms);
    }
    if v.trim() == "now" {
        return Ok(response::now_millis());
    }
    v.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("{name}={v:?} is neither epoch milliseconds, an RFC 3339 time nor now"))
}

fn parse_bool(name: &str, v: Option<String>) -> Result<bool, ImportResult> {
    match v.as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(bad(format!("{name}={other:?} must be true or false"))),
    }
}

/// The import's parameters from the query string (`vm_format`: the descriptor of the
/// VictoriaMetrics alias).
pub fn params(ctx: &ImportContext, query: &str, vm_format: Option<String>) -> Result<ImportParams, ImportResult> {
    let q = |n: &str| query_param(query, n);
    let store = ctx
        .store
        .get()
        .map_err(|e| ImportResult::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let vm = vm_format.is_some();
    let columns = vm_format.or_else(|| q("columns"));
    let source = match (q("source"), columns) {
        (_, Some(desc)) => {
            let name = q("source").unwrap_or_else(|| "columns".to_owned());
            let mut s = descriptor::parse(&desc, &name).map_err(|e| bad(format!("columns: {e}")))?;
            s.version = 0;
            s
        }
        (Some(name), None) => engine::stored_source(&store, &name)?,
        (None, None) => {
            return Err(bad(
                "source= is required (the name of a stored source), or columns= with a column descriptor",
            ))
        }
    };
    let mut p = ImportParams::new(source);
    if let Some(f) = q("format").filter(|_| !vm) {
        p.format = Some(Format::parse(&f).ok_or_else(|| {
            bad(format!(
                "format={f:?} is not one of csv, tsv, ndjson, json, parquet, kairosdb"
            ))
        })?);
    }
    if let Some(h) = q("header") {
        p.header = Some(HeaderMode::parse(&h).ok_or_else(|| bad(format!("header={h:?} must be auto, true or false")))?);
    }
    if let Some(d) = q("delimiter") {
        let d = if d == "\\t" { "\t".to_owned() } else { d };
        if d.len() != 1 {
            return Err(bad(format!("delimiter={d:?} must be one character")));
        }
        p.delimiter = Some(d.as_bytes()[0]);
    }
    if let Some(t) = q("event_time") {
        p.event_time = Some(parse_time("event_time", &t).map_err(bad)?);
    }
    if let Some(o) = q("on_error") {
        p.on_error = Some(match o.as_str() {
            "quarantine" => OnError::Quarantine,
            "abort" => OnError::Abort,
            _ => return Err(bad(format!("on_error={o:?} must be quarantine or abort"))),
        });
    }
    if let Some(m) = q("max_errors") {
        p.max_errors = Some(
            m.parse()
                .map_err(|_| bad(format!("max_errors={m:?} must be a whole number")))?,
        );
    }
    p.dry_run = parse_bool("dry_run", q("dry_run"))?;
    p.file_name = q("file").or_else(|| q("filename"));
    match q("mode").as_deref() {
        None | Some("append") => {}
        Some("replace") => {
            let start = q("replace_start")
                .map(|v| parse_time("replace_start", &v))
                .transpose()
                .map_err(bad)?;
            let end = q("replace_end")
                .map(|v| parse_time("replace_end", &v))
                .transpose()
                .map_err(bad)?;
            let range = match (start, end) {
                (Some(s), Some(e)) => Some((s, e)),
                (None, None) => None,
                _ => return Err(bad("mode=replace needs both replace_start and replace_end")),
            };
            let mut tags: Vec<(String, Vec<String>)> = Vec::new();
            for pair in query.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if response::percent_decode(k) != "replace_tag" {
                    continue;
                }
                let v = response::percent_decode(v);
                let (tk, tv) = v
                    .split_once(':')
                    .ok_or_else(|| bad(format!("replace_tag={v:?} must be name:value")))?;
                match tags.iter_mut().find(|(k, _)| k == tk) {
                    Some((_, vs)) => vs.push(tv.to_owned()),
                    None => tags.push((tk.to_owned(), vec![tv.to_owned()])),
                }
            }
            p.replace = Some(Replace {
                range,
                tags,
                all: parse_bool("replace_all", q("replace_all"))?,
                truncate_when_empty: parse_bool("replace_truncate_when_empty", q("replace_truncate_when_empty"))?,
            });
        }
        Some(m) => return Err(bad(format!("mode={m:?} must be append or replace"))),
    }
    p.url = q("url");
    Ok(p)
}

/// `Content-Encoding` other than gzip (which the import detects by its magic bytes) is 415.
fn check_encoding(headers: &HeaderMap) -> Result<(), ImportResult> {
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("identity") => Ok(()),
        Some(e) => Err(ImportResult::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {e:?} is not supported; send the body plain or gzipped"),
        )),
    }
}

fn multipart_boundary(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(multipart::boundary)
}

/// Turns a body's frames into the file's bytes: as they are, or the file part of a
/// multipart body (named `csv`, `ndjson`, `parquet`, `data` or `file`, or any part
/// with a filename).
struct Unwrap {
    multipart: Option<Multipart>,
    /// In the file part; the part's name told the format.
    in_file: bool,
    seen_file: bool,
    format: Option<Format>,
    file_name: Option<String>,
}

impl Unwrap {
    fn new(headers: &HeaderMap) -> Unwrap {
        Unwrap {
            multipart: multipart_boundary(headers).map(|b| Multipart::new(&b)),
            in_file: false,
            seen_file: false,
            format: None,
            file_name: None,
        }
    }

    /// Calls `f` with the file's bytes in `data`.
    fn push(&mut self, data: &[u8], f: &mut dyn FnMut(&[u8], &Unwrap)) -> Result<(), String> {
        let Some(mut m) = self.multipart.take() else {
            f(data, self);
            return Ok(());
        };
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut starts: Vec<multipart::PartInfo> = Vec::new();
        let mut ended = false;
        let result = m.feed(data, &mut |e| match e {
            Event::Start(info) => starts.push(info),
            Event::Data(d) => chunks.push(d.to_vec()),
            Event::End => ended = true,
        });
        // Replay in order: a chunk can hold a part's end and the next one's start; a
        // file part's data always comes before anything after it in the same feed.
        for info in starts {
            let by_name = info.name.as_deref().and_then(|n| match n {
                "csv" => Some(Some(Format::Csv)),
                "tsv" => Some(Some(Format::Tsv)),
                "ndjson" => Some(Some(Format::Ndjson)),
                "json" => Some(Some(Format::Json)),
                "parquet" => Some(Some(Format::Parquet)),
                "data" | "file" => Some(None),
                _ => None,
            });
            if !self.seen_file && (by_name.is_some() || info.filename.is_some()) {
                self.seen_file = true;
                self.in_file = true;
                self.format = by_name.flatten();
                self.file_name = info.filename;
            }
        }
        if self.in_file {
            for c in &chunks {
                f(c, self);
            }
        }
        if ended {
            self.in_file = false;
        }
        self.multipart = Some(m);
        result
    }

    fn finish(&self) -> Result<(), String> {
        match &self.multipart {
            Some(m) => {
                m.finish()?;
                if !self.seen_file {
                    return Err(
                        "the multipart body has no file part (name it csv, ndjson, parquet, data or file)".to_owned(),
                    );
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// `POST /api/v1/import` and the VM alias.
pub async fn import(req: Request<Incoming>, ctx: &HttpContext, vm: bool) -> Resp {
    let imports = Arc::clone(&ctx.imports);
    let query = req.uri().query().unwrap_or("").to_owned();
    let vm_format = if vm {
        match query_param(&query, "format") {
            Some(f) => Some(f),
            None => {
                return answer(bad(
                    "format= (a column descriptor such as 1:time:unix_s,2:label:ticker,3:metric:ask) is required",
                ))
            }
        }
    } else {
        None
    };
    let mut p = match params(&imports, &query, vm_format.clone()) {
        Ok(p) => p,
        Err(r) => return answer(r),
    };
    if vm {
        p.format = Some(Format::Csv);
    }
    if let Err(r) = check_encoding(req.headers()) {
        return answer(r);
    }
    if p.url.is_some() {
        return super::import_jobs::from_url(req, &imports, p).await;
    }
    let is_async = match parse_bool("async", query_param(&query, "async")) {
        Ok(a) => a,
        Err(r) => return answer(r),
    };
    if is_async {
        return super::import_jobs::spooled(req, &imports, p).await;
    }
    let (parts, mut body) = req.into_parts();
    let mut unwrap = Unwrap::new(&parts.headers);
    // A multipart part's name may tell the format: the run starts with the first bytes.
    let mut run: Option<ImportRun> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut body_error: Option<String> = None;
    let mut start_error: Option<ImportResult> = None;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                body_error = Some(format!("reading the request body failed: {e}"));
                break;
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        if start_error.is_some() {
            continue;
        }
        let r = unwrap.push(&data, &mut |bytes, _| pending.extend_from_slice(bytes));
        if let Err(e) = r {
            body_error = Some(e);
            break;
        }
        if run.is_none() && (unwrap.multipart.is_none() || unwrap.seen_file) && !pending.is_empty() {
            let mut p = p.clone();
            if unwrap.format.is_some() && p.format.is_none() {
                p.format = unwrap.format;
            }
            if p.file_name.is_none() {
                p.file_name = unwrap.file_name.clone();
            }
            match ImportRun::start(&imports, p, None).await {
                Ok(r) => run = Some(r),
                Err(e) => {
                    start_error = Some(e);
                    continue;
                }
            }
        }
        if let Some(r) = run.as_mut() {
            if !pending.is_empty() {
                let bytes = std::mem::take(&mut pending);
                tokio::task::block_in_place(|| r.feed(&bytes));
            }
        }
    }
    if let Some(e) = start_error {
        return answer(e);
    }
    if body_error.is_none() {
        if let Err(e) = unwrap.finish() {
            body_error = Some(e);
        }
    }
    let mut run = match run {
        Some(r) => r,
        // An empty body (or an empty file part): still an import, of nothing.
        None => match ImportRun::start(&imports, p, None).await {
            Ok(r) => r,
            Err(e) => return answer(e),
        },
    };
    if let Some(e) = body_error {
        run.fail(StatusCode::BAD_REQUEST, e);
    }
    let result = run.finish().await;
    answer(result)
}

/// `POST /api/v1/import/analyze`: the body's start, detected columns, a source, a preview.
pub async fn analyze(req: Request<Incoming>, ctx: &HttpContext) -> Resp {
    let query = req.uri().query().unwrap_or("").to_owned();
    let q = |n: &str| query_param(&query, n);
    let mut options = AnalyzeOptions {
        receive_time: response::now_millis(),
        file_name: q("file").or_else(|| q("filename")),
        source_name: q("source").or_else(|| q("name")),
        ..AnalyzeOptions::default()
    };
    if let Some(f) = q("format") {
        match Format::parse(&f) {
            Some(f) => options.format = Some(f),
            None => {
                return answer(bad(format!(
                    "format={f:?} is not one of csv, tsv, ndjson, json, parquet, kairosdb"
                )))
            }
        }
    }
    if let Some(h) = q("header") {
        options.header = HeaderMode::parse(&h);
    }
    if let Some(d) = q("delimiter") {
        options.delimiter = d.bytes().next();
    }
    if let Err(r) = check_encoding(req.headers()) {
        return answer(r);
    }
    let (parts, mut body) = req.into_parts();
    let mut unwrap = Unwrap::new(&parts.headers);
    let mut sample: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return answer(bad("reading the request body failed"));
        };
        let Ok(data) = frame.into_data() else { continue };
        if sample.len() >= ANALYZE_BYTES {
            continue;
        }
        let _ = unwrap.push(&data, &mut |b, _| sample.extend_from_slice(b));
    }
    sample.truncate(ANALYZE_BYTES);
    if options.format.is_none() {
        options.format = unwrap.format;
    }
    if options.file_name.is_none() {
        options.file_name = unwrap.file_name.clone();
    }
    let _ = ctx;
    match tokio::task::block_in_place(|| analyze_sample(&sample, &options)) {
        Ok(a) => response::json(StatusCode::OK, serde_json::to_string(&a).unwrap_or_default()),
        Err(e) => answer(bad(e.to_string())),
    }
}

/// `GET /api/v1/import/jobs?source=&status=` (the last 1000).
pub fn list_jobs(query: &str, ctx: &HttpContext) -> Resp {
    let status = match query_param(query, "status") {
        Some(s) => match Status::parse(&s) {
            Some(s) => Some(s),
            None => {
                return answer(bad(format!(
                    "status={s:?} must be waiting, working, done, error or cancelled"
                )))
            }
        },
        None => None,
    };
    let source = query_param(query, "source");
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return answer(ImportResult::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    match jobs::list(&store, source.as_deref(), status, 1000) {
        Ok(list) => response::json(StatusCode::OK, json!({ "results": list }).to_string()),
        Err(e) => answer(ImportResult::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// `GET` or `DELETE /api/v1/import/jobs/{id}`.
pub fn job(id: &str, delete: bool, ctx: &HttpContext) -> Resp {
    let Some(n) = ids::parse(id) else {
        return answer(ImportResult::error(
            StatusCode::NOT_FOUND,
            format!("no import job {id:?}"),
        ));
    };
    let store = match ctx.store.get() {
        Ok(s) => s,
        Err(e) => return answer(ImportResult::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    let job = match jobs::get(&store, n) {
        Ok(Some(j)) => j,
        Ok(None) => {
            return answer(ImportResult::error(
                StatusCode::NOT_FOUND,
                format!("no import job {id:?}"),
            ))
        }
        Err(e) => return answer(ImportResult::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    if !delete {
        return response::json(StatusCode::OK, serde_json::to_string(&job).unwrap_or_default());
    }
    if job.status.finished() {
        return answer(ImportResult::error(
            StatusCode::CONFLICT,
            format!(
                "import job {id} already ended ({:?}); there is nothing to cancel",
                job.status
            ),
        ));
    }
    ctx.imports.cancel(n);
    response::empty(StatusCode::NO_CONTENT)
}

/// The bytes of a body that is already whole (tests of the unwrapping).
#[cfg(test)]
fn unwrap_all(headers: &HeaderMap, body: &[u8]) -> (Vec<u8>, Option<Format>) {
    let mut u = Unwrap::new(headers);
    let mut out = Vec::new();
    for c in body.chunks(5) {
        u.push(c, &mut |b, _| out.extend_from_slice(b)).unwrap();
    }
    u.finish().unwrap();
    (out, u.format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_file_part_is_the_file() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=b1".parse().unwrap(),
        );
        let body = b"--b1\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--b1\r\n\
Content-Disposition: form-data; name=\"ndjson\"; filename=\"x\"\r\n\r\n{\"a\":1}\n\r\n--b1--\r\n";
        let (bytes, format) = unwrap_all(&h, body);
        assert_eq!(bytes, b"{\"a\":1}\n");
        assert_eq!(format, Some(Format::Ndjson));
    }
}
