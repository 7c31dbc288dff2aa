//! DATA encoder, differential against the strict decoder: any body `analyze(Normalize)`
//! accepts, encoded in fuzz-chosen pieces, gives a wire form that `destuff_strict` accepts
//! and decodes to the normalised body, with exactly one terminator, no bare CR or LF and
//! no NUL. `analyze` refuses exactly NUL and overlong lines, and `Reject` refuses exactly
//! the bodies with a bare CR or LF (at the first one).
//!
//! Input: one control byte (seeds the piece sizes), then the body.

use smtpkit::proto::dot_stuff::__fuzz::{destuff_strict, encode_analyzed, encode_clean, encode_verbatim};
use smtpkit::proto::dot_stuff::{BodyError, DotStuffer, LineEndings, MAX_LINE, Normalizer, analyze};

/// Receivers more lenient than RFC 5321 (SEC Consult's SMTP smuggling research): each must
/// still see the end of data only at the real terminator.
#[derive(Clone, Copy, Debug)]
enum Lenient {
    /// A bare LF ends a line.
    LfEol,
    /// A bare CR or a bare LF ends a line.
    CrEol,
    /// NUL octets are dropped before the lines are read.
    NulStrip,
}

/// Where a lenient receiver sees the end of data: just past the first line that is a lone
/// dot (the start of the data counts as a line start).
fn lenient_end(wire: &[u8], model: Lenient) -> Option<usize> {
    let mut line: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < wire.len() {
        let b = wire[i];
        let eol = match (model, b, wire.get(i + 1)) {
            (_, b'\r', Some(b'\n')) => 2,
            (Lenient::LfEol, b'\n', _) | (Lenient::CrEol, b'\r' | b'\n', _) => 1,
            _ => 0,
        };
        if eol > 0 {
            if line == b"." {
                return Some(i + eol);
            }
            line.clear();
            i += eol;
            continue;
        }
        if !(matches!(model, Lenient::NulStrip) && b == 0) {
            line.push(b);
        }
        i += 1;
    }
    None
}

