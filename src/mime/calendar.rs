//! Calendar invitations: caller-provided iCalendar text (RFC 5545) sent the way Outlook and
//! Gmail expect an iTIP message (RFC 5546) over email (iMIP, RFC 6047).

use super::{ContentType, MimeError, Part, encoding};

/// A calendar invitation, reply or cancellation: iCalendar text the caller wrote (or had a
/// calendar crate write), attached by [`MessageBuilder::calendar`](super::MessageBuilder::calendar)
/// twice, as Nodemailer's `icalEvent` does:
///
/// - as a `text/calendar; charset=utf-8; method=REQUEST` alternative of the body, which
///   Outlook and Gmail turn into an invitation with Accept/Decline buttons;
/// - as an `application/ics` attachment named `invite.ics` (see
///   [`filename`](Self::filename)), for clients that only import files.
///
/// The `method` must equal the object's `METHOD` property. RFC 6047 section 2.4: "The
/// "method" parameter ... MUST be the same as the value of the "METHOD" component property
/// in the iCalendar object."
///
/// ```
/// use smtpkit::{Message, mime::Calendar};
/// let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//EN\r\nMETHOD:REQUEST\r\n\
///            BEGIN:VEVENT\r\nUID:1@example.com\r\nDTSTAMP:20260101T000000Z\r\n\
///            DTSTART:20260110T090000Z\r\nSUMMARY:Planning\r\n\
///            ORGANIZER:mailto:zoe@example.com\r\nATTENDEE:mailto:bob@example.com\r\n\
///            END:VEVENT\r\nEND:VCALENDAR\r\n";
/// let msg = Message::builder()
///     .from("zoe@example.com")
///     .to("bob@example.com")
///     .subject("Invitation: Planning")
///     .text_body("You are invited to Planning.")
///     .calendar(Calendar::new("REQUEST", ics))
///     .build()?;
/// let text = std::str::from_utf8(msg.as_bytes()).unwrap();
/// assert!(text.contains("Content-Type: text/calendar; charset=\"utf-8\"; method=\"REQUEST\""));
/// assert!(text.contains("filename=\"invite.ics\""));
/// assert!(Message::builder().from("a@b.c").to("d@e.f")
///     .calendar(Calendar::new("CANCEL", ics)).build().is_err());
/// # Ok::<(), smtpkit::mime::MimeError>(())
/// ```
#[derive(Clone)]
pub struct Calendar {
    method: String,
    content: String,
    filename: String,
}

impl std::fmt::Debug for Calendar {
    /// The method, filename and size; never the content.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calendar")
            .field("method", &self.method)
            .field("filename", &self.filename)
            .field("len", &self.content.len())
            .finish()
    }
}

impl Calendar {
    /// An iTIP message with `method` (`REQUEST`, `CANCEL`, `REPLY`, `PUBLISH`, ...) and the
    /// iCalendar text. Line breaks may be `\n`; they are sent as CRLF (RFC 5545 section 3.1:
    /// "lines are delimited by a line break, which is a CRLF sequence").
    pub fn new(method: impl Into<String>, icalendar: impl Into<String>) -> Self {
        Self { method: method.into(), content: icalendar.into(), filename: "invite.ics".to_owned() }
    }

