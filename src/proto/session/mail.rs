//! One mail transaction on the wire: MAIL, RCPT..., DATA or BDAT, and the replies that
//! decide each message's outcome.

use super::super::code::ReplyCode;
use super::super::command::Command;
use super::super::error::{Error, Extension, Phase, ProtocolError};
use super::super::params::{Body, MailParams, RcptParams};
use super::super::reply::Reply;
use super::Session;
use super::body::BodyState;
use super::events::{Event, MessageId, SendReport};
use super::in_flight::Kind;
use super::transaction::{End, Tx};

impl Session {
    pub(super) fn tx(&self, id: MessageId) -> Option<&Tx> {
        self.txs.iter().find(|t| t.id == id)
    }

    pub(super) fn tx_mut(&mut self, id: MessageId) -> Option<&mut Tx> {
        self.txs.iter_mut().find(|t| t.id == id)
    }

    /// A reply or step for a message the session no longer holds: a broken invariant,
    /// reported as such (never a silent no-op).
    fn lost_tx(&mut self) {
        self.fatal(Error::Internal("a reply for a message the session does not hold"));
    }

    /// CHUNKING when configured and offered. BDAT under LMTP changes the reply counting, so
    /// LMTP always uses DATA here.
    pub(super) fn uses_bdat(&self) -> bool {
        self.config.chunking && self.caps.chunking() && !self.config.lmtp
    }

    pub(super) fn pipelining(&self) -> bool {
        self.config.pipelining && self.caps.pipelining()
    }

