//! "Ambiguous" is exact (RELIABILITY.md bar 14): a message is ambiguous only when the write
//! carrying the last octet of its terminator (DATA) or of its `BDAT LAST` chunk completed
//! and no final reply came. The link is cut after the client's `k`-th octet, for bodies of
//! 1 KB to 8 MB and `k` at many offsets around the end of data, over DATA and BDAT.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use smtpkit::testing::TestServer;
use smtpkit::{ClientBuilder, Error};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::{env, plain, start};

/// A link that dies after the client wrote `budget` octets: a write past it fails (after
/// a partial write up to it), and from then on reads see the end of the stream, so
/// replies the server sent later are lost with it.
struct CutAfter {
    inner: DuplexStream,
    budget: usize,
    sent: usize,
}

impl CutAfter {
    fn dead(&self) -> bool {
        self.sent >= self.budget
    }
}

impl AsyncRead for CutAfter {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.dead() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutAfter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let room = this.budget.saturating_sub(this.sent);
        if room == 0 {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let take = buf.get(..room.min(buf.len())).unwrap_or_default();
        let polled = Pin::new(&mut this.inner).poll_write(cx, take);
        if let Poll::Ready(Ok(n)) = polled {
            this.sent += n;
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

/// A body of about `size` octets in 78-octet lines, some starting with a dot.
fn body(size: usize) -> Vec<u8> {
    let mut body = b"Subject: cut\r\n\r\n".to_vec();
    let mut i = 0;
    while body.len() < size {
        let lead: &[u8] = if i % 7 == 0 { b"." } else { b"x" };
        body.extend_from_slice(lead);
        body.extend((0..75).map(|j| b'a' + ((i + j) % 26) as u8));
        body.extend_from_slice(b"\r\n");
        i += 1;
    }
    body
}

/// Sends `body` over a link cut after `budget` client octets; the send's outcome.
async fn send_cut(
    server: &TestServer,
    client: ClientBuilder,
    body: &[u8],
    budget: usize,
) -> Result<(), Error> {
    let link = CutAfter { inner: server.connect_in_memory(), budget, sent: 0 };
    let mut client =
        client.build().expect("valid").connect_with(link).await.expect("connects before the cut");
    client.send(&env(), body.to_vec()).await.map(drop)
}

/// Where the end of data ends in the client's octets: found in a run without faults (the
/// client writes nothing after it until QUIT).
async fn end_of_data(server: &TestServer, client: ClientBuilder, body: &[u8]) -> usize {
    let mut whole = client.build().expect("valid").connect_with(server.connect_in_memory()).await.unwrap();
    whole.send(&env(), body.to_vec()).await.expect("sent without a cut");
    drop(whole);
    let wire = server.received_bytes().pop().expect("a connection");
    wire.len()
}

async fn check(server: TestServer, client: fn() -> ClientBuilder, label: &str) {
    for size in [1_000, 70_000, 1_100_000, 8_400_000] {
        let body = body(size);
        let end = end_of_data(&server, client(), &body).await;
        let first = end - body.len(); // about where the body starts
        // 8 MB costs seconds per run in a debug build: the offsets that matter most only.
        let mut offsets = vec![first + body.len() / 2, end - 1, end];
        if size < 8_000_000 {
            offsets.extend([first, first + 1, first + body.len() / 3]);
            offsets.extend((2..=6).map(|back| end - back));
        }
        for budget in offsets {
            let result = send_cut(&server, client(), &body, budget).await;
            let err = result.expect_err("the link was cut");
            if budget >= end {
                assert!(
                    err.is_ambiguous(),
                    "{label} {size} B cut after the end of data at {budget}: {err:?}"
                );
            } else {
                assert!(
                    !err.is_ambiguous() && err.is_transient(),
                    "{label} {size} B cut at {budget} of {end}: must be a plain transient failure, got {err:?}"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn ambiguous_only_once_the_write_with_the_final_dot_completed() {
    check(start(TestServer::builder()).await, plain, "DATA").await;
}

#[tokio::test(start_paused = true)]
async fn ambiguous_only_once_the_write_with_the_last_bdat_octet_completed() {
    fn bdat() -> ClientBuilder {
        plain().chunking(true)
    }
    check(start(TestServer::builder().chunking(true)).await, bdat, "BDAT").await;
}
