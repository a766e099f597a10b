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
/// Characters (and bytes of multi-byte spaces) that may sit between the
/// digits of a phone or card number.
pub(crate) const C_CHUNK: u8 = 8;
/// `[A-Za-z0-9_+/=-]`: base64 (either alphabet) and `=` padding.
pub(crate) const C_B64: u8 = 16;
static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_digit() {
            c |= C_DIGIT | C_RUN | C_CHUNK | C_B64;
        }
        if b.is_ascii_alphabetic() {
            c |= C_ALPHA | C_RUN | C_B64;
        }
        if b == b'_' || b == b'-' {
            c |= C_RUN | C_B64;
        }
        if b == b'+' || b == b'/' || b == b'=' {
            c |= C_B64;
        }
        // The bytes of the wide spaces the phone rules take as separators
        // (U+00A0 `C2 A0`, U+202F `E2 80 AF`, U+2009 `E2 80 89`) and the
        // slash after an area code: a prefilter may let through more than
        // the detectors take, never less.
        if matches!(
            b,
            b' ' | b'-'
                | b'.'
                | b'('
                | b')'
                | b'+'
                | b'/'
                | 0xC2
                | 0xA0
                | 0xE2
                | 0x80
                | 0xAF
                | 0x89
        ) {
            c |= C_CHUNK;
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
    pub dots: u32,
    pub colons: u32,
    pub dashes: u32,
    pub at: bool,
    pub eq: bool,
    /// Has `%` (URL text may decode to more).
    pub pct: bool,
    /// Has `+` (a space in a URL query).
    pub plus: bool,
    pub space: bool,
    /// Has `b` or `B` (`Basic`, `Bearer`).
    pub b: bool,
    /// Most digits in one run of digits and number separators
    /// (` `, `-`, `.`, `(`, `)`, `+`).
    pub max_chunk_digits: u32,
    /// Some such run has at least 4 digits and 3 dots (IPv4 candidate).
    pub dotted_quad: bool,
    /// Two letters at a word start followed by two digits (measured with
    /// the number runs, when there are 4 digits or more).
    pub iban_start: bool,
    /// Longest run of `[A-Za-z0-9_-]`.
    pub max_run: u32,
    /// Longest run of `[A-Za-z0-9_+/=-]`.
    pub max_b64_run: u32,
}

/// Per-byte counters packed in 16-bit fields of a `u64`, so one addition
/// counts them all: digits, `:`, `.`, `-`.
const F_DIGIT: u64 = 1;
const F_COLON: u64 = 1 << 16;
const F_DOT: u64 = 1 << 32;
const F_DASH: u64 = 1 << 48;
/// Bytes counted before the packed fields are flushed (no field can
/// overflow in between).
const FLUSH_EVERY: usize = u16::MAX as usize;

static COUNTS: [u64; 256] = build_counts();

const fn build_counts() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_digit() {
            F_DIGIT
        } else if b == b':' {
            F_COLON
        } else if b == b'.' {
            F_DOT
        } else if b == b'-' {
            F_DASH
        } else {
            0
        };
        i += 1;
    }
    t
}

/// Presence bits, OR-ed over the string.
const P_AT: u8 = 1;
const P_EQ: u8 = 2;
const P_PCT: u8 = 4;
const P_PLUS: u8 = 8;
const P_SPACE: u8 = 16;
const P_B: u8 = 32;

static PRESENCE: [u8; 256] = build_presence();

const fn build_presence() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'@' => P_AT,
            b'=' => P_EQ,
            b'%' => P_PCT,
            b'+' => P_PLUS,
            b'b' | b'B' => P_B,
            _ if b.is_ascii_whitespace() => P_SPACE,
            _ => 0,
        };
        i += 1;
    }
    t
}

