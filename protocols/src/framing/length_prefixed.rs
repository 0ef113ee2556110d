//! Frames of a 4-byte big-endian length followed by that many bytes (Graphite's pickle
//! protocol, Twisted's `Int32StringReceiver`).
//!
//! The length is judged as soon as its four bytes are in: a frame announced larger than
//! the limit is an error before any of its body is waited for, so a hostile header of
//! 4 GB costs nothing but the four bytes.

use super::{Frame, Framer, FramingError};

const HEADER: usize = 4;

#[derive(Debug)]
pub struct LengthPrefixed {
    max_len: usize,
}

impl LengthPrefixed {
    /// Frames of at most `max_len` bytes (not counting the header).
    pub fn new(max_len: usize) -> LengthPrefixed {
        LengthPrefixed { max_len }
    }

    /// The length the frame at the start of `buf` announces, once its header is in.
    fn announced(buf: &[u8]) -> Option<u64> {
        let header: [u8; HEADER] = buf.get(..HEADER)?.try_into().ok()?;
        Some(u64::from(u32::from_be_bytes(header)))
    }
}

impl Framer for LengthPrefixed {
    const UNIT: &'static str = "frame";

    fn split(&mut self, buf: &[u8], _end: bool, mut f: impl FnMut(Frame<'_>)) -> Result<usize, FramingError> {
        let mut pos = 0;
        while let Some(len) = Self::announced(&buf[pos..]) {
            if len > self.max_len as u64 {
                return Err(FramingError::TooLarge { len, max: self.max_len });
            }
            let body = pos + HEADER;
            let end = body + len as usize;
            if end > buf.len() {
                break;
            }
            f(Frame::Data(&buf[body..end]));
            pos = end;
        }
        // With `end`, an incomplete frame stays unused: the caller reports it as cut off.
        Ok(pos)
    }

    fn pending(&self, buffered: usize) -> usize {
        buffered
    }

    fn needed(&self, buf: &[u8]) -> usize {
        match Self::announced(buf) {
            Some(len) if len <= self.max_len as u64 => HEADER + len as usize,
            _ => HEADER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn split(f: &mut LengthPrefixed, buf: &[u8]) -> (Result<usize, FramingError>, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let r = f.split(buf, false, |fr| match fr {
            Frame::Data(d) => out.push(d.to_vec()),
            Frame::TooLong { .. } => unreachable!(),
        });
        (r, out)
    }

    #[test]
    fn frames_split_across_reads() {
        let mut f = LengthPrefixed::new(100);
        let mut wire = frame(b"one");
        wire.extend(frame(b""));
        wire.extend(frame(b"three"));
        // Every cut point: complete frames come out, the rest is left.
        for cut in 0..wire.len() {
            let (used, first) = split(&mut f, &wire[..cut]);
            let used = used.unwrap();
            let (used2, second) = split(&mut f, &wire[used..]);
            assert_eq!(used + used2.unwrap(), wire.len(), "cut {cut}");
            let all: Vec<Vec<u8>> = first.into_iter().chain(second).collect();
            assert_eq!(all, vec![b"one".to_vec(), vec![], b"three".to_vec()], "cut {cut}");
        }
        assert_eq!(f.needed(&wire), 7);
        assert_eq!(f.needed(&wire[..2]), 4);
    }

    #[test]
    fn oversized_header_is_refused_before_the_body_and_earlier_frames_are_kept() {
        let mut f = LengthPrefixed::new(10);
        let mut wire = frame(b"ok");
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        let (r, frames) = split(&mut f, &wire);
        assert_eq!(frames, vec![b"ok".to_vec()]);
        assert_eq!(
            r,
            Err(FramingError::TooLarge {
                len: u32::MAX as u64,
                max: 10
            })
        );
        // A frame of exactly the limit passes.
        let (r, frames) = split(&mut f, &frame(&[7; 10]));
        assert_eq!((r, frames.len()), (Ok(14), 1));
        assert_eq!(f.needed(&u32::MAX.to_be_bytes()), 4);
    }
}
