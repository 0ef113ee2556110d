//! `kairosd sources list|show|add|enable|disable|remove` (spec §3): over the daemon's
//! `/api/v1/sources`, or on the store with `--data-dir`. `add` takes a source's JSON
//! (`--file`), flags, or a sample file to analyze (`--from-file`, confirmed or `--yes`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL, Table};
use serde_json::{json, Value as Json};

use super::daemon::{encode, Daemon};
use super::offline::open_store;
use super::Target;
use crate::http::client::Body;
use crate::import::registry::{self, RegistryError};

#[derive(Args, Debug)]
pub struct SourcesArgs {
    #[command(subcommand)]
    pub command: SourcesCommand,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Subcommand, Debug)]
pub enum SourcesCommand {
    /// List the stored sources.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one source's JSON.
    Show { name: String },
    /// Store a new source: from --file (its JSON), --from-file (a sample to analyze), or flags.
    Add(Box<AddArgs>),
    /// Let a source take imports again.
    Enable { name: String },
    /// Refuse imports into a source (they answer 409, exit 2).
    Disable { name: String },
    /// Delete a source (its points stay).
    Remove { name: String },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The source's name (needed with flags; overrides the name of --file or --from-file).
    pub name: Option<String>,
    /// A file holding the source's JSON.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A sample data file: its columns are detected and a source proposed.
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    /// Store the proposed source without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// The timestamp column (flags form).
    #[arg(long)]
    pub timestamp: Option<String>,
    /// auto, rfc3339, unix_s, unix_ms, unix_us, unix_ns or custom:<strftime>.
    #[arg(long, default_value = "auto")]
    pub timestamp_format: String,
    /// A tag column (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// A value column (repeatable; `*` = every unmapped column).
    #[arg(long = "value")]
    pub values: Vec<String>,
    /// Narrow rows: the column holding the metric name.
    #[arg(long)]
    pub name_column: Option<String>,
    /// Narrow rows: the column holding the value.
    #[arg(long)]
    pub value_column: Option<String>,
    /// Metric name prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// The format imports use when none is given.
    #[arg(long)]
    pub format: Option<String>,
    /// append or ledger.
    #[arg(long, default_value = "append")]
    pub merge: String,
    /// 0 (forever) or a duration such as 30d.
    #[arg(long, default_value = "0")]
    pub retention: String,
}

fn flags_source(a: &AddArgs) -> Result<Json, String> {
    let name = a.name.clone().ok_or("give the source's name")?;
    let mut metric = json!({"prefix": a.prefix});
    if !a.values.is_empty() {
        metric["value_columns"] = if a.values.len() == 1 && a.values[0] == "*" {
            json!("*")
        } else {
            json!(a.values)
        };
    }
    if let Some(n) = &a.name_column {
        metric["name_column"] = json!(n);
    }
    if let Some(v) = &a.value_column {
        metric["value_column"] = json!(v);
    }
    Ok(json!({
        "name": name,
        "format": a.format,
        "timestamp": {"column": a.timestamp, "format": a.timestamp_format},
        "metric": metric,
        "tags": {"columns": a.tags},
        "merge": a.merge,
        "retention": a.retention,
    }))
}

/// The source `add` stores, as JSON.
fn source_to_add(a: &AddArgs, target: &Target) -> Result<Json, ExitCode> {
    let mut source = if let Some(f) = &a.file {
        let text = std::fs::read(f).map_err(|e| super::usage(format!("cannot read {}: {e}", f.display())))?;
        serde_json::from_slice::<Json>(&text).map_err(|e| super::usage(format!("{} is not JSON: {e}", f.display())))?
    } else if let Some(f) = &a.from_file {
        let analysis = analyze(f, a.name.as_deref(), target)?;
        let source = analysis["source"].clone();
        println!(
            "{}",
            serde_json::to_string_pretty(&analysis["columns"]).unwrap_or_default()
        );
        println!(
            "proposed source:\n{}",
            serde_json::to_string_pretty(&source).unwrap_or_default()
        );
        if let Some(p) = analysis.get("preview") {
            println!(
                "preview: {} points, {} rows would be quarantined",
                p["points"], p["would_quarantine"]
            );
        }
        if !a.yes {
            if !std::io::stdin().is_terminal() {
                return Err(super::usage("not a terminal: pass --yes to store the proposed source"));
            }
            print!("store it? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            if !matches!(line.trim(), "y" | "Y" | "yes") {
                eprintln!("nothing stored");
                return Err(ExitCode::from(1));
            }
        }
        source
    } else {
        flags_source(a).map_err(super::usage)?
    };
    if let (Some(n), true) = (&a.name, a.file.is_some() || a.from_file.is_some()) {
        source["name"] = json!(n);
    }
    Ok(source)
}

