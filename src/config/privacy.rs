//! Privacy configuration: the global `[privacy]` table and each source's
//! `[sources.privacy]` table. Every field has a default, so both tables may
//! be left out; the defaults are the privacy-safe choice (IP truncated, GPC
//! honoured by dropping, DNT honoured by anonymizing, no coordinates, no
//! payload of rejected events unless it could be scrubbed).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// The global `[privacy]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// A MaxMind DB file (City or Country: GeoLite2, GeoIP2, DB-IP Lite …).
    /// Unset or empty: no `context.geo`. A configured file that is missing or
    /// not a MaxMind DB at start is a configuration error; afterwards the
    /// file is reloaded when it changes, and a bad replacement is logged and
    /// ignored (the loaded database stays in use).
    #[serde(default)]
    pub geoip_database: Option<PathBuf>,
    /// How often the GeoIP file is checked for a change (mtime, size, inode).
    #[serde(default = "defaults::geoip_reload_interval_ms")]
    pub geoip_reload_interval_ms: u64,
    /// The compacted topic holding the opt-out (suppression) list, shared by
    /// every gateway instance. Created with `cleanup.policy=compact`.
    #[serde(default = "defaults::optout_topic")]
    pub optout_topic: String,
    /// How long `POST /v1/optout` waits for the broker to acknowledge the
    /// opt-out record before answering 503 (the local list is updated at once
    /// either way).
    #[serde(default = "defaults::optout_write_timeout_ms")]
    pub optout_write_timeout_ms: u64,
    /// When the opt-out cookie gets the `Secure` attribute: `auto` (when the
    /// request came over HTTPS, as told by a trusted proxy's
    /// `X-Forwarded-Proto` or `Forwarded: proto=`), `always` or `never`.
    #[serde(default)]
    pub optout_cookie_secure: CookieSecure,
    /// Most ids each source's public write key may have on the opt-out
    /// list (each source has its own share, so one source's key can never
    /// fill another's; ids the server key opted out are not counted and
    /// never refused). A new opt-out beyond it is answered 503
    /// `optout_list_full` and counted
    /// (`trackgate_optout_refused_total{reason="optout_list_full"}`), never
    /// dropped silently. An entry holds its id's digest, a hash-map slot
    /// and up to four 32-byte proof hashes.
    #[serde(default = "defaults::optout_max_entries")]
    pub optout_max_entries: usize,
    /// Most new ids one client address (as the gateway resolves it; IPv6
    /// grouped by /64) may put on one source's list with the public write
    /// key per `optout_address_window_secs`. Beyond it: 429 `rate_limited`
    /// with `Retry-After` until the window ends. Counted on the instance
    /// that takes the opt-out (the list never holds addresses).
    #[serde(default = "defaults::optout_max_entries_per_address")]
    pub optout_max_entries_per_address: u32,
    /// The window of `optout_max_entries_per_address`, in seconds.
    #[serde(default = "defaults::optout_address_window_secs")]
    pub optout_address_window_secs: u64,
    /// `Max-Age` of the opt-out cookie, in seconds (default two years).
    #[serde(default = "defaults::optout_cookie_max_age_secs")]
    pub optout_cookie_max_age_secs: u64,
    /// What a record on the invalid topic carries of the rejected event:
    /// `scrubbed` (the payload after the source's IP and PII scrubbing rules;
    /// omitted when it is not a JSON object or no scrubber is configured),
    /// `omit` (never), or `raw` (as received: may carry personal data, for
    /// development only).
    #[serde(default)]
    pub invalid_payload: InvalidPayload,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidPayload {
    #[default]
    Scrubbed,
    Omit,
    Raw,
}

