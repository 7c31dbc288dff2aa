//! SASL authentication (RFC 4954) as pure challenge -> response steps, and the `Secret`
//! wrapper that keeps credentials out of `Debug`, `Display` and logs.
//!
//! # Which mechanism, and what happens when the server refuses it
//!
//! The session walks the allowed mechanisms (by default [`Mechanism::PREFERENCE`]:
//! SCRAM-SHA-256, CRAM-MD5, PLAIN, LOGIN for a password; OAUTHBEARER, XOAUTH2 for a
//! token) in that order, skipping those the server does not advertise in its EHLO reply
//! (the one over TLS when STARTTLS ran: what was listed before it is forgotten), those
//! that do not fit the kind of secret, and SCRAM-SHA-256 when the driver supplied no
//! nonce. The server's own order in the `AUTH` line is not used.
//!
//! If the server refuses the chosen mechanism itself, with 504 (not supported), 534 (too
//! weak) or 538 (encryption required) — see [`refuses_mechanism`] — the next one on the
//! list is tried, each at most once. Any other failure ends the attempt at once: above
//! all `535` (bad credentials), since trying the same credentials again with another
//! mechanism only brings an account lockout closer. When every candidate was refused
//! the error lists each mechanism with its reply
//! ([`Error::AuthMechanismsRefused`](super::error::Error::AuthMechanismsRefused)).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::reply::Reply;

/// A value that must never be printed. `Debug` shows `[redacted]`; there is no `Display`.
///
/// ```
/// use smtpkit::proto::sasl::Secret;
/// let s = Secret::new("hunter2".to_string());
/// assert_eq!(format!("{s:?}"), "[redacted]");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call sites are easy to audit.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret<String> {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// What proves the user's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretKind {
    /// A password or an app-specific authorization code.
    Password,
    /// An OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER).
    BearerToken,
}

/// A user name and a password (or app-specific authorization code), or an OAuth token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: Secret<String>,
    kind: SecretKind,
}

impl Credentials {
    /// User name and password; the password is wrapped in a [`Secret`].
    pub fn new(username: impl Into<String>, password: impl Into<Secret<String>>) -> Self {
        Self { username: username.into(), password: password.into(), kind: SecretKind::Password }
    }

    /// User name and OAuth 2.0 bearer token, for XOAUTH2 and OAUTHBEARER.
    pub fn oauth(username: impl Into<String>, token: impl Into<Secret<String>>) -> Self {
        Self { username: username.into(), password: token.into(), kind: SecretKind::BearerToken }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password or token, wrapped.
    pub fn password(&self) -> &Secret<String> {
        &self.password
    }

    /// Password or bearer token.
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// Checks that the user name and password can be sent: no NUL
    /// ([`SaslError::NulInCredentials`]) and no other C0 control byte or DEL
    /// ([`SaslError::ControlInCredentials`]).
    pub fn validate(&self) -> Result<(), SaslError> {
        for (field, value) in [("user name", self.username.as_str()), ("password", self.password.expose())] {
            if value.contains('\0') {
                return Err(SaslError::NulInCredentials);
            }
            if let Some(byte) = value.bytes().find(|b| b.is_ascii_control()) {
                return Err(SaslError::ControlInCredentials { field, byte });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("kind", &self.kind)
            .finish()
    }
}

/// A SASL mechanism smtpkit can perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// RFC 7677 SCRAM-SHA-256: the password never leaves the client and the server proves
    /// it knows it too.
    ScramSha256,
    /// RFC 2195 CRAM-MD5 (challenge-response; weak hash, kept for old servers).
    CramMd5,
    /// RFC 4616 PLAIN.
    Plain,
    /// The LOGIN mechanism (draft-murchison-sasl-login).
    Login,
    /// RFC 7628 OAUTHBEARER.
    OAuthBearer,
    /// Google's and Microsoft's XOAUTH2.
    XOAuth2,
}

impl Mechanism {
    /// The name as used in `AUTH`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::XOAuth2 => "XOAUTH2",
        }
    }

    /// Every mechanism, strongest first: the default preference order. Only those that
    /// fit the credentials' [`SecretKind`] are ever chosen.
    pub const PREFERENCE: [Mechanism; 6] = [
        Mechanism::ScramSha256,
        Mechanism::CramMd5,
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::OAuthBearer,
        Mechanism::XOAuth2,
    ];

