//! Stored sources (spec §1): named, versioned mappings, kept in the store's
//! `import_sources` column family as their JSON. Every change stores a new version
//! (the number only grows), and each import records the version it used.

use kairos_protocols::import::Source;

use crate::storage::imports::{ImportBatch, CF_SOURCES};
use crate::storage::{Store, StoreError};

/// Why a change to the sources was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The source is not valid (each problem named): 400.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("source {0:?} already exists; PUT /api/v1/sources/{0} replaces it")]
    Exists(String),
    #[error("source {0:?} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn get(store: &Store, name: &str) -> Result<Option<Source>, StoreError> {
    let Some(json) = store.import_get(CF_SOURCES, name.as_bytes())? else {
        return Ok(None);
    };
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|_| StoreError::Corrupt {
            cf: CF_SOURCES,
            what: "source JSON",
        })
}

/// Every source, by name.
pub fn list(store: &Store) -> Result<Vec<Source>, StoreError> {
    let mut out = Vec::new();
    let mut bad = false;
    store.import_scan(CF_SOURCES, &[], |_, v| {
        match serde_json::from_slice::<Source>(v) {
            Ok(s) => out.push(s),
            Err(_) => bad = true,
        }
        true
    })?;
    if bad {
        tracing::warn!("a stored source could not be read; it is left out of the list");
    }
    Ok(out)
}

/// Parses `json` as a source and validates it, every problem listed.
pub fn parse(json: &[u8]) -> Result<Source, RegistryError> {
    Source::from_json(json).map_err(|e| RegistryError::Invalid(e.0))
}

/// Stores `source` as a new source (`replace` false) or over an existing one; the
/// version is one past the stored one. Returns what was stored.
pub fn put(store: &Store, mut source: Source, replace: bool) -> Result<Source, RegistryError> {
    source.validate().map_err(|e| RegistryError::Invalid(e.0))?;
    let old = get(store, &source.name)?;
    match (&old, replace) {
        (Some(_), false) => return Err(RegistryError::Exists(source.name)),
        (None, true) => {}
        _ => {}
    }
    source.version = old.map_or(1, |o| o.version + 1);
    write(store, &source)?;
    Ok(source)
}

/// Turns a source on or off (a new version).
pub fn set_enabled(store: &Store, name: &str, enabled: bool) -> Result<Source, RegistryError> {
    let mut source = get(store, name)?.ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
    source.enabled = enabled;
    source.version += 1;
    write(store, &source)?;
    Ok(source)
}

pub fn remove(store: &Store, name: &str) -> Result<(), RegistryError> {
    if get(store, name)?.is_none() {
        return Err(RegistryError::NotFound(name.to_owned()));
    }
    let mut batch = ImportBatch::default();
    batch.delete(store, CF_SOURCES, name.as_bytes());
    store.import_write(batch, true)?;
    Ok(())
}

fn write(store: &Store, source: &Source) -> Result<(), StoreError> {
    let json = serde_json::to_vec(source).expect("a source serializes");
    let mut batch = ImportBatch::default();
    batch.put(store, CF_SOURCES, source.name.as_bytes(), &json);
    store.import_write(batch, true)
}
