//! What may be attached: sizes per attachment, in total and of the encoded message; types
//! by pattern; and, by default, the rules a mail provider applies: no programs or scripts
//! (by content, extension or declared type), no disguised names, no declared type that the
//! content contradicts.

use std::fmt;

use super::{MimeError, sniff};

/// What a message may carry as attachments and inline images.
///
/// Checked in [`build`](super::MessageBuilder::build), before anything is serialised or
/// sent. File attachments are measured from their metadata before they are read, so an
/// oversized file is never loaded. Sizes are of the content before transfer encoding;
/// [`max_message_size`](Self::max_message_size) limits the serialised message (after
/// base64, which adds a third).
///
/// **The default is what a mail provider enforces** (Gmail's list of blocked file types is
/// the model): an attachment is refused with [`MimeError::AttachmentRefused`], naming the
/// file and the [`PolicyRule`], when
///
/// - its content is a program or script by its magic numbers (PE, ELF, Mach-O, Java class,
///   DEX, WebAssembly, `#!`), whatever its name and declared type;
/// - its name ends in a blocked extension (`.exe`, `.js`, `.bat`, `.scr`, `.iso`, ...),
///   trailing dots and spaces ignored as Windows ignores them; `invoice.pdf.exe` is reported
///   as a double extension;
/// - its name holds a character that reorders or hides text (`invoice` + `U+202E` + `fdp.exe`
///   shows as `invoiceexe.pdf`);
/// - its declared type names a program or script (`application/x-msdownload`, ...);
/// - its declared type, or the type its extension implies, contradicts the detected content
///   (a PNG declared `application/pdf`, a PDF named `photo.jpg`);
///   `application/octet-stream` claims nothing and agrees with any content.
///
/// Each rule can be turned off; [`permissive`](Self::permissive) turns them all off. There
/// are no size limits by default. Content type patterns are `type/subtype`, `type/*` or
/// `*/*`, matched case-insensitively; a denied pattern wins over an allowed one.
///
/// ```
/// use smtpkit::mime::{AttachmentPolicy, MimeError, PolicyRule};
/// let policy = AttachmentPolicy::default()
///     .max_attachment_size(5 << 20)
///     .max_total_size(10 << 20)
///     .allow("image/*")
///     .allow("application/pdf")
///     .deny("image/svg+xml");
/// assert!(policy.check("a.pdf", "application/pdf", 1000, 1000).is_ok());
/// assert!(policy.check("x.svg", "image/svg+xml", 10, 10).is_err());
/// assert!(policy.check("x.zip", "application/zip", 10, 10).is_err());
/// // A Windows program: the DOS header's e_lfanew (at 0x3C) points at "PE\0\0".
/// let mut exe = vec![0u8; 0x40];
/// exe[..2].copy_from_slice(b"MZ");
/// exe[0x3c] = 0x40;
/// exe.extend_from_slice(b"PE\0\0");
/// let err = policy.check_content("invoice.pdf", "application/pdf", &exe).unwrap_err();
/// assert!(matches!(err, MimeError::AttachmentRefused { rule: PolicyRule::ExecutableContent { .. }, .. }));
/// let err = policy.check("invoice.pdf.exe", "application/pdf", 10, 10).unwrap_err();
/// assert!(matches!(err, MimeError::AttachmentRefused { rule: PolicyRule::DoubleExtension { .. }, .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentPolicy {
    max_attachment_size: Option<u64>,
    max_total_size: Option<u64>,
    max_message_size: Option<u64>,
    allowed: Vec<String>,
    denied: Vec<String>,
    denied_extensions: Vec<String>,
    deny_executables: bool,
    check_names: bool,
    check_mismatch: bool,
}

impl Default for AttachmentPolicy {
    /// A mail provider's rules: programs, scripts, blocked extensions, disguised names and
    /// contradicted types refused; no size limit.
    fn default() -> Self {
        Self {
            max_attachment_size: None,
            max_total_size: None,
            max_message_size: None,
            allowed: Vec::new(),
            denied: Vec::new(),
            denied_extensions: sniff::DENIED_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
            deny_executables: true,
            check_names: true,
            check_mismatch: true,
        }
    }
}

