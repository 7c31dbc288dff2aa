//! Validation of header names, header values and identifiers.
//!
//! mail-builder writes header names, Message-IDs and Content-IDs as given, and RFC 2047
//! encodes control bytes in values instead of refusing them. A CR or LF that reaches the
//! output can start a new header (`Subject: hi\r\nBcc: victim@example.com`), so every
//! caller-supplied string is checked here first and a control byte is a typed error.

use mail_builder::headers::{HeaderType, raw::Raw, text::Text};

use super::MimeError;

/// RFC 5322 section 2.1.1: "Each line of characters MUST be no more than 998 characters,
/// and SHOULD be no more than 78 characters, excluding the CRLF."
pub(crate) const MAX_LINE: usize = 998;

/// The line length mail-builder folds header values at (RFC 5322 section 2.1.1's "SHOULD be
/// no more than 78 characters").
const FOLD_TARGET: usize = 78;

/// Longest identifier accepted in Message-ID, In-Reply-To, References and Content-ID:
/// with `<`, `>` and the longest field name it still fits one 998-octet line.
const MAX_ID: usize = 900;

/// Refuses every C0 control byte (including TAB) and DEL in `value`.
///
/// RFC 5322 section 2.2: header bodies are "printable US-ASCII characters together with
/// the space (SP, ASCII value 32) and horizontal tab (HTAB, ASCII value 9)". TAB is
/// legal, but it is refused too: nothing a caller sends needs one, and the project's bar
/// is that no control byte from caller input reaches a header.
pub(crate) fn check_controls(field: impl FnOnce() -> String, value: &str) -> Result<(), MimeError> {
    match value.bytes().position(|b| b < 0x20 || b == 0x7f) {
        Some(offset) => {
            Err(MimeError::ControlByte { field: field(), byte: value.as_bytes()[offset], offset })
        }
        None => Ok(()),
    }
}

/// Headers the builder writes itself; setting them through `header()` would duplicate or
/// contradict them (and a custom `Bcc` would leak the blind copies).
const RESERVED: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
    // RFC 5321 section 4.4: "A message-originating SMTP system SHOULD NOT send a message
    // that already contains a Return-path header field."
    "Return-Path",
];

/// Validates a custom header name.
///
/// RFC 5322 section 3.6.8: `field-name = 1*ftext`, `ftext = %d33-57 / %d59-126`
/// ("printable US-ASCII characters not including ':'").
pub(crate) fn validate_header_name(name: &str) -> Result<(), MimeError> {
    let bad = |reason| Err(MimeError::HeaderName { name: name.to_owned(), reason });
    if name.is_empty() {
        return bad("empty");
    }
    // Keeps "Name: " within the 78-character line RFC 5322 section 2.1.1 recommends.
    if name.len() > 76 {
        return bad("longer than 76 characters");
    }
    if let Some(&byte) = name.as_bytes().iter().find(|&&b| !matches!(b, 33..=57 | 59..=126)) {
        return match byte {
            b':' => bad("contains ':'"),
            b' ' => bad("contains a space"),
            _ if byte < 0x20 || byte == 0x7f => {
                let offset = name.bytes().position(|b| b == byte).unwrap_or_default();
                Err(MimeError::ControlByte { field: "header name".to_owned(), byte, offset })
            }
            _ => bad("contains a character outside printable US-ASCII"),
        };
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(MimeError::ReservedHeader(name.to_owned()));
    }
    Ok(())
}

