//! Credentials: JSON web tokens, `Bearer`/`Basic` credentials, well-known
//! API key formats, and secrets after `token=`/`key=`-like names.
//!
//! JWT rule: three base64url segments joined by dots, the first starting
//! with `eyJ` (base64 of `{"`) and decoding to a JSON object with an
//! `"alg"` member (required in every JWS/JWE header), the second at
//! least 4 characters, the third possibly empty (unsigned tokens); not
//! glued to base64url characters on either side.
//!
//! Token rules (the match is the credential; the keyword before it stays):
//! - `Bearer <credential>`: at least 16 characters of
//!   `[A-Za-z0-9._~+/=-]` (trailing dots excluded) containing a digit or
//!   both cases;
//! - `Basic <base64>`: at least 8 base64 characters decoding to UTF-8 text
//!   with a `:` (user:password);
//! - well-known prefixes at a word start with their body length:
//!   `sk_live_`/`sk_test_`/`rk_live_`/`rk_test_`/`whsec_` + ≥ 16
//!   alphanumerics; `sk-` + ≥ 32 of `[A-Za-z0-9_-]` with a digit and a
//!   letter; `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + ≥ 30 alphanumerics;
//!   `github_pat_` + ≥ 30 of `[A-Za-z0-9_]`; `glpat-` + ≥ 20 of
//!   `[A-Za-z0-9_-]`; `xoxb-`/`xoxa-`/`xoxp-`/`xoxr-`/`xoxs-` + ≥ 10 of
//!   `[A-Za-z0-9-]`; `AKIA`/`ASIA` + exactly 16 of `[A-Z0-9]`; `AIza` +
//!   exactly 35 of `[A-Za-z0-9_-]`; `npm_` + exactly 36 alphanumerics;
//!   `shpat_`/`shpss_`/`shpca_`/`shppa_` + exactly 32 hex digits;
//! - a name ending in `token`, `key`, `secret`, `signature`, `password`,
//!   `passwd`, `pwd`, `auth`, `credential`, `session` or `sig` (any case),
//!   then optionally a quote and spaces, `=` or `:`, optionally spaces and a
//!   quote, then a value of at least 32 characters of
//!   `[A-Za-z0-9+/=_-]` that looks random: all hex with a digit and a
//!   letter, or containing a digit, an upper-case and a lower-case letter.
//!   A UUID (`8-4-4-4-12` hex) is an identifier, not a secret, and stays.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use memchr::{memchr2_iter, memmem};

use super::config::Detector;
use super::text::{before, class, is_alnum, Features, Span, C_RUN};

/// Shortest JWT header segment (`{"alg":"x"}` is 16 characters).
const JWT_MIN_HEADER: usize = 16;
/// Shortest JWT payload segment.
const JWT_MIN_PAYLOAD: usize = 4;
/// Longest JWT header decoded to check it is JSON.
const JWT_MAX_HEADER: usize = 1024;
/// Shortest `Bearer` credential.
const BEARER_MIN: usize = 16;
/// Shortest `Basic` credential.
const BASIC_MIN: usize = 8;
/// Shortest secret value after a `token=`-like name.
pub(crate) const CONTEXT_MIN: usize = 32;
/// A JWT prefilter: some base64url run at least this long.
pub(crate) const JWT_MIN_RUN: u32 = JWT_MIN_HEADER as u32;
/// Prefilter for the prefixed formats: the shortest one (`xoxb-` + 10)
/// is a run of `[A-Za-z0-9_-]` this long.
pub(crate) const PREFIX_MIN_RUN: u32 = 15;
/// Prefilter for `Basic`/`Bearer`: a `b`, a space and at least this many
/// bytes.
pub(crate) const SCHEME_MIN_LEN: usize = "basic ".len() + BASIC_MIN;

#[derive(Debug, Clone, Copy)]
enum Body {
    Alnum,
    UpperDigit,
    Word,
    B64Url,
    Slack,
    Hex,
}

