//! What a file is, from its bytes and its name: magic numbers (the `infer` crate), the
//! executable and script types a mail provider blocks, and which declared types agree with
//! the detected one.

/// Extensions Gmail refuses as attachments ("File types you can't include as
/// attachments", Gmail Help), lower case, sorted: programs, scripts, installers, shortcuts
/// and disk images that can carry them.
pub(crate) const DENIED_EXTENSIONS: &[&str] = &[
    "ade",
    "adp",
    "apk",
    "appx",
    "appxbundle",
    "bat",
    "cab",
    "chm",
    "cmd",
    "com",
    "cpl",
    "diagcab",
    "diagcfg",
    "diagpack",
    "dll",
    "dmg",
    "ex",
    "ex_",
    "exe",
    "hta",
    "img",
    "ins",
    "iso",
    "isp",
    "jar",
    "jnlp",
    "js",
    "jse",
    "lib",
    "lnk",
    "mde",
    "mjs",
    "msc",
    "msi",
    "msix",
    "msixbundle",
    "msp",
    "mst",
    "nsh",
    "pif",
    "ps1",
    "scr",
    "sct",
    "shb",
    "sys",
    "vb",
    "vbe",
    "vbs",
    "vhd",
    "vxd",
    "wsc",
    "wsf",
    "wsh",
    "xll",
];

/// Declared types that name a program or a script, lower case, sorted.
const EXECUTABLE_TYPES: &[&str] = &[
    "application/hta",
    "application/java-archive",
    "application/javascript",
    "application/vnd.android.package-archive",
    "application/vnd.microsoft.portable-executable",
    "application/vnd.ms-cab-compressed",
    "application/wasm",
    "application/x-bat",
    "application/x-csh",
    "application/x-dosexec",
    "application/x-elf",
    "application/x-executable",
    "application/x-java-archive",
    "application/x-javascript",
    "application/x-mach-binary",
    "application/x-ms-installer",
    "application/x-ms-shortcut",
    "application/x-msdos-program",
    "application/x-msdownload",
    "application/x-msi",
    "application/x-powershell",
    "application/x-sh",
    "application/x-sharedlib",
    "application/x-shellscript",
    "application/x-vbscript",
    "text/javascript",
    "text/vbscript",
    "text/x-shellscript",
];

/// Types `infer` detects that are programs or scripts.
const EXECUTABLE_CONTENT: &[&str] = &[
    "application/java",
    "application/vnd.android.dex",
    "application/vnd.android.dey",
    "application/vnd.microsoft.portable-executable",
    "application/wasm",
    "application/x-executable",
    "application/x-google-chrome-extension",
    "application/x-mach-binary",
    "text/x-shellscript",
];

/// The type of `data` from its first octets, if it is one `infer` knows. A `#!` line makes
/// it a script whatever follows (infer only knows some interpreters).
pub(crate) fn detect(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"#!") {
        return Some("text/x-shellscript");
    }
    match infer::get(data).map(|t| t.mime_type()) {
        Some(PE) if !is_pe(data) => None,
        other => other,
    }
}

const PE: &str = "application/vnd.microsoft.portable-executable";

/// infer takes any data starting with `MZ` for a Windows program, so text that begins
/// "MZ" would be refused. A PE file has a 64-octet DOS header whose `e_lfanew` (at 0x3C)
/// points at the `PE\0\0` signature; a pointer past the data (only a prefix was read) counts
/// as a program unless it is implausibly far (real headers put it within the first
/// kilobytes).
fn is_pe(data: &[u8]) -> bool {
    let Some(&[a, b, c, d]) = data.get(0x3c..0x40) else { return false };
    let offset = u32::from_le_bytes([a, b, c, d]) as usize;
    match data.get(offset..offset.saturating_add(4)) {
        Some(signature) => signature == b"PE\0\0",
        None => offset >= data.len() && offset < 64 << 10,
    }
}

/// True when `content_type` (lower case) is a program or a script.
pub(crate) fn is_executable_type(content_type: &str) -> bool {
    EXECUTABLE_TYPES.binary_search(&content_type).is_ok()
}

/// True when detected content is a program or a script.
pub(crate) fn is_executable_content(detected: &str) -> bool {
    EXECUTABLE_CONTENT.contains(&detected)
}

