//! US social security numbers.
//!
//! Rule: `AAA-GG-SSSS` with dashes (a bare nine-digit run is
//! indistinguishable from any other number and is left alone), standing
//! alone (not glued to a letter, digit, `_`, `.`, `-`, `/` on the left,
//! nor to a letter, digit, `_` or `-`/`.` + digit on the right), and not in
//! the never-issued ranges: area `000`, `666` or `900`-`999`, group `00`,
//! serial `0000`.

use super::config::Detector;
use super::text::{before, is_digit, is_word, Span};

/// `AAA-GG-SSSS`.
const LEN: usize = 11;
/// Area numbers never issued.
const AREA_FORBIDDEN: u32 = 666;
/// First area number of the reserved 9xx range.
const AREA_RESERVED_FROM: u32 = 900;

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |a, &b| a * 10 + u32::from(b - b'0'))
}

fn shape(c: &[u8]) -> bool {
    c.len() == LEN
        && c.iter().enumerate().all(|(k, &b)| {
            if k == 3 || k == 6 {
                b == b'-'
            } else {
                is_digit(b)
            }
        })
}

/// `AAA-GG-SSSS` in the issued ranges.
pub(crate) fn valid(c: &[u8]) -> bool {
    if !shape(c) {
        return false;
    }
    let area = num(&c[0..3]);
    let group = num(&c[4..6]);
    let serial = num(&c[7..11]);
    area != 0 && area != AREA_FORBIDDEN && area < AREA_RESERVED_FROM && group != 0 && serial != 0
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i + LEN <= s.len() {
        if !is_digit(s[i]) {
            i += 1;
            continue;
        }
        let left_ok = before(s, i).map_or(true, |p| {
            !(is_word(p) || matches!(p, b'.' | b'-' | b'/' | b'+'))
        });
        let end = i + LEN;
        let right_ok = s.get(end).map_or(true, |&n| {
            let next_digit = s.get(end + 1).is_some_and(|&b| is_digit(b));
            !(is_word(n) || (matches!(n, b'-' | b'.') && next_digit))
        });
        if left_ok && right_ok && valid(&s[i..end]) {
            out.push(Span {
                start: i,
                end,
                kind: Detector::Ssn,
            });
            i = end;
        } else {
            // Skip the rest of this digit run.
            while i < s.len() && is_digit(s[i]) {
                i += 1;
            }
        }
    }
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
    fn finds_ssns() {
        for (s, want) in [
            ("123-45-6789", "123-45-6789"),
            ("ssn: 078-05-1120.", "078-05-1120"),
            ("(899-99-9999)", "899-99-9999"),
            ("a=001-01-0001&b", "001-01-0001"),
        ] {
            assert_eq!(found(s), vec![want], "{s}");
        }
    }

    #[test]
    fn leaves_invalid_ranges_and_look_alikes() {
        for s in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-99-9999",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "123 45 6789",
            "ORD-123-45-6789",
            "123-45-6789-01",
            "1123-45-6789",
            "123-45-67890",
            "2024-01-15",
            "v123-45-6789",
        ] {
            assert!(found(s).is_empty(), "{s}: {:?}", found(s));
        }
    }
}
