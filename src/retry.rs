//! Safe automatic retries: which failures may be tried again without risking a second
//! delivery, and how long to wait before each attempt (feature `pool`).
//!
//! A failure is retried only where the server provably kept nothing:
//! - the connection could not be opened, or broke, closed or timed out **before the end
//!   of data was written** ([`RetryReason::Connection`]);
//! - a `4xx` reply before the final dot ([`RetryReason::Transient`]), `421` at any step
//!   before the dot ([`RetryReason::ServiceClosing`]);
//! - a `4xx` reply **to** the final dot: the server refused the message, the classic
//!   greylisting answer ([`RetryReason::Greylisted`]);
//! - per recipient, a `4xx` reply to `RCPT TO`: only those recipients go again, in a new
//!   transaction, so the accepted ones never get the message twice
//!   ([`RetryReason::Recipients`]).
//!
//! Never after [`Error::Ambiguous`] (the final dot was written and its reply lost: the
//! message may have been delivered), never after a `5xx`, and never when the RFC 3463
//! enhanced status says waiting will not help: class `5` under a `4xx` code, `X.1.x`
//! (bad address), `X.5.x` (protocol), `X.6.x` and `X.3.4` (content, size).

use std::time::Duration;

use crate::proto::enhanced::Advice;
use crate::proto::error::{Error, Phase};
use crate::proto::reply::Reply;

/// When and how often to retry (opt-in: see [`BulkOptions::retry`](crate::pool::BulkOptions::retry)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    deadline: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 1 s then 2 s (each with jitter), within 5 minutes.
    fn default() -> Self {
        Self::new(3)
    }
}

impl RetryPolicy {
    /// At most `max_attempts` attempts per transaction (the first included; at least 1),
    /// 1 s before the second doubling each time up to 5 min, all within 10 minutes.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            deadline: Duration::from_secs(600),
        }
    }

    /// Delay before the second attempt (default 1 s); each later one doubles it.
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }

    /// The longest delay between two attempts (default 5 minutes).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// No attempt starts later than this after the first one (default 10 minutes).
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// The maximum number of attempts.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The overall deadline.
    pub fn overall_deadline(&self) -> Duration {
        self.deadline
    }

    /// The delay before attempt `next` (2 for the first retry), with "equal jitter": half
    /// the exponential delay plus a random part of the other half, so retries of many
    /// messages refused at once spread out instead of returning together. `random` is any
    /// random number.
    pub fn delay(&self, next: u32, random: u64) -> Duration {
        backoff(self.base_delay, self.max_delay, next.saturating_sub(2), random)
    }

    /// Whether attempt `next` may start `delay` from now, `elapsed` after the first one.
    pub fn allows(&self, next: u32, elapsed: Duration, delay: Duration) -> bool {
        next <= self.max_attempts && elapsed.saturating_add(delay) <= self.deadline
    }
}

/// Why a transaction was tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryReason {
    /// No connection, or it failed before the end of data was written.
    Connection,
    /// A `4xx` reply before the final dot.
    Transient {
        /// The step that was refused.
        phase: Phase,
        /// The reply code.
        code: u16,
    },
    /// `421`: the server was closing the connection before the final dot.
    ServiceClosing,
    /// A `4xx` reply to the final dot (greylisting, a full queue).
    Greylisted {
        /// The reply code.
        code: u16,
    },
    /// Some recipients got a `4xx` to `RCPT TO`; only they were tried again.
    Recipients {
        /// How many.
        count: usize,
    },
}

/// One retry, as the report lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// Why it was tried again.
    pub reason: RetryReason,
    /// The wait before the next attempt.
    pub delay: Duration,
    /// The server's reply, when there was one.
    pub reply: Option<Reply>,
}

/// Whether a failed transaction may be retried, and why (see the module docs).
pub fn classify(error: &Error) -> Option<RetryReason> {
    match error {
        Error::Ambiguous { .. } => None,
        // Before any reply, or the link failed before the end of data: the session reports
        // the end-of-data cases as Ambiguous, so these never follow a written dot.
        Error::SessionClosed | Error::Io(_) | Error::ConnectionClosed(_) => Some(RetryReason::Connection),
        Error::Timeout(phase) if *phase != Phase::DataEnd => Some(RetryReason::Connection),
        Error::Rejected { phase, reply, .. } if waiting_helps(reply) => Some(match (phase, reply.code().0) {
            (_, 421) => RetryReason::ServiceClosing,
            (Phase::DataEnd, code) => RetryReason::Greylisted { code },
            (phase, code) => RetryReason::Transient { phase: *phase, code },
        }),
        Error::RecipientsRejected { recipients } => {
            let count = recipients.iter().filter(|r| waiting_helps(&r.reply)).count();
            (count > 0).then_some(RetryReason::Recipients { count })
        }
        _ => None,
    }
}

/// A `4xx` whose enhanced status (RFC 3463), if any, does not say the failure is lasting.
///
/// RFC 3463 3.1: "4.X.X Persistent Transient Failure ..." A status whose class disagrees
/// with the code is not taken as one ([`Reply::enhanced`]), so such a reply counts as
/// having none.
pub fn waiting_helps(reply: &Reply) -> bool {
    if !reply.is_transient() {
        return false;
    }
    match reply.enhanced() {
        None => true,
        Some(s) => !matches!(s.advice(), Advice::BadAddress | Advice::Protocol | Advice::Content),
    }
}

