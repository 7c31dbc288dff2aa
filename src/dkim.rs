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
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{self, PemObject as _};

use crate::proto::dot_stuff::{self, BodyError, LineEndings, Normalizer};

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

/// A DKIM private key, RSA (at least 2048 bits) or Ed25519. Its [`Debug`] output shows the
/// algorithm and the public key, never the private key.
pub struct SigningKey {
    key: DkimKey,
    algorithm: Algorithm,
    /// What the DNS record's `p=` carries: SubjectPublicKeyInfo DER for RSA, the raw 32
    /// octets for Ed25519 (RFC 8463 section 4.2).
    public_key: Vec<u8>,
}

impl SigningKey {
    /// Loads the first private key of a PEM document: PKCS #8 (`BEGIN PRIVATE KEY`, RSA
    /// or Ed25519, v1 or v2) or PKCS #1 (`BEGIN RSA PRIVATE KEY`). Other PEM sections (a
    /// certificate, say) are skipped.
    ///
    /// ```
    /// use smtpkit::dkim::{Algorithm, DkimError, SigningKey};
    /// let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap().serialize_pem();
    /// assert_eq!(SigningKey::from_pem(&pem).unwrap().algorithm(), Algorithm::Ed25519Sha256);
    /// assert!(matches!(SigningKey::from_pem("not a key"), Err(DkimError::Pem(_))));
    /// ```
    pub fn from_pem(pem: &str) -> Result<SigningKey, DkimError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            DkimError::Pem(match e {
                pem::Error::NoItemsFound => "no private key section found",
                _ => "malformed PEM",
            })
        })?;
        let rejected = |e: mail_auth::Error| DkimError::InvalidKey(e.to_string());
        match der {
            PrivateKeyDer::Pkcs1(_) => Self::rsa(RsaKey::<Sha256>::from_key_der(der).map_err(rejected)?),
            PrivateKeyDer::Pkcs8(ref pkcs8) => match pkcs8_algorithm(pkcs8.secret_pkcs8_der()) {
                Some(Algorithm::Ed25519Sha256) => {
                    let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                        .map_err(rejected)?;
                    let public_key = key.public_key();
                    Ok(SigningKey {
                        key: DkimKey::Ed25519(key),
                        algorithm: Algorithm::Ed25519Sha256,
                        public_key,
                    })
                }
                Some(Algorithm::RsaSha256) => {
                    Self::rsa(RsaKey::<Sha256>::from_key_der(der).map_err(rejected)?)
                }
                None => Err(DkimError::UnsupportedKey("PKCS #8 key of another algorithm")),
            },
            PrivateKeyDer::Sec1(_) => Err(DkimError::UnsupportedKey("EC (SEC1)")),
            _ => Err(DkimError::UnsupportedKey("unknown")),
        }
    }

    fn rsa(key: RsaKey<Sha256>) -> Result<SigningKey, DkimError> {
        let public_key = rsa_spki(&key.public_key());
        Ok(SigningKey { key: DkimKey::Rsa(key), algorithm: Algorithm::RsaSha256, public_key })
    }

    /// The signature algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key as the DNS record's `p=` tag carries it, base64: SubjectPublicKeyInfo
    /// for RSA, the raw 32-octet key for Ed25519 (RFC 8463).
    pub fn public_key_base64(&self) -> String {
        BASE64.encode(&self.public_key)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("public_key", &self.public_key_base64())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The algorithm of a PKCS #8 `PrivateKeyInfo`, from the OID of its
/// `privateKeyAlgorithm`, which comes right after the version, in the first octets.
fn pkcs8_algorithm(der: &[u8]) -> Option<Algorithm> {
    // 1.3.101.112 and 1.2.840.113549.1.1.1, DER-encoded with their tag and length.
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let head = der.get(..der.len().min(32)).unwrap_or_default();
    let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
    if has(ED25519) {
        Some(Algorithm::Ed25519Sha256)
    } else if has(RSA) {
        Some(Algorithm::RsaSha256)
    } else {
        None
    }
}

/// Wraps a PKCS #1 `RSAPublicKey` in a SubjectPublicKeyInfo, the form DKIM records
/// publish (what `openssl rsa -pubout` prints).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    fn der(tag: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            let significant = bytes.get(skip..).unwrap_or_default();
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
        out.extend_from_slice(content);
    }
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut bits = Vec::with_capacity(pkcs1.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut content = ALGORITHM.to_vec();
    der(0x03, &bits, &mut content);
    let mut out = Vec::with_capacity(content.len() + 4);
    der(0x30, &content, &mut out);
    out
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
mod tests {
    use super::*;

    #[test]
    fn final_semicolon_is_joined() {
        let folded = "DKIM-Signature: v=1;\r\n\tb=abc==\r\n\t;\r\n".to_owned();
        assert_eq!(join_final_semicolon(folded), "DKIM-Signature: v=1;\r\n\tb=abc==;\r\n");
        let plain = "DKIM-Signature: v=1; b=abc==;\r\n".to_owned();
        assert_eq!(join_final_semicolon(plain.clone()), plain);
    }

    fn ed25519_pem() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key").serialize_pem()
    }

    fn signer() -> DkimSigner {
        DkimSigner::new(&ed25519_pem(), "example.com", "sel").expect("signer")
    }

    /// The unfolded value of the first DKIM-Signature field, and its tags.
    fn signature_tags(signed: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(signed).expect("utf-8");
        let mut value = String::new();
        for (i, line) in text.split("\r\n").enumerate() {
            if i == 0 {
                value.push_str(line.strip_prefix("DKIM-Signature:").expect("signature first"));
            } else if line.starts_with([' ', '\t']) {
                value.push_str(line);
            } else {
                break;
            }
        }
        value
            .split(';')
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                let (k, v) = t.split_once('=').expect("tag=value");
                (k.trim().to_owned(), v.chars().filter(|c| !c.is_whitespace()).collect())
            })
            .collect()
    }

    fn tag<'a>(tags: &'a [(String, String)], name: &str) -> &'a str {
        &tags.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name}= tag")).1
    }

    #[test]
    fn signature_header_has_the_configured_tags() {
        let signer = signer();
        let msg = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n";
        let signed = signer.sign(msg).unwrap();
        assert!(signed.ends_with(msg), "the message follows the signature unchanged");
        let tags = signature_tags(&signed);
        assert_eq!(tag(&tags, "v"), "1");
        assert_eq!(tag(&tags, "a"), "ed25519-sha256");
        assert_eq!(tag(&tags, "d"), "example.com");
        assert_eq!(tag(&tags, "s"), "sel");
        assert_eq!(tag(&tags, "c"), "relaxed/relaxed");
        let h: Vec<String> = tag(&tags, "h").split(':').map(str::to_ascii_lowercase).collect();
        for name in DEFAULT_SIGNED_HEADERS {
            assert!(h.contains(&name.to_ascii_lowercase()), "{name} in h={h:?}");
        }
        assert!(tag(&tags, "t").parse::<u64>().is_ok());
        assert!(!tags.iter().any(|(k, _)| k == "x" || k == "l"), "no expiry nor body length by default");
        // SHA-256 of the body, and a 64-octet Ed25519 signature.
        assert_eq!(BASE64.decode(tag(&tags, "bh")).unwrap().len(), 32);
        assert_eq!(BASE64.decode(tag(&tags, "b")).unwrap().len(), 64);
    }

    #[test]
    fn builder_options_reach_the_header() {
        let key = SigningKey::from_pem(&ed25519_pem()).unwrap();
        let signer = DkimSigner::builder(key, "mail.example.com", "s1.2026")
            .headers(["from", "Subject"])
            .header_canonicalization(Canonicalization::Simple)
            .body_canonicalization(Canonicalization::Simple)
            .expiration(Duration::from_millis(3_600_500))
            .build()
            .unwrap();
        let tags = signature_tags(&signer.sign(b"From: a@example.com\r\n\r\n").unwrap());
        assert_eq!(tag(&tags, "c"), "simple/simple");
        assert_eq!(tag(&tags, "d"), "mail.example.com");
        assert_eq!(tag(&tags, "s"), "s1.2026");
        assert_eq!(tag(&tags, "h").to_ascii_lowercase(), "from:subject");
        let t: u64 = tag(&tags, "t").parse().unwrap();
        let x: u64 = tag(&tags, "x").parse().unwrap();
        assert_eq!(x - t, 3601, "expiry rounded up to whole seconds");
    }

    #[test]
    fn output_is_crlf_with_short_lines_and_bare_newlines_are_normalised() {
        // Many long header names make h= wrap; bare LF and a missing final newline.
        let names: Vec<String> =
            (0..40).map(|i| format!("X-Long-Header-Name-Number-{i:02}-{}", "x".repeat(60))).collect();
        let key = SigningKey::from_pem(&ed25519_pem()).unwrap();
        let signer = DkimSigner::builder(key, "example.com", "sel")
            .headers(std::iter::once("From".to_owned()).chain(names))
            .build()
            .unwrap();
        let signed = signer.sign(b"From: a@example.com\nSubject: x\n\nline one\nline two").unwrap();
        assert!(signed.ends_with(b"From: a@example.com\r\nSubject: x\r\n\r\nline one\r\nline two\r\n"));
        let mut lines = 0;
        for (i, b) in signed.iter().enumerate() {
            if *b == b'\n' {
                assert_eq!(signed.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF at {i}");
                lines += 1;
            }
            if *b == b'\r' {
                assert_eq!(signed.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
        }
        assert!(lines > 40, "the signature header was folded");
        for line in signed.split(|b| *b == b'\n') {
            assert!(line.len() <= 999, "line of {} octets", line.len());
        }
    }

    #[test]
    fn message_errors_are_typed() {
        let s = signer();
        assert_eq!(s.sign(b"To: b@example.org\r\n\r\nbody\r\n"), Err(DkimError::MissingFrom));
        // From in the body does not count.
        assert_eq!(s.sign(b"To: b@example.org\r\n\r\nFrom: x\r\n"), Err(DkimError::MissingFrom));
        assert_eq!(s.sign(b""), Err(DkimError::MissingFrom));
        let long = format!("From: a@example.com\r\n\r\n{}\r\n", "y".repeat(999));
        assert!(matches!(
            s.sign(long.as_bytes()),
            Err(DkimError::Message(BodyError::LineTooLong { line: 3, .. }))
        ));
        assert!(matches!(s.sign(b"From: a\r\n\r\n\0"), Err(DkimError::Message(BodyError::Nul { .. }))));
        // Folded and oddly cased From is found.
        assert!(s.sign(b"fROM :\r\n a@example.com\r\n\r\n").is_ok());
    }

    #[test]
    fn builder_validates_domain_selector_and_headers() {
        let build = |domain: &str, selector: &str, headers: &[&str]| {
            let key = SigningKey::from_pem(&ed25519_pem()).unwrap();
            DkimSigner::builder(key, domain, selector).headers(headers.iter().copied()).build().map(|_| ())
        };
        assert_eq!(build("example.com", "sel", &["From"]), Ok(()));
        assert_eq!(build("ex_ample.co.uk", "s-1._x", &["FROM", "X-Custom"]), Ok(()));
        for bad in ["", "example..com", "-example.com", "example.com.", "exa mple.com", "bücher.de", "a;b"] {
            assert_eq!(build(bad, "sel", &["From"]), Err(DkimError::InvalidDomain(bad.into())), "{bad:?}");
        }
        assert_eq!(build(&"a".repeat(64), "sel", &["From"]), Err(DkimError::InvalidDomain("a".repeat(64))));
        assert_eq!(build("example.com", "s;l", &["From"]), Err(DkimError::InvalidSelector("s;l".into())));
        assert_eq!(build("example.com", "sel", &["Subject"]), Err(DkimError::FromNotSigned));
        assert_eq!(build("example.com", "sel", &[]), Err(DkimError::FromNotSigned));
        for bad in ["", "Sub ject", "Subject:", "Sübject"] {
            assert_eq!(
                build("example.com", "sel", &["From", bad]),
                Err(DkimError::InvalidHeaderName(bad.into()))
            );
        }
    }

    #[test]
    fn key_loading_errors_are_typed() {
        assert_eq!(SigningKey::from_pem("").unwrap_err(), DkimError::Pem("no private key section found"));
        assert_eq!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n")
                .unwrap_err(),
            DkimError::Pem("malformed PEM")
        );
        // A P-256 key: PKCS #8 of an algorithm DKIM does not use.
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem();
        assert!(matches!(SigningKey::from_pem(&p256), Err(DkimError::UnsupportedKey(_))));
        // Valid base64 PKCS #8 framing around garbage claiming to be RSA.
        let mut der = vec![0x30, 0x1a, 0x02, 0x01, 0x00, 0x30, 0x0d];
        der.extend_from_slice(&[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ]);
        der.extend_from_slice(&[0x04, 0x04, 1, 2, 3, 4]);
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", BASE64.encode(&der));
        assert!(matches!(SigningKey::from_pem(&pem), Err(DkimError::InvalidKey(_))));
        // A certificate before the key is skipped.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["example.com".into()]).unwrap().self_signed(&key).unwrap();
        let both = format!("{}{}", cert.pem(), key.serialize_pem());
        assert_eq!(SigningKey::from_pem(&both).unwrap().algorithm(), Algorithm::Ed25519Sha256);
    }

    #[test]
    fn ed25519_public_key_is_the_raw_key() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let key = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
        assert_eq!(key.public_key_base64(), BASE64.encode(pair.public_key_raw()));
        let signer = DkimSigner::builder(key, "example.com", "sel").build().unwrap();
        assert_eq!(signer.dns_name(), "sel._domainkey.example.com");
        assert_eq!(
            signer.dns_record(),
            format!("v=DKIM1; k=ed25519; p={}", BASE64.encode(pair.public_key_raw()))
        );
    }

    #[test]
    fn spki_wrapping_encodes_lengths() {
        // Short form, and the two-octet long form a 2048-bit key needs.
        let short = rsa_spki(&[0x30, 0x00]);
        assert_eq!(short.first().copied(), Some(0x30));
        assert_eq!(short.get(1).copied(), Some((short.len() - 2) as u8));
        let long = rsa_spki(&vec![0xaa; 270]);
        assert_eq!(long.get(..4), Some(&[0x30, 0x82, 0x01, 0x22][..]), "SEQUENCE of 290 octets");
        assert_eq!(long.get(19..24), Some(&[0x03, 0x82, 0x01, 0x0f, 0x00][..]), "BIT STRING of 271 octets");
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let pem = ed25519_pem();
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().concat();
        let der = BASE64.decode(&der_b64).unwrap();
        // The 32-octet seed follows a 16-octet prefix in PKCS #8 v1 and v2 alike.
        assert_eq!(der.get(12..16), Some(&[0x04, 0x22, 0x04, 0x20][..]), "OCTET STRING(OCTET STRING(32))");
        let seed = der.get(16..48).unwrap();
        let key = SigningKey::from_pem(&pem).unwrap();
        let builder = DkimSigner::builder(SigningKey::from_pem(&pem).unwrap(), "example.com", "sel");
        let signer = DkimSigner::new(&pem, "example.com", "sel").unwrap();
        for debug in
            [format!("{key:?}"), format!("{builder:?}"), format!("{signer:?}"), format!("{signer:#?}")]
        {
            assert!(debug.contains("<redacted>"), "{debug}");
            assert!(!debug.contains(&der_b64), "{debug}");
            for encoded in [BASE64.encode(seed), seed.iter().map(|b| format!("{b:02x}")).collect::<String>()]
            {
                assert!(!debug.contains(&encoded), "{debug}");
            }
            assert!(!debug.contains(&format!("{seed:?}")), "{debug}");
        }
    }

    #[test]
    fn signer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DkimSigner>();
        assert_send_sync::<SigningKey>();
    }

    #[test]
    fn dns_name_and_field_checks() {
        assert!(has_field(b"Subject: a\r\nFrom: b\r\n\r\n", "from"));
        assert!(!has_field(b"Subject: a\r\n From: folded continuation\r\n\r\n", "from"));
        assert!(!has_field(b"Subject: a\r\n\r\nFrom: body\r\n", "from"));
        assert!(!has_field(b"From-Address: a\r\n\r\n", "from"));
        assert!(is_dns_name(&["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".")));
        assert!(!is_dns_name(&["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".")));
    }
}
