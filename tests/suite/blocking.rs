//! One set of protocol cases, run for both clients: every case is written once against
//! [`Conn`] and the [`both!`] macro makes an async-client and a blocking-client test of it.
//! The blocking client runs on tokio's blocking threads while the in-process server runs on
//! the runtime, so the cases see the same servers, faults and assertions.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smtpkit::testing::{CertKind, Fault, FaultRule, Step, TestServer, TestServerBuilder};
use smtpkit::{
    Client, ClientBuilder, Credentials, Envelope, Error, Outgoing, Phase, Reply, SendReport, Timeouts,
    TlsPolicy, blocking,
};

use super::support::interop;
use super::transport::unique;

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the cases need from a client, implemented by both.
pub trait Conn: Send {
    fn send(&mut self, message: Outgoing) -> Fut<'_, Result<SendReport, Error>>;
    fn send_many(&mut self, messages: Vec<Outgoing>) -> Fut<'_, Vec<Result<SendReport, Error>>>;
    fn noop(&mut self) -> Fut<'_, Result<Reply, Error>>;
    fn rset(&mut self) -> Fut<'_, Result<Reply, Error>>;
    fn vrfy(&mut self, what: String) -> Fut<'_, Result<Reply, Error>>;
    fn quit(self: Box<Self>) -> Fut<'static, Result<(), Error>>;
    fn settle(&mut self) -> Fut<'_, bool>;
    fn is_tls(&self) -> bool;
    fn is_reusable(&self) -> bool;
    fn has_extension(&self, keyword: &str) -> bool;
}

impl Conn for Client {
    fn send(&mut self, m: Outgoing) -> Fut<'_, Result<SendReport, Error>> {
        Box::pin(async move { self.send_with(&m.envelope, m.message, m.options).await })
    }
    fn send_many(&mut self, messages: Vec<Outgoing>) -> Fut<'_, Vec<Result<SendReport, Error>>> {
        Box::pin(Client::send_many(self, messages.into_iter().map(|m| (m.envelope, m.message, m.options))))
    }
    fn noop(&mut self) -> Fut<'_, Result<Reply, Error>> {
        Box::pin(Client::noop(self))
    }
    fn rset(&mut self) -> Fut<'_, Result<Reply, Error>> {
        Box::pin(Client::rset(self))
    }
    fn vrfy(&mut self, what: String) -> Fut<'_, Result<Reply, Error>> {
        Box::pin(async move { Client::vrfy(self, &what).await })
    }
    fn quit(self: Box<Self>) -> Fut<'static, Result<(), Error>> {
        Box::pin(Client::quit(*self))
    }
    fn settle(&mut self) -> Fut<'_, bool> {
        Box::pin(Client::settle(self))
    }
    fn is_tls(&self) -> bool {
        Client::is_tls(self)
    }
    fn is_reusable(&self) -> bool {
        Client::is_reusable(self)
    }
    fn has_extension(&self, keyword: &str) -> bool {
        Client::has_extension(self, keyword)
    }
}

/// The blocking client, each call on a blocking thread.
struct Blocking(Option<blocking::Client>);

impl Blocking {
    fn call<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut blocking::Client) -> T + Send + 'static,
    ) -> Fut<'_, T> {
        let mut client = self.0.take().expect("a previous call panicked");
        Box::pin(async move {
            let (client, out) = tokio::task::spawn_blocking(move || {
                let out = op(&mut client);
                (client, out)
            })
            .await
            .unwrap();
            self.0 = Some(client);
            out
        })
    }
    fn client(&self) -> &blocking::Client {
        self.0.as_ref().expect("a previous call panicked")
    }
}