/// Names for one type: what infer reports and what people declare.
const ALIASES: &[(&str, &str)] = &[
    ("application/font-sfnt", "font/otf"),
    ("application/font-sfnt", "font/ttf"),
    ("application/font-woff", "font/woff"),
    ("application/font-woff", "font/woff2"),
    ("application/gzip", "application/x-gzip"),
    ("application/vnd.rar", "application/x-rar-compressed"),
    ("application/zip", "application/x-zip-compressed"),
    ("audio/m4a", "audio/mp4"),
    ("audio/m4a", "audio/x-m4a"),
    ("audio/x-flac", "audio/flac"),
    ("audio/x-wav", "audio/wav"),
    ("audio/x-wav", "audio/vnd.wave"),
    ("image/heif", "image/heic"),
    ("image/jpeg", "image/jpg"),
    ("image/jpeg", "image/pjpeg"),
    ("image/vnd.microsoft.icon", "image/x-icon"),
    ("video/x-m4v", "video/mp4"),
    ("video/x-msvideo", "video/avi"),
];

/// Text formats infer recognises by a leading keyword (`<html`, `-----BEGIN`): any text
/// may start that way (an AMP part, a PGP signature, a page saved as `.txt`), so they never
/// contradict a declared type. Binary magic numbers do.
const WEAK: &[&str] = &["application/x-x509-ca-cert", "text/html"];

/// Formats stored inside a ZIP or an OLE compound file: infer may report the container.
const IN_ZIP: &[&str] = &[
    "application/epub+zip",
    "application/vnd.oasis.opendocument.presentation",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
];
const IN_OLE: &[&str] = &[
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-outlook",
    "application/vnd.ms-powerpoint",
];

/// True when a part declared (or named) as `declared` may hold content detected as
/// `detected`. `application/octet-stream` claims nothing, so it agrees with anything.
pub(crate) fn agrees(declared: &str, detected: &str) -> bool {
    WEAK.contains(&detected)
        || declared == detected
        || declared == super::content_type::OCTET_STREAM
        || ALIASES.iter().any(|&(a, b)| (a, b) == (detected, declared) || (a, b) == (declared, detected))
        || (detected == "application/zip" && (IN_ZIP.contains(&declared) || declared.ends_with("+zip")))
        || (detected == "application/x-ole-storage" && IN_OLE.contains(&declared))
        // A container detected as its specific format, declared as the container.
        || (declared == "application/zip" && IN_ZIP.contains(&detected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_lower_case() {
        for table in [DENIED_EXTENSIONS, EXECUTABLE_TYPES] {
            for pair in table.windows(2) {
                assert!(pair[0] < pair[1], "{pair:?}");
            }
            assert!(table.iter().all(|e| e.to_ascii_lowercase() == *e));
        }
    }

    #[test]
    fn detects_programs_and_scripts() {
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
        elf.resize(64, 0);
        assert_eq!(detect(&elf), Some("application/x-executable"));
        let mut pe = b"MZ\x90\0\x03\0\0\0".to_vec();
        pe.resize(0x80, 0);
        pe[0x3c] = 0x80;
        assert!(is_executable_content(detect(&pe).unwrap()), "PE prefix, signature not read");
        pe.extend_from_slice(b"PE\0\0");
        assert!(is_executable_content(detect(&pe).unwrap()));
        pe[0x80] = b'X';
        assert_eq!(detect(&pe), None, "no PE signature where e_lfanew points");
        assert_eq!(detect(b"MZ is the code of Mizoram, a state of India, in this CSV file.\n"), None);
        assert_eq!(detect(b"#!/usr/bin/env python3\nprint()"), Some("text/x-shellscript"));
        assert_eq!(detect(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(detect(b"plain text"), None);
    }

    #[test]
    fn agreement() {
        assert!(agrees("image/jpg", "image/jpeg"));
        assert!(agrees("application/octet-stream", "application/pdf"));
        assert!(agrees(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/zip"
        ));
        assert!(!agrees("application/pdf", "image/png"));
        assert!(agrees("text/plain", "text/html"));
        assert!(agrees("application/pgp-signature", "application/x-x509-ca-cert"));
        assert!(!agrees("text/plain", "application/pdf"));
    }
}
