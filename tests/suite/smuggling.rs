//! Property test of the DATA encoder (RELIABILITY.md bar 1): arbitrary bodies biased
//! toward CR, LF, `.` and NUL, cut into arbitrary pieces. Invariants: NUL bodies are
//! refused by `analyze`; otherwise no bare CR, bare LF or NUL on the wire, exactly one
//! terminator and it is at the end, the output does not depend on the chunking, and the
//! strict decoder gives back the normalised body. The BDAT normaliser is held to the same.
//!
//! 10,000 cases in the normal suite. Long run:
//! `SMTPKIT_PROPTEST_CASES=1000000 cargo test --release --test suite smuggling`.

use proptest::prelude::*;
use smtpkit::proto::dot_stuff::__fuzz::{destuff_strict, encode_clean, encode_verbatim};
use smtpkit::proto::dot_stuff::{BodyError, DotStuffer, LineEndings, Normalizer, analyze};

fn cases() -> u32 {
    std::env::var("SMTPKIT_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Maps a uniform octet to one biased toward the octets that matter for smuggling: about
/// 22% each CR, LF and `.`, 3% NUL, the rest letters and arbitrary octets. A lookup table
/// keeps generation cheap in debug builds.
fn bias(b: u8) -> u8 {
    match b {
        0..=55 => b'\r',
        56..=111 => b'\n',
        112..=167 => b'.',
        168..=175 => 0,
        176..=223 => b'a' + (b - 176) % 26,
        _ => b.wrapping_mul(31),
    }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    // Mostly short bodies, where the interesting sequences are dense, and some longer
    // ones, still under the 998-octet line limit.
    (0u8..8)
        .prop_flat_map(|kind| {
            let len = if kind == 0 { 64..600 } else { 0..64 };
            prop::collection::vec(any::<u8>(), len)
        })
        .prop_map(|raw| raw.into_iter().map(bias).collect())
}

/// Reference normalisation, written independently of the encoder: CRLF stays, a bare CR
/// or bare LF becomes CRLF.
fn normalize(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut i = 0;
    while i < body.len() {
        match (body[i], body.get(i + 1)) {
            (b'\r', Some(b'\n')) => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            (b'\r' | b'\n', _) => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Cuts `body` at the given fractions (sorted, deduplicated) into pieces.
fn pieces<'a>(body: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in at {
        out.push(&body[start..cut]);
        start = cut;
    }
    out.push(&body[start..]);
    out
}

fn encode_data(chunks: &[&[u8]]) -> Vec<u8> {
    encode_with(chunks, DotStuffer::encode)
}

/// The DATA wire form of `chunks` fed to one encoder method, terminator included.
fn encode_with(chunks: &[&[u8]], method: fn(&mut DotStuffer, &[u8], &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = DotStuffer::new();
    for c in chunks {
        method(&mut s, c, &mut out);
    }
    s.finish(&mut out);
    out
}

fn encode_bdat(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = Normalizer::default();
    for c in chunks {
        n.encode(c, &mut out);
    }
    n.finish(&mut out);
    out
}

/// No bare CR, no bare LF, no NUL.
fn assert_clean(wire: &[u8]) -> Result<(), TestCaseError> {
    for (i, &b) in wire.iter().enumerate() {
        prop_assert_ne!(b, 0, "NUL at {}", i);
        if b == b'\r' {
            prop_assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR at {}", i);
        }
        if b == b'\n' {
            prop_assert!(i > 0 && wire[i - 1] == b'\r', "bare LF at {}", i);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dot_stuffing_never_smuggles(body in body(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let info = match analyze(&body, LineEndings::Normalize) {
            Err(BodyError::Nul { offset }) => {
                prop_assert_eq!(body.iter().position(|&b| b == 0), Some(offset));
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
            Ok(info) => info,
        };
        prop_assert!(!body.contains(&0), "NUL body accepted");
        let normalized = normalize(&body);
        prop_assert_eq!(info.normalized_len, normalized.len() as u64);
        prop_assert_eq!(info.ends_with_crlf, normalized.is_empty() || normalized.ends_with(b"\r\n"));
        prop_assert_eq!(info.needs_normalization, normalized.len() != body.len());
        let dot_lines = normalized.first() == Some(&b'.') || normalized.windows(2).any(|w| w == b"\n.");
        prop_assert_eq!(info.dot_lines, dot_lines);

        let whole = encode_data(&[&body]);
        let split = encode_data(&pieces(&body, &cuts));
        prop_assert_eq!(&split, &whole, "output depends on chunking");
        let one_by_one: Vec<&[u8]> = body.chunks(1).collect();
        prop_assert_eq!(&encode_data(&one_by_one), &whole, "byte-at-a-time output differs");

        assert_clean(&whole)?;
        // Exactly one line that is a lone dot, and it is the last one.
        let lone_dots = whole.split(|&b| b == b'\n').filter(|l| *l == b".\r").count();
        prop_assert_eq!(lone_dots, 1);
        prop_assert!(whole == b".\r\n" || whole.ends_with(b"\r\n.\r\n"));
        // The first CRLF.CRLF is the end (or the wire is just the terminator).
        if let Some(first) = whole.windows(5).position(|w| w == b"\r\n.\r\n") {
            prop_assert_eq!(first + 5, whole.len());
        }

        let mut expected = normalized.clone();
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(destuff_strict(&whole), Some(expected));

        // BDAT: normalised, chunking-independent, no stuffing and no terminator.
        let bdat = encode_bdat(&pieces(&body, &cuts));
        prop_assert_eq!(&bdat, &normalized);
        prop_assert_eq!(&encode_bdat(&one_by_one), &normalized);
    }

    /// The session encodes bodies `analyze` found clean with `encode_clean`, which skips
    /// the line-ending checks: it must match `encode` for every such body and chunking,
    /// pieces that split a CRLF included.
    #[test]
    fn clean_bodies_encode_the_same_on_the_fast_path(
        lines in prop::collection::vec(prop::collection::vec(prop::sample::select(&b".a.b..xyz"[..]), 0..6), 0..12),
        partial in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut body = lines.join(&b"\r\n"[..]);
        if !partial && !lines.is_empty() {
            body.extend_from_slice(b"\r\n");
        }
        let info = analyze(&body, LineEndings::Normalize).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert!(!info.needs_normalization);
        let starts_with_dot = body.first() == Some(&b'.') || body.windows(2).any(|w| w == b"\n.");
        prop_assert_eq!(info.dot_lines, starts_with_dot);
        let expected = encode_data(&[&body]);
        let cut = pieces(&body, &cuts);
        prop_assert_eq!(&encode_with(&cut, encode_clean), &expected);
        if !info.dot_lines {
            prop_assert_eq!(&encode_with(&cut, encode_verbatim), &expected);
        }
    }

    #[test]
    fn reject_policy_refuses_exactly_the_bare_line_endings(body in body()) {
        let result = analyze(&body, LineEndings::Reject);
        let bare = normalize(&body).len() != body.len();
        match result {
            Err(BodyError::Nul { .. }) => prop_assert!(body.contains(&0)),
            Err(BodyError::BareLineEnding { byte, offset }) => {
                prop_assert!(bare && !body.contains(&0));
                prop_assert_eq!(body[offset], byte);
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
            Ok(_) => prop_assert!(!bare && !body.contains(&0)),
        }
    }
}

/// The SEC Consult variants embedded at every offset of a body: never a second end.
#[test]
fn smuggling_variants_at_every_offset() {
    let variants: [&[u8]; 9] = [
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\r",
        b"\r.\n",
        b"\n.\r",
        b"\r.\r\n",
        b"\r\n.\n",
        b"\r\n.\r\n",
    ];
    let base = b"Subject: x\r\n\r\nline one\r\nline two";
    let mut checked = 0;
    for v in variants {
        for at in 0..=base.len() {
            let mut body = base[..at].to_vec();
            body.extend_from_slice(v);
            body.extend_from_slice(b"MAIL FROM:<evil@x>\r\n");
            body.extend_from_slice(&base[at..]);
            let wire = encode_data(&[&body]);
            let first = wire.windows(5).position(|w| w == b"\r\n.\r\n").expect("terminator");
            assert_eq!(first + 5, wire.len(), "{v:?} at {at}");
            assert!(destuff_strict(&wire).is_some(), "{v:?} at {at}");
            checked += 1;
        }
    }
    assert_eq!(checked, 9 * (base.len() + 1));
}
