//! Media types: [`ContentType`] (`type/subtype` with parameters, validated), and the type of
//! a file from its extension.

use std::{fmt, path::Path, str::FromStr};

use mail_builder::headers::content_type::ContentType as MbContentType;

use super::MimeError;

/// The type given to files whose extension is unknown. RFC 2046 section 4.5.1: "The
/// "octet-stream" subtype is used to indicate that a body contains arbitrary binary data."
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Extension (lower case) to media type, for the files people attach to mail.
const BY_EXTENSION: &[(&str, &str)] = &[
    ("7z", "application/x-7z-compressed"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("css", "text/css"),
    ("csv", "text/csv"),
    ("doc", "application/msword"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("eml", "message/rfc822"),
    ("epub", "application/epub+zip"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("heic", "image/heic"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ico", "image/vnd.microsoft.icon"),
    ("ics", "text/calendar"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript"),
    ("json", "application/json"),
    ("log", "text/plain"),
    ("m4a", "audio/mp4"),
    ("md", "text/markdown"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("ppt", "application/vnd.ms-powerpoint"),
    ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ("rtf", "application/rtf"),
    ("svg", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain"),
    ("vcf", "text/vcard"),
    ("wav", "audio/wav"),
    ("webm", "video/webm"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xls", "application/vnd.ms-excel"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("xml", "application/xml"),
    ("zip", "application/zip"),
];

/// The media type for a file extension (without the dot, any case), if it is a known one.
///
/// ```
/// use smtpkit::mime::content_type::from_extension;
/// assert_eq!(from_extension("PNG"), Some("image/png"));
/// assert_eq!(from_extension("unknown"), None);
/// ```
pub fn from_extension(extension: &str) -> Option<&'static str> {
    BY_EXTENSION.iter().find(|(ext, _)| ext.eq_ignore_ascii_case(extension)).map(|&(_, ty)| ty)
}

/// The media type for a path, from its extension; [`OCTET_STREAM`] when unknown.
///
/// ```
/// use smtpkit::mime::content_type::for_path;
/// assert_eq!(for_path("report.PDF".as_ref()), "application/pdf");
/// assert_eq!(for_path("Makefile".as_ref()), "application/octet-stream");
/// ```
pub fn for_path(path: &Path) -> &'static str {
    path.extension().and_then(|e| e.to_str()).and_then(from_extension).unwrap_or(OCTET_STREAM)
}

/// RFC 2045 section 5.1: `token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or
/// tspecials>`, `tspecials := "(" / ")" / "<" / ">" / "@" / "," / ";" / ":" / "\" / <">
/// "/" / "[" / "]" / "?" / "="`.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// RFC 2231 section 7: `attribute-char := <any (US-ASCII) CHAR except SPACE, CTLs, "*", "'",
/// "%", or tspecials>`. A parameter name with `*` would be read as an RFC 2231 section or
/// charset marker, so names are limited to these characters.
fn is_attribute(s: &str) -> bool {
    is_token(s) && !s.contains(['*', '\'', '%'])
}

/// Longest parameter value accepted, in octets. mail-builder splits long values into RFC 2231
/// continuations of under 78 octets each, so this bounds the header, not a line.
const MAX_PARAM_VALUE: usize = 4096;

/// A media type with parameters, validated: `text/calendar; method=REQUEST; charset=utf-8`.
///
/// The type and subtype are RFC 2045 tokens, kept in lower case (RFC 2045 section 5.1:
/// "Matching of media type and subtype is ALWAYS case-insensitive"). Parameter names are
/// RFC 2231 attribute tokens, unique ignoring case; values are any text without control
/// bytes. On the wire mail-builder writes a value as a quoted string, or per RFC 2231
/// (`name*=utf-8''...`, with `name*0*=` continuations) when it is not ASCII or too long for
/// one line, so a caller never has to encode one.
///
/// `boundary` is refused: the builder writes the boundary of every multipart itself.
///
/// ```
/// use smtpkit::mime::ContentType;
/// let ct: ContentType = "Text/Calendar; method=REQUEST; charset=\"utf-8\"".parse()?;
/// assert_eq!(ct.essence(), "text/calendar");
/// assert_eq!(ct.param("METHOD"), Some("REQUEST"));
/// let ct = ContentType::new("application/pdf")?.with_param("name", "Jahresabschluß.pdf")?;
/// assert_eq!(ct.param("name"), Some("Jahresabschluß.pdf"));
/// assert!("text/plain; boundary=x".parse::<ContentType>().is_err());
/// assert!(ContentType::new("text/plain")?.with_param("x", "a\r\nBcc: y").is_err());
/// # Ok::<(), smtpkit::mime::MimeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContentType {
    essence: String,
    params: Vec<(String, String)>,
}

impl ContentType {
    /// A media type without parameters, from `type/subtype`.
    pub fn new(essence: &str) -> Result<Self, MimeError> {
        let bad = |reason| Err(MimeError::ContentType { value: essence.to_owned(), reason });
        check_control("content type", essence)?;
        let Some((ty, subtype)) = essence.split_once('/') else {
            return bad("expected type/subtype");
        };
        if !is_token(ty) || !is_token(subtype) {
            return bad("type and subtype must be RFC 2045 tokens");
        }
        Ok(Self { essence: essence.to_ascii_lowercase(), params: Vec::new() })
    }

    /// Parses `type/subtype` followed by `; name=value` parameters, each value a token or a
    /// quoted string (RFC 2045 section 5.1). Non-ASCII text is accepted inside quotes and is
    /// RFC 2231 encoded on the wire.
    pub fn parse(text: &str) -> Result<Self, MimeError> {
        check_control("content type", text)?;
        let mut rest = text;
        let essence_end = rest.find(';').unwrap_or(rest.len());
        let mut ct = Self::new(rest[..essence_end].trim_matches(' '))?;
        rest = &rest[essence_end..];
        while let Some(after) = rest.strip_prefix(';') {
            let after = after.trim_start_matches(' ');
            if after.is_empty() {
                break;
            }
            let Some((name, value)) = after.split_once('=') else {
                return Err(MimeError::ContentType { value: text.to_owned(), reason: "parameter without =" });
            };
            let (value, next) = parse_value(value.trim_start_matches(' '))
                .ok_or(MimeError::ContentType { value: text.to_owned(), reason: "bad parameter value" })?;
            ct = ct.with_param(name.trim_end_matches(' '), &value)?;
            rest = next.trim_start_matches(' ');
            if !rest.is_empty() && !rest.starts_with(';') {
                return Err(MimeError::ContentType {
                    value: text.to_owned(),
                    reason: "expected ; after a value",
                });
            }
        }
        Ok(ct)
    }

    /// The same type with one more parameter. The name must be an RFC 2231 attribute token
    /// and not given twice (ignoring case); the value may be any text without control bytes.
    pub fn with_param(mut self, name: &str, value: &str) -> Result<Self, MimeError> {
        let bad = |reason| Err(MimeError::Parameter { name: name.to_owned(), reason });
        check_control("content type parameter name", name)?;
        check_control(&format!("content type parameter {name}"), value)?;
        if !is_attribute(name) {
            return bad("a name is an RFC 2045 token without *, ' or %");
        }
        if name.eq_ignore_ascii_case("boundary") {
            return bad("the builder writes multipart boundaries itself");
        }
        if self.param(name).is_some() {
            return bad("given twice");
        }
        if value.len() > MAX_PARAM_VALUE {
            return bad("value longer than 4096 octets");
        }
        self.params.push((name.to_ascii_lowercase(), value.to_owned()));
        Ok(self)
    }

    /// `type/subtype`, in lower case.
    pub fn essence(&self) -> &str {
        &self.essence
    }

    /// The top-level type (`text` in `text/plain`).
    pub fn top_level(&self) -> &str {
        self.essence.split_once('/').map_or(self.essence.as_str(), |(t, _)| t)
    }

    /// The value of parameter `name` (any case), if set.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every parameter, names in lower case, in the order given.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// True for `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.top_level() == "multipart"
    }

    /// True for `text/*`.
    pub fn is_text(&self) -> bool {
        self.top_level() == "text"
    }

    /// The same type with `name` set when it is not already (the builder's `charset=utf-8`).
    pub(crate) fn with_default(mut self, name: &str, value: &str) -> Self {
        if self.param(name).is_none() {
            self.params.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// The mail-builder header value, owning its strings.
    pub(crate) fn into_header(self) -> MbContentType<'static> {
        let mut ct = MbContentType::new(self.essence);
        for (name, value) in self.params {
            ct = ct.attribute(name, value);
        }
        ct
    }

    /// The mail-builder header value.
    pub(crate) fn to_header(&self) -> MbContentType<'_> {
        let mut ct = MbContentType::new(self.essence.as_str());
        for (name, value) in &self.params {
            ct = ct.attribute(name.as_str(), value.as_str());
        }
        ct
    }
}

impl fmt::Display for ContentType {
    /// `type/subtype; name="value"`, for logs and errors (not the wire form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.essence)?;
        for (name, value) in &self.params {
            write!(f, "; {name}={value:?}")?;
        }
        Ok(())
    }
}

impl FromStr for ContentType {
    type Err = MimeError;
    fn from_str(s: &str) -> Result<Self, MimeError> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for ContentType {
    type Error = MimeError;
    fn try_from(s: &str) -> Result<Self, MimeError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ContentType {
    type Error = MimeError;
    fn try_from(s: String) -> Result<Self, MimeError> {
        Self::parse(&s)
    }
}

impl TryFrom<&String> for ContentType {
    type Error = MimeError;
    fn try_from(s: &String) -> Result<Self, MimeError> {
        Self::parse(s)
    }
}

impl TryFrom<&ContentType> for ContentType {
    type Error = MimeError;
    fn try_from(ct: &ContentType) -> Result<Self, MimeError> {
        Ok(ct.clone())
    }
}

/// A token or a quoted string at the start of `s`, and what follows it. RFC 822
/// quoted-string: `\\` escapes the next character.
fn parse_value(s: &str) -> Option<(String, &str)> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((value, &quoted[i + 1..])),
                '\\' => value.push(chars.next()?.1),
                c => value.push(c),
            }
        }
        return None;
    }
    let end = s.find([';', ' ']).unwrap_or(s.len());
    is_token(&s[..end]).then(|| (s[..end].to_owned(), &s[end..]))
}

fn check_control(field: &str, value: &str) -> Result<(), MimeError> {
    match value.bytes().position(|b| b < 0x20 || b == 0x7f) {
        Some(offset) => Err(MimeError::ControlByte {
            field: field.to_owned(),
            byte: value.as_bytes().get(offset).copied().unwrap_or_default(),
            offset,
        }),
        None => Ok(()),
    }
}

/// Validates `value` for a leaf part (an attachment or inline image): a [`ContentType`],
/// not `multipart/*`, which would have no boundary.
pub(crate) fn validate(value: &str) -> Result<ContentType, MimeError> {
    let ct = ContentType::parse(value)?;
    if ct.is_multipart() {
        return Err(MimeError::ContentType {
            value: value.to_owned(),
            reason: "multipart types are built by the builder, not attached",
        });
    }
    Ok(ct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_lowercase_and_valid() {
        for pair in BY_EXTENSION.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{pair:?}");
        }
        for (ext, ty) in BY_EXTENSION {
            assert_eq!(ext.to_ascii_lowercase(), *ext);
            assert_eq!(validate(ty).unwrap().essence(), *ty);
        }
    }

    #[test]
    fn extension_lookup() {
        assert_eq!(for_path(Path::new("/tmp/résumé.TXT")), "text/plain");
        assert_eq!(for_path(Path::new("a.tar.gz")), "application/gzip");
        assert_eq!(for_path(Path::new("noext")), OCTET_STREAM);
        assert_eq!(for_path(Path::new(".png")), OCTET_STREAM);
    }

    #[test]
    fn validation() {
        assert_eq!(validate("Image/PNG").unwrap().essence(), "image/png");
        for bad in
            ["", "text", "text/", "/plain", "te xt/plain", "multipart/mixed", "text/plain;x", "a/b; c=d e"]
        {
            assert!(matches!(validate(bad), Err(MimeError::ContentType { .. })), "{bad:?}");
        }
        assert!(matches!(validate("text/pl\r\nain"), Err(MimeError::ControlByte { byte: b'\r', .. })));
    }

    #[test]
    fn parameters_parse_and_validate() {
        let ct = ContentType::parse(
            "Text/Calendar ; METHOD=REQUEST;charset=\"utf-8\"; name=\"a \\\"b\\\" ü.ics\";",
        )
        .unwrap();
        assert_eq!(ct.essence(), "text/calendar");
        let params: Vec<_> = ct.params().collect();
        assert_eq!(params, [("method", "REQUEST"), ("charset", "utf-8"), ("name", "a \"b\" ü.ics")]);
        assert_eq!(
            ct.to_string(),
            "text/calendar; method=\"REQUEST\"; charset=\"utf-8\"; name=\"a \\\"b\\\" ü.ics\""
        );
        for (bad, what) in [
            ("text/plain; boundary=x", "boundaries"),
            ("text/plain; a=1; A=2", "twice"),
            ("text/plain; a*=1", "token without"),
            ("text/plain; a%=1", "token"),
            ("text/plain; a b=1", "token"),
        ] {
            let err = ContentType::parse(bad).unwrap_err();
            assert!(
                matches!(&err, MimeError::Parameter { reason, .. } if reason.contains(what)),
                "{bad}: {err:?}"
            );
        }
        for bad in ["text/plain; a=\"open", "text/plain; a=ü", "text/plain; a", "text/plain; a=1 b=2"] {
            assert!(matches!(ContentType::parse(bad), Err(MimeError::ContentType { .. })), "{bad}");
        }
        for b in (0u8..0x20).chain([0x7f]) {
            let value = format!("a{}b", b as char);
            let err = ContentType::new("text/plain").unwrap().with_param("x", &value).unwrap_err();
            assert!(matches!(err, MimeError::ControlByte { byte, offset: 1, .. } if byte == b), "{b:#x}");
        }
        assert!(ContentType::new("a/b").unwrap().with_param("x", &"v".repeat(4097)).is_err());
        assert!(ContentType::new("a/b").unwrap().with_param("x", &"v".repeat(4096)).is_ok());
    }

    /// mail-builder writes parameters per RFC 2045 (quoted) and RFC 2231 (non-ASCII or
    /// long), and an independent parser reads the same values back.
    #[test]
    fn parameters_round_trip_through_mail_parser() {
        let long = "Réunion d'équipe – résumé des décisions du trimestre ".repeat(6);
        let ct = ContentType::new("application/pdf")
            .unwrap()
            .with_param("name", &long)
            .unwrap()
            .with_param("x-quote", "say \"hi\"; ok=\\")
            .unwrap()
            .with_param("x-ascii", &"word ".repeat(40))
            .unwrap();
        let mut out = b"Content-Type: ".to_vec();
        mail_builder::headers::Header::write_header(&ct.to_header(), &mut out, 14);
        out.extend_from_slice(b"\r\n");
        for line in out.split(|&b| b == b'\n') {
            assert!(line.len() <= 79 && line.is_ascii(), "{:?}", String::from_utf8_lossy(line));
        }
        use mail_parser::MimeHeaders;
        let parsed = mail_parser::MessageParser::default().parse_headers(&out).unwrap();
        let parsed = parsed.content_type().unwrap();
        assert_eq!(parsed.attribute("name"), Some(long.as_str()));
        assert_eq!(parsed.attribute("x-quote"), Some("say \"hi\"; ok=\\"));
        assert_eq!(parsed.attribute("x-ascii"), Some("word ".repeat(40).as_str()));
    }
}