impl Body {
    fn accepts(self, b: u8) -> bool {
        match self {
            Body::Alnum => b.is_ascii_alphanumeric(),
            Body::UpperDigit => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Body::Word => b.is_ascii_alphanumeric() || b == b'_',
            Body::B64Url => class(b) & C_RUN != 0,
            Body::Slack => b.is_ascii_alphanumeric() || b == b'-',
            Body::Hex => b.is_ascii_hexdigit(),
        }
    }
}

/// A well-known token format: prefix, body charset, min and max body
/// length, and whether the body must mix digits and letters.
#[derive(Debug, Clone, Copy)]
struct Prefix {
    body: Body,
    min: usize,
    max: usize,
    mixed: bool,
}

const UNBOUNDED: usize = usize::MAX;

const fn prefix(body: Body, min: usize, max: usize) -> Prefix {
    Prefix {
        body,
        min,
        max,
        mixed: false,
    }
}

const PREFIXES: &[(&str, Prefix)] = &[
    ("sk_live_", prefix(Body::Alnum, 16, UNBOUNDED)),
    ("sk_test_", prefix(Body::Alnum, 16, UNBOUNDED)),
    ("rk_live_", prefix(Body::Alnum, 16, UNBOUNDED)),
    ("rk_test_", prefix(Body::Alnum, 16, UNBOUNDED)),
    ("whsec_", prefix(Body::Alnum, 16, UNBOUNDED)),
    (
        "sk-",
        Prefix {
            body: Body::B64Url,
            min: 32,
            max: UNBOUNDED,
            mixed: true,
        },
    ),
    ("ghp_", prefix(Body::Alnum, 30, UNBOUNDED)),
    ("gho_", prefix(Body::Alnum, 30, UNBOUNDED)),
    ("ghu_", prefix(Body::Alnum, 30, UNBOUNDED)),
    ("ghs_", prefix(Body::Alnum, 30, UNBOUNDED)),
    ("ghr_", prefix(Body::Alnum, 30, UNBOUNDED)),
    ("github_pat_", prefix(Body::Word, 30, UNBOUNDED)),
    ("glpat-", prefix(Body::B64Url, 20, UNBOUNDED)),
    ("xoxb-", prefix(Body::Slack, 10, UNBOUNDED)),
    ("xoxa-", prefix(Body::Slack, 10, UNBOUNDED)),
    ("xoxp-", prefix(Body::Slack, 10, UNBOUNDED)),
    ("xoxr-", prefix(Body::Slack, 10, UNBOUNDED)),
    ("xoxs-", prefix(Body::Slack, 10, UNBOUNDED)),
    ("AKIA", prefix(Body::UpperDigit, 16, 16)),
    ("ASIA", prefix(Body::UpperDigit, 16, 16)),
    ("AIza", prefix(Body::B64Url, 35, 35)),
    ("npm_", prefix(Body::Alnum, 36, 36)),
    ("shpat_", prefix(Body::Hex, 32, 32)),
    ("shpss_", prefix(Body::Hex, 32, 32)),
    ("shpca_", prefix(Body::Hex, 32, 32)),
    ("shppa_", prefix(Body::Hex, 32, 32)),
];

/// Names after which a secret value may follow (matched case-insensitively
/// as the end of a longer name too: `api_key`, `client_secret`).
const CONTEXT_NAMES: &[&str] = &[
    "token",
    "key",
    "secret",
    "signature",
    "password",
    "passwd",
    "pwd",
    "auth",
    "credential",
    "session",
    "sessionid",
    "sig",
];

/// The compiled token patterns.
#[derive(Debug)]
pub(crate) struct TokenMatcher {
    /// Case-sensitive prefixes.
    prefixes: AhoCorasick,
    /// Case-insensitive context names, longest first.
    names: AhoCorasick,
}

impl TokenMatcher {
    pub(crate) fn new() -> Result<TokenMatcher, aho_corasick::BuildError> {
        let prefixes = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(PREFIXES.iter().map(|(p, _)| p))?;
        let names = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(CONTEXT_NAMES)?;
        Ok(TokenMatcher { prefixes, names })
    }

