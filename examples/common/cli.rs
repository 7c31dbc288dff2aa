//! The command-line contract shared by `examples/send` and `examples/send_blocking`: the
//! environment variables, the built-in message and the failure type with its exit code.

use std::time::{SystemTime, UNIX_EPOCH};

use smtpkit::{ClientBuilder, Envelope, Error, MessageOptions};
use smtpkit::{EnvId, Notify, Ret};

/// An error line for stderr and the exit code that goes with it.
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The message after `error: `.
    pub message: String,
}

/// A failure with exit code `code`.
pub fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

/// The envelope (`MAIL_FROM`, `MAIL_TO`; defaults only for the embedded server) and the
/// message (the file named by the first argument, or the built-in one).
pub fn inputs(embedded: bool) -> Result<(Envelope, Vec<u8>), Failure> {
    let from = env_or("MAIL_FROM", embedded.then_some("sender@example.com"))?;
    let to = env_or("MAIL_TO", embedded.then_some("rcpt@example.com"))?;
    let to: Vec<&str> = to.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let envelope = Envelope::parse(&from, &to).map_err(|e| fail(2, format!("bad envelope: {e}")))?;
    let message = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(&path)
            .map_err(|e| fail(2, format!("cannot read {}: {e}", path.to_string_lossy())))?,
        None => builtin_message(&from, &to),
    };
    Ok((envelope, message))
}

/// `SMTP_CA_FILE`, the embedded server's CA, `SMTP_PROXY` and `SMTP_TRACE=1` applied to an
/// SMTP builder.
pub fn configure(mut builder: ClientBuilder, embedded_ca: Option<&str>) -> Result<ClientBuilder, Error> {
    if let Some(proxy) = std::env::var("SMTP_PROXY").ok().filter(|p| !p.is_empty()) {
        builder = builder.proxy(smtpkit::connect::Proxy::parse(&proxy)?);
    }
    if let Some(path) = std::env::var("SMTP_CA_FILE").ok().filter(|p| !p.is_empty()) {
        builder = builder.add_root_pem_file(&path)?;
    }
    if let Some(pem) = embedded_ca {
        builder = builder.add_root_pem(pem.as_bytes())?;
    }
    if std::env::var("SMTP_TRACE").is_ok_and(|v| v == "1") {
        builder = builder.trace(|line| eprintln!("{line}"));
    }
    Ok(builder)
}

/// `MAIL_DSN_NOTIFY`, `MAIL_DSN_RET`, `MAIL_DSN_ENVID` as options.
pub fn dsn_options() -> Result<MessageOptions, Failure> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut options = MessageOptions::default();
    if let Some(notify) = var("MAIL_DSN_NOTIFY") {
        options.notify = Some(Notify::parse(&notify).map_err(|e| fail(2, format!("MAIL_DSN_NOTIFY: {e}")))?);
    }
    if let Some(ret) = var("MAIL_DSN_RET") {
        options.ret = Some(match ret.to_ascii_uppercase().as_str() {
            "FULL" => Ret::Full,
            "HDRS" => Ret::Hdrs,
            _ => return Err(fail(2, "MAIL_DSN_RET must be FULL or HDRS")),
        });
    }
    if let Some(envid) = var("MAIL_DSN_ENVID") {
        options.envid = Some(EnvId::new(&envid).map_err(|e| fail(2, format!("MAIL_DSN_ENVID: {e}")))?);
    }
    Ok(options)
}

/// The variable `name`, else `default`, else a usage error.
fn env_or(name: &str, default: Option<&str>) -> Result<String, Failure> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        Some(v) => Ok(v),
        None => {
            default.map(str::to_string).ok_or_else(|| fail(2, format!("{name} is required with SMTP_URL")))
        }
    }
}

/// The small text message sent without a file argument.
fn builtin_message(from: &str, to: &[&str]) -> Vec<u8> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!(
        "From: <{from}>\r\nTo: {}\r\nSubject: smtpkit test message\r\nDate: {}\r\n\
         Message-ID: <{secs}.{}@smtpkit.invalid>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n\
         Hello from smtpkit.\r\n.This line starts with a dot and is dot-stuffed on the wire.\r\n",
        to.iter().map(|t| format!("<{t}>")).collect::<Vec<_>>().join(", "),
        rfc5322_date(secs),
        std::process::id(),
    )
    .into_bytes()
}

/// `Sun, 22 Nov 2026 04:19:30 +0000` from Unix seconds (UTC).
fn rfc5322_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        [(month - 1) as usize];
    format!("{weekday}, {day} {month} {year} {:02}:{:02}:{:02} +0000", rem / 3600, rem % 3600 / 60, rem % 60)
}