impl Conn for Blocking {
    fn send(&mut self, m: Outgoing) -> Fut<'_, Result<SendReport, Error>> {
        self.call(move |c| c.send_outgoing(m))
    }
    fn send_many(&mut self, messages: Vec<Outgoing>) -> Fut<'_, Vec<Result<SendReport, Error>>> {
        self.call(move |c| c.send_many(messages))
    }
    fn noop(&mut self) -> Fut<'_, Result<Reply, Error>> {
        self.call(blocking::Client::noop)
    }
    fn rset(&mut self) -> Fut<'_, Result<Reply, Error>> {
        self.call(blocking::Client::rset)
    }
    fn vrfy(&mut self, what: String) -> Fut<'_, Result<Reply, Error>> {
        self.call(move |c| c.vrfy(&what))
    }
    fn quit(mut self: Box<Self>) -> Fut<'static, Result<(), Error>> {
        let client = self.0.take().expect("a previous call panicked");
        Box::pin(async move { tokio::task::spawn_blocking(move || client.quit()).await.unwrap() })
    }
    fn settle(&mut self) -> Fut<'_, bool> {
        self.call(blocking::Client::settle)
    }
    fn is_tls(&self) -> bool {
        self.client().is_tls()
    }
    fn is_reusable(&self) -> bool {
        self.client().is_reusable()
    }
    fn has_extension(&self, keyword: &str) -> bool {
        self.client().has_extension(keyword)
    }
}

/// Which client a case runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Async,
    Blocking,
}

impl Flavor {
    pub async fn connect(self, builder: ClientBuilder) -> Result<Box<dyn Conn>, Error> {
        match self {
            Flavor::Async => Ok(Box::new(builder.connect().await?)),
            Flavor::Blocking => {
                let client =
                    tokio::task::spawn_blocking(move || builder.connect_blocking()).await.unwrap()?;
                Ok(Box::new(Blocking(Some(client))))
            }
        }
    }
}

/// An async-client and a blocking-client test per case.
macro_rules! both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn async_client() {
                super::$case(super::Flavor::Async).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn blocking_client() {
                super::$case(super::Flavor::Blocking).await
            }
        }
    )*};
}

both!(
    starttls_auth_and_a_pipelined_batch,
    implicit_tls_with_auth,
    opportunistic_tls_falls_back_to_plaintext,
    required_tls_refuses_a_server_without_starttls,
    untrusted_certificates_are_refused,
    per_recipient_results_and_all_refused,
    chunking_sends_bdat,
    dot_stuffing_round_trips,
    a_malformed_reply_is_a_protocol_error,
    a_close_after_the_dot_is_ambiguous,
    a_silent_server_times_out_at_its_phase,
    a_refused_auth_is_auth_failed,
    postfix_submission_starttls_auth,
    postfix_implicit_tls_and_a_batch,
    aiosmtpd_starttls_auth,
    aiosmtpd_lmtp,
);

const LONG: Duration = Duration::from_secs(20);

fn plain(server: &TestServer) -> ClientBuilder {
    Client::builder("127.0.0.1")
        .port(server.addr().port())
        .tls(TlsPolicy::Disabled)
        .timeouts(Timeouts::uniform(LONG))
}

/// STARTTLS (or implicit TLS) with the server's CA and its first user.
fn secure(server: &TestServer) -> ClientBuilder {
    ClientBuilder::from_url(&server.url_with_password())
        .unwrap()
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeouts(Timeouts::uniform(LONG))
}

fn msg(to: &[&str], i: usize) -> Outgoing {
    let envelope = Envelope::parse("from@example.com", to).unwrap();
    Outgoing::new(envelope, Bytes::from(format!("Subject: case {i}\r\n\r\nBody {i}\r\n")))
}

async fn start(builder: TestServerBuilder) -> TestServer {
    builder.start().await.unwrap()
}

