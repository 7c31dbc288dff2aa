//! [`TestServerBuilder`]: everything a [`TestServer`] does, chosen before it starts.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::fault::{Fault, FaultRule, Step};
use super::server::TestServer;
use super::tls::CertKind;

/// Largest message kept when no SIZE is advertised, so a runaway client cannot exhaust
/// memory.
pub(crate) const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// A recipient (or sender) the server refuses, with the reply it gives.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub address: String,
    pub code: u16,
    pub text: String,
}

/// Settings of a test server (see the builder methods for meaning and defaults).
#[derive(Debug)]
pub(crate) struct Config {
    pub bind: SocketAddr,
    pub hostname: String,
    pub pipelining: bool,
    pub chunking: bool,
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub enhanced_status_codes: bool,
    pub extra_capabilities: Vec<String>,
    pub starttls: bool,
    pub implicit_tls: bool,
    pub auth_requires_tls: Option<bool>,
    pub require_auth: bool,
    pub require_tls: bool,
    pub certificate: CertKind,
    pub users: NamedSecrets,
    pub oauth_tokens: NamedSecrets,
    pub auth_mechanisms: Option<Vec<String>>,
    pub scram: ScramConfig,
    pub require_client_cert: bool,
    pub refused_recipients: Vec<Refusal>,
    pub refused_senders: Vec<Refusal>,
    pub max_recipients: usize,
    pub max_message_size: usize,
    pub max_data_line: Option<usize>,
    pub idle_timeout: Option<Duration>,
    pub greylist: bool,
    pub rules: Vec<FaultRule>,
}

/// Names with their passwords or tokens; `Debug` shows the names only, so a test that
/// prints its server's configuration never prints a credential.
#[derive(Clone, Default)]
pub(crate) struct NamedSecrets(Vec<(String, String)>);

impl std::ops::Deref for NamedSecrets {
    type Target = Vec<(String, String)>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for NamedSecrets {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl std::fmt::Debug for NamedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(name, _)| (name, "[redacted]"))).finish()
    }
}

/// SCRAM-SHA-256 parameters; random nonce suffix and salt unless fixed.
#[derive(Debug, Clone)]
pub(crate) struct ScramConfig {
    /// Appended to the client nonce; `None` for a fresh random one per exchange.
    pub nonce_suffix: Option<String>,
    /// The salt of every user; `None` until the server starts and picks a random one.
    pub salt: Option<Vec<u8>>,
    pub iterations: u32,
}

/// Mechanisms advertised by default when users are configured.
const PASSWORD_MECHANISMS: [&str; 2] = ["PLAIN", "LOGIN"];

/// Mechanisms advertised by default when OAuth tokens are configured.
const TOKEN_MECHANISMS: [&str; 2] = ["OAUTHBEARER", "XOAUTH2"];

impl Config {
    /// The mechanisms in the `AUTH` line, in order: as configured, or by default PLAIN and
    /// LOGIN with users, OAUTHBEARER and XOAUTH2 with tokens. Empty: no AUTH.
    pub(crate) fn auth_mechanisms(&self) -> Vec<String> {
        if let Some(list) = &self.auth_mechanisms {
            return list.clone();
        }
        let passwords = PASSWORD_MECHANISMS.iter().filter(|_| !self.users.is_empty());
        let tokens = TOKEN_MECHANISMS.iter().filter(|_| !self.oauth_tokens.is_empty());
        passwords.chain(tokens).map(|m| (*m).to_owned()).collect()
    }

    /// AUTH waits for TLS: explicitly configured, or by default whenever TLS is on offer.
    pub(crate) fn auth_requires_tls(&self) -> bool {
        self.auth_requires_tls.unwrap_or(self.starttls || self.implicit_tls)
    }

    /// The most message octets the server keeps and accepts.
    ///
    /// RFC 1870 3: "A parameter value of 0 indicates that no fixed maximum message size is
    /// in force."
    pub(crate) fn message_limit(&self) -> usize {
        match self.size {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX).min(self.max_message_size),
            _ => self.max_message_size,
        }
    }
}

/// Builds a [`TestServer`]; obtained from [`TestServer::builder`].
///
/// Defaults: bound to `127.0.0.1:0`, hostname `localhost`, no TLS, no AUTH, and the EHLO
/// reply advertises PIPELINING, 8BITMIME and ENHANCEDSTATUSCODES.
#[derive(Debug)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct TestServerBuilder {
    config: Config,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            config: Config {
                bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                hostname: "localhost".into(),
                pipelining: true,
                chunking: false,
                size: None,
                eight_bit_mime: true,
                smtputf8: false,
                dsn: false,
                enhanced_status_codes: true,
                extra_capabilities: Vec::new(),
                starttls: false,
                implicit_tls: false,
                auth_requires_tls: None,
                require_auth: false,
                require_tls: false,
                certificate: CertKind::Valid,
                users: NamedSecrets::default(),
                oauth_tokens: NamedSecrets::default(),
                auth_mechanisms: None,
                scram: ScramConfig { nonce_suffix: None, salt: None, iterations: 4096 },
                require_client_cert: false,
                refused_recipients: Vec::new(),
                refused_senders: Vec::new(),
                max_recipients: 100,
                max_message_size: DEFAULT_MAX_MESSAGE,
                max_data_line: Some(1000),
                idle_timeout: None,
                greylist: false,
                rules: Vec::new(),
            },
        }
    }
}