/// Which rule of an [`AttachmentPolicy`] refused an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyRule {
    /// The content is a program or a script, by its magic numbers.
    ExecutableContent {
        /// The type detected.
        detected: &'static str,
    },
    /// The declared content type names a program or a script.
    ExecutableType {
        /// The declared type.
        declared: String,
    },
    /// The filename ends in a denied extension.
    DeniedExtension {
        /// The extension, lower case, without the dot.
        extension: String,
    },
    /// The filename ends in a denied extension after another one: `invoice.pdf.exe`.
    DoubleExtension {
        /// The extension a reader sees first (`pdf`).
        shown: String,
        /// The extension that decides how the file opens (`exe`).
        actual: String,
    },
    /// The filename holds a character that reorders or hides text (bidirectional
    /// controls, zero-width characters).
    HiddenCharacter {
        /// The character.
        character: char,
    },
    /// The declared type contradicts the content.
    TypeMismatch {
        /// The declared type.
        declared: String,
        /// The type detected.
        detected: &'static str,
    },
    /// The filename's extension implies a type the content contradicts.
    ExtensionMismatch {
        /// The extension.
        extension: String,
        /// The type detected.
        detected: &'static str,
    },
}

impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExecutableContent { detected } => {
                write!(f, "its content is a program or script ({detected})")
            }
            Self::ExecutableType { declared } => {
                write!(f, "its declared type {declared} is a program or script")
            }
            Self::DeniedExtension { extension } => write!(f, "the extension .{extension} is denied"),
            Self::DoubleExtension { shown, actual } => {
                write!(f, "its name hides the denied extension .{actual} behind .{shown}")
            }
            Self::HiddenCharacter { character } => {
                write!(f, "its name holds U+{:04X}, which reorders or hides text", u32::from(*character))
            }
            Self::TypeMismatch { declared, detected } => {
                write!(f, "it is declared as {declared} but its content is {detected}")
            }
            Self::ExtensionMismatch { extension, detected } => {
                write!(f, "its extension .{extension} does not match its content ({detected})")
            }
        }
    }
}

/// RFC 2045 section 6.8: base64 in lines of 76 characters, 57 octets each, plus CRLF.
pub(crate) fn base64_len(size: u64) -> u64 {
    size.div_ceil(3) * 4 + size.div_ceil(57) * 2
}

