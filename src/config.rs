//! Daemon configuration: KairosDB's key names where the meaning matches, `kairosd.*` for ours.
//!
//! Every key lives in [`KEYS`] with its default and a one-line description; that table
//! is the single source for parsing, for the "unknown key" warning and for
//! `kairos.properties.example` (a test checks the file against it).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kairos_protocols::graphite::host::{self, HostTagConfig};
use kairos_protocols::graphite::templates::Templates;
use kairos_protocols::graphite::TagParserKind;
use kairos_protocols::series_cache::CacheLimits;

use crate::properties;

/// How hard the writer pushes each group commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    /// fsync every group commit before acknowledging it (about 1 ms each here).
    Always,
    /// Write to the OS page cache; survives a process kill, and a background flush
    /// every `kairosd.wal.flush_interval_ms` bounds loss on power failure.
    Off,
}

/// Which endpoint groups this instance serves (`kairosdb.server.type`); a disabled
/// group answers 403, as KairosDB does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerType {
    pub ingest: bool,
    pub query: bool,
    pub delete: bool,
}

impl ServerType {
    fn parse(v: &str) -> Result<ServerType, String> {
        let mut t = ServerType {
            ingest: false,
            query: false,
            delete: false,
        };
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_uppercase().as_str() {
                "ALL" => {
                    t = ServerType {
                        ingest: true,
                        query: true,
                        delete: true,
                    }
                }
                "INGEST" => t.ingest = true,
                "QUERY" => t.query = true,
                "DELETE" => t.delete = true,
                other => {
                    return Err(format!(
                        "unknown server type {other:?}; use ALL or a list of INGEST, QUERY, DELETE"
                    ))
                }
            }
        }
        if !(t.ingest || t.query || t.delete) {
            return Err("names no server type; use ALL or a list of INGEST, QUERY, DELETE".into());
        }
        Ok(t)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub telnet_enabled: bool,
    pub telnet_addr: SocketAddr,
    pub telnet_max_command_size: usize,
    pub telnet_max_connections: usize,
    pub telnet_idle_timeout: Duration,
    /// TCP keepalive idle time on accepted connections; `None` = off.
    pub tcp_keepalive: Option<Duration>,
    pub shutdown_drain_timeout: Duration,
    /// Per connection (telnet, Graphite TCP and pickle; the UDP socket has one).
    pub series_cache: CacheLimits,
    pub carbon_enabled: bool,
    pub carbon_text_addr: SocketAddr,
    pub carbon_text_max_size: usize,
    pub carbon_udp_enabled: bool,
    pub carbon_pickle_addr: SocketAddr,
    pub carbon_pickle_max_size: usize,
    pub carbon_max_connections: usize,
    pub carbon_tag_parser: TagParserKind,
    pub carbon_host_tags: HostTagConfig,
    pub carbon_templates: String,
    pub http_enabled: bool,
    pub http_addr: SocketAddr,
    pub http_idle_timeout: Duration,
    pub http_header_read_timeout: Duration,
    pub http_max_body_bytes: usize,
    pub http_max_connections: usize,
    pub writer_batch_points: usize,
    pub writer_linger: Duration,
    pub writer_promote_points: usize,
    pub writer_promote_interval: Duration,
    pub writer_max_inflight_points: usize,
    /// Most series the store may hold (0 = no limit); points of new series past it are refused.
    pub series_max: u64,
    /// Request-body bytes all HTTP connections together may hold buffered at once.
    pub http_max_buffered_bytes: usize,
    /// Read-buffer bytes all telnet, Graphite and pickle connections together may hold.
    pub ingest_max_buffered_bytes: usize,
    pub writer_ack_timeout: Duration,
    pub wal_sync: WalSync,
    pub wal_flush_interval: Duration,
    pub idle_flush: Duration,
    pub bucket_width_ms: i64,
    pub query_max_points: usize,
    pub query_max_concurrent: usize,
    pub query_threads: usize,
    pub query_queue_timeout: Duration,
    pub server_type: ServerType,
    /// KairosDB's `kairosdb.datastore.cassandra.datapoint_ttl` and its two companions.
    pub ttl: crate::storage::expiry::TtlPolicy,
    /// How often expired data is compacted away (0 = only by RocksDB's own schedule).
    pub retention_compaction_interval: Duration,
    /// Decompressed bytes one import may read (`kairosd.import.max_bytes`).
    pub import_max_bytes: u64,
    /// Imports from a URL may fetch from loopback and private addresses.
    pub import_url_allow_private: bool,
    pub import_url_timeout: Duration,
    /// How long quarantine records are kept (ms); `None` = forever.
    pub import_quarantine_retention: Option<u64>,
    /// What one source's quarantine records may take.
    pub import_quarantine_max_bytes: u64,
}

