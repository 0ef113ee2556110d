//! Splitting a JSON body into records, fed in chunks: one object per line (NDJSON,
//! KairosDB exports), or the elements of a top-level array (a REST body, a JSON
//! export), which may be pretty-printed over many lines.
//!
//! The array scanner only tracks strings and nesting, leaving the grammar to the
//! per-record parser, so one broken element costs that element. Each record comes with
//! its location; a record longer than the limit is reported instead of buffered.

use super::quarantine::Location;

/// One record and where it began.
pub(crate) struct Record<'a> {
    pub bytes: &'a [u8],
    pub location: Location,
    /// Why the record cannot be parsed at all (too long, cut off by the end of input).
    pub problem: Option<String>,
}

pub(crate) type Sink<'s> = dyn FnMut(Record<'_>) -> Result<(), super::ImportError> + 's;

pub(crate) enum Framer {
    Lines(Lines),
    Values(Values),
}

impl Framer {
    pub(crate) fn lines(max: usize) -> Framer {
        Framer::Lines(Lines {
            carry: Vec::new(),
            offset: 0,
            line: 1,
            skipping: false,
            max,
        })
    }

    pub(crate) fn values(max: usize) -> Framer {
        Framer::Values(Values {
            state: VState::Top,
            depth: 0,
            in_str: false,
            escape: false,
            carry: Vec::new(),
            offset: 0,
            line: 1,
            start: Location::default(),
            element: 0,
            in_array: false,
            too_long: false,
            max,
        })
    }

    pub(crate) fn feed(&mut self, chunk: &[u8], sink: &mut Sink) -> Result<(), super::ImportError> {
        match self {
            Framer::Lines(l) => l.feed(chunk, sink),
            Framer::Values(v) => v.feed(chunk, sink),
        }
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink) -> Result<(), super::ImportError> {
        match self {
            Framer::Lines(l) => l.finish(sink),
            Framer::Values(v) => v.finish(sink),
        }
    }
}

pub(crate) struct Lines {
    carry: Vec<u8>,
    /// Offset and line of the first byte not yet framed (the carry's start).
    offset: u64,
    line: u64,
    skipping: bool,
    max: usize,
}

impl Lines {
    fn emit(&mut self, bytes: &[u8], sink: &mut Sink) -> Result<(), super::ImportError> {
        let location = Location {
            line: Some(self.line),
            offset: Some(self.offset),
            ..Location::default()
        };
        self.offset += bytes.len() as u64;
        self.line += 1;
        if bytes.trim_ascii().is_empty() {
            return Ok(());
        }
        let too_long = bytes.len() > self.max;
        sink(Record {
            bytes: if too_long {
                &bytes[..super::quarantine::RAW_LIMIT.min(bytes.len())]
            } else {
                bytes
            },
            location,
            problem: too_long.then(|| format!("the line is longer than {} bytes", self.max)),
        })
    }

