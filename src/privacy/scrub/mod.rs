//! PII scrubbing: the last step of the privacy stage. Removes personal data
//! from an event in place and reports what it removed (paths and detector
//! names only, never values) so the caller can write
//! `context.privacy.redactions` and count metrics per label.
//!
//! Contract:
//! - **Keys.** Anywhere in the event (top level, `properties`, `traits`,
//!   `context`, arrays), an object key on the denylist is removed with its
//!   value (`denied_key`); matching ignores case and `-`, `_`, `.` (see
//!   [`config::DEFAULT_DENY_KEYS`]). A key that is itself PII (an email used
//!   as a key) is removed with its value and recorded under its detector,
//!   with the key written as the marker in the path
//!   (`properties.[email]`), so no report carries the PII.
//! - **Values.** Every string (and every object key) is scanned by the
//!   enabled detectors; matches are replaced in place by `[email]`,
//!   `[phone]`, `[card]`, `[iban]`, `[ssn]`, `[jwt]`, `[token]`, `[ip]`, and
//!   the rest of the text is kept. Overlapping matches are replaced as one,
//!   named after the more specific detector ([`Detector::precedence`]).
//!   JSON integers of 13 to 19 digits that are card numbers become the
//!   string `"[card]"`. The precise rule of each detector, and the
//!   look-alikes it leaves alone, are documented in its module.
//! - **URLs** in strings (whole or embedded in text) lose their userinfo
//!   and their denied or PII-carrying query/fragment parameters; the rest is
//!   spliced, never re-encoded (see `url`).
//! - **Bounds.** Values nested deeper than `max_depth` are removed
//!   (`depth`); strings longer than `max_string_bytes` are cut and the kept
//!   part scanned (`truncated`). Nothing is passed through unscanned.
//! - **Exempt.** [`EXEMPT_PATHS`] (visitor identity, server timestamps,
//!   `type`, `context.ip`, `context.privacy.redactions`) and the configured
//!   `allow_paths` are kept verbatim.
//!
//! Cost: one table-driven pass per string (packed counters, presence bits,
//! one run length) decides which detectors can match at all (a `@`, enough
//! digits in one number-shaped run, a long token-like run, …); only those
//! run. Short strings of letters skip even that, keys made of letters skip
//! the detectors, and a URL whose text can match nothing has only its
//! parameter names checked. A clean event is walked without allocating
//! (`tests/privacy_scrub_alloc.rs`).

mod card;
pub mod config;
mod email;
mod iban;
mod ip;
mod keys;
mod phone;
mod ssn;
mod text;
mod token;
mod url;

#[cfg(test)]
mod proptests;

use std::fmt::Write as _;

use serde_json::{Map, Value};

pub use config::{Detector, ScrubConfig};
pub use keys::EXEMPT_PATHS;

use keys::{DenyKeys, Hint, PathTrie, TrieNode};
use text::{Edit, Features, Span};
use token::TokenMatcher;

/// Deepest nesting of URLs inside URL parameters that is followed.
pub(crate) const MAX_URL_NESTING: u8 = 4;
/// How far back from the cut a truncation looks for whitespace.
const TRUNCATE_BACKOFF: usize = 64;
/// Smallest integer with 13 digits (shortest card number).
const MIN_CARD_INTEGER: u64 = 1_000_000_000_000;

/// Why a scrubber cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("deny key {0:?} is empty or longer than 64 characters after normalization")]
    BadDenyKey(String),
    #[error("allow path {0:?} has an empty segment")]
    BadAllowPath(String),
    #[error("max_depth must be at least 1")]
    ZeroDepth,
    #[error("max_string_bytes must be at least {min}, got {got}")]
    StringLimitTooSmall { min: usize, got: usize },
    #[error("token patterns: {0}")]
    Patterns(String),
}

/// Why something was removed or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RedactionKind {
    /// A value detector matched (in a string, a key, a URL parameter).
    Detector(Detector),
    /// An object key on the denylist was removed with its value.
    DeniedKey,
    /// A URL parameter was removed by name; holds the deny entry it
    /// matched (the configured spelling, not the parameter's own text).
    UrlParam(String),
    /// `user:pass@` was removed from a URL.
    UrlUserinfo,
    /// A value nested deeper than `max_depth` was removed.
    Depth,
    /// A string longer than `max_string_bytes` was cut, or a key that long
    /// was removed.
    Truncated,
}

impl RedactionKind {
    /// Every label [`RedactionKind::label`] can return.
    pub const LABELS: [&'static str; 13] = [
        "email",
        "phone",
        "card",
        "iban",
        "ssn",
        "jwt",
        "token",
        "ip",
        "denied_key",
        "url_param",
        "url_userinfo",
        "depth",
        "truncated",
    ];

