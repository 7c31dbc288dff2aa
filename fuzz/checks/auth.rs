//! AUTH strings: credentials, mechanism, SCRAM nonce and server challenges chosen by the
//! fuzzer, through `Credentials::validate` and the SASL client. Invariants:
//!
//! - never a panic;
//! - `SaslClient::new` succeeds exactly when the credentials validate (no NUL, no other
//!   control byte) and, for SCRAM, the nonce is printable ASCII without `,`;
//! - every line the client would send (initial response and each answer) is base64 and
//!   nothing else, so no CR, LF or control byte can reach the wire, and the initial
//!   response fits the 512-octet AUTH line;
//! - PLAIN's initial response decodes to exactly `NUL user NUL password`;
//! - more than `MAX_CHALLENGES` challenges is an error;
//! - `Debug` of the credentials and of the client does not depend on the password.
//!
//! Input: mechanism byte, user, password and nonce (each a length byte and its bytes),
//! then challenges (a length byte and its bytes, base64-encoded by the check when the
//! mechanism byte's high bit is set).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use smtpkit::Credentials;
use smtpkit::proto::sasl::{MAX_CHALLENGES, Mechanism, SaslClient, SaslContext};

use super::input::Input;

const MECHANISMS: [Mechanism; 6] = [
    Mechanism::Plain,
    Mechanism::Login,
    Mechanism::CramMd5,
    Mechanism::XOAuth2,
    Mechanism::OAuthBearer,
    Mechanism::ScramSha256,
];

fn text(input: &mut Input<'_>) -> String {
    let n = usize::from(input.byte() % 64);
    String::from_utf8_lossy(input.take(n)).into_owned()
}

fn assert_base64_line(line: &[u8], what: &str) {
    assert!(
        line.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')),
        "{what} is not plain base64: {:?}",
        String::from_utf8_lossy(line)
    );
    assert!(B64.decode(line).is_ok(), "{what} does not decode");
}

/// A SCRAM server-first message asking for a costly iteration count: skipped, so the
/// fuzzer spends its time on parsing, not on PBKDF2.
fn costly(challenge: &[u8]) -> bool {
    let decoded = B64.decode(challenge.trim_ascii()).unwrap_or_default();
    let text = String::from_utf8_lossy(&decoded);
    text.split(',')
        .any(|a| a.strip_prefix("i=").and_then(|v| v.parse::<u64>().ok()).is_some_and(|i| i > 5000))
}

/// The fuzz target and corpus replay entry point.
pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let m = input.byte();
    let mechanism = MECHANISMS[usize::from(m & 0x7f) % MECHANISMS.len()];
    let user = text(&mut input);
    let password = text(&mut input);
    let nonce = text(&mut input);
    let creds = if mechanism.secret_kind() == Credentials::oauth("u", "t").kind() {
        Credentials::oauth(user.clone(), password.clone())
    } else {
        Credentials::new(user.clone(), password.clone())
    };
    // Debug never depends on the secret.
    let other = "x".repeat(password.len());
    let twin = if creds.kind() == Credentials::oauth("u", "t").kind() {
        Credentials::oauth(user.clone(), other)
    } else {
        Credentials::new(user.clone(), other)
    };
    assert_eq!(format!("{creds:?}"), format!("{twin:?}"), "Debug shows the password");

    let valid = creds.validate().is_ok();
    assert_eq!(valid, !format!("{user}{password}").bytes().any(|b| b.is_ascii_control()));
    let nonce_ok = !nonce.is_empty() && nonce.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b',');
    let context = SaslContext { host: "mx.fuzz.example".into(), port: 587, nonce: Some(nonce) };
    let client = SaslClient::new(mechanism, creds, context.clone());
    let expect_ok = valid && (mechanism != Mechanism::ScramSha256 || nonce_ok);
    assert_eq!(client.is_ok(), expect_ok, "{mechanism:?}: {:?}", client.as_ref().err());
    let Ok(mut client) = client else { return };
    let Ok(mut twin) = SaslClient::new(mechanism, twin, context) else { panic!("twin refused") };
    assert_eq!(format!("{client:?}"), format!("{twin:?}"), "Debug shows the password");

    if let Some(ir) = client.initial_response() {
        assert_base64_line(&ir, "initial response");
        assert!(ir.len() + mechanism.name().len() + 8 <= 512, "AUTH line over 512 octets");
        if mechanism == Mechanism::Plain {
            let decoded = B64.decode(&ir).expect("base64");
            assert_eq!(decoded, format!("\0{user}\0{password}").into_bytes());
        }
    }
    let _ = twin.initial_response();
    for step in 1..=MAX_CHALLENGES + 2 {
        if input.0.is_empty() {
            break;
        }
        let n = usize::from(input.byte());
        let raw = input.take(n);
        let challenge = if m & 0x80 != 0 { B64.encode(raw).into_bytes() } else { raw.to_vec() };
        if mechanism == Mechanism::ScramSha256 && costly(&challenge) {
            break;
        }
        match client.respond(&challenge) {
            Ok(line) => {
                assert!(step <= MAX_CHALLENGES, "challenge {step} answered");
                assert_base64_line(&line, "response");
            }
            Err(_) => break,
        }
    }
    let _ = client.finish();
}
