//! Shared text machinery of the detectors: byte classes, the one-pass
//! prefilter ([`Features`]), match spans and the edit list that splices
//! replacements into the original text (bytes outside the edits are copied
//! as they are, never re-encoded).
//!
//! All detectors work on bytes and only ever start or end a match next to
//! an ASCII byte, so every span lies on `char` boundaries.

use std::borrow::Cow;

use super::config::Detector;

pub(crate) const C_DIGIT: u8 = 1;
pub(crate) const C_ALPHA: u8 = 2;
/// `[A-Za-z0-9_-]`: the characters of base64url and of most API tokens.
pub(crate) const C_RUN: u8 = 4;
/// Characters that may sit between the digits of a phone or card number.
pub(crate) const C_CHUNK: u8 = 8;
pub(crate) const C_HEX: u8 = 16;
pub(crate) const C_SPACE: u8 = 32;

static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_digit() {
            c |= C_DIGIT | C_RUN | C_CHUNK | C_HEX;
        }
        if b.is_ascii_alphabetic() {
            c |= C_ALPHA | C_RUN;
        }
        if matches!(b, b'a'..=b'f' | b'A'..=b'F') {
            c |= C_HEX;
        }
        if b == b'_' || b == b'-' {
            c |= C_RUN;
        }
        if matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'+') {
            c |= C_CHUNK;
        }
        if b.is_ascii_whitespace() {
            c |= C_SPACE;
        }
        t[i] = c;
        i += 1;
    }
    t
}

#[inline]
pub(crate) fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

#[inline]
pub(crate) fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

#[inline]
pub(crate) fn is_alnum(b: u8) -> bool {
    class(b) & (C_DIGIT | C_ALPHA) != 0
}

/// ASCII letter, digit or `_`.
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    is_alnum(b) || b == b'_'
}

/// Byte before `i`, if any.
#[inline]
pub(crate) fn before(b: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).map(|j| b[j])
}

/// What a one-pass scan found in a string; each detector runs only when its
/// prefilter here says a match is possible.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Features {
    pub len: usize,
    pub digits: u32,
    pub dots: u32,
    pub colons: u32,
    pub dashes: u32,
    pub at: bool,
    pub space: bool,
    /// Most digits in one run of digits and number separators
    /// (` `, `-`, `.`, `(`, `)`, `+`).
    pub max_chunk_digits: u32,
    /// Some such run has at least 4 digits and 3 dots (IPv4 candidate).
    pub dotted_quad: bool,
    /// Longest run of `[A-Za-z0-9_-]`.
    pub max_run: u32,
}

impl Features {
    pub(crate) fn of(s: &[u8]) -> Features {
        let mut f = Features {
            len: s.len(),
            ..Features::default()
        };
        let mut chunk_digits = 0u32;
        let mut chunk_dots = 0u32;
        let mut run = 0u32;
        for &b in s {
            let c = class(b);
            if c & C_CHUNK != 0 {
                if c & C_DIGIT != 0 {
                    f.digits += 1;
                    chunk_digits += 1;
                } else if b == b'.' {
                    f.dots += 1;
                    chunk_dots += 1;
                } else if b == b'-' {
                    f.dashes += 1;
                } else if b == b' ' {
                    f.space = true;
                }
            } else {
                if chunk_digits > f.max_chunk_digits {
                    f.max_chunk_digits = chunk_digits;
                }
                f.dotted_quad |= chunk_dots >= 3 && chunk_digits >= 4;
                chunk_digits = 0;
                chunk_dots = 0;
                match b {
                    b':' => f.colons += 1,
                    b'@' => f.at = true,
                    _ => {}
                }
                f.space |= c & C_SPACE != 0;
            }
            if c & C_RUN != 0 {
                run += 1;
                if run > f.max_run {
                    f.max_run = run;
                }
            } else {
                run = 0;
            }
        }
        if chunk_digits > f.max_chunk_digits {
            f.max_chunk_digits = chunk_digits;
        }
        f.dotted_quad |= chunk_dots >= 3 && chunk_digits >= 4;
        f
    }
}

