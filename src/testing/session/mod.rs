//! One server connection: the session's state and its main loop.
//!
//! One concept per file: [`transport`] moves bytes (reads, lines, queued replies, the TLS
//! upgrade), [`commands`] answers command lines, [`data`] receives DATA and BDAT message
//! data, [`auth`] runs AUTH exchanges, and [`respond`] turns a normal reply into what a
//! fault rule asks for and applies a command's effect once the client is told it worked.

mod auth;
mod commands;
mod data;
mod respond;
mod transport;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use self::auth::{AuthState, Exchange};
use self::data::{Chunk, Transaction};
use self::respond::Effect;
use super::data::DotDecoder;
use super::fault::Step;
use super::record::show;
use super::reply::Reply;
use super::server::Shared;
use super::stream::Conn;

/// Longest command line accepted, CRLF excluded.
///
/// RFC 4954 4: "This extension ... raises the 512 octet limit on the length of command
/// lines ... to 12288 octets" for AUTH, and the server applies that to every line.
const MAX_COMMAND_LINE: usize = 12_288;

/// Bytes asked of the transport per read.
const READ_CHUNK: usize = 16 * 1024;

/// Replies queued past this size are written at once rather than with the next read.
const MAX_QUEUED_OUTPUT: usize = 64 * 1024;

/// A write that makes no progress for this long means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on a graceful close (TLS close_notify, TCP FIN).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the connection does after handling one unit of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Close now.
    Close,
    /// Never reply again; read until the client leaves.
    Silence,
    /// Never read again; keep the connection open until the server stops.
    StopReading,
    /// Close the transport without a TLS close_notify.
    Drop,
}

/// What the client is sending next.
enum Mode {
    Command,
    /// Message text after `354`.
    Data(DotDecoder),
    /// The octets of a BDAT chunk.
    Chunk(Chunk),
    /// A client response inside an AUTH exchange.
    Auth(AuthState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greeted {
    No,
    Helo,
    Ehlo,
}

pub(crate) async fn run<S>(shared: Arc<Shared>, id: usize, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session {
        shared,
        id,
        conn: Conn::Plain(stream),
        inbuf: Vec::new(),
        read_total: 0,
        line_at: 0,
        readbuf: vec![0; READ_CHUNK],
        outbuf: Vec::new(),
        budget: None,
        mode: Mode::Command,
        tls: false,
        greeted: Greeted::No,
        auth_user: None,
        auth_mechanism: None,
        exchange: None,
        txn: None,
        rejected: false,
        commands: 0,
        unsolicited: None,
        discarding: false,
        discard_secret: false,
        last_class: 0,
    };
    let flow = session.open().await;
    let flow = if flow == Flow::Continue { session.serve().await } else { flow };
    session.finish(flow).await;
}

struct Session<S> {
    shared: Arc<Shared>,
    id: usize,
    conn: Conn<S>,
    /// Received bytes not yet consumed.
    inbuf: Vec<u8>,
    /// Bytes recorded as received so far: `read_total - inbuf.len()` is where `inbuf`
    /// starts in the connection's record.
    read_total: usize,
    /// Where the line last taken by `take_line` started in the record.
    line_at: usize,
    /// Scratch space for one transport read.
    readbuf: Vec<u8>,
    /// Replies not yet written. RFC 2920 3.2 lets a server answer a group of pipelined
    /// commands together, so replies wait here until the server needs more input; a client
    /// then sees several replies in one read, as from real servers.
    outbuf: Vec<u8>,
    /// With [`Fault::CloseAfterBytes`]: bytes that may still be read before closing.
    budget: Option<usize>,
    mode: Mode,
    tls: bool,
    greeted: Greeted,
    auth_user: Option<String>,
    /// The mechanism that authenticated `auth_user`.
    auth_mechanism: Option<String>,
    exchange: Option<Exchange>,
    txn: Option<Transaction>,
    /// The greeting was negative: only QUIT is accepted (RFC 5321 3.1).
    rejected: bool,
    /// Command lines seen (for [`Step::Command`]).
    commands: usize,
    /// Pending [`Fault::Unsolicited421`] or [`Fault::CloseWhenIdle`]: close after this much
    /// silence from the client, with a 421 first if the flag is set.
    unsolicited: Option<(Duration, bool)>,
    /// Inside an over-long line, dropping bytes until its end.
    discarding: bool,
    /// The line being dropped is an AUTH payload: redact what is dropped of it.
    discard_secret: bool,
    /// First digit of the last reply sent (0 if none or not a digit).
    last_class: u8,
}

/// A state the session's own logic rules out. Reaching one is a bug in this server: the
/// connection notes it in its transcript and closes, rather than carrying on with made-up
/// state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Broken {
    /// Message data or a chunk ended with no mail transaction to put it in.
    #[error("message data without a mail transaction")]
    NoTransaction,
    /// A TLS upgrade was asked of a connection that is not plaintext.
    #[error("TLS upgrade of a connection that is not plaintext")]
    NotPlaintext,
}

enum Read {
    Data,
    Eof,
    /// The client was silent too long; send a 421 first if the flag is set.
    Idle(bool),
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    fn note(&self, event: impl Into<String>) {
        self.shared.recorder.line(self.id, format!("* {}", event.into()));
    }

