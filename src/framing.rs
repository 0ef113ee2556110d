//! Splits a byte stream into `\n`-terminated lines, KairosDB style: a line longer than
//! the limit is discarded up to its newline and the stream goes on.
//!
//! Unlike tokio-util's `LinesCodec`, which ends the whole stream on one over-long or
//! non-UTF-8 line, a bad line here costs exactly one line. Lines are handed out as
//! slices of the read buffer (no copy, no per-line allocation); UTF-8 is the
//! parser's business.

use bytes::{Buf, BytesMut};

/// What [`LineFramer::drain`] hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its `\n` (a trailing `\r` is left for the parser,
    /// which treats it as whitespace).
    Line(&'a [u8]),
    /// A line of `len` bytes (excluding the newline) exceeded the limit and was dropped.
    TooLong { len: usize },
}

#[derive(Debug)]
pub struct LineFramer {
    max_len: usize,
    /// Bytes of an over-long line dropped so far, while waiting for its newline.
    discarding: Option<usize>,
}

impl LineFramer {
    pub fn new(max_len: usize) -> LineFramer {
        LineFramer {
            max_len,
            discarding: None,
        }
    }

    /// Hands every complete line in `buf` to `f` and removes it from `buf`; keeps a
    /// trailing partial line (or drops it if it is already too long).
    pub fn drain(&mut self, buf: &mut BytesMut, mut f: impl FnMut(Frame<'_>)) {
        let mut pos = 0;
        if let Some(dropped) = self.discarding {
            match memchr::memchr(b'\n', buf) {
                Some(nl) => {
                    f(Frame::TooLong {
                        len: dropped + strip_cr_len(&buf[..nl]),
                    });
                    self.discarding = None;
                    pos = nl + 1;
                }
                None => {
                    self.discarding = Some(dropped + buf.len());
                    buf.clear();
                    return;
                }
            }
        }
        let base = pos;
        for nl in memchr::memchr_iter(b'\n', &buf[base..]) {
            let end = base + nl;
            let line = &buf[pos..end];
            let len = strip_cr_len(line);
            if len > self.max_len {
                f(Frame::TooLong { len });
            } else {
                f(Frame::Line(line));
            }
            pos = end + 1;
        }
        buf.advance(pos);
        if buf.len() > self.max_len + 1 {
            // Keep one byte of slack for a `\r` that a following `\n` would make a CRLF.
            self.discarding = Some(buf.len());
            buf.clear();
        }
    }

    /// Bytes of an unterminated line held back (reported when a connection ends).
    pub fn partial_len(&self, buf: &BytesMut) -> usize {
        self.discarding.unwrap_or(0) + buf.len()
    }
}

/// The length a line is judged by: without a CRLF's `\r`, as Netty does.
fn strip_cr_len(line: &[u8]) -> usize {
    line.len() - usize::from(line.last() == Some(&b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut LineFramer, buf: &mut BytesMut, input: &[u8]) -> Vec<String> {
        buf.extend_from_slice(input);
        let mut out = Vec::new();
        framer.drain(buf, |f| {
            out.push(match f {
                Frame::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Frame::TooLong { len } => format!("<too long {len}>"),
            })
        });
        out
    }

    #[test]
    fn lines_split_across_reads_and_crlf() {
        let mut f = LineFramer::new(10);
        let mut b = BytesMut::new();
        assert_eq!(frames(&mut f, &mut b, b"ab"), Vec::<String>::new());
        assert_eq!(frames(&mut f, &mut b, b"c\r\nd\n\ne"), vec!["abc\r", "d", ""]);
        assert_eq!(frames(&mut f, &mut b, b"\n"), vec!["e"]);
    }

    #[test]
    fn exactly_max_is_kept_longer_is_dropped_and_stream_continues() {
        let mut f = LineFramer::new(4);
        let mut b = BytesMut::new();
        assert_eq!(
            frames(&mut f, &mut b, b"abcd\r\nabcde\nok\n"),
            vec!["abcd\r", "<too long 5>", "ok"]
        );
    }

    #[test]
    fn over_long_partial_line_is_discarded_until_its_newline() {
        let mut f = LineFramer::new(4);
        let mut b = BytesMut::new();
        assert!(frames(&mut f, &mut b, b"0123456789").is_empty());
        assert!(b.is_empty(), "held bytes of a line already too long");
        assert!(frames(&mut f, &mut b, b"0123456789").is_empty());
        assert_eq!(frames(&mut f, &mut b, b"xx\nnext\n"), vec!["<too long 22>", "next"]);
        assert_eq!(f.partial_len(&b), 0);
    }
}
