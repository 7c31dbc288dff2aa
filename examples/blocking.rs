//! The sans-IO core driven over a blocking `std::net::TcpStream`: no tokio, no async, no
//! feature needed. It proves the core does no I/O of its own: this loop is the whole
//! driver. Plain SMTP only (a local relay or a test server).
//!
//! ```text
//! SMTP_ADDR=127.0.0.1:2525 MAIL_FROM=a@example.com MAIL_TO=b@example.com \
//!     cargo run --example blocking --no-default-features
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use smtpkit::proto::session::{Event, Session, SessionConfig, TlsPolicy, Want};
use smtpkit::{EhloName, Envelope, MessageOptions};

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let addr = var("SMTP_ADDR", "127.0.0.1:2525");
    let from = var("MAIL_FROM", "sender@example.com");
    let to = var("MAIL_TO", "recipient@example.com");

    let mut stream = TcpStream::connect(&addr)?;
    // The core hands over whole flights (body + dot + next commands): no Nagle delay.
    stream.set_nodelay(true)?;
    let config = SessionConfig {
        ehlo_name: EhloName::from_ip(stream.local_addr()?.ip()),
        tls: TlsPolicy::Disabled,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, Instant::now());
    let body = format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: smtpkit blocking example\r\n\r\nHello.\r\n");
    session.send_message(Envelope::parse(&from, &[&to])?, body.into(), MessageOptions::default())?;

    let mut sent = false;
    let mut buf = vec![0; 16 * 1024];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            match stream.write_all(&bytes) {
                Ok(()) => session.wrote(bytes.len(), Instant::now()),
                Err(e) => session.handle_error(e.into()),
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Message { result: Ok(report), .. } => {
                    println!("sent: {}", report.reply);
                    sent = true;
                }
                Event::Message { result: Err(e), .. } => eprintln!("not sent: {e}"),
                Event::Closed(Some(e)) => eprintln!("session ended: {e}"),
                _ => {}
            }
        }
        match session.wants() {
            // The message is done either way: say goodbye.
            Want::Idle => {
                session.quit()?;
            }
            Want::Closed => return Ok(sent),
            Want::StartTls => return Err("STARTTLS is not supported by this example".into()),
            Want::Read => {
                // The core owns the deadlines; the socket timeout just wakes us for them.
                let wait = session.poll_timeout().map(|d| d.saturating_duration_since(Instant::now()));
                if wait == Some(Duration::ZERO) {
                    session.handle_timeout(Instant::now());
                    continue;
                }
                stream.set_read_timeout(wait)?;
                match stream.read(&mut buf) {
                    Ok(0) => session.handle_eof(),
                    Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        session.handle_timeout(Instant::now())
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => session.handle_error(e.into()),
                }
            }
        }
    }
}
