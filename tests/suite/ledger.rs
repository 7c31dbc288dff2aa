//! The delivery ledger (RELIABILITY.md, "Figures to reach"): hundreds of seeded sessions
//! against the in-process server with a fault at a random step or byte offset, each
//! sending a few messages with unique Message-IDs (DATA or, for a quarter of the sessions,
//! BDAT; an eighth over STARTTLS; pipelined or not; one by one or as a batch), then a
//! clean retry of what failed.
//!
//! Invariants, checked per message and per session:
//! - every message reported sent was committed by the server exactly once;
//! - every committed message was reported sent or ambiguous, and nothing is committed
//!   twice (the client never resends on its own; the retry only resends failures);
//! - ambiguous only when the fault fell after the client wrote the final dot (or BDAT
//!   LAST) and before its reply: the fault fired and was one that loses or withholds a
//!   reply, the server had answered that message's DATA with 354, it never acknowledged
//!   a commit, and at most one message per connection is ambiguous;
//! - ambiguous only if the write carrying the message's final dot (or the last octet of its
//!   BDAT LAST chunk) completed: the client's completed writes are recorded under the
//!   session, and the end of data must be in them;
//! - every session ends within the sum of its phase timeouts (paused clock);
//! - a TLS peer that drops the connection without close_notify after `221` still gives a
//!   clean QUIT.
//!
//! In one session in six the caller cuts a send: the `send` (or `send_many`) future is
//! dropped after a random number of polls, then the caller calls `quit()` or `noop()`.
//! The caller-cut rule, checked when the cut happened (the send was still pending):
//! - the follow-up, and every later send on that client, returns `Error::Cancelled` on
//!   its first poll;
//! - nothing is written after the cut: the client's completed writes when the session
//!   ends are exactly those at the cut, and the server received a prefix of them (so no
//!   command line and no second end of data follows the cut);
//! - a message whose future was dropped ("cut") got no outcome, so the caller never
//!   resends it; the server commits it at most once, only on the cut connection, and only
//!   if its end of data was among the client's completed writes at the cut;
//! - messages after the cut failed `Cancelled`, were never committed on the cut connection,
//!   and the clean retry delivers them once.
//!
//! So every committed message was reported sent or ambiguous, or was cut by the caller
//! after its end of data was written.
//!
//! Some sessions authenticate first (AUTH PLAIN, faults at the AUTH step too), and one
//! message in eight carries a body that spans many writes (64 KB to 1 MB, and now and then
//! 8 MB), with byte-offset faults anywhere in it.
//!
//! 500 sessions in the normal suite. The soak (20,000 sessions, about 10 minutes in a
//! release build on two cores):
//! `SMTPKIT_LEDGER_SESSIONS=20000 cargo test --release --all-features --test suite delivery_ledger -- --nocapture`
//! (`SMTPKIT_LEDGER_SEED` picks another seed).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use smtpkit::testing::{Fault, FaultRule, Step, TestServer};
use smtpkit::{Client, Credentials, Envelope, Error, MessageOptions, Timeouts, TlsPolicy};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::time::Instant;

use crate::cancel::poll_at_most;