    /// The kind of secret the mechanism needs.
    pub fn secret_kind(self) -> SecretKind {
        match self {
            Mechanism::OAuthBearer | Mechanism::XOAuth2 => SecretKind::BearerToken,
            _ => SecretKind::Password,
        }
    }

    /// Picks the first mechanism of `allowed` (in that order) that the server offers and
    /// that works with a secret of `kind`.
    pub fn choose(offered: &[String], allowed: &[Mechanism], kind: SecretKind) -> Option<Mechanism> {
        allowed
            .iter()
            .copied()
            .filter(|m| m.secret_kind() == kind)
            .find(|m| offered.iter().any(|o| o.eq_ignore_ascii_case(m.name())))
    }

    /// Parses a mechanism name (any case), as in the URL's `auth=`.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::PREFERENCE.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// True when an AUTH reply refuses the mechanism rather than the credentials, so another
/// advertised mechanism may be tried: RFC 4954 `504` ("the requested authentication
/// mechanism is invalid (e.g., is not supported or requires an encryption layer)"), `534`
/// ("Authentication mechanism is too weak") and `538` ("Encryption required for requested
/// authentication mechanism"). Never `535`: that is a verdict on the credentials.
///
/// ```
/// use smtpkit::proto::reply::Reply;
/// use smtpkit::proto::sasl::refuses_mechanism;
/// assert!(refuses_mechanism(&Reply::single(504, "5.5.4 Unrecognized authentication type")));
/// assert!(!refuses_mechanism(&Reply::single(535, "5.7.8 credentials invalid")));
/// ```
pub fn refuses_mechanism(reply: &Reply) -> bool {
    matches!(reply.code().0, 504 | 534 | 538)
}

/// A mechanism the server refused as unsupported or unavailable, with its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MechanismRefusal {
    /// The mechanism tried.
    pub mechanism: Mechanism,
    /// The server's refusal (504, 534 or 538).
    pub reply: Reply,
}

impl fmt::Display for MechanismRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.mechanism.name(), self.reply)
    }
}

/// Why SASL failed on the client side.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The server sent a challenge that is not valid base64.
    #[error("server sent a challenge that is not base64")]
    BadChallenge,
    /// The server sent more challenges than the mechanism has steps, or than the limit.
    #[error("server sent too many AUTH challenges ({0})")]
    TooManyChallenges(usize),
    /// The user name or password contains a NUL, which PLAIN cannot carry.
    #[error("credentials contain a NUL octet")]
    NulInCredentials,
    /// A SCRAM message from the server is malformed or unsafe (nonce, salt, iterations).
    #[error("invalid SCRAM server message: {0}")]
    Scram(&'static str),
    /// The server could not prove it knows the password (SCRAM server signature).
    #[error("the server's SCRAM signature does not verify: possible impostor")]
    ServerNotVerified,
    /// SCRAM needs a client nonce and none was provided.
    #[error("no client nonce for SCRAM")]
    NoNonce,
    /// The password is not valid under SASLprep (RFC 4013).
    #[error("password is not valid under SASLprep")]
    SaslPrep,
    /// The user name or password contains another control byte (C0 or DEL). Base64 keeps
    /// it off the wire as such, but servers decode it and treat it inconsistently (log
    /// injection, truncation), so it is refused before any byte is written.
    #[error("control byte 0x{byte:02x} in the {field}")]
    ControlInCredentials {
        /// `"user name"` or `"password"`.
        field: &'static str,
        /// The offending byte.
        byte: u8,
    },
}

/// The most challenges accepted in one exchange.
pub const MAX_CHALLENGES: usize = 10;

/// What a mechanism may need besides the credentials.
#[derive(Clone, Debug, Default)]
pub struct SaslContext {
    /// Server host, for OAUTHBEARER.
    pub host: String,
    /// Server port, for OAUTHBEARER.
    pub port: u16,
    /// A fresh random client nonce (printable ASCII without `,`), for SCRAM. The sans-IO
    /// core has no randomness of its own: the driver supplies it.
    pub nonce: Option<String>,
}

/// SCRAM state between the client-first and client-final messages.
#[derive(Clone, Default)]
struct Scram {
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
    verified: bool,
}

/// The client side of one AUTH exchange.
pub struct SaslClient {
    mechanism: Mechanism,
    credentials: Credentials,
    context: SaslContext,
    challenges: usize,
    sent_initial: bool,
    scram: Scram,
}

