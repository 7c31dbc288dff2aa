//! The DATA encoder: line-ending normalisation, dot-stuffing and the terminator.
//!
//! The wire never carries a bare CR, a bare LF or a NUL inside DATA, and the only
//! `CRLF.CRLF` is the real terminator (the SMTP smuggling class of bugs). A body is first
//! checked as a whole by [`analyze`], so every failure is a typed error *before* any
//! command is sent; encoding itself then cannot fail and can run in pieces.

/// What to do with a bare CR or bare LF in a message body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LineEndings {
    /// Turn every bare CR and bare LF into CRLF (the default: bodies written with `\n`
    /// line endings just work, and no bare line ending reaches the wire).
    #[default]
    Normalize,
    /// Refuse a body containing a bare CR or bare LF with [`BodyError::BareLineEnding`].
    Reject,
}

/// Why a body cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A NUL octet: RFC 5321 section 4.1.1.4 text is "US-ASCII ... except CR and LF", and
    /// no MTA treats NUL consistently, so it is refused in every mode.
    #[error("NUL octet at offset {offset} in the message")]
    Nul {
        /// Offset in the body.
        offset: usize,
    },
    /// A bare CR or LF with [`LineEndings::Reject`].
    #[error("bare {} at offset {offset} in the message", if *.byte == b'\r' { "CR" } else { "LF" })]
    BareLineEnding {
        /// `b'\r'` or `b'\n'`.
        byte: u8,
        /// Offset in the body.
        offset: usize,
    },
    /// RFC 5321 section 4.5.3.1.6: "The maximum total length of a text line including the
    /// <CRLF> is 1000 octets (not counting the leading dot duplicated for transparency)."
    #[error("line {line} is {len} octets; at most 998 are allowed before CRLF")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// Its length without the line ending.
        len: usize,
    },
}

/// Longest line without its CRLF.
pub const MAX_LINE: usize = 998;

/// Facts about a body, computed once before sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyInfo {
    /// Any octet over 127: needs `BODY=8BITMIME` (RFC 6152).
    pub eight_bit: bool,
    /// True when a bare CR or LF will be rewritten as CRLF.
    pub needs_normalization: bool,
    /// Length after normalisation, before dot-stuffing and without a terminator: the
    /// size declared with `SIZE=` and sent by `BDAT`.
    pub normalized_len: u64,
    /// True when the normalised body ends with CRLF (or is empty).
    pub ends_with_crlf: bool,
}

/// Checks a whole body against `policy` and RFC 5321 limits.
///
/// ```
/// use smtpkit::proto::dot_stuff::{analyze, LineEndings, BodyError};
/// let info = analyze(b"a\nb", LineEndings::Normalize).unwrap();
/// assert_eq!(info.normalized_len, 4);
/// assert!(matches!(analyze(b"a\nb", LineEndings::Reject), Err(BodyError::BareLineEnding { .. })));
/// ```
pub fn analyze(body: &[u8], policy: LineEndings) -> Result<BodyInfo, BodyError> {
    if let Some(offset) = memchr::memchr(0, body) {
        return Err(BodyError::Nul { offset });
    }
    // The common case, a CRLF-only body with short lines, in a few vectorised passes
    // instead of one search per line (which cost more than the rest of sending a 100 KB
    // message). Anything else takes the exact walk below, which finds the offending
    // offset or counts the line endings to add.
    if !has_bare_line_ending(body) && crlf_lines_fit(body) {
        return Ok(BodyInfo {
            eight_bit: !body.is_ascii(),
            needs_normalization: false,
            normalized_len: body.len() as u64,
            ends_with_crlf: true,
        });
    }
    analyze_by_line(body, policy)
}

/// True when a CR is not followed by LF or an LF not preceded by CR somewhere in `body`.
fn has_bare_line_ending(body: &[u8]) -> bool {
    if body.first() == Some(&b'\n') || body.last() == Some(&b'\r') {
        return true;
    }
    // For every adjacent pair, "CR here" must equal "LF next". Branch-free over fixed
    // blocks so the compiler vectorises it, with an early exit between blocks.
    const BLOCK: usize = 4096;
    let (Some(head), Some(tail)) = (body.get(..body.len().saturating_sub(1)), body.get(1..)) else {
        return false;
    };
    head.chunks(BLOCK).zip(tail.chunks(BLOCK)).any(|(a, b)| {
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | u8::from((*x == b'\r') ^ (*y == b'\n'))) != 0
    })
}

