//! SMTP commands, encoded from validated values into the caller's buffer.

use super::address::{Address, EhloName};
use super::params::{MailParams, RcptParams};

/// A command the client sends. Crate-internal: the raw-string variants (AUTH lines, VRFY,
/// custom lines) are only built by the session after validating them, so encoding never
/// puts a CR, LF or other control byte on the wire.
#[derive(Debug)]
pub(crate) enum Command<'a> {
    /// `EHLO name`.
    Ehlo(&'a EhloName),
    /// `LHLO name` (LMTP, RFC 2033).
    Lhlo(&'a EhloName),
    /// `HELO name`.
    Helo(&'a EhloName),
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]`; the response is base64 already.
    Auth {
        /// Mechanism name, upper-case ASCII.
        mechanism: &'a str,
        /// Base64 initial response (`=` for an empty one).
        initial: Option<&'a [u8]>,
    },
    /// A base64 line answering a `334` challenge, or `*` to cancel.
    AuthResponse(&'a [u8]),
    /// `MAIL FROM:<path> params`; `None` is the null reverse-path.
    Mail {
        /// Reverse-path.
        from: Option<&'a Address>,
        /// Parameters.
        params: &'a MailParams,
    },
    /// `RCPT TO:<path> params`.
    Rcpt {
        /// Forward-path.
        to: &'a Address,
        /// Parameters.
        params: &'a RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (the data follows separately).
    Bdat {
        /// Chunk size in octets.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string` (the argument is validated by the caller: printable, no CR/LF).
    Vrfy(&'a str),
    /// Any other command line, validated by [`validate_custom`].
    Custom(&'a str),
}

/// Why a custom command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustomCommandError {
    /// The verb is not 1-20 ASCII letters, digits or `-`.
    #[error("command verb must be 1-20 ASCII letters, digits or '-'")]
    BadVerb,
    /// The arguments contain a control byte (CR, LF, NUL, ...).
    #[error("command arguments contain control byte 0x{0:02x}")]
    ControlByte(u8),
    /// RFC 5321 section 4.5.3.1.4: "The maximum total length of a command line including
    /// the command word and the `<CRLF>` is 512 octets."
    #[error("command line longer than 512 octets")]
    TooLong,
    /// The verb changes session state that the session must own: use the dedicated API.
    #[error("{0} has a dedicated API; it cannot be sent as a custom command")]
    Reserved(String),
}

/// Checks a low-level command (`verb` plus optional `args`) and returns the line to send
/// (without CRLF). Commands that change the session's state (EHLO, HELO, STARTTLS, AUTH,
/// MAIL, RCPT, DATA, BDAT, QUIT, RSET) are refused: the state machine must see them.
///
/// ```
/// use smtpkit::proto::command::validate_custom;
/// assert_eq!(validate_custom("HELP", "DATA").unwrap(), "HELP DATA");
/// assert!(validate_custom("HELP", "x\r\nRCPT TO:<a@b>").is_err());
/// assert!(validate_custom("MAIL", "FROM:<a@b>").is_err());
/// ```
pub fn validate_custom(verb: &str, args: &str) -> Result<String, CustomCommandError> {
    if verb.is_empty() || verb.len() > 20 || !verb.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(CustomCommandError::BadVerb);
    }
    const RESERVED: [&str; 11] =
        ["EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "QUIT", "RSET"];
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(verb)) {
        return Err(CustomCommandError::Reserved(verb.to_ascii_uppercase()));
    }
    if let Some(b) = args.bytes().find(|&b| b < 0x20 || b == 0x7f) {
        return Err(CustomCommandError::ControlByte(b));
    }
    let line = if args.is_empty() { verb.to_string() } else { format!("{verb} {args}") };
    if line.len() + 2 > 512 {
        return Err(CustomCommandError::TooLong);
    }
    Ok(line)
}

impl Command<'_> {
    /// Appends the command line with its CRLF to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Ehlo(name) => push3(out, b"EHLO ", name.as_str().as_bytes()),
            Command::Lhlo(name) => push3(out, b"LHLO ", name.as_str().as_bytes()),
            Command::Helo(name) => push3(out, b"HELO ", name.as_str().as_bytes()),
            Command::StartTls => out.extend_from_slice(b"STARTTLS\r\n"),
            Command::Auth { mechanism, initial } => {
                out.extend_from_slice(b"AUTH ");
                out.extend_from_slice(mechanism.as_bytes());
                if let Some(ir) = initial {
                    out.push(b' ');
                    out.extend_from_slice(ir);
                }
                out.extend_from_slice(b"\r\n");
            }
            Command::AuthResponse(line) => {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            Command::Mail { from, params } => {
                out.extend_from_slice(b"MAIL FROM:<");
                if let Some(from) = from {
                    out.extend_from_slice(from.as_str().as_bytes());
                }
                out.push(b'>');
                params.encode(out);
                out.extend_from_slice(b"\r\n");
            }
            Command::Rcpt { to, params } => {
                out.extend_from_slice(b"RCPT TO:<");
                out.extend_from_slice(to.as_str().as_bytes());
                out.push(b'>');
                params.encode(out);
                out.extend_from_slice(b"\r\n");
            }
            Command::Data => out.extend_from_slice(b"DATA\r\n"),
            Command::Bdat { size, last } => {
                out.extend_from_slice(b"BDAT ");
                out.extend_from_slice(size.to_string().as_bytes());
                out.extend_from_slice(if *last { b" LAST\r\n" } else { b"\r\n" });
            }
            Command::Rset => out.extend_from_slice(b"RSET\r\n"),
            Command::Noop => out.extend_from_slice(b"NOOP\r\n"),
            Command::Quit => out.extend_from_slice(b"QUIT\r\n"),
            Command::Vrfy(arg) => push3(out, b"VRFY ", arg.as_bytes()),
            Command::Custom(line) => push3(out, line.as_bytes(), b""),
        }
    }
}

