//! Unit tests of the parent module.

use super::*;

fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = DotStuffer::new();
    s.encode(body, &mut out);
    s.finish(&mut out);
    out
}

#[test]
fn terminator_with_and_without_trailing_crlf() {
    assert_eq!(stuff(b"hi"), b"hi\r\n.\r\n");
    assert_eq!(stuff(b"hi\r\n"), b"hi\r\n.\r\n");
    assert_eq!(stuff(b""), b".\r\n");
    assert_eq!(stuff(b"."), b"..\r\n.\r\n");
}

#[test]
fn sec_consult_smuggling_variants_never_end_data_early() {
    let variants: [&[u8]; 9] = [
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\r",
        b"\r.\n",
        b"\n.\r",
        b"\r\n\x00.\r\n",
        b"\r.\r\n",
        b"\r\n.\n",
    ];
    for v in variants {
        let mut body = b"A".to_vec();
        body.extend_from_slice(v);
        body.extend_from_slice(b"MAIL FROM:<evil@x>\r\n");
        if analyze(&body, LineEndings::Normalize).is_err() {
            continue; // the NUL variant is refused outright
        }
        let wire = stuff(&body);
        // The only ".\r\n" line is the terminator at the very end.
        let first_end = wire.windows(5).position(|w| w == b"\r\n.\r\n").unwrap();
        assert_eq!(first_end + 5, wire.len(), "{v:?} -> {wire:?}");
        assert!(destuff_strict(&wire).is_some());
    }
}

#[test]
fn every_split_gives_the_same_output() {
    let body = b".a\r\n..b\n\r.c\r\rd\r\n.\r\n\ne";
    let whole = stuff(body);
    for i in 0..=body.len() {
        for j in i..=body.len() {
            let mut out = Vec::new();
            let mut s = DotStuffer::new();
            s.encode(&body[..i], &mut out);
            s.encode(&body[i..j], &mut out);
            s.encode(&body[j..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, whole, "split at {i},{j}");
        }
    }
}

#[test]
fn analysis_limits_and_flags() {
    assert_eq!(analyze(b"a\0b", LineEndings::Normalize), Err(BodyError::Nul { offset: 1 }));
    let long = vec![b'x'; 999];
    assert!(matches!(analyze(&long, LineEndings::Normalize), Err(BodyError::LineTooLong { line: 1, .. })));
    let ok = vec![b'x'; 998];
    assert!(analyze(&ok, LineEndings::Normalize).is_ok());
    let info = analyze("caf\u{e9}\r\n".as_bytes(), LineEndings::Reject).unwrap();
    assert!(info.eight_bit && info.ends_with_crlf && !info.needs_normalization);
    assert_eq!(
        analyze(b"a\rb", LineEndings::Reject),
        Err(BodyError::BareLineEnding { byte: b'\r', offset: 1 })
    );
    let info = analyze(b"a\rb\n", LineEndings::Normalize).unwrap();
    assert_eq!(info.normalized_len, 6);
}

#[test]
fn normalizer_matches_analysis_length() {
    for body in [&b"a\rb\nc\r\n"[..], b"\r", b"\n\n", b"x\r\r\n"] {
        let mut out = Vec::new();
        let mut n = Normalizer::default();
        n.encode(body, &mut out);
        n.finish(&mut out);
        assert_eq!(out.len() as u64, analyze(body, LineEndings::Normalize).unwrap().normalized_len);
    }
}

/// Line-ending normalisation spelled out.
fn normalize_ref(body: &[u8]) -> Vec<u8> {
    let mut norm = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match (body[i], body.get(i + 1)) {
            (b'\r', Some(b'\n')) => i += 2,
            (b'\r' | b'\n', _) => i += 1,
            (b, _) => {
                norm.push(b);
                i += 1;
                continue;
            }
        }
        norm.extend_from_slice(b"\r\n");
    }
    norm
}

/// The DATA encoding spelled out: normalise, stuff each line, terminate.
fn reference(body: &[u8]) -> Vec<u8> {
    let norm = normalize_ref(body);
    let mut out = Vec::new();
    for line in norm.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    let end: &[u8] = if norm.is_empty() || norm.ends_with(b"\r\n") { b".\r\n" } else { b"\r\n.\r\n" };
    out.extend_from_slice(end);
    out
}

/// Every body of up to 7 octets over `a . CR LF`.
fn small_bodies() -> impl Iterator<Item = Vec<u8>> {
    const ALPHABET: [u8; 4] = [b'a', b'.', b'\r', b'\n'];
    (0..=7u32).flat_map(|len| {
        (0..4usize.pow(len)).map(move |mut n| {
            (0..len)
                .map(|_| {
                    let b = ALPHABET[n % 4];
                    n /= 4;
                    b
                })
                .collect()
        })
    })
}

#[test]
fn fast_paths_match_the_reference_on_every_small_body() {
    for body in small_bodies() {
        let want = reference(&body);
        assert_eq!(stuff(&body), want, "whole {body:?}");
        // In pieces of 1, 2 and 3 octets: clean and unclean pieces alternate.
        for size in 1..=3 {
            let mut out = Vec::new();
            let mut s = DotStuffer::new();
            for piece in body.chunks(size) {
                s.encode(piece, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(out, want, "pieces of {size}: {body:?}");
            let mut norm = Vec::new();
            let mut n = Normalizer::default();
            for piece in body.chunks(size) {
                n.encode(piece, &mut norm);
            }
            n.finish(&mut norm);
            assert_eq!(norm, normalize_ref(&body), "normalizer, pieces of {size}: {body:?}");
        }
        for policy in [LineEndings::Normalize, LineEndings::Reject] {
            assert_eq!(analyze(&body, policy), analyze_lines(&body, policy), "{body:?}");
        }
    }
}

#[test]
fn clean_analysis_finds_long_lines_anywhere() {
    let line = |n: usize| {
        let mut l = vec![b'x'; n];
        l.extend_from_slice(b"\r\n");
        l
    };
    for lens in [[998, 5, 998], [5, 999, 5], [997, 998, 999], [0, 0, 998], [1, 998, 0], [500, 499, 998]] {
        for tail in [0, 1, 998, 999] {
            let mut body: Vec<u8> = lens.iter().flat_map(|&n| line(n)).collect();
            body.extend(std::iter::repeat_n(b'y', tail));
            for policy in [LineEndings::Normalize, LineEndings::Reject] {
                assert_eq!(analyze(&body, policy), analyze_lines(&body, policy), "{lens:?} + {tail}");
            }
        }
    }
}

#[test]
fn strict_destuffer_refuses_bare_endings() {
    assert_eq!(destuff_strict(b"..a\r\n.\r\n"), Some(b".a\r\n".to_vec()));
    assert_eq!(destuff_strict(b"a\n.\r\n"), None);
    assert_eq!(destuff_strict(b"a\r\n.\r\nextra"), None);
}
