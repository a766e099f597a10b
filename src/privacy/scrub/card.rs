//! Payment card numbers.
//!
//! Rule: 13 to 19 digits, either as one run or in groups separated by
//! single spaces or dashes where every group but the last has 4 digits
//! (`4111 1111 1111 1111`, `…-1111-111`) or in the 4-6-5 / 4-6-4 layout of
//! Amex and Diners; standing alone (not glued to letters, digits, `_`, `.`,
//! `-`, nor followed by `.`/`,`/`-` + digit); with a known network prefix
//! and a length that network issues (Visa, Mastercard, Amex, Discover,
//! Diners, JCB, UnionPay, Maestro, Mir); and Luhn-valid.
//!
//! So epoch milliseconds (13 digits starting with `1`, no network), prices
//! and most order numbers never match; a 13-19 digit number that happens
//! to carry a network prefix and a valid Luhn digit is treated as a card,
//! deliberately.
//!
//! JSON integers of 13 to 19 digits are checked with the same rule
//! ([`is_card_number`]).

use super::config::Detector;
use super::text::{before, is_digit, is_word, Span};

/// Fewest digits in a card number.
pub(crate) const MIN_DIGITS: usize = 13;
/// Most digits in a card number.
pub(crate) const MAX_DIGITS: usize = 19;
/// Digits in a regular group.
const GROUP: usize = 4;
/// Most groups kept while parsing (19 digits in groups of at least one).
const MAX_GROUPS: usize = MAX_DIGITS;

/// Luhn checksum over ASCII digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn prefix(digits: &[u8], n: usize) -> u32 {
    digits[..n]
        .iter()
        .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
}

/// The lengths (inclusive range) issued under the number's prefix, if the
/// prefix belongs to a known network.
fn network_lengths(d: &[u8]) -> Option<(usize, usize)> {
    let p1 = prefix(d, 1);
    let p2 = prefix(d, 2);
    let p3 = prefix(d, 3);
    let p4 = prefix(d, 4);
    let p6 = prefix(d, 6);
    if p1 == 4 {
        // Visa: 13, 16 or 19 (13..=19 accepted; the Luhn check carries).
        return Some((13, 19));
    }
    if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        return Some((16, 16)); // Mastercard
    }
    if p2 == 34 || p2 == 37 {
        return Some((15, 15)); // Amex
    }
    if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6) {
        return Some((16, 19)); // Discover
    }
    if p2 == 62 {
        return Some((16, 19)); // UnionPay
    }
    if (3528..=3589).contains(&p4) {
        return Some((16, 19)); // JCB
    }
    if (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 {
        return Some((14, 19)); // Diners Club
    }
    if (2200..=2204).contains(&p4) {
        return Some((16, 19)); // Mir
    }
    if matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761..=6763) {
        return Some((13, 19)); // Maestro (12-digit cards are not matched)
    }
    None
}

/// A digit string that is a card number: known network, issued length,
/// Luhn-valid.
pub(crate) fn is_card_number(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&n) || !digits.iter().all(|&b| is_digit(b)) {
        return false;
    }
    match network_lengths(digits) {
        Some((lo, hi)) => (lo..=hi).contains(&n) && luhn(digits),
        None => false,
    }
}

fn layout_ok(groups: &[usize]) -> bool {
    match groups {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&g| g == GROUP) && (1..=GROUP).contains(last),
        [] => false,
    }
}

fn left_ok(s: &[u8], i: usize) -> bool {
    before(s, i).map_or(true, |p| {
        !(is_word(p) || matches!(p, b'.' | b'-' | b'+' | b'/'))
    })
}

