//! The sans-IO SMTP client session: bytes in; bytes to write, what it needs next and
//! events out. No sockets, no clock: the driver passes the time in.
//!
//! ```text
//! driver ── handle_input(now, bytes) ──► Session ── poll_transmit(now) ──► bytes to write
//!        ◄── poll_event() / wants() / poll_timeout() ──
//! ```
//!
//! Replies are matched to commands through a queue of what is in flight, so PIPELINING
//! (RFC 2920) falls out naturally: on a reused connection the body, the final dot and the
//! next message's `MAIL`, `RCPT`s and `DATA` leave in one write.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::address::{Address, EhloName, Envelope};
use super::capabilities::Capabilities;
use super::code::ReplyCode;
use super::command::{Command, validate_custom};
use super::dot_stuff::{BodyInfo, DotStuffer, LineEndings, Normalizer, analyze};
use super::error::{Error, Extension, InputError, Phase, ProtocolError};
use super::params::{Body, MailParams, MessageOptions, RcptParams};
use super::reply::{Reply, ReplyLimits, ReplyParser};
use super::sasl::{Credentials, Mechanism, SaslClient, SaslContext};
use super::timeouts::Timeouts;

/// Identifies a message handed to [`Session::send_message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// Identifies a command queued with [`Session::noop`], [`Session::rset`],
/// [`Session::vrfy`] or [`Session::quit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// One recipient and the server's reply to its `RCPT TO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientResult {
    /// The recipient.
    pub address: Address,
    /// The reply to `RCPT TO`.
    pub reply: Reply,
}

impl RecipientResult {
    /// True when the server accepted the recipient (2xx).
    pub fn accepted(&self) -> bool {
        self.reply.is_positive()
    }
}

/// A message the server took responsibility for: its reply to the final dot (or last
/// BDAT) was 2xx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    /// The message.
    pub id: MessageId,
    /// The server's final reply, which usually carries its queue id.
    pub reply: Reply,
    /// Every recipient with its `RCPT` reply; rejected ones did not get the message.
    pub recipients: Vec<RecipientResult>,
}

impl SendReport {
    /// Recipients that will get the message.
    pub fn accepted(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| r.accepted())
    }

    /// Recipients the server refused.
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| !r.accepted())
    }

    /// The server's queue id, when its final reply says `queued as X` (Postfix, Exim,
    /// many others); best effort.
    pub fn queue_id(&self) -> Option<String> {
        let text = self.reply.text();
        let at = text.to_ascii_lowercase().find("queued as ")?;
        let id: String = text.get(at + 10..)?.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        (!id.is_empty()).then_some(id)
    }
}

/// How the session secures the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsPolicy {
    /// TLS from the first byte (`smtps://`, port 465). The driver performs the handshake
    /// before the greeting and reports it with [`Session::tls_established`].
    Implicit,
    /// STARTTLS is mandatory: without it, no command other than EHLO and QUIT is sent.
    #[default]
    Required,
    /// STARTTLS when offered, plaintext otherwise (credentials still need TLS unless
    /// explicitly allowed).
    Opportunistic,
    /// Never TLS.
    Disabled,
}

/// Everything the session needs to know up front.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The name sent with EHLO/HELO.
    pub ehlo_name: EhloName,
    /// TLS policy.
    pub tls: TlsPolicy,
    /// Credentials for AUTH; `None` skips AUTH.
    pub credentials: Option<Credentials>,
    /// Mechanisms allowed, in order of preference.
    pub mechanisms: Vec<Mechanism>,
    /// Allow AUTH over plaintext or unverified TLS. Off by default.
    pub allow_insecure_auth: bool,
    /// What to do with bare CR/LF in bodies.
    pub line_endings: LineEndings,
    /// Use PIPELINING when the server offers it.
    pub pipelining: bool,
    /// Use CHUNKING (BDAT) when the server offers it.
    pub chunking: bool,
    /// Size of each BDAT chunk for large messages.
    pub bdat_chunk_size: usize,
    /// Caps on replies.
    pub reply_limits: ReplyLimits,
    /// Per-phase deadlines.
    pub timeouts: Timeouts,
    /// Record a redacted transcript, read with [`Session::poll_trace`].
    pub trace: bool,
    /// Speak LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data.
    pub lmtp: bool,
    /// The server's host name, for mechanisms that bind to it (OAUTHBEARER).
    pub server_name: String,
    /// The server's port, for OAUTHBEARER.
    pub server_port: u16,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ehlo_name: EhloName::default(),
            tls: TlsPolicy::Required,
            credentials: None,
            mechanisms: Mechanism::PREFERENCE.to_vec(),
            allow_insecure_auth: false,
            line_endings: LineEndings::Normalize,
            pipelining: true,
            chunking: false,
            bdat_chunk_size: 1 << 20,
            reply_limits: ReplyLimits::default(),
            timeouts: Timeouts::default(),
            trace: false,
            lmtp: false,
            server_name: String::new(),
            server_port: 0,
        }
    }
}

/// Something that happened, for the driver or its caller.
#[derive(Clone, Debug)]
pub enum Event {
    /// The server's `220` greeting.
    Greeting(Reply),
    /// TLS is up (if required), AUTH is done (if configured): messages can flow.
    Ready,
    /// The outcome of one message.
    Message {
        /// Which message.
        id: MessageId,
        /// `Ok` only after a 2xx to the final dot.
        result: Result<SendReport, Error>,
    },
    /// The outcome of a NOOP, RSET, VRFY or QUIT.
    Command {
        /// Which command.
        id: OpId,
        /// The reply, or why there is none.
        result: Result<Reply, Error>,
    },
    /// The session ended; `None` after a clean QUIT.
    Closed(Option<Error>),
}

/// What the session needs from the driver once [`Session::poll_transmit`] has nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Read more input (a reply is outstanding), until [`Session::poll_timeout`].
    Read,
    /// Perform the TLS handshake on the stream, then call [`Session::tls_established`].
    StartTls,
    /// Nothing outstanding: hand control back to the caller.
    Idle,
    /// The session is over; close the stream.
    Closed,
}

/// Who wrote a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The client.
    Client,
    /// The server.
    Server,
}

/// One line of the redacted transcript: AUTH payloads and message data never appear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// Who sent it.
    pub direction: Direction,
    /// The line, sanitised, without CRLF.
    pub text: String,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.direction {
            Direction::Client => "C",
            Direction::Server => "S",
        };
        write!(f, "{who}: {}", self.text)
    }
}

#[derive(Debug)]
enum Stage {
    Greeting,
    Handshake,
    AwaitTls,
    Ready,
    Quitting(Option<Error>),
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Mail(MessageId),
    Rcpt(MessageId, usize),
    Data(MessageId),
    DataEnd(MessageId),
    /// LMTP: the reply for the n-th accepted recipient after the final dot.
    LmtpEnd(MessageId, usize),
    Bdat(MessageId, bool),
    Rset(Option<OpId>),
    Noop(OpId),
    Vrfy(OpId),
    Custom(OpId),
    /// An EHLO the caller asked for; its reply replaces the capabilities.
    Reehlo(OpId),
    Quit(Option<OpId>),
}

