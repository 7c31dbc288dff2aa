//! Session core fed arbitrary server bytes interleaved with random caller actions, driven
//! the way a driver would (write everything after every step). Invariants:
//!
//! - never a panic;
//! - `Event::Message` is `Ok` only if, after the client's output held that message's final
//!   dot (`CRLF.CRLF`) or last chunk (`BDAT n LAST` + n octets), the server's bytes held a
//!   complete 2xx reply line;
//! - with `TlsPolicy::Required` or `Implicit` and no `tls_established` call, no `AUTH`,
//!   `MAIL`, `RCPT`, `DATA` or `BDAT` byte is ever written; with credentials and insecure
//!   AUTH not allowed, no `AUTH` before a verified TLS handshake;
//! - the client never writes a bare CR, a bare LF or a NUL;
//! - every message and every command gets exactly one outcome event, and the session ends
//!   with exactly one `Closed`, after which nothing more happens.
//!
//! Input: two config bytes, then actions (see `Action`); bytes past the end read as 0.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smtpkit::proto::address::{Address, Envelope};
use smtpkit::proto::dot_stuff::LineEndings;
use smtpkit::proto::params::{EnvId, MessageOptions, Notify, Ret};
use smtpkit::proto::reply::ReplyLimits;
use smtpkit::proto::session::{Event, MessageId, OpId, Session, SessionConfig, TlsPolicy, Want};
use smtpkit::{Credentials, Timeouts};

use super::input::Input;

/// Server replies the fuzzer can pick by index, so deep states are reachable quickly.
const CANNED: [&[u8]; 20] = [
    b"220 mx.example ESMTP\r\n",
    b"250 OK\r\n",
    b"250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-SIZE 1000\r\n\
      250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250-REQUIRETLS\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n",
    b"250-mx.example\r\n250-AUTH=LOGIN\r\n250 CHUNKING\r\n",
    b"354 go ahead\r\n",
    b"221 2.0.0 bye\r\n",
    b"421 4.3.2 shutting down\r\n",
    b"450 4.2.0 try later\r\n",
    b"550 5.1.1 no such user\r\n",
    b"334 \r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"235 2.7.0 authenticated\r\n",
    b"220 2.0.0 ready to start TLS\r\n",
    b"250 2.0.0 queued as ABC123\r\n",
    b"502 5.5.2 not implemented\r\n",
    b"554 5.7.1 no\r\n",
    b"250-mx.example\r\n250-STARTTLS\r\n250 SIZE\r\n",
    b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
    b"500 5.5.1 what\r\n",
    b"251 2.1.5 will forward\r\n",
];

const RECIPIENTS: [&str; 4] =
    ["a@x.example", "b@y.example", "Zo\u{eb}@\u{fc}.example", "\"q d\"@[192.0.2.1]"];

