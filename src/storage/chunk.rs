//! The chunk codec: how one (series, time bucket) worth of points is stored as a single
//! RocksDB value, and the merge operator body that folds write operands into it.
//!
//! Pure and IO-free so it can be property-tested and benchmarked on its own. Every
//! function is total over arbitrary bytes: a corrupt value yields a [`ChunkError`],
//! never a panic and never an allocation larger than a fixed multiple of the input.
//!
//! # Envelope (schema version 2)
//!
//! Every value of the `points` column family, stored or in flight as a merge operand:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | kind (below) |
//! | 1 | flags: bit 0 = a per-point expiry column comes before the body (see [`super::expiry`]; a chunk with no expiring point keeps it clear and pays nothing); bits 1–7 reserved, must be zero |
//! | … | the body of that kind |
//! | 4 | crc32c (Castagnoli) of every byte before it, little-endian |
//!
//! Kinds: `0x02` points chunk (the body below); `0x03` reserved for a first-write-wins
//! ("ledger") points operand, so an import never overwrites a point already stored;
//! `0x04` reserved for a range-delete tombstone; `0x05` salvage envelope (below).
//! `0x01` was the checksum-less chunk of schema version 1, which this build refuses
//! (the schema check names the version). A reader that meets a kind or flag it does not
//! know reports the value as unreadable ([`ChunkError::UnknownKind`]); the merge
//! operator then keeps it verbatim inside a salvage envelope, so a newer format is
//! never destroyed by an older build.
//!
//! **Salvage envelope** (`0x05`): what the merge operator writes when an input cannot be
//! read (a checksum mismatch, garbage, a kind it does not know), instead of dropping it
//! (which compaction would make permanent) or failing (which would stop every read and
//! compaction of the key): varint length + a points chunk of everything readable, then
//! varint count + (varint length + bytes) for each unreadable input, kept as it was.
//! Readers use the readable points and report the key; the writer then moves the
//! unreadable parts to the `quarantine` column family and puts the readable chunk back.
//!
//! # Points chunk body (kind `0x02`)
//!
//! A few byte-aligned header fields followed by one bit stream. Varints are
//! unsigned LEB128 (at most 10 bytes); "zz" means zigzag (`0,-1,1,-2,…` → `0,1,2,3,…`).
//! All integer arithmetic wraps (two's complement), so any `i64` timestamp or long
//! and any `f64` bit pattern round-trips exactly.
//!
//! | bytes | field | present when |
//! |---|---|---|
//! | varint | `n`, the number of points | always; `n = 0` ends the chunk |
//! | zz varint | first timestamp | `n ≥ 1` |
//! | int header | coder of the `n - 1` timestamp deltas `tsᵢ - tsᵢ₋₁` | `n ≥ 2` |
//! | 1 | value kinds: bits 0–1 = 1 all long, 2 all double, 3 mixed; bits 2–4 = double coding: 0 XOR, `e + 1` decimal with scale `10^e` (e ≤ 6); bits 5–7 zero | always |
//! | ⌈n/8⌉ | type bitmap, bit `i` (LSB first) set when point `i` is a double | mixed |
//! | zz varint | first long | any long |
//! | int header | coder of the deltas between consecutive longs | ≥ 2 longs |
//! | zz varint | first double's scaled integer `m` (value = `m as f64 / 10^e`) | decimal doubles |
//! | 8 | first double's bits, little-endian | XOR doubles |
//! | int header | coder of the deltas between consecutive scaled integers | decimal, ≥ 2 doubles |
//! | rest | bit stream: timestamp deltas, long deltas, then double deltas or XORs; zero padding | |
//!
//! An **int header** is one byte (bits 0–1: number of size classes minus one, 0–2;
//! bit 2: 1 = zigzag, 0 = frame of reference; bits 3–7 zero), then one byte per class
//! holding its payload width in bits (≤ 64, strictly increasing), then, for frame of
//! reference only, the zz varint `base`. Each delta `x` becomes `u = zz(x)` or
//! `u = x - base`; `u` is written as a class prefix then `u` in that class's width.
//! Prefixes: one class, none (fixed width); two classes, `0`/`1`; three classes,
//! `0`/`10`/`11`. The encoder picks the transform and widths per chunk by exact cost
//! from a histogram of bit lengths, so exact 10 s intervals cost 0 bits per point, and a
//! jittery or gappy series still gets a near-optimal code.
//!
//! The bit stream is LSB first: the first bit is bit 0 of the first byte. An XOR double
//! after the first is `0` (same bits as the previous double), `10` then the meaningful
//! bits in the previous window, or `11`, 6 bits of leading zeros, 6 bits of
//! (meaningful length − 1), then the meaningful bits (Gorilla).
//!
//! Timestamps must strictly increase. The encoder pads with zero bytes so a chunk is at
//! least ⌈n/64⌉ bytes long; the decoder rejects a larger `n`, which bounds the memory a
//! corrupt or hostile count can make it allocate. Bits after the stream must be zero.

use std::cell::RefCell;
use std::fmt;

use kairos_protocols::Value;

use super::expiry;

/// First byte of a points chunk.
pub const KIND_POINTS: u8 = 0x02;
/// Reserved: a first-write-wins points operand (imports). Not written yet.
pub const KIND_LEDGER: u8 = 0x03;
/// Reserved: a range-delete tombstone. Not written yet.
pub const KIND_TOMBSTONE: u8 = 0x04;
/// The merge operator's output when some input could not be read.
pub const KIND_SALVAGE: u8 = 0x05;
/// Flag bit: a per-point expiry column (see [`super::expiry`]) precedes the body.
pub const FLAG_EXPIRY: u8 = 0x01;
/// Kind byte + flags byte before the body.
const HEAD: usize = 2;
/// The crc32c trailer.
const TRAILER: usize = 4;

/// The encoder pads so that `n ≤ MAX_POINTS_PER_BYTE × len` always holds; the decoder
/// refuses anything denser, which caps what a forged count can make it allocate.
const MAX_POINTS_PER_BYTE: u64 = 64;

const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// The value is empty or ends before a header field or the bit stream does.
    Truncated,
    /// The first byte names a kind this build cannot read (a newer format, or garbage).
    UnknownKind(u8),
    /// Structurally invalid: a field out of range, timestamps not increasing, or
    /// non-zero bytes after the data.
    Corrupt(&'static str),
    /// The crc32c trailer does not match the bytes.
    Checksum,
    /// Flags this build does not know (a newer format).
    UnknownFlags(u8),
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::Truncated => f.write_str("chunk is truncated"),
            ChunkError::UnknownKind(k) => write!(f, "unknown chunk kind 0x{k:02x}"),
            ChunkError::Corrupt(what) => write!(f, "corrupt chunk: {what}"),
            ChunkError::Checksum => f.write_str("chunk checksum (crc32c) mismatch"),
            ChunkError::UnknownFlags(b) => write!(f, "unknown chunk flags 0x{b:02x}"),
        }
    }
}

impl std::error::Error for ChunkError {}

/// Appends the encoding of `points` to `out`.
///
/// `points` should be sorted by timestamp with unique timestamps. If they are not,
/// a sorted copy is encoded instead, the last occurrence of a timestamp winning: a
/// caller's bug must not produce a chunk that the decoder (which insists on increasing
/// timestamps) would then reject and the merge operator drop.
pub fn encode(points: &[(i64, Value)], out: &mut Vec<u8>) {
    if points.windows(2).all(|w| w[0].0 < w[1].0) {
        encode_sorted(points, out);
    } else {
        let mut sorted = points.to_vec();
        sorted.sort_by_key(|p| p.0); // stable, so equal timestamps keep write order
        let mut unique: Vec<(i64, Value)> = Vec::with_capacity(sorted.len());
        for p in sorted {
            match unique.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => unique.push(p),
            }
        }
        encode_sorted(&unique, out);
    }
}

