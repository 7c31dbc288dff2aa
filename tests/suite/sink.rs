//! Interop against Postfix's `smtp-sink` with its fault flags (`scripts/interop/smtp-sink.sh`):
//! each injected fault gives its typed outcome, and the `-d` dump of a delivered
//! transaction matches, byte for byte, what smtpkit put on the wire. Without the
//! interop environment each test prints a SKIPPED notice and returns (and fails when
//! `SMTPKIT_INTEROP_REQUIRED=1`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smtpkit::proto::params::{Notify, Ret};
use smtpkit::{Client, ClientBuilder, EhloName, Envelope, Error, MessageOptions, Phase, Timeouts, TlsPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::interop::{self, Sinks};

/// Bounds every client operation of these tests (smtp-sink answers in milliseconds; the
/// slowest case waits one second).
const BOUND: Duration = Duration::from_secs(20);

fn marker(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{test}-{nanos}")
}

fn builder(addr: SocketAddr) -> ClientBuilder {
    Client::builder("127.0.0.1").port(addr.port()).tls(TlsPolicy::Disabled)
}

fn envelope() -> Envelope {
    Envelope::parse("sender@example.test", &["one@example.test", "two@example.test"]).unwrap()
}

fn message(marker: &str) -> String {
    format!("Subject: {marker}\r\nMessage-ID: <{marker}@smtpkit.test>\r\n\r\nHello\r\n")
}

/// Connects to the sink `name` and sends one message; the connect error, if any, or the
/// send's result.
async fn send_to(sinks: &Sinks, name: &str, timeouts: Timeouts) -> Result<(), Error> {
    let run = async {
        let mut client = builder(sinks.addr(name)).timeouts(timeouts).connect().await?;
        let sent = client.send(&envelope(), message(&marker(name))).await;
        // The goodbye never changes the outcome; a sink that hung up makes it fail.
        let _ = client.quit().await;
        sent.map(drop)
    };
    tokio::time::timeout(BOUND, run).await.unwrap_or_else(|_| panic!("{name}: no outcome within {BOUND:?}"))
}

fn assert_rejected(name: &str, result: Result<(), Error>, phase: Phase, code: u16) {
    let err = result.expect_err(name);
    match &err {
        Error::Rejected { phase: got, reply, .. } => {
            assert_eq!((*got, reply.code().0), (phase, code), "{name}: {err:?}");
        }
        Error::RecipientsRejected { recipients } if phase == Phase::Rcpt => {
            assert_eq!(recipients.len(), 2, "{name}: {err:?}");
            assert!(recipients.iter().all(|r| r.reply.code().0 == code), "{name}: {err:?}");
        }
        _ => panic!("{name}: expected a {code} rejection at {phase:?}, got {err:?}"),
    }
    assert!(!err.is_ambiguous(), "{name}: {err:?}");
    assert_eq!(err.is_permanent(), code >= 500, "{name}: {err:?}");
    assert_eq!(err.is_transient(), code < 500, "{name}: {err:?}");
}

#[tokio::test]
async fn sink_hard_and_soft_rejects_at_each_command() {
    let Some(sinks) = interop::sinks_or_skip("sink_hard_and_soft_rejects_at_each_command") else { return };
    for (kind, code) in [("hard", 500), ("soft", 450)] {
        for (cmd, phase) in
            [("mail", Phase::Mail), ("rcpt", Phase::Rcpt), ("data", Phase::Data), ("dot", Phase::DataEnd)]
        {
            let name = format!("{kind}-{cmd}");
            let result = send_to(&sinks, &name, Timeouts::default()).await;
            assert_rejected(&name, result, phase, code);
        }
    }
}

#[tokio::test]
async fn sink_disconnect_at_each_command() {
    let Some(sinks) = interop::sinks_or_skip("sink_disconnect_at_each_command") else { return };
    for (name, phase) in [
        ("drop-ehlo", Phase::Ehlo),
        ("drop-mail", Phase::Mail),
        ("drop-rcpt", Phase::Rcpt),
        ("drop-data", Phase::Data),
    ] {
        let err = send_to(&sinks, name, Timeouts::default()).await.expect_err(name);
        assert!(matches!(err, Error::ConnectionClosed(p) if p == phase), "{name}: {err:?}");
        assert!(err.is_transient() && !err.is_ambiguous(), "{name}: safe to retry: {err:?}");
    }
    // After the final dot was written, a hang-up leaves the outcome unknown.
    let err = send_to(&sinks, "drop-dot", Timeouts::default()).await.expect_err("drop-dot");
    assert!(
        matches!(&err, Error::Ambiguous { cause, .. } if matches!(**cause, Error::ConnectionClosed(Phase::DataEnd))),
        "drop-dot: {err:?}"
    );
    assert!(!err.is_transient() && !err.is_permanent());
}

#[tokio::test]
async fn sink_421_at_each_command() {
    let Some(sinks) = interop::sinks_or_skip("sink_421_at_each_command") else { return };
    for (name, phase) in [
        ("421-mail", Phase::Mail),
        ("421-rcpt", Phase::Rcpt),
        ("421-data", Phase::Data),
        ("421-dot", Phase::DataEnd),
    ] {
        let result = send_to(&sinks, name, Timeouts::default()).await;
        assert_rejected(name, result, phase, 421);
    }
}

#[tokio::test]
async fn sink_delays_under_the_deadline_succeed_and_over_it_time_out() {
    let Some(sinks) = interop::sinks_or_skip("sink_delays_under_the_deadline_succeed_and_over_it_time_out")
    else {
        return;
    };
    // Both sinks wait one second: the default deadlines (minutes) are far away.
    for name in ["delay-data", "delay-dot"] {
        send_to(&sinks, name, Timeouts::default()).await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    let short = Duration::from_millis(300);
    let err = send_to(&sinks, "delay-data", Timeouts { data_init: short, ..Timeouts::default() })
        .await
        .expect_err("delay-data, 300 ms");
    assert!(matches!(err, Error::Timeout(Phase::Data)), "{err:?}");
    assert!(err.is_transient() && !err.is_ambiguous(), "nothing was committed: {err:?}");
    // Waiting for the reply to the dot, a timeout cannot tell whether the message is in.
    let err = send_to(&sinks, "delay-dot", Timeouts { data_end: short, ..Timeouts::default() })
        .await
        .expect_err("delay-dot, 300 ms");
    assert!(
        matches!(&err, Error::Ambiguous { cause, .. } if matches!(**cause, Error::Timeout(Phase::DataEnd))),
        "{err:?}"
    );
}

/// A loopback proxy to `upstream` that records every byte the client sends.
async fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&record);
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else { return };
        let Ok(server) = TcpStream::connect(upstream).await else { return };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let upward = async move {
            let mut buf = vec![0; 16 * 1024];
            while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        };
        let downward = async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            let _ = client_write.shutdown().await;
        };
        tokio::join!(upward, downward);
    });
    (addr, record)
}

