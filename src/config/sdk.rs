//! The `[sdk]` section: where and how the gateway serves the browser SDK.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// `[sdk]`: where and how the gateway serves the browser SDK.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdkConfig {
    /// Serve the SDK at all.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// The URL path of the script, any path outside the ingestion API's
    /// (a name of your own keeps it off blocklists).
    #[serde(default = "defaults::path")]
    pub path: String,
    /// Serve this file instead of the bundle built into the binary (read
    /// once at start).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// `Cache-Control: public, max-age=…` of the script; browsers
    /// revalidate with its `ETag` afterwards.
    #[serde(default = "defaults::max_age_secs")]
    pub max_age_secs: u64,
}

mod defaults {
    pub fn enabled() -> bool {
        true
    }
    pub fn path() -> String {
        "/sdk/trackgate.min.js".into()
    }
    pub fn max_age_secs() -> u64 {
        7 * 24 * 3600
    }
}

impl Default for SdkConfig {
    fn default() -> Self {
        SdkConfig {
            enabled: defaults::enabled(),
            path: defaults::path(),
            file: None,
            max_age_secs: defaults::max_age_secs(),
        }
    }
}

impl SdkConfig {
    /// Checks `sdk.path` against the ingestion API's `server.path_prefix`
    /// (the file is read, and checked, at start).
    pub fn validate(&self, api_prefix: &str) -> Result<(), ConfigError> {
        let p = &self.path;
        let bad = |m: &str| {
            Err(ConfigError::Key {
                key: "sdk.path".into(),
                message: m.into(),
            })
        };
        if !p.starts_with('/') || p.len() < 2 {
            return bad("must be a path like /sdk/trackgate.min.js");
        }
        if p.contains(['?', '#', ' ']) {
            return bad("must be a plain path, without query, fragment or spaces");
        }
        let prefix = api_prefix.trim_end_matches('/');
        if p.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("/v1/"))
        {
            return bad("must be outside the ingestion API (server.path_prefix + /v1/)");
        }
        Ok(())
    }
}
