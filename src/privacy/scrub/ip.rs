//! IP address literals.
//!
//! IPv4 rule: exactly four dot-separated decimal parts, each 0-255 written
//! without leading zeros (`01.2.3.4` is not an address literal), and not
//! in a version-like context: not preceded by a letter, digit, `_`, `.`,
//! `-`, `/` or `+` (`Chrome/120.0.0.0`, `v1.2.3.4`, `build-1.2.3.4`), not
//! followed by a letter, digit, `_`, or `.`/`-` + digit (`1.2.3.4.5`,
//! `10.0.19045.2965` has a part above 255 anyway). Strings under keys whose
//! normalized name ends in `version`/`versions` or is `build` are not scanned for
//! IPs at all (`app_version: "1.2.3.4"`). A bare `1.2.3.4` elsewhere is an
//! address.
//!
//! IPv6 rule: a maximal run of hex digits, `:` and `.` with at least two
//! colons and at least one decimal digit (so `a::b` and `dead::beef` in
//! prose are not addresses), a single leading `:` being punctuation
//! (`ip:2001:db8::1`), not glued to a letter, digit or `_`, that
//! parses as [`std::net::Ipv6Addr`] (after dropping one trailing `.` or
//! `:`). Times (`10:30:00`) and MAC addresses do not parse.
//!
//! The host of a URL is never scanned (it names a server, not a visitor),
//! and `context.ip` is left to the IP anonymization step.

use std::net::Ipv6Addr;

use super::config::Detector;
use super::text::{before, is_digit, is_word, Span};

/// Parts in a dotted quad.
const PARTS: usize = 4;
/// Largest value of one part.
const MAX_PART: u32 = 255;

fn left_ok_v4(s: &[u8], i: usize) -> bool {
    before(s, i).map_or(true, |p| {
        !(is_word(p) || matches!(p, b'.' | b'-' | b'/' | b'+'))
    })
}

/// Parses one decimal part at `j`; returns its end.
fn part(s: &[u8], j: usize) -> Option<usize> {
    let mut e = j;
    let mut v = 0u32;
    while e < s.len() && is_digit(s[e]) && e - j < 3 {
        v = v * 10 + u32::from(s[e] - b'0');
        e += 1;
    }
    let len = e - j;
    if len == 0
        || v > MAX_PART
        || (len > 1 && s[j] == b'0')
        || s.get(e).is_some_and(|&b| is_digit(b))
    {
        return None;
    }
    Some(e)
}

fn v4_at(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for k in 0..PARTS {
        j = part(s, j)?;
        if k + 1 < PARTS {
            if s.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    let next_digit = s.get(j + 1).is_some_and(|&b| is_digit(b));
    match s.get(j) {
        Some(&n) if is_word(n) || (matches!(n, b'.' | b'-') && next_digit) => None,
        _ => Some(j),
    }
}

pub(crate) fn find_v4(s: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < s.len() {
        match s[i..].iter().position(u8::is_ascii_digit) {
            Some(k) => i += k,
            None => return,
        }
        if left_ok_v4(s, i) {
            if let Some(end) = v4_at(s, i) {
                out.push(Span {
                    start: i,
                    end,
                    kind: Detector::Ip,
                });
                i = end;
                continue;
            }
        }
        // Skip this run of digits and dots: no address starts inside it.
        while i < s.len() && (is_digit(s[i]) || s[i] == b'.') {
            i += 1;
        }
    }
}

#[inline]
fn is_v6(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

pub(crate) fn find_v6(s: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < s.len() {
        if !is_v6(s[i]) {
            i += 1;
            continue;
        }
        // `ip:2001:db8::1`: a single leading colon is punctuation.
        let lead = s[i] == b':' && s.get(i + 1).is_some_and(|&b| b != b':');
        let start = i + usize::from(lead);
        let mut colons = 0;
        let mut digit = false;
        while i < s.len() && is_v6(s[i]) {
            colons += usize::from(s[i] == b':');
            digit |= is_digit(s[i]);
            i += 1;
        }
        colons -= usize::from(lead);
        if colons < 2 || !digit {
            continue;
        }
        if before(s, start).is_some_and(is_word) || s.get(i).is_some_and(|&b| is_word(b)) {
            continue;
        }
        let mut end = i;
        if matches!(s[end - 1], b'.' | b':') && !s[..end].ends_with(b"::") {
            end -= 1;
        }
        let Ok(text) = std::str::from_utf8(&s[start..end]) else {
            continue;
        };
        if text.parse::<Ipv6Addr>().is_ok() {
            out.push(Span {
                start,
                end,
                kind: Detector::Ip,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        find_v4(s.as_bytes(), &mut v);
        find_v6(s.as_bytes(), &mut v);
        crate::privacy::scrub::text::merge(&mut v);
        v.iter().map(|m| &s[m.start..m.end]).collect()
    }

    #[test]
    fn finds_addresses() {
        let cases: &[(&str, &[&str])] = &[
            ("192.168.1.10", &["192.168.1.10"]),
            ("client 10.0.0.1 connected", &["10.0.0.1"]),
            ("ip=203.0.113.7&x", &["203.0.113.7"]),
            ("from 0.0.0.0:8080", &["0.0.0.0"]),
            ("net 10.0.0.0/8", &["10.0.0.0"]),
            ("(255.255.255.255)", &["255.255.255.255"]),
            ("1.2.3.4", &["1.2.3.4"]),
            ("2001:db8::1", &["2001:db8::1"]),
            (
                "[2001:db8:85a3::8a2e:370:7334]:443",
                &["2001:db8:85a3::8a2e:370:7334"],
            ),
            (
                "fe80::1ff:fe23:4567:890a here",
                &["fe80::1ff:fe23:4567:890a"],
            ),
            ("::ffff:192.0.2.128", &["::ffff:192.0.2.128"]),
            ("loopback ::1.", &["::1"]),
            ("ip:2001:db8::1", &["2001:db8::1"]),
            (
                "a 2001:0db8:0000:0000:0000:ff00:0042:8329 b",
                &["2001:0db8:0000:0000:0000:ff00:0042:8329"],
            ),
        ];
        for (s, want) in cases {
            assert_eq!(&found(s), want, "{s}");
        }
    }

    #[test]
    fn leaves_look_alikes() {
        for s in [
            "1.2.3",
            "10.0.19045.2965",
            "1.2.3.4.5",
            "Chrome/120.0.0.0 Safari/537.36",
            "v1.2.3.4",
            "build-1.2.3.4",
            "256.1.1.1",
            "01.02.03.04",
            "1.2.3.4a",
            "2024.01.15.1",
            "10:30:00",
            "2024-01-15T10:30:00.000Z",
            "00:1A:2B:3C:4D:5E",
            "std::vector",
            "a::b",
            "::",
            "#ff8800",
            "$1,299.99",
            "1.2.3.4-5",
        ] {
            assert!(found(s).is_empty(), "{s}: {:?}", found(s));
        }
    }
}
