use super::*;
use crate::DataPoint;

/// `pickle.dumps([('a.b;h=x', (1700000000, 1)), ('a.b;h=x', (1700000001.5, 2.5)), ('c', ('1700000002', '3.25'))], protocol=N)` for N = 0..=5, made with CPython 3.11.
const CARBON_FRAMES: [&[u8]; 6] = [
    b"(lp0\n(Va.b;h=x\np1\n(I1700000000\nI1\ntp2\ntp3\na(g1\n(F1700000001.5\nF2.5\ntp4\ntp5\na(Vc\np6\n(V1700000002\np7\nV3.25\np8\ntp9\ntp10\na.",
    b"]q\x00((X\x07\x00\x00\x00a.b;h=xq\x01(J\x00\xf1SeK\x01tq\x02tq\x03(h\x01(GA\xd9T\xfc@`\x00\x00G@\x04\x00\x00\x00\x00\x00\x00tq\x04tq\x05(X\x01\x00\x00\x00cq\x06(X\n\x00\x00\x001700000002q\x07X\x04\x00\x00\x003.25q\x08tq\x09tq\ne.",
    b"\x80\x02]q\x00(X\x07\x00\x00\x00a.b;h=xq\x01J\x00\xf1SeK\x01\x86q\x02\x86q\x03h\x01GA\xd9T\xfc@`\x00\x00G@\x04\x00\x00\x00\x00\x00\x00\x86q\x04\x86q\x05X\x01\x00\x00\x00cq\x06X\n\x00\x00\x001700000002q\x07X\x04\x00\x00\x003.25q\x08\x86q\x09\x86q\ne.",
    b"\x80\x03]q\x00(X\x07\x00\x00\x00a.b;h=xq\x01J\x00\xf1SeK\x01\x86q\x02\x86q\x03h\x01GA\xd9T\xfc@`\x00\x00G@\x04\x00\x00\x00\x00\x00\x00\x86q\x04\x86q\x05X\x01\x00\x00\x00cq\x06X\n\x00\x00\x001700000002q\x07X\x04\x00\x00\x003.25q\x08\x86q\x09\x86q\ne.",
    b"\x80\x04\x95N\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x07a.b;h=x\x94J\x00\xf1SeK\x01\x86\x94\x86\x94h\x01GA\xd9T\xfc@`\x00\x00G@\x04\x00\x00\x00\x00\x00\x00\x86\x94\x86\x94\x8c\x01c\x94\x8c\n1700000002\x94\x8c\x043.25\x94\x86\x94\x86\x94e.",
    b"\x80\x05\x95N\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x07a.b;h=x\x94J\x00\xf1SeK\x01\x86\x94\x86\x94h\x01GA\xd9T\xfc@`\x00\x00G@\x04\x00\x00\x00\x00\x00\x00\x86\x94\x86\x94\x8c\x01c\x94\x8c\n1700000002\x94\x8c\x043.25\x94\x86\x94\x86\x94e.",
];
/// A pickle whose loading runs `os.system("touch /tmp/kairosd-pwned")` (GLOBAL + REDUCE), protocol 0 and 2.
const EVIL_0: &[u8] = b"(lp0\n(Va\np1\n(I1\ncposix\nsystem\np2\n(Vtouch /tmp/kairosd-pwned\np3\ntp4\nRp5\ntp6\ntp7\na.";
const EVIL_2: &[u8] = b"\x80\x02]q\x00X\x01\x00\x00\x00aq\x01K\x01cposix\nsystem\nq\x02X\x18\x00\x00\x00touch /tmp/kairosd-pwnedq\x03\x85q\x04Rq\x05\x86q\x06\x86q\x07a.";
const EVIL_4: &[u8] = b"\x80\x04\x95@\x00\x00\x00\x00\x00\x00\x00]\x94\x8c\x01a\x94K\x01\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x18touch /tmp/kairosd-pwned\x94\x85\x94R\x94\x86\x94\x86\x94a.";
/// Python 2 style: protocol 0 with byte strings (STRING) and a long (LONG).
/// CPython 2.7 `pickle.dumps([('py2.m;h=a', (1700000000L, 7)), (u'py2.u', (1700000001.0, 2.5))], protocol=N)`, N = 0 and 2: byte strings and longs.
const PY2_FRAMES: [&[u8]; 2] = [
    b"(lp0\n(S'py2.m;h=a'\np1\n(L1700000000L\nI7\ntp2\ntp3\na(Vpy2.u\np4\n(F1700000001.0\nF2.5\ntp5\ntp6\na.",
    b"\x80\x02]q\x00(U\x09py2.m;h=aq\x01\x8a\x04\x00\xf1SeK\x07\x86q\x02\x86q\x03X\x05\x00\x00\x00py2.uq\x04GA\xd9T\xfc@@\x00\x00G@\x04\x00\x00\x00\x00\x00\x00\x86q\x05\x86q\x06e.",
];

