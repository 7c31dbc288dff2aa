//! Media types: validation of `type/subtype`, and the type of a file from its extension.

use std::path::Path;

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

/// Validates `value` as `type/subtype` for a leaf part and returns it in lower case
/// (RFC 2045 section 5.1: "Matching of media type and subtype is ALWAYS
/// case-insensitive").
///
/// Parameters are not accepted: the builder sets `charset` itself, and a caller-supplied
/// `boundary` or `name` could contradict the structure it writes. `multipart/*` is
/// refused because a leaf with that type would have no boundary.
pub(crate) fn validate(value: &str) -> Result<String, MimeError> {
    let bad = |reason| Err(MimeError::ContentType { value: value.to_owned(), reason });
    if let Some(offset) = value.bytes().position(|b| b < 0x20 || b == 0x7f) {
        return Err(MimeError::ControlByte {
            field: "content type".to_owned(),
            byte: value.as_bytes()[offset],
            offset,
        });
    }
    let Some((ty, subtype)) = value.split_once('/') else {
        return bad("expected type/subtype");
    };
    if !is_token(ty) || !is_token(subtype) {
        return bad("type and subtype must be RFC 2045 tokens, without parameters");
    }
    if ty.eq_ignore_ascii_case("multipart") {
        return bad("multipart types are built by the builder, not attached");
    }
    Ok(value.to_ascii_lowercase())
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
            assert_eq!(validate(ty).unwrap(), *ty);
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
        assert_eq!(validate("Image/PNG").unwrap(), "image/png");
        for bad in ["", "text", "text/", "/plain", "text/plain; charset=x", "te xt/plain", "multipart/mixed"]
        {
            assert!(matches!(validate(bad), Err(MimeError::ContentType { .. })), "{bad:?}");
        }
        assert!(matches!(validate("text/pl\r\nain"), Err(MimeError::ControlByte { byte: b'\r', .. })));
    }
}
