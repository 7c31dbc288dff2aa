//! Dialing: Happy Eyeballs (RFC 8305) past a black-holed address, the error that lists
//! every address, the local bind address, the EHLO name, and the std dialer.
//!
//! A black hole is a loopback listener with a backlog of 0 whose one queue slot is taken
//! by a connection nobody accepts: further SYNs go unanswered, so a connect hangs (checked
//! by every test that uses one, as kernels differ).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use smtpkit::connect::{AttemptFailure, ConnectError, NetOptions};
use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope, Error, TlsPolicy};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A listening address that never completes a handshake, and what keeps it so.
struct BlackHole {
    addr: SocketAddr,
    _listener: TcpListener,
    _filler: TcpStream,
}

async fn black_hole() -> BlackHole {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = TcpStream::connect(addr).await.unwrap();
    // The precondition: a further connect really hangs here.
    let probe = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
    assert!(probe.is_err(), "the backlog-full listener answered a SYN on this kernel: no black hole");
    BlackHole { addr, _listener: listener, _filler: filler }
}

fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

async fn plain_server() -> TestServer {
    TestServer::builder().starttls(false).start().await.unwrap()
}

fn env() -> Envelope {
    Envelope::parse("a@example.com", &["b@example.com"]).unwrap()
}

#[tokio::test]
async fn happy_eyeballs_falls_back_from_a_black_hole_in_well_under_the_connect_timeout() {
    let hole = black_hole().await;
    let server = plain_server().await;
    let timeouts = smtpkit::Timeouts { connect: Duration::from_secs(30), ..Default::default() };
    let started = Instant::now();
    let mut client = Client::builder("localhost")
        .tls(TlsPolicy::Disabled)
        .timeouts(timeouts)
        .resolve_to([hole.addr, server.addr()])
        .connect()
        .await
        .unwrap();
    client.send(&env(), "Subject: he\r\n\r\nhi\r\n").await.unwrap();
    let elapsed = started.elapsed();
    client.quit().await.unwrap();
    assert_eq!(server.messages().len(), 1);
    // Not a speed assertion: without the race the connect would wait out its 30 s
    // deadline on the black hole first.
    assert!(elapsed < Duration::from_secs(10), "fallback took {elapsed:?}");
    eprintln!("happy eyeballs: delivered past a black-holed first address in {elapsed:?}");
}

#[tokio::test]
async fn the_error_lists_every_address_and_why() {
    let hole = black_hole().await;
    let closed = closed_port();
    let never = closed_port();
    let timeouts = smtpkit::Timeouts { connect: Duration::from_millis(700), ..Default::default() };
    let err = Client::builder("mx.test")
        .tls(TlsPolicy::Disabled)
        .timeouts(timeouts)
        .attempt_delay(Duration::from_secs(5))
        .resolve_to([closed, hole.addr, never])
        .connect()
        .await
        .unwrap_err();
    let Error::Connect(ConnectError::Unreachable(u)) = &err else { panic!("{err:?}") };
    let got: Vec<_> = u.attempts.iter().map(|a| (a.addr, a.failure.clone())).collect();
    // The refused one fails at once and the black hole starts immediately; its 5 s
    // attempt delay outlasts the deadline, so the third is never tried.
    assert_eq!(got.len(), 3, "{err}");
    assert!(matches!(got[0], (a, AttemptFailure::Io(_)) if a == closed), "{err}");
    assert!(matches!(got[1], (a, AttemptFailure::Timeout) if a == hole.addr), "{err}");
    assert!(matches!(got[2], (a, AttemptFailure::NotTried) if a == never), "{err}");
    let text = err.to_string();
    assert!(text.contains(&closed.to_string()) && text.contains(&hole.addr.to_string()), "{text}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn local_address_is_bound_and_of_the_right_family() {
    let server = plain_server().await;
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let client = Client::builder("127.0.0.1")
        .port(server.addr().port())
        .tls(TlsPolicy::Disabled)
        .local_address(local)
        .connect()
        .await
        .unwrap();
    client.quit().await.unwrap();
    let err = Client::builder("127.0.0.1")
        .port(server.addr().port())
        .tls(TlsPolicy::Disabled)
        .local_address("::1".parse().unwrap())
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("other address family"), "{err}");
}

#[tokio::test]
async fn ehlo_names_the_machine_or_the_local_address_never_localhost() {
    let server = plain_server().await;
    let client = Client::builder("127.0.0.1").port(server.addr().port()).tls(TlsPolicy::Disabled);
    client.connect().await.unwrap().quit().await.unwrap();
    let sent = String::from_utf8_lossy(&server.received_bytes()[0]).into_owned();
    let expected = smtpkit::connect::default_ehlo_name(Some("127.0.0.1".parse().unwrap()));
    assert!(sent.starts_with(&format!("EHLO {expected}\r\n")), "{sent}");
    assert!(!sent.to_ascii_lowercase().contains("localhost"), "{sent}");
    // A machine without a fully qualified name greets with the address literal.
    let dotted = expected.as_str().contains('.') && !expected.as_str().starts_with('[');
    assert!(dotted || expected.as_str() == "[127.0.0.1]", "{expected}");

    // Still overridable, localhost included.
    let name = smtpkit::EhloName::new("client.example").unwrap();
    let client =
        Client::builder("127.0.0.1").port(server.addr().port()).tls(TlsPolicy::Disabled).ehlo_name(name);
    client.connect().await.unwrap().quit().await.unwrap();
    assert!(String::from_utf8_lossy(&server.received_bytes()[1]).starts_with("EHLO client.example\r\n"));
}

#[tokio::test]
async fn the_std_dialer_races_the_same_way() {
    let hole = black_hole().await;
    let server = plain_server().await;
    let net = NetOptions { resolve: Some(vec![hole.addr, server.addr()]), ..NetOptions::default() };
    let started = Instant::now();
    let tcp = tokio::task::spawn_blocking(move || {
        let mut tcp =
            smtpkit::connect::blocking::dial(&net, "localhost", 25, Duration::from_secs(30)).unwrap();
        let mut greeting = [0u8; 4];
        std::io::Read::read_exact(&mut tcp, &mut greeting).unwrap();
        (tcp, greeting)
    })
    .await
    .unwrap();
    assert_eq!(&tcp.1, b"220 ");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    eprintln!("std dialer: past the black hole in {:?}", started.elapsed());
}