const NOW: i64 = 1_800_000_000_000;

fn decode(frame: &[u8]) -> (Result<Decoded, PickleError>, Vec<DataPoint>, Vec<String>) {
    decode_with(frame, Limits::default())
}

fn decode_with(frame: &[u8], limits: Limits) -> (Result<Decoded, PickleError>, Vec<DataPoint>, Vec<String>) {
    let mapper = PathMapper::Graphite;
    let run = |cache: &mut SeriesCache| {
        let mut batch = PointBatch::new();
        let mut errors = Vec::new();
        let r = decode_frame(
            frame,
            limits,
            NOW,
            &mapper,
            &mut batch,
            &mut mapper.scratch(),
            cache,
            &mut |e| errors.push(e.to_string()),
        );
        (r, batch.to_points(), errors)
    };
    let uncached = run(&mut SeriesCache::new(CacheLimits::OFF));
    // Every frame again through a cache, twice (the second time its paths hit): the
    // same points and the same messages.
    let mut cache = SeriesCache::default();
    for pass in 0..2 {
        let cached = run(&mut cache);
        assert_eq!(cached.0, uncached.0, "pass {pass}");
        assert_eq!(cached.1, uncached.1, "pass {pass}");
        assert_eq!(cached.2, uncached.2, "pass {pass}");
    }
    uncached
}

fn summary(points: &[DataPoint]) -> Vec<(String, usize, i64, Value)> {
    points
        .iter()
        .map(|p| (p.metric.clone(), p.tags.len(), p.timestamp, p.value))
        .collect()
}

#[test]
fn carbon_frames_in_every_protocol() {
    let want = vec![
        ("a.b".to_string(), 1, 1_700_000_000_000, Value::Long(1)),
        ("a.b".to_string(), 1, 1_700_000_001_000, Value::Double(2.5)),
        ("c".to_string(), 0, 1_700_000_002_000, Value::Double(3.25)),
    ];
    for (proto, frame) in CARBON_FRAMES.iter().enumerate() {
        let (r, points, errors) = decode(frame);
        assert_eq!(
            r,
            Ok(Decoded {
                points: 3,
                ..Decoded::NOTHING
            }),
            "protocol {proto}"
        );
        assert!(errors.is_empty(), "protocol {proto}: {errors:?}");
        assert_eq!(summary(&points), want, "protocol {proto}");
    }
    for (i, frame) in PY2_FRAMES.iter().enumerate() {
        let (r, points, errors) = decode(frame);
        assert!(r.is_ok() && errors.is_empty(), "py2 frame {i}: {r:?} {errors:?}");
        assert_eq!(
            summary(&points),
            vec![
                ("py2.m".to_string(), 1, 1_700_000_000_000, Value::Long(7)),
                ("py2.u".to_string(), 0, 1_700_000_001_000, Value::Double(2.5)),
            ],
            "py2 frame {i}"
        );
    }
}

