//! A push-based `multipart/form-data` reader (RFC 7578), so an uploaded file streams
//! into an import without the whole body in memory: bytes in, part starts and part
//! data out. Only what uploads need: part headers up to 16 KiB, the name and filename
//! of `Content-Disposition`, the part's `Content-Type`.

use memchr::memmem;

/// Most bytes of one part's headers.
const MAX_HEADERS: usize = 16 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub name: Option<String>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

pub enum Event<'a> {
    Start(PartInfo),
    Data(&'a [u8]),
    End,
}

enum State {
    /// Before the first boundary.
    Preamble,
    /// After a boundary: `--` (the end) or CRLF and headers.
    AfterBoundary,
    Headers,
    Body,
    Done,
}

pub struct Multipart {
    /// `\r\n--` + boundary.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

impl Multipart {
    pub fn new(boundary: &str) -> Multipart {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Multipart {
            delimiter,
            // The first boundary has no CRLF before it.
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
        }
    }

    pub fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Feeds body bytes; `f` gets the events in order.
    pub fn feed(&mut self, input: &[u8], f: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
        self.buf.extend_from_slice(input);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            match self.state {
                State::Done => {
                    at = self.buf.len();
                    break;
                }
                State::Preamble => match memmem::find(rest, &self.delimiter) {
                    Some(i) => {
                        at += i + self.delimiter.len();
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        at += rest.len().saturating_sub(self.delimiter.len());
                        break;
                    }
                },
                State::AfterBoundary => {
                    if rest.len() < 2 {
                        break;
                    }
                    if rest.starts_with(b"--") {
                        self.state = State::Done;
                    } else if rest.starts_with(b"\r\n") {
                        at += 2;
                        self.state = State::Headers;
                    } else {
                        // Transport padding (spaces, tabs) before the CRLF.
                        match memmem::find(rest, b"\r\n") {
                            Some(i) if rest[..i].iter().all(|b| *b == b' ' || *b == b'\t') => {
                                at += i + 2;
                                self.state = State::Headers;
                            }
                            Some(_) => return Err("multipart body: bad text after a boundary".into()),
                            None => break,
                        }
                    }
                }
                State::Headers => match memmem::find(rest, b"\r\n\r\n") {
                    Some(i) => {
                        let info = parse_headers(&rest[..i]);
                        at += i + 4;
                        self.state = State::Body;
                        f(Event::Start(info));
                    }
                    None if rest.len() > MAX_HEADERS => {
                        return Err(format!("multipart body: part headers longer than {MAX_HEADERS} bytes"))
                    }
                    None => break,
                },
                State::Body => match memmem::find(rest, &self.delimiter) {
                    Some(i) => {
                        if i > 0 {
                            f(Event::Data(&rest[..i]));
                        }
                        f(Event::End);
                        at += i + self.delimiter.len();
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        let keep = self.delimiter.len().min(rest.len());
                        let n = rest.len() - keep;
                        if n > 0 {
                            f(Event::Data(&rest[..n]));
                        }
                        at += n;
                        break;
                    }
                },
            }
        }
        self.buf.drain(..at);
        Ok(())
    }

    /// The body ended: an error unless the closing boundary was read.
    pub fn finish(&self) -> Result<(), String> {
        match self.state {
            State::Done => Ok(()),
            _ => Err("multipart body ended before its closing boundary".into()),
        }
    }
}

fn parse_headers(raw: &[u8]) -> PartInfo {
    let text = String::from_utf8_lossy(raw);
    let mut info = PartInfo {
        name: None,
        filename: None,
        content_type: None,
    };
    for line in text.split("\r\n") {
        let Some((k, v)) = line.split_once(':') else { continue };
        let k = k.trim();
        if k.eq_ignore_ascii_case("content-disposition") {
            for p in v.split(';').skip(1) {
                let Some((pk, pv)) = p.split_once('=') else { continue };
                let pv = pv.trim().trim_matches('"').to_owned();
                match pk.trim().to_ascii_lowercase().as_str() {
                    "name" => info.name = Some(pv),
                    "filename" => info.filename = Some(pv),
                    _ => {}
                }
            }
        } else if k.eq_ignore_ascii_case("content-type") {
            info.content_type = Some(v.trim().to_owned());
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], step: usize) -> Vec<(PartInfo, Vec<u8>)> {
        let mut m = Multipart::new("XyZ");
        let mut parts: Vec<(PartInfo, Vec<u8>)> = Vec::new();
        for chunk in body.chunks(step) {
            m.feed(chunk, &mut |e| match e {
                Event::Start(i) => parts.push((i, Vec::new())),
                Event::Data(d) => parts.last_mut().unwrap().1.extend_from_slice(d),
                Event::End => {}
            })
            .unwrap();
        }
        m.finish().unwrap();
        parts
    }

    #[test]
    fn parts_come_out_whole_whatever_the_chunking() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"a.csv\"\r\n\
Content-Type: text/csv\r\n\r\ntime,v\r\n1,2\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\
--XyZ-not\r\n--XyZ--\r\n";
        for step in [1, 2, 3, 7, 64, 1000] {
            let parts = parse(body, step);
            assert_eq!(parts.len(), 2, "step {step}");
            assert_eq!(parts[0].0.name.as_deref(), Some("csv"));
            assert_eq!(parts[0].0.filename.as_deref(), Some("a.csv"));
            assert_eq!(parts[0].1, b"time,v\r\n1,2\r\n");
            assert_eq!(parts[1].1, b"--XyZ-not");
        }
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\"").as_deref(),
            Some("XyZ")
        );
        assert_eq!(boundary("text/csv"), None);
        let mut m = Multipart::new("XyZ");
        m.feed(b"--XyZ\r\n\r\nabc", &mut |_| {}).unwrap();
        assert!(m.finish().is_err());
    }
}
