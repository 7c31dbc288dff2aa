//! One server connection: reading commands, answering them, receiving message data, the
//! TLS upgrade, AUTH, and the injected faults.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::command::{self, Command, param_parts};
use super::data::DotDecoder;
use super::fault::{self, Fault, Step};
use super::record::{Authentication, ReceivedMessage, show};
use super::reply::Reply;
use super::sasl;
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

struct Chunk {
    remaining: u64,
    last: bool,
    /// Fault chosen when the BDAT line arrived, applied to the reply after the chunk.
    fault: Option<Fault>,
    /// Why the chunk will be refused once read (RFC 3030 2: the chunk is read regardless).
    refusal: Option<Reply>,
}

#[derive(Debug, Clone)]
enum AuthState {
    /// Waiting for the PLAIN response after an empty `334`.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password.
    LoginPassword { user: String },
    /// CRAM-MD5: waiting for `user digest` after this challenge.
    CramMd5 { challenge: String },
    /// SCRAM-SHA-256: waiting for the client-first-message after an empty `334`.
    ScramFirst,
    /// SCRAM-SHA-256: waiting for the client-final-message.
    ScramFinal(Box<sasl::ScramServer>),
    /// SCRAM-SHA-256: the server signature is sent; waiting for the empty response.
    ScramVerified { user: String },
    /// OAUTHBEARER or XOAUTH2: waiting for the response after an empty `334`.
    OAuth { xoauth2: bool },
    /// The error challenge is sent; waiting for the client's dummy response.
    OAuthFailed { xoauth2: bool, user: Option<String> },
}

/// The AUTH exchange in progress, for [`Authentication`] records and [`Step::AuthRound`].
struct Exchange {
    mechanism: String,
    /// The user the client claimed, once known.
    user: Option<String>,
    /// Lines of the exchange answered so far.
    round: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greeted {
    No,
    Helo,
    Ehlo,
}

/// One mail transaction, from MAIL FROM to the end of data.
#[derive(Default)]
struct Transaction {
    from: String,
    params: Vec<String>,
    smtputf8: bool,
    rcpts: Vec<(String, Vec<String>)>,
    /// RCPT commands seen, accepted or not (for [`Step::Rcpt`]).
    rcpt_commands: usize,
    /// BDAT commands seen (for [`Step::Bdat`]).
    bdat_commands: usize,
    data: Vec<u8>,
    /// Octets received, including any dropped past the size limit.
    data_total: u64,
    via_bdat: bool,
}

/// What a command does if the reply the client gets says it succeeded.
enum Effect {
    None,
    Greet,
    Greeted(Greeted),
    StartMail(Transaction),
    AddRcpt(String, Vec<String>),
    EnterData,
    StartTls,
    Reset,
    Quit,
    AuthContinue(AuthState),
    AuthSuccess(String),
    Commit(Box<ReceivedMessage>),
}

impl Effect {
    /// The reply class (first digit) that counts as success for this effect.
    fn success_class(&self) -> u8 {
        match self {
            Effect::EnterData | Effect::AuthContinue(_) => 3,
            _ => 2,
        }
    }
}

/// What to do once the reply is on the wire.
enum After {
    Nothing,
    Close,
    Handshake,
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
    /// First digit of the last reply sent (0 if none or not a digit).
    last_class: u8,
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

    /// Read once from the transport into `inbuf`, honouring the byte budget and the
    /// idle timers.
    async fn read_more(&mut self) -> Read {
        if !self.flush_out().await {
            return Read::Eof;
        }
        let buf = &mut self.readbuf;
        let want = self.budget.map_or(READ_CHUNK, |b| b.min(READ_CHUNK));
        if want == 0 {
            return Read::Eof;
        }
        let idle = match (self.unsolicited, self.shared.config.idle_timeout) {
            (Some((a, send_421)), Some(b)) if a < b => Some((a, send_421)),
            (_, Some(b)) => Some((b, true)),
            (a, None) => a,
        };
        let result = match idle {
            Some((limit, send_421)) => {
                match tokio::time::timeout(limit, self.conn.read(&mut buf[..want])).await {
                    Ok(r) => r,
                    Err(_) => return Read::Idle(send_421),
                }
            }
            None => self.conn.read(&mut buf[..want]).await,
        };
        match result {
            Ok(0) | Err(_) => Read::Eof,
            Ok(n) => {
                let got = &buf[..n];
                self.shared.recorder.received(self.id, got);
                self.inbuf.extend_from_slice(got);
                if let Some(b) = self.budget.as_mut() {
                    *b -= n;
                }
                self.unsolicited = None;
                Read::Data
            }
        }
    }

    /// Handle one unit of buffered input, or `None` when more input is needed.
    async fn process(&mut self) -> Option<Flow> {
        match &mut self.mode {
            Mode::Command => {
                let line = self.take_line()?;
                Some(self.command(line).await)
            }
            Mode::Auth(_) => {
                let line = self.take_line()?;
                Some(self.auth_response(line).await)
            }
            Mode::Data(decoder) => {
                if self.inbuf.is_empty() {
                    return None;
                }
                let txn = self.txn.get_or_insert_with(Transaction::default);
                let limit = self.shared.config.message_limit();
                let fed = decoder.feed(&self.inbuf, &mut txn.data, limit);
                self.inbuf.drain(..fed.consumed);
                if !fed.done {
                    return None;
                }
                let Mode::Data(decoder) = std::mem::replace(&mut self.mode, Mode::Command) else {
                    return None;
                };
                Some(self.data_end(decoder).await)
            }
            Mode::Chunk(chunk) => {
                let take = usize::try_from(chunk.remaining).unwrap_or(usize::MAX).min(self.inbuf.len());
                chunk.remaining -= take as u64;
                let txn = self.txn.as_mut().filter(|_| chunk.refusal.is_none());
                if let Some(txn) = txn {
                    let room = self.shared.config.message_limit().saturating_sub(txn.data.len());
                    txn.data.extend_from_slice(&self.inbuf[..take.min(room)]);
                    txn.data_total += take as u64;
                }
                self.inbuf.drain(..take);
                if chunk.remaining > 0 {
                    return None;
                }
                let Mode::Chunk(chunk) = std::mem::replace(&mut self.mode, Mode::Command) else {
                    return None;
                };
                Some(self.chunk_end(chunk).await)
            }
        }
    }