/// Everything observed, for the invariants.
#[derive(Default)]
struct Log {
    /// Everything the client wrote.
    out: Vec<u8>,
    /// Everything the server sent (while the session was open).
    srv: Vec<u8>,
    /// (client output length, server input length) before each server input.
    marks: Vec<(usize, usize)>,
    /// Client output length at the first `tls_established` call / first verified one.
    tls_at: Option<usize>,
    verified_at: Option<usize>,
    /// The MAIL FROM text of each message.
    senders: HashMap<MessageId, String>,
    outcomes: HashMap<MessageId, usize>,
    ops: HashMap<OpId, usize>,
    closed: usize,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

impl Log {
    /// Where the end of data of the message whose MAIL starts at or after `from` ends.
    fn end_of_data(&self, from: usize) -> Option<usize> {
        let dot = find(&self.out, b"\r\n.\r\n", from).map(|i| i + 5);
        let mut bdat = None;
        let mut at = from;
        while let Some(i) = find(&self.out, b"BDAT ", at) {
            at = i + 1;
            let line_end = find(&self.out, b"\r\n", i)?;
            let line = std::str::from_utf8(&self.out[i..line_end]).unwrap_or("");
            let last_size = line.strip_prefix("BDAT ").and_then(|s| s.strip_suffix(" LAST"));
            if let Some(n) = last_size.and_then(|size| size.parse::<usize>().ok()) {
                bdat = Some(line_end + 2 + n);
                break;
            }
        }
        match (dot, bdat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Asserts that a 2xx reply line completed after the client had written `end` octets.
    fn assert_2xx_after(&self, end: usize, id: MessageId) {
        let Some(&(_, from)) = self.marks.iter().find(|(out, _)| *out >= end) else {
            panic!("{id:?} reported sent, but no server input after its end of data");
        };
        // Complete lines of the server stream that end at or after `from`.
        let mut start = 0;
        for (i, &b) in self.srv.iter().enumerate() {
            if b != b'\n' {
                continue;
            }
            let line = &self.srv[start..=i];
            start = i + 1;
            if i < from {
                continue;
            }
            let last_line = matches!(line.get(3), Some(b' ' | b'\r' | b'\n'));
            if matches!(line, [b'2', b'0'..=b'5', b'0'..=b'9', ..]) && last_line {
                return;
            }
        }
        panic!("{id:?} reported sent without a 2xx reply after its end of data");
    }
}

struct Fuzz {
    session: Session,
    log: Log,
    now: Instant,
    tls: TlsPolicy,
    creds: bool,
    insecure_auth: bool,
    next_sender: u32,
}

impl Fuzz {
    /// Writes what the session wants written and collects its events, like a driver.
    fn drive(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            assert!(!bytes.is_empty());
            assert!(self.log.closed == 0, "bytes to write after Closed");
            self.log.out.extend_from_slice(&bytes);
            self.session.wrote(bytes.len(), self.now);
            // Written: handed back for reuse, as the tokio driver does.
            let _kept = smtpkit::proto::session::__fuzz::recycle(&mut self.session, bytes);
        }
        while let Some(event) = self.session.poll_event() {
            assert_eq!(self.log.closed, 0, "event after Closed: {event:?}");
            match event {
                Event::Greeting(r) => assert_eq!(r.code().0, 220),
                Event::Ready => {}
                Event::Message { id, result } => {
                    let Some(sender) = self.log.senders.get(&id) else {
                        panic!("outcome for unknown {id:?}")
                    };
                    *self.log.outcomes.entry(id).or_default() += 1;
                    assert_eq!(self.log.outcomes[&id], 1, "second outcome for {id:?}");
                    if let Ok(report) = result {
                        assert_eq!(report.id, id);
                        assert!(report.reply.is_positive());
                        assert!(report.recipients.iter().any(|r| r.accepted()));
                        let mail = format!("MAIL FROM:<{sender}>");
                        let Some(at) = find(&self.log.out, mail.as_bytes(), 0) else {
                            panic!("{id:?} reported sent but its MAIL was never written")
                        };
                        let Some(end) = self.log.end_of_data(at) else {
                            panic!("{id:?} reported sent but its end of data was never written")
                        };
                        self.log.assert_2xx_after(end, id);
                    }
                }
                Event::Command { id, .. } => {
                    let Some(n) = self.log.ops.get_mut(&id) else { panic!("outcome for unknown {id:?}") };
                    *n += 1;
                    assert_eq!(*n, 1, "second outcome for {id:?}");
                }
                Event::Closed(_) => self.log.closed += 1,
            }
        }
        if self.log.closed > 0 {
            assert_eq!(self.session.wants(), Want::Closed);
            assert!(self.session.is_closed());
        }
    }

    fn server(&mut self, bytes: &[u8]) {
        self.log.marks.push((self.log.out.len(), self.log.srv.len()));
        if !self.session.is_closed() {
            self.log.srv.extend_from_slice(bytes);
        }
        self.session.handle_input(self.now, bytes);
    }

    fn send_message(&mut self, input: &mut Input<'_>) {
        let flags = input.byte();
        let more = input.byte();
        self.next_sender += 1;
        let sender = format!("m{}@fuzz.example", self.next_sender);
        let from = Address::new(&sender).expect("valid sender");
        let count = usize::from(flags % 4) + 1;
        let to: Vec<Address> = (0..count)
            .map(|i| Address::new(RECIPIENTS[(usize::from(more) + i) % RECIPIENTS.len()]).expect("valid"))
            .collect();
        let envelope = Envelope::new(Some(from), to).expect("has recipients");
        let len = usize::from(input.byte());
        let mut body = input.take(len).to_vec();
        // Sometimes a big body: over SIZE 1000, over the line limit, several BDAT chunks.
        for _ in 0..(more >> 5) {
            body.extend_from_within(..body.len().min(len));
            body.extend_from_slice(b"0123456789abcdef0123456789abcdef");
        }
        let opts = MessageOptions {
            ret: (flags & 0x04 != 0).then_some(Ret::Hdrs),
            envid: (flags & 0x08 != 0).then(|| EnvId::new("env+1=2").expect("valid")),
            notify: (flags & 0x10 != 0).then_some(Notify::NEVER),
            orcpt: flags & 0x10 != 0,
            requiretls: flags & 0x20 != 0,
            smtputf8: flags & 0x40 != 0,
            all_or_nothing: flags & 0x80 != 0,
        };
        let before = self.log.out.len();
        match self.session.send_message(envelope, Bytes::from(body), opts) {
            Ok(id) => {
                assert!(self.log.senders.insert(id, sender).is_none(), "{id:?} reused");
            }
            Err(_) => {
                // Refused up front: nothing may have been written for it.
                self.drive();
                assert!(find(&self.log.out, sender.as_bytes(), before).is_none());
            }
        }
    }

    fn op(&mut self, op: Result<OpId, smtpkit::Error>) {
        if let Ok(id) = op {
            assert!(self.log.ops.insert(id, 0).is_none(), "{id:?} reused");
        }
    }
}

/// The fuzz target and corpus replay entry point.
pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let c0 = input.byte();
    let c1 = input.byte();
    let tls = [TlsPolicy::Required, TlsPolicy::Opportunistic, TlsPolicy::Disabled, TlsPolicy::Implicit]
        [usize::from(c0 & 3)];
    let creds = c0 & 0x04 != 0;
    let config = SessionConfig {
        tls,
        credentials: creds.then(|| Credentials::new("user", "pass")),
        allow_insecure_auth: c0 & 0x08 != 0,
        pipelining: c0 & 0x10 == 0,
        chunking: c0 & 0x20 != 0,
        line_endings: if c0 & 0x40 == 0 { LineEndings::Normalize } else { LineEndings::Reject },
        trace: c0 & 0x80 != 0,
        bdat_chunk_size: if c1 & 1 == 0 { 1 << 20 } else { usize::from(c1 >> 4) + 1 },
        reply_limits: if c1 & 2 == 0 {
            ReplyLimits::default()
        } else {
            ReplyLimits { max_line: 64, max_lines: 6, max_reply: 200 }
        },
        timeouts: if c1 & 4 == 0 { Timeouts::default() } else { Timeouts::uniform(Duration::from_secs(30)) },
        ..SessionConfig::default()
    };
    let start = Instant::now();
    let mut f = Fuzz {
        session: Session::new(config, start),
        log: Log::default(),
        now: start,
        tls,
        creds,
        insecure_auth: c0 & 0x08 != 0,
        next_sender: 0,
    };