    fn feed(&mut self, chunk: &[u8], sink: &mut Sink) -> Result<(), super::ImportError> {
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &chunk[pos..]) {
            let end = pos + i + 1;
            if self.skipping {
                self.skipping = false;
                self.offset += (end - pos) as u64;
                self.line += 1;
            } else if self.carry.is_empty() {
                self.emit(&chunk[pos..end], sink)?;
            } else {
                let mut carry = std::mem::take(&mut self.carry);
                carry.extend_from_slice(&chunk[pos..end]);
                self.emit(&carry, sink)?;
                carry.clear();
                self.carry = carry;
            }
            pos = end;
        }
        let rest = &chunk[pos..];
        if self.skipping {
            self.offset += rest.len() as u64;
        } else if self.carry.len() + rest.len() > self.max {
            let mut carry = std::mem::take(&mut self.carry);
            carry.extend_from_slice(&rest[..rest.len().min(super::quarantine::RAW_LIMIT)]);
            let location = Location {
                line: Some(self.line),
                offset: Some(self.offset),
                ..Location::default()
            };
            sink(Record {
                bytes: &carry,
                location,
                problem: Some(format!(
                    "the line is longer than {} bytes; it is skipped to its end",
                    self.max
                )),
            })?;
            self.offset += (carry.len() + rest.len().saturating_sub(super::quarantine::RAW_LIMIT)) as u64;
            self.skipping = true;
        } else {
            self.carry.extend_from_slice(rest);
        }
        Ok(())
    }

    fn finish(&mut self, sink: &mut Sink) -> Result<(), super::ImportError> {
        if !self.carry.is_empty() && !self.skipping {
            let carry = std::mem::take(&mut self.carry);
            self.emit(&carry, sink)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VState {
    /// Between top-level values.
    Top,
    /// Inside the top-level array, between elements.
    Between,
    /// Inside an object or array element (or a top-level object).
    Nested,
    /// Inside a scalar element of the top-level array.
    Scalar,
}

pub(crate) struct Values {
    state: VState,
    depth: u32,
    in_str: bool,
    escape: bool,
    /// Bytes of the current element from earlier chunks.
    carry: Vec<u8>,
    /// Offset and line of the next byte to scan.
    offset: u64,
    line: u64,
    start: Location,
    /// Elements of the current top-level array seen so far.
    element: u64,
    in_array: bool,
    too_long: bool,
    max: usize,
}

impl Values {
    fn begin(&mut self) {
        self.element += u64::from(self.in_array);
        self.start = Location {
            line: Some(self.line),
            offset: Some(self.offset),
            element: self.in_array.then_some(self.element),
            ..Location::default()
        };
        self.too_long = false;
    }

    fn emit(&mut self, chunk: &[u8], from: usize, to: usize, sink: &mut Sink) -> Result<(), super::ImportError> {
        let problem = self
            .too_long
            .then(|| format!("the element is longer than {} bytes", self.max));
        let location = self.start;
        if self.carry.is_empty() {
            sink(Record {
                bytes: &chunk[from..to],
                location,
                problem,
            })?;
        } else {
            let mut carry = std::mem::take(&mut self.carry);
            if !self.too_long {
                carry.extend_from_slice(&chunk[from..to]);
            }
            sink(Record {
                bytes: &carry,
                location,
                problem,
            })?;
            carry.clear();
            self.carry = carry;
        }
        self.too_long = false;
        Ok(())
    }

    fn feed(&mut self, chunk: &[u8], sink: &mut Sink) -> Result<(), super::ImportError> {
        let mut i = 0;
        let mut start = 0; // where the current element began in this chunk
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                VState::Top | VState::Between => {
                    match b {
                        b'\n' => self.line += 1,
                        b' ' | b'\t' | b'\r' => {}
                        // A UTF-8 byte order mark before the first value.
                        0xEF | 0xBB | 0xBF if self.offset < 3 && self.state == VState::Top => {}
                        b',' if self.state == VState::Between => {}
                        b']' if self.state == VState::Between => {
                            self.state = VState::Top;
                            self.in_array = false;
                        }
                        b'[' if self.state == VState::Top => {
                            self.state = VState::Between;
                            self.in_array = true;
                            self.element = 0;
                        }
                        b'{' | b'[' => {
                            self.begin();
                            start = i;
                            self.depth = 1;
                            self.state = VState::Nested;
                        }
                        _ => {
                            self.begin();
                            start = i;
                            self.state = VState::Scalar;
                            self.in_str = b == b'"';
                            self.escape = false;
                        }
                    }
                    self.offset += 1;
                    i += 1;
                }
                VState::Nested if self.escape => {
                    // The byte after a backslash that ended the previous chunk.
                    self.escape = false;
                    self.line += u64::from(b == b'\n');
                    self.offset += 1;
                    i += 1;
                }
                VState::Nested => {
                    // Skip to the next byte that matters.
                    let rest = &chunk[i..];
                    let skip = if self.in_str {
                        memchr::memchr3(b'"', b'\\', b'\n', rest)
                    } else {
                        rest.iter()
                            .position(|&c| matches!(c, b'"' | b'{' | b'}' | b'[' | b']' | b'\n'))
                    };
                    let Some(n) = skip else {
                        self.offset += rest.len() as u64;
                        break;
                    };
                    i += n;
                    self.offset += n as u64;
                    let c = chunk[i];
                    if self.in_str {
                        match c {
                            b'"' => self.in_str = false,
                            b'\\' => {
                                // The escaped byte is skipped right here when it is in this chunk.
                                if i + 1 < chunk.len() {
                                    if chunk[i + 1] == b'\n' {
                                        self.line += 1;
                                    }
                                    i += 1;
                                    self.offset += 1;
                                } else {
                                    self.escape = true;
                                }
                            }
                            _ => {}
                        }
                    } else {
                        match c {
                            b'"' => self.in_str = true,
                            b'{' | b'[' => self.depth += 1,
                            b'}' | b']' => self.depth -= 1,
                            _ => {}
                        }
                    }
                    if c == b'\n' {
                        self.line += 1;
                    }
                    i += 1;
                    self.offset += 1;
                    if self.depth == 0 && !self.in_str {
                        self.emit(chunk, start, i, sink)?;
                        self.state = if self.in_array { VState::Between } else { VState::Top };
                        start = i;
                    }
                }
                VState::Scalar => {
                    let ends = !self.in_str && matches!(b, b',' | b']' | b' ' | b'\t' | b'\r' | b'\n');
                    if ends {
                        self.emit(chunk, start, i, sink)?;
                        self.state = if self.in_array { VState::Between } else { VState::Top };
                        start = i;
                        continue; // the terminator is read in the new state
                    }
                    if self.escape {
                        self.escape = false;
                    } else if self.in_str && b == b'\\' {
                        self.escape = true;
                    } else if b == b'"' {
                        self.in_str = !self.in_str;
                    }
                    self.offset += 1;
                    i += 1;
                }
            }
            if matches!(self.state, VState::Nested | VState::Scalar) && self.carry.len() + (i - start) > self.max {
                self.too_long = true;
            }
        }
        if matches!(self.state, VState::Nested | VState::Scalar)
            && self.carry.len() + (chunk.len() - start.min(chunk.len())) > self.max
        {
            self.too_long = true;
        }
        if matches!(self.state, VState::Nested | VState::Scalar) {
            let room = (super::quarantine::RAW_LIMIT + 1).saturating_sub(self.carry.len());
            let from = start.min(chunk.len());
            let take = (chunk.len() - from).min(if self.too_long { room } else { usize::MAX });
            self.carry.extend_from_slice(&chunk[from..from + take]);
        }
        Ok(())
    }

    fn finish(&mut self, sink: &mut Sink) -> Result<(), super::ImportError> {
        match self.state {
            VState::Scalar => {
                let carry = std::mem::take(&mut self.carry);
                self.emit(&carry, 0, carry.len(), sink)?;
            }
            VState::Nested => {
                let carry = std::mem::take(&mut self.carry);
                sink(Record {
                    bytes: &carry,
                    location: self.start,
                    problem: Some("the input ends inside this JSON value".to_owned()),
                })?;
            }
            VState::Top | VState::Between => {}
        }
        self.state = VState::Top;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(mut f: Framer, input: &[u8], chunk: usize) -> Vec<(String, Location, bool)> {
        let mut got = Vec::new();
        let mut sink = |r: Record| {
            got.push((
                String::from_utf8_lossy(r.bytes).into_owned(),
                r.location,
                r.problem.is_some(),
            ));
            Ok(())
        };
        for c in input.chunks(chunk.max(1)) {
            f.feed(c, &mut sink).unwrap();
        }
        f.finish(&mut sink).unwrap();
        got
    }

    #[test]
    fn array_elements_with_locations() {
        let input = b"[\n {\"a\": \"x]}\\\"\"},\n {\"b\": [1, {\"c\": 2}]}, 5, \"s,t\" ]\n{\"top\":1}";
        for chunk in [1, 2, 3, 7, 1000] {
            let got = frame(Framer::values(1 << 20), input, chunk);
            let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
            assert_eq!(
                texts,
                [
                    "{\"a\": \"x]}\\\"\"}",
                    "{\"b\": [1, {\"c\": 2}]}",
                    "5",
                    "\"s,t\"",
                    "{\"top\":1}"
                ],
                "chunk {chunk}"
            );
            assert_eq!(got[0].1.element, Some(1));
            assert_eq!(got[0].1.line, Some(2));
            assert_eq!(got[0].1.offset, Some(3));
            assert_eq!(got[1].1.element, Some(2));
            assert_eq!(got[1].1.line, Some(3));
            assert_eq!(got[3].1.element, Some(4));
            assert_eq!(got[4].1.element, None);
            assert_eq!(got[4].1.line, Some(4));
        }
    }

    #[test]
    fn unterminated_and_too_long_values() {
        let got = frame(Framer::values(1 << 20), b"[{\"a\":1},{\"b\":", 3);
        assert_eq!(got.len(), 2);
        assert!(got[1].2);
        let got = frame(Framer::values(10), b"[{\"a\":\"0123456789abcdef\"},{\"b\":1}]", 4);
        assert_eq!(got.len(), 2);
        assert!(got[0].2);
        assert_eq!(got[1].0, "{\"b\":1}");
    }

    #[test]
    fn lines_with_locations() {
        let input = b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n{\"c\":3}";
        for chunk in [1, 2, 5, 100] {
            let got = frame(Framer::lines(1 << 20), input, chunk);
            let texts: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
            assert_eq!(texts, ["{\"a\":1}\n", "{\"b\":2}\r\n", "{\"c\":3}"]);
            assert_eq!(got[1].1.line, Some(4));
            assert_eq!(got[1].1.offset, Some(13));
            assert_eq!(got[2].1.line, Some(5));
        }
        let got = frame(Framer::lines(8), b"{\"a\":123456789}\n{\"b\":2}\n", 3);
        assert_eq!(got.len(), 2);
        assert!(got[0].2);
        assert_eq!(got[1].0, "{\"b\":2}\n");
        assert_eq!(got[1].1.line, Some(2));
        assert_eq!(got[1].1.offset, Some(16));
    }
}