impl Kind {
    fn phase(self) -> Phase {
        match self {
            Kind::Greeting => Phase::Greeting,
            Kind::Ehlo => Phase::Ehlo,
            Kind::Helo => Phase::Helo,
            Kind::StartTls => Phase::StartTls,
            Kind::Auth => Phase::Auth,
            Kind::Mail(_) => Phase::Mail,
            Kind::Rcpt(..) => Phase::Rcpt,
            Kind::Data(_) => Phase::Data,
            Kind::DataEnd(_) | Kind::LmtpEnd(..) | Kind::Bdat(_, true) => Phase::DataEnd,
            Kind::Bdat(_, false) => Phase::Bdat,
            Kind::Rset(_) => Phase::Rset,
            Kind::Noop(_) => Phase::Noop,
            Kind::Vrfy(_) => Phase::Vrfy,
            Kind::Custom(_) => Phase::Custom,
            Kind::Reehlo(_) => Phase::Ehlo,
            Kind::Quit(_) => Phase::Quit,
        }
    }
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    sent_at: Option<Instant>,
    /// Output position just past the command's last octet: the command is written (its
    /// deadline starts) once [`Session::wrote`] has reported the output up to here.
    end: u64,
}

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

#[derive(Debug)]
struct Tx {
    id: MessageId,
    envelope: Envelope,
    body: Bytes,
    info: BodyInfo,
    opts: MessageOptions,
    bdat: bool,
    mail: Option<Reply>,
    rcpts: Vec<Option<Reply>>,
    /// A negative reply to a BDAT chunk: the transaction has failed.
    bdat_failed: Option<Reply>,
    /// DATA got 354 although nothing can be delivered: only the terminator is sent.
    aborting: bool,
    /// The write carrying the last octet of the end of data completed: from here on a lost
    /// link is ambiguous.
    end_written: bool,
    /// Output position just past the end of data, once it is queued.
    end_mark: Option<u64>,
    /// LMTP per-recipient replies after the final dot.
    lmtp: Vec<Reply>,
}

impl Tx {
    fn mail_ok(&self) -> bool {
        self.mail.as_ref().is_some_and(Reply::is_positive)
    }

    fn accepted(&self) -> usize {
        self.rcpts.iter().flatten().filter(|r| r.is_positive()).count()
    }

    fn all_rcpts_known(&self) -> bool {
        self.rcpts.iter().all(Option::is_some)
    }

    fn results(&self) -> Vec<RecipientResult> {
        self.envelope
            .to()
            .iter()
            .zip(&self.rcpts)
            .filter_map(|(a, r)| r.as_ref().map(|r| RecipientResult { address: a.clone(), reply: r.clone() }))
            .collect()
    }

    /// The replies received so far rule out delivery: MAIL was refused, or every RCPT
    /// reply is in and none accepted.
    fn envelope_refused(&self) -> bool {
        let mail_refused = self.mail.as_ref().is_some_and(|r| !r.is_positive());
        mail_refused || (self.all_rcpts_known() && self.accepted() == 0)
    }

    /// The error for a transaction that cannot deliver to anyone.
    fn envelope_failure(&self) -> Error {
        match &self.mail {
            Some(r) if !r.is_positive() => {
                Error::Rejected { phase: Phase::Mail, reply: r.clone(), recipients: Vec::new() }
            }
            _ => Error::RecipientsRejected { recipients: self.results() },
        }
    }
}

#[derive(Debug)]
enum Encoder {
    Data(DotStuffer),
    Bdat(Normalizer),
}

#[derive(Debug)]
struct BodyState {
    id: MessageId,
    offset: usize,
    encoder: Encoder,
    /// Without PIPELINING each BDAT chunk waits for its reply.
    paused: bool,
}

/// Input pieces encoded per step while streaming DATA.
const DATA_PIECE: usize = 64 * 1024;
/// Spare room reserved beside a DATA piece in the output buffer (see `fill_body`).
const FLIGHT_SLACK: usize = 1024;
/// A body piece at least this long that goes on the wire unchanged is written from the
/// caller's buffer; a shorter one is cheaper to copy than to write separately.
const ZERO_COPY_MIN: usize = 16 * 1024;
/// Largest written buffer kept for reuse ([`Session::recycle`]).
const RECYCLE_MAX: usize = 128 * 1024;
/// Stop filling the output buffer past this size; the driver writes it first.
const OUT_HIGH_WATER: usize = 256 * 1024;

/// The SMTP client state machine. See the module docs.
pub struct Session {
    config: SessionConfig,
    stage: Stage,
    input: BytesMut,
    parser: ReplyParser,
    out: Vec<u8>,
    /// Output that goes before `out`: sealed copies of it and body pieces sent without a
    /// copy, each with the output position it ends at.
    segments: VecDeque<Bytes>,
    /// An emptied output buffer given back with [`Session::recycle`], for the next output.
    spare: Vec<u8>,
    /// Octets queued before `out` (handed over or in `segments`): `out` starts here in the
    /// concatenation of all output.
    out_base: u64,
    /// Octets handed over by [`Session::poll_transmit`].
    handed: u64,
    /// Octets the driver reported written with [`Session::wrote`].
    written: u64,
    /// Client transcript lines whose command is not written yet, with its end position.
    unsent_trace: VecDeque<(u64, TraceLine)>,
    in_flight: VecDeque<Pending>,
    ops: VecDeque<Op>,
    txs: VecDeque<Tx>,
    /// The message whose commands are being sent and whose end of data is not queued yet.
    current: Option<MessageId>,
    body: Option<BodyState>,
    events: VecDeque<Event>,
    trace: VecDeque<TraceLine>,
    caps: Capabilities,
    tls_active: bool,
    tls_verified: bool,
    sasl: Option<SaslClient>,
    sasl_nonce: Option<String>,
    last_reply_at: Instant,
    next_id: u64,
}

