//! Transcript tests: every `tests/transcripts/*.txt` is replayed through the sans-IO
//! [`Session`], asserting the exact client bytes and the events.
//!
//! # Format
//!
//! One step per line; blank lines and lines starting with `#` are ignored.
//!
//! ```text
//! @config tls=none pipelining=on user=u pass=p   session settings, before any other step
//! S: 250 text          a server line (CRLF added); consecutive S lines form one read
//! S| 250 text\n        raw server bytes with escapes, nothing added
//! C: MAIL FROM:<a@b>   a client line (CRLF added): what the client must have written
//! C| BDAT 2 LAST\r\nhi raw client bytes with escapes, nothing added
//! @event PATTERN       the next event, as rendered by `render_event`, matches PATTERN
//! @send from=a@x to=b@x,c@x body="Subject: x\r\n\r\nhi\r\n" [aon] [smtputf8] ...
//! @noop | @rset | @quit | @vrfy WHAT (escapes allowed)
//! @tls verified|unverified   the driver's TLS handshake succeeded
//! @eof                       the server closed the connection
//! @advance 300s              simulated time passes, then `handle_timeout`
//! @wants read|idle|starttls|closed
//! @clean | @not-clean        `is_idle_and_clean()` holds, or does not
//! ```
//!
//! Before each server read, everything the client wrote so far must equal the `C` lines so
//! far, byte for byte; at the end, too, and every event must have been asserted. A
//! PATTERN matches when it covers a whole-word prefix of the event; `*` matches any text.
//!
//! Each transcript runs once with whole reads, then once per byte boundary of every read
//! (that read split in two), then with every byte fed alone: the wire output and events
//! must be identical in all runs (DESIGN habit 10: "feed each reply split at every byte
//! boundary").

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::session::Transmit;
use bytes::Bytes;
use smtpkit::proto::dot_stuff::LineEndings;
use smtpkit::proto::params::{EnvId, Notify, Ret};
use smtpkit::proto::session::{Event, RecipientResult, Session, SessionConfig, TlsPolicy, Want};
use smtpkit::{Credentials, EhloName, Envelope, Error, Mechanism, MessageOptions, ProtocolError, Timeouts};

#[derive(Clone, Debug)]
pub(super) enum Action {
    Server(Vec<u8>),
    Client(Vec<u8>),
    Event(String),
    Send { from: String, to: Vec<String>, body: Vec<u8>, opts: MessageOptions },
    Noop,
    Rset,
    Quit,
    Vrfy(String),
    Tls(bool),
    Eof,
    Advance(Duration),
    Wants(Want),
    Clean(bool),
}

#[derive(Clone, Debug)]
pub(super) struct Step {
    line: usize,
    pub(super) action: Action,
}

pub(super) struct Transcript {
    pub(super) name: String,
    pub(super) config: SessionConfig,
    pub(super) steps: Vec<Step>,
}

/// How server chunks are handed to the session.
#[derive(Clone, Copy, Debug)]
enum Feed {
    Whole,
    /// Chunk number `chunk` (0-based among server reads) is fed as `[..at]` then `[at..]`.
    Split {
        chunk: usize,
        at: usize,
    },
    Bytewise,
}

/// What a run produced; every run of one transcript must produce the same.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    written: Vec<u8>,
    events: Vec<String>,
}

// ---- parsing --------------------------------------------------------------------------

