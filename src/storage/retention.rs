//! Retention policies: how long a metric's points stay, by the longest matching metric
//! name prefix, kept in the `retention` column family (key = the prefix as UTF-8,
//! value = the retention in ms, big-endian u64; 0 = forever, which lets a longer prefix
//! exempt part of a shorter one's metrics).
//!
//! Expiry is by point time: with retention `r`, a point is hidden once `ts < now - r`.
//! Queries clamp each metric's start to that cutoff ([`Retention::cutoff_for_metric`]),
//! and the `points` compaction filter drops a whole bucket once its end is before the
//! cutoff. The filter sees only a series id, so the series under any policy are kept
//! in memory with their retention ([`Retention::refresh`], run when a policy changes
//! and before every periodic compaction); with no policy it holds nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::RwLock;

use super::keys::{self, SeriesId};
use super::{Store, StoreError, CF_RETENTION, CF_SERIES};

/// The policies and the series they cover.
#[derive(Default)]
pub struct Retention {
    /// (prefix, ms), sorted by prefix.
    policies: RwLock<Vec<(String, i64)>>,
    /// Series under a policy with a finite retention, with it.
    series: RwLock<HashMap<SeriesId, i64>>,
    /// The store's bucket width (the compaction filter needs it).
    pub(crate) bucket_width: AtomicI64,
}

/// Parses a retention: a whole number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`), or `0`
/// for forever. Returns milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(0);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            "retention must be a whole number followed by a unit (ms, s, m, h, d or w), e.g. 7d, 12h, 30m, or 0 for forever, not {text:?}"
        )
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_ms) {
        Some(0) => Ok(0),
        Some(ms) => Ok(ms),
        None => Err(format!("retention {text:?} is too long")),
    }
}

/// The shortest form of `ms` in the units [`parse_duration`] reads.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

impl Retention {
    /// The retention (ms, 0 = forever) of `metric`: the policy with the longest prefix
    /// of it, if any.
    pub fn policy_for(&self, metric: &str) -> Option<i64> {
        let policies = self.policies.read().unwrap_or_else(|e| e.into_inner());
        policies
            .iter()
            .filter(|(p, _)| metric.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, ms)| *ms)
    }

    /// The time before which `metric`'s points are hidden at `now`, if a policy limits it.
    pub fn cutoff_for_metric(&self, metric: &str, now: i64) -> Option<i64> {
        match self.policy_for(metric)? {
            0 => None,
            ms => Some(now.saturating_sub(ms)),
        }
    }

    /// Whether any policy exists.
    pub fn is_empty(&self) -> bool {
        self.policies.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Every policy, sorted by prefix.
    pub fn list(&self) -> Vec<(String, i64)> {
        self.policies.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The cutoff of series `id` at `now` (compaction filter), if under a policy.
    #[inline]
    pub fn cutoff_for_series(&self, id: SeriesId, now: i64) -> Option<i64> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        if series.is_empty() {
            return None;
        }
        series.get(&id).map(|ms| now.saturating_sub(*ms))
    }

    /// Reads the policies from the store and recomputes the series they cover.
    pub fn load(&self, store: &Store) -> Result<(), StoreError> {
        let mut policies = Vec::new();
        let view = store.view();
        view.scan_prefix(CF_RETENTION, &[], |k, v| {
            if let (Ok(p), Ok(ms)) = (std::str::from_utf8(k), <[u8; 8]>::try_from(v)) {
                policies.push((p.to_string(), u64::from_be_bytes(ms) as i64));
            }
            true
        })?;
        drop(view);
        *self.policies.write().unwrap_or_else(|e| e.into_inner()) = policies;
        self.refresh(store)
    }

    /// Recomputes the series each policy covers (new series appear between refreshes).
    pub fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let mut policies = self.list();
        // Shorter prefixes first, so a longer one's retention overrides theirs.
        policies.sort_by_key(|(p, _)| p.len());
        let mut map = HashMap::new();
        let view = store.view();
        for (prefix, ms) in &policies {
            let mut escaped = Vec::new();
            kairos_protocols::series_key::push_str(&mut escaped, prefix);
            escaped.pop(); // a prefix of metric names: no terminator
            view.scan_prefix(CF_SERIES, &escaped, |_, v| {
                if let Ok(id) = <[u8; 8]>::try_from(v) {
                    let id = u64::from_be_bytes(id);
                    if *ms == 0 {
                        map.remove(&id);
                    } else {
                        map.insert(id, *ms);
                    }
                }
                true
            })?;
        }
        drop(view);
        *self.series.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(())
    }

    /// Whether the compaction filter may drop the chunk of series `id` in `bucket`
    /// because of retention alone (its whole bucket is before the cutoff).
    pub fn bucket_expired(&self, id: SeriesId, bucket: i64, now: i64) -> bool {
        let width = self.bucket_width.load(Relaxed);
        match self.cutoff_for_series(id, now) {
            Some(cutoff) => width > 0 && bucket.saturating_add(width) <= cutoff,
            None => false,
        }
    }
}