impl TestServerBuilder {
    /// Bind to this address instead of `127.0.0.1:0`. Keep it on loopback.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    /// The name in the greeting and the EHLO reply (default `localhost`).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.config.hostname = name.into();
        self
    }

    /// Advertise PIPELINING (RFC 2920). Default true. The server accepts pipelined commands
    /// either way, as real servers do.
    pub fn pipelining(mut self, on: bool) -> Self {
        self.config.pipelining = on;
        self
    }

    /// Advertise CHUNKING and accept BDAT (RFC 3030). Default false.
    pub fn chunking(mut self, on: bool) -> Self {
        self.config.chunking = on;
        self
    }

    /// Advertise `SIZE n` (RFC 1870) and refuse larger messages, both on `MAIL FROM ...
    /// SIZE=` and after the data. Default `None` (no SIZE; messages are still capped at
    /// 64 MiB to bound memory).
    pub fn size(mut self, limit: Option<u64>) -> Self {
        self.config.size = limit;
        self
    }

    /// Advertise 8BITMIME (RFC 6152) and accept `BODY=8BITMIME`. Default true.
    pub fn eight_bit_mime(mut self, on: bool) -> Self {
        self.config.eight_bit_mime = on;
        self
    }

    /// Advertise SMTPUTF8 (RFC 6531); without it, non-ASCII addresses are refused with 553.
    /// Default false.
    pub fn smtputf8(mut self, on: bool) -> Self {
        self.config.smtputf8 = on;
        self
    }

    /// Advertise DSN (RFC 3461) and accept RET, ENVID, NOTIFY and ORCPT. Default false.
    pub fn dsn(mut self, on: bool) -> Self {
        self.config.dsn = on;
        self
    }

    /// Advertise ENHANCEDSTATUSCODES (RFC 2034) and put `x.y.z` codes in replies. Default
    /// true.
    pub fn enhanced_status_codes(mut self, on: bool) -> Self {
        self.config.enhanced_status_codes = on;
        self
    }

    /// Add a line to the EHLO reply, such as `"X-FOO"` or `"REQUIRETLS"`. A MAIL or RCPT
    /// parameter whose keyword equals the capability's first word is then accepted.
    pub fn extra_capability(mut self, line: impl Into<String>) -> Self {
        self.config.extra_capabilities.push(line.into());
        self
    }

    /// Offer STARTTLS (RFC 3207). Default false.
    pub fn starttls(mut self, on: bool) -> Self {
        self.config.starttls = on;
        self
    }

    /// Speak TLS from the first byte ("implicit TLS", RFC 8314). Default false.
    pub fn implicit_tls(mut self, on: bool) -> Self {
        self.config.implicit_tls = on;
        self
    }

    /// Advertise and accept AUTH only over TLS; in plaintext AUTH gets `538 5.7.11`.
    /// Default: true when STARTTLS or implicit TLS is on, false otherwise.
    pub fn auth_requires_tls(mut self, on: bool) -> Self {
        self.config.auth_requires_tls = Some(on);
        self
    }

    /// Refuse MAIL before a successful AUTH with `530 5.7.0`. Default false.
    pub fn require_auth(mut self, on: bool) -> Self {
        self.config.require_auth = on;
        self
    }

    /// Refuse MAIL in plaintext with `530 5.7.0 Must issue a STARTTLS command first`
    /// (RFC 3207 4). Default false.
    pub fn require_tls(mut self, on: bool) -> Self {
        self.config.require_tls = on;
        self
    }

    /// Which certificate the server presents. Default [`CertKind::Valid`].
    pub fn certificate(mut self, kind: CertKind) -> Self {
        self.config.certificate = kind;
        self
    }

    /// Accept this user and password for the password mechanisms: PLAIN, LOGIN, CRAM-MD5
    /// and SCRAM-SHA-256 (call again for more users). AUTH is advertised once at least one
    /// user or token exists; see [`auth_mechanisms`](Self::auth_mechanisms) for which.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.users.push((name.into(), password.into()));
        self
    }

    /// Accept this OAuth 2.0 bearer token for `user` with OAUTHBEARER (RFC 7628) and
    /// XOAUTH2 (call again for more). A wrong token gets the RFC 7628 3.2.2 error
    /// challenge (a `334` with base64 JSON), and `535 5.7.8` after the client's dummy
    /// response; a wrong dummy response is also a [`violation`](super::TestServer::violations).
    pub fn oauth_token(mut self, user: impl Into<String>, token: impl Into<String>) -> Self {
        self.config.oauth_tokens.push((user.into(), token.into()));
        self
    }

    /// The mechanisms advertised after `AUTH` in the EHLO reply, in this order, e.g.
    /// `.auth_mechanisms(&["SCRAM-SHA-256", "PLAIN"])`. Only advertised mechanisms are
    /// accepted (`504 5.5.4` otherwise). Supported: `PLAIN`, `LOGIN`, `CRAM-MD5`,
    /// `SCRAM-SHA-256`, `OAUTHBEARER`, `XOAUTH2`; other names are advertised but refused
    /// like unknown ones. An empty list turns AUTH off.
    ///
    /// Default: `PLAIN LOGIN` when users are configured, then `OAUTHBEARER XOAUTH2` when
    /// tokens are.
    pub fn auth_mechanisms(mut self, names: &[&str]) -> Self {
        self.config.auth_mechanisms = Some(names.iter().map(|n| n.to_ascii_uppercase()).collect());
        self
    }

    /// Fix the SCRAM-SHA-256 parameters instead of a random server nonce per exchange and
    /// a random salt per server (iterations default to 4096). With the values of RFC 7677
    /// 3, `.scram_fixed("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &salt, 4096)` and user `user` with
    /// password `pencil`, a client using the nonce `rOprNGfwEbeRWgbNEkqO` replays the RFC's
    /// exchange byte for byte.
    ///
    /// The suffix must be printable ASCII without `,`.
    pub fn scram_fixed(mut self, nonce_suffix: impl Into<String>, salt: &[u8], iterations: u32) -> Self {
        self.config.scram =
            ScramConfig { nonce_suffix: Some(nonce_suffix.into()), salt: Some(salt.to_vec()), iterations };
        self
    }

    /// Request a client certificate in every TLS handshake and refuse the handshake
    /// without one issued by the server's client CA (mutual TLS). A valid client identity
    /// is [`TestServer::client_cert_pem`](super::TestServer::client_cert_pem) with
    /// [`client_key_pem`](super::TestServer::client_key_pem). Default false.
    pub fn require_client_cert(mut self, on: bool) -> Self {
        self.config.require_client_cert = on;
        self
    }

    /// Answer `RCPT TO:<address>` (compared case-insensitively) with `code text`, e.g.
    /// `.reject_recipient("bad@example.com", 550, "5.1.1 no such user")`.
    pub fn reject_recipient(
        mut self,
        address: impl Into<String>,
        code: u16,
        text: impl Into<String>,
    ) -> Self {
        self.config.refused_recipients.push(Refusal { address: address.into(), code, text: text.into() });
        self
    }

    /// Answer `MAIL FROM:<address>` (compared case-insensitively) with `code text`.
    pub fn reject_sender(mut self, address: impl Into<String>, code: u16, text: impl Into<String>) -> Self {
        self.config.refused_senders.push(Refusal { address: address.into(), code, text: text.into() });
        self
    }

    /// Accepted recipients per transaction before `452 4.5.3 Too many recipients`.
    /// Default 100, the minimum RFC 5321 4.5.3.1.8 requires servers to accept.
    pub fn max_recipients(mut self, n: usize) -> Self {
        self.config.max_recipients = n;
        self
    }

    /// Refuse messages with a line longer than this many octets (CRLF included, the
    /// transparency dot not) with `500 5.5.2`. Default `Some(1000)`, the limit of RFC 5321
    /// 4.5.3.1.6; `None` accepts any length. Applies to DATA, not to BDAT.
    pub fn max_data_line(mut self, octets: Option<usize>) -> Self {
        self.config.max_data_line = octets;
        self
    }

    /// Greylisting: the first attempt of every message (same sender and data) is answered
    /// `451 4.7.1` at the final dot and not committed; the next attempt is accepted.
    /// [`TestServer::all_messages`](super::TestServer::all_messages) shows both.
    pub fn greylist(mut self, on: bool) -> Self {
        self.config.greylist = on;
        self
    }

    /// Close a connection with `421 4.4.2` after this long without input. Default `None`.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Add a fault rule. Rules are tried in the order added; see [`FaultRule`].
    pub fn fault(mut self, rule: FaultRule) -> Self {
        self.config.rules.push(rule);
        self
    }

    /// Shorthand for `.fault(FaultRule::new(step, fault))`: every connection, every time.
    pub fn on(self, step: Step, fault: Fault) -> Self {
        self.fault(FaultRule::new(step, fault))
    }

    /// Generate the certificates, bind the listener and start accepting connections.
    ///
    /// Must be called within a tokio runtime. Fails if the address cannot be bound.
    pub async fn start(self) -> io::Result<TestServer> {
        TestServer::start(self.config).await
    }
}
