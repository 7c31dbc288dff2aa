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
        let (status, rest) = Self::parse_prefix_bytes(text.as_bytes())?;
        // `rest` starts after ASCII octets only, so it is on a character boundary.
        Some((status, text.get(rest..)?))
    }

    /// [`EnhancedStatus::parse_prefix`] on raw octets: the status and where the text
    /// after it (and its spaces) starts. Looks at no more than the status itself, so a
    /// reply's text is never scanned or decoded for it.
    pub(crate) fn parse_prefix_bytes(text: &[u8]) -> Option<(Self, usize)> {
        let class = match text.first()? {
            b'2' => 2,
            b'4' => 4,
            b'5' => 5,
            _ => return None,
        };
        let (subject, at) = number_after_dot(text, 1)?;
        let (detail, end) = number_after_dot(text, at)?;
        // The status is the whole first word.
        match text.get(end) {
            None | Some(b' ') => {}
            Some(_) => return None,
        }
        let rest = end + text.get(end..).unwrap_or_default().iter().take_while(|&&b| b == b' ').count();
        Some((Self { class, subject, detail }, rest))
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

/// `"." 1*3digit` at `at`: the number and the offset after it.
fn number_after_dot(text: &[u8], at: usize) -> Option<(u16, usize)> {
    if text.get(at) != Some(&b'.') {
        return None;
    }
    let digits = text.get(at + 1..)?.iter().take(4).take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) {
        return None;
    }
    let value = text.get(at + 1..at + 1 + digits)?.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    Some((value, at + 1 + digits))
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

    /// The first implementation, on `str` splitting: the octet parser must agree with it.
    fn by_splitting(text: &str) -> Option<(EnhancedStatus, &str)> {
        let end = text.find(' ').unwrap_or(text.len());
        let (head, rest) = text.split_at(end);
        let parts: Vec<&str> = head.split('.').collect();
        let [class, subject, detail] = parts[..] else { return None };
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        let num = |s: &str| {
            ((1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        Some((
            EnhancedStatus { class, subject: num(subject)?, detail: num(detail)? },
            rest.trim_start_matches(' '),
        ))
    }

    proptest::proptest! {
        #[test]
        fn octet_parser_agrees_with_splitting(text in "[2-5. 0-9a\\t]{0,14}") {
            proptest::prop_assert_eq!(EnhancedStatus::parse_prefix(&text), by_splitting(&text));
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
