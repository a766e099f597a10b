//! `[sources.quality]`: one source's data-quality settings. Every table is
//! optional; the defaults are documented on each field and in
//! `config/trackgate.example.toml`.

use std::path::PathBuf;

use serde::Deserialize;

use super::dedup::DedupConfig;
use super::enrich::EnrichConfig;
use super::plan::PlanConfig;

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
