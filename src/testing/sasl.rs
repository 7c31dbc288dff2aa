//! The server side of SASL: decoding and checking the client's part of PLAIN (RFC 4616),
//! LOGIN, CRAM-MD5 (RFC 2195), SCRAM-SHA-256 (RFC 5802, RFC 7677), OAUTHBEARER (RFC 7628)
//! and XOAUTH2 exchanges.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Decode a base64 SASL response.
///
/// RFC 4954 4: "If the client is transmitting an initial response of zero length, it MUST
/// instead transmit the response as a single equals sign".
pub(crate) fn decode_response(text: &str) -> Option<Vec<u8>> {
    if text == "=" {
        return Some(Vec::new());
    }
    BASE64.decode(text.trim()).ok()
}

/// The three fields of a PLAIN message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plain {
    pub authzid: Vec<u8>,
    pub authcid: Vec<u8>,
    pub password: Vec<u8>,
}

/// RFC 4616 2: `message = [authzid] UTF8NUL authcid UTF8NUL passwd`; `None` if malformed.
pub(crate) fn parse_plain(decoded: &[u8]) -> Option<Plain> {
    let mut parts = decoded.split(|&b| b == 0);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(authzid), Some(authcid), Some(password), None) if !authcid.is_empty() => {
            Some(Plain { authzid: authzid.to_vec(), authcid: authcid.to_vec(), password: password.to_vec() })
        }
        _ => None,
    }
}

/// Base64 of a LOGIN prompt (`Username:`, `Password:`), as sent after `334 `.
pub(crate) fn prompt(text: &str) -> String {
    BASE64.encode(text)
}

/// Base64 of a challenge, as sent after `334 `.
pub(crate) fn encode(challenge: impl AsRef<[u8]>) -> String {
    BASE64.encode(challenge)
}

/// Lowercase hex of HMAC-MD5(`key`, `data`): the digest of a CRAM-MD5 response (RFC 2195).
pub(crate) fn hmac_md5_hex(key: &[u8], data: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(key).unwrap_or_else(|_| any_key_length());
    mac.update(data);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn any_key_length() -> ! {
    unreachable!("HMAC takes keys of any length")
}

/// RFC 2195 2: the response is "the user name, a space, and the digest", the digest as 32
/// lowercase hex digits.
pub(crate) fn parse_cram_md5(decoded: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(decoded).ok()?;
    let (user, digest) = text.rsplit_once(' ')?;
    let hex = digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (!user.is_empty() && hex).then(|| (user.to_owned(), digest.to_owned()))
}

/// `len` random bytes, for nonces, challenges and salts.
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut raw = vec![0u8; len];
    // Without an OS random source the test server still works, with predictable values.
    let _ = getrandom::fill(&mut raw);
    raw
}

/// Random bytes as base64 (never a `,`).
pub(crate) fn random_b64(len: usize) -> String {
    BASE64.encode(random_bytes(len))
}

/// RFC 5802 5.1 saslname: `=2C` and `=3D` stand for `,` and `=`; any other `=` is invalid.
fn unescape_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// A parsed SCRAM client-first-message (RFC 5802 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScramClientFirst {
    /// `gs2-header`: channel-binding flag and authzid, with both commas.
    pub gs2_header: String,
    /// The user name, unescaped.
    pub user: String,
    /// `client-first-message-bare`.
    pub bare: String,
    /// The client's nonce.
    pub nonce: String,
}

/// Parse `gs2-header client-first-message-bare`. Channel binding (`p=`) is refused: this
/// server advertises no `-PLUS` mechanism. An authzid other than the user is refused.
pub(crate) fn parse_scram_client_first(msg: &[u8]) -> Result<ScramClientFirst, &'static str> {
    let msg = std::str::from_utf8(msg).map_err(|_| "client-first-message is not UTF-8")?;
    let mut parts = msg.splitn(3, ',');
    let (Some(cbind), Some(raw_authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("malformed gs2-header");
    };
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err("channel binding is not supported"),
        _ => return Err("malformed gs2-cbind-flag"),
    }
    let authzid = match raw_authzid {
        "" => None,
        a => Some(a.strip_prefix("a=").and_then(unescape_saslname).ok_or("malformed authzid")?),
    };
    let mut attrs = bare.split(',');
    if bare.starts_with("m=") {
        return Err("unsupported mandatory extension");
    }
    let user = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .and_then(unescape_saslname)
        .ok_or("missing or malformed user name")?;
    let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or("missing nonce")?;
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b',') {
        return Err("malformed nonce");
    }
    if authzid.is_some_and(|a| a != user) {
        return Err("authorization identity differs from the user");
    }
    Ok(ScramClientFirst {
        gs2_header: format!("{cbind},{raw_authzid},"),
        user,
        bare: bare.to_owned(),
        nonce: nonce.to_owned(),
    })
}

