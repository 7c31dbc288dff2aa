//! Typed errors of connection set-up: a proxy step that failed, every address that could
//! not be reached, and a port spoken in the other TLS mode.
//!
//! None of them ever carries proxy credentials: a proxy is named by `scheme://host:port`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::proto::error::Error;

/// Connection set-up failed before SMTP could start (or was found to be in the wrong mode).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A step of the proxy exchange failed.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// No address of the host accepted a connection.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// The port speaks the other TLS mode than the one configured.
    #[error(transparent)]
    WrongTlsMode(#[from] WrongTlsMode),
}

impl ConnectError {
    /// Who is at fault: proxy credentials and a mixed-up port are the caller's
    /// configuration, everything else is the network.
    pub fn fault(&self) -> crate::proto::error::Fault {
        use crate::proto::error::Fault;
        match self {
            ConnectError::Proxy(p) if p.is_configuration() => Fault::Caller,
            ConnectError::WrongTlsMode(_) => Fault::Caller,
            ConnectError::Proxy(_) | ConnectError::Unreachable(_) => Fault::Network,
        }
    }

    /// True when trying again later may work (the network, a proxy that could not reach
    /// the server); false for refused proxy credentials and a mixed-up port.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Proxy(p) => !p.is_configuration(),
            ConnectError::Unreachable(_) => true,
            ConnectError::WrongTlsMode(_) => false,
        }
    }
}

impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Self {
        Error::Connect(e)
    }
}

impl From<ProxyError> for Error {
    fn from(e: ProxyError) -> Self {
        Error::Connect(e.into())
    }
}

impl From<Unreachable> for Error {
    fn from(e: Unreachable) -> Self {
        Error::Connect(e.into())
    }
}

impl From<WrongTlsMode> for Error {
    fn from(e: WrongTlsMode) -> Self {
        Error::Connect(e.into())
    }
}

/// The step of a proxy exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyStep {
    /// Opening the TCP connection to the proxy.
    Connect,
    /// SOCKS5 method negotiation (RFC 1928 section 3).
    Greeting,
    /// Proxy authentication (RFC 1929, or HTTP `407`).
    Auth,
    /// Asking the proxy to open the tunnel to the mail server (SOCKS5 CONNECT, HTTP CONNECT).
    Tunnel,
}

impl fmt::Display for ProxyStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyStep::Connect => "connect",
            ProxyStep::Greeting => "greeting",
            ProxyStep::Auth => "authentication",
            ProxyStep::Tunnel => "tunnel",
        })
    }
}

/// Why a proxy step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyReason {
    /// The proxy said no; this is its reply (an HTTP status line, or the SOCKS5 reply
    /// code with its RFC 1928 meaning).
    Refused(String),
    /// The proxy wants credentials and none were configured (HTTP `407`, SOCKS5 method
    /// `0x02` only).
    CredentialsRequired,
    /// The proxy accepted none of the offered SOCKS5 methods (`0xFF`).
    NoAcceptableMethod,
    /// The proxy's answer breaks its protocol.
    Malformed(&'static str),
    /// The request cannot be expressed (a user name or host over 255 octets).
    Unsupported(&'static str),
    /// The deadline passed.
    Timeout,
    /// An I/O error (connection refused, reset, closed).
    Io(String),
}

impl fmt::Display for ProxyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyReason::Refused(reply) => write!(f, "refused: {reply}"),
            ProxyReason::CredentialsRequired => f.write_str("the proxy requires credentials"),
            ProxyReason::NoAcceptableMethod => f.write_str("the proxy accepted none of the offered methods"),
            ProxyReason::Malformed(what) => write!(f, "malformed answer: {what}"),
            ProxyReason::Unsupported(what) => write!(f, "cannot ask: {what}"),
            ProxyReason::Timeout => f.write_str("timed out"),
            ProxyReason::Io(e) => f.write_str(e),
        }
    }
}

/// A proxy step failed. Names the proxy as `scheme://host:port`, never its credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("proxy {proxy}: {step} failed: {reason}")]
pub struct ProxyError {
    /// The proxy, as `socks5://host:port` or `http://host:port`.
    pub proxy: String,
    /// The step that failed.
    pub step: ProxyStep,
    /// Why.
    pub reason: ProxyReason,
}

impl ProxyError {
    /// True when the proxy refused what was configured (credentials, methods, a name it
    /// cannot carry): trying again unchanged cannot help.
    pub fn is_configuration(&self) -> bool {
        self.step == ProxyStep::Auth
            || matches!(
                self.reason,
                ProxyReason::NoAcceptableMethod
                    | ProxyReason::CredentialsRequired
                    | ProxyReason::Unsupported(_)
            )
    }
}

