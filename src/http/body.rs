//! Reading a request body within the configured limit, counted after decompression
//! (a 199 KB gzip body can inflate to 200 MB).

use std::io::Read;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_TYPE};

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
/// bytes on the wire or after decompression.
pub async fn read(headers: &HeaderMap, body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    let gzip = is_gzip(headers)?;
    let wire = match Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(BodyError::TooLarge(max)),
        Err(e) => return Err(BodyError::Read(e.to_string())),
    };
    if !gzip {
        return Ok(wire);
    }
    gunzip(&wire, max)
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
