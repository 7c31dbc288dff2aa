//! The header section of a message given as bytes, and whether it needs `SMTPUTF8`.
//!
//! RFC 6532 section 3.2 extends the header syntax to UTF-8; RFC 6531 section 3.4 lets a
//! client send such a message only with the `SMTPUTF8` parameter, to a server that offered
//! the extension: "the SMTP client MUST NOT transmit a message containing UTF-8 header
//! fields ... unless the server has advertised SMTPUTF8". A raw message whose header section
//! holds any octet above 0x7F therefore needs it, whatever its envelope. (A body may hold
//! 8-bit octets under `8BITMIME` alone.)

/// The header section of `message`: its leading header fields (RFC 5322 section 2.1: "A
/// message consists of header fields ... followed, optionally, by a body"), up to the empty
/// line that ends them or the first line that is neither a field (`1*ftext ":"`, section
/// 3.6.8) nor a folded continuation (section 2.2.3: it starts with WSP). A raw body given
/// without headers (`café` alone) has an empty header section. Lines may end in CRLF or
/// a bare LF (the driver can normalise either).
pub(crate) fn header_section(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let rest = message.get(start..).unwrap_or_default();
        let end = memchr::memchr(b'\n', rest).map_or(message.len(), |i| start + i + 1);
        let line = message.get(start..end).unwrap_or_default();
        let continuation = start > 0 && matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation && !is_field_start(line) {
            break;
        }
        start = end;
    }
    message.get(..start).unwrap_or_default()
}

/// `1*ftext ":"` at the start of `line`; `ftext = %d33-57 / %d59-126`.
fn is_field_start(line: &[u8]) -> bool {
    let name_len = line.iter().take_while(|&&b| matches!(b, 33..=57 | 59..=126)).count();
    name_len > 0 && line.get(name_len) == Some(&b':')
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
        // A body without headers, or after fields without the empty line.
        assert_eq!(header_section("café\r\n".as_bytes()), b"");
        assert_eq!(header_section("A: 1\r\ncafé\r\n".as_bytes()), b"A: 1\r\n");
        assert_eq!(header_section(b" folded first\r\n"), b"");
        assert_eq!(header_section(b": no name\r\n"), b"");
    }

    #[test]
    fn non_ascii_in_headers_only() {
        assert_eq!(first_non_ascii_header_octet(b"Subject: hi\r\n\r\nGr\xc3\xbc\xc3\x9fe"), None);
        assert_eq!(first_non_ascii_header_octet("Subject: Grüße\r\n\r\nx".as_bytes()), Some(11));
        assert_eq!(first_non_ascii_header_octet("From: zoë@x\r\n folded ü\r\n\r\n".as_bytes()), Some(8));
        assert_eq!(first_non_ascii_header_octet(b"X: a\n \xff\n\nbody"), Some(6));
        // RFC 2047 encoded words are ASCII.
        assert_eq!(first_non_ascii_header_octet(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n"), None);
        // Without an empty line, the fields still count; a non-field line ends them.
        assert_eq!(first_non_ascii_header_octet("X: a\r\nY: ü".as_bytes()), Some(9));
        assert_eq!(first_non_ascii_header_octet("X: a\r\nü".as_bytes()), None);
        assert_eq!(first_non_ascii_header_octet("caf\u{e9}\r\n".as_bytes()), None);
    }
}
