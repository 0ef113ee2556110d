//! Walks over the Thrift (compact protocol) parts of a Parquet file before the
//! `parquet` crate decodes them: the footer, and each page header of the column chunks
//! an import reads. Every list, set, map and string must fit in the bytes that follow
//! it, and nesting stays shallow. The crate trusts declared counts, so a 19-byte file
//! whose footer declared a list of billions of empty elements kept it busy for seconds,
//! and a 1,251-byte file did the same with a page header (both found by fuzzing); these
//! walks refuse such bytes in time linear in their size.

/// Nesting deeper than this is refused (real footers nest a few levels).
const MAX_DEPTH: usize = 64;

struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("the Thrift structure ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a Thrift varint is too long".to_owned())
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if n > self.left() as u64 {
            return Err(format!(
                "the Thrift structure declares {n} bytes where {} remain",
                self.left()
            ));
        }
        self.at += n as usize;
        Ok(())
    }

    /// One value of compact type `t`; `in_list` marks booleans that carry a byte.
    fn value(&mut self, t: u8, in_list: bool, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the Thrift structure nests too deeply".to_owned());
        }
        match t {
            1 | 2 if in_list => self.skip(1),
            1 | 2 => Ok(()),
            3 => self.skip(1),
            4..=6 => self.varint().map(|_| ()),
            7 => self.skip(8),
            8 => {
                let n = self.varint()?;
                self.skip(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                // Every element takes at least one byte.
                if n > self.left() as u64 {
                    return Err(format!(
                        "the Thrift structure declares {n} list elements in {} bytes",
                        self.left()
                    ));
                }
                for _ in 0..n {
                    self.value(h & 0x0f, true, depth + 1)?;
                }
                Ok(())
            }
            11 => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                if n.saturating_mul(2) > self.left() as u64 {
                    return Err(format!(
                        "the Thrift structure declares {n} map entries in {} bytes",
                        self.left()
                    ));
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.value(kv >> 4, true, depth + 1)?;
                    self.value(kv & 0x0f, true, depth + 1)?;
                }
                Ok(())
            }
            12 => self.structure(depth + 1),
            _ => Err(format!("unknown Thrift type {t}")),
        }
    }

    fn structure(&mut self, depth: usize) -> Result<(), String> {
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(());
            }
            if h >> 4 == 0 {
                self.varint()?; // a field id that is not a small delta
            }
            self.value(h & 0x0f, false, depth)?;
        }
    }
}

/// Checks the footer bytes (the Thrift `FileMetaData`, without length and magic).
pub(crate) fn check(footer: &[u8]) -> Result<(), String> {
    let mut w = Walk { bytes: footer, at: 0 };
    w.structure(0)
}

/// `PageHeader.compressed_page_size`: the page's bytes after its header.
const COMPRESSED_PAGE_SIZE: i16 = 3;

/// Walks one Thrift `PageHeader` at the start of `bytes`: its length and the page's
/// compressed size (which must be there, and not negative).
pub(crate) fn page_header(bytes: &[u8]) -> Result<(usize, u64), String> {
    let mut w = Walk { bytes, at: 0 };
    let mut field: i16 = 0;
    let mut size = None;
    loop {
        let h = w.byte()?;
        if h == 0 {
            break;
        }
        field = match h >> 4 {
            0 => {
                let z = w.varint()?;
                ((z >> 1) as i64 ^ -((z & 1) as i64)) as i16
            }
            delta => field.wrapping_add(i16::from(delta)),
        };
        if field == COMPRESSED_PAGE_SIZE && h & 0x0f == 5 {
            let z = w.varint()?;
            let v = (z >> 1) as i64 ^ -((z & 1) as i64);
            size = Some(u64::try_from(v).map_err(|_| format!("a page declares {v} bytes"))?);
        } else {
            w.value(h & 0x0f, false, 1)?;
        }
    }
    let size = size.ok_or("a page header has no compressed_page_size")?;
    Ok((w.at, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_declared_counts_that_cannot_fit() {
        // A list field (type 9) declaring 2^35 elements in a few bytes.
        assert!(check(&[0x19, 0xfc, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00]).is_err());
        assert!(check(&[0x19, 0x2c, 0x00, 0x00, 0x00]).is_ok());
        assert!(check(&[0x18, 0x05, b'a']).is_err()); // a string longer than what is left
        assert!(check(&[0x15, 0x02, 0x00]).is_ok()); // i32 field 1 = 1
        let deep: Vec<u8> = std::iter::repeat_n(0x1c, 100).collect();
        assert!(check(&deep).is_err());
    }

    #[test]
    fn page_headers_give_their_size_and_refuse_impossible_counts() {
        // type=0 (i32 field 1), uncompressed=10, compressed=6, then a data page header
        // struct (field 5) with num_values=2.
        let header = [0x15, 0x00, 0x15, 0x14, 0x15, 0x0c, 0x2c, 0x15, 0x04, 0x00, 0x00];
        assert_eq!(page_header(&header), Ok((header.len(), 6)));
        // The same with a list of 2^35 elements inside it.
        let bad = [
            0x15, 0x00, 0x15, 0x0c, 0x29, 0xfc, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00,
        ];
        assert!(page_header(&bad).is_err());
        assert!(page_header(&[0x15, 0x00, 0x00]).is_err(), "no compressed size");
        assert!(
            page_header(&[0x15, 0x00, 0x15, 0x14, 0x15, 0x01, 0x00]).is_err(),
            "negative size"
        );
    }

    #[test]
    fn real_footers_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for name in ["weather_ms_snappy.parquet", "types.parquet", "weather_us_zstd.parquet"] {
            let file = std::fs::read(dir.join(name)).unwrap();
            let n = file.len();
            let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
            check(&file[n - 8 - len..n - 8]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