/// Reference normalisation: CRLF stays, a bare CR or bare LF becomes CRLF. Also returns the
/// offset of the first bare line ending.
fn normalise(body: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut first_bare = None;
    let mut i = 0;
    while i < body.len() {
        match (body[i], body.get(i + 1)) {
            (b'\r', Some(b'\n')) => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            (b'\r' | b'\n', _) => {
                first_bare.get_or_insert(i);
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, first_bare)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Splits `body` into pieces whose sizes come from `seed`.
fn pieces(body: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) << 16 | body.len() as u32 | 1;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = match state % 4 {
            0 => 0, // an empty piece must change nothing
            1 => 1,
            2 => (state >> 8) as usize % 8 + 1,
            _ => (state >> 8) as usize % 200 + 1,
        };
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

fn stuff<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    stuff_with(parts, DotStuffer::encode)
}

/// The DATA wire form of `parts` fed to one encoder method, terminator included.
fn stuff_with<'a>(
    parts: impl IntoIterator<Item = &'a [u8]>,
    mut method: impl FnMut(&mut DotStuffer, &[u8], &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = DotStuffer::new();
    for p in parts {
        method(&mut s, p, &mut out);
    }
    s.finish(&mut out);
    out
}

fn normalize_bdat<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = Normalizer::default();
    for p in parts {
        n.encode(p, &mut out);
    }
    n.finish(&mut out);
    out
}

/// The fuzz target and corpus replay entry point.
pub fn check(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else { return };
    let (normal, first_bare) = normalise(body);
    let nul = body.iter().position(|&b| b == 0);
    let longest = normal.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).len()).max();
    let too_long = longest.unwrap_or(0) > MAX_LINE;

    let normalized = analyze(body, LineEndings::Normalize);
    let rejected = analyze(body, LineEndings::Reject);
    match (&normalized, nul) {
        (Err(BodyError::Nul { offset }), Some(at)) => assert_eq!(*offset, at),
        (_, Some(at)) => panic!("NUL at {at} not refused: {normalized:?}"),
        (Err(BodyError::LineTooLong { len, .. }), None) => assert!(too_long && *len > MAX_LINE),
        (Err(e), None) => panic!("Normalize refused a body without NUL: {e:?}"),
        (Ok(_), None) => assert!(!too_long, "a line over {MAX_LINE} octets was accepted"),
    }
    match (&rejected, &normalized) {
        (Err(BodyError::Nul { .. }), Err(BodyError::Nul { .. })) => {}
        (Err(BodyError::BareLineEnding { byte, offset }), _) => {
            assert_eq!(Some(*offset), first_bare);
            assert_eq!(body[*offset], *byte);
        }
        (Err(BodyError::LineTooLong { .. }), _) => assert!(too_long),
        (Ok(info), Ok(n)) => {
            assert_eq!(first_bare, None, "Reject accepted a bare line ending");
            assert_eq!(info, n);
        }
        (r, n) => panic!("Reject {r:?} vs Normalize {n:?}"),
    }
    if normalized.is_ok() && rejected.is_err() {
        assert!(first_bare.is_some(), "Reject refused a body without bare CR/LF: {rejected:?}");
    }
    let Ok(info) = normalized else { return };

    assert_eq!(info.normalized_len, normal.len() as u64);
    assert_eq!(info.needs_normalization, first_bare.is_some());
    assert_eq!(info.ends_with_crlf, normal.is_empty() || normal.ends_with(b"\r\n"));
    assert_eq!(info.eight_bit, body.iter().any(|&b| b >= 0x80));

    let whole = stuff([body]);
    let parts = pieces(body, seed);
    assert_eq!(stuff(parts.iter().copied()), whole, "output depends on the split");
    assert_eq!(stuff(body.chunks(1)), whole, "one byte at a time");

    // The session's fast paths for bodies found CRLF-clean give the same wire form.
    let dot_lines = normal.first() == Some(&b'.') || count(&normal, b"\n.") > 0;
    assert_eq!(info.dot_lines, dot_lines, "dot_lines");
    if !info.needs_normalization {
        assert_eq!(stuff_with(parts.iter().copied(), encode_clean), whole, "encode_clean");
        if !info.dot_lines {
            assert_eq!(stuff_with(parts.iter().copied(), encode_verbatim), whole, "encode_verbatim");
        }
    }
    // What the session runs: the path chosen from the analysis.
    let analyzed = stuff_with(parts.iter().copied(), |s, p, out| encode_analyzed(s, &info, p, out));
    assert_eq!(analyzed, whole, "encode_analyzed");

    // The strict receiver gets back the normalised body (plus the CRLF the encoder adds to an
    // unfinished last line).
    let mut expected = normal.clone();
    if !info.ends_with_crlf {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(destuff_strict(&whole).as_deref(), Some(&expected[..]), "wire {whole:?}");

    // Exactly one terminator, at the very end.
    assert!(whole.ends_with(b".\r\n"));
    if whole.starts_with(b".\r\n") {
        assert_eq!(whole.len(), 3, "terminator at the start of a non-empty body");
    } else {
        assert_eq!(count(&whole, b"\r\n.\r\n"), 1, "smuggled terminator in {whole:?}");
    }
    // Lenient receivers see the end of data only at the very end too.
    for model in [Lenient::LfEol, Lenient::CrEol, Lenient::NulStrip] {
        assert_eq!(lenient_end(&whole, model), Some(whole.len()), "{model:?} sees an early end in {whole:?}");
    }
    // No bare CR, bare LF or NUL; lines within the limit (plus a stuffed dot).
    assert!(!whole.contains(&0));
    assert_eq!(count(&whole, b"\r"), count(&whole, b"\r\n"));
    assert_eq!(count(&whole, b"\n"), count(&whole, b"\r\n"));
    for line in whole.split(|&b| b == b'\n') {
        assert!(line.len() <= MAX_LINE + 2, "wire line of {} octets", line.len());
    }

    // BDAT: normalised without stuffing, whatever the pieces.
    assert_eq!(normalize_bdat([body]), normal);
    assert_eq!(normalize_bdat(parts.iter().copied()), normal);
    assert_eq!(normalize_bdat(body.chunks(1)), normal);
}
