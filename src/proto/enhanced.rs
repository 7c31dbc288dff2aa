//! RFC 3463 enhanced status codes (`class.subject.detail`), and the retry advice derived
//! from them.

use std::fmt;

/// An enhanced status code such as `5.1.1`.
///
/// ```
/// use smtpkit::proto::enhanced::EnhancedStatus;
/// let s = EnhancedStatus::parse_prefix("5.1.1 User unknown").unwrap().0;
/// assert_eq!((s.class, s.subject, s.detail), (5, 1, 1));
/// assert_eq!(s.to_string(), "5.1.1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject: 0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network and
    /// routing, 5 mail delivery protocol, 6 message content, 7 security or policy.
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

/// What a failure most likely means for the sender, derived from the enhanced status
/// code's subject and detail (RFC 3463 section 3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Advice {
    /// Nothing more specific is known.
    Other,
    /// The address is wrong (X.1.x): fix the address, do not retry as is.
    BadAddress,
    /// The mailbox is full (X.2.2): may clear up later.
    MailboxFull,
    /// The mailbox is disabled or unavailable (X.2.x other than 2).
    MailboxUnavailable,
    /// The receiving system is out of resources or not accepting (X.3.x).
    MailSystem,
    /// Network or routing trouble (X.4.x): retry later.
    Network,
    /// Protocol trouble (X.5.x).
    Protocol,
    /// The content was refused (X.6.x), including message too big (X.3.4 is also size).
    Content,
    /// Security or policy refusal (X.7.x): authentication, spam, TLS requirements.
    Policy,
}

impl EnhancedStatus {
    /// Parses `class.subject.detail` at the start of `text`, followed by a space or the
    /// end, returning the code and the rest of the text after the separator.
    ///
    /// RFC 3463: "status-code = class "." subject "." detail; class = "2"/"4"/"5";
    /// subject = 1*3digit; detail = 1*3digit".
    pub fn parse_prefix(text: &str) -> Option<(Self, &str)> {
        let end = text.find(' ').unwrap_or(text.len());
        let (head, rest) = text.split_at(end);
        let mut parts = head.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        let num = |s: &str| -> Option<u16> {
            if (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                None
            }
        };
        Some((Self { class, subject: num(subject)?, detail: num(detail)? }, rest.trim_start_matches(' ')))
    }

    /// Retry advice for this status.
    pub fn advice(&self) -> Advice {
        match (self.subject, self.detail) {
            (1, _) => Advice::BadAddress,
            (2, 2) => Advice::MailboxFull,
            (2, _) => Advice::MailboxUnavailable,
            (3, 4) => Advice::Content,
            (3, _) => Advice::MailSystem,
            (4, _) => Advice::Network,
            (5, _) => Advice::Protocol,
            (6, _) => Advice::Content,
            (7, _) => Advice::Policy,
            _ => Advice::Other,
        }
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_refuses_invalid() {
        assert_eq!(EnhancedStatus::parse_prefix("2.0.0").map(|p| p.0.to_string()), Some("2.0.0".into()));
        assert_eq!(EnhancedStatus::parse_prefix("4.7.123 x").map(|p| p.1), Some("x"));
        for bad in ["3.0.0 x", "5.1", "5.1.1.1 x", "5.1234.1", "5.a.1", "", "5..1", "Ok"] {
            assert!(EnhancedStatus::parse_prefix(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn advice() {
        let s = |t: &str| EnhancedStatus::parse_prefix(t).map(|p| p.0.advice());
        assert_eq!(s("4.2.2"), Some(Advice::MailboxFull));
        assert_eq!(s("5.1.1"), Some(Advice::BadAddress));
        assert_eq!(s("5.7.1"), Some(Advice::Policy));
    }
}
