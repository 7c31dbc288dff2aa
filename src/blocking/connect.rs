//! Opening the TCP connection for the blocking client, behind one function so the shared
//! connection module (proxies, Happy Eyeballs) can take its place; and running the async
//! OAuth token provider to completion without a runtime.

use std::future::Future;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::config::tls::io_error;
use crate::proto::error::{Error, Phase};

/// Resolves `host` and connects to its addresses in turn within `timeout` overall, with
/// TCP_NODELAY (small commands must not wait for a delayed ACK).
pub(crate) fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let deadline = Instant::now() + timeout;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = resolve(host, port, deadline)?;
    let mut last = Error::Io(Arc::new(std::io::Error::other(format!("{host} resolved to no address"))));
    for addr in addrs {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            return Err(Error::Timeout(Phase::Connect));
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => {
                tcp.set_nodelay(true).map_err(io_error)?;
                return Ok(tcp);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => last = Error::Timeout(Phase::Connect),
            Err(e) => last = io_error(e),
        }
    }
    Err(last)
}

/// Resolves on a thread of its own, so a hanging resolver costs at most the connect
/// deadline (std's resolver takes no timeout); the thread ends when the resolver gives up.
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Error> {
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    thread::spawn(move || tx.send((name.as_str(), port).to_socket_addrs().map(Iterator::collect)));
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(io_error(e)),
        Err(_) => Err(Error::Timeout(Phase::Connect)),
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is done (the OAuth provider's token future).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}