/// For a body without bare line endings, true when every line fits [`MAX_LINE`] and the
/// body is empty or ends with CRLF.
fn crlf_lines_fit(body: &[u8]) -> bool {
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        return false;
    }
    // A line of at most MAX_LINE octets has its LF within MAX_LINE + 2 octets of its
    // start; jumping to the last LF of each such window visits every line boundary.
    const WINDOW: usize = MAX_LINE + 2;
    let mut rest = body;
    while !rest.is_empty() {
        let window = rest.get(..WINDOW.min(rest.len())).unwrap_or_default();
        match memchr::memrchr(b'\n', window) {
            Some(i) => rest = rest.get(i + 1..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

/// [`analyze`] one line at a time: exact offsets and line numbers for errors, and the
/// count of bare line endings to rewrite.
fn analyze_by_line(body: &[u8], policy: LineEndings) -> Result<BodyInfo, BodyError> {
    let mut added = 0u64;
    let mut line = 1usize;
    let mut start = 0usize;
    let mut ends_with_crlf = true;
    let mut rest = body;
    while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
        let at = start + i;
        let len = i;
        if len > MAX_LINE {
            return Err(BodyError::LineTooLong { line, len });
        }
        let (consumed, bare) = match rest.get(i..) {
            Some([b'\r', b'\n', ..]) => (i + 2, None),
            Some([b, ..]) => (i + 1, Some(*b)),
            _ => (i + 1, None),
        };
        if let Some(byte) = bare {
            if policy == LineEndings::Reject {
                return Err(BodyError::BareLineEnding { byte, offset: at });
            }
            added += 1;
        }
        line += 1;
        start += consumed;
        rest = rest.get(consumed..).unwrap_or_default();
    }
    if !rest.is_empty() {
        ends_with_crlf = false;
        if rest.len() > MAX_LINE {
            return Err(BodyError::LineTooLong { line, len: rest.len() });
        }
    }
    Ok(BodyInfo {
        eight_bit: !body.is_ascii(),
        needs_normalization: added > 0,
        normalized_len: body.len() as u64 + added,
        ends_with_crlf,
    })
}

/// Streaming DATA encoder. Feed the body in any pieces with [`DotStuffer::encode`], then
/// call [`DotStuffer::finish`]; the output does not depend on how the body was split.
///
/// ```
/// use smtpkit::proto::dot_stuff::DotStuffer;
/// let mut out = Vec::new();
/// let mut s = DotStuffer::new();
/// s.encode(b".hidden\n", &mut out);
/// s.encode(b"x", &mut out);
/// s.finish(&mut out);
/// assert_eq!(out, b"..hidden\r\nx\r\n.\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    pending_cr: bool,
    /// The body has no bare CR or LF ([`BodyInfo::needs_normalization`] is false): only
    /// dots need work, and they are found with one substring search per piece.
    crlf_only: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    /// A fresh encoder at the start of the body.
    pub fn new() -> Self {
        Self { at_line_start: true, pending_cr: false, crlf_only: false }
    }

    /// An encoder for a body [`analyze`] found free of bare line endings
    /// (`needs_normalization == false`): the output is the same as [`DotStuffer::new`]'s,
    /// computed with a search for `LF .` instead of a stop at every line. For any other
    /// body this is [`DotStuffer::new`].
    pub fn for_body(info: &BodyInfo) -> Self {
        Self { crlf_only: !info.needs_normalization, ..Self::new() }
    }

    /// Dot-stuffing of a piece of a CRLF-only body: bytes are copied in runs between the
    /// line starts that hold a dot.
    fn encode_crlf_only(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(&last) = input.last() else { return };
        out.reserve(input.len() + 8);
        if self.at_line_start && input.first() == Some(&b'.') {
            out.push(b'.');
        }
        let mut start = 0;
        for i in memchr::memmem::find_iter(input, b"\n.") {
            let cut = i + 1;
            out.extend_from_slice(input.get(start..cut).unwrap_or_default());
            out.push(b'.');
            start = cut;
        }
        out.extend_from_slice(input.get(start..).unwrap_or_default());
        self.at_line_start = last == b'\n';
    }

    /// Encodes `input` into `out`: bare CR and bare LF become CRLF, and RFC 5321 section
    /// 4.5.2: "Before sending a line of mail text, the SMTP client checks the first
    /// character of the line. If it is a period, one additional period is inserted at
    /// the beginning of the line." Runs without line endings are copied whole.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.crlf_only {
            return self.encode_crlf_only(input, out);
        }
        let mut rest = input;
        if rest.is_empty() {
            return; // a held-back CR can only be resolved by the next octet
        }
        if self.pending_cr {
            // A CR ended the previous piece: it pairs with a leading LF here, or was bare.
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
            if let Some((b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
        }
        while !rest.is_empty() {
            if self.at_line_start && rest.first() == Some(&b'.') {
                out.push(b'.');
            }
            match memchr::memchr2(b'\r', b'\n', rest) {
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    return;
                }
                Some(i) => {
                    out.extend_from_slice(rest.get(..i).unwrap_or_default());
                    let tail = rest.get(i..).unwrap_or_default();
                    let consumed = match tail {
                        [b'\r', b'\n', ..] => 2,
                        [b'\r'] => {
                            self.pending_cr = true;
                            return;
                        }
                        _ => 1,
                    };
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    rest = tail.get(consumed..).unwrap_or_default();
                }
            }
        }
    }

    /// Writes the terminator: `CRLF.CRLF` after a partial last line, or `.CRLF` when the
    /// body already ended with a line ending (no spurious empty line).
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.extend_from_slice(b"\r\n.\r\n");
        } else if self.at_line_start {
            out.extend_from_slice(b".\r\n");
        } else {
            out.extend_from_slice(b"\r\n.\r\n");
        }
    }
}