    /// Stable name for reports and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            RedactionKind::Detector(d) => d.label(),
            RedactionKind::DeniedKey => "denied_key",
            RedactionKind::UrlParam(_) => "url_param",
            RedactionKind::UrlUserinfo => "url_userinfo",
            RedactionKind::Depth => "depth",
            RedactionKind::Truncated => "truncated",
        }
    }
}

/// One thing removed from an event: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// Dotted key path, array indices in brackets:
    /// `properties.items[2].email`.
    pub path: String,
    pub kind: RedactionKind,
}

/// A scrubber built once from its configuration; cheap to share.
#[derive(Debug)]
pub struct Scrubber {
    enabled: bool,
    mask: u8,
    deny: DenyKeys,
    trie: PathTrie,
    tokens: TokenMatcher,
    max_depth: usize,
    max_string_bytes: usize,
}

/// One segment of the path to the value being visited.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
    /// A key that cannot be written (it is PII, or too long).
    Placeholder(&'static str),
}

/// The path to the value being visited, as a chain on the stack; rendered
/// only when something is recorded.
struct PathNode<'a> {
    parent: Option<&'a PathNode<'a>>,
    seg: Seg<'a>,
}

fn render(node: &PathNode<'_>, out: &mut String) {
    if let Some(p) = node.parent {
        render(p, out);
    }
    match node.seg {
        Seg::Key(k) | Seg::Placeholder(k) => {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(k);
        }
        Seg::Index(i) => {
            let _ = write!(out, "[{i}]");
        }
    }
}

fn path_string(node: &PathNode<'_>) -> String {
    let mut s = String::new();
    render(node, &mut s);
    s
}

/// Where a cut at most `max` bytes long ends: the last whitespace in the
/// final [`TRUNCATE_BACKOFF`] bytes, else the last char boundary.
fn truncation_point(s: &str, max: usize) -> usize {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let from = cut.saturating_sub(TRUNCATE_BACKOFF);
    match text::rfind_any(b" \n\t", &s.as_bytes()[from..cut]) {
        Some(k) => from + k,
        None => cut,
    }
}

/// State of one `scrub_event` call.
struct Walk<'o> {
    out: &'o mut Vec<Redaction>,
    /// Scratch list of what one string lost; empty (unallocated) on the
    /// clean path.
    kinds: Vec<RedactionKind>,
}

impl Walk<'_> {
    fn record(&mut self, node: &PathNode<'_>, kind: RedactionKind) {
        self.out.push(Redaction {
            path: path_string(node),
            kind,
        });
    }
}

impl Scrubber {
    pub fn new(cfg: &ScrubConfig) -> Result<Scrubber, ScrubError> {
        if cfg.max_depth == 0 {
            return Err(ScrubError::ZeroDepth);
        }
        if cfg.max_string_bytes < config::MIN_STRING_BYTES {
            return Err(ScrubError::StringLimitTooSmall {
                min: config::MIN_STRING_BYTES,
                got: cfg.max_string_bytes,
            });
        }
        let deny = DenyKeys::new(cfg.deny_keys.iter().chain(&cfg.extra_deny_keys))
            .map_err(|k| ScrubError::BadDenyKey(k.0))?;
        let trie = PathTrie::new(
            EXEMPT_PATHS
                .iter()
                .copied()
                .chain(cfg.allow_paths.iter().map(String::as_str)),
        )
        .map_err(|p| ScrubError::BadAllowPath(p.0))?;
        let tokens = TokenMatcher::new().map_err(|e| ScrubError::Patterns(e.to_string()))?;
        Ok(Scrubber {
            enabled: cfg.enabled,
            mask: cfg.detectors.iter().fold(0, |m, d| m | d.bit()),
            deny,
            trie,
            tokens,
            max_depth: cfg.max_depth,
            max_string_bytes: cfg.max_string_bytes,
        })
    }

    /// Whether scrubbing is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Scrubs a whole event object in place (properties, traits, context
    /// including `context.page.url`/`referrer`/`search`, top-level strings;
    /// not [`EXEMPT_PATHS`] nor `allow_paths`) and appends what was removed
    /// to `out`.
    pub fn scrub_event(&self, event: &mut Map<String, Value>, out: &mut Vec<Redaction>) {
        if !self.enabled {
            return;
        }
        let mut walk = Walk {
            out,
            kinds: Vec::new(),
        };
        self.walk_map(event, None, 0, Some(PathTrie::ROOT), &mut walk);
    }

    /// Scrubs one string (URL rules included); returns `None` when nothing
    /// changed, without allocating.
    pub fn scrub_str(&self, s: &str, out_kinds: &mut Vec<RedactionKind>) -> Option<String> {
        if !self.enabled {
            return None;
        }
        self.scrub_string(s, Hint::default(), out_kinds)
    }

