//! Reply codes (RFC 5321 section 4.2) as an open newtype, so an unknown code stays
//! representable.

use std::fmt;

/// A three-digit SMTP reply code.
///
/// ```
/// use smtpkit::proto::code::ReplyCode;
/// assert!(ReplyCode::OK.is_positive_completion());
/// assert!(ReplyCode(450).is_transient_negative());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

impl ReplyCode {
    /// `220 <domain> Service ready`.
    pub const SERVICE_READY: Self = Self(220);
    /// `221 Service closing transmission channel`.
    pub const CLOSING: Self = Self(221);
    /// `235 Authentication successful` (RFC 4954).
    pub const AUTH_SUCCESS: Self = Self(235);
    /// `250 Requested mail action okay, completed`.
    pub const OK: Self = Self(250);
    /// `251 User not local; will forward`.
    pub const USER_NOT_LOCAL: Self = Self(251);
    /// `252 Cannot VRFY user, but will accept message and attempt delivery`.
    pub const CANNOT_VRFY: Self = Self(252);
    /// `334` server challenge during AUTH (RFC 4954).
    pub const AUTH_CONTINUE: Self = Self(334);
    /// `354 Start mail input; end with <CRLF>.<CRLF>`.
    pub const START_MAIL_INPUT: Self = Self(354);
    /// `421 Service not available, closing transmission channel`.
    pub const SERVICE_NOT_AVAILABLE: Self = Self(421);
    /// `454 TLS not available due to temporary reason` (RFC 3207).
    pub const TLS_NOT_AVAILABLE: Self = Self(454);
    /// `500 Syntax error, command unrecognized`.
    pub const SYNTAX_ERROR: Self = Self(500);
    /// `502 Command not implemented`.
    pub const NOT_IMPLEMENTED: Self = Self(502);
    /// `503 Bad sequence of commands`.
    pub const BAD_SEQUENCE: Self = Self(503);
    /// `535 Authentication credentials invalid` (RFC 4954).
    pub const AUTH_INVALID: Self = Self(535);
    /// `550 Requested action not taken: mailbox unavailable`.
    pub const MAILBOX_UNAVAILABLE: Self = Self(550);
    /// `554 Transaction failed` (or, as a greeting, no SMTP service here).
    pub const TRANSACTION_FAILED: Self = Self(554);

    /// The first digit: 2 = positive completion, 3 = intermediate, 4 = transient
    /// negative, 5 = permanent negative.
    pub fn class(self) -> u16 {
        self.0 / 100
    }

    /// 2yz.
    pub fn is_positive_completion(self) -> bool {
        self.class() == 2
    }

    /// 3yz.
    pub fn is_positive_intermediate(self) -> bool {
        self.class() == 3
    }

    /// 4yz: "the command was not accepted ... but the error condition is temporary".
    pub fn is_transient_negative(self) -> bool {
        self.class() == 4
    }

    /// 5yz: "the command was not accepted and the requested action did not occur".
    pub fn is_permanent_negative(self) -> bool {
        self.class() == 5
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