/// Buffered bytes show as lengths only: the output can hold an AUTH line with credentials
/// (and the input a server challenge) until the driver takes it.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("stage", &self.stage)
            .field("input_len", &self.input.len())
            .field("out_len", &self.out.len())
            .field("segments", &self.segments.len())
            .field("in_flight", &self.in_flight)
            .field("ops", &self.ops)
            .field("txs", &self.txs)
            .field("current", &self.current)
            .field("body", &self.body)
            .field("events", &self.events)
            .field("trace_len", &self.trace.len())
            .field("caps", &self.caps)
            .field("tls_active", &self.tls_active)
            .field("tls_verified", &self.tls_verified)
            .field("sasl", &self.sasl)
            .field("sasl_nonce", &self.sasl_nonce.as_ref().map(|_| "[set]"))
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session waiting for the server's greeting; `now` starts the greeting deadline.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let parser = ReplyParser::new(config.reply_limits);
        let mut in_flight = VecDeque::new();
        in_flight.push_back(Pending { kind: Kind::Greeting, sent_at: Some(now), end: 0 });
        Self {
            config,
            stage: Stage::Greeting,
            input: BytesMut::new(),
            parser,
            out: Vec::new(),
            segments: VecDeque::new(),
            spare: Vec::new(),
            out_base: 0,
            handed: 0,
            written: 0,
            unsent_trace: VecDeque::new(),
            in_flight,
            ops: VecDeque::new(),
            txs: VecDeque::new(),
            current: None,
            body: None,
            events: VecDeque::new(),
            trace: VecDeque::new(),
            caps: Capabilities::default(),
            tls_active: false,
            tls_verified: false,
            sasl: None,
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
        let rcpts = vec![None; envelope.to().len()];
        self.txs.push_back(Tx {
            id,
            envelope,
            body,
            info,
            opts,
            bdat: false,
            mail: None,
            rcpts,
            bdat_failed: None,
            aborting: false,
            end_written: false,
            end_mark: None,
            lmtp: Vec::new(),
        });
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
        if matches!(self.stage, Stage::AwaitTls) {
            // RFC 3207 section 4.2: "The client MUST discard any knowledge obtained from
            // the server, such as the list of SMTP service extensions, which was not
            // obtained from the TLS negotiation itself. The client SHOULD send an EHLO
            // command as the first command after a successful TLS negotiation."
            self.caps = Capabilities::default();
            self.stage = Stage::Handshake;
            self.send_ehlo();
        }
    }

    /// The next bytes to write, if any. Handing them over writes nothing yet: report each
    /// completed write with [`Session::wrote`], in order, before feeding the input that
    /// follows it.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.fill_body();
        let next = match self.segments.pop_front() {
            Some(segment) => segment,
            None if self.out.is_empty() => return None,
            None => {
                self.out_base += self.out.len() as u64;
                let spare = std::mem::take(&mut self.spare);
                Bytes::from(std::mem::replace(&mut self.out, spare))
            }
        };
        self.handed += next.len() as u64;
        Some(next)
    }

    /// The stream accepted `octets` more of the output, counted over the concatenation of
    /// everything [`Session::poll_transmit`] handed over, in order. A command's reply
    /// deadline starts when the write carrying its last octet completed; the end of data
    /// counts as written (a later loss is [`Error::Ambiguous`]) only then.
    pub fn wrote(&mut self, octets: usize, now: Instant) {
        if matches!(self.stage, Stage::Closed) {
            return;
        }
        self.written += octets as u64;
        if self.written > self.handed {
            self.fatal(Error::Internal("more octets written than handed over"));
            return;
        }
        let upto = self.written;
        for p in self.in_flight.iter_mut().filter(|p| p.sent_at.is_none() && p.end <= upto) {
            p.sent_at = Some(now);
        }
        for tx in self.txs.iter_mut().filter(|t| t.end_mark.is_some_and(|m| m <= upto)) {
            tx.end_written = true;
        }
        while self.unsent_trace.front().is_some_and(|(end, _)| *end <= upto) {
            if let Some((_, line)) = self.unsent_trace.pop_front() {
                self.trace.push_back(line);
            }
        }
    }

    /// Gives back output that [`Session::poll_transmit`] returned, once it is written: its
    /// buffer is reused for later output instead of a new allocation per write. Optional;
    /// a buffer still shared elsewhere (a piece of a caller's message) is just dropped, and
    /// so is everything while nothing is queued (an idle connection keeps no buffer).
    /// True when the buffer was kept.
    pub fn recycle(&mut self, written: Bytes) -> bool {
        if (self.txs.is_empty() && self.ops.is_empty()) || self.spare.capacity() > 0 {
            return false;
        }
        let Ok(buffer) = written.try_into_mut() else { return false };
        let mut buffer = Vec::from(buffer);
        if buffer.capacity() > RECYCLE_MAX {
            return false;
        }
        buffer.clear();
        if self.out.capacity() == 0 {
            self.out = buffer;
        } else {
            self.spare = buffer;
        }
        true
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next transcript line, if tracing is on.
    pub fn poll_trace(&mut self) -> Option<TraceLine> {
        self.trace.pop_front()
    }

    /// What to do when there is nothing to write.
    pub fn wants(&self) -> Want {
        match self.stage {
            Stage::Closed => Want::Closed,
            Stage::AwaitTls => Want::StartTls,
            _ if !self.in_flight.is_empty() => Want::Read,
            _ => Want::Idle,
        }
    }

    /// When the reply now awaited is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let head = self.in_flight.front()?;
        let sent = head.sent_at?;
        Some(sent.max(self.last_reply_at) + self.config.timeouts.for_phase(head.kind.phase()))
    }

    /// The step whose reply is awaited (or [`Phase::DataBlock`] while streaming a body).
    pub fn head_phase(&self) -> Phase {
        match (self.in_flight.front(), &self.body, &self.stage) {
            (Some(p), _, _) => p.kind.phase(),
            (None, Some(_), _) => Phase::DataBlock,
            (None, None, Stage::AwaitTls) => Phase::TlsHandshake,
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
            && self.out.is_empty()
            && self.segments.is_empty()
    }

    // ---- input processing ------------------------------------------------------------

    fn process_input(&mut self, now: Instant) {
        loop {
            if matches!(self.stage, Stage::Closed) {
                return;
            }
            if matches!(self.stage, Stage::AwaitTls) && !self.input.is_empty() {
                self.fatal(ProtocolError::DataAfterStartTls(self.input.len()).into());
                return;
            }
            match self.parser.parse(&self.input) {
                Ok(None) => {
                    self.release_idle_buffers();
                    return;
                }
                Ok(Some((reply, used))) => {
                    self.input.advance(used);
                    self.last_reply_at = now;
                    self.trace_reply(&reply);
                    self.on_reply(reply);
                }
                Err(e) => {
                    self.fatal(ProtocolError::Reply(e).into());
                    return;
                }
            }
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let Some(pending) = self.in_flight.pop_front() else {
            self.on_unsolicited(reply);
            return;
        };
        let kind = pending.kind;
        if pending.sent_at.is_none() {
            // A reply to a command not yet written cannot be its reply: the server runs
            // ahead of the client (or something injected lines), and matching it to the
            // command would desynchronise every later reply. A 421 is the server closing
            // before it read the command (say, idle too long): reported as such.
            self.in_flight.push_front(pending);
            self.on_unsolicited(reply);
            return;
        }
        // RFC 5321 section 4.2: 3yz asks for more input; only DATA (354) and AUTH (334) may
        // see one (at the end of data it is handled there, as ambiguous). Anywhere else the
        // server may be reading the next commands as message text: carrying on would desync.
        if reply.code().is_positive_intermediate()
            && !matches!(
                kind,
                Kind::Data(_) | Kind::DataEnd(_) | Kind::LmtpEnd(..) | Kind::Bdat(..) | Kind::Auth
            )
        {
            self.in_flight.push_front(pending);
            self.fatal(ProtocolError::UnexpectedReply { phase: kind.phase(), reply }.into());
            return;
        }
        // RFC 5321 section 3.8: "the server ... MUST ... send a 421 response code to any
        // command" when it must shut down; the session is over, whatever was asked.
        if reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE && !matches!(kind, Kind::Quit(_)) {
            self.on_421(kind, reply);
            return;
        }
        match kind {
            Kind::Greeting => self.on_greeting(reply),
            Kind::Ehlo => self.on_ehlo(reply),
            Kind::Helo => self.on_helo(reply),
            Kind::StartTls => self.on_starttls(reply),
            Kind::Auth => self.on_auth(reply),
            Kind::Mail(id) => self.on_mail(id, reply),
            Kind::Rcpt(id, i) => self.on_rcpt(id, i, reply),
            Kind::Data(id) => self.on_data(id, reply),
            Kind::DataEnd(id) => self.on_data_end(id, reply),
            Kind::LmtpEnd(id, i) => self.on_lmtp_end(id, i, reply),
            Kind::Bdat(id, last) => self.on_bdat(id, last, reply),
            Kind::Rset(op) => self.on_rset(op, reply),
            Kind::Noop(op) | Kind::Vrfy(op) | Kind::Custom(op) => self.command_done(op, kind.phase(), reply),
            Kind::Reehlo(op) => {
                if reply.is_positive() {
                    self.caps = Capabilities::from_ehlo(&reply);
                }
                self.command_done(op, Phase::Ehlo, reply);
            }
            Kind::Quit(op) => self.on_quit(op, reply),
        }
        self.advance();
    }

    fn on_unsolicited(&mut self, reply: Reply) {
        if let Some(body) = &self.body {
            // RFC 5321 section 4.2.5 allows no reply before the final dot, but a server that
            // gives up on a message (e.g. too big) may say so and stop reading: report its
            // words, not the broken pipe that would follow.
            let id = body.id;
            let recipients = self.tx(id).map(Tx::results).unwrap_or_default();
            let err = Error::Rejected { phase: Phase::DataBlock, reply: reply.clone(), recipients };
            self.finish_tx(id, Err(err));
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataBlock, reply }.into());
            return;
        }
        let err = if reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE {
            Error::Rejected { phase: Phase::Idle, reply, recipients: Vec::new() }
        } else {
            ProtocolError::Unsolicited(reply).into()
        };
        self.fatal(err);
    }

    fn on_421(&mut self, kind: Kind, reply: Reply) {
        let phase = kind.phase();
        if let Kind::Mail(id)
        | Kind::Rcpt(id, _)
        | Kind::Data(id)
        | Kind::DataEnd(id)
        | Kind::LmtpEnd(id, _)
        | Kind::Bdat(id, _) = kind
        {
            let recipients = self.tx(id).map(Tx::results).unwrap_or_default();
            self.finish_tx(id, Err(Error::Rejected { phase, reply: reply.clone(), recipients }));
        }
        // The command's own reply was popped from `in_flight`: report it to its caller here,
        // or `fail_all` would never see it and the caller would get `SessionClosed`.
        if let Kind::Noop(op) | Kind::Vrfy(op) | Kind::Custom(op) | Kind::Reehlo(op) | Kind::Rset(Some(op)) =
            kind
        {
            let err = Error::Rejected { phase, reply: reply.clone(), recipients: Vec::new() };
            self.events.push_back(Event::Command { id: op, result: Err(err) });
        }
        self.fatal(Error::Rejected { phase, reply, recipients: Vec::new() });
    }

    fn on_greeting(&mut self, reply: Reply) {
        if reply.code() == ReplyCode::SERVICE_READY {
            self.events.push_back(Event::Greeting(reply));
            self.stage = Stage::Handshake;
            self.send_ehlo();
        } else {
            // RFC 5321 section 3.1: after a 554 greeting "the client SHOULD wait for ... and
            // then send QUIT".
            self.fail_with_quit(Error::Rejected { phase: Phase::Greeting, reply, recipients: Vec::new() });
        }
    }

    fn send_ehlo(&mut self) {
        let name = self.config.ehlo_name.clone();
        let cmd = if self.config.lmtp { Command::Lhlo(&name) } else { Command::Ehlo(&name) };
        self.push_command(&cmd, Kind::Ehlo);
    }

    fn on_ehlo(&mut self, reply: Reply) {
        // RFC 5321 section 4.1.1.1: the EHLO success reply is 250; a stray 220 (say, a
        // doubled greeting) would shift every later reply by one.
        if reply.is_positive() && reply.code() != ReplyCode::OK {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::Ehlo, reply }.into());
            return;
        }
        if reply.is_positive() {
            self.caps = Capabilities::from_ehlo(&reply);
            self.after_capabilities();
            return;
        }
        let tls_missing = !self.tls_active && self.config.tls == TlsPolicy::Required;
        // LMTP has no HELO (RFC 2033 section 4.1).
        if reply.is_permanent() && !tls_missing && !self.config.lmtp {
            // RFC 5321 section 3.2: a client "MUST ... fall back to HELO" when EHLO is not
            // recognised — but never when that would skip a required STARTTLS.
            let name = self.config.ehlo_name.clone();
            self.push_command(&Command::Helo(&name), Kind::Helo);
        } else {
            self.fail_with_quit(Error::Rejected { phase: Phase::Ehlo, reply, recipients: Vec::new() });
        }
    }

    fn on_helo(&mut self, reply: Reply) {
        if reply.is_positive() {
            self.caps = Capabilities::default();
            self.after_capabilities();
        } else {
            self.fail_with_quit(Error::Rejected { phase: Phase::Helo, reply, recipients: Vec::new() });
        }
    }

    fn after_capabilities(&mut self) {
        if !self.tls_active {
            match self.config.tls {
                TlsPolicy::Required | TlsPolicy::Opportunistic if self.caps.starttls() => {
                    self.push_command(&Command::StartTls, Kind::StartTls);
                    return;
                }
                TlsPolicy::Required => {
                    self.fail_with_quit(Error::ExtensionMissing(Extension::StartTls));
                    return;
                }
                TlsPolicy::Implicit => {
                    // The driver must have reported the handshake before the greeting.
                    self.fail_with_quit(Error::Config("implicit TLS without a TLS handshake".into()));
                    return;
                }
                _ => {}
            }
        }
        self.start_auth();
    }

    fn on_starttls(&mut self, reply: Reply) {
        if reply.code() == ReplyCode::SERVICE_READY {
            if !self.input.is_empty() {
                // Checked again in process_input for bytes arriving later.
                self.fatal(ProtocolError::DataAfterStartTls(self.input.len()).into());
                return;
            }
            self.stage = Stage::AwaitTls;
        } else if reply.code().is_positive_completion() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::StartTls, reply }.into());
        } else if self.config.tls == TlsPolicy::Opportunistic {
            self.start_auth();
        } else {
            self.fail_with_quit(Error::Rejected { phase: Phase::StartTls, reply, recipients: Vec::new() });
        }
    }

    fn start_auth(&mut self) {
        let Some(creds) = self.config.credentials.clone() else {
            self.become_ready();
            return;
        };
        // Credentials only over verified TLS unless the caller opted in.
        if !(self.config.allow_insecure_auth || self.tls_active && self.tls_verified) {
            self.fail_with_quit(Error::InsecureAuth);
            return;
        }
        if self.caps.auth_mechanisms().is_empty() {
            self.fail_with_quit(Error::ExtensionMissing(Extension::Auth));
            return;
        }
        let have_nonce = self.sasl_nonce.is_some();
        let allowed: Vec<Mechanism> = self
            .config
            .mechanisms
            .iter()
            .copied()
            .filter(|m| *m != Mechanism::ScramSha256 || have_nonce)
            .collect();
        let Some(mech) = Mechanism::choose(self.caps.auth_mechanisms(), &allowed, creds.kind()) else {
            self.fail_with_quit(Error::NoAuthMechanism(self.caps.auth_mechanisms().to_vec()));
            return;
        };
        let context = SaslContext {
            host: self.config.server_name.clone(),
            port: self.config.server_port,
            nonce: self.sasl_nonce.take(),
        };
        let mut sasl = match SaslClient::new(mech, creds, context) {
            Ok(s) => s,
            Err(e) => {
                self.fail_with_quit(InputError::Sasl(e).into());
                return;
            }
        };
        let initial = sasl.initial_response();
        self.push_command(&Command::Auth { mechanism: mech.name(), initial: initial.as_deref() }, Kind::Auth);
        self.sasl = Some(sasl);
    }

    fn on_auth(&mut self, reply: Reply) {
        if reply.code() == ReplyCode::AUTH_CONTINUE {
            let challenge = reply.lines().next().unwrap_or_default().to_vec();
            let response = self.sasl.as_mut().map(|s| s.respond(&challenge));
            match response {
                Some(Ok(line)) => self.push_command(&Command::AuthResponse(&line), Kind::Auth),
                Some(Err(e)) => self.fatal(ProtocolError::Sasl(e).into()),
                None => self.fatal(ProtocolError::UnexpectedReply { phase: Phase::Auth, reply }.into()),
            }
        } else if reply.is_positive() {
            if let Some(Err(e)) = self.sasl.take().map(|s| s.finish()) {
                self.fatal(ProtocolError::Sasl(e).into());
                return;
            }
            self.become_ready();
        } else if reply.code().is_positive_intermediate() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::Auth, reply }.into());
        } else {
            self.sasl = None;
            self.fail_with_quit(Error::AuthFailed(reply));
        }
    }

    fn become_ready(&mut self) {
        self.stage = Stage::Ready;
        self.events.push_back(Event::Ready);
    }

    // ---- transactions ----------------------------------------------------------------

    fn tx(&self, id: MessageId) -> Option<&Tx> {
        self.txs.iter().find(|t| t.id == id)
    }

    fn tx_mut(&mut self, id: MessageId) -> Option<&mut Tx> {
        self.txs.iter_mut().find(|t| t.id == id)
    }

    /// CHUNKING when configured and offered. BDAT under LMTP changes the reply counting, so
    /// LMTP always uses DATA here.
    fn uses_bdat(&self) -> bool {
        self.config.chunking && self.caps.chunking() && !self.config.lmtp
    }

    fn pipelining(&self) -> bool {
        self.config.pipelining && self.caps.pipelining()
    }

    /// Starts queued operations while the protocol allows.
    fn advance(&mut self) {
        while matches!(self.stage, Stage::Ready) && self.current.is_none() && self.body.is_none() {
            if !self.may_start_group() {
                return;
            }
            let Some(op) = self.ops.pop_front() else { return };
            match op {
                Op::Message(id) => self.start_tx(id),
                Op::Noop(id) => self.push_command(&Command::Noop, Kind::Noop(id)),
                Op::Rset(id) => self.push_command(&Command::Rset, Kind::Rset(Some(id))),
                Op::Vrfy(id, what) => self.push_command(&Command::Vrfy(&what), Kind::Vrfy(id)),
                Op::Custom(id, line) => self.push_command(&Command::Custom(&line), Kind::Custom(id)),
                Op::Ehlo(id) => {
                    let name = self.config.ehlo_name.clone();
                    let cmd = if self.config.lmtp { Command::Lhlo(&name) } else { Command::Ehlo(&name) };
                    self.push_command(&cmd, Kind::Reehlo(id));
                }
                Op::Quit(id) => {
                    self.push_command(&Command::Quit, Kind::Quit(Some(id)));
                    self.stage = Stage::Quitting(None);
                }
            }
        }
    }

    /// RFC 2920 section 3.1: commands that change state (EHLO, DATA, NOOP, QUIT...) "can only
    /// appear as the last command in a group". A new group may follow a final dot (the
    /// transaction is over whatever its reply) or an RSET; anything else waits.
    fn may_start_group(&self) -> bool {
        self.in_flight.is_empty()
            || (self.pipelining()
                && self
                    .in_flight
                    .iter()
                    .all(|p| matches!(p.kind, Kind::DataEnd(_) | Kind::LmtpEnd(..) | Kind::Rset(None))))
    }

    /// Checks extensions and limits, then sends MAIL (and, pipelined, the RCPTs and DATA).
    fn start_tx(&mut self, id: MessageId) {
        let params = match self.tx(id).map(|tx| self.mail_params(tx)) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                self.finish_tx(id, Err(e));
                return;
            }
            None => return,
        };
        let chunking = self.uses_bdat();
        let pipelining = self.pipelining();
        let Some(tx) = self.tx_mut(id) else { return };
        tx.bdat = chunking;
        let from = tx.envelope.from().cloned();
        let aon = tx.opts.all_or_nothing;
        self.current = Some(id);
        self.push_command(&Command::Mail { from: from.as_ref(), params: &params }, Kind::Mail(id));
        if pipelining {
            let count = self.tx(id).map_or(0, |t| t.rcpts.len());
            for i in 0..count {
                self.send_rcpt(id, i);
            }
            if !aon {
                self.start_data(id);
            }
        }
    }

    fn mail_params(&self, tx: &Tx) -> Result<MailParams, Error> {
        let caps = &self.caps;
        let smtputf8 = tx.envelope.needs_smtputf8() || tx.opts.smtputf8;
        if smtputf8 && !caps.smtputf8() {
            return Err(Error::ExtensionMissing(Extension::SmtpUtf8));
        }
        // RFC 6152 section 3: an 8-bit body is sent with BODY=8BITMIME, and only to a
        // server that advertised 8BITMIME. SMTPUTF8 implies 8-bit transport (RFC 6531).
        let body = if tx.info.eight_bit {
            if !caps.eight_bit_mime() && !smtputf8 {
                return Err(Error::ExtensionMissing(Extension::EightBitMime));
            }
            caps.eight_bit_mime().then_some(Body::EightBitMime)
        } else {
            None
        };
        // RFC 1870 section 4: SIZE counts the octets "transmitted by the SMTP client after
        // receiving reply code 354", less the terminating dot and the doubled dots: DATA
        // adds a CRLF to a body without a final line ending, BDAT sends the body as is.
        let added = if tx.info.ends_with_crlf || self.uses_bdat() { 0 } else { 2 };
        let octets = tx.info.normalized_len + added;
        let size = match caps.size() {
            Some(Some(max)) if octets > max => return Err(Error::MessageTooLarge { size: octets, max }),
            Some(_) => Some(octets),
            None => None,
        };
        if tx.opts.wants_dsn() && !caps.dsn() {
            return Err(Error::ExtensionMissing(Extension::Dsn));
        }
        if tx.opts.requiretls && !(caps.requiretls() && self.tls_active) {
            return Err(Error::ExtensionMissing(Extension::RequireTls));
        }
        Ok(MailParams {
            size,
            body,
            smtputf8,
            ret: tx.opts.ret,
            envid: tx.opts.envid.clone(),
            requiretls: tx.opts.requiretls,
        })
    }

    fn send_rcpt(&mut self, id: MessageId, i: usize) {
        let Some(tx) = self.tx(id) else { return };
        let Some(to) = tx.envelope.to().get(i).cloned() else { return };
        let params = RcptParams { notify: tx.opts.notify, orcpt: tx.opts.orcpt.then(|| to.clone()) };
        self.push_command(&Command::Rcpt { to: &to, params: &params }, Kind::Rcpt(id, i));
    }

    /// Sends DATA, or starts streaming BDAT chunks.
    fn start_data(&mut self, id: MessageId) {
        let Some(tx) = self.tx(id) else { return };
        if tx.bdat {
            let encoder = Encoder::Bdat(Normalizer::default());
            self.body = Some(BodyState { id, offset: 0, encoder, paused: false });
        } else {
            self.push_command(&Command::Data, Kind::Data(id));
        }
    }

    fn on_mail(&mut self, id: MessageId, reply: Reply) {
        let pipelined = self.pipelining();
        let Some(tx) = self.tx_mut(id) else { return };
        let ok = reply.is_positive();
        tx.mail = Some(reply.clone());
        if pipelined {
            return; // RCPT and DATA replies follow; the decision comes with them.
        }
        if ok {
            self.send_rcpt(id, 0);
        } else {
            self.finish_tx(id, Err(Error::Rejected { phase: Phase::Mail, reply, recipients: Vec::new() }));
        }
    }

    fn on_rcpt(&mut self, id: MessageId, i: usize, reply: Reply) {
        let pipelined = self.pipelining();
        let Some(tx) = self.tx_mut(id) else { return };
        if let Some(slot) = tx.rcpts.get_mut(i) {
            *slot = Some(reply);
        }
        let last = i + 1 == tx.rcpts.len();
        let aon = tx.opts.all_or_nothing;
        if !pipelined && !last {
            self.send_rcpt(id, i + 1);
        } else if last && (!pipelined || aon) {
            self.decide_data(id);
        }
    }

    /// With every RCPT reply in: send the data, or give up and reset.
    fn decide_data(&mut self, id: MessageId) {
        let Some(tx) = self.tx(id) else { return };
        let refused =
            !tx.mail_ok() || tx.accepted() == 0 || (tx.opts.all_or_nothing && tx.accepted() < tx.rcpts.len());
        if refused {
            let err = tx.envelope_failure();
            let reset = tx.mail_ok();
            self.finish_tx(id, Err(err));
            if reset {
                self.auto_rset();
            }
        } else {
            self.start_data(id);
        }
    }

    fn on_data(&mut self, id: MessageId, reply: Reply) {
        let Some(tx) = self.tx_mut(id) else { return };
        if reply.code() == ReplyCode::START_MAIL_INPUT {
            if tx.mail_ok() && tx.accepted() > 0 && tx.all_rcpts_known() {
                let encoder = Encoder::Data(DotStuffer::new());
                self.body = Some(BodyState { id, offset: 0, encoder, paused: false });
            } else {
                // RFC 2920 section 3.1: if every RCPT failed but DATA was accepted, "the client
                // SMTP should send a single dot". Nothing is delivered.
                tx.aborting = true;
                self.out.extend_from_slice(b".\r\n");
                self.end_queued(id);
                self.expect_reply(Kind::DataEnd(id));
                self.current = None;
            }
            return;
        }
        if !reply.code().is_transient_negative() && !reply.code().is_permanent_negative() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::Data, reply }.into());
            return;
        }
        let err = if tx.mail_ok() && tx.accepted() > 0 {
            Error::Rejected { phase: Phase::Data, reply, recipients: tx.results() }
        } else {
            tx.envelope_failure()
        };
        let reset = tx.mail_ok();
        self.finish_tx(id, Err(err));
        if reset {
            self.auto_rset();
        }
    }

    fn on_data_end(&mut self, id: MessageId, reply: Reply) {
        let Some(tx) = self.tx(id) else { return };
        let result = if tx.aborting {
            Err(tx.envelope_failure())
        } else if reply.is_positive() {
            Ok(SendReport { id, reply, recipients: tx.results() })
        } else if reply.code().is_positive_intermediate() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataEnd, reply }.into());
            return;
        } else {
            Err(Error::Rejected { phase: Phase::DataEnd, reply, recipients: tx.results() })
        };
        self.finish_tx(id, result);
    }

    fn on_lmtp_end(&mut self, id: MessageId, i: usize, reply: Reply) {
        if reply.code().is_positive_intermediate() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataEnd, reply }.into());
            return;
        }
        let Some(tx) = self.tx_mut(id) else { return };
        tx.lmtp.push(reply);
        if tx.lmtp.len() <= i || tx.lmtp.len() < tx.accepted() {
            return; // more per-recipient replies follow
        }
        // Each accepted recipient's final word replaces its RCPT reply in the report.
        let mut finals = std::mem::take(&mut tx.lmtp).into_iter();
        let mut recipients = tx.results();
        for r in recipients.iter_mut().filter(|r| r.accepted()) {
            if let Some(f) = finals.next() {
                r.reply = f;
            }
        }
        let result = match recipients.iter().find(|r| r.accepted()) {
            Some(first) => Ok(SendReport { id, reply: first.reply.clone(), recipients }),
            None => {
                let reply =
                    recipients.last().map_or_else(|| Reply::single(554, "no recipient"), |r| r.reply.clone());
                Err(Error::Rejected { phase: Phase::DataEnd, reply, recipients })
            }
        };
        self.finish_tx(id, result);
    }

    fn on_bdat(&mut self, id: MessageId, last: bool, reply: Reply) {
        let Some(tx) = self.tx_mut(id) else { return };
        if !reply.is_positive() && tx.bdat_failed.is_none() {
            tx.bdat_failed = Some(reply.clone());
        }
        if !last {
            if tx.bdat_failed.is_some() && !self.pipelining() {
                // RFC 3030 section 2: after a failed chunk the sender "MUST NOT send any
                // additional BDAT segments".
                self.body = None;
                self.current = None;
                self.fail_bdat(id);
            } else if let Some(body) = self.body.as_mut().filter(|b| b.id == id) {
                body.paused = false;
            }
            return;
        }
        if reply.code().is_positive_intermediate() {
            self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataEnd, reply }.into());
            return;
        }
        let Some(tx) = self.tx(id) else { return };
        if tx.bdat_failed.is_none() && tx.mail_ok() && tx.accepted() > 0 {
            let report = SendReport { id, reply, recipients: tx.results() };
            self.finish_tx(id, Ok(report));
        } else {
            self.fail_bdat(id);
        }
    }

    fn fail_bdat(&mut self, id: MessageId) {
        let Some(tx) = self.tx(id) else { return };
        let err = if !tx.mail_ok() || tx.accepted() == 0 {
            tx.envelope_failure()
        } else {
            let reply = tx.bdat_failed.clone().unwrap_or_else(|| Reply::single(554, "BDAT failed"));
            Error::Rejected { phase: Phase::DataEnd, reply, recipients: tx.results() }
        };
        let reset = tx.mail_ok();
        self.finish_tx(id, Err(err));
        if reset {
            self.auto_rset();
        }
    }

    fn auto_rset(&mut self) {
        self.push_command(&Command::Rset, Kind::Rset(None));
    }

    fn on_rset(&mut self, op: Option<OpId>, reply: Reply) {
        let ok = reply.is_positive();
        match op {
            Some(op) => self.command_done(op, Phase::Rset, reply),
            None if !ok => {
                // The server would not reset: its state is unknown, so the session ends.
                self.fail_with_quit(Error::Rejected { phase: Phase::Rset, reply, recipients: Vec::new() });
            }
            None => {}
        }
    }

    fn command_done(&mut self, op: OpId, phase: Phase, reply: Reply) {
        let result = if reply.is_positive() {
            Ok(reply)
        } else {
            Err(Error::Rejected { phase, reply, recipients: Vec::new() })
        };
        self.events.push_back(Event::Command { id: op, result });
    }

    fn on_quit(&mut self, op: Option<OpId>, reply: Reply) {
        if let Some(op) = op {
            self.command_done(op, Phase::Quit, reply);
        }
        let err = match &mut self.stage {
            Stage::Quitting(err) => err.take(),
            _ => None,
        };
        self.close(err);
    }

    fn finish_tx(&mut self, id: MessageId, result: Result<SendReport, Error>) {
        if let Some(pos) = self.txs.iter().position(|t| t.id == id) {
            self.txs.remove(pos);
        }
        if self.current == Some(id) {
            self.current = None;
        }
        if self.body.as_ref().is_some_and(|b| b.id == id) {
            self.body = None;
        }
        self.events.push_back(Event::Message { id, result });
    }

    // ---- output ----------------------------------------------------------------------

    fn push_command(&mut self, cmd: &Command<'_>, kind: Kind) {
        self.put_command(cmd);
        self.expect_reply(kind);
    }

    /// Encodes `cmd` into the output; its transcript line shows once it is written.
    fn put_command(&mut self, cmd: &Command<'_>) {
        let start = self.out.len();
        cmd.encode(&mut self.out);
        if self.config.trace {
            let text = match cmd {
                Command::Auth { mechanism, initial: Some(_) } => format!("AUTH {mechanism} [redacted]"),
                Command::AuthResponse(_) => "[redacted]".to_string(),
                _ => {
                    let line = self.out.get(start..self.out.len().saturating_sub(2)).unwrap_or_default();
                    String::from_utf8_lossy(line).into_owned()
                }
            };
            self.trace_client(text);
        }
    }

    /// A client transcript line for what was just queued: shown once it is written.
    fn trace_client(&mut self, text: String) {
        let line = TraceLine { direction: Direction::Client, text };
        self.unsent_trace.push_back((self.queued_end(), line));
    }

    /// The output position just past everything queued so far.
    fn queued_end(&self) -> u64 {
        self.out_base + self.out.len() as u64
    }

    /// Awaits a reply to what was just put in the output.
    fn expect_reply(&mut self, kind: Kind) {
        let end = self.queued_end();
        self.in_flight.push_back(Pending { kind, sent_at: None, end });
    }

    /// The end of data of `id` was just put in the output.
    fn end_queued(&mut self, id: MessageId) {
        let end = self.queued_end();
        if let Some(tx) = self.tx_mut(id) {
            tx.end_mark = Some(end);
        }
    }

    /// Queues `piece` for writing after what is in `out`, without copying it.
    fn push_segment(&mut self, piece: Bytes) {
        self.seal_out();
        self.out_base += piece.len() as u64;
        self.segments.push_back(piece);
    }

    /// Moves what `out` holds into a segment of its own, so later segments follow it.
    fn seal_out(&mut self) {
        if !self.out.is_empty() {
            self.out_base += self.out.len() as u64;
            let sealed = Bytes::from(std::mem::take(&mut self.out));
            self.segments.push_back(sealed);
        }
    }

    /// With nothing queued, lets go of output capacity kept for reuse ([`Session::recycle`]):
    /// an idle pooled connection holds as little memory as it can.
    fn release_idle_buffers(&mut self) {
        if self.txs.is_empty() && self.ops.is_empty() && self.out.is_empty() && self.in_flight.is_empty() {
            self.out = Vec::new();
            self.spare = Vec::new();
            self.segments = VecDeque::new();
            self.parser.release_idle();
        }
    }

    /// Drops every byte not yet handed over, and the transcript lines of commands that
    /// will now never be written.
    fn clear_output(&mut self) {
        self.out.clear();
        self.segments.clear();
        self.out_base = self.handed;
        let handed = self.handed;
        self.unsent_trace.retain(|(end, _)| *end <= handed);
    }

    fn trace_reply(&mut self, reply: &Reply) {
        if !self.config.trace {
            return;
        }
        // Server challenges during AUTH can echo secrets (e.g. LOGIN servers that repeat
        // the user name); keep them out too.
        let redact = matches!(self.in_flight.front().map(|p| p.kind), Some(Kind::Auth))
            && reply.code() == ReplyCode::AUTH_CONTINUE;
        let n = reply.line_count();
        for (i, line) in reply.text().split('\n').enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let text = if redact { "[redacted]" } else { line };
            let enhanced = match (i, reply.enhanced()) {
                (0, Some(e)) if !redact => format!("{e} "),
                _ => String::new(),
            };
            let text = format!("{}{sep}{enhanced}{text}", reply.code());
            self.trace.push_back(TraceLine { direction: Direction::Server, text });
        }
    }

    /// Streams the current body into the output buffer up to the high-water mark.
    fn fill_body(&mut self) {
        while self.queued_end() - self.handed < OUT_HIGH_WATER as u64 {
            let Some(state) = self.body.as_mut() else { return };
            if state.paused {
                return;
            }
            let id = state.id;
            let Some(tx) = self.txs.iter_mut().find(|t| t.id == id) else {
                self.body = None;
                return;
            };
            let start = state.offset;
            match &mut state.encoder {
                Encoder::Data(stuffer) => {
                    let end = (start + DATA_PIECE).min(tx.body.len());
                    let piece = tx.body.get(start..end).unwrap_or_default();
                    // A large piece that goes on the wire as it is is written from the
                    // caller's buffer instead of a copy.
                    let direct =
                        tx.info.verbatim() && piece.len() >= ZERO_COPY_MIN && stuffer.sent_verbatim(piece);
                    if !direct {
                        // Room for the piece, its stuffing, the terminator and the next
                        // message's commands, which usually join this write: one
                        // allocation per flight instead of one per growth step.
                        self.out.reserve(end - start + FLIGHT_SLACK);
                        stuffer.encode_analyzed(&tx.info, piece, &mut self.out);
                    }
                    let direct = direct.then(|| tx.body.slice(start..end));
                    state.offset = end;
                    let octets = tx.body.len();
                    if let Some(piece) = direct {
                        self.push_segment(piece);
                    }
                    if end == octets {
                        self.finish_data(octets);
                    }
                }
                Encoder::Bdat(normalizer) => {
                    let end = (start + self.config.bdat_chunk_size.max(1)).min(tx.body.len());
                    let last = end == tx.body.len();
                    let mut chunk = Vec::with_capacity(end - start + 16);
                    normalizer.encode(tx.body.get(start..end).unwrap_or_default(), &mut chunk);
                    state.offset = end;
                    if last {
                        std::mem::take(normalizer).finish(&mut chunk);
                    }
                    self.emit_bdat_chunk(id, chunk, last);
                }
            }
        }
    }

    /// Writes the terminator after the last piece of a DATA body.
    fn finish_data(&mut self, octets: usize) {
        let Some(state) = self.body.take() else { return };
        if let Encoder::Data(stuffer) = state.encoder {
            stuffer.finish(&mut self.out);
        }
        self.end_queued(state.id);
        self.push_end_of_data(state.id);
        self.trace_data(octets);
        self.current = None;
        // Pipelining: the next message's commands join the same write.
        self.advance();
    }

    /// RFC 2033 section 4.2: after the final dot an LMTP server sends "one reply for each
    /// successful RCPT command", in the order of the RCPT commands; SMTP sends one.
    fn push_end_of_data(&mut self, id: MessageId) {
        let accepted = match self.tx(id) {
            Some(tx) if self.config.lmtp => tx.accepted(),
            _ => 0,
        };
        if accepted == 0 {
            self.expect_reply(Kind::DataEnd(id));
        }
        for i in 0..accepted {
            self.expect_reply(Kind::LmtpEnd(id, i));
        }
    }

    fn emit_bdat_chunk(&mut self, id: MessageId, chunk: Vec<u8>, last: bool) {
        if last {
            self.body = None;
            self.current = None;
        } else if !self.pipelining() {
            if let Some(state) = self.body.as_mut() {
                state.paused = true;
            }
        }
        let size = chunk.len() as u64;
        self.put_command(&Command::Bdat { size, last });
        self.out.extend_from_slice(&chunk);
        // The chunk's reply is due once its last octet is written.
        self.expect_reply(Kind::Bdat(id, last));
        if last {
            self.end_queued(id);
        }
        self.trace_data(chunk.len());
    }

    fn trace_data(&mut self, octets: usize) {
        if self.config.trace {
            self.trace_client(format!("[message data: {octets} octets]"));
        }
    }

    // ---- failure ---------------------------------------------------------------------

    /// A failure that leaves the connection usable for a polite QUIT: everything queued
    /// fails with `err`, QUIT is sent, and the session closes with `err` after its reply.
    fn fail_with_quit(&mut self, err: Error) {
        if !self.in_flight.is_empty() || self.body.is_some() || matches!(self.stage, Stage::Quitting(_)) {
            // Other replies are still due: a QUIT now would be matched with one of them.
            self.fatal(err);
            return;
        }
        self.fail_all(&err);
        self.clear_output();
        self.push_command(&Command::Quit, Kind::Quit(None));
        self.stage = Stage::Quitting(Some(err));
    }

    /// The connection cannot be trusted or used any more.
    fn fatal(&mut self, err: Error) {
        let err = match &mut self.stage {
            Stage::Quitting(Some(first)) => first.clone(),
            _ => err,
        };
        self.fail_all(&err);
        self.close(Some(err));
    }

    fn fail_all(&mut self, err: &Error) {
        for tx in std::mem::take(&mut self.txs) {
            let recipients = tx.results();
            let result = if tx.end_written && !tx.aborting && tx.envelope_refused() {
                // The replies already in prove nothing can be delivered (e.g. a pipelined
                // BDAT LAST went out, then every RCPT was refused): not ambiguous.
                tx.envelope_failure()
            } else if tx.end_written && !tx.aborting {
                Error::Ambiguous { cause: Box::new(err.clone()), recipients }
            } else {
                err.clone()
            };
            self.events.push_back(Event::Message { id: tx.id, result: Err(result) });
        }
        let mut ops: Vec<OpId> = self
            .in_flight
            .iter()
            .filter_map(|p| match p.kind {
                Kind::Rset(Some(id))
                | Kind::Noop(id)
                | Kind::Vrfy(id)
                | Kind::Custom(id)
                | Kind::Reehlo(id)
                | Kind::Quit(Some(id)) => Some(id),
                _ => None,
            })
            .collect();
        ops.extend(self.ops.iter().filter_map(|op| match op {
            Op::Rset(id)
            | Op::Noop(id)
            | Op::Vrfy(id, _)
            | Op::Custom(id, _)
            | Op::Ehlo(id)
            | Op::Quit(id) => Some(*id),
            Op::Message(_) => None,
        }));
        for id in ops {
            self.events.push_back(Event::Command { id, result: Err(err.clone()) });
        }
        self.ops.clear();
        self.in_flight.clear();
        self.body = None;
        self.current = None;
        self.sasl = None;
    }

    fn close(&mut self, err: Option<Error>) {
        self.fail_all(err.as_ref().unwrap_or(&Error::SessionClosed));
        self.stage = Stage::Closed;
        self.clear_output();
        self.events.push_back(Event::Closed(err));
    }
}
