//! `kairosd serve`: the daemon in the foreground until SIGINT or SIGTERM.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::server;

use super::fail;

pub fn load_config(path: Option<PathBuf>, overrides: Vec<String>) -> Result<Config, String> {
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

pub fn serve(path: Option<PathBuf>, overrides: Vec<String>) -> ExitCode {
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
    match crate::listener::raise_fd_limit() {
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