/// The server side of one SCRAM-SHA-256 exchange after the server-first-message.
#[derive(Clone)]
pub(crate) struct ScramServer {
    pub user: String,
    gs2_header: String,
    nonce: String,
    /// `client-first-message-bare "," server-first-message`.
    auth_prefix: String,
    /// SaltedPassword, or `None` for an unknown user (every proof then fails).
    salted: Option<[u8; 32]>,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer").field("user", &self.user).finish_non_exhaustive()
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| any_key_length());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ScramServer {
    /// Start the exchange: returns the state and the server-first-message
    /// (`r=client-nonce server-nonce,s=salt,i=iterations`). The password is SASLprepped as
    /// RFC 5802 2.2 asks; `None` (unknown user, or a password SASLprep refuses) makes every
    /// proof fail.
    pub(crate) fn start(
        first: ScramClientFirst,
        password: Option<&str>,
        nonce_suffix: &str,
        salt: &[u8],
        iterations: u32,
    ) -> (ScramServer, String) {
        let nonce = format!("{}{nonce_suffix}", first.nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
        let salted = password.and_then(|p| stringprep::saslprep(p).ok()).map(|p| {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(p.as_bytes(), salt, iterations, &mut out);
            out
        });
        let state = ScramServer {
            user: first.user,
            gs2_header: first.gs2_header,
            nonce,
            auth_prefix: format!("{},{server_first}", first.bare),
            salted,
        };
        (state, server_first)
    }

    /// Check the client-final-message (`c=...,r=...,p=proof`, RFC 5802 7): the channel
    /// binding repeats the gs2-header, the nonce is the combined one and the proof verifies
    /// (`H(ClientProof XOR ClientSignature) == StoredKey`). Returns the server-final-message
    /// `v=ServerSignature`.
    pub(crate) fn finish(&self, msg: &[u8]) -> Result<String, &'static str> {
        use sha2::Digest;
        let msg = std::str::from_utf8(msg).map_err(|_| "client-final-message is not UTF-8")?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or("missing proof")?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or("missing channel binding")?;
        if BASE64.decode(cbind).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err("channel binding does not match the gs2-header");
        }
        if attrs.next().and_then(|a| a.strip_prefix("r=")) != Some(self.nonce.as_str()) {
            return Err("nonce does not match");
        }
        let proof = BASE64.decode(proof).map_err(|_| "proof is not base64")?;
        let salted = self.salted.ok_or("unknown user")?;
        let auth_message = format!("{},{without_proof}", self.auth_prefix);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key: [u8; 32] = sha2::Sha256::digest(client_key).into();
        let client_signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        if proof.len() != 32 {
            return Err("proof has the wrong length");
        }
        let recovered: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
        if sha2::Sha256::digest(&recovered).as_slice() != stored_key {
            return Err("proof does not verify");
        }
        let server_key = hmac_sha256(&salted, b"Server Key");
        Ok(format!("v={}", BASE64.encode(hmac_sha256(&server_key, auth_message.as_bytes()))))
    }
}

/// What an OAuth client response (XOAUTH2 or OAUTHBEARER) carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OAuthResponse {
    /// `user=` (XOAUTH2) or the gs2 authzid `a=` (OAUTHBEARER, optional there).
    pub user: Option<String>,
    /// The bearer token.
    pub token: String,
}

/// RFC 7628 3.1: `gs2-header %x01 *(key "=" value %x01) %x01` with `auth=Bearer token`.
pub(crate) fn parse_oauthbearer(decoded: &[u8]) -> Option<OAuthResponse> {
    let text = std::str::from_utf8(decoded).ok()?;
    let body = text.strip_suffix("\x01\x01")?;
    let (gs2, kvpairs) = body.split_once('\x01')?;
    let mut gs2_parts = gs2.split(',');
    let (Some("n" | "y"), Some(authzid), Some(""), None) =
        (gs2_parts.next(), gs2_parts.next(), gs2_parts.next(), gs2_parts.next())
    else {
        return None;
    };
    let user = match authzid {
        "" => None,
        a => Some(a.strip_prefix("a=").and_then(unescape_saslname)?),
    };
    Some(OAuthResponse { user, token: bearer(kvpairs.split('\x01'))? })
}

/// Google's XOAUTH2: `user=U %x01 auth=Bearer T %x01 %x01`.
pub(crate) fn parse_xoauth2(decoded: &[u8]) -> Option<OAuthResponse> {
    let text = std::str::from_utf8(decoded).ok()?;
    let body = text.strip_suffix("\x01\x01")?;
    let user = body.split('\x01').find_map(|kv| kv.strip_prefix("user="))?.to_owned();
    Some(OAuthResponse { user: Some(user), token: bearer(body.split('\x01'))? })
}