/// Characters that make a name read differently from how it opens: bidirectional
/// embeddings, overrides and isolates, and zero-width characters.
fn is_hidden(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

impl AttachmentPolicy {
    /// No rule at all: every name, type and content is allowed, with no size limit. The
    /// builder's behaviour before content checks existed.
    pub fn permissive() -> Self {
        Self {
            denied_extensions: Vec::new(),
            deny_executables: false,
            check_names: false,
            check_mismatch: false,
            ..Self::default()
        }
    }

    /// Limits each attachment to `bytes` octets.
    pub fn max_attachment_size(mut self, bytes: u64) -> Self {
        self.max_attachment_size = Some(bytes);
        self
    }

    /// Limits all attachments and inline images together to `bytes` octets.
    pub fn max_total_size(mut self, bytes: u64) -> Self {
        self.max_total_size = Some(bytes);
        self
    }

    /// Limits the serialised message, after transfer encoding, to `bytes` octets: checked
    /// from the base64 size of the attachments before files are read, and exactly once the
    /// message is serialised.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// Adds a pattern to the allowed list. Once the list is not empty, only types that
    /// match one of its patterns may be attached.
    pub fn allow(mut self, pattern: impl Into<String>) -> Self {
        self.allowed.push(pattern.into());
        self
    }

    /// Adds a pattern to the denied list.
    pub fn deny(mut self, pattern: impl Into<String>) -> Self {
        self.denied.push(pattern.into());
        self
    }

    /// Denies filenames ending in `extension` (without the dot, any case).
    pub fn deny_extension(mut self, extension: &str) -> Self {
        let extension = extension.trim_start_matches('.').to_ascii_lowercase();
        if !self.denied_extensions.contains(&extension) {
            self.denied_extensions.push(extension);
        }
        self
    }

    /// Allows filenames ending in `extension` again (e.g. `js` for a web agency); content
    /// that is a program is still refused unless [`deny_executables`](Self::deny_executables)
    /// is off.
    pub fn allow_extension(mut self, extension: &str) -> Self {
        let extension = extension.trim_start_matches('.');
        self.denied_extensions.retain(|e| !e.eq_ignore_ascii_case(extension));
        self
    }

    /// Whether programs and scripts are refused by content and by declared type (default:
    /// yes).
    pub fn deny_executables(mut self, deny: bool) -> Self {
        self.deny_executables = deny;
        self
    }

    /// Whether filenames with characters that reorder or hide text are refused (default:
    /// yes).
    pub fn check_names(mut self, check: bool) -> Self {
        self.check_names = check;
        self
    }

    /// Whether a declared type or an extension that the content contradicts is refused
    /// (default: yes).
    pub fn check_mismatch(mut self, check: bool) -> Self {
        self.check_mismatch = check;
        self
    }

    fn refuse(name: &str, rule: PolicyRule) -> Result<(), MimeError> {
        Err(MimeError::AttachmentRefused { name: name.to_owned(), rule })
    }

    /// Checks a filename: hidden characters and denied extensions.
    pub(crate) fn check_name(&self, name: &str) -> Result<(), MimeError> {
        if self.check_names {
            if let Some(character) = name.chars().find(|&c| is_hidden(c)) {
                return Self::refuse(name, PolicyRule::HiddenCharacter { character });
            }
        }
        // Windows drops trailing dots and spaces: `setup.exe. ` opens as `setup.exe`.
        let trimmed = name.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
        let mut pieces = trimmed.rsplit('.');
        let (Some(last), Some(_)) = (pieces.next(), trimmed.contains('.').then_some(())) else {
            return Ok(());
        };
        let last = last.trim().to_ascii_lowercase();
        if !self.denied_extensions.contains(&last) {
            return Ok(());
        }
        let before: Vec<&str> = pieces.collect();
        match before.first().filter(|_| before.len() > 1).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            Some(shown) => Self::refuse(
                name,
                PolicyRule::DoubleExtension { shown: shown.to_ascii_lowercase(), actual: last },
            ),
            None => Self::refuse(name, PolicyRule::DeniedExtension { extension: last }),
        }
    }

    /// Checks the size of one attachment before it is read (files) or added (bytes).
    pub(crate) fn check_size(&self, name: &str, size: u64) -> Result<(), MimeError> {
        match self.max_attachment_size {
            Some(max) if size > max => {
                Err(MimeError::AttachmentTooLarge { name: name.to_owned(), size, max })
            }
            _ => Ok(()),
        }
    }

    /// Checks the total size of the attachments so far.
    pub(crate) fn check_total(&self, total: u64) -> Result<(), MimeError> {
        match self.max_total_size {
            Some(max) if total > max => Err(MimeError::TotalTooLarge { size: total, max }),
            _ => Ok(()),
        }
    }

    /// Checks the size of the serialised message, or a lower bound of it.
    pub(crate) fn check_message_size(&self, size: u64) -> Result<(), MimeError> {
        match self.max_message_size {
            Some(max) if size > max => Err(MimeError::MessageTooLarge { size, max }),
            _ => Ok(()),
        }
    }

    /// Checks the declared content type of an attachment (`type/subtype`, lower case).
    pub(crate) fn check_type(&self, name: &str, content_type: &str) -> Result<(), MimeError> {
        let refuse = |why| {
            Err(MimeError::ContentTypeRefused {
                name: name.to_owned(),
                content_type: content_type.to_owned(),
                why,
            })
        };
        if self.denied.iter().any(|p| matches(p, content_type)) {
            return refuse("denies");
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|p| matches(p, content_type)) {
            return refuse("does not allow");
        }
        if self.deny_executables && sniff::is_executable_type(&content_type.to_ascii_lowercase()) {
            return Self::refuse(name, PolicyRule::ExecutableType { declared: content_type.to_owned() });
        }
        Ok(())
    }

    /// Checks one attachment of `size` octets, given the total so far including it: its
    /// name, its declared type and the sizes. Useful to vet an upload before building a
    /// message; the builder calls the same checks, then [`check_content`](Self::check_content).
    pub fn check(&self, name: &str, content_type: &str, size: u64, total: u64) -> Result<(), MimeError> {
        self.check_type(name, content_type)?;
        self.check_name(name)?;
        self.check_size(name, size)?;
        self.check_total(total)
    }

    /// Checks an attachment's content (its first few kilobytes are enough) against the
    /// executable rule, its declared `content_type` (`type/subtype`) and the type its
    /// filename's extension implies.
    pub fn check_content(&self, name: &str, content_type: &str, content: &[u8]) -> Result<(), MimeError> {
        let Some(detected) = sniff::detect(content) else {
            return Ok(());
        };
        if self.deny_executables && sniff::is_executable_content(detected) {
            return Self::refuse(name, PolicyRule::ExecutableContent { detected });
        }
        if !self.check_mismatch {
            return Ok(());
        }
        let declared = content_type.to_ascii_lowercase();
        if !sniff::agrees(&declared, detected) {
            return Self::refuse(name, PolicyRule::TypeMismatch { declared, detected });
        }
        let extension = std::path::Path::new(name).extension().and_then(|e| e.to_str());
        if let Some((extension, implied)) =
            extension.and_then(|e| super::content_type::from_extension(e).map(|t| (e, t)))
        {
            if !sniff::agrees(implied, detected) {
                let extension = extension.to_ascii_lowercase();
                return Self::refuse(name, PolicyRule::ExtensionMismatch { extension, detected });
            }
        }
        Ok(())
    }
}