/// `base` doubled `doublings` times, capped at `max`, with "equal jitter": half of it fixed
/// and a random part (from `random`) of the other half, so many clients refused at once do
/// not come back together. Shared by the retry policy and the pool's connect breaker.
pub(crate) fn backoff(base: Duration, max: Duration, doublings: u32, random: u64) -> Duration {
    let full = base.saturating_mul(1 << doublings.min(30)).min(max);
    let half = full / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(if nanos == 0 { 0 } else { random % (nanos + 1) })
}

/// A random number for jitter; not for anything secret.
pub(crate) fn jitter_seed() -> u64 {
    let mut raw = [0u8; 8];
    // Without randomness the delays are simply not spread.
    let _ = getrandom::fill(&mut raw);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Address;
    use crate::proto::session::RecipientResult;

    fn rejected(phase: Phase, code: u16, text: &str) -> Error {
        Error::Rejected { phase, reply: Reply::single(code, text), recipients: Vec::new() }
    }

    #[test]
    fn only_failures_that_delivered_nothing_are_retried() {
        let cases = [
            (rejected(Phase::DataEnd, 451, "4.7.1 greylisted"), Some(RetryReason::Greylisted { code: 451 })),
            (rejected(Phase::Mail, 421, "4.3.2 shutting down"), Some(RetryReason::ServiceClosing)),
            (
                rejected(Phase::Mail, 451, "4.3.0 try later"),
                Some(RetryReason::Transient { phase: Phase::Mail, code: 451 }),
            ),
            (Error::ConnectionClosed(Phase::Greeting), Some(RetryReason::Connection)),
            (Error::Timeout(Phase::Connect), Some(RetryReason::Connection)),
            (rejected(Phase::DataEnd, 554, "5.7.1 spam"), None),
            (rejected(Phase::Rcpt, 550, "5.1.1 no such user"), None),
            (Error::Timeout(Phase::DataEnd), None),
            (
                Error::Ambiguous {
                    cause: Box::new(Error::ConnectionClosed(Phase::DataEnd)),
                    recipients: vec![],
                },
                None,
            ),
            (Error::Config("x".into()), None),
        ];
        for (error, want) in cases {
            assert_eq!(classify(&error), want, "{error}");
        }
    }

    #[test]
    fn enhanced_status_advice_is_honoured() {
        assert!(waiting_helps(&Reply::single(451, "4.7.1 greylisted, try again")));
        assert!(waiting_helps(&Reply::single(452, "4.2.2 mailbox full")));
        assert!(waiting_helps(&Reply::single(450, "mailbox busy")));
        // Lasting failures under a 4xx code: waiting will not fix them.
        assert!(!waiting_helps(&Reply::single(450, "4.1.1 bad destination mailbox")));
        assert!(!waiting_helps(&Reply::single(452, "4.3.4 message too big")));
        assert!(!waiting_helps(&Reply::single(451, "4.5.3 too many recipients syntax")));
        assert!(!waiting_helps(&Reply::single(550, "5.7.1 no")));
    }

    #[test]
    fn recipients_count_only_the_transient_ones() {
        let r = |code, text: &str| RecipientResult {
            address: Address::new("a@example.com").unwrap(),
            reply: Reply::single(code, text),
        };
        let e = Error::RecipientsRejected { recipients: vec![r(450, "4.2.1 later"), r(550, "5.1.1 no")] };
        assert_eq!(classify(&e), Some(RetryReason::Recipients { count: 1 }));
        let e = Error::RecipientsRejected { recipients: vec![r(550, "5.1.1 no")] };
        assert_eq!(classify(&e), None);
    }

    #[test]
    fn delays_double_with_jitter_within_bounds() {
        let p = RetryPolicy::new(5).base_delay(Duration::from_secs(2)).max_delay(Duration::from_secs(5));
        for random in [0, 1, u64::MAX / 3, u64::MAX] {
            let d2 = p.delay(2, random);
            assert!(d2 >= Duration::from_secs(1) && d2 <= Duration::from_secs(2), "{d2:?}");
            let d3 = p.delay(3, random);
            assert!(d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4), "{d3:?}");
            let d9 = p.delay(9, random);
            assert!(d9 >= Duration::from_millis(2500) && d9 <= Duration::from_secs(5), "{d9:?}");
        }
        assert_ne!(p.delay(2, 1), p.delay(2, 1 << 40));
    }

    #[test]
    fn attempts_and_deadline_bound_the_retries() {
        let p = RetryPolicy::new(3).deadline(Duration::from_secs(10));
        assert!(p.allows(3, Duration::from_secs(1), Duration::from_secs(1)));
        assert!(!p.allows(4, Duration::ZERO, Duration::ZERO));
        assert!(!p.allows(2, Duration::from_secs(9), Duration::from_secs(2)));
        assert_eq!(RetryPolicy::new(0).max_attempts(), 1);
    }
}
