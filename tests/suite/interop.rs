//! Interop against real servers started by `scripts/test.sh`: a private Postfix and
//! aiosmtpd on loopback. Without them each test prints a SKIPPED notice and returns
//! (and fails when `SMTPKIT_INTEROP_REQUIRED=1`). Every delivered message is read back
//! from the server's maildir and compared byte for byte with what was sent.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use smtpkit::{Client, ClientBuilder, Credentials, Envelope, Error, Mechanism, MessageOptions, TlsPolicy};

use crate::support::interop::{self, Server};

fn marker(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{test}-{nanos}")
}

/// A message with edge cases for the DATA encoder: a leading dot, a lone dot line, a
/// line that is nearly `CRLF.CRLF`, 8-bit text, a long line, and no final CRLF.
fn message(marker: &str, to: &str) -> Vec<u8> {
    format!(
        "From: <sender@example.test>\r\nTo: <{to}>\r\nSubject: {marker}\r\n\
         Message-ID: <{marker}@smtpkit.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         .leading dot\r\n.\r\n..two dots\r\n \r\n.x\r\nGrüße, naïve café\r\n{}\r\nlast line without CRLF",
        "L".repeat(990)
    )
    .into_bytes()
}

fn builder(server: &Server, addr: SocketAddr, tls: TlsPolicy) -> ClientBuilder {
    Client::builder("localhost")
        .port(addr.port())
        .tls(tls)
        .without_native_roots()
        .add_root_pem_file(&server.ca_pem_path)
        .expect("test CA")
}

fn creds(server: &Server) -> Credentials {
    Credentials::new(server.user.clone(), server.password.clone())
}

fn delivered_exactly(server: &Server, marker: &str, sent: &[u8], recipients: &[&str]) {
    let found = interop::wait_for_recipients(server, marker, recipients, Duration::from_secs(20));
    assert!(!found.is_empty(), "{}: nothing delivered for {marker}", server.name);
    let mut got: Vec<String> = found.iter().flat_map(|d| d.recipients.clone()).collect();
    got.sort();
    got.dedup();
    let mut want: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{}: delivered recipients", server.name);
    // The DATA encoder adds the CRLF a final line needs; nothing else may differ.
    let mut expected = sent.to_vec();
    if !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    for d in found {
        assert_eq!(
            String::from_utf8_lossy(&d.data),
            String::from_utf8_lossy(&expected),
            "{}: delivered bytes differ",
            server.name
        );
        assert_eq!(d.sender, "sender@example.test");
    }
}

async fn starttls_auth_with(server: Server, mechanism: Mechanism, test: &str) {
    let marker = marker(test);
    let msg = message(&marker, "ok@example.test");
    let mut client = builder(&server, server.starttls, TlsPolicy::Required)
        .credentials(creds(&server))
        .mechanisms(&[mechanism])
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", server.name));
    assert!(client.is_tls());
    let env = Envelope::parse(
        "sender@example.test",
        &["ok@example.test", "reject@example.test", "also@example.com"],
    )
    .unwrap();
    let report = client.send(&env, msg.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", server.name));
    let accepted: Vec<&str> = report.accepted().map(|r| r.address.as_str()).collect();
    assert_eq!(accepted, ["ok@example.test", "also@example.com"], "{}", server.name);
    let rejected: Vec<_> = report.rejected().collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].address.as_str(), "reject@example.test");
    assert_eq!(rejected[0].reply.code().0, 550);
    assert_eq!(rejected[0].reply.enhanced().map(|e| e.to_string()).as_deref(), Some("5.1.1"));
    assert!(client.is_reusable());
    client.quit().await.unwrap();
    delivered_exactly(&server, &marker, &msg, &["ok@example.test", "also@example.com"]);
}

#[tokio::test]
async fn postfix_starttls_auth_plain_accepted_and_rejected_recipients() {
    let Some(s) = interop::postfix_or_skip("postfix_starttls_auth_plain") else { return };
    starttls_auth_with(s, Mechanism::Plain, "pf-plain").await;
}

#[tokio::test]
async fn postfix_starttls_auth_cram_md5() {
    let Some(s) = interop::postfix_or_skip("postfix_starttls_auth_cram_md5") else { return };
    starttls_auth_with(s, Mechanism::CramMd5, "pf-cram").await;
}

