//! Checks of the interop support itself: the maildir readback format, and that the
//! servers `scripts/test.sh` announces in the environment are up and deliver mail
//! byte-exact. Uses a minimal std-only SMTP exchange, not the client under test.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::interop::{self, Delivered, Server};

/// A unique token for this process and call, for markers and temp names.
fn unique(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// A scratch maildir under the system temp dir, removed on drop.
struct TempMaildir(PathBuf);

impl TempMaildir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(unique("smtpkit-maildir"));
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(path.join(sub)).expect("create temp maildir");
        }
        TempMaildir(path)
    }

    fn write(&self, id: &str, envelope: &str, data: &[u8]) {
        let new = self.0.join("new");
        fs::write(new.join(format!("{id}.eml")), data).expect("write .eml");
        fs::write(new.join(format!("{id}.envelope")), envelope).expect("write .envelope");
    }
}

impl Drop for TempMaildir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fake_server(maildir: PathBuf) -> Server {
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("literal address");
    Server {
        name: "fake",
        starttls: unused,
        implicit_tls: unused,
        submission: None,
        user: String::new(),
        password: String::new(),
        maildir,
        ca_pem_path: PathBuf::new(),
        untrusted_tls: None,
        lmtp: None,
    }
}

#[test]
fn maildir_readback_parses_envelope_and_filters_by_marker() {
    let dir = TempMaildir::new();
    let marker = unique("marker");
    let wanted = format!("Subject: {marker}\r\n\r\n.body\r\n").into_bytes();
    // Names sort in delivery order; the null sender is an empty first line.
    dir.write("1000.a", "\nfirst@example.test\nsecond@example.com\n", &wanted);
    dir.write("1001.b", "other@example.test\nx@example.test\n", b"Subject: unrelated\r\n\r\n");
    dir.write("1002.c", "late@example.test\ny@example.test\n", &wanted);
    // A message still being written (no .envelope yet) is not reported.
    fs::write(dir.0.join("new/1003.d.eml"), &wanted).expect("write orphan .eml");

    let server = fake_server(dir.0.clone());
    let found = interop::wait_for_delivery(&server, &marker, 2, Duration::from_secs(5));
    assert_eq!(
        found,
        vec![
            Delivered {
                sender: String::new(),
                recipients: vec!["first@example.test".into(), "second@example.com".into()],
                data: wanted.clone(),
            },
            Delivered {
                sender: "late@example.test".into(),
                recipients: vec!["y@example.test".into()],
                data: wanted
            },
        ]
    );
}

#[test]
fn wait_for_recipients_waits_until_every_recipient_is_delivered() {
    let dir = TempMaildir::new();
    let marker = unique("marker");
    let data = format!("Subject: {marker}\r\n\r\nbody\r\n").into_bytes();
    dir.write("2000.a", "s@example.test\na@example.test\n", &data);
    let server = fake_server(dir.0.clone());

    // Only one of two recipients is there: the wait runs into its deadline.
    let start = Instant::now();
    let found = interop::wait_for_recipients(
        &server,
        &marker,
        &["a@example.test", "b@example.com"],
        Duration::from_millis(200),
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(found.len(), 1);

    // A second delivery file for the same marker completes the set.
    dir.write("2001.b", "s@example.test\nb@example.com\n", &data);
    let found = interop::wait_for_recipients(
        &server,
        &marker,
        &["a@example.test", "b@example.com"],
        Duration::from_secs(5),
    );
    let got: Vec<&str> = found.iter().flat_map(|d| d.recipients.iter().map(String::as_str)).collect();
    assert_eq!(got, ["a@example.test", "b@example.com"]);
}

#[test]
fn maildir_readback_gives_up_at_the_deadline() {
    let dir = TempMaildir::new();
    let server = fake_server(dir.0.clone());
    let start = Instant::now();
    let found = interop::wait_for_delivery(&server, "never-delivered", 1, Duration::from_millis(200));
    let waited = start.elapsed();
    assert!(found.is_empty());
    assert!(waited >= Duration::from_millis(200), "returned early after {waited:?}");
    assert!(waited < Duration::from_secs(3), "overran the deadline: {waited:?}");
}

/// One SMTP command at a time over plain TCP (no pipelining: Postfix is strict).
struct Dialogue {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Dialogue {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set read timeout");
        stream.set_write_timeout(Some(Duration::from_secs(10))).expect("set write timeout");
        let writer = stream.try_clone().expect("clone stream");
        Dialogue { reader: BufReader::new(stream), writer }
    }

    /// Reads one (possibly multi-line) reply; returns its code and the joined lines.
    fn reply(&mut self) -> (u16, String) {
        let mut all = String::new();
        for _ in 0..100 {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read reply line");
            assert!(line.ends_with("\r\n"), "truncated reply line {line:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line[..3].parse().unwrap_or_else(|_| panic!("bad reply {line:?}"));
                return (code, all);
            }
        }
        panic!("reply longer than 100 lines: {all:?}");
    }

    fn command(&mut self, line: &str, want: u16) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).expect("send command");
        let (code, text) = self.reply();
        assert_eq!(code, want, "{line:?} answered {text:?}");
        text
    }
}