async fn starttls_auth_and_a_pipelined_batch(flavor: Flavor) {
    let server = start(TestServer::builder().starttls(true).user("u", "p")).await;
    let mut conn = flavor.connect(secure(&server)).await.unwrap();
    assert!(conn.is_tls() && conn.has_extension("PIPELINING"));
    let results = conn.send_many((0..3).map(|i| msg(&["a@example.org"], i)).collect()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(conn.noop().await.unwrap().is_positive());
    conn.quit().await.unwrap();
    assert_eq!(server.wait_for_messages(3, LONG).await.len(), 3);
    assert_eq!(server.authentications().len(), 1);
    server.shutdown().await;
}

async fn implicit_tls_with_auth(flavor: Flavor) {
    let server = start(TestServer::builder().implicit_tls(true).user("u", "p")).await;
    let mut conn = flavor.connect(secure(&server)).await.unwrap();
    assert!(conn.is_tls());
    conn.send(msg(&["a@example.org"], 0)).await.unwrap();
    conn.quit().await.unwrap();
    server.shutdown().await;
}

async fn opportunistic_tls_falls_back_to_plaintext(flavor: Flavor) {
    let server = start(TestServer::builder()).await;
    let mut conn = flavor.connect(plain(&server).tls(TlsPolicy::Opportunistic)).await.unwrap();
    assert!(!conn.is_tls());
    conn.send(msg(&["a@example.org"], 0)).await.unwrap();
    conn.quit().await.unwrap();
    server.shutdown().await;
}

async fn required_tls_refuses_a_server_without_starttls(flavor: Flavor) {
    let server = start(TestServer::builder()).await;
    let err = flavor.connect(plain(&server).tls(TlsPolicy::Required)).await.err().unwrap();
    assert!(matches!(err, Error::ExtensionMissing(_)), "{err:?}");
    assert!(server.messages().is_empty());
    server.shutdown().await;
}

async fn untrusted_certificates_are_refused(flavor: Flavor) {
    for kind in [CertKind::SelfSigned, CertKind::Expired, CertKind::WrongName] {
        let server = start(TestServer::builder().starttls(true).certificate(kind)).await;
        let builder = plain(&server)
            .tls(TlsPolicy::Required)
            .without_native_roots()
            .add_root_pem(server.ca_pem().as_bytes())
            .unwrap();
        let err = flavor.connect(builder).await.err().unwrap();
        assert!(matches!(err, Error::Tls(_)), "{kind:?}: {err:?}");
        server.shutdown().await;
    }
}

async fn per_recipient_results_and_all_refused(flavor: Flavor) {
    let server =
        start(TestServer::builder().reject_recipient("bad@example.org", 550, "5.1.1 no such user")).await;
    let mut conn = flavor.connect(plain(&server)).await.unwrap();
    let report = conn.send(msg(&["a@example.org", "bad@example.org"], 0)).await.unwrap();
    let rejected: Vec<_> = report.rejected().map(|r| (r.address.to_string(), r.reply.code().0)).collect();
    assert_eq!(rejected, vec![("bad@example.org".to_string(), 550)]);
    let err = conn.send(msg(&["bad@example.org"], 1)).await.unwrap_err();
    assert!(matches!(err, Error::RecipientsRejected { .. }) && err.is_permanent(), "{err:?}");
    // The connection is usable after the refusal (its RSET completes with the next call).
    conn.send(msg(&["a@example.org"], 2)).await.unwrap();
    conn.quit().await.unwrap();
    assert_eq!(server.wait_for_messages(2, LONG).await.len(), 2);
    server.shutdown().await;
}

async fn chunking_sends_bdat(flavor: Flavor) {
    let server = start(TestServer::builder().chunking(true)).await;
    let mut conn = flavor.connect(plain(&server).chunking(true)).await.unwrap();
    conn.send(msg(&["a@example.org"], 0)).await.unwrap();
    conn.quit().await.unwrap();
    let got = server.wait_for_messages(1, LONG).await;
    assert_eq!(got[0].data, b"Subject: case 0\r\n\r\nBody 0\r\n");
    assert!(server.transcripts()[0].contains("BDAT"), "{}", server.transcripts()[0]);
    server.shutdown().await;
}

async fn dot_stuffing_round_trips(flavor: Flavor) {
    let server = start(TestServer::builder()).await;
    let mut conn = flavor.connect(plain(&server)).await.unwrap();
    let body = "Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nend\r\n";
    let envelope = Envelope::parse("from@example.com", &["a@example.org"]).unwrap();
    // A large body too, so the blocking driver's vectored writes cross several calls.
    let big = format!("Subject: big\r\n\r\n{}", ".line of text that is dot-stuffed\r\n".repeat(40_000));
    conn.send(Outgoing::new(envelope.clone(), body)).await.unwrap();
    conn.send(Outgoing::new(envelope, big.clone())).await.unwrap();
    conn.quit().await.unwrap();
    let got = server.wait_for_messages(2, LONG).await;
    assert_eq!(got[0].data, body.as_bytes());
    assert_eq!(got[1].data, big.as_bytes());
    server.shutdown().await;
}

async fn a_malformed_reply_is_a_protocol_error(flavor: Flavor) {
    let fault = FaultRule::new(Step::Mail, Fault::Raw(b"2x0 garbage\r\n".to_vec()));
    let server = start(TestServer::builder().fault(fault)).await;
    let mut conn = flavor.connect(plain(&server)).await.unwrap();
    let err = conn.send(msg(&["a@example.org"], 0)).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(!conn.is_reusable());
    server.shutdown().await;
}

async fn a_close_after_the_dot_is_ambiguous(flavor: Flavor) {
    let server =
        start(TestServer::builder().fault(FaultRule::new(Step::DataEnd, Fault::CommitThenClose))).await;
    let mut conn = flavor.connect(plain(&server)).await.unwrap();
    let err = conn.send(msg(&["a@example.org"], 0)).await.unwrap_err();
    assert!(err.is_ambiguous() && !err.is_transient(), "{err:?}");
    assert_eq!(err.recipients().len(), 1);
    assert_eq!(server.wait_for_messages(1, LONG).await.len(), 1, "the server did commit it");
    server.shutdown().await;
}

async fn a_silent_server_times_out_at_its_phase(flavor: Flavor) {
    let server = start(TestServer::builder().fault(FaultRule::new(Step::Rcpt(0), Fault::Silence))).await;
    let timeouts = Timeouts { rcpt: Duration::from_millis(300), ..Timeouts::uniform(LONG) };
    let mut conn = flavor.connect(plain(&server).timeouts(timeouts)).await.unwrap();
    let started = Instant::now();
    let err = conn.send(msg(&["a@example.org"], 0)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Rcpt)), "{err:?}");
    assert!(started.elapsed() < LONG, "the rcpt deadline, not another one");
    let server = start(TestServer::builder().fault(FaultRule::new(Step::Greeting, Fault::Silence))).await;
    let timeouts = Timeouts { greeting: Duration::from_millis(300), ..Timeouts::uniform(LONG) };
    let err = flavor.connect(plain(&server).timeouts(timeouts)).await.err().unwrap();
    assert!(matches!(err, Error::Timeout(Phase::Greeting)), "{err:?}");
    server.shutdown().await;
}

