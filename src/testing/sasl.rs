//! Decoding the client's side of AUTH PLAIN (RFC 4616) and AUTH LOGIN exchanges.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Decode a base64 SASL response.
///
/// RFC 4954 4: "If the client is transmitting an initial response of zero length, it MUST
/// instead transmit the response as a single equals sign".
pub(crate) fn decode_response(text: &str) -> Option<Vec<u8>> {
    if text == "=" {
        return Some(Vec::new());
    }
    BASE64.decode(text.trim()).ok()
}

/// The three fields of a PLAIN message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plain {
    pub authzid: Vec<u8>,
    pub authcid: Vec<u8>,
    pub password: Vec<u8>,
}

/// RFC 4616 2: `message = [authzid] UTF8NUL authcid UTF8NUL passwd`; `None` if malformed.
pub(crate) fn parse_plain(decoded: &[u8]) -> Option<Plain> {
    let mut parts = decoded.split(|&b| b == 0);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(authzid), Some(authcid), Some(password), None) if !authcid.is_empty() => {
            Some(Plain { authzid: authzid.to_vec(), authcid: authcid.to_vec(), password: password.to_vec() })
        }
        _ => None,
    }
}

/// Base64 of a LOGIN prompt (`Username:`, `Password:`), as sent after `334 `.
pub(crate) fn prompt(text: &str) -> String {
    BASE64.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        assert_eq!(decode_response("="), Some(Vec::new()));
        assert_eq!(decode_response("YWxpY2U="), Some(b"alice".to_vec()));
        assert_eq!(decode_response("not base64!"), None);
        assert_eq!(prompt("Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn plain_messages() {
        assert_eq!(
            parse_plain(b"\0alice\0s3cret"),
            Some(Plain { authzid: Vec::new(), authcid: b"alice".to_vec(), password: b"s3cret".to_vec() })
        );
        assert_eq!(parse_plain(b"admin\0alice\0pw").map(|p| p.authzid), Some(b"admin".to_vec()));
        assert_eq!(parse_plain(b"\0\0pw"), None);
        assert_eq!(parse_plain(b"alice\0pw"), None);
        assert_eq!(parse_plain(b"a\0b\0c\0d"), None);
        assert_eq!(parse_plain(b""), None);
    }
}
