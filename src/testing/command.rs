//! Parsing one SMTP command line as the server receives it (RFC 5321 4.1).
//!
//! Parsing is deliberately strict where a lenient server would hide a client bug (control
//! bytes, missing angle brackets, arguments on commands that take none) and lenient where
//! real servers are (verb case, a space after `FROM:`).

use super::reply::Reply;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Helo(String),
    Ehlo(String),
    Mail {
        path: String,
        params: Vec<String>,
    },
    Rcpt {
        path: String,
        params: Vec<String>,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// A command this server knows but does not implement (RFC 5321 4.2.4: 502).
    NotImplemented,
}

/// Longest reverse- or forward-path, angle brackets excluded.
///
/// RFC 5321 4.5.3.1.3: "The maximum total length of a reverse-path or forward-path is 256
/// octets (including the punctuation and element separators)."
const MAX_PATH: usize = 256;

fn syntax(text: &'static str) -> Reply {
    Reply::enhanced(501, "5.5.4", text)
}

/// Parse a command line without its line ending.
pub(crate) fn parse(line: &[u8]) -> Result<Command, Reply> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(Reply::enhanced(500, "5.5.2", "Command line is not valid UTF-8"));
    };
    // RFC 5321 4.1.1: commands are printable text; a control byte here is either a client
    // bug or an injection attempt, and a test wants to see it refused.
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Reply::enhanced(500, "5.5.2", "Control character in command line"));
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |cmd: Command| if rest.trim().is_empty() { Ok(cmd) } else { Err(syntax("Syntax error")) };
    match verb.as_str() {
        "HELO" | "EHLO" => {
            let name = rest.trim();
            if name.is_empty() || name.contains(' ') {
                return Err(syntax("Syntax: EHLO hostname"));
            }
            Ok(if verb == "HELO" { Command::Helo(name.into()) } else { Command::Ehlo(name.into()) })
        }
        "MAIL" => {
            let arg = strip_prefix_ci(rest, "FROM:").ok_or_else(|| syntax("Syntax: MAIL FROM:<address>"))?;
            let (path, params) = path_and_params(arg, true)?;
            Ok(Command::Mail { path, params })
        }
        "RCPT" => {
            let arg = strip_prefix_ci(rest, "TO:").ok_or_else(|| syntax("Syntax: RCPT TO:<address>"))?;
            let (path, params) = path_and_params(arg, false)?;
            Ok(Command::Rcpt { path, params })
        }
        "DATA" => no_args(Command::Data),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_args(Command::Rset),
        // RFC 5321 4.1.1.9: "If a parameter string is specified, servers SHOULD ignore it."
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => {
            if rest.trim().is_empty() {
                Err(syntax("Syntax: VRFY address"))
            } else {
                Ok(Command::Vrfy)
            }
        }
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            let Some(mechanism) = words.next() else {
                return Err(syntax("Syntax: AUTH mechanism [initial-response]"));
            };
            let initial = words.next().map(str::to_owned);
            if words.next().is_some() {
                return Err(syntax("Syntax: AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth { mechanism: mechanism.to_ascii_uppercase(), initial })
        }
        "EXPN" | "TURN" | "ETRN" | "SEND" | "SOML" | "SAML" => Ok(Command::NotImplemented),
        _ => Err(Reply::enhanced(500, "5.5.2", "Command unrecognized")),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| s[prefix.len()..].trim_start_matches(' '))
}

/// RFC 3030 2: `bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF`.
fn parse_bdat(rest: &str) -> Result<Command, Reply> {
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or_else(|| syntax("Syntax: BDAT chunk-size [LAST]"))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(syntax("Syntax: BDAT chunk-size [LAST]")),
    };
    if words.next().is_some() {
        return Err(syntax("Syntax: BDAT chunk-size [LAST]"));
    }
    Ok(Command::Bdat { size, last })
}

/// Split `<path> PARAM PARAM=value` into the path (brackets and any source route removed)
/// and the parameters as sent.
fn path_and_params(arg: &str, reverse: bool) -> Result<(String, Vec<String>), Reply> {
    let bad = || {
        if reverse {
            Reply::enhanced(501, "5.1.7", "Bad sender address syntax")
        } else {
            Reply::enhanced(501, "5.1.3", "Bad recipient address syntax")
        }
    };
    let inner = arg.strip_prefix('<').ok_or_else(bad)?;
    let close = closing_bracket(inner).ok_or_else(bad)?;
    let mut path = &inner[..close];
    let rest = &inner[close + 1..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Err(bad());
    }
    if path.len() > MAX_PATH {
        return Err(bad());
    }
    // RFC 5321 4.1.1.3: "Servers MUST be prepared to encounter a list of source routes in
    // the forward-path, but they SHOULD ignore the routes."
    if path.starts_with('@') {
        path = &path[path.find(':').ok_or_else(bad)? + 1..];
    }
    if !valid_mailbox(path, reverse) {
        return Err(bad());
    }
    let mut params = Vec::new();
    for word in rest.split(' ').filter(|w| !w.is_empty()) {
        let keyword = word.split('=').next().unwrap_or_default();
        // RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        let ok_keyword = keyword.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && keyword.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok_keyword || word.ends_with('=') {
            return Err(Reply::enhanced(501, "5.5.4", "Malformed parameter"));
        }
        params.push(word.to_owned());
    }
    Ok((path.to_owned(), params))
}

