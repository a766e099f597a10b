//! Configuration of the PII scrubber (one per source, built once into a
//! [`Scrubber`](super::Scrubber)).
//!
//! Every field has a default, so an empty table turns scrubbing on with the
//! built-in key denylist and every value detector. Unknown keys are errors.

use serde::Deserialize;

pub use super::custom::CustomDetectorConfig;
pub use super::identity::IdentityPii;
pub use super::selector::Action;

/// Default for [`ScrubConfig::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Default for [`ScrubConfig::max_string_bytes`].
pub const DEFAULT_MAX_STRING_BYTES: usize = 8192;
/// Smallest accepted [`ScrubConfig::max_string_bytes`]: below this, ordinary
/// URLs and sentences would be cut.
pub const MIN_STRING_BYTES: usize = 256;
/// Longest deny key accepted, after normalization (lower case, without
/// `-`, `_` and `.`). Longer object keys are never denied by name (they are
/// still scanned for values).
pub const MAX_DENY_KEY_LEN: usize = 64;

/// The built-in key rules: object keys (anywhere under the event) and URL
/// parameter names that are removed with their value (strings, numbers,
/// objects and arrays; never booleans or nulls). Each rule is a phrase
/// matched against the words of a key (see `words`): `password` catches
/// `newPassword` and `password_confirmation`, `date of birth` catches
/// `dateOfBirth`; a trailing `$` means the phrase must end the key
/// (`mobile$` catches `userMobile`, not `mobile_app_version`), a leading
/// `^` that it must start it. A rule may end with the kinds of value it
/// removes (`: text, number, timestamp, object, array`; default all of
/// them): see `keys::kinds`.
pub const DEFAULT_DENY_KEYS: &[&str] = &[
    // Credentials and secrets.
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "passcode",
    "pass$",
    "otp",
    "totp",
    "pin$",
    "pin code",
    "secret",
    "token",
    "api key",
    "access key",
    "private key",
    "auth$",
    "authorization",
    "credential",
    "credentials",
    // A session id that is a number or a time (RudderStack and Hightouch
    // send the session's start time) is no secret.
    "session$: text, object, array",
    "session id: text, object, array",
    "sid$: text, object, array",
    // Payment.
    "card$",
    "card number",
    "cardholder",
    "credit card",
    "debit card",
    "cc$",
    "cc number",
    "cc num",
    "cvv",
    "cvc",
    "security code",
    "iban",
    "account number",
    "bank account",
    "routing number",
    "sort code",
    // Government ids.
    "ssn",
    "social security",
    "passport",
    "tax id",
    "national id",
    // Person.
    "first name",
    "last name",
    "full name",
    "given name",
    "family name",
    "middle name",
    "maiden name",
    "surname",
    "username",
    "dob",
    "birthday",
    "birthdate",
    "date of birth",
    // Contact.
    // A number is no address (`emailCampaignId: 12345`).
    "email: text, object, array",
    "mail$: text, object, array",
    "phone",
    "telephone",
    "tel$",
    "mobile$",
    "mobile number",
    "street$",
    "address$",
    "address line",
];

/// Segment's reserved person traits: removed by default directly under
/// `traits` and `context.traits` (except the top-level `traits` of a
/// `group` event, which describe the group: there `name` is the company's).
/// `keep_traits` keeps any of them.
pub const PERSON_TRAITS: &[&str] = &[
    "name",
    "firstName",
    "lastName",
    "email",
    "phone",
    "address",
    "birthday",
    "username",
];