    /// The next complete line from `inbuf` without its line ending; `Some(None)` for a line
    /// that was too long (already dropped).
    fn take_line(&mut self) -> Option<Option<Vec<u8>>> {
        let Some(lf) = memchr::memchr(b'\n', &self.inbuf) else {
            if self.inbuf.len() > MAX_COMMAND_LINE {
                self.discarding = true;
                self.inbuf.clear();
            }
            return None;
        };
        let mut line: Vec<u8> = self.inbuf.drain(..=lf).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        } else {
            // RFC 5321 2.3.8: lines end in CRLF; a bare LF is a client bug worth seeing.
            self.violation("command line ended with a bare LF");
        }
        if std::mem::take(&mut self.discarding) || line.len() > MAX_COMMAND_LINE {
            return Some(None);
        }
        Some(Some(line))
    }

    async fn command(&mut self, line: Option<Vec<u8>>) -> Flow {
        self.unsolicited = None;
        let index = self.commands;
        self.commands += 1;
        let Some(line) = line else {
            self.shared.recorder.line(self.id, "C: <line too long, dropped>".into());
            let reply = self.reply(500, "5.5.2", "Line too long");
            return self.respond(&[Step::Command(index)], reply, Effect::None).await;
        };
        self.shared.recorder.line(self.id, format!("C: {}", show(&line)));
        let any = Step::Command(index);
        if self.rejected {
            // RFC 5321 3.1: after a 554 greeting the server "MUST wait for the client to send
            // a QUIT before closing the connection and SHOULD respond to any intervening
            // commands with "503 bad sequence of commands"".
            return match command::parse(&line) {
                Ok(Command::Quit) => {
                    let reply = self.reply(221, "2.0.0", "Bye");
                    self.respond(&[Step::Quit, any], reply, Effect::Quit).await
                }
                _ => {
                    let reply = self.reply(503, "5.5.1", "Bad sequence of commands");
                    self.respond(&[any], reply, Effect::None).await
                }
            };
        }
        let cmd = match command::parse(&line) {
            Ok(cmd) => cmd,
            Err(reply) => return self.respond(&[any], reply, Effect::None).await,
        };
        match cmd {
            Command::Ehlo(_) => {
                let reply = Reply::new(250, self.ehlo_lines().join("\n"));
                self.respond(&[Step::Ehlo, any], reply, Effect::Greeted(Greeted::Ehlo)).await
            }
            Command::Helo(_) => {
                let reply = Reply::new(250, self.shared.config.hostname.clone());
                self.respond(&[Step::Helo, any], reply, Effect::Greeted(Greeted::Helo)).await
            }
            Command::Mail { path, params } => {
                let (reply, effect) = self.mail(path, params);
                self.respond(&[Step::Mail, any], reply, effect).await
            }
            Command::Rcpt { path, params } => {
                let n = self.txn.as_ref().map_or(0, |t| t.rcpt_commands);
                if let Some(t) = self.txn.as_mut() {
                    t.rcpt_commands += 1;
                }
                let (reply, effect) = self.rcpt(path, params);
                self.respond(&[Step::Rcpt(n), Step::RcptAny, any], reply, effect).await
            }
            Command::Data => {
                let (reply, effect) = self.data();
                let flow = self.respond(&[Step::Data, any], reply, effect).await;
                if matches!(self.mode, Mode::Data(_)) && !self.inbuf.is_empty() {
                    // RFC 2920 3.1: DATA is the last command of a group; data before 354
                    // is a pipelining error.
                    self.violation("message data sent before the 354 reply");
                }
                flow
            }
            Command::Bdat { size, last } => self.bdat(size, last, index).await,
            Command::Rset => {
                let reply = self.reply(250, "2.0.0", "OK");
                self.respond(&[Step::Rset, any], reply, Effect::Reset).await
            }
            Command::Noop => {
                let reply = self.reply(250, "2.0.0", "OK");
                self.respond(&[Step::Noop, any], reply, Effect::None).await
            }
            Command::Quit => {
                let text = format!("{} closing connection", self.shared.config.hostname);
                let reply = self.reply(221, "2.0.0", text);
                self.respond(&[Step::Quit, any], reply, Effect::Quit).await
            }
            Command::Vrfy => {
                let reply = self.reply(252, "2.5.0", "Cannot VRFY user, but will accept message");
                self.respond(&[any], reply, Effect::None).await
            }
            Command::Help => {
                let reply = self.reply(214, "2.0.0", "smtpkit-testing: see RFC 5321");
                self.respond(&[any], reply, Effect::None).await
            }
            Command::NotImplemented => {
                let reply = self.reply(502, "5.5.1", "Command not implemented");
                self.respond(&[any], reply, Effect::None).await
            }
            Command::StartTls => {
                let (reply, effect) = self.starttls();
                self.respond(&[Step::StartTls, any], reply, effect).await
            }
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial, index).await,
        }
    }

    /// The EHLO reply lines: greeting line, then one capability per line.
    fn ehlo_lines(&self) -> Vec<String> {
        let c = &self.shared.config;
        let mut lines = vec![format!("{} greets you", c.hostname)];
        let size = c.size.map(|n| format!("SIZE {n}"));
        let auth = Some(format!("AUTH {}", c.auth_mechanisms().join(" ")));
        let caps = [
            (c.pipelining, Some("PIPELINING")),
            (size.is_some(), size.as_deref()),
            (c.eight_bit_mime, Some("8BITMIME")),
            (c.smtputf8, Some("SMTPUTF8")),
            (c.dsn, Some("DSN")),
            (c.enhanced_status_codes, Some("ENHANCEDSTATUSCODES")),
            (c.chunking, Some("CHUNKING")),
            // RFC 3207 4.2: "A server MUST NOT return the STARTTLS extension in response to
            // an EHLO command received after a TLS handshake has completed."
            (c.starttls && !c.implicit_tls && !self.tls, Some("STARTTLS")),
            (self.auth_offered(), auth.as_deref()),
        ];
        lines.extend(caps.into_iter().filter(|(on, _)| *on).filter_map(|(_, cap)| cap.map(str::to_owned)));
        lines.extend(c.extra_capabilities.iter().cloned());
        lines
    }

    fn auth_offered(&self) -> bool {
        let c = &self.shared.config;
        !c.auth_mechanisms().is_empty() && (self.tls || !c.auth_requires_tls())
    }

    /// Whether an ESMTP parameter keyword is allowed by what the EHLO reply advertised.
    fn param_allowed(&self, keyword: &str, value: Option<&str>) -> bool {
        let c = &self.shared.config;
        if self.greeted != Greeted::Ehlo {
            return false;
        }
        let extra = c.extra_capabilities.iter().any(|cap| {
            cap.split(' ').next().is_some_and(|k| k.eq_ignore_ascii_case(keyword))
                || (keyword == "BODY" && value.is_some_and(|v| v.eq_ignore_ascii_case(cap)))
        });
        extra
            || match keyword {
                "SIZE" => c.size.is_some(),
                "BODY" => {
                    c.eight_bit_mime
                        && value.is_some_and(|v| {
                            v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME")
                        })
                }
                "SMTPUTF8" => c.smtputf8,
                "RET" | "ENVID" | "NOTIFY" | "ORCPT" => c.dsn,
                "AUTH" => self.auth_offered(),
                _ => false,
            }
    }

    fn mail(&self, path: String, params: Vec<String>) -> (Reply, Effect) {
        let c = &self.shared.config;
        if self.greeted == Greeted::No {
            return (self.reply(503, "5.5.1", "Send EHLO/HELO first"), Effect::None);
        }
        if c.require_tls && !self.tls {
            // RFC 3207 4: "530 Must issue a STARTTLS command first".
            return (self.reply(530, "5.7.0", "Must issue a STARTTLS command first"), Effect::None);
        }
        if c.require_auth && self.auth_user.is_none() {
            // RFC 4954 6: "530 5.7.0 Authentication required".
            return (self.reply(530, "5.7.0", "Authentication required"), Effect::None);
        }
        if self.txn.is_some() {
            return (self.reply(503, "5.5.1", "Nested MAIL command"), Effect::None);
        }
        let mut smtputf8 = false;
        for param in &params {
            let (keyword, value) = param_parts(param);
            if !self.param_allowed(&keyword, value) {
                // RFC 5321 4.1.1.11: "555 MAIL FROM/RCPT TO parameters not recognized or not
                // implemented".
                let text = format!("MAIL FROM parameter {param} not recognized or not implemented");
                return (self.reply(555, "5.5.4", text), Effect::None);
            }
            match keyword.as_str() {
                "SIZE" => {
                    let Some(declared) = value.and_then(|v| v.parse::<u64>().ok()) else {
                        return (self.reply(501, "5.5.4", "Bad SIZE value"), Effect::None);
                    };
                    if c.size.is_some_and(|max| max > 0 && declared > max) {
                        // RFC 1870 6.1: 552 when the declared size exceeds the fixed maximum.
                        let text = "Message size exceeds fixed maximum message size";
                        return (self.reply(552, "5.3.4", text), Effect::None);
                    }
                }
                "SMTPUTF8" => smtputf8 = true,
                _ => {}
            }
        }
        if !path.is_ascii() && !smtputf8 {
            // RFC 6531 3.5: non-ASCII addresses need the SMTPUTF8 parameter.
            return (self.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"), Effect::None);
        }
        let txn = Transaction { from: path.clone(), params, smtputf8, ..Transaction::default() };
        if let Some(r) = c.refused_senders.iter().find(|r| r.address.eq_ignore_ascii_case(&path)) {
            return (Reply::new(r.code, r.text.clone()), Effect::StartMail(txn));
        }
        (self.reply(250, "2.1.0", "Sender OK"), Effect::StartMail(txn))
    }

    fn rcpt(&self, path: String, params: Vec<String>) -> (Reply, Effect) {
        let c = &self.shared.config;
        let Some(txn) = self.txn.as_ref() else {
            return (self.reply(503, "5.5.1", "Need MAIL before RCPT"), Effect::None);
        };
        for param in &params {
            let (keyword, value) = param_parts(param);
            if keyword == "SIZE" || keyword == "BODY" || !self.param_allowed(&keyword, value) {
                let text = format!("RCPT TO parameter {param} not recognized or not implemented");
                return (self.reply(555, "5.5.4", text), Effect::None);
            }
        }
        if !path.is_ascii() && !txn.smtputf8 {
            return (self.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"), Effect::None);
        }
        if txn.rcpts.len() >= c.max_recipients {
            // RFC 5321 4.5.3.1.10: "452 Too many recipients".
            return (self.reply(452, "4.5.3", "Too many recipients"), Effect::None);
        }
        let effect = Effect::AddRcpt(path.clone(), params);
        if let Some(r) = c.refused_recipients.iter().find(|r| r.address.eq_ignore_ascii_case(&path)) {
            return (Reply::new(r.code, r.text.clone()), effect);
        }
        (self.reply(250, "2.1.5", "Recipient OK"), effect)
    }

    fn data(&self) -> (Reply, Effect) {
        let Some(txn) = self.txn.as_ref() else {
            return (self.reply(503, "5.5.1", "Need MAIL before DATA"), Effect::None);
        };
        if txn.via_bdat {
            // RFC 3030 2: "DATA and BDAT commands cannot be used in the same transaction."
            return (self.reply(503, "5.5.1", "DATA not allowed after BDAT"), Effect::None);
        }
        if txn.rcpts.is_empty() {
            // RFC 5321 3.3: with no valid recipients the server MAY answer "554 No valid
            // recipients" (the form that works with pipelining).
            return (self.reply(554, "5.5.1", "No valid recipients"), Effect::EnterData);
        }
        (Reply::new(354, "Start mail input; end with <CRLF>.<CRLF>"), Effect::EnterData)
    }

    fn message(&self, txn: Transaction, via_bdat: bool) -> ReceivedMessage {
        let (rcpt_to, rcpt_params) = txn.rcpts.into_iter().unzip();
        ReceivedMessage {
            mail_from: txn.from,
            rcpt_to,
            rcpt_params,
            mail_params: txn.params,
            data: txn.data,
            tls: self.tls,
            authenticated_as: self.auth_user.clone(),
            authenticated_with: self.auth_mechanism.clone(),
            via_bdat,
            connection: self.id,
            committed: false,
        }
    }

    async fn data_end(&mut self, decoder: DotDecoder) -> Flow {
        let txn = self.txn.take().unwrap_or_default();
        self.shared.recorder.line(self.id, format!("C: <message data, {} octets>", decoder.total()));
        self.shared.recorder.line(self.id, "C: .".into());
        for what in decoder.violations() {
            self.violation(&format!("{what} in message data"));
        }
        if let Some(max) = self.shared.config.max_data_line.filter(|max| decoder.longest_line() > *max) {
            self.violation(&format!("message line of {} octets (limit {max})", decoder.longest_line()));
        }
        let c = &self.shared.config;
        let reply = if decoder.overflowed() {
            self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
        } else if c.max_data_line.is_some_and(|max| decoder.longest_line() > max) {
            // RFC 5321 4.5.3.1.10: "500 Line too long."
            self.reply(500, "5.5.2", "Line too long")
        } else if c.greylist && !self.shared.recorder.seen(&txn.from, &txn.data) {
            self.reply(451, "4.7.1", "Greylisted, try again later")
        } else {
            self.reply(250, "2.0.0", format!("OK: queued as {}", self.id))
        };
        let msg = self.message(txn, false);
        self.respond(&[Step::DataEnd], reply, Effect::Commit(Box::new(msg))).await
    }

    async fn bdat(&mut self, size: u64, last: bool, index: usize) -> Flow {
        let any = Step::Command(index);
        if !self.shared.config.chunking {
            // Without CHUNKING the chunk octets that follow will be read as commands, as on
            // a real server that does not know BDAT.
            let reply = self.reply(502, "5.5.1", "Command not implemented");
            return self.respond(&[any], reply, Effect::None).await;
        }
        let n = self.txn.as_ref().map_or(0, |t| t.bdat_commands);
        let refusal = match self.txn.as_mut() {
            _ if self.greeted == Greeted::No => Some(self.reply(503, "5.5.1", "Send EHLO/HELO first")),
            None => Some(self.reply(503, "5.5.1", "Need MAIL before BDAT")),
            Some(t) if t.rcpts.is_empty() => {
                t.bdat_commands += 1;
                Some(Reply::enhanced(554, "5.5.1", "No valid recipients"))
            }
            Some(t) => {
                t.bdat_commands += 1;
                t.via_bdat = true;
                None
            }
        };
        let mut steps = vec![Step::Bdat(n)];
        if last {
            steps.push(Step::BdatLast);
        }
        steps.push(any);
        let mut fault = self.pick_fault(&steps);
        match fault {
            Some(Fault::CloseAfterBytes(n)) => {
                self.set_budget(n);
                fault = None;
            }
            Some(Fault::StopReading) => return Flow::StopReading,
            Some(Fault::RawThenStopReading(bytes)) => {
                self.write(bytes, None).await;
                return Flow::StopReading;
            }
            _ => {}
        }
        self.mode = Mode::Chunk(Chunk { remaining: size, last, fault, refusal });
        Flow::Continue
    }

    async fn chunk_end(&mut self, chunk: Chunk) -> Flow {
        let Chunk { last, fault, refusal, .. } = chunk;
        let total = self.txn.as_ref().map_or(0, |t| t.data_total);
        self.shared.recorder.line(self.id, format!("C: <chunk received, {total} octets so far>"));
        if let Some(reply) = refusal {
            return self.respond_with(fault, reply, Effect::None).await;
        }
        let flow = if last {
            let txn = self.txn.take().unwrap_or_default();
            let reply = if txn.data_total > txn.data.len() as u64 {
                self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
            } else {
                self.reply(250, "2.0.0", format!("OK: {total} octets queued as {}", self.id))
            };
            let msg = self.message(txn, true);
            self.respond_with(fault, reply, Effect::Commit(Box::new(msg))).await
        } else {
            let reply = self.reply(250, "2.0.0", format!("{total} octets received"));
            self.respond_with(fault, reply, Effect::None).await
        };
        if self.last_class != 2 {
            // RFC 3030 2: after a failed BDAT the transaction is abandoned.
            self.txn = None;
        }
        flow
    }

    fn starttls(&self) -> (Reply, Effect) {
        let c = &self.shared.config;
        if !c.starttls || c.implicit_tls {
            (self.reply(502, "5.5.1", "Command not implemented"), Effect::None)
        } else if self.tls {
            (self.reply(503, "5.5.1", "TLS already active"), Effect::None)
        } else if self.greeted == Greeted::No {
            (self.reply(503, "5.5.1", "Send EHLO first"), Effect::None)
        } else if self.txn.is_some() {
            (self.reply(503, "5.5.1", "Mail transaction in progress"), Effect::None)
        } else {
            (self.reply(220, "2.0.0", "Ready to start TLS"), Effect::StartTls)
        }
    }

    async fn auth(&mut self, mechanism: &str, initial: Option<String>, index: usize) -> Flow {
        let steps = [Step::Auth, Step::AuthRound(0), Step::Command(index)];
        let c = &self.shared.config;
        let advertised = c.auth_mechanisms();
        let refusal = if advertised.is_empty() {
            Some(self.reply(502, "5.5.1", "Command not implemented"))
        } else if self.greeted == Greeted::No {
            Some(self.reply(503, "5.5.1", "Send EHLO first"))
        } else if self.auth_user.is_some() {
            // RFC 4954 4: "After a successful AUTH command completes, a server MUST reject any
            // further AUTH commands with a 503 reply."
            Some(self.reply(503, "5.5.1", "Already authenticated"))
        } else if self.txn.is_some() {
            // RFC 4954 4: "The AUTH command is not permitted during a mail transaction."
            Some(self.reply(503, "5.5.1", "AUTH not permitted during a mail transaction"))
        } else if !self.auth_offered() {
            // RFC 4954 6: "538 5.7.11 Encryption required for requested authentication
            // mechanism".
            Some(self.reply(538, "5.7.11", "Encryption required for requested authentication mechanism"))
        } else if !advertised.iter().any(|m| m == mechanism) {
            // RFC 4954 4: "If the requested authentication mechanism is invalid (e.g., is
            // not supported or requires an encryption layer), the server rejects the AUTH
            // command with a 504 reply."
            Some(self.reply(504, "5.5.4", "Unrecognized authentication type"))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.respond(&steps, reply, Effect::None).await;
        }
        // RFC 4954 4: "If the client is transmitting an initial response of zero length, it
        // MUST instead transmit the response as a single equals sign".
        let initial = match initial.as_deref().map(sasl::decode_response) {
            None => None,
            Some(Some(decoded)) => Some(decoded),
            Some(None) => {
                let reply = self.reply(501, "5.5.2", "Cannot decode response");
                return self.respond(&steps, reply, Effect::None).await;
            }
        };
        // RFC 4954 4: "A server challenge that contains no data is defined as a 334 reply
        // with no text part" ("334 " followed by CRLF).
        let empty = |state: AuthState| (Reply::new(334, ""), Effect::AuthContinue(state.clone()), state);
        let (reply, effect, state) = match (mechanism, initial) {
            ("PLAIN", None) => empty(AuthState::Plain),
            ("PLAIN", Some(resp)) => {
                let (reply, effect) = self.finish_plain(&resp);
                (reply, effect, AuthState::Plain)
            }
            ("LOGIN", None) => {
                let state = AuthState::LoginUser;
                (Reply::new(334, sasl::prompt("Username:")), Effect::AuthContinue(state.clone()), state)
            }
            ("LOGIN", Some(user)) => {
                let user = String::from_utf8_lossy(&user).into_owned();
                let state = AuthState::LoginPassword { user };
                (Reply::new(334, sasl::prompt("Password:")), Effect::AuthContinue(state.clone()), state)
            }
            ("CRAM-MD5", None) => {
                // RFC 2195 2: "the presumptively arbitrary string of characters" in the form
                // of an RFC 822 msg-id, unique per exchange.
                let random = sasl::random_bytes(8).iter().map(|b| format!("{b:02x}")).collect::<String>();
                let challenge = format!("<{random}.{}@{}>", self.id, self.shared.config.hostname);
                let state = AuthState::CramMd5 { challenge: challenge.clone() };
                (Reply::new(334, sasl::encode(challenge)), Effect::AuthContinue(state.clone()), state)
            }
            ("SCRAM-SHA-256", None) => empty(AuthState::ScramFirst),
            ("SCRAM-SHA-256", Some(first)) => {
                let (reply, effect) = self.scram_first(&first);
                (reply, effect, AuthState::ScramFirst)
            }
            ("OAUTHBEARER" | "XOAUTH2", None) => empty(AuthState::OAuth { xoauth2: mechanism == "XOAUTH2" }),
            ("OAUTHBEARER" | "XOAUTH2", Some(resp)) => {
                let xoauth2 = mechanism == "XOAUTH2";
                let (reply, effect) = self.check_oauth(xoauth2, &resp);
                (reply, effect, AuthState::OAuth { xoauth2 })
            }
            ("CRAM-MD5", Some(_)) => {
                let reply = self.reply(501, "5.5.2", "CRAM-MD5 takes no initial response");
                return self.respond(&steps, reply, Effect::None).await;
            }
            _ => {
                let reply = self.reply(504, "5.5.4", "Unrecognized authentication type");
                return self.respond(&steps, reply, Effect::None).await;
            }
        };
        self.exchange = Some(Exchange { mechanism: mechanism.to_owned(), user: None, round: 0 });
        let flow = self.respond(&steps, reply, effect).await;
        self.keep_auth_on_334(state);
        self.end_exchange(false);
        flow
    }

    /// Record the exchange once it is over (or, with `abandoned`, whatever its state).
    fn end_exchange(&mut self, abandoned: bool) {
        if !abandoned && matches!(self.mode, Mode::Auth(_)) {
            return;
        }
        if let Some(x) = self.exchange.take() {
            let succeeded = !abandoned && self.auth_user.is_some();
            let user = x.user;
            let auth = Authentication { connection: self.id, mechanism: x.mechanism, user, succeeded };
            self.shared.recorder.authentication(auth);
        }
    }

    /// A fault that answers 334 where the exchange would have ended keeps the exchange
    /// going, so "334 forever" can be scripted with one rule.
    fn keep_auth_on_334(&mut self, state: AuthState) {
        if self.last_class == 3 && matches!(self.mode, Mode::Command) {
            self.mode = Mode::Auth(state);
        }
    }

    async fn auth_response(&mut self, line: Option<Vec<u8>>) -> Flow {
        let Mode::Auth(state) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return Flow::Continue;
        };
        let round = self.exchange.as_mut().map_or(0, |x| {
            x.round += 1;
            x.round
        });
        let steps = [Step::Auth, Step::AuthRound(round)];
        let Some(line) = line else {
            self.shared.recorder.line(self.id, "C: <line too long, dropped>".into());
            let reply = self.reply(500, "5.5.2", "Line too long");
            let flow = self.respond(&steps, reply, Effect::None).await;
            self.end_exchange(false);
            return flow;
        };
        self.shared.recorder.line(self.id, format!("C: {}", show(&line)));
        let text = String::from_utf8_lossy(&line).into_owned();
        let (reply, effect) = if text == "*" {
            // RFC 4954 4: "If the client wishes to cancel the authentication exchange, it
            // issues a line with a single "*". If the server receives such a response, it
            // MUST reject the AUTH command by sending a 501 reply."
            (self.reply(501, "5.0.0", "Authentication cancelled"), Effect::None)
        } else if let Some(decoded) = sasl::decode_response(&text) {
            self.auth_step(&state, decoded)
        } else {
            (self.reply(501, "5.5.2", "Cannot decode response"), Effect::None)
        };
        let flow = self.respond(&steps, reply, effect).await;
        self.keep_auth_on_334(state);
        self.end_exchange(false);
        flow
    }

    /// The answer to one decoded client response in `state`.
    fn auth_step(&self, state: &AuthState, decoded: Vec<u8>) -> (Reply, Effect) {
        match state {
            AuthState::Plain => self.finish_plain(&decoded),
            AuthState::LoginUser => {
                let user = String::from_utf8_lossy(&decoded).into_owned();
                let next = AuthState::LoginPassword { user };
                (Reply::new(334, sasl::prompt("Password:")), Effect::AuthContinue(next))
            }
            AuthState::LoginPassword { user } => self.check_credentials(user, &decoded),
            AuthState::CramMd5 { challenge } => {
                let Some((user, digest)) = sasl::parse_cram_md5(&decoded) else {
                    return (self.reply(501, "5.5.2", "Malformed CRAM-MD5 response"), Effect::None);
                };
                let ok = self.shared.config.users.iter().any(|(u, p)| {
                    *u == user && sasl::hmac_md5_hex(p.as_bytes(), challenge.as_bytes()) == digest
                });
                self.verdict(ok, user)
            }
            AuthState::ScramFirst => self.scram_first(&decoded),
            AuthState::ScramFinal(server) => match server.finish(&decoded) {
                Ok(server_final) => {
                    let next = AuthState::ScramVerified { user: server.user.clone() };
                    (Reply::new(334, sasl::encode(server_final)), Effect::AuthContinue(next))
                }
                Err(why) => {
                    self.note(format!("SCRAM-SHA-256 refused: {why}"));
                    self.verdict(false, server.user.clone())
                }
            },
            AuthState::ScramVerified { user } => {
                // RFC 5802 5: the client answers the server-final-message with an empty
                // response before the outcome.
                if !decoded.is_empty() {
                    self.violation("SCRAM-SHA-256: non-empty response to the server signature");
                }
                self.verdict(decoded.is_empty(), user.clone())
            }
            AuthState::OAuth { xoauth2 } => self.check_oauth(*xoauth2, &decoded),
            AuthState::OAuthFailed { xoauth2, user } => {
                // RFC 7628 3.2.3: the client answers the error challenge with "a single %x01
                // (control A) character"; XOAUTH2 clients send an empty response.
                let expected: &[u8] = if *xoauth2 { b"" } else { b"\x01" };
                if decoded != expected {
                    self.violation(&format!(
                        "wrong dummy response after the OAuth error: {}",
                        show(&decoded)
                    ));
                }
                let reply = self.reply(535, "5.7.8", "Authentication credentials invalid");
                (reply, user.clone().map_or(Effect::None, Effect::AuthSuccess))
            }
        }
    }

    /// `235` or `535` for `user`.
    fn verdict(&self, ok: bool, user: String) -> (Reply, Effect) {
        let effect = Effect::AuthSuccess(user);
        if ok {
            (self.reply(235, "2.7.0", "Authentication successful"), effect)
        } else {
            (self.reply(535, "5.7.8", "Authentication credentials invalid"), effect)
        }
    }

    /// Answer a SCRAM client-first-message with the server-first-message.
    fn scram_first(&self, decoded: &[u8]) -> (Reply, Effect) {
        let first = match sasl::parse_scram_client_first(decoded) {
            Ok(first) => first,
            Err(why) => return (self.reply(501, "5.5.2", format!("SCRAM-SHA-256: {why}")), Effect::None),
        };
        let c = &self.shared.config;
        let password = c.users.iter().find(|(u, _)| *u == first.user).map(|(_, p)| p.as_str());
        let suffix = c.scram.nonce_suffix.clone().unwrap_or_else(|| sasl::random_b64(18));
        let salt = c.scram.salt.clone().unwrap_or_default();
        let (server, server_first) =
            sasl::ScramServer::start(first, password, &suffix, &salt, c.scram.iterations);
        (
            Reply::new(334, sasl::encode(server_first)),
            Effect::AuthContinue(AuthState::ScramFinal(Box::new(server))),
        )
    }

    /// Check an OAUTHBEARER (RFC 7628) or XOAUTH2 response against the configured tokens.
    fn check_oauth(&self, xoauth2: bool, decoded: &[u8]) -> (Reply, Effect) {
        let parsed = if xoauth2 { sasl::parse_xoauth2(decoded) } else { sasl::parse_oauthbearer(decoded) };
        let Some(resp) = parsed else {
            return (self.reply(501, "5.5.2", "Malformed OAuth response"), Effect::None);
        };
        let matched = self
            .shared
            .config
            .oauth_tokens
            .iter()
            .find(|(u, t)| *t == resp.token && resp.user.as_ref().is_none_or(|claimed| claimed == u));
        if let Some((user, _)) = matched {
            return self.verdict(true, user.clone());
        }
        // RFC 7628 3.2.2: the failure is a JSON status in a challenge, not a reply code yet.
        let json = if xoauth2 {
            r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#.to_owned()
        } else {
            format!(
                r#"{{"status":"invalid_token","scope":"mail","openid-configuration":"https://{}/.well-known/openid-configuration"}}"#,
                self.shared.config.hostname
            )
        };
        let next = AuthState::OAuthFailed { xoauth2, user: resp.user };
        (Reply::new(334, sasl::encode(json)), Effect::AuthContinue(next))
    }

    /// Check a decoded PLAIN response (RFC 4616).
    fn finish_plain(&self, decoded: &[u8]) -> (Reply, Effect) {
        let Some(plain) = sasl::parse_plain(decoded) else {
            return (self.reply(501, "5.5.2", "Malformed PLAIN response"), Effect::None);
        };
        let user = String::from_utf8_lossy(&plain.authcid).into_owned();
        // This server has no authorization identities beyond the user itself.
        if !plain.authzid.is_empty() && plain.authzid != plain.authcid {
            return (
                self.reply(535, "5.7.8", "Authentication credentials invalid"),
                Effect::AuthSuccess(user),
            );
        }
        self.check_credentials(&user, &plain.password)
    }

    fn check_credentials(&self, user: &str, password: &[u8]) -> (Reply, Effect) {
        let ok = self.shared.config.users.iter().any(|(u, p)| u == user && p.as_bytes() == password);
        self.verdict(ok, user.to_owned())
    }

    /// The fault to inject at `steps`, if a rule fires; recorded as fired.
    fn pick_fault(&self, steps: &[Step]) -> Option<Fault> {
        let fired = fault::select(&self.shared.config.rules, self.id, steps)?;
        self.note(format!("fault at {:?}: {:?}", fired.step, fired.fault));
        let fault = fired.fault.clone();
        self.shared.recorder.fired(fired);
        Some(fault)
    }

    /// Look up the fault for `steps` and answer.
    async fn respond(&mut self, steps: &[Step], normal: Reply, effect: Effect) -> Flow {
        let fault = self.pick_fault(steps);
        self.respond_with(fault, normal, effect).await
    }

    /// Answer with `normal`, or as `fault` dictates; apply `effect` when what the client is
    /// told means success.
    async fn respond_with(&mut self, fault: Option<Fault>, normal: Reply, effect: Effect) -> Flow {
        let esc = self.shared.config.enhanced_status_codes;
        let Some(fault) = fault else {
            return self.send(normal.to_wire(esc), normal.code, effect, None).await;
        };
        match fault {
            Fault::Reply { code, text } => {
                self.send(Reply::new(code, text).to_wire(esc), code, effect, None).await
            }
            Fault::Raw(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                let after = self.settle(class, effect);
                self.write(bytes, None).await;
                self.after(after).await
            }
            Fault::Close => {
                self.settle(0, effect);
                Flow::Close
            }
            Fault::CommitThenClose => {
                self.settle(effect.success_class(), effect);
                Flow::Close
            }
            Fault::CloseAfterBytes(n) => {
                let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
                self.set_budget(n);
                flow
            }
            Fault::Delay(d) => {
                // Replies to earlier pipelined commands are not part of the delay.
                self.flush_out().await;
                tokio::time::sleep(d).await;
                self.send(normal.to_wire(esc), normal.code, effect, None).await
            }
            Fault::Trickle(d) => self.send(normal.to_wire(esc), normal.code, effect, Some(d)).await,
            Fault::Silence => {
                self.settle(0, effect);
                Flow::Silence
            }
            Fault::ExtraAfterStartTls(extra) => {
                let mut bytes = normal.to_wire(esc);
                bytes.extend_from_slice(&extra);
                self.send(bytes, normal.code, effect, None).await
            }
            Fault::Unsolicited421 { idle } => self.close_when_idle(normal, effect, idle, true).await,
            Fault::CloseWhenIdle { idle } => self.close_when_idle(normal, effect, idle, false).await,
            Fault::ReplyThenDrop => {
                let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
                if flow == Flow::Continue || flow == Flow::Close { Flow::Drop } else { flow }
            }
            Fault::RawThenClose(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                self.settle(class, effect);
                self.write(bytes, None).await;
                Flow::Close
            }
            Fault::CommitThenSilence => {
                self.settle(effect.success_class(), effect);
                Flow::Silence
            }
            Fault::Repeat(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                self.settle(class, effect);
                if bytes.is_empty() {
                    return Flow::Silence;
                }
                self.note(format!("sending {} bytes over and over: {}", bytes.len(), show(&bytes)));
                // Ends when the client closes or stops reading (write timeout), or when the
                // server shuts down.
                loop {
                    self.outbuf.extend_from_slice(&bytes);
                    if !self.flush_out().await {
                        return Flow::Close;
                    }
                }
            }
            Fault::StopReading => {
                let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
                if flow == Flow::Continue { Flow::StopReading } else { flow }
            }
            Fault::RawThenStopReading(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                self.settle(class, effect);
                self.write(bytes, None).await;
                Flow::StopReading
            }
        }
    }

    /// Send the normal reply, then arm the idle close (with or without a 421 first).
    async fn close_when_idle(
        &mut self,
        normal: Reply,
        effect: Effect,
        idle: Duration,
        send_421: bool,
    ) -> Flow {
        let esc = self.shared.config.enhanced_status_codes;
        let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
        if flow != Flow::Continue {
            return flow;
        }
        if !idle.is_zero() {
            self.unsolicited = Some((idle, send_421));
            return Flow::Continue;
        }
        if send_421 {
            let text =
                format!("4.4.2 {} Service shutting down, closing connection", self.shared.config.hostname);
            self.write(Reply::new(421, text).to_wire(false), None).await;
        }
        Flow::Close
    }

    /// Apply the effect, write the reply, then close or upgrade as the effect requires.
    async fn send(&mut self, bytes: Vec<u8>, code: u16, effect: Effect, trickle: Option<Duration>) -> Flow {
        let class = u8::try_from(code / 100).unwrap_or(0);
        let after = self.settle(class, effect);
        if !self.write(bytes, trickle).await {
            return Flow::Close;
        }
        if code == 421 {
            // RFC 5321 3.8: 421 means the server is closing the transmission channel.
            return Flow::Close;
        }
        self.after(after).await
    }

    async fn after(&mut self, after: After) -> Flow {
        match after {
            After::Nothing => Flow::Continue,
            After::Close => Flow::Close,
            After::Handshake => {
                if self.handshake().await {
                    Flow::Continue
                } else {
                    Flow::Close
                }
            }
        }
    }

    /// Apply `effect` if `class` (first digit of what the client is told) means success;
    /// otherwise undo what a failure undoes.
    fn settle(&mut self, class: u8, effect: Effect) -> After {
        self.last_class = class;
        if class != effect.success_class() {
            match effect {
                Effect::Commit(msg) => self.shared.recorder.message(*msg),
                Effect::Greet => self.rejected = true,
                Effect::AuthSuccess(user) => {
                    if let Some(x) = self.exchange.as_mut() {
                        x.user = Some(user);
                    }
                }
                _ => {}
            }
            return After::Nothing;
        }
        match effect {
            Effect::None | Effect::Greet => {}
            Effect::Greeted(kind) => {
                // RFC 5321 4.1.4: EHLO/HELO in a session "is equivalent to a RSET".
                self.greeted = kind;
                self.txn = None;
            }
            Effect::StartMail(txn) => self.txn = Some(txn),
            Effect::AddRcpt(path, params) => {
                if let Some(t) = self.txn.as_mut() {
                    t.rcpts.push((path, params));
                }
            }
            Effect::EnterData => {
                self.txn.get_or_insert_with(Transaction::default);
                self.mode = Mode::Data(DotDecoder::new());
            }
            Effect::StartTls => return After::Handshake,
            Effect::Reset => self.txn = None,
            Effect::Quit => return After::Close,
            Effect::AuthContinue(state) => self.mode = Mode::Auth(state),
            Effect::AuthSuccess(user) => {
                self.auth_user = Some(user.clone());
                if let Some(x) = self.exchange.as_mut() {
                    x.user = Some(user);
                    self.auth_mechanism = Some(x.mechanism.clone());
                }
            }
            Effect::Commit(mut msg) => {
                msg.committed = true;
                self.shared.recorder.message(*msg);
            }
        }
        After::Nothing
    }

    /// Start counting bytes for [`Fault::CloseAfterBytes`]; bytes already buffered beyond
    /// the current command count against the budget.
    fn set_budget(&mut self, n: usize) {
        if self.inbuf.len() >= n {
            // Bytes past the budget count as never read, in the record too.
            self.shared.recorder.unreceive(self.id, self.inbuf.len() - n);
            self.inbuf.truncate(n);
            self.budget = Some(0);
        } else {
            self.budget = Some(n - self.inbuf.len());
        }
    }

    /// Queue `bytes` (or, with `trickle`, write them one byte at a time now). False if the
    /// client is known to be gone. [`WRITE_TIMEOUT`] bounds each write that makes no
    /// progress, not the pauses of a trickle, so a slow-loris reply lasts as long as asked.
    async fn write(&mut self, bytes: Vec<u8>, trickle: Option<Duration>) -> bool {
        self.shared.recorder.sent(self.id, &bytes);
        let Some(pause) = trickle else {
            self.outbuf.extend_from_slice(&bytes);
            return self.outbuf.len() < MAX_QUEUED_OUTPUT || self.flush_out().await;
        };
        if !self.flush_out().await {
            return false;
        }
        let conn = &mut self.conn;
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            let step = tokio::time::timeout(WRITE_TIMEOUT, async {
                conn.write_all(std::slice::from_ref(b)).await?;
                conn.flush().await
            })
            .await;
            if !matches!(step, Ok(Ok(()))) {
                return false;
            }
        }
        true
    }

    /// Write the queued replies. False if the client is gone or stopped reading.
    async fn flush_out(&mut self) -> bool {
        if self.outbuf.is_empty() {
            return true;
        }
        let bytes = std::mem::take(&mut self.outbuf);
        let conn = &mut self.conn;
        let result = tokio::time::timeout(WRITE_TIMEOUT, async move {
            conn.write_all(&bytes).await?;
            conn.flush().await
        })
        .await;
        matches!(result, Ok(Ok(())))
    }

    /// Upgrade to TLS. RFC 3207 4.2: "The server MUST discard any knowledge obtained from
    /// the client, such as the argument to the EHLO command, which was not obtained from
    /// the TLS negotiation itself."
    async fn handshake(&mut self) -> bool {
        // The 220 (and any bytes a fault added to it) go out before the handshake starts.
        if !self.flush_out().await {
            return false;
        }
        if !self.inbuf.is_empty() {
            // Plaintext pipelined after STARTTLS must never be taken as protected input.
            self.violation(&format!("{} plaintext bytes after STARTTLS discarded", self.inbuf.len()));
            self.inbuf.clear();
        }
        let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return false;
        };
        let accept = self.shared.acceptor.accept(stream).into_fallible();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(tls)) => {
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let client_cert =
                    tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                let with_cert = if client_cert.is_some() { ", client certificate" } else { "" };
                self.note(format!("TLS handshake complete (SNI {sni:?}{with_cert})"));
                self.shared.recorder.tls_server_name(self.id, sni);
                self.shared.recorder.tls_client_certificate(self.id, client_cert);
                self.conn = Conn::Tls(Box::new(tls));
                self.tls = true;
                self.greeted = Greeted::No;
                self.auth_user = None;
                self.auth_mechanism = None;
                self.txn = None;
                true
            }
            Ok(Err((e, mut io))) => {
                self.note(format!("TLS handshake failed: {e}"));
                // The alert is sent; close gently so it is read. With TLS 1.3 the client may
                // already have sent application data (a refused client certificate shows
                // only after its handshake is done), and closing with that unread would
                // reset the connection and could destroy the alert before it is read.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    io.shutdown().await?;
                    let mut sink = [0u8; 4096];
                    while io.read(&mut sink).await? > 0 {}
                    Ok::<(), std::io::Error>(())
                })
                .await;
                false
            }
            Err(_) => {
                self.note("TLS handshake timed out");
                false
            }
        }
    }
}