/// Sends `data` (CRLF lines) to `rcpts` on the plain listener and returns the banner.
fn send_plain(addr: SocketAddr, sender: &str, rcpts: &[&str], data: &[u8]) -> String {
    let mut d = Dialogue::connect(addr);
    let (code, banner) = d.reply();
    assert_eq!(code, 220, "banner {banner:?}");
    let ehlo = d.command("EHLO smoke.example.test", 250);
    assert!(ehlo.contains("STARTTLS"), "EHLO without STARTTLS: {ehlo:?}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo:?}");
    d.command(&format!("MAIL FROM:<{sender}>"), 250);
    for rcpt in rcpts {
        d.command(&format!("RCPT TO:<{rcpt}>"), 250);
    }
    d.command("DATA", 354);
    let mut stuffed = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    stuffed.extend_from_slice(b".\r\n");
    d.writer.write_all(&stuffed).expect("send data");
    let (code, text) = d.reply();
    assert_eq!(code, 250, "end of data answered {text:?}");
    d.command("QUIT", 221);
    banner
}

fn check_server(server: &Server) {
    let ca = fs::read_to_string(&server.ca_pem_path).expect("read SMTPKIT_CA_FILE");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "CA file is no PEM certificate");
    assert!(!server.password.is_empty() && server.user.contains('@'));

    let marker = unique("rust-smoke");
    let data = format!(
        "Message-ID: <{marker}@smoke.example.test>\r\nSubject: smoke\r\n\r\n.dot\r\n..dots\r\n\r\nend\r\n"
    )
    .into_bytes();
    let rcpts = ["one@example.test", "two@example.com"];
    send_plain(server.starttls, "smoke@example.test", &rcpts, &data);

    let found = interop::wait_for_recipients(server, &marker, &rcpts, Duration::from_secs(10));
    // One delivery per message on both servers (see support::interop).
    assert_eq!(found.len(), 1, "{}: deliveries {found:?}", server.name);
    let mut got_rcpts: Vec<&str> =
        found.iter().flat_map(|d| d.recipients.iter().map(String::as_str)).collect();
    got_rcpts.sort_unstable();
    assert_eq!(got_rcpts, rcpts, "{}", server.name);
    for d in &found {
        assert_eq!(d.sender, "smoke@example.test", "{}", server.name);
        assert_eq!(d.data, data, "{}: readback not byte-exact", server.name);
    }
}

#[test]
fn postfix_from_env_is_up_and_delivers_byte_exact() {
    let Some(server) = interop::postfix_or_skip("postfix_from_env_is_up_and_delivers_byte_exact") else {
        return;
    };
    assert!(server.submission.is_some() && server.untrusted_tls.is_some() && server.lmtp.is_none());
    check_server(&server);
}

#[test]
fn aiosmtpd_from_env_is_up_and_delivers_byte_exact() {
    let Some(server) = interop::aiosmtpd_or_skip("aiosmtpd_from_env_is_up_and_delivers_byte_exact") else {
        return;
    };
    assert!(server.lmtp.is_some() && server.submission.is_none() && server.untrusted_tls.is_none());
    check_server(&server);
}