    fn walk_map(
        &self,
        map: &mut Map<String, Value>,
        parent: Option<&PathNode<'_>>,
        depth: usize,
        trie: Option<TrieNode>,
        walk: &mut Walk<'_>,
    ) {
        // Keys to remove; allocated only when there is one.
        let mut doomed: Vec<String> = Vec::new();
        for (key, value) in map.iter_mut() {
            if !self.visit_entry(key, value, parent, depth, trie, walk) {
                doomed.push(key.clone());
            }
        }
        for key in &doomed {
            map.remove(key);
        }
    }

    /// Scrubs one object entry; `false` when it must be removed.
    fn visit_entry(
        &self,
        key: &str,
        value: &mut Value,
        parent: Option<&PathNode<'_>>,
        depth: usize,
        trie: Option<TrieNode>,
        walk: &mut Walk<'_>,
    ) -> bool {
        let child_trie = trie.and_then(|t| self.trie.child(t, key));
        if child_trie.is_some_and(|t| self.trie.keeps(t)) {
            return true;
        }
        if key.len() > self.max_string_bytes {
            let node = PathNode {
                parent,
                seg: Seg::Placeholder("[truncated]"),
            };
            walk.record(&node, RedactionKind::Truncated);
            return false;
        }
        let info = self.deny.classify(key);
        if !info.plain {
            if let Some(kind) = self.key_detector(key) {
                let node = PathNode {
                    parent,
                    seg: Seg::Placeholder(kind.marker()),
                };
                walk.record(&node, RedactionKind::Detector(kind));
                return false;
            }
        }
        let node = PathNode {
            parent,
            seg: Seg::Key(key),
        };
        if info.denied.is_some() {
            walk.record(&node, RedactionKind::DeniedKey);
            return false;
        }
        if depth + 1 > self.max_depth {
            walk.record(&node, RedactionKind::Depth);
            return false;
        }
        self.walk_value(value, &node, depth + 1, child_trie, info.hint, walk);
        true
    }

