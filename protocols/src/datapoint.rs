//! The one datapoint type every protocol decodes into, and its columnar batch form.
//!
//! A [`DataPoint`] is what a caller reasons about; a [`PointBatch`] is how points travel
//! from a listener to the writer. The batch keeps every point's series identity as one
//! canonical byte key inside a shared arena, so a connection that decodes a thousand
//! points makes no per-point heap allocation and the writer can look the key up in its
//! series cache as-is.

use crate::series_key;

/// A sample value. The type is kept per point (a long stays a long in query output),
/// but it is not part of the series' identity (DESIGN.md: `5` then `5.0` at one
/// timestamp leaves one point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Long(i64),
    Double(f64),
}

/// One decoded sample: metric, sorted unique tags, timestamp in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub metric: String,
    /// Sorted by name, names unique.
    pub tags: Vec<(String, String)>,
    /// Milliseconds since the epoch (telnet `put` seconds are already converted).
    pub timestamp: i64,
    pub value: Value,
    /// Time to live in seconds; `None` means the server default.
    pub ttl: Option<u32>,
}

impl DataPoint {
    /// Builds a point, sorting the tags; returns the duplicated tag name if one repeats.
    pub fn new(
        metric: impl Into<String>,
        mut tags: Vec<(String, String)>,
        timestamp: i64,
        value: Value,
    ) -> Result<DataPoint, String> {
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = tags.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(w[0].0.clone());
        }
        Ok(DataPoint {
            metric: metric.into(),
            tags,
            timestamp,
            value,
            ttl: None,
        })
    }
}

/// One point inside a [`PointBatch`]: where its series key sits in the arena, and its sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointRecord {
    pub key_start: u32,
    pub key_len: u32,
    pub timestamp: i64,
    pub value: Value,
    /// 0 means the server default.
    pub ttl: u32,
}

/// A position in a [`PointBatch`], from [`PointBatch::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMark {
    points: usize,
    keys: usize,
}

/// Points on their way to the writer, series keys packed into one arena.
///
/// Consecutive points of the same series share one copy of the key (the common case
/// for REST `datapoints` arrays), so the arena grows by one key per series run.
#[derive(Debug, Default, Clone)]
pub struct PointBatch {
    keys: Vec<u8>,
    points: Vec<PointRecord>,
}

impl PointBatch {
    pub fn new() -> PointBatch {
        PointBatch::default()
    }

    pub fn with_capacity(points: usize, key_bytes: usize) -> PointBatch {
        PointBatch {
            keys: Vec::with_capacity(key_bytes),
            points: Vec::with_capacity(points),
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Heap bytes the batch holds, used or not.
    pub fn capacity_bytes(&self) -> usize {
        self.keys.capacity() + self.points.capacity() * std::mem::size_of::<PointRecord>()
    }

    /// Makes room for `points` more points with `key_bytes` more key bytes.
    pub fn reserve(&mut self, points: usize, key_bytes: usize) {
        self.points.reserve(points);
        self.keys.reserve(key_bytes);
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.points.clear();
    }

    /// Where the batch ends now, for [`PointBatch::truncate`].
    pub fn mark(&self) -> BatchMark {
        BatchMark {
            points: self.points.len(),
            keys: self.keys.len(),
        }
    }

    /// Drops every point appended since `mark` was taken (a decoder that starts a
    /// body again with another reader).
    pub fn truncate(&mut self, mark: BatchMark) {
        self.points.truncate(mark.points);
        self.keys.truncate(mark.keys);
    }

    pub fn records(&self) -> &[PointRecord] {
        &self.points
    }

    /// The canonical series key of `record` (see [`series_key`]).
    #[inline]
    pub fn key(&self, record: &PointRecord) -> &[u8] {
        let start = record.key_start as usize;
        &self.keys[start..start + record.key_len as usize]
    }

    /// Appends a point whose series key the caller already encoded with
    /// [`series_key::encode`] into `key`. The key is copied unless it equals the
    /// previous point's key.
    #[inline]
    pub fn push_encoded(&mut self, key: &[u8], timestamp: i64, value: Value, ttl: u32) {
        let (key_start, key_len) = match self.points.last() {
            Some(last) if crate::scan::eq_bytes(self.key(last), key) => (last.key_start, last.key_len),
            _ => {
                let start = self.keys.len() as u32;
                self.keys.extend_from_slice(key);
                (start, key.len() as u32)
            }
        };
        self.points.push(PointRecord {
            key_start,
            key_len,
            timestamp,
            value,
            ttl,
        });
    }

    /// Appends a point given by parts; `tags` must already be sorted and unique.
    pub fn push_parts<'a>(
        &mut self,
        metric: &str,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
        timestamp: i64,
        value: Value,
        ttl: u32,
    ) {
        let key_start = self.keys.len();
        series_key::encode_into(&mut self.keys, metric, tags);
        let key_len = self.keys.len() - key_start;
        // Share the previous point's key when it is the same series.
        if let Some(last) = self.points.last() {
            let prev = last.key_start as usize..(last.key_start + last.key_len) as usize;
            if last.key_len as usize == key_len && self.keys[prev] == self.keys[key_start..] {
                let (s, l) = (last.key_start, last.key_len);
                self.keys.truncate(key_start);
                self.points.push(PointRecord {
                    key_start: s,
                    key_len: l,
                    timestamp,
                    value,
                    ttl,
                });
                return;
            }
        }
        self.points.push(PointRecord {
            key_start: key_start as u32,
            key_len: key_len as u32,
            timestamp,
            value,
            ttl,
        });
    }

    /// Appends an owned point.
    pub fn push(&mut self, point: &DataPoint) {
        self.push_parts(
            &point.metric,
            point.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            point.timestamp,
            point.value,
            point.ttl.unwrap_or(0),
        );
    }

    /// Moves every point of `other` to the end of this batch.
    pub fn append(&mut self, other: &PointBatch) {
        let base = self.keys.len() as u32;
        self.keys.extend_from_slice(&other.keys);
        self.points.extend(other.points.iter().map(|p| PointRecord {
            key_start: p.key_start + base,
            ..*p
        }));
    }

    /// Decodes the batch back into owned points (tests and tools; not the hot path).
    pub fn to_points(&self) -> Vec<DataPoint> {
        self.points
            .iter()
            .map(|p| {
                let (metric, tags) = series_key::decode(self.key(p)).expect("batch keys are canonical");
                DataPoint {
                    metric,
                    tags,
                    timestamp: p.timestamp,
                    value: p.value,
                    ttl: (p.ttl != 0).then_some(p.ttl),
                }
            })
            .collect()
    }
}

impl From<&[DataPoint]> for PointBatch {
    fn from(points: &[DataPoint]) -> PointBatch {
        let mut batch = PointBatch::with_capacity(points.len(), points.len() * 32);
        for p in points {
            batch.push(p);
        }
        batch
    }
}
