//! `[bots]` and `sources[].bots`: user-agent bot detection (see `bots`).

use std::path::PathBuf;

use serde::Deserialize;

/// `[bots]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotsConfig {
    /// Further patterns (regular expressions, case-insensitive, matched
    /// anywhere in the user agent), added to the built-in list. Default none.
    #[serde(default)]
    pub extra_patterns: Vec<String>,
    /// A file of further patterns in the built-in list's format (one per
    /// line, `#` comments, `!` exceptions). Default none.
    #[serde(default)]
    pub patterns_file: Option<PathBuf>,
}

/// What a source does with bot events: `sources[].bots`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotPolicy {
    /// Keep the event and set `context.bot = true`.
    #[default]
    Tag,
    /// Drop the event (counted as dropped, reason `bot`).
    Drop,
    /// No detection.
    Allow,
}

/// What sends a source's events: `sources[].kind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Browsers and apps: a generic HTTP library's user agent (`curl`,
    /// `python-requests` …) is a bot's.
    #[default]
    Browser,
    /// A server-side library: its own HTTP library's user agent is the
    /// sender's, not a bot's. Crawler patterns still apply (to a visitor's
    /// user agent the server forwards in `context.userAgent`).
    Server,
}
