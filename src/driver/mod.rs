//! The tokio driver: a short loop that moves bytes between a stream and the sans-IO
//! [`Session`](crate::proto::session::Session), performs the STARTTLS hand-off and enforces
//! deadlines with the tokio clock (so tests can pause it).

pub mod transport;

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use tokio::time::{Instant, Sleep, sleep_until, timeout_at};
use tokio_rustls::TlsConnector;

use crate::proto::error::{Error, Phase};
use crate::proto::session::{Event, Session, Want};
use transport::Transport;

pub(crate) use crate::config::TraceSink;
pub(crate) use crate::config::tls::{TlsTarget, io_error, tls_error};

const READ_BUF: usize = 16 * 1024;
/// Most pieces gathered into one vectored write.
const MAX_CHUNKS: usize = 8;

/// The parts of `chunks` after the first `written` octets, as slices for a vectored write.
fn unwritten(chunks: &[Bytes], mut written: usize) -> ([IoSlice<'_>; MAX_CHUNKS], usize) {
    let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
    let mut n = 0;
    for chunk in chunks {
        match chunk.get(written..) {
            Some(rest) if !rest.is_empty() => {
                if let Some(slot) = slices.get_mut(n) {
                    *slot = IoSlice::new(rest);
                    n += 1;
                }
                written = 0;
            }
            _ => written = written.saturating_sub(chunk.len()),
        }
    }
    (slices, n)
}

/// One connection: a session and its transport.
pub(crate) struct Driver {
    pub session: Session,
    io: Transport,
    /// Read buffer: every read is fed to the session at once, so it holds nothing between
    /// reads. Allocated on first use and released when the session goes idle, so an idle
    /// connection (in a pool, say) does not keep READ_BUF octets.
    buf: Box<[u8]>,
    /// What the session handed over for the current write.
    chunks: Vec<Bytes>,
    /// The one timer behind every deadline of this connection (see [`Timer`]).
    timer: Timer,
    tls: Option<TlsTarget>,
    trace: Option<TraceSink>,
    /// During the handshake: once the session gave up and its farewell `QUIT` is written,
    /// [`Driver::run_until`] returns instead of waiting for the `221` (a failed connect
    /// must not wait on a server that may never answer).
    pub skip_quit_reply: bool,
}

/// A deadline timer that is armed lazily.
///
/// Every reply moves the deadline a little later. Re-registering a timer each time would
/// cost two operations on the runtime's timer wheel per message; instead the timer stays
/// armed at the earlier instant, and when it fires before the deadline it is simply
/// armed again. It is moved only when a deadline is earlier than where it is armed.
#[derive(Default)]
struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timer {
    /// Ready once `deadline` has passed; otherwise the task is woken no later than then.
    fn poll_expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        // Bounded: after a reset the timer is armed exactly at `deadline`, so a second
        // firing is the deadline itself.
        for _ in 0..2 {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if sleep.deadline() >= deadline {
                return Poll::Ready(());
            }
            // Fired at an earlier deadline that has since moved on.
            sleep.as_mut().reset(deadline);
        }
        Poll::Ready(())
    }

    /// Disarms it, so an idle connection leaves nothing on the timer wheel.
    fn clear(&mut self) {
        self.sleep = None;
    }
}

enum Io {
    Wrote(io::Result<usize>),
    Read(io::Result<usize>),
}

pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver {
    pub fn new(session: Session, io: Transport, tls: Option<TlsTarget>, trace: Option<TraceSink>) -> Self {
        Self {
            session,
            io,
            buf: Box::default(),
            chunks: Vec::new(),
            timer: Timer::default(),
            tls,
            trace,
            skip_quit_reply: false,
        }
    }

    fn ensure_buf(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0; READ_BUF].into_boxed_slice();
        }
    }

    /// Performs a TLS handshake on the current (plain) transport.
    pub async fn handshake(&mut self) -> Result<(), Error> {
        let target = self.tls.clone().ok_or_else(|| Error::Config("TLS is not configured".into()))?;
        let Transport::Plain(plain) = std::mem::replace(&mut self.io, Transport::Gone) else {
            return Err(Error::Config("TLS handshake on a stream that is not plain".into()));
        };
        let connector = TlsConnector::from(target.config);
        let deadline = Instant::now() + self.session.config().timeouts.tls_handshake;
        match timeout_at(deadline, connector.connect(target.name, plain)).await {
            Ok(Ok(tls)) => {
                self.io = Transport::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(tls_error(e)),
            Err(_) => Err(Error::Timeout(Phase::TlsHandshake)),
        }
    }

    /// Whether the TLS handshake resumed an earlier session (`None` without TLS).
    pub fn tls_resumed(&self) -> Option<bool> {
        self.io.tls_resumed()
    }

    /// Whether the TLS target verifies certificates.
    pub fn tls_verified(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.verified)
    }

    /// Runs the session until `pick` takes an event, or until the session is idle or
    /// closed (then `None`).
    pub async fn run_until<T>(&mut self, pick: impl FnMut(Event) -> Option<T>) -> Option<T> {
        let found = self.run(pick).await;
        // Only when nothing at all is left: between a `354` and its body the session
        // awaits no reply either, and freeing then would cost an allocation per message.
        if self.session.is_closed() || self.session.is_idle_and_clean() {
            self.buf = Box::default();
            self.chunks = Vec::new();
            self.timer.clear();
        }
        found
    }

    async fn run<T>(&mut self, mut pick: impl FnMut(Event) -> Option<T>) -> Option<T> {
        loop {
            while let Some(event) = self.session.poll_event() {
                if let Some(found) = pick(event) {
                    self.flush_trace();
                    return Some(found);
                }
            }
            self.flush_trace();
            if self.take_output() {
                self.write().await;
                // The pieces may be the caller's message: not kept past their write. The
                // session's own buffers go back to it for reuse.
                for chunk in self.chunks.drain(..) {
                    let _kept = self.session.recycle(chunk);
                }
                continue;
            }
            // Everything queued is written: the QUIT too.
            if self.skip_quit_reply && self.session.head_phase() == Phase::Quit {
                return None;
            }
            match self.session.wants() {
                Want::Read => self.read().await,
                Want::StartTls => match self.handshake().await {
                    Ok(()) => {
                        let verified = self.tls_verified();
                        self.session.tls_established(verified);
                    }
                    Err(e) => self.session.handle_error(e),
                },
                Want::Idle => return None,
                Want::Closed => {
                    self.shutdown().await;
                    // Deliver the events the close produced.
                    while let Some(event) = self.session.poll_event() {
                        if let Some(found) = pick(event) {
                            return Some(found);
                        }
                    }
                    return None;
                }
            }
        }
    }

    fn flush_trace(&mut self) {
        while let Some(line) = self.session.poll_trace() {
            #[cfg(feature = "tracing")]
            tracing::debug!(target: "smtpkit::wire", connection = %line.connection, "{line}");
            if let Some(sink) = &self.trace {
                sink(&line);
            }
        }
    }

    /// Reads once, bounded by the session's deadline for the awaited reply.
    async fn read(&mut self) {
        self.ensure_buf();
        let deadline = self.session.poll_timeout().map(Instant::from_std);
        let (io, buf, timer) = (&mut self.io, &mut self.buf, &mut self.timer);
        let result = poll_fn(|cx| {
            let mut rb = ReadBuf::new(buf);
            if let Poll::Ready(r) = Pin::new(&mut *io).poll_read(cx, &mut rb) {
                return Poll::Ready(Some(r.map(|()| rb.filled().len())));
            }
            match deadline {
                Some(d) if timer.poll_expired(cx, d).is_ready() => Poll::Ready(None),
                _ => Poll::Pending,
            }
        })
        .await;
        match result {
            Some(Ok(0)) => self.session.handle_eof(),
            Some(Ok(n)) => self.feed(n),
            Some(Err(e)) => self.session.handle_error(io_error(e)),
            None => self.session.handle_timeout(now()),
        }
    }

    fn feed(&mut self, n: usize) {
        if let Some(data) = self.buf.get(..n) {
            self.session.handle_input(now(), data);
        }
    }

    /// Takes what the session has to write, up to [`MAX_CHUNKS`] pieces (a large body
    /// comes as a piece of its own, between commands), for one vectored write.
    fn take_output(&mut self) -> bool {
        self.chunks.clear();
        while self.chunks.len() < MAX_CHUNKS {
            match self.session.poll_transmit() {
                Some(chunk) => self.chunks.push(chunk),
                None => break,
            }
        }
        !self.chunks.is_empty()
    }

    /// Writes the taken pieces whole, reading at the same time: a server may reply early
    /// (a 550 during DATA, then stop reading) and its words beat a broken pipe.
    ///
    /// Every completed write is reported to the session ([`Session::wrote`]). RFC 5321
    /// section 4.5.3.2.5 times the data block per "TCP SEND call", so the write fails after
    /// [`Timeouts::data_block`](crate::proto::timeouts::Timeouts) without progress, however
    /// long the whole flight takes; meanwhile the reply deadlines of commands already
    /// written keep running.
    async fn write(&mut self) {
        self.ensure_buf();
        let block = self.session.config().timeouts.data_block;
        let mut stalled_at = Instant::now() + block;
        let total: usize = self.chunks.iter().map(Bytes::len).sum();
        let mut written = 0;
        let mut reading = true;
        while written < total {
            let reply_due = self.session.poll_timeout().map(Instant::from_std);
            let deadline = reply_due.map_or(stalled_at, |due| due.min(stalled_at));
            let (io, buf, timer, chunks) = (&mut self.io, &mut self.buf, &mut self.timer, &self.chunks);
            let step = poll_fn(|cx| {
                let (slices, n) = unwritten(chunks, written);
                let slices = slices.get(..n).unwrap_or_default();
                if let Poll::Ready(r) = Pin::new(&mut *io).poll_write_vectored(cx, slices) {
                    return Poll::Ready(Ok(Io::Wrote(r)));
                }
                if reading {
                    let mut rb = ReadBuf::new(buf);
                    if let Poll::Ready(r) = Pin::new(&mut *io).poll_read(cx, &mut rb) {
                        return Poll::Ready(Ok(Io::Read(r.map(|()| rb.filled().len()))));
                    }
                }
                timer.poll_expired(cx, deadline).map(Err)
            })
            .await;
            match step {
                Ok(Io::Wrote(Ok(0))) => {
                    self.session.handle_error(io_error(io::ErrorKind::WriteZero.into()));
                    return;
                }
                Ok(Io::Wrote(Ok(n))) => {
                    written += n;
                    let at = Instant::now();
                    self.session.wrote(n, at.into_std());
                    stalled_at = at + block;
                }
                Ok(Io::Wrote(Err(e))) => {
                    self.drain_after_write_error().await;
                    self.session.handle_error(io_error(e));
                    return;
                }
                Ok(Io::Read(Ok(0))) => {
                    // The server closed; what it said before is already processed.
                    reading = false;
                    self.session.handle_eof();
                }
                Ok(Io::Read(Ok(n))) => self.feed(n),
                Ok(Io::Read(Err(e))) => {
                    self.session.handle_error(io_error(e));
                    return;
                }
                Err(()) => {
                    self.write_timed_out(reply_due);
                    return;
                }
            }
            if self.session.is_closed() {
                return;
            }
        }
        let (io, timer) = (&mut self.io, &mut self.timer);
        let flush = poll_fn(|cx| match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(Ok(r)),
            Poll::Pending => timer.poll_expired(cx, stalled_at).map(Err),
        });
        match flush.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.session.handle_error(io_error(e)),
            Err(()) => self.session.handle_error(Error::Timeout(Phase::DataBlock)),
        }
    }

    /// The write's timer fired: a written command's reply is overdue (the session names
    /// its phase), or the write made no progress for the data-block time.
    fn write_timed_out(&mut self, reply_due: Option<Instant>) {
        let now = Instant::now();
        if reply_due.is_some_and(|due| now >= due) {
            self.session.handle_timeout(now.into_std());
        } else {
            self.session.handle_error(Error::Timeout(Phase::DataBlock));
        }
    }

    /// After a failed write, reads what the server may already have said, briefly.
    async fn drain_after_write_error(&mut self) {
        self.ensure_buf();
        let deadline = Instant::now() + std::time::Duration::from_millis(200);
        for _ in 0..16 {
            let mut rb = ReadBuf::new(&mut self.buf);
            let read = poll_fn(|cx| Pin::new(&mut self.io).poll_read(cx, &mut rb));
            match timeout_at(deadline, read).await {
                Ok(Ok(())) if !rb.filled().is_empty() => {
                    let n = rb.filled().len();
                    self.feed(n);
                }
                _ => return,
            }
        }
    }

    /// Without waiting, takes in whatever the server sent while nothing was outstanding (an
    /// unsolicited `421`, a close) so the session can judge the connection before reuse.
    /// Bounded: a server that keeps talking is stray input after the first read anyway.
    pub async fn absorb_idle_input(&mut self) {
        // An empty buffer would read as end of stream: borrow one for the check only.
        self.ensure_buf();
        self.drain_idle().await;
        self.buf = Box::default();
    }

    async fn drain_idle(&mut self) {
        for _ in 0..4 {
            if self.session.is_closed() {
                return;
            }
            let polled = {
                let io = &mut self.io;
                let buf = &mut self.buf;
                poll_fn(|cx| {
                    let mut rb = ReadBuf::new(&mut buf[..]);
                    match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                        Poll::Ready(r) => Poll::Ready(Some(r.map(|()| rb.filled().len()))),
                        Poll::Pending => Poll::Ready(None),
                    }
                })
                .await
            };
            match polled {
                None => return,
                Some(Ok(0)) => self.session.handle_eof(),
                Some(Ok(n)) => self.feed(n),
                Some(Err(e)) => self.session.handle_error(io_error(e)),
            }
        }
    }

    /// Closes the stream; errors are ignored (a TLS peer that drops the connection
    /// without close_notify after 221 is still a clean end).
    pub async fn shutdown(&mut self) {
        let _ = timeout_at(Instant::now() + std::time::Duration::from_secs(1), self.io.shutdown()).await;
        self.io = Transport::Gone;
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("session", &self.session).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::{self, AlertDescription};

    #[test]
    fn rustls_errors_after_the_handshake_are_tls_errors() {
        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let e = io_error(io::Error::new(io::ErrorKind::InvalidData, alert));
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
        let e = io_error(io::Error::new(io::ErrorKind::InvalidData, "not TLS"));
        assert!(matches!(e, Error::Io(_)), "{e:?}");
        assert!(matches!(io_error(io::ErrorKind::ConnectionReset.into()), Error::Io(_)));
    }

    #[test]
    fn unwritten_skips_what_was_written_across_pieces() {
        let chunks =
            [Bytes::from_static(b"ab"), Bytes::new(), Bytes::from_static(b"cde"), Bytes::from_static(b"f")];
        let rest = |written| {
            let (slices, n) = unwritten(&chunks, written);
            slices.iter().take(n).map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>()
        };
        assert_eq!(rest(0), ["ab", "cde", "f"]);
        assert_eq!(rest(1), ["b", "cde", "f"]);
        assert_eq!(rest(2), ["cde", "f"]);
        assert_eq!(rest(4), ["e", "f"]);
        assert!(rest(6).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_lazy_timer_fires_at_the_current_deadline_only() {
        use std::time::Duration;
        let start = Instant::now();
        let mut timer = Timer::default();
        let first = start + Duration::from_secs(10);
        assert!(poll_fn(|cx| Poll::Ready(timer.poll_expired(cx, first))).await.is_pending());
        // The deadline moves later (a reply came): the timer stays armed at 10 s, fires
        // there, is armed again and expires at the new deadline, not before.
        let later = start + Duration::from_secs(25);
        poll_fn(|cx| timer.poll_expired(cx, later)).await;
        assert_eq!(Instant::now(), later);
        // An earlier deadline than the armed one moves the timer at once.
        let far = Instant::now() + Duration::from_secs(60);
        assert!(poll_fn(|cx| Poll::Ready(timer.poll_expired(cx, far))).await.is_pending());
        let near = Instant::now() + Duration::from_secs(1);
        poll_fn(|cx| timer.poll_expired(cx, near)).await;
        assert_eq!(Instant::now(), near);
        // A deadline already passed is expired at once.
        assert!(poll_fn(|cx| Poll::Ready(timer.poll_expired(cx, start))).await.is_ready());
    }
}