    for _ in 0..200 {
        if input.0.is_empty() {
            break;
        }
        match input.byte() % 16 {
            0..=4 => {
                let i = usize::from(input.byte()) % CANNED.len();
                f.server(CANNED[i]);
            }
            5 | 6 => {
                let n = usize::from(input.byte() % 64);
                let bytes = input.take(n).to_vec();
                f.server(&bytes);
            }
            7 => {
                // A canned reply split in two reads.
                let i = usize::from(input.byte()) % CANNED.len();
                let at = usize::from(input.byte()) % CANNED[i].len();
                f.server(&CANNED[i][..at]);
                f.drive();
                f.server(&CANNED[i][at..]);
            }
            8 | 9 => f.send_message(&mut input),
            10 => {
                let op = match input.byte() % 4 {
                    0 => f.session.noop(),
                    1 => f.session.rset(),
                    2 => f.session.vrfy("postmaster"),
                    _ => f.session.quit(),
                };
                f.op(op);
            }
            11 => f.session.handle_eof(),
            12 => {
                let secs = [0, 1, 29, 31, 60, 121, 181, 301, 601, 3600][usize::from(input.byte() % 10)];
                f.now += Duration::from_secs(secs);
                let deadline = f.session.poll_timeout();
                let was_closed = f.session.is_closed();
                f.session.handle_timeout(f.now);
                if deadline.is_none_or(|d| f.now < d) {
                    assert_eq!(f.session.is_closed(), was_closed, "timed out before the deadline");
                }
            }
            13 => {
                let verified = input.byte() & 1 == 0;
                let at = f.log.out.len();
                f.log.tls_at.get_or_insert(at);
                if verified {
                    f.log.verified_at.get_or_insert(at);
                }
                f.session.tls_established(verified);
            }
            14 => f.now += Duration::from_millis(u64::from(input.byte()) * 100),
            _ => f.drive(),
        }
        f.drive();
    }

    // The peer goes away: everything still open must be settled.
    f.session.handle_eof();
    f.drive();
    assert!(f.session.is_closed());
    assert_eq!(f.log.closed, 1, "exactly one Closed");
    for (id, n) in &f.log.outcomes {
        assert_eq!(*n, 1, "{id:?}");
    }
    for id in f.log.senders.keys() {
        assert_eq!(f.log.outcomes.get(id), Some(&1), "{id:?} has no outcome");
    }
    for (id, n) in &f.log.ops {
        assert_eq!(*n, 1, "{id:?} has {n} outcomes");
    }
    assert!(
        f.session
            .send_message(
                Envelope::parse("a@x.example", &["b@y.example"]).expect("valid"),
                Bytes::from_static(b"x"),
                MessageOptions::default()
            )
            .is_err()
    );
    assert!(f.session.poll_transmit().is_none() && f.session.poll_event().is_none());

    let out = &f.log.out;
    // No bare CR, bare LF or NUL ever leaves the client.
    assert!(!out.contains(&0), "NUL written");
    for (i, &b) in out.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}"),
            _ => {}
        }
    }
    // TLS required (or implicit) and never established: nothing but EHLO/HELO, STARTTLS,
    // QUIT and the caller's NOOP/RSET/VRFY.
    if matches!(f.tls, TlsPolicy::Required | TlsPolicy::Implicit) {
        let plain = &out[..f.log.tls_at.unwrap_or(out.len())];
        for verb in [&b"AUTH"[..], b"MAIL", b"RCPT", b"DATA", b"BDAT"] {
            assert!(
                find(plain, verb, 0).is_none(),
                "{} before TLS with {:?}",
                String::from_utf8_lossy(verb),
                f.tls
            );
        }
    }
    // Credentials only after a verified handshake unless the caller allowed otherwise.
    if f.creds && !f.insecure_auth {
        let before = &out[..f.log.verified_at.unwrap_or(out.len())];
        assert!(find(before, b"AUTH", 0).is_none(), "AUTH before verified TLS");
    }
}
