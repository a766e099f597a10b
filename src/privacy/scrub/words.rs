//! Key rules by words: an object key (or a URL parameter name) is split
//! into lower-cased words at camelCase humps, `_`, `-`, `.`, spaces and
//! other punctuation, and around digits (which are dropped: `cvv2` is
//! `cvv`). A rule is a phrase of one or more words; it matches when a run
//! of consecutive words of the key spells it, so `newPassword`,
//! `password_confirmation` and `PASSWORD` all hold `password`, and
//! `dateOfBirth`, `date_of_birth` and `DOB_date` hold `date of birth` or
//! `dob`. Words, not substrings: `tokenizer`, `pinned` and `hotel` hold no
//! `token`, `pin` or `tel`.
//!
//! Phrases are compared without the spaces between their words, so the
//! rule `firstname` (or `first_name`, `first name`) matches `firstName`,
//! `first_name` and `FIRSTNAME` alike. A run never spans digits:
//! `0cc0` holds `cc` alone but `c0c` holds no `cc` (hex ids and UUIDs
//! used as keys are not read as words).
//!
//! Position, written in the rule: `^phrase` must start at the first word,
//! `phrase$` must end at the last one (`mobile$` matches `mobile` and
//! `userMobile`, not `mobile_app_version`).
//!
//! Two exceptions keep the rules precise:
//! - a match that does not end the key, followed by a last word saying the
//!   value is *about* the field ([`META_WORDS`]: `email_type`,
//!   `password_length`, `phone_model`), is no match;
//! - a built-in rule may name words that must not come right before it
//!   (`address` after `ip` or `mac`: `ipAddress` belongs to the IP rules).
//!
//! Lookups work in a stack buffer, bucketed by length: no allocation.

use super::config::MAX_DENY_KEY_LEN;
use super::keys::same;

/// Most words of a key that are looked at; further words are ignored.
pub(crate) const MAX_WORDS: usize = 16;

/// Last words saying a value describes the field rather than holds it.
pub const META_WORDS: &[&str] = &[
    "type",
    "types",
    "kind",
    "count",
    "length",
    "len",
    "size",
    "verified",
    "valid",
    "validated",
    "enabled",
    "disabled",
    "required",
    "optional",
    "format",
    "status",
    "strength",
    "provided",
    "present",
    "exists",
    "changed",
    "domain",
    "model",
    "brand",
    "country",
    "provider",
    "visible",
    "hidden",
];

/// A key split into words: the lower-cased letters of its words, one
/// after the other without separators, and where each word ends.
pub(crate) struct Words {
    buf: [u8; MAX_DENY_KEY_LEN],
    ends: [u8; MAX_WORDS],
    /// Bit `i`: digits come right before word `i`.
    after_digits: u32,
    n: usize,
}

impl Words {
    /// Splits `key`. Words that do not fit the buffer are left out.
    pub(crate) fn split(key: &str) -> Words {
        let mut w = Words {
            buf: [0; MAX_DENY_KEY_LEN],
            ends: [0; MAX_WORDS],
            after_digits: 0,
            n: 0,
        };
        let mut digits = false;
        let b = key.as_bytes();
        let mut len = 0usize;
        let mut open = false;
        let mut prev = 0u8;
        for (i, &c) in b.iter().enumerate() {
            let letter = !c.is_ascii() || c.is_ascii_alphabetic();
            if !letter {
                if open {
                    if !w.close(len) {
                        return w;
                    }
                    open = false;
                }
                digits |= c.is_ascii_digit();
                prev = c;
                continue;
            }
            if !open {
                if digits {
                    w.after_digits |= 1 << w.n;
                }
                digits = false;
            }
            if open && c.is_ascii_uppercase() {
                let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
                if prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower) {
                    if !w.close(len) {
                        return w;
                    }
                    open = false;
                }
            }
            if len == MAX_DENY_KEY_LEN {
                break;
            }
            w.buf[len] = c.to_ascii_lowercase();
            len += 1;
            open = true;
            prev = c;
        }
        if open {
            w.close(len);
        }
        w
    }

    /// Ends the current word at `len`; `false` when no more words fit.
    #[inline]
    fn close(&mut self, len: usize) -> bool {
        if self.n == MAX_WORDS {
            return false;
        }
        self.ends[self.n] = len as u8;
        self.n += 1;
        self.n < MAX_WORDS
    }

    /// Number of words.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            usize::from(self.ends[i - 1])
        }
    }

    /// Whether words `i..j` are not split by digits.
    #[inline]
    fn joinable(&self, i: usize, j: usize) -> bool {
        // Bits i+1..j of `after_digits`.
        let mask = ((1u32 << j) - 1) & !((1u32 << (i + 1)) - 1);
        self.after_digits & mask == 0
    }

    /// Words `i..j`, spelled without separators.
    #[inline]
    pub(crate) fn run(&self, i: usize, j: usize) -> &[u8] {
        &self.buf[self.start(i)..usize::from(self.ends[j - 1])]
    }

    /// The whole key without separators (what the hints look at).
    pub(crate) fn joined(&self) -> &[u8] {
        if self.n == 0 {
            &[]
        } else {
            self.run(0, self.n)
        }
    }
}