impl Features {
    pub(crate) fn of(s: &[u8]) -> Features {
        // One lean pass: packed counters, presence bits and one run length
        // (a single loop-carried chain). The rest is computed only for
        // strings that have the bytes for it (most have not).
        let mut digits = 0u32;
        let mut colons = 0u32;
        let mut dots = 0u32;
        let mut dashes = 0u32;
        let mut presence = 0u8;
        let mut max_run = 0u32;
        let mut run = 0u32;
        for block in s.chunks(FLUSH_EVERY) {
            let mut packed = 0u64;
            for &b in block {
                packed += COUNTS[b as usize];
                presence |= PRESENCE[b as usize];
                run = if class(b) & C_RUN != 0 { run + 1 } else { 0 };
                max_run = max_run.max(run);
            }
            digits += (packed & 0xFFFF) as u32;
            colons += ((packed >> 16) & 0xFFFF) as u32;
            dots += ((packed >> 32) & 0xFFFF) as u32;
            dashes += (packed >> 48) as u32;
        }
        let mut f = Features {
            len: s.len(),
            colons,
            dots,
            dashes,
            max_run,
            at: presence & P_AT != 0,
            eq: presence & P_EQ != 0,
            pct: presence & P_PCT != 0,
            plus: presence & P_PLUS != 0,
            space: presence & P_SPACE != 0,
            b: presence & P_B != 0,
            ..Features::default()
        };
        if (f.eq || colons != 0) && s.len() >= B64_MIN_LEN {
            f.max_b64_run = longest_run(s, C_B64);
        }
        if digits >= MIN_CHUNK_DIGITS {
            f.chunks(s);
        }
        f
    }

    /// Walks the number-shaped runs (digits and ` `, `-`, `.`, `(`, `)`,
    /// `+` between them) starting at each digit: most digits in one, a
    /// dotted quad, and whether a run starts IBAN-like (two letters, at a
    /// word start, right before two digits). Bytes outside such runs are
    /// skipped with a plain search for the next digit.
    fn chunks(&mut self, s: &[u8]) {
        let mut i = 0;
        while let Some(k) = s[i..].iter().position(u8::is_ascii_digit) {
            let start = i + k;
            self.iban_start |= start >= 2
                && s[start - 1].is_ascii_alphabetic()
                && s[start - 2].is_ascii_alphabetic()
                && s.get(start + 1).is_some_and(u8::is_ascii_digit)
                && before(s, start - 2).map_or(true, |p| !is_word(p));
            let mut j = start;
            let mut digits = 0u32;
            let mut dots = 0u32;
            while j < s.len() && class(s[j]) & C_CHUNK != 0 {
                digits += u32::from(class(s[j]) & C_DIGIT);
                dots += u32::from(s[j] == b'.');
                j += 1;
            }
            self.max_chunk_digits = self.max_chunk_digits.max(digits);
            self.dotted_quad |= dots >= 3 && digits >= 4;
            i = j;
        }
    }
}

/// Fewest digits for which number-shaped runs are measured (an IPv4
/// address has at least 4).
const MIN_CHUNK_DIGITS: u32 = 4;
/// Shortest string whose base64 runs are measured (`k=` + the shortest
/// secret the token rules look at).
const B64_MIN_LEN: usize = 34;

/// Longest run of bytes of class `c`.
fn longest_run(s: &[u8], c: u8) -> u32 {
    let mut run = 0u32;
    let mut max = 0u32;
    for &b in s {
        run = if class(b) & c != 0 { run + 1 } else { 0 };
        max = max.max(run);
    }
    max
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

/// Strings shorter than this made only of `QUICK_SAFE` bytes cannot hold
/// anything any rule matches: every detector needs a digit, `@`, `:`, `=`,
/// or a run of 15 token characters; `Basic`/`Bearer` credentials need at
/// least 14 bytes; URL rules need `:`, `/`, `?` or `=`.
const QUICK_MAX: usize = super::token::SCHEME_MIN_LEN;

/// Letters, space, and punctuation no rule starts from.
static QUICK_SAFE: [bool; 256] = build_quick_safe();

const fn build_quick_safe() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphabetic()
            || matches!(
                b,
                b' ' | b'-' | b'_' | b'.' | b',' | b'\'' | b'!' | b'(' | b')' | b'&'
            );
        i += 1;
    }
    t
}

/// A short string of letters and harmless punctuation: nothing to scan.
#[inline]
pub(crate) fn trivially_clean(s: &[u8]) -> bool {
    s.len() < QUICK_MAX && s.iter().all(|&b| QUICK_SAFE[b as usize])
}

/// Slices shorter than this are searched with a plain loop: `memchr`'s
/// dispatch costs more than the search itself.
const SHORT: usize = 64;

/// Position of the first byte of `s` in `set` (one to three bytes).
#[inline]
pub(crate) fn find_any(set: &[u8], s: &[u8]) -> Option<usize> {
    if s.len() < SHORT {
        return s.iter().position(|b| set.contains(b));
    }
    match *set {
        [a] => memchr::memchr(a, s),
        [a, b] => memchr::memchr2(a, b, s),
        [a, b, c] => memchr::memchr3(a, b, c, s),
        _ => s.iter().position(|b| set.contains(b)),
    }
}

