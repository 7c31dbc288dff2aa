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
    let clean = bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    });
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// True when `data` cannot be sent as 7bit (or quoted-printable as mail-builder writes
/// it) without changing: a NUL, or a CR or LF outside a CRLF pair.
fn unsafe_for_text_encoding(data: &[u8]) -> bool {
    memchr::memchr(0, data).is_some()
        || data.iter().enumerate().any(|(i, &b)| match b {
            b'\r' => data.get(i + 1) != Some(&b'\n'),
            b'\n' => i == 0 || data[i - 1] != b'\r',
            _ => false,
        })
}

/// A text body (`text/plain` or `text/html`, `charset=utf-8`), line breaks normalised.
pub(crate) fn text_part<'x>(content_type: &'x str, text: Cow<'x, str>) -> MimePart<'x> {
    if memchr::memchr(0, text.as_bytes()).is_some() {
        let ct = ContentType::new(content_type).attribute("charset", "utf-8");
        return base64_part(ct, text.as_bytes());
    }
    MimePart::new(content_type, BodyPart::Text(text))
}

/// A part holding `data` as given, for attachments and inline images. mail-builder
/// base64-encodes non-text types and picks the cheapest safe encoding for text types;
/// text data it would damage is base64 encoded here.
pub(crate) fn data_part<'x>(content_type: &'x str, data: &'x [u8]) -> MimePart<'x> {
    if content_type.starts_with("text/") && unsafe_for_text_encoding(data) {
        return base64_part(ContentType::new(content_type), data);
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
/// error is better than a message a server would reject or misread.
///
/// RFC 5322 section 2.1.1: "Each line of characters MUST be no more than 998 characters
/// ... excluding the CRLF."
pub(crate) fn check_wire(message: &[u8]) -> Result<(), MimeError> {
    let mut start = 0;
    for (index, end) in memchr::memchr_iter(b'\n', message).chain([message.len()]).enumerate() {
        let line = index + 1;
        let malformed = |reason| Err(MimeError::Malformed { line, reason });
        let content = if end == message.len() {
            &message[start..]
        } else {
            match message[start..end].strip_suffix(b"\r") {
                Some(content) => content,
                None => return malformed("bare LF"),
            }
        };
        if content.len() > MAX_LINE {
            return malformed("line longer than 998 octets");
        }
        if memchr::memchr(b'\r', content).is_some() {
            return malformed("bare CR");
        }
        if memchr::memchr(0, content).is_some() {
            return malformed("NUL");
        }
        start = end + 1;
    }
    Ok(())
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
        assert!(check_wire(b"a\r\nb").is_ok());
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