/// A config key: its name, default (as written in the file) and what it is for.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

macro_rules! key {
    ($name:expr, $default:expr, $help:expr, |$c:ident, $v:ident| $body:expr) => {
        Key {
            name: $name,
            default: $default,
            help: $help,
            apply: |$c: &mut Config, $v: &str| {
                $body;
                Ok(())
            },
        }
    };
}

/// Every key kairosd reads, in the order of the example file.
pub const KEYS: &[Key] = &[
    key!(
        "kairosd.data_dir",
        "./data",
        "Directory of the RocksDB store (created if missing).",
        |c, v| c.data_dir = PathBuf::from(non_empty(v)?)
    ),
    key!(
        "kairosdb.service.telnet",
        "org.kairosdb.core.telnet.TelnetServerModule",
        "Set to <disabled> to turn the telnet listener off.",
        |c, v| c.telnet_enabled = v.trim() != "<disabled>"
    ),
    key!(
        "kairosdb.telnetserver.address",
        "0.0.0.0",
        "Address the telnet listener binds.",
        |c, v| c.telnet_addr.set_ip(ip(v)?)
    ),
    key!(
        "kairosdb.telnetserver.port",
        "4242",
        "Telnet put/putm port (0 = any free port).",
        |c, v| c.telnet_addr.set_port(number(v)?)
    ),
    key!(
        "kairosdb.telnetserver.max_command_size",
        "1024",
        "Longest telnet line in bytes; a longer line is discarded, the connection kept.",
        |c, v| c.telnet_max_command_size = positive(v)?
    ),
    key!(
        "kairosd.telnet.max_connections",
        "10000",
        "Concurrent telnet connections; more wait in the accept queue.",
        |c, v| c.telnet_max_connections = positive(v)?
    ),
    key!(
        "kairosd.telnet.idle_timeout_ms",
        "300000",
        "Close a telnet or Graphite TCP connection that sent part of a line or pickle frame and then nothing for this many ms (0 = never).",
        |c, v| c.telnet_idle_timeout = millis(v)?
    ),
    key!(
        "kairosd.tcp.keepalive_ms",
        "60000",
        "Probe a TCP connection (telnet, Graphite, pickle, HTTP) silent this many ms, so a peer that vanished frees its slot within 1.5 times this (0 = never).",
        |c, v| c.tcp_keepalive = Some(millis(v)?).filter(|d| !d.is_zero())
    ),
    key!(
        "kairosd.shutdown.drain_timeout_ms",
        "5000",
        "On SIGTERM, keep reading each open connection until its client closes it (or goes quiet) for at most this many ms.",
        |c, v| c.shutdown_drain_timeout = millis(v)?
    ),
    key!(
        "kairosd.ingest.max_buffered_bytes",
        "134217728",
        "Read-buffer bytes all telnet, Graphite and pickle TCP connections together may hold; past it connections wait before reading.",
        |c, v| c.ingest_max_buffered_bytes = positive(v)?
    ),
    key!(
        "kairosd.ingest.series_cache_entries",
        "8192",
        "Series each telnet, Graphite or pickle connection remembers, so a repeated series is not parsed again (0 = off).",
        |c, v| c.series_cache.entries = number(v)?
    ),
    key!(
        "kairosd.ingest.series_cache_bytes",
        "1048576",
        "Memory cap in bytes of each connection's series cache.",
        |c, v| c.series_cache.bytes = number(v)?
    ),
    key!(
        "kairosdb.service.carbon",
        "org.kairosdb.plugin.carbon.CarbonServerModule",
        "Set to <disabled> to turn the Graphite listeners (plaintext and pickle) off.",
        |c, v| c.carbon_enabled = v.trim() != "<disabled>"
    ),
    key!(
        "kairosdb.carbon.text.address",
        "0.0.0.0",
        "Address the Graphite plaintext listener binds (TCP and UDP).",
        |c, v| c.carbon_text_addr.set_ip(ip(v)?)
    ),
    key!(
        "kairosdb.carbon.text.port",
        "2003",
        "Graphite plaintext port, TCP and UDP (0 = any free port).",
        |c, v| c.carbon_text_addr.set_port(number(v)?)
    ),
    key!(
        "kairosdb.carbon.text.max_size",
        "4096",
        "Longest Graphite plaintext line in bytes; a longer line is discarded, the connection kept.",
        |c, v| c.carbon_text_max_size = positive(v)?
    ),
    key!(
        "kairosd.carbon.udp.enabled",
        "true",
        "Also take Graphite plaintext datagrams (up to 64 KiB, many lines each) on the plaintext port.",
        |c, v| c.carbon_udp_enabled = boolean(v)?
    ),
    key!(
        "kairosdb.carbon.pickle.address",
        "0.0.0.0",
        "Address the Graphite pickle listener binds.",
        |c, v| c.carbon_pickle_addr.set_ip(ip(v)?)
    ),
    key!(
        "kairosdb.carbon.pickle.port",
        "2004",
        "Graphite pickle port (0 = any free port).",
        |c, v| c.carbon_pickle_addr.set_port(number(v)?)
    ),
    key!(
        "kairosdb.carbon.pickle.max_size",
        "1048576",
        "Largest pickle frame in bytes (carbon's own cap); a larger length header closes the connection unread.",
        |c, v| c.carbon_pickle_max_size = positive(v)?
    ),
    key!(
        "kairosd.carbon.max_connections",
        "4096",
        "Concurrent connections per Graphite TCP listener; more wait in the accept queue.",
        |c, v| c.carbon_max_connections = positive(v)?
    ),
    key!(
        "kairosdb.carbon.tag_parser",
        "graphite",
        "How a Graphite path becomes a metric and tags: graphite (Graphite 1.1 path;tag=value), host or templates; KairosDB's class names work too.",
        |c, v| c.carbon_tag_parser = TagParserKind::from_name(v)?
    ),
    key!(
        host::HOST_PATTERN_KEY,
        r"[^.]*\.([^.]*)\..*",
        "host parser: a regex the whole path must match; host_replacement builds the host tag from its groups.",
        |c, v| c.carbon_host_tags.host_pattern = regex(v, host::HOST_PATTERN_KEY)?
    ),
    key!(
        host::HOST_REPLACEMENT_KEY,
        "$1",
        "host parser: the host tag, with $n for the groups of host_pattern.",
        |c, v| c.carbon_host_tags.host_replacement = v.trim().to_string()
    ),
    key!(
        host::METRIC_PATTERN_KEY,
        r"([^.]*)\.[^.]*\.(.*)",
        "host parser: a regex the whole path must match; metric_replacement builds the metric name from its groups.",
        |c, v| c.carbon_host_tags.metric_pattern = regex(v, host::METRIC_PATTERN_KEY)?
    ),
    key!(
        host::METRIC_REPLACEMENT_KEY,
        "$1.$2",
        "host parser: the metric name, with $n for the groups of metric_pattern.",
        |c, v| c.carbon_host_tags.metric_replacement = v.trim().to_string()
    ),
    key!(
        kairos_protocols::graphite::templates::KEY,
        "",
        "templates parser: ';'-separated '<filter regex> <template> [separator] [tag=value,...]', e.g. ^servers .metric.host.metric*",
        |c, v| c.carbon_templates = templates(v)?
    ),
    key!(
        "kairosdb.service.http",
        "org.kairosdb.core.http.WebServletModule",
        "Set to <disabled> to turn the HTTP API off.",
        |c, v| c.http_enabled = v.trim() != "<disabled>"
    ),
    key!(
        "kairosdb.jetty.address",
        "0.0.0.0",
        "Address the HTTP API binds.",
        |c, v| c.http_addr.set_ip(ip(v)?)
    ),
    key!(
        "kairosdb.jetty.port",
        "8080",
        "HTTP API port (0 = any free port).",
        |c, v| c.http_addr.set_port(number(v)?)
    ),
    key!(
        "kairosdb.jetty.socket_idle_timeout",
        "120000",
        "Close an HTTP connection idle this many ms.",
        |c, v| c.http_idle_timeout = millis(v)?
    ),
    key!(
        "kairosd.http.header_read_timeout_ms",
        "30000",
        "Close an HTTP connection whose request head takes longer than this many ms.",
        |c, v| c.http_header_read_timeout = millis(v)?
    ),
    key!(
        "kairosd.http.max_body_bytes",
        "67108864",
        "Largest request body in bytes, counted after gzip decompression (413 past it).",
        |c, v| c.http_max_body_bytes = positive(v)?
    ),
    key!(
        "kairosd.http.max_buffered_bytes",
        "268435456",
        "Request-body bytes all HTTP connections together may hold at once; a body that finds no room waits, then gets a 503.",
        |c, v| c.http_max_buffered_bytes = positive(v)?
    ),
    key!(
        "kairosd.http.max_connections",
        "1024",
        "Concurrent HTTP connections; more wait in the accept queue.",
        |c, v| c.http_max_connections = positive(v)?
    ),
    key!(
        "kairosd.writer.batch_points",
        "200000",
        "Points after which the writer commits without waiting.",
        |c, v| c.writer_batch_points = positive(v)?
    ),
    key!(
        "kairosd.writer.linger_ms",
        "0",
        "How long a commit waits to gather more points; 0 commits as soon as the queue is empty.",
        |c, v| c.writer_linger = millis(v)?
    ),
    key!(
        "kairosd.writer.promote_points",
        "500000",
        "Staged points after which they are rewritten into per-series chunks.",
        |c, v| c.writer_promote_points = positive(v)?
    ),
    key!(
        "kairosd.writer.promote_interval_ms",
        "2000",
        "Longest a point stays in the staging log before it is rewritten into its series' chunk.",
        |c, v| c.writer_promote_interval = millis(v)?
    ),
    key!(
        "kairosd.writer.max_inflight_points",
        "250000",
        "Points accepted but not yet written; past this, senders are slowed down.",
        |c, v| c.writer_max_inflight_points = positive(v)?
    ),
    key!(
        "kairosd.series.max",
        "0",
        "Most series the store may hold (0 = no limit); points of new series past it are refused, counted and logged (REST: 400).",
        |c, v| c.series_max = number(v)?
    ),
    key!(
        "kairosd.writer.ack_timeout_ms",
        "30000",
        "How long a REST write waits for the writer before answering 503.",
        |c, v| c.writer_ack_timeout = millis(v)?
    ),
    key!(
        "kairosd.wal.sync",
        "false",
        "true: fsync the WAL before every acknowledgement.",
        |c, v| c.wal_sync = if boolean(v)? { WalSync::Always } else { WalSync::Off }
    ),
    key!(
        "kairosd.wal.flush_interval_ms",
        "1000",
        "With wal.sync=false, fsync the WAL in the background this often (0 = never).",
        |c, v| c.wal_flush_interval = millis(v)?
    ),
    key!(
        "kairosd.storage.idle_flush_ms",
        "10000",
        "Write memtables to disk after this many ms without ingest (0 = never); keeps the WAL and restarts short.",
        |c, v| c.idle_flush = millis(v)?
    ),
    key!(
        "kairosd.storage.bucket_width_ms",
        "7200000",
        "Time span of one stored chunk; fixed when the store is created.",
        |c, v| c.bucket_width_ms = positive::<i64>(v)?
    ),
    key!(
        "kairosd.query.max_points",
        "50000000",
        "Most raw points one query may read (all its metrics together); past it the query stops with a 400.",
        |c, v| c.query_max_points = positive(v)?
    ),
    key!(
        "kairosd.query.max_concurrent",
        "4",
        "Queries (and query/tags requests) running at once; more wait for a turn.",
        |c, v| c.query_max_concurrent = positive(v)?
    ),
    key!(
        "kairosd.query.threads",
        "0",
        "Threads one query may read a large group with (0 = one per core, at most 4).",
        |c, v| c.query_threads = number(v)?
    ),
    key!(
        "kairosd.query.queue_timeout_ms",
        "10000",
        "How long a query waits for a turn before it gets a 503.",
        |c, v| c.query_queue_timeout = millis(v)?
    ),
    key!(
        "kairosdb.server.type",
        "ALL",
        "Endpoint groups served: ALL or a comma list of INGEST, QUERY, DELETE (others answer 403).",
        |c, v| c.server_type = ServerType::parse(v)?
    ),
    key!(
        "kairosdb.datastore.cassandra.datapoint_ttl",
        "0",
        "Seconds a point lives when its client gives no ttl (0 = forever).",
        |c, v| c.ttl.default_ttl = number(v)?
    ),
    key!(
        "kairosdb.datastore.cassandra.align_datapoint_ttl_with_timestamp",
        "false",
        "true: a ttl counts from the point's timestamp, not its arrival; points already past it are dropped.",
        |c, v| c.ttl.align = boolean(v)?
    ),
    key!(
        "kairosdb.datastore.cassandra.force_default_datapoint_ttl",
        "false",
        "true: every point gets datapoint_ttl, whatever ttl its client sent.",
        |c, v| c.ttl.force_default = boolean(v)?
    ),
    key!(
        "kairosd.retention.compaction_interval_ms",
        "86400000",
        "How often points past their ttl or retention are compacted off the disk (0 = only by RocksDB's daily schedule).",
        |c, v| c.retention_compaction_interval = millis(v)?
    ),
    key!(
        "kairosd.import.max_bytes",
        "17179869184",
        "Most bytes one import (POST /api/v1/import, kairosd ingest) may read, counted after decompression (413).",
        |c, v| c.import_max_bytes = positive(v)?
    ),
    key!(
        "kairosd.import.url.allow_private",
        "false",
        "true: imports from a URL may fetch from loopback, private and link-local addresses (refused by default).",
        |c, v| c.import_url_allow_private = boolean(v)?
    ),
    key!(
        "kairosd.import.url.timeout_ms",
        "60000",
        "How long an import from a URL waits to connect and for each read.",
        |c, v| c.import_url_timeout = millis(v)?
    ),
    key!(
        "kairosd.import.quarantine_retention",
        "30d",
        "How long quarantined rows are kept, by their import's time (ms s m h d w, or 0 = forever).",
        |c, v| c.import_quarantine_retention = kairos_protocols::import::source::parse_retention(v)?
    ),
    key!(
        "kairosd.import.quarantine_max_bytes",
        "1073741824",
        "Bytes one source's quarantined rows may take; an import that would pass it fails (409) instead of dropping rows.",
        |c, v| c.import_quarantine_max_bytes = positive(v)?
    ),
];

