//! The tokio dialer: Happy Eyeballs over [`eyeballs::Race`], then the proxy exchange over
//! [`Tunnel`]. Every wait is bounded by the one connect deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::error::{AttemptFailure, ConnectError, ProxyError, ProxyReason, ProxyStep, Unreachable};
use super::eyeballs::{Next, Race};
use super::{NetOptions, Tunnel};
use crate::proto::error::Error;

/// Opens a TCP connection to `host:port`, through the proxy when one is set, by
/// `deadline`. TCP_NODELAY is on.
pub(crate) async fn dial(
    net: &NetOptions,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<TcpStream, Error> {
    let tcp = match &net.proxy {
        None => connect_host(net, host, port, deadline).await?,
        Some(proxy) => {
            let tcp = connect_host(net, &proxy.host, proxy.port, deadline).await.map_err(|e| ProxyError {
                proxy: proxy.to_string(),
                step: ProxyStep::Connect,
                reason: ProxyReason::Io(e.to_string()),
            })?;
            let tunnel = Tunnel::new(proxy, host, port)?;
            run_tunnel(tcp, tunnel, deadline).await?
        }
    };
    // Small commands must not wait for a delayed ACK (Nagle): the incumbents lose 40 ms
    // per message this way.
    tcp.set_nodelay(true).map_err(crate::config::tls::io_error)?;
    Ok(tcp)
}

/// Resolves `host` (unless the options give addresses) and races the addresses.
async fn connect_host(
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
        None => match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(unreachable(Some(e.to_string()), Vec::new())),
            Err(_) => return Err(unreachable(Some("timed out".into()), Vec::new())),
        },
    };
    race(&addrs, net, deadline).await.map_err(|attempts| unreachable(None, attempts))
}

/// RFC 8305 section 5: staggered attempts; the first to connect wins and the others are
/// cancelled (dropping the `JoinSet` aborts them, closing their sockets).
async fn race(
    addrs: &[SocketAddr],
    net: &NetOptions,
    deadline: Instant,
) -> Result<TcpStream, Vec<super::Attempt>> {
    let now = || Instant::now().into_std();
    let mut race = Race::new(addrs, net.attempt_delay(), now(), deadline.into_std());
    let mut running = JoinSet::new();
    // Bounded: each turn starts an attempt, ends one, or passes a start time or the deadline.
    loop {
        match race.next(now()) {
            Next::Start(addr) => {
                running.spawn(attempt(addr, net.bind));
            }
            Next::GiveUp => return Err(race.failures()),
            Next::WaitUntil(at) => {
                tokio::select! {
                    Some(joined) = running.join_next() => match joined {
                        Ok((_, Ok(tcp))) => return Ok(tcp),
                        Ok((addr, Err(e))) => race.failed(addr, AttemptFailure::Io(Arc::new(e)), now()),
                        // A panicked or aborted attempt cannot name its address; the race
                        // still ends at the deadline.
                        Err(_) => {}
                    },
                    () = sleep_until(Instant::from_std(at)) => {}
                }
            }
        }
    }
}

async fn attempt(addr: SocketAddr, bind: Option<IpAddr>) -> (SocketAddr, std::io::Result<TcpStream>) {
    let result = async {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(ip) = bind {
            if ip.is_ipv4() != addr.is_ipv4() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    format!("local address {ip} is of the other address family"),
                ));
            }
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(addr).await
    };
    (addr, result.await)
}

/// Runs the proxy exchange; the stream then reaches the mail server.
async fn run_tunnel(
    mut tcp: TcpStream,
    mut tunnel: Tunnel,
    deadline: Instant,
) -> Result<TcpStream, ConnectError> {
    let mut buf = [0u8; 512];
    // Bounded: every turn reads at least one octet of an answer the exchange caps.
    loop {
        while let Some(out) = tunnel.poll_transmit() {
            match timeout_at(deadline, tcp.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(tunnel.fail(ProxyReason::Io(e.to_string())).into()),
                Err(_) => return Err(tunnel.fail(ProxyReason::Timeout).into()),
            }
        }
        if tunnel.is_done() {
            return Ok(tcp);
        }
        let want = tunnel.read_limit().clamp(1, buf.len());
        let read = timeout_at(deadline, tcp.read(buf.get_mut(..want).unwrap_or_default())).await;
        match read {
            Ok(Ok(0)) => {
                return Err(tunnel.fail(ProxyReason::Io("the proxy closed the connection".into())).into());
            }
            Ok(Ok(n)) => tunnel.handle_input(buf.get(..n).unwrap_or_default())?,
            Ok(Err(e)) => return Err(tunnel.fail(ProxyReason::Io(e.to_string())).into()),
            Err(_) => return Err(tunnel.fail(ProxyReason::Timeout).into()),
        }
    }
}
