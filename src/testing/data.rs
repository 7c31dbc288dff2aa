//! Receiving the DATA payload: end-of-data detection and dot-unstuffing (RFC 5321 4.5.2).
//!
//! The decoder is streaming: it is fed whatever bytes arrived, in any split, and reports how
//! many it consumed and whether the terminator was seen. Bytes after the terminator are left
//! to the caller (they are the next pipelined command).

/// Where the decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (also the very start of the data).
    LineStart,
    /// A `.` at the start of a line, not yet written to the output.
    Dot,
    /// `.` then CR at the start of a line, neither yet written.
    DotCr,
    /// Inside a line.
    Mid,
    /// Inside a line, just after a CR (already written).
    MidCr,
}

/// Streaming DATA decoder: strips the transparency dots and finds `CRLF.CRLF`.
///
/// Only the exact sequence CR LF `.` CR LF ends the data; a bare LF or bare CR never starts
/// a line. RFC 5321 2.3.8: "In addition, the appearance of "bare" "CR" or "LF" characters
/// in text (i.e., either without the other) has a long history of causing problems in mail
/// implementations ... SMTP client implementations MUST NOT transmit these characters
/// except when they are intended as line terminators and then MUST, as indicated above,
/// transmit them only as a `<CRLF>` sequence." The server therefore keeps bare CR and LF as
/// data, so a test can see a client that let one through.
#[derive(Debug, Clone)]
pub(crate) struct DotDecoder {
    state: State,
    /// Octets of the current line so far, counting its CRLF and not the transparency dot.
    line_len: usize,
    /// The longest line seen, with the same counting as `line_len`.
    longest_line: usize,
    /// Set once the output would have grown past the limit; the rest is dropped.
    overflowed: bool,
    /// Total unstuffed octets, including those dropped after an overflow.
    total: u64,
    /// A LF not preceded by CR was seen.
    bare_lf: bool,
    /// A CR not followed by LF was seen.
    bare_cr: bool,
    /// A NUL octet was seen.
    nul: bool,
}

/// What one call to [`DotDecoder::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Input bytes consumed (all of them unless `done`).
    pub consumed: usize,
    /// The terminator was seen; `consumed` includes it.
    pub done: bool,
}

impl DotDecoder {
    /// A decoder positioned at the start of the first data line.
    pub(crate) fn new() -> Self {
        DotDecoder {
            state: State::LineStart,
            line_len: 0,
            longest_line: 0,
            overflowed: false,
            total: 0,
            bare_lf: false,
            bare_cr: false,
            nul: false,
        }
    }

