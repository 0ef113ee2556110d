//! A per-connection cache from the raw bytes that name a series on the wire (a telnet
//! line's metric and tags, a Graphite path) to its canonical [`series_key`], so that a
//! series seen before skips UTF-8 validation, tag splitting, sorting, escaping and key
//! encoding.
//!
//! Agents send the same series every interval, so after its first interval nearly every
//! line of a connection repeats one. A hit is verified byte for byte against the stored
//! raw bytes (the hash only picks the slot), so two different lines can never share an
//! entry. Only what the uncached parser accepted is ever stored, and a caller uses an
//! entry only after everything else on the line parsed, so a line that hits yields
//! exactly what the uncached parser yields for it.
//!
//! Memory is bounded by [`CacheLimits`]: entries and bytes per connection, split over
//! two generations. New entries go into the current generation; when it is full, the
//! previous generation is dropped (its buffers reused) and the current one becomes the
//! previous. A hit in the previous generation copies the entry forward. So a working
//! set up to half the limits always hits, a larger one partly, and memory never grows
//! past the limits. Probing is capped, so hostile collisions cost a bounded number of
//! comparisons per line, and the hash is seeded per cache.
//!
//! [`series_key`]: crate::series_key

use std::hash::{BuildHasher, RandomState};

use crate::scan;

/// How much one cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Series remembered at most (0 turns the cache off).
    pub entries: usize,
    /// Bytes of raw names and keys at most (index and bookkeeping included).
    pub bytes: usize,
}

impl CacheLimits {
    /// 8,192 series in 1 MiB: an agent's series a connection, at about 80 bytes each.
    pub const DEFAULT: CacheLimits = CacheLimits {
        entries: 8192,
        bytes: 1 << 20,
    };

    /// No caching: every line takes the full parse.
    pub const OFF: CacheLimits = CacheLimits { entries: 0, bytes: 0 };
}

impl Default for CacheLimits {
    fn default() -> CacheLimits {
        CacheLimits::DEFAULT
    }
}

/// Slots looked at before giving up on a lookup or an insert.
const MAX_PROBE: usize = 16;

/// The index a generation starts with.
const MIN_SLOTS: usize = 64;

/// Bookkeeping bytes charged per entry: the entry itself and its four index slots.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 4 * std::mem::size_of::<u32>();

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    /// Where `raw_a`, `raw_b` and the key sit, back to back, in the arena.
    start: u32,
    a_len: u32,
    b_len: u32,
    key_len: u32,
    ttl: u32,
}

/// One generation: an open-addressing index over entries whose bytes share one arena.
#[derive(Debug, Default)]
struct Generation {
    /// Entry index + 1; 0 is empty. Sized at first use.
    slots: Vec<u32>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
}

