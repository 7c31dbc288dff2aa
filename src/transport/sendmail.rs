//! Hands messages to a sendmail-compatible program (`sendmail -i -f <from> -- <rcpt>...`)
//! when a local MTA owns delivery. No shell is involved: the program gets its arguments
//! as an argument vector.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::{BlockingTransport, Outgoing, SendFuture, Transport, TransportError, all_accepted, offload};
use crate::proto::error::Error;
use crate::proto::reply::Reply;
use crate::proto::session::SendReport;

/// Most of the program's stderr kept for the error.
const STDERR_CAP: usize = 8 * 1024;
/// How often a running program is checked for its exit.
const POLL: Duration = Duration::from_millis(5);

/// Pipes each message to a sendmail-compatible program.
///
/// The arguments are `-i` (a line with a single dot does not end the message), `-f
/// <sender>` (`<>` for the null sender), any extra arguments, then `--` and the
/// recipients. An address starting with `-` is refused before the program runs, so no
/// address can be taken for an option even by a program that ignores `--`. The program
/// is killed when it does not finish within the deadline (default 60 s).
#[derive(Clone, Debug)]
pub struct SendmailTransport {
    inner: Arc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Default for SendmailTransport {
    fn default() -> Self {
        Self::new("/usr/sbin/sendmail")
    }
}

impl SendmailTransport {
    /// Runs `program` (default `/usr/sbin/sendmail`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let settings = Settings {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
        };
        Self { inner: Arc::new(settings) }
    }

    /// An extra argument before `--` (Postfix: `-C /etc/postfix-other` picks an instance).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        Arc::make_mut(&mut self.inner).args.push(arg.into());
        self
    }

    /// An environment variable for the program (Postfix: `MAIL_CONFIG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        Arc::make_mut(&mut self.inner).env.push((key.into(), value.into()));
        self
    }

    /// The deadline for one message, after which the program is killed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.inner).timeout = timeout;
        self
    }

    /// The program run.
    pub fn program(&self) -> &std::path::Path {
        &self.inner.program
    }

    fn program_name(&self) -> String {
        self.inner.program.display().to_string()
    }

    /// The argument vector for `message`, or the address that could pass for an option.
    fn argv(&self, message: &Outgoing) -> Result<Vec<OsString>, TransportError> {
        let from = message.envelope.from().map_or_else(|| "<>".to_string(), |a| a.to_string());
        let mut argv: Vec<OsString> = vec!["-i".into(), "-f".into(), checked(from)?.into()];
        argv.extend(self.inner.args.iter().cloned());
        argv.push("--".into());
        for rcpt in message.envelope.to() {
            argv.push(checked(rcpt.to_string())?.into());
        }
        Ok(argv)
    }

    fn run(&self, message: &Outgoing) -> Result<SendReport, Error> {
        let argv = self.argv(message).map_err(Error::Transport)?;
        let spawn_error = |e: std::io::Error| {
            Error::Transport(TransportError::Spawn { program: self.program_name(), reason: e.to_string() })
        };
        let mut child = Command::new(&self.inner.program)
            .args(&argv)
            .envs(self.inner.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        // stdin and stderr on their own threads: a program that writes much to stderr
        // before reading all of its input must not deadlock against us.
        let stdin = child.stdin.take().map(|mut pipe| {
            let body = message.message.clone();
            thread::spawn(move || pipe.write_all(&body))
        });
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = child.stderr.take() {
            thread::spawn(move || tx.send(read_capped(pipe)));
        }
        let status = wait_until(&mut child, Instant::now() + self.inner.timeout);
        // A child the program left behind may hold stderr open: not waited for long. The
        // threads end when the pipes close; they are never joined past the deadline.
        let stderr = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        // A program that exits without reading everything breaks the pipe: its exit
        // status says more than the write error, so that error is not reported.
        drop(stdin);
        match status {
            None => Err(Error::Transport(TransportError::Timeout {
                program: self.program_name(),
                after: self.inner.timeout,
            })),
            Some(Err(e)) => Err(Error::Io(Arc::new(e))),
            Some(Ok(status)) if status.success() => {
                let reply = Reply::single(250, &format!("2.0.0 Ok: accepted by {}", self.program_name()));
                Ok(all_accepted(0, message, reply))
            }
            Some(Ok(status)) => Err(Error::Transport(TransportError::Exit {
                program: self.program_name(),
                status: status.code(),
                stderr,
            })),
        }
    }
}

/// The address itself, unless it starts with `-`.
fn checked(address: String) -> Result<String, TransportError> {
    if address.starts_with('-') { Err(TransportError::OptionLikeAddress(address)) } else { Ok(address) }
}

/// Waits for the child until `deadline`; past it, kills it and returns `None`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::io::Result<ExitStatus>> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(Ok(status)),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                // Reaped, so no zombie is left behind.
                let _ = child.wait();
                return None;
            }
            Ok(None) => thread::sleep(POLL),
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Up to [`STDERR_CAP`] octets of stderr; the rest is read and dropped so the program
/// never blocks on a full pipe.
fn read_capped(mut pipe: impl Read) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = STDERR_CAP.saturating_sub(kept.len());
        kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
    }
    String::from_utf8_lossy(&kept).into_owned()
}

impl Transport for SendmailTransport {
    fn send(&self, message: Outgoing) -> SendFuture<'_> {
        let this = self.clone();
        offload(move || this.run(&message))
    }
}

impl BlockingTransport for SendmailTransport {
    fn send(&self, message: Outgoing) -> Result<SendReport, Error> {
        self.run(&message)
    }
}
