//! Key rules: the denylist (keys and URL parameter names removed with their
//! value, matched by words: see `words`), the hints a key gives about its
//! value, and the fixed exempt fields.
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

/// Bytes a plain key is made of.
static PLAIN: [bool; 256] = build_plain();

const fn build_plain() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphabetic() || b == b'_' || b == b'-';
        i += 1;
    }
    t
}

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

/// Whether `key` is plain: shorter than [`PLAIN_KEY_MAX`] and made only of
/// ASCII letters, `_` and `-`.
#[inline]
fn is_plain(key: &str) -> bool {
    key.len() < PLAIN_KEY_MAX && key.bytes().all(|b| PLAIN[b as usize])
}

#[derive(Debug, Default)]
pub(crate) struct DenyKeys {
    rules: KeyRules,
}

/// A deny key that has no letters or more than [`MAX_DENY_KEY_LEN`].
#[derive(Debug)]
pub(crate) struct BadKey(pub String);

impl DenyKeys {
    pub(crate) fn new<'a>(keys: impl IntoIterator<Item = &'a String>) -> Result<DenyKeys, BadKey> {
        let rules = KeyRules::new(keys).map_err(|BadRule(k)| BadKey(k))?;
        Ok(DenyKeys { rules })
    }

    /// The configured spelling of entry `i`.
    pub(crate) fn name(&self, i: usize) -> &str {
        self.rules.name(i)
    }

    /// Looks an object key up: denied? hints for its values?
    pub(crate) fn classify(&self, key: &str) -> KeyInfo {
        let words = Words::split(key);
        let joined = words.joined();
        let n = joined.len();
        let ends = |x: &&[u8]| n >= x.len() && same(&joined[n - x.len()..], x);
        // Every hint key is at least as long as `build`.
        let hint = if n >= BUILD_KEYS[0].len() {
            Hint {
                query: QUERY_KEYS.iter().any(|k| same(k, joined)),
                no_ip: VERSION_SUFFIXES.iter().any(ends)
                    || BUILD_KEYS.iter().any(|k| same(k, joined)),
            }
        } else {
            Hint::default()
        };
        KeyInfo {
            denied: self.rules.find(&words),
            hint,
            plain: is_plain(key),
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
        self.rules.find(&Words::split(name))
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
    fn plain_keys() {
        assert!(is_plain("firstName"));
        assert!(is_plain("user_id"));
        assert!(!is_plain("a@b.co"));
        assert!(!is_plain("averyveryverylongkey"));
    }
}
