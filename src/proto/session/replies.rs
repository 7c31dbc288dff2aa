//! Matching each reply to what it answers, and starting what the queue allows next.

use std::time::Instant;

use bytes::Buf;

use super::super::code::ReplyCode;
use super::super::command::Command;
use super::super::error::{Error, Phase, ProtocolError};
use super::super::reply::Reply;
use super::handshake::{Handshake, Stage};
use super::in_flight::Kind;
use super::transaction::Tx;
use super::{Event, Op, OpId, Session};

impl Session {
    pub(super) fn process_input(&mut self, now: Instant) {
        loop {
            if matches!(self.stage, Stage::Closed) {
                return;
            }
            if matches!(self.stage, Stage::Handshake(Handshake::AwaitTls)) && !self.input.is_empty() {
                return self.fatal(ProtocolError::DataAfterStartTls(self.input.len()).into());
            }
            match self.parser.parse(&self.input) {
                Ok(None) => {
                    self.release_idle_buffers();
                    return;
                }
                Ok(Some((reply, used))) => {
                    self.input.advance(used);
                    self.last_reply_at = now;
                    let in_auth = matches!(self.in_flight.front().map(|p| p.kind), Some(Kind::Auth));
                    self.trace.reply(&reply, in_auth);
                    self.on_reply(reply);
                }
                Err(e) => return self.fatal(ProtocolError::Reply(e).into()),
            }
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let Some(pending) = self.in_flight.pop_front() else {
            return self.on_unsolicited(reply);
        };
        let kind = pending.kind;
        if pending.sent_at.is_none() {
            // A reply to a command not yet written cannot be its reply: the server runs
            // ahead of the client (or something injected lines), and matching it to the
            // command would desynchronise every later reply. A 421 is the server closing
            // before it read the command (say, idle too long): reported as such.
            self.in_flight.push_front(pending);
            return self.on_unsolicited(reply);
        }
        // RFC 5321 section 4.2: 3yz asks for more input; only DATA (354) and AUTH (334) may
        // see one (at the end of data it is handled there, as ambiguous). Anywhere else the
        // server may be reading the next commands as message text: carrying on would desync.
        let may_continue = matches!(
            kind,
            Kind::Data(_) | Kind::DataEnd(_) | Kind::LmtpEnd(..) | Kind::Bdat(..) | Kind::Auth
        );
        // RFC 5321 section 4.2.2: 221 is "Service closing transmission channel", the reply
        // to QUIT; to anything else it ends the session (it is no acceptance of mail).
        let closing = reply.code() == ReplyCode::CLOSING && !matches!(kind, Kind::Quit(_));
        if closing || (reply.code().is_positive_intermediate() && !may_continue) {
            self.in_flight.push_front(pending);
            return self.fatal(ProtocolError::UnexpectedReply { phase: kind.phase(), reply }.into());
        }
        // RFC 5321 section 3.8: "the server ... MUST ... send a 421 response code to any
        // command" when it must shut down; the session is over, whatever was asked.
        if reply.code() == ReplyCode::SERVICE_NOT_AVAILABLE && !matches!(kind, Kind::Quit(_)) {
            return self.on_421(kind, reply);
        }
        self.dispatch(kind, reply);
        self.advance();
    }

    fn dispatch(&mut self, kind: Kind, reply: Reply) {
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
                    self.caps = super::Capabilities::from_ehlo(&reply);
                }
                self.command_done(op, Phase::Ehlo, reply);
            }
            Kind::Quit(op) => self.on_quit(op, reply),
        }
    }

    pub(super) fn on_unsolicited(&mut self, reply: Reply) {
        if let Some(body) = &self.body {
            // RFC 5321 section 4.2.5 allows no reply before the final dot, but a server that
            // gives up on a message (e.g. too big) may say so and stop reading: report its
            // words, not the broken pipe that would follow.
            let id = body.id;
            let recipients = self.tx(id).map(Tx::results).unwrap_or_default();
            let err = Error::Rejected { phase: Phase::DataBlock, reply: reply.clone(), recipients };
            self.finish_tx(id, Err(err));
            return self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataBlock, reply }.into());
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
        if let Kind::LmtpEnd(id, _) = kind {
            // Recipients that already got their final reply keep it.
            if self.on_lmtp_421(id, &reply) {
                return self.fatal(Error::Rejected { phase, reply, recipients: Vec::new() });
            }
        }
        if let Some(id) = kind.message() {
            let recipients = self.tx(id).map(Tx::results).unwrap_or_default();
            self.finish_tx(id, Err(Error::Rejected { phase, reply: reply.clone(), recipients }));
        }
        // The command's own reply was popped from `in_flight`: report it to its caller here,
        // or `fail_all` would never see it and the caller would get `SessionClosed`.
        if let Some(op) = kind.op() {
            let err = Error::Rejected { phase, reply: reply.clone(), recipients: Vec::new() };
            self.events.push_back(Event::Command { id: op, result: Err(err) });
        }
        self.fatal(Error::Rejected { phase, reply, recipients: Vec::new() });
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

    /// Starts queued operations while the protocol allows.
    pub(super) fn advance(&mut self) {
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
                Op::Ehlo(id) => self.send_ehlo(Kind::Reehlo(id)),
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
        self.in_flight.is_empty() || (self.pipelining() && self.in_flight.only_group_enders())
    }
}