pub(super) fn parse(name: &str, text: &str) -> Result<Transcript, String> {
    let mut config = SessionConfig {
        ehlo_name: EhloName::new("client.example").map_err(|e| e.to_string())?,
        ..SessionConfig::default()
    };
    let mut steps: Vec<Step> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let at = |e: String| format!("{name}:{line}: {e}");
        let trimmed = raw.trim_end_matches('\r');
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let action = if let Some(rest) = trimmed.strip_prefix("S:") {
            let mut bytes = strip_one_space(rest).as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\n");
            Action::Server(bytes)
        } else if let Some(rest) = trimmed.strip_prefix("S|") {
            Action::Server(unescape(strip_one_space(rest)).map_err(at)?)
        } else if let Some(rest) = trimmed.strip_prefix("C:") {
            let mut bytes = strip_one_space(rest).as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\n");
            Action::Client(bytes)
        } else if let Some(rest) = trimmed.strip_prefix("C|") {
            Action::Client(unescape(strip_one_space(rest)).map_err(at)?)
        } else if let Some(rest) = trimmed.strip_prefix('@') {
            let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
            let args = args.trim();
            match word {
                "config" => {
                    if !steps.is_empty() {
                        return Err(at("@config must come before every other step".into()));
                    }
                    apply_config(&mut config, args).map_err(at)?;
                    continue;
                }
                "event" => Action::Event(args.to_string()),
                "send" => parse_send(args).map_err(at)?,
                "noop" => Action::Noop,
                "rset" => Action::Rset,
                "quit" => Action::Quit,
                "vrfy" => Action::Vrfy(
                    String::from_utf8(unescape(args).map_err(at)?).map_err(|e| at(e.to_string()))?,
                ),
                "tls" => match args {
                    "verified" => Action::Tls(true),
                    "unverified" => Action::Tls(false),
                    _ => return Err(at(format!("@tls {args}?"))),
                },
                "eof" => Action::Eof,
                "advance" => {
                    let secs = args.strip_suffix('s').and_then(|s| s.parse().ok());
                    Action::Advance(Duration::from_secs(secs.ok_or_else(|| at(format!("@advance {args}?")))?))
                }
                "wants" => Action::Wants(match args {
                    "read" => Want::Read,
                    "idle" => Want::Idle,
                    "starttls" => Want::StartTls,
                    "closed" => Want::Closed,
                    _ => return Err(at(format!("@wants {args}?"))),
                }),
                "clean" => Action::Clean(true),
                "not-clean" => Action::Clean(false),
                _ => return Err(at(format!("unknown directive @{word}"))),
            }
        } else {
            return Err(at(format!("cannot parse line {trimmed:?}")));
        };
        // Consecutive server lines arrive in one read.
        if let (Action::Server(more), Some(Step { action: Action::Server(chunk), .. })) =
            (&action, steps.last_mut())
        {
            chunk.extend_from_slice(more);
            continue;
        }
        steps.push(Step { line, action });
    }
    Ok(Transcript { name: name.to_string(), config, steps })
}

fn strip_one_space(s: &str) -> &str {
    s.strip_prefix(' ').unwrap_or(s)
}

/// `\r \n \t \0 \\ \" \xNN`.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'"') => out.push(b'"'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).map_err(|e| e.to_string())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|e| format!("\\x{hex}: {e}"))?);
            }
            other => return Err(format!("bad escape \\{:?}", other.map(char::from))),
        }
    }
    Ok(out)
}

/// Splits `a=b c="d e" f` into `[("a","b"), ("c","d e"), ("f","")]`; quoted values keep
/// their escapes for the caller to decode.
fn tokens(args: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated quote after {key}=")),
                        Some('"') => break,
                        Some('\\') => {
                            value.push('\\');
                            value.extend(chars.next());
                        }
                        Some(c) => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key, value));
    }
}

fn on_off(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" | "" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{key}={value}: expected on or off")),
    }
}

