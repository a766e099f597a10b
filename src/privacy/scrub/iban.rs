//! International bank account numbers.
//!
//! Rule: two letters naming a country that issues IBANs, two check digits
//! (02 to 98), then the BBAN, letters and digits, with or without single
//! spaces anywhere between characters (usually every four); exactly the
//! length that country's IBANs have (registry table below); standing alone
//! (no letter, digit or `_` right before or after); and valid under ISO
//! 7064 mod 97-10. Lower case is accepted (the checksum carries the
//! precision). The scan runs only on strings with at least 4 digits where
//! two letters at a word start are followed by two digits.

use super::config::Detector;
use super::text::{before, is_alnum, is_digit, is_word, Span};

/// Longest IBAN (Russia, 33; 34 allowed by the standard).
const MAX_LEN: usize = 34;
/// Shortest IBAN (Norway).
pub(crate) const MIN_LEN: usize = 15;

/// IBAN length per country (SWIFT IBAN registry).
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HN", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// The IBAN length of a country, given its upper-case code.
pub(crate) fn country_length(cc: [u8; 2]) -> Option<usize> {
    LENGTHS.iter().find(|(c, _)| **c == cc).map(|&(_, n)| n)
}

/// ISO 7064 mod 97-10 over an upper-case IBAN without spaces.
pub(crate) fn mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(4);
    let mut r = 0u32;
    for &c in tail.iter().chain(head) {
        if c.is_ascii_digit() {
            r = (r * 10 + u32::from(c - b'0')) % 97;
        } else {
            r = (r * 100 + u32::from(c - b'A') + 10) % 97;
        }
    }
    r
}

fn check(iban: &[u8]) -> bool {
    let check_digits = u32::from(iban[2] - b'0') * 10 + u32::from(iban[3] - b'0');
    (2..=98).contains(&check_digits) && mod97(iban) == 1
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Span>) {
    if s.len() < MIN_LEN {
        return;
    }
    let mut i = 0;
    while i + 4 <= s.len() {
        let (a, b) = (s[i], s[i + 1]);
        if !(a.is_ascii_alphabetic()
            && b.is_ascii_alphabetic()
            && is_digit(s[i + 2])
            && is_digit(s[i + 3])
            && before(s, i).map_or(true, |p| !is_word(p)))
        {
            i += 1;
            continue;
        }
        let Some(want) = country_length([a.to_ascii_uppercase(), b.to_ascii_uppercase()]) else {
            i += 1;
            continue;
        };
        let mut buf = [0u8; MAX_LEN];
        let mut n = 0;
        let mut j = i;
        while n < want && j < s.len() {
            let c = s[j];
            if is_alnum(c) {
                buf[n] = c.to_ascii_uppercase();
                n += 1;
                j += 1;
            } else if c == b' ' && n >= 4 && s.get(j + 1).is_some_and(|&c| is_alnum(c)) {
                j += 1;
            } else {
                break;
            }
        }
        if n == want && s.get(j).map_or(true, |&c| !is_word(c)) && check(&buf[..n]) {
            out.push(Span {
                start: i,
                end: j,
                kind: Detector::Iban,
            });
            i = j;
        } else {
            i += 1;
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
    fn finds_ibans() {
        for s in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82 WEST 1234 5698 7654 32",
            "GB82WEST12345698765432",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91 ABNA 0417 1643 00",
            "NO93 8601 1117 947",
            "BE68 5390 0754 7034",
            "CH93 0076 2011 6238 5295 7",
            "ES91 2100 0418 4502 0005 1332",
            "IT60 X054 2811 1010 0000 0123 456",
            "de89 3704 0044 0532 0130 00",
        ] {
            let text = format!("IBAN: {s}.");
            assert_eq!(found(&text), vec![s], "{text}");
        }
    }

    #[test]
    fn leaves_look_alikes() {
        for s in [
            "DE89 3704 0044 0532 0130 01", // checksum fails
            "DE89370400440532013000123",   // too long
            "DE89 3704 0044 0532 0130",    // too short
            "XX89370400440532013000",      // no such country
            "IN12345678901234567890",      // India issues no IBAN
            "SKU DE12-3456",
            "ORD-2024-000123",
            "xDE89370400440532013000",
            "DE00370400440532013000", // check digits 00
            "Windows NT 10.0; Win64; x64",
        ] {
            assert!(found(s).is_empty(), "{s}: {:?}", found(s));
        }
    }

    #[test]
    fn mod97_reference() {
        assert_eq!(mod97(b"GB82WEST12345698765432"), 1);
        assert_eq!(country_length(*b"NO"), Some(15));
        assert_eq!(country_length(*b"US"), None);
    }
}
