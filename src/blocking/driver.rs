//! The blocking driver: the same short loop as the tokio one, over a std `TcpStream` (and
//! rustls' `StreamOwned` after STARTTLS), with every wait bounded by a socket timeout
//! computed from the session's deadline.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{ClientConnection, StreamOwned};

use crate::config::TraceSink;
use crate::config::tls::{TlsTarget, io_error, tls_error};
use crate::proto::error::{Error, Phase};
use crate::proto::session::{Event, Session, Want};

const READ_BUF: usize = 16 * 1024;
/// Most pieces gathered into one flight of vectored writes (as the tokio driver).
const MAX_CHUNKS: usize = 8;

/// The stream under a session.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

impl Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(tcp) => Some(tcp),
            Stream::Tls(tls) => Some(&tls.sock),
            Stream::Gone => None,
        }
    }

    fn io(&mut self) -> io::Result<&mut dyn ReadWrite> {
        match self {
            Stream::Plain(tcp) => Ok(tcp),
            Stream::Tls(tls) => Ok(tls.as_mut()),
            Stream::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "transport closed")),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// What is left until `deadline` as a socket timeout (never zero: that means "forever").
fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.checked_duration_since(Instant::now())?;
    Some(left.max(Duration::from_millis(1)))
}

/// A socket timeout: Linux reports `WouldBlock`, others `TimedOut`.
fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// One connection: a session and its stream.
pub(crate) struct Driver {
    pub session: Session,
    io: Stream,
    buf: Vec<u8>,
    tls: Option<TlsTarget>,
    trace: Option<TraceSink>,
}

impl Driver {
    pub fn new(session: Session, tcp: TcpStream, tls: Option<TlsTarget>, trace: Option<TraceSink>) -> Self {
        Self { session, io: Stream::Plain(tcp), buf: vec![0; READ_BUF], tls, trace }
    }

