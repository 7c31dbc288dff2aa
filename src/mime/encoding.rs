//! Body parts and their transfer encodings, and the final check of the serialised bytes.
//!
//! mail-builder picks 7bit, quoted-printable or base64 for each part and never writes
//! 8bit, so composed bodies never need `8BITMIME`. Its 7bit test looks only at bytes of
//! 0x7F and above, line lengths and bare LFs; it would write a NUL or a bare CR as they
//! are. RFC 2045 section 2.7 ("7bit data"): "NULs are not allowed and CR and LF octets
//! only occur as part of CRLF line separation sequences." Those parts are base64 encoded
//! here instead.

use std::borrow::Cow;

use base64::Engine;
use mail_builder::{
    headers::{content_type::ContentType, raw::Raw},
    mime::{BodyPart, MimePart},
};

use super::{MimeError, header::MAX_LINE};

/// Turns every bare CR, bare LF and CRLF of a text body into CRLF.
///
/// RFC 2046 section 4.1.1: "The canonical form of any MIME "text" subtype MUST always
/// represent a line break as a CRLF sequence." Callers write `\n`; the wire needs `\r\n`.
pub(crate) fn normalize_crlf(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let clean = memchr::memchr2_iter(b'\r', b'\n', bytes).all(|i| match bytes[i] {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        _ => i > 0 && bytes[i - 1] == b'\r',
    });
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + text.len() / 16 + 2);
    let mut copied = 0;
    for i in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        // The LF of a CRLF was written with its CR.
        if i < copied {
            continue;
        }
        // CR and LF are ASCII, so `i` is on a character boundary.
        out.push_str(&text[copied..i]);
        out.push_str("\r\n");
        copied = if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// True when `data` cannot be sent as 7bit (or quoted-printable as mail-builder writes
/// it) without changing: a NUL, or a CR or LF outside a CRLF pair.
fn unsafe_for_text_encoding(data: &[u8]) -> bool {
    memchr::memchr3_iter(0, b'\r', b'\n', data).any(|i| match data[i] {
        b'\r' => data.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || data[i - 1] != b'\r',
        _ => true,
    })
}

/// A text body, its content type carrying its charset, line breaks already normalised.
/// mail-builder would write a NUL as it is in 7bit or quoted-printable, so text holding one
/// is base64 encoded.
pub(crate) fn text_part<'x>(content_type: ContentType<'x>, text: Cow<'x, str>) -> MimePart<'x> {
    if memchr::memchr(0, text.as_bytes()).is_some() {
        return base64_part(content_type, text.as_bytes());
    }
    MimePart::new(content_type, BodyPart::Text(text))
}

/// A `text/plain` or `text/html` body of the builder, `charset=utf-8`.
pub(crate) fn utf8_text_part<'x>(content_type: &'x str, text: Cow<'x, str>) -> MimePart<'x> {
    text_part(ContentType::new(content_type).attribute("charset", "utf-8"), text)
}

/// A part holding `data` as given, for attachments and inline images. mail-builder
/// base64-encodes non-text types and picks the cheapest safe encoding for text types;
/// text data it would damage is base64 encoded here.
pub(crate) fn data_part<'x>(content_type: ContentType<'x>, data: &'x [u8]) -> MimePart<'x> {
    if content_type.is_text() && unsafe_for_text_encoding(data) {
        return base64_part(content_type, data);
    }
    MimePart::new(content_type, BodyPart::Binary(Cow::Borrowed(data)))
}

/// Base64 in lines of 76 characters. RFC 2045 section 6.8: "The encoded output stream
/// must be represented in lines of no more than 76 characters each."
fn base64_part<'x>(content_type: ContentType<'x>, data: &[u8]) -> MimePart<'x> {
    let mut out = Vec::with_capacity(data.len() / 57 * 78 + 80);
    for chunk in data.chunks(57) {
        let mut line = [0u8; 76];
        let n = base64::engine::general_purpose::STANDARD.encode_slice(chunk, &mut line).unwrap_or_default();
        out.extend_from_slice(&line[..n]);
        out.extend_from_slice(b"\r\n");
    }
    MimePart::new(content_type, BodyPart::Binary(Cow::Owned(out)))
        .header("Content-Transfer-Encoding", Raw::new("base64"))
}

