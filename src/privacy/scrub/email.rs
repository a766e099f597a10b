//! Email addresses: `local@domain.tld`.
//!
//! Rule: around each `@`, the local part is the longest run to the left of
//! `[A-Za-z0-9._%+-]` or non-ASCII characters (1 to 64 bytes, leading dots
//! dropped, not ending in a dot); the domain is the longest run to the right
//! of `[A-Za-z0-9.-]` or non-ASCII characters, trailing dots and hyphens
//! dropped, with at least two labels of 1 to 63 bytes that neither start
//! nor end with `-`, and a top-level label of at least two letters (ASCII
//! or not). An apostrophe between two letters or digits belongs to the
//! local part (`o'brien@…`, as Irish and French names are written); a
//! quote around the address (`'jo@x.io'`) does not. Other RFC 5322
//! local-part characters (`=`, `/`, `!`, …) are left out on purpose, so
//! `email=jo@x.io` keeps `email=`.
//!
//! Not emails: `@handle`, `user@localhost`, `pkg@1.2.3` (numeric top
//! label), and image names like `logo@2x.png`: a top-level label that is a
//! common file extension (`png`, `jpg`, `svg`, `css`, `js`, …) is not a
//! domain.

use memchr::memchr_iter;

use super::config::Detector;
use super::text::Span;

/// Longest local part (RFC 5321).
const MAX_LOCAL: usize = 64;
/// Longest domain label (RFC 1035).
const MAX_LABEL: usize = 63;
/// Shortest top-level label.
const MIN_TLD: usize = 2;

/// Top-level labels that are file extensions, not domains.
const FILE_EXTENSIONS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"avif", b"ico", b"bmp", b"css", b"js",
    b"json", b"html", b"htm", b"pdf", b"mp4", b"webm",
];

#[inline]
fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') || b >= 0x80
}

/// A letter or digit (ASCII or not): what stands on both sides of an
/// apostrophe in a local part.
#[inline]
fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

#[inline]
fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b >= 0x80
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Span>) {
    let mut last_end = 0;
    for at in memchr_iter(b'@', s) {
        if at < last_end {
            continue;
        }
        let mut start = at;
        loop {
            if start > last_end && is_local(s[start - 1]) {
                start -= 1;
            } else if start > last_end + 1
                && start < at
                && s[start - 1] == b'\''
                && is_name(s[start - 2])
                && is_name(s[start])
            {
                // An apostrophe inside a name: `o'brien@…`.
                start -= 1;
            } else {
                break;
            }
        }
        while start < at && s[start] == b'.' {
            start += 1;
        }
        let local = &s[start..at];
        if local.is_empty() || local.len() > MAX_LOCAL || local.ends_with(b".") {
            continue;
        }
        let mut end = at + 1;
        while end < s.len() && is_domain(s[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(s[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if !valid_domain(&s[at + 1..end]) {
            continue;
        }
        out.push(Span {
            start,
            end,
            kind: Detector::Email,
        });
        last_end = end;
    }
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|&b| b == b'.') {
        if label.is_empty()
            || label.len() > MAX_LABEL
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2
        && last.len() >= MIN_TLD
        && last.iter().all(|&b| b.is_ascii_alphabetic() || b >= 0x80)
        && !FILE_EXTENSIONS
            .iter()
            .any(|ext| ext.eq_ignore_ascii_case(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        find(s.as_bytes(), &mut v);
        v.iter().map(|m| &s[m.start..m.end]).collect()
    }

    #[test]
    fn finds_emails() {
        let cases: &[(&str, &[&str])] = &[
            ("jane@example.com", &["jane@example.com"]),
            (
                "write to Jane.Doe+news@mail.example.co.uk.",
                &["Jane.Doe+news@mail.example.co.uk"],
            ),
            ("email=bob_99@x-y.io&x=1", &["bob_99@x-y.io"]),
            ("mailto:o'neil@example.org", &["o'neil@example.org"]),
            ("Mail: o'brien@example.ie", &["o'brien@example.ie"]),
            ("d'artagnan.c@exemple.fr", &["d'artagnan.c@exemple.fr"]),
            ("email='jo@x.io'", &["jo@x.io"]),
            ("'o'brien@example.ie'", &["o'brien@example.ie"]),
            ("it's jo@x.io", &["jo@x.io"]),
            ("<a@b.de>, c.d@e.fr", &["a@b.de", "c.d@e.fr"]),
            ("josé@exämple.de", &["josé@exämple.de"]),
            ("..x@y.com", &["x@y.com"]),
            ("user%40@host.net", &["user%40@host.net"]),
        ];
        for (s, want) in cases {
            assert_eq!(&found(s), want, "{s}");
        }
    }

    #[test]
    fn leaves_look_alikes() {
        for s in [
            "@handle",
            "follow @trackgate on social",
            "root@localhost",
            "lodash@4.17.21",
            "logo@2x.png",
            "sprite@3x.WEBP",
            "a@b.c",
            "x@-bad.com",
            "x@bad-.com",
            "trailing.@dot.com",
            "@scope/package",
            "@@",
            "price @ 12.99",
        ] {
            assert!(found(s).is_empty(), "{s}: {:?}", found(s));
        }
    }
}