/// The token of the `auth=Bearer <token>` pair (scheme case-insensitive, RFC 6750 2.1).
fn bearer<'a>(mut pairs: impl Iterator<Item = &'a str>) -> Option<String> {
    let value = pairs.find_map(|kv| kv.strip_prefix("auth="))?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        assert_eq!(decode_response("="), Some(Vec::new()));
        assert_eq!(decode_response("YWxpY2U="), Some(b"alice".to_vec()));
        assert_eq!(decode_response("not base64!"), None);
        assert_eq!(prompt("Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn plain_messages() {
        assert_eq!(
            parse_plain(b"\0alice\0s3cret"),
            Some(Plain { authzid: Vec::new(), authcid: b"alice".to_vec(), password: b"s3cret".to_vec() })
        );
        assert_eq!(parse_plain(b"admin\0alice\0pw").map(|p| p.authzid), Some(b"admin".to_vec()));
        assert_eq!(parse_plain(b"\0\0pw"), None);
        assert_eq!(parse_plain(b"alice\0pw"), None);
        assert_eq!(parse_plain(b"a\0b\0c\0d"), None);
        assert_eq!(parse_plain(b""), None);
    }

    #[test]
    fn cram_md5_rfc2195_vector() {
        let challenge = "<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            hmac_md5_hex(b"tanstaaftanstaaf", challenge.as_bytes()),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        assert_eq!(
            parse_cram_md5(b"tim b913a602c7eda7a495b4e6e7334d3890"),
            Some(("tim".into(), "b913a602c7eda7a495b4e6e7334d3890".into()))
        );
        assert_eq!(parse_cram_md5(b"tim B913A602C7EDA7A495B4E6E7334D3890"), None);
        assert_eq!(parse_cram_md5(b"timb913a602c7eda7a495b4e6e7334d3890"), None);
        assert_eq!(parse_cram_md5(b" b913a602c7eda7a495b4e6e7334d3890"), None);
    }

    /// RFC 7677 3, from the server's side: the same salt, iterations and server nonce give
    /// the RFC's server-first-message, accept the RFC's proof and produce its signature.
    #[test]
    fn scram_sha256_rfc7677_vector() {
        let first = parse_scram_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let (server, server_first) =
            ScramServer::start(first.clone(), Some("pencil"), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &salt, 4096);
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            server.finish(client_final.as_bytes()).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let tampered = client_final.replace("p=dH", "p=dX");
        assert_eq!(server.finish(tampered.as_bytes()), Err("proof does not verify"));
        assert_eq!(
            server.finish(client_final.replace("c=biws", "c=eSws").as_bytes()).map(|_| ()),
            Err("channel binding does not match the gs2-header")
        );
        assert!(server.finish(client_final.replace("hNlF$k0", "hNlF$k1").as_bytes()).is_err());
        let (wrong, _) =
            ScramServer::start(first.clone(), Some("pencil2"), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &salt, 4096);
        assert!(wrong.finish(client_final.as_bytes()).is_err());
        let (unknown, _) = ScramServer::start(first, None, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &salt, 4096);
        assert_eq!(unknown.finish(client_final.as_bytes()), Err("unknown user"));
    }

    #[test]
    fn scram_client_first_forms() {
        let f = parse_scram_client_first(b"y,a=us=2Cer,n=us=2Cer,r=abc,ext=1").unwrap();
        assert_eq!(
            (f.user.as_str(), f.gs2_header.as_str(), f.nonce.as_str()),
            ("us,er", "y,a=us=2Cer,", "abc")
        );
        assert_eq!(f.bare, "n=us=2Cer,r=abc,ext=1");
        for bad in [
            &b"p=tls-unique,,n=user,r=abc"[..],
            b"n,a=admin,n=user,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,m=x,n=user,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"x,,n=user,r=abc",
            b"n,,",
        ] {
            assert!(parse_scram_client_first(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn oauth_responses() {
        // RFC 7628 4.1, without host and port.
        let bearer = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        assert_eq!(
            parse_oauthbearer(bearer),
            Some(OAuthResponse {
                user: Some("user@example.com".into()),
                token: "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into()
            })
        );
        assert_eq!(parse_oauthbearer(b"n,,\x01auth=bearer t\x01\x01").map(|r| r.user), Some(None));
        assert_eq!(parse_oauthbearer(b"n,,\x01auth=Basic t\x01\x01"), None);
        assert_eq!(parse_oauthbearer(b"n,,\x01auth=Bearer t\x01"), None);
        assert_eq!(parse_oauthbearer(b"\x01"), None);
        let x =
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01";
        assert_eq!(
            parse_xoauth2(x),
            Some(OAuthResponse {
                user: Some("someuser@example.com".into()),
                token: "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg".into()
            })
        );
        assert_eq!(parse_xoauth2(b"auth=Bearer t\x01\x01"), None);
    }
}