async fn a_refused_auth_is_auth_failed(flavor: Flavor) {
    let server = start(TestServer::builder().starttls(true).user("u", "p")).await;
    let builder = secure(&server).credentials(Credentials::new("u", "wrong"));
    let err = flavor.connect(builder).await.err().unwrap();
    assert!(matches!(err, Error::AuthFailed(_)), "{err:?}");
    let debug = format!("{:?} {}", err, err);
    assert!(!debug.contains("wrong"), "no secret in errors: {debug}");
    server.shutdown().await;
}

fn interop_builder(server: &interop::Server, addr: std::net::SocketAddr, tls: TlsPolicy) -> ClientBuilder {
    Client::builder("localhost")
        .port(addr.port())
        .tls(tls)
        .credentials(Credentials::new(server.user.clone(), server.password.clone()))
        .add_root_pem_file(&server.ca_pem_path)
        .unwrap()
        .timeouts(Timeouts::uniform(LONG))
}

fn marked(to: &[&str], marker: &str) -> Outgoing {
    let envelope = Envelope::parse("sender@example.test", to).unwrap();
    Outgoing::new(envelope, format!("Subject: {marker}\r\nMessage-ID: <{marker}@smtpkit.test>\r\n\r\nHi\r\n"))
}

async fn readback(server: interop::Server, marker: String, n: usize) -> Vec<interop::Delivered> {
    tokio::task::spawn_blocking(move || interop::wait_for_delivery(&server, &marker, n, LONG)).await.unwrap()
}

async fn postfix_submission_starttls_auth(flavor: Flavor) {
    let Some(server) = interop::postfix_or_skip("postfix_submission_starttls_auth") else { return };
    let builder = interop_builder(&server, server.submission.unwrap(), TlsPolicy::Required);
    let mut conn = flavor.connect(builder).await.unwrap();
    let marker = unique(&format!("both-postfix-submission-{flavor:?}"));
    let report = conn.send(marked(&["a@example.test", "reject@example.test"], &marker)).await.unwrap();
    assert_eq!((report.accepted().count(), report.rejected().count()), (1, 1));
    conn.quit().await.unwrap();
    let got = readback(server, marker, 1).await;
    assert_eq!(got[0].recipients, vec!["a@example.test".to_string()]);
}