    /// Whether any token rule can match text with these features.
    pub(crate) fn wanted(f: &Features) -> bool {
        f.max_run >= PREFIX_MIN_RUN
            || f.max_b64_run >= CONTEXT_MIN as u32
            || (f.space && f.b && f.len >= SCHEME_MIN_LEN)
    }

    /// Finds tokens; overlapping finds (a prefixed token after `key=`) are
    /// merged by the caller.
    pub(crate) fn find(&self, s: &[u8], f: &Features, out: &mut Vec<Span>) {
        if f.space && f.b && f.len >= SCHEME_MIN_LEN {
            schemes(s, out);
        }
        if f.max_run >= PREFIX_MIN_RUN {
            for m in self.prefixes.find_iter(s) {
                let (_, p) = PREFIXES[m.pattern().as_usize()];
                if let Some((start, end)) = prefixed(s, m.start(), m.end(), p) {
                    push(out, start, end);
                }
            }
        }
        if f.max_b64_run >= CONTEXT_MIN as u32 && (f.eq || f.colons > 0) {
            for m in self.names.find_iter(s) {
                if let Some((start, end)) = context(s, m.end()) {
                    push(out, start, end);
                }
            }
        }
    }
}

fn push(out: &mut Vec<Span>, start: usize, end: usize) {
    out.push(Span {
        start,
        end,
        kind: Detector::Token,
    });
}

/// `Bearer …` and `Basic …` credentials.
fn schemes(s: &[u8], out: &mut Vec<Span>) {
    for i in memchr2_iter(b'b', b'B', s) {
        let rest = &s[i..];
        let found = if rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"bearer") {
            bearer(s, i, i + 6)
        } else if rest.len() >= 5 && rest[..5].eq_ignore_ascii_case(b"basic") {
            basic(s, i, i + 5)
        } else {
            None
        };
        if let Some((start, end)) = found {
            push(out, start, end);
        }
    }
}

fn word_start(s: &[u8], i: usize) -> bool {
    before(s, i).map_or(true, |p| !is_alnum(p))
}

fn skip_spaces(s: &[u8], mut j: usize) -> usize {
    while s.get(j).is_some_and(|&b| b == b' ' || b == b'\t') {
        j += 1;
    }
    j
}

fn bearer(s: &[u8], start: usize, kw_end: usize) -> Option<(usize, usize)> {
    if !word_start(s, start) {
        return None;
    }
    let c0 = skip_spaces(s, kw_end);
    if c0 == kw_end {
        return None;
    }
    let mut e = c0;
    while s
        .get(e)
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b))
    {
        e += 1;
    }
    while e > c0 && s[e - 1] == b'.' {
        e -= 1;
    }
    let cred = &s[c0..e];
    let digit = cred.iter().any(u8::is_ascii_digit);
    let upper = cred.iter().any(u8::is_ascii_uppercase);
    let lower = cred.iter().any(u8::is_ascii_lowercase);
    (cred.len() >= BEARER_MIN && (digit || (upper && lower))).then_some((c0, e))
}

fn basic(s: &[u8], start: usize, kw_end: usize) -> Option<(usize, usize)> {
    if !word_start(s, start) {
        return None;
    }
    let c0 = skip_spaces(s, kw_end);
    if c0 == kw_end {
        return None;
    }
    let mut e = c0;
    while s
        .get(e)
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b"+/".contains(&b))
    {
        e += 1;
    }
    let body_end = e;
    while s.get(e) == Some(&b'=') {
        e += 1;
    }
    if body_end - c0 < BASIC_MIN || s.get(e).is_some_and(|&b| is_alnum(b)) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&s[c0..body_end])
        .ok()?;
    let text = std::str::from_utf8(&decoded).ok()?;
    text.contains(':').then_some((c0, e))
}