/// Normalises line endings without dot-stuffing, for BDAT (RFC 3030 sends data as is).
#[derive(Clone, Debug, Default)]
pub struct Normalizer {
    pending_cr: bool,
}

impl Normalizer {
    /// Encodes `input` into `out`, turning bare CR and bare LF into CRLF.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        if rest.is_empty() {
            return; // a held-back CR can only be resolved by the next octet
        }
        if self.pending_cr {
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            if let Some((b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
        }
        while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
            out.extend_from_slice(rest.get(..i).unwrap_or_default());
            let tail = rest.get(i..).unwrap_or_default();
            let consumed = match tail {
                [b'\r', b'\n', ..] => 2,
                [b'\r'] => {
                    self.pending_cr = true;
                    return;
                }
                _ => 1,
            };
            out.extend_from_slice(b"\r\n");
            rest = tail.get(consumed..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
    }

    /// Flushes a CR held back at the end of the last piece.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Reverses dot-stuffing of a complete DATA stream (with terminator) strictly: every line
/// must end in CRLF, a leading dot is removed, and the stream must end at `.CRLF`.
/// Returns `None` for anything a strict receiver would refuse. Used by tests and fuzzing.
pub fn destuff_strict(wire: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(wire.len());
    let mut rest = wire;
    loop {
        let i = memchr::memchr(b'\n', rest)?;
        let line = rest.get(..=i)?;
        if !line.ends_with(b"\r\n") || memchr::memchr(b'\r', line.get(..line.len() - 2)?).is_some() {
            return None;
        }
        rest = rest.get(i + 1..)?;
        if line == b".\r\n" {
            return rest.is_empty().then_some(out);
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
}

#[cfg(test)]
mod tests {
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
        assert!(matches!(
            analyze(&long, LineEndings::Normalize),
            Err(BodyError::LineTooLong { line: 1, .. })
        ));
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

    /// Bodies over an alphabet dense in the bytes that matter, with long runs for lines
    /// near the length limit.
    fn body_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(b".".to_vec()),
            Just(b"a".to_vec()),
            Just(vec![0xC3, 0xA9]),
            (990usize..1001).prop_map(|n| vec![b'x'; n]),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #[test]
        fn fast_analysis_equals_the_line_walk(body in body_strategy()) {
            for policy in [LineEndings::Normalize, LineEndings::Reject] {
                proptest::prop_assert_eq!(analyze(&body, policy), analyze_by_line(&body, policy));
            }
        }

        #[test]
        fn crlf_only_encoder_equals_the_general_one(body in body_strategy(), a in 0usize..2000, b in 0usize..2000) {
            let Ok(info) = analyze(&body, LineEndings::Normalize) else { return Ok(()) };
            let (i, j) = (a.min(body.len()), b.min(body.len()));
            let (i, j) = (i.min(j), i.max(j));
            let mut out = Vec::new();
            let mut s = DotStuffer::for_body(&info);
            s.encode(&body[..i], &mut out);
            s.encode(&body[i..j], &mut out);
            s.encode(&body[j..], &mut out);
            s.finish(&mut out);
            proptest::prop_assert_eq!(&out, &stuff(&body));
            proptest::prop_assert!(destuff_strict(&out).is_some());
        }
    }

    #[test]
    fn strict_destuffer_refuses_bare_endings() {
        assert_eq!(destuff_strict(b"..a\r\n.\r\n"), Some(b".a\r\n".to_vec()));
        assert_eq!(destuff_strict(b"a\n.\r\n"), None);
        assert_eq!(destuff_strict(b"a\r\n.\r\nextra"), None);
    }
}
