//! Reading a request body within the configured limit, counted after decompression
//! (a 199 KB gzip body can inflate to 200 MB), and within a budget shared by every
//! HTTP connection (`kairosd.http.max_buffered_bytes`): each chunk read takes its size
//! from the budget before it is kept, and the body gives it back when dropped, so a
//! thousand clients sending 64 MiB bodies at once wait for room (then get a 503)
//! instead of making the daemon hold 64 GiB.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_TYPE};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The request-body bytes all connections together may hold.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total: usize,
    /// How long a body waits for room before the request gets a 503.
    wait: Duration,
}

impl BodyBudget {
    pub fn new(total: usize, wait: Duration) -> BodyBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        BodyBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
            wait,
        }
    }

    /// Bytes of the budget in use now.
    pub fn in_use(&self) -> usize {
        self.total - self.permits.available_permits()
    }

    async fn take(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> Result<(), BodyError> {
        // One body may use the whole budget, never more (it would wait forever).
        let holding = held.as_ref().map_or(0, |p| p.num_permits());
        let n = n.min(self.total - holding) as u32;
        if n == 0 {
            return Ok(());
        }
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_many_owned(n))
            .await
            .map_err(|_| BodyError::Busy(self.total))?
            .map_err(|_| BodyError::Busy(self.total))?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body read in full; its bytes count against the budget until it is dropped.
pub struct Buffered {
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Buffered {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {0} bytes (kairosd.http.max_body_bytes)")]
    TooLarge(usize),
    #[error("request body could not be gunzipped: {0}")]
    BadGzip(std::io::Error),
    #[error("request body could not be read: {0}")]
    Read(String),
    #[error("unsupported Content-Encoding {0:?}; send identity or gzip")]
    Encoding(String),
    /// Other requests hold the whole body budget.
    #[error("kairosd is holding its limit of request bodies ({0} bytes, kairosd.http.max_buffered_bytes); send again shortly")]
    Busy(usize),
}

/// Whether the body is gzip: `Content-Encoding: gzip`, or KairosDB's deprecated
/// `Content-Type: application/gzip`.
fn is_gzip(headers: &HeaderMap) -> Result<bool, BodyError> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    match header(CONTENT_ENCODING).map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("identity") => {}
        Some("gzip") | Some("x-gzip") => return Ok(true),
        Some(other) => return Err(BodyError::Encoding(other.to_string())),
    }
    Ok(header(CONTENT_TYPE).is_some_and(|t| t.eq_ignore_ascii_case("application/gzip")))
}

/// Collects the body, gunzipping it if the headers say so, refusing more than `max`
/// bytes on the wire or after decompression, each chunk charged to `budget` first.
pub async fn read(
    headers: &HeaderMap,
    mut body: Incoming,
    max: usize,
    budget: &BodyBudget,
) -> Result<Buffered, BodyError> {
    let gzip = is_gzip(headers)?;
    let mut held = None;
    let mut wire = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if wire.len() + data.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        if let Err(e) = budget.take(data.len(), &mut held).await {
            // Read the rest without keeping it (so the client gets the 503, not a reset),
            // never past the body limit.
            drop((wire, held));
            let mut seen = data.len();
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > max {
                    break;
                }
            }
            return Err(e);
        }
        wire.extend_from_slice(&data);
    }
    let wire = wire.freeze();
    if !gzip {
        return Ok(Buffered {
            bytes: wire,
            _budget: held,
        });
    }
    let inflated = gunzip(&wire, max)?;
    drop(wire);
    // The inflated body replaces the wire bytes in the budget.
    let extra = inflated
        .len()
        .saturating_sub(held.as_ref().map_or(0, |p| p.num_permits()));
    budget.take(extra, &mut held).await?;
    Ok(Buffered {
        bytes: inflated,
        _budget: held,
    })
}

/// Inflates `data`, stopping as soon as the output passes `max`.
pub fn gunzip(data: &[u8], max: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::with_capacity((data.len() * 4).min(max + 1));
    flate2::read::MultiGzDecoder::new(data)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(BodyError::BadGzip)?;
    if out.len() > max {
        return Err(BodyError::TooLarge(max));
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn limit_counts_decompressed_bytes() {
        let bomb = gz(&vec![b'['; 1 << 20]);
        assert!(bomb.len() < 8 << 10);
        assert!(matches!(gunzip(&bomb, 1000), Err(BodyError::TooLarge(1000))));
        assert_eq!(gunzip(&gz(b"[1]"), 3).unwrap(), Bytes::from_static(b"[1]"));
        assert!(matches!(gunzip(b"not gzip", 100), Err(BodyError::BadGzip(_))));
    }

    #[test]
    fn gzip_detection() {
        let mut h = HeaderMap::new();
        assert!(!is_gzip(&h).unwrap());
        h.insert(CONTENT_TYPE, "application/gzip".parse().unwrap());
        assert!(is_gzip(&h).unwrap());
        h.insert(CONTENT_ENCODING, "br".parse().unwrap());
        assert!(matches!(is_gzip(&h), Err(BodyError::Encoding(_))));
    }
}
