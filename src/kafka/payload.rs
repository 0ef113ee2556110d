//! One Kafka message's bytes → points, through the decoder its source's `payload`
//! names: the import decoders with the source's mapping (`ndjson`, `csv`), the REST
//! body decoder (`kairosdb`), or the telnet and Graphite line decoders. What a decoder
//! refuses comes back as quarantine records; the rest of the message is kept.

use std::sync::Arc;

use kairos_protocols::decode::Decoder;
use kairos_protocols::graphite::{PathMapper, TextDecoder};
use kairos_protocols::import::kafka::Payload;
use kairos_protocols::import::{
    Clock, Format, HeaderMode, Import, ImportOptions, Kind, Location, Output, Rejected, Source,
};
use kairos_protocols::telnet::TelnetDecoder;
use kairos_protocols::PointBatch;

/// Decodes the messages of one source.
pub struct MessageDecoder {
    payload: Payload,
    source: Source,
    key_tag: Option<String>,
    telnet: TelnetDecoder,
    graphite: Option<TextDecoder>,
    out: Output,
    line: Vec<u8>,
}

impl MessageDecoder {
    pub fn new(source: &Source, payload: Payload, mapper: Option<Arc<PathMapper>>) -> MessageDecoder {
        MessageDecoder {
            payload,
            key_tag: source.kafka.as_ref().and_then(|k| k.key_tag.clone()),
            source: source.clone(),
            telnet: TelnetDecoder::new(&crate::server::version()),
            graphite: mapper.map(TextDecoder::new),
            out: Output::default(),
            line: Vec::new(),
        }
    }

    /// Appends the points of one message to `batch` and returns what it refused.
    /// `time_ms` is the message's time: the arrival time of rows without a timestamp
    /// and of Graphite lines without one.
    pub fn decode(&mut self, bytes: &[u8], key: Option<&[u8]>, time_ms: i64, batch: &mut PointBatch) -> Vec<Rejected> {
        let key = match (&self.key_tag, key) {
            (Some(tag), Some(k)) => match std::str::from_utf8(k) {
                Ok(k) if valid_tag_value(k) => Some((tag.clone(), k.to_owned())),
                _ => {
                    return vec![Rejected::record(
                        Kind::BadName,
                        Location::default(),
                        bytes,
                        format!("the message key cannot be the value of tag {tag:?}: it must be UTF-8 without spaces, '=' or ';'"),
                    )]
                }
            },
            _ => None,
        };
        match self.payload {
            Payload::Ndjson | Payload::Csv => self.rows(bytes, key, time_ms, batch),
            Payload::Kairosdb => {
                let errors = kairos_protocols::rest::decode_into(bytes, batch);
                if errors.is_empty() {
                    Vec::new()
                } else {
                    vec![Rejected::record(
                        Kind::Malformed,
                        Location::default(),
                        bytes,
                        errors.join("; "),
                    )]
                }
            }
            Payload::Telnet | Payload::Graphite => self.lines(bytes, key, time_ms, batch),
        }
    }

    fn rows(
        &mut self,
        bytes: &[u8],
        key: Option<(String, String)>,
        time_ms: i64,
        batch: &mut PointBatch,
    ) -> Vec<Rejected> {
        let mut source = self.source.clone();
        if let Some((k, v)) = key {
            source.tags.fixed.insert(k, v);
        }
        let options = ImportOptions {
            format: Some(if self.payload == Payload::Csv {
                Format::Csv
            } else {
                Format::Ndjson
            }),
            header: (self.payload == Payload::Csv).then_some(HeaderMode::Absent),
            clock: Clock {
                event_time: None,
                receive_time: time_ms,
            },
            ..ImportOptions::default()
        };
        let mut import = match Import::new(Some(source), options) {
            Ok(i) => i,
            Err(e) => {
                return vec![Rejected::record(
                    Kind::Malformed,
                    Location::default(),
                    bytes,
                    e.to_string(),
                )]
            }
        };
        std::mem::swap(&mut self.out.batch, batch);
        let result = import
            .feed(bytes, &mut self.out)
            .and_then(|()| import.finish(&mut self.out));
        std::mem::swap(&mut self.out.batch, batch);
        let mut rejected = std::mem::take(&mut self.out.rejected);
        if let Err(e) = result {
            rejected.push(Rejected::record(
                Kind::Malformed,
                Location::default(),
                bytes,
                e.to_string(),
            ));
        }
        rejected
    }

    fn lines(
        &mut self,
        bytes: &[u8],
        key: Option<(String, String)>,
        time_ms: i64,
        batch: &mut PointBatch,
    ) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        let mut n = 0u64;
        let mut offset = 0u64;
        for raw in bytes.split_inclusive(|&b| b == b'\n') {
            n += 1;
            let at = offset;
            offset += raw.len() as u64;
            let mut line = raw.strip_suffix(b"\n").unwrap_or(raw);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let frame: &[u8] = match &key {
                None => line,
                Some((k, v)) => {
                    self.line.clear();
                    if self.payload == Payload::Telnet {
                        self.line.extend_from_slice(line);
                        self.line.extend_from_slice(format!(" {k}={v}").as_bytes());
                    } else {
                        // Graphite: the tag goes onto the path (its first token).
                        let end = line
                            .iter()
                            .position(|b| *b == b' ' || *b == b'\t')
                            .unwrap_or(line.len());
                        self.line.extend_from_slice(&line[..end]);
                        self.line.extend_from_slice(format!(";{k}={v}").as_bytes());
                        self.line.extend_from_slice(&line[end..]);
                    }
                    &self.line
                }
            };
            let mut errors: Vec<String> = Vec::new();
            match (self.payload, self.graphite.as_mut()) {
                (Payload::Graphite, Some(g)) => {
                    g.set_now(time_ms);
                    g.decode(frame, batch, &mut |e| errors.push(e.to_string()));
                }
                _ => {
                    self.telnet.decode(frame, batch, &mut |e| errors.push(e.to_string()));
                }
            }
            if !errors.is_empty() {
                let location = Location {
                    line: Some(n),
                    offset: Some(at),
                    ..Location::default()
                };
                rejected.push(Rejected::record(
                    Kind::Malformed,
                    location,
                    raw,
                    format!("line {n}: {}", errors.join("; ")),
                ));
            }
        }
        rejected
    }
}

fn valid_tag_value(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b.is_ascii_whitespace() || b == b'=' || b == b';')
}
