//! The DATA encoder: line-ending normalisation, dot-stuffing and the terminator.
//!
//! The wire never carries a bare CR, a bare LF or a NUL inside DATA, and the only
//! `CRLF.CRLF` is the real terminator (the SMTP smuggling class of bugs). A body is first
//! checked as a whole by [`analyze`], so every failure is a typed error *before* any
//! command is sent; encoding itself then cannot fail and can run in pieces.

use std::sync::LazyLock;

use memchr::memmem;

/// What to do with a bare CR or bare LF in a message body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// `<CRLF>` is 1000 octets (not counting the leading dot duplicated for transparency)."
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
    /// False only when the body is known to have no line that starts with a dot: with
    /// CRLF-clean line endings it then goes on the wire exactly as it is.
    pub dot_lines: bool,
}

impl BodyInfo {
    /// The body goes on the wire exactly as it is: CRLF line endings only and no line
    /// that starts with a dot.
    pub fn verbatim(&self) -> bool {
        !self.needs_normalization && !self.dot_lines
    }
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
    let scan = scan(body);
    if scan.nul {
        if let Some(offset) = memchr::memchr(0, body) {
            return Err(BodyError::Nul { offset });
        }
    }
    // Most bodies are already CRLF-clean: check that in bulk, and find exact errors (or
    // count bare line endings) line by line only when it is not.
    let clean = scan.pairs_clean && body.first() != Some(&b'\n') && body.last() != Some(&b'\r');
    match clean.then(|| clean_line_lengths(body)).flatten() {
        Some(ends_with_crlf) => Ok(BodyInfo {
            eight_bit: scan.eight_bit,
            needs_normalization: false,
            normalized_len: body.len() as u64,
            ends_with_crlf,
            dot_lines: scan.dot_lines,
        }),
        None => analyze_lines(body, policy),
    }
}

/// What one pass over a body finds.
struct Scan {
    /// [`pairs_clean`] for the whole body.
    pairs_clean: bool,
    nul: bool,
    eight_bit: bool,
    /// An LF followed by a dot, or a dot first: a line the encoder must stuff.
    dot_lines: bool,
}

/// One branch-free pass over adjacent octet pairs for what [`analyze`] needs, in blocks
/// of fixed width whose lanes the compiler turns into vector operations.
fn scan(body: &[u8]) -> Scan {
    const W: usize = 32;
    let (mut bad, mut low, mut high, mut dot) = ([0u8; W], [u8::MAX; W], [0u8; W], [0u8; W]);
    let next = body.get(1..).unwrap_or_default();
    let blocks = body.chunks_exact(W).zip(next.chunks_exact(W));
    let mut done = 0;
    for (a, b) in blocks {
        let lanes = bad.iter_mut().zip(&mut low).zip(&mut high).zip(&mut dot).zip(a.iter().zip(b));
        for ((((bad, low), high), dot), (&a, &b)) in lanes {
            // RFC 5321 2.3.8: CR and LF only as the pair CRLF.
            *bad |= u8::from(a == b'\r') ^ u8::from(b == b'\n');
            *low = (*low).min(a);
            *high |= a;
            *dot |= u8::from(a == b'\n') & u8::from(b == b'.');
        }
        done += W;
    }
    // The tail, whose last octet has no successor.
    let tail = body.get(done..).unwrap_or_default();
    let tail_next = next.get(done..).unwrap_or_default();
    for (i, &a) in tail.iter().enumerate() {
        let b = tail_next.get(i).copied();
        if b.is_some() {
            bad[0] |= u8::from(a == b'\r') ^ u8::from(b == Some(b'\n'));
            dot[0] |= u8::from(a == b'\n') & u8::from(b == Some(b'.'));
        }
        low[0] = low[0].min(a);
        high[0] |= a;
    }
    let any = |lanes: [u8; W]| lanes.iter().fold(0, |acc, &l| acc | l) != 0;
    Scan {
        pairs_clean: !any(bad),
        nul: low.contains(&0),
        eight_bit: any(high.map(|h| h & 0x80)),
        dot_lines: any(dot) || body.first() == Some(&b'.'),
    }
}

/// True when, inside `bytes`, every CR is followed by LF and every LF is preceded by CR.
/// Only adjacent pairs within `bytes` are looked at: whether the first octet is an LF or
/// the last a CR is the caller's business. Branch-free over blocks so it vectorises.
fn pairs_clean(bytes: &[u8]) -> bool {
    const BLOCK: usize = 4096;
    let mut start = 0;
    while start + 1 < bytes.len() {
        let end = (start + BLOCK + 1).min(bytes.len());
        let block = bytes.get(start..end).unwrap_or_default();
        let next = block.get(1..).unwrap_or_default();
        let bad = block
            .iter()
            .zip(next)
            .fold(0u8, |acc, (&a, &b)| acc | (u8::from(a == b'\r') ^ u8::from(b == b'\n')));
        if bad != 0 {
            return false;
        }
        start = end - 1;
    }
    true
}

