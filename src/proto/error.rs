//! The crate's error type, sorted by who is at fault.

use std::fmt;
use std::sync::Arc;

use super::address::{AddressError, EnvelopeError};
use super::dot_stuff::BodyError;
use super::params::ParamError;
use super::reply::{Reply, ReplyError};
use super::sasl::SaslError;
use super::session::RecipientResult;

/// The step of the session an error or a timeout belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the `220` greeting.
    Greeting,
    /// `EHLO` (or `LHLO`).
    Ehlo,
    /// `HELO` fallback.
    Helo,
    /// `STARTTLS`.
    StartTls,
    /// The TLS handshake.
    TlsHandshake,
    /// `AUTH`.
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` (waiting for `354`).
    Data,
    /// Writing message data.
    DataBlock,
    /// Waiting for the reply to the final dot (or last `BDAT`).
    DataEnd,
    /// `BDAT` chunk that is not the last one.
    Bdat,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `VRFY`.
    Vrfy,
    /// A custom command.
    Custom,
    /// `QUIT`.
    Quit,
    /// No command outstanding.
    Idle,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Ehlo => "EHLO",
            Phase::Helo => "HELO",
            Phase::StartTls => "STARTTLS",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Auth => "AUTH",
            Phase::Mail => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::Data => "DATA",
            Phase::DataBlock => "message data",
            Phase::DataEnd => "end of data",
            Phase::Bdat => "BDAT",
            Phase::Rset => "RSET",
            Phase::Noop => "NOOP",
            Phase::Vrfy => "VRFY",
            Phase::Custom => "custom command",
            Phase::Quit => "QUIT",
            Phase::Idle => "idle",
        };
        f.write_str(s)
    }
}

/// An ESMTP extension the client needed and the server did not offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Extension {
    /// RFC 3207 STARTTLS (TLS was required).
    StartTls,
    /// RFC 4954 AUTH (credentials were configured).
    Auth,
    /// RFC 6152 8BITMIME (the body has 8-bit octets).
    EightBitMime,
    /// RFC 6531 SMTPUTF8 (an address is not ASCII).
    SmtpUtf8,
    /// RFC 6531 SMTPUTF8, because the message's header section holds non-ASCII octets
    /// (RFC 6532). `Message` RFC 2047-encodes such headers and never needs it for them.
    SmtpUtf8Headers,
    /// RFC 3461 DSN (DSN parameters were requested).
    Dsn,
    /// RFC 8689 REQUIRETLS.
    RequireTls,
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Extension::StartTls => "STARTTLS",
            Extension::Auth => "AUTH",
            Extension::EightBitMime => "8BITMIME",
            Extension::SmtpUtf8 => "SMTPUTF8",
            Extension::SmtpUtf8Headers => {
                "SMTPUTF8, which the message's non-ASCII header octets need (RFC 6532); \
                 smtpkit::Message writes such headers RFC 2047-encoded instead"
            }
            Extension::Dsn => "DSN",
            Extension::RequireTls => "REQUIRETLS",
        })
    }
}

/// The server broke the protocol: the connection cannot be trusted afterwards.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A reply could not be parsed or exceeded a limit.
    #[error("bad reply")]
    Reply(#[from] ReplyError),
    /// RFC 3207 section 4.2 / CVE-2011-0411 class: bytes followed the `220` to STARTTLS
    /// before the TLS handshake. They could be injected plaintext, so the session stops.
    #[error("{0} unexpected octets after the 220 reply to STARTTLS")]
    DataAfterStartTls(usize),
    /// A reply arrived when no command was outstanding.
    #[error("unsolicited reply while idle: {0}")]
    Unsolicited(Reply),
    /// A reply code that makes no sense at this step (e.g. 354 to MAIL).
    #[error("unexpected reply to {phase}: {reply}")]
    UnexpectedReply {
        /// The step.
        phase: Phase,
        /// The reply.
        reply: Reply,
    },
    /// The server broke SASL rules.
    #[error("AUTH exchange failed: {0}")]
    Sasl(SaslError),
}

/// Input the caller gave that cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// An address or EHLO name.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// An envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The message body.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// An ESMTP parameter.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// Credentials that SASL cannot carry.
    #[error(transparent)]
    Sasl(#[from] SaslError),
    /// A command argument (e.g. VRFY) with control bytes.
    #[error("invalid command argument: {0}")]
    Command(&'static str),
    /// A custom command that cannot be sent.
    #[error(transparent)]
    Custom(#[from] super::command::CustomCommandError),
}

/// Who caused an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The server said no, or broke the protocol.
    Server,
    /// The network: connection refused, reset, timed out, TLS failure.
    Network,
    /// The caller: invalid input, configuration, misuse.
    Caller,
    /// smtpkit itself: an internal invariant was broken (a bug; please report it).
    Internal,
}

/// Everything that can go wrong, with who is at fault.
///
/// A message is *sent* only with `Ok`. [`Error::Ambiguous`] means the link failed after the
/// final dot was written and before its reply: the message may or may not have been
/// delivered, so it is neither transient nor permanent and must not be resent blindly.
///
/// `Display` gives this error's own words only; what caused it is its
/// [`source`](std::error::Error::source) (an I/O or TLS error, the failure behind an
/// ambiguous outcome, a reply that could not be parsed), so no text appears twice when the
/// chain is walked. [`Error::report`] prints the whole chain on one line. The `Display`
/// text is for people and is not a stable API: match on variants and accessors instead.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused a command with a 4xx or 5xx reply.
    #[error("server rejected {phase}: {reply}")]
    Rejected {
        /// Which command.
        phase: Phase,
        /// The reply.
        reply: Reply,
        /// Per-recipient results known so far (empty before RCPT).
        recipients: Vec<RecipientResult>,
    },
    /// No recipient was accepted (or, with all-or-nothing, not all were): nothing was sent.
    #[error("recipients rejected: {}", summarize(.recipients))]
    RecipientsRejected {
        /// Every recipient with its reply.
        recipients: Vec<RecipientResult>,
    },
    /// The link failed after the message was handed over and before the server confirmed
    /// it: the message may or may not have been delivered.
    #[error("outcome unknown, the message may have been delivered")]
    Ambiguous {
        /// What broke the link (also [`source`](std::error::Error::source)).
        #[source]
        cause: Box<Error>,
        /// Per-recipient results from RCPT.
        recipients: Vec<RecipientResult>,
    },
    /// Authentication was refused.
    #[error("authentication failed: {0}")]
    AuthFailed(Reply),
    /// The server broke the protocol.
    #[error("protocol error")]
    Protocol(#[from] ProtocolError),
    /// A needed extension is missing.
    #[error("server does not offer {0}")]
    ExtensionMissing(Extension),
    /// The message exceeds the server's advertised SIZE.
    #[error("message is {size} octets; the server accepts at most {max}")]
    MessageTooLarge {
        /// Message size in octets.
        size: u64,
        /// The server's limit.
        max: u64,
    },
    /// Credentials would travel over plaintext or unverified TLS and the caller did not
    /// allow it.
    #[error("refusing to send credentials over a connection without verified TLS")]
    InsecureAuth,
    /// None of the allowed AUTH mechanisms is offered.
    #[error("no allowed AUTH mechanism is offered (server offers: {})", .0.join(" "))]
    NoAuthMechanism(Vec<String>),
    /// The caller's input cannot be sent.
    #[error("invalid input")]
    Input(#[from] InputError),
    /// A deadline passed.
    #[error("timed out during {0}")]
    Timeout(Phase),
    /// The server closed the connection.
    #[error("connection closed by the server during {0}")]
    ConnectionClosed(Phase),
    /// An I/O error.
    #[error("I/O error")]
    Io(#[source] Arc<std::io::Error>),
    /// TLS failed (handshake, certificate verification).
    #[error("TLS error")]
    Tls(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Invalid configuration (URL, certificates, options).
    #[error("configuration error: {0}")]
    Config(String),
    /// The session is closed or was used out of order.
    #[error("session is closed")]
    SessionClosed,
    /// An earlier operation on this connection was cancelled (its future was dropped, for
    /// example by a `timeout` or `select!`): the stream may hold half a write, so the
    /// connection was shut down and nothing more is written on it.
    #[error("an earlier operation on this connection was cancelled; the connection is unusable")]
    Cancelled,
    /// A local transport (the `sendmail` program) failed; see
    /// [`TransportError`](crate::transport::TransportError).
    #[error("{0}")]
    Transport(crate::transport::TransportError),
    /// Connection set-up failed: a proxy step, every address unreachable, or a port that
    /// speaks the other TLS mode (see [`ConnectError`](crate::connect::ConnectError)).
    #[error(transparent)]
    Connect(crate::connect::ConnectError),
    /// An internal invariant of smtpkit was broken. This is a bug in smtpkit, never the
    /// server's or the caller's doing; the connection is closed.
    #[error("internal error in smtpkit (a bug): {0}")]
    Internal(&'static str),
}

fn summarize(recipients: &[RecipientResult]) -> String {
    recipients.iter().map(|r| format!("<{}> {}", r.address, r.reply)).collect::<Vec<_>>().join("; ")
}

impl From<EnvelopeError> for Error {
    fn from(e: EnvelopeError) -> Self {
        Error::Input(InputError::Envelope(e))
    }
}

impl From<AddressError> for Error {
    fn from(e: AddressError) -> Self {
        Error::Input(InputError::Address(e))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

/// An error and every cause behind it on one line, `outer: cause: root` (see
/// [`Error::report`]).
#[derive(Clone, Copy, Debug)]
pub struct Report<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        // Bounded: a cycle in a foreign error chain must not loop forever.
        for _ in 0..16 {
            let Some(next) = cause else { break };
            write!(f, ": {next}")?;
            cause = next.source();
        }
        Ok(())
    }
}

impl Error {
    /// The error with its whole chain of causes, for a log line or a message to a person:
    ///
    /// ```
    /// use std::sync::Arc;
    /// let e = smtpkit::Error::Io(Arc::new(std::io::ErrorKind::ConnectionReset.into()));
    /// assert_eq!(e.to_string(), "I/O error");
    /// assert_eq!(e.report().to_string(), "I/O error: connection reset");
    /// ```
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Rejected { .. }
            | Error::RecipientsRejected { .. }
            | Error::AuthFailed(_)
            | Error::Protocol(_)
            | Error::ExtensionMissing(_)
            | Error::MessageTooLarge { .. } => Fault::Server,
            Error::Ambiguous { cause, .. } => cause.fault(),
            Error::Timeout(_) | Error::ConnectionClosed(_) | Error::Io(_) | Error::Tls(_) => Fault::Network,
            Error::InsecureAuth
            | Error::NoAuthMechanism(_)
            | Error::Input(_)
            | Error::Config(_)
            | Error::SessionClosed
            | Error::Cancelled => Fault::Caller,
            Error::Internal(_) => Fault::Internal,
            Error::Transport(e) if e.is_caller() => Fault::Caller,
            Error::Transport(_) => Fault::Server,
            Error::Connect(e) => e.fault(),
        }
    }

    /// True when the same request may succeed later unchanged (4xx replies, network
    /// trouble, a misbehaving server). Never true for [`Error::Ambiguous`].
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Rejected { reply, .. } | Error::AuthFailed(reply) => reply.is_transient(),
            Error::RecipientsRejected { recipients } => recipients.iter().any(|r| r.reply.is_transient()),
            Error::Protocol(_) | Error::Timeout(_) | Error::ConnectionClosed(_) | Error::Io(_) => true,
            Error::Transport(e) => e.is_transient(),
            Error::Connect(e) => e.is_transient(),
            _ => false,
        }
    }

    /// True when the same request will fail again (5xx replies, invalid input, missing
    /// extensions, TLS verification). Never true for [`Error::Ambiguous`].
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Rejected { reply, .. } | Error::AuthFailed(reply) => reply.is_permanent(),
            Error::RecipientsRejected { recipients } => recipients.iter().all(|r| r.reply.is_permanent()),
            Error::ExtensionMissing(_)
            | Error::MessageTooLarge { .. }
            | Error::InsecureAuth
            | Error::NoAuthMechanism(_)
            | Error::Input(_)
            | Error::Config(_)
            | Error::Tls(_) => true,
            Error::Transport(e) => !e.is_transient(),
            Error::Connect(e) => !e.is_transient(),
            _ => false,
        }
    }

    /// True when delivery may or may not have happened.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Error::Ambiguous { .. })
    }

    /// The server reply behind the error, if any.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Error::Rejected { reply, .. } | Error::AuthFailed(reply) => Some(reply),
            Error::Protocol(ProtocolError::Unsolicited(reply))
            | Error::Protocol(ProtocolError::UnexpectedReply { reply, .. }) => Some(reply),
            _ => None,
        }
    }

    /// Per-recipient results, when the error happened after RCPT.
    pub fn recipients(&self) -> &[RecipientResult] {
        match self {
            Error::Rejected { recipients, .. }
            | Error::RecipientsRejected { recipients }
            | Error::Ambiguous { recipients, .. } => recipients,
            _ => &[],
        }
    }

    /// The RFC 3463 enhanced status of the reply, if any.
    pub fn enhanced(&self) -> Option<super::enhanced::EnhancedStatus> {
        self.reply().and_then(Reply::enhanced)
    }

    /// The step of the session the error belongs to, when one is known: the refused
    /// command, the phase that timed out or lost the connection, the step of an
    /// unexpected reply; for [`Error::Ambiguous`], its cause's step.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Error::Rejected { phase, .. }
            | Error::Timeout(phase)
            | Error::ConnectionClosed(phase)
            | Error::Protocol(ProtocolError::UnexpectedReply { phase, .. }) => Some(*phase),
            Error::RecipientsRejected { .. } => Some(Phase::Rcpt),
            Error::AuthFailed(_) | Error::InsecureAuth | Error::NoAuthMechanism(_) => Some(Phase::Auth),
            Error::Ambiguous { cause, .. } => cause.phase().or(Some(Phase::DataEnd)),
            _ => None,
        }
    }

    /// True when a deadline passed (directly, or as the cause of an ambiguous outcome).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::Ambiguous { cause, .. } => cause.is_timeout(),
            _ => false,
        }
    }
}
