//! An SMTP server that runs inside your test process (feature `testing`).
//!
//! [`TestServer`] listens on loopback (or hands out in-memory connections), speaks ESMTP
//! with the extensions you switch on, and records everything: the messages it accepted
//! ([`ReceivedMessage`]), the exact bytes of every connection and a `C:`/`S:` transcript.
//! Use it to test code that sends mail, without a real mail server and without mocks.
//!
//! What it implements:
//!
//! - EHLO/HELO, MAIL, RCPT, DATA (dot-unstuffing, only `CRLF.CRLF` ends the data), BDAT
//!   (RFC 3030), RSET, NOOP, VRFY, HELP, QUIT, with `503` for commands out of sequence and
//!   pipelined input answered in order, one reply per command;
//! - SIZE, 8BITMIME, SMTPUTF8, DSN, ENHANCEDSTATUSCODES, PIPELINING, CHUNKING, plus any
//!   capability line you add; MAIL/RCPT parameters are accepted only when advertised;
//! - STARTTLS and implicit TLS with certificates generated at start-up from a fresh CA
//!   ([`TestServer::ca_pem`]), including deliberately bad ones ([`CertKind`]);
//! - AUTH PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256 against configured users, OAUTHBEARER
//!   and XOAUTH2 against configured bearer tokens, with the advertised list of your choosing
//!   and a record of which mechanism authenticated each connection
//!   ([`TestServer::authentications`]);
//! - mutual TLS: a client CA and a client identity to present
//!   ([`TestServerBuilder::require_client_cert`]);
//! - fault injection at any step ([`FaultRule`], [`Step`], [`Fault`]): odd replies,
//!   malformed bytes, closes, delays, trickled replies, silence, unsolicited 421, a server
//!   that stops reading, and the ambiguous "committed but never acknowledged" end of data.
//!
//! Timers use `tokio::time`, so tests with a paused clock work; use
//! [`TestServer::connect_in_memory`] there, since real sockets and a paused clock mix badly.
//!
//! ```
//! use std::time::Duration;
//! use smtpkit::testing::{Fault, Step, TestServer};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = TestServer::builder()
//!     .reject_recipient("nobody@example.com", 550, "5.1.1 No such user")
//!     .on(Step::Rcpt(2), Fault::Reply { code: 450, text: "4.2.0 Mailbox busy".into() })
//!     .start()
//!     .await?;
//! let tcp = tokio::net::TcpStream::connect(server.addr()).await?;
//! let (read, mut write) = tcp.into_split();
//! let mut replies = BufReader::new(read).lines();
//! let mut last_reply = async || -> std::io::Result<String> {
//!     loop {
//!         let line = replies.next_line().await?.unwrap_or_default();
//!         if line.as_bytes().get(3) != Some(&b'-') {
//!             return Ok(line);
//!         }
//!     }
//! };
//! assert!(last_reply().await?.starts_with("220 "));
//! write.write_all(b"EHLO client.example\r\nMAIL FROM:<me@example.com>\r\n").await?;
//! write.write_all(b"RCPT TO:<a@example.com>\r\nRCPT TO:<nobody@example.com>\r\n").await?;
//! write.write_all(b"RCPT TO:<busy@example.com>\r\nDATA\r\n").await?;
//! for expected in ["250 ", "250 ", "250 ", "550 ", "450 ", "354 "] {
//!     assert!(last_reply().await?.starts_with(expected));
//! }
//! write.write_all(b"Subject: test\r\n\r\nHello\r\n.\r\nQUIT\r\n").await?;
//! assert!(last_reply().await?.starts_with("250 "));
//!
//! let messages = server.wait_for_messages(1, Duration::from_secs(5)).await;
//! assert_eq!(messages[0].rcpt_to, ["a@example.com"]);
//! assert_eq!(messages[0].header("subject").as_deref(), Some("test"));
//! # Ok(()) }
//! ```

mod builder;
mod command;
mod data;
mod fault;
mod record;
mod reply;
mod sasl;
mod server;
mod session;
mod stream;
mod tls;
mod view;

pub use builder::TestServerBuilder;
pub use fault::{Fault, FaultRule, FiredFault, Step};
pub use record::{Authentication, ReceivedMessage};
pub use server::TestServer;
pub use tls::CertKind;
pub use view::{Attachment, Mailbox};
