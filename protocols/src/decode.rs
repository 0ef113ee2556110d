//! The interface between transports and wire decoders.
//!
//! A decoder turns one frame (a telnet or Graphite line, one pickle frame) into points
//! appended to a [`PointBatch`]. It never learns where the frame came from: the same
//! decoder serves a TCP connection, a UDP socket, and later a file, stdin or a Kafka
//! consumer. The transport owns the batch (and so when it is submitted), the log and
//! the counters; the decoder reports what it refused through a callback, one call per
//! refused line or point, and returns a count of what it did.

use std::fmt;

use crate::datapoint::PointBatch;

/// What one frame gave (small enough to come back in registers: this is returned once
/// per telnet line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Points appended to the batch.
    pub points: u32,
    /// Lines or points of the frame refused, each reported through the callback.
    pub rejected: u32,
    /// The sender asked for an answer (telnet `version`): a transport that can answer
    /// writes [`Decoder::reply`] back.
    pub reply: bool,
}

impl Decoded {
    pub const POINT: Decoded = Decoded {
        points: 1,
        rejected: 0,
        reply: false,
    };
    pub const REJECTED: Decoded = Decoded {
        points: 0,
        rejected: 1,
        reply: false,
    };
    pub const NOTHING: Decoded = Decoded {
        points: 0,
        rejected: 0,
        reply: false,
    };
}

/// Why something in a frame was refused.
pub trait DecodeError: fmt::Display {
    /// Bad input that senders produce routinely and by design (collectd's `nan` first
    /// sample of every rate, a template that drops a path): counted like any other
    /// refusal, but logged at debug level only, so the log stays for real mistakes.
    fn is_routine(&self) -> bool {
        false
    }
}

/// Turns frames into points; see the module documentation.
pub trait Decoder {
    type Error: DecodeError;

    /// Whether a frame is a text line worth quoting in a log next to its error.
    const TEXT: bool = true;

    /// Appends the points of `frame` to `batch`, calling `reject` once for each line or
    /// point it refuses. A refused item never affects its neighbours.
    fn decode(&mut self, frame: &[u8], batch: &mut PointBatch, reject: &mut impl FnMut(Self::Error)) -> Decoded;

    /// The current time in milliseconds, for points that come without a timestamp; the
    /// transport sets it once per read, so decoding never reads the clock.
    fn set_now(&mut self, _now_ms: i64) {}

    /// The answer to a frame that asked for one ([`Decoded::reply`]).
    fn reply(&self) -> &[u8] {
        &[]
    }
}
