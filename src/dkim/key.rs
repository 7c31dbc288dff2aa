//! [`SigningKey`]: a DKIM private key from PEM, its algorithm and the public key that its
//! DNS record publishes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{self, PemObject as _};

use super::{Algorithm, DkimError};

/// A DKIM private key, RSA (at least 2048 bits) or Ed25519. Its [`Debug`] output shows the
/// algorithm and the public key, never the private key.
pub struct SigningKey {
    pub(super) key: DkimKey,
    pub(super) algorithm: Algorithm,
    /// What the DNS record's `p=` carries: SubjectPublicKeyInfo DER for RSA, the raw 32
    /// octets for Ed25519 (RFC 8463 section 4.2).
    pub(super) public_key: Vec<u8>,
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
pub(super) fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
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