fn apply_config(config: &mut SessionConfig, args: &str) -> Result<(), String> {
    let mut user = None;
    let mut pass = None;
    for (key, value) in tokens(args)? {
        match key.as_str() {
            "tls" => {
                config.tls = match value.as_str() {
                    "none" => TlsPolicy::Disabled,
                    "required" => TlsPolicy::Required,
                    "opportunistic" => TlsPolicy::Opportunistic,
                    "implicit" => TlsPolicy::Implicit,
                    _ => return Err(format!("tls={value}?")),
                }
            }
            "pipelining" => config.pipelining = on_off(&key, &value)?,
            "chunking" => config.chunking = on_off(&key, &value)?,
            "bdat_chunk" => {
                config.bdat_chunk_size = value.parse().map_err(|_| format!("bdat_chunk={value}?"))?
            }
            "allow_insecure_auth" => config.allow_insecure_auth = on_off(&key, &value)?,
            "line_endings" => {
                config.line_endings = match value.as_str() {
                    "normalize" => LineEndings::Normalize,
                    "reject" => LineEndings::Reject,
                    _ => return Err(format!("line_endings={value}?")),
                }
            }
            "ehlo" => config.ehlo_name = EhloName::new(&value).map_err(|e| e.to_string())?,
            "user" => user = Some(value),
            "pass" => pass = Some(value),
            "mechs" => {
                config.mechanisms = value
                    .split(',')
                    .map(|m| Mechanism::from_name(m).ok_or_else(|| format!("mechanism {m}?")))
                    .collect::<Result<_, _>>()?
            }
            "timeout" => {
                let secs = value.strip_suffix('s').and_then(|s| s.parse().ok());
                config.timeouts =
                    Timeouts::uniform(Duration::from_secs(secs.ok_or(format!("timeout={value}?"))?));
            }
            _ => return Err(format!("unknown @config key {key}")),
        }
    }
    match (user, pass) {
        (Some(u), Some(p)) => config.credentials = Some(Credentials::new(u, p)),
        (None, None) => {}
        _ => return Err("user= and pass= go together".into()),
    }
    Ok(())
}

fn parse_send(args: &str) -> Result<Action, String> {
    let mut from = String::new();
    let mut to = Vec::new();
    let mut body = Vec::new();
    let mut opts = MessageOptions::default();
    for (key, value) in tokens(args)? {
        match key.as_str() {
            "from" => from = if value == "<>" { String::new() } else { value },
            "to" => to = value.split(',').map(str::to_string).collect(),
            "body" => body = unescape(&value)?,
            "aon" => opts.all_or_nothing = true,
            "smtputf8" => opts.smtputf8 = true,
            "requiretls" => opts.requiretls = true,
            "orcpt" => opts.orcpt = true,
            "notify" => opts.notify = Some(Notify::parse(&value).map_err(|e| e.to_string())?),
            "envid" => opts.envid = Some(EnvId::new(&value).map_err(|e| e.to_string())?),
            "ret" => {
                opts.ret = Some(match value.as_str() {
                    "full" => Ret::Full,
                    "hdrs" => Ret::Hdrs,
                    _ => return Err(format!("ret={value}?")),
                })
            }
            _ => return Err(format!("unknown @send key {key}")),
        }
    }
    Ok(Action::Send { from, to, body, opts })
}

// ---- rendering ------------------------------------------------------------------------

fn render_rcpts(recipients: &[RecipientResult]) -> String {
    let list: Vec<String> = recipients.iter().map(|r| format!("{}={}", r.address, r.reply.code())).collect();
    format!("[{}]", list.join(" "))
}

