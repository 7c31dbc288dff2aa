//! What the server captured: messages, raw bytes and transcripts, per connection.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::fault::FiredFault;

/// A message the server received in full (final dot or `BDAT ... LAST`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedMessage {
    /// The reverse-path without angle brackets (empty for the null path `<>`).
    pub mail_from: String,
    /// Forward-paths of the **accepted** recipients, in order, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// Parameters of each accepted recipient (`NOTIFY=...`, `ORCPT=...`), parallel to
    /// `rcpt_to`.
    pub rcpt_params: Vec<Vec<String>>,
    /// The MAIL FROM parameters as sent, such as `SIZE=1234` or `BODY=8BITMIME`.
    pub mail_params: Vec<String>,
    /// The message as an MTA stores it: after dot-unstuffing, without the terminating
    /// `.CRLF` (the CRLF ending the last line is kept). For BDAT, the chunks concatenated.
    pub data: Vec<u8>,
    /// The message arrived over TLS (STARTTLS or implicit).
    pub tls: bool,
    /// The user the session authenticated as, if any.
    pub authenticated_as: Option<String>,
    /// The SASL mechanism of that authentication (`"SCRAM-SHA-256"`, `"PLAIN"`...).
    pub authenticated_with: Option<String>,
    /// The message came with BDAT rather than DATA.
    pub via_bdat: bool,
    /// The connection it came on (0-based, accept order).
    pub connection: usize,
    /// The queue id the server gave this message: the `ID` of its `250 ... queued as ID`
    /// reply. Unique per server, also between messages on one connection. Messages refused
    /// at the end of data get one too, although no reply carried it.
    pub queue_id: String,
    /// The server took responsibility: it sent (or, with
    /// [`Fault::CommitThenClose`](super::Fault::CommitThenClose), was about to send) a 2xx
    /// for the end of data. Always true in [`TestServer::messages`](super::TestServer::messages).
    pub committed: bool,
}

impl ReceivedMessage {
    /// The data as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The value of the first header field called `name` (case-insensitive), unfolded
    /// (RFC 5322 2.2.3) and trimmed, or `None`.
    ///
    /// ```
    /// # use smtpkit::testing::ReceivedMessage;
    /// # fn check(msg: &ReceivedMessage) {
    /// assert_eq!(msg.header("subject").as_deref(), Some("Hello"));
    /// # }
    /// ```
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(self.header_block()).into_owned();
        let mut found: Option<String> = None;
        for line in text.split("\r\n") {
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((field, value)) = line.split_once(':')
                && field.eq_ignore_ascii_case(name)
            {
                found = Some(value.to_owned());
            }
        }
        found.map(|v| v.trim().to_owned())
    }

    /// The body: everything after the first empty line, or nothing when there is none.
    pub fn body(&self) -> &[u8] {
        let head = self.header_block().len();
        self.data.get(head + 4..).unwrap_or_default()
    }

    fn header_block(&self) -> &[u8] {
        match memchr::memmem::find(&self.data, b"\r\n\r\n") {
            Some(i) => &self.data[..i],
            None => &self.data,
        }
    }
}

/// One AUTH exchange that ended, successfully or not: see
/// [`TestServer::authentications`](super::TestServer::authentications).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authentication {
    /// The connection (0-based, accept order).
    pub connection: usize,
    /// The mechanism named in the `AUTH` command, upper case.
    pub mechanism: String,
    /// The user the client claimed to be, when the exchange got that far.
    pub user: Option<String>,
    /// The server answered `235`.
    pub succeeded: bool,
}

/// Cap on the raw bytes kept per connection, so a long-running flood cannot exhaust memory.
pub(crate) const MAX_RECORDED_BYTES: usize = 64 << 20;

/// Cap on transcript lines kept per connection, for the same reason.
const MAX_TRANSCRIPT_LINES: usize = 100_000;

/// Cap on violations kept for the whole server.
const MAX_VIOLATIONS: usize = 10_000;

/// What stands in for an AUTH payload in [`TestServer::received_bytes`] and
/// [`TestServer::transcripts`](super::TestServer::transcripts).
///
/// [`TestServer::received_bytes`]: super::TestServer::received_bytes
pub(crate) const REDACTED: &str = "[redacted]";

/// One transcript line; `raw` is set when `shown` hides a secret.
struct Line {
    shown: String,
    raw: Option<String>,
}

