//! Choosing a transport by URL, so a service configures mail with one variable:
//! `smtp://`, `smtps://`, `lmtp://` (see [`SmtpUrl`](crate::SmtpUrl)), `file:///dir`,
//! `sendmail:` or `sendmail:///path/to/sendmail`, and `stub:`.

use std::path::PathBuf;

use super::{BlockingTransport, FileTransport, SendmailTransport, StubTransport};
use crate::proto::error::Error;

/// A parsed transport URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportUrl {
    /// `smtp://`, `smtps://` or `lmtp://`: the URL as given, for [`SmtpUrl`](crate::SmtpUrl).
    Smtp(String),
    /// `file:///path/to/dir`: a [`FileTransport`].
    File(PathBuf),
    /// `sendmail:` (the default `/usr/sbin/sendmail`) or `sendmail:///path`: a [`SendmailTransport`].
    Sendmail(Option<PathBuf>),
    /// `stub:`: a [`StubTransport`] accepting everything.
    Stub,
}

fn bad(message: String) -> Error {
    Error::Config(message)
}

impl TransportUrl {
    /// Parses `url`; the error never repeats a password.
    ///
    /// ```
    /// use smtpkit::transport::TransportUrl;
    /// assert_eq!(TransportUrl::parse("file:///var/mail/out").unwrap(), TransportUrl::File("/var/mail/out".into()));
    /// assert_eq!(TransportUrl::parse("sendmail:").unwrap(), TransportUrl::Sendmail(None));
    /// assert_eq!(TransportUrl::parse("stub:").unwrap(), TransportUrl::Stub);
    /// assert!(TransportUrl::parse("file://host/dir").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) =
            url.split_once(':').ok_or_else(|| bad("a transport URL needs a scheme".into()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "smtp" | "smtps" | "lmtp" => Ok(Self::Smtp(url.to_string())),
            "file" => Ok(Self::File(
                local_path(rest, "file")?.ok_or_else(|| bad("file: needs a directory".into()))?,
            )),
            "sendmail" => Ok(Self::Sendmail(local_path(rest, "sendmail")?)),
            "stub" if rest.is_empty() || rest == "//" => Ok(Self::Stub),
            "stub" => Err(bad("stub: takes no path".into())),
            other => Err(bad(format!(
                "unsupported transport scheme {other:?} (use smtp, smtps, lmtp, file, sendmail or stub)"
            ))),
        }
    }

    /// The transport for a local URL (`file`, `sendmail`, `stub`); `None` for SMTP, which
    /// needs a client ([`from_url_with`](super::from_url_with) or the blocking
    /// `smtpkit::blocking::transport_from_url_with`). A directory or program that does not
    /// exist is a configuration error now rather than a failed first message.
    pub fn local(&self) -> Result<Option<Box<dyn LocalTransport>>, Error> {
        let transport: Box<dyn LocalTransport> = match self {
            Self::Smtp(_) => return Ok(None),
            Self::File(dir) if !dir.is_dir() => {
                return Err(bad(format!("file: {} is not a directory", dir.display())));
            }
            Self::File(dir) => Box::new(FileTransport::new(dir.clone())),
            Self::Sendmail(path) => {
                let transport = path.as_ref().map_or_else(SendmailTransport::default, SendmailTransport::new);
                if !transport.program().is_file() {
                    return Err(bad(format!("sendmail: no program at {}", transport.program().display())));
                }
                Box::new(transport)
            }
            Self::Stub => Box::new(StubTransport::new()),
        };
        Ok(Some(transport))
    }
}

/// A transport that works with and without an async runtime: file, sendmail, stub.
pub trait LocalTransport: super::Transport + BlockingTransport {
    /// As an async transport.
    fn into_async(self: Box<Self>) -> Box<dyn super::Transport>;
    /// As a blocking transport.
    fn into_blocking(self: Box<Self>) -> Box<dyn BlockingTransport>;
}

impl<T: super::Transport + BlockingTransport + 'static> LocalTransport for T {
    fn into_async(self: Box<Self>) -> Box<dyn super::Transport> {
        self
    }

    fn into_blocking(self: Box<Self>) -> Box<dyn BlockingTransport> {
        self
    }
}

/// `file:///dir`, `sendmail:///path`, `sendmail:`: the absolute path after an empty
/// authority (RFC 8089: `file:///path` is the local host), percent-decoding not supported.
fn local_path(rest: &str, scheme: &str) -> Result<Option<PathBuf>, Error> {
    let path = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(0) => after,
            _ if after.is_empty() => return Ok(None),
            _ => return Err(bad(format!("{scheme}: URLs take no host: use {scheme}:///absolute/path"))),
        },
        None if rest.is_empty() => return Ok(None),
        None if rest.starts_with('/') => rest,
        None => return Err(bad(format!("{scheme}: needs an absolute path"))),
    };
    if path.contains(['?', '#', '%']) {
        return Err(bad(format!("{scheme}: path with '?', '#' or '%' is not supported")));
    }
    Ok(Some(PathBuf::from(path)))
}

/// The transport a URL names, SMTP configured by `configure` (extra roots, a trace sink)
/// before it connects (on the first message).
#[cfg(feature = "client")]
pub fn from_url_with(
    url: &str,
    configure: impl FnOnce(crate::ClientBuilder) -> Result<crate::ClientBuilder, Error>,
) -> Result<Box<dyn super::Transport>, Error> {
    let parsed = TransportUrl::parse(url)?;
    if let Some(local) = parsed.local()? {
        return Ok(local.into_async());
    }
    let connector = configure(crate::ClientBuilder::from_url(url)?)?.build()?;
    Ok(Box::new(super::SmtpTransport::new(connector)))
}

/// The transport a URL names, with the client's defaults for SMTP.
#[cfg(feature = "client")]
pub fn from_url(url: &str) -> Result<Box<dyn super::Transport>, Error> {
    from_url_with(url, Ok)
}

/// The blocking transport for a local URL (file, sendmail, stub); SMTP URLs need the
/// blocking client (`smtpkit::blocking::transport_from_url_with`, feature `blocking`).
pub fn blocking_from_url(url: &str) -> Result<Box<dyn BlockingTransport>, Error> {
    match TransportUrl::parse(url)?.local()? {
        Some(local) => Ok(local.into_blocking()),
        None => Err(bad("an SMTP URL needs the blocking client (feature `blocking`)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls() {
        assert_eq!(
            TransportUrl::parse("sendmail:///usr/lib/sendmail").unwrap(),
            TransportUrl::Sendmail(Some("/usr/lib/sendmail".into()))
        );
        assert_eq!(TransportUrl::parse("sendmail://").unwrap(), TransportUrl::Sendmail(None));
        assert_eq!(TransportUrl::parse("file:/tmp/x").unwrap(), TransportUrl::File("/tmp/x".into()));
        assert_eq!(TransportUrl::parse("SMTP://h").unwrap(), TransportUrl::Smtp("SMTP://h".into()));
        for url in ["file:", "file://", "file:rel", "stub:x", "ftp://h", "nothing", "file:///a?b"] {
            assert!(TransportUrl::parse(url).is_err(), "{url}");
        }
    }
}