/// Where in the key a rule may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    start: bool,
    end: bool,
}

#[derive(Debug)]
struct Rule {
    phrase: Box<[u8]>,
    anchor: Anchor,
    /// Words that must not come right before a match.
    unless_after: &'static [&'static str],
    /// Index of the rule's configured spelling.
    name: usize,
}

/// A rule that is empty or longer than [`MAX_DENY_KEY_LEN`] letters.
#[derive(Debug)]
pub(crate) struct BadRule(pub String);

/// Whether `key` is one lower-case ASCII word.
#[inline]
fn is_one_word(key: &[u8]) -> bool {
    !key.is_empty() && key.iter().all(u8::is_ascii_lowercase)
}

/// Bits of the [`KeyRules`] prefilter.
const FILTER_BITS: usize = 4096;

/// The prefilter bit of a phrase: its length, first and last letter.
#[inline]
fn filter_bit(run: &[u8]) -> usize {
    let (Some(&a), Some(&z)) = (run.first(), run.last()) else {
        return 0;
    };
    (run.len() * 1031 + usize::from(a) * 37 + usize::from(z)) % FILTER_BITS
}

/// The key rules of one scrubber.
#[derive(Debug, Default)]
pub(crate) struct KeyRules {
    /// One bit per (length, first letter, last letter) of a phrase: most
    /// runs of most keys are ruled out by one bit test.
    filter: Vec<u64>,
    /// Rules by the length of their phrase.
    by_len: Vec<Vec<Rule>>,
    /// Longest phrase.
    max_len: usize,
    /// Configured spellings (the phrase, without its value kinds).
    names: Vec<String>,
    /// The value kinds each rule removes (see `keys::kinds`), by name.
    kinds: Vec<u8>,
}

/// Words that must not precede the built-in `address` rule.
const NOT_A_POSTAL_ADDRESS: &[&str] = &[
    "ip",
    "ipv",
    "mac",
    "remote",
    "local",
    "server",
    "wallet",
    "contract",
    "web",
    "url",
    "bluetooth",
    "ether",
    "ethernet",
    "hardware",
];

/// The exception list a built-in rule carries.
fn exceptions(rule: &str) -> &'static [&'static str] {
    if rule.trim_end_matches('$') == "address" {
        NOT_A_POSTAL_ADDRESS
    } else {
        &[]
    }
}

