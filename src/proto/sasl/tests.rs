//! Unit tests of the parent module.

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
    SaslContext { host: "server.example.com".into(), port: 143, nonce: Some("rOprNGfwEbeRWgbNEkqO".into()) }
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
    let mut c = SaslClient::new(Mechanism::ScramSha256, Credentials::new("user", "pencil"), ctx()).unwrap();
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
    let mut c2 = SaslClient::new(Mechanism::ScramSha256, Credentials::new("user", "pencil"), ctx()).unwrap();
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
    let mut c = SaslClient::new(Mechanism::XOAuth2, Credentials::oauth("someuser@example.com", token), ctx())
        .unwrap();
    assert_eq!(
        c.initial_response().unwrap(),
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    );
    // An error challenge gets an empty response.
    assert_eq!(c.respond(B64.encode("{\"status\":\"401\"}").as_bytes()).unwrap(), b"");
    let token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
    let mut c = SaslClient::new(Mechanism::OAuthBearer, Credentials::oauth("user@example.com", token), ctx())
        .unwrap();
    let ir = B64.decode(c.initial_response().unwrap()).unwrap();
    assert_eq!(
        ir,
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    );
    assert_eq!(c.respond(B64.encode("{}").as_bytes()).unwrap(), b"AQ==");
}

#[test]
fn only_504_534_538_refuse_the_mechanism() {
    for code in [504, 534, 538] {
        assert!(refuses_mechanism(&Reply::single(code, "no")), "{code}");
    }
    for code in [235, 334, 421, 432, 454, 500, 501, 502, 503, 530, 535, 550, 554] {
        assert!(!refuses_mechanism(&Reply::single(code, "no")), "{code}");
    }
    let r = MechanismRefusal { mechanism: Mechanism::CramMd5, reply: Reply::single(504, "5.5.4 no") };
    assert_eq!(r.to_string(), format!("CRAM-MD5: {}", Reply::single(504, "5.5.4 no")));
}

#[test]
fn secrets_do_not_print() {
    let c = Credentials::new("user", "pass");
    assert!(!format!("{c:?}").contains("pass\""));
    assert!(format!("{c:?}").contains("[redacted]"));
}
