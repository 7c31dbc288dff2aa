//! Message data: the DATA and BDAT transactions, from `354` or the BDAT line to the
//! reply after the final dot or the last chunk.

use tokio::io::{AsyncRead, AsyncWrite};

use super::respond::Effect;
use super::{Broken, Flow, Greeted, Mode, Session};
use crate::testing::data::DotDecoder;
use crate::testing::fault::{Fault, Step};
use crate::testing::record::ReceivedMessage;
use crate::testing::reply::Reply;

/// A BDAT chunk being read (RFC 3030 2: exactly the announced octets follow the line).
pub(super) struct Chunk {
    /// Octets still to read.
    pub(super) remaining: u64,
    /// The command said `LAST`.
    pub(super) last: bool,
    /// Fault chosen when the BDAT line arrived, applied to the reply after the chunk.
    pub(super) fault: Option<Fault>,
    /// Why the chunk will be refused once read (RFC 3030 2: the chunk is read regardless).
    pub(super) refusal: Option<Reply>,
}

/// One mail transaction, from MAIL FROM to the end of data.
#[derive(Default)]
pub(super) struct Transaction {
    pub(super) from: String,
    pub(super) params: Vec<String>,
    pub(super) smtputf8: bool,
    pub(super) rcpts: Vec<(String, Vec<String>)>,
    /// RCPT commands seen, accepted or not (for [`Step::Rcpt`]).
    pub(super) rcpt_commands: usize,
    /// BDAT commands seen (for [`Step::Bdat`]).
    pub(super) bdat_commands: usize,
    pub(super) data: Vec<u8>,
    /// Octets received, including any dropped past the size limit.
    pub(super) data_total: u64,
    pub(super) via_bdat: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    /// Feed buffered input to the DATA decoder; at the final dot, answer it.
    pub(super) async fn data_input(&mut self, mut decoder: DotDecoder) -> Option<Flow> {
        if self.inbuf.is_empty() {
            self.mode = Mode::Data(decoder);
            return None;
        }
        let Some(txn) = self.txn.as_mut() else {
            return Some(self.broken(Broken::NoTransaction));
        };
        let limit = self.shared.config.message_limit();
        let fed = decoder.feed(&self.inbuf, &mut txn.data, limit);
        self.inbuf.drain(..fed.consumed);
        if !fed.done {
            self.mode = Mode::Data(decoder);
            return None;
        }
        Some(self.data_end(decoder).await)
    }

    /// Take the octets of a BDAT chunk from buffered input; once all are in, answer it.
    pub(super) async fn chunk_input(&mut self, mut chunk: Chunk) -> Option<Flow> {
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
            self.mode = Mode::Chunk(chunk);
            return None;
        }
        Some(self.chunk_end(chunk).await)
    }

    pub(super) fn data(&self) -> (Reply, Effect) {
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

    pub(super) fn message(&self, txn: Transaction, via_bdat: bool, queue_id: String) -> ReceivedMessage {
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
            queue_id,
            committed: false,
        }
    }

    pub(super) async fn data_end(&mut self, decoder: DotDecoder) -> Flow {
        let Some(txn) = self.txn.take() else {
            return self.broken(Broken::NoTransaction);
        };
        self.shared.recorder.line(self.id, format!("C: <message data, {} octets>", decoder.total()));
        self.shared.recorder.line(self.id, "C: .".into());
        for what in decoder.violations() {
            self.violation(&format!("{what} in message data"));
        }
        if let Some(max) = self.shared.config.max_data_line.filter(|max| decoder.longest_line() > *max) {
            self.violation(&format!("message line of {} octets (limit {max})", decoder.longest_line()));
        }
        let c = &self.shared.config;
        let queue_id = self.shared.recorder.queue_id();
        let reply = if decoder.overflowed() {
            self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
        } else if c.max_data_line.is_some_and(|max| decoder.longest_line() > max) {
            // RFC 5321 4.5.3.1.10: "500 Line too long."
            self.reply(500, "5.5.2", "Line too long")
        } else if c.greylist && !self.shared.recorder.seen(&txn.from, &txn.data) {
            self.reply(451, "4.7.1", "Greylisted, try again later")
        } else {
            self.reply(250, "2.0.0", format!("OK: queued as {queue_id}"))
        };
        let msg = self.message(txn, false, queue_id);
        self.respond(&[Step::DataEnd], reply, Effect::Commit(Box::new(msg))).await
    }

    pub(super) async fn bdat(&mut self, size: u64, last: bool, index: usize) -> Flow {
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

    pub(super) async fn chunk_end(&mut self, chunk: Chunk) -> Flow {
        let Chunk { last, fault, refusal, .. } = chunk;
        let total = self.txn.as_ref().map_or(0, |t| t.data_total);
        self.shared.recorder.line(self.id, format!("C: <chunk received, {total} octets so far>"));
        if let Some(reply) = refusal {
            return self.respond_with(fault, reply, Effect::None).await;
        }
        let flow = if last {
            let Some(txn) = self.txn.take() else {
                return self.broken(Broken::NoTransaction);
            };
            let queue_id = self.shared.recorder.queue_id();
            let reply = if txn.data_total > txn.data.len() as u64 {
                self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
            } else {
                self.reply(250, "2.0.0", format!("OK: {total} octets queued as {queue_id}"))
            };
            let msg = self.message(txn, true, queue_id);
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
}