    /// Performs the TLS handshake on the plain stream, within the handshake deadline.
    pub fn handshake(&mut self) -> Result<(), Error> {
        let target = self.tls.clone().ok_or_else(|| Error::Config("TLS is not configured".into()))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.io, Stream::Gone) else {
            return Err(Error::Config("TLS handshake on a stream that is not plain".into()));
        };
        let deadline = Instant::now() + self.session.config().timeouts.tls_handshake;
        let conn = ClientConnection::new(target.config, target.name).map_err(|e| Error::Tls(Arc::new(e)))?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            let left = remaining(deadline).ok_or(Error::Timeout(Phase::TlsHandshake))?;
            tls.sock
                .set_read_timeout(Some(left))
                .and_then(|()| tls.sock.set_write_timeout(Some(left)))
                .map_err(io_error)?;
            match tls.conn.complete_io(&mut tls.sock) {
                Ok(_) => {}
                Err(e) if timed_out(&e) => return Err(Error::Timeout(Phase::TlsHandshake)),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(Error::ConnectionClosed(Phase::TlsHandshake));
                }
                Err(e) => return Err(tls_error(e)),
            }
        }
        self.io = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Whether the TLS target verifies certificates.
    pub fn tls_verified(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.verified)
    }

    /// Runs the session until `pick` takes an event, or until it is idle or closed (`None`).
    pub fn run_until<T>(&mut self, mut pick: impl FnMut(Event) -> Option<T>) -> Option<T> {
        loop {
            while let Some(event) = self.session.poll_event() {
                if let Some(found) = pick(event) {
                    self.flush_trace();
                    return Some(found);
                }
            }
            self.flush_trace();
            let chunks: Vec<Bytes> =
                std::iter::from_fn(|| self.session.poll_transmit()).take(MAX_CHUNKS).collect();
            if !chunks.is_empty() {
                self.write(&chunks);
                for chunk in chunks {
                    let _kept = self.session.recycle(chunk);
                }
                continue;
            }
            match self.session.wants() {
                Want::Read => self.read(),
                Want::StartTls => match self.handshake() {
                    Ok(()) => {
                        let verified = self.tls_verified();
                        self.session.tls_established(verified);
                    }
                    Err(e) => self.session.handle_error(e),
                },
                Want::Idle => return None,
                Want::Closed => {
                    self.shutdown();
                    return std::iter::from_fn(|| self.session.poll_event()).find_map(&mut pick);
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
    fn read(&mut self) {
        let timeout = match self.session.poll_timeout() {
            Some(deadline) => match remaining(deadline) {
                Some(left) => Some(left),
                None => return self.session.handle_timeout(Instant::now()),
            },
            None => None,
        };
        if let Some(Err(e)) = self.io.tcp().map(|tcp| tcp.set_read_timeout(timeout)) {
            return self.session.handle_error(io_error(e));
        }
        let read = self.io.io().and_then(|io| io.read(&mut self.buf));
        match read {
            Ok(0) => self.session.handle_eof(),
            Ok(n) => self.feed(n),
            Err(e) if timed_out(&e) => self.session.handle_timeout(Instant::now()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.session.handle_error(io_error(e)),
        }
    }

    fn feed(&mut self, n: usize) {
        if let Some(data) = self.buf.get(..n) {
            self.session.handle_input(Instant::now(), data);
        }
    }

    /// Writes the pieces whole in vectored writes, reporting each completed write to the
    /// session. The data-block deadline is "no progress for that long" (RFC 5321 4.5.3.2.5:
    /// the timeout applies to each call to send), and the reply deadlines of commands
    /// already written keep running meanwhile.
    fn write(&mut self, chunks: &[Bytes]) {
        let stall = self.session.config().timeouts.data_block;
        let mut slices: Vec<IoSlice<'_>> =
            chunks.iter().filter(|c| !c.is_empty()).map(|c| IoSlice::new(c)).collect();
        let mut rest = &mut slices[..];
        let mut progress_at = Instant::now();
        while !rest.is_empty() {
            let stalled_at = progress_at + stall;
            let deadline = self.session.poll_timeout().map_or(stalled_at, |due| due.min(stalled_at));
            let Some(left) = remaining(deadline) else {
                return self.write_timed_out(stalled_at);
            };
            if let Some(Err(e)) = self.io.tcp().map(|tcp| tcp.set_write_timeout(Some(left))) {
                return self.session.handle_error(io_error(e));
            }
            match self.io.io().and_then(|io| io.write_vectored(rest)) {
                Ok(0) => return self.session.handle_error(io_error(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    progress_at = Instant::now();
                    self.session.wrote(n, progress_at);
                    IoSlice::advance_slices(&mut rest, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if timed_out(&e) => {
                    if remaining(deadline).is_none() {
                        return self.write_timed_out(stalled_at);
                    }
                }
                Err(e) => {
                    // A server that refused early (a 550, then a close) has its words read first.
                    self.drain_after_write_error();
                    return self.session.handle_error(io_error(e));
                }
            }
        }
        if let Err(e) = self.io.io().and_then(|io| io.flush()) {
            self.session.handle_error(if timed_out(&e) {
                Error::Timeout(Phase::DataBlock)
            } else {
                io_error(e)
            });
        }
    }

    /// A write deadline passed: the link stalled, or a written command's reply is overdue.
    fn write_timed_out(&mut self, stalled_at: Instant) {
        if Instant::now() >= stalled_at {
            self.session.handle_error(Error::Timeout(Phase::DataBlock));
        } else {
            self.session.handle_timeout(Instant::now());
        }
    }

    /// After a failed write, reads what the server may already have said, briefly.
    fn drain_after_write_error(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(200);
        for _ in 0..16 {
            let Some(left) = remaining(deadline) else { return };
            if self.io.tcp().map(|tcp| tcp.set_read_timeout(Some(left))).is_none_or(|r| r.is_err()) {
                return;
            }
            match self.io.io().and_then(|io| io.read(&mut self.buf)) {
                Ok(n) if n > 0 => self.feed(n),
                _ => return,
            }
        }
    }

    /// Closes the stream (TLS close_notify first, best effort, within a second).
    pub fn shutdown(&mut self) {
        if let Stream::Tls(tls) = &mut self.io {
            tls.conn.send_close_notify();
            let _ = tls.sock.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = tls.conn.write_tls(&mut tls.sock);
        }
        if let Some(tcp) = self.io.tcp() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
        self.io = Stream::Gone;
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("session", &self.session).finish_non_exhaustive()
    }
}