impl KeyRules {
    pub(crate) fn new<'a>(
        rules: impl IntoIterator<Item = &'a String>,
    ) -> Result<KeyRules, BadRule> {
        let mut k = KeyRules {
            filter: vec![0; FILTER_BITS / 64],
            by_len: Vec::new(),
            max_len: 0,
            names: Vec::new(),
            kinds: Vec::new(),
        };
        k.by_len.resize_with(MAX_DENY_KEY_LEN + 1, Vec::new);
        for entry in rules {
            let (r, kinds) = match entry.split_once(':') {
                Some((phrase, kinds)) => (
                    phrase.trim(),
                    super::keys::kinds::parse(kinds).ok_or_else(|| BadRule(entry.clone()))?,
                ),
                None => (entry.as_str(), super::keys::kinds::ALL),
            };
            let start = r.starts_with('^');
            let end = r.ends_with('$');
            let body = r.trim_start_matches('^').trim_end_matches('$');
            let words = Words::split(body);
            let phrase: Box<[u8]> = words.joined().into();
            // Every letter must have been kept: a phrase cut by the buffer
            // would match more than it says.
            let letters = body
                .bytes()
                .filter(|c| !c.is_ascii() || c.is_ascii_alphabetic())
                .count();
            if phrase.is_empty() || phrase.len() != letters {
                return Err(BadRule(entry.clone()));
            }
            let anchor = Anchor { start, end };
            let bucket = &mut k.by_len[phrase.len()];
            if bucket
                .iter()
                .any(|e| *e.phrase == *phrase && e.anchor == anchor)
            {
                continue;
            }
            k.max_len = k.max_len.max(phrase.len());
            let bit = filter_bit(&phrase);
            k.filter[bit / 64] |= 1 << (bit % 64);
            bucket.push(Rule {
                phrase,
                anchor,
                unless_after: exceptions(r),
                name: k.names.len(),
            });
            k.names.push(r.to_string());
            k.kinds.push(kinds);
        }
        Ok(k)
    }

    /// The configured spelling of rule `i`.
    pub(crate) fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The value kinds rule `i` removes (`keys::kinds` bits).
    pub(crate) fn kinds(&self, i: usize) -> u8 {
        self.kinds[i]
    }

    /// The first rule matching `key`, if any.
    pub(crate) fn find_key(&self, key: &[u8]) -> Option<usize> {
        if is_one_word(key) {
            return self.find_one_word(key);
        }
        self.find(&Words::split(std::str::from_utf8(key).ok()?))
    }

    /// [`KeyRules::find`] for a key that is one lower-case word (the most
    /// common kind), without splitting it.
    #[inline]
    pub(crate) fn find_one_word(&self, key: &[u8]) -> Option<usize> {
        let i = self.find_run(key)?;
        Some(self.by_len[key.len()][i].name)
    }

    /// The index (in its length bucket) of a rule spelled `run` that may
    /// apply anywhere in a one-word key.
    #[inline]
    fn find_run(&self, run: &[u8]) -> Option<usize> {
        if run.len() > self.max_len {
            return None;
        }
        let bit = filter_bit(run);
        if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        // One word is the whole key: every anchor holds, no exception
        // applies.
        self.by_len[run.len()]
            .iter()
            .position(|r| same(&r.phrase, run))
    }

    /// The first rule matching the key, if any.
    pub(crate) fn find(&self, w: &Words) -> Option<usize> {
        let n = w.len();
        for i in 0..n {
            for j in i + 1..=n {
                let run = w.run(i, j);
                if run.len() > self.max_len || !w.joinable(i, j) {
                    break;
                }
                let bit = filter_bit(run);
                if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
                    continue;
                }
                let Some(bucket) = self.by_len.get(run.len()) else {
                    continue;
                };
                for r in bucket {
                    if same(&r.phrase, run) && self.applies(r, w, i, j) {
                        return Some(r.name);
                    }
                }
            }
        }
        None
    }

    /// Whether rule `r`, which spells words `i..j`, applies there.
    fn applies(&self, r: &Rule, w: &Words, i: usize, j: usize) -> bool {
        let n = w.len();
        if (r.anchor.start && i != 0) || (r.anchor.end && j != n) {
            return false;
        }
        if j < n
            && META_WORDS
                .iter()
                .any(|m| same(m.as_bytes(), w.run(n - 1, n)))
        {
            return false;
        }
        if i > 0 {
            let before = w.run(i - 1, i);
            if r.unless_after.iter().any(|x| same(x.as_bytes(), before)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::DEFAULT_DENY_KEYS;
    use super::*;

    fn words(k: &str) -> Vec<String> {
        let w = Words::split(k);
        (0..w.len())
            .map(|i| String::from_utf8_lossy(w.run(i, i + 1)).into_owned())
            .collect()
    }

    #[test]
    fn keys_split_into_lower_case_words() {
        let cases: &[(&str, &[&str])] = &[
            ("newPassword", &["new", "password"]),
            ("password_confirmation", &["password", "confirmation"]),
            ("dateOfBirth", &["date", "of", "birth"]),
            ("cvv2", &["cvv"]),
            ("E-Mail", &["e", "mail"]),
            ("APIKey", &["api", "key"]),
            ("SSNLast4", &["ssn", "last"]),
            ("ipv4Address", &["ipv", "address"]),
            ("user.email", &["user", "email"]),
            ("FIRST NAME", &["first", "name"]),
            ("kebab-case-key", &["kebab", "case", "key"]),
            ("", &[]),
            ("42", &[]),
        ];
        for (k, want) in cases {
            assert_eq!(words(k), *want, "{k}");
        }
    }

    #[test]
    fn long_keys_keep_the_words_that_fit() {
        let k = format!("password{}", "_x".repeat(40));
        assert_eq!(words(&k).len(), MAX_WORDS);
        assert_eq!(words(&k)[0], "password");
        let k = "a".repeat(200);
        assert_eq!(words(&k), vec!["a".repeat(MAX_DENY_KEY_LEN)]);
    }

    fn defaults() -> KeyRules {
        let r: Vec<String> = DEFAULT_DENY_KEYS.iter().map(|s| s.to_string()).collect();
        KeyRules::new(&r).expect("defaults are valid")
    }

    #[test]
    fn the_default_rules_catch_pii_keys_of_every_casing() {
        let k = defaults();
        for key in [
            "newPassword",
            "password_confirmation",
            "PASSWORD",
            "pwd",
            "pin",
            "userPin",
            "otp",
            "otp_code",
            "cvv2",
            "CVC",
            "ssn",
            "dateOfBirth",
            "date_of_birth",
            "birthday",
            "dob",
            "firstName",
            "last-name",
            "fullName",
            "surname",
            "street",
            "streetAddress",
            "billing_address",
            "address",
            "email",
            "E-Mail",
            "user_email",
            "contactEmail",
            "phone",
            "phoneNumber",
            "tel",
            "mobile",
            "mobileNumber",
            "cardNumber",
            "card",
            "cc",
            "cc_number",
            "iban",
            "accountNumber",
            "secret",
            "client_secret",
            "token",
            "accessToken",
            "csrf_token",
            "apiKey",
            "API_KEY",
            "auth",
            "Authorization",
            "passport",
            "sessionId",
            "username",
            "user_name",
        ] {
            assert!(k.find(&Words::split(key)).is_some(), "{key} must be caught");
        }
    }

    #[test]
    fn the_default_rules_leave_look_alikes_alone() {
        let k = defaults();
        for key in [
            "name",
            "tokenizer",
            "tokens_used",
            "pinned",
            "options",
            "ipAddress",
            "ip_address",
            "macAddress",
            "address_type",
            "email_type",
            "password_length",
            "phone_model",
            "mobile_app_version",
            "hotel",
            "passenger",
            "author",
            "title",
            "sku",
            "url",
            "path",
            "search",
            "account",
            "company",
            "cardinality",
            "discount",
            "description",
            "00000000-0000-0000-0000-000010c0c000",
            "c0c",
            "",
        ] {
            assert!(k.find(&Words::split(key)).is_none(), "{key} must survive");
        }
    }

    #[test]
    fn one_word_keys_take_the_short_way_to_the_same_answer() {
        let k = defaults();
        for key in [
            "email", "password", "pin", "path", "url", "pinned", "mobile", "x", "address",
        ] {
            assert_eq!(
                k.find_key(key.as_bytes()),
                k.find(&Words::split(key)),
                "{key}"
            );
        }
    }

    #[test]
    fn anchors_and_bad_rules() {
        let r: Vec<String> = ["^name$".to_string(), "zip$".to_string()].to_vec();
        let k = KeyRules::new(&r).expect("valid");
        assert!(k.find(&Words::split("Name")).is_some());
        assert!(k.find(&Words::split("pageName")).is_none());
        assert!(k.find(&Words::split("billingZip")).is_some());
        assert!(k.find(&Words::split("zip_code")).is_none());
        assert!(KeyRules::new(&["-_.".to_string()]).is_err());
        assert!(KeyRules::new(&["x".repeat(MAX_DENY_KEY_LEN + 1)]).is_err());
        assert_eq!(
            k.name(k.find(&Words::split("NAME")).expect("match")),
            "^name$"
        );
    }
}
