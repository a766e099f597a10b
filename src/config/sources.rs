//! `[[sources]]`: the sites and apps allowed to send events.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Stable id of the source, sent as a record header.
    pub id: String,
    /// The write key clients authenticate with. It is public (it ships in
    /// every web page): it may send events and opt ids out, never in.
    pub write_key: String,
    /// The source's server key: a secret, distinct from the write key, that
    /// only the site owner's servers send (`Authorization: Bearer <key>` or
    /// `X-Trackgate-Server-Key`). It may opt any id of this source out or
    /// back in. At least 16 characters. Unset: no server key (opting in then
    /// needs the visitor's own opt-out cookie).
    #[serde(default)]
    pub server_key: Option<String>,
    /// The name of an environment variable holding the server key, instead
    /// of `server_key` (the variable must be set and non-empty at start).
    #[serde(default)]
    pub server_key_env: Option<String>,
    /// Browser origins allowed to post (`https://shop.example`); `*` allows any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// This source's IP, GPC, DNT and geo-coordinate rules.
    #[serde(default)]
    pub privacy: super::SourcePrivacyConfig,
    /// Most events per second accepted from this source (a batch counts
    /// its events); over it: 429. Unset: no per-source cap.
    #[serde(default)]
    pub events_per_second: Option<u32>,
    /// What to do with events from bots: `tag` (`context.bot = true`),
    /// `drop` (counted as dropped, reason `bot`) or `allow`.
    #[serde(default)]
    pub bots: super::BotPolicy,
    /// What sends this source's events: `browser` (default: web pages and
    /// apps) or `server` (a server-side library, whose generic HTTP user
    /// agent is not taken for a bot's).
    #[serde(default)]
    pub kind: super::SourceKind,
    /// Duplicate suppression, tracking plan and enrichment (see `quality`).
    #[serde(default)]
    pub quality: super::SourceQualityConfig,
}

/// Shortest server key accepted.
pub const MIN_SERVER_KEY_CHARS: usize = 16;

/// The opt-out scope of entries that apply to every source (see
/// `privacy::optout`). A source id can never be it, nor contain `:`, which
/// ends the scope in an opt-out record key.
pub const SCOPE_ALL: &str = "*";
