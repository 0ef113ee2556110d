//! Any byte stream through both framers, whole and cut into random pieces the way a TCP
//! transport reads it (the unused tail kept, the next read appended): the frames must
//! be the same either way, a line frame never holds a `\n` or exceeds the limit, a
//! too-long line reports more than the limit, and a length-prefixed frame is exactly
//! what its header announced.
#![no_main]

use kairos_protocols::framing::{Frame, Framer, LengthPrefixed, LineFramer};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Out {
    Data(Vec<u8>),
    TooLong(usize),
    Error(String),
}

fn run<F: Framer>(mut framer: F, data: &[u8], cuts: &[usize]) -> Vec<Out> {
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut pieces: Vec<&[u8]> = Vec::new();
    for &c in cuts {
        let end = (at + c).min(data.len());
        pieces.push(&data[at..end]);
        at = end;
    }
    pieces.push(&data[at..]);
    let last = pieces.len() - 1;
    let mut fed = 0;
    for (i, piece) in pieces.into_iter().enumerate() {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let mut frames = Vec::new();
        let r = framer.split(&buf, i == last, |f| {
            frames.push(match f {
                Frame::Data(d) => Out::Data(d.to_vec()),
                Frame::TooLong { len } => Out::TooLong(len),
            })
        });
        out.extend(frames);
        match r {
            Ok(used) => {
                assert!(used <= buf.len());
                buf.drain(..used);
            }
            Err(e) => {
                out.push(Out::Error(e.to_string()));
                return out;
            }
        }
        // What a cut-off stream would report: at least what is still buffered, and for
        // the line framer also the part of a too-long line already dropped, so never
        // more than the bytes fed so far.
        let pending = framer.pending(buf.len());
        assert!(pending >= buf.len() && pending <= fed, "pending {pending}");
        let _ = framer.needed(&buf);
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&[limit, seed], data)) = input.split_first_chunk::<2>().map(|(h, d)| (h, d)) else {
        return;
    };
    let max = 1 + limit as usize * 4;
    let mut x = u64::from(seed) | 1;
    let cuts: Vec<usize> = (0..16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 64) as usize
        })
        .collect();

    let whole = run(LineFramer::new(max), data, &[]);
    assert_eq!(run(LineFramer::new(max), data, &cuts), whole);
    for f in &whole {
        match f {
            Out::Data(d) => {
                assert!(!d.contains(&b'\n'));
                assert!(
                    d.len() <= max + 1,
                    "a line of {} bytes passed a limit of {max}",
                    d.len()
                );
            }
            Out::TooLong(len) => assert!(*len > max),
            Out::Error(_) => panic!("the line framer has no fatal errors"),
        }
    }

    let whole = run(LengthPrefixed::new(max), data, &[]);
    assert_eq!(run(LengthPrefixed::new(max), data, &cuts), whole);
    for f in &whole {
        match f {
            Out::Data(d) => assert!(d.len() <= max),
            Out::TooLong(_) => panic!("length-prefixed frames are never TooLong"),
            Out::Error(_) => {}
        }
    }
});