#[derive(Default)]
struct ConnLog {
    bytes: Vec<u8>,
    /// Byte ranges of `bytes` that carry AUTH payloads, in order, not overlapping.
    secrets: Vec<Range<usize>>,
    transcript: Vec<Line>,
    server_name: Option<String>,
    client_certificate: Option<Vec<u8>>,
}

impl ConnLog {
    fn push(&mut self, line: String) {
        self.push_line(Line { shown: line, raw: None });
    }

    fn push_line(&mut self, line: Line) {
        match self.transcript.len() {
            n if n < MAX_TRANSCRIPT_LINES => self.transcript.push(line),
            MAX_TRANSCRIPT_LINES => self.push_truncated(),
            _ => {}
        }
    }

    fn push_truncated(&mut self) {
        self.transcript.push(Line { shown: "* transcript truncated".into(), raw: None });
    }

    /// The received bytes with each secret range replaced by [`REDACTED`].
    fn redacted_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        let mut at = 0;
        for range in &self.secrets {
            let (start, end) = (range.start.min(self.bytes.len()), range.end.min(self.bytes.len()));
            if start < at || start >= end {
                continue;
            }
            out.extend_from_slice(&self.bytes[at..start]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = end;
        }
        out.extend_from_slice(&self.bytes[at..]);
        out
    }

    fn transcript(&self, with_secrets: bool) -> String {
        let text = |l: &Line| match (&l.raw, with_secrets) {
            (Some(raw), true) => raw.clone(),
            _ => l.shown.clone(),
        };
        self.transcript.iter().flat_map(|l| [text(l), "\n".to_owned()]).collect()
    }
}

#[derive(Default)]
struct Logs {
    messages: Vec<ReceivedMessage>,
    violations: Vec<String>,
    fired: Vec<FiredFault>,
    authentications: Vec<Authentication>,
    connections: Vec<ConnLog>,
    /// Queue ids handed out so far.
    queue_ids: u64,
}

/// Shared capture store; every connection task writes into it.
#[derive(Default)]
pub(crate) struct Recorder {
    logs: Mutex<Logs>,
    /// Woken whenever a message is recorded.
    pub(crate) changed: Notify,
}

