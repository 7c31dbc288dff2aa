//! The dialer over `std::net`, for the blocking client: the same Happy Eyeballs race and
//! proxy exchange as the tokio dialer, with one thread per attempt (a std connect cannot
//! be polled) and socket timeouts for the proxy exchange.
//!
//! Name resolution uses the system resolver (`ToSocketAddrs`) on a thread of its own, so
//! the connect deadline holds even when the resolver hangs.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::error::{
    Attempt, AttemptFailure, ConnectError, Evidence, ProxyError, ProxyReason, ProxyStep, TlsModeHint,
    Unreachable, WrongTlsMode,
};
use super::eyeballs::{Next, Race};
use super::hint;
use super::{NetOptions, Tunnel};

/// Opens a TCP connection to `host:port` within `timeout`, through the proxy when one is
/// set. TCP_NODELAY is on; the socket's read and write timeouts are left unset.
pub fn dial(net: &NetOptions, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let deadline = Instant::now() + timeout;
    let tcp = match &net.proxy {
        None => connect_host(net, host, port, deadline)?,
        Some(proxy) => {
            let tcp = connect_host(net, &proxy.host, proxy.port, deadline).map_err(|e| ProxyError {
                proxy: proxy.to_string(),
                step: ProxyStep::Connect,
                reason: ProxyReason::Io(e.to_string()),
            })?;
            run_tunnel(tcp, Tunnel::new(proxy, host, port)?, deadline)?
        }
    };
    let unreachable = |e: std::io::Error| Unreachable {
        host: host.to_string(),
        attempts: Vec::new(),
        resolve: Some(format!("socket set-up: {e}")),
    };
    tcp.set_nodelay(true).map_err(unreachable)?;
    tcp.set_read_timeout(None).and_then(|()| tcp.set_write_timeout(None)).map_err(unreachable)?;
    Ok(tcp)
}

fn connect_host(
    net: &NetOptions,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<TcpStream, Unreachable> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let unreachable =
        |resolve: Option<String>, attempts| Unreachable { host: host.to_string(), attempts, resolve };
    let addrs: Vec<SocketAddr> = match &net.resolve {
        Some(addrs) => addrs.clone(),
        None => resolve(host, port, deadline).map_err(|e| unreachable(Some(e), Vec::new()))?,
    };
    race(&addrs, net, deadline).map_err(|attempts| unreachable(None, attempts))
}

/// Resolves on a thread of its own, so a hanging resolver costs at most the connect
/// deadline (std's resolver takes no timeout); the thread ends when the resolver gives up.
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, String> {
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::spawn(move || tx.send((name.as_str(), port).to_socket_addrs().map(Iterator::collect)));
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// RFC 8305 section 5 with threads: a connect that wins after the race is over finds the
/// channel closed and drops its socket.
fn race(addrs: &[SocketAddr], net: &NetOptions, deadline: Instant) -> Result<TcpStream, Vec<Attempt>> {
    let (tx, rx) = mpsc::channel();
    let mut race = Race::new(addrs, net.attempt_delay(), Instant::now(), deadline);
    // Bounded: each turn starts an attempt, ends one, or passes a start time or the deadline.
    loop {
        let now = Instant::now();
        match race.next(now) {
            Next::Start(addr) => {
                let (tx, bind, left) = (tx.clone(), net.bind, deadline.saturating_duration_since(now));
                std::thread::spawn(move || {
                    let _ = tx.send((addr, connect_one(addr, bind, left)));
                });
            }
            Next::GiveUp => return Err(race.failures()),
            Next::WaitUntil(at) => match rx.recv_timeout(at.saturating_duration_since(now)) {
                Ok((_, Ok(tcp))) => return Ok(tcp),
                Ok((addr, Err(e))) => race.failed(addr, AttemptFailure::Io(Arc::new(e)), Instant::now()),
                Err(_) => {}
            },
        }
    }
}

fn connect_one(addr: SocketAddr, bind: Option<IpAddr>, timeout: Duration) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = bind {
        if ip.is_ipv4() != addr.is_ipv4() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("local address {ip} is of the other address family"),
            ));
        }
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    // A zero timeout is an error for connect_timeout: the deadline has just passed.
    socket.connect_timeout(&addr.into(), timeout.max(Duration::from_millis(1)))?;
    Ok(socket.into())
}

