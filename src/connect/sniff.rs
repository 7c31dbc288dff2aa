//! Connects a [`Connector`] and explains a port spoken in the other TLS mode: keeps the
//! first octets the server sent, probes a silent server with a ClientHello on a second
//! connection, and adds the port-number hint to a failure on 465 or 587/25.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, sleep, timeout_at};

use super::error::{Evidence, TlsModeHint, WrongTlsMode};
use super::hint::{self, PREFIX_LEN, SILENCE_PROBE_AFTER};
use super::{NetOptions, dial};
use crate::client::{Client, Connector};
use crate::proto::error::Error;
use crate::proto::session::TlsPolicy;

/// The first octets read from a stream, shared with whoever judges a failure.
#[derive(Clone, Default)]
struct Prefix(Arc<Mutex<Vec<u8>>>);

impl Prefix {
    fn get(&self) -> Vec<u8> {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// A stream that keeps its first [`PREFIX_LEN`] octets read, then only forwards.
struct Recording<S> {
    inner: S,
    prefix: Prefix,
    full: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.full && polled.is_ready() {
            let fresh = buf.filled().get(before..).unwrap_or_default();
            let full = self.prefix.0.lock().map(|mut prefix| {
                let room = PREFIX_LEN.saturating_sub(prefix.len());
                prefix.extend_from_slice(fresh.get(..room.min(fresh.len())).unwrap_or_default());
                prefix.len() >= PREFIX_LEN
            });
            self.full = full.unwrap_or(true);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `Connector::connect`: dial, run the handshake, and explain a TLS-mode mix-up.
pub(crate) async fn connect(connector: &Connector, net: &NetOptions) -> Result<Client, Error> {
    let implicit = connector.session_config().tls == TlsPolicy::Implicit;
    let result = connect_and_sniff(connector, net, implicit).await;
    result.map_err(|e| hint::with_port_hint(e, connector.port(), implicit))
}

async fn connect_and_sniff(connector: &Connector, net: &NetOptions, implicit: bool) -> Result<Client, Error> {
    let deadline = Instant::now() + connector.session_config().timeouts.connect;
    let tcp = dial::dial(net, connector.host(), connector.port(), deadline).await?;
    let local = tcp.local_addr().ok().map(|a| a.ip());
    let prefix = Prefix::default();
    let stream = Recording { inner: tcp, prefix: prefix.clone(), full: false };
    let handshake = connector.connect_dialed(stream, local);
    let outcome = if implicit {
        handshake.await
    } else {
        tokio::select! {
            r = handshake => r,
            proven = probe_silence(connector, net, &prefix) => Err(proven),
        }
    };
    outcome.map_err(|e| match hint::classify(implicit, &prefix.get()) {
        Some((hint, evidence)) => WrongTlsMode { hint, evidence, cause: Some(Box::new(e)) }.into(),
        None => e,
    })
}

/// Resolves only when a ClientHello on a second connection, sent after the first stayed
/// silent for [`SILENCE_PROBE_AFTER`], was answered with a TLS record; otherwise never
/// (the handshake's own deadlines then decide).
async fn probe_silence(connector: &Connector, net: &NetOptions, prefix: &Prefix) -> Error {
    sleep(SILENCE_PROBE_AFTER).await;
    if prefix.get().is_empty() && tls_answers(connector, net).await {
        return WrongTlsMode { hint: TlsModeHint::UseImplicitTls, evidence: Evidence::TlsProbe, cause: None }
            .into();
    }
    std::future::pending().await
}

/// Whether the server answers a ClientHello with a TLS record, within a few seconds.
async fn tls_answers(connector: &Connector, net: &NetOptions) -> bool {
    let Some(hello) = hint::client_hello(connector.host()) else { return false };
    let deadline = Instant::now() + std::time::Duration::from_secs(3);
    let Ok(mut tcp) = dial::dial(net, connector.host(), connector.port(), deadline).await else {
        return false;
    };
    if !matches!(timeout_at(deadline, tcp.write_all(&hello)).await, Ok(Ok(()))) {
        return false;
    }
    let mut first = [0u8; 3];
    matches!(timeout_at(deadline, tcp.read_exact(&mut first)).await, Ok(Ok(_)))
        && hint::looks_like_tls(&first)
}
