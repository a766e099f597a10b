//! The `[inspect]` section: the live inspector on the admin listener.

use serde::Deserialize;

use super::ConfigError;

/// `[inspect]`: the live inspector on the admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectConfig {
    /// Serve `/inspect` on the admin listener.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// When set, `/inspect` requires it: `Authorization: Bearer <token>`
    /// or `?token=<token>` (the page passes it on to its event stream).
    #[serde(default)]
    pub token: Option<String>,
    /// Most records per second copied to the pages; more are sampled out.
    #[serde(default = "defaults::max_events_per_second")]
    pub max_events_per_second: u32,
    /// Messages the broadcast ring holds for slow pages.
    #[serde(default = "defaults::buffer")]
    pub buffer: usize,
}

mod defaults {
    pub fn enabled() -> bool {
        true
    }
    pub fn max_events_per_second() -> u32 {
        200
    }
    pub fn buffer() -> usize {
        1024
    }
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            enabled: defaults::enabled(),
            token: None,
            max_events_per_second: defaults::max_events_per_second(),
            buffer: defaults::buffer(),
        }
    }
}

impl InspectConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.buffer == 0 {
            return Err(ConfigError::Key {
                key: "inspect.buffer".into(),
                message: "must be positive".into(),
            });
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::Key {
                key: "inspect.token".into(),
                message: "must not be empty (leave it out for no token)".into(),
            });
        }
        Ok(())
    }
}