/// Settings of the PII scrubber.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {
    /// Scrub events at all. Default `true`.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Key rules: keys removed with their value (strings, numbers, objects,
    /// arrays; booleans and nulls stay) wherever they occur (properties,
    /// traits, context, top level) and URL query/fragment parameters
    /// removed by name. Each entry is a phrase matched against the words of
    /// a key, in any casing (`first_name` catches `firstName`,
    /// `billingFirstName` and `FIRST-NAME`); `phrase$` must end the key,
    /// `^phrase` start it, `^phrase$` be all of it; `phrase: text, object`
    /// removes only those kinds of value (`text`, `number`, `timestamp`,
    /// `object`, `array`; default all). Default:
    /// [`DEFAULT_DENY_KEYS`]. Setting it replaces the list; use
    /// `extra_deny_keys` to extend it.
    #[serde(default = "default_deny_keys")]
    pub deny_keys: Vec<String>,
    /// Keys added to `deny_keys`. Default empty.
    #[serde(default)]
    pub extra_deny_keys: Vec<String>,
    /// Dotted key paths kept verbatim even if denied or matched by a
    /// detector, e.g. `traits.email`: the value at the path and everything
    /// under it is left untouched. Array indices are not written (the path
    /// `properties.items.sku` covers `properties.items[3].sku`). The same
    /// as a rule with `action = "keep"`. Default empty.
    #[serde(default)]
    pub allow_paths: Vec<String>,
    /// Segment person traits ([`PERSON_TRAITS`]) kept under `traits` and
    /// `context.traits`, verbatim (as `allow_paths` would). Default empty.
    #[serde(default)]
    pub keep_traits: Vec<String>,
    /// Path rules, tried before the built-in ones; the first that selects
    /// a value decides (see [`RuleConfig`]). Default empty.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Named custom detectors run over every string beside the built-in
    /// ones. Default empty.
    #[serde(default)]
    pub custom_detectors: Vec<CustomDetectorConfig>,
    /// What becomes of an identity field (`userId`, `anonymousId`,
    /// `groupId`, `previousId`) that is or contains personal data:
    /// `pseudonymize` (default: replaced by a keyed pseudonym in the value
    /// and the record key), `reject` (the event is rejected with the reason
    /// `identity_pii`) or `keep`.
    #[serde(default)]
    pub identity_pii: IdentityPii,
    /// The key of the identity pseudonyms (at least 16 bytes). Prefer
    /// `pseudonym_secret_env`. Default unset.
    #[serde(default)]
    pub pseudonym_secret: Option<String>,
    /// The environment variable holding the pseudonym key; it must be set
    /// when this is. With neither this nor `pseudonym_secret`, a random
    /// per-process key is used: pseudonyms then differ between instances
    /// and restarts (the gateway warns at start). Default unset.
    #[serde(default)]
    pub pseudonym_secret_env: Option<String>,
    /// The value detectors that run over every string. Default: all of them.
    #[serde(default = "default_detectors")]
    pub detectors: Vec<Detector>,
    /// Deepest nesting kept: a value whose path has more than this many
    /// segments (`properties.a` has two) is removed and recorded as a
    /// `depth` redaction. Default 32.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Longest string value kept, in bytes. A longer string is cut to at
    /// most this many bytes (at a character boundary, preferring the last
    /// whitespace in the final 64 bytes so a partial item is not left at
    /// the cut), the cut is recorded as a `truncated` redaction, and the
    /// kept part is scanned in full. An object key longer than this is
    /// removed with its value (also `truncated`). No string is ever passed
    /// through unscanned. Default 8192, at least 256.
    #[serde(default = "default_max_string_bytes")]
    pub max_string_bytes: usize,
    /// Round coordinates the client sends (`latitude` / `longitude`,
    /// `lat` / `lng` / `lon` keys anywhere, such as Segment mobile's
    /// `context.location`) to `coordinate_decimals`. Default `true`.
    #[serde(default = "default_enabled")]
    pub coarsen_coordinates: bool,
    /// Decimals kept of client-sent coordinates: by default the precision
    /// of the gateway's own GeoIP coordinates (1, about 10 km); at most
    /// 7.
    #[serde(default = "default_coordinate_decimals")]
    pub coordinate_decimals: u32,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            enabled: default_enabled(),
            deny_keys: default_deny_keys(),
            extra_deny_keys: Vec::new(),
            allow_paths: Vec::new(),
            keep_traits: Vec::new(),
            rules: Vec::new(),
            custom_detectors: Vec::new(),
            identity_pii: IdentityPii::default(),
            pseudonym_secret: None,
            pseudonym_secret_env: None,
            detectors: default_detectors(),
            max_depth: default_max_depth(),
            max_string_bytes: default_max_string_bytes(),
            coarsen_coordinates: default_enabled(),
            coordinate_decimals: default_coordinate_decimals(),
        }
    }
}

fn default_coordinate_decimals() -> u32 {
    crate::privacy::geo::COORDINATE_DECIMALS
}

/// A `[[sources.privacy.scrub.rules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Dotted path of keys; `*` is any one key, `**` any number of keys
    /// (none included): `properties.**.iban`, `traits.company.*`. Array
    /// indices are not written.
    pub selector: String,
    /// `remove` (the key and its value), `pseudonymize` (every string and
    /// number under it becomes its keyed pseudonym), `mask` (… becomes
    /// `[masked]`) or `keep` (verbatim, nothing else looks at it).
    pub action: Action,
}

/// Why the pseudonym key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("set only one of pseudonym_secret and pseudonym_secret_env")]
    Both,
    #[error("pseudonym_secret_env: environment variable {0} is not set")]
    MissingEnv(String),
    #[error("the pseudonym key must be at least {min} bytes")]
    TooShort { min: usize },
}

