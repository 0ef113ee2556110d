//! A symbolic run of a pickle's opcode stream, before anything is decoded.
//!
//! serde-pickle never runs code, but it trusts its input in ways a network listener
//! cannot: it recurses without limit (a 20 KB frame of nested lists overflows the stack
//! and aborts the process), clones a memoized value on every reference (a few hundred
//! KB of references to a list that references itself doubles memory per level), parses
//! a decimal integer of any length (quadratic), and gives every MARK a fresh 128-slot
//! buffer (two bytes of input, 4 KB of memory). This pass walks the same stack machine
//! without building values and refuses, with the offset of the offending opcode:
//!
//! - every opcode a list of `(path, (timestamp, value))` does not need: globals,
//!   calls, objects, persistent ids, extensions, dicts, sets, buffers, POP and DUP;
//! - nesting (containers and open marks) deeper than [`Limits::max_depth`];
//! - more than [`Limits::max_marks`] MARKs or [`Limits::max_values`] values in a frame;
//! - memo references to anything but a string or number, and more than
//!   [`Limits::max_cloned_bytes`] of strings cloned through references;
//! - integers longer than 64 digits or 16 bytes, lengths beyond the frame, trailing
//!   bytes after STOP, and stack misuse (popping below a mark, appending to a tuple).
//!
//! What passes is a well-formed pickle that serde-pickle decodes in time and memory
//! proportional to the frame.

use super::PickleError;

/// The caps the validator applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Containers inside containers, and MARKs open at once. A carbon frame needs 3.
    pub max_depth: usize,
    /// MARK opcodes in one frame (protocols 0 and 1 use one per tuple).
    pub max_marks: usize,
    /// Values pushed in one frame, memo references included.
    pub max_values: usize,
    /// Bytes of strings copied through memo references in one frame.
    pub max_cloned_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 8,
            max_marks: 8192,
            max_values: 500_000,
            max_cloned_bytes: 8 << 20,
        }
    }
}

/// The highest pickle protocol Python writes today.
const MAX_PROTOCOL: u8 = 5;
/// Digits of a text INT/LONG/FLOAT, bytes of a LONG1/LONG4: far above any timestamp.
const MAX_TEXT_NUMBER: usize = 64;
const MAX_BINARY_LONG: usize = 16;

#[derive(Debug, Clone, Copy)]
enum Sym {
    /// A string or number; `bytes` is what cloning it costs.
    Scalar {
        bytes: usize,
    },
    Container {
        depth: usize,
        list: bool,
    },
}

impl Sym {
    fn depth(self) -> usize {
        match self {
            Sym::Scalar { .. } => 0,
            Sym::Container { depth, .. } => depth,
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for messages.
    at: usize,
    limits: Limits,
    stack: Vec<Sym>,
    marks: Vec<usize>,
    /// By memo id: `None` if never stored, else the bytes of the scalar stored there, or
    /// `None` inside for a container. Python numbers memo entries from 0 up, so a vector
    /// indexed by id holds them; an id beyond the value cap is refused.
    memo: Vec<Option<Option<usize>>>,
    /// Entries stored (MEMOIZE's next id).
    memo_len: usize,
    marks_seen: usize,
    values: usize,
    cloned: usize,
}

/// Checks `data` as one pickle (see the module documentation).
pub fn validate(data: &[u8], limits: Limits) -> Result<(), PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        at: 0,
        limits,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
        memo_len: 0,
        marks_seen: 0,
        values: 0,
        cloned: 0,
    };
    m.run()
}

