//! Key rules: the denylist (keys and URL parameter names removed with their
//! value, matched by words: see `words`), the hints a key gives about its
//! value, and the fixed exempt fields.
//!
//! A key rule names the kinds of value it removes ([`kinds`]): a key says
//! what a value is about, the value's kind says whether it can be the
//! secret or the personal data the rule is for. `sessionId` holding a
//! number (RudderStack's and Hightouch's session ids are start times) is
//! no session secret; `emailCampaignId: 12345` is no address.
//!
//! Lookups work in stack buffers: no allocation, no hashing.

#[cfg(test)]
use super::config::MAX_DENY_KEY_LEN;
use super::words::{BadRule, KeyRules, Words};

/// Event fields never scrubbed (built-in `keep` rules): the timestamps and
/// `type` are server-validated; `context.ip` belongs to the IP
/// anonymization step; `context.privacy.redactions` is the scrubber's own
/// report. The identity fields and `messageId` ARE scanned (see
/// `identity`), and so are `event` and `name`: an event named after an
/// email address is PII.
pub const EXEMPT_PATHS: &[&str] = &[
    "type",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "context.ip",
    "context.privacy.redactions",
];

/// The kinds of value a key rule removes, as bits: an entry of
/// `deny_keys` may end with `: kind, kind …` (`"session id: text, object,
/// array"`); without one it removes every kind. Booleans and nulls are
/// never removed (they carry no personal data).
pub(crate) mod kinds {
    use crate::json::Value;

    /// A string that is not a timestamp.
    pub const TEXT: u8 = 1;
    /// A JSON number.
    pub const NUMBER: u8 = 2;
    /// A string that is an RFC 3339 date-time.
    pub const TIMESTAMP: u8 = 4;
    pub const OBJECT: u8 = 8;
    pub const ARRAY: u8 = 16;
    pub const ALL: u8 = TEXT | NUMBER | TIMESTAMP | OBJECT | ARRAY;

    /// The names written in rules, with their bits.
    pub const NAMES: [(&str, u8); 5] = [
        ("text", TEXT),
        ("number", NUMBER),
        ("timestamp", TIMESTAMP),
        ("object", OBJECT),
        ("array", ARRAY),
    ];

    /// The bits of `"text, number"`; `None` when a name is unknown or
    /// there is none.
    pub fn parse(list: &str) -> Option<u8> {
        let mut bits = 0;
        for name in list.split(',').map(str::trim) {
            bits |= NAMES.iter().find(|(n, _)| *n == name)?.1;
        }
        (bits != 0).then_some(bits)
    }

    /// The kind of `v` (0 for booleans and nulls).
    pub fn of(v: &Value<'_>) -> u8 {
        match v {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => TIMESTAMP,
            Value::String(_) => TEXT,
            Value::Number(_) => NUMBER,
            Value::Object(_) => OBJECT,
            Value::Array(_) => ARRAY,
            Value::Bool(_) | Value::Null => 0,
        }
    }
}

/// Byte classes a key is summarized by, in one pass ([`Shape::of`]).
const B_LOWER: u8 = 1;
const B_PLAIN: u8 = 2;
const B_HEX: u8 = 4;
const B_DIGIT: u8 = 8;

static SHAPE: [u8; 256] = build_shape();

const fn build_shape() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_lowercase() {
            c |= B_LOWER;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b == b'-' {
            c |= B_PLAIN;
        }
        if b.is_ascii_hexdigit() || b == b'-' || b == b'#' {
            c |= B_HEX;
        }
        if b.is_ascii_digit() {
            c |= B_DIGIT;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// What one pass over a key's bytes tells.
struct Shape {
    /// Bits every byte has.
    all: u8,
    /// Bits some byte has.
    any: u8,
}

impl Shape {
    #[inline]
    fn of(b: &[u8]) -> Shape {
        let (mut all, mut any) = (u8::MAX, 0u8);
        for &c in b {
            let k = SHAPE[c as usize];
            all &= k;
            any |= k;
        }
        Shape { all, any }
    }

    /// One lower-case ASCII word.
    fn one_word(&self, len: usize) -> bool {
        len > 0 && self.all & B_LOWER != 0
    }

    /// See [`PLAIN_KEY_MAX`].
    fn plain(&self, len: usize) -> bool {
        len < PLAIN_KEY_MAX && self.all & B_PLAIN != 0
    }

    /// A hex id, UUID or colour used as a key: it holds no words
    /// (`…-0000-3cc0` and `#0cc` are no `cc`).
    /// Short ones must start with a digit or `#` (`cc2` is a word and a
    /// digit).
    fn hex_id(&self, key: &[u8]) -> bool {
        let lead = key
            .first()
            .is_some_and(|c| c.is_ascii_digit() || *c == b'#');
        self.all & B_HEX != 0
            && self.any & B_DIGIT != 0
            && (key.len() >= HEX_ID_MIN || (key.len() >= 3 && lead))
    }
}

/// Shortest key taken for a hex id whatever its first byte.
const HEX_ID_MIN: usize = 8;

/// Keys shorter than this made only of ASCII letters, `_` and `-` cannot
/// hold anything a detector matches (every detector needs a digit, `@`,
/// `.`, `:`, `=`, a space, or a token-like run of at least 15).
const PLAIN_KEY_MAX: usize = 15;

/// What a key says about the string values under it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hint {
    /// The value is a query string even without a leading `?` (`search`).
    pub query: bool,
    /// The value is a version or build number: no IP detection.
    pub no_ip: bool,
}

/// Keys whose string values are query strings.
const QUERY_KEYS: &[&[u8]] = &[b"search"];
/// Normalized key suffixes marking version numbers.
const VERSION_SUFFIXES: &[&[u8]] = &[b"version", b"versions"];
/// Keys holding build numbers.
const BUILD_KEYS: &[&[u8]] = &[b"build"];

/// Result of looking one key up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyInfo {
    /// Index of the deny entry the key matches.
    pub denied: Option<usize>,
    pub hint: Hint,
    /// No detector can match the key itself.
    pub plain: bool,
}