/// `type/subtype`, `type/*` or `*/*`, case-insensitive.
fn matches(pattern: &str, content_type: &str) -> bool {
    let pattern = pattern.trim();
    if pattern == "*/*" || pattern.eq_ignore_ascii_case(content_type) {
        return true;
    }
    match (pattern.strip_suffix("/*"), content_type.split_once('/')) {
        (Some(ty), Some((actual, _))) => ty.eq_ignore_ascii_case(actual),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("image/*", "image/png"));
        assert!(matches("IMAGE/PNG", "image/png"));
        assert!(matches("*/*", "application/zip"));
        assert!(!matches("image/*", "imagex/png"));
        assert!(!matches("image/png", "image/pngx"));
        assert!(!matches("image", "image/png"));
    }

    #[test]
    fn sizes_and_types() {
        let p = AttachmentPolicy::default().max_attachment_size(10).max_total_size(15);
        assert!(p.check("a", "text/plain", 10, 10).is_ok());
        assert!(matches!(
            p.check("a", "text/plain", 11, 11),
            Err(MimeError::AttachmentTooLarge { size: 11, max: 10, .. })
        ));
        assert!(matches!(
            p.check("b", "text/plain", 6, 16),
            Err(MimeError::TotalTooLarge { size: 16, max: 15 })
        ));
        let p = AttachmentPolicy::default().allow("image/*").deny("image/svg+xml");
        assert!(p.check_type("a", "image/png").is_ok());
        assert!(matches!(
            p.check_type("a", "image/svg+xml"),
            Err(MimeError::ContentTypeRefused { why: "denies", .. })
        ));
        assert!(matches!(
            p.check_type("a", "application/pdf"),
            Err(MimeError::ContentTypeRefused { why: "does not allow", .. })
        ));
        assert!(AttachmentPolicy::default().check("x", "application/x-anything", u64::MAX, u64::MAX).is_ok());
        assert_eq!(base64_len(0), 0);
        assert_eq!(base64_len(57), 78);
        assert_eq!(base64_len(58), 78 + 6);
    }

    #[test]
    fn names() {
        let p = AttachmentPolicy::default();
        let rule = |name: &str| match p.check_name(name) {
            Err(MimeError::AttachmentRefused { rule, .. }) => Some(rule),
            _ => None,
        };
        assert_eq!(rule("report.pdf"), None);
        assert_eq!(rule("noext"), None);
        assert_eq!(rule("setup.EXE"), Some(PolicyRule::DeniedExtension { extension: "exe".into() }));
        assert_eq!(rule("setup.exe. . "), Some(PolicyRule::DeniedExtension { extension: "exe".into() }));
        assert_eq!(
            rule("invoice.pdf.exe"),
            Some(PolicyRule::DoubleExtension { shown: "pdf".into(), actual: "exe".into() })
        );
        assert_eq!(rule(".exe"), Some(PolicyRule::DeniedExtension { extension: "exe".into() }));
        assert_eq!(
            rule("invoice\u{202e}fdp.exe"),
            Some(PolicyRule::HiddenCharacter { character: '\u{202e}' })
        );
        assert_eq!(rule("script.js"), Some(PolicyRule::DeniedExtension { extension: "js".into() }));
        let p = p.allow_extension(".JS").deny_extension("py");
        assert!(p.check_name("script.js").is_ok());
        assert!(p.check_name("tool.py").is_err());
        assert!(AttachmentPolicy::permissive().check_name("invoice\u{202e}fdp.exe").is_ok());
    }
}
