//! The `[rate_limit]` section, and the checks of every key the `limits`
//! stage relies on (`sources[].events_per_second`, the connection limits of
//! `[server]`, `limits.max_json_depth`).

use serde::Deserialize;

use super::{Config, ConfigError};

/// hyper's smallest allowed read buffer, hence the smallest header limit.
pub const MIN_HEADER_BYTES: usize = 8192;

/// `[rate_limit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Turns the per-IP and per-source rate limiters on. Default `true`.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Sustained requests per second per client IP. Default 50.
    #[serde(default = "defaults::per_ip_rps")]
    pub per_ip_rps: u32,
    /// Requests a client IP may send at once above the sustained rate.
    /// Default 200.
    #[serde(default = "defaults::per_ip_burst")]
    pub per_ip_burst: u32,
    /// Requests in flight on the public listener; one more gets 503
    /// `overloaded` at once. Default 4096.
    #[serde(default = "defaults::max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// How often idle per-IP keys are forgotten. Default 10000.
    #[serde(default = "defaults::purge_interval_ms")]
    pub purge_interval_ms: u64,
}

mod defaults {
    pub fn enabled() -> bool {
        true
    }
    pub fn per_ip_rps() -> u32 {
        50
    }
    pub fn per_ip_burst() -> u32 {
        200
    }
    pub fn max_concurrent_requests() -> usize {
        4096
    }
    pub fn purge_interval_ms() -> u64 {
        10_000
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: defaults::enabled(),
            per_ip_rps: defaults::per_ip_rps(),
            per_ip_burst: defaults::per_ip_burst(),
            max_concurrent_requests: defaults::max_concurrent_requests(),
            purge_interval_ms: defaults::purge_interval_ms(),
        }
    }
}

fn key_error(key: impl Into<String>, message: &str) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// Validates `[rate_limit]`, `sources[].events_per_second`, and the
/// connection limits of `[server]` and `[limits]` this module relies on.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let r = &config.rate_limit;
    if r.per_ip_rps == 0 {
        return Err(key_error("rate_limit.per_ip_rps", "must be positive"));
    }
    if r.per_ip_burst == 0 {
        return Err(key_error("rate_limit.per_ip_burst", "must be positive"));
    }
    if r.max_concurrent_requests == 0 {
        return Err(key_error(
            "rate_limit.max_concurrent_requests",
            "must be positive",
        ));
    }
    if r.purge_interval_ms == 0 {
        return Err(key_error(
            "rate_limit.purge_interval_ms",
            "must be positive",
        ));
    }
    for (i, s) in config.sources.iter().enumerate() {
        if s.events_per_second == Some(0) {
            return Err(key_error(
                format!("sources[{i}].events_per_second"),
                "must be positive (leave it out for no cap)",
            ));
        }
    }
    let srv = &config.server;
    if srv.max_header_bytes < MIN_HEADER_BYTES {
        return Err(key_error(
            "server.max_header_bytes",
            "must be at least 8192",
        ));
    }
    if srv.keep_alive_timeout_ms == 0 || srv.keep_alive_timeout_ms > srv.header_read_timeout_ms {
        return Err(key_error(
            "server.keep_alive_timeout_ms",
            "must be positive and at most server.header_read_timeout_ms",
        ));
    }
    if srv.header_read_timeout_ms == 0 {
        return Err(key_error(
            "server.header_read_timeout_ms",
            "must be positive",
        ));
    }
    if config.limits.max_json_depth == 0 {
        return Err(key_error("limits.max_json_depth", "must be positive"));
    }
    validate_shares(config)
}

/// The limits of what a request may write, and the per-address shares of
/// the global admission budgets.
fn validate_shares(config: &Config) -> Result<(), ConfigError> {
    let l = &config.limits;
    if l.max_context_bytes == 0 {
        return Err(key_error("limits.max_context_bytes", "must be positive"));
    }
    if l.max_context_keys == 0 {
        return Err(key_error("limits.max_context_keys", "must be positive"));
    }
    if l.max_request_output_bytes < l.max_request_bytes as u64 {
        return Err(key_error(
            "limits.max_request_output_bytes",
            "must be at least limits.max_request_bytes",
        ));
    }
    let srv = &config.server;
    if srv.max_buffered_body_bytes_per_ip < l.max_request_output_bytes
        || srv.max_buffered_body_bytes_per_ip > srv.max_buffered_body_bytes
    {
        return Err(key_error(
            "server.max_buffered_body_bytes_per_ip",
            "must be at least limits.max_request_output_bytes and at most server.max_buffered_body_bytes",
        ));
    }
    Ok(())
}
