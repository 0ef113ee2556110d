//! Splitting a byte stream into frames, without IO: each transport (a TCP stream, a UDP
//! datagram, later a file or a Kafka message) reads bytes its own way and hands them to
//! a [`Framer`], which says where each frame ends; the frames go to a decoder.
//!
//! - [`lines`]: `\n`-terminated lines, KairosDB style (an over-long line costs that line,
//!   not the stream), with an end-of-input mode for datagrams and files whose last line
//!   has no `\n`.
//! - [`length_prefixed`]: a 4-byte big-endian length, then that many bytes (Graphite
//!   pickle); the length is checked against the limit before any of the body is awaited.

pub mod length_prefixed;
pub mod lines;

pub use length_prefixed::LengthPrefixed;
pub use lines::LineFramer;

/// What a framer hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete frame: a line without its `\n` (a trailing `\r` is left for the
    /// decoder, which treats it as whitespace), or a length-prefixed body.
    Data(&'a [u8]),
    /// A line of `len` bytes (without its line ending) exceeded the limit and was
    /// dropped; the stream goes on after it.
    TooLong { len: usize },
}

/// A frame the stream cannot go on after: the transport logs it and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("frame of {len} bytes announced, more than the limit of {max}")]
    TooLarge { len: u64, max: usize },
}

/// Splits bytes into frames. A framer keeps only small state between calls; the bytes
/// of an incomplete frame stay in the caller's buffer.
pub trait Framer {
    /// What one frame is called in messages ("line", "frame").
    const UNIT: &'static str;

    /// Hands every complete frame at the start of `buf` to `f` and returns how many
    /// bytes of `buf` it used up; the caller drops those and keeps the rest for the next
    /// call. With `end`, nothing follows `buf` (the end of a datagram or a file): a final
    /// frame without its terminator is complete too, where the format allows it.
    ///
    /// On an error the frames before the bad one have been handed out already.
    fn split(&mut self, buf: &[u8], end: bool, f: impl FnMut(Frame<'_>)) -> Result<usize, FramingError>;

    /// Bytes of an incomplete frame held back, given the `buffered` bytes the caller still
    /// holds (reported when a stream ends in the middle of a frame).
    fn pending(&self, buffered: usize) -> usize;

    /// How many bytes the caller's buffer must be able to hold for the frame that starts
    /// `buf` to be completed (so a reader can make room for a large frame in one go).
    fn needed(&self, buf: &[u8]) -> usize;
}