/// Appends the points of `bytes` to `out`. On error `out` is left as it was, so a
/// caller folding many chunks into one vector never sees half a chunk.
pub fn decode(bytes: &[u8], out: &mut Vec<(i64, Value)>) -> Result<(), ChunkError> {
    let before = out.len();
    let result = decode_into(bytes, out);
    if result.is_err() {
        out.truncate(before);
    }
    result
}

/// The merge operator body: `existing`, then `operands` in write order, folded by
/// timestamp with the later input winning a tie, re-encoded as one chunk into `out`.
///
/// Operands usually only append newer points, so each is decoded onto the end of one
/// buffer and only an operand that reaches back into earlier time costs a merge (of the
/// overlapping tail only). On error `out` is left as it was.
pub fn merge<'a>(
    existing: Option<&'a [u8]>,
    operands: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> Result<(), ChunkError> {
    with_scratch(|acc, tmp| {
        if let Some(bytes) = existing {
            decode(bytes, acc)?;
        }
        for bytes in operands {
            let split = acc.len();
            decode(bytes, acc)?;
            if split > 0 && split < acc.len() && acc[split].0 <= acc[split - 1].0 {
                merge_tail(acc, split, tmp);
            }
        }
        encode_sorted(acc, out);
        Ok(())
    })
}

/// Number of points in `bytes`.
///
/// This fully validates the chunk (it decodes it into a reused per-thread buffer):
/// the merge operator's fallback uses `count(..).is_ok()` to pick the readable operands,
/// and a header-only answer would let a corrupt one through. Decoding runs at hundreds
/// of millions of points per second, so a stats scan is bound by reading, not this.
pub fn count(bytes: &[u8]) -> Result<usize, ChunkError> {
    with_scratch(|acc, _| {
        decode(bytes, acc)?;
        Ok(acc.len())
    })
}

/// The point count and first timestamp of a chunk, from its header alone: a count
/// query's shortcut for chunks that lie wholly inside one of its ranges. Unlike
/// [`count`] it does not validate the rest of the chunk.
pub fn header(bytes: &[u8]) -> Result<(usize, i64), ChunkError> {
    let bytes = points_payload(bytes)?;
    let mut h = Header {
        buf: bytes,
        pos: body_start(bytes)?,
    };
    let n = h.varint()?;
    if n > MAX_POINTS_PER_BYTE * bytes.len() as u64 {
        return Err(ChunkError::Corrupt("point count exceeds what the chunk can hold"));
    }
    if n == 0 {
        return Ok((0, 0));
    }
    Ok((n as usize, h.zz_varint()?))
}

/// Where the body of a points payload (head included) starts: after the head, and
/// after the expiry column when the flag says there is one.
fn body_start(data: &[u8]) -> Result<usize, ChunkError> {
    if data[1] & FLAG_EXPIRY == 0 {
        return Ok(HEAD);
    }
    let (_, rest) = expiry::split_column(&data[HEAD..]).map_err(ChunkError::Corrupt)?;
    Ok(data.len() - rest.len())
}

/// Whether `bytes` is a points chunk carrying an expiry column (from its head alone).
#[inline]
pub fn has_expiry(bytes: &[u8]) -> bool {
    bytes.len() > HEAD && bytes[0] == KIND_POINTS && bytes[1] & FLAG_EXPIRY != 0
}

/// Whether decoding `bytes` may yield points with an expiry (an expiry column, or a
/// salvage envelope whose readable chunk may have one).
#[inline]
fn may_expire(bytes: &[u8]) -> bool {
    has_expiry(bytes) || bytes.first() == Some(&KIND_SALVAGE)
}

/// [`decode`], also appending each point's expiry (ms, 0 = never) to `expiry`. On error
/// both are left as they were.
pub fn decode_expiring(bytes: &[u8], out: &mut Vec<(i64, Value)>, expiry: &mut Vec<i64>) -> Result<(), ChunkError> {
    let before = out.len();
    let expiry_before = expiry.len();
    decode(bytes, out)?;
    let n = out.len() - before;
    if !may_expire(bytes) {
        expiry.resize(expiry.len() + n, 0);
        return Ok(());
    }
    let data = points_payload(bytes)?;
    if data[1] & FLAG_EXPIRY == 0 {
        expiry.resize(expiry.len() + n, 0);
        return Ok(());
    }
    let (col, _) = expiry::split_column(&data[HEAD..]).map_err(ChunkError::Corrupt)?;
    expiry::decode_column(col, &out[before..], expiry).map_err(|e| {
        // Found by fuzzing: the column may fail after some expiries were appended.
        out.truncate(before);
        expiry.truncate(expiry_before);
        ChunkError::Corrupt(e)
    })
}

/// [`decode`] without the points hidden at `now` (their expiry has passed). A chunk
/// without an expiry column decodes exactly as [`decode`] does.
#[inline]
pub fn decode_live(bytes: &[u8], now: i64, out: &mut Vec<(i64, Value)>) -> Result<(), ChunkError> {
    if !may_expire(bytes) {
        return decode(bytes, out);
    }
    decode_live_slow(bytes, now, out)
}

#[cold]
fn decode_live_slow(bytes: &[u8], now: i64, out: &mut Vec<(i64, Value)>) -> Result<(), ChunkError> {
    let before = out.len();
    let mut exp = Vec::new();
    decode_expiring(bytes, out, &mut exp)?;
    let mut keep = before;
    for (i, e) in exp.iter().enumerate() {
        if !expiry::expired(*e, now) {
            out[keep] = out[before + i];
            keep += 1;
        }
    }
    out.truncate(keep);
    Ok(())
}

/// The latest expiry among the points of `bytes` (0 if one never expires), or `None`
/// for a chunk without an expiry column (nothing in it expires).
pub fn max_expiry(bytes: &[u8]) -> Result<Option<i64>, ChunkError> {
    if !may_expire(bytes) {
        return Ok(None);
    }
    let (mut pts, mut exp) = (Vec::new(), Vec::new());
    decode_expiring(bytes, &mut pts, &mut exp)?;
    if exp.is_empty() {
        return Ok(Some(i64::MIN));
    }
    if exp.contains(&0) {
        return Ok(Some(0));
    }
    Ok(exp.iter().copied().max())
}

/// Appends the encoding of `points` (sorted, unique timestamps) with one expiry per
/// point. Without an expiring point it is exactly [`encode`]'s output.
pub fn encode_expiring(points: &[(i64, Value)], expiry: &[i64], out: &mut Vec<u8>) {
    if expiry.len() != points.len() || expiry.iter().all(|&e| e == 0) {
        return encode(points, out);
    }
    if !points.windows(2).all(|w| w[0].0 < w[1].0) {
        let mut all: Vec<(i64, Value, i64)> = points.iter().zip(expiry).map(|(p, &e)| (p.0, p.1, e)).collect();
        return encode_triples(&mut all, None, out);
    }
    let start = out.len();
    encode_sorted(points, out);
    out.truncate(out.len() - TRAILER);
    out[start + 1] = FLAG_EXPIRY;
    let mut col = Vec::new();
    expiry::encode_column(points, expiry, &mut col);
    out.splice(start + HEAD..start + HEAD, col);
    seal_from(out, start);
}

/// Sorts `all` by time (stable: the later of equal timestamps wins), drops the points
/// expired at `now` (if given) and encodes the rest.
fn encode_triples(all: &mut [(i64, Value, i64)], now: Option<i64>, out: &mut Vec<u8>) {
    all.sort_by_key(|p| p.0);
    let mut pts: Vec<(i64, Value)> = Vec::with_capacity(all.len());
    let mut exp: Vec<i64> = Vec::with_capacity(all.len());
    for &(ts, v, e) in all.iter() {
        if pts.last().is_some_and(|l| l.0 == ts) {
            pts.pop();
            exp.pop();
        }
        pts.push((ts, v));
        exp.push(e);
    }
    if let Some(now) = now {
        let mut keep = 0;
        for i in 0..pts.len() {
            if !expiry::expired(exp[i], now) {
                pts[keep] = pts[i];
                exp[keep] = exp[i];
                keep += 1;
            }
        }
        pts.truncate(keep);
        exp.truncate(keep);
    }
    encode_expiring(&pts, &exp, out);
}

