//! DKIM signing (RFC 6376, Ed25519 per RFC 8463) on top of the [`mail-auth`] crate.
//!
//! A [`DkimSigner`] holds a private key (RSA or Ed25519, from PEM), the signing domain
//! (`d=`), the selector (`s=`) and the header fields to sign. [`DkimSigner::sign`] takes a
//! complete RFC 5322 message and returns it with a `DKIM-Signature:` header field in front.
//!
//! The message is signed exactly as [`Client::send`](crate::Client::send) transmits it:
//! bare CR and bare LF become CRLF first and a missing final CRLF is added, so the bytes
//! returned are the bytes the server stores. Sign last: any later change to a signed header
//! field or to the body breaks the signature.
//!
//! ```
//! use smtpkit::dkim::DkimSigner;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let pem = smtpkit_doc_key();
//! // `pem` is a PKCS #8 ("PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY") PEM document.
//! let signer = DkimSigner::new(&pem, "example.com", "mail2026")?;
//! // Publish this TXT record at mail2026._domainkey.example.com:
//! println!("{} TXT \"{}\"", signer.dns_name(), signer.dns_record());
//!
//! let signed = signer.sign(b"From: a@example.com\r\nTo: b@example.org\r\nSubject: Hi\r\n\r\nHello\r\n")?;
//! assert!(signed.starts_with(b"DKIM-Signature: v=1; a=ed25519-sha256; s=mail2026; d=example.com;"));
//! # Ok(())
//! # }
//! # fn smtpkit_doc_key() -> String {
//! #     rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap().serialize_pem()
//! # }
//! ```
//!
//! [`mail-auth`]: https://crates.io/crates/mail-auth

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::common::crypto::DkimKey;
use mail_auth::common::headers::HeaderWriter as _;

use crate::proto::dot_stuff::{self, BodyError, LineEndings, Normalizer};

mod key;

pub use key::SigningKey;

/// The header fields signed by default: the ones that carry what the reader sees and how
/// the body is to be read. Fields absent from a message are still listed in `h=` (RFC 6376
/// section 5.4), so nobody can add them later without breaking the signature.
pub const DEFAULT_SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Reply-To",
    "In-Reply-To",
    "References",
    // RFC 8058 section 4: the message needs "a valid DomainKeys Identified Mail (DKIM)
    // signature [RFC6376] that covers at least the List-Unsubscribe and
    // List-Unsubscribe-Post headers".
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Longest accepted header field name in the list of fields to sign.
const MAX_HEADER_NAME: usize = 200;