impl Machine<'_> {
    fn run(&mut self) -> Result<(), PickleError> {
        loop {
            self.at = self.pos;
            let op = *self.data.get(self.pos).ok_or(PickleError::NoStop)?;
            self.pos += 1;
            match op {
                0x80 => {
                    let proto = self.take(1)?[0];
                    if proto > MAX_PROTOCOL {
                        return Err(PickleError::Protocol(proto));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only.
                }
                b'.' => {
                    // STOP
                    if self.pos != self.data.len() {
                        return Err(PickleError::TrailingBytes { offset: self.pos });
                    }
                    if self.stack.len() != 1 || !self.marks.is_empty() {
                        return Err(self.stack_error("STOP needs exactly one value and no open MARK"));
                    }
                    return Ok(());
                }
                b'(' => {
                    self.marks_seen += 1;
                    if self.marks_seen > self.limits.max_marks {
                        return Err(PickleError::TooManyMarks {
                            max: self.limits.max_marks,
                        });
                    }
                    self.marks.push(self.stack.len());
                    self.check_depth(self.marks.len())?;
                }

                // Scalars.
                b'N' | 0x88 | 0x89 => self.push_scalar(0)?,
                b'I' | b'L' | b'F' => {
                    let line = self.line()?;
                    if line.len() > MAX_TEXT_NUMBER {
                        return Err(PickleError::NumberTooLong { offset: self.at });
                    }
                    self.push_scalar(0)?;
                }
                b'J' => self.fixed_scalar(4)?,
                b'K' => self.fixed_scalar(1)?,
                b'M' => self.fixed_scalar(2)?,
                b'G' => self.fixed_scalar(8)?,
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.length(1)? } else { self.length(4)? };
                    if n > MAX_BINARY_LONG {
                        return Err(PickleError::NumberTooLong { offset: self.at });
                    }
                    self.take(n)?;
                    self.push_scalar(0)?;
                }
                b'S' | b'V' => {
                    let n = self.line()?.len();
                    self.push_scalar(n)?;
                }
                b'U' | b'C' => self.sized_scalar(1)?,
                b'T' | b'X' | b'B' => self.sized_scalar(4)?,
                0x8c => self.sized_scalar(1)?,
                0x8d | 0x8e => self.sized_scalar(8)?,

                // Tuples and lists.
                b')' => self.push_container(0, false)?,
                b']' => self.push_container(0, true)?,
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let depth = self.pop_items(n)?;
                    self.push_container(depth, false)?;
                }
                b't' | b'l' => {
                    let depth = self.pop_to_mark()?;
                    self.push_container(depth, op == b'l')?;
                }
                b'a' => {
                    let base = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < base + 2 {
                        return Err(self.stack_error("APPEND needs a list and a value"));
                    }
                    let item = self.stack.pop().expect("checked");
                    self.extend_top_list(item.depth())?;
                }
                b'e' => {
                    let depth = self.pop_to_mark()?;
                    let base = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() <= base {
                        return Err(self.stack_error("APPENDS needs a list below its MARK"));
                    }
                    self.extend_top_list(depth)?;
                }

                // The memo.
                b'p' => {
                    let id = self.text_id()?;
                    self.memoize(id)?;
                }
                b'q' => {
                    let id = self.length(1)? as u64;
                    self.memoize(id)?;
                }
                b'r' => {
                    let id = self.length(4)? as u64;
                    self.memoize(id)?;
                }
                0x94 => {
                    let id = self.memo_len as u64;
                    self.memoize(id)?;
                }
                b'g' => {
                    let id = self.text_id()?;
                    self.memo_ref(id)?;
                }
                b'h' => {
                    let id = self.length(1)? as u64;
                    self.memo_ref(id)?;
                }
                b'j' => {
                    let id = self.length(4)? as u64;
                    self.memo_ref(id)?;
                }

                other => {
                    return Err(PickleError::Opcode {
                        name: opcode_name(other),
                        code: other,
                        offset: self.at,
                    })
                }
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(PickleError::Truncated { offset: self.at })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// A little-endian unsigned length of `width` bytes (1, 4 or 8).
    fn length(&mut self, width: usize) -> Result<usize, PickleError> {
        let bytes = self.take(width)?;
        let mut v: u64 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            v |= u64::from(b) << (8 * i);
        }
        // BINSTRING and LONG4 read theirs as signed: a negative one is as bad as a huge one.
        if width == 4 && v >= 1 << 31 {
            return Err(PickleError::Truncated { offset: self.at });
        }
        usize::try_from(v).map_err(|_| PickleError::Truncated { offset: self.at })
    }

    /// The argument of a text opcode: up to its `\n`.
    fn line(&mut self) -> Result<&[u8], PickleError> {
        let rest = &self.data[self.pos..];
        let nl = memchr::memchr(b'\n', rest).ok_or(PickleError::Truncated { offset: self.at })?;
        self.pos += nl + 1;
        Ok(&rest[..nl])
    }

    fn text_id(&mut self) -> Result<u64, PickleError> {
        let at = self.at;
        let line = self.line()?;
        std::str::from_utf8(line)
            .ok()
            .filter(|s| s.len() <= 19)
            .and_then(|s| s.parse().ok())
            .ok_or(PickleError::Stack {
                offset: at,
                what: "a memo id must be a decimal number",
            })
    }

    fn fixed_scalar(&mut self, n: usize) -> Result<(), PickleError> {
        self.take(n)?;
        self.push_scalar(0)
    }

    fn sized_scalar(&mut self, width: usize) -> Result<(), PickleError> {
        let n = self.length(width)?;
        self.take(n)?;
        self.push_scalar(n)
    }

    fn count_value(&mut self) -> Result<(), PickleError> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(PickleError::TooManyValues {
                max: self.limits.max_values,
            });
        }
        Ok(())
    }

    fn push_scalar(&mut self, bytes: usize) -> Result<(), PickleError> {
        self.count_value()?;
        self.stack.push(Sym::Scalar { bytes });
        Ok(())
    }

    /// Pushes a container around items of nesting `inner`.
    fn push_container(&mut self, inner: usize, list: bool) -> Result<(), PickleError> {
        self.count_value()?;
        let depth = inner + 1;
        self.check_depth(depth + self.marks.len())?;
        self.stack.push(Sym::Container { depth, list });
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), PickleError> {
        if depth > self.limits.max_depth {
            return Err(PickleError::TooDeep {
                max: self.limits.max_depth,
                offset: self.at,
            });
        }
        Ok(())
    }

    /// Pops `n` items above the innermost mark; returns their deepest nesting.
    fn pop_items(&mut self, n: usize) -> Result<usize, PickleError> {
        let base = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < base + n {
            return Err(self.stack_error("a tuple needs more values than the stack holds"));
        }
        let items = self.stack.split_off(self.stack.len() - n);
        Ok(items.iter().map(|s| s.depth()).max().unwrap_or(0))
    }

    /// Pops everything above the innermost mark, and the mark; returns their deepest nesting.
    fn pop_to_mark(&mut self) -> Result<usize, PickleError> {
        let Some(base) = self.marks.pop() else {
            return Err(self.stack_error("TUPLE, LIST or APPENDS without a MARK"));
        };
        Ok(self.stack.drain(base..).map(|s| s.depth()).max().unwrap_or(0))
    }

    /// Records that the list on top of the stack now holds items of nesting `inner`.
    fn extend_top_list(&mut self, inner: usize) -> Result<(), PickleError> {
        let marks = self.marks.len();
        let at = self.at;
        match self.stack.last_mut() {
            Some(Sym::Container { depth, list: true }) => {
                *depth = (*depth).max(inner + 1);
                let d = *depth;
                if d + marks > self.limits.max_depth {
                    return Err(PickleError::TooDeep {
                        max: self.limits.max_depth,
                        offset: at,
                    });
                }
                Ok(())
            }
            _ => Err(self.stack_error("APPEND or APPENDS onto something that is not a list")),
        }
    }

    fn memoize(&mut self, id: u64) -> Result<(), PickleError> {
        let entry = match self.stack.last() {
            Some(Sym::Scalar { bytes }) => Some(*bytes),
            Some(Sym::Container { .. }) => None,
            None => return Err(self.stack_error("memoizing an empty stack")),
        };
        let index =
            usize::try_from(id)
                .ok()
                .filter(|&i| i < self.limits.max_values)
                .ok_or(PickleError::TooManyValues {
                    max: self.limits.max_values,
                })?;
        if index >= self.memo.len() {
            self.memo.resize(index + 1, None);
        }
        if self.memo[index].replace(entry).is_none() {
            self.memo_len += 1;
        }
        Ok(())
    }

    fn memo_ref(&mut self, id: u64) -> Result<(), PickleError> {
        let entry = usize::try_from(id)
            .ok()
            .and_then(|i| self.memo.get(i).copied().flatten());
        match entry {
            None => Err(PickleError::MemoMissing { id, offset: self.at }),
            Some(None) => Err(PickleError::MemoContainer { id, offset: self.at }),
            Some(Some(bytes)) => {
                self.cloned += bytes;
                if self.cloned > self.limits.max_cloned_bytes {
                    return Err(PickleError::TooMuchCloning {
                        max: self.limits.max_cloned_bytes,
                    });
                }
                self.push_scalar(bytes)
            }
        }
    }

    fn stack_error(&self, what: &'static str) -> PickleError {
        PickleError::Stack { offset: self.at, what }
    }
}

/// The name pickletools gives an opcode, for the messages about refused ones.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        b'b' => "BUILD",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b's' => "SETITEM",
        b'u' => "SETITEMS",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}
