//! Fault injection: where in the conversation ([`Step`]) the server misbehaves, how
//! ([`Fault`]), and on which connections and how often ([`FaultRule`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A point in the SMTP conversation where a [`Fault`] can replace the server's normal
/// behaviour. A step is reached when the server is about to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The `220` greeting sent when the connection opens (after the handshake for implicit
    /// TLS).
    Greeting,
    /// The reply to `EHLO`.
    Ehlo,
    /// The reply to `HELO`.
    Helo,
    /// The reply to `STARTTLS` (the `220` that precedes the handshake).
    StartTls,
    /// The reply to `AUTH` and to every client response inside the AUTH exchange.
    Auth,
    /// The reply to the `n`-th line of an AUTH exchange (0-based): `0` answers the `AUTH`
    /// command itself, `1` the client's first response, and so on. For SCRAM-SHA-256 with
    /// an initial response, `AuthRound(1)` is the `334` carrying the server signature
    /// (`v=...`), where an impostor can be played.
    AuthRound(usize),
    /// The reply to `MAIL FROM`.
    Mail,
    /// The reply to the `n`-th `RCPT TO` (0-based) since the last `MAIL FROM`, whether or not
    /// earlier recipients were accepted.
    Rcpt(usize),
    /// The reply to any `RCPT TO`.
    RcptAny,
    /// The reply to `DATA` (normally `354`).
    Data,
    /// The reply to the final dot that ends the DATA payload.
    DataEnd,
    /// The `n`-th `BDAT` (0-based) of the transaction, the `LAST` one included. The fault
    /// is chosen when the `BDAT` line arrives: [`Fault::CloseAfterBytes`],
    /// [`Fault::StopReading`] and [`Fault::RawThenStopReading`] act before the chunk is read
    /// (so the byte count starts at the chunk's first octet), every other fault replaces
    /// the reply sent once the chunk is in.
    Bdat(usize),
    /// The `BDAT ... LAST` command, with the same timing as [`Step::Bdat`].
    BdatLast,
    /// The reply to `RSET`.
    Rset,
    /// The reply to `NOOP`.
    Noop,
    /// The reply to `QUIT`.
    Quit,
    /// The reply to the `n`-th command line (0-based) of the connection, whatever the verb
    /// (lines inside an AUTH exchange and message data are not commands).
    Command(usize),
}

/// How the server misbehaves at a [`Step`].
///
/// Unless said otherwise, the server's state afterwards follows what it told the client:
/// a fault that answers with a 2xx or 3xx code (for [`Fault::Raw`], bytes starting with `2`
/// or `3`) has the effect the command would have had on success (a recipient is accepted,
/// DATA mode is entered, a message is committed, a TLS handshake starts), any other answer
/// leaves the state as a failed command would. Any reply with code 421 is followed by the
/// server closing the connection, as RFC 5321 3.8 describes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this code and text instead of the normal reply. A `\n` in the text makes
    /// a multi-line reply. The text is sent as given (no enhanced status code is added).
    Reply {
        /// Reply code, any value (`999` or `25` are fine for hostile tests).
        code: u16,
        /// Reply text.
        text: String,
    },
    /// Send these bytes verbatim instead of the normal reply (malformed replies).
    Raw(Vec<u8>),
    /// Close the connection instead of replying. At [`Step::DataEnd`] and
    /// [`Step::BdatLast`] the message is **not** committed.
    Close,
    /// Commit the message (it appears in [`TestServer::messages`](super::TestServer::messages))
    /// and close the connection without replying: the ambiguous case. Meant for
    /// [`Step::DataEnd`] and [`Step::BdatLast`]; elsewhere the command takes effect and the
    /// connection closes without a reply.
    CommitThenClose,
    /// Send the normal reply, then read at most `n` more bytes (processing them as usual)
    /// and close. At [`Step::Data`] this closes in the middle of the message data.
    CloseAfterBytes(usize),
    /// Wait this long, then send the normal reply.
    Delay(Duration),
    /// Send the normal reply one byte at a time, waiting this long before each byte after
    /// the first.
    Trickle(Duration),
    /// Never reply and never close; keep reading (and recording) until the client leaves.
    /// At [`Step::DataEnd`] and [`Step::BdatLast`] the message is **not** committed (see
    /// [`Fault::CommitThenSilence`]).
    Silence,
    /// Send the normal reply and these bytes in the same write. At [`Step::StartTls`] this
    /// is the classic injection: plaintext that a client must not treat as coming over TLS.
    ExtraAfterStartTls(Vec<u8>),
    /// Send the normal reply; then, once the client has sent nothing for `idle`, send an
    /// unsolicited `421 4.4.2 ... closing connection` and close. With `Duration::ZERO` the
    /// 421 follows the reply at once (combine with [`Step::Command`] for "after the N-th
    /// command"). Input arriving before `idle` elapses cancels it.
    Unsolicited421 {
        /// How long the client must stay silent first.
        idle: Duration,
    },
    /// Send the normal reply, then never read from the connection again while keeping it
    /// open. At [`Step::Data`] the client's writes eventually block.
    StopReading,
    /// Send the normal reply, then drop the connection without a TLS `close_notify` alert
    /// (on plaintext, a plain close). At [`Step::Quit`]: the "TLS EOF after 221" case.
    ReplyThenDrop,
    /// Send these bytes verbatim instead of the normal reply, then close ("garbage then
    /// close").
    RawThenClose(Vec<u8>),
    /// Commit the message like [`Fault::CommitThenClose`], then never reply and never close:
    /// the client can only time out. Meant for [`Step::DataEnd`] and [`Step::BdatLast`]
    /// ([`Fault::Silence`] there does **not** commit).
    CommitThenSilence,
    /// Instead of the normal reply, send these bytes again and again, for ever (endless
    /// continuation lines such as `b"250-x\r\n"`, or a reply that never ends its line),
    /// until the client closes or stops reading.
    Repeat(Vec<u8>),
    /// Send the normal reply; then, once the client has sent nothing for `idle`, close
    /// without a word (an idle timeout on a pooled connection). `Duration::ZERO` closes
    /// right after the reply. Input arriving first cancels it.
    CloseWhenIdle {
        /// How long the client must stay silent first.
        idle: Duration,
    },
    /// Send these bytes verbatim instead of the normal reply, then stop reading. For example
    /// `b"354 go ahead\r\n550 5.7.1 rejected\r\n"` at [`Step::Data`]: a rejection the client
    /// must report even though its writes block.
    RawThenStopReading(Vec<u8>),
}