#[test]
fn globals_and_calls_are_refused_before_anything_runs() {
    for frame in [EVIL_0, EVIL_2, EVIL_4] {
        let (r, points, _) = decode(frame);
        let err = r.unwrap_err();
        assert!(
            matches!(
                err,
                PickleError::Opcode {
                    name: "GLOBAL" | "STACK_GLOBAL",
                    ..
                }
            ),
            "{err}"
        );
        assert!(points.is_empty());
    }
    assert!(!std::path::Path::new("/tmp/kairosd-pwned").exists());
    for (frame, name) in [
        (&b"\x80\x02}q\x00."[..], "EMPTY_DICT"),
        (b"\x80\x02K\x012.", "DUP"),
        (b"\x80\x02(K\x010K\x01.", "POP"),
        (b"\x80\x05\x97.", "NEXT_BUFFER"),
        (b"\x80\x02\x82\x01.", "EXT1"),
        (b"(i__builtin__\nobject\n.", "INST"),
    ] {
        let err = decode(frame).0.unwrap_err();
        assert!(
            matches!(err, PickleError::Opcode { name: n, .. } if n == name),
            "{name}: {err}"
        );
    }
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    // 10,000 nested lists: `[[[[...]]]]` built with EMPTY_LIST + APPEND at the end.
    let mut frame = b"\x80\x02".to_vec();
    frame.extend(std::iter::repeat_n(b']', 10_000));
    frame.extend(std::iter::repeat_n(b'a', 9_999));
    frame.push(b'.');
    assert!(matches!(decode(&frame).0, Err(PickleError::TooDeep { .. })));
    // 10,000 open MARKs.
    let mut frame = vec![b'('; 10_000];
    frame.extend(std::iter::repeat_n(b'l', 10_000));
    frame.push(b'.');
    assert!(matches!(decode(&frame).0, Err(PickleError::TooDeep { .. })));
    // Tuples inside tuples.
    let mut frame = b"\x80\x02K\x01".to_vec();
    frame.extend(std::iter::repeat_n(0x85, 10_000));
    frame.push(b'.');
    assert!(matches!(decode(&frame).0, Err(PickleError::TooDeep { .. })));
}

#[test]
fn memo_references_to_containers_are_refused() {
    // A list memoized, then referenced twice per level: exponential if cloned.
    let mut frame = b"\x80\x02]q\x00".to_vec();
    for _ in 0..100_000 {
        frame.extend_from_slice(b"h\x00");
    }
    frame.extend_from_slice(b".");
    assert!(matches!(
        decode(&frame).0,
        Err(PickleError::MemoContainer { id: 0, .. })
    ));
}

#[test]
fn many_references_to_a_string_are_bounded() {
    // 100k references to one string inside a list: allowed (linear), every item refused.
    let mut frame = b"\x80\x02](X\x03\x00\x00\x00abcq\x00".to_vec();
    for _ in 0..100_000 {
        frame.extend_from_slice(b"h\x00");
    }
    frame.extend_from_slice(b"e.");
    let (r, points, errors) = decode(&frame);
    assert_eq!(r.unwrap().rejected, 100_001);
    assert!(points.is_empty());
    assert!(errors[0].contains("pickled point 0: it is a string"), "{}", errors[0]);
    // The same with a 1 KB string runs into the clone cap.
    let mut frame = b"\x80\x02](X\x00\x04\x00\x00".to_vec();
    frame.extend(std::iter::repeat_n(b'x', 1024));
    frame.extend_from_slice(b"q\x00");
    for _ in 0..100_000 {
        frame.extend_from_slice(b"h\x00");
    }
    frame.extend_from_slice(b"e.");
    assert!(matches!(decode(&frame).0, Err(PickleError::TooMuchCloning { .. })));
}

#[test]
fn size_caps() {
    let limits = Limits {
        max_marks: 2,
        max_values: 10,
        ..Limits::default()
    };
    assert!(matches!(
        decode_with(CARBON_FRAMES[0], limits).0,
        Err(PickleError::TooManyMarks { max: 2 })
    ));
    assert!(matches!(
        decode_with(CARBON_FRAMES[2], limits).0,
        Err(PickleError::TooManyValues { max: 10 })
    ));
    // A 1 MB decimal integer would take serde-pickle quadratic time.
    let mut frame = b"L".to_vec();
    frame.extend(std::iter::repeat_n(b'9', 1 << 20));
    frame.extend_from_slice(b"L\n.");
    assert!(matches!(decode(&frame).0, Err(PickleError::NumberTooLong { .. })));
    let frame = b"\x80\x02\x8b\x00\x00\x10\x00.";
    assert!(matches!(decode(frame).0, Err(PickleError::NumberTooLong { .. })));
}