    /// What the data held that RFC 5321 forbids a client to send: bare LF, bare CR, NUL.
    ///
    /// RFC 5321 2.3.8: "SMTP client implementations MUST NOT transmit these characters
    /// except when they are intended as line terminators"; 4.1.4 forbids NUL in text.
    pub(crate) fn violations(&self) -> Vec<&'static str> {
        [(self.bare_lf, "bare LF"), (self.bare_cr, "bare CR"), (self.nul, "NUL")]
            .into_iter()
            .filter_map(|(seen, what)| seen.then_some(what))
            .collect()
    }

    /// The longest line seen so far in octets, CRLF included, transparency dot excluded.
    ///
    /// RFC 5321 4.5.3.1.6: "The maximum total length of a text line including the `<CRLF>` is
    /// 1000 octets (not counting the leading dot duplicated for transparency)."
    pub(crate) fn longest_line(&self) -> usize {
        self.longest_line.max(self.line_len)
    }

    /// True when the message grew past the `limit` given to [`feed`](Self::feed).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Size of the unstuffed message in octets, even past an overflow.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    fn emit(&mut self, out: &mut Vec<u8>, limit: usize, byte: u8) {
        self.nul |= byte == 0;
        self.total += 1;
        self.line_len += 1;
        if out.len() < limit {
            out.push(byte);
        } else {
            self.overflowed = true;
        }
    }

    fn end_line(&mut self) {
        self.longest_line = self.longest_line.max(self.line_len);
        self.line_len = 0;
    }

    /// Feed `input`, appending the unstuffed data to `out` while `out` is shorter than `limit`.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Fed {
        for (i, &b) in input.iter().enumerate() {
            match self.state {
                State::LineStart => {
                    if b == b'.' {
                        self.state = State::Dot;
                    } else {
                        self.mid_byte(out, limit, b);
                    }
                }
                // RFC 5321 4.5.2: "If the first character is a period and there are other
                // characters on the line, the first character is deleted."
                State::Dot => {
                    if b == b'\r' {
                        self.state = State::DotCr;
                    } else {
                        self.mid_byte(out, limit, b);
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        // "If the line is composed of a single period, it is treated as the
                        // end of mail indicator." The CRLF before it belongs to the message.
                        self.end_line();
                        return Fed { consumed: i + 1, done: true };
                    }
                    // `.` CR x: the dot was a transparency dot and the CR is data.
                    self.emit(out, limit, b'\r');
                    self.state = State::MidCr;
                    self.mid_byte_after_cr(out, limit, b);
                }
                State::Mid => self.mid_byte(out, limit, b),
                State::MidCr => self.mid_byte_after_cr(out, limit, b),
            }
        }
        Fed { consumed: input.len(), done: false }
    }

    /// A byte not preceded by CR.
    fn mid_byte(&mut self, out: &mut Vec<u8>, limit: usize, b: u8) {
        self.bare_lf |= b == b'\n';
        self.emit(out, limit, b);
        self.state = if b == b'\r' { State::MidCr } else { State::Mid };
    }

    /// A byte right after a CR (already emitted).
    fn mid_byte_after_cr(&mut self, out: &mut Vec<u8>, limit: usize, b: u8) {
        self.bare_cr |= b != b'\n';
        self.emit(out, limit, b);
        self.state = match b {
            b'\n' => {
                self.end_line();
                State::LineStart
            }
            b'\r' => State::MidCr,
            _ => State::Mid,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8]) -> Option<(Vec<u8>, usize)> {
        let mut d = DotDecoder::new();
        let mut out = Vec::new();
        let fed = d.feed(input, &mut out, usize::MAX);
        fed.done.then_some((out, fed.consumed))
    }

    #[test]
    fn plain_message_keeps_final_crlf() {
        let (out, used) = decode_all(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n").unwrap();
        assert_eq!(out, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(used, b"Subject: x\r\n\r\nbody\r\n.\r\n".len());
    }

    #[test]
    fn empty_message() {
        assert_eq!(decode_all(b".\r\n").unwrap(), (Vec::new(), 3));
    }

    #[test]
    fn transparency_dots_removed() {
        let (out, _) = decode_all(b"..\r\n..x\r\n.y\r\na.b\r\n.\r\n").unwrap();
        assert_eq!(out, b".\r\n.x\r\ny\r\na.b\r\n");
    }

    #[test]
    fn bare_line_endings_never_terminate() {
        for body in [
            &b"a\n.\nb\r\n.\r\n"[..],
            b"a\r.\rb\r\n.\r\n",
            b"a\n.\r\nb\r\n.\r\n",
            b"a\r\n.\rb\r\n.\r\n",
            b"a\r.\nb\r\n.\r\n",
            b"a\r\n\x00.\r\nb\r\n.\r\n",
        ] {
            let (out, used) = decode_all(body).unwrap();
            assert_eq!(used, body.len(), "{body:?}");
            assert!(out.ends_with(b"b\r\n"), "{body:?} -> {out:?}");
        }
    }

    #[test]
    fn forbidden_octets_are_reported() {
        let check = |input: &[u8]| {
            let mut d = DotDecoder::new();
            assert!(d.feed(input, &mut Vec::new(), usize::MAX).done, "{input:?}");
            d.violations()
        };
        assert!(check(b"a\r\n..b\r\n.\r\n").is_empty());
        assert_eq!(check(b"a\nb\r\n.\r\n"), ["bare LF"]);
        assert_eq!(check(b".\nb\r\n.\r\n"), ["bare LF"]);
        assert_eq!(check(b"a\rb\r\n.\r\n"), ["bare CR"]);
        assert_eq!(check(b".\rb\r\n.\r\n"), ["bare CR"]);
        assert_eq!(check(b"a\r\r\n.\r\n"), ["bare CR"]);
        assert_eq!(check(b"a\0\r\n.\r\n"), ["NUL"]);
    }

    #[test]
    fn dot_cr_then_other_byte_is_data() {
        let (out, _) = decode_all(b".\rx\r\n.\r\n").unwrap();
        assert_eq!(out, b"\rx\r\n");
    }

    #[test]
    fn incomplete_is_not_done() {
        let mut d = DotDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.feed(b"abc\r\n.\r", &mut out, usize::MAX), Fed { consumed: 7, done: false });
        assert_eq!(d.feed(b"\nrest", &mut out, usize::MAX), Fed { consumed: 1, done: true });
        assert_eq!(out, b"abc\r\n");
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let input = b"..a\r\n.\rb\r\n\r\n..\r\nx\ny\r\n.\r\n";
        let (whole, used) = decode_all(input).unwrap();
        for split in 0..=input.len() {
            let mut d = DotDecoder::new();
            let mut out = Vec::new();
            let (a, b) = input.split_at(split);
            let first = d.feed(a, &mut out, usize::MAX);
            let total = if first.done {
                first.consumed
            } else {
                let second = d.feed(b, &mut out, usize::MAX);
                assert!(second.done);
                first.consumed + second.consumed
            };
            assert_eq!((out.as_slice(), total), (whole.as_slice(), used), "split at {split}");
        }
    }

    /// The transparency procedure of RFC 5321 4.5.2 as a client applies it, for bodies made
    /// of CRLF-terminated lines.
    fn stuff(lines: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    /// Line content: no CR or LF, dots and NULs likely.
    fn line_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(b'.'),
            Just(b'a'),
            Just(0u8),
            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n')
        ]
    }

    proptest! {
        #[test]
        fn unstuffing_inverts_stuffing_at_any_split(
            lines in prop::collection::vec(prop::collection::vec(line_byte(), 0..6), 0..8),
            split in any::<prop::sample::Index>(),
        ) {
            let wire = stuff(&lines);
            let mut expected = Vec::new();
            for line in &lines {
                expected.extend_from_slice(line);
                expected.extend_from_slice(b"\r\n");
            }
            let cut = split.index(wire.len() + 1);
            let mut d = DotDecoder::new();
            let mut out = Vec::new();
            let first = d.feed(&wire[..cut], &mut out, usize::MAX);
            let used = if first.done {
                first.consumed
            } else {
                let second = d.feed(&wire[cut..], &mut out, usize::MAX);
                prop_assert!(second.done);
                cut + second.consumed
            };
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn limit_and_line_length() {
        let mut d = DotDecoder::new();
        let mut out = Vec::new();
        let fed = d.feed(b"12345\r\n123\r\n.\r\n", &mut out, 4);
        assert!(fed.done);
        assert_eq!(out, b"1234");
        assert!(d.overflowed());
        assert_eq!(d.total(), 12);
        assert_eq!(d.longest_line(), 7);
    }
}
