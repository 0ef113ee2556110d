//! Kafka sources (spec `import.md` §6): a source with a `kafka` block is fed by a
//! consumer of its topic, one thread per source, started with the daemon and whenever
//! a source is created, changed, enabled, disabled or removed ([`KafkaSources::sync`]).
//!
//! Exactly once into storage: each batch's points and each partition's next offset go
//! to the writer as one request, committed in one RocksDB write ([`offsets`]); a
//! restart resumes at the stored offsets. Bad messages are quarantined in that same
//! write, filed under their partition and offset ([`payload`]).

#[cfg(feature = "kafka")]
mod consumer;
pub mod offsets;
pub mod payload;
pub mod status;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kairos_protocols::graphite::PathMapper;
use kairos_protocols::import::Source;
use serde_json::Value as Json;

use crate::ingest::IngestHandle;
use crate::metrics::Metrics;
use crate::storage::{StoreError, StoreHandle};
use status::SourceStatus;

/// What every consumer shares.
pub struct Shared {
    pub store: Arc<StoreHandle>,
    pub ingest: IngestHandle,
    pub metrics: Arc<Metrics>,
    /// How Graphite paths become metrics and tags (the daemon's carbon settings).
    pub graphite: Option<Arc<PathMapper>>,
    /// Consumer threads wait on the writer through it.
    pub runtime: tokio::runtime::Handle,
}

struct Consumer {
    version: u64,
    stop: Arc<AtomicBool>,
    status: Arc<SourceStatus>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Consumer {
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The running consumers, by source name.
pub struct KafkaSources {
    shared: Arc<Shared>,
    consumers: Mutex<HashMap<String, Consumer>>,
}

/// Whether this build can consume `source`'s Kafka block: a 400 message if not.
pub fn check(source: &Source) -> Result<(), String> {
    let Some(k) = &source.kafka else {
        return Ok(());
    };
    if !cfg!(feature = "kafka") {
        return Err("kafka: this kairosd was built without Kafka support (cargo feature \"kafka\")".to_owned());
    }
    let s = &k.security;
    if s.protocol.as_deref().is_some_and(|p| p != "plaintext")
        || s.sasl_mechanism.is_some()
        || s.username.is_some()
        || s.password_file.is_some()
    {
        return Err(
            "kafka.security: TLS and SASL are not available in this build (librdkafka is built without its \
             \"ssl\" and \"sasl\" features); only plaintext brokers can be consumed"
                .to_owned(),
        );
    }
    if k.key_tag.is_some() && k.payload == kairos_protocols::import::kafka::Payload::Kairosdb {
        return Err("kafka.key_tag does not apply to payload kairosdb, whose bodies carry their own tags".to_owned());
    }
    Ok(())
}

impl KafkaSources {
    pub fn new(shared: Shared) -> Arc<KafkaSources> {
        Arc::new(KafkaSources {
            shared: Arc::new(shared),
            consumers: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a consumer for every enabled source with a `kafka` block that has none
    /// (or one of an older version), stops the others. Blocking (it waits for stopped
    /// consumers to finish their batch).
    pub fn sync(&self) -> Result<(), StoreError> {
        let store = self.shared.store.get()?;
        let sources = crate::import::registry::list(&store)?;
        drop(store);
        let wanted: HashMap<String, Source> = sources
            .into_iter()
            .filter(|s| s.enabled && s.kafka.is_some() && check(s).is_ok())
            .map(|s| (s.name.clone(), s))
            .collect();
        let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<String> = consumers
            .iter()
            .filter(|(name, c)| wanted.get(*name).is_none_or(|s| s.version != c.version))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(c) = consumers.remove(&name) {
                tracing::info!(source = %name, "kafka: stopping the consumer");
                c.stop();
            }
        }
        for (name, source) in wanted {
            if consumers.contains_key(&name) {
                continue;
            }
            if let Some(c) = self.spawn(source) {
                consumers.insert(name, c);
            }
        }
        Ok(())
    }

    #[cfg(feature = "kafka")]
    fn spawn(&self, source: Source) -> Option<Consumer> {
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(SourceStatus::default());
        let version = source.version;
        let name = source.name.clone();
        let (shared, s, st) = (Arc::clone(&self.shared), Arc::clone(&stop), Arc::clone(&status));
        let k = source.kafka.as_ref()?;
        tracing::info!(source = %name, topic = %k.topic, brokers = %k.brokers, payload = k.payload.as_str(), "kafka: starting a consumer");
        let thread = std::thread::Builder::new()
            .name(format!("kafka-{name}"))
            .spawn(move || consumer::run(shared, source, s, st));
        match thread {
            Ok(t) => Some(Consumer {
                version,
                stop,
                status,
                thread: Some(t),
            }),
            Err(e) => {
                tracing::error!(source = %name, "kafka: cannot start a consumer thread: {e}");
                None
            }
        }
    }

    #[cfg(not(feature = "kafka"))]
    fn spawn(&self, _source: Source) -> Option<Consumer> {
        None
    }

    /// The consumer's state for `GET /api/v1/sources/{name}`; `None` without one.
    pub fn status(&self, name: &str) -> Option<Json> {
        let consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        consumers.get(name).map(|c| c.status.to_json())
    }

    /// Forgets a removed source's offsets (after its consumer stopped).
    pub fn forget(&self, name: &str) -> Result<(), StoreError> {
        let store = self.shared.store.get()?;
        offsets::clear(&store, name)
    }

    /// Stops every consumer (shutdown: before the writer's queue closes).
    pub fn stop_all(&self) {
        let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        for c in consumers.values() {
            c.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        for (_, c) in consumers.drain() {
            c.stop();
        }
    }
}