/// A [`Fault`] at a [`Step`], limited to some connections and some number of times.
///
/// By default a rule applies on **every** connection and **every** time its step is
/// reached. When several rules match, the one added first wins (and only its use count
/// goes up).
///
/// ```
/// use smtpkit::testing::{Fault, FaultRule, Step};
///
/// // The second recipient of each transaction, on connection 0 only, the first time only.
/// let rule = FaultRule::new(Step::Rcpt(1), Fault::Reply { code: 450, text: "4.2.0 try later".into() })
///     .on_connection(0)
///     .once();
/// # let _ = rule;
/// ```
#[derive(Debug)]
pub struct FaultRule {
    pub(crate) step: Step,
    pub(crate) fault: Fault,
    pub(crate) connection: Option<usize>,
    pub(crate) times: Option<usize>,
    pub(crate) used: AtomicUsize,
}

/// A clone starts unused, so one rule can be given to several servers.
impl Clone for FaultRule {
    fn clone(&self) -> Self {
        FaultRule {
            step: self.step,
            fault: self.fault.clone(),
            connection: self.connection,
            times: self.times,
            used: AtomicUsize::new(0),
        }
    }
}

impl FaultRule {
    /// `fault` at `step`, on every connection, every time.
    pub fn new(step: Step, fault: Fault) -> Self {
        FaultRule { step, fault, connection: None, times: None, used: AtomicUsize::new(0) }
    }

    /// Only on the `k`-th accepted connection (0-based, in accept order; in-memory
    /// connections are numbered in the same sequence).
    pub fn on_connection(mut self, k: usize) -> Self {
        self.connection = Some(k);
        self
    }

    /// Fire at most `n` times over the server's lifetime, all connections together.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Fire only once: `times(1)`.
    pub fn once(self) -> Self {
        self.times(1)
    }

    /// The step this rule watches.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The fault this rule injects.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    /// If the rule applies here, count one use and hand out the fault.
    fn try_fire(&self, connection: usize, steps: &[Step]) -> Option<Fault> {
        if !steps.contains(&self.step) || self.connection.is_some_and(|k| k != connection) {
            return None;
        }
        let limit = self.times.unwrap_or(usize::MAX);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| self.fault.clone())
    }

    pub(crate) fn uses(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The first rule, in order, that applies on `connection` to any of `steps`.
pub(crate) fn select(rules: &[FaultRule], connection: usize, steps: &[Step]) -> Option<FiredFault> {
    rules.iter().enumerate().find_map(|(rule, r)| {
        r.try_fire(connection, steps).map(|fault| FiredFault { connection, rule, step: r.step, fault })
    })
}

/// A fault that fired: see [`TestServer::fired_faults`](super::TestServer::fired_faults).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FiredFault {
    /// The connection it fired on.
    pub connection: usize,
    /// Index of the rule, in the order rules were added to the builder.
    pub rule: usize,
    /// The rule's step.
    pub step: Step,
    /// The fault injected.
    pub fault: Fault,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins_and_counts() {
        let rules = vec![
            FaultRule::new(Step::Rcpt(1), Fault::Close).on_connection(1).once(),
            FaultRule::new(Step::RcptAny, Fault::Silence),
        ];
        let pick = |conn, steps: &[Step]| select(&rules, conn, steps).map(|f| (f.rule, f.fault));
        assert_eq!(pick(0, &[Step::Rcpt(1), Step::RcptAny]), Some((1, Fault::Silence)));
        assert_eq!(pick(1, &[Step::Rcpt(1), Step::RcptAny]), Some((0, Fault::Close)));
        assert_eq!(pick(1, &[Step::Rcpt(1), Step::RcptAny]), Some((1, Fault::Silence)));
        assert_eq!(pick(1, &[Step::Mail]), None);
        assert_eq!(rules[0].uses(), 1);
        assert_eq!(rules[1].uses(), 2);
    }
}
