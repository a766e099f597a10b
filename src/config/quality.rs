//! `[quality]` and `[sources.quality]`: duplicate suppression, tracking
//! plans and enrichment (see `quality`). Every table is optional; the
//! defaults are documented on each field and in
//! `config/trackgate.example.toml`.

use std::path::PathBuf;

use serde::Deserialize;

/// `[sources.quality]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceQualityConfig {
    /// Duplicate suppression on client-sent `messageId`s (on by default).
    #[serde(default)]
    pub dedup: DedupConfig,
    /// The source's tracking plan (none by default).
    #[serde(default)]
    pub plan: PlanConfig,
    /// User-agent, campaign and referrer enrichment (all on by default).
    #[serde(default)]
    pub enrich: EnrichConfig,
}

/// `[quality]`: what the sources' quality stages share.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Snowplow's referer-parser list in JSON (`referers-latest.json`), for
    /// the search / social / email / paid channels. Unset: every external
    /// referrer is `referral`.
    #[serde(default)]
    pub referrers_file: Option<PathBuf>,
    /// Distinct user agents whose parsed form is cached.
    #[serde(default = "default_user_agent_cache_entries")]
    pub user_agent_cache_entries: usize,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            referrers_file: None,
            user_agent_cache_entries: default_user_agent_cache_entries(),
        }
    }
}

fn default_user_agent_cache_entries() -> usize {
    10_000
}

/// `[sources.quality.dedup]`: the duplicate filter of one source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Drop events whose client-sent `messageId` was already seen.
    #[serde(default = "dedup_defaults::enabled")]
    pub enabled: bool,
    /// How long an id is remembered at most (memory permitting).
    #[serde(default = "dedup_defaults::window_secs")]
    pub window_secs: u64,
    /// The most recent part of the window kept exactly (memory permitting).
    #[serde(default = "dedup_defaults::exact_window_secs")]
    pub exact_window_secs: u64,
    /// Memory bound of this source's filter, in MiB. Half goes to the exact
    /// window, half to the Bloom slices; under traffic that exceeds it the
    /// windows shrink.
    #[serde(default = "dedup_defaults::max_memory_mb")]
    pub max_memory_mb: u64,
    /// Target probability that a new id is wrongly taken for a duplicate
    /// (the Bloom part only).
    #[serde(default = "dedup_defaults::false_positive_rate")]
    pub false_positive_rate: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            enabled: dedup_defaults::enabled(),
            window_secs: dedup_defaults::window_secs(),
            exact_window_secs: dedup_defaults::exact_window_secs(),
            max_memory_mb: dedup_defaults::max_memory_mb(),
            false_positive_rate: dedup_defaults::false_positive_rate(),
        }
    }
}

impl DedupConfig {
    /// Checks the table; returns the offending key (below the table) and why.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.window_secs == 0 {
            return Err(("window_secs", "must be positive"));
        }
        if self.exact_window_secs == 0 || self.exact_window_secs > self.window_secs {
            return Err((
                "exact_window_secs",
                "must be positive and at most window_secs",
            ));
        }
        if self.max_memory_mb == 0 {
            return Err(("max_memory_mb", "must be positive"));
        }
        if !(self.false_positive_rate > 0.0 && self.false_positive_rate < 0.1) {
            return Err(("false_positive_rate", "must be in (0, 0.1)"));
        }
        Ok(())
    }
}

mod dedup_defaults {
    pub fn enabled() -> bool {
        true
    }
    pub fn window_secs() -> u64 {
        24 * 3600
    }
    pub fn exact_window_secs() -> u64 {
        3600
    }
    pub fn max_memory_mb() -> u64 {
        64
    }
    pub fn false_positive_rate() -> f64 {
        1e-6
    }
}

/// What happens to an event that violates its schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanMode {
    #[default]
    Warn,
    Omit,
    Block,
}

/// What happens to a `track` event whose name the plan does not list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unplanned {
    #[default]
    Allow,
    Warn,
    Block,
}

/// `[sources.quality.plan]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// The tracking plan (JSON). Unset: events are not checked.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// `warn` (default), `omit` or `block`.
    #[serde(default)]
    pub mode: PlanMode,
    /// Unplanned `track` names: `allow` (default), `warn` or `block`.
    #[serde(default)]
    pub unplanned: Unplanned,
}

/// `[sources.quality.enrich]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Parse `context.userAgent` into `context.userAgentParsed`.
    #[serde(default = "enrich_defaults::yes")]
    pub user_agent: bool,
    /// Fill `context.campaign` from the page URL's `utm_*` and click ids.
    #[serde(default = "enrich_defaults::yes")]
    pub campaign: bool,
    /// Add `context.referrerParsed` (host, channel, source).
    #[serde(default = "enrich_defaults::yes")]
    pub referrer: bool,
    /// URL parameters copied into `context.campaign` under their own name.
    #[serde(default = "enrich_defaults::click_ids")]
    pub click_ids: Vec<String>,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            user_agent: true,
            campaign: true,
            referrer: true,
            click_ids: enrich_defaults::click_ids(),
        }
    }
}

mod enrich_defaults {
    pub fn yes() -> bool {
        true
    }
    pub fn click_ids() -> Vec<String> {
        [
            "gclid",
            "gbraid",
            "wbraid",
            "dclid",
            "fbclid",
            "msclkid",
            "ttclid",
            "twclid",
            "li_fat_id",
            "yclid",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// Validates `[quality]` and every `[sources.quality]` table (what needs
/// no stage code; `quality::check` loads plans and the referrer list).
pub(super) fn validate(config: &super::Config) -> Result<(), super::ConfigError> {
    use super::ConfigError;
    for (i, s) in config.sources.iter().enumerate() {
        if let Err((key, message)) = s.quality.dedup.validate() {
            return Err(ConfigError::key(
                format!("sources[{i}].quality.dedup.{key}"),
                message,
            ));
        }
        if s.quality.enrich.click_ids.iter().any(|c| c.is_empty()) {
            return Err(ConfigError::key(
                format!("sources[{i}].quality.enrich.click_ids"),
                "must not contain an empty name",
            ));
        }
    }
    if config.quality.user_agent_cache_entries == 0 {
        return Err(ConfigError::key(
            "quality.user_agent_cache_entries",
            "must be positive",
        ));
    }
    Ok(())
}
