//! The sans-IO SMTP client session: bytes in; bytes to write, what it needs next and
//! events out. No sockets, no clock: the driver passes the time in.
//!
//! ```text
//! driver ── handle_input(now, bytes) ──► Session ── poll_transmit() ──► bytes to write
//!        ── wrote(octets, now) ──►                  (report every completed write)
//!        ◄── poll_event() / wants() / poll_timeout() ──
//! ```
//!
//! Replies are matched to commands through a queue of what is in flight, so PIPELINING
//! (RFC 2920) falls out naturally: on a reused connection the body, the final dot and the
//! next message's `MAIL`, `RCPT`s and `DATA` leave in one write.
//!
//! The parts, one per module: [`config`] and [`events`] (what goes in and comes out), the
//! output queue and its positions (`output`), the commands awaiting replies
//! (`in_flight`), one message (`transaction`), its body stream (`body`), the handshake
//! (`handshake`), the transaction replies (`mail`), reply dispatch (`replies`), the
//! transcript (`trace`) and failure handling (`failure`). A broken invariant is
//! [`Error::Internal`] and closes the session, never a silent no-op or a made-up reply.

#[cfg_attr(not(any(feature = "client", feature = "blocking")), allow(dead_code))]
pub(crate) mod batch;
mod body;
pub mod config;
mod connection_id;
pub mod events;
mod failure;
mod handshake;
mod in_flight;
mod mail;
mod output;
mod replies;
mod trace;
mod transaction;

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::address::Envelope;
use super::capabilities::Capabilities;
use super::command::{Command, validate_custom};
use super::dot_stuff::analyze;
use super::error::{Error, InputError, Phase};
use super::params::MessageOptions;
use super::reply::ReplyParser;

use body::BodyState;
pub use config::{SessionConfig, TlsPolicy};
pub use connection_id::ConnectionId;
pub use events::{Direction, Event, MessageId, OpId, RecipientResult, SendReport, TraceLine, Want};
use handshake::{Handshake, Stage};
use in_flight::{InFlight, Kind};
use output::Output;
use trace::Trace;
use transaction::Tx;

/// A caller's operation, queued until the protocol lets it start.
#[derive(Debug)]
enum Op {
    Message(MessageId),
    Rset(OpId),
    Noop(OpId),
    Vrfy(OpId, String),
    Custom(OpId, String),
    Ehlo(OpId),
    Quit(OpId),
}

/// The SMTP client state machine. See the module docs.
pub struct Session {
    config: SessionConfig,
    stage: Stage,
    input: BytesMut,
    parser: ReplyParser,
    output: Output,
    in_flight: InFlight,
    ops: VecDeque<Op>,
    txs: VecDeque<Tx>,
    /// The message whose commands are being sent and whose end of data is not queued yet.
    current: Option<MessageId>,
    body: Option<BodyState>,
    events: VecDeque<Event>,
    trace: Trace,
    caps: Capabilities,
    tls_active: bool,
    tls_verified: bool,
    /// The nonce for SCRAM, until AUTH takes it into its SASL client.
    sasl_nonce: Option<String>,
    last_reply_at: Instant,
    next_id: u64,
}

