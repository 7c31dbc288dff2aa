//! Opening the TCP connection for the blocking client, behind one function so the shared
//! connection module (proxies, Happy Eyeballs) can take its place; and running the async
//! OAuth token provider to completion without a runtime.

use std::future::Future;
use std::net::TcpStream;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use crate::connect::NetOptions;
use crate::proto::error::Error;

/// Opens the connection with the shared dialer (`crate::connect::blocking`): Happy
/// Eyeballs, the proxy if one is set, TCP_NODELAY on.
pub(crate) fn dial(net: &NetOptions, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    Ok(crate::connect::blocking::dial(net, host, port, timeout)?)
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