/// Printable form of protocol bytes for transcripts: control bytes escaped.
pub(crate) fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl Recorder {
    fn logs(&self) -> MutexGuard<'_, Logs> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Register a connection and return its number.
    pub(crate) fn open_connection(&self) -> usize {
        let mut logs = self.logs();
        logs.connections.push(ConnLog::default());
        logs.connections.len() - 1
    }

    pub(crate) fn received(&self, conn: usize, bytes: &[u8]) {
        if let Some(log) = self.logs().connections.get_mut(conn) {
            let room = MAX_RECORDED_BYTES.saturating_sub(log.bytes.len());
            log.bytes.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Forget the last `n` received bytes (read ahead, then treated as never read).
    pub(crate) fn unreceive(&self, conn: usize, n: usize) {
        if let Some(log) = self.logs().connections.get_mut(conn) {
            let keep = log.bytes.len().saturating_sub(n);
            log.bytes.truncate(keep);
        }
    }

    /// Record a protocol violation by the client, also as a `*` transcript line.
    pub(crate) fn violation(&self, conn: usize, what: &str) {
        let mut logs = self.logs();
        if logs.violations.len() < MAX_VIOLATIONS {
            logs.violations.push(format!("connection {conn}: {what}"));
        }
        if let Some(log) = logs.connections.get_mut(conn) {
            log.push(format!("* protocol violation: {what}"));
        }
    }

    pub(crate) fn fired(&self, fault: FiredFault) {
        self.logs().fired.push(fault);
    }

    pub(crate) fn fired_faults(&self) -> Vec<FiredFault> {
        self.logs().fired.clone()
    }

    pub(crate) fn violations(&self) -> Vec<String> {
        self.logs().violations.clone()
    }

    pub(crate) fn tls_server_name(&self, conn: usize, name: Option<String>) {
        if let Some(log) = self.logs().connections.get_mut(conn) {
            log.server_name = name;
        }
    }

    pub(crate) fn tls_client_certificate(&self, conn: usize, der: Option<Vec<u8>>) {
        if let Some(log) = self.logs().connections.get_mut(conn) {
            log.client_certificate = der;
        }
    }

    pub(crate) fn tls_client_certificates(&self) -> Vec<Option<Vec<u8>>> {
        self.logs().connections.iter().map(|c| c.client_certificate.clone()).collect()
    }

    pub(crate) fn authentication(&self, auth: Authentication) {
        self.logs().authentications.push(auth);
    }

    pub(crate) fn authentications(&self) -> Vec<Authentication> {
        self.logs().authentications.clone()
    }

    pub(crate) fn tls_server_names(&self) -> Vec<Option<String>> {
        self.logs().connections.iter().map(|c| c.server_name.clone()).collect()
    }

    /// A fresh queue id, never handed out before by this server.
    pub(crate) fn queue_id(&self) -> String {
        let mut logs = self.logs();
        logs.queue_ids += 1;
        // Letters and digits only, as clients (and `queue_id()` parsers) expect.
        format!("TS{:06X}", logs.queue_ids)
    }

    /// Record a client line whose `secret` byte range (within `line`) is an AUTH payload;
    /// the line started at byte `at` of the connection's received bytes.
    pub(crate) fn secret_line(&self, conn: usize, at: usize, line: &[u8], secret: Range<usize>) {
        let (Some(head), Some(payload), Some(tail)) =
            (line.get(..secret.start), line.get(secret.clone()), line.get(secret.end..))
        else {
            return self.line(conn, format!("C: {}", show(line)));
        };
        let shown = format!("C: {}{REDACTED}{}", show(head), show(tail));
        let raw = Some(format!("C: {}{}{}", show(head), show(payload), show(tail)));
        self.secret(conn, at + secret.start..at + secret.end);
        if let Some(log) = self.logs().connections.get_mut(conn) {
            log.push_line(Line { shown, raw });
        }
    }

    /// Mark `range` of the connection's received bytes as an AUTH payload (one adjacent to
    /// the last such range extends it).
    pub(crate) fn secret(&self, conn: usize, range: Range<usize>) {
        if let Some(log) = self.logs().connections.get_mut(conn) {
            match log.secrets.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => log.secrets.push(range),
            }
        }
    }

    pub(crate) fn line(&self, conn: usize, line: String) {
        if let Some(log) = self.logs().connections.get_mut(conn) {
            log.push(line);
        }
    }

    /// Record the server's bytes as `S:` lines.
    pub(crate) fn sent(&self, conn: usize, bytes: &[u8]) {
        let mut logs = self.logs();
        if let Some(log) = logs.connections.get_mut(conn) {
            let trimmed = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
            for line in trimmed.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                log.push(format!("S: {}", show(line)));
            }
        }
    }

    pub(crate) fn message(&self, msg: ReceivedMessage) {
        self.logs().messages.push(msg);
        self.changed.notify_waiters();
    }

    pub(crate) fn messages(&self, committed_only: bool) -> Vec<ReceivedMessage> {
        self.logs().messages.iter().filter(|m| m.committed || !committed_only).cloned().collect()
    }

    /// Whether a message from `from` with this data was seen before, committed or not.
    pub(crate) fn seen(&self, from: &str, data: &[u8]) -> bool {
        self.logs().messages.iter().any(|m| m.mail_from == from && m.data == data)
    }

    pub(crate) fn committed_count(&self) -> usize {
        self.logs().messages.iter().filter(|m| m.committed).count()
    }

    pub(crate) fn received_bytes(&self, with_secrets: bool) -> Vec<Vec<u8>> {
        let logs = self.logs();
        let bytes = |c: &ConnLog| if with_secrets { c.bytes.clone() } else { c.redacted_bytes() };
        logs.connections.iter().map(bytes).collect()
    }

    pub(crate) fn transcripts(&self, with_secrets: bool) -> Vec<String> {
        self.logs().connections.iter().map(|c| c.transcript(with_secrets)).collect()
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.logs().connections.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(data: &[u8]) -> ReceivedMessage {
        ReceivedMessage {
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            rcpt_params: Vec::new(),
            mail_params: Vec::new(),
            data: data.to_vec(),
            tls: false,
            authenticated_as: None,
            authenticated_with: None,
            via_bdat: false,
            connection: 0,
            queue_id: "TS000001".into(),
            committed: true,
        }
    }

    #[test]
    fn headers_and_body() {
        let m = msg(b"From: a@b\r\nSubject: Hello\r\n  world\r\nX: 1\r\n\r\nbody\r\n");
        assert_eq!(m.header("SUBJECT").as_deref(), Some("Hello  world"));
        assert_eq!(m.header("x").as_deref(), Some("1"));
        assert_eq!(m.header("to"), None);
        assert_eq!(m.body(), b"body\r\n");
        assert_eq!(msg(b"X: 1\r\n").body(), b"");
    }

    #[test]
    fn show_escapes_controls() {
        assert_eq!(show(b"a\x00b\tc"), "a\\u{0}b\\tc");
    }
}