impl fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslClient")
            .field("mechanism", &self.mechanism)
            .field("credentials", &self.credentials)
            .field("challenges", &self.challenges)
            .finish_non_exhaustive()
    }
}

fn b64(data: impl AsRef<[u8]>) -> Vec<u8> {
    B64.encode(data).into_bytes()
}

impl SaslClient {
    /// Starts an exchange.
    pub fn new(
        mechanism: Mechanism,
        credentials: Credentials,
        context: SaslContext,
    ) -> Result<Self, SaslError> {
        credentials.validate()?;
        if mechanism == Mechanism::ScramSha256 {
            let nonce = context.nonce.as_deref().ok_or(SaslError::NoNonce)?;
            if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b',') {
                return Err(SaslError::NoNonce);
            }
        }
        Ok(Self {
            mechanism,
            credentials,
            context,
            challenges: 0,
            sent_initial: false,
            scram: Scram::default(),
        })
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The base64 initial response to put on the `AUTH` line, if the mechanism has one
    /// and it fits: RFC 4954 section 4 limits the AUTH command line to 512 octets, so a
    /// longer response is sent after an empty `334` instead.
    pub fn initial_response(&mut self) -> Option<Vec<u8>> {
        let ir = match self.mechanism {
            Mechanism::Plain => self.plain_response(),
            Mechanism::XOAuth2 => self.xoauth2_response(),
            Mechanism::OAuthBearer => self.oauthbearer_response(),
            Mechanism::ScramSha256 => self.scram_client_first(),
            Mechanism::Login | Mechanism::CramMd5 => return None,
        };
        // "AUTH " + name + " " + ir + CRLF must fit in 512 octets.
        if ir.len() + self.mechanism.name().len() + 8 <= 512 {
            self.sent_initial = true;
            Some(ir)
        } else {
            None
        }
    }

    fn plain_response(&self) -> Vec<u8> {
        // RFC 4616: message = [authzid] UTF8NUL authcid UTF8NUL passwd
        let mut raw =
            Vec::with_capacity(2 + self.credentials.username.len() + self.credentials.password.0.len());
        raw.push(0);
        raw.extend_from_slice(self.credentials.username.as_bytes());
        raw.push(0);
        raw.extend_from_slice(self.credentials.password.expose().as_bytes());
        b64(raw)
    }

    fn xoauth2_response(&self) -> Vec<u8> {
        let c = &self.credentials;
        b64(format!("user={}\x01auth=Bearer {}\x01\x01", c.username, c.password.expose()))
    }

    /// RFC 7628 section 3.1: `gs2-header kvsep *(kvpair) kvsep`, with the authzid escaped
    /// as in RFC 5801 (`,` -> `=2C`, `=` -> `=3D`).
    fn oauthbearer_response(&self) -> Vec<u8> {
        let c = &self.credentials;
        let user = c.username.replace('=', "=3D").replace(',', "=2C");
        b64(format!(
            "n,a={user},\x01host={}\x01port={}\x01auth=Bearer {}\x01\x01",
            self.context.host,
            self.context.port,
            c.password.expose()
        ))
    }

    fn scram_client_first(&mut self) -> Vec<u8> {
        // RFC 5802 section 7: saslname escapes "=" and ",".
        let user = self.credentials.username.replace('=', "=3D").replace(',', "=2C");
        let nonce = self.context.nonce.clone().unwrap_or_default();
        self.scram.client_first_bare = format!("n={user},r={nonce}");
        b64(format!("n,,{}", self.scram.client_first_bare))
    }