/// Index of the `>` closing the path, skipping quoted strings (a quoted local part may hold
/// `>` and spaces).
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `local@domain`, the null path (MAIL only) or `postmaster` (RCPT only).
fn valid_mailbox(path: &str, reverse: bool) -> bool {
    if path.is_empty() {
        return reverse;
    }
    if !reverse && path.eq_ignore_ascii_case("postmaster") {
        return true;
    }
    match path.rfind('@') {
        Some(at) => {
            let (local, domain) = (&path[..at], &path[at + 1..]);
            !local.is_empty() && !domain.is_empty() && (local.starts_with('"') || !local.contains(' '))
        }
        None => false,
    }
}

/// The keyword of a parameter, upper-cased, and its value if any.
pub(crate) fn param_parts(param: &str) -> (String, Option<&str>) {
    match param.split_once('=') {
        Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
        None => (param.to_ascii_uppercase(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> u16 {
        parse(line.as_bytes()).unwrap_err().code
    }

    #[test]
    fn mail_with_params() {
        assert_eq!(
            parse(b"mail from:<a@b.example> SIZE=100 BODY=8BITMIME").unwrap(),
            Command::Mail {
                path: "a@b.example".into(),
                params: vec!["SIZE=100".into(), "BODY=8BITMIME".into()]
            }
        );
        assert_eq!(
            parse(b"MAIL FROM: <>").unwrap(),
            Command::Mail { path: String::new(), params: Vec::new() }
        );
    }

    #[test]
    fn rcpt_quoted_and_routed() {
        assert_eq!(
            parse(br#"RCPT TO:<"john >doe"@x.example> NOTIFY=NEVER"#).unwrap(),
            Command::Rcpt { path: r#""john >doe"@x.example"#.into(), params: vec!["NOTIFY=NEVER".into()] }
        );
        assert_eq!(
            parse(b"RCPT TO:<@relay.example,@r2.example:u@d.example>").unwrap(),
            Command::Rcpt { path: "u@d.example".into(), params: Vec::new() }
        );
        assert_eq!(
            parse(b"RCPT TO:<Postmaster>").unwrap(),
            Command::Rcpt { path: "Postmaster".into(), params: Vec::new() }
        );
    }

    #[test]
    fn bad_paths() {
        assert_eq!(code("MAIL FROM:a@b"), 501);
        assert_eq!(code("MAIL FROM:<a@b"), 501);
        assert_eq!(code("RCPT TO:<>"), 501);
        assert_eq!(code("RCPT TO:<nodomain>"), 501);
        assert_eq!(code("RCPT TO:<a@b>x"), 501);
        assert_eq!(code("MAIL FROM:<a@b> SIZE="), 501);
        assert_eq!(code("MAIL FROM:<a@b> =1"), 501);
        let long = format!("RCPT TO:<{}@b>", "a".repeat(300));
        assert_eq!(code(&long), 501);
    }

    #[test]
    fn bdat_forms() {
        assert_eq!(parse(b"BDAT 0 LAST").unwrap(), Command::Bdat { size: 0, last: true });
        assert_eq!(parse(b"bdat 512").unwrap(), Command::Bdat { size: 512, last: false });
        assert_eq!(code("BDAT"), 501);
        assert_eq!(code("BDAT -1"), 501);
        assert_eq!(code("BDAT +5"), 501);
        assert_eq!(code("BDAT 5 FIRST"), 501);
    }

    #[test]
    fn arguments_and_unknowns() {
        assert_eq!(code("DATA now"), 501);
        assert_eq!(code("STARTTLS x"), 501);
        assert_eq!(code("EHLO"), 501);
        assert_eq!(code("FROB"), 500);
        assert_eq!(code("NOOP\0"), 500);
        assert_eq!(parse(b"EXPN list").unwrap(), Command::NotImplemented);
        assert_eq!(parse(b"NOOP anything").unwrap(), Command::Noop);
        assert_eq!(parse(b"ehlo client.example").unwrap(), Command::Ehlo("client.example".into()));
        assert_eq!(
            parse(b"AUTH plain AGFsaWNlAHMzY3JldA==").unwrap(),
            Command::Auth { mechanism: "PLAIN".into(), initial: Some("AGFsaWNlAHMzY3JldA==".into()) }
        );
        assert_eq!(parse(&[0xff, b'A']).unwrap_err().code, 500);
    }
}