/// The text of `kairos.properties.example`: every key with its default and purpose.
pub fn example() -> String {
    let mut out = String::from(
        "# kairosd configuration (Java properties syntax, KairosDB's key names where the meaning matches).\n\
         # Every key kairosd reads is listed here with its default. Unknown keys are warned about;\n\
         # a bad value stops the daemon with a message naming the key.\n",
    );
    for key in KEYS {
        // A properties file reads `\.` as `.`: write backslashes so they read back as is.
        let value = key.default.replace('\\', "\\\\");
        out.push_str(&format!("\n# {}\n{}={}\n", key.help, key.name, value));
    }
    out
}

impl Default for Config {
    fn default() -> Config {
        let mut config = Config {
            data_dir: PathBuf::new(),
            telnet_enabled: true,
            telnet_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            telnet_max_command_size: 0,
            telnet_max_connections: 0,
            telnet_idle_timeout: Duration::ZERO,
            tcp_keepalive: None,
            shutdown_drain_timeout: Duration::ZERO,
            series_cache: CacheLimits::OFF,
            carbon_enabled: true,
            carbon_text_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            carbon_text_max_size: 0,
            carbon_udp_enabled: true,
            carbon_pickle_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            carbon_pickle_max_size: 0,
            carbon_max_connections: 0,
            carbon_tag_parser: TagParserKind::Graphite,
            carbon_host_tags: HostTagConfig::default(),
            carbon_templates: String::new(),
            http_enabled: true,
            http_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            http_idle_timeout: Duration::ZERO,
            http_header_read_timeout: Duration::ZERO,
            http_max_body_bytes: 0,
            http_max_connections: 0,
            writer_batch_points: 0,
            writer_linger: Duration::ZERO,
            writer_promote_points: 0,
            writer_promote_interval: Duration::ZERO,
            writer_max_inflight_points: 0,
            series_max: 0,
            http_max_buffered_bytes: 0,
            ingest_max_buffered_bytes: 0,
            writer_ack_timeout: Duration::ZERO,
            wal_sync: WalSync::Off,
            wal_flush_interval: Duration::ZERO,
            idle_flush: Duration::ZERO,
            bucket_width_ms: 0,
            query_max_points: 0,
            query_max_concurrent: 0,
            query_threads: 0,
            query_queue_timeout: Duration::ZERO,
            server_type: ServerType {
                ingest: true,
                query: true,
                delete: true,
            },
            ttl: Default::default(),
            retention_compaction_interval: Duration::ZERO,
            import_max_bytes: 0,
            import_url_allow_private: false,
            import_url_timeout: Duration::ZERO,
            import_quarantine_retention: None,
            import_quarantine_max_bytes: 0,
        };
        for key in KEYS {
            (key.apply)(&mut config, key.default).expect("defaults are valid");
        }
        config
    }
}