#[tokio::test]
async fn postfix_starttls_auth_login() {
    let Some(s) = interop::postfix_or_skip("postfix_starttls_auth_login") else { return };
    starttls_auth_with(s, Mechanism::Login, "pf-login").await;
}

#[tokio::test]
async fn aiosmtpd_starttls_auth_plain_accepted_and_rejected_recipients() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_starttls_auth_plain") else { return };
    starttls_auth_with(s, Mechanism::Plain, "aio-plain").await;
}

#[tokio::test]
async fn aiosmtpd_starttls_auth_login() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_starttls_auth_login") else { return };
    starttls_auth_with(s, Mechanism::Login, "aio-login").await;
}

async fn implicit_tls(server: Server, test: &str) {
    let marker = marker(test);
    let msg = message(&marker, "ok@example.test");
    let mut client = builder(&server, server.implicit_tls, TlsPolicy::Implicit)
        .credentials(creds(&server))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", server.name));
    assert!(client.is_tls());
    let env = Envelope::parse("sender@example.test", &["ok@example.test"]).unwrap();
    client.send(&env, msg.clone()).await.unwrap();
    client.quit().await.unwrap();
    delivered_exactly(&server, &marker, &msg, &["ok@example.test"]);
}

#[tokio::test]
async fn postfix_implicit_tls() {
    let Some(s) = interop::postfix_or_skip("postfix_implicit_tls") else { return };
    implicit_tls(s, "pf-smtps").await;
}

#[tokio::test]
async fn aiosmtpd_implicit_tls() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_implicit_tls") else { return };
    implicit_tls(s, "aio-smtps").await;
}

async fn wrong_password(server: Server) {
    let err = builder(&server, server.starttls, TlsPolicy::Required)
        .credentials(Credentials::new(server.user.clone(), "definitely-wrong"))
        .connect()
        .await
        .unwrap_err();
    match &err {
        Error::AuthFailed(reply) => assert_eq!(reply.code().0, 535, "{}", server.name),
        other => panic!("{}: {other:?}", server.name),
    }
    assert!(err.is_permanent());
    assert!(!err.to_string().contains("definitely-wrong"));
}

#[tokio::test]
async fn postfix_wrong_password_is_a_typed_error() {
    let Some(s) = interop::postfix_or_skip("postfix_wrong_password") else { return };
    wrong_password(s).await;
}

#[tokio::test]
async fn aiosmtpd_wrong_password_is_a_typed_error() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_wrong_password") else { return };
    wrong_password(s).await;
}

fn assert_tls_refused(result: Result<Client, Error>, what: &str) {
    match result {
        Err(Error::Tls(e)) => assert!(e.to_string().to_lowercase().contains("certificate"), "{what}: {e}"),
        Err(other) => panic!("{what}: expected a TLS error, got {other:?}"),
        Ok(_) => panic!("{what}: connected despite an untrusted certificate"),
    }
}

#[tokio::test]
async fn postfix_untrusted_certificate_is_refused() {
    let Some(s) = interop::postfix_or_skip("postfix_untrusted_certificate") else { return };
    let untrusted = s.untrusted_tls.expect("postfix has an untrusted listener");
    let r = builder(&s, untrusted, TlsPolicy::Required).credentials(creds(&s)).connect().await;
    assert_tls_refused(r, "postfix untrusted listener");
    // The trusted listener, without the test CA: refused as well.
    let r = Client::builder("localhost")
        .port(s.starttls.port())
        .without_native_roots()
        .credentials(creds(&s))
        .connect()
        .await;
    assert_tls_refused(r, "postfix without the CA");
    let r = Client::builder("localhost").port(s.implicit_tls.port()).tls(TlsPolicy::Implicit).connect().await;
    assert_tls_refused(r, "postfix implicit TLS with OS roots only");
}

#[tokio::test]
async fn aiosmtpd_untrusted_certificate_is_refused() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_untrusted_certificate") else { return };
    let r = Client::builder("localhost").port(s.starttls.port()).without_native_roots().connect().await;
    assert_tls_refused(r, "aiosmtpd without the CA");
}

