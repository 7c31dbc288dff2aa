//! The transcripts of `tests/transcripts/` replayed over real sockets through both
//! clients: a scripted server thread plays the `S:` lines, each only once the client has
//! written exactly the `C:` lines before it, and at the end the client's bytes must be the
//! transcript's, byte for byte. The core run (`transcripts.rs`) checks the events; this one
//! checks that each driver puts the core's output on the wire, flight by flight.
//!
//! A transcript runs here when a client's API can express it: no TLS (`@tls`), no simulated
//! time (`@advance`), no `@wants`, no BDAT chunk size (the builder does not set it), and each
//! group of calls (`@send`s without a server line between them, sent with `send_many`)
//! has all its outcomes before the next call. After each call the client settles (writes
//! the `RSET` a failed transaction leaves queued), as a pool does.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use smtpkit::{Client, ClientBuilder, Envelope, Outgoing, TlsPolicy};

use super::blocking::Flavor;
use super::transcripts::{Action, Transcript, parse, transcript_files};

const WAIT: Duration = Duration::from_secs(10);

/// One call of the client's API.
enum Call {
    Send(Vec<Outgoing>),
    Noop,
    Rset,
    Quit,
    Vrfy(String),
}

/// The calls in order, or why the transcript cannot be driven through the API.
fn calls(t: &Transcript) -> Result<Vec<Call>, &'static str> {
    let mut calls: Vec<Call> = Vec::new();
    let mut owed = 0usize;
    let mut after_server = true;
    for step in &t.steps {
        let call = match &step.action {
            Action::Tls(_) | Action::Advance(_) | Action::Wants(_) => return Err("TLS, time or wants"),
            Action::Server(_) => {
                after_server = true;
                continue;
            }
            Action::Event(e) if e.starts_with("message") || e.starts_with("command") => {
                owed = owed.saturating_sub(1);
                continue;
            }
            Action::Send { from, to, body, opts } => {
                let to: Vec<&str> = to.iter().map(String::as_str).collect();
                let envelope = Envelope::parse(from, &to).map_err(|_| "envelope")?;
                let message = Outgoing::new(envelope, body.clone()).with_options(opts.clone());
                if let (false, Some(Call::Send(batch))) = (after_server, calls.last_mut()) {
                    batch.push(message);
                    owed += 1;
                    continue;
                }
                Call::Send(vec![message])
            }
            Action::Noop => Call::Noop,
            Action::Rset => Call::Rset,
            Action::Quit => Call::Quit,
            Action::Vrfy(what) => Call::Vrfy(what.clone()),
            _ => continue,
        };
        if owed > 0 {
            return Err("a call while earlier outcomes are pending");
        }
        owed = 1;
        after_server = false;
        calls.push(call);
    }
    Ok(calls)
}

fn builder(t: &Transcript, port: u16) -> Result<ClientBuilder, &'static str> {
    let c = &t.config;
    if c.tls != TlsPolicy::Disabled
        || c.bdat_chunk_size != smtpkit::proto::session::SessionConfig::default().bdat_chunk_size
    {
        return Err("TLS or BDAT chunk size");
    }
    let mut b = Client::builder("127.0.0.1")
        .port(port)
        .tls(TlsPolicy::Disabled)
        .pipelining(c.pipelining)
        .chunking(c.chunking)
        .allow_insecure_auth(c.allow_insecure_auth)
        .line_endings(c.line_endings)
        .ehlo_name(c.ehlo_name.clone())
        .mechanisms(&c.mechanisms)
        .timeouts(smtpkit::Timeouts::uniform(WAIT));
    if let Some(creds) = &c.credentials {
        b = b.credentials(creds.clone());
    }
    Ok(b)
}

/// Reads until `have` holds `want` octets (or the peer closes, or WAIT passes).
fn read_up_to(stream: &mut TcpStream, have: &mut Vec<u8>, want: usize) {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while have.len() < want && Instant::now() < deadline {
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => have.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

/// Plays the server's side; returns everything the client wrote, or the first mismatch.
fn serve(listener: TcpListener, steps: Vec<Action>) -> Result<Vec<u8>, String> {
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    let (mut got, mut expected) = (Vec::new(), Vec::new());
    for action in steps {
        match action {
            Action::Client(bytes) => expected.extend_from_slice(&bytes),
            Action::Server(bytes) => {
                read_up_to(&mut stream, &mut got, expected.len());
                if !got.starts_with(&expected) || got.len() != expected.len() {
                    return Err(format!(
                        "before a server line the client wrote\n{}\nexpected\n{}",
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&expected)
                    ));
                }
                // The client may have closed already; what it wrote is still judged.
                let _ = stream.write_all(&bytes);
            }
            Action::Eof => {
                read_up_to(&mut stream, &mut got, expected.len());
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            _ => {}
        }
    }
    // Everything after the last server line, until the client is done with the socket.
    read_up_to(&mut stream, &mut got, usize::MAX);
    Ok(got)
}

async fn drive(flavor: Flavor, builder: ClientBuilder, calls: Vec<Call>) {
    let Ok(mut conn) = flavor.connect(builder).await else { return };
    for call in calls {
        match call {
            Call::Send(batch) if batch.len() == 1 => {
                let _ = conn.send(batch.into_iter().next().unwrap()).await;
            }
            Call::Send(batch) => drop(conn.send_many(batch).await),
            Call::Noop => drop(conn.noop().await),
            Call::Rset => drop(conn.rset().await),
            Call::Vrfy(what) => drop(conn.vrfy(what).await),
            Call::Quit => return drop(conn.quit().await),
        }
        // What the session queued on its own (the RSET after a failure) goes out, as a
        // pool would have it.
        conn.settle().await;
    }
}

async fn replay(flavor: Flavor) {
    let mut ran = Vec::new();
    for path in transcript_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let t = parse(&name, &std::fs::read_to_string(&path).unwrap()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (Ok(calls), Ok(builder)) = (calls(&t), builder(&t, listener.local_addr().unwrap().port())) else {
            continue;
        };
        let steps: Vec<Action> = t.steps.iter().map(|s| s.action.clone()).collect();
        let expected: Vec<u8> = steps
            .iter()
            .filter_map(|a| match a {
                Action::Client(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let server = thread::spawn(move || serve(listener, steps));
        tokio::time::timeout(WAIT * 2, drive(flavor, builder, calls))
            .await
            .unwrap_or_else(|_| panic!("{name}: hung"));
        let got = tokio::task::spawn_blocking(move || server.join().unwrap()).await.unwrap();
        let got = got.unwrap_or_else(|e| panic!("{name} ({flavor:?}): {e}"));
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected), "{name} ({flavor:?})");
        ran.push(name);
    }
    eprintln!("{flavor:?}: {} transcripts over sockets", ran.len());
    // Most transcripts are expressible; a parser change that silently drops them fails here.
    assert!(ran.len() >= 30, "only {} transcripts ran: {ran:?}", ran.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_over_sockets_async_client() {
    replay(Flavor::Async).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_over_sockets_blocking_client() {
    replay(Flavor::Blocking).await
}
