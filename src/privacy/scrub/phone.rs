//! Phone numbers: international `+CC …` and national formats with
//! separators.
//!
//! Grammar: an optional `+` (then a digit 1-9), then digit groups separated
//! by exactly one of ` `, `-`, `.`; one group may be in parentheses
//! (`(555) 123-4567`, `+44 (0) 20 …`). Accepted when:
//! - 9 to 15 digits in all (E.164 has at most 15);
//! - without `+`, at least two groups (a bare digit run is an id, an epoch,
//!   an order number: never a phone); with `+`, a single group is fine
//!   (`+15551234567`);
//! - groups after the first have at least 2 digits (except a parenthesized
//!   one) and at most 8 (12 after a `+`);
//! - when `.` separates groups, every group has at most 4 digits (so
//!   `10.0.19045.2965` and `1234567890.00` are not phones);
//! - it does not start like a date: a first group `19xx`/`20xx` followed by
//!   `-`, `.` or ` ` and a group of at most 2 digits;
//! - it stands alone: not preceded by a letter, digit, `_`, `.`, `-`, `/`,
//!   `\`, `#`, `$`, `@`, `%`, `+` (so `ORD-2024-000123`, UUIDs and paths are
//!   not phones), not followed by a letter, digit or `_`, nor by `:`, `/`,
//!   `.`, `,` + digit (times `2024-01-15 10:30`, decimals) or by `-`, `_`,
//!   `.` + letter or digit (longer identifiers).
//! - After `+CC`, the first national group may be a single digit
//!   (`+33 6 12 34 56 78`), also right after a parenthesized trunk prefix
//!   (`+33 (0)6 12 34 56 78`).
//!
//! Separators as written in Europe count too: a no-break space (U+00A0), a
//! narrow no-break space (U+202F, French typography) or a thin space
//! (U+2009) is a space; a `/` may separate a national area code from the
//! number, once, right after a first group of 2 to 5 digits starting with
//! `0` (German `030/1234567`, `0151/23456789`), so dates (`01/02/2024`)
//! and paths are still no phones.

use super::config::Detector;
use super::text::{before, is_digit, is_word, Span};

/// Fewest digits in a phone number.
pub(crate) const MIN_DIGITS: u32 = 9;
/// Most digits in a phone number (E.164).
const MAX_DIGITS: u32 = 15;
/// Longest group after the first, national numbers.
const MAX_GROUP: u32 = 8;
/// Longest group after the first when the number starts with `+`.
const MAX_GROUP_INTL: u32 = 12;
/// Longest group when groups are separated by dots.
const MAX_DOT_GROUP: u32 = 4;
/// Longest parenthesized group.
const MAX_PAREN: u32 = 5;
/// Longest national area code before a `/`.
const MAX_SLASH_AREA: u32 = 5;
/// Shortest national area code before a `/` (with its `0`).
const MIN_SLASH_AREA: u32 = 2;

/// Spaces other than ASCII's that separate digit groups, UTF-8 encoded:
/// no-break, narrow no-break and thin space.
const WIDE_SPACES: [&[u8]; 3] = [
    "\u{a0}".as_bytes(),
    "\u{202f}".as_bytes(),
    "\u{2009}".as_bytes(),
];

/// The separator at `j` (as `b' '` for every space) and its length in bytes.
fn separator(s: &[u8], j: usize) -> Option<(u8, usize)> {
    match s.get(j)? {
        &sep @ (b' ' | b'-' | b'.' | b'/') => Some((sep, 1)),
        _ => WIDE_SPACES
            .iter()
            .find(|w| s.get(j..j + w.len()) == Some(w))
            .map(|w| (b' ', w.len())),
    }
}

fn left_ok(s: &[u8], i: usize) -> bool {
    match before(s, i) {
        None => true,
        Some(p) => {
            !(is_word(p)
                || matches!(
                    p,
                    b'.' | b'-' | b'/' | b'\\' | b'#' | b'$' | b'@' | b'%' | b'+'
                ))
        }
    }
}