    /// The attachment's filename instead of `invite.ics`.
    pub fn filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = filename.into();
        self
    }

    /// Validates the invitation and returns its alternative and its attachment.
    pub(crate) fn parts(&self) -> Result<(Part, Part), MimeError> {
        let bad = |reason| Err(MimeError::Calendar { reason });
        // RFC 5546 section 1.4 lists the methods; RFC 5545 section 3.7.2 allows iana-token
        // and x-name values: letters, digits and "-".
        let method = self.method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return bad("the method is an iCalendar token such as REQUEST or CANCEL");
        }
        let text = encoding::normalize_crlf(&self.content).into_owned();
        let lines = unfold(&text);
        if !lines.first().is_some_and(|l| l.eq_ignore_ascii_case("BEGIN:VCALENDAR")) {
            return bad("the text does not start with BEGIN:VCALENDAR");
        }
        if !lines
            .iter()
            .rev()
            .find(|l| !l.is_empty())
            .is_some_and(|l| l.eq_ignore_ascii_case("END:VCALENDAR"))
        {
            return bad("the text does not end with END:VCALENDAR");
        }
        match lines.iter().find_map(|l| property(l, "METHOD")) {
            Some(value) if value.eq_ignore_ascii_case(&method) => {}
            Some(_) => {
                return bad("the METHOD property differs from the method given (RFC 6047 section 2.4)");
            }
            None => return bad("the object has no METHOD property, which an iTIP message needs (RFC 5546)"),
        }
        let alternative = ContentType::new("text/calendar")
            .and_then(|ct| ct.with_param("charset", "utf-8"))
            .and_then(|ct| ct.with_param("method", &method))?;
        let attachment = ContentType::new("application/ics")?;
        let alternative = Part::text(alternative, text.clone());
        let attachment = Part::binary(attachment, text.into_bytes()).attachment(self.filename.clone());
        Ok((alternative, attachment))
    }
}

/// RFC 5545 section 3.1: "a long line can be split between any two characters by
/// inserting a CRLF immediately followed by a single linear white-space character".
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.split("\r\n") {
        match (line.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

/// The value of `name` (`NAME:value` or `NAME;param=x:value`) on an unfolded content line.
fn property<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest =
        line.get(..name.len()).filter(|n| n.eq_ignore_ascii_case(name)).map(|_| &line[name.len()..])?;
    match rest.as_bytes().first() {
        Some(b':') => Some(&rest[1..]),
        Some(b';') => rest.split_once(':').map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICS: &str =
        "BEGIN:VCALENDAR\nVERSION:2.0\nMETH\n OD:request\nBEGIN:VEVENT\nUID:x\nEND:VEVENT\nEND:VCALENDAR\n";

    #[test]
    fn validates_method_and_shape() {
        assert!(Calendar::new("Request", ICS).parts().is_ok());
        for (method, text) in [
            ("CANCEL", ICS),
            ("RE QUEST", ICS),
            ("", ICS),
            ("REQUEST", "BEGIN:VEVENT\nEND:VEVENT\n"),
            ("REQUEST", "BEGIN:VCALENDAR\nMETHOD:REQUEST\n"),
            ("REQUEST", "BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n"),
        ] {
            assert!(
                matches!(Calendar::new(method, text).parts(), Err(MimeError::Calendar { .. })),
                "{method} {text:?}"
            );
        }
    }

    #[test]
    fn properties_and_unfolding() {
        assert_eq!(unfold("A:1\r\n 2\r\n\t3\r\nB:4"), ["A:123", "B:4"]);
        assert_eq!(property("METHOD:REQUEST", "METHOD"), Some("REQUEST"));
        assert_eq!(property("method;x=y:CANCEL", "METHOD"), Some("CANCEL"));
        assert_eq!(property("METHODS:X", "METHOD"), None);
        assert_eq!(property("MET", "METHOD"), None);
    }

    #[test]
    fn parts_carry_the_method() {
        let (alt, file) = Calendar::new("request", ICS).filename("meeting.ics").parts().unwrap();
        let ct = alt.content_type().unwrap();
        assert_eq!(
            (ct.essence(), ct.param("method"), ct.param("charset")),
            ("text/calendar", Some("REQUEST"), Some("utf-8"))
        );
        assert_eq!(file.filename(), Some("meeting.ics"));
        assert_eq!(file.content_type().unwrap().essence(), "application/ics");
        assert!(file.leaf_data().unwrap().starts_with(b"BEGIN:VCALENDAR\r\nVERSION"));
    }
}
