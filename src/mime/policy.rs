//! Limits on what may be attached: size per attachment, total size, content types.

use super::MimeError;

/// What a message may carry as attachments and inline images.
///
/// The default allows everything. Limits are checked in
/// [`build`](super::MessageBuilder::build), before anything is serialised or sent; file
/// attachments are measured before they are read, so an oversized file is never loaded.
/// Sizes are of the content before transfer encoding (base64 adds a third).
///
/// Content type patterns are `type/subtype`, `type/*` or `*/*`, matched case-insensitively.
/// A denied pattern wins over an allowed one.
///
/// ```
/// use smtpkit::mime::AttachmentPolicy;
/// let policy = AttachmentPolicy::default()
///     .max_attachment_size(5 << 20)
///     .max_total_size(10 << 20)
///     .allow("image/*")
///     .allow("application/pdf")
///     .deny("image/svg+xml");
/// assert!(policy.check("a.pdf", "application/pdf", 1000, 1000).is_ok());
/// assert!(policy.check("x.svg", "image/svg+xml", 10, 10).is_err());
/// assert!(policy.check("x.zip", "application/zip", 10, 10).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachmentPolicy {
    max_attachment_size: Option<u64>,
    max_total_size: Option<u64>,
    allowed: Vec<String>,
    denied: Vec<String>,
}

impl AttachmentPolicy {
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

    /// Checks the content type of an attachment.
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
        Ok(())
    }

    /// Checks one attachment of `size` octets, given the total so far including it.
    ///
    /// Useful to vet an upload before building a message; the builder calls the same
    /// checks.
    pub fn check(&self, name: &str, content_type: &str, size: u64, total: u64) -> Result<(), MimeError> {
        self.check_type(name, content_type)?;
        self.check_size(name, size)?;
        self.check_total(total)
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
    }
}
