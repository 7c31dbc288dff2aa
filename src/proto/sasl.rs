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

/// A user name and a password (or an app-specific authorization code).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: Secret<String>,
}

impl Credentials {
    /// Builds credentials; the password is wrapped in a [`Secret`].
    pub fn new(username: impl Into<String>, password: impl Into<Secret<String>>) -> Self {
        Self { username: username.into(), password: password.into() }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password, wrapped.
    pub fn password(&self) -> &Secret<String> {
        &self.password
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
            .finish()
    }
}

/// A SASL mechanism smtpkit can perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// RFC 4616 PLAIN.
    Plain,
    /// The LOGIN mechanism (draft-murchison-sasl-login).
    Login,
}

impl Mechanism {
    /// The name as used in `AUTH`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }

    /// Our preference order when the caller does not force a mechanism.
    pub const PREFERENCE: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

    /// Picks the first mechanism of `allowed` (in that order) that the server offers.
    pub fn choose(offered: &[String], allowed: &[Mechanism]) -> Option<Mechanism> {
        allowed.iter().copied().find(|m| offered.iter().any(|o| o.eq_ignore_ascii_case(m.name())))
    }

    /// Parses a mechanism name (any case).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::PREFERENCE.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// Why SASL failed on the client side.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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

/// The client side of one AUTH exchange.
#[derive(Debug)]
pub struct SaslClient {
    mechanism: Mechanism,
    credentials: Credentials,
    challenges: usize,
    sent_initial: bool,
}

impl SaslClient {
    /// Starts an exchange.
    pub fn new(mechanism: Mechanism, credentials: Credentials) -> Result<Self, SaslError> {
        credentials.validate()?;
        Ok(Self { mechanism, credentials, challenges: 0, sent_initial: false })
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The base64 initial response to put on the `AUTH` line, if the mechanism has one
    /// and it fits: RFC 4954 section 4 limits the AUTH command line to 512 octets, so a
    /// longer response is sent after an empty `334` instead.
    pub fn initial_response(&mut self) -> Option<Vec<u8>> {
        match self.mechanism {
            Mechanism::Plain => {
                let ir = self.plain_response();
                // "AUTH PLAIN " + ir + CRLF must fit in 512 octets.
                if ir.len() + 13 <= 512 {
                    self.sent_initial = true;
                    Some(ir)
                } else {
                    None
                }
            }
            Mechanism::Login => None,
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
        B64.encode(raw).into_bytes()
    }

    /// Answers a `334` challenge (its base64 text) with the base64 line to send.
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        self.challenges += 1;
        if self.challenges > MAX_CHALLENGES {
            return Err(SaslError::TooManyChallenges(self.challenges));
        }
        let challenge = challenge.trim_ascii();
        B64.decode(challenge).map_err(|_| SaslError::BadChallenge)?;
        match (self.mechanism, self.challenges) {
            (Mechanism::Plain, 1) if !self.sent_initial => Ok(self.plain_response()),
            // LOGIN asks "Username:" then "Password:"; the text varies between servers, so
            // the step number decides.
            (Mechanism::Login, 1) => Ok(B64.encode(self.credentials.username.as_bytes()).into_bytes()),
            (Mechanism::Login, 2) => {
                Ok(B64.encode(self.credentials.password.expose().as_bytes()).into_bytes())
            }
            _ => Err(SaslError::TooManyChallenges(self.challenges)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_initial_response() {
        let mut c = SaslClient::new(Mechanism::Plain, Credentials::new("tim", "tanstaaftanstaaf")).unwrap();
        // RFC 4616 section 4 example, without authzid.
        assert_eq!(c.initial_response().unwrap(), b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
        assert!(c.respond(b"").is_err());
    }

    #[test]
    fn plain_without_room_for_initial_response() {
        let mut c = SaslClient::new(Mechanism::Plain, Credentials::new("u", "p".repeat(600))).unwrap();
        assert!(c.initial_response().is_none());
        assert!(c.respond(b"").is_ok());
    }

    #[test]
    fn login_steps() {
        let mut c = SaslClient::new(Mechanism::Login, Credentials::new("user", "pass")).unwrap();
        assert!(c.initial_response().is_none());
        assert_eq!(c.respond(b"VXNlcm5hbWU6").unwrap(), b"dXNlcg==");
        assert_eq!(c.respond(b"UGFzc3dvcmQ6").unwrap(), b"cGFzcw==");
        assert_eq!(c.respond(b"UGFzc3dvcmQ6"), Err(SaslError::TooManyChallenges(3)));
    }

    #[test]
    fn bad_challenge_and_nul() {
        let mut c = SaslClient::new(Mechanism::Login, Credentials::new("user", "pass")).unwrap();
        assert_eq!(c.respond(b"!!!"), Err(SaslError::BadChallenge));
        assert_eq!(
            SaslClient::new(Mechanism::Plain, Credentials::new("a\0b", "p")).err(),
            Some(SaslError::NulInCredentials)
        );
        for byte in (1u8..0x20).chain([0x7f]) {
            let bad = format!("a{}b", char::from(byte));
            assert_eq!(
                SaslClient::new(Mechanism::Plain, Credentials::new(bad.clone(), "p")).err(),
                Some(SaslError::ControlInCredentials { field: "user name", byte })
            );
            assert_eq!(
                Credentials::new("u", bad).validate(),
                Err(SaslError::ControlInCredentials { field: "password", byte })
            );
        }
    }

    #[test]
    fn choice_follows_preference() {
        let offered = vec!["LOGIN".to_string(), "PLAIN".to_string()];
        assert_eq!(Mechanism::choose(&offered, &Mechanism::PREFERENCE), Some(Mechanism::Plain));
        assert_eq!(Mechanism::choose(&offered, &[Mechanism::Login]), Some(Mechanism::Login));
        assert_eq!(Mechanism::choose(&[], &Mechanism::PREFERENCE), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials::new("user", "pass");
        assert!(!format!("{c:?}").contains("pass\""));
        assert!(format!("{c:?}").contains("[redacted]"));
    }
}
