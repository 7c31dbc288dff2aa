//! Happy Eyeballs v2 (RFC 8305) as sans-IO logic: the order of the addresses and when to
//! start the next attempt. Both dialers (tokio and std) run it; neither decides anything.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::error::{Attempt, AttemptFailure};

/// RFC 8305 section 8: "The recommended value for the Connection Attempt Delay is 250
/// milliseconds."
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// RFC 8305 section 4: "If the first address family (IPv6) ... the client SHOULD then
/// interleave the address families: one IPv6, one IPv4, and so on", each family keeping
/// the resolver's order.
pub fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut v6: VecDeque<_> = addrs.iter().filter(|a| a.is_ipv6()).copied().collect();
    let mut v4: VecDeque<_> = addrs.iter().filter(|a| a.is_ipv4()).copied().collect();
    let mut out = Vec::with_capacity(addrs.len());
    while !v6.is_empty() || !v4.is_empty() {
        out.extend(v6.pop_front());
        out.extend(v4.pop_front());
    }
    out.dedup();
    out
}

/// What the dialer should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// Start a connection attempt to this address now.
    Start(SocketAddr),
    /// Wait for an attempt to finish, or until this instant (then ask again).
    WaitUntil(Instant),
    /// Every address failed, or the deadline passed: give up with [`Race::failures`].
    GiveUp,
}

/// The staggered race of connection attempts.
#[derive(Debug)]
pub struct Race {
    queue: VecDeque<SocketAddr>,
    running: Vec<SocketAddr>,
    failures: Vec<Attempt>,
    next_start: Instant,
    delay: Duration,
    deadline: Instant,
}

impl Race {
    /// A race over `addrs` (interleaved here) that must end by `deadline`.
    pub fn new(addrs: &[SocketAddr], delay: Duration, now: Instant, deadline: Instant) -> Self {
        Self {
            queue: interleave(addrs).into(),
            running: Vec::new(),
            failures: Vec::new(),
            next_start: now,
            delay,
            deadline,
        }
    }

    /// The next action at `now`.
    pub fn next(&mut self, now: Instant) -> Next {
        if now >= self.deadline {
            return Next::GiveUp;
        }
        if self.next_start <= now
            && let Some(addr) = self.queue.pop_front()
        {
            // "Starting a new connection attempt does not affect previous attempts":
            // they keep running; the next one waits for the delay.
            self.running.push(addr);
            self.next_start = now + self.delay;
            return Next::Start(addr);
        }
        if self.running.is_empty() && self.queue.is_empty() {
            return Next::GiveUp;
        }
        if self.queue.is_empty() {
            Next::WaitUntil(self.deadline)
        } else {
            Next::WaitUntil(self.next_start.min(self.deadline))
        }
    }

    /// An attempt failed. "If a connection attempt fails before the timer fires, the next
    /// attempt SHOULD be started immediately" (section 5).
    pub fn failed(&mut self, addr: SocketAddr, failure: AttemptFailure, now: Instant) {
        self.running.retain(|a| *a != addr);
        self.failures.push(Attempt { addr, failure });
        self.next_start = now;
    }

    /// Every address and why it failed, attempts still running counted as timed out and
    /// the ones never started as not tried (for the error once the race is lost).
    pub fn failures(mut self) -> Vec<Attempt> {
        let running = self.running.drain(..).map(|addr| Attempt { addr, failure: AttemptFailure::Timeout });
        self.failures.extend(running.collect::<Vec<_>>());
        self.failures
            .extend(self.queue.drain(..).map(|addr| Attempt { addr, failure: AttemptFailure::NotTried }));
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_first_then_alternating() {
        let got =
            interleave(&[a("1.1.1.1:25"), a("2.2.2.2:25"), a("3.3.3.3:25"), a("[::1]:25"), a("[::2]:25")]);
        assert_eq!(got, [a("[::1]:25"), a("1.1.1.1:25"), a("[::2]:25"), a("2.2.2.2:25"), a("3.3.3.3:25")]);
        assert_eq!(interleave(&[a("1.1.1.1:25"), a("1.1.1.1:25")]), [a("1.1.1.1:25")]);
    }

    #[test]
    fn staggered_starts_and_early_failures() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut race =
            Race::new(&[a("[::1]:25"), a("1.1.1.1:25"), a("2.2.2.2:25")], ATTEMPT_DELAY, t0, ms(10_000));
        assert_eq!(race.next(t0), Next::Start(a("[::1]:25")));
        // The first hangs: the second starts 250 ms later, not before.
        assert_eq!(race.next(ms(10)), Next::WaitUntil(ms(250)));
        assert_eq!(race.next(ms(250)), Next::Start(a("1.1.1.1:25")));
        // The second fails at once: the third starts immediately.
        race.failed(a("1.1.1.1:25"), AttemptFailure::Timeout, ms(260));
        assert_eq!(race.next(ms(260)), Next::Start(a("2.2.2.2:25")));
        assert_eq!(race.next(ms(270)), Next::WaitUntil(ms(10_000)));
        assert_eq!(race.next(ms(10_000)), Next::GiveUp);
        let failures = race.failures();
        let order: Vec<_> = failures.iter().map(|f| f.addr).collect();
        assert_eq!(order, [a("1.1.1.1:25"), a("[::1]:25"), a("2.2.2.2:25")]);
    }

    #[test]
    fn all_failing_gives_up_before_the_deadline() {
        let t0 = Instant::now();
        let mut race = Race::new(&[a("1.1.1.1:25")], ATTEMPT_DELAY, t0, t0 + Duration::from_secs(5));
        assert_eq!(race.next(t0), Next::Start(a("1.1.1.1:25")));
        race.failed(a("1.1.1.1:25"), AttemptFailure::NotTried, t0);
        assert_eq!(race.next(t0), Next::GiveUp);
        assert!(Race::new(&[], ATTEMPT_DELAY, t0, t0 + Duration::from_secs(1)).next(t0) == Next::GiveUp);
    }
}