fn run_tunnel(mut tcp: TcpStream, mut tunnel: Tunnel, deadline: Instant) -> Result<TcpStream, ConnectError> {
    let mut buf = [0u8; 512];
    let io = |tunnel: &Tunnel, e: std::io::Error| {
        let timed_out = matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
        tunnel.fail(if timed_out { ProxyReason::Timeout } else { ProxyReason::Io(e.to_string()) })
    };
    // Bounded: every turn reads at least one octet of an answer the exchange caps.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(tunnel.fail(ProxyReason::Timeout).into());
        }
        tcp.set_read_timeout(Some(left))
            .and_then(|()| tcp.set_write_timeout(Some(left)))
            .map_err(|e| io(&tunnel, e))?;
        while let Some(out) = tunnel.poll_transmit() {
            tcp.write_all(&out).map_err(|e| io(&tunnel, e))?;
        }
        if tunnel.is_done() {
            return Ok(tcp);
        }
        let want = tunnel.read_limit().clamp(1, buf.len());
        match tcp.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => {
                return Err(tunnel.fail(ProxyReason::Io("the proxy closed the connection".into())).into());
            }
            Ok(n) => tunnel.handle_input(buf.get(..n).unwrap_or_default())?,
            Err(e) => return Err(io(&tunnel, e).into()),
        }
    }
}

/// Before the handshake of a plain (STARTTLS) connection: waits up to
/// [`hint::SILENCE_PROBE_AFTER`] for the first greeting octets without consuming them; TLS
/// records mean the port speaks implicit TLS, and silence is checked with a ClientHello on
/// a second connection, as the tokio dialer does.
pub(crate) fn check_plain_port(
    net: &NetOptions,
    host: &str,
    port: u16,
    tcp: &TcpStream,
) -> Result<(), WrongTlsMode> {
    let mut first = [0u8; hint::PREFIX_LEN];
    let _ = tcp.set_read_timeout(Some(hint::SILENCE_PROBE_AFTER));
    let peeked = tcp.peek(&mut first);
    let _ = tcp.set_read_timeout(None);
    let evidence = match peeked {
        Ok(n) if n > 0 => hint::classify(false, first.get(..n).unwrap_or_default()).map(|(_, e)| e),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            tls_answers(net, host, port).then_some(Evidence::TlsProbe)
        }
        _ => None,
    };
    match evidence {
        Some(evidence) => Err(WrongTlsMode { hint: TlsModeHint::UseImplicitTls, evidence, cause: None }),
        None => Ok(()),
    }
}

/// After a failed implicit-TLS handshake: a fresh connection that greets in plaintext
/// proves the port speaks plain SMTP (the failed one's octets went to rustls).
pub(crate) fn explain_tls_failure(net: &NetOptions, host: &str, port: u16, e: crate::Error) -> crate::Error {
    let plain = dial(net, host, port, Duration::from_secs(3)).ok().is_some_and(|mut tcp| {
        let mut first = [0u8; 4];
        tcp.set_read_timeout(Some(Duration::from_secs(3))).is_ok()
            && tcp.read_exact(&mut first).is_ok()
            && hint::looks_like_smtp_reply(&first)
    });
    if !plain {
        return e;
    }
    WrongTlsMode { hint: TlsModeHint::UseStartTls, evidence: Evidence::PlainReply, cause: Some(Box::new(e)) }
        .into()
}

/// Whether the server answers a ClientHello with a TLS record, within a few seconds.
fn tls_answers(net: &NetOptions, host: &str, port: u16) -> bool {
    let Some(hello) = hint::client_hello(host) else { return false };
    let Ok(mut tcp) = dial(net, host, port, Duration::from_secs(3)) else { return false };
    let mut first = [0u8; 3];
    tcp.set_read_timeout(Some(Duration::from_secs(3))).is_ok()
        && tcp.write_all(&hello).is_ok()
        && tcp.read_exact(&mut first).is_ok()
        && hint::looks_like_tls(&first)
}
