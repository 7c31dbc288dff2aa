//! SASL authentication (RFC 4954) as pure challenge -> response steps, and the `Secret`
//! wrapper that keeps credentials out of `Debug`, `Display` and logs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

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
mod tests {
    use super::*;

    #[test]
    fn plain_initial_response() {
        let mut c =
            SaslClient::new(Mechanism::Plain, Credentials::new("tim", "tanstaaftanstaaf"), ctx()).unwrap();
        // RFC 4616 section 4 example, without authzid.
        assert_eq!(c.initial_response().unwrap(), b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
        assert!(c.respond(b"").is_err());
    }

    #[test]
    fn plain_without_room_for_initial_response() {
        let mut c = SaslClient::new(Mechanism::Plain, Credentials::new("u", "p".repeat(600)), ctx()).unwrap();
        assert!(c.initial_response().is_none());
        assert!(c.respond(b"").is_ok());
    }

    #[test]
    fn login_steps() {
        let mut c = SaslClient::new(Mechanism::Login, Credentials::new("user", "pass"), ctx()).unwrap();
        assert!(c.initial_response().is_none());
        assert_eq!(c.respond(b"VXNlcm5hbWU6").unwrap(), b"dXNlcg==");
        assert_eq!(c.respond(b"UGFzc3dvcmQ6").unwrap(), b"cGFzcw==");
        assert_eq!(c.respond(b"UGFzc3dvcmQ6"), Err(SaslError::TooManyChallenges(3)));
    }

    #[test]
    fn bad_challenge_and_nul() {
        let mut c = SaslClient::new(Mechanism::Login, Credentials::new("user", "pass"), ctx()).unwrap();
        assert_eq!(c.respond(b"!!!"), Err(SaslError::BadChallenge));
        assert_eq!(
            SaslClient::new(Mechanism::Plain, Credentials::new("a\0b", "p"), ctx()).err(),
            Some(SaslError::NulInCredentials)
        );
        for byte in (1u8..0x20).chain([0x7f]) {
            let bad = format!("a{}b", char::from(byte));
            assert_eq!(
                SaslClient::new(Mechanism::Plain, Credentials::new(bad.clone(), "p"), ctx()).err(),
                Some(SaslError::ControlInCredentials { field: "user name", byte })
            );
            assert_eq!(
                Credentials::new("u", bad).validate(),
                Err(SaslError::ControlInCredentials { field: "password", byte })
            );
        }
    }

    fn ctx() -> SaslContext {
        SaslContext {
            host: "server.example.com".into(),
            port: 143,
            nonce: Some("rOprNGfwEbeRWgbNEkqO".into()),
        }
    }

    #[test]
    fn choice_follows_preference_and_secret_kind() {
        let offered: Vec<String> =
            ["LOGIN", "PLAIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"].iter().map(|s| s.to_string()).collect();
        let pw = SecretKind::Password;
        assert_eq!(Mechanism::choose(&offered, &Mechanism::PREFERENCE, pw), Some(Mechanism::CramMd5));
        assert_eq!(Mechanism::choose(&offered, &[Mechanism::Login], pw), Some(Mechanism::Login));
        assert_eq!(Mechanism::choose(&[], &Mechanism::PREFERENCE, pw), None);
        let token = SecretKind::BearerToken;
        assert_eq!(Mechanism::choose(&offered, &Mechanism::PREFERENCE, token), Some(Mechanism::OAuthBearer));
        assert_eq!(Mechanism::choose(&offered, &[Mechanism::Plain], token), None);
    }

    #[test]
    fn cram_md5_rfc2195_vector() {
        let mut c =
            SaslClient::new(Mechanism::CramMd5, Credentials::new("tim", "tanstaaftanstaaf"), ctx()).unwrap();
        assert!(c.initial_response().is_none());
        let challenge = B64.encode("<1896.697170952@postoffice.reston.mci.net>");
        let resp = B64.decode(c.respond(challenge.as_bytes()).unwrap()).unwrap();
        assert_eq!(resp, b"tim b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn scram_sha256_rfc7677_vector() {
        let mut c =
            SaslClient::new(Mechanism::ScramSha256, Credentials::new("user", "pencil"), ctx()).unwrap();
        let first = B64.decode(c.initial_response().unwrap()).unwrap();
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = B64.decode(c.respond(B64.encode(server_first).as_bytes()).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(c.finish(), Err(SaslError::ServerNotVerified));
        let bad = B64.encode("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        let mut c2 =
            SaslClient::new(Mechanism::ScramSha256, Credentials::new("user", "pencil"), ctx()).unwrap();
        c2.initial_response();
        c2.respond(B64.encode(server_first).as_bytes()).unwrap();
        assert_eq!(c2.respond(bad.as_bytes()), Err(SaslError::ServerNotVerified));
        let ok = B64.encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert_eq!(c.respond(ok.as_bytes()).unwrap(), b"");
        assert_eq!(c.finish(), Ok(()));
    }

    #[test]
    fn scram_refuses_unsafe_server_messages() {
        for server_first in [
            "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4000000000",
            "r=rOprNGfwEbeRWgbNEkqOx,i=4096",
            "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        ] {
            let mut c =
                SaslClient::new(Mechanism::ScramSha256, Credentials::new("user", "pencil"), ctx()).unwrap();
            c.initial_response();
            assert!(
                matches!(c.respond(B64.encode(server_first).as_bytes()), Err(SaslError::Scram(_))),
                "{server_first}"
            );
        }
        let no_nonce = SaslContext { nonce: None, ..ctx() };
        assert_eq!(
            SaslClient::new(Mechanism::ScramSha256, Credentials::new("u", "p"), no_nonce).err(),
            Some(SaslError::NoNonce)
        );
    }

    #[test]
    fn xoauth2_and_oauthbearer_formats() {
        let token = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
        let mut c =
            SaslClient::new(Mechanism::XOAuth2, Credentials::oauth("someuser@example.com", token), ctx())
                .unwrap();
        assert_eq!(
            c.initial_response().unwrap(),
            b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        // An error challenge gets an empty response.
        assert_eq!(c.respond(B64.encode("{\"status\":\"401\"}").as_bytes()).unwrap(), b"");
        let token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
        let mut c =
            SaslClient::new(Mechanism::OAuthBearer, Credentials::oauth("user@example.com", token), ctx())
                .unwrap();
        let ir = B64.decode(c.initial_response().unwrap()).unwrap();
        assert_eq!(
            ir,
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert_eq!(c.respond(B64.encode("{}").as_bytes()).unwrap(), b"AQ==");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials::new("user", "pass");
        assert!(!format!("{c:?}").contains("pass\""));
        assert!(format!("{c:?}").contains("[redacted]"));
    }
}