/// A compact, stable form of an error; the first word names the variant.
fn render_error(e: &Error) -> String {
    match e {
        Error::Rejected { phase, reply, recipients } if recipients.is_empty() => {
            format!("rejected {phase:?} {reply}")
        }
        Error::Rejected { phase, reply, recipients } => {
            format!("rejected {phase:?} {} {reply}", render_rcpts(recipients))
        }
        Error::RecipientsRejected { recipients } => {
            format!("recipients-rejected {}", render_rcpts(recipients))
        }
        Error::Ambiguous { cause, recipients } => {
            format!("ambiguous ({}) {}", render_error(cause), render_rcpts(recipients))
        }
        Error::AuthFailed(reply) => format!("auth-failed {reply}"),
        Error::AuthMechanismsRefused(tried) => {
            let list: Vec<String> =
                tried.iter().map(|t| format!("{}={}", t.mechanism.name(), t.reply.code())).collect();
            format!("auth-refused {}", list.join(","))
        }
        Error::Protocol(p) => format!("protocol {}", render_protocol(p)),
        Error::ExtensionMissing(x) => format!("extension-missing {x}"),
        Error::MessageTooLarge { size, max } => format!("too-large {size}>{max}"),
        Error::InsecureAuth => "insecure-auth".into(),
        Error::NoAuthMechanism(offered) => format!("no-auth-mechanism {}", offered.join(",")),
        Error::Input(i) => format!("input {i}"),
        Error::Timeout(phase) => format!("timeout {phase:?}"),
        Error::ConnectionClosed(phase) => format!("connection-closed {phase:?}"),
        Error::Io(_) => "io".into(),
        Error::Tls(_) => "tls".into(),
        Error::Config(text) => format!("config {text}"),
        Error::SessionClosed => "session-closed".into(),
        other => format!("other {other:?}"),
    }
}

fn render_protocol(p: &ProtocolError) -> String {
    match p {
        ProtocolError::Reply(e) => format!("reply {e:?}"),
        // The count depends on where the read boundary fell (bytes already buffered when the
        // 220 completed, or arriving later), so it is left out to keep runs comparable.
        ProtocolError::DataAfterStartTls(_) => "data-after-starttls".into(),
        ProtocolError::Unsolicited(reply) => format!("unsolicited {reply}"),
        ProtocolError::UnexpectedReply { phase, reply } => format!("unexpected {phase:?} {reply}"),
        ProtocolError::Sasl(e) => format!("sasl {e:?}"),
        other => format!("other {other:?}"),
    }
}

fn render_event(e: &Event) -> String {
    match e {
        Event::Greeting(reply) => format!("greeting {reply}"),
        Event::Ready => "ready".into(),
        Event::Message { id, result: Ok(report) } => {
            format!("message {} sent {} {}", id.0, render_rcpts(&report.recipients), report.reply)
        }
        Event::Message { id, result: Err(e) } => format!("message {} {}", id.0, render_error(e)),
        Event::Command { id, result: Ok(reply) } => format!("command {} ok {reply}", id.0),
        Event::Command { id, result: Err(e) } => format!("command {} {}", id.0, render_error(e)),
        Event::Closed(None) => "closed clean".into(),
        Event::Closed(Some(e)) => format!("closed error {}", render_error(e)),
    }
}

/// `*` matches any run of characters; the pattern must cover a prefix of `text` that
/// ends at a word boundary, so `closed` does not accept `closedx` but does accept
/// `closed clean`.
fn matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty() || t.first() == Some(&b' '),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, t.get(i..).unwrap_or_default())),
            Some((c, rest)) => t.split_first().is_some_and(|(d, tail)| c == d && go(rest, tail)),
        }
    }
    go(pattern.trim().as_bytes(), text.as_bytes())
}

fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n\n"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

fn check_written(written: &[u8], expected: &[u8]) -> Result<(), String> {
    if written == expected {
        return Ok(());
    }
    let common = written.iter().zip(expected).take_while(|(a, b)| a == b).count();
    // Show from the start of the line where they part.
    let from = written.get(..common).and_then(|w| w.iter().rposition(|&b| b == b'\n')).map_or(0, |i| i + 1);
    Err(format!(
        "client output differs after {common} octets\n--- expected (C lines) ---\n{}\n--- written ---\n{}",
        show(expected.get(from..).unwrap_or_default()),
        show(written.get(from..).unwrap_or_default()),
    ))
}

// ---- running --------------------------------------------------------------------------

struct Runner {
    session: Session,
    now: Instant,
    written: Vec<u8>,
    expected: Vec<u8>,
    pending: VecDeque<String>,
    events: Vec<String>,
}

impl Runner {
    /// What a driver does after every input: write everything, collect every event.
    fn pump(&mut self) {
        while let Some(bytes) = self.session.transmit(self.now) {
            self.written.extend_from_slice(&bytes);
        }
        while let Some(event) = self.session.poll_event() {
            self.note(render_event(&event));
        }
    }

