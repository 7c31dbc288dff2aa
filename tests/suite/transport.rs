//! The transports: stub (scripted outcomes), file (atomic, concurrent writers), sendmail
//! (failing, hanging and argv-dumping programs written by the test), SMTP and the pool
//! against the in-process server, and the choice by URL.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtpkit::pool::Pool;
use smtpkit::testing::TestServer;
use smtpkit::transport::{
    BlockingTransport, FileTransport, SendmailTransport, SmtpTransport, StubOutcome, StubTransport,
    Transport, TransportError, TransportUrl,
};
use smtpkit::{Address, Client, Envelope, Error, Outgoing, Reply, TlsPolicy};

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smtpkit-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A marker no earlier run left in a server's maildir.
pub fn unique(marker: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{marker}-{nanos}")
}

fn outgoing(to: &[&str], subject: &str) -> Outgoing {
    let envelope = Envelope::parse("from@example.com", to).unwrap();
    Outgoing::new(envelope, format!("Subject: {subject}\r\n\r\nBody of {subject}\r\n"))
}

/// Writes an executable shell script (the program under test, not a shell the transport uses).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_stub_answers_with_its_script_then_accepts() {
    let stub = StubTransport::new()
        .then(StubOutcome::Reject(Reply::single(451, "4.3.0 try again")))
        .then(StubOutcome::Ambiguous)
        .then(StubOutcome::RejectRecipients(vec![Address::new("b@example.org").unwrap()]));
    let msg = outgoing(&["a@example.org", "b@example.org"], "scripted");
    let first = BlockingTransport::send(&stub, msg.clone()).unwrap_err();
    assert!(first.is_transient() && !first.is_ambiguous(), "{first:?}");
    let second = BlockingTransport::send(&stub, msg.clone()).unwrap_err();
    assert!(second.is_ambiguous(), "{second:?}");
    let third = BlockingTransport::send(&stub, msg.clone()).unwrap();
    let accepted: Vec<_> = third.accepted().map(|r| r.address.to_string()).collect();
    let rejected: Vec<_> = third.rejected().map(|r| r.reply.code().0).collect();
    assert_eq!((accepted, rejected), (vec!["a@example.org".to_string()], vec![550]));
    assert!(BlockingTransport::send(&stub, msg).is_ok());
    assert_eq!((stub.attempts(), stub.messages().len()), (4, 2));
}

#[test]
fn the_stub_refuses_when_every_recipient_is_rejected() {
    let only = Address::new("a@example.org").unwrap();
    let stub = StubTransport::new().otherwise(StubOutcome::RejectRecipients(vec![only]));
    let err = BlockingTransport::send(&stub, outgoing(&["a@example.org"], "x")).unwrap_err();
    assert!(matches!(err, Error::RecipientsRejected { .. }) && err.is_permanent(), "{err:?}");
    assert!(stub.messages().is_empty());
}