/// Validates an unstructured header value and chooses how mail-builder writes it.
///
/// Pure ASCII is written as is and folded at whitespace, which keeps structured custom
/// headers (`List-Unsubscribe: <https://...>`) intact. Anything else becomes RFC 2047
/// encoded-words, which mail-builder splits so that no line exceeds 76 characters.
pub(crate) fn header_value<'x>(name: &str, value: &'x str) -> Result<HeaderType<'x>, MimeError> {
    check_controls(|| name.to_owned(), value)?;
    if !value.is_ascii() {
        return Ok(Text::new(value).into());
    }
    // mail-builder folds only before a run of spaces (TAB is refused above), and moves the
    // whole run to the new line with the word after it; trailing spaces stay on the last
    // line. So a line is at most FOLD_TARGET octets, or "Name: " (on the first line) and one
    // run-and-word, plus the trailing run on the last line. Measuring words alone let a long
    // run of spaces through to a line over 998 octets, refused only by the final wire check.
    let body = value.trim_end_matches(' ');
    let trailing = value.len() - body.len();
    let unbreakable = longest_run_and_word(body);
    if (name.len() + 2 + unbreakable).max(FOLD_TARGET) + trailing > MAX_LINE {
        return Err(MimeError::HeaderTooLong { name: name.to_owned(), len: unbreakable + trailing });
    }
    Ok(Raw::new(value).into())
}

/// The length of the longest run of spaces together with the word after it (a value's
/// first word may have no spaces before it).
fn longest_run_and_word(value: &str) -> usize {
    let mut longest = 0;
    let mut start = 0;
    for (i, pair) in value.as_bytes().windows(2).enumerate() {
        if pair[1] == b' ' && pair[0] != b' ' {
            longest = longest.max(i + 1 - start);
            start = i + 1;
        }
    }
    longest.max(value.len() - start)
}

/// Like [`header_value`], for a field known to be unstructured (Subject): an ASCII word
/// too long to fold is RFC 2047 encoded, which may split it anywhere, instead of being
/// refused. RFC 2047 section 5 allows encoded-words in "any 'text' token in a header field
/// defined as '*text'", which Subject is (RFC 5322 section 3.6.5: `unstructured`).
pub(crate) fn unstructured_value<'x>(name: &str, value: &'x str) -> Result<HeaderType<'x>, MimeError> {
    match header_value(name, value) {
        Err(MimeError::HeaderTooLong { .. }) => Ok(Text::new(value).into()),
        other => other,
    }
}

/// Validates a display name (a phrase, RFC 5322 section 3.2.5). mail-builder quotes or
/// RFC 2047 encodes it as needed; only control bytes are refused.
pub(crate) fn validate_display_name(field: &'static str, name: &str) -> Result<(), MimeError> {
    check_controls(|| format!("{field} display name"), name)
}

/// Validates a Message-ID, In-Reply-To or References identifier and returns it without
/// angle brackets.
///
/// RFC 5322 section 3.6.4: `msg-id = [CFWS] "<" id-left "@" id-right ">" [CFWS]`, where
/// `id-left = dot-atom-text` and `id-right = dot-atom-text / no-fold-literal`.
pub(crate) fn validate_msg_id<'a>(field: &'static str, value: &'a str) -> Result<&'a str, MimeError> {
    let id = validate_id(field, value)?;
    match id.rsplit_once('@') {
        Some((left, right)) if !left.is_empty() && !right.is_empty() => Ok(id),
        _ => {
            Err(MimeError::InvalidId { field, value: value.to_owned(), reason: "needs the form left@right" })
        }
    }
}

/// Validates a Content-ID and returns it without angle brackets.
///
/// RFC 2392: "A "cid" URL is converted to the corresponding Content-ID message header
/// [MIME] by removing the "cid:" prefix"; so the identifier must be usable both inside
/// `<...>` and in a URL. Identifiers without `@` (such as `logo`) are accepted, as every
/// mail client does, because callers write `cid:logo` in their HTML.
pub(crate) fn validate_content_id(value: &str) -> Result<&str, MimeError> {
    validate_id("Content-ID", value)
}

