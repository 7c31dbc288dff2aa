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
/// The section also ends at the first line that is neither a header field nor the
/// continuation of one (RFC 5322 section 3.6.8: `field-name = 1*ftext` followed by `:`;
/// section 2.2.3: a folded line starts with white space): raw text such as `café` handed
/// over without any header is body, not a UTF-8 header field. Lines may end in CRLF or a
/// bare LF (the driver can normalise either).
pub(crate) fn header_section(message: &[u8]) -> &[u8] {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', message).chain(std::iter::once(message.len()));
    while let Some(end) = ends.next().filter(|_| start < message.len()) {
        let line = message.get(start..end).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let folded = start > 0 && line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if line.is_empty() || !(folded || is_field(line)) {
            return message.get(..start).unwrap_or_default();
        }
        start = end + 1;
    }
    message
}

/// `field-name ":"` at the start of `line`: one or more printable ASCII octets but `:`.
fn is_field(line: &[u8]) -> bool {
    match memchr::memchr(b':', line) {
        Some(colon) => {
            colon > 0 && line.get(..colon).is_some_and(|name| name.iter().all(|b| (33..=126).contains(b)))
        }
        None => false,
    }
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
        assert_eq!(header_section(b"A: 1\r\nnot a field\r\nB: 2\r\n"), b"A: 1\r\n");
        assert_eq!(header_section(b" leading space\r\n"), b"");
    }

    #[test]
    fn non_ascii_in_headers_only() {
        assert_eq!(first_non_ascii_header_octet(b"Subject: hi\r\n\r\nGr\xc3\xbc\xc3\x9fe"), None);
        assert_eq!(first_non_ascii_header_octet("Subject: Grüße\r\n\r\nx".as_bytes()), Some(11));
        assert_eq!(first_non_ascii_header_octet("From: zoë@x\r\n folded ü\r\n\r\n".as_bytes()), Some(8));
        assert_eq!(first_non_ascii_header_octet(b"X: a\n \xff\n\nbody"), Some(6));
        // RFC 2047 encoded words are ASCII.
        assert_eq!(first_non_ascii_header_octet(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n"), None);
        // Without an empty line, the header section ends at the first line that is not a
        // field: raw text is body.
        assert_eq!(first_non_ascii_header_octet("X: a\r\nü".as_bytes()), None);
        assert_eq!(first_non_ascii_header_octet("café\r\n".as_bytes()), None);
        assert_eq!(first_non_ascii_header_octet("X: ü".as_bytes()), Some(3));
        assert_eq!(first_non_ascii_header_octet("Fröm: x\r\n\r\n".as_bytes()), None);
    }
}