    fn walk_value(
        &self,
        value: &mut Value,
        node: &PathNode<'_>,
        depth: usize,
        trie: Option<TrieNode>,
        hint: Hint,
        walk: &mut Walk<'_>,
    ) {
        match value {
            Value::String(s) => {
                if let Some(new) = self.scrub_string(s, hint, &mut walk.kinds) {
                    *s = new;
                }
                if !walk.kinds.is_empty() {
                    let path = path_string(node);
                    for kind in std::mem::take(&mut walk.kinds) {
                        walk.out.push(Redaction {
                            path: path.clone(),
                            kind,
                        });
                    }
                }
            }
            Value::Object(m) => self.walk_map(m, Some(node), depth, trie, walk),
            Value::Array(a) => {
                let mut i = 0;
                a.retain_mut(|v| {
                    let child = PathNode {
                        parent: Some(node),
                        seg: Seg::Index(i),
                    };
                    i += 1;
                    if depth + 1 > self.max_depth {
                        walk.record(&child, RedactionKind::Depth);
                        return false;
                    }
                    self.walk_value(v, &child, depth + 1, trie, hint, walk);
                    true
                });
            }
            Value::Number(n) => {
                if self.mask & Detector::Card.bit() != 0 {
                    if let Some(u) = n.as_u64().filter(|&u| u >= MIN_CARD_INTEGER) {
                        let mut buf = itoa::Buffer::new();
                        if card::is_card_number(buf.format(u).as_bytes()) {
                            *value = Value::String(Detector::Card.marker().to_string());
                            walk.record(node, RedactionKind::Detector(Detector::Card));
                        }
                    }
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// The detector matching an object key, if any (no URL rules).
    fn key_detector(&self, key: &str) -> Option<Detector> {
        let f = Features::of(key.as_bytes());
        if !self.wants(&f, Hint::default()) {
            return None;
        }
        let mut spans = Vec::new();
        self.find_spans(key.as_bytes(), &f, Hint::default(), &mut spans);
        spans.iter().map(|m| m.kind).max_by_key(|k| k.precedence())
    }

    /// One string value: cut if too long, then scanned.
    fn scrub_string(&self, s: &str, hint: Hint, kinds: &mut Vec<RedactionKind>) -> Option<String> {
        if text::trivially_clean(s.as_bytes()) {
            return None;
        }
        let mut edits = Vec::new();
        if s.len() > self.max_string_bytes {
            let head = &s[..truncation_point(s, self.max_string_bytes)];
            kinds.push(RedactionKind::Truncated);
            self.text(head, 0, hint, 0, &mut edits, kinds);
            return Some(text::apply(head, &mut edits).unwrap_or_else(|| head.to_string()));
        }
        self.text(s, 0, hint, 0, &mut edits, kinds);
        text::apply(s, &mut edits)
    }

    /// Collects the edits for `s`, which sits at `base` in the string being
    /// scrubbed: URL rules for a whole-string or embedded URL, detectors
    /// for the rest.
    pub(crate) fn text(
        &self,
        s: &str,
        base: usize,
        hint: Hint,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let f = Features::of(s.as_bytes());
        if nest < MAX_URL_NESTING {
            if !f.space {
                if let Some(shape) = url::whole_shape(s, &f, hint) {
                    self.url(s, &f, base, shape, nest, edits, kinds);
                    return;
                }
            }
            if f.colons > 0 {
                if let Some(mut found) = url::next_embedded(s, 0) {
                    let mut pos = 0;
                    loop {
                        let (start, end, auth) = found;
                        self.detect(&s[pos..start], base + pos, hint, edits, kinds);
                        let shape = url::Shape::Absolute { auth: auth - start };
                        let token = &s[start..end];
                        let tf = Features::of(token.as_bytes());
                        self.url(token, &tf, base + start, shape, nest, edits, kinds);
                        pos = end;
                        match url::next_embedded(s, pos) {
                            Some(next) => found = next,
                            None => break,
                        }
                    }
                    self.detect(&s[pos..], base + pos, hint, edits, kinds);
                    return;
                }
            }
        }
        self.detect_with(s, &f, base, hint, edits, kinds);
    }

    /// Runs the detectors over plain text.
    pub(crate) fn detect(
        &self,
        s: &str,
        base: usize,
        hint: Hint,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        if s.is_empty() {
            return;
        }
        let f = Features::of(s.as_bytes());
        self.detect_with(s, &f, base, hint, edits, kinds);
    }

    fn detect_with(
        &self,
        s: &str,
        f: &Features,
        base: usize,
        hint: Hint,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        if !self.wants(f, hint) {
            return;
        }
        let mut spans = Vec::new();
        self.find_spans(s.as_bytes(), f, hint, &mut spans);
        if spans.is_empty() {
            return;
        }
        text::merge(&mut spans);
        for m in spans {
            edits.push(Edit {
                start: base + m.start,
                end: base + m.end,
                repl: m.kind.marker(),
            });
            kinds.push(RedactionKind::Detector(m.kind));
        }
    }

    /// Whether any enabled detector can match text with these features.
    #[inline]
    pub(crate) fn wants(&self, f: &Features, hint: Hint) -> bool {
        candidates(f, hint) & self.mask != 0
    }

    /// Runs every enabled detector whose prefilter passes.
    pub(crate) fn find_spans(&self, s: &[u8], f: &Features, hint: Hint, out: &mut Vec<Span>) {
        let run = candidates(f, hint) & self.mask;
        let on = |d: Detector| run & d.bit() != 0;
        if on(Detector::Email) {
            email::find(s, out);
        }
        if on(Detector::Phone) {
            phone::find(s, out);
        }
        if on(Detector::Card) {
            card::find(s, out);
        }
        if on(Detector::Ssn) {
            ssn::find(s, out);
        }
        if on(Detector::Iban) {
            iban::find(s, out);
        }
        if on(Detector::Jwt) {
            token::find_jwt(s, out);
        }
        if on(Detector::Token) {
            self.tokens.find(s, f, out);
        }
        if on(Detector::Ip) {
            if f.dotted_quad {
                ip::find_v4(s, out);
            }
            if f.colons >= 2 {
                ip::find_v6(s, out);
            }
        }
    }
}

/// The detectors (as [`Detector::bit`]s) whose prefilter passes on text
/// with these features: each needs the bytes its matches are made of.
#[inline]
fn candidates(f: &Features, hint: Hint) -> u8 {
    let mut c = 0;
    if f.at {
        c |= Detector::Email.bit();
    }
    if f.max_chunk_digits >= phone::MIN_DIGITS {
        c |= Detector::Phone.bit();
        if f.dashes >= 2 {
            c |= Detector::Ssn.bit();
        }
        if f.max_chunk_digits >= card::MIN_DIGITS as u32 {
            c |= Detector::Card.bit();
        }
    }
    if f.iban_start && f.len >= iban::MIN_LEN {
        c |= Detector::Iban.bit();
    }
    if f.dots >= 2 && f.max_run >= token::JWT_MIN_RUN {
        c |= Detector::Jwt.bit();
    }
    if TokenMatcher::wanted(f) {
        c |= Detector::Token.bit();
    }
    if !hint.no_ip && (f.dotted_quad || f.colons >= 2) {
        c |= Detector::Ip.bit();
    }
    c
}

#[cfg(test)]
mod tests;