    /// Checks extensions and limits, then sends MAIL (and, pipelined, the RCPTs and DATA).
    pub(super) fn start_tx(&mut self, id: MessageId) {
        let params = match self.tx(id).map(|tx| self.mail_params(tx)) {
            Some(Ok(p)) => p,
            Some(Err(e)) => return self.finish_tx(id, Err(e)),
            None => return self.lost_tx(),
        };
        let chunking = self.uses_bdat();
        let pipelining = self.pipelining();
        let Some(tx) = self.tx_mut(id) else { return self.lost_tx() };
        tx.bdat = chunking;
        let from = tx.envelope.from().cloned();
        let aon = tx.opts.all_or_nothing;
        let count = tx.rcpts.len();
        self.current = Some(id);
        self.push_command(&Command::Mail { from: from.as_ref(), params: &params }, Kind::Mail(id));
        if pipelining {
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
        // RFC 6531 section 3.4: UTF-8 header fields only to a server that offered SMTPUTF8.
        let utf8_headers = crate::proto::header_scan::first_non_ascii_header_octet(&tx.body).is_some();
        let smtputf8 = tx.envelope.needs_smtputf8() || tx.opts.smtputf8 || utf8_headers;
        if smtputf8 && !caps.smtputf8() {
            let reason = if utf8_headers && !tx.envelope.needs_smtputf8() && !tx.opts.smtputf8 {
                Extension::SmtpUtf8Headers
            } else {
                Extension::SmtpUtf8
            };
            return Err(Error::ExtensionMissing(reason));
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
        let Some(tx) = self.tx(id) else { return self.lost_tx() };
        let Some(to) = tx.envelope.to().get(i).cloned() else {
            return self.fatal(Error::Internal("RCPT for a recipient the envelope lacks"));
        };
        let params = RcptParams { notify: tx.opts.notify, orcpt: tx.opts.orcpt.then(|| to.clone()) };
        self.push_command(&Command::Rcpt { to: &to, params: &params }, Kind::Rcpt(id, i));
    }

    /// Sends DATA, or starts streaming BDAT chunks.
    fn start_data(&mut self, id: MessageId) {
        let Some(tx) = self.tx(id) else { return self.lost_tx() };
        if tx.bdat {
            self.body = Some(BodyState::bdat(id));
        } else {
            self.push_command(&Command::Data, Kind::Data(id));
        }
    }

    pub(super) fn on_mail(&mut self, id: MessageId, reply: Reply) {
        let pipelined = self.pipelining();
        let Some(tx) = self.tx_mut(id) else { return self.lost_tx() };
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

    pub(super) fn on_rcpt(&mut self, id: MessageId, i: usize, reply: Reply) {
        let pipelined = self.pipelining();
        let Some(tx) = self.tx_mut(id) else { return self.lost_tx() };
        let Some(slot) = tx.rcpts.get_mut(i) else {
            return self.fatal(Error::Internal("a RCPT reply for a recipient the envelope lacks"));
        };
        *slot = Some(reply);
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
        let Some(tx) = self.tx(id) else { return self.lost_tx() };
        let refused =
            !tx.mail_ok() || tx.accepted() == 0 || (tx.opts.all_or_nothing && tx.accepted() < tx.rcpts.len());
        if refused {
            let err = tx.envelope_failure();
            self.fail_tx_and_reset(id, err);
        } else {
            self.start_data(id);
        }
    }

    /// The transaction failed before its data: report it, and RSET if MAIL had opened it.
    fn fail_tx_and_reset(&mut self, id: MessageId, err: Error) {
        let reset = self.tx(id).is_some_and(Tx::mail_ok);
        self.finish_tx(id, Err(err));
        if reset {
            self.auto_rset();
        }
    }

    pub(super) fn on_data(&mut self, id: MessageId, reply: Reply) {
        let Some(tx) = self.tx_mut(id) else { return self.lost_tx() };
        if reply.code() == ReplyCode::START_MAIL_INPUT {
            if tx.mail_ok() && tx.accepted() > 0 && tx.all_rcpts_known() {
                self.body = Some(BodyState::data(id));
            } else {
                // RFC 2920 section 3.1: if every RCPT failed but DATA was accepted, "the client
                // SMTP should send a single dot". Nothing is delivered.
                tx.end = End::Aborted;
                self.output.buf().extend_from_slice(b".\r\n");
                self.expect_reply(Kind::DataEnd(id));
                self.current = None;
            }
            return;
        }
        if !reply.code().is_transient_negative() && !reply.code().is_permanent_negative() {
            return self.fatal(ProtocolError::UnexpectedReply { phase: Phase::Data, reply }.into());
        }
        let err = if tx.mail_ok() && tx.accepted() > 0 {
            Error::Rejected { phase: Phase::Data, reply, recipients: tx.results() }
        } else {
            tx.envelope_failure()
        };
        self.fail_tx_and_reset(id, err);
    }

    pub(super) fn on_data_end(&mut self, id: MessageId, reply: Reply) {
        let Some(tx) = self.tx(id) else { return self.lost_tx() };
        let result = if tx.end == End::Aborted {
            Err(tx.envelope_failure())
        } else if reply.is_positive() {
            Ok(SendReport { id, reply, recipients: tx.results() })
        } else if reply.code().is_positive_intermediate() {
            return self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataEnd, reply }.into());
        } else {
            Err(Error::Rejected { phase: Phase::DataEnd, reply, recipients: tx.results() })
        };
        self.finish_tx(id, result);
    }

    pub(super) fn on_lmtp_end(&mut self, id: MessageId, i: usize, reply: Reply) {
        if reply.code().is_positive_intermediate() {
            return self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataEnd, reply }.into());
        }
        let Some(tx) = self.tx_mut(id) else { return self.lost_tx() };
        tx.lmtp.push(reply);
        if tx.lmtp.len() <= i || tx.lmtp.len() < tx.accepted() {
            return; // more per-recipient replies follow
        }
        match tx.lmtp_report(None) {
            Some(result) => self.finish_tx(id, result),
            None => self.fatal(Error::Internal("LMTP replies for a message without recipients")),
        }
    }

    /// LMTP: a 421 in place of some per-recipient replies after the dot. Recipients whose
    /// reply came keep it (delivered ones stay delivered: a retry would deliver twice);
    /// only the rest fail, with the 421.
    pub(super) fn on_lmtp_421(&mut self, id: MessageId, reply: &Reply) -> bool {
        let Some(tx) = self.tx_mut(id) else { return false };
        if tx.lmtp.is_empty() {
            return false;
        }
        match tx.lmtp_report(Some(reply)) {
            Some(result) => self.finish_tx(id, result),
            None => return false,
        }
        true
    }

    pub(super) fn on_bdat(&mut self, id: MessageId, last: bool, reply: Reply) {
        let Some(tx) = self.tx_mut(id) else { return self.lost_tx() };
        if !reply.is_positive() && tx.bdat_failed.is_none() {
            tx.bdat_failed = Some(reply.clone());
        }
        let failed = tx.bdat_failed.is_some();
        if !last {
            if failed {
                // RFC 3030 section 2: after a failed chunk the sender "MUST NOT send any
                // additional BDAT segments". Pipelined chunks already out get their
                // replies; the transaction ends with the last of them.
                if self.body.as_ref().is_some_and(|b| b.id == id) {
                    self.body = None;
                    self.current = None;
                }
                if !self.in_flight.awaits(id) {
                    self.fail_bdat(id);
                }
            } else if let Some(body) = self.body.as_mut().filter(|b| b.id == id) {
                body.paused = false;
            }
            return;
        }
        if reply.code().is_positive_intermediate() {
            return self.fatal(ProtocolError::UnexpectedReply { phase: Phase::DataEnd, reply }.into());
        }
        if !failed && tx.mail_ok() && tx.accepted() > 0 {
            let report = SendReport { id, reply, recipients: tx.results() };
            self.finish_tx(id, Ok(report));
        } else {
            self.fail_bdat(id);
        }
    }

    fn fail_bdat(&mut self, id: MessageId) {
        let Some(tx) = self.tx(id) else { return self.lost_tx() };
        let err = if !tx.mail_ok() || tx.accepted() == 0 {
            tx.envelope_failure()
        } else if let Some(reply) = tx.bdat_failed.clone() {
            Error::Rejected { phase: Phase::DataEnd, reply, recipients: tx.results() }
        } else {
            return self.fatal(Error::Internal("a BDAT failure without a refused chunk"));
        };
        self.fail_tx_and_reset(id, err);
    }

    pub(super) fn auto_rset(&mut self) {
        self.push_command(&Command::Rset, Kind::Rset(None));
    }

    pub(super) fn finish_tx(&mut self, id: MessageId, result: Result<SendReport, Error>) {
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
}