/// [`merge`] for inputs of which some may carry expiry columns: the later input wins a
/// tie, point and expiry together (a rewrite with another ttl replaces the expiry).
/// With `now`, points expired by then are left out; give it only to a full merge (one
/// that sees every version of the key), since a partial merge that dropped a point
/// would let an older version of it show again.
pub fn merge_expiring(inputs: &[&[u8]], now: Option<i64>, out: &mut Vec<u8>) -> Result<(), ChunkError> {
    if !inputs.iter().any(|b| may_expire(b)) {
        let (first, rest) = inputs.split_first().map_or((None, &[][..]), |(f, r)| (Some(*f), r));
        return merge(first, rest.iter().copied(), out);
    }
    let (mut pts, mut exp) = (Vec::new(), Vec::new());
    for b in inputs {
        decode_expiring(b, &mut pts, &mut exp)?;
    }
    if now.is_some() && !exp.iter().any(|&e| e != 0) {
        // Nothing can have expired: the plain merge is the same and cheaper.
        let (first, rest) = inputs.split_first().map_or((None, &[][..]), |(f, r)| (Some(*f), r));
        return merge(first, rest.iter().copied(), out);
    }
    let mut all: Vec<(i64, Value, i64)> = pts.iter().zip(&exp).map(|(p, &e)| (p.0, p.1, e)).collect();
    encode_triples(&mut all, now, out);
    Ok(())
}

type Points = Vec<(i64, Value)>;

thread_local! {
    /// Merge runs on RocksDB's compaction and read threads for every merged key; reusing
    /// two buffers per thread keeps the common merge allocation-free.
    static SCRATCH: RefCell<(Points, Points)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with two cleared scratch vectors; a huge chunk does not pin its memory in the
/// thread forever.
fn with_scratch<R>(f: impl FnOnce(&mut Points, &mut Points) -> R) -> R {
    const KEEP: usize = 1 << 16;
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut guard) => {
            let (a, b) = &mut *guard;
            a.clear();
            b.clear();
            let r = f(a, b);
            for v in [a, b] {
                v.clear();
                if v.capacity() > KEEP {
                    v.shrink_to(KEEP);
                }
            }
            r
        }
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}

/// Merges the sorted run `acc[split..]` into the sorted run `acc[..split]`, the right run
/// winning equal timestamps. Only the part of the left run at or after the right run's
/// first timestamp is touched.
fn merge_tail(acc: &mut Points, split: usize, tmp: &mut Points) {
    let first_new = acc[split].0;
    let start = acc[..split].partition_point(|p| p.0 < first_new);
    tmp.clear();
    {
        let (left, right) = acc[start..].split_at(split - start);
        let (mut i, mut j) = (0, 0);
        while i < left.len() && j < right.len() {
            let (l, r) = (left[i], right[j]);
            if l.0 < r.0 {
                tmp.push(l);
                i += 1;
            } else {
                if l.0 == r.0 {
                    i += 1;
                }
                tmp.push(r);
                j += 1;
            }
        }
        tmp.extend_from_slice(&left[i..]);
        tmp.extend_from_slice(&right[j..]);
    }
    acc.truncate(start);
    acc.extend_from_slice(tmp);
}

// ---------------------------------------------------------------------------------------
// Small integer helpers.