fn push3(out: &mut Vec<u8>, verb: &[u8], arg: &[u8]) {
    out.extend_from_slice(verb);
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// Encoded command lines for the fuzz targets, built from validated values only. Not API:
/// no stability promise.
#[doc(hidden)]
pub mod __fuzz {
    use super::super::address::{Address, EhloName};
    use super::super::params::{MailParams, RcptParams};
    use super::Command;

    fn line(cmd: &Command<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        cmd.encode(&mut out);
        out
    }

    /// `MAIL FROM:<from> params` with its CRLF.
    pub fn mail(from: Option<&Address>, params: &MailParams) -> Vec<u8> {
        line(&Command::Mail { from, params })
    }

    /// `RCPT TO:<to> params` with its CRLF.
    pub fn rcpt(to: &Address, params: &RcptParams) -> Vec<u8> {
        line(&Command::Rcpt { to, params })
    }

    /// The EHLO, HELO and LHLO lines for `name`.
    pub fn hellos(name: &EhloName) -> [Vec<u8>; 3] {
        [line(&Command::Ehlo(name)), line(&Command::Helo(name)), line(&Command::Lhlo(name))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: Command<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        c.encode(&mut out);
        out
    }

    #[test]
    fn encodes_each_command() {
        let name = EhloName::new("client.example").unwrap();
        let a: Address = "a@x.y".parse().unwrap();
        assert_eq!(enc(Command::Ehlo(&name)), b"EHLO client.example\r\n");
        assert_eq!(enc(Command::Mail { from: None, params: &MailParams::default() }), b"MAIL FROM:<>\r\n");
        let p = MailParams { size: Some(42), ..Default::default() };
        assert_eq!(enc(Command::Mail { from: Some(&a), params: &p }), b"MAIL FROM:<a@x.y> SIZE=42\r\n");
        assert_eq!(enc(Command::Rcpt { to: &a, params: &RcptParams::default() }), b"RCPT TO:<a@x.y>\r\n");
        assert_eq!(enc(Command::Bdat { size: 7, last: true }), b"BDAT 7 LAST\r\n");
        assert_eq!(
            enc(Command::Auth { mechanism: "PLAIN", initial: Some(b"AGEAYg==") }),
            b"AUTH PLAIN AGEAYg==\r\n"
        );
    }
}