    fn violation(&self, what: &str) {
        self.shared.recorder.violation(self.id, what);
    }

    /// Record a client line in the transcript; `secret`, a byte range of the line, is an
    /// AUTH payload, redacted in the transcript and in the received bytes.
    fn client_line(&self, line: &[u8], secret: Option<Range<usize>>) {
        match secret {
            Some(secret) => self.shared.recorder.secret_line(self.id, self.line_at, line, secret),
            None => self.shared.recorder.line(self.id, format!("C: {}", show(line))),
        }
    }

    /// Note a broken invariant and end the connection.
    fn broken(&self, what: Broken) -> Flow {
        self.note(format!("internal error: {what}; closing"));
        Flow::Close
    }

    fn reply(&self, code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply::enhanced(code, enhanced, text)
    }

    /// Implicit TLS handshake, then the greeting.
    async fn open(&mut self) -> Flow {
        if self.shared.config.implicit_tls && !self.handshake().await {
            return Flow::Close;
        }
        let greeting = Reply::new(220, format!("{} ESMTP smtpkit-testing", self.shared.config.hostname));
        self.respond(&[Step::Greeting], greeting, Effect::Greet).await
    }

    async fn serve(&mut self) -> Flow {
        loop {
            loop {
                match self.process().await {
                    Some(Flow::Continue) => {}
                    Some(flow) => return flow,
                    None => break,
                }
            }
            if self.budget == Some(0) {
                self.note("closing: byte budget of CloseAfterBytes used up");
                return Flow::Close;
            }
            match self.read_more().await {
                Read::Data => {}
                Read::Eof => {
                    self.note("client closed the connection");
                    return Flow::Close;
                }
                Read::Idle(send_421) => {
                    if send_421 {
                        let text = format!(
                            "4.4.2 {} Idle too long, closing connection",
                            self.shared.config.hostname
                        );
                        self.write(Reply::new(421, text).to_wire(false), None).await;
                    } else {
                        self.note("closing an idle connection without a word");
                    }
                    return Flow::Close;
                }
            }
        }
    }

    async fn finish(&mut self, flow: Flow) {
        // An exchange the client walked away from (e.g. refusing the server's signature).
        self.end_exchange(true);
        self.flush_out().await;
        match flow {
            Flow::Continue | Flow::Close => {}
            Flow::Drop => {
                // Dropping the TLS stream sends no close_notify: the TCP FIN arrives bare.
                self.conn = Conn::Gone;
                self.note("connection dropped without TLS close_notify");
                return;
            }
            Flow::Silence => {
                self.note("silent from now on");
                self.mode = Mode::Command;
                self.unsolicited = None;
                // Bounded by the client closing, or by the server shutting down.
                while let Read::Data = self.read_more().await {
                    self.inbuf.clear();
                }
            }
            Flow::StopReading => {
                self.note("stopped reading");
                // Holds the connection open until the server aborts this task.
                std::future::pending::<()>().await;
            }
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.conn.shutdown()).await;
        self.conn = Conn::Gone;
        self.note("connection closed");
    }

    /// Handle one unit of buffered input, or `None` when more input is needed.
    ///
    /// The mode is taken by value and put back while more input is needed, so the handler
    /// of a finished unit owns its state: no "the mode changed under us" case exists.
    async fn process(&mut self) -> Option<Flow> {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Command => {
                let line = self.take_line(false)?;
                Some(self.command(line).await)
            }
            Mode::Auth(state) => {
                let Some(line) = self.take_line(true) else {
                    self.mode = Mode::Auth(state);
                    return None;
                };
                Some(self.auth_response(state, line).await)
            }
            Mode::Data(decoder) => self.data_input(decoder).await,
            Mode::Chunk(chunk) => self.chunk_input(chunk).await,
        }
    }
}