/// Byte equality without a call to `memcmp` (keys are short).
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Keys of the Segment spec and of common clients, classified once when
/// the scrubber is built (with its configured rules), so the walk looks
/// them up instead of splitting them into words on every event.
const COMMON_KEYS: &[&str] = &[
    "anonymousId",
    "messageId",
    "receivedAt",
    "sentAt",
    "originalTimestamp",
    "userId",
    "groupId",
    "previousId",
    "userAgent",
    "userAgentData",
    "writeKey",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "fbclid",
    "screenWidth",
    "screenHeight",
    "innerWidth",
    "innerHeight",
    "advertisingId",
    "adTrackingEnabled",
    "product_id",
    "order_id",
    "productId",
    "orderId",
];

/// Longest [`COMMON_KEYS`] entry.
const COMMON_KEY_MAX: usize = 24;

#[derive(Debug, Default)]
pub(crate) struct DenyKeys {
    rules: KeyRules,
    /// [`COMMON_KEYS`] by length, with their classification.
    common: Vec<Vec<(&'static str, KeyInfo)>>,
}

/// A deny key that has no letters or more than [`MAX_DENY_KEY_LEN`].
#[derive(Debug)]
pub(crate) struct BadKey(pub String);

impl DenyKeys {
    pub(crate) fn new<'a>(keys: impl IntoIterator<Item = &'a String>) -> Result<DenyKeys, BadKey> {
        let rules = KeyRules::new(keys).map_err(|BadRule(k)| BadKey(k))?;
        let mut d = DenyKeys {
            rules,
            common: vec![Vec::new(); COMMON_KEY_MAX + 1],
        };
        for k in COMMON_KEYS {
            let info = d.classify_words(k);
            d.common[k.len()].push((k, info));
        }
        Ok(d)
    }

    /// The classification of a [`COMMON_KEYS`] entry, if `key` is one.
    #[inline]
    fn common(&self, key: &[u8]) -> Option<KeyInfo> {
        self.common
            .get(key.len())?
            .iter()
            .find(|(k, _)| same(k.as_bytes(), key))
            .map(|&(_, info)| info)
    }

    /// The configured spelling of entry `i`.
    pub(crate) fn name(&self, i: usize) -> &str {
        self.rules.name(i)
    }

    /// Whether entry `i` removes `value` (its kinds include the value's).
    pub(crate) fn removes(&self, i: usize, value: &crate::json::Value<'_>) -> bool {
        self.rules.kinds(i) & kinds::of(value) != 0
    }

    /// Looks an object key up: denied? hints for its values?
    pub(crate) fn classify(&self, key: &str) -> KeyInfo {
        match self.common(key.as_bytes()) {
            Some(info) => info,
            None => self.classify_words(key),
        }
    }

    fn classify_words(&self, key: &str) -> KeyInfo {
        let b = key.as_bytes();
        let shape = Shape::of(b);
        let plain = shape.plain(b.len());
        if shape.hex_id(b) {
            return KeyInfo {
                denied: None,
                hint: Hint::default(),
                plain,
            };
        }
        if shape.one_word(b.len()) {
            return KeyInfo {
                denied: self.rules.find_one_word(b),
                hint: hint(b),
                plain,
            };
        }
        let words = Words::split(key);
        KeyInfo {
            denied: self.rules.find(&words),
            hint: hint(words.joined()),
            plain,
        }
    }

