//! Writes each message into a directory: `<name>.eml` (the message as it would go on the
//! wire, before dot-stuffing) and `<name>.json` (its envelope), for development setups
//! and for inspecting what a service would have sent.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{BlockingTransport, Outgoing, SendFuture, Transport, all_accepted, offload};
use crate::proto::error::Error;
use crate::proto::reply::Reply;
use crate::proto::session::SendReport;

/// Messages written by this process, for names that sort in sending order even within
/// one microsecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// One `.eml` plus one envelope `.json` per message in a directory, each written to a
/// temporary name and renamed into place, so a reader never sees half a file.
///
/// Names are `<UTC microseconds>-<process id>-<counter>-<random>`: they sort in the order
/// the messages were sent and never collide, across threads and processes. The `.json`
/// is renamed into place before the `.eml`, so a visible `.eml` always has its envelope.
#[derive(Clone, Debug)]
pub struct FileTransport {
    dir: Arc<PathBuf>,
}

impl FileTransport {
    /// Writes into `dir`, which must exist.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Arc::new(dir.into()) }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, message: &Outgoing) -> Result<SendReport, Error> {
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        let name = format!("{micros:016}-{}-{count:06}-{:016x}", std::process::id(), random(count));
        write_atomically(&self.dir, &format!("{name}.json"), envelope_json(message).as_bytes())?;
        write_atomically(&self.dir, &format!("{name}.eml"), &message.message)?;
        let reply = Reply::single(250, &format!("2.0.0 Ok: written as {name}.eml"));
        Ok(all_accepted(count, message, reply))
    }
}

/// 64 bits no other writer will pick: std's `RandomState` is seeded from the OS per
/// process, and the counter makes it differ per message.
fn random(count: u64) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(count);
    hasher.finish()
}

/// Writes `name` in `dir` through a temporary file and a rename (atomic on POSIX within
/// one file system), flushed to disk first so a crash leaves the old state or the new.
fn write_atomically(dir: &Path, name: &str, data: &[u8]) -> Result<(), Error> {
    let temp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&temp, dir.join(name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(Error::from)
}

/// `{"from": .., "to": [..], "smtputf8": .., "size": ..}`: the envelope, for a reader that
/// wants to replay the message.
fn envelope_json(message: &Outgoing) -> String {
    let from = message.envelope.from().map_or_else(String::new, |a| a.to_string());
    let to: Vec<String> = message.envelope.to().iter().map(|a| json_string(a.as_str())).collect();
    let smtputf8 = message.options.smtputf8 || message.envelope.needs_smtputf8();
    format!(
        "{{\"from\":{},\"to\":[{}],\"smtputf8\":{smtputf8},\"size\":{}}}\n",
        json_string(&from),
        to.join(","),
        message.message.len()
    )
}

/// A JSON string literal (RFC 8259 section 7: quotation mark, reverse solidus and the
/// control characters must be escaped).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Transport for FileTransport {
    fn send(&self, message: Outgoing) -> SendFuture<'_> {
        let this = self.clone();
        offload(move || this.write(&message))
    }
}

impl BlockingTransport for FileTransport {
    fn send(&self, message: Outgoing) -> Result<SendReport, Error> {
        self.write(&message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(json_string("x\u{1}y"), "\"x\\u0001y\"");
        assert_eq!(json_string("grüße"), "\"grüße\"");
    }

    #[test]
    fn random_parts_differ_per_message() {
        assert_ne!(random(1), random(2));
    }
}
