//! A mailbox as written in From, To and the other address headers: an optional display
//! name and an address.

use std::fmt;

use super::{MimeError, header::validate_display_name};
use crate::Address;

/// A validated mailbox for an address header: `Zoë Example <zoe@example.com>`.
///
/// The display name may hold any Unicode text except control bytes; it is RFC 2047
/// encoded when needed, so it never makes a message need `SMTPUTF8`. The address is an
/// [`Address`]; a non-ASCII one does need `SMTPUTF8`.
///
/// ```
/// use smtpkit::mime::Mailbox;
/// let m = Mailbox::try_from(("Zoë Example", "zoe@example.com")).unwrap();
/// assert_eq!(m.name(), Some("Zoë Example"));
/// assert_eq!(m.address().as_str(), "zoe@example.com");
/// let m: Mailbox = "Bob <bob@example.com>".try_into().unwrap();
/// assert_eq!(m.name(), Some("Bob"));
/// assert!(Mailbox::try_from(("Eve\r\nBcc: x@y.z", "eve@example.com")).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    name: Option<String>,
    address: Address,
}

impl Mailbox {
    /// A mailbox from an optional display name and an address. An empty name is the
    /// same as none.
    pub fn new(name: Option<&str>, address: Address) -> Result<Self, MimeError> {
        let name = name.filter(|n| !n.is_empty());
        if let Some(n) = name {
            validate_display_name("mailbox", n)?;
        }
        Ok(Self { name: name.map(str::to_owned), address })
    }

    /// Parses `local@domain` or `Display Name <local@domain>`. The display name is taken
    /// as written, trimmed, without surrounding double quotes.
    pub fn parse(text: &str) -> Result<Self, MimeError> {
        let address_error = |source| MimeError::Address { field: "mailbox", source };
        match text.trim_end_matches(' ').strip_suffix('>').and_then(|t| t.rsplit_once('<')) {
            Some((name, addr)) => {
                // Only spaces are trimmed: a CR, LF or TAB around the name is refused
                // below, not silently dropped.
                let name = name.trim_matches(' ');
                let name = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(name);
                Self::new(Some(name), Address::new(addr).map_err(address_error)?)
            }
            None => Ok(Self { name: None, address: Address::new(text).map_err(address_error)? }),
        }
    }

    /// The display name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Attributes errors to the header the mailbox was given for.
    pub(crate) fn for_field(field: &'static str, m: Result<Self, MimeError>) -> Result<Self, MimeError> {
        m.map_err(|e| match e {
            MimeError::Address { source, .. } => MimeError::Address { field, source },
            MimeError::ControlByte { byte, offset, .. } => {
                MimeError::ControlByte { field: format!("{field} display name"), byte, offset }
            }
            other => other,
        })
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name:?} <{}>", self.address),
            None => write!(f, "<{}>", self.address),
        }
    }
}

impl From<Address> for Mailbox {
    fn from(address: Address) -> Self {
        Self { name: None, address }
    }
}

impl TryFrom<&str> for Mailbox {
    type Error = MimeError;
    fn try_from(text: &str) -> Result<Self, MimeError> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Mailbox {
    type Error = MimeError;
    fn try_from(text: String) -> Result<Self, MimeError> {
        Self::parse(&text)
    }
}

impl TryFrom<&String> for Mailbox {
    type Error = MimeError;
    fn try_from(text: &String) -> Result<Self, MimeError> {
        Self::parse(text)
    }
}

impl TryFrom<(&str, &str)> for Mailbox {
    type Error = MimeError;
    /// `(display name, address)`.
    fn try_from((name, address): (&str, &str)) -> Result<Self, MimeError> {
        let address =
            Address::new(address).map_err(|source| MimeError::Address { field: "mailbox", source })?;
        Self::new(Some(name), address)
    }
}

impl TryFrom<(String, String)> for Mailbox {
    type Error = MimeError;
    /// `(display name, address)`.
    fn try_from((name, address): (String, String)) -> Result<Self, MimeError> {
        Self::try_from((name.as_str(), address.as_str()))
    }
}

impl TryFrom<(&str, Address)> for Mailbox {
    type Error = MimeError;
    /// `(display name, address)`.
    fn try_from((name, address): (&str, Address)) -> Result<Self, MimeError> {
        Self::new(Some(name), address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let m = Mailbox::parse("bob@example.com").unwrap();
        assert_eq!((m.name(), m.address().as_str()), (None, "bob@example.com"));
        let m = Mailbox::parse("\"Doe, Jane\" <jane@example.com>").unwrap();
        assert_eq!((m.name(), m.address().as_str()), (Some("Doe, Jane"), "jane@example.com"));
        let m = Mailbox::parse("<x@example.com>").unwrap();
        assert_eq!(m.name(), None);
        assert!(Mailbox::parse("Bob <bob@exa mple.com>").is_err());
        assert!(Mailbox::parse("bob").is_err());
    }

    #[test]
    fn refuses_control_bytes_in_names() {
        for b in (0u8..0x20).chain([0x7f]) {
            let name = format!("Eve{}Bcc: x@y.z", b as char);
            match Mailbox::try_from((name.as_str(), "eve@example.com")) {
                Err(MimeError::ControlByte { byte, offset: 3, .. }) => assert_eq!(byte, b),
                other => panic!("{b:#x}: {other:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = Mailbox::for_field("Cc", Mailbox::parse("Eve\n <e@x.y>")).unwrap_err();
        assert!(matches!(&e, MimeError::ControlByte { field, .. } if field == "Cc display name"), "{e:?}");
        let e = Mailbox::for_field("To", Mailbox::parse("nope")).unwrap_err();
        assert!(matches!(e, MimeError::Address { field: "To", .. }));
    }
}