/// For a body with no bare CR or LF: whether it ends with CRLF, or `None` when a line is
/// too long (the line-by-line pass then reports exactly which).
fn clean_line_lengths(body: &[u8]) -> Option<bool> {
    // The last LF within the next MAX_LINE + 2 octets ends a run of lines that are all
    // short enough (each LF has its CR, so the first of them has at most MAX_LINE octets of
    // text); no LF there means a line too long, or the unterminated tail.
    let mut start = 0;
    while start < body.len() {
        let end = (start + MAX_LINE + 2).min(body.len());
        let window = body.get(start..end)?;
        match memchr::memrchr(b'\n', window) {
            Some(i) => start += i + 1,
            None if end == body.len() && window.len() <= MAX_LINE => return Some(false),
            None => return None,
        }
    }
    Some(true)
}

/// [`analyze`] line by line: exact errors, and the count of bare line endings.
fn analyze_lines(body: &[u8], policy: LineEndings) -> Result<BodyInfo, BodyError> {
    let mut added = 0u64;
    let mut line = 1usize;
    let mut start = 0usize;
    let mut ends_with_crlf = true;
    let mut dot_lines = body.first() == Some(&b'.');
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
        dot_lines |= rest.first() == Some(&b'.');
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
        dot_lines,
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
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    /// A fresh encoder at the start of the body.
    pub fn new() -> Self {
        Self { at_line_start: true, pending_cr: false }
    }

    /// Encodes `input` into `out`: bare CR and bare LF become CRLF, and RFC 5321 section
    /// 4.5.2: "Before sending a line of mail text, the SMTP client checks the first
    /// character of the line. If it is a period, one additional period is inserted at
    /// the beginning of the line." Runs without line endings are copied whole.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        if rest.is_empty() {
            return; // a held-back CR can only be resolved by the next octet
        }
        if self.pending_cr {
            rest = resolve_held_cr(&mut self.pending_cr, rest, out);
            self.at_line_start = true;
        }
        if let Some((text, held_cr)) = clean_piece(rest) {
            self.stuff_clean(text, out);
            self.pending_cr = held_cr;
            return;
        }
        while !rest.is_empty() {
            if self.at_line_start && rest.first() == Some(&b'.') {
                out.push(b'.');
            }
            match next_line_end(rest) {
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    return;
                }
                Some((i, 0)) => {
                    out.extend_from_slice(rest.get(..i).unwrap_or_default());
                    self.pending_cr = true;
                    return;
                }
                Some((i, len)) => {
                    out.extend_from_slice(rest.get(..i).unwrap_or_default());
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    rest = rest.get(i + len..).unwrap_or_default();
                }
            }
        }
    }

    /// Encodes a piece of a body that [`analyze`] found needs no normalisation (every line
    /// ends in CRLF), without checking the line endings again: only lines that start with
    /// a dot need work. Pieces may split a CRLF; the output is the same as
    /// [`DotStuffer::encode`]'s for such a body.
    pub(crate) fn encode_clean(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.pending_cr {
            // Left by `encode` on an earlier piece: resolve it the general way.
            self.encode(input, out);
        } else {
            self.stuff_clean(input, out);
        }
    }

    /// Copies a piece of a body that [`analyze`] found CRLF-clean and without a line that
    /// starts with a dot ([`BodyInfo::dot_lines`] false): nothing to change, so it is
    /// copied whole.
    pub(crate) fn encode_verbatim(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.sent_verbatim(input) {
            out.extend_from_slice(input);
        } else {
            self.encode(input, out);
        }
    }

    /// Encodes a piece of the body `info` describes ([`analyze`]'s result) with the
    /// cheapest path that gives [`DotStuffer::encode`]'s output for it.
    pub(crate) fn encode_analyzed(&mut self, info: &BodyInfo, input: &[u8], out: &mut Vec<u8>) {
        if info.needs_normalization {
            self.encode(input, out);
        } else if info.dot_lines {
            self.encode_clean(input, out);
        } else {
            self.encode_verbatim(input, out);
        }
    }

    /// Records that `input`, a piece [`DotStuffer::encode_verbatim`] would copy
    /// unchanged, goes on the wire by other means (without a copy). False, with nothing
    /// recorded, when the encoder holds back a CR and the piece must be encoded instead.
    pub(crate) fn sent_verbatim(&mut self, input: &[u8]) -> bool {
        if self.pending_cr {
            return false;
        }
        if let Some(&last) = input.last() {
            self.at_line_start = last == b'\n';
        }
        true
    }

    /// Copies `text`, which has no bare line ending, doubling every dot that starts a line:
    /// a substring search finds those lines; everything else is copied in runs.
    fn stuff_clean(&mut self, text: &[u8], out: &mut Vec<u8>) {
        static DOT_LINE: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\n."));
        out.reserve(text.len() + 16);
        if self.at_line_start && text.first() == Some(&b'.') {
            out.push(b'.');
        }
        let mut copied = 0;
        for i in DOT_LINE.find_iter(text) {
            out.extend_from_slice(text.get(copied..=i).unwrap_or_default());
            out.push(b'.');
            copied = i + 1;
        }
        out.extend_from_slice(text.get(copied..).unwrap_or_default());
        if let Some(&last) = text.last() {
            self.at_line_start = last == b'\n';
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

/// A piece of body (after a CR held back from the previous piece was resolved) with no bare
/// CR or LF: its text, without a final CR, which is held back because only the next octet
/// tells whether it is bare. `None` when the piece needs the line-by-line path.
/// A CR that ended the previous piece is written as CRLF; it pairs with a leading LF of
/// `rest` (skipped) or was bare. Returns what is left to encode.
fn resolve_held_cr<'a>(held: &mut bool, rest: &'a [u8], out: &mut Vec<u8>) -> &'a [u8] {
    *held = false;
    out.extend_from_slice(b"\r\n");
    match rest.split_first() {
        Some((b'\n', tail)) => tail,
        _ => rest,
    }
}

