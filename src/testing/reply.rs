//! Server replies and their wire form (RFC 5321 4.2, enhanced codes per RFC 2034).

/// One reply the server is about to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The three-digit code (any value: faults may send nonsense such as 999).
    pub code: u16,
    /// RFC 3463 enhanced status code, written only when ENHANCEDSTATUSCODES is on.
    pub enhanced: Option<&'static str>,
    /// Text; each `\n` starts another line of a multi-line reply.
    pub text: String,
}

impl Reply {
    /// A reply written exactly as given.
    pub(crate) fn new(code: u16, text: impl Into<String>) -> Self {
        Reply { code, enhanced: None, text: text.into() }
    }

    /// A reply that carries an enhanced status code when the server advertises them.
    pub(crate) fn enhanced(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Reply { code, enhanced: Some(enhanced), text: text.into() }
    }

    /// The bytes on the wire.
    ///
    /// RFC 5321 4.2.1: "the format for multiline replies requires that every line, except the
    /// last, begin with the reply code, followed immediately by a hyphen, "-" (also known as
    /// minus), followed by text. The last line will begin with the reply code, followed
    /// immediately by `<SP>`, optionally some text, and `<CRLF>`."
    pub(crate) fn to_wire(&self, enhanced_codes: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 16);
        let lines: Vec<&str> = self.text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        let count = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let sep = if i + 1 == count { ' ' } else { '-' };
            let prefix = match self.enhanced {
                // RFC 2034 4: the enhanced code goes on every line of the reply.
                Some(e) if enhanced_codes => format!("{:03}{sep}{e} ", self.code),
                _ => format!("{:03}{sep}", self.code),
            };
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        assert_eq!(Reply::new(250, "OK").to_wire(true), b"250 OK\r\n");
        assert_eq!(Reply::new(250, "a\nb\r\nc").to_wire(false), b"250-a\r\n250-b\r\n250 c\r\n");
        assert_eq!(Reply::new(334, "").to_wire(true), b"334 \r\n");
        assert_eq!(Reply::new(999, "x").to_wire(true), b"999 x\r\n");
    }

    #[test]
    fn enhanced_codes_follow_the_switch() {
        let r = Reply::enhanced(550, "5.1.1", "No such user");
        assert_eq!(r.to_wire(true), b"550 5.1.1 No such user\r\n");
        assert_eq!(r.to_wire(false), b"550 No such user\r\n");
    }
}
