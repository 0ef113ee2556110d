//! KairosDB's metadata service store (`/api/v1/metadata/...`), the keyed tables of
//! StreamSQL: `service → service key → key → value`, in the `metadata` column family.
//!
//! Key layout: the service, the service key and the key, each escaped and terminated as
//! series keys are ([`kairos_protocols::series_key::push_str`]), so byte order is string
//! order, a prefix scan lists one service or one service key, and no name can forge a
//! boundary. The value is the raw bytes the client posted.
//!
//! **Snapshots.** `snapshot(service, version)` copies every entry of `service` to the
//! service `service@version` in one atomic write and records it in the internal
//! service `_snapshots` (clients cannot name a service starting with `_`: KairosDB
//! answers those with 401). A snapshot is read like any service and refuses writes and
//! deletes; the live service stays writable, so a table can be frozen at several
//! versions while it keeps changing.

use kairos_protocols::series_key;
use rocksdb::WriteBatch;

use super::{Store, StoreError, CF_METADATA};

/// The internal service listing snapshots: service key = the snapshot's service name.
const SNAPSHOTS: &str = "_snapshots";

fn key(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        series_key::push_str(&mut out, p);
    }
    out
}

/// A metadata write that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata service {0:?} is an immutable snapshot; write to the live service instead")]
    Immutable(String),
    #[error("snapshot version {version} of metadata service {service:?} already exists")]
    SnapshotExists { service: String, version: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// The distinct names at `depth` (0: service keys of `parts[0]`; 1: keys of
    /// `parts[0]`/`parts[1]`) that start with `starts_with`, sorted.
    pub fn metadata_list(&self, parts: &[&str], starts_with: &str) -> Result<Vec<String>, StoreError> {
        let prefix = key(parts);
        let mut scan = prefix.clone();
        series_key::push_str(&mut scan, starts_with);
        scan.pop(); // a prefix of names: no terminator
        let mut out: Vec<String> = Vec::new();
        let mut bad = false;
        self.view().scan_prefix(CF_METADATA, &scan, |k, _| {
            match series_key::read_str(&k[prefix.len()..]) {
                Ok((name, _)) => {
                    if out.last() != Some(&name) {
                        out.push(name);
                    }
                }
                Err(_) => bad = true,
            }
            true
        })?;
        if bad {
            return Err(StoreError::Corrupt {
                cf: CF_METADATA,
                what: "metadata key",
            });
        }
        Ok(out)
    }

    /// The value of `service`/`service_key`/`key`.
    pub fn metadata_get(&self, service: &str, service_key: &str, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_METADATA), key(&[service, service_key, k]))?)
    }

    fn check_writable(&self, service: &str) -> Result<(), MetadataError> {
        if self.metadata_get(SNAPSHOTS, service, "version")?.is_some() {
            return Err(MetadataError::Immutable(service.to_string()));
        }
        Ok(())
    }

    fn metadata_write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Sets a value; durable when this returns.
    pub fn metadata_put(&self, service: &str, service_key: &str, k: &str, value: &[u8]) -> Result<(), MetadataError> {
        self.check_writable(service)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_METADATA), key(&[service, service_key, k]), value);
        Ok(self.metadata_write(batch)?)
    }

    /// Deletes one key, every key of a service key, or a whole service (by how many
    /// `parts` are given, 1 to 3).
    pub fn metadata_delete(&self, parts: &[&str]) -> Result<(), MetadataError> {
        self.check_writable(parts[0])?;
        let mut batch = WriteBatch::default();
        let cf = self.cf(CF_METADATA);
        let k = key(parts);
        if parts.len() == 3 {
            batch.delete_cf(cf, &k);
        } else if let Some(end) = super::keys::prefix_end(&k) {
            batch.delete_range_cf(cf, &k, &end);
        }
        Ok(self.metadata_write(batch)?)
    }

    /// Freezes a copy of `service` as `service@version` (see the module doc); returns
    /// the snapshot's service name and how many entries it holds.
    pub fn metadata_snapshot(&self, service: &str, version: u64) -> Result<(String, usize), MetadataError> {
        self.check_writable(service)?;
        let name = format!("{service}@{version}");
        if self.metadata_get(SNAPSHOTS, &name, "version")?.is_some() {
            return Err(MetadataError::SnapshotExists {
                service: service.to_string(),
                version,
            });
        }
        let prefix = key(&[service]);
        let target = key(&[&name]);
        let cf = self.cf(CF_METADATA);
        let mut batch = WriteBatch::default();
        let mut n = 0;
        // Anything already under the snapshot's name (written before it was frozen) goes.
        if let Some(end) = super::keys::prefix_end(&target) {
            batch.delete_range_cf(cf, &target, &end);
        }
        self.view().scan_prefix(CF_METADATA, &prefix, |k, v| {
            let mut copy = target.clone();
            copy.extend_from_slice(&k[prefix.len()..]);
            batch.put_cf(cf, copy, v);
            n += 1;
            true
        })?;
        batch.put_cf(cf, key(&[SNAPSHOTS, &name, "version"]), version.to_string());
        self.metadata_write(batch)?;
        Ok((name, n))
    }
}