#[test]
fn the_file_transport_writes_complete_pairs_under_concurrent_writers() {
    let dir = scratch("file-concurrent");
    let transport = FileTransport::new(&dir);
    let (threads, each) = (8, 25);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let transport = transport.clone();
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| {
                        let report = BlockingTransport::send(
                            &transport,
                            outgoing(&["a@example.org"], &format!("t{t}-m{i}")),
                        );
                        report.unwrap().reply.text()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let replies: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let mut names: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(names.iter().all(|n| !n.starts_with('.')), "a temporary file was left: {names:?}");
    let emls: Vec<&String> = names.iter().filter(|n| n.ends_with(".eml")).collect();
    assert_eq!(emls.len(), threads * each);
    assert_eq!(names.len(), 2 * threads * each, "one .json per .eml");
    let mut subjects = HashSet::new();
    for eml in &emls {
        let stem = eml.strip_suffix(".eml").unwrap();
        assert!(replies.iter().any(|r| r.contains(eml.as_str())), "the reply names the file");
        let json = fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap();
        assert!(json.starts_with(r#"{"from":"from@example.com","to":["a@example.org"]"#), "{json}");
        let data = fs::read_to_string(dir.join(eml.as_str())).unwrap();
        assert!(json.contains(&format!("\"size\":{}", data.len())), "{json}");
        assert!(subjects.insert(data.lines().next().unwrap().to_string()), "each message once");
    }
    // Within one thread, name order is sending order.
    for t in 0..threads {
        let order: Vec<usize> = emls
            .iter()
            .map(|e| fs::read_to_string(dir.join(e.as_str())).unwrap())
            .filter_map(|d| d.lines().next()?.strip_prefix(&format!("Subject: t{t}-m"))?.parse().ok())
            .collect();
        assert_eq!(order, (0..each).collect::<Vec<_>>());
    }
    fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_file_transport_reports_a_missing_directory() {
    let transport = FileTransport::new("/nonexistent/smtpkit-dir");
    let err = Transport::send(&transport, outgoing(&["a@example.org"], "x")).await.unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
}

#[test]
fn sendmail_gets_the_message_on_stdin_and_recipients_after_the_double_dash() {
    let dir = scratch("sendmail-argv");
    let out = dir.join("out");
    let program = script(
        &dir,
        "sendmail",
        &format!(
            "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > {out}.args\ncat > {out}.msg",
            out = out.display()
        ),
    );
    let transport = SendmailTransport::new(&program);
    let report =
        BlockingTransport::send(&transport, outgoing(&["a@example.org", "b@example.org"], "piped")).unwrap();
    assert_eq!(report.accepted().count(), 2);
    let args = fs::read_to_string(dir.join("out.args")).unwrap();
    assert_eq!(args, "-i\n-f\nfrom@example.com\n--\na@example.org\nb@example.org\n");
    assert_eq!(fs::read_to_string(dir.join("out.msg")).unwrap(), "Subject: piped\r\n\r\nBody of piped\r\n");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sendmail_never_sees_an_address_that_looks_like_an_option() {
    let dir = scratch("sendmail-option");
    let ran = dir.join("ran");
    let program = script(&dir, "sendmail", &format!("touch {}", ran.display()));
    let transport = SendmailTransport::new(&program);
    for (from, to) in [("from@example.com", "-oQsomething@example.com"), ("-fx@example.com", "a@example.org")]
    {
        let envelope = Envelope::parse(from, &[to]).unwrap();
        let err =
            BlockingTransport::send(&transport, Outgoing::new(envelope, "Subject: x\r\n\r\n")).unwrap_err();
        assert!(matches!(err, Error::Transport(TransportError::OptionLikeAddress(_))), "{err:?}");
        assert!(err.is_permanent() && err.fault() == smtpkit::Fault::Caller);
    }
    assert!(!ran.exists(), "the program must not have run");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_failing_sendmail_is_a_typed_error_with_status_and_stderr() {
    let dir = scratch("sendmail-fail");
    let program =
        script(&dir, "sendmail", "cat >/dev/null\necho 'sendmail: fatal: no such user' >&2\nexit 67");
    let err = BlockingTransport::send(&SendmailTransport::new(&program), outgoing(&["a@example.org"], "x"))
        .unwrap_err();
    match &err {
        Error::Transport(TransportError::Exit { status, stderr, .. }) => {
            assert_eq!(*status, Some(67));
            assert_eq!(stderr.trim(), "sendmail: fatal: no such user");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_permanent() && !err.is_transient());
    let program = script(&dir, "tempfail", "exit 75");
    let err = BlockingTransport::send(&SendmailTransport::new(&program), outgoing(&["a@example.org"], "x"))
        .unwrap_err();
    assert!(err.is_transient(), "EX_TEMPFAIL: {err:?}");
    let err = BlockingTransport::send(
        &SendmailTransport::new(dir.join("missing")),
        outgoing(&["a@example.org"], "x"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Transport(TransportError::Spawn { .. })), "{err:?}");
    fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_hanging_sendmail_is_killed_at_the_deadline() {
    let dir = scratch("sendmail-hang");
    // `exec` so the killed process is the one holding the pipes.
    let program = script(&dir, "sendmail", "exec sleep 30");
    let transport = SendmailTransport::new(&program).timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = Transport::send(&transport, outgoing(&["a@example.org"], "x")).await.unwrap_err();
    assert!(matches!(err, Error::Transport(TransportError::Timeout { .. })), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(10), "killed, not waited for");
    fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn smtp_and_the_pool_are_transports() {
    let server = TestServer::builder().start().await.unwrap();
    let builder = || Client::builder("127.0.0.1").port(server.addr().port()).tls(TlsPolicy::Disabled);
    let smtp: Arc<dyn Transport> = Arc::new(SmtpTransport::new(builder().build().unwrap()));
    let pool: Arc<dyn Transport> = Arc::new(Pool::new(builder().build().unwrap()));
    for (i, transport) in [smtp.clone(), smtp.clone(), pool.clone()].into_iter().enumerate() {
        let report = transport.send(outgoing(&["a@example.org"], &format!("over smtp {i}"))).await.unwrap();
        assert_eq!(report.accepted().count(), 1);
    }
    smtp.close().await;
    pool.close().await;
    let got = server.wait_for_messages(3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
    assert_eq!(server.connection_count(), 2, "the SMTP transport reused its connection");
    server.shutdown().await;
}

#[test]
fn transports_by_url() {
    let dir = scratch("by-url");
    let url = format!("file://{}", dir.display());
    assert_eq!(TransportUrl::parse(&url).unwrap(), TransportUrl::File(dir.clone()));
    let transport = smtpkit::transport::blocking_from_url(&url).unwrap();
    transport.send(outgoing(&["a@example.org"], "by url")).unwrap();
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
    assert!(
        smtpkit::transport::blocking_from_url("stub:")
            .unwrap()
            .send(outgoing(&["a@example.org"], "x"))
            .is_ok()
    );
    let err = TransportUrl::parse("smtpx://u:secretpw@h").unwrap_err().to_string();
    assert!(!err.contains("secretpw"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_smtp_transport_by_url_reuses_its_connection() {
    let server = TestServer::builder().start().await.unwrap();
    let url = format!("smtp://{}?tls=none", server.addr());
    let sent = tokio::task::spawn_blocking(move || {
        let transport = smtpkit::blocking::transport_from_url(&url).unwrap();
        let sent: Vec<_> =
            (0..3).map(|i| transport.send(outgoing(&["a@example.org"], &format!("b{i}")))).collect();
        transport.close();
        sent
    })
    .await
    .unwrap();
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    assert_eq!(server.wait_for_messages(3, Duration::from_secs(5)).await.len(), 3);
    assert_eq!(server.connection_count(), 1);
    server.shutdown().await;
}