/// Analyzes a sample file: over the daemon, or in this process with `--data-dir`.
fn analyze(f: &PathBuf, name: Option<&str>, target: &Target) -> Result<Json, ExitCode> {
    let mut bytes = Vec::new();
    {
        use std::io::Read;
        let file = std::fs::File::open(f).map_err(|e| super::usage(format!("cannot read {}: {e}", f.display())))?;
        file.take(8 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| super::usage(format!("cannot read {}: {e}", f.display())))?;
    }
    let file_name = f.file_name().map(|n| n.to_string_lossy().into_owned());
    if target.data_dir.is_some() {
        let options = kairos_protocols::import::analyze::AnalyzeOptions {
            file_name,
            source_name: name.map(str::to_owned),
            receive_time: crate::http::response::now_millis(),
            ..Default::default()
        };
        return kairos_protocols::import::analyze::analyze(&bytes, &options)
            .map(|a| serde_json::to_value(a).unwrap_or(Json::Null))
            .map_err(|e| super::usage(e.to_string()));
    }
    let d = Daemon::new(target).map_err(super::usage)?;
    let mut q = String::new();
    if let Some(n) = &file_name {
        q.push_str(&format!("file={}", encode(n)));
    }
    if let Some(n) = name {
        q.push_str(&format!("&source={}", encode(n)));
    }
    let a = d
        .call("POST", &format!("/api/v1/import/analyze?{q}"), &[], Body::Bytes(&bytes))
        .map_err(super::fail)?;
    if a.status != 200 {
        return Err(super::usage(a.message()));
    }
    Ok(a.json())
}