/// Buffered bytes show as lengths only: the output can hold an AUTH line with credentials
/// or a message body (and the input a server challenge) until the driver takes it.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("stage", &self.stage)
            .field("input_len", &self.input.len())
            .field("output", &self.output)
            .field("in_flight", &self.in_flight)
            .field("ops", &self.ops)
            .field("txs", &self.txs)
            .field("current", &self.current)
            .field("body", &self.body)
            .field("events", &self.events.len())
            .field("trace_len", &self.trace.len())
            .field("caps", &self.caps)
            .field("tls_active", &self.tls_active)
            .field("tls_verified", &self.tls_verified)
            .field("sasl_nonce", &self.sasl_nonce.as_ref().map(|_| "[set]"))
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session waiting for the server's greeting; `now` starts the greeting deadline.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let parser = ReplyParser::new(config.reply_limits);
        let trace = Trace::new(config.trace, config.connection_id);
        Self {
            config,
            stage: Stage::Greeting,
            input: BytesMut::new(),
            parser,
            output: Output::default(),
            in_flight: InFlight::greeting(now),
            ops: VecDeque::new(),
            txs: VecDeque::new(),
            current: None,
            body: None,
            events: VecDeque::new(),
            trace,
            caps: Capabilities::default(),
            tls_active: false,
            tls_verified: false,
            sasl_nonce: None,
            last_reply_at: now,
            next_id: 0,
        }
    }

    // ---- caller actions -------------------------------------------------------------

    /// Queues a message. The body is checked now (NUL, line length, bare line endings per
    /// policy), so an invalid body is an error before any byte is written. Extension
    /// checks (8BITMIME, SMTPUTF8, SIZE, DSN) happen when the transaction starts and are
    /// reported through [`Event::Message`].
    pub fn send_message(
        &mut self,
        envelope: Envelope,
        body: Bytes,
        opts: MessageOptions,
    ) -> Result<MessageId, Error> {
        self.check_open()?;
        let info = analyze(&body, self.config.line_endings).map_err(InputError::from)?;
        let id = MessageId(self.fresh_id());
        self.txs.push_back(Tx::new(id, envelope, body, info, opts));
        self.ops.push_back(Op::Message(id));
        self.advance();
        Ok(id)
    }

    /// Queues a NOOP.
    pub fn noop(&mut self) -> Result<OpId, Error> {
        self.queue_op(Op::Noop)
    }

    /// Queues an RSET.
    pub fn rset(&mut self) -> Result<OpId, Error> {
        self.queue_op(Op::Rset)
    }

    /// Queues a QUIT; the session closes after its reply.
    pub fn quit(&mut self) -> Result<OpId, Error> {
        self.queue_op(Op::Quit)
    }

    /// Queues a VRFY. The argument must be printable (no control bytes).
    pub fn vrfy(&mut self, what: &str) -> Result<OpId, Error> {
        if what.is_empty() || what.chars().any(char::is_control) || what.len() > 500 {
            return Err(InputError::Command("VRFY needs 1-500 printable characters").into());
        }
        let what = what.to_string();
        self.queue_op(move |id| Op::Vrfy(id, what))
    }

    /// Queues a validated low-level command (see [`validate_custom`]); its reply comes
    /// back through [`Event::Command`]. Negative replies are errors.
    pub fn custom(&mut self, verb: &str, args: &str) -> Result<OpId, Error> {
        let line = validate_custom(verb, args).map_err(|e| Error::Input(InputError::Custom(e)))?;
        self.queue_op(move |id| Op::Custom(id, line))
    }

    /// Queues an explicit EHLO (as smtplib's `ehlo()`): the reply replaces the known
    /// capabilities.
    pub fn ehlo(&mut self) -> Result<OpId, Error> {
        self.queue_op(Op::Ehlo)
    }

    fn queue_op(&mut self, make: impl FnOnce(OpId) -> Op) -> Result<OpId, Error> {
        self.check_open()?;
        let id = OpId(self.fresh_id());
        self.ops.push_back(make(id));
        self.advance();
        Ok(id)
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.stage {
            Stage::Closed | Stage::Quitting(_) => Err(Error::SessionClosed),
            _ if self.ops.iter().any(|o| matches!(o, Op::Quit(_))) => Err(Error::SessionClosed),
            _ => Ok(()),
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    // ---- driver interface ------------------------------------------------------------

    /// Supplies a fresh random nonce (printable ASCII, no `,`) for SCRAM; the core has no
    /// randomness of its own. Without it, SCRAM is never chosen.
    pub fn set_sasl_nonce(&mut self, nonce: String) {
        self.sasl_nonce = Some(nonce);
    }

    /// Feeds bytes read from the server.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if matches!(self.stage, Stage::Closed) {
            return;
        }
        self.input.extend_from_slice(data);
        self.process_input(now);
    }

    /// The server closed its side of the connection.
    pub fn handle_eof(&mut self) {
        match &mut self.stage {
            Stage::Closed => {}
            Stage::Quitting(err) => {
                let err = err.take();
                self.close(err);
            }
            _ => {
                let phase = self.head_phase();
                self.fatal(Error::ConnectionClosed(phase));
            }
        }
    }

    /// Reading or writing failed; the session is over.
    pub fn handle_error(&mut self, error: Error) {
        if !matches!(self.stage, Stage::Closed) {
            self.fatal(error);
        }
    }

    /// Checks deadlines; call when [`Session::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                let phase = self.head_phase();
                self.fatal(Error::Timeout(phase));
            }
        }
    }

    /// The TLS handshake succeeded (after STARTTLS, or before the greeting for implicit
    /// TLS). `verified` is false when the caller disabled certificate verification.
    pub fn tls_established(&mut self, verified: bool) {
        self.tls_active = true;
        self.tls_verified = verified;
        self.after_tls();
    }

    /// The next bytes to write, if any. Handing them over writes nothing yet: report each
    /// completed write with [`Session::wrote`], in order, before feeding the input that
    /// follows it.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.fill_body();
        self.output.take()
    }

    /// The stream accepted `octets` more of the output, counted over the concatenation of
    /// everything [`Session::poll_transmit`] handed over, in order. A command's reply
    /// deadline starts when the write carrying its last octet completed; the end of data
    /// counts as written (a later loss is [`Error::Ambiguous`]) only then: a failure
    /// before that is a plain failure, safe to retry.
    pub fn wrote(&mut self, octets: usize, now: Instant) {
        if matches!(self.stage, Stage::Closed) {
            return;
        }
        let Ok(upto) = self.output.wrote(octets) else {
            return self.fatal(Error::Internal("more octets reported written than handed over"));
        };
        self.in_flight.written(upto, now);
        for tx in &mut self.txs {
            tx.written(upto);
        }
        self.trace.written(upto);
    }

    /// Gives back output that [`Session::poll_transmit`] returned, once it is written: its
    /// buffer is reused for later output instead of a new allocation per write. Optional;
    /// a buffer still shared elsewhere (a piece of a caller's message) is just dropped, and
    /// so is everything while nothing is queued (an idle connection keeps no buffer).
    /// True when the buffer was kept.
    pub(crate) fn recycle(&mut self, written: Bytes) -> bool {
        if self.txs.is_empty() && self.ops.is_empty() {
            return false;
        }
        self.output.recycle(written)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The connection's id, as [`SessionConfig::connection_id`] set it.
    pub fn connection_id(&self) -> ConnectionId {
        self.config.connection_id
    }

    /// The next transcript line, if tracing is on.
    pub fn poll_trace(&mut self) -> Option<TraceLine> {
        self.trace.pop()
    }

    /// What to do when there is nothing to write.
    pub fn wants(&self) -> Want {
        match self.stage {
            Stage::Closed => Want::Closed,
            Stage::Handshake(Handshake::AwaitTls) => Want::StartTls,
            _ if !self.in_flight.is_empty() => Want::Read,
            _ => Want::Idle,
        }
    }

    /// When the reply now awaited is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.deadline(&self.config.timeouts, self.last_reply_at)
    }

    /// The step whose reply is awaited (or [`Phase::DataBlock`] while streaming a body).
    pub fn head_phase(&self) -> Phase {
        match (self.in_flight.front(), &self.body, &self.stage) {
            (Some(p), _, _) => p.kind.phase(),
            (None, Some(_), _) => Phase::DataBlock,
            (None, None, Stage::Handshake(Handshake::AwaitTls)) => Phase::TlsHandshake,
            _ => Phase::Idle,
        }
    }

    // ---- state queries ---------------------------------------------------------------

    /// The capabilities from the latest EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// True once the handshake is complete and the session is not closing.
    pub fn is_ready(&self) -> bool {
        matches!(self.stage, Stage::Ready)
    }

    /// True when the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.stage, Stage::Closed)
    }

    /// True when TLS protects the connection.
    pub fn is_tls(&self) -> bool {
        self.tls_active
    }

    /// True when the session is ready, nothing is queued or outstanding and no stray
    /// input is buffered: the connection can be reused for another message.
    pub fn is_idle_and_clean(&self) -> bool {
        self.is_ready()
            && self.in_flight.is_empty()
            && self.ops.is_empty()
            && self.txs.is_empty()
            && self.body.is_none()
            && self.input.is_empty()
            && self.output.is_empty()
    }

    // ---- output ----------------------------------------------------------------------

    fn push_command(&mut self, cmd: &Command<'_>, kind: Kind) {
        self.put_command(cmd);
        self.expect_reply(kind);
    }

    /// Encodes `cmd` into the output; its transcript line shows once it is written.
    fn put_command(&mut self, cmd: &Command<'_>) {
        let out = self.output.buf();
        let start = out.len();
        cmd.encode(out);
        if self.trace.is_on() {
            let line = out.get(start..).unwrap_or_default().to_vec();
            let end = self.output.queued_end();
            self.trace.command(cmd, &line, end);
        }
    }

    /// Awaits a reply to what was just put in the output.
    fn expect_reply(&mut self, kind: Kind) {
        self.in_flight.push(kind, self.output.queued_end());
    }

    /// With nothing queued, lets go of output capacity kept for reuse ([`Session::recycle`]):
    /// an idle pooled connection holds as little memory as it can.
    fn release_idle_buffers(&mut self) {
        if self.txs.is_empty() && self.ops.is_empty() && self.in_flight.is_empty() {
            self.output.release_idle();
            self.parser.release_idle();
        }
    }

    /// Drops every byte not yet handed over, and the transcript lines of commands that
    /// will now never be written.
    fn clear_output(&mut self) {
        let kept = self.output.clear();
        self.trace.dropped_after(kept);
    }
}

/// What the fuzz targets and the test suite need beyond the documented API. Not part of
/// the API: no stability promise.
#[doc(hidden)]
pub mod __fuzz {
    use bytes::Bytes;

    use super::Session;

    /// [`Session`]'s buffer reuse: gives back written output; true when kept.
    pub fn recycle(session: &mut Session, written: Bytes) -> bool {
        session.recycle(written)
    }

    /// Octets and entries the session holds between driver steps: unparsed input, output
    /// not yet handed over, undelivered events and transcript lines (for a memory bound).
    pub fn buffered(session: &Session) -> usize {
        let unhanded = usize::try_from(session.output.unhanded()).unwrap_or(usize::MAX);
        session.input.len() + unhanded + session.events.len() + session.trace.len()
    }
}