/// A config that cannot be used; the daemon refuses to start with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: bad value {value:?} for {key}: {reason}")]
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        reason: String,
    },
}

impl Config {
    /// Reads `path`; unknown keys are returned as warnings, bad values are errors.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_properties(&text, path)
    }

    pub fn from_properties(text: &str, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = Config::default();
        let mut warnings = Vec::new();
        for entry in properties::parse(text) {
            match KEYS.iter().find(|k| k.name == entry.key) {
                Some(key) => (key.apply)(&mut config, &entry.value).map_err(|reason| ConfigError::BadValue {
                    path: path.to_path_buf(),
                    line: entry.line,
                    key: entry.key.clone(),
                    value: entry.value.clone(),
                    reason,
                })?,
                None => warnings.push(format!(
                    "{}:{}: unknown config key {:?} ignored",
                    path.display(),
                    entry.line,
                    entry.key
                )),
            }
        }
        Ok((config, warnings))
    }

    /// Applies `key=value` overrides (from the command line) on top of this config.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let k = KEYS
            .iter()
            .find(|k| k.name == key)
            .ok_or_else(|| format!("unknown config key {key:?}"))?;
        (k.apply)(self, value).map_err(|reason| format!("bad value {value:?} for {key}: {reason}"))
    }
}

fn non_empty(v: &str) -> Result<&str, String> {
    let v = v.trim();
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(v)
    }
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim().parse().map_err(|_| "not a whole number in range".to_string())
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(v: &str) -> Result<T, String> {
    let n: T = number(v)?;
    if n > T::default() {
        Ok(n)
    } else {
        Err("must be greater than 0".into())
    }
}