/// Checks what mail-builder produced: every line at most 998 octets, no NUL, no CR or LF
/// outside a CRLF pair. A failure is a bug in this module or in mail-builder; a typed
/// error is better than a message a server would reject or misread. Returns whether the
/// message holds any 8-bit octet.
///
/// RFC 5322 section 2.1.1: "Each line of characters MUST be no more than 998 characters
/// ... excluding the CRLF."
pub(crate) fn check_wire(message: &[u8]) -> Result<bool, MimeError> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ADD: u64 = 0x7272_7272_7272_7272; // 0x80 - 0x0E in every lane
    let mut wire = Wire { line: 1, line_start: 0 };
    let mut high = 0u64;
    // Eight octets at a time. A lane's high bit is set in `flags` exactly when its octet
    // is below 0x0E (NUL, CR, LF and a few more controls): the octet's own high bit is
    // clear, and adding 0x72 to its low seven bits does not reach 0x80. No lane carries
    // into the next (0x7F + 0x72 < 0x100). Only flagged octets are looked at: in a base64
    // body that is the CR and LF ending each 78-octet line.
    let chunks = message.chunks_exact(8);
    let tail = chunks.remainder();
    for (index, chunk) in chunks.enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        high |= word;
        let mut flags = !(((word & LOW7) + ADD) | word) & HIGH;
        while flags != 0 {
            let lane = flags.trailing_zeros() as usize / 8;
            flags &= flags - 1;
            wire.octet(message, index * 8 + lane, chunk[lane])?;
        }
    }
    let tail_start = message.len() - tail.len();
    for (offset, &byte) in tail.iter().enumerate() {
        wire.octet(message, tail_start + offset, byte)?;
        high |= u64::from(byte);
    }
    if message.len() - wire.line_start > MAX_LINE {
        return Err(MimeError::Malformed { line: wire.line, reason: "line longer than 998 octets" });
    }
    Ok(high & HIGH != 0)
}

/// Line tracking for [`check_wire`].
struct Wire {
    line: usize,
    line_start: usize,
}

impl Wire {
    fn octet(&mut self, message: &[u8], at: usize, byte: u8) -> Result<(), MimeError> {
        let malformed = |reason| Err(MimeError::Malformed { line: self.line, reason });
        match byte {
            b'\r' if message.get(at + 1) != Some(&b'\n') => malformed("bare CR"),
            b'\r' if at - self.line_start > MAX_LINE => malformed("line longer than 998 octets"),
            b'\n' if at == 0 || message[at - 1] != b'\r' => malformed("bare LF"),
            b'\n' => {
                self.line += 1;
                self.line_start = at + 1;
                Ok(())
            }
            0 => malformed("NUL"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_line_breaks() {
        assert!(matches!(normalize_crlf("a\r\nb"), Cow::Borrowed(_)));
        assert_eq!(normalize_crlf("a\nb\rc\r\nd\n\r"), "a\r\nb\r\nc\r\nd\r\n\r\n");
        assert_eq!(normalize_crlf("\n"), "\r\n");
        assert_eq!(normalize_crlf("ü\rü"), "ü\r\nü");
        assert_eq!(normalize_crlf("\r\r\n\n\r"), "\r\n\r\n\r\n\r\n");
        assert_eq!(normalize_crlf("a\r"), "a\r\n");
        assert!(matches!(normalize_crlf("no breaks"), Cow::Borrowed(_)));
    }

    #[test]
    fn detects_unsafe_text() {
        assert!(!unsafe_for_text_encoding(b"a\r\nb\tc\x0c"));
        for bad in [&b"a\0"[..], b"a\rb", b"a\nb", b"\n", b"\r"] {
            assert!(unsafe_for_text_encoding(bad), "{bad:?}");
        }
    }

    #[test]
    fn wire_check() {
        assert!(!check_wire(b"a\r\nb").unwrap());
        assert!(check_wire("0123456789ü\r\n".as_bytes()).unwrap());
        assert!(check_wire("ü".as_bytes()).unwrap());
        // Every position within and across 8-octet words.
        for len in 0..40 {
            for at in 0..len {
                for (bad, reason) in [(0u8, "NUL"), (b'\r', "bare CR"), (b'\n', "bare LF")] {
                    let mut m = vec![b'a'; len];
                    m[at] = bad;
                    let err = check_wire(&m).unwrap_err();
                    assert!(
                        matches!(err, MimeError::Malformed { reason: r, .. } if r == reason),
                        "{len} {at}"
                    );
                }
                let mut m = vec![b'a'; len];
                m[at] = 0x0b;
                assert!(check_wire(&m).is_ok());
            }
        }
        let mut long = vec![b'a'; 998];
        long.extend_from_slice(b"\r\n");
        long.extend(vec![b'b'; 998]);
        assert!(check_wire(&long).is_ok());
        long.insert(0, b'x');
        assert!(matches!(check_wire(&long), Err(MimeError::Malformed { line: 1, .. })));
        long.push(b'x');
        long.remove(0);
        assert!(matches!(check_wire(&long), Err(MimeError::Malformed { line: 2, .. })));
        assert!(check_wire(&[b'a'; 998]).is_ok());
        assert!(matches!(check_wire(&[b'a'; 999]), Err(MimeError::Malformed { line: 1, .. })));
        assert!(matches!(check_wire(b"a\r\nb\nc"), Err(MimeError::Malformed { line: 2, reason: "bare LF" })));
        assert!(matches!(check_wire(b"a\rb"), Err(MimeError::Malformed { reason: "bare CR", .. })));
        assert!(matches!(check_wire(b"a\r\n\0"), Err(MimeError::Malformed { line: 2, reason: "NUL" })));
    }

    #[test]
    fn base64_lines_are_76() {
        let mut out = Vec::new();
        base64_part(ContentType::new("text/plain"), &[0u8; 200]).write_part(&mut out);
        let text = String::from_utf8(out).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let lines: Vec<_> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.iter().map(|l| l.len()).collect::<Vec<_>>(), [76, 76, 76, 40]);
        assert!(text.contains("Content-Transfer-Encoding: base64\r\n"));
    }
}