fn right_ok(s: &[u8], end: usize) -> bool {
    let Some(&n) = s.get(end) else {
        return true;
    };
    if is_word(n) {
        return false;
    }
    let next = s.get(end + 1).copied();
    let next_digit = next.is_some_and(is_digit);
    let next_alnum = next.is_some_and(|b| b.is_ascii_alphanumeric());
    !((matches!(n, b':' | b'/' | b'.' | b',') && next_digit)
        || (matches!(n, b'-' | b'_' | b'.') && next_alnum))
}

struct Shape {
    end: usize,
    digits: u32,
    groups: u32,
    first: u32,
    first_value: u32,
    second: u32,
    max_later: u32,
    min_later_plain: u32,
    max_group: u32,
    dot_sep: bool,
    first_sep: u8,
}

/// Parses the longest phone-shaped run at `i` (a digit, `+` or `(`).
fn parse(s: &[u8], i: usize) -> Option<(Shape, bool)> {
    let mut j = i;
    let plus = s[j] == b'+';
    if plus {
        j += 1;
        if !s.get(j).is_some_and(|&b| (b'1'..=b'9').contains(&b)) {
            return None;
        }
    }
    let mut sh = Shape {
        end: j,
        digits: 0,
        groups: 0,
        first: 0,
        first_value: 0,
        second: u32::MAX,
        max_later: 0,
        min_later_plain: u32::MAX,
        max_group: 0,
        dot_sep: false,
        first_sep: 0,
    };
    let mut paren_used = false;
    // The index of the parenthesized group, if any.
    let mut paren_group = None;
    let mut slash_used = false;
    let national_zero = !plus && s.get(i) == Some(&b'0');
    loop {
        let (len, value, paren) = if s.get(j) == Some(&b'(') {
            if paren_used {
                break;
            }
            let k0 = j + 1;
            let mut k = k0;
            while k < s.len() && is_digit(s[k]) {
                k += 1;
            }
            let len = (k - k0) as u32;
            if len == 0 || len > MAX_PAREN || s.get(k) != Some(&b')') {
                break;
            }
            paren_used = true;
            paren_group = Some(sh.groups);
            j = k + 1;
            // `(555) 123` or `(555)123`: one optional separator after.
            (len, 0, true)
        } else if s.get(j).is_some_and(|&b| is_digit(b)) {
            let k0 = j;
            let mut value = 0u32;
            while j < s.len() && is_digit(s[j]) {
                if j - k0 < 4 {
                    value = value * 10 + u32::from(s[j] - b'0');
                }
                j += 1;
            }
            ((j - k0) as u32, value, false)
        } else {
            break;
        };
        sh.digits += len;
        if sh.groups == 0 {
            sh.first = len;
            sh.first_value = value;
        } else {
            if sh.groups == 1 {
                sh.second = len;
            }
            sh.max_later = sh.max_later.max(len);
            // After `+CC` the first national group may be one digit
            // (`+33 6 12 34 56 78`, `+33 (0)6 12 34 56 78`).
            let exempt = plus && (sh.groups == 1 || (sh.groups == 2 && paren_group == Some(1)));
            if !paren && !exempt {
                sh.min_later_plain = sh.min_later_plain.min(len);
            }
        }
        sh.max_group = sh.max_group.max(len);
        sh.groups += 1;
        sh.end = j;
        match separator(s, j) {
            Some((sep, n)) if s.get(j + n).is_some_and(|&b| is_digit(b) || b == b'(') => {
                if sep == b'.' {
                    if paren {
                        break;
                    }
                    sh.dot_sep = true;
                }
                if sep == b'/' {
                    let area = sh.groups == 1
                        && national_zero
                        && (MIN_SLASH_AREA..=MAX_SLASH_AREA).contains(&len);
                    if slash_used || !area || s.get(j + 1) == Some(&b'(') {
                        break;
                    }
                    slash_used = true;
                }
                if sh.groups == 1 {
                    sh.first_sep = sep;
                }
                j += n;
            }
            _ if paren && s.get(j).is_some_and(|&b| is_digit(b)) => {}
            _ => break,
        }
    }
    Some((sh, plus))
}

