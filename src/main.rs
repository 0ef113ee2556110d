use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kairosd::config::Config;
use kairosd::server;

/// A KairosDB-compatible time-series daemon on an embedded RocksDB.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { config, overrides } => serve(config, overrides),
        Command::Compact { data_dir } => compact(data_dir),
        Command::Check { data_dir } => check(data_dir),
        Command::Retention { action, url } => {
            use kairosd::retention_cli as cli;
            let out = match action {
                RetentionAction::List => cli::list(&url),
                RetentionAction::Set { prefix, retention } => cli::set(&url, &prefix, &retention),
                RetentionAction::Remove { prefix } => cli::remove(&url, &prefix),
            };
            print!("{}", out.stdout);
            if !out.stderr.is_empty() {
                eprintln!("kairosd: {}", out.stderr);
            }
            ExitCode::from(out.code)
        }
        Command::PrintConfig => {
            print!("{}", kairosd::config::example());
            ExitCode::SUCCESS
        }
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("kairosd: {msg}");
    ExitCode::FAILURE
}

fn load_config(path: Option<PathBuf>, overrides: Vec<String>) -> Result<Config, String> {
    let mut config = match path {
        Some(path) => {
            let (config, warnings) = Config::load(&path).map_err(|e| e.to_string())?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            config
        }
        None => Config::default(),
    };
    for o in overrides {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| format!("--set {o:?}: expected KEY=VALUE"))?;
        config.set(k.trim(), v)?;
    }
    Ok(config)
}

fn serve(path: Option<PathBuf>, overrides: Vec<String>) -> ExitCode {
    let config = match load_config(path, overrides) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let carbon = if config.carbon_enabled {
        2 * config.carbon_max_connections
    } else {
        0
    };
    check_fd_limit(config.telnet_max_connections + config.http_max_connections + carbon);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async {
        let signal = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot install signal handlers: {e}")),
        };
        let running = match server::start(&config).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
        tracing::info!(
            data_dir = %config.data_dir.display(),
            telnet = %show(running.telnet_addr),
            http = %show(running.http_addr),
            carbon = %show(running.carbon_text_addr),
            carbon_udp = %show(running.carbon_udp_addr),
            pickle = %show(running.carbon_pickle_addr),
            "kairosd started"
        );
        // One machine-readable line for scripts and tests that use port 0.
        println!(
            "kairosd ready telnet={} http={} carbon={} carbon_udp={} pickle={}",
            show(running.telnet_addr),
            show(running.http_addr),
            show(running.carbon_text_addr),
            show(running.carbon_udp_addr),
            show(running.carbon_pickle_addr)
        );
        let _ = std::io::stdout().flush();
        signal.await;
        tracing::info!("shutting down: finishing connections and committing queued points");
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Raises the open-file limit, warning when even that cannot hold the configured
/// connections.
fn check_fd_limit(connections: usize) {
    // Descriptors besides connections: RocksDB's files, listeners, logs.
    let needed = connections as u64 + 256;
    match kairosd::listener::raise_fd_limit() {
        Some(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "the open-file limit is below the configured connection caps; raise it (ulimit -n) or lower \
             kairosd.telnet.max_connections / kairosd.http.max_connections / kairosd.carbon.max_connections"
        ),
        _ => {}
    }
}

/// Registers for SIGINT and SIGTERM now (before the daemon says it is ready, so a
/// signal sent right after the ready line is not fatal) and resolves on the first.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn compact(data_dir: PathBuf) -> ExitCode {
    if !data_dir.join("CURRENT").exists() {
        return fail(format!("{} is not a kairosd data directory", data_dir.display()));
    }
    match kairosd::storage::Store::open(&data_dir, Config::default().bucket_width_ms) {
        Ok(store) => {
            store.compact();
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn check(data_dir: PathBuf) -> ExitCode {
    if !data_dir.join("CURRENT").exists() {
        eprintln!("kairosd: {} is not a kairosd data directory", data_dir.display());
        return ExitCode::from(2);
    }
    match kairosd::storage::check::check(&data_dir, true) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            for line in &report.bad {
                let _ = writeln!(out, "bad: {line}");
            }
            for line in &report.notes {
                let _ = writeln!(out, "note: {line}");
            }
            if report.bad.is_empty() {
                eprintln!(
                    "kairosd check: {} records in {}: all good",
                    report.records,
                    data_dir.display()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "kairosd check: {} records in {}: {} bad",
                    report.records,
                    data_dir.display(),
                    report.bad.len()
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("kairosd: {e}");
            ExitCode::from(2)
        }
    }
}
