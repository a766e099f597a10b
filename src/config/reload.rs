//! The `[reload]` section: how the gateway notices a changed
//! configuration file, or a changed file it references.

use serde::Deserialize;

/// `[reload]`: how the gateway notices a changed configuration file, or a
/// changed file it references (tracking plans and their schemas, the
/// referrer list, the bot patterns file, the GeoIP database, secret files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Reload when one of those files changes (SIGHUP always reloads).
    #[serde(default = "defaults::watch")]
    pub watch: bool,
    /// How often the files' modification times and lengths are looked at.
    #[serde(default = "defaults::watch_interval_ms")]
    pub watch_interval_ms: u64,
}

mod defaults {
    pub fn watch() -> bool {
        true
    }
    pub fn watch_interval_ms() -> u64 {
        250
    }
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: defaults::watch(),
            watch_interval_ms: defaults::watch_interval_ms(),
        }
    }
}
