//! The builder of client settings, shared by the async and the blocking client: it holds
//! no tokio type, so `smtpkit::blocking` builds without tokio.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::connect::NetOptions;

use rustls::ClientConfig;

use super::TraceSink;
use super::tls::{TlsOptions, TlsTarget, parse_pem_certs, parse_pem_key, server_name};
use super::url::SmtpUrl;
use crate::proto::address::EhloName;
use crate::proto::dot_stuff::LineEndings;
use crate::proto::error::Error;
use crate::proto::reply::ReplyLimits;
use crate::proto::sasl::{Credentials, Mechanism};
use crate::proto::session::{SessionConfig, TlsPolicy, TraceLine};
use crate::proto::timeouts::Timeouts;

/// A future resolving to a fresh OAuth 2.0 access token.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, Error>> + Send>>;

/// Fetches a fresh OAuth 2.0 access token for each new connection (refreshing it as the
/// service sees fit).
pub type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Configures a connection, for the async client ([`crate::Connector`]) and the blocking one.
#[derive(Clone)]
pub struct ClientBuilder {
    host: String,
    port: Option<u16>,
    session: SessionConfig,
    tls: TlsOptions,
    trace: Option<TraceSink>,
    oauth: Option<(String, TokenProvider)>,
    /// Proxy, source address, Happy Eyeballs (builder methods in `crate::connect`).
    pub(crate) net: NetOptions,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("session", &self.session)
            .field("tls", &self.tls)
            .field("net", &self.net)
            .finish()
    }
}

