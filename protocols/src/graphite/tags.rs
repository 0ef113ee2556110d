//! Graphite 1.1 tagged paths: `metric;tag=value;tag2=value2`.
//!
//! The rules are carbon's (`TaggedSeries`): the part before the first `;` is the metric
//! and may not be empty; each later segment is split at its first `=` (so a value may
//! hold `=`); a tag name is not empty and holds none of `;!^=`; a value is not empty and
//! does not start with `~`. A later tag of the same name overrides an earlier one. The
//! `name` tag is the metric itself in Graphite, so a `name=` segment is not stored as a
//! tag. A bad segment makes the line bad, never the connection. A path without `;` is
//! stored as the metric with no tags.

use crate::datapoint::{PointBatch, Value};

use super::path::{quoted, sort_dedup_last, PathError, PathScratch};

const NAME_FORBIDDEN: &[char] = &['!', '^'];

pub(crate) fn push(
    path: &str,
    timestamp: i64,
    value: Value,
    batch: &mut PointBatch,
    scratch: &mut PathScratch,
) -> Result<(), PathError> {
    let Some(first) = memchr::memchr(b';', path.as_bytes()) else {
        batch.push_parts(path, [], timestamp, value, 0);
        return Ok(());
    };
    let metric = &path[..first];
    if metric.is_empty() || metric.bytes().all(|b| b == b'~') {
        return Err(PathError::Empty);
    }
    let spans = &mut scratch.tags;
    spans.clear();
    let mut start = first + 1;
    loop {
        // Segments are short: a plain scan beats memchr's set-up here.
        let end = path.as_bytes()[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(path.len(), |i| start + i);
        let segment = &path[start..end];
        let Some(eq) = segment.bytes().position(|b| b == b'=') else {
            return Err(PathError::TagFormat {
                path: quoted(path),
                segment: quoted(segment),
            });
        };
        let (name, value) = (&segment[..eq], &segment[eq + 1..]);
        if name.is_empty() {
            return Err(PathError::TagFormat {
                path: quoted(path),
                segment: quoted(segment),
            });
        }
        if let Some(ch) = name.chars().find(|c| NAME_FORBIDDEN.contains(c)) {
            return Err(PathError::TagNameChar {
                path: quoted(path),
                tag: quoted(name),
                ch,
            });
        }
        if value.is_empty() {
            return Err(PathError::TagValueEmpty {
                path: quoted(path),
                tag: quoted(name),
            });
        }
        if value.starts_with('~') {
            return Err(PathError::TagValueTilde {
                path: quoted(path),
                tag: quoted(name),
            });
        }
        if name != "name" {
            spans.push((start..start + eq, start + eq + 1..end));
        }
        if end == path.len() {
            break;
        }
        start = end + 1;
    }
    sort_dedup_last(spans, path);
    let pairs = spans.iter().map(|(n, v)| (&path[n.clone()], &path[v.clone()]));
    batch.push_parts(metric, pairs, timestamp, value, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataPoint;

    fn map(path: &str) -> Result<DataPoint, PathError> {
        let mut batch = PointBatch::new();
        push(path, 1000, Value::Long(1), &mut batch, &mut PathScratch::default())?;
        assert_eq!(batch.len(), 1);
        Ok(batch.to_points().remove(0))
    }

    fn tags(p: &DataPoint) -> Vec<(&str, &str)> {
        p.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn plain_path_is_the_metric_with_no_tags() {
        let p = map("servers.web01.cpu").unwrap();
        assert_eq!(p.metric, "servers.web01.cpu");
        assert!(p.tags.is_empty());
    }

    #[test]
    fn graphite_1_1_tags() {
        let p = map("disk.used;rack=a1;datacenter=dc1;server=web01").unwrap();
        assert_eq!(p.metric, "disk.used");
        assert_eq!(
            tags(&p),
            vec![("datacenter", "dc1"), ("rack", "a1"), ("server", "web01")]
        );
        // A value may hold `=` and `~` after its first character; the later duplicate wins;
        // `name` is the metric itself.
        let p = map("m;q=a=b;t=x~y;t=z;name=other").unwrap();
        assert_eq!(p.metric, "m");
        assert_eq!(tags(&p), vec![("q", "a=b"), ("t", "z")]);
    }

    #[test]
    fn bad_tags_make_the_line_bad() {
        for (path, want) in [
            (";a=b", "the metric path is empty"),
            ("~~;a=b", "the metric path is empty"),
            ("m;ab", "tag segment 'ab' is not 'name=value'"),
            ("m;=b", "tag segment '=b' is not 'name=value'"),
            ("m;a=b;", "tag segment '' is not 'name=value'"),
            ("m;a!=b", "tag name 'a!' may not contain '!'"),
            ("m;a^x=b", "tag name 'a^x' may not contain '^'"),
            ("m;a=", "the value of tag 'a' is empty"),
            ("m;a=~b", "the value of tag 'a' may not start with '~'"),
        ] {
            let err = map(path).unwrap_err().to_string();
            assert!(err.contains(want), "{path}: {err}");
        }
    }
}