fn right_ok(s: &[u8], end: usize) -> bool {
    let Some(&n) = s.get(end) else {
        return true;
    };
    let next_digit = s.get(end + 1).is_some_and(|&b| is_digit(b));
    !(is_word(n) || (matches!(n, b'.' | b',' | b'-') && next_digit))
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < s.len() {
        if !is_digit(s[i]) {
            i += 1;
            continue;
        }
        let ok_left = left_ok(s, i);
        let mut digits = [0u8; MAX_DIGITS];
        let mut nd = 0usize;
        let mut groups = [0usize; MAX_GROUPS];
        let mut ng = 0usize;
        let mut sep = 0u8;
        let mut j = i;
        let mut too_long = false;
        loop {
            let g0 = j;
            while j < s.len() && is_digit(s[j]) {
                if nd < MAX_DIGITS {
                    digits[nd] = s[j];
                    nd += 1;
                } else {
                    too_long = true;
                }
                j += 1;
            }
            if ng < MAX_GROUPS {
                groups[ng] = j - g0;
                ng += 1;
            } else {
                too_long = true;
            }
            match s.get(j) {
                Some(&c @ (b' ' | b'-'))
                    if (sep == 0 || sep == c) && s.get(j + 1).is_some_and(|&b| is_digit(b)) =>
                {
                    sep = c;
                    j += 1;
                }
                _ => break,
            }
        }
        if ok_left
            && !too_long
            && right_ok(s, j)
            && layout_ok(&groups[..ng])
            && is_card_number(&digits[..nd])
        {
            out.push(Span {
                start: i,
                end: j,
                kind: Detector::Card,
            });
        } else if ok_left
            && ng > 1
            && sep == b' '
            && groups[0] <= MAX_DIGITS
            && is_card_number(&digits[..groups[0]])
        {
            // The grouped reading failed, but the first run alone is a
            // card followed by another number (`… 378282246310005 1 item`).
            out.push(Span {
                start: i,
                end: i + groups[0],
                kind: Detector::Card,
            });
        }
        i = j;
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
    fn finds_cards_of_each_network() {
        let cases: &[&str] = &[
            "4111111111111111",        // Visa
            "4111 1111 1111 1111",     // Visa, spaced
            "4111-1111-1111-1111",     // Visa, dashed
            "4222222222222",           // Visa 13
            "5555555555554444",        // Mastercard
            "2223000048400011",        // Mastercard 2-series
            "378282246310005",         // Amex
            "3782 822463 10005",       // Amex 4-6-5
            "6011111111111117",        // Discover
            "6011 0009 9013 9424",     // Discover spaced
            "3056930009020004",        // Diners
            "3852 000002 3237",        // Diners 4-6-4
            "3530111333300000",        // JCB
            "6200000000000005",        // UnionPay
            "6759649826438453",        // Maestro
            "2200 0000 0000 0004",     // Mir
            "4111 1111 1111 1111 003", // Visa 19, 4-4-4-4-3
        ];
        for s in cases {
            assert!(
                is_card_number(&s.bytes().filter(u8::is_ascii_digit).collect::<Vec<_>>()),
                "fixture {s} is a valid card"
            );
            let text = format!("paid with {s}, thanks");
            assert_eq!(found(&text), vec![*s], "{text}");
        }
    }

    #[test]
    fn leaves_look_alikes() {
        for s in [
            "4111111111111112",     // Luhn fails
            "1700000000000",        // epoch ms: no network
            "1700000000000000",     // epoch µs
            "9111111111111111",     // no network
            "41111 11111 11111 1",  // odd grouping
            "4111 1111-1111 1111",  // mixed separators
            "ORD-4111111111111111", // glued to an identifier
            "4111111111111111.00",  // decimal
            "x4111111111111111",
            "41111111111111110000", // too long
            "$1,299.99",
            "ORD-2024-000123",
        ] {
            assert!(found(s).is_empty(), "{s}: {:?}", found(s));
        }
    }

    #[test]
    fn a_valid_run_followed_by_another_number_is_still_found() {
        assert_eq!(found("378282246310005 1 item"), vec!["378282246310005"]);
    }

    #[test]
    fn luhn_and_integers() {
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
        assert!(is_card_number(b"4111111111111111"));
        assert!(!is_card_number(b"1700000000000"));
    }
}
