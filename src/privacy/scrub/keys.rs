//! Key rules: the denylist (keys and URL parameter names removed with their
//! value), the hints a key gives about its value, and the tree of paths
//! kept verbatim (`allow_paths` plus the fixed exempt fields).
//!
//! Key normalization: ASCII letters lower-cased, `-`, `_` and `.` dropped,
//! everything else kept. Only whole keys match. Lookups normalize into a
//! stack buffer, bucketed by length: no allocation, no hashing.

use super::config::MAX_DENY_KEY_LEN;

/// Event fields never scrubbed. The identity fields are the visitor
/// identity the opt-out and routing stages work on; the timestamps and
/// `type` are server-validated; `context.ip` belongs to the IP
/// anonymization step; `context.privacy.redactions` is the scrubber's own
/// report. `event` and `name` ARE scanned: an event named after an email
/// address is PII.
pub const EXEMPT_PATHS: &[&str] = &[
    "anonymousId",
    "userId",
    "groupId",
    "previousId",
    "messageId",
    "type",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "context.ip",
    "context.privacy.redactions",
];

/// Writes the normalized form of `key` into `buf` (zeroed by the caller)
/// and returns its length; `None` when it does not fit (such a key is never denied). Also says
/// whether the key is plain: shorter than [`PLAIN_KEY_MAX`] and made only
/// of ASCII letters, `_` and `-`.
#[inline]
fn normalize(key: &str, buf: &mut [u8; MAX_DENY_KEY_LEN]) -> (Option<usize>, bool) {
    let bytes = key.as_bytes();
    if bytes.len() > MAX_DENY_KEY_LEN {
        return normalize_long(bytes, buf);
    }
    // Branch-free: write every byte's normalized form (0 for a separator)
    // and advance only past kept ones; the key fits, so `n` stays in range.
    let mut plain = bytes.len() < PLAIN_KEY_MAX;
    let mut n = 0;
    for &b in bytes {
        let m = NORMAL[b as usize];
        buf[n] = m;
        n += usize::from(m != 0);
        plain &= PLAIN[b as usize];
    }
    (Some(n), plain)
}

/// [`normalize`] for keys longer than the buffer (never plain).
#[cold]
fn normalize_long(bytes: &[u8], buf: &mut [u8; MAX_DENY_KEY_LEN]) -> (Option<usize>, bool) {
    let mut n = 0;
    for &b in bytes {
        let m = NORMAL[b as usize];
        if m == 0 {
            continue;
        }
        if n == MAX_DENY_KEY_LEN {
            return (None, false);
        }
        buf[n] = m;
        n += 1;
    }
    (Some(n), false)
}

/// Normalized form of each byte: ASCII lower case, 0 for the separators
/// `-`, `_`, `.` (and for NUL, which never matches a deny entry either).
static NORMAL: [u8; 256] = build_normal();

const fn build_normal() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'-' | b'_' | b'.' => 0,
            _ => b.to_ascii_lowercase(),
        };
        i += 1;
    }
    t
}

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

/// The first 8 bytes of a zero-padded normalized key: compared before the
/// full key, so a lookup rarely reaches a byte-by-byte comparison.
#[inline]
fn head(buf: &[u8; MAX_DENY_KEY_LEN]) -> u64 {
    let mut h = [0u8; 8];
    h.copy_from_slice(&buf[..8]);
    u64::from_le_bytes(h)
}

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

/// `(head, normalized key, index into the names)`.
type DenyEntry = (u64, Box<[u8]>, usize);

#[derive(Debug, Default)]
pub(crate) struct DenyKeys {
    /// Normalized entries by length.
    by_len: Vec<Vec<DenyEntry>>,
    /// The first configured spelling of each entry.
    names: Vec<String>,
}

/// A deny key that normalizes to nothing or to more than
/// [`MAX_DENY_KEY_LEN`] bytes.
#[derive(Debug)]
pub(crate) struct BadKey(pub String);