async fn tempfail_and_all_rejected(server: Server) {
    let mut client = builder(&server, server.starttls, TlsPolicy::Required).connect().await.unwrap();
    let env =
        Envelope::parse("sender@example.test", &["tempfail@example.test", "reject@example.test"]).unwrap();
    let err = client.send(&env, "Subject: nobody\r\n\r\nx\r\n").await.unwrap_err();
    let Error::RecipientsRejected { recipients } = &err else { panic!("{}: {err:?}", server.name) };
    assert_eq!(recipients[0].reply.code().0, 450);
    assert_eq!(recipients[1].reply.code().0, 550);
    assert!(err.is_transient(), "a 450 among them may succeed later");
    // The connection was reset and stays usable.
    let marker = marker("after-reject");
    let msg = message(&marker, "ok@example.test");
    let env = Envelope::parse("sender@example.test", &["ok@example.test"]).unwrap();
    client.send(&env, msg.clone()).await.unwrap();
    client.quit().await.unwrap();
    delivered_exactly(&server, &marker, &msg, &["ok@example.test"]);
}

#[tokio::test]
async fn postfix_all_recipients_rejected_keeps_the_connection() {
    let Some(s) = interop::postfix_or_skip("postfix_all_rejected") else { return };
    tempfail_and_all_rejected(s).await;
}

#[tokio::test]
async fn aiosmtpd_all_recipients_rejected_keeps_the_connection() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_all_rejected") else { return };
    tempfail_and_all_rejected(s).await;
}

async fn many_pipelined(server: Server, test: &str) {
    let mut client = builder(&server, server.starttls, TlsPolicy::Required).connect().await.unwrap();
    let markers: Vec<String> = (0..25).map(|i| marker(&format!("{test}-{i}"))).collect();
    let env = Envelope::parse("sender@example.test", &["ok@example.test", "reject@example.test"]).unwrap();
    let batch: Vec<(Envelope, Bytes, MessageOptions)> = markers
        .iter()
        .map(|m| (env.clone(), Bytes::from(message(m, "ok@example.test")), MessageOptions::default()))
        .collect();
    let results = client.send_many(batch).await;
    for (i, r) in results.iter().enumerate() {
        let report = r.as_ref().unwrap_or_else(|e| panic!("{} message {i}: {e}", server.name));
        assert_eq!(report.accepted().count(), 1);
    }
    assert!(client.is_reusable());
    client.quit().await.unwrap();
    for m in &markers {
        delivered_exactly(&server, m, &message(m, "ok@example.test"), &["ok@example.test"]);
    }
}

#[tokio::test]
async fn postfix_pipelined_batch_never_trips_pipelining_checks() {
    let Some(s) = interop::postfix_or_skip("postfix_pipelined_batch") else { return };
    many_pipelined(s, "pf-batch").await;
}

#[tokio::test]
async fn aiosmtpd_pipelined_batch() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_pipelined_batch") else { return };
    many_pipelined(s, "aio-batch").await;
}

#[tokio::test]
async fn postfix_submission_requires_tls_and_auth() {
    let Some(s) = interop::postfix_or_skip("postfix_submission") else { return };
    let sub = s.submission.expect("postfix has a submission listener");
    let env = Envelope::parse("sender@example.test", &["ok@example.test"]).unwrap();
    // Without credentials the server refuses MAIL.
    let mut client = builder(&s, sub, TlsPolicy::Required).connect().await.unwrap();
    let err = client.send(&env, "Subject: x\r\n\r\nx\r\n").await.unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { phase: smtpkit::Phase::Mail, reply, .. } if reply.code().0 == 530),
        "{err:?}"
    );
    client.quit().await.unwrap();
    let marker = marker("pf-submission");
    let msg = message(&marker, "ok@example.test");
    let mut client = builder(&s, sub, TlsPolicy::Required).credentials(creds(&s)).connect().await.unwrap();
    client.send(&env, msg.clone()).await.unwrap();
    client.quit().await.unwrap();
    delivered_exactly(&s, &marker, &msg, &["ok@example.test"]);
}

#[tokio::test]
async fn postfix_bare_lf_is_normalised_before_the_wire() {
    // Postfix is configured to reject bare LF (smtpd_forbid_bare_newline = reject): a body
    // written with '\n' line endings must still be accepted, because smtpkit sends CRLF.
    let Some(s) = interop::postfix_or_skip("postfix_bare_lf") else { return };
    let marker = marker("pf-bare-lf");
    let body =
        format!("Subject: {marker}\nMessage-ID: <{marker}@smtpkit.test>\n\nline one\n.dot line\nend\n");
    let mut client = builder(&s, s.starttls, TlsPolicy::Required).connect().await.unwrap();
    let env = Envelope::parse("sender@example.test", &["ok@example.test"]).unwrap();
    client.send(&env, body.clone()).await.unwrap();
    client.quit().await.unwrap();
    let expected = body.replace('\n', "\r\n");
    delivered_exactly(&s, &marker, expected.as_bytes(), &["ok@example.test"]);
}