impl Generation {
    #[inline(always)]
    fn find(&self, hash: u64, a: &[u8], b: &[u8]) -> Option<&Entry> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        for _ in 0..MAX_PROBE {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            let e = &self.entries[slot as usize - 1];
            if e.hash == hash && e.a_len as usize == a.len() && e.b_len as usize == b.len() {
                let start = e.start as usize;
                let (raw_a, rest) = self.arena[start..].split_at(a.len());
                if scan::eq_bytes(raw_a, a) && scan::eq_bytes(&rest[..b.len()], b) {
                    return Some(e);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    #[inline]
    fn key(&self, e: &Entry) -> &[u8] {
        let start = (e.start + e.a_len + e.b_len) as usize;
        &self.arena[start..start + e.key_len as usize]
    }

    /// Whether an entry of `bytes` bytes fits within `limits` (halved: two generations).
    fn has_room(&self, bytes: usize, limits: &Generational) -> bool {
        self.entries.len() < limits.entries
            && self.arena.len() + bytes + (self.entries.len() + 1) * ENTRY_OVERHEAD <= limits.bytes
    }

    /// Adds an entry, unless its probe run is full (then it is simply not cached).
    fn insert(&mut self, limits: &Generational, hash: u64, a: &[u8], b: &[u8], key: &[u8], ttl: u32) {
        // The index grows with the entries (a connection with a few series keeps a small
        // one), staying at most a quarter full so probe runs stay short.
        if self.slots.is_empty() {
            self.slots = vec![0; MIN_SLOTS.min(limits.slots)];
        } else if (self.entries.len() + 1) * 4 > self.slots.len() && self.slots.len() < limits.slots {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        for _ in 0..MAX_PROBE {
            if self.slots[i] == 0 {
                let start = self.arena.len() as u32;
                self.arena.extend_from_slice(a);
                self.arena.extend_from_slice(b);
                self.arena.extend_from_slice(key);
                self.entries.push(Entry {
                    hash,
                    start,
                    a_len: a.len() as u32,
                    b_len: b.len() as u32,
                    key_len: key.len() as u32,
                    ttl,
                });
                self.slots[i] = self.entries.len() as u32;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the index and places every entry again (an entry whose probe run is
    /// full is left out: it only stops being found).
    fn grow(&mut self) {
        self.slots = vec![0; self.slots.len() * 2];
        let mask = self.slots.len() - 1;
        for (n, e) in self.entries.iter().enumerate() {
            let mut i = e.hash as usize & mask;
            for _ in 0..MAX_PROBE {
                if self.slots[i] == 0 {
                    self.slots[i] = n as u32 + 1;
                    break;
                }
                i = (i + 1) & mask;
            }
        }
    }

    fn clear(&mut self) {
        self.slots.fill(0);
        self.entries.clear();
        self.arena.clear();
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4 + self.entries.capacity() * std::mem::size_of::<Entry>() + self.arena.capacity()
    }
}

/// The per-generation share of the limits.
#[derive(Debug, Clone, Copy)]
struct Generational {
    entries: usize,
    bytes: usize,
    /// Index slots at most: a power of two at least four times the entries.
    slots: usize,
}

/// See the module documentation.
#[derive(Debug)]
pub struct SeriesCache {
    current: Generation,
    previous: Generation,
    limits: Generational,
    seed: u64,
    /// An entry being carried forward while its generation is recycled.
    carry: Vec<u8>,
    hits: u64,
    misses: u64,
}

/// What [`SeriesCache::get`] found.
pub enum Lookup<'a> {
    /// The series' canonical key and its time to live (0: the server default).
    Hit { key: &'a [u8], ttl: u32 },
    /// Not cached; pass the token to [`SeriesCache::insert`] once the line is parsed.
    Miss(MissToken),
}

/// The hash of a name that missed, so an insert does not hash it again.
#[derive(Debug, Clone, Copy)]
pub struct MissToken(u64);

impl Default for SeriesCache {
    fn default() -> SeriesCache {
        SeriesCache::new(CacheLimits::DEFAULT)
    }
}

impl SeriesCache {
    pub fn new(limits: CacheLimits) -> SeriesCache {
        let entries = limits.entries / 2;
        let per_gen = Generational {
            entries,
            bytes: limits.bytes / 2,
            // Four slots an entry, as documented and charged (ENTRY_OVERHEAD): at
            // twice the entries a full generation was half full, and a capped probe
            // run overflowed now and then, leaving a series uncached.
            slots: if entries == 0 {
                0
            } else {
                (entries * 4).next_power_of_two()
            },
        };
        SeriesCache {
            current: Generation::default(),
            previous: Generation::default(),
            limits: per_gen,
            seed: RandomState::new().hash_one(0u64) | 1,
            carry: Vec::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// Whether the cache can hold anything at all.
    pub fn enabled(&self) -> bool {
        self.limits.entries > 0
    }

    /// Looks up the series named by `a` followed by `b` (two parts, so a telnet line's
    /// metric and tags need not be contiguous; the split is part of the match).
    #[inline(always)]
    pub fn get(&mut self, a: &[u8], b: &[u8]) -> Lookup<'_> {
        let hash = hash(self.seed, a, b);
        // The common case inline (a series of the current generation); the rest, which
        // carries entries forward or misses, out of line.
        if self.enabled() {
            if let Some(e) = self.current.find(hash, a, b).copied() {
                self.hits += 1;
                return Lookup::Hit {
                    key: self.current.key(&e),
                    ttl: e.ttl,
                };
            }
        }
        self.get_beyond_current(hash, a, b)
    }

    /// [`SeriesCache::get`] for what the current generation does not hold.
    #[inline(never)]
    fn get_beyond_current(&mut self, hash: u64, a: &[u8], b: &[u8]) -> Lookup<'_> {
        if !self.enabled() {
            return Lookup::Miss(MissToken(hash));
        }
        let Some(e) = self.previous.find(hash, a, b).copied() else {
            self.misses += 1;
            return Lookup::Miss(MissToken(hash));
        };
        self.hits += 1;
        // Carry the entry into the current generation, recycling if it is full.
        let bytes = (e.a_len + e.b_len + e.key_len) as usize;
        if !self.current.has_room(bytes, &self.limits) {
            let start = e.start as usize;
            self.carry.clear();
            self.carry.extend_from_slice(&self.previous.arena[start..start + bytes]);
            self.rotate();
            let (a_len, b_len) = (e.a_len as usize, e.b_len as usize);
            let (a, rest) = self.carry.split_at(a_len);
            let (b, key) = rest.split_at(b_len);
            self.current.insert(&self.limits, hash, a, b, key, e.ttl);
        } else {
            let prev = &self.previous;
            let start = e.start as usize;
            let (a, rest) = prev.arena[start..start + bytes].split_at(e.a_len as usize);
            let (b, key) = rest.split_at(e.b_len as usize);
            self.current.insert(&self.limits, hash, a, b, key, e.ttl);
        }
        // The carried entry is the current generation's newest (unless its probe run
        // was full, in which case the previous generation still has it).
        let found = self.current.find(hash, a, b).map(|e| (*e, true));
        let (e, in_current) = found.unwrap_or((e, false));
        let generation = if in_current { &self.current } else { &self.previous };
        Lookup::Hit {
            key: generation.key(&e),
            ttl: e.ttl,
        }
    }

    /// Remembers that `a` + `b` (which missed with `token`) is the series `key` with
    /// time to live `ttl`. Call it only for a name the full parser accepted.
    pub fn insert(&mut self, token: MissToken, a: &[u8], b: &[u8], key: &[u8], ttl: u32) {
        if !self.enabled() {
            return;
        }
        let bytes = a.len() + b.len() + key.len();
        if bytes + ENTRY_OVERHEAD > self.limits.bytes || bytes > u32::MAX as usize {
            return;
        }
        if !self.current.has_room(bytes, &self.limits) {
            self.rotate();
        }
        self.current.insert(&self.limits, token.0, a, b, key, ttl);
    }

    /// Drops the previous generation and makes the current one previous.
    fn rotate(&mut self) {
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
    }

    /// Lookups that found their series, and lookups that did not.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Heap bytes held (at most about [`CacheLimits::bytes`] plus the index).
    pub fn heap_bytes(&self) -> usize {
        self.current.heap_bytes() + self.previous.heap_bytes() + self.carry.capacity()
    }

    /// Series currently remembered.
    pub fn len(&self) -> usize {
        self.current.entries.len() + self.previous.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// The 64×64→128-bit multiply folded to 64 bits: one round of a small, fast,
/// well-mixing hash (names are a few dozen bytes, so the per-byte cost is what counts).
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn read8(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[inline(always)]
fn hash_part(mut h: u64, bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut i = 0;
    // Whole blocks while more than one is left: the last 1 to 16 bytes are the final
    // block below (two overlapping words), so a 32-byte path takes two multiplies.
    while i + 16 < len {
        h = fold(read8(bytes, i) ^ h, read8(bytes, i + 8) ^ K1);
        i += 16;
    }
    let rest = len - i;
    let (x, y) = if rest >= 8 {
        (read8(bytes, i), read8(bytes, len - 8))
    } else if rest >= 4 {
        let lo = u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let hi = u32::from_le_bytes(bytes[len - 4..].try_into().expect("4 bytes"));
        (u64::from(lo), u64::from(hi))
    } else if rest > 0 {
        let v = u64::from(bytes[i]) | u64::from(bytes[i + rest / 2]) << 8 | u64::from(bytes[len - 1]) << 16;
        (v, 0)
    } else {
        (0, 0)
    };
    fold(x ^ h ^ (len as u64), y ^ K2)
}

#[inline]
fn hash(seed: u64, a: &[u8], b: &[u8]) -> u64 {
    let h = hash_part(seed, a);
    if b.is_empty() {
        h
    } else {
        hash_part(h ^ K1, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(cache: &mut SeriesCache, a: &[u8], b: &[u8]) -> Option<(Vec<u8>, u32)> {
        match cache.get(a, b) {
            Lookup::Hit { key, ttl } => Some((key.to_vec(), ttl)),
            Lookup::Miss(_) => None,
        }
    }

    fn put(cache: &mut SeriesCache, a: &[u8], b: &[u8], key: &[u8], ttl: u32) {
        match cache.get(a, b) {
            Lookup::Miss(t) => cache.insert(t, a, b, key, ttl),
            Lookup::Hit { .. } => panic!("already cached"),
        }
    }

    #[test]
    fn hits_only_on_the_exact_bytes_and_split() {
        let mut c = SeriesCache::default();
        put(&mut c, b"cpu", b" host=a", b"key1", 7);
        assert_eq!(hit(&mut c, b"cpu", b" host=a"), Some((b"key1".to_vec(), 7)));
        assert_eq!(hit(&mut c, b"cp", b"u host=a"), None, "same bytes, other split");
        assert_eq!(hit(&mut c, b"cpu", b" host=b"), None);
        assert_eq!(hit(&mut c, b"cpu", b" host=a "), None);
        assert_eq!(c.stats(), (1, 4));
    }

    #[test]
    fn a_connection_with_few_series_keeps_a_small_index() {
        let mut c = SeriesCache::default();
        for i in 0..10u32 {
            put(&mut c, format!("cpu.{i}").as_bytes(), b" host=a", b"some.key", 0);
        }
        assert!(c.heap_bytes() < 8 * 1024, "{}", c.heap_bytes());
        // And it grows, without losing anything, for a connection with many.
        for i in 10..3000u32 {
            put(&mut c, format!("cpu.{i}").as_bytes(), b" host=a", b"some.key", 0);
        }
        let found = (0..3000u32)
            .filter(|i| hit(&mut c, format!("cpu.{i}").as_bytes(), b" host=a").is_some())
            .count();
        assert_eq!(found, 3000);
    }

    #[test]
    fn off_caches_nothing() {
        let mut c = SeriesCache::new(CacheLimits::OFF);
        put(&mut c, b"a", b"", b"k", 0);
        assert_eq!(hit(&mut c, b"a", b""), None);
        assert!(c.is_empty());
    }

    #[test]
    fn stays_within_its_limits_and_keeps_the_recent_series() {
        let limits = CacheLimits {
            entries: 64,
            bytes: 1 << 20,
        };
        let mut c = SeriesCache::new(limits);
        for round in 0..3 {
            for i in 0..1000u32 {
                let name = format!("series.{i}");
                match c.get(name.as_bytes(), b"") {
                    Lookup::Hit { key, .. } => assert_eq!(key, format!("key{i}").as_bytes(), "round {round}"),
                    Lookup::Miss(t) => c.insert(t, name.as_bytes(), b"", format!("key{i}").as_bytes(), 0),
                }
                assert!(c.len() <= 64);
            }
        }
        // The last 32 (the current generation at least) are still there.
        for i in 968..1000 {
            assert!(hit(&mut c, format!("series.{i}").as_bytes(), b"").is_some(), "{i}");
        }

        let small = CacheLimits {
            entries: 1 << 20,
            bytes: 4096,
        };
        let mut c = SeriesCache::new(small);
        for i in 0..10_000u32 {
            let name = format!("a.rather.long.series.name.{i}");
            if let Lookup::Miss(t) = c.get(name.as_bytes(), b"") {
                c.insert(t, name.as_bytes(), b"", &[b'k'; 40], 0);
            }
            let arena = c.current.arena.len() + c.previous.arena.len();
            let overhead = (c.current.entries.len() + c.previous.entries.len()) * ENTRY_OVERHEAD;
            assert!(arena + overhead <= 4096, "{arena} + {overhead}");
        }
        // Too big for a generation: not cached, no harm.
        put(&mut c, &[b'x'; 4000], b"", b"k", 0);
        assert_eq!(hit(&mut c, &[b'x'; 4000], b""), None);
    }

    #[test]
    fn a_working_set_within_half_the_limit_always_hits() {
        let mut c = SeriesCache::new(CacheLimits {
            entries: 200,
            bytes: 1 << 20,
        });
        for round in 0..5 {
            for i in 0..100u32 {
                let name = i.to_string();
                match c.get(name.as_bytes(), b"") {
                    Lookup::Hit { key, .. } => assert_eq!(key, name.as_bytes()),
                    Lookup::Miss(t) => {
                        assert_eq!(round, 0, "{i} missed in round {round}");
                        c.insert(t, name.as_bytes(), b"", name.as_bytes(), 0);
                    }
                }
            }
        }
    }

    #[test]
    fn carrying_forward_into_a_full_generation_keeps_the_entry() {
        let mut c = SeriesCache::new(CacheLimits {
            entries: 4,
            bytes: 1 << 20,
        });
        for n in [b"a", b"b", b"c"] {
            put(&mut c, n, b"", n, 1);
        }
        // Two entries a generation: c rotated {a, b} out to previous; current is {c, d}.
        put(&mut c, b"d", b"", b"d", 1);
        // a is carried forward through a rotation (previous becomes {c, d}), which drops b.
        assert_eq!(hit(&mut c, b"a", b""), Some((b"a".to_vec(), 1)));
        assert_eq!(hit(&mut c, b"b", b""), None);
        assert_eq!(hit(&mut c, b"c", b""), Some((b"c".to_vec(), 1)));
        assert_eq!(hit(&mut c, b"d", b""), Some((b"d".to_vec(), 1)));
        assert!(c.len() <= 4);
    }
}
