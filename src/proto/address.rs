//! Validated mailbox addresses, EHLO names and the SMTP envelope.
//!
//! Every value here is checked when it is built, so nothing a caller supplies can put a
//! CR, LF or another control byte on the wire (RFC 5321 section 4.1.2 grammar, with the
//! RFC 6531 extension for UTF-8).

use std::fmt;
use std::sync::Arc;

/// Why an address, domain or EHLO name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The value was empty.
    #[error("empty {0}")]
    Empty(&'static str),
    /// A control byte (C0 or DEL) was found.
    #[error("control byte 0x{byte:02x} at offset {offset} in {what}")]
    ControlByte {
        /// What was being validated.
        what: &'static str,
        /// The offending byte.
        byte: u8,
        /// Its offset in the input.
        offset: usize,
    },
    /// A value exceeded an RFC 5321 section 4.5.3.1 size limit.
    #[error("{what} is {len} octets, the limit is {max}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length in octets.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value does not follow the RFC 5321 grammar.
    #[error("invalid {what}: {reason}")]
    Syntax {
        /// What was being validated.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// RFC 5321 section 4.5.3.1.1: "The maximum total length of a user name or other
/// local-part is 64 octets."
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 section 4.5.3.1.2: "The maximum total length of a domain name or number is 255
/// octets."
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 section 4.5.3.1.3: "The maximum total length of a reverse-path or
/// forward-path is 256 octets (including the punctuation and element separators)."
pub const MAX_PATH: usize = 256;

/// A validated mailbox (`local-part@domain`), as used in `MAIL FROM` and `RCPT TO`.
///
/// ```
/// use smtpkit::Address;
/// let a: Address = "alice@example.com".parse().unwrap();
/// assert_eq!(a.as_str(), "alice@example.com");
/// assert!("bob@exa\r\nmple.com".parse::<Address>().is_err());
/// ```
///
/// Cheap to clone: the text is shared, so copying an envelope or a per-recipient result
/// costs no allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address {
    text: Arc<str>,
    at: usize,
    /// Non-ASCII text, which needs `SMTPUTF8`; decided once, asked for every message.
    utf8: bool,
}

impl Address {
    /// Validates `text` as an RFC 5321 mailbox (RFC 6531 UTF-8 allowed).
    pub fn new(text: &str) -> Result<Self, AddressError> {
        let what = "address";
        if text.is_empty() {
            return Err(AddressError::Empty(what));
        }
        check_controls(what, text.as_bytes())?;
        // "<" and ">" add two octets to the path.
        if text.len() + 2 > MAX_PATH {
            return Err(AddressError::TooLong { what: "path", len: text.len() + 2, max: MAX_PATH });
        }
        let at = text.rfind('@').ok_or(AddressError::Syntax { what, reason: "no '@'" })?;
        let (local, domain) = (&text[..at], &text[at + 1..]);
        validate_local_part(local)?;
        validate_mail_domain(domain)?;
        Ok(Self { text: text.into(), at, utf8: !text.is_ascii() })
    }

    /// The address as text, without angle brackets.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The local part (before the last `@`).
    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The domain part (after the last `@`).
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// True when the address has non-ASCII characters and so needs `SMTPUTF8` (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        self.utf8
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Address {
    type Error = AddressError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.text)
    }
}

fn check_controls(what: &'static str, bytes: &[u8]) -> Result<(), AddressError> {
    match bytes.iter().enumerate().find(|&(_, &b)| b < 0x20 || b == 0x7f) {
        Some((offset, &byte)) => Err(AddressError::ControlByte { what, byte, offset }),
        None => Ok(()),
    }
}

/// RFC 5322 `atext`, extended by RFC 6531 with any UTF-8 non-ASCII character.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn validate_local_part(local: &str) -> Result<(), AddressError> {
    let what = "local part";
    if local.is_empty() {
        return Err(AddressError::Empty(what));
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::TooLong { what, len: local.len(), max: MAX_LOCAL_PART });
    }
    if local.starts_with('"') {
        return validate_quoted_string(local);
    }
    // Dot-string = Atom *("." Atom)
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err(AddressError::Syntax {
                what,
                reason: "empty atom (leading, trailing or double dot)",
            });
        }
        if !atom.chars().all(is_atext) {
            return Err(AddressError::Syntax { what, reason: "character not allowed outside quotes" });
        }
    }
    Ok(())
}