/// The in-memory link with a record of every octet whose write completed, in order.
struct Recorder {
    inner: DuplexStream,
    written: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Recorder {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.written.lock().expect("not poisoned").extend_from_slice(&buf[..n]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// True when the client's completed writes hold the end of data of the message whose
/// Message-ID is `id`: its final dot, or (`bdat`) the last octet of its `BDAT n LAST`
/// chunk.
fn end_of_data_written(written: &[u8], id: &str, bdat: bool) -> bool {
    let Some(at) = find(written, id.as_bytes(), 0) else { return false };
    if !bdat {
        return find(written, b"\r\n.\r\n", at).is_some();
    }
    // From the chunk that carries the Message-ID.
    let mut from = written[..at].windows(5).rposition(|w| w == b"BDAT ").unwrap_or(at);
    while let Some(i) = find(written, b"BDAT ", from) {
        from = i + 1;
        let Some(end) = find(written, b"\r\n", i) else { return false };
        let line = String::from_utf8_lossy(&written[i..end]);
        if let Some(n) = line.strip_prefix("BDAT ").and_then(|l| l.strip_suffix(" LAST")) {
            return n.parse::<usize>().is_ok_and(|n| end + 2 + n <= written.len());
        }
    }
    false
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// SplitMix64: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

/// What one session does.
#[derive(Debug, Clone)]
struct Plan {
    step: Step,
    fault: Fault,
    messages: usize,
    batch: bool,
    pipelining: bool,
    chunking: bool,
    starttls: bool,
    auth: bool,
    padding: Vec<usize>,
    cut: Option<Cut>,
}

/// The caller drops the send of message `message` (or, in a batch, the `send_many`)
/// after `polls` polls, then calls `quit()` (`then_quit`) or `noop()`.
#[derive(Debug, Clone, Copy)]
struct Cut {
    message: usize,
    polls: usize,
    then_quit: bool,
}

fn plan(rng: &mut Rng) -> Plan {
    let chunking = rng.below(4) == 0;
    let starttls = rng.below(8) == 0;
    let auth = rng.below(4) == 0;
    let messages = 1 + rng.below(4) as usize;
    // One body in eight spans many writes; now and then one is 8 MB.
    let padding: Vec<usize> = (0..messages)
        .map(|_| match rng.below(400) {
            0 => 8_400_000,
            1..=50 => rng.pick(&[64_000, 300_000, 1_100_000]),
            _ => rng.below(400) as usize,
        })
        .collect();
    let longest = padding.iter().copied().max().unwrap_or(0) as u64;
    let step = match rng.below(11) {
        10 if auth => Step::Auth,
        10 => Step::Data,
        4 | 5 if chunking => rng.pick(&[Step::Bdat(0), Step::BdatLast]),
        1 if starttls => Step::StartTls,
        0 => Step::Greeting,
        1 => Step::Ehlo,
        2 => Step::Mail,
        3 => Step::RcptAny,
        4 => Step::Data,
        5 | 6 => Step::DataEnd,
        7 => Step::Rset,
        _ => Step::Command(rng.below(16) as usize),
    };
    let secs = |s: u64| Duration::from_secs(s);
    let fault = match rng.below(12) {
        0 => Fault::Close,
        1 => Fault::CloseAfterBytes(rng.below(700) as usize),
        2 => Fault::CloseAfterBytes(rng.below(longest + 700) as usize),
        3 => Fault::CommitThenClose,
        4 => Fault::Silence,
        5 => Fault::Reply { code: rng.pick(&[421, 450, 451, 452]), text: "4.3.0 later".into() },
        6 => Fault::Reply { code: rng.pick(&[500, 550, 552, 554]), text: "5.7.1 no".into() },
        7 => Fault::Delay(secs(rng.pick(&[1, 30, 119, 121, 179, 181, 299, 301, 599, 601]))),
        8 => Fault::Raw(rng.pick(&[&b"garbage\r\n"[..], b"250-partial\r\n", b"\xff\xfe\r\n", b"2"]).to_vec()),
        9 => Fault::StopReading,
        10 => Fault::Trickle(secs(rng.pick(&[1, 5, 20]))),
        _ => Fault::Unsolicited421 { idle: Duration::ZERO },
    };
    // TLS EOF without close_notify after 221.
    let (step, fault) =
        if starttls && rng.below(4) == 0 { (Step::Quit, Fault::ReplyThenDrop) } else { (step, fault) };
    let batch = rng.below(2) == 0;
    let pipelining = rng.below(5) != 0;
    // One session in six is cut by the caller. A short send completes in 3 to 6 polls, a
    // long body takes more.
    let cut = (rng.below(6) == 0).then(|| {
        let message = rng.below(messages as u64) as usize;
        let most = if padding[message] > 10_000 { 48 } else { 3 };
        Cut { message, polls: 1 + rng.below(most) as usize, then_quit: rng.below(2) == 0 }
    });
    Plan { step, fault, messages, batch, pipelining, chunking, starttls, auth, padding, cut }
}

/// Faults that can lose or withhold the reply to a dot (the only ones that may make a
/// message ambiguous). Plain 4xx/5xx/421 replies never can.
fn may_withhold(fault: &Fault) -> bool {
    !matches!(fault, Fault::Reply { .. } | Fault::Unsolicited421 { .. })
}

/// Faults under which the server may commit without the client hearing 2xx in time.
/// A `Raw` reply starting with `2` commits too, e.g. `250-partial` never finished.
fn may_commit_silently(fault: &Fault) -> bool {
    match fault {
        Fault::CommitThenClose | Fault::Delay(_) | Fault::Trickle(_) => true,
        Fault::Raw(bytes) => bytes.first() == Some(&b'2'),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Sent,
    Ambiguous,
    Failed(String),
    /// The caller dropped the future before it gave an outcome.
    Cut,
}

fn outcome(result: &Result<smtpkit::SendReport, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Sent,
        Err(e) if e.is_ambiguous() => Outcome::Ambiguous,
        Err(e) => Outcome::Failed(format!("{e}")),
    }
}

fn message_id(session: usize, k: usize) -> String {
    format!("<ledger-{session}-{k}@smtpkit.test>")
}

fn body(session: usize, k: usize, padding: usize) -> Bytes {
    let mut text = format!("Message-ID: {}\r\nSubject: ledger {session}/{k}\r\n\r\n", message_id(session, k));
    // Padding lines move the fault's byte offsets around; some start with a dot.
    let mut left = padding;
    let mut i = 0;
    while left > 0 {
        let n = left.min(70);
        text.push_str(if (n + i) % 3 == 0 { "." } else { "p" });
        text.push_str(&"x".repeat(n.saturating_sub(1)));
        text.push_str("\r\n");
        left -= n;
        i += 1;
    }
    Bytes::from(text)
}

fn envelope() -> Envelope {
    Envelope::parse("ledger@example.com", &["rcpt@example.com"]).expect("valid envelope")
}

/// Sends `items` over `client` per `batch`, returning one outcome per message.
async fn send_all(client: &mut Client, items: Vec<Bytes>, batch: bool) -> Vec<Outcome> {
    if batch {
        let work = items.into_iter().map(|b| (envelope(), b, MessageOptions::default()));
        client.send_many(work).await.iter().map(outcome).collect()
    } else {
        let mut out = Vec::new();
        for b in items {
            out.push(outcome(&client.send(&envelope(), b).await));
        }
        out
    }
}

/// Sends `items` like [`send_all`], but drops the future per `cut`, then makes the
/// follow-up call (`starttls`: see below for `quit()`). Returns the outcomes, when the cut fell while the send was pending how
/// many octets the client had written by then, and otherwise the result of the usual
/// `quit()` (if the client was still reusable). Asserts the follow-up and
/// every later send fail `Cancelled` on their first poll (under TLS, `quit()` within the
/// 1 s bound of its transport shutdown).
async fn send_cut(
    mut client: Client,
    items: Vec<Bytes>,
    (batch, starttls): (bool, bool),
    cut: Cut,
    written: &Mutex<Vec<u8>>,
    ctx: &str,
) -> (Vec<Outcome>, Option<usize>, Option<Result<(), Error>>) {
    let n = items.len();
    let mut out = Vec::new();
    let mut at = None;
    if batch {
        let work = items.into_iter().map(|b| (envelope(), b, MessageOptions::default()));
        match poll_at_most(client.send_many(work), cut.polls).await {
            Some(results) => out.extend(results.iter().map(outcome)),
            None => out = vec![Outcome::Cut; n],
        }
        at = out.first().is_some_and(|o| *o == Outcome::Cut).then(|| written.lock().expect("ok").len());
    } else {
        for (k, b) in items.into_iter().enumerate() {
            if at.is_some() {
                // After the cut: fails at once, writes nothing.
                let r = poll_at_most(client.send(&envelope(), b), 1).await;
                assert!(matches!(r, Some(Err(Error::Cancelled))), "{ctx}: send after the cut: {r:?}");
                out.push(Outcome::Failed("cancelled".into()));
            } else if k == cut.message {
                match poll_at_most(client.send(&envelope(), b), cut.polls).await {
                    Some(r) => out.push(outcome(&r)),
                    None => {
                        out.push(Outcome::Cut);
                        at = Some(written.lock().expect("ok").len());
                    }
                }
            } else {
                out.push(outcome(&client.send(&envelope(), b).await));
            }
        }
    }
    if at.is_none() {
        let goodbye = if client.is_reusable() { Some(client.quit().await) } else { None };
        return (out, None, goodbye);
    }
    assert!(client.is_cancelled() && !client.is_reusable(), "{ctx}: not cancelled after the cut");
    if cut.then_quit && starttls {
        // `quit()` writes nothing but shuts the transport down: under TLS that is a
        // close_notify, which waits (at most 1 s) for a peer that stopped reading.
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(2), client.quit()).await;
        assert!(matches!(r, Ok(Err(Error::Cancelled))), "{ctx}: quit after the cut: {r:?}");
        assert!(
            started.elapsed() <= Duration::from_secs(1),
            "{ctx}: quit after the cut took {:?}",
            started.elapsed()
        );
    } else if cut.then_quit {
        let r = poll_at_most(client.quit(), 1).await;
        assert!(matches!(r, Some(Err(Error::Cancelled))), "{ctx}: quit after the cut: {r:?}");
    } else {
        let r = poll_at_most(client.noop(), 1).await;
        assert!(matches!(r, Some(Err(Error::Cancelled))), "{ctx}: noop after the cut: {r:?}");
        drop(client);
    }
    (out, at, None)
}

/// Under TLS the octets after a cut may only be the transport shutdown: rustls flushes the
/// records it sealed before the cut (plaintext the driver had handed over, so the server
/// sees a longer prefix of the same flight, never a new one) and then a close_notify. From
/// the raw link this is checked as framing: from the STARTTLS handshake on, the stream
/// parses as whole TLS records (no plaintext after the cut), and when it ends on a record
/// boundary the last one is alert-sized (two octets of alert, one of content type, a
/// 16-octet tag: 19; a command such as `QUIT` CRLF would make 23). A stream that ends
/// inside a record is a flush cut short by the shutdown's 1 s bound.
fn tls_shutdown_only(written: &[u8], at: usize) -> bool {
    let Some(mut pos) = find(written, b"STARTTLS\r\n", 0).map(|i| i + b"STARTTLS\r\n".len()) else {
        return false;
    };
    let mut last = None;
    while pos + 5 <= written.len() {
        let header = &written[pos..pos + 5];
        if !(0x14..=0x17).contains(&header[0]) || header[1] != 3 {
            return false;
        }
        last = Some(header.to_vec());
        pos += 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
    }
    let on_boundary = pos == written.len();
    written.len() > at && (!on_boundary || last.as_deref() == Some(&[0x17, 0x03, 0x03, 0x00, 0x13][..]))
}

/// No octet was written after the cut (the client is gone by now) but, under TLS, the
/// transport shutdown ([`tls_shutdown_only`]); and the server received a prefix of what
/// was written (for plain sessions, where both are cleartext).
fn check_nothing_after_cut(server: &TestServer, conn: usize, written: &[u8], at: usize, p: &Plan, ctx: &str) {
    let after = written.len() - at;
    let shutdown = p.starttls && tls_shutdown_only(written, at);
    assert!(after == 0 || shutdown, "{ctx}: {after} octets written after the cut");
    if !p.starttls {
        let got = &server.received_bytes_with_secrets()[conn];
        assert!(written.starts_with(got), "{ctx}: the server received octets the client never wrote");
    }
}

fn sum(t: &Timeouts) -> Duration {
    t.connect
        + t.tls_handshake
        + t.greeting
        + t.command
        + t.mail
        + t.rcpt
        + t.data_init
        + t.data_block
        + t.data_end
}

#[derive(Debug, Default)]
struct Figures {
    sessions: usize,
    faults_fired: usize,
    messages: usize,
    sent: usize,
    ambiguous: usize,
    failed: usize,
    retried_sent: usize,
    committed: usize,
    /// Sessions whose send the caller cut while it was pending.
    cuts: usize,
    /// Messages whose future was dropped, and those of them the server committed.
    cut_messages: usize,
    cut_committed: usize,
    checks: usize,
}

#[tokio::test(start_paused = true)]
async fn delivery_ledger() {
    let sessions: usize = env_or("SMTPKIT_LEDGER_SESSIONS", 500);
    let seed: u64 = env_or("SMTPKIT_LEDGER_SEED", 0x5eed_1ed6_e700_0001);
    let mut rng = Rng(seed);
    let plans: Vec<Plan> = (0..sessions).map(|_| plan(&mut rng)).collect();
    let timeouts = Timeouts::default();
    let bound = sum(&timeouts);
    let mut figures = Figures { sessions, ..Figures::default() };
    // A fresh server per block of sessions keeps its records (and the checks) linear.
    for (block, plans) in plans.chunks(BLOCK).enumerate() {
        run_block(block * BLOCK, plans, seed, bound, &mut figures).await;
    }
    eprintln!(
        "ledger: {} sessions ({} faults fired, {} cut by the caller), {} messages: {} sent, {} ambiguous, \
         {} failed (all {} sent on retry), {} cut ({} of them committed), {} committed by the server; \
         {} invariant checks",
        figures.sessions,
        figures.faults_fired,
        figures.cuts,
        figures.messages,
        figures.sent,
        figures.ambiguous,
        figures.failed,
        figures.retried_sent,
        figures.cut_messages,
        figures.cut_committed,
        figures.committed,
        figures.checks
    );
    // The run exercised every outcome (cuts need enough sessions to be drawn).
    assert!(figures.sent > 0 && figures.ambiguous > 0 && figures.failed > 0, "{figures:?}");
    assert!(sessions < 100 || figures.cuts > 0, "{figures:?}");
    assert_eq!(figures.messages, figures.sent + figures.ambiguous + figures.failed + figures.cut_messages);
}

/// Sessions per server.
const BLOCK: usize = 100;

async fn run_block(first: usize, plans: &[Plan], seed: u64, bound: Duration, figures: &mut Figures) {
    // Session i faults on connection 2i, once; connection 2i+1 is its clean retry.
    let base =
        TestServer::builder().chunking(true).starttls(true).user("ledger", "pw").auth_requires_tls(false);
    let builder = plans
        .iter()
        .enumerate()
        .fold(base, |b, (i, p)| b.fault(FaultRule::new(p.step, p.fault.clone()).on_connection(2 * i).once()));
    let server = builder.start().await.expect("server");
    let (sent_before, retried_before, ambiguous_before, cut_before) =
        (figures.sent, figures.retried_sent, figures.ambiguous, figures.cut_messages);
    for (i, p) in plans.iter().enumerate() {
        let session = first + i;
        let ctx = format!("seed {seed:#x} session {session} {p:?}");
        let builder = if p.starttls {
            Client::builder("localhost")
                .without_native_roots()
                .add_root_pem(server.ca_pem().as_bytes())
                .expect("test CA")
                .tls(TlsPolicy::Required)
        } else {
            Client::builder("localhost").tls(TlsPolicy::Disabled)
        };
        let builder = builder.pipelining(p.pipelining).chunking(p.chunking);
        let builder = if p.auth {
            builder.credentials(Credentials::new("ledger", "pw")).allow_insecure_auth(true)
        } else {
            builder
        };
        let connector = builder.build().expect("builder");
        let items: Vec<Bytes> = (0..p.messages).map(|k| body(session, k, p.padding[k])).collect();

        // First attempt, on the faulty connection.
        let started = Instant::now();
        let written = Arc::new(Mutex::new(Vec::new()));
        let link = Recorder { inner: server.connect_in_memory(), written: written.clone() };
        let mut quit = None;
        let mut cut_at = None;
        let first = match (connector.connect_with(link).await, p.cut) {
            (Ok(client), Some(cut)) => {
                let (out, at, goodbye) =
                    send_cut(client, items.clone(), (p.batch, p.starttls), cut, &written, &ctx).await;
                (cut_at, quit) = (at, goodbye);
                out
            }
            (Ok(mut client), None) => {
                let out = send_all(&mut client, items.clone(), p.batch).await;
                if client.is_reusable() {
                    quit = Some(client.quit().await);
                }
                out
            }
            (Err(e), _) => vec![Outcome::Failed(format!("connect: {e}")); p.messages],
        };
        if matches!((p.step, &p.fault), (Step::Quit, Fault::ReplyThenDrop)) && cut_at.is_none() {
            assert!(matches!(quit, Some(Ok(()))), "{ctx}: 221 then EOF without close_notify: {quit:?}");
            figures.checks += 1;
        }
        let written = written.lock().expect("not poisoned").clone();
        if let Some(at) = cut_at {
            check_nothing_after_cut(&server, 2 * i, &written, at, p, &ctx);
            figures.cuts += 1;
            // The follow-up (asserted in `send_cut`), nothing after the cut, the prefix.
            figures.checks += 3;
        }
        let took = started.elapsed();
        assert!(took <= bound, "{ctx}: took {took:?}, bound {bound:?}");
        figures.checks += 1;

        // Clean retry of what failed (never of what is ambiguous or sent).
        let retry: Vec<usize> = (0..p.messages).filter(|&k| matches!(first[k], Outcome::Failed(_))).collect();
        let started = Instant::now();
        let mut client = connector.connect_with(server.connect_in_memory()).await.expect("clean connection");
        let again = send_all(&mut client, retry.iter().map(|&k| items[k].clone()).collect(), p.batch).await;
        client.quit().await.expect("clean quit");
        assert!(started.elapsed() <= bound, "{ctx}: retry too slow");
        assert!(again.iter().all(|o| *o == Outcome::Sent), "{ctx}: retry {again:?}");

        // Ground truth from the server.
        let fired = server.fault_uses()[i] == 1;
        figures.faults_fired += usize::from(fired);
        let all = server.all_messages();
        let transcript = &server.transcripts()[2 * i];
        let data_starts = transcript.lines().filter(|l| l.starts_with("S: 354")).count();
        let mut ambiguous_here = 0;
        for (k, got) in first.iter().enumerate() {
            let id = message_id(session, k);
            let mine: Vec<_> =
                all.iter().filter(|m| m.header("message-id").as_deref() == Some(id.as_str())).collect();
            let committed: Vec<_> = mine.iter().filter(|m| m.committed).collect();
            let committed_first = committed.iter().filter(|m| m.connection == 2 * i).count();
            let committed_retry = committed.iter().filter(|m| m.connection == 2 * i + 1).count();
            let ctx = format!("{ctx} message {k} {got:?} first={first:?}");
            assert!(committed.len() <= 1, "{ctx}: committed {} times", committed.len());
            match got {
                Outcome::Sent => {
                    assert_eq!(
                        (committed_first, committed_retry),
                        (1, 0),
                        "{ctx}: sent must be committed once"
                    );
                }
                Outcome::Failed(_) => {
                    assert_eq!(committed_first, 0, "{ctx}: a failed message was committed");
                    assert_eq!(committed_retry, 1, "{ctx}: the retry must commit it once");
                }
                Outcome::Cut => {
                    let before = &written[..cut_at.expect("a cut outcome has a cut")];
                    assert_eq!(committed_retry, 0, "{ctx}: a cut message is never resent");
                    if committed_first == 1 {
                        figures.cut_committed += 1;
                        // Under STARTTLS the record is ciphertext after the handshake.
                        assert!(
                            p.starttls || end_of_data_written(before, &id, p.chunking),
                            "{ctx}: cut and committed, but its end of data was not written before the cut"
                        );
                    }
                    figures.cut_messages += 1;
                }
                Outcome::Ambiguous => {
                    ambiguous_here += 1;
                    // Under STARTTLS the record is ciphertext after the handshake.
                    assert!(
                        p.starttls || end_of_data_written(&written, &id, p.chunking),
                        "{ctx}: ambiguous, but its end of data was never written"
                    );
                    assert!(fired && may_withhold(&p.fault), "{ctx}: ambiguous without a reply-losing fault");
                    assert_eq!(committed_retry, 0, "{ctx}: ambiguous messages are never resent");
                    let sent_before = first[..k].iter().filter(|o| **o == Outcome::Sent).count();
                    // With DATA the body and dot follow the server's 354; a pipelined BDAT
                    // has no such marker.
                    if !p.chunking {
                        assert!(data_starts > sent_before, "{ctx}: ambiguous before 354\n{transcript}");
                    }
                    if committed_first == 1 {
                        assert!(
                            may_commit_silently(&p.fault),
                            "{ctx}: committed and acknowledged, yet ambiguous"
                        );
                    }
                }
            }
            figures.checks += 4;
        }
        assert!(ambiguous_here <= 1, "{ctx}: {ambiguous_here} ambiguous messages on one connection");
        if !fired && cut_at.is_none() {
            assert!(first.iter().all(|o| *o == Outcome::Sent), "{ctx}: no fault, yet {first:?}");
        }
        figures.messages += p.messages;
        figures.sent += first.iter().filter(|o| **o == Outcome::Sent).count();
        figures.ambiguous += ambiguous_here;
        figures.failed += retry.len();
        figures.retried_sent += again.len();
    }
    let committed = server.messages().len();
    figures.committed += committed;
    // Every committed message is accounted for: sent first time, sent on retry, or one of
    // the ambiguous or caller-cut ones the server happened to keep.
    let (sent, retried, ambiguous, cut) = (
        figures.sent - sent_before,
        figures.retried_sent - retried_before,
        figures.ambiguous - ambiguous_before,
        figures.cut_messages - cut_before,
    );
    assert!(committed >= sent + retried && committed <= sent + retried + ambiguous + cut, "{figures:?}");
    figures.checks += 1;
}
