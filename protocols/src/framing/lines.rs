//! `\n`-terminated lines, KairosDB style: a line longer than the limit is discarded up
//! to its newline and the stream goes on.
//!
//! Unlike tokio-util's `LinesCodec`, which ends the whole stream on one over-long or
//! non-UTF-8 line, a bad line here costs exactly one line. Lines are handed out as slices
//! of the caller's buffer (no copy, no per-line allocation); UTF-8 is the decoder's
//! business.

use super::{Frame, Framer, FramingError};

#[derive(Debug)]
pub struct LineFramer {
    max_len: usize,
    /// Bytes of an over-long line dropped so far, while waiting for its newline.
    discarding: Option<usize>,
    /// The last byte dropped was a `\r`: if the next read starts with the `\n`, it was
    /// a CRLF's and is not counted, so the length reported does not depend on where
    /// the reads were cut.
    dropped_cr: bool,
}

impl LineFramer {
    /// Lines of at most `max_len` bytes (not counting `\n` or `\r\n`).
    pub fn new(max_len: usize) -> LineFramer {
        LineFramer {
            max_len,
            discarding: None,
            dropped_cr: false,
        }
    }

    /// The longest line this framer passes on.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The length of an over-long line of which `dropped` bytes were dropped and `tail`
    /// is the rest, up to its newline or the end of the stream.
    fn judged(&self, dropped: usize, tail: &[u8]) -> usize {
        if tail.is_empty() {
            dropped - usize::from(self.dropped_cr)
        } else {
            dropped + strip_cr_len(tail)
        }
    }

    fn line<'a>(&self, line: &'a [u8]) -> Frame<'a> {
        let len = strip_cr_len(line);
        if len > self.max_len {
            Frame::TooLong { len }
        } else {
            Frame::Data(line)
        }
    }
}

impl Framer for LineFramer {
    const UNIT: &'static str = "line";

