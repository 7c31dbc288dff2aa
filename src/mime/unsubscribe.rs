//! `List-Unsubscribe` (RFC 2369) and one-click `List-Unsubscribe-Post` (RFC 8058), which
//! the 2024 bulk-sender rules of Gmail and Yahoo require.

use super::MimeError;

/// The unsubscribe targets of a message, validated into the two header values.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unsubscribe {
    pub(crate) mailto: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) one_click: bool,
}

fn bad(reason: &'static str) -> MimeError {
    MimeError::ListUnsubscribe { reason }
}

/// RFC 2369 section 2: "The URL is enclosed in angle brackets", so a URL holds none, no
/// whitespace or control byte (a literal space must be %20), and only ASCII (RFC 3986
/// percent-encodes the rest).
fn check_uri(uri: &str) -> Result<(), MimeError> {
    if uri.bytes().any(|b| !b.is_ascii_graphic() || b == b'<' || b == b'>') {
        return Err(bad(
            "a URL holds only printable ASCII without spaces or angle brackets (percent-encode the rest)",
        ));
    }
    Ok(())
}

impl Unsubscribe {
    pub(crate) fn is_set(&self) -> bool {
        self.mailto.is_some() || self.url.is_some() || self.one_click
    }

    /// `List-Unsubscribe` and, for one-click, `List-Unsubscribe-Post`.
    pub(crate) fn headers(&self) -> Result<(String, Option<&'static str>), MimeError> {
        let mut targets = Vec::new();
        if let Some(mailto) = &self.mailto {
            let mailto = mailto.strip_prefix("mailto:").unwrap_or(mailto);
            let address = mailto.split_once('?').map_or(mailto, |(a, _)| a);
            crate::Address::new(address).map_err(|_| bad("the mailto target is not an address"))?;
            check_uri(mailto)?;
            targets.push(format!("<mailto:{mailto}>"));
        }
        if let Some(url) = &self.url {
            check_uri(url)?;
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            match scheme.as_deref() {
                Some("https") => {}
                // RFC 8058 section 3.1: "The List-Unsubscribe header field MUST contain
                // one HTTPS URI."
                Some("http") if self.one_click => {
                    return Err(bad("one-click unsubscribe needs an https URL"));
                }
                Some("http") => {}
                _ => return Err(bad("the unsubscribe URL must be http or https")),
            }
            targets.push(format!("<{url}>"));
        }
        if self.one_click && self.url.is_none() {
            return Err(bad("one-click unsubscribe needs an https URL"));
        }
        if targets.is_empty() {
            return Err(bad("no unsubscribe address or URL"));
        }
        // RFC 8058 section 3.1: "The List-Unsubscribe-Post header field MUST contain the
        // single key/value pair "List-Unsubscribe=One-Click"."
        let post = self.one_click.then_some("List-Unsubscribe=One-Click");
        Ok((targets.join(", "), post))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(
        mailto: Option<&str>,
        url: Option<&str>,
        one_click: bool,
    ) -> Result<(String, Option<&'static str>), MimeError> {
        Unsubscribe { mailto: mailto.map(str::to_owned), url: url.map(str::to_owned), one_click }.headers()
    }

    #[test]
    fn values() {
        assert_eq!(
            headers(Some("unsub@example.com?subject=u%2042"), Some("https://example.com/u/1?t=a"), true)
                .unwrap(),
            (
                "<mailto:unsub@example.com?subject=u%2042>, <https://example.com/u/1?t=a>".to_owned(),
                Some("List-Unsubscribe=One-Click")
            )
        );
        assert_eq!(headers(Some("mailto:u@example.com"), None, false).unwrap().0, "<mailto:u@example.com>");
        assert_eq!(
            headers(None, Some("http://example.com/u"), false).unwrap(),
            ("<http://example.com/u>".to_owned(), None)
        );
        for (mailto, url, one_click) in [
            (None, None, false),
            (Some("u@example.com"), None, true),
            (None, Some("http://example.com/u"), true),
            (None, Some("ftp://example.com/u"), false),
            (None, Some("https://example.com/a b"), false),
            (None, Some("https://example.com/>\r\nBcc: x@y"), false),
            (None, Some("https://exämple.com/"), false),
            (Some("not an address"), None, false),
            (Some("u@example.com?subject=a>b"), None, false),
        ] {
            assert!(
                matches!(headers(mailto, url, one_click), Err(MimeError::ListUnsubscribe { .. })),
                "{mailto:?} {url:?}"
            );
        }
    }
}