    fn note(&mut self, event: String) {
        self.pending.push_back(event.clone());
        self.events.push(event);
    }

    fn call<T>(&mut self, what: &str, result: Result<T, Error>) {
        self.pump();
        if let Err(e) = result {
            self.note(format!("{what}-error {}", render_error(&e)));
        }
    }
}

fn run(t: &Transcript, feed: Feed) -> Result<Outcome, String> {
    let now = Instant::now();
    let mut r = Runner {
        session: Session::new(t.config.clone(), now),
        now,
        written: Vec::new(),
        expected: Vec::new(),
        pending: VecDeque::new(),
        events: Vec::new(),
    };
    r.pump();
    let mut chunk_no = 0;
    for step in &t.steps {
        let at = |e: String| format!("{}:{}: {e}", t.name, step.line);
        match &step.action {
            Action::Server(chunk) => {
                check_written(&r.written, &r.expected).map_err(at)?;
                let pieces: Vec<&[u8]> = match feed {
                    Feed::Whole => vec![chunk],
                    Feed::Split { chunk: n, at } if n == chunk_no => {
                        let (a, b) = chunk.split_at(at);
                        vec![a, b]
                    }
                    Feed::Split { .. } => vec![chunk],
                    Feed::Bytewise => chunk.chunks(1).collect(),
                };
                for piece in pieces {
                    r.session.handle_input(r.now, piece);
                    r.pump();
                }
                chunk_no += 1;
            }
            Action::Client(bytes) => r.expected.extend_from_slice(bytes),
            Action::Event(pattern) => {
                let got = r
                    .pending
                    .pop_front()
                    .ok_or_else(|| at(format!("expected event {pattern:?}, got none")))?;
                if !matches(pattern, &got) {
                    return Err(at(format!("expected event {pattern:?}\n                  got {got:?}")));
                }
            }
            Action::Send { from, to, body, opts } => {
                let to: Vec<&str> = to.iter().map(String::as_str).collect();
                let envelope = Envelope::parse(from, &to).map_err(|e| at(format!("bad envelope: {e}")))?;
                let result = r.session.send_message(envelope, Bytes::from(body.clone()), opts.clone());
                r.call("send", result);
            }
            Action::Noop => {
                let result = r.session.noop();
                r.call("noop", result);
            }
            Action::Rset => {
                let result = r.session.rset();
                r.call("rset", result);
            }
            Action::Quit => {
                let result = r.session.quit();
                r.call("quit", result);
            }
            Action::Vrfy(what) => {
                let result = r.session.vrfy(what);
                r.call("vrfy", result);
            }
            Action::Tls(verified) => {
                r.session.tls_established(*verified);
                r.pump();
            }
            Action::Eof => {
                r.session.handle_eof();
                r.pump();
            }
            Action::Advance(d) => {
                r.now += *d;
                r.session.handle_timeout(r.now);
                r.pump();
            }
            Action::Wants(want) => {
                let got = r.session.wants();
                if got != *want {
                    return Err(at(format!("wants() is {got:?}, expected {want:?}")));
                }
            }
            Action::Clean(clean) => {
                if r.session.is_idle_and_clean() != *clean {
                    return Err(at(format!("is_idle_and_clean() is {}", !clean)));
                }
            }
        }
    }
    check_written(&r.written, &r.expected).map_err(|e| format!("{}: at the end: {e}", t.name))?;
    if !r.pending.is_empty() {
        return Err(format!("{}: events left unasserted: {:#?}", t.name, r.pending));
    }
    Ok(Outcome { written: r.written, events: r.events })
}

