//! What the server captured: messages, raw bytes and transcripts, per connection.

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

#[derive(Default)]
struct ConnLog {
    bytes: Vec<u8>,
    transcript: Vec<String>,
    server_name: Option<String>,
    client_certificate: Option<Vec<u8>>,
}

impl ConnLog {
    fn push(&mut self, line: String) {
        match self.transcript.len() {
            n if n < MAX_TRANSCRIPT_LINES => self.transcript.push(line),
            MAX_TRANSCRIPT_LINES => self.transcript.push("* transcript truncated".into()),
            _ => {}
        }
    }
}

#[derive(Default)]
struct Logs {
    messages: Vec<ReceivedMessage>,
    violations: Vec<String>,
    fired: Vec<FiredFault>,
    authentications: Vec<Authentication>,
    connections: Vec<ConnLog>,
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

    pub(crate) fn received_bytes(&self) -> Vec<Vec<u8>> {
        self.logs().connections.iter().map(|c| c.bytes.clone()).collect()
    }

    pub(crate) fn transcripts(&self) -> Vec<String> {
        self.logs()
            .connections
            .iter()
            .map(|c| c.transcript.iter().flat_map(|l| [l.as_str(), "\n"]).collect())
            .collect()
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