/// The arguments of each command line `verb` in `wire` (what follows `verb`).
fn args<'a>(wire: &'a str, verb: &str) -> Vec<&'a str> {
    wire.split("\r\n").filter_map(|l| l.strip_prefix(verb)).collect()
}

/// The DATA payload on the wire, between the `DATA` line and the terminating `.` line,
/// dot-unstuffed (RFC 5321 4.5.2): what a receiver stores.
fn unstuffed_payload(wire: &str) -> String {
    let start = wire.find("\r\nDATA\r\n").expect("a DATA command") + "\r\nDATA\r\n".len();
    let end = start + wire[start..].find("\r\n.\r\n").expect("the end of data") + 2;
    wire[start..end].split_inclusive("\r\n").map(|l| l.strip_prefix('.').unwrap_or(l)).collect()
}

#[tokio::test]
async fn sink_dump_is_byte_identical_to_what_was_sent() {
    let Some(sinks) = interop::sinks_or_skip("sink_dump_is_byte_identical_to_what_was_sent") else { return };
    let marker = marker("sink-dump");
    let body = format!(
        "From: <sender@example.test>\r\nSubject: {marker}\r\nMessage-ID: <{marker}@smtpkit.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         .leading dot\r\n.\r\n..two dots\r\n \r\nGrüße, naïve café\r\n{}\r\nlast\r\n",
        "L".repeat(990)
    );
    let (proxy, record) = recording_proxy(sinks.addr("dump")).await;
    let to = ["one@example.test", "two@example.test", "three@example.test"];
    let envelope = Envelope::parse("sender@example.test", &to).unwrap();
    let options = MessageOptions {
        ret: Some(Ret::Hdrs),
        notify: Some(Notify { success: true, failure: true, delay: false }),
        orcpt: true,
        ..MessageOptions::default()
    };
    let send = async {
        let mut client =
            builder(proxy).ehlo_name(EhloName::new("client.smtpkit.test").unwrap()).connect().await.unwrap();
        let report = client.send_with(&envelope, body.clone(), options).await.unwrap();
        client.quit().await.unwrap();
        report
    };
    let report = tokio::time::timeout(BOUND, send).await.expect("send within the bound");
    assert_eq!(report.accepted().count(), 3);

    let dump = tokio::task::spawn_blocking({
        let dir = sinks.dump_dir.clone();
        let marker = marker.clone();
        move || interop::wait_for_dump(&dir, &marker, Duration::from_secs(10))
    })
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("no dump with {marker}"));
    let dump = String::from_utf8(dump).expect("the dump is the UTF-8 that was sent");
    let wire = String::from_utf8(record.lock().unwrap().clone()).unwrap();

    // The envelope records: exactly the arguments smtpkit wrote.
    let field = |name: &str| -> Vec<&str> { dump.lines().filter_map(|l| l.strip_prefix(name)).collect() };
    assert_eq!(field("X-Helo-Args: "), args(&wire, "EHLO "));
    assert_eq!(field("X-Mail-Args: "), args(&wire, "MAIL FROM:"));
    assert_eq!(field("X-Rcpt-Args: "), args(&wire, "RCPT TO:"));
    assert_eq!(args(&wire, "RCPT TO:").len(), 3, "{wire}");
    assert!(args(&wire, "MAIL FROM:")[0].contains("RET=HDRS"), "{wire}");

    // The message: what smtpkit wrote, dot-unstuffed, is what the caller gave, and the dump
    // holds it with the dump format's LF line ends, then the empty line.
    assert_eq!(unstuffed_payload(&wire), body);
    let received = dump.find("\nReceived: ").expect("the Received header") + 1;
    let after: Vec<&str> = dump[received..].splitn(4, '\n').collect();
    assert!(after[1].starts_with("\tby ") && after[2].starts_with('\t'), "{dump}");
    assert_eq!(after[3], format!("{}\n", body.replace("\r\n", "\n")));
}
