//! DKIM signatures made by `smtpkit::dkim` (mail-auth) checked by an independent
//! verifier: dkimpy, a separate Python implementation, fed the public key by a DNS-free
//! lookup. Keys are made at test time by the `openssl` CLI, and the TXT records come from
//! openssl's public key output, not from the code under test.
//!
//! The verifier is `$SMTPKIT_PYTHON` (exported by `scripts/test.sh`; then it must work),
//! else `.interop/venv/bin/python` when it has dkimpy; without one the tests print a
//! SKIPPED notice and return.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtpkit::dkim::{Algorithm, Canonicalization, DkimSigner, SigningKey};
use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope, TlsPolicy};

const DOMAIN: &str = "example.com";

/// The verifier: reads a JSON list of `{"message": base64, "records": {name: txt}}` on
/// stdin and prints, for each, `PASS` or `FAIL`, then `lookup NAME`, `tag NAME=VALUE` and
/// `reason TEXT` lines, then `END`. Exit status 0 whatever the verdicts; anything else is
/// a broken setup. One process for many messages: starting Python dominates the cost.
const VERIFY_PY: &str = r#"
import base64, json, logging, sys
import dkim
class Keep(logging.Handler):
    def emit(self, record):
        lines.append("reason " + record.getMessage())
log = logging.getLogger("dkimpy")
log.addHandler(Keep())
log.setLevel(logging.DEBUG)
for req in json.load(sys.stdin):
    msg = base64.b64decode(req["message"])
    records = {k.lower().rstrip("."): v.encode() for k, v in req["records"].items()}
    lines = []
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        lines.append("lookup " + name)
        return records.get(name.lower().rstrip("."))
    d = dkim.DKIM(msg, logger=log)
    try:
        ok = bool(d.verify(dnsfunc=dnsfunc))
    except dkim.DKIMException as e:
        ok = False
        lines.append("reason " + str(e))
    for k, v in (getattr(d, "signature_fields", None) or {}).items():
        lines.append("tag %s=%s" % (k.decode(), v.decode(errors="replace")))
    print("PASS" if ok else "FAIL")
    for line in lines:
        print(" ".join(line.split()))
    print("END")
"#;

struct Env {
    python: PathBuf,
    rsa_pkcs8: TestKey,
    rsa_pkcs1: TestKey,
    ed25519: TestKey,
}

/// A private key and the TXT record for its public key, both from openssl.
struct TestKey {
    pem: String,
    record: String,
}

/// The shared environment, or `None` after printing the SKIPPED notice for `test`.
fn env(test: &str) -> Option<&'static Env> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    match ENV.get_or_init(setup) {
        Ok(env) => Some(env),
        Err(why) => {
            // Straight to stderr, past libtest's capture, so the notice always shows.
            let notice = format!("SKIPPED dkim {test}: {why}; run scripts/test.sh\n");
            let _ = std::io::stderr().write_all(notice.as_bytes());
            None
        }
    }
}

fn setup() -> Result<Env, String> {
    let required = std::env::var_os("SMTPKIT_PYTHON").filter(|p| !p.is_empty());
    let python = match &required {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".interop/venv/bin/python"),
    };
    // With SMTPKIT_PYTHON set (scripts/test.sh) a missing verifier is a failure, not a skip.
    let fail = |why: String| -> Result<Env, String> {
        if required.is_some() {
            panic!("{why} (SMTPKIT_PYTHON is set: scripts/interop/install.sh should have provided it)");
        }
        Err(why)
    };
    let probe = Command::new(&python).args(["-c", "import dkim, nacl"]).output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return fail(format!("{} lacks dkimpy/PyNaCl: {}", python.display(), stderr.trim()));
        }
        Err(e) => return fail(format!("no python with dkimpy at {}: {e}", python.display())),
    }
    let keys = (|| -> Result<_, String> {
        Ok((
            rsa_key(
                &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                "BEGIN PRIVATE KEY",
            )?,
            rsa_key(&["genrsa", "-traditional", "2048"], "BEGIN RSA PRIVATE KEY")?,
            ed25519_key()?,
        ))
    })();
    match keys {
        Ok((rsa_pkcs8, rsa_pkcs1, ed25519)) => Ok(Env { python, rsa_pkcs8, rsa_pkcs1, ed25519 }),
        Err(why) => fail(why),
    }
}

