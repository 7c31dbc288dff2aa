//! Unit tests of the parent module.

use super::key::rsa_spki;
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
        SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n").unwrap_err(),
        DkimError::Pem("malformed PEM")
    );
    // A P-256 key: PKCS #8 of an algorithm DKIM does not use.
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem();
    assert!(matches!(SigningKey::from_pem(&p256), Err(DkimError::UnsupportedKey(_))));
    // Valid base64 PKCS #8 framing around garbage claiming to be RSA.
    let mut der = vec![0x30, 0x1a, 0x02, 0x01, 0x00, 0x30, 0x0d];
    der.extend_from_slice(&[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);
    der.extend_from_slice(&[0x04, 0x04, 1, 2, 3, 4]);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", BASE64.encode(&der));
    assert!(matches!(SigningKey::from_pem(&pem), Err(DkimError::InvalidKey(_))));
    // A certificate before the key is skipped.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["example.com".into()]).unwrap().self_signed(&key).unwrap();
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
    for debug in [format!("{key:?}"), format!("{builder:?}"), format!("{signer:?}"), format!("{signer:#?}")] {
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains(&der_b64), "{debug}");
        for encoded in [BASE64.encode(seed), seed.iter().map(|b| format!("{b:02x}")).collect::<String>()] {
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