/// Why one address could not be reached.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// The connect failed (refused, unreachable, local bind failed).
    Io(Arc<std::io::Error>),
    /// Still unanswered when the overall connect deadline passed.
    Timeout,
    /// Never tried: the deadline passed before its turn.
    NotTried,
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptFailure::Io(e) => write!(f, "{e}"),
            AttemptFailure::Timeout => f.write_str("timed out"),
            AttemptFailure::NotTried => f.write_str("not tried before the deadline"),
        }
    }
}

/// One address and why it failed.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The address.
    pub addr: SocketAddr,
    /// What happened.
    pub failure: AttemptFailure,
}

/// No address accepted a connection: every address tried, in the order tried, and why.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot connect to {host}: {}", list(.attempts))]
pub struct Unreachable {
    /// The host name as configured (or the proxy's).
    pub host: String,
    /// Every address, in the order of the attempts (an empty list: the name resolved to
    /// no address, or resolution failed, see `resolve`).
    pub attempts: Vec<Attempt>,
    /// Why resolution failed, when it did.
    pub resolve: Option<String>,
}

fn list(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "no address".into();
    }
    attempts.iter().map(|a| format!("{} {}", a.addr, a.failure)).collect::<Vec<_>>().join("; ")
}

/// Which TLS mode the port really speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsModeHint {
    /// The port speaks implicit TLS (usually 465): use `smtps://` / [`TlsPolicy::Implicit`](crate::TlsPolicy::Implicit).
    UseImplicitTls,
    /// The port speaks plain SMTP, maybe with STARTTLS (usually 587 or 25): use `smtp://`.
    UseStartTls,
}

impl fmt::Display for TlsModeHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsModeHint::UseImplicitTls => "this port speaks implicit TLS: use smtps://",
            TlsModeHint::UseStartTls => "this port speaks plain SMTP (STARTTLS): use smtp://",
        })
    }
}

/// What gave the mix-up away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Evidence {
    /// TLS records arrived where a `220` greeting was expected.
    TlsRecords,
    /// A plaintext SMTP reply arrived during the TLS handshake.
    PlainReply,
    /// The server stayed silent, and a TLS probe on a second connection was answered
    /// with a TLS ServerHello.
    TlsProbe,
    /// Only the port number: the connection failed on a port that by convention speaks
    /// the other mode (465 for `smtp://`, 587 or 25 for `smtps://`).
    WellKnownPort(u16),
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::TlsRecords => f.write_str("TLS records arrived where a 220 greeting was expected"),
            Evidence::PlainReply => f.write_str("a plaintext SMTP reply arrived during the TLS handshake"),
            Evidence::TlsProbe => f.write_str("no greeting, and a TLS probe was answered with a ServerHello"),
            Evidence::WellKnownPort(p) => write!(f, "port {p} conventionally speaks the other mode"),
        }
    }
}

/// The port speaks the other TLS mode. `source()` is the failure that was seen, if any.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{hint} ({evidence})")]
pub struct WrongTlsMode {
    /// What to do.
    pub hint: TlsModeHint,
    /// How it was found out.
    pub evidence: Evidence,
    /// The failure the mix-up caused, when there was one.
    #[source]
    pub cause: Option<Box<Error>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_step_and_reply() {
        let e = ProxyError {
            proxy: "http://127.0.0.1:8888".into(),
            step: ProxyStep::Tunnel,
            reason: ProxyReason::Refused("HTTP/1.1 403 Access violation".into()),
        };
        assert_eq!(
            e.to_string(),
            "proxy http://127.0.0.1:8888: tunnel failed: refused: HTTP/1.1 403 Access violation"
        );
        let u = Unreachable {
            host: "mx".into(),
            attempts: vec![
                Attempt { addr: "[::1]:25".parse().unwrap(), failure: AttemptFailure::Timeout },
                Attempt { addr: "127.0.0.1:25".parse().unwrap(), failure: AttemptFailure::NotTried },
            ],
            resolve: None,
        };
        assert_eq!(
            u.to_string(),
            "cannot connect to mx: [::1]:25 timed out; 127.0.0.1:25 not tried before the deadline"
        );
    }

    #[test]
    fn blame() {
        let auth = ConnectError::Proxy(ProxyError {
            proxy: "socks5://p:1080".into(),
            step: ProxyStep::Auth,
            reason: ProxyReason::Refused("status 1".into()),
        });
        assert!(!auth.is_transient());
        assert_eq!(auth.fault(), crate::proto::error::Fault::Caller);
        let mode =
            WrongTlsMode { hint: TlsModeHint::UseImplicitTls, evidence: Evidence::TlsProbe, cause: None };
        assert_eq!(
            mode.to_string(),
            "this port speaks implicit TLS: use smtps:// (no greeting, and a TLS probe was answered with a ServerHello)"
        );
    }
}