/// Why a key cannot be loaded, a signer cannot be built or a message cannot be signed.
///
/// No variant carries key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    /// The PEM document holds no private key, or is malformed.
    #[error("invalid PEM private key: {0}")]
    Pem(&'static str),
    /// A private key of a kind DKIM does not sign with (DKIM knows RSA and Ed25519).
    #[error("unsupported private key type: {0}; DKIM signs with RSA or Ed25519")]
    UnsupportedKey(&'static str),
    /// The key was recognised but rejected by the cryptography library (for example an RSA
    /// key shorter than 2048 bits, or a malformed encoding).
    #[error("private key rejected: {0}")]
    InvalidKey(String),
    /// The signing domain is not a DNS name (ASCII letters, digits, hyphens; A-labels for
    /// international names).
    #[error("invalid signing domain {0:?}")]
    InvalidDomain(String),
    /// The selector is not a DNS name.
    #[error("invalid selector {0:?}")]
    InvalidSelector(String),
    /// A name in the list of header fields to sign is empty, too long, or holds a byte a
    /// field name cannot contain (RFC 5322 section 3.6.8).
    #[error("invalid header field name {0:?} in the list of fields to sign")]
    InvalidHeaderName(String),
    /// The list of header fields to sign lacks `From`, which RFC 6376 section 5.4 requires.
    #[error("the header fields to sign must include From")]
    FromNotSigned,
    /// The message has no `From` header field (RFC 5322 requires one, DKIM signs it).
    #[error("the message has no From header field")]
    MissingFrom,
    /// The message cannot be sent as it is: a NUL octet or a line over 998 octets.
    #[error("message cannot be sent: {0}")]
    Message(#[from] BodyError),
    /// The cryptography library failed to sign.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The signature algorithm (`a=` tag), given by the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `rsa-sha256` (RFC 6376).
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519Sha256,
}

impl Algorithm {
    /// The name used in the `a=` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// The key type of the DNS record (`k=` tag): `rsa` or `ed25519`.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canonicalisation algorithm (RFC 6376 section 3.4), for the header fields or the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Canonicalization {
    /// `relaxed`: tolerates the whitespace and header-folding changes relays make (the
    /// default, for headers and body).
    #[default]
    Relaxed,
    /// `simple`: any change breaks the signature.
    Simple,
}

impl Canonicalization {
    fn to_mail_auth(self) -> mail_auth::dkim::Canonicalization {
        match self {
            Canonicalization::Relaxed => mail_auth::dkim::Canonicalization::Relaxed,
            Canonicalization::Simple => mail_auth::dkim::Canonicalization::Simple,
        }
    }
}

/// mail-auth folds before the final `;` when the `b=` value ends at column 76, writing
/// `...==\r\n\t;`. RFC 6376 section 3.5 deletes the b= value "including all surrounding
/// whitespace" before verifying, but verifiers that remove only the value and the folding
/// before its characters (dkimpy) keep that trailing fold, canonicalise it to `b= ;` and
/// fail a signature made over `b=;`. The `;` goes back on the value's line (77 octets);
/// the signed content is unchanged.
fn join_final_semicolon(mut header: String) -> String {
    if header.ends_with("\r\n\t;\r\n") {
        let keep = header.len() - "\r\n\t;\r\n".len();
        header.truncate(keep);
        header.push_str(";\r\n");
    }
    header
}

/// Signs messages with one key for one domain and selector. Build it with
/// [`DkimSigner::new`] (the defaults) or [`DkimSigner::builder`].
///
/// Signing takes `&self`, and the signer is `Send + Sync`: share one behind an `Arc`.
/// Its [`Debug`] output never shows the private key.
pub struct DkimSigner {
    inner: mail_auth::dkim::DkimSigner<DkimKey, mail_auth::dkim::Done>,
    algorithm: Algorithm,
    public_key: String,
    domain: String,
    selector: String,
    headers: Vec<String>,
    header_canonicalization: Canonicalization,
    body_canonicalization: Canonicalization,
    expiration: Option<Duration>,
}

impl DkimSigner {
    /// A signer with the defaults: the key from `private_key_pem` (see
    /// [`SigningKey::from_pem`]), [`DEFAULT_SIGNED_HEADERS`], `relaxed/relaxed`, no
    /// expiry.
    pub fn new(private_key_pem: &str, domain: &str, selector: &str) -> Result<DkimSigner, DkimError> {
        DkimSigner::builder(SigningKey::from_pem(private_key_pem)?, domain, selector).build()
    }

    /// A builder for a signer with `key`, signing domain `domain` (`d=`) and `selector`
    /// (`s=`); both are checked by [`DkimSignerBuilder::build`].
    pub fn builder(key: SigningKey, domain: &str, selector: &str) -> DkimSignerBuilder {
        DkimSignerBuilder {
            key,
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            headers: DEFAULT_SIGNED_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            header_canonicalization: Canonicalization::Relaxed,
            body_canonicalization: Canonicalization::Relaxed,
            expiration: None,
        }
    }

    /// Signs `message`, a complete RFC 5322 message (header fields, empty line, body),
    /// and returns it with a `DKIM-Signature:` header field prepended.
    ///
    /// Line endings are normalised as the client does on the wire (bare CR or LF become
    /// CRLF) and a final CRLF is added when missing; the result uses CRLF throughout and no
    /// line is longer than 998 octets. The signature covers the body and every field of
    /// the signed-header list present in the message (`t=` is the current time).
    ///
    /// # Errors
    /// [`DkimError::MissingFrom`] for a message without `From:`,
    /// [`DkimError::Message`] for a NUL octet or a line over 998 octets (such a message
    /// cannot be sent), [`DkimError::Signing`] if the cryptography library fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let message = normalize(message)?;
        if !has_field(&message, "From") {
            return Err(DkimError::MissingFrom);
        }
        let signature = self.inner.sign(&message).map_err(|e| DkimError::Signing(e.to_string()))?;
        let header = join_final_semicolon(signature.to_header());
        let mut out = Vec::with_capacity(header.len() + message.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&message);
        Ok(out)
    }

    /// Signs a composed [`Message`](crate::Message) and returns it signed, with the same
    /// envelope (Bcc recipients included), Message-ID and SMTPUTF8 need, ready for
    /// [`Client::send_message`](crate::Client::send_message) or an `Outgoing`.
    ///
    /// # Errors
    /// As [`sign`](Self::sign).
    #[cfg(feature = "mime")]
    pub fn sign_message(&self, message: &crate::Message) -> Result<crate::Message, DkimError> {
        let signed = self.sign(message.as_bytes())?;
        Ok(message.clone().with_signed_bytes(bytes::Bytes::from(signed)))
    }

    /// The signature algorithm, given by the key.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The signing domain (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector (`s=`).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The names of the header fields signed (`h=`), as configured.
    pub fn signed_headers(&self) -> &[String] {
        &self.headers
    }

    /// Where verifiers look the public key up: `<selector>._domainkey.<domain>`.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish at [`dns_name`](Self::dns_name):
    /// `v=DKIM1; k=rsa; p=<base64>` (or `k=ed25519`). DNS carries TXT data in strings of
    /// at most 255 octets; most DNS tools split a longer record (a 2048-bit RSA key's is
    /// about 410) by themselves, others want it quoted in pieces.
    pub fn dns_record(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm.key_type(), self.public_key)
    }
}

