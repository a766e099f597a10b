//! The `[reload]` section: how the gateway notices a changed
//! configuration file.

use serde::Deserialize;

/// `[reload]`: how the gateway notices a changed configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Reload when the configuration file changes (SIGHUP always reloads).
    #[serde(default = "defaults::watch")]
    pub watch: bool,
    /// How often the file's modification time and length are looked at.
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