/// Runs `t` whole, split at every boundary of every read, and byte by byte.
fn run_all_feeds(t: &Transcript) -> Result<usize, String> {
    let whole = run(t, Feed::Whole)?;
    let chunks: Vec<usize> = t
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Server(c) => Some(c.len()),
            _ => None,
        })
        .collect();
    let mut feeds = vec![Feed::Bytewise];
    for (chunk, len) in chunks.iter().enumerate() {
        feeds.extend((1..*len).map(|at| Feed::Split { chunk, at }));
    }
    for feed in &feeds {
        let outcome = run(t, *feed).map_err(|e| format!("with {feed:?}: {e}"))?;
        if outcome != whole {
            return Err(format!(
                "{}: {feed:?} differs from whole reads\nwhole events: {:#?}\nthis run: {:#?}",
                t.name, whole.events, outcome.events
            ));
        }
    }
    Ok(feeds.len() + 1)
}

pub(super) fn transcript_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn transcripts_replay_identically_under_every_split() {
    let files = transcript_files();
    assert!(files.len() >= 25, "only {} transcripts", files.len());
    let mut failures = Vec::new();
    let mut runs = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        match parse(&name, &text).and_then(|t| run_all_feeds(&t)) {
            Ok(n) => runs += n,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} transcripts failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
    eprintln!("{} transcripts, {runs} runs", files.len());
}

// ---- the runner itself must be able to fail -------------------------------------------

const TINY: &str =
    "@config tls=none\nS: 220 mx\nC: EHLO client.example\nS: 250 mx\n@event greeting 220\n@event ready\n";

#[test]
fn runner_accepts_a_minimal_transcript() {
    let t = parse("tiny", TINY).unwrap();
    // Whole, bytewise, and 7 + 7 splits of the two 8-octet reads.
    assert_eq!(run_all_feeds(&t).unwrap(), 1 + 1 + 7 + 7);
}

#[test]
fn runner_rejects_wrong_client_bytes() {
    let t = parse("x", &TINY.replace("EHLO client.example", "HELO client.example")).unwrap();
    assert!(run(&t, Feed::Whole).unwrap_err().contains("client output differs"));
}

#[test]
fn runner_rejects_missing_or_unexpected_events() {
    let t = parse("x", &TINY.replace("@event ready\n", "")).unwrap();
    assert!(run(&t, Feed::Whole).unwrap_err().contains("unasserted"));
    let t = parse("x", &TINY.replace("@event ready", "@event closed")).unwrap();
    assert!(run(&t, Feed::Whole).unwrap_err().contains("expected event"));
    let t = parse("x", &format!("{TINY}@event ready\n")).unwrap();
    assert!(run(&t, Feed::Whole).unwrap_err().contains("got none"));
}

#[test]
fn runner_rejects_unwritten_client_lines() {
    let t = parse("x", &format!("{TINY}C: NOOP\n")).unwrap();
    assert!(run(&t, Feed::Whole).unwrap_err().contains("at the end"));
}

#[test]
fn patterns_match_whole_word_prefixes() {
    assert!(matches("closed clean", "closed clean"));
    assert!(matches("closed", "closed error timeout DataEnd"));
    assert!(!matches("close", "closed clean"));
    assert!(!matches("closed clean", "closed error x"));
    assert!(matches("message 1 sent * 250", "message 1 sent [a@b.c=250] 250 ok"));
    assert!(matches(
        "message 1 * [a@b.c=250 d@b.c=550]",
        "message 1 rejected DataEnd [a@b.c=250 d@b.c=550] 554"
    ));
    assert!(!matches("message 1 sent", "message 12 sent"));
}

#[test]
fn escapes_and_tokens() {
    assert_eq!(unescape(r#"a\r\n\0\x41\\\t\""#).unwrap(), b"a\r\n\0A\\\t\"");
    assert!(unescape(r"\q").is_err());
    let t = tokens(r#"from=a@b.c to=x@y.z,w@y.z body="a b\"c" aon"#).unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(t[2], ("body".to_string(), r#"a b\"c"#.to_string()));
    assert_eq!(t[3], ("aon".to_string(), String::new()));
}
