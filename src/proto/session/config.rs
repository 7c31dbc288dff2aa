//! Everything a session needs to know up front.

use super::super::address::EhloName;
use super::super::dot_stuff::LineEndings;
use super::super::reply::ReplyLimits;
use super::super::sasl::{Credentials, Mechanism};
use super::super::timeouts::Timeouts;

/// How the session secures the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsPolicy {
    /// TLS from the first byte (`smtps://`, port 465). The driver performs the handshake
    /// before the greeting and reports it with [`Session::tls_established`](super::Session::tls_established).
    Implicit,
    /// STARTTLS is mandatory: without it, no command other than EHLO and QUIT is sent.
    #[default]
    Required,
    /// STARTTLS when offered, plaintext otherwise (credentials still need TLS unless
    /// explicitly allowed).
    Opportunistic,
    /// Never TLS.
    Disabled,
}

/// Everything the session needs to know up front.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The name sent with EHLO/HELO.
    pub ehlo_name: EhloName,
    /// TLS policy.
    pub tls: TlsPolicy,
    /// Credentials for AUTH; `None` skips AUTH.
    pub credentials: Option<Credentials>,
    /// Mechanisms allowed, in order of preference.
    pub mechanisms: Vec<Mechanism>,
    /// Allow AUTH over plaintext or unverified TLS. Off by default.
    pub allow_insecure_auth: bool,
    /// What to do with bare CR/LF in bodies.
    pub line_endings: LineEndings,
    /// Use PIPELINING when the server offers it.
    pub pipelining: bool,
    /// Use CHUNKING (BDAT) when the server offers it (default on; LMTP always uses DATA).
    pub chunking: bool,
    /// Size of each BDAT chunk for large messages.
    pub bdat_chunk_size: usize,
    /// Caps on replies.
    pub reply_limits: ReplyLimits,
    /// Per-phase deadlines.
    pub timeouts: Timeouts,
    /// Record a redacted transcript, read with [`Session::poll_trace`](super::Session::poll_trace).
    pub trace: bool,
    /// Speak LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data.
    pub lmtp: bool,
    /// The server's host name, for mechanisms that bind to it (OAUTHBEARER).
    pub server_name: String,
    /// The server's port, for OAUTHBEARER.
    pub server_port: u16,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ehlo_name: EhloName::default(),
            tls: TlsPolicy::Required,
            credentials: None,
            mechanisms: Mechanism::PREFERENCE.to_vec(),
            allow_insecure_auth: false,
            line_endings: LineEndings::Normalize,
            pipelining: true,
            chunking: true,
            bdat_chunk_size: 1 << 20,
            reply_limits: ReplyLimits::default(),
            timeouts: Timeouts::default(),
            trace: false,
            lmtp: false,
            server_name: String::new(),
            server_port: 0,
        }
    }
}