impl ClientBuilder {
    /// A builder for `host` with secure defaults: port 587, STARTTLS required, OS roots.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: None,
            session: SessionConfig::default(),
            tls: TlsOptions { native_roots: true, ..TlsOptions::default() },
            trace: None,
            oauth: None,
            net: NetOptions::default(),
        }
    }

    /// A builder from an `smtp://` or `smtps://` URL (see [`SmtpUrl`]).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let url = SmtpUrl::parse(url)?;
        let mut b = Self::new(url.host).port(url.port).tls(url.tls).lmtp(url.lmtp);
        if let Some(user) = url.user {
            let password = url.password.map(|p| p.expose().clone()).unwrap_or_default();
            b = b.credentials(Credentials::new(user, password));
        }
        if let Some(m) = url.mechanism {
            b = b.mechanisms(&[m]);
        }
        if let Some(proxy) = url.proxy {
            b.net.proxy = Some(proxy);
        }
        if let Some(on) = url.chunking {
            b = b.chunking(on);
        }
        Ok(b)
    }

    /// The port (default: 465 for implicit TLS, else 587).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The TLS policy (default [`TlsPolicy::Required`]).
    pub fn tls(mut self, policy: TlsPolicy) -> Self {
        self.session.tls = policy;
        self
    }

    /// Credentials for AUTH.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.session.credentials = Some(credentials);
        self
    }

    /// Authenticate with OAuth 2.0 (OAUTHBEARER or XOAUTH2, whichever the server offers,
    /// OAUTHBEARER first): `provider` is called for a fresh token on every new connection.
    ///
    /// ```
    /// # use smtpkit::Client;
    /// let builder = Client::builder("smtp.example.com").oauth("me@example.com", || {
    ///     Box::pin(async { Ok::<_, smtpkit::Error>("ya29.token-from-your-refresh-logic".to_string()) })
    /// });
    /// ```
    pub fn oauth(
        mut self,
        user: impl Into<String>,
        provider: impl Fn() -> TokenFuture + Send + Sync + 'static,
    ) -> Self {
        self.oauth = Some((user.into(), Arc::new(provider)));
        self
    }

    /// Allowed AUTH mechanisms in order of preference (default: strongest first, SCRAM-SHA-256,
    /// CRAM-MD5, PLAIN, LOGIN for passwords; OAUTHBEARER, XOAUTH2 for tokens).
    ///
    /// The first of these that the server advertises (after STARTTLS: in the EHLO over TLS)
    /// and that fits the credentials is tried; the server's own order does not matter. If
    /// the server refuses it as unsupported or unavailable (504, 534 or 538), the next one
    /// is tried, each at most once; when all are refused the error is
    /// [`Error::AuthMechanismsRefused`], listing each with its reply. Any other refusal ends
    /// AUTH at once, above all `535` (bad credentials, [`Error::AuthFailed`]): trying the
    /// same credentials with another mechanism would only bring an account lockout closer.
    /// A single mechanism (as `?auth=` in the URL gives) disables the fallback.
    pub fn mechanisms(mut self, mechanisms: &[Mechanism]) -> Self {
        self.session.mechanisms = mechanisms.to_vec();
        self
    }

    /// The EHLO name. Default, on connections [`Connector::connect`](crate::Connector::connect)
    /// opens: the machine's fully qualified name, else the literal of the connection's local
    /// address such as `[192.0.2.7]`, never `localhost` (see
    /// [`default_ehlo_name`](crate::connect::default_ehlo_name)). Over a stream given to
    /// `connect_with` smtpkit cannot know the local address: set the name there (it stays
    /// `localhost` otherwise).
    pub fn ehlo_name(mut self, name: EhloName) -> Self {
        self.session.ehlo_name = name;
        self.net.ehlo_chosen = true;
        self
    }

    /// Per-phase deadlines.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.session.timeouts = timeouts;
        self
    }

    /// Caps on server replies.
    pub fn reply_limits(mut self, limits: ReplyLimits) -> Self {
        self.session.reply_limits = limits;
        self
    }

    /// Bare CR/LF handling in bodies (default: normalise to CRLF).
    pub fn line_endings(mut self, policy: LineEndings) -> Self {
        self.session.line_endings = policy;
        self
    }

    /// Use PIPELINING when offered (default on).
    pub fn pipelining(mut self, on: bool) -> Self {
        self.session.pipelining = on;
        self
    }

    /// Speak LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data,
    /// reported per recipient in the [`SendReport`](crate::SendReport).
    pub fn lmtp(mut self, on: bool) -> Self {
        self.session.lmtp = on;
        self
    }

    /// Use CHUNKING/BDAT when offered (default on: with PIPELINING a message then costs
    /// one round trip, as MAIL, RCPT and `BDAT n LAST` with the data leave in one write).
    pub fn chunking(mut self, on: bool) -> Self {
        self.session.chunking = on;
        self
    }

    /// Trust the certificates in a PEM document in addition to the OS roots.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.tls.extra_roots.extend(parse_pem_certs(pem)?);
        Ok(self)
    }

    /// Trust the certificates in a PEM file in addition to the OS roots.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem =
            std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        self.add_root_pem(&pem)
    }

    /// Do not load the OS trust store (only added roots are trusted).
    pub fn without_native_roots(mut self) -> Self {
        self.tls.native_roots = false;
        self
    }

    /// Use this rustls configuration as is (roots, client certificates, versions). It is
    /// taken to verify the server's certificate chain and name; if it does not (a custom
    /// verifier that accepts more), use [`ClientBuilder::tls_config_unverified`].
    pub fn tls_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self.tls.config_unverified = false;
        self
    }

    /// Use this rustls configuration, declared as *not* verifying the server the usual
    /// way (a pinning or accept-anything verifier, say). The connection then counts as
    /// unverified TLS, as with [`ClientBuilder::danger_accept_invalid_certs`]: credentials
    /// are refused unless [`ClientBuilder::allow_insecure_auth`] is also set.
    pub fn tls_config_unverified(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self.tls.config_unverified = true;
        self
    }

    /// Present a client certificate (mutual TLS): PEM chain and PEM private key.
    pub fn client_certificate_pem(mut self, chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        self.tls.client_auth = Some((parse_pem_certs(chain)?, Arc::new(parse_pem_key(key)?)));
        Ok(self)
    }

    /// Accept any server certificate. Dangerous: only for tests. Credentials are then
    /// refused unless [`ClientBuilder::allow_insecure_auth`] is also set.
    pub fn danger_accept_invalid_certs(mut self, on: bool) -> Self {
        self.tls.accept_invalid_certs = on;
        self
    }

    /// Allow AUTH over plaintext or unverified TLS. Off by default.
    pub fn allow_insecure_auth(mut self, on: bool) -> Self {
        self.session.allow_insecure_auth = on;
        self
    }

    /// Receive the session transcript (AUTH payloads redacted, message data summarised).
    pub fn trace(mut self, sink: impl Fn(&TraceLine) + Send + Sync + 'static) -> Self {
        self.trace = Some(Arc::new(sink));
        self
    }

    /// Checks the settings and resolves the defaults: what every connection is made from.
    pub(crate) fn into_parts(self) -> Result<ConnectorInner, Error> {
        // Invalid credentials are a typed error before any connection is opened.
        if let Some(creds) = &self.session.credentials {
            creds.validate().map_err(|e| Error::Input(e.into()))?;
        }
        let port = self.port.unwrap_or(if self.session.tls == TlsPolicy::Implicit { 465 } else { 587 });
        let tls = match self.session.tls {
            TlsPolicy::Disabled => None,
            _ => Some(TlsTarget {
                config: self.tls.build()?,
                name: server_name(&self.host)?,
                verified: !self.tls.accept_invalid_certs && !self.tls.config_unverified,
            }),
        };
        let mut session = self.session;
        session.trace = self.trace.is_some() || cfg!(feature = "tracing");
        session.server_name = self.host.clone();
        session.server_port = port;
        Ok(ConnectorInner {
            host: self.host,
            port,
            session,
            tls,
            trace: self.trace,
            oauth: self.oauth,
            net: self.net,
        })
    }
}

/// The checked settings of a connector.
pub(crate) struct ConnectorInner {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) session: SessionConfig,
    pub(crate) tls: Option<TlsTarget>,
    pub(crate) trace: Option<TraceSink>,
    pub(crate) oauth: Option<(String, TokenProvider)>,
    // The blocking client dials directly for now (proxies and Happy Eyeballs are async only).
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) net: NetOptions,
}

/// 144 random bits for a SCRAM client nonce, base64 (never a `,`). Without an OS random
/// source SCRAM is simply not offered to the server.
pub(crate) fn scram_nonce() -> Option<String> {
    use base64::Engine as _;
    let mut raw = [0u8; 18];
    getrandom::fill(&mut raw).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(raw))
}