    /// Looks a decoded URL parameter name up. PHP-style names count by
    /// their last bracketed part: `user[email]` and `email[]` are `email`.
    pub(crate) fn param(&self, name: &str) -> Option<usize> {
        let mut name = name.strip_suffix("[]").unwrap_or(name);
        if let Some(inner) = name.strip_suffix(']') {
            if let Some(open) = super::text::rfind_any(b"[", inner.as_bytes()) {
                name = &inner[open + 1..];
            }
        }
        if let Some(info) = self.common(name.as_bytes()) {
            return info.denied;
        }
        self.rules.find_key(name.as_bytes())
    }
}

/// The hints of a key, from its words without separators.
#[inline]
fn hint(joined: &[u8]) -> Hint {
    let n = joined.len();
    let ends = |x: &&[u8]| n >= x.len() && same(&joined[n - x.len()..], x);
    // Every hint key is at least as long as `build`.
    if n < BUILD_KEYS[0].len() {
        return Hint::default();
    }
    Hint {
        query: QUERY_KEYS.iter().any(|k| same(k, joined)),
        no_ip: VERSION_SUFFIXES.iter().any(ends) || BUILD_KEYS.iter().any(|k| same(k, joined)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::DEFAULT_DENY_KEYS;
    use super::*;

    fn defaults() -> DenyKeys {
        let keys: Vec<String> = DEFAULT_DENY_KEYS.iter().map(|s| s.to_string()).collect();
        DenyKeys::new(&keys).expect("default keys are valid")
    }

    #[test]
    fn denylist_matches_words_in_any_casing() {
        let d = defaults();
        for k in [
            "email",
            "Email",
            "E-Mail",
            "e_mail",
            "E.MAIL",
            "firstName",
            "first_name",
            "FIRST-NAME",
            "accessToken",
            "api-key",
            "APIKEY",
            "sessionId",
            "cardNumber",
            "CVV",
            "user_email",
            "newPassword",
        ] {
            assert!(d.classify(k).denied.is_some(), "{k} is denied");
        }
        for k in [
            "emails",
            "passenger",
            "author",
            "hotel",
            "account",
            "title",
            "tokens_used",
            "sku",
            "url",
            "path",
            "search",
            "address_type",
            "",
        ] {
            assert!(d.classify(k).denied.is_none(), "{k} is not denied");
        }
        assert_eq!(d.name(d.classify("E-Mail").denied.unwrap()), "email");
    }

    #[test]
    fn param_names_with_brackets() {
        let d = defaults();
        assert!(d.param("user[email]").is_some());
        assert!(d.param("email[]").is_some());
        assert!(d.param("user[name]").is_none());
        assert!(d.param("utm_source").is_none());
    }

    #[test]
    fn hints() {
        let d = defaults();
        assert!(d.classify("search").hint.query);
        assert!(d.classify("app_version").hint.no_ip);
        assert!(d.classify("osVersion").hint.no_ip);
        assert!(d.classify("build").hint.no_ip);
        assert_eq!(d.classify("ip").hint, Hint::default());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(DenyKeys::new(&["-_.".to_string()]).is_err());
        assert!(DenyKeys::new(&["x".repeat(MAX_DENY_KEY_LEN + 1)]).is_err());
    }

    #[test]
    fn hex_ids_as_keys_are_not_words() {
        let d = defaults();
        for k in [
            "00000000-0000-0000-0000-000000003cc0",
            "5f3cc0aa12",
            "#0cc",
            "0cc",
        ] {
            assert!(d.classify(k).denied.is_none(), "{k}");
        }
        assert!(d.classify("cc_2").denied.is_some());
        assert!(d.classify("cc2").denied.is_some());
        assert!(d.classify("cvv2").denied.is_some());
    }

    #[test]
    fn common_keys_are_classified_as_the_rules_say() {
        let d = defaults();
        for k in COMMON_KEYS {
            assert!(k.len() <= COMMON_KEY_MAX, "{k}");
            assert_eq!(d.classify(k).denied, d.classify_words(k).denied, "{k}");
            assert_eq!(d.classify(k).hint, d.classify_words(k).hint, "{k}");
        }
        let strict = DenyKeys::new(&["utm source".to_string()]).expect("valid");
        assert!(strict.classify("utm_source").denied.is_some());
        assert!(strict.param("utm_source").is_some());
    }

    #[test]
    fn plain_keys() {
        let plain = |k: &str| Shape::of(k.as_bytes()).plain(k.len());
        assert!(plain("firstName"));
        assert!(plain("user_id"));
        assert!(!plain("a@b.co"));
        assert!(!plain("averyveryverylongkey"));
    }
}
