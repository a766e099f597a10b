//! PII scrubbing: the last step of the privacy stage. Removes personal data
//! from an event in place and reports what it removed (paths and detector
//! names only, never values) so the caller can write
//! `context.privacy.redactions` and count metrics per label.
//!
//! Contract:
//! - **Every value is in scope.** Every string of the event (values, object
//!   keys, array items, at any depth) is scanned, the identity fields
//!   (`userId`, `anonymousId`, `groupId`, `previousId`) and `messageId`
//!   included. Only [`EXEMPT_PATHS`] (server-validated timestamps, `type`,
//!   `context.ip`, the scrubber's own report) and `keep` rules are not.
//! - **Identity fields.** A match is not spliced into an id: the whole value
//!   is replaced by its keyed pseudonym, or the event is rejected, or it is
//!   kept, as the source's `identity_pii` says (see `identity`). The
//!   redaction is recorded at the field under the detector that matched.
//! - **Keys by words.** An object key is split into words and matched
//!   against the key rules (see `words` and
//!   [`config::DEFAULT_DENY_KEYS`]): a match removes the key with its value
//!   when the value is a string, a number, an object or an array; booleans
//!   and nulls stay (`userAgentData.mobile = true` is a device flag, not a
//!   phone number). Segment's person traits ([`config::PERSON_TRAITS`])
//!   are removed under `traits` and `context.traits`. A key that is itself
//!   PII (an email used as a key) is removed with its value and recorded
//!   under its detector, with the key written as the marker in the path
//!   (`properties.[email]`), so no report carries the PII.
//! - **Values.** Every string is scanned by the enabled detectors and the
//!   custom ones; matches are replaced in place by `[email]`, `[phone]`,
//!   `[card]`, `[iban]`, `[ssn]`, `[jwt]`, `[token]`, `[ip]`, `[<custom>]`,
//!   and the rest of the text is kept. Overlapping matches are replaced as
//!   one, named after the more specific detector ([`Detector::precedence`]).
//!   JSON integers of 13 to 19 digits that are card numbers become the
//!   string `"[card]"`. The precise rule of each detector, and the
//!   look-alikes it leaves alone, are documented in its module.
//! - **Decoded forms.** Text with percent-escapes or `+` for spaces is
//!   scanned decoded too, and matches are replaced in the original text
//!   (see `decode`); a string holding a JSON object or array is parsed and
//!   walked like the event itself, and written back (compact) only when
//!   something in it was removed.
//! - **URLs** in strings (whole or embedded in text) lose their userinfo
//!   and their denied or PII-carrying query/fragment parameters; the rest is
//!   spliced, never re-encoded (see `url`).
//! - **Path rules** (see `selector`): configured selectors with `remove`,
//!   `pseudonymize`, `mask` or `keep` decide before the key rules and
//!   detectors do.
//! - **Bounds.** Values nested deeper than `max_depth` are removed
//!   (`depth`); strings longer than `max_string_bytes` are cut and the kept
//!   part scanned (`truncated`). Nothing is passed through unscanned.
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
mod coords;
mod custom;
mod decode;
mod email;
mod iban;
pub mod identity;
mod ip;
mod keys;
mod phone;
pub mod selector;
mod ssn;
mod text;
mod token;
mod url;
mod walk;
mod words;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod proptests_scope;

use std::fmt::Write as _;

use crate::json::{Map, Value};

pub use config::{Detector, ScrubConfig};
pub use identity::{IdentityPii, IDENTITY_FIELDS, PSEUDONYM_PREFIX};
pub use keys::EXEMPT_PATHS;
pub use selector::Action;

use custom::Custom;
use decode::Decoded;
use identity::Pseudonymizer;
use keys::{DenyKeys, Hint};
use selector::{Hit, Node, PathRules, RuleSpec, States};
use text::{Edit, Features, Span};
use token::TokenMatcher;
use walk::{At, Walk};

/// Deepest nesting of URLs inside URL parameters that is followed.
pub(crate) const MAX_URL_NESTING: u8 = 4;
/// How far back from the cut a truncation looks for whitespace.
const TRUNCATE_BACKOFF: usize = 64;
/// Smallest integer with 13 digits (shortest card number).
const MIN_CARD_INTEGER: u64 = 1_000_000_000_000;

