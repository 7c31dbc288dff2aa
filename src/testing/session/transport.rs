//! The connection's bytes: reading into the input buffer, taking lines, queueing and
//! writing replies, the byte budget of [`Fault::CloseAfterBytes`], and the TLS upgrade.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::auth;
use super::{
    Broken, CLOSE_TIMEOUT, Greeted, HANDSHAKE_TIMEOUT, MAX_COMMAND_LINE, MAX_QUEUED_OUTPUT, READ_CHUNK, Read,
    Session, WRITE_TIMEOUT,
};
use crate::testing::stream::Conn;

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    /// Read once from the transport into `inbuf`, honouring the byte budget and the
    /// idle timers.
    pub(super) async fn read_more(&mut self) -> Read {
        if !self.flush_out().await {
            return Read::Eof;
        }
        let buf = &mut self.readbuf;
        let want = self.budget.map_or(READ_CHUNK, |b| b.min(READ_CHUNK));
        if want == 0 {
            return Read::Eof;
        }
        let idle = match (self.unsolicited, self.shared.config.idle_timeout) {
            (Some((a, send_421)), Some(b)) if a < b => Some((a, send_421)),
            (_, Some(b)) => Some((b, true)),
            (a, None) => a,
        };
        let result = match idle {
            Some((limit, send_421)) => {
                match tokio::time::timeout(limit, self.conn.read(&mut buf[..want])).await {
                    Ok(r) => r,
                    Err(_) => return Read::Idle(send_421),
                }
            }
            None => self.conn.read(&mut buf[..want]).await,
        };
        match result {
            Ok(0) | Err(_) => Read::Eof,
            Ok(n) => {
                let got = &buf[..n];
                self.shared.recorder.received(self.id, got);
                self.read_total += n;
                self.inbuf.extend_from_slice(got);
                if let Some(b) = self.budget.as_mut() {
                    *b -= n;
                }
                self.unsolicited = None;
                Read::Data
            }
        }
    }

    /// The next complete line from `inbuf` without its line ending; `Some(None)` for a line
    /// that was too long (already dropped). `secret`: the line is an AUTH response. A
    /// dropped line that was a secret (or an `AUTH` command with an initial response) is
    /// still redacted in the record of received bytes, piece by piece as it is dropped.
    pub(super) fn take_line(&mut self, secret: bool) -> Option<Option<Vec<u8>>> {
        let Some(lf) = memchr::memchr(b'\n', &self.inbuf) else {
            if self.inbuf.len() > MAX_COMMAND_LINE {
                if !self.discarding {
                    self.discard_secret = secret || auth::initial_response_span(&self.inbuf).is_some();
                }
                self.discarding = true;
                if self.discard_secret {
                    let start = self.read_total - self.inbuf.len();
                    self.shared.recorder.secret(self.id, start..self.read_total);
                }
                self.inbuf.clear();
            }
            return None;
        };
        self.line_at = self.read_total - self.inbuf.len();
        let mut line: Vec<u8> = self.inbuf.drain(..=lf).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        } else {
            // RFC 5321 2.3.8: lines end in CRLF; a bare LF is a client bug worth seeing.
            self.violation("command line ended with a bare LF");
        }
        let dropped = std::mem::take(&mut self.discarding);
        if dropped || line.len() > MAX_COMMAND_LINE {
            let hidden = if dropped {
                std::mem::take(&mut self.discard_secret)
            } else {
                secret || auth::initial_response_span(&line).is_some()
            };
            if hidden {
                self.shared.recorder.secret(self.id, self.line_at..self.line_at + line.len());
            }
            return Some(None);
        }
        Some(Some(line))
    }

    /// Start counting bytes for [`Fault::CloseAfterBytes`]; bytes already buffered beyond
    /// the current command count against the budget.
    pub(super) fn set_budget(&mut self, n: usize) {
        if self.inbuf.len() >= n {
            // Bytes past the budget count as never read, in the record too.
            self.shared.recorder.unreceive(self.id, self.inbuf.len() - n);
            self.read_total -= self.inbuf.len() - n;
            self.inbuf.truncate(n);
            self.budget = Some(0);
        } else {
            self.budget = Some(n - self.inbuf.len());
        }
    }

    /// Queue `bytes` (or, with `trickle`, write them one byte at a time now). False if the
    /// client is known to be gone. [`WRITE_TIMEOUT`] bounds each write that makes no
    /// progress, not the pauses of a trickle, so a slow-loris reply lasts as long as asked.
    pub(super) async fn write(&mut self, bytes: Vec<u8>, trickle: Option<Duration>) -> bool {
        self.shared.recorder.sent(self.id, &bytes);
        let Some(pause) = trickle else {
            self.outbuf.extend_from_slice(&bytes);
            return self.outbuf.len() < MAX_QUEUED_OUTPUT || self.flush_out().await;
        };
        if !self.flush_out().await {
            return false;
        }
        let conn = &mut self.conn;
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            let step = tokio::time::timeout(WRITE_TIMEOUT, async {
                conn.write_all(std::slice::from_ref(b)).await?;
                conn.flush().await
            })
            .await;
            if !matches!(step, Ok(Ok(()))) {
                return false;
            }
        }
        true
    }

    /// Write the queued replies. False if the client is gone or stopped reading.
    pub(super) async fn flush_out(&mut self) -> bool {
        if self.outbuf.is_empty() {
            return true;
        }
        let bytes = std::mem::take(&mut self.outbuf);
        let conn = &mut self.conn;
        let result = tokio::time::timeout(WRITE_TIMEOUT, async move {
            conn.write_all(&bytes).await?;
            conn.flush().await
        })
        .await;
        matches!(result, Ok(Ok(())))
    }

    /// Upgrade to TLS. RFC 3207 4.2: "The server MUST discard any knowledge obtained from
    /// the client, such as the argument to the EHLO command, which was not obtained from
    /// the TLS negotiation itself."
    pub(super) async fn handshake(&mut self) -> bool {
        // The 220 (and any bytes a fault added to it) go out before the handshake starts.
        if !self.flush_out().await {
            return false;
        }
        if !self.inbuf.is_empty() {
            // Plaintext pipelined after STARTTLS must never be taken as protected input.
            self.violation(&format!("{} plaintext bytes after STARTTLS discarded", self.inbuf.len()));
            self.inbuf.clear();
        }
        let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            self.broken(Broken::NotPlaintext);
            return false;
        };
        let accept = self.shared.acceptor.accept(stream).into_fallible();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(tls)) => {
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let client_cert =
                    tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
                let with_cert = if client_cert.is_some() { ", client certificate" } else { "" };
                self.note(format!("TLS handshake complete (SNI {sni:?}{with_cert})"));
                self.shared.recorder.tls_server_name(self.id, sni);
                self.shared.recorder.tls_client_certificate(self.id, client_cert);
                self.conn = Conn::Tls(Box::new(tls));
                self.tls = true;
                self.greeted = Greeted::No;
                self.auth_user = None;
                self.auth_mechanism = None;
                self.txn = None;
                true
            }
            Ok(Err((e, mut io))) => {
                self.note(format!("TLS handshake failed: {e}"));
                // The alert is sent; close gently so it is read. With TLS 1.3 the client may
                // already have sent application data (a refused client certificate shows
                // only after its handshake is done), and closing with that unread would
                // reset the connection and could destroy the alert before it is read.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                    io.shutdown().await?;
                    let mut sink = [0u8; 4096];
                    while io.read(&mut sink).await? > 0 {}
                    Ok::<(), std::io::Error>(())
                })
                .await;
                false
            }
            Err(_) => {
                self.note("TLS handshake timed out");
                false
            }
        }
    }
}
