//! Capabilities: `Capabilities::from_ehlo` on arbitrary reply lines never panics, finds
//! every advertised keyword in any case, and answers `size()` and the AUTH list
//! consistently with an independent reading of the same lines.
//!
//! Input: the reply's line texts separated by `\n` (so a line may hold CR, NUL, 8-bit...).

use smtpkit::proto::capabilities::Capabilities;
use smtpkit::proto::code::ReplyCode;
use smtpkit::proto::reply::Reply;

/// `keyword` with its letters' case flipped in a pattern taken from `seed`.
fn mixed_case(keyword: &str, seed: usize) -> String {
    keyword
        .chars()
        .enumerate()
        .map(
            |(i, c)| if (seed >> (i % 8)) & 1 == 1 { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() },
        )
        .collect()
}

/// The fuzz target and corpus replay entry point.
pub fn check(data: &[u8]) {
    let lines: Vec<Box<[u8]>> = data.split(|&b| b == b'\n').map(Into::into).collect();
    let reply = Reply::new(ReplyCode(250), lines.clone());
    let caps = Capabilities::from_ehlo(&reply);
    assert_eq!(caps, Capabilities::from_ehlo(&reply), "deterministic");

    let texts: Vec<String> = lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    let first = texts.first().map(String::as_str).unwrap_or_default();
    assert_eq!(caps.domain(), first.split(' ').next().unwrap_or_default());

    // Independent reading: (keyword as written, params) of each line after the first.
    let mut model: Vec<(String, Vec<String>)> = Vec::new();
    for text in texts.iter().skip(1) {
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        let Some((head, rest)) = words.split_first() else { continue };
        let mut params: Vec<String> = rest.iter().map(|w| w.to_string()).collect();
        let keyword = match head.split_once('=') {
            Some((k, p)) => {
                params.insert(0, p.to_string());
                k
            }
            None => head,
        };
        model.push((keyword.to_string(), params));
    }
    assert_eq!(caps.iter().count(), model.len());
    for ((kw, params), (mk, mp)) in caps.iter().zip(&model) {
        assert_eq!(kw, mk.to_ascii_uppercase());
        assert_eq!(params, &mp[..]);
    }
    for (i, (keyword, _)) in model.iter().enumerate() {
        for probe in [
            keyword.clone(),
            keyword.to_ascii_lowercase(),
            keyword.to_ascii_uppercase(),
            mixed_case(keyword, i),
        ] {
            assert!(caps.has(&probe), "{probe:?} advertised but not found");
            assert!(caps.params(&probe).is_some());
        }
    }
    // Not advertised means not found.
    let advertised = |k: &str| model.iter().any(|(m, _)| m.eq_ignore_ascii_case(k));
    for (name, flag) in [
        ("PIPELINING", caps.pipelining()),
        ("CHUNKING", caps.chunking()),
        ("STARTTLS", caps.starttls()),
        ("8BITMIME", caps.eight_bit_mime()),
        ("SMTPUTF8", caps.smtputf8()),
        ("DSN", caps.dsn()),
        ("ENHANCEDSTATUSCODES", caps.enhanced_status_codes()),
        ("REQUIRETLS", caps.requiretls()),
    ] {
        assert_eq!(flag, advertised(name), "{name}");
        assert_eq!(flag, caps.has(&name.to_ascii_lowercase()), "{name}");
    }

    // SIZE: the first SIZE line decides; 0 or garbage means "no limit announced".
    let size_line = model.iter().find(|(k, _)| k.eq_ignore_ascii_case("size"));
    let expected_size =
        size_line.map(|(_, p)| p.first().and_then(|v| v.parse::<u64>().ok()).filter(|&n| n > 0));
    assert_eq!(caps.size(), expected_size);
    if let Some(Some(n)) = caps.size() {
        assert!(n > 0);
    }

    // AUTH: every mechanism of every AUTH line, upper-cased, once, in order.
    let mut mechs: Vec<String> = Vec::new();
    for (_, params) in model.iter().filter(|(k, _)| k.eq_ignore_ascii_case("auth")) {
        for m in params {
            let m = m.to_ascii_uppercase();
            if !mechs.contains(&m) {
                mechs.push(m);
            }
        }
    }
    assert_eq!(caps.auth_mechanisms(), &mechs[..]);
}
