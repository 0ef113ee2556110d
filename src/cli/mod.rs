//! The `kairosd` command line: one binary for the daemon ([`serve`]), offline store
//! tools ([`store`]) and the clients of a running daemon ([`ingest`], [`tail`],
//! [`sources`]), which also open the store directly with `--data-dir` when the daemon
//! is down ([`offline`]).
//!
//! Exit codes of the client commands (spec `import.md` §3): 0 clean, 3 committed with
//! bad rows, 1 a file failed (nothing of it committed), 2 usage, an unknown or disabled
//! source, a mapping error. When files end differently the worst wins, 2 > 1 > 3 > 0.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub mod daemon;
pub mod ingest;
pub mod offline;
pub mod retention;
pub mod serve;
pub mod sources;
pub mod store;
pub mod tail;

/// A KairosDB-compatible time-series daemon on an embedded RocksDB.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (telnet on 4242, HTTP on 8080 by default).
    Serve {
        /// A kairos.properties file; without it every key has its default.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override one key, e.g. --set kairosd.data_dir=/var/lib/kairosd (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Print every config key with its default (the text of kairos.properties.example).
    PrintConfig,
    /// Fully compact a (stopped) store, e.g. before measuring its size on disk.
    Compact {
        /// The data directory (kairosd.data_dir).
        data_dir: PathBuf,
    },
    /// Verify a (stopped) store offline: every record of every column family, with
    /// checksums. Prints each bad record; exits 1 if there is any, 2 if it cannot run.
    Check {
        /// The data directory (kairosd.data_dir).
        data_dir: PathBuf,
    },
    /// Import files (CSV, TSV, NDJSON, JSON, Parquet, KairosDB JSON; gzipped or not)
    /// through a stored source; each file is one atomic import.
    Ingest(ingest::IngestArgs),
    /// Print the newest points of a metric (or the latest bad rows of a source).
    Tail(tail::TailArgs),
    /// Manage the stored sources (row-to-datapoint mappings).
    Sources(sources::SourcesArgs),
    /// Retention policies of a running daemon, by metric name prefix (longest wins).
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
        /// The daemon's HTTP API.
        #[arg(long, global = true, default_value = "http://localhost:8080")]
        url: String,
    },
}

#[derive(Subcommand)]
enum RetentionAction {
    /// Print every policy: prefix, tab, retention.
    List,
    /// Keep the points of metrics starting with PREFIX for RETENTION (7d, 12h, 30m; 0 = forever).
    Set { prefix: String, retention: String },
    /// Remove the policy of PREFIX.
    Remove { prefix: String },
}

/// Where a client command finds the daemon, or the store when the daemon is down.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The daemon's HTTP address (default: from --config, else http://127.0.0.1:8080).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// A kairos.properties file to take the daemon's address (or data_dir) from.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Open the store in this directory directly (the daemon must be stopped).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

/// Runs the command line; the process exits with what this returns.
pub fn run() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config, overrides } => serve::serve(config, overrides),
        Command::Compact { data_dir } => store::compact(data_dir),
        Command::Check { data_dir } => store::check(data_dir),
        Command::PrintConfig => {
            print!("{}", crate::config::example());
            ExitCode::SUCCESS
        }
        Command::Ingest(args) => ingest::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Sources(args) => sources::run(args),
        Command::Retention { action, url } => {
            let out = match action {
                RetentionAction::List => retention::list(&url),
                RetentionAction::Set { prefix, retention } => retention::set(&url, &prefix, &retention),
                RetentionAction::Remove { prefix } => retention::remove(&url, &prefix),
            };
            print!("{}", out.stdout);
            if !out.stderr.is_empty() {
                eprintln!("kairosd: {}", out.stderr);
            }
            ExitCode::from(out.code)
        }
    }
}

pub(crate) fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("kairosd: {msg}");
    ExitCode::FAILURE
}

/// A usage or mapping error: exit 2.
pub(crate) fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("kairosd: {msg}");
    ExitCode::from(2)
}