/// A source's `[sources.privacy]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePrivacyConfig {
    /// What `context.ip` becomes: `truncate` (IPv4 /24, IPv6 /48), `hash`
    /// (`context.ipHash`, a keyed hash whose secret key lives only in memory
    /// and changes every UTC day), `drop` (no address), or `keep` (the raw
    /// address: only with a legal basis for it).
    #[serde(default)]
    pub ip: IpMode,
    /// Events under Global Privacy Control (`Sec-GPC: 1` or
    /// `context.privacy.gpc = true`): `drop` or `anonymize`.
    #[serde(default)]
    pub gpc: GpcPolicy,
    /// Events of requests with `DNT: 1`: `ignore`, `anonymize` or `drop`.
    #[serde(default)]
    pub dnt: DntPolicy,
    /// Add `latitude` / `longitude` (rounded to 1 decimal, ~10 km) to
    /// `context.geo`.
    #[serde(default)]
    pub geo_coordinates: bool,
    /// Consent categories an event must not deny: an event whose
    /// `context.consent.categoryPreferences` sets one of them (case
    /// ignored) to `false` is treated like Global Privacy Control under the
    /// `gpc` policy (dropped or anonymized, reason `consent`). Events
    /// without a preference for the category are not affected. Default
    /// none.
    #[serde(default)]
    pub required_consent: Vec<String>,
    /// PII scrubbing rules (`[sources.privacy.scrub]`): on by default.
    #[serde(default)]
    pub scrub: crate::privacy::scrub::ScrubConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpMode {
    #[default]
    Truncate,
    Hash,
    Drop,
    Keep,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpcPolicy {
    #[default]
    Drop,
    Anonymize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DntPolicy {
    Ignore,
    #[default]
    Anonymize,
    Drop,
}

mod defaults {
    pub fn geoip_reload_interval_ms() -> u64 {
        5_000
    }
    pub fn optout_topic() -> String {
        "tracking.optouts".into()
    }
    pub fn optout_write_timeout_ms() -> u64 {
        5_000
    }
    pub fn optout_max_entries() -> usize {
        1_000_000
    }
    /// A household or office opting out one by one stays far below it;
    /// one address needs 10,000 windows to fill a default share.
    pub fn optout_max_entries_per_address() -> u32 {
        100
    }
    /// One hour.
    pub fn optout_address_window_secs() -> u64 {
        3_600
    }
    /// Two years.
    pub fn optout_cookie_max_age_secs() -> u64 {
        63_072_000
    }
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        // Every field has a serde default, so an empty table is complete.
        toml::from_str("").expect("all fields have defaults")
    }
}

impl PrivacyConfig {
    /// The GeoIP database path, if one is configured.
    pub fn geoip_path(&self) -> Option<&std::path::Path> {
        self.geoip_database
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// Checks the table; a configured GeoIP file must open as a MaxMind DB.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str, m: String| ConfigError::Key {
            key: format!("privacy.{k}"),
            message: m,
        };
        if self.optout_topic.trim().is_empty() {
            return Err(key("optout_topic", "must not be empty".into()));
        }
        if self.geoip_reload_interval_ms == 0 {
            return Err(key("geoip_reload_interval_ms", "must be positive".into()));
        }
        if self.optout_max_entries == 0 {
            return Err(key("optout_max_entries", "must be positive".into()));
        }
        if self.optout_max_entries_per_address == 0 {
            return Err(key(
                "optout_max_entries_per_address",
                "must be positive".into(),
            ));
        }
        if self.optout_address_window_secs == 0 {
            return Err(key("optout_address_window_secs", "must be positive".into()));
        }
        if self.optout_write_timeout_ms == 0 {
            return Err(key("optout_write_timeout_ms", "must be positive".into()));
        }
        if let Some(path) = self.geoip_path() {
            if let Err(e) = crate::privacy::geo::GeoIp::open(path) {
                return Err(key("geoip_database", e.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_privacy_safe_ones() {
        let g = PrivacyConfig::default();
        assert_eq!(g.optout_topic, "tracking.optouts");
        assert_eq!(g.optout_cookie_secure, CookieSecure::Auto);
        assert_eq!(g.optout_cookie_max_age_secs, 63_072_000);
        assert_eq!(
            (
                g.optout_max_entries,
                g.optout_max_entries_per_address,
                g.optout_address_window_secs
            ),
            (1_000_000, 100, 3_600)
        );
        assert_eq!(g.invalid_payload, InvalidPayload::Scrubbed);
        assert!(g.geoip_path().is_none());
        let s = SourcePrivacyConfig::default();
        assert_eq!(s.ip, IpMode::Truncate);
        assert_eq!(s.gpc, GpcPolicy::Drop);
        assert_eq!(s.dnt, DntPolicy::Anonymize);
        assert!(!s.geo_coordinates);
    }

    #[test]
    fn values_parse_and_unknown_ones_are_refused() {
        let s: SourcePrivacyConfig = toml::from_str(
            "ip = \"hash\"\ngpc = \"anonymize\"\ndnt = \"ignore\"\ngeo_coordinates = true",
        )
        .unwrap();
        assert_eq!(
            (s.ip, s.gpc, s.dnt, s.geo_coordinates),
            (IpMode::Hash, GpcPolicy::Anonymize, DntPolicy::Ignore, true)
        );
        assert!(toml::from_str::<SourcePrivacyConfig>("ip = \"mask\"").is_err());
        assert!(toml::from_str::<SourcePrivacyConfig>("ipp = \"drop\"").is_err());
    }

    #[test]
    fn missing_geoip_file_is_a_config_error_naming_the_key() {
        let c: PrivacyConfig =
            toml::from_str("geoip_database = \"/nonexistent/GeoLite2-City.mmdb\"").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("privacy.geoip_database"), "{err}");
        let c: PrivacyConfig = toml::from_str("geoip_database = \"\"").unwrap();
        assert!(c.validate().is_ok());
    }
}
