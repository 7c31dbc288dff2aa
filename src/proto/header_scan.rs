//! The header section of a message given as bytes, and whether it needs `SMTPUTF8`.
//!
//! RFC 6532 section 3.2 extends the header syntax to UTF-8; RFC 6531 section 3.4 lets a
//! client send such a message only with the `SMTPUTF8` parameter, to a server that offered
//! the extension: "the SMTP client MUST NOT transmit a message containing UTF-8 header
//! fields ... unless the server has advertised SMTPUTF8". A raw message whose header section
//! holds any octet above 0x7F therefore needs it, whatever its envelope. (A body may hold
//! 8-bit octets under `8BITMIME` alone.)

/// The header section of `message`: everything before the empty line that ends it (RFC
/// 5322 section 2.1: "A message consists of header fields ... followed, optionally, by a
/// body", separated by "an empty line (i.e., a line with nothing preceding the CRLF)").
/// A message without one is all header. Lines may end in CRLF or a bare LF (the driver
/// can normalise either).
pub(crate) fn header_section(message: &[u8]) -> &[u8] {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', message) {
        let line = message.get(start..end).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            return message.get(..start).unwrap_or_default();
        }
        start = end + 1;
    }
    message
}

/// The offset of the first non-ASCII octet in the header section of `message`, if any:
/// the message then needs `SMTPUTF8`.
pub(crate) fn first_non_ascii_header_octet(message: &[u8]) -> Option<usize> {
    header_section(message).iter().position(|b| !b.is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_of_the_header_section() {
        assert_eq!(header_section(b"A: 1\r\nB: 2\r\n\r\nbody"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(header_section(b"A: 1\nB: 2\n\nbody"), b"A: 1\nB: 2\n");
        assert_eq!(header_section(b"A: 1\r\n\nbody"), b"A: 1\r\n");
        assert_eq!(header_section(b"\r\nbody only"), b"");
        assert_eq!(header_section(b"A: 1\r\n folded\r\n"), b"A: 1\r\n folded\r\n");
        assert_eq!(header_section(b"A: no newline"), b"A: no newline");
        assert_eq!(header_section(b""), b"");
    }

    #[test]
    fn non_ascii_in_headers_only() {
        assert_eq!(first_non_ascii_header_octet(b"Subject: hi\r\n\r\nGr\xc3\xbc\xc3\x9fe"), None);
        assert_eq!(first_non_ascii_header_octet("Subject: Grüße\r\n\r\nx".as_bytes()), Some(11));
        assert_eq!(first_non_ascii_header_octet("From: zoë@x\r\n folded ü\r\n\r\n".as_bytes()), Some(8));
        assert_eq!(first_non_ascii_header_octet(b"X: a\n \xff\n\nbody"), Some(6));
        // RFC 2047 encoded words are ASCII.
        assert_eq!(first_non_ascii_header_octet(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n"), None);
        // Without an empty line, everything is header.
        assert_eq!(first_non_ascii_header_octet("X: a\r\nü".as_bytes()), Some(6));
    }
}