#[inline(always)]
fn zz(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

#[inline(always)]
fn unzz(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[inline(always)]
fn bitlen(u: u64) -> u32 {
    64 - u.leading_zeros()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> u64 {
    (bitlen(v).max(1) as u64).div_ceil(7)
}

/// Byte-aligned header reader.
struct Header<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Header<'a> {
    fn byte(&mut self) -> Result<u8, ChunkError> {
        let b = *self.buf.get(self.pos).ok_or(ChunkError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        let end = self.pos.checked_add(n).ok_or(ChunkError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(ChunkError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(ChunkError::Corrupt("varint overflows 64 bits"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ChunkError::Corrupt("varint longer than 10 bytes"))
    }

    fn zz_varint(&mut self) -> Result<i64, ChunkError> {
        self.varint().map(unzz)
    }
}

// ---------------------------------------------------------------------------------------
// Bit stream.

/// LSB-first bit writer; whole 64-bit words go to `out` at once.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    /// Appends the low `w` bits of `v` (`w ≤ 64`, `v < 2^w`).
    #[inline(always)]
    fn put(&mut self, v: u64, w: u32) {
        debug_assert!(w <= 64 && (w == 64 || v >> w == 0));
        self.acc |= v << self.n;
        let total = self.n + w;
        if total >= 64 {
            self.out.extend_from_slice(&self.acc.to_le_bytes());
            // The bits of `v` that did not fit; written so that n = 0 needs no branch.
            self.acc = (v >> 1) >> (63 - self.n);
            self.n = total - 64;
        } else {
            self.n = total;
        }
    }

    /// `prefix` (`pl` bits) then `u` (`w` bits), in one shift when they fit a word.
    #[inline(always)]
    fn put_prefixed(&mut self, prefix: u64, pl: u32, u: u64, w: u32) {
        if pl + w <= 64 {
            self.put((u << pl) | prefix, pl + w);
        } else {
            self.put(prefix, pl);
            self.put(u, w);
        }
    }

    fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// LSB-first bit reader that refills with one unaligned 8-byte load (the refill keeps
/// at least 56 bits buffered). Reading past the end yields zero bits and is detected
/// once at [`BitReader::finish`], which keeps the hot loops free of bounds errors.
struct BitReader<'a> {
    buf: &'a [u8],
    /// Next byte to load. May run past `buf.len()` while reading virtual zero padding.
    pos: usize,
    acc: u64,
    n: u32,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        BitReader {
            buf,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.buf.get(self.pos..self.pos + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap());
            // Bits already buffered above `n` are the same stream bits, so OR is harmless.
            self.acc |= word << self.n;
            self.pos += ((63 - self.n) >> 3) as usize;
            self.n |= 56;
        } else {
            self.refill_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn refill_slow(&mut self) {
        while self.n < 56 {
            let b = self.buf.get(self.pos).copied().unwrap_or(0);
            self.acc |= (b as u64) << self.n;
            self.n += 8;
            self.pos += 1;
        }
    }

    /// Drops `k ≤ 56` bits; only valid right after a refill covering them.
    #[inline(always)]
    fn consume(&mut self, k: u32) {
        self.acc >>= k;
        self.n -= k;
    }

    /// Reads `w ≤ 56` bits; only valid right after a refill covering them.
    #[inline(always)]
    fn take(&mut self, w: u32) -> u64 {
        let v = self.acc & ((1u64 << w) - 1);
        self.consume(w);
        v
    }

    /// Reads `w ≤ 64` bits, refilling as needed.
    #[inline(always)]
    fn read(&mut self, w: u32) -> u64 {
        self.refill();
        if w <= 56 {
            self.take(w)
        } else {
            let lo = self.take(32);
            self.refill();
            lo | (self.take(w - 32) << 32)
        }
    }

    fn consumed_bits(&self) -> u64 {
        self.pos as u64 * 8 - self.n as u64
    }

    /// Fails if the stream ran past the data or anything but zero bits follows it.
    fn finish(self) -> Result<(), ChunkError> {
        let used = self.consumed_bits();
        let avail = self.buf.len() as u64 * 8;
        if used > avail {
            return Err(ChunkError::Truncated);
        }
        let (byte, bit) = ((used / 8) as usize, (used % 8) as u32);
        let mut rest = &self.buf[byte..];
        if bit != 0 {
            if rest[0] >> bit != 0 {
                return Err(ChunkError::Corrupt("non-zero bits after the data"));
            }
            rest = &rest[1..];
        }
        if rest.iter().any(|&b| b != 0) {
            return Err(ChunkError::Corrupt("non-zero bytes after the data"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Integer streams (timestamp deltas, long deltas, scaled-decimal deltas).

/// How one stream of deltas is coded; chosen per chunk by [`IntPlan::choose`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct IntPlan {
    zigzag: bool,
    /// Frame-of-reference base (the smallest delta); unused with zigzag.
    base: i64,
    classes: u32,
    widths: [u32; 3],
}

impl IntPlan {
    #[inline(always)]
    fn transform(&self, x: i64) -> u64 {
        if self.zigzag {
            zz(x)
        } else {
            x.wrapping_sub(self.base) as u64
        }
    }

    #[inline(always)]
    fn untransform(&self, u: u64) -> i64 {
        if self.zigzag {
            unzz(u)
        } else {
            (u as i64).wrapping_add(self.base)
        }
    }

    /// Picks, by exact bit cost including header bytes, between zigzag and frame of
    /// reference, each with the best one-, two- or three-class widths for its histogram
    /// of bit lengths. Zigzag wins when rare outliers (a counter reset, a level jump)
    /// would stretch the frame of reference; the frame wins for one-signed data
    /// (counters, timestamp intervals), saving the sign bit, or all bits when constant.
    fn choose(xs: &[i64]) -> IntPlan {
        let m = xs.len() as u64;
        let (min, max) = xs
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let base_cost = varint_len(zz(min)) * 8;
        if min == max {
            // Exact intervals, constant rates: the frame of reference alone says it all.
            return IntPlan {
                zigzag: false,
                base: min,
                classes: 1,
                widths: [0; 3],
            };
        }
        if min >= 0 {
            // Every x - min ≤ x ≤ zz(x): zigzag cannot beat the frame of reference by
            // more than the few bits of its base, so skip its histogram.
            let mut hist = [0u32; 65];
            for &x in xs {
                hist[bitlen(x.wrapping_sub(min) as u64) as usize] += 1;
            }
            let (_, classes, widths) = best_classes(&hist, m);
            return IntPlan {
                zigzag: false,
                base: min,
                classes,
                widths,
            };
        }
        let (mut hz, mut hf) = ([0u32; 65], [0u32; 65]);
        for &x in xs {
            hz[bitlen(zz(x)) as usize] += 1;
            hf[bitlen(x.wrapping_sub(min) as u64) as usize] += 1;
        }
        let (zz_cost, classes, widths) = best_classes(&hz, m);
        let (for_cost, for_classes, for_widths) = best_classes(&hf, m);
        if for_cost + base_cost < zz_cost {
            IntPlan {
                zigzag: false,
                base: min,
                classes: for_classes,
                widths: for_widths,
            }
        } else {
            IntPlan {
                zigzag: true,
                base: 0,
                classes,
                widths,
            }
        }
    }

    fn write_header(&self, out: &mut Vec<u8>) {
        out.push((self.classes - 1) as u8 | (self.zigzag as u8) << 2);
        for &w in &self.widths[..self.classes as usize] {
            out.push(w as u8);
        }
        if !self.zigzag {
            put_varint(out, zz(self.base));
        }
    }

    fn read_header(h: &mut Header) -> Result<IntPlan, ChunkError> {
        let b = h.byte()?;
        let classes = (b & 3) as u32 + 1;
        if classes > 3 || b >> 3 != 0 {
            return Err(ChunkError::Corrupt("bad integer coder byte"));
        }
        let zigzag = b & 4 != 0;
        let mut widths = [0u32; 3];
        for i in 0..classes as usize {
            widths[i] = h.byte()? as u32;
            if widths[i] > 64 || (i > 0 && widths[i] <= widths[i - 1]) {
                return Err(ChunkError::Corrupt("bad integer coder widths"));
            }
        }
        let base = if zigzag { 0 } else { h.zz_varint()? };
        Ok(IntPlan {
            zigzag,
            base,
            classes,
            widths,
        })
    }

    fn write(&self, w: &mut BitWriter, xs: &[i64]) {
        let [w0, w1, w2] = self.widths;
        let xs = xs.iter().copied();
        match self.classes {
            1 if w0 == 0 => {}
            1 => xs.for_each(|x| w.put(self.transform(x), w0)),
            2 => xs.for_each(|x| {
                let u = self.transform(x);
                if bitlen(u) <= w0 {
                    w.put(u << 1, w0 + 1);
                } else {
                    w.put_prefixed(1, 1, u, w1);
                }
            }),
            _ => xs.for_each(|x| {
                let u = self.transform(x);
                let l = bitlen(u);
                if l <= w0 {
                    w.put(u << 1, w0 + 1);
                } else if l <= w1 {
                    w.put_prefixed(0b01, 2, u, w1);
                } else {
                    w.put_prefixed(0b11, 2, u, w2);
                }
            }),
        }
    }

    /// Decodes `count` deltas into `sink`. The prefix of every class is decoded by a
    /// 4-entry table indexed by the next two bits, so all modes share one branch-free
    /// loop; fixed widths additionally take several values per refill.
    #[inline(always)]
    fn read(&self, r: &mut BitReader, count: usize, mut sink: impl FnMut(i64)) {
        let [w0, w1, w2] = self.widths;
        if self.classes == 1 {
            if w0 == 0 {
                let x = self.untransform(0);
                (0..count).for_each(|_| sink(x));
            } else if w0 <= 56 {
                let per = (56 / w0) as usize;
                let mut left = count;
                while left > 0 {
                    let k = left.min(per);
                    r.refill();
                    for _ in 0..k {
                        sink(self.untransform(r.take(w0)));
                    }
                    left -= k;
                }
            } else {
                (0..count).for_each(|_| sink(self.untransform(r.read(w0))));
            }
            return;
        }
        let table: [(u32, u32); 4] = if self.classes == 2 {
            [(1, w0), (1, w1), (1, w0), (1, w1)]
        } else {
            [(1, w0), (2, w1), (1, w0), (2, w2)]
        };
        if table.iter().all(|&(pl, w)| pl + w <= 56) {
            let table = table.map(|(pl, w)| (pl, pl + w, (1u64 << w) - 1));
            for _ in 0..count {
                r.refill();
                let (pl, total, mask) = table[(r.acc & 3) as usize];
                let u = (r.acc >> pl) & mask;
                r.consume(total);
                sink(self.untransform(u));
            }
        } else {
            for _ in 0..count {
                r.refill();
                let (pl, w) = table[(r.acc & 3) as usize];
                r.consume(pl);
                sink(self.untransform(r.read(w)));
            }
        }
    }
}

/// Best (cost in bits, classes, widths) for values with bit-length histogram `hist`.
/// Optimal widths are always lengths that occur, so only those are tried.
fn best_classes(hist: &[u32; 65], m: u64) -> (u64, u32, [u32; 3]) {
    let mut lens = [0u64; 65];
    let mut cum = [0u64; 65];
    let mut k = 0;
    let mut c = 0u64;
    for (len, &cnt) in hist.iter().enumerate() {
        if cnt != 0 {
            c += cnt as u64;
            lens[k] = len as u64;
            cum[k] = c;
            k += 1;
        }
    }
    if k == 0 {
        return (8, 1, [0; 3]);
    }
    let wmax = lens[k - 1];
    let mut best = (m * wmax + 8, 1, [wmax as u32, 0, 0]);
    for i in 0..k - 1 {
        let (w0, c0) = (lens[i], cum[i]);
        let cost = m + c0 * w0 + (m - c0) * wmax + 16;
        if cost < best.0 {
            best = (cost, 2, [w0 as u32, wmax as u32, 0]);
        }
        for j in i + 1..k - 1 {
            let (w1, c1) = (lens[j], cum[j]);
            let cost = 2 * m - c0 + c0 * w0 + (c1 - c0) * w1 + (m - c1) * wmax + 24;
            if cost < best.0 {
                best = (cost, 3, [w0 as u32, w1 as u32, wmax as u32]);
            }
        }
    }
    best
}

// ---------------------------------------------------------------------------------------
// Doubles.

/// `v` as `m / 10^e` if that division gives back exactly `v`'s bits. Division (not a
/// multiplication by 0.01) is what makes this hit for every value parsed from a decimal
/// string with at most `e` decimals: both are the correctly rounded `m / 10^e`.
#[inline(always)]
fn scaled(v: f64, e: usize) -> Option<i64> {
    let m = round_to_i64(v * POW10[e]);
    ((m as f64 / POW10[e]).to_bits() == v.to_bits()).then_some(m)
}

/// Nearest integer, saturating. Not `f64::round`, which is a libm call on baseline
/// x86-64 and dominated encoding; being off by one near .5 is harmless because every
/// use goes through the exactness check in [`scaled`].
#[inline(always)]
fn round_to_i64(x: f64) -> i64 {
    const EXACT: f64 = (1u64 << 52) as f64;
    if x.abs() < EXACT {
        (x + 0.5f64.copysign(x)) as i64
    } else {
        x as i64
    }
}

/// Finds the smallest decimal scale `e ≤ 6` at which every double round-trips and
/// appends the deltas of the scaled integers after the first to `deltas`; returns `e`
/// and the first scaled integer, or `None` (and `deltas` as it was) if no scale fits.
fn decimal_deltas<I: Iterator<Item = f64> + Clone>(doubles: I, deltas: &mut Vec<i64>) -> Option<(usize, i64)> {
    let start = deltas.len();
    let mut e = 0;
    'restart: loop {
        deltas.truncate(start);
        let mut it = doubles.clone();
        let first = it.next()?;
        let Some(m0) = scaled(first, e) else {
            e = (e + 1..=6).find(|&e| scaled(first, e).is_some())?;
            continue 'restart;
        };
        let mut prev = m0;
        for v in it {
            match scaled(v, e) {
                Some(m) => {
                    deltas.push(m.wrapping_sub(prev));
                    prev = m;
                }
                None => {
                    // A larger scale does not always keep earlier values exact: recheck all.
                    match (e + 1..=6).find(|&e| scaled(v, e).is_some()) {
                        Some(larger) => {
                            e = larger;
                            continue 'restart;
                        }
                        None => {
                            deltas.truncate(start);
                            return None;
                        }
                    }
                }
            }
        }
        return Some((e, m0));
    }
}

fn write_xor<I: Iterator<Item = u64>>(w: &mut BitWriter, mut bits: I) {
    let Some(mut prev) = bits.next() else { return };
    let mut window: Option<(u32, u32)> = None;
    for b in bits {
        let x = b ^ prev;
        prev = b;
        if x == 0 {
            w.put(0, 1);
            continue;
        }
        let (lz, tz) = (x.leading_zeros(), x.trailing_zeros());
        match window {
            Some((wl, wt)) if lz >= wl && tz >= wt => w.put_prefixed(0b01, 2, x >> wt, 64 - wl - wt),
            _ => {
                let len = 64 - lz - tz;
                w.put(0b11 | (lz as u64) << 2 | ((len - 1) as u64) << 8, 14);
                w.put(x >> tz, len);
                window = Some((lz, tz));
            }
        }
    }
}

fn read_xor(r: &mut BitReader, first: u64, count: usize, mut sink: impl FnMut(u64)) -> Result<(), ChunkError> {
    let mut prev = first;
    // Before any window is set, a reuse reads a full 64-bit XOR: odd, but harmless.
    let (mut lead, mut len) = (0u32, 64u32);
    for _ in 0..count {
        r.refill();
        if r.acc & 1 == 0 {
            r.consume(1);
        } else {
            if r.acc & 2 != 0 {
                lead = ((r.acc >> 2) & 63) as u32;
                len = ((r.acc >> 8) & 63) as u32 + 1;
                r.consume(14);
                if lead + len > 64 {
                    return Err(ChunkError::Corrupt("XOR window beyond 64 bits"));
                }
            } else {
                r.consume(2);
            }
            prev ^= r.read(len) << (64 - lead - len);
        }
        sink(prev);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Chunk level.

const KINDS_LONG: u8 = 1;
const KINDS_DOUBLE: u8 = 2;
const KINDS_MIXED: u8 = 3;

#[inline(always)]
fn as_long(v: &Value) -> Option<i64> {
    match *v {
        Value::Long(l) => Some(l),
        Value::Double(_) => None,
    }
}

#[inline(always)]
fn as_double(v: &Value) -> Option<f64> {
    match *v {
        Value::Double(d) => Some(d),
        Value::Long(_) => None,
    }
}

thread_local! {
    /// The encoder's delta buffer: materialising each stream's deltas once lets the
    /// planning passes and the writer run over a plain slice.
    static DELTAS: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

fn encode_sorted(points: &[(i64, Value)], out: &mut Vec<u8>) {
    DELTAS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut deltas) => {
            deltas.clear();
            encode_with(points, out, &mut deltas);
            if deltas.capacity() > 1 << 18 {
                *deltas = Vec::new();
            }
        }
        Err(_) => encode_with(points, out, &mut Vec::new()),
    })
}

fn encode_with(points: &[(i64, Value)], out: &mut Vec<u8>, deltas: &mut Vec<i64>) {
    let start = out.len();
    encode_body(points, out, deltas, start);
    seal_from(out, start);
}

/// Appends the crc32c of `out[start..]` (the trailer every value ends with).
fn seal_from(out: &mut Vec<u8>, start: usize) {
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Appends the checksum trailer to `bytes` (tests and fuzzers build chunks by hand).
pub fn seal(bytes: &mut Vec<u8>) {
    seal_from(bytes, 0);
}

/// Checks the trailer and the kind and flags bytes; returns the value without its
/// trailer (head included, so offsets match the encoder's).
fn payload(bytes: &[u8]) -> Result<(u8, &[u8]), ChunkError> {
    if bytes.len() < HEAD + TRAILER {
        return match bytes.first() {
            Some(&k) if !matches!(k, KIND_POINTS | KIND_SALVAGE) => Err(ChunkError::UnknownKind(k)),
            _ => Err(ChunkError::Truncated),
        };
    }
    let (data, crc) = bytes.split_at(bytes.len() - TRAILER);
    if crc32c::crc32c(data).to_le_bytes() != crc {
        return Err(ChunkError::Checksum);
    }
    let kind = data[0];
    if !matches!(kind, KIND_POINTS | KIND_SALVAGE) {
        return Err(ChunkError::UnknownKind(kind));
    }
    if data[1] != 0 && !(kind == KIND_POINTS && data[1] == FLAG_EXPIRY) {
        return Err(ChunkError::UnknownFlags(data[1]));
    }
    Ok((kind, data))
}

/// [`payload`] of a points chunk (a salvage envelope's readable part for one).
fn points_payload(bytes: &[u8]) -> Result<&[u8], ChunkError> {
    match payload(bytes)? {
        (KIND_POINTS, data) => Ok(data),
        (_, data) => {
            let (good, _) = salvage_parts(data)?;
            points_payload(good)
        }
    }
}

/// The readable chunk and the unreadable inputs a salvage envelope holds.
fn salvage_parts(data: &[u8]) -> Result<(&[u8], Vec<&[u8]>), ChunkError> {
    let mut h = Header { buf: data, pos: HEAD };
    let len = usize::try_from(h.varint()?).map_err(|_| ChunkError::Truncated)?;
    let good = h.bytes(len)?;
    let count = h.varint()?;
    if count > data.len() as u64 {
        return Err(ChunkError::Corrupt("salvage count exceeds the envelope"));
    }
    let mut bad = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = usize::try_from(h.varint()?).map_err(|_| ChunkError::Truncated)?;
        bad.push(h.bytes(len)?);
    }
    if h.pos != data.len() {
        return Err(ChunkError::Corrupt("bytes after the salvaged parts"));
    }
    Ok((good, bad))
}

/// A salvage envelope: `good` (a points chunk) and the unreadable `bad` inputs.
pub fn encode_salvage(good: &[u8], bad: &[&[u8]], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[KIND_SALVAGE, 0]);
    put_varint(out, good.len() as u64);
    out.extend_from_slice(good);
    put_varint(out, bad.len() as u64);
    for b in bad {
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    seal_from(out, start);
}

/// If `bytes` is a readable salvage envelope: its points chunk and unreadable parts.
pub fn salvaged(bytes: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    match payload(bytes) {
        Ok((KIND_SALVAGE, data)) => salvage_parts(data).ok(),
        _ => None,
    }
}

fn encode_body(points: &[(i64, Value)], out: &mut Vec<u8>, deltas: &mut Vec<i64>, start: usize) {
    let n = points.len();
    out.reserve(n * 2 + 32);
    out.push(KIND_POINTS);
    out.push(0);
    put_varint(out, n as u64);
    let Some(&(ts0, _)) = points.first() else { return };
    put_varint(out, zz(ts0));

    deltas.extend(points.windows(2).map(|w| w[1].0.wrapping_sub(w[0].0)));
    let ts_end = deltas.len();
    let ts_plan = (n >= 2).then(|| IntPlan::choose(deltas));
    if let Some(plan) = &ts_plan {
        plan.write_header(out);
    }

    let longs = || points.iter().filter_map(|p| as_long(&p.1));
    let doubles = || points.iter().filter_map(|p| as_double(&p.1));
    let nd = points.iter().filter(|p| matches!(p.1, Value::Double(_))).count();
    let nl = n - nd;
    let kinds = match (nl, nd) {
        (_, 0) => KINDS_LONG,
        (0, _) => KINDS_DOUBLE,
        _ => KINDS_MIXED,
    };

    let first_long = longs().next().unwrap_or(0);
    let mut prev = first_long;
    deltas.extend(longs().skip(1).map(|v| {
        let d = v.wrapping_sub(prev);
        prev = v;
        d
    }));
    let long_end = deltas.len();
    let decimal = if nd > 0 {
        decimal_deltas(doubles(), deltas)
    } else {
        None
    };

    out.push(kinds | (decimal.map_or(0, |(e, _)| e as u8 + 1) << 2));
    if kinds == KINDS_MIXED {
        for group in points.chunks(8) {
            let mut b = 0u8;
            for (i, p) in group.iter().enumerate() {
                b |= (matches!(p.1, Value::Double(_)) as u8) << i;
            }
            out.push(b);
        }
    }
    let mut long_plan = None;
    if nl > 0 {
        put_varint(out, zz(first_long));
        if nl >= 2 {
            let plan = IntPlan::choose(&deltas[ts_end..long_end]);
            plan.write_header(out);
            long_plan = Some(plan);
        }
    }
    let mut double_plan = None;
    match decimal {
        Some((_, m0)) => {
            put_varint(out, zz(m0));
            if nd >= 2 {
                let plan = IntPlan::choose(&deltas[long_end..]);
                plan.write_header(out);
                double_plan = Some(plan);
            }
        }
        None if nd > 0 => out.extend_from_slice(&doubles().next().unwrap_or(0.0).to_bits().to_le_bytes()),
        None => {}
    }

    let mut w = BitWriter::new(out);
    if let Some(plan) = &ts_plan {
        plan.write(&mut w, &deltas[..ts_end]);
    }
    if let Some(plan) = &long_plan {
        plan.write(&mut w, &deltas[ts_end..long_end]);
    }
    if let Some(plan) = &double_plan {
        plan.write(&mut w, &deltas[long_end..]);
    } else if decimal.is_none() && nd >= 2 {
        write_xor(&mut w, doubles().map(f64::to_bits));
    }
    w.finish();

    let min_len = (n as u64).div_ceil(MAX_POINTS_PER_BYTE) as usize;
    if out.len() - start < min_len {
        out.resize(start + min_len, 0);
    }
}

fn decode_into(bytes: &[u8], out: &mut Vec<(i64, Value)>) -> Result<(), ChunkError> {
    let bytes = points_payload(bytes)?;
    let mut h = Header {
        buf: bytes,
        pos: body_start(bytes)?,
    };
    let n = h.varint()?;
    if n > MAX_POINTS_PER_BYTE * bytes.len() as u64 {
        return Err(ChunkError::Corrupt("point count exceeds what the chunk can hold"));
    }
    let n = n as usize;
    if n == 0 {
        return BitReader::new(&bytes[h.pos..]).finish();
    }
    let ts0 = h.zz_varint()?;
    let ts_plan = if n >= 2 {
        Some(IntPlan::read_header(&mut h)?)
    } else {
        None
    };

    let vk = h.byte()?;
    let kinds = vk & 3;
    let dcode = (vk >> 2) & 7;
    if kinds == 0 || vk >> 5 != 0 || (kinds == KINDS_LONG && dcode != 0) {
        return Err(ChunkError::Corrupt("bad value kinds byte"));
    }
    let scale = dcode.checked_sub(1).map(usize::from);
    let bitmap = if kinds == KINDS_MIXED {
        Some(h.bytes(n.div_ceil(8))?)
    } else {
        None
    };
    let nd = match (kinds, bitmap) {
        (KINDS_LONG, _) => 0,
        (KINDS_DOUBLE, _) => n,
        (_, Some(bm)) => {
            if !n.is_multiple_of(8) && bm[bm.len() - 1] >> (n % 8) != 0 {
                return Err(ChunkError::Corrupt("bits after the type bitmap"));
            }
            let nd = bm.iter().map(|b| b.count_ones() as usize).sum::<usize>();
            if nd == 0 || nd == n {
                return Err(ChunkError::Corrupt("mixed chunk with one value type"));
            }
            nd
        }
        _ => unreachable!(),
    };
    let nl = n - nd;
    let mut first_long = 0;
    let mut long_plan = None;
    if nl > 0 {
        first_long = h.zz_varint()?;
        if nl >= 2 {
            long_plan = Some(IntPlan::read_header(&mut h)?);
        }
    }
    let mut first_double = 0u64;
    let mut double_plan = None;
    if nd > 0 {
        match scale {
            Some(_) => {
                first_double = h.zz_varint()? as u64;
                if nd >= 2 {
                    double_plan = Some(IntPlan::read_header(&mut h)?);
                }
            }
            None => first_double = u64::from_le_bytes(h.bytes(8)?.try_into().unwrap()),
        }
    }

    let mut r = BitReader::new(&bytes[h.pos..]);
    let base = out.len();
    out.resize(base + n, (ts0, Value::Long(0)));
    let points = &mut out[base..];
    if let Some(plan) = &ts_plan {
        // State moved into the closure stays in registers (see the values below).
        let rest = &mut points[1..];
        let (mut prev, mut i) = (ts0, 0usize);
        plan.read(&mut r, n - 1, move |x| {
            prev = prev.wrapping_add(x);
            if let Some(s) = rest.get_mut(i) {
                s.0 = prev;
            }
            i += 1;
        });
        if !points.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(ChunkError::Corrupt("timestamps not increasing"));
        }
    }
    if let Some(bm) = bitmap {
        for (i, p) in points.iter_mut().enumerate() {
            if bm[i / 8] >> (i % 8) & 1 != 0 {
                p.1 = Value::Double(0.0);
            }
        }
    }

    // One value type (the usual chunk): every slot in order, no bitmap to consult.
    if bitmap.is_none() {
        if nl > 0 {
            points[0].1 = Value::Long(first_long);
            if let Some(plan) = &long_plan {
                let rest = &mut points[1..];
                let (mut v, mut i) = (first_long, 0usize);
                plan.read(&mut r, nl - 1, move |x| {
                    v = v.wrapping_add(x);
                    if let Some(s) = rest.get_mut(i) {
                        s.1 = Value::Long(v);
                    }
                    i += 1;
                });
            }
        } else {
            match scale {
                Some(e) => {
                    let div = POW10[e];
                    let m = first_double as i64;
                    points[0].1 = Value::Double(m as f64 / div);
                    if let Some(plan) = &double_plan {
                        // The running value and slot live in the (moved) closure, so they
                        // stay in registers rather than round-trip through the stack.
                        let rest = &mut points[1..];
                        let (mut m, mut i) = (m, 0usize);
                        plan.read(&mut r, nd - 1, move |x| {
                            m = m.wrapping_add(x);
                            if let Some(s) = rest.get_mut(i) {
                                s.1 = Value::Double(m as f64 / div);
                            }
                            i += 1;
                        });
                    }
                }
                None => {
                    points[0].1 = Value::Double(f64::from_bits(first_double));
                    let mut i = 1;
                    read_xor(&mut r, first_double, nd - 1, |b| {
                        if let Some(s) = points.get_mut(i) {
                            s.1 = Value::Double(f64::from_bits(b));
                        }
                        i += 1;
                    })?;
                }
            }
        }
        return r.finish();
    }
    if nl > 0 {
        let mut slots = points
            .iter_mut()
            .filter(|p| bitmap.is_none() || matches!(p.1, Value::Long(_)));
        let mut v = first_long;
        if let Some(s) = slots.next() {
            s.1 = Value::Long(v);
        }
        if let Some(plan) = &long_plan {
            plan.read(&mut r, nl - 1, |x| {
                v = v.wrapping_add(x);
                if let Some(s) = slots.next() {
                    s.1 = Value::Long(v);
                }
            });
        }
    }
    if nd > 0 {
        let mut slots = points
            .iter_mut()
            .filter(|p| bitmap.is_none() || matches!(p.1, Value::Double(_)));
        match scale {
            Some(e) => {
                let div = POW10[e];
                let mut m = first_double as i64;
                if let Some(s) = slots.next() {
                    s.1 = Value::Double(m as f64 / div);
                }
                if let Some(plan) = &double_plan {
                    plan.read(&mut r, nd - 1, |x| {
                        m = m.wrapping_add(x);
                        if let Some(s) = slots.next() {
                            s.1 = Value::Double(m as f64 / div);
                        }
                    });
                }
            }
            None => {
                if let Some(s) = slots.next() {
                    s.1 = Value::Double(f64::from_bits(first_double));
                }
                read_xor(&mut r, first_double, nd - 1, |b| {
                    if let Some(s) = slots.next() {
                        s.1 = Value::Double(f64::from_bits(b));
                    }
                })?;
            }
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values compared by bits, so -0.0 vs 0.0 and NaN payloads count.
    fn bits(points: &[(i64, Value)]) -> Vec<(i64, bool, u64)> {
        points
            .iter()
            .map(|&(t, v)| match v {
                Value::Long(l) => (t, false, l as u64),
                Value::Double(d) => (t, true, d.to_bits()),
            })
            .collect()
    }

    fn roundtrip(points: &[(i64, Value)]) -> Vec<u8> {
        let mut buf = vec![0xAA]; // encode must append, not overwrite
        encode(points, &mut buf);
        let mut back = vec![(7, Value::Long(7))];
        decode(&buf[1..], &mut back).expect("decodes");
        assert_eq!(bits(&back[1..]), bits(points));
        assert_eq!(count(&buf[1..]), Ok(points.len()));
        if let Some(first) = points.iter().map(|p| p.0).min() {
            assert_eq!(header(&buf[1..]), Ok((points.len(), first)));
        }
        buf.remove(0);
        buf
    }

    fn sorted_unique(mut ts: Vec<i64>) -> Vec<i64> {
        ts.sort_unstable();
        ts.dedup();
        ts
    }

    /// splitmix64: deterministic data without a rand dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The benchmark's shape (same as benches/chunk.rs): 360 points 10 s apart.
    fn gauge_chunk(rng: &mut Rng, start: i64) -> Vec<(i64, Value)> {
        let mut m: i64 = 2000 + rng.below(6000) as i64;
        (0..360)
            .map(|i| {
                m = (m + rng.below(101) as i64 - 50).clamp(2000, 8000);
                (start + i * 10_000, Value::Double(m as f64 / 100.0))
            })
            .collect()
    }

    fn counter_chunk(rng: &mut Rng, start: i64) -> Vec<(i64, Value)> {
        let mut c: i64 = rng.below(1 << 40) as i64;
        (0..360)
            .map(|i| {
                c += rng.below(1000) as i64;
                (start + i * 10_000, Value::Long(c))
            })
            .collect()
    }

    #[test]
    fn bytes_per_point_on_benchmark_shape() {
        let mut rng = Rng(42);
        for (name, make) in [
            ("gauge", gauge_chunk as fn(&mut Rng, i64) -> _),
            ("counter", counter_chunk),
        ] {
            let (mut bytes, mut points) = (0, 0);
            for c in 0..100 {
                let chunk = make(&mut rng, 1_700_000_000_000 + c * 3_600_000);
                bytes += roundtrip(&chunk).len();
                points += chunk.len();
            }
            let bpp = bytes as f64 / points as f64;
            println!("{name}: {bpp:.3} bytes/point");
            assert!(bpp <= 2.0, "{name}: {bpp} bytes/point");
        }
    }

    #[test]
    fn edge_values_round_trip() {
        let specials = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            9.223372036854776e18,
            -9.223372036854776e18,
            1e300,
            0.1,
            23.86,
        ];
        let doubles: Vec<_> = specials
            .iter()
            .enumerate()
            .map(|(i, &d)| (i as i64, Value::Double(d)))
            .collect();
        roundtrip(&doubles);
        let longs: Vec<_> = [i64::MIN, i64::MAX, 0, -1, 1, i64::MIN, i64::MAX]
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as i64 * 1000 - 3000, Value::Long(l)))
            .collect();
        roundtrip(&longs);
        // Extreme timestamps: the single delta wraps past i64::MAX.
        roundtrip(&[
            (i64::MIN, Value::Long(1)),
            (0, Value::Double(-0.0)),
            (i64::MAX, Value::Long(i64::MIN)),
        ]);
        // Each special alone (decimal path for some, XOR for the rest) and beside a decimal.
        for &d in &specials {
            roundtrip(&[(5, Value::Double(d))]);
            roundtrip(&[(5, Value::Double(1.5)), (6, Value::Double(d)), (7, Value::Double(2.25))]);
        }
        roundtrip(&[]);
    }

    #[test]
    fn decimal_path_is_used_for_two_decimal_gauges() {
        // Parsed from text, so each is the double nearest to its decimal; the XOR path
        // would spend several bytes per point on these, the decimal path 0 bits.
        let pts: Vec<_> = (0..100)
            .map(|i| (i * 10_000, Value::Double(format!("20.{i:02}").parse().unwrap())))
            .collect();
        let buf = roundtrip(&pts);
        assert!(buf.len() < 30, "{} bytes", buf.len());
    }

    #[test]
    fn constant_series_is_tiny_but_padded() {
        let pts: Vec<_> = (0..10_000).map(|i| (i * 1000, Value::Long(5))).collect();
        let buf = roundtrip(&pts);
        // Padding, then the 4-byte checksum.
        assert_eq!(buf.len(), 10_000usize.div_ceil(64) + 4);
    }

    #[test]
    fn outliers_stay_cheap() {
        let mut rng = Rng(9);
        // Five missing points (double intervals) and a counter reset to zero.
        let mut ts = 0;
        let mut c: i64 = 1 << 40;
        let pts: Vec<_> = (0..360)
            .map(|i| {
                ts += if i % 70 == 69 { 20_000 } else { 10_000 };
                c = if i == 200 { 0 } else { c + rng.below(1000) as i64 };
                (ts, Value::Long(c))
            })
            .collect();
        let bpp = roundtrip(&pts).len() as f64 / 360.0;
        assert!(bpp < 2.0, "{bpp} bytes/point");
        // Millisecond jitter on the interval and a level jump in a gauge.
        let pts: Vec<_> = (0..360)
            .map(|i| {
                let level = if i < 180 { 2000 } else { 900_000 };
                (
                    i * 10_000 + rng.below(20) as i64,
                    Value::Double((level + rng.below(100) as i64) as f64 / 100.0),
                )
            })
            .collect();
        let bpp = roundtrip(&pts).len() as f64 / 360.0;
        assert!(bpp < 2.0, "{bpp} bytes/point");
    }

    #[test]
    fn unsorted_input_is_sorted_last_wins() {
        let mut buf = Vec::new();
        encode(
            &[
                (3, Value::Long(1)),
                (1, Value::Long(2)),
                (3, Value::Long(3)),
                (2, Value::Double(0.5)),
            ],
            &mut buf,
        );
        let mut out = Vec::new();
        decode(&buf, &mut out).unwrap();
        assert_eq!(
            out,
            vec![(1, Value::Long(2)), (2, Value::Double(0.5)), (3, Value::Long(3))]
        );
    }

    #[test]
    fn unknown_kind_and_empty_are_errors() {
        let mut buf = Vec::new();
        encode(&[(1, Value::Long(1))], &mut buf);
        let mut other = buf[..buf.len() - 4].to_vec();
        other[0] = KIND_LEDGER;
        seal(&mut other);
        assert_eq!(decode(&other, &mut Vec::new()), Err(ChunkError::UnknownKind(3)));
        assert_eq!(count(&other), Err(ChunkError::UnknownKind(3)));
        assert_eq!(
            merge(None, [&other[..]], &mut Vec::new()),
            Err(ChunkError::UnknownKind(3))
        );
        let mut flagged = buf[..buf.len() - 4].to_vec();
        flagged[1] = 0x02;
        seal(&mut flagged);
        assert_eq!(decode(&flagged, &mut Vec::new()), Err(ChunkError::UnknownFlags(2)));
        let mut flipped = buf.clone();
        flipped[2] ^= 4;
        assert_eq!(decode(&flipped, &mut Vec::new()), Err(ChunkError::Checksum));
        assert_eq!(decode(&[], &mut Vec::new()), Err(ChunkError::Truncated));
        let mut keep = vec![(0, Value::Long(0))];
        assert!(decode(&buf[..buf.len() - 1], &mut keep).is_err());
        assert_eq!(keep.len(), 1, "a failed decode leaves out unchanged");
    }

    fn chunk(points: &[(i64, Value)]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(points, &mut buf);
        buf
    }

    #[test]
    fn a_salvage_envelope_keeps_both_parts() {
        let good = chunk(&[(1, Value::Long(1)), (2, Value::Double(2.5))]);
        let mut env = Vec::new();
        encode_salvage(&good, &[b"junk", b""], &mut env);
        let (g, bad) = salvaged(&env).unwrap();
        assert_eq!(g, &good[..]);
        assert_eq!(bad, [&b"junk"[..], &b""[..]]);
        let mut pts = Vec::new();
        decode(&env, &mut pts).unwrap();
        assert_eq!(pts.len(), 2, "readers get the readable points");
        assert_eq!(header(&env).unwrap(), (2, 1));
        assert!(salvaged(&good).is_none());
    }

    fn merged(existing: Option<&[(i64, Value)]>, ops: &[&[(i64, Value)]]) -> Vec<(i64, Value)> {
        let e = existing.map(chunk);
        let ops: Vec<Vec<u8>> = ops.iter().map(|o| chunk(o)).collect();
        let mut out = Vec::new();
        merge(e.as_deref(), ops.iter().map(|o| o.as_slice()), &mut out).unwrap();
        let mut pts = Vec::new();
        decode(&out, &mut pts).unwrap();
        pts
    }

    #[test]
    fn merge_later_operand_wins_and_interleaves() {
        use Value::{Double as D, Long as L};
        let e = [(10, L(1)), (20, L(2)), (30, L(3))];
        assert_eq!(
            merged(
                Some(&e),
                &[
                    &[(20, D(2.5)), (25, L(9))],
                    &[(5, L(0)), (30, L(33))],
                    &[],
                    &[(40, L(4))]
                ]
            ),
            vec![(5, L(0)), (10, L(1)), (20, D(2.5)), (25, L(9)), (30, L(33)), (40, L(4))]
        );
        assert_eq!(
            merged(None, &[&[(1, L(1))], &[(1, L(2))], &[(1, L(3))]]),
            vec![(1, L(3))]
        );
        assert_eq!(merged(None, &[]), vec![]);
        assert_eq!(merged(Some(&[]), &[&[]]), vec![]);
        assert_eq!(merged(Some(&e), &[]), e.to_vec());
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Long),
            (-1000i64..1000).prop_map(Value::Long),
            any::<u64>().prop_map(|b| Value::Double(f64::from_bits(b))),
            (any::<i32>(), 0..8i32).prop_map(|(m, e)| Value::Double(m as f64 / 10f64.powi(e))),
            (-100i64..100).prop_map(|m| Value::Double(m as f64 / 100.0)),
        ]
    }

    fn timestamps() -> impl Strategy<Value = Vec<i64>> {
        prop_oneof![
            prop::collection::vec(any::<i64>(), 0..200),
            prop::collection::vec(-1_000_000i64..1_000_000, 0..200),
            (any::<i64>(), 1..100_000i64, prop::collection::vec(0..3i64, 0..400)).prop_map(|(s, step, jit)| {
                jit.iter()
                    .enumerate()
                    .map(|(i, j)| s.wrapping_add((i as i64).wrapping_mul(step) + j))
                    .collect()
            }),
        ]
        .prop_map(sorted_unique)
    }

    /// Points with one value-type regime per chunk most of the time (the realistic case
    /// exercises the all-long / all-double / decimal paths), mixed otherwise.
    fn points() -> impl Strategy<Value = Vec<(i64, Value)>> {
        (timestamps(), 0..4u8).prop_flat_map(|(ts, regime)| {
            let n = ts.len();
            let vals = match regime {
                0 => prop::collection::vec(value(), n).boxed(),
                1 => prop::collection::vec(any::<i64>().prop_map(Value::Long), n).boxed(),
                2 => prop::collection::vec((-5000i64..5000).prop_map(|m| Value::Double(m as f64 / 100.0)), n).boxed(),
                _ => prop::collection::vec(any::<u64>().prop_map(|b| Value::Double(f64::from_bits(b))), n).boxed(),
            };
            vals.prop_map(move |v| ts.iter().copied().zip(v).collect::<Vec<_>>())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn prop_round_trip(pts in points()) {
            roundtrip(&pts);
        }

        #[test]
        fn prop_merge_matches_model(
            existing in prop::option::of(points()),
            ops in prop::collection::vec(points(), 0..6),
        ) {
            let mut model = std::collections::BTreeMap::new();
            for p in existing.iter().chain(&ops).flatten() {
                model.insert(p.0, p.1);
            }
            let model: Vec<_> = model.into_iter().collect();
            let ops_ref: Vec<&[(i64, Value)]> = ops.iter().map(|o| o.as_slice()).collect();
            prop_assert_eq!(bits(&merged(existing.as_deref(), &ops_ref)), bits(&model));
        }

        #[test]
        fn prop_garbage_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..300), kind in any::<bool>()) {
            if kind && bytes.len() >= 2 {
                bytes[0] = KIND_POINTS;
                bytes[1] = 0;
                seal(&mut bytes);
            }
            let mut out = Vec::new();
            if decode(&bytes, &mut out).is_ok() {
                prop_assert!(out.len() as u64 <= MAX_POINTS_PER_BYTE * bytes.len() as u64);
                prop_assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
            }
            let _ = count(&bytes);
            let _ = merge(Some(&bytes), [&bytes[..], &bytes[..]], &mut Vec::new());
        }

        #[test]
        fn prop_damaged_chunks_never_panic(pts in points(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let good = chunk(&pts);
            let mut bad = good.clone();
            let i = at.index(bad.len());
            bad[i] ^= byte | 1;
            let _ = decode(&bad, &mut Vec::new());
            let _ = merge(Some(&good), [&bad[..]], &mut Vec::new());
            let cut = &good[..cut.index(good.len())];
            let mut out = Vec::new();
            prop_assert!(decode(cut, &mut out).is_err() || out.len() <= pts.len());
        }
    }
}