    /// Answers a `334` challenge (its base64 text) with the base64 line to send.
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        self.challenges += 1;
        if self.challenges > MAX_CHALLENGES {
            return Err(SaslError::TooManyChallenges(self.challenges));
        }
        let decoded = B64.decode(challenge.trim_ascii()).map_err(|_| SaslError::BadChallenge)?;
        match (self.mechanism, self.challenges) {
            (Mechanism::Plain, 1) if !self.sent_initial => Ok(self.plain_response()),
            // LOGIN asks "Username:" then "Password:"; the text varies between servers, so
            // the step number decides.
            (Mechanism::Login, 1) => Ok(b64(self.credentials.username.as_bytes())),
            (Mechanism::Login, 2) => Ok(b64(self.credentials.password.expose().as_bytes())),
            (Mechanism::CramMd5, 1) => Ok(self.cram_md5(&decoded)),
            (Mechanism::XOAuth2, 1) if !self.sent_initial => Ok(self.xoauth2_response()),
            // An error challenge (JSON): RFC 7628 section 3.2.3 has the client answer with a
            // single %x01 (XOAUTH2 servers expect an empty line); the server then fails AUTH.
            (Mechanism::XOAuth2, _) => Ok(Vec::new()),
            (Mechanism::OAuthBearer, 1) if !self.sent_initial => Ok(self.oauthbearer_response()),
            (Mechanism::OAuthBearer, _) => Ok(b64([1u8])),
            (Mechanism::ScramSha256, 1) if !self.sent_initial && decoded.is_empty() => {
                Ok(self.scram_client_first())
            }
            (Mechanism::ScramSha256, _) => self.scram_step(&decoded),
            _ => Err(SaslError::TooManyChallenges(self.challenges)),
        }
    }

    /// RFC 2195: the response is the user name, a space, and the hex HMAC-MD5 of the
    /// challenge keyed with the password.
    fn cram_md5(&self, challenge: &[u8]) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(self.credentials.password.expose().as_bytes())
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(challenge);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        b64(format!("{} {hex}", self.credentials.username))
    }

    fn scram_step(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslError> {
        let msg = std::str::from_utf8(msg).map_err(|_| SaslError::Scram("not UTF-8"))?;
        if let Some(expected) = self.scram.server_signature.take() {
            // server-final-message = "v=" base64(ServerSignature)
            let v = msg.strip_prefix("v=").ok_or(SaslError::Scram("server-final without v="))?;
            let got = B64.decode(v).map_err(|_| SaslError::Scram("bad server signature encoding"))?;
            if got != expected {
                return Err(SaslError::ServerNotVerified);
            }
            self.scram.verified = true;
            return Ok(Vec::new());
        }
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in msg.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(B64.decode(v).map_err(|_| SaslError::Scram("bad salt"))?),
                Some(("i=", v)) => iterations = v.parse::<u32>().ok(),
                Some(("m=", _)) => return Err(SaslError::Scram("unsupported mandatory extension")),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(SaslError::Scram("no nonce"))?;
        let client_nonce = self.context.nonce.as_deref().unwrap_or_default();
        // RFC 5802 section 5.1: the server nonce "MUST start with the client nonce".
        if !nonce.starts_with(client_nonce) || nonce.len() <= client_nonce.len() {
            return Err(SaslError::Scram("server nonce does not extend ours"));
        }
        let salt = salt.filter(|s| !s.is_empty()).ok_or(SaslError::Scram("no salt"))?;
        // RFC 7677 section 4: "the iteration count ... SHOULD be at least 4096"; a huge
        // count is a cheap way for a server to burn our CPU, so it is capped.
        let iterations = iterations
            .filter(|i| (4096..=1_000_000).contains(i))
            .ok_or(SaslError::Scram("iteration count outside 4096..=1000000"))?;
        let password =
            stringprep::saslprep(self.credentials.password.expose()).map_err(|_| SaslError::SaslPrep)?;
        let (proof, server_signature) = scram_sha256_proof(
            password.as_bytes(),
            &salt,
            iterations,
            &self.scram.client_first_bare,
            msg,
            nonce,
        );
        self.scram.server_signature = Some(server_signature);
        let without_proof = format!("c=biws,r={nonce}");
        Ok(b64(format!("{without_proof},p={}", B64.encode(proof))))
    }

    /// Checks a `235`: a mechanism with mutual authentication must have verified the
    /// server first (SCRAM).
    pub fn finish(&self) -> Result<(), SaslError> {
        if self.mechanism == Mechanism::ScramSha256 && !self.scram.verified {
            return Err(SaslError::ServerNotVerified);
        }
        Ok(())
    }
}

fn unreachable_hmac() -> ! {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    unreachable!("HMAC takes keys of any length")
}

/// RFC 5802 section 3 with SHA-256: returns (ClientProof, ServerSignature).
fn scram_sha256_proof(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
) -> (Vec<u8>, Vec<u8>) {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    type HmacSha256 = Hmac<Sha256>;
    let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let auth_message = format!("{client_first_bare},{server_first},c=biws,r={nonce}");
    let client_signature = hmac(&stored_key, auth_message.as_bytes());
    let proof = client_key.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
    let server_key = hmac(&salted, b"Server Key");
    (proof, hmac(&server_key, auth_message.as_bytes()))
}

#[cfg(test)]
mod tests;