/// Quoted-string = DQUOTE *QcontentSMTP DQUOTE; QcontentSMTP = qtextSMTP / quoted-pairSMTP.
fn validate_quoted_string(local: &str) -> Result<(), AddressError> {
    let what = "quoted local part";
    let inner = local
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|_| local.len() >= 2)
        .ok_or(AddressError::Syntax { what, reason: "unterminated quote" })?;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            // quoted-pairSMTP = %d92 %d32-126
            '\\' => match chars.next() {
                Some(' '..='~') => {}
                _ => return Err(AddressError::Syntax { what, reason: "bad escape" }),
            },
            '"' => return Err(AddressError::Syntax { what, reason: "unescaped quote" }),
            // qtextSMTP = %d32-33 / %d35-91 / %d93-126 (plus UTF-8 under RFC 6531)
            ' '..='~' => {}
            c if !c.is_ascii() => {}
            _ => return Err(AddressError::Syntax { what, reason: "character not allowed in quotes" }),
        }
    }
    Ok(())
}

/// The domain of a mailbox: a domain name or an address literal in brackets.
fn validate_mail_domain(domain: &str) -> Result<(), AddressError> {
    if domain.starts_with('[') { validate_address_literal(domain) } else { validate_domain(domain) }
}

/// `address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]"`; checked as
/// `dcontent` (%d33-90 / %d94-126) inside brackets.
fn validate_address_literal(lit: &str) -> Result<(), AddressError> {
    let what = "address literal";
    // RFC 5321 section 4.5.3.1.2: "The maximum total length of a domain name or number is
    // 255 octets." Inside an address the path limit is stricter; an EHLO name has only this.
    if lit.len() > MAX_DOMAIN {
        return Err(AddressError::TooLong { what, len: lit.len(), max: MAX_DOMAIN });
    }
    let inner = lit
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or(AddressError::Syntax { what, reason: "missing ']'" })?;
    if inner.is_empty() {
        return Err(AddressError::Empty(what));
    }
    if !inner.bytes().all(|b| matches!(b, 33..=90 | 94..=126)) {
        return Err(AddressError::Syntax { what, reason: "character not allowed in brackets" });
    }
    Ok(())
}

/// Validates a domain name: dot-separated labels of letters, digits and hyphens (UTF-8
/// U-labels allowed), each 1 to 63 octets, not starting or ending with a hyphen.
pub fn validate_domain(domain: &str) -> Result<(), AddressError> {
    let what = "domain";
    if domain.is_empty() {
        return Err(AddressError::Empty(what));
    }
    check_controls(what, domain.as_bytes())?;
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError::TooLong { what, len: domain.len(), max: MAX_DOMAIN });
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(AddressError::Syntax { what, reason: "empty label" });
        }
        if label.len() > 63 {
            return Err(AddressError::TooLong { what: "domain label", len: label.len(), max: 63 });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::Syntax { what, reason: "label starts or ends with '-'" });
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii()) {
            return Err(AddressError::Syntax { what, reason: "character not allowed in a label" });
        }
    }
    Ok(())
}

/// The name the client gives in `EHLO`/`HELO`: a domain or an address literal.
///
/// ```
/// use smtpkit::EhloName;
/// assert!(EhloName::new("client.example.com").is_ok());
/// assert!(EhloName::new("[127.0.0.1]").is_ok());
/// assert!(EhloName::new("bad name").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EhloName(Box<str>);

impl EhloName {
    /// Validates `name` as a domain or an address literal.
    pub fn new(name: &str) -> Result<Self, AddressError> {
        check_controls("EHLO name", name.as_bytes())?;
        validate_mail_domain(name)?;
        Ok(Self(name.into()))
    }

    /// A literal for an IP address, e.g. `[192.0.2.1]` or `[IPv6:::1]`.
    pub fn from_ip(ip: std::net::IpAddr) -> Self {
        let text = match ip {
            std::net::IpAddr::V4(v4) => format!("[{v4}]"),
            std::net::IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
        };
        Self(text.into())
    }

    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for EhloName {
    /// `localhost`: RFC 5321 wants the client's FQDN, which a library cannot know; callers
    /// should set their own.
    fn default() -> Self {
        Self("localhost".into())
    }
}

impl fmt::Debug for EhloName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for EhloName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who sends a message and who receives it, as given in `MAIL FROM` and `RCPT TO`.
///
/// The envelope is independent of the message headers: Bcc recipients appear here and
/// nowhere in the message.
///
/// Cheap to clone: the recipient list is shared, so a bulk sender can hand the same
/// envelope to many messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    from: Option<Address>,
    to: Arc<[Address]>,
}

/// Why an envelope could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// No recipient was given.
    #[error("an envelope needs at least one recipient")]
    NoRecipients,
    /// An address was invalid.
    #[error(transparent)]
    Address(#[from] AddressError),
}