impl Store {
    /// The retention policies of this store.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Sets (or replaces) the policy of `prefix`; durable when this returns.
    pub fn set_retention(&self, prefix: &str, ms: i64) -> Result<(), StoreError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.put_cf_opt(
            self.cf(CF_RETENTION),
            prefix.as_bytes(),
            (ms as u64).to_be_bytes(),
            &opts,
        )?;
        self.retention.load(self)
    }

    /// Removes the policy of `prefix`; false if there was none.
    pub fn remove_retention(&self, prefix: &str) -> Result<bool, StoreError> {
        if self.db.get_cf(self.cf(CF_RETENTION), prefix.as_bytes())?.is_none() {
            return Ok(false);
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.delete_cf_opt(self.cf(CF_RETENTION), prefix.as_bytes(), &opts)?;
        self.retention.load(self)?;
        Ok(true)
    }
}

/// The `points` compaction filter: drops a chunk every point of which is hidden at the
/// time of the compaction, by its ttl expiries or its metric's retention. A chunk
/// without an expiry column under no policy is kept without being decoded.
pub(crate) fn filter_chunk(retention: &Retention, key: &[u8], value: &[u8]) -> bool {
    use super::{chunk, expiry};
    // Salvage envelopes hold unreadable parts the writer moves to quarantine: never here.
    if value.first() != Some(&chunk::KIND_POINTS) {
        return false;
    }
    let Some((series, bucket)) = keys::parse_point_key(key) else {
        return false;
    };
    let now = expiry::now_ms();
    if retention.bucket_expired(series, bucket, now) {
        return true;
    }
    if !chunk::has_expiry(value) {
        return matches!(chunk::header(value), Ok((0, _)));
    }
    let cutoff = retention.cutoff_for_series(series, now).unwrap_or(i64::MIN);
    let (mut pts, mut exp) = (Vec::new(), Vec::new());
    if chunk::decode_expiring(value, &mut pts, &mut exp).is_err() {
        return false; // never drop what cannot be read: readers report it
    }
    pts.iter()
        .zip(&exp)
        .all(|(p, &e)| p.0 < cutoff || expiry::expired(e, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration("12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_duration("30m"), Ok(1_800_000));
        assert_eq!(parse_duration("1500ms"), Ok(1500));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("0d"), Ok(0));
        for bad in ["", "7", "d", "7x", "-1d", "1.5h", "7 d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for ms in [0, 1500, 1_000, 60_000, 7 * 86_400_000, 14 * 86_400_000, 90 * 60_000] {
            assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let r = Retention::default();
        *r.policies.write().unwrap() = vec![("sys.".into(), 1000), ("sys.cpu".into(), 0), ("sys.cpu.user".into(), 5)];
        assert_eq!(r.policy_for("sys.mem"), Some(1000));
        assert_eq!(r.policy_for("sys.cpu.idle"), Some(0));
        assert_eq!(r.cutoff_for_metric("sys.cpu.idle", 10_000), None);
        assert_eq!(r.cutoff_for_metric("sys.cpu.user", 10_000), Some(9_995));
        assert_eq!(r.policy_for("app"), None);
    }
}
