//! The `[inspect]` section: the live inspector on the admin listener, and
//! the token and host names that guard the admin listener's pages
//! (`/inspect` and `/config`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// `[inspect]`: the live inspector on the admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectConfig {
    /// Serve `/inspect` on the admin listener.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// When set, `/inspect` and `/config` require it:
    /// `Authorization: Bearer <token>` or `?token=<token>` (the page passes
    /// it on to its event stream). Required when the inspector is enabled
    /// and `server.admin_listen` is not a loopback address. A secret:
    /// `token_file` reads it from a file, `${VAR}` from the environment.
    #[serde(default)]
    pub token: Option<String>,
    /// Host names (`Host` header, port ignored, case ignored) under which
    /// `/inspect` and `/config` answer, besides IP addresses and
    /// `localhost`, which always do. Any other name is refused (403), so a
    /// web page cannot reach them through DNS rebinding. Default none.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
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
            allowed_hosts: Vec::new(),
            max_events_per_second: defaults::max_events_per_second(),
            buffer: defaults::buffer(),
        }
    }
}

impl InspectConfig {
    /// Checks the section; `admin_listen` is where the pages are served.
    pub fn validate(&self, admin_listen: SocketAddr) -> Result<(), ConfigError> {
        if self.buffer == 0 {
            return Err(ConfigError::key("inspect.buffer", "must be positive"));
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::key(
                "inspect.token",
                "must not be empty (leave it out for no token)",
            ));
        }
        if self.enabled && self.token.is_none() && !admin_listen.ip().is_loopback() {
            return Err(ConfigError::key(
                "inspect.token",
                format!(
                    "required: server.admin_listen ({admin_listen}) is not a loopback address, \
                     so the live inspector (every event, as written to Kafka) would be open to \
                     the network; set inspect.token (or token_file), or inspect.enabled = false"
                ),
            ));
        }
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            let valid = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(ConfigError::key(
                    format!("inspect.allowed_hosts[{i}]"),
                    "must be a host name (letters, digits, `-` and `.`, no port)",
                ));
            }
        }
        Ok(())
    }
}