/// The next line ending in `rest` as (offset, length): 2 for CRLF, 1 for a bare CR or LF,
/// 0 for a CR that ends the piece (it may pair with an LF at the start of the next one).
fn next_line_end(rest: &[u8]) -> Option<(usize, usize)> {
    let i = memchr::memchr2(b'\r', b'\n', rest)?;
    let len = match rest.get(i..) {
        Some([b'\r', b'\n', ..]) => 2,
        Some([b'\r']) => 0,
        _ => 1,
    };
    Some((i, len))
}

fn clean_piece(piece: &[u8]) -> Option<(&[u8], bool)> {
    // A leading LF here has no CR before it (a held-back CR was resolved by the caller).
    if piece.first() == Some(&b'\n') || !pairs_clean(piece) {
        return None;
    }
    Some(match piece.split_last() {
        Some((b'\r', text)) => (text, true),
        _ => (piece, false),
    })
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
            rest = resolve_held_cr(&mut self.pending_cr, rest, out);
        }
        if let Some((text, held_cr)) = clean_piece(rest) {
            out.extend_from_slice(text);
            self.pending_cr = held_cr;
            return;
        }
        while let Some((i, len)) = next_line_end(rest) {
            out.extend_from_slice(rest.get(..i).unwrap_or_default());
            if len == 0 {
                self.pending_cr = true;
                return;
            }
            out.extend_from_slice(b"\r\n");
            rest = rest.get(i + len..).unwrap_or_default();
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
pub(crate) fn destuff_strict(wire: &[u8]) -> Option<Vec<u8>> {
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

/// What the fuzz targets and the test suite need beyond the documented API: the fast
/// paths trust a [`BodyInfo`] that only [`analyze`] may build, so they are not API. No
/// stability promise.
#[doc(hidden)]
pub mod __fuzz {
    use super::{BodyInfo, DotStuffer};

    /// [`DotStuffer`]'s path for a body `analyze` found CRLF-clean.
    pub fn encode_clean(s: &mut DotStuffer, input: &[u8], out: &mut Vec<u8>) {
        s.encode_clean(input, out);
    }

    /// [`DotStuffer`]'s path for a CRLF-clean body without dot lines.
    pub fn encode_verbatim(s: &mut DotStuffer, input: &[u8], out: &mut Vec<u8>) {
        s.encode_verbatim(input, out);
    }

    /// The path the session takes for a body `analyze` described as `info`.
    pub fn encode_analyzed(s: &mut DotStuffer, info: &BodyInfo, input: &[u8], out: &mut Vec<u8>) {
        s.encode_analyzed(info, input, out);
    }

    /// A strict receiver: reverses dot-stuffing of a complete DATA stream.
    pub fn destuff_strict(wire: &[u8]) -> Option<Vec<u8>> {
        super::destuff_strict(wire)
    }
}

#[cfg(test)]
mod tests;