    fn split(&mut self, buf: &[u8], end: bool, mut f: impl FnMut(Frame<'_>)) -> Result<usize, FramingError> {
        let mut pos = 0;
        if let Some(dropped) = self.discarding {
            match memchr::memchr(b'\n', buf) {
                Some(nl) => {
                    f(Frame::TooLong {
                        len: self.judged(dropped, &buf[..nl]),
                    });
                    self.discarding = None;
                    pos = nl + 1;
                }
                None if end => {
                    f(Frame::TooLong {
                        len: self.judged(dropped, buf),
                    });
                    self.discarding = None;
                    return Ok(buf.len());
                }
                None => {
                    if let Some(&last) = buf.last() {
                        self.discarding = Some(dropped + buf.len());
                        self.dropped_cr = last == b'\r';
                    }
                    return Ok(buf.len());
                }
            }
        }
        let base = pos;
        for nl in memchr::memchr_iter(b'\n', &buf[base..]) {
            let end_of_line = base + nl;
            f(self.line(&buf[pos..end_of_line]));
            pos = end_of_line + 1;
        }
        let rest = &buf[pos..];
        if end {
            if !rest.is_empty() {
                f(self.line(rest));
            }
            return Ok(buf.len());
        }
        if rest.len() > self.max_len + 1 {
            // Keep one byte of slack for a `\r` that a following `\n` would make a CRLF.
            self.discarding = Some(rest.len());
            self.dropped_cr = rest.last() == Some(&b'\r');
            return Ok(buf.len());
        }
        Ok(pos)
    }

    fn pending(&self, buffered: usize) -> usize {
        self.discarding.unwrap_or(0) + buffered
    }

    fn needed(&self, _buf: &[u8]) -> usize {
        self.max_len + 2
    }
}

/// The length a line is judged by: without a CRLF's `\r`, as Netty does.
fn strip_cr_len(line: &[u8]) -> usize {
    line.len() - usize::from(line.last() == Some(&b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` after what `held` kept from earlier calls, as a reader would.
    fn frames(framer: &mut LineFramer, held: &mut Vec<u8>, input: &[u8], end: bool) -> Vec<String> {
        held.extend_from_slice(input);
        let mut out = Vec::new();
        let used = framer
            .split(held, end, |f| {
                out.push(match f {
                    Frame::Data(l) => String::from_utf8_lossy(l).into_owned(),
                    Frame::TooLong { len } => format!("<too long {len}>"),
                })
            })
            .unwrap();
        held.drain(..used);
        out
    }

    #[test]
    fn lines_split_across_reads_and_crlf() {
        let mut f = LineFramer::new(10);
        let mut b = Vec::new();
        assert_eq!(frames(&mut f, &mut b, b"ab", false), Vec::<String>::new());
        assert_eq!(frames(&mut f, &mut b, b"c\r\nd\n\ne", false), vec!["abc\r", "d", ""]);
        assert_eq!(frames(&mut f, &mut b, b"\n", false), vec!["e"]);
        assert_eq!(f.pending(b.len()), 0);
    }

    #[test]
    fn exactly_max_is_kept_longer_is_dropped_and_stream_continues() {
        let mut f = LineFramer::new(4);
        let mut b = Vec::new();
        assert_eq!(
            frames(&mut f, &mut b, b"abcd\r\nabcde\nok\n", false),
            vec!["abcd\r", "<too long 5>", "ok"]
        );
    }

    #[test]
    fn over_long_partial_line_is_discarded_until_its_newline() {
        let mut f = LineFramer::new(4);
        let mut b = Vec::new();
        assert!(frames(&mut f, &mut b, b"0123456789", false).is_empty());
        assert!(b.is_empty(), "held bytes of a line already too long");
        assert!(frames(&mut f, &mut b, b"0123456789", false).is_empty());
        assert_eq!(f.pending(b.len()), 20);
        assert_eq!(
            frames(&mut f, &mut b, b"xx\nnext\n", false),
            vec!["<too long 22>", "next"]
        );
        assert_eq!(f.pending(b.len()), 0);
    }

    #[test]
    fn end_of_input_completes_the_last_line() {
        let mut f = LineFramer::new(8);
        let mut b = Vec::new();
        assert_eq!(frames(&mut f, &mut b, b"a 1 2\nb 3 4", true), vec!["a 1 2", "b 3 4"]);
        assert!(b.is_empty());
        assert_eq!(frames(&mut f, &mut b, b"c 5 6\r\n", true), vec!["c 5 6\r"]);
        assert_eq!(frames(&mut f, &mut b, b"", true), Vec::<String>::new());
        // A too-long unterminated last line is reported, and the next input starts afresh.
        assert_eq!(
            frames(&mut f, &mut b, b"ok\n0123456789", true),
            vec!["ok", "<too long 10>"]
        );
        assert_eq!(frames(&mut f, &mut b, b"0123456789", false), Vec::<String>::new());
        assert_eq!(frames(&mut f, &mut b, b"abc", true), vec!["<too long 13>"]);
        assert_eq!(frames(&mut f, &mut b, b"fresh", true), vec!["fresh"]);
    }
    /// Found by the `framers` fuzz target: an over-long line whose CRLF is cut between
    /// two reads (the `\r` dropped with the line, the `\n` in the next read) was
    /// reported one byte longer than the same bytes read at once.
    #[test]
    fn an_over_long_lines_crlf_cut_between_reads_is_not_counted() {
        let whole = |max, input: &[u8], end| frames(&mut LineFramer::new(max), &mut Vec::new(), input, end);
        assert_eq!(whole(4, b"0123456\r\nok\n", false), vec!["<too long 7>", "ok"]);
        assert_eq!(whole(1, b"\0\0\r", true), vec!["<too long 2>"]);
        for cut in 1..9 {
            let wire = b"0123456\r\nok\n";
            let mut f = LineFramer::new(4);
            let mut b = Vec::new();
            let mut got = frames(&mut f, &mut b, &wire[..cut], false);
            got.extend(frames(&mut f, &mut b, &wire[cut..], false));
            assert_eq!(got, vec!["<too long 7>", "ok"], "cut at {cut}");
        }
        // Cut off by the end of the stream right after the `\r`, as when read at once.
        let mut f = LineFramer::new(1);
        let mut b = Vec::new();
        assert!(frames(&mut f, &mut b, b"\0\0\r", false).is_empty());
        assert_eq!(f.pending(b.len()), 3);
        assert_eq!(frames(&mut f, &mut b, b"", true), vec!["<too long 2>"]);
    }
}