#[tokio::test]
async fn aiosmtpd_lmtp_one_reply_per_recipient() {
    let Some(s) = interop::aiosmtpd_or_skip("aiosmtpd_lmtp") else { return };
    let lmtp = s.lmtp.expect("aiosmtpd has an LMTP listener");
    let marker = marker("aio-lmtp");
    let msg = message(&marker, "ok@example.test");
    let mut client = Client::from_url(&format!("lmtp://127.0.0.1:{}?tls=none", lmtp.port()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let env = Envelope::parse(
        "sender@example.test",
        &["ok@example.test", "reject@example.test", "two@example.test"],
    )
    .unwrap();
    let report = client.send(&env, msg.clone()).await.unwrap();
    let codes: Vec<u16> = report.recipients.iter().map(|r| r.reply.code().0).collect();
    assert_eq!(codes, [250, 550, 250]);
    client.quit().await.unwrap();
    delivered_exactly(&s, &marker, &msg, &["ok@example.test", "two@example.test"]);
}

#[tokio::test]
async fn postfix_dsn_notify_success_produces_a_delivery_report() {
    use smtpkit::proto::params::{EnvId, Notify, Ret};
    let Some(s) = interop::postfix_or_skip("postfix_dsn") else { return };
    let marker = marker("pf-dsn");
    let msg = message(&marker, "ok@example.test");
    let mut client = builder(&s, s.starttls, TlsPolicy::Required).connect().await.unwrap();
    let env = Envelope::parse("sender@example.test", &["ok@example.test"]).unwrap();
    let options = MessageOptions {
        notify: Some(Notify::parse("SUCCESS,FAILURE").unwrap()),
        ret: Some(Ret::Hdrs),
        envid: Some(EnvId::new(&marker).unwrap()),
        orcpt: true,
        ..MessageOptions::default()
    };
    client.send_with(&env, msg.clone(), options).await.unwrap();
    client.quit().await.unwrap();
    let found = interop::wait_for_delivery(&s, &marker, 2, Duration::from_secs(20));
    let report = found.iter().find(|d| d.sender.is_empty()).expect("a DSN with the null sender");
    assert_eq!(report.recipients, ["sender@example.test"]);
    let text = String::from_utf8_lossy(&report.data);
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains(&format!("Original-Envelope-Id: {marker}")), "{text}");
    assert!(text.contains("Action: delivered") || text.contains("Action: relayed"), "{text}");
    assert!(text.contains("Original-Recipient: rfc822;ok@example.test"), "{text}");
}

#[tokio::test]
async fn dsn_and_requiretls_need_the_extension() {
    // aiosmtpd offers no DSN; Postfix 3.7 offers no REQUIRETLS: both are typed errors before
    // MAIL, and the connection stays usable.
    let Some(a) = interop::aiosmtpd_or_skip("aiosmtpd_no_dsn") else { return };
    let env = Envelope::parse("sender@example.test", &["ok@example.test"]).unwrap();
    let mut client = builder(&a, a.starttls, TlsPolicy::Required).connect().await.unwrap();
    let dsn = MessageOptions { ret: Some(smtpkit::proto::params::Ret::Full), ..MessageOptions::default() };
    let err = client.send_with(&env, "Subject: x\r\n\r\nx\r\n", dsn).await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(smtpkit::Extension::Dsn)), "{err:?}");
    assert!(client.is_reusable());
    client.quit().await.unwrap();
    let Some(p) = interop::postfix_or_skip("postfix_no_requiretls") else { return };
    let mut client = builder(&p, p.starttls, TlsPolicy::Required).connect().await.unwrap();
    let req = MessageOptions { requiretls: true, ..MessageOptions::default() };
    let err = client.send_with(&env, "Subject: x\r\n\r\nx\r\n", req).await.unwrap_err();
    assert!(matches!(err, Error::ExtensionMissing(smtpkit::Extension::RequireTls)), "{err:?}");
    assert!(client.is_reusable());
    client.quit().await.unwrap();
}