/// Position of the last byte of `s` in `set` (one to three bytes).
#[inline]
pub(crate) fn rfind_any(set: &[u8], s: &[u8]) -> Option<usize> {
    if s.len() < SHORT {
        return s.iter().rposition(|b| set.contains(b));
    }
    match *set {
        [a] => memchr::memrchr(a, s),
        [a, b] => memchr::memrchr2(a, b, s),
        [a, b, c] => memchr::memrchr3(a, b, c, s),
        _ => s.iter().rposition(|b| set.contains(b)),
    }
}

/// URL components up to this many bytes are decoded on the stack.
pub(crate) const DECODE_BUF: usize = 256;

/// A stack buffer for [`decode_component`].
pub(crate) type DecodeBuf = [u8; DECODE_BUF];

/// Percent-decodes a URL component (`%` not followed by two hex digits
/// stays; invalid UTF-8 is replaced), turning `+` into a space when asked.
/// Borrows `s` when there is nothing to decode, else decodes into `buf`;
/// allocates only for a component longer than the buffer or not UTF-8.
pub(crate) fn decode_component<'a>(
    s: &'a str,
    plus_as_space: bool,
    buf: &'a mut DecodeBuf,
) -> Cow<'a, str> {
    let b = s.as_bytes();
    let plus = plus_as_space && find_any(b"+", b).is_some();
    if !plus && find_any(b"%", b).is_none() {
        return Cow::Borrowed(s);
    }
    if b.len() > DECODE_BUF {
        let spaced;
        let src = if plus {
            spaced = s.replace('+', " ");
            spaced.as_str()
        } else {
            s
        };
        return Cow::Owned(
            percent_encoding::percent_decode_str(src)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        buf[n] = match super::decode::escape_at(b, i) {
            Some(decoded) => {
                i += 3;
                decoded
            }
            None => {
                i += 1;
                if plus && c == b'+' {
                    b' '
                } else {
                    c
                }
            }
        };
        n += 1;
    }
    match std::str::from_utf8(&buf[..n]) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => Cow::Owned(String::from_utf8_lossy(&buf[..n]).into_owned()),
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
        // Measured lazily: only long strings with `=` or `:` can hold a
        // keyed secret.
        let f = Features::of(b"token=ab+/cd==ab+/cd==ab+/cd==ab+/cd==ab x");
        assert_eq!(f.max_b64_run, 40);
        assert_eq!(Features::of(b"k=ab+/cd== x").max_b64_run, 0);
        assert!(f.eq && f.space);
        assert!(!Features::of(b"v1.2.3").dotted_quad);
        assert!(Features::of(b"x DE89 3704 0044  0532").iban_start);
        assert!(Features::of(b"de89 3704").iban_start);
        assert!(!Features::of(b"/products/12345?utm_source=a").iban_start);
        assert!(!Features::of(b"Win64; x64 1234").iban_start);
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
    fn trivially_clean_strings() {
        for s in ["EUR", "de-DE", "analytics.js", "Hello, world!", ""] {
            assert!(trivially_clean(s.as_bytes()), "{s}");
        }
        for s in [
            "Product Detail",
            "a@b.co",
            "v1",
            "x:y",
            "a=b",
            "/p",
            "?q",
            "h%20",
        ] {
            assert!(!trivially_clean(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn decode_borrows_when_clean_and_matches_the_reference_decoder() {
        let mut buf = [0u8; DECODE_BUF];
        assert!(matches!(
            decode_component("abc", true, &mut buf),
            Cow::Borrowed(_)
        ));
        for (s, plus, want) in [
            ("a%40b+c", true, "a@b c"),
            ("a%40b+c", false, "a@b+c"),
            ("%2B1+555", true, "+1 555"),
            ("100%", false, "100%"),
            ("%4", false, "%4"),
            ("%zz%41", false, "%zzA"),
            ("caf%C3%A9", false, "café"),
            ("bad%FF", false, "bad\u{FFFD}"),
        ] {
            let mut buf = [0u8; DECODE_BUF];
            assert_eq!(decode_component(s, plus, &mut buf), want, "{s}");
            let reference = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
            if !plus {
                assert_eq!(reference, want, "{s}");
            }
        }
        let long = "%41".repeat(DECODE_BUF);
        let mut buf = [0u8; DECODE_BUF];
        assert_eq!(
            decode_component(&long, false, &mut buf),
            "A".repeat(DECODE_BUF)
        );
    }
}