fn prefixed(s: &[u8], start: usize, body_start: usize, p: Prefix) -> Option<(usize, usize)> {
    if !word_start(s, start) {
        return None;
    }
    let mut e = body_start;
    while s.get(e).is_some_and(|&b| p.body.accepts(b)) {
        e += 1;
    }
    let n = e - body_start;
    if n < p.min || n > p.max {
        return None;
    }
    // Exact-length formats must not run on into more token characters.
    if p.max != UNBOUNDED && s.get(e).is_some_and(|&b| class(b) & C_RUN != 0) {
        return None;
    }
    if p.mixed {
        let b = &s[body_start..e];
        let digit = b.iter().any(u8::is_ascii_digit);
        let alpha = b.iter().any(u8::is_ascii_alphabetic);
        if !(digit && alpha) {
            return None;
        }
    }
    Some((start, e))
}

fn is_value_byte(b: u8) -> bool {
    class(b) & C_RUN != 0 || b == b'+' || b == b'/' || b == b'='
}

fn context(s: &[u8], kw_end: usize) -> Option<(usize, usize)> {
    let mut j = kw_end;
    if matches!(s.get(j), Some(b'"' | b'\'')) {
        j += 1;
    }
    j = skip_spaces(s, j);
    if !matches!(s.get(j), Some(b'=' | b':')) {
        return None;
    }
    j = skip_spaces(s, j + 1);
    if matches!(s.get(j), Some(b'"' | b'\'')) {
        j += 1;
    }
    let v0 = j;
    while s.get(j).is_some_and(|&b| is_value_byte(b)) {
        j += 1;
    }
    let v = &s[v0..j];
    (v.len() >= CONTEXT_MIN && looks_secret(v)).then_some((v0, j))
}