impl fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigner")
            .field("algorithm", &self.algorithm)
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("headers", &self.headers)
            .field("header_canonicalization", &self.header_canonicalization)
            .field("body_canonicalization", &self.body_canonicalization)
            .field("expiration", &self.expiration)
            .field("public_key", &self.public_key)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Builds a [`DkimSigner`]; from [`DkimSigner::builder`].
pub struct DkimSignerBuilder {
    key: SigningKey,
    domain: String,
    selector: String,
    headers: Vec<String>,
    header_canonicalization: Canonicalization,
    body_canonicalization: Canonicalization,
    expiration: Option<Duration>,
}

impl DkimSignerBuilder {
    /// The header fields to sign, replacing [`DEFAULT_SIGNED_HEADERS`]; must include
    /// `From`. Names match case-insensitively. Every occurrence present in the message is
    /// signed; a name listed once more than it occurs (or absent) is signed as empty, so
    /// adding such a field later breaks the signature.
    pub fn headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// The header canonicalisation (first half of `c=`); [`Canonicalization::Relaxed`]
    /// by default.
    pub fn header_canonicalization(mut self, c: Canonicalization) -> Self {
        self.header_canonicalization = c;
        self
    }

    /// The body canonicalisation (second half of `c=`); [`Canonicalization::Relaxed`]
    /// by default.
    pub fn body_canonicalization(mut self, c: Canonicalization) -> Self {
        self.body_canonicalization = c;
        self
    }

    /// Signatures expire `after` this long from signing (`x=` tag, whole seconds, rounded
    /// up). No expiry by default; `Duration::ZERO` also means none.
    pub fn expiration(mut self, after: Duration) -> Self {
        self.expiration = (!after.is_zero()).then_some(after);
        self
    }

    /// Checks the domain, selector and header list and builds the signer.
    ///
    /// # Errors
    /// [`DkimError::InvalidDomain`], [`DkimError::InvalidSelector`],
    /// [`DkimError::InvalidHeaderName`], [`DkimError::FromNotSigned`].
    pub fn build(self) -> Result<DkimSigner, DkimError> {
        if !is_dns_name(&self.domain) {
            return Err(DkimError::InvalidDomain(self.domain));
        }
        if !is_dns_name(&self.selector) {
            return Err(DkimError::InvalidSelector(self.selector));
        }
        if let Some(bad) = self.headers.iter().find(|h| !is_field_name(h)) {
            return Err(DkimError::InvalidHeaderName(bad.clone()));
        }
        if !self.headers.iter().any(|h| h.eq_ignore_ascii_case("from")) {
            return Err(DkimError::FromNotSigned);
        }
        let SigningKey { key, algorithm, public_key } = self.key;
        let mut inner = mail_auth::dkim::DkimSigner::from_key(key)
            .domain(self.domain.clone())
            .selector(self.selector.clone())
            .headers(self.headers.clone())
            .header_canonicalization(self.header_canonicalization.to_mail_auth())
            .body_canonicalization(self.body_canonicalization.to_mail_auth());
        if let Some(after) = self.expiration {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            inner = inner.expiration(secs);
        }
        Ok(DkimSigner {
            inner,
            algorithm,
            public_key: BASE64.encode(&public_key),
            domain: self.domain,
            selector: self.selector,
            headers: self.headers,
            header_canonicalization: self.header_canonicalization,
            body_canonicalization: self.body_canonicalization,
            expiration: self.expiration,
        })
    }
}

impl fmt::Debug for DkimSignerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSignerBuilder")
            .field("key", &self.key)
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("headers", &self.headers)
            .field("header_canonicalization", &self.header_canonicalization)
            .field("body_canonicalization", &self.body_canonicalization)
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The message as the client puts it on the wire (before dot-stuffing): checked against
/// RFC 5321 limits, bare CR and LF turned into CRLF, ending with CRLF.
fn normalize(message: &[u8]) -> Result<Cow<'_, [u8]>, DkimError> {
    let info = dot_stuff::analyze(message, LineEndings::Normalize)?;
    if !info.needs_normalization && info.ends_with_crlf {
        return Ok(Cow::Borrowed(message));
    }
    let mut out = Vec::with_capacity(info.normalized_len as usize + 2);
    let mut normalizer = Normalizer::default();
    normalizer.encode(message, &mut out);
    normalizer.finish(&mut out);
    if !info.ends_with_crlf {
        out.extend_from_slice(b"\r\n");
    }
    Ok(Cow::Owned(out))
}

/// Whether the header section of a CRLF message has a field called `name`.
fn has_field(message: &[u8], name: &str) -> bool {
    for line in message.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break; // end of the header section
        }
        if let Some(colon) = line.iter().position(|b| *b == b':')
            && let Some(field) = line.get(..colon)
            && field.trim_ascii_end().eq_ignore_ascii_case(name.as_bytes())
        {
            return true;
        }
    }
    false
}

/// RFC 5322 section 3.6.8: `field-name = 1*ftext`, printable ASCII except `:`.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HEADER_NAME
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// Dot-separated labels of ASCII letters, digits, hyphens (not at either end of a label)
/// and underscores, 1 to 63 octets each, at most 253 in all, no trailing dot.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests;
