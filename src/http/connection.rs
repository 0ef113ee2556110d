//! What one HTTP connection keeps from request to request.
//!
//! An agent posts the same series on every interval over one keep-alive connection, so
//! a REST decoder that remembers the connection's series (its [`RestDecoder`] series
//! cache) skips validating, sorting and encoding them again: about a fifth of the
//! decode instructions per point on the benchmark's bodies. The decoder is made on the
//! connection's first `POST /api/v1/datapoints`, so query-only connections pay nothing.

use std::net::SocketAddr;
use std::sync::Mutex;

use kairos_protocols::rest::RestDecoder;
use kairos_protocols::series_cache::CacheLimits;
use kairos_protocols::PointBatch;

pub struct Connection {
    pub peer: SocketAddr,
    limits: CacheLimits,
    /// hyper answers one request of a connection at a time, so the lock is never
    /// contended; it is there because the handler future must be `Send`.
    rest: Mutex<Option<RestDecoder>>,
}

impl Connection {
    pub fn new(peer: SocketAddr, limits: CacheLimits) -> Connection {
        Connection {
            peer,
            limits,
            rest: Mutex::new(None),
        }
    }

    /// [`kairos_protocols::rest::decode_into`] through this connection's series cache.
    pub fn decode_rest(&self, body: &[u8], batch: &mut PointBatch) -> Vec<String> {
        let mut rest = self.rest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rest.get_or_insert_with(|| RestDecoder::new(self.limits))
            .decode_into(body, batch)
    }
}
