//! Ending a session that failed: everything queued gets an outcome that tells the truth
//! (a message is ambiguous only when its end of data was written), then either a polite
//! QUIT or an immediate close.

use super::super::command::Command;
use super::super::error::Error;
use super::handshake::Stage;
use super::in_flight::Kind;
use super::{Event, Op, OpId, Session};

impl Session {
    /// A failure that leaves the connection usable for a polite QUIT: everything queued
    /// fails with `err`, QUIT is sent, and the session closes with `err` after its reply.
    pub(super) fn fail_with_quit(&mut self, err: Error) {
        if !self.in_flight.is_empty() || self.body.is_some() || matches!(self.stage, Stage::Quitting(_)) {
            // Other replies are still due: a QUIT now would be matched with one of them.
            return self.fatal(err);
        }
        self.fail_all(&err);
        self.clear_output();
        self.push_command(&Command::Quit, Kind::Quit(None));
        self.stage = Stage::Quitting(Some(err));
    }

    /// The connection cannot be trusted or used any more.
    pub(super) fn fatal(&mut self, err: Error) {
        let err = match &mut self.stage {
            Stage::Quitting(Some(first)) => first.clone(),
            _ => err,
        };
        self.fail_all(&err);
        self.close(Some(err));
    }

    fn fail_all(&mut self, err: &Error) {
        for tx in std::mem::take(&mut self.txs) {
            let result = tx.lost(err, self.in_flight.phase_of(tx.id));
            self.events.push_back(Event::Message { id: tx.id, result: Err(result) });
        }
        let mut ops: Vec<OpId> = self.in_flight.ops().collect();
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
    }

    pub(super) fn close(&mut self, err: Option<Error>) {
        self.fail_all(err.as_ref().unwrap_or(&Error::SessionClosed));
        // Dropping the stage drops a SASL client still in it.
        self.stage = Stage::Closed;
        self.clear_output();
        self.events.push_back(Event::Closed(err));
    }
}
