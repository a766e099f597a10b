//! Identity fields (`userId`, `anonymousId`, `groupId`, `previousId`): the
//! ids consumers join on and the first two the Kafka record key is made of.
//!
//! They are scanned by the same detectors as every other string, but a
//! match is not spliced in place: an id reading `[email]` would merge every
//! visitor whose id was an address. Under the source's `identity_pii`
//! policy the whole value is instead
//! - `pseudonymize` (default): replaced by a keyed pseudonym, so one
//!   visitor's events still share an id and a record key (and keep their
//!   order on one partition) while the personal data never leaves the
//!   gateway;
//! - `reject`: the event is rejected (`identity_pii`), its invalid-topic
//!   payload carrying the pseudonym;
//! - `keep`: left as sent (only with a legal basis for it).
//!
//! Other top-level ids (`messageId`, see [`PSEUDONYMIZED_IDS`]) get the
//! same treatment whatever `identity_pii` says: a value holding personal
//! data becomes its pseudonym, never a shared constant (every `messageId`
//! reading `[email]` would be one id), and the event is not rejected for
//! it (the id is not a visitor's).
//!
//! The pseudonym is `pid_` followed by the first 16 bytes of
//! HMAC-SHA256(secret, value) in hex, the value taken in the form ids are
//! compared in (`privacy::ids`: an e-mail address or UUID without case,
//! surrounding whitespace trimmed). The secret is per source
//! (`pseudonym_secret` or the environment variable named by
//! `pseudonym_secret_env`); without one a random key drawn once per process
//! is used, which keeps pseudonyms stable only within one process (across
//! configuration reloads, not restarts or instances; the gateway warns at
//! start).

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The identity fields, at the top level of an event.
pub const IDENTITY_FIELDS: [&str; 4] = ["userId", "anonymousId", "groupId", "previousId"];
/// Top-level ids that are not identity fields, replaced by their pseudonym
/// (never spliced) when they hold personal data.
pub const PSEUDONYMIZED_IDS: [&str; 1] = ["messageId"];
/// What every pseudonym starts with.
pub const PSEUDONYM_PREFIX: &str = "pid_";
/// Bytes of the HMAC kept in a pseudonym (128 bits: no collisions in any
/// realistic visitor population).
const PSEUDONYM_BYTES: usize = 16;
/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// Bytes of the random per-process key used without a configured secret.
const RANDOM_KEY_BYTES: usize = 32;

/// What becomes of an identity value that is or contains personal data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityPii {
    /// Replaced by its keyed pseudonym, in the value and the record key.
    #[default]
    Pseudonymize,
    /// The event is rejected with the reason `identity_pii`.
    Reject,
    /// Kept as sent.
    Keep,
}

/// Whether `key` names an identity field.
#[inline]
pub(crate) fn is_identity(key: &str) -> bool {
    IDENTITY_FIELDS
        .iter()
        .any(|f| super::keys::same(f.as_bytes(), key.as_bytes()))
}

/// Whether `key` names a top-level id pseudonymized as a whole.
#[inline]
pub(crate) fn is_pseudonymized_id(key: &str) -> bool {
    PSEUDONYMIZED_IDS.contains(&key)
}

/// Turns values into keyed pseudonyms.
#[derive(Clone)]
pub(crate) struct Pseudonymizer {
    /// The keyed state, cloned for each value (the key schedule is paid
    /// once).
    mac: Hmac<Sha256>,
    /// The key is random and lives only in this process.
    ephemeral: bool,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Pseudonymizer")
            .field("ephemeral", &self.ephemeral)
            .finish_non_exhaustive()
    }
}

impl Pseudonymizer {
    /// Keyed with `secret`, or with the process's random key when there is
    /// none (one key for the life of the process, so pseudonyms survive a
    /// configuration reload).
    pub(crate) fn new(secret: Option<&[u8]>) -> Pseudonymizer {
        let (key, ephemeral) = match secret {
            Some(s) => (s, false),
            None => (&process_key()[..], true),
        };
        // HMAC takes keys of any length; the error type exists for other
        // MACs.
        let mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        Pseudonymizer { mac, ephemeral }
    }

    /// Whether the key is random (pseudonyms differ between processes).
    pub(crate) fn ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The pseudonym of `value`, computed on the form ids are compared in
    /// (`privacy::ids`), so every spelling of one e-mail address or UUID
    /// has one pseudonym, as it has one opt-out.
    pub(crate) fn pseudonym(&self, value: &str) -> String {
        let mut m = self.mac.clone();
        m.update(crate::privacy::ids::normalize(value).as_bytes());
        let tag = m.finalize().into_bytes();
        let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + 2 * PSEUDONYM_BYTES);
        out.push_str(PSEUDONYM_PREFIX);
        for b in &tag[..PSEUDONYM_BYTES] {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// The random key of this process, drawn once.
fn process_key() -> &'static [u8; RANDOM_KEY_BYTES] {
    static KEY: std::sync::OnceLock<[u8; RANDOM_KEY_BYTES]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; RANDOM_KEY_BYTES];
        fill_random(&mut k);
        k
    })
}

/// Random bytes from the operating system; std's randomly keyed hasher
/// when the OS has none to give.
fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    use std::hash::BuildHasher;
    let s = std::collections::hash_map::RandomState::new();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let word = s.hash_one(i).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_shaped() {
        let a = Pseudonymizer::new(Some(b"0123456789abcdef0123"));
        let b = Pseudonymizer::new(Some(b"another secret of enough bytes"));
        let p = a.pseudonym("ada@example.com");
        assert_eq!(p, a.pseudonym("ada@example.com"));
        assert_ne!(p, a.pseudonym("bob@example.com"));
        assert_ne!(p, b.pseudonym("ada@example.com"));
        assert_eq!(p, a.pseudonym(" Ada@Example.com "));
        assert!(p.starts_with(PSEUDONYM_PREFIX));
        assert_eq!(p.len(), PSEUDONYM_PREFIX.len() + 2 * PSEUDONYM_BYTES);
        assert!(p[PSEUDONYM_PREFIX.len()..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit()));
        assert!(!a.ephemeral());
    }

    #[test]
    fn without_a_secret_the_key_is_the_process_random_key() {
        let a = Pseudonymizer::new(None);
        let b = Pseudonymizer::new(None);
        let keyed = Pseudonymizer::new(Some(b"0123456789abcdef0123"));
        assert!(a.ephemeral());
        // Stable within the process (a reload builds new scrubbers) …
        assert_eq!(a.pseudonym("x"), b.pseudonym("x"));
        // … and not a fixed, guessable key.
        assert_ne!(a.pseudonym("x"), keyed.pseudonym("x"));
        assert_ne!(process_key(), &[0u8; RANDOM_KEY_BYTES]);
        assert!(!format!("{a:?}").contains("mac"));
    }

    #[test]
    fn identity_field_names() {
        for f in IDENTITY_FIELDS {
            assert!(is_identity(f));
        }
        for f in ["userid", "messageId", "user", ""] {
            assert!(!is_identity(f));
        }
    }

    #[test]
    fn policy_parses_in_lower_case() {
        #[derive(Deserialize)]
        struct T {
            p: IdentityPii,
        }
        let t: T = toml::from_str("p = \"reject\"").expect("parses");
        assert_eq!(t.p, IdentityPii::Reject);
        assert!(toml::from_str::<T>("p = \"hash\"").is_err());
    }
}