/// Why a scrubber cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("deny key {0:?} is empty, longer than 64 characters after normalization, or names a value kind other than text, number, timestamp, object, array")]
    BadDenyKey(String),
    #[error(transparent)]
    Selector(#[from] selector::SelectorError),
    #[error(transparent)]
    Custom(#[from] custom::CustomError),
    #[error(transparent)]
    Secret(#[from] config::SecretError),
    #[error("keep_traits: {0:?} is not one of the person traits {list:?}", list = config::PERSON_TRAITS)]
    NotAPersonTrait(String),
    #[error("max_depth must be at least 1")]
    ZeroDepth,
    #[error("max_string_bytes must be at least {min}, got {got}")]
    StringLimitTooSmall { min: usize, got: usize },
    #[error("token patterns: {0}")]
    Patterns(String),
    #[error("coordinate_decimals must be at most {max}, got {got}")]
    TooManyDecimals { max: u32, got: u32 },
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
    /// A Segment person trait was removed.
    PersonTrait,
    /// A path rule removed, pseudonymized or masked the value.
    Rule(Action),
    /// A custom detector matched; holds its name.
    Custom(&'static str),
    /// A client-sent coordinate was rounded (`coordinate_decimals`).
    Coordinates,
}

impl RedactionKind {
    /// Every label [`RedactionKind::label`] can return, besides the names
    /// of custom detectors.
    pub const LABELS: [&'static str; 18] = [
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
        "person_trait",
        "rule_remove",
        "rule_pseudonymize",
        "rule_mask",
        "coordinates",
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
            RedactionKind::PersonTrait => "person_trait",
            RedactionKind::Rule(a) => a.label(),
            RedactionKind::Custom(name) => name,
            RedactionKind::Coordinates => "coordinates",
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
    paths: PathRules,
    tokens: TokenMatcher,
    custom: Vec<Custom>,
    identity: IdentityPii,
    pseudonyms: Pseudonymizer,
    max_depth: usize,
    max_string_bytes: usize,
    /// Decimals client-sent coordinates are rounded to; `None`: kept.
    coordinate_decimals: Option<u32>,
}

/// What one `scrub_event` call found besides its redactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubOutcome {
    /// An identity field was or held personal data (and was pseudonymized;
    /// under `identity_pii = "reject"` the caller rejects the event).
    pub identity_pii: bool,
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

/// The path rules of a configuration, in priority order: configured rules,
/// `allow_paths`, `keep_traits`, the exempt fields, the person traits.
fn path_rules(cfg: &ScrubConfig) -> Result<PathRules, ScrubError> {
    for t in &cfg.keep_traits {
        if !config::PERSON_TRAITS.contains(&t.as_str()) {
            return Err(ScrubError::NotAPersonTrait(t.clone()));
        }
    }
    let kept_traits: Vec<String> = cfg
        .keep_traits
        .iter()
        .flat_map(|t| [format!("traits.{t}"), format!("context.traits.{t}")])
        .collect();
    let person: Vec<(String, bool)> = config::PERSON_TRAITS
        .iter()
        .filter(|t| !cfg.keep_traits.iter().any(|k| k == *t))
        .flat_map(|t| {
            [
                (format!("traits.{t}"), true),
                (format!("context.traits.{t}"), false),
            ]
        })
        .collect();
    // (selector, action, person trait, skipped on group events)
    let keep = |selector: &str| (selector.to_string(), Action::Keep, false, false);
    let all: Vec<(String, Action, bool, bool)> = cfg
        .rules
        .iter()
        .map(|r| (r.selector.clone(), r.action, false, false))
        .chain(cfg.allow_paths.iter().map(|p| keep(p)))
        .chain(kept_traits.iter().map(|p| keep(p)))
        .chain(EXEMPT_PATHS.iter().map(|p| keep(p)))
        .chain(
            person
                .into_iter()
                .map(|(p, top)| (p, Action::Remove, true, top)),
        )
        .collect();
    let specs =
        all.iter()
            .enumerate()
            .map(
                |(i, (selector, action, person_trait, group_exempt))| RuleSpec {
                    selector,
                    hit: Hit {
                        action: *action,
                        priority: i as u32,
                        person_trait: *person_trait,
                        group_exempt: *group_exempt,
                    },
                },
            );
    Ok(PathRules::new(specs)?)
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
        if cfg.coordinate_decimals > coords::MAX_COORDINATE_DECIMALS {
            return Err(ScrubError::TooManyDecimals {
                max: coords::MAX_COORDINATE_DECIMALS,
                got: cfg.coordinate_decimals,
            });
        }
        let deny = DenyKeys::new(cfg.deny_keys.iter().chain(&cfg.extra_deny_keys))
            .map_err(|k| ScrubError::BadDenyKey(k.0))?;
        let tokens = TokenMatcher::new().map_err(|e| ScrubError::Patterns(e.to_string()))?;
        let key = cfg.pseudonym_key()?;
        Ok(Scrubber {
            enabled: cfg.enabled,
            mask: cfg.detectors.iter().fold(0, |m, d| m | d.bit()),
            deny,
            paths: path_rules(cfg)?,
            tokens,
            custom: Custom::build(&cfg.custom_detectors)?,
            identity: cfg.identity_pii,
            pseudonyms: Pseudonymizer::new(key.as_deref()),
            max_depth: cfg.max_depth,
            max_string_bytes: cfg.max_string_bytes,
            coordinate_decimals: cfg.coarsen_coordinates.then_some(cfg.coordinate_decimals),
        })
    }

    /// Whether scrubbing is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The source's policy for identity fields holding personal data.
    pub fn identity_policy(&self) -> IdentityPii {
        self.identity
    }

    /// Whether identity pseudonyms use a random per-process key (no
    /// `pseudonym_secret` configured): they then differ between instances
    /// and restarts.
    pub fn ephemeral_pseudonyms(&self) -> bool {
        self.pseudonyms.ephemeral()
    }

    /// Scrubs a whole event object in place (every field but
    /// [`EXEMPT_PATHS`] and `keep` rules) and appends what was removed to
    /// `out`.
    pub fn scrub_event(&self, event: &mut Map<'_>, out: &mut Vec<Redaction>) -> ScrubOutcome {
        if !self.enabled {
            return ScrubOutcome::default();
        }
        let group = matches!(event.get("type"), Some(Value::String(t)) if t == "group");
        let mut walk = Walk {
            out,
            kinds: Vec::new(),
            group,
            outcome: ScrubOutcome::default(),
        };
        let at = At {
            node: Some(PathRules::ROOT),
            states: self.paths.start(),
        };
        self.walk_map(event, None, 0, at, &mut walk);
        walk.outcome
    }

    /// Scrubs one string (URL rules included); returns `None` when nothing
    /// changed, without allocating.
    pub fn scrub_str(&self, s: &str, out_kinds: &mut Vec<RedactionKind>) -> Option<String> {
        if !self.enabled {
            return None;
        }
        self.scrub_string(s, Hint::default(), out_kinds)
    }

    /// One string value: cut if too long, then scanned.
    fn scrub_string(&self, s: &str, hint: Hint, kinds: &mut Vec<RedactionKind>) -> Option<String> {
        // Short letters-only text and bare UUIDs (visitor and item ids)
        // cannot hold a built-in match.
        if self.custom.is_empty()
            && (text::trivially_clean(s.as_bytes()) || token::is_uuid(s.as_bytes()))
        {
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

    /// Whether the decoded form of text with features `f` is worth a scan:
    /// it has a percent-escape, or `+` signs whose decoding to spaces could
    /// let a detector match.
    fn decoding_pays(&self, s: &[u8], f: &Features, hint: Hint) -> bool {
        if !decode::may_decode(f) {
            return false;
        }
        if f.pct && decode::has_escape(s) {
            return true;
        }
        // `+` only ever becomes a space, which the prefilters count as a
        // number separator already: decoding pays only if a detector can
        // match text with a space.
        let spaced = Features { space: true, ..*f };
        f.plus && (self.wants(&spaced, hint) || !self.custom.is_empty())
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
        let direct = self.wants(f, hint);
        let decoded = if self.decoding_pays(s.as_bytes(), f, hint) {
            Decoded::of(s, f)
        } else {
            None
        };
        if !direct && decoded.is_none() && self.custom.is_empty() {
            return;
        }
        let mut spans = Vec::new();
        if direct {
            self.find_spans(s.as_bytes(), f, hint, &mut spans);
        }
        let mut custom = Vec::new();
        self.find_custom(s, &mut custom);
        if let Some(d) = &decoded {
            let text = d.text();
            let df = Features::of(text.as_bytes());
            let mut more = Vec::new();
            if self.wants(&df, hint) {
                self.find_spans(text.as_bytes(), &df, hint, &mut more);
            }
            d.map_spans(&mut more);
            spans.append(&mut more);
            let from = custom.len();
            self.find_custom(text, &mut custom);
            for c in &mut custom[from..] {
                (c.start, c.end) = d.original(c.start, c.end);
            }
        }
        if spans.is_empty() && custom.is_empty() {
            return;
        }
        text::merge(&mut spans);
        if !custom.is_empty() {
            self.merge_custom(&mut spans, &mut custom, base, edits, kinds);
        }
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
#[cfg(test)]
mod tests_rules;
