//! Which decoder a body needs: the format from an explicit value, else the file name,
//! else the first bytes; gzip by its magic bytes whatever the name says.

use std::fmt;
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::ImportError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Tsv,
    /// One JSON object per line.
    Ndjson,
    /// A JSON array of objects (or objects one after another, pretty-printed or not).
    Json,
    Parquet,
    /// KairosDB REST / export metric objects: an array body or one object per line. It
    /// carries its own names and tags, so it needs no column mapping.
    Kairosdb,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Csv,
        Format::Tsv,
        Format::Ndjson,
        Format::Json,
        Format::Parquet,
        Format::Kairosdb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Ndjson => "ndjson",
            Format::Json => "json",
            Format::Parquet => "parquet",
            Format::Kairosdb => "kairosdb",
        }
    }

    /// `csv tsv ndjson json parquet kairosdb` (and `jsonl` for NDJSON).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jsonl" => Some(Format::Ndjson),
            _ => Format::ALL.into_iter().find(|f| f.as_str() == s),
        }
    }

    /// From a file name: `.csv .tsv .ndjson .jsonl .json .parquet`, optionally `.gz`.
    pub fn from_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
        let ext = stem.rsplit_once('.')?.1;
        match ext {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// From the first bytes of the (decompressed) input: `PAR1` is Parquet, `{` NDJSON,
    /// `[` JSON, anything else CSV. Leading whitespace and a UTF-8 BOM are skipped.
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(b"PAR1") {
            return Format::Parquet;
        }
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Ndjson,
            Some(b'[') => Format::Json,
            _ => Format::Csv,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
        }
    }

    /// Bytes needed to tell compressions apart.
    pub const MAGIC_LEN: usize = 4;

    /// By magic bytes: gzip is decoded; zstd, bzip2, xz and zip are refused by name so
    /// the user knows what to do, rather than seeing their bytes parsed as CSV.
    pub fn detect(head: &[u8]) -> Result<Compression, ImportError> {
        let refuse = |what: &str, tool: &str| {
            Err(ImportError::Unsupported(format!(
                "the input is {what}-compressed; kairosd reads gzip or uncompressed input (decompress it \
                 first, e.g. `{tool} -dc FILE | kairosd ingest SOURCE -`)"
            )))
        };
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            refuse("zstd", "zstd")
        } else if head.starts_with(b"BZh") {
            refuse("bzip2", "bzip2")
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X']) {
            refuse("xz", "xz")
        } else if head.starts_with(b"PK\x03\x04") {
            Err(ImportError::Unsupported(
                "the input is a zip archive; kairosd reads gzip or uncompressed input (unzip it first)".to_owned(),
            ))
        } else {
            Ok(Compression::None)
        }
    }
}

/// Push-based gzip decoding (members one after another, as `cat a.gz b.gz` makes).
/// Output comes in bounded pieces, so a small compressed chunk that inflates hugely
/// never sits in memory whole.
pub(crate) struct Gunzip {
    inner: flate2::write::MultiGzDecoder<Vec<u8>>,
}

/// Compressed bytes written per step; deflate inflates at most ~1032:1, so a step
/// yields a few MiB at worst.
const GZ_STEP: usize = 4096;

impl Gunzip {
    pub(crate) fn new() -> Gunzip {
        Gunzip {
            inner: flate2::write::MultiGzDecoder::new(Vec::with_capacity(64 * 1024)),
        }
    }

    /// Decompresses `input`, handing the output to `sink` piece by piece.
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        while !input.is_empty() {
            let step = input.len().min(GZ_STEP);
            let n = self.inner.write(&input[..step]).map_err(gz_error)?;
            if n == 0 {
                // The decoder takes nothing more: trailing bytes after the last member.
                return Err(ImportError::Input(
                    "gzip: unexpected bytes after the end of the compressed data".to_owned(),
                ));
            }
            input = &input[n..];
            self.drain(sink)?;
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self, sink: &mut dyn FnMut(&[u8]) -> Result<(), ImportError>) -> Result<(), ImportError> {
        self.inner.try_finish().map_err(gz_error)?;
        self.drain(sink)
    }

    fn drain(&mut self, sink: &mut dyn FnMut(&[u8]) -> Result<(), ImportError>) -> Result<(), ImportError> {
        let out = self.inner.get_mut();
        if !out.is_empty() {
            let r = sink(out);
            out.clear();
            r?;
        }
        Ok(())
    }
}

fn gz_error(e: std::io::Error) -> ImportError {
    ImportError::Input(format!("gzip: the compressed data is corrupt or cut short ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name_and_bytes() {
        assert_eq!(Format::from_name("data.csv"), Some(Format::Csv));
        assert_eq!(Format::from_name("/x/DATA.CSV.GZ"), Some(Format::Csv));
        assert_eq!(Format::from_name("a.jsonl"), Some(Format::Ndjson));
        assert_eq!(Format::from_name("a.ndjson.gz"), Some(Format::Ndjson));
        assert_eq!(Format::from_name("a.json"), Some(Format::Json));
        assert_eq!(Format::from_name("a.parquet"), Some(Format::Parquet));
        assert_eq!(Format::from_name("a.tsv"), Some(Format::Tsv));
        assert_eq!(Format::from_name("a.gz"), None);
        assert_eq!(Format::from_name("noext"), None);
        assert_eq!(Format::sniff(b"PAR1\x15"), Format::Parquet);
        assert_eq!(Format::sniff(b"  {\"a\":1}"), Format::Ndjson);
        assert_eq!(Format::sniff(b"\xEF\xBB\xBF[{}]"), Format::Json);
        assert_eq!(Format::sniff(b"time,a"), Format::Csv);
        assert_eq!(Format::sniff(b""), Format::Csv);
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
    }

    #[test]
    fn compressions_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]).unwrap(), Compression::Gzip);
        assert_eq!(Compression::detect(b"time").unwrap(), Compression::None);
        for magic in [
            &[0x28u8, 0xb5, 0x2f, 0xfd][..],
            b"BZh9",
            &[0xfd, b'7', b'z', b'X'],
            b"PK\x03\x04",
        ] {
            let e = Compression::detect(magic).unwrap_err();
            assert!(matches!(e, ImportError::Unsupported(_)), "{e}");
        }
    }

    #[test]
    fn gunzip_in_any_chunks() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let plain: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        gz.write_all(&plain).unwrap();
        let mut data = gz.finish().unwrap();
        // A second member, as `cat a.gz b.gz` gives.
        let mut gz2 = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz2.write_all(b"tail").unwrap();
        data.extend(gz2.finish().unwrap());
        for chunk in [1, 7, 4096, 1 << 20] {
            let mut out = Vec::new();
            let mut g = Gunzip::new();
            let mut sink = |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            };
            for c in data.chunks(chunk) {
                g.feed(c, &mut sink).unwrap();
            }
            g.finish(&mut sink).unwrap();
            assert_eq!(out.len(), plain.len() + 4);
            assert!(out.ends_with(b"tail"));
        }
        let mut g = Gunzip::new();
        let mut sink = |_: &[u8]| Ok(());
        g.feed(&data[..data.len() / 3], &mut sink).unwrap();
        assert!(g.finish(&mut sink).is_err());
    }
}