fn validate_id<'a>(field: &'static str, value: &'a str) -> Result<&'a str, MimeError> {
    check_controls(|| field.to_owned(), value)?;
    let bad = |reason| Err(MimeError::InvalidId { field, value: value.to_owned(), reason });
    let id = value.strip_prefix('<').and_then(|v| v.strip_suffix('>')).unwrap_or(value);
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > MAX_ID {
        return bad("longer than 900 octets");
    }
    // dot-atom-text: atext and dots; no-fold-literal adds "[" and "]". RFC 6532 section
    // 3.2 extends atext with UTF-8, so non-ASCII passes (and makes the message need
    // SMTPUTF8).
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@[]".contains(c) || !c.is_ascii();
    if !id.chars().all(allowed) {
        return bad("only letters, digits and !#$%&'*+-/=?^_`{|}~.@[] are allowed");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        assert!(validate_header_name("X-Campaign").is_ok());
        assert!(validate_header_name("List-Unsubscribe").is_ok());
        for bad in ["", "X Campaign", "X:Y", "Ä", &"x".repeat(77)] {
            assert!(matches!(validate_header_name(bad), Err(MimeError::HeaderName { .. })), "{bad:?}");
        }
        for reserved in ["bcc", "BCC", "Content-Type", "message-id", "Return-Path"] {
            assert!(matches!(validate_header_name(reserved), Err(MimeError::ReservedHeader(_))));
        }
        for b in (0u8..0x20).chain([0x7f]) {
            let name = format!("X-{}A", b as char);
            match validate_header_name(&name) {
                Err(MimeError::ControlByte { byte, offset: 2, .. }) => assert_eq!(byte, b),
                other => panic!("{b:#x}: {other:?}"),
            }
        }
    }

    #[test]
    fn header_values_choose_raw_or_encoded() {
        assert!(matches!(header_value("X-A", "plain"), Ok(HeaderType::Raw(_))));
        assert!(matches!(header_value("X-A", "Grüße"), Ok(HeaderType::Text(_))));
        let word = "a".repeat(998 - 5);
        assert!(header_value("X-A", &word).is_ok());
        let word = "a".repeat(998 - 4);
        assert!(matches!(header_value("X-A", &word), Err(MimeError::HeaderTooLong { len: 994, .. })));
        // Long values made of short words fold.
        assert!(header_value("X-A", &"word ".repeat(1000)).is_ok());
        // A run of spaces moves to the next line whole, with the word after it; trailing
        // spaces stay on the last line (found by the mime_compose fuzz target: a Subject of
        // 1022 spaces gave MimeError::Malformed).
        let run = format!("a{}b", " ".repeat(995));
        assert!(matches!(header_value("X-A", &run), Err(MimeError::HeaderTooLong { len: 996, .. })));
        assert!(header_value("X-A", &format!("a{}b", " ".repeat(900))).is_ok());
        let trailing = " ".repeat(1022);
        assert!(matches!(header_value("X-A", &trailing), Err(MimeError::HeaderTooLong { len: 1022, .. })));
        assert!(header_value("X-A", &format!("{}{}", "w ".repeat(50), " ".repeat(900))).is_ok());
        assert!(matches!(unstructured_value("Subject", &trailing), Ok(HeaderType::Text(_))));
        // A subject may be encoded instead.
        assert!(matches!(unstructured_value("Subject", &"a".repeat(2000)), Ok(HeaderType::Text(_))));
        assert!(matches!(
            unstructured_value("Subject", "a\nb"),
            Err(MimeError::ControlByte { byte: b'\n', .. })
        ));
    }

    #[test]
    fn msg_ids() {
        assert_eq!(validate_msg_id("In-Reply-To", "<a.b@c>").unwrap(), "a.b@c");
        assert_eq!(validate_msg_id("In-Reply-To", "a@[1.2.3.4]").unwrap(), "a@[1.2.3.4]");
        for bad in ["", "<>", "nodomain", "@x", "x@", "a b@c", "a<b@c", "<a@b", "a\"@b"] {
            assert!(validate_msg_id("References", bad).is_err(), "{bad:?}");
        }
        assert!(validate_msg_id("References", &format!("{}@x", "a".repeat(900))).is_err());
        assert_eq!(validate_content_id("logo").unwrap(), "logo");
        assert_eq!(validate_content_id("<logo@x>").unwrap(), "logo@x");
    }
}