fn millis(v: &str) -> Result<Duration, String> {
    number::<u64>(v).map(Duration::from_millis)
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// A regex as the host parser uses it (whole-path match), checked now so a bad one
/// names its file and line.
fn regex(v: &str, key: &'static str) -> Result<String, String> {
    let v = v.trim();
    host::whole_match(v, key).map_err(|e| e.reason)?;
    Ok(v.to_string())
}

fn templates(v: &str) -> Result<String, String> {
    Templates::parse(v)?;
    Ok(v.trim().to_string())
}

fn ip(v: &str) -> Result<IpAddr, String> {
    v.trim().parse().map_err(|_| "not an IP address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kairosdb() {
        let c = Config::default();
        assert_eq!(c.telnet_addr.port(), 4242);
        assert_eq!(c.http_addr.port(), 8080);
        assert_eq!(c.telnet_max_command_size, 1024);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn bad_value_names_key_and_value() {
        let err =
            Config::from_properties("\n\nkairosdb.telnetserver.port=abc\n", Path::new("k.properties")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("k.properties:3"), "{msg}");
        assert!(
            msg.contains("kairosdb.telnetserver.port") && msg.contains("\"abc\""),
            "{msg}"
        );
    }

    #[test]
    fn unknown_key_is_a_warning() {
        let (c, warnings) =
            Config::from_properties("kairosdb.jetty.port=9090\nkairosdb.nope=1\n", Path::new("k")).unwrap();
        assert_eq!(c.http_addr.port(), 9090);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("kairosdb.nope"));
    }

    #[test]
    fn server_types() {
        let mut c = Config::default();
        assert!(c.server_type.ingest && c.server_type.query && c.server_type.delete);
        c.set("kairosdb.server.type", "ingest, DELETE").unwrap();
        assert!(c.server_type.ingest && !c.server_type.query && c.server_type.delete);
        assert!(c.set("kairosdb.server.type", "READ").is_err());
        assert!(c.set("kairosdb.server.type", "").is_err());
    }

    #[test]
    fn zero_where_positive_needed_is_refused() {
        assert!(Config::default().set("kairosd.writer.batch_points", "0").is_err());
        assert!(Config::default().set("kairosd.wal.sync", "maybe").is_err());
    }

    /// The example file is exactly what `kairosd print-config` writes, so it lists
    /// every key with its default; regenerate it with that command.
    #[test]
    fn example_file_is_current() {
        assert_eq!(
            include_str!("../kairos.properties.example"),
            example(),
            "run: kairosd print-config > kairos.properties.example"
        );
        let (config, warnings) = Config::from_properties(&example(), Path::new("example")).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config.telnet_addr, Config::default().telnet_addr);
        // Backslashes in defaults survive the trip through the properties syntax.
        assert_eq!(config.carbon_host_tags, HostTagConfig::default());
    }

    #[test]
    fn carbon_defaults_and_kairosdb_names() {
        let c = Config::default();
        assert_eq!(c.carbon_text_addr.port(), 2003);
        assert_eq!(c.carbon_pickle_addr.port(), 2004);
        assert_eq!(c.carbon_pickle_max_size, 1 << 20);
        assert_eq!(c.carbon_tag_parser, TagParserKind::Graphite);
        assert_eq!(c.carbon_host_tags, HostTagConfig::default());
        let (c, _) = Config::from_properties(
            "kairosdb.carbon.tag_parser=org.kairosdb.plugin.carbon.HostTagParser\n\
             kairosdb.carbon.templates_tag_parser.templates=\\\n  ^a .metric.host.metric*;\\\n  .* .metric*\n",
            Path::new("k"),
        )
        .unwrap();
        assert_eq!(c.carbon_tag_parser, TagParserKind::Host);
        assert!(c.carbon_templates.contains("^a .metric.host.metric*"));
    }

    #[test]
    fn bad_carbon_settings_name_the_key() {
        for (key, value) in [
            ("kairosdb.carbon.tag_parser", "org.kairosdb.plugin.carbon.Nope"),
            ("kairosdb.carbon.host_tag_parser.host_pattern", "(["),
            ("kairosdb.carbon.templates_tag_parser.templates", "^a .metric bogus"),
            ("kairosd.carbon.udp.enabled", "perhaps"),
        ] {
            let err = Config::from_properties(&format!("{key}={value}\n"), Path::new("k.properties"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains("k.properties:1"), "{err}");
        }
    }
}
