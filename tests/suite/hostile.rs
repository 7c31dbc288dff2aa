//! The hostile-server suite (RELIABILITY.md, "Cases"): the real client against the
//! in-process [`TestServer`] misbehaving on cue. Every case asserts the specific error
//! variant or outcome. Every test runs on tokio's paused clock over in-memory pipes, so
//! minutes of protocol time cost microseconds, and every wait is checked against the
//! configured timeout + 10%.

mod ambiguity;
mod bdat;
mod data;
mod desync;
mod faults;
mod input;
mod replies;
mod slow_link;
mod timeouts;
mod tls;

use std::future::Future;
use std::time::Duration;

use smtpkit::testing::{TestServer, TestServerBuilder};
use smtpkit::{Client, ClientBuilder, Envelope, Error, Phase, TlsPolicy};
use tokio::time::Instant;

/// Starts a server (certificates are generated even without TLS; cheap enough).
pub async fn start(builder: TestServerBuilder) -> TestServer {
    builder.start().await.expect("test server starts")
}

/// A plaintext client builder for servers without TLS.
pub fn plain() -> ClientBuilder {
    Client::builder("localhost").tls(TlsPolicy::Disabled)
}

/// A client builder that trusts only `server`'s CA, with the default policy (STARTTLS
/// required).
pub fn trusting(server: &TestServer) -> ClientBuilder {
    Client::builder("localhost")
        .without_native_roots()
        .add_root_pem(server.ca_pem().as_bytes())
        .expect("the test CA parses")
}

/// Connects `builder` to `server` over an in-memory pipe.
pub async fn connect(server: &TestServer, builder: ClientBuilder) -> Result<Client, Error> {
    builder.build()?.connect_with(server.connect_in_memory()).await
}

/// `a@example.com` to `b@example.com`.
pub fn env() -> Envelope {
    Envelope::parse("a@example.com", &["b@example.com"]).expect("valid envelope")
}

/// What the server received on connection `k`, as text (lossy).
pub fn received(server: &TestServer, k: usize) -> String {
    let all = server.received_bytes();
    String::from_utf8_lossy(all.get(k).map(Vec::as_slice).unwrap_or_default()).into_owned()
}

/// Runs `fut` and asserts it took at most `limit` + 10% of (paused) tokio time.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = fut.await;
    let waited = start.elapsed();
    assert!(waited <= limit + limit / 10, "waited {waited:?}, limit {limit:?} + 10%");
    out
}

/// Asserts `err` is `Error::Rejected` in `phase` with reply `code`.
#[track_caller]
pub fn assert_rejected(err: &Error, phase: Phase, code: u16) {
    match err {
        Error::Rejected { phase: p, reply, .. } if *p == phase && reply.code().0 == code => {}
        other => panic!("expected Rejected {{ {phase:?}, {code} }}, got {other:?}"),
    }
}

/// Asserts `err` is `Error::Ambiguous` whose cause satisfies `cause`.
#[track_caller]
pub fn assert_ambiguous(err: &Error, cause: impl Fn(&Error) -> bool) {
    match err {
        Error::Ambiguous { cause: c, .. } if cause(c) => {
            assert!(!err.is_transient() && !err.is_permanent(), "ambiguous is neither: {err:?}");
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
}
