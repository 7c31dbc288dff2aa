//! Per-phase deadlines. RFC 5321 section 4.5.3.2 gives the defaults; they are whole-reply
//! deadlines, not idle timers, so a server trickling one byte at a time still hits them.

use std::time::Duration;

use super::error::Phase;

/// How long each step may take. All configurable; `Default` follows RFC 5321 section
/// 4.5.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP connection (not in the RFC; default 60 s).
    pub connect: Duration,
    /// TLS handshake (not in the RFC; default 60 s).
    pub tls_handshake: Duration,
    /// "Initial 220 Message: 5 Minutes".
    pub greeting: Duration,
    /// EHLO, HELO, STARTTLS, AUTH, RSET, NOOP, VRFY (default 5 min).
    pub command: Duration,
    /// "MAIL Command: 5 Minutes".
    pub mail: Duration,
    /// "RCPT Command: 5 Minutes".
    pub rcpt: Duration,
    /// "DATA Initiation: 2 Minutes".
    pub data_init: Duration,
    /// "Data Block: 3 Minutes", for each write of message data.
    pub data_block: Duration,
    /// "DATA Termination: 10 Minutes", waiting for the reply to the final dot.
    pub data_end: Duration,
    /// Waiting for the `221` to `QUIT` (not in the RFC; default 10 s). A goodbye changes
    /// no outcome, so a server that swallows it must not hold a finished program for
    /// the 5-minute command deadline.
    pub quit: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Self {
            connect: min(1),
            tls_handshake: min(1),
            greeting: min(5),
            command: min(5),
            mail: min(5),
            rcpt: min(5),
            data_init: min(2),
            data_block: min(3),
            data_end: min(10),
            quit: Duration::from_secs(10),
        }
    }
}

impl Timeouts {
    /// Every timeout set to `d` (handy in tests).
    pub fn uniform(d: Duration) -> Self {
        Self {
            connect: d,
            tls_handshake: d,
            greeting: d,
            command: d,
            mail: d,
            rcpt: d,
            data_init: d,
            data_block: d,
            data_end: d,
            quit: d,
        }
    }

    /// The deadline length for waiting on the reply of `phase`.
    pub fn for_phase(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Connect => self.connect,
            Phase::TlsHandshake => self.tls_handshake,
            Phase::Greeting => self.greeting,
            Phase::Mail => self.mail,
            Phase::Rcpt => self.rcpt,
            Phase::Data => self.data_init,
            Phase::DataBlock | Phase::Bdat => self.data_block,
            Phase::DataEnd => self.data_end,
            Phase::Quit => self.quit,
            _ => self.command,
        }
    }
}
