//! A small blocking HTTP/1.1 client over plain TCP: what `kairosd ingest`, `tail` and
//! `sources` need to talk to a running daemon (streaming a file up as a chunked body),
//! and what an import from a URL needs to fetch one (spec §10). Blocking on purpose:
//! the CLI has nothing else to do meanwhile, and the daemon runs fetches on a thread
//! that may block.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// An `http://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not a URL (http://host:port/...)"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("{s:?}: only http and https URLs are allowed")),
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| format!("{s:?}: bad IPv6 host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("{s:?}: bad port"))?,
                None => default_port,
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| format!("{s:?}: bad port"))?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        Ok(Url {
            scheme,
            host,
            port,
            target,
        })
    }

    /// `host:port` as the Host header gives it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A URL relative to this one (a redirect's `Location`).
    pub fn join(&self, location: &str) -> Result<Url, String> {
        if location.contains("://") {
            return Url::parse(location);
        }
        let target = if location.starts_with('/') {
            location.to_owned()
        } else {
            let dir = self.target.rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{location}")
        };
        Ok(Url { target, ..self.clone() })
    }
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Sent chunked, as it is read.
    Stream(&'a mut dyn Read),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: Box<dyn Read + Send>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.trim().parse().ok())
    }

    /// The body as a reader (decoded from chunked transfer if it was).
    pub fn reader(&mut self) -> &mut (dyn Read + Send) {
        &mut *self.body
    }

    pub fn text(mut self) -> io::Result<String> {
        let mut s = String::new();
        self.body.read_to_string(&mut s)?;
        Ok(s)
    }
}

/// Sends one request to `addr` (already resolved and checked by the caller) and reads
/// the response's head; the body is read from the response.
pub fn request_to(
    addr: SocketAddr,
    url: &Url,
    method: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
    timeout: Option<Duration>,
) -> io::Result<Response> {
    let stream = match timeout {
        Some(t) => TcpStream::connect_timeout(&addr, t)?,
        None => TcpStream::connect(addr)?,
    };
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    stream.set_nodelay(true)?;
    let mut w = io::BufWriter::with_capacity(256 << 10, stream.try_clone()?);
    write!(
        w,
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        url.target,
        url.authority()
    )?;
    for (k, v) in headers {
        write!(w, "{k}: {v}\r\n")?;
    }
    match body {
        Body::Empty => {
            if method != "GET" && method != "DELETE" {
                w.write_all(b"Content-Length: 0\r\n")?;
            }
            w.write_all(b"\r\n")?;
        }
        Body::Bytes(b) => {
            write!(w, "Content-Length: {}\r\n\r\n", b.len())?;
            w.write_all(b)?;
        }
        Body::Stream(r) => {
            w.write_all(b"Transfer-Encoding: chunked\r\n\r\n")?;
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                write!(w, "{n:x}\r\n")?;
                w.write_all(&buf[..n])?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\n\r\n")?;
        }
    }
    w.flush()?;
    drop(w);
    read_response(stream)
}

/// Resolves `url`'s host and sends the request to its first address.
pub fn request(
    url: &Url,
    method: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
    timeout: Option<Duration>,
) -> io::Result<Response> {
    let addr = resolve(url)?
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{} has no address", url.host)))?;
    request_to(addr, url, method, headers, body, timeout)
}

pub fn resolve(url: &Url) -> io::Result<Vec<SocketAddr>> {
    Ok((url.host.as_str(), url.port).to_socket_addrs()?.collect())
}

fn read_response(stream: TcpStream) -> io::Result<Response> {
    let mut r = BufReader::with_capacity(64 << 10, stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not an HTTP response: {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let body: Box<dyn Read + Send> = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Box::new(Chunked {
            inner: r,
            left: 0,
            done: false,
        })
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<u64>().ok()) {
        Box::new(r.take(n))
    } else {
        Box::new(r)
    };
    Ok(Response { status, headers, body })
}

/// Reads a chunked transfer body.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF after the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {line:?}")))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body cut off"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Why an address may not be fetched (request forgery guard), or `None`.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local (cloud metadata) address")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || o[0] == 0 {
                Some("not a unicast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_loopback() {
                Some("a loopback address")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("a private address")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_join() {
        let u = Url::parse("http://example.com:8080/a/b.csv?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("example.com", 8080, "/a/b.csv?x=1")
        );
        assert_eq!(u.join("c.csv").unwrap().target, "/a/c.csv");
        assert_eq!(u.join("/d").unwrap().target, "/d");
        assert_eq!(Url::parse("https://h").unwrap().port, 443);
        assert!(Url::parse("ftp://h/x").is_err());
        assert_eq!(Url::parse("http://[::1]:9/").unwrap().host, "::1");
    }

    #[test]
    fn private_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.0.0.5",
            "192.168.1.1",
            "172.16.3.4",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(forbidden(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(forbidden(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }
}
