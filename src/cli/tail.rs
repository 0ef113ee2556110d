//! `kairosd tail METRIC [-n 10] [-s N] [--tag k=v] [-o table|csv|json|ndjson]` (spec
//! §3): the newest points across the metric's series, oldest first, one column per
//! tag key; `tail --quarantine SOURCE` lists the latest bad rows of a source.

use std::collections::BTreeSet;
use std::process::ExitCode;

use clap::Args;
use comfy_table::{presets::UTF8_FULL, Table};
use serde_json::{json, Value as Json};

use super::daemon::{encode, Daemon};
use super::Target;
use crate::import::jobs::rfc3339;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// The metric (with --quarantine: the source).
    pub metric: String,
    /// How many points.
    #[arg(short = 'n', long = "num", default_value_t = 10)]
    pub n: usize,
    /// Skip this many of the newest points first.
    #[arg(short = 's', long = "skip", default_value_t = 0)]
    pub skip: usize,
    /// Only series with this tag, k=v (repeatable; values of one key are ORed).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// table, csv, json or ndjson.
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
    /// List the latest rows the source's imports set aside instead.
    #[arg(long)]
    pub quarantine: bool,
    #[command(flatten)]
    pub target: Target,
}

pub fn run(args: TailArgs) -> ExitCode {
    if !matches!(args.output.as_str(), "table" | "csv" | "json" | "ndjson") {
        return super::usage(format!("-o {:?}: use table, csv, json or ndjson", args.output));
    }
    if args.target.data_dir.is_some() {
        return super::usage("tail reads through the daemon; pass --url (or start kairosd) instead of --data-dir");
    }
    let d = match Daemon::new(&args.target) {
        Ok(d) => d,
        Err(e) => return super::usage(e),
    };
    let r = if args.quarantine {
        quarantine(&d, &args)
    } else {
        points(&d, &args)
    };
    r.unwrap_or_else(super::fail)
}

fn tag_filter(args: &TailArgs) -> Result<Json, String> {
    let mut f = serde_json::Map::new();
    for t in &args.tags {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| format!("--tag {t:?} must be name=value"))?;
        let e = f.entry(k.to_owned()).or_insert_with(|| json!([]));
        if let Json::Array(a) = e {
            a.push(json!(v));
        }
    }
    Ok(Json::Object(f))
}

fn points(d: &Daemon, args: &TailArgs) -> Result<ExitCode, String> {
    let filter = match tag_filter(args) {
        Ok(f) => f,
        Err(e) => return Ok(super::usage(e)),
    };
    let tq = json!({"start_absolute": i64::MIN / 2, "metrics": [{"name": args.metric, "tags": filter}]});
    let a = d.send_json("POST", "/api/v1/datapoints/query/tags", tq.to_string().as_bytes())?;
    if a.status != 200 {
        return Err(a.message());
    }
    let tags = a.json()["queries"][0]["results"][0]["tags"].clone();
    let keys: Vec<String> = tags
        .as_object()
        .map(|o| o.keys().cloned().collect::<BTreeSet<_>>().into_iter().collect())
        .unwrap_or_default();
    let names = d.get(&format!("/api/v1/metricnames?prefix={}", encode(&args.metric)))?;
    let known = names.json()["results"]
        .as_array()
        .is_some_and(|l| l.iter().any(|n| n.as_str() == Some(args.metric.as_str())));
    if !known {
        eprintln!("kairosd: no metric {:?}", args.metric);
        return Ok(ExitCode::FAILURE);
    }
    let want = args.n + args.skip;
    let mut metric = json!({"name": args.metric, "tags": filter, "order": "desc", "limit": want});
    if !keys.is_empty() {
        metric["group_by"] = json!([{"name": "tag", "tags": keys}]);
    }
    let q = json!({"start_absolute": i64::MIN / 2, "metrics": [metric]});
    let a = d.send_json("POST", "/api/v1/datapoints/query", q.to_string().as_bytes())?;
    if a.status != 200 {
        return Err(a.message());
    }
    // (time, value, tags) of every group, newest first overall.
    let mut rows: Vec<Row> = Vec::new();
    for r in a.json()["queries"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let tags: Vec<(String, String)> = r["tags"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v[0].as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        for v in r["values"].as_array().cloned().unwrap_or_default() {
            rows.push((v[0].as_i64().unwrap_or(0), v[1].clone(), tags.clone()));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut rows: Vec<_> = rows.into_iter().skip(args.skip).take(args.n).collect();
    rows.reverse();
    let tag = |tags: &[(String, String)], k: &str| {
        tags.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    match args.output.as_str() {
        "table" => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL);
            let mut header = vec!["time".to_owned(), "value".to_owned()];
            header.extend(keys.iter().cloned());
            t.set_header(header);
            for (ts, v, tags) in &rows {
                let mut row = vec![rfc3339(*ts), v.to_string()];
                row.extend(keys.iter().map(|k| tag(tags, k)));
                t.add_row(row);
            }
            println!("{t}");
        }
        "csv" => {
            let mut header = vec!["time".to_owned(), "value".to_owned()];
            header.extend(keys.iter().cloned());
            println!("{}", header.iter().map(|h| csv_cell(h)).collect::<Vec<_>>().join(","));
            for (ts, v, tags) in &rows {
                let mut row = vec![rfc3339(*ts), v.to_string()];
                row.extend(keys.iter().map(|k| tag(tags, k)));
                println!("{}", row.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
            }
        }
        out => {
            let objects: Vec<Json> = rows
                .iter()
                .map(|(ts, v, tags)| {
                    let t: serde_json::Map<String, Json> = tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                    json!({"time": rfc3339(*ts), "value": v, "tags": t})
                })
                .collect();
            if out == "json" {
                println!("{}", Json::Array(objects));
            } else {
                for o in objects {
                    println!("{o}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One point: time, value, tags.
type Row = (i64, Json, Vec<(String, String)>);

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn quarantine(d: &Daemon, args: &TailArgs) -> Result<ExitCode, String> {
    let a = d.get(&format!("/api/v1/quarantine?source={}&limit=0", encode(&args.metric)))?;
    if a.status != 200 {
        return Err(a.message());
    }
    let all = a.json()["results"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Json> = all.iter().rev().skip(args.skip).take(args.n).rev().cloned().collect();
    match args.output.as_str() {
        "table" => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL);
            t.set_header(["import", "file", "where", "kind", "message", "raw"]);
            for r in &rows {
                let loc = ["line", "element", "row"]
                    .iter()
                    .find_map(|k| r["location"][*k].as_u64().map(|n| format!("{k} {n}")))
                    .unwrap_or_default();
                let message = r["errors"][0]["message"].as_str().unwrap_or("").to_owned();
                t.add_row([
                    r["import_id"].as_str().unwrap_or("").to_owned(),
                    r["file"].as_str().unwrap_or("-").to_owned(),
                    loc,
                    r["kind"].as_str().unwrap_or("").to_owned(),
                    message,
                    r["raw"].as_str().unwrap_or("(binary)").trim_end().to_owned(),
                ]);
            }
            println!("{t}");
        }
        "json" => println!("{}", Json::Array(rows)),
        _ => {
            for r in rows {
                println!("{r}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
