use std::process::ExitCode;

fn main() -> ExitCode {
    // The daemon logs what it does; a client command only what went wrong.
    let default = match std::env::args().nth(1).as_deref() {
        Some("serve") => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .init();
    kairosd::cli::run()
}
