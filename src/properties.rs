//! A reader for Java `.properties` files, the format of KairosDB's `kairosdb.properties`.
//!
//! Only what real config files use: `#`/`!` comments, `key=value`, `key: value` and
//! `key value` separators, backslash line continuations, and the `\t \n \r \f \uXXXX`
//! escapes. Later duplicates win, as `java.util.Properties` does.

/// One key with the line it came from, so errors can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses the text of a properties file into entries in file order.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues.
        let mut logical = trimmed.to_string();
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        entries.push(Entry {
            key: unescape(key),
            value: unescape(value),
            line: index + 1,
        });
    }
    entries
}

fn ends_with_continuation(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (key, rest)
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text).into_iter().map(|e| (e.key, e.value)).collect()
    }

    #[test]
    fn separators_comments_and_escapes() {
        let got = kv("# c\n! c\n\na=1\nb : 2\nc 3\n  d=  x y \ne=\\u0041\\tz\nf\n");
        let want = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "x y "),
            ("e", "A\tz"),
            ("f", ""),
        ];
        let want: Vec<_> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn continuation_lines_and_line_numbers() {
        let entries = parse("a=1,\\\n   2\nb=\\\\\nc=3");
        assert_eq!(entries[0].value, "1,2");
        assert_eq!(entries[1].value, "\\");
        assert_eq!(entries[2].line, 4);
    }

    #[test]
    fn escaped_separator_in_key() {
        assert_eq!(kv("a\\=b=c"), vec![("a=b".to_string(), "c".to_string())]);
    }
}