#[test]
fn malformed_frames_are_refused_whole() {
    for frame in [
        &b""[..],
        b"\x80\x02",
        b"\x80\x02]",
        b"\x80\x06].",
        b"\x80\x02].extra",
        b"\x80\x02X\xff\xff\xff\x7fab.",
        b"\x80\x02K\x01a.",
        b"\x80\x02K\x01K\x02.",
        b"\x80\x02t.",
        b"\x80\x02h\x05.",
        b"\x80\x02]K\x01\x86e.",
    ] {
        let (r, points, _) = decode(frame);
        assert!(r.is_err(), "{frame:?} was accepted");
        assert!(points.is_empty());
    }
    assert_eq!(decode(b"\x80\x02K\x01.").0, Err(PickleError::NotAList("an integer")));
}

#[test]
fn bad_points_are_skipped_and_the_rest_kept() {
    // [("ok", (1, 1)), "junk", ("nan", (1, nan)), ("m;bad", (1, 1)), ("ts", ("x", 1)),
    //  ("now", (-1, "7")), ("big", (1, 2**70)), (b"bytes", (1.9, b"2.5"))]
    let frame = b"\x80\x02](X\x02\x00\x00\x00okK\x01K\x01\x86\x86X\x04\x00\x00\x00junk\
X\x03\x00\x00\x00nanK\x01G\x7f\xf8\x00\x00\x00\x00\x00\x00\x86\x86\
X\x05\x00\x00\x00m;badK\x01K\x01\x86\x86\
X\x02\x00\x00\x00tsX\x01\x00\x00\x00xK\x01\x86\x86\
X\x03\x00\x00\x00nowJ\xff\xff\xff\xffX\x01\x00\x00\x007\x86\x86\
X\x03\x00\x00\x00bigK\x01\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x40\x86\x86\
C\x05bytesG?\xfe\x66\x66\x66\x66\x66\x66C\x032.5\x86\x86e.";
    let (r, points, errors) = decode(frame);
    assert_eq!(
        r,
        Ok(Decoded {
            points: 4,
            rejected: 4,
            reply: false
        }),
        "{errors:?}"
    );
    assert_eq!(
        summary(&points),
        vec![
            ("ok".to_string(), 0, 1000, Value::Long(1)),
            ("now".to_string(), 0, NOW, Value::Long(7)),
            ("big".to_string(), 0, 1000, Value::Double(2f64.powi(70))),
            ("bytes".to_string(), 0, 1000, Value::Double(2.5)),
        ]
    );
    assert!(
        errors[0].starts_with("pickled point 1: it is a string"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("not a finite number"), "{}", errors[1]);
    assert!(errors[2].contains("tag segment 'bad'"), "{}", errors[2]);
    assert!(errors[3].contains("timestamp"), "{}", errors[3]);
}

proptest::proptest! {
    /// Whatever the bytes, validation and decoding return; a frame that decodes adds
    /// exactly the points it counts.
    #[test]
    fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let (r, points, errors) = decode(&data);
        if let Ok(d) = r {
            proptest::prop_assert_eq!(d.points as usize, points.len());
            proptest::prop_assert_eq!(d.rejected as usize, errors.len());
        }
    }

    /// Mutating a real frame: still no panic.
    #[test]
    fn mutated_frames_never_panic(i in 0usize..6, pos in 0usize..120, byte in proptest::prelude::any::<u8>()) {
        let mut frame = CARBON_FRAMES[i].to_vec();
        let p = pos % frame.len();
        frame[p] = byte;
        let _ = decode(&frame);
    }
}