impl ScrubConfig {
    /// The configured pseudonym key: from `pseudonym_secret` or the
    /// variable `pseudonym_secret_env` names; `None` when neither is set.
    pub fn pseudonym_key(&self) -> Result<Option<Vec<u8>>, SecretError> {
        let key = match (&self.pseudonym_secret, &self.pseudonym_secret_env) {
            (Some(_), Some(_)) => return Err(SecretError::Both),
            (Some(s), None) => s.clone().into_bytes(),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) => v.into_bytes(),
                Err(_) => return Err(SecretError::MissingEnv(var.clone())),
            },
            (None, None) => return Ok(None),
        };
        if key.len() < super::identity::MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                min: super::identity::MIN_SECRET_BYTES,
            });
        }
        Ok(Some(key))
    }
}

fn default_enabled() -> bool {
    true
}

fn default_deny_keys() -> Vec<String> {
    DEFAULT_DENY_KEYS.iter().map(|k| (*k).to_string()).collect()
}

fn default_detectors() -> Vec<Detector> {
    Detector::ALL.to_vec()
}

fn default_max_depth() -> usize {
    DEFAULT_MAX_DEPTH
}

fn default_max_string_bytes() -> usize {
    DEFAULT_MAX_STRING_BYTES
}

/// A value detector. Each replaces what it finds, in place, with its marker
/// (`[email]`, `[phone]`, …) so the rest of the text survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// `local@domain.tld`.
    Email,
    /// International `+CC …` numbers and national numbers with separators.
    Phone,
    /// Payment card numbers: known network prefix, length and Luhn check.
    Card,
    /// IBANs: country length table and mod-97 check.
    Iban,
    /// US social security numbers `AAA-GG-SSSS`.
    Ssn,
    /// JSON web tokens.
    Jwt,
    /// Bearer/Basic credentials, well-known API key formats, secrets after
    /// `token=`/`key=`-like names.
    Token,
    /// IPv4 and IPv6 literals.
    Ip,
}

impl Detector {
    /// Every detector, in precedence order (see [`Detector::precedence`]).
    pub const ALL: [Detector; 8] = [
        Detector::Jwt,
        Detector::Token,
        Detector::Email,
        Detector::Iban,
        Detector::Card,
        Detector::Ssn,
        Detector::Ip,
        Detector::Phone,
    ];

    /// Stable name, used as the redaction kind and metric label.
    pub fn label(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Card => "card",
            Detector::Iban => "iban",
            Detector::Ssn => "ssn",
            Detector::Jwt => "jwt",
            Detector::Token => "token",
            Detector::Ip => "ip",
        }
    }

    /// The text that replaces a match.
    pub fn marker(self) -> &'static str {
        match self {
            Detector::Email => "[email]",
            Detector::Phone => "[phone]",
            Detector::Card => "[card]",
            Detector::Iban => "[iban]",
            Detector::Ssn => "[ssn]",
            Detector::Jwt => "[jwt]",
            Detector::Token => "[token]",
            Detector::Ip => "[ip]",
        }
    }

    /// When matches of two detectors overlap, the union of both is replaced
    /// and named after the detector with the higher precedence: the more
    /// specific format wins (a JWT is also a long token, an SSN is also
    /// shaped like a phone number, a valid card number also looks like one).
    pub fn precedence(self) -> u8 {
        match self {
            Detector::Jwt => 8,
            Detector::Token => 7,
            Detector::Email => 6,
            Detector::Iban => 5,
            Detector::Card => 4,
            Detector::Ssn => 3,
            Detector::Ip => 2,
            Detector::Phone => 1,
        }
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self.precedence() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gives_the_defaults() {
        let cfg: ScrubConfig = toml::from_str("").expect("empty config parses");
        assert!(cfg.enabled);
        assert_eq!(cfg.deny_keys.len(), DEFAULT_DENY_KEYS.len());
        assert_eq!(cfg.detectors.len(), Detector::ALL.len());
        assert_eq!(cfg.max_depth, DEFAULT_MAX_DEPTH);
        assert_eq!(cfg.max_string_bytes, DEFAULT_MAX_STRING_BYTES);
    }

    #[test]
    fn detectors_parse_in_snake_case_and_unknown_keys_fail() {
        let cfg: ScrubConfig =
            toml::from_str("detectors = [\"email\", \"ip\"]\nallow_paths = [\"traits.email\"]")
                .expect("parses");
        assert_eq!(cfg.detectors, vec![Detector::Email, Detector::Ip]);
        assert_eq!(cfg.allow_paths, vec!["traits.email".to_string()]);
        assert!(toml::from_str::<ScrubConfig>("detector = []").is_err());
        assert!(toml::from_str::<ScrubConfig>("detectors = [\"ssh\"]").is_err());
    }

    #[test]
    fn labels_markers_and_bits_are_distinct() {
        let mut bits = 0u8;
        for d in Detector::ALL {
            assert_eq!(d.marker(), format!("[{}]", d.label()));
            assert_eq!(bits & d.bit(), 0);
            bits |= d.bit();
        }
        assert_eq!(bits, u8::MAX);
    }
}