impl DenyKeys {
    pub(crate) fn new<'a>(keys: impl IntoIterator<Item = &'a String>) -> Result<DenyKeys, BadKey> {
        let mut d = DenyKeys {
            by_len: vec![Vec::new(); MAX_DENY_KEY_LEN + 1],
            names: Vec::new(),
        };
        for k in keys {
            let mut buf = [0u8; MAX_DENY_KEY_LEN];
            let norm: Box<[u8]> = match normalize(k, &mut buf).0 {
                Some(n) if n > 0 => buf[..n].into(),
                _ => return Err(BadKey(k.clone())),
            };
            let bucket = &mut d.by_len[norm.len()];
            if bucket.iter().any(|(_, e, _)| **e == *norm) {
                continue;
            }
            bucket.push((head(&buf), norm, d.names.len()));
            d.names.push(k.clone());
        }
        Ok(d)
    }

    /// The configured spelling of entry `i`.
    pub(crate) fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// `norm` is the start of `buf`, which is zero after it.
    #[inline]
    fn find(&self, norm: &[u8], buf: &[u8; MAX_DENY_KEY_LEN]) -> Option<usize> {
        let h = head(buf);
        self.by_len
            .get(norm.len())?
            .iter()
            .find(|(eh, e, _)| *eh == h && same(e, norm))
            .map(|&(_, _, i)| i)
    }

    /// Looks an object key up: denied? hints for its values?
    pub(crate) fn classify(&self, key: &str) -> KeyInfo {
        let mut buf = [0u8; MAX_DENY_KEY_LEN];
        let (Some(n), plain) = normalize(key, &mut buf) else {
            return KeyInfo::default();
        };
        let norm = &buf[..n];
        let ends = |x: &&[u8]| n >= x.len() && same(&norm[n - x.len()..], x);
        // Every hint key is at least as long as `build`.
        let hint = if n >= BUILD_KEYS[0].len() {
            Hint {
                query: QUERY_KEYS.iter().any(|k| same(k, norm)),
                no_ip: VERSION_SUFFIXES.iter().any(ends)
                    || BUILD_KEYS.iter().any(|k| same(k, norm)),
            }
        } else {
            Hint::default()
        };
        KeyInfo {
            denied: self.find(norm, &buf),
            hint,
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
        let mut buf = [0u8; MAX_DENY_KEY_LEN];
        let n = normalize(name, &mut buf).0?;
        self.find(&buf[..n], &buf)
    }
}

/// A node of the kept-paths tree.
pub(crate) type TrieNode = u32;

/// Paths kept verbatim, as a tree of key names.
#[derive(Debug)]
pub(crate) struct PathTrie {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    children: Vec<(Box<str>, TrieNode)>,
    keep: bool,
}

/// An allow path with an empty segment.
#[derive(Debug)]
pub(crate) struct BadPath(pub String);

impl PathTrie {
    pub(crate) const ROOT: TrieNode = 0;

    pub(crate) fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<PathTrie, BadPath> {
        let mut t = PathTrie {
            nodes: vec![Node::default()],
        };
        for p in paths {
            if p.split('.').any(str::is_empty) {
                return Err(BadPath(p.to_string()));
            }
            let mut at = Self::ROOT;
            for seg in p.split('.') {
                at = match t.child(at, seg) {
                    Some(c) => c,
                    None => {
                        let id = t.nodes.len() as TrieNode;
                        t.nodes.push(Node::default());
                        t.nodes[at as usize].children.push((seg.into(), id));
                        id
                    }
                };
            }
            t.nodes[at as usize].keep = true;
        }
        Ok(t)
    }

    #[inline]
    pub(crate) fn child(&self, node: TrieNode, key: &str) -> Option<TrieNode> {
        self.nodes[node as usize]
            .children
            .iter()
            .find(|(k, _)| same(k.as_bytes(), key.as_bytes()))
            .map(|&(_, c)| c)
    }

    #[inline]
    pub(crate) fn keeps(&self, node: TrieNode) -> bool {
        self.nodes[node as usize].keep
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
    fn denylist_ignores_case_and_separators() {
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
        ] {
            assert!(d.classify(k).denied.is_some(), "{k} is denied");
        }
        for k in [
            "user_email",
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
    fn bad_keys_and_paths_are_refused() {
        assert!(DenyKeys::new(&["-_.".to_string()]).is_err());
        assert!(DenyKeys::new(&["x".repeat(MAX_DENY_KEY_LEN + 1)]).is_err());
        assert!(PathTrie::new(["a..b"]).is_err());
        assert!(PathTrie::new([""]).is_err());
    }

    #[test]
    fn trie_walks_and_keeps() {
        let t = PathTrie::new(EXEMPT_PATHS.iter().copied().chain(["traits.email"])).expect("valid");
        let ctx = t.child(PathTrie::ROOT, "context").expect("context node");
        assert!(!t.keeps(ctx));
        assert!(t.keeps(t.child(ctx, "ip").expect("ip node")));
        let traits = t.child(PathTrie::ROOT, "traits").expect("traits node");
        assert!(t.keeps(t.child(traits, "email").expect("email node")));
        assert!(t.child(PathTrie::ROOT, "properties").is_none());
        assert!(t.keeps(t.child(PathTrie::ROOT, "userId").expect("userId")));
    }
}