fn openssl(args: &[&str], stdin: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    child.stdin.take().expect("piped stdin").write_all(stdin).map_err(|e| format!("openssl stdin: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!("openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

/// The SubjectPublicKeyInfo DER of a private key, by openssl.
fn spki_der(pem: &str) -> Result<Vec<u8>, String> {
    openssl(&["pkey", "-pubout", "-outform", "DER"], pem.as_bytes())
}

fn rsa_key(args: &[&str], header: &str) -> Result<TestKey, String> {
    let pem = String::from_utf8(openssl(args, b"")?).map_err(|e| e.to_string())?;
    assert!(pem.contains(header), "openssl {args:?} made {pem:.40}");
    let record = format!("v=DKIM1; k=rsa; p={}", BASE64.encode(spki_der(&pem)?));
    Ok(TestKey { pem, record })
}

fn ed25519_key() -> Result<TestKey, String> {
    let pem =
        String::from_utf8(openssl(&["genpkey", "-algorithm", "ED25519"], b"")?).map_err(|e| e.to_string())?;
    let spki = spki_der(&pem)?;
    // RFC 8463: p= is the raw 32-octet key, the tail of the 44-octet SPKI.
    assert_eq!(spki.len(), 44, "Ed25519 SubjectPublicKeyInfo");
    let raw = spki.get(12..).expect("44 octets");
    Ok(TestKey { pem, record: format!("v=DKIM1; k=ed25519; p={}", BASE64.encode(raw)) })
}

/// dkimpy's verdict on a message.
#[derive(Debug)]
struct Verdict {
    ok: bool,
    looked_up: Vec<String>,
    tags: Vec<(String, String)>,
    /// dkimpy's log lines: why it failed.
    #[allow(dead_code)] // read through Debug in failure messages
    reasons: Vec<String>,
}

impl Env {
    /// Runs dkimpy on `message` with `record` published at `<selector>._domainkey.<DOMAIN>`.
    fn verify(&self, message: &[u8], selector: &str, record: &str) -> Verdict {
        self.verify_many(&[(message, selector, record)]).pop().expect("one verdict")
    }

    /// [`verify`](Self::verify) for each `(message, selector, record)`, in one process.
    fn verify_many(&self, cases: &[(&[u8], &str, &str)]) -> Vec<Verdict> {
        let requests: Vec<String> = cases
            .iter()
            .map(|(message, selector, record)| {
                format!(
                    "{{\"message\": \"{}\", \"records\": {{\"{selector}._domainkey.{DOMAIN}\": \"{record}\"}}}}",
                    BASE64.encode(message)
                )
            })
            .collect();
        let request = format!("[{}]", requests.join(", "));
        let mut child = Command::new(&self.python)
            .args(["-c", VERIFY_PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the verifier");
        child.stdin.take().expect("piped").write_all(request.as_bytes()).expect("write request");
        let out = child.wait_with_output().expect("verifier output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "verifier crashed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
        let verdicts: Vec<Verdict> = stdout.split_terminator("END\n").map(parse_verdict).collect();
        assert_eq!(verdicts.len(), cases.len(), "one verdict per message: {stdout}");
        verdicts
    }
}

fn parse_verdict(output: &str) -> Verdict {
    let mut lines = output.lines();
    let ok = match lines.next() {
        Some("PASS") => true,
        Some("FAIL") => false,
        other => panic!("unexpected verifier output {other:?} in {output}"),
    };
    let mut verdict = Verdict { ok, looked_up: Vec::new(), tags: Vec::new(), reasons: Vec::new() };
    for line in lines {
        if let Some(name) = line.strip_prefix("lookup ") {
            verdict.looked_up.push(name.to_owned());
        } else if let Some((k, v)) = line.strip_prefix("tag ").and_then(|t| t.split_once('=')) {
            verdict.tags.push((k.to_owned(), v.to_owned()));
        } else if let Some(reason) = line.strip_prefix("reason ") {
            verdict.reasons.push(reason.to_owned());
        }
    }
    verdict
}

impl Verdict {
    fn tag(&self, name: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn signer(key: &TestKey, selector: &str) -> DkimSigner {
    DkimSigner::new(&key.pem, DOMAIN, selector).expect("signer")
}

#[track_caller]
fn assert_passes(env: &Env, key: &TestKey, selector: &str, signed: &[u8]) -> Verdict {
    let verdict = env.verify(signed, selector, &key.record);
    assert!(verdict.ok, "dkimpy rejected:\n{verdict:?}\n{}", String::from_utf8_lossy(signed));
    assert_eq!(verdict.looked_up, [format!("{selector}._domainkey.{DOMAIN}.")], "{verdict:?}");
    verdict
}

#[track_caller]
fn assert_fails(env: &Env, key: &TestKey, selector: &str, message: &[u8], what: &str) {
    let verdict = env.verify(message, selector, &key.record);
    assert!(!verdict.ok, "{what}: dkimpy accepted it\n{}", String::from_utf8_lossy(message));
}

const PLAIN: &str = "From: Alice <alice@example.com>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Plain text\r\n\
Date: Sun, 22 Nov 2026 05:00:00 +0000\r\n\
Message-ID: <plain.1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Hello Bob,\r\n\
\r\n\
a plain message.\r\n";

const FOLDED: &str = "From: \"Alice Example\"\r\n <alice@example.com>\r\n\
To: bob@example.org,\r\n\tcarol@example.org,\r\n   dave@example.org\r\n\
Cc: eve@example.org\r\n\
Subject: A subject that is long enough to be folded over\r\n several lines  \r\n\t of the header\r\n\
Content-Type: text/plain;\r\n charset=\"us-ascii\";\r\n format=flowed\r\n\
\r\n\
Body with    inner   whitespace \t\r\n\
and trailing blank lines\r\n\
\r\n\
\r\n";

const ENCODED_WORDS: &str = "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.com>\r\n\
To: =?ISO-8859-1?Q?Fran=E7ois?= <francois@example.org>\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln_=E2=82=AC?=\r\n =?UTF-8?B?IOaXpeacrOiqng==?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Grüße aus Köln — 日本語 ✓\r\n";

const DOT_LINES: &str = "From: alice@example.com\r\n\
To: bob@example.org\r\n\
Subject: dots\r\n\
\r\n\
.\r\n\
..\r\n\
.leading dot\r\n\
middle . dot\r\n\
.\r\n";

#[test]
fn rsa_pkcs8_plain_message_verifies() {
    let Some(env) = env("rsa_pkcs8_plain_message_verifies") else { return };
    let signer = signer(&env.rsa_pkcs8, "rsa8");
    assert_eq!(signer.algorithm(), Algorithm::RsaSha256);
    // Our SPKI wrapping of the public key matches what openssl prints.
    assert_eq!(signer.dns_record(), env.rsa_pkcs8.record);
    let signed = signer.sign(PLAIN.as_bytes()).unwrap();
    assert!(signed.ends_with(PLAIN.as_bytes()));
    let verdict = assert_passes(env, &env.rsa_pkcs8, "rsa8", &signed);
    assert_eq!(verdict.tag("a"), Some("rsa-sha256"));
    assert_eq!(verdict.tag("d"), Some(DOMAIN));
    assert_eq!(verdict.tag("c"), Some("relaxed/relaxed"));
}

#[test]
fn rsa_pkcs1_key_verifies() {
    let Some(env) = env("rsa_pkcs1_key_verifies") else { return };
    let signer = signer(&env.rsa_pkcs1, "rsa1");
    assert_eq!(signer.dns_record(), env.rsa_pkcs1.record);
    assert_passes(env, &env.rsa_pkcs1, "rsa1", &signer.sign(PLAIN.as_bytes()).unwrap());
}

#[test]
fn ed25519_key_verifies() {
    let Some(env) = env("ed25519_key_verifies") else { return };
    // openssl writes PKCS #8 v1 (no public key inside); the raw public key matches.
    let signer = signer(&env.ed25519, "ed");
    assert_eq!(signer.algorithm(), Algorithm::Ed25519Sha256);
    assert_eq!(signer.dns_record(), env.ed25519.record);
    let verdict = assert_passes(env, &env.ed25519, "ed", &signer.sign(PLAIN.as_bytes()).unwrap());
    assert_eq!(verdict.tag("a"), Some("ed25519-sha256"));
}

#[test]
fn folded_headers_verify_relaxed_and_simple() {
    let Some(env) = env("folded_headers_verify_relaxed_and_simple") else { return };
    for (key, sel) in [(&env.rsa_pkcs8, "rsa8"), (&env.ed25519, "ed")] {
        assert_passes(env, key, sel, &signer(key, sel).sign(FOLDED.as_bytes()).unwrap());
        let simple = DkimSigner::builder(SigningKey::from_pem(&key.pem).unwrap(), DOMAIN, sel)
            .header_canonicalization(Canonicalization::Simple)
            .body_canonicalization(Canonicalization::Simple)
            .build()
            .unwrap();
        let verdict = assert_passes(env, key, sel, &simple.sign(FOLDED.as_bytes()).unwrap());
        assert_eq!(verdict.tag("c"), Some("simple/simple"));
    }
}

#[test]
fn encoded_words_and_utf8_body_verify() {
    let Some(env) = env("encoded_words_and_utf8_body_verify") else { return };
    for (key, sel) in [(&env.rsa_pkcs1, "rsa1"), (&env.ed25519, "ed")] {
        assert_passes(env, key, sel, &signer(key, sel).sign(ENCODED_WORDS.as_bytes()).unwrap());
    }
}

#[test]
fn dot_lines_verify() {
    let Some(env) = env("dot_lines_verify") else { return };
    let signed = signer(&env.ed25519, "ed").sign(DOT_LINES.as_bytes()).unwrap();
    assert_passes(env, &env.ed25519, "ed", &signed);
}

#[test]
fn bare_newlines_are_signed_as_sent() {
    let Some(env) = env("bare_newlines_are_signed_as_sent") else { return };
    let lf = PLAIN.replace("\r\n", "\n");
    let lf = lf.trim_end_matches('\n');
    let signed = signer(&env.rsa_pkcs8, "rsa8").sign(lf.as_bytes()).unwrap();
    assert!(signed.ends_with(PLAIN.as_bytes()), "normalised to CRLF with a final CRLF");
    assert_passes(env, &env.rsa_pkcs8, "rsa8", &signed);
}

#[test]
fn expiration_and_custom_headers_verify() {
    let Some(env) = env("expiration_and_custom_headers_verify") else { return };
    let signer = DkimSigner::builder(SigningKey::from_pem(&env.ed25519.pem).unwrap(), DOMAIN, "ed")
        .headers(["From", "Subject", "X-Campaign"])
        .expiration(Duration::from_secs(3600))
        .build()
        .unwrap();
    let msg = "From: a@example.com\r\nX-Campaign: 42\r\nSubject: s\r\n\r\nbody\r\n";
    let signed = signer.sign(msg.as_bytes()).unwrap();
    let verdict = assert_passes(env, &env.ed25519, "ed", &signed);
    let t: u64 = verdict.tag("t").expect("t=").parse().unwrap();
    let x: u64 = verdict.tag("x").expect("x=").parse().unwrap();
    assert_eq!(x - t, 3600);
    // X-Campaign is signed: changing it breaks the signature.
    let tampered = String::from_utf8(signed).unwrap().replace("X-Campaign: 42", "X-Campaign: 43");
    assert_fails(env, &env.ed25519, "ed", tampered.as_bytes(), "changed custom signed header");
}

#[test]
fn tampering_breaks_the_signature() {
    let Some(env) = env("tampering_breaks_the_signature") else { return };
    for (key, sel) in [(&env.rsa_pkcs8, "rsa8"), (&env.ed25519, "ed")] {
        let signed = String::from_utf8(signer(key, sel).sign(PLAIN.as_bytes()).unwrap()).unwrap();
        let (dkim_header, rest) = signed.split_at(signed.find("From:").unwrap());
        // The right message checked against another key of the same type.
        let other_key = match sel {
            "rsa8" => env.rsa_pkcs1.record.clone(),
            _ => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key");
                format!("v=DKIM1; k=ed25519; p={}", BASE64.encode(pair.public_key_raw()))
            }
        };
        // (what, message, public key record, must verify)
        let cases: Vec<(&str, String, &str, bool)> = vec![
            ("untouched", signed.clone(), &key.record, true),
            (
                "changed Subject",
                signed.replace("Subject: Plain text", "Subject: Plain text!"),
                &key.record,
                false,
            ),
            ("changed From", signed.replace("alice@example.com", "mallory@example.com"), &key.record, false),
            ("changed body", signed.replace("a plain message.", "a plain massage."), &key.record, false),
            ("appended body line", format!("{signed}P.S. send money\r\n"), &key.record, false),
            // Cc was absent but is in h=: adding it later is caught.
            (
                "added Cc",
                signed.replace("Subject: Plain", "Cc: mallory@example.com\r\nSubject: Plain"),
                &key.record,
                false,
            ),
            // A second From above the signed one (the one mail readers show) is caught too.
            ("added From", format!("{dkim_header}From: mallory@example.com\r\n{rest}"), &key.record, false),
            ("another key", signed.clone(), &other_key, false),
            // What relaxed canonicalisation tolerates, and unsigned header fields.
            (
                "relayed",
                format!("Received: from relay.example.net\r\n{signed}")
                    .replace("Subject: Plain text", "Subject:   Plain\r\n   text")
                    .replace("a plain message.", "a plain   message.  ")
                    + "\r\n\r\n",
                &key.record,
                true,
            ),
        ];
        let requests: Vec<(&[u8], &str, &str)> =
            cases.iter().map(|(_, message, record, _)| (message.as_bytes(), sel, *record)).collect();
        let verdicts = env.verify_many(&requests);
        for ((what, message, _, expected), verdict) in cases.iter().zip(verdicts) {
            assert_eq!(
                verdict.ok,
                *expected,
                "{sel}, {what}: expected {}\n{verdict:?}\n{message}",
                if *expected { "PASS" } else { "FAIL" }
            );
        }
    }
}

#[tokio::test]
async fn signed_message_verifies_after_smtp_delivery() {
    let Some(env) = env("signed_message_verifies_after_smtp_delivery") else { return };
    let server = TestServer::builder().start().await.expect("test server");
    let mut client = Client::builder("localhost")
        .tls(TlsPolicy::Disabled)
        .build()
        .expect("connector")
        .connect_with(server.connect_in_memory())
        .await
        .expect("connect");
    let envelope = Envelope::parse("alice@example.com", &["bob@example.org"]).unwrap();

    let rsa = signer(&env.rsa_pkcs8, "rsa8");
    let ed = signer(&env.ed25519, "ed");
    // Dot lines get stuffed on the wire and unstuffed by the server; bare LFs were
    // normalised by the signer as the client would have.
    let bare_lf = DOT_LINES.replace("\r\n", "\n");
    let cases: [(&DkimSigner, &TestKey, &str, &str); 4] = [
        (&rsa, &env.rsa_pkcs8, "rsa8", PLAIN),
        (&ed, &env.ed25519, "ed", DOT_LINES),
        (&ed, &env.ed25519, "ed", ENCODED_WORDS),
        (&rsa, &env.rsa_pkcs8, "rsa8", &bare_lf),
    ];
    let mut sent = Vec::new();
    for (signer, _, _, message) in &cases {
        let signed = signer.sign(message.as_bytes()).unwrap();
        client.send(&envelope, signed.clone()).await.expect("send");
        sent.push(signed);
    }
    client.quit().await.expect("quit");

    let received = server.messages();
    assert_eq!(received.len(), cases.len());
    let mut requests = Vec::new();
    for ((received, signed), (_, key, sel, _)) in received.iter().zip(&sent).zip(&cases) {
        assert_eq!(&received.data, signed, "the server stored exactly the signed bytes");
        requests.push((received.data.as_slice(), *sel, key.record.as_str()));
    }
    for (verdict, received) in env.verify_many(&requests).iter().zip(&received) {
        assert!(verdict.ok, "dkimpy rejected the delivered message:\n{verdict:?}\n{}", received.text());
    }
    server.shutdown().await;
}

/// Issue 11 #4 and issue 14 #6: `sign_message` keeps the envelope (Bcc included) and the
/// Message-ID, signs `List-Unsubscribe` and `List-Unsubscribe-Post` by default (RFC 8058
/// section 4), and what the server stores verifies.
#[tokio::test]
async fn signed_message_keeps_its_envelope_and_signs_unsubscribe() {
    let Some(env) = env("signed_message_keeps_its_envelope_and_signs_unsubscribe") else { return };
    let message = smtpkit::Message::builder()
        .from(("Alice", "alice@example.com"))
        .to("bob@example.org")
        .bcc("audit@example.org")
        .subject("Newsletter ✓")
        .list_unsubscribe_mailto("unsubscribe@example.com?subject=bob")
        .list_unsubscribe_url("https://example.com/u/bob")
        .list_unsubscribe_one_click()
        .text_body("News\n")
        .build()
        .unwrap();
    let signed = signer(&env.ed25519, "ed").sign_message(&message).unwrap();
    assert_eq!(signed.envelope(), message.envelope());
    assert_eq!(signed.message_id(), message.message_id());
    assert!(signed.as_bytes().starts_with(b"DKIM-Signature: "));
    assert!(signed.as_bytes().ends_with(message.as_bytes()));

    let server = TestServer::builder().start().await.expect("test server");
    let mut client = Client::builder("localhost")
        .tls(TlsPolicy::Disabled)
        .build()
        .expect("connector")
        .connect_with(server.connect_in_memory())
        .await
        .expect("connect");
    client.send_message(&signed).await.expect("send");
    client.quit().await.expect("quit");
    let received = server.messages();
    assert_eq!(received[0].rcpt_to, ["bob@example.org", "audit@example.org"]);
    let verdict = assert_passes(env, &env.ed25519, "ed", &received[0].data);
    let h = verdict.tag("h").unwrap_or_default().to_ascii_lowercase();
    let signed_fields: Vec<&str> = h.split(':').map(str::trim).collect();
    for field in ["list-unsubscribe", "list-unsubscribe-post", "from", "subject"] {
        assert!(signed_fields.contains(&field), "{field} not in h={h}");
    }
    // Changing the one-click header breaks the signature.
    let text = String::from_utf8(received[0].data.clone()).unwrap();
    let tampered =
        text.replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click", "List-Unsubscribe-Post: x");
    assert_ne!(tampered, text);
    assert_fails(env, &env.ed25519, "ed", tampered.as_bytes(), "tampered List-Unsubscribe-Post");
    server.shutdown().await;
}
