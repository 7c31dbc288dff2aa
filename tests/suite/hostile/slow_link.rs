//! Deadlines over a slow but steady link (RFC 5321 section 4.5.3.2, RELIABILITY.md bar 9):
//! the data-block deadline is "no progress for 3 minutes", however long the whole body
//! takes; the final-reply deadline starts when the dot was written; and the reply deadline
//! of a command already written keeps running while later output is being written.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use smtpkit::testing::{Fault, Step, TestServer};
use smtpkit::{Error, Phase};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::time::{Instant, Sleep, sleep};

use super::{env, plain, start};

/// A link that takes `pause` (tokio time) for every `per_write` octets written.
struct SlowLink {
    inner: DuplexStream,
    per_write: usize,
    pause: Duration,
    wait: Option<Pin<Box<Sleep>>>,
}

impl SlowLink {
    fn new(inner: DuplexStream, per_write: usize, pause: Duration) -> Self {
        Self { inner, per_write, pause, wait: None }
    }
}

impl AsyncRead for SlowLink {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SlowLink {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let pause = this.pause;
        let wait = this.wait.get_or_insert_with(|| Box::pin(sleep(pause)));
        if wait.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let take = buf.get(..this.per_write.min(buf.len())).unwrap_or_default();
        let polled = Pin::new(&mut this.inner).poll_write(cx, take);
        if polled.is_ready() {
            this.wait = None;
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

fn body(size: usize) -> Vec<u8> {
    let line = format!("{}\r\n", "y".repeat(76));
    let mut body = b"Subject: slow\r\n\r\n".to_vec();
    while body.len() < size {
        body.extend_from_slice(line.as_bytes());
    }
    body
}

/// 1 MB at 16 KB per 20 s: over 20 minutes of writing, in flights that each take longer
/// than the 3-minute data-block time, then a final reply that takes 9 of its 10 minutes.
#[tokio::test(start_paused = true)]
async fn a_slow_steady_body_and_a_nine_minute_final_reply_are_delivered() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::Delay(Duration::from_secs(540)))).await;
    let link = SlowLink::new(server.connect_in_memory(), 16 * 1024, Duration::from_secs(20));
    let mut client = plain().build().unwrap().connect_with(link).await.unwrap();
    let started = Instant::now();
    let report = client.send(&env(), body(1_000_000)).await.expect("a slow link is not a dead one");
    assert!(started.elapsed() > Duration::from_secs(1_500), "the link was not slow: {:?}", started.elapsed());
    assert_eq!(report.reply.code().0, 250);
    assert_eq!(server.messages().len(), 1);
}

/// Pipelined BDAT: the server never answers the first chunk but keeps reading the
/// others slowly. The first chunk's reply deadline (the data-block time after its last
/// octet was written) fires while later chunks are still being written.
#[tokio::test(start_paused = true)]
async fn a_written_chunks_reply_deadline_runs_while_later_chunks_are_written() {
    let server = start(TestServer::builder().chunking(true).on(Step::Bdat(0), Fault::Silence)).await;
    let link = SlowLink::new(server.connect_in_memory(), 64 * 1024, Duration::from_secs(10));
    let mut client = plain().chunking(true).build().unwrap().connect_with(link).await.unwrap();
    let started = Instant::now();
    // Five 1 MiB chunks: 800 s of writing at this speed.
    let err = client.send(&env(), body(5_000_000)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(Phase::Bdat)), "{err:?}");
    // The first chunk is written after about 16 writes (160 s); its deadline is 3 min later.
    let waited = started.elapsed();
    assert!(waited <= Duration::from_secs(160 + 180 + 30), "waited {waited:?} for the first chunk's reply");
    assert!(server.messages().is_empty());
}