impl Envelope {
    /// An envelope from `from` (`None` is the null reverse-path `<>`, used for bounces) to
    /// the given recipients; duplicates are removed, keeping the first occurrence.
    pub fn new(from: Option<Address>, to: Vec<Address>) -> Result<Self, EnvelopeError> {
        if to.is_empty() {
            return Err(EnvelopeError::NoRecipients);
        }
        let mut unique: Vec<Address> = Vec::with_capacity(to.len());
        for rcpt in to {
            // Domains are case-insensitive; RFC 5321 section 2.4: "the local-part of a mailbox
            // MUST BE treated as case sensitive".
            let same = |u: &Address| {
                u.local_part() == rcpt.local_part() && u.domain().eq_ignore_ascii_case(rcpt.domain())
            };
            if !unique.iter().any(same) {
                unique.push(rcpt);
            }
        }
        Ok(Self { from, to: unique.into() })
    }

    /// Parses the sender and recipients from strings.
    ///
    /// ```
    /// let env = smtpkit::Envelope::parse("a@example.com", &["b@example.com"]).unwrap();
    /// assert_eq!(env.to().len(), 1);
    /// ```
    pub fn parse(from: &str, to: &[&str]) -> Result<Self, EnvelopeError> {
        let from = if from.is_empty() { None } else { Some(Address::new(from)?) };
        let to = to.iter().map(|t| Address::new(t)).collect::<Result<Vec<_>, _>>()?;
        Self::new(from, to)
    }

    /// The reverse-path; `None` is the null sender `<>`.
    pub fn from(&self) -> Option<&Address> {
        self.from.as_ref()
    }

    /// The forward-paths, de-duplicated.
    pub fn to(&self) -> &[Address] {
        &self.to
    }

    /// True when any address needs `SMTPUTF8`.
    pub fn needs_smtputf8(&self) -> bool {
        self.from.as_ref().is_some_and(Address::needs_smtputf8) || self.to.iter().any(Address::needs_smtputf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unusual_addresses() {
        for ok in [
            "a@b.c",
            "first.last+tag@example.com",
            "\"john doe\"@example.com",
            "\"a\\\"b\"@example.com",
            "user@[192.0.2.1]",
            "user@[IPv6:::1]",
            "Zoë@exämple.de",
            "x@localhost",
        ] {
            assert!(Address::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_every_control_byte() {
        for b in (0u8..0x20).chain([0x7f]) {
            let s = format!("a{}b@example.com", b as char);
            match Address::new(&s) {
                Err(AddressError::ControlByte { byte, offset: 1, .. }) => assert_eq!(byte, b),
                other => panic!("byte {b:#x}: {other:?}"),
            }
            let q = format!("\"a{}b\"@example.com", b as char);
            assert!(Address::new(&q).is_err(), "quoted {b:#x}");
            let d = format!("ab@exa{}mple.com", b as char);
            assert!(Address::new(&d).is_err(), "domain {b:#x}");
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "noat",
            "@example.com",
            "a@",
            "a..b@x.y",
            ".a@x.y",
            "a.@x.y",
            "a b@x.y",
            "a<b@x.y",
            "a@-x.y",
            "a@x..y",
            "a@[1.2.3.4",
            "\"abc@x.y",
            "a@b c",
            "a>@x.y",
            "\"a\"b\"@x.y",
        ] {
            assert!(Address::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn enforces_rfc5321_lengths() {
        let local = "a".repeat(65);
        assert!(matches!(Address::new(&format!("{local}@x.y")), Err(AddressError::TooLong { .. })));
        assert!(Address::new(&format!("{}@x.y", "a".repeat(64))).is_ok());
        let long_domain = vec!["a".repeat(60); 5].join(".");
        assert!(matches!(Address::new(&format!("a@{long_domain}")), Err(AddressError::TooLong { .. })));
    }

    #[test]
    fn utf8_flag() {
        assert!(Address::new("Zoë@example.com").unwrap().needs_smtputf8());
        assert!(!Address::new("zoe@example.com").unwrap().needs_smtputf8());
    }

    #[test]
    fn envelope_dedups_and_needs_a_recipient() {
        let env = Envelope::parse("", &["a@x.y", "a@X.Y", "A@x.y"]).unwrap();
        assert_eq!(env.to().len(), 2);
        assert!(env.from().is_none());
        assert_eq!(Envelope::parse("a@x.y", &[]), Err(EnvelopeError::NoRecipients));
    }

    #[test]
    fn ehlo_names() {
        assert!(EhloName::new("mail.example.com").is_ok());
        assert!(EhloName::new("x\r\nMAIL FROM:<a@b>").is_err());
        assert_eq!(EhloName::from_ip("127.0.0.1".parse().unwrap()).as_str(), "[127.0.0.1]");
        assert_eq!(EhloName::from_ip("::1".parse().unwrap()).as_str(), "[IPv6:::1]");
        // Found by the validators fuzz target: an address literal had no length limit.
        let literal = format!("[{}]", "r".repeat(253));
        assert!(EhloName::new(&literal).is_ok());
        let too_long = format!("[{}]", "r".repeat(254));
        assert!(matches!(EhloName::new(&too_long), Err(AddressError::TooLong { max: 255, .. })));
    }
}