fn accept(sh: &Shape, plus: bool) -> bool {
    if sh.digits < MIN_DIGITS || sh.digits > MAX_DIGITS {
        return false;
    }
    if !plus && sh.groups < 2 {
        return false;
    }
    if sh.groups >= 2 {
        let max = if plus { MAX_GROUP_INTL } else { MAX_GROUP };
        if sh.max_later > max || sh.min_later_plain < 2 {
            return false;
        }
        if !plus && sh.first > max {
            return false;
        }
    }
    if sh.dot_sep && sh.max_group > MAX_DOT_GROUP {
        return false;
    }
    let date_like = sh.first == 4
        && (1900..2100).contains(&sh.first_value)
        && sh.second <= 2
        && sh.first_sep != 0;
    !date_like || plus
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if !(is_digit(b) || b == b'+' || b == b'(') {
            i += 1;
            continue;
        }
        if !left_ok(s, i) {
            // Skip the rest of this glued run of digits.
            i += 1;
            while i < s.len() && is_digit(s[i]) {
                i += 1;
            }
            continue;
        }
        match parse(s, i) {
            Some((sh, plus)) if sh.end > i => {
                if accept(&sh, plus) && right_ok(s, sh.end) {
                    out.push(Span {
                        start: i,
                        end: sh.end,
                        kind: Detector::Phone,
                    });
                }
                i = sh.end;
            }
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A space as French and German typography write it.
    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![" ", "\u{a0}", "\u{202f}", "\u{2009}"])
    }

    proptest! {
        /// French numbers, national or `+33` with or without the `(0)`
        /// trunk prefix, grouped in pairs by any space: found whole.
        #[test]
        fn french_numbers_are_found_whole(
            first in 1u8..=9,
            pairs in prop::collection::vec(0u8..100, 4),
            sep in space(),
            form in 0u8..3,
        ) {
            let rest: Vec<String> = pairs.iter().map(|p| format!("{p:02}")).collect();
            let rest = rest.join(sep);
            let number = match form {
                0 => format!("0{first}{sep}{rest}"),
                1 => format!("+33{sep}{first}{sep}{rest}"),
                _ => format!("+33{sep}(0){first}{sep}{rest}"),
            };
            let text = format!("Tél. : {number}, merci");
            prop_assert_eq!(found(&text), vec![number.as_str()]);
        }

        /// German numbers with the area code before a slash: found whole.
        #[test]
        fn german_slash_numbers_are_found_whole(
            area in "0[1-9][0-9]{1,3}",
            number in "[1-9][0-9]{5,7}",
        ) {
            let n = format!("{area}/{number}");
            let text = format!("Telefon: {n} (Büro)");
            prop_assert_eq!(found(&text), vec![n.as_str()]);
        }

        /// Dates with slashes, amounts with a decimal comma and wide-space
        /// thousands, and versions survive.
        #[test]
        fn look_alikes_survive(
            d in 1u8..=28, m in 1u8..=12, y in 1990u16..2100,
            amount in 0u32..1_000_000_000, cents in 0u8..100,
            sep in space(),
            v in prop::collection::vec(0u16..10_000, 4),
        ) {
            let amount = {
                let s = amount.to_string();
                let mut out = String::new();
                for (i, c) in s.chars().enumerate() {
                    if i > 0 && (s.len() - i) % 3 == 0 {
                        out.push_str(sep);
                    }
                    out.push(c);
                }
                out
            };
            for text in [
                format!("{d:02}/{m:02}/{y}"),
                format!("{y}/{m:02}/{d:02}"),
                format!("le {d:02}/{m:02}/{y} à 10:30"),
                format!("{amount},{cents:02}{sep}€"),
                format!("v{}.{}.{}.{}", v[0], v[1], v[2], v[3]),
            ] {
                prop_assert!(found(&text).is_empty(), "{}: {:?}", text, found(&text));
            }
        }
    }

    fn found(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        find(s.as_bytes(), &mut v);
        v.iter().map(|m| &s[m.start..m.end]).collect()
    }

    #[test]
    fn finds_phones() {
        let cases: &[(&str, &str)] = &[
            ("+1 555 123 4567", "+1 555 123 4567"),
            ("call +1 (555) 123-4567 now", "+1 (555) 123-4567"),
            ("(555) 123-4567", "(555) 123-4567"),
            ("(555)123-4567", "(555)123-4567"),
            ("555-123-4567", "555-123-4567"),
            ("555.123.4567", "555.123.4567"),
            ("1-800-555-1234", "1-800-555-1234"),
            ("tel: +44 20 7946 0958.", "+44 20 7946 0958"),
            ("+44 (0) 20 7946 0958", "+44 (0) 20 7946 0958"),
            ("020 7946 0958", "020 7946 0958"),
            ("06 12 34 56 78", "06 12 34 56 78"),
            ("+33 6 12 34 56 78", "+33 6 12 34 56 78"),
            ("0151 23456789", "0151 23456789"),
            ("+49 151 23456789", "+49 151 23456789"),
            ("+4915123456789", "+4915123456789"),
            ("06-12345678", "06-12345678"),
            ("phone=555-123-4567&x=1", "555-123-4567"),
            ("\"612 345 678\"", "612 345 678"),
            ("+91 98765 43210", "+91 98765 43210"),
            // As written in France and Germany.
            (
                "06\u{a0}12\u{a0}34\u{a0}56\u{a0}78",
                "06\u{a0}12\u{a0}34\u{a0}56\u{a0}78",
            ),
            (
                "+33\u{202f}6\u{202f}12\u{202f}34\u{202f}56\u{202f}78",
                "+33\u{202f}6\u{202f}12\u{202f}34\u{202f}56\u{202f}78",
            ),
            (
                "tél. : 01\u{2009}42\u{2009}68\u{2009}53\u{2009}00",
                "01\u{2009}42\u{2009}68\u{2009}53\u{2009}00",
            ),
            ("+33 (0)6 12 34 56 78", "+33 (0)6 12 34 56 78"),
            ("+33 (0)1 42 68 53 00", "+33 (0)1 42 68 53 00"),
            ("+49 (0)30 1234567", "+49 (0)30 1234567"),
            ("030/1234567", "030/1234567"),
            ("Tel.: 0151/23456789", "0151/23456789"),
            ("089/12 34 56 78", "089/12 34 56 78"),
        ];
        for (s, want) in cases {
            assert_eq!(found(s), vec![*want], "{s}");
        }
    }

    #[test]
    fn leaves_look_alikes() {
        for s in [
            "1700000000000",
            "ts 1700000000123 ms",
            "5551234567",
            "ORD-2024-000123",
            "order ORD-2024-000123 shipped",
            "550e8400-e29b-41d4-a716-446655440000",
            "2024-01-15T10:30:00.000Z",
            "2024-01-15 10:30:00",
            "15.01.2024 10:30",
            "2024-01-15",
            "2024-01 2024-02",
            "$1,299.99",
            "1299.00",
            "1234567890.00",
            "10.0.19045.2965",
            "1.2.3",
            "/products/12345",
            "/products/12345/67890",
            "#ff8800",
            "SKU-12345-678",
            "WH-1000XM4",
            "12345678901234567890",
            "4111 1111 1111 1111",
            "v1.12.345.6789",
            "+1234",
            "a+15551234567",
            "Chrome/120.0.0.0 Safari/537.36",
            "1 000 000",
            "555-123-4567-ext",
            "555-123-4567x89",
            // Slashes that are not an area code's.
            "01/02/2024",
            "15/01/2024 10:30",
            "2024/01/15",
            "1920/1080",
            "12345/678901",
            "030/123/4567",
            "/030/1234567",
            // Wide spaces in amounts and ids.
            "1\u{a0}000\u{a0}000",
            "12\u{202f}345,67\u{a0}€",
        ] {
            assert!(found(s).is_empty(), "{s}: {:?}", found(s));
        }
    }
}