fn table(list: &[Json]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL);
    t.set_header([
        "name",
        "version",
        "enabled",
        "format",
        "merge",
        "retention",
        "timestamp",
        "tags",
        "metrics",
    ]);
    for s in list {
        let m = &s["metric"];
        let metrics = match (&m["value_columns"], &m["name_column"]) {
            (Json::Array(cols), _) => cols
                .iter()
                .filter_map(|c| c.as_str())
                .map(|c| format!("{}{c}", m["prefix"].as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", "),
            (Json::String(s), _) => format!("{}{s}", m["prefix"].as_str().unwrap_or("")),
            (_, Json::String(n)) => format!("{}<{n}>", m["prefix"].as_str().unwrap_or("")),
            _ => String::new(),
        };
        let tags: Vec<&str> = s["tags"]["columns"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
            .unwrap_or_default();
        let text = |v: &Json| match v {
            Json::String(s) => s.clone(),
            Json::Null => "-".to_owned(),
            other => other.to_string(),
        };
        t.add_row([
            text(&s["name"]),
            text(&s["version"]),
            text(&s["enabled"]),
            text(&s["format"]),
            text(&s["merge"]),
            text(&s["retention"]),
            text(&s["timestamp"]["column"]),
            tags.join(", "),
            metrics,
        ]);
    }
    t
}

pub fn run(args: SourcesArgs) -> ExitCode {
    if let Some(dir) = &args.target.data_dir {
        return offline(&args, dir);
    }
    let d = match Daemon::new(&args.target) {
        Ok(d) => d,
        Err(e) => return super::usage(e),
    };
    let result = match &args.command {
        SourcesCommand::List { json } => d.get("/api/v1/sources").map(|a| {
            if a.status != 200 {
                return answer_failed(&a.message(), a.status);
            }
            let list = a.json()["results"].as_array().cloned().unwrap_or_default();
            if *json {
                println!("{}", json!({ "results": list }));
            } else {
                println!("{}", table(&list));
            }
            ExitCode::SUCCESS
        }),
        SourcesCommand::Show { name } => d.get(&format!("/api/v1/sources/{}", encode(name))).map(|a| {
            if a.status != 200 {
                return answer_failed(&a.message(), a.status);
            }
            println!("{}", serde_json::to_string_pretty(&a.json()).unwrap_or_default());
            ExitCode::SUCCESS
        }),
        SourcesCommand::Add(a) => {
            let source = match source_to_add(a, &args.target) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let body = serde_json::to_vec(&source).unwrap_or_default();
            d.send_json("POST", "/api/v1/sources", &body).map(|a| {
                if a.status != 201 {
                    return answer_failed(&a.message(), a.status);
                }
                let s = a.json();
                eprintln!("source {} stored (version {})", s["name"], s["version"]);
                ExitCode::SUCCESS
            })
        }
        SourcesCommand::Enable { name } | SourcesCommand::Disable { name } => {
            let action = if matches!(args.command, SourcesCommand::Enable { .. }) {
                "enable"
            } else {
                "disable"
            };
            d.call(
                "POST",
                &format!("/api/v1/sources/{}/{action}", encode(name)),
                &[],
                Body::Empty,
            )
            .map(|a| {
                if a.status != 204 {
                    return answer_failed(&a.message(), a.status);
                }
                eprintln!("source {name:?} {action}d");
                ExitCode::SUCCESS
            })
        }
        SourcesCommand::Remove { name } => d
            .call("DELETE", &format!("/api/v1/sources/{}", encode(name)), &[], Body::Empty)
            .map(|a| {
                if a.status != 204 {
                    return answer_failed(&a.message(), a.status);
                }
                eprintln!("source {name:?} removed");
                ExitCode::SUCCESS
            }),
    };
    result.unwrap_or_else(super::fail)
}

/// 4xx answers are the user's to fix (exit 2), the rest a failure (1).
fn answer_failed(message: &str, status: u16) -> ExitCode {
    eprintln!("kairosd: {message}");
    if (400..500).contains(&status) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn offline(args: &SourcesArgs, dir: &std::path::Path) -> ExitCode {
    let handle = match open_store(dir) {
        Ok(h) => h,
        Err(e) => return super::usage(e),
    };
    let store = match handle.get() {
        Ok(s) => s,
        Err(e) => return super::fail(e),
    };
    let failed = |e: RegistryError| match e {
        RegistryError::Store(e) => super::fail(e),
        other => super::usage(other),
    };
    match &args.command {
        SourcesCommand::List { json } => match registry::list(&store) {
            Ok(list) => {
                let list: Vec<Json> = list
                    .iter()
                    .map(|s| serde_json::to_value(s).unwrap_or(Json::Null))
                    .collect();
                if *json {
                    println!("{}", json!({ "results": list }));
                } else {
                    println!("{}", table(&list));
                }
                ExitCode::SUCCESS
            }
            Err(e) => super::fail(e),
        },
        SourcesCommand::Show { name } => match registry::get(&store, name) {
            Ok(Some(s)) => {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(None) => failed(RegistryError::NotFound(name.clone())),
            Err(e) => super::fail(e),
        },
        SourcesCommand::Add(a) => {
            let source = match source_to_add(a, &args.target) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let parsed = registry::parse(&serde_json::to_vec(&source).unwrap_or_default());
            match parsed.and_then(|s| registry::put(&store, s, false)) {
                Ok(s) => {
                    eprintln!("source {:?} stored (version {})", s.name, s.version);
                    ExitCode::SUCCESS
                }
                Err(e) => failed(e),
            }
        }
        SourcesCommand::Enable { name } => match registry::set_enabled(&store, name, true) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => failed(e),
        },
        SourcesCommand::Disable { name } => match registry::set_enabled(&store, name, false) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => failed(e),
        },
        SourcesCommand::Remove { name } => match registry::remove(&store, name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(e),
        },
    }
}