/// `8-4-4-4-12` hex digits.
pub(crate) fn is_uuid(v: &[u8]) -> bool {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    v.len() == 36
        && v.iter().enumerate().all(|(i, &b)| {
            if DASHES.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

fn looks_secret(v: &[u8]) -> bool {
    if is_uuid(v) {
        return false;
    }
    let digit = v.iter().any(u8::is_ascii_digit);
    let alpha = v.iter().any(u8::is_ascii_alphabetic);
    if v.iter().all(u8::is_ascii_hexdigit) {
        return digit && alpha;
    }
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let lower = v.iter().any(u8::is_ascii_lowercase);
    digit && upper && lower
}

#[inline]
fn is_b64url(b: u8) -> bool {
    class(b) & C_RUN != 0
}

/// Finds JSON web tokens.
pub(crate) fn find_jwt(s: &[u8], out: &mut Vec<Span>) {
    let mut last_end = 0;
    for start in memmem::find_iter(s, b"eyJ") {
        if start < last_end || before(s, start).is_some_and(is_b64url) {
            continue;
        }
        let seg = |from: usize| {
            let mut e = from;
            while s.get(e).is_some_and(|&b| is_b64url(b)) {
                e += 1;
            }
            e
        };
        let h_end = seg(start);
        if h_end - start < JWT_MIN_HEADER || s.get(h_end) != Some(&b'.') {
            continue;
        }
        let p_end = seg(h_end + 1);
        if p_end - (h_end + 1) < JWT_MIN_PAYLOAD || s.get(p_end) != Some(&b'.') {
            continue;
        }
        let end = seg(p_end + 1);
        // A fourth segment is not a JWT; a sentence's full stop is fine.
        let next = s.get(end).copied();
        let after = s.get(end + 1).copied();
        if next.is_some_and(is_b64url) || (next == Some(b'.') && after.is_some_and(is_b64url)) {
            continue;
        }
        if !header_is_json(&s[start..h_end]) {
            continue;
        }
        out.push(Span {
            start,
            end,
            kind: Detector::Jwt,
        });
        last_end = end;
    }
}

fn header_is_json(h: &[u8]) -> bool {
    if h.len() > JWT_MAX_HEADER {
        return true;
    }
    let mut buf = [0u8; JWT_MAX_HEADER];
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(h, &mut buf) {
        Ok(n) => buf[..n].starts_with(b"{\"") && memmem::find(&buf[..n], b"\"alg\"").is_some(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    fn tokens(s: &str) -> Vec<&str> {
        let m = TokenMatcher::new().expect("patterns build");
        let mut v = Vec::new();
        let f = Features::of(s.as_bytes());
        if TokenMatcher::wanted(&f) {
            m.find(s.as_bytes(), &f, &mut v);
        }
        v.iter().map(|m| &s[m.start..m.end]).collect()
    }

    fn jwts(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        find_jwt(s.as_bytes(), &mut v);
        v.iter().map(|m| &s[m.start..m.end]).collect()
    }

    #[test]
    fn finds_jwts() {
        assert_eq!(jwts(JWT), vec![JWT]);
        let t = format!("id_token={JWT}&state=x");
        assert_eq!(jwts(&t), vec![JWT]);
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        assert_eq!(jwts(unsigned), vec![unsigned]);
        let t = format!("it was {JWT}. Then");
        assert_eq!(jwts(&t), vec![JWT]);
    }

    #[test]
    fn leaves_jwt_look_alikes() {
        for s in [
            "eyJhbGciOiJIUzI1NiJ9",                 // one segment
            "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ",      // two segments
            "xeyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.abc", // glued
            "eyJunk_not_base64_json.abcd.efgh",     // header is not JSON
            "a.b.c",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.abc.def", // four segments
        ] {
            assert!(jwts(s).is_empty(), "{s}: {:?}", jwts(s));
        }
    }

    #[test]
    fn finds_tokens() {
        let cases: &[(&str, &str)] = &[
            (
                "Authorization: Bearer abcDEF1234567890xyz",
                "abcDEF1234567890xyz",
            ),
            ("bearer 0123456789abcdef0123", "0123456789abcdef0123"),
            ("use Bearer abcDEF1234567890xyz.", "abcDEF1234567890xyz"),
            ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
            (
                "key sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            ),
            (
                "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
                "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
            ),
            (
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            ),
            (
                "xoxb-123456789012-abcdefABCDEF",
                "xoxb-123456789012-abcdefABCDEF",
            ),
            ("xoxp-1-2-3-abcdef1234", "xoxp-1-2-3-abcdef1234"),
            ("aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AIzaSyA-1234567890abcdefghijklmnopqrstu",
                "AIzaSyA-1234567890abcdefghijklmnopqrstu",
            ),
            ("glpat-abcdefghij1234567890", "glpat-abcdefghij1234567890"),
            (
                "sk-proj-abcDEF1234567890abcdefghijklmnop",
                "sk-proj-abcDEF1234567890abcdefghijklmnop",
            ),
            (
                "key=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            ),
            (
                "\"api_key\": \"Xy7pQ2mN9vB4kL8rT1wZ6sD3fG5hJ0aC\"",
                "Xy7pQ2mN9vB4kL8rT1wZ6sD3fG5hJ0aC",
            ),
            (
                "access_token=Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7",
                "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7",
            ),
        ];
        for (s, want) in cases {
            assert!(
                TokenMatcher::wanted(&Features::of(s.as_bytes())),
                "prefilter passes {s}"
            );
            assert_eq!(tokens(s), vec![*want], "{s}");
        }
    }

    #[test]
    fn leaves_token_look_alikes() {
        for s in [
            "Bearer of bad news",
            "Basic plan",
            "basic authentication required",
            "idempotency_key=550e8400-e29b-41d4-a716-446655440000",
            "cache_key=product_list_page_header_banner_title",
            "key=ProductListPageHeaderBannerTitleText",
            "token=short123",
            "task-management-dashboard-for-teams-and-more",
            "sk-large-blue-shirt-with-a-very-long-description",
            "AKIAIOSFODNN7EXAMPLEX", // 17 after the prefix
            "xAKIAIOSFODNN7EXAMPLE",
            "monkey business",
            "keyboard=1",
            "ghp_short",
            "askia12345678901234567890",
            "550e8400e29b41d4a716446655440000",
        ] {
            assert!(tokens(s).is_empty(), "{s}: {:?}", tokens(s));
        }
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid(b"550e8400-e29b-41d4-a716-446655440000"));
        assert!(!is_uuid(b"550e8400e29b41d4a716446655440000"));
    }
}