async fn postfix_implicit_tls_and_a_batch(flavor: Flavor) {
    let Some(server) = interop::postfix_or_skip("postfix_implicit_tls_and_a_batch") else { return };
    let builder = interop_builder(&server, server.implicit_tls, TlsPolicy::Implicit);
    let mut conn = flavor.connect(builder).await.unwrap();
    let marker = unique(&format!("both-postfix-smtps-{flavor:?}"));
    let batch = (0..3).map(|i| marked(&["a@example.test"], &format!("{marker}-{i}"))).collect();
    let results = conn.send_many(batch).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    conn.quit().await.unwrap();
    assert_eq!(readback(server, marker, 3).await.len(), 3);
}

async fn aiosmtpd_starttls_auth(flavor: Flavor) {
    let Some(server) = interop::aiosmtpd_or_skip("aiosmtpd_starttls_auth") else { return };
    let builder = interop_builder(&server, server.starttls, TlsPolicy::Required);
    let mut conn = flavor.connect(builder).await.unwrap();
    let marker = unique(&format!("both-aiosmtpd-starttls-{flavor:?}"));
    conn.send(marked(&["a@example.test"], &marker)).await.unwrap();
    conn.quit().await.unwrap();
    assert_eq!(readback(server, marker, 1).await.len(), 1);
}

async fn aiosmtpd_lmtp(flavor: Flavor) {
    let Some(server) = interop::aiosmtpd_or_skip("aiosmtpd_lmtp") else { return };
    let lmtp = server.lmtp.unwrap();
    let builder = Client::builder("127.0.0.1").port(lmtp.port()).tls(TlsPolicy::Disabled).lmtp(true);
    let mut conn = flavor.connect(builder).await.unwrap();
    let marker = unique(&format!("both-aiosmtpd-lmtp-{flavor:?}"));
    let report = conn.send(marked(&["a@example.test", "b@example.test"], &marker)).await.unwrap();
    assert_eq!(report.accepted().count(), 2);
    conn.quit().await.unwrap();
    assert_eq!(readback(server, marker, 1).await.len(), 1);
}

/// Both drivers put the same bytes on the wire for the same calls: the core decides
/// everything, the drivers only move bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_drivers_write_the_same_bytes() {
    let mut wires = Vec::new();
    for flavor in [Flavor::Async, Flavor::Blocking] {
        let server = start(TestServer::builder().reject_recipient("bad@example.org", 550, "5.1.1 no")).await;
        let mut conn = flavor
            .connect(plain(&server).ehlo_name(smtpkit::EhloName::new("client.test").unwrap()))
            .await
            .unwrap();
        let _ = conn
            .send_many(vec![
                msg(&["a@example.org", "bad@example.org"], 0),
                msg(&["bad@example.org"], 1),
                msg(&["a@example.org"], 2),
            ])
            .await;
        conn.quit().await.unwrap();
        let _ = server.wait_for_messages(2, LONG).await;
        wires.push(server.received_bytes().concat());
        server.shutdown().await;
    }
    assert_eq!(String::from_utf8_lossy(&wires[0]), String::from_utf8_lossy(&wires[1]));
}

/// The README's blocking example, against real Postfix: STARTTLS + AUTH in a dozen lines.
#[test]
fn a_blocking_program_sends_through_starttls_and_auth_to_postfix() {
    let Some(server) =
        interop::postfix_or_skip("a_blocking_program_sends_through_starttls_and_auth_to_postfix")
    else {
        return;
    };
    let url = format!(
        "smtp://{}:{}@localhost:{}",
        server.user.replace('@', "%40"),
        server.password,
        server.submission.unwrap().port()
    );
    let marker = unique("blocking-readme");
    let body = format!("Subject: {marker}\r\n\r\nHello from a blocking program\r\n");
    // -- the program --
    let mut client = blocking::Client::from_url(&url)
        .unwrap()
        .add_root_pem_file(&server.ca_pem_path)
        .unwrap()
        .connect_blocking()
        .unwrap();
    let envelope = Envelope::parse("me@example.test", &["you@example.test"]).unwrap();
    let report = client.send(&envelope, body).unwrap();
    println!("queued: {}", report.reply);
    client.quit().unwrap();
    // -- end --
    assert_eq!(interop::wait_for_delivery(&server, &marker, 1, LONG).len(), 1);
}
