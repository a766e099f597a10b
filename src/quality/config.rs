//! `[sources.quality]`: one source's data-quality settings. Every table is
//! optional; the defaults are documented on each field and in
//! `config/trackgate.example.toml`.

use serde::Deserialize;

use super::dedup::DedupConfig;
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
}