/// One detector match: `start..end` in the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Detector,
}

/// Sorts spans and merges overlapping ones into their union, named after
/// the detector with the higher precedence: nothing any detector matched
/// survives, and the most specific name is recorded.
pub(crate) fn merge(spans: &mut Vec<Span>) {
    spans.sort_unstable_by_key(|s| (s.start, s.end));
    let mut w = 0;
    for r in 0..spans.len() {
        let cur = spans[r];
        if w > 0 && cur.start < spans[w - 1].end {
            let last = &mut spans[w - 1];
            last.end = last.end.max(cur.end);
            if cur.kind.precedence() > last.kind.precedence() {
                last.kind = cur.kind;
            }
        } else {
            spans[w] = cur;
            w += 1;
        }
    }
    spans.truncate(w);
}

/// Replace `start..end` of the string being scrubbed with `repl` (empty
/// for a deletion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    pub start: usize,
    pub end: usize,
    pub repl: &'static str,
}

/// Applies non-overlapping edits; `None` when there are none.
pub(crate) fn apply(s: &str, edits: &mut [Edit]) -> Option<String> {
    if edits.is_empty() {
        return None;
    }
    edits.sort_unstable_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for e in edits.iter() {
        // Edits never overlap by construction; if one did, the earlier one
        // wins and the later one only removes what is left of it.
        let start = e.start.max(pos);
        let end = e.end.max(start);
        out.push_str(&s[pos..start]);
        if e.start >= pos {
            out.push_str(e.repl);
        }
        pos = end;
    }
    out.push_str(&s[pos..]);
    Some(out)
}

/// Percent-decodes a URL component (invalid UTF-8 replaced), turning `+`
/// into a space when asked. Borrows when there is nothing to decode.
pub(crate) fn decode_component(s: &str, plus_as_space: bool) -> Cow<'_, str> {
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
    if plus_as_space && decoded.contains('+') {
        Cow::Owned(decoded.replace('+', " "))
    } else {
        decoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_count_what_the_prefilters_need() {
        let f = Features::of(b"call +1 (555) 123-4567 or a@b.co at 10.0.0.1");
        assert_eq!(f.max_chunk_digits, 11);
        assert!(f.at);
        assert!(f.space);
        assert!(f.dotted_quad);
        let f = Features::of(b"Chrome/120.0.0.0 Safari/537.36");
        assert_eq!(f.max_chunk_digits, 6);
        let f = Features::of(b"abc_def-ghi jk");
        assert_eq!(f.max_run, 11);
        assert!(!Features::of(b"v1.2.3").dotted_quad);
    }

    #[test]
    fn merge_takes_the_union_and_the_higher_precedence() {
        let mut v = vec![
            Span {
                start: 5,
                end: 15,
                kind: Detector::Phone,
            },
            Span {
                start: 0,
                end: 8,
                kind: Detector::Card,
            },
            Span {
                start: 20,
                end: 22,
                kind: Detector::Ip,
            },
        ];
        merge(&mut v);
        assert_eq!(
            v,
            vec![
                Span {
                    start: 0,
                    end: 15,
                    kind: Detector::Card
                },
                Span {
                    start: 20,
                    end: 22,
                    kind: Detector::Ip
                }
            ]
        );
    }

    #[test]
    fn apply_splices_and_keeps_the_rest() {
        let s = "a=1&b=2&c=3";
        let mut e = vec![
            Edit {
                start: 8,
                end: 11,
                repl: "[x]",
            },
            Edit {
                start: 3,
                end: 7,
                repl: "",
            },
        ];
        assert_eq!(apply(s, &mut e).as_deref(), Some("a=1&[x]"));
        assert_eq!(apply(s, &mut []), None);
    }

    #[test]
    fn decode_borrows_when_clean() {
        assert!(matches!(decode_component("abc", true), Cow::Borrowed(_)));
        assert_eq!(decode_component("a%40b+c", true), "a@b c");
        assert_eq!(decode_component("a%40b+c", false), "a@b+c");
    }
}
