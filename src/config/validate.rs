//! Checks of a deserialized configuration that span keys or sections, and
//! the resolution of `server_key_env`. Every error names the offending key.

use super::kafka::MAX_STATISTICS_INTERVAL_MS;
use super::{
    quality, rate_limit, Config, ConfigError, DEFAULT_MESSAGE_MAX_BYTES, MESSAGE_MAX_BYTES_KEY,
    MIN_SERVER_KEY_CHARS, RECORD_OVERHEAD_BYTES, SCOPE_ALL,
};

impl Config {
    /// Reads each `server_key_env` into `server_key`.
    pub(super) fn resolve_server_keys(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for (i, s) in self.sources.iter_mut().enumerate() {
            let Some(name) = s.server_key_env.as_deref() else {
                continue;
            };
            if s.server_key.is_some() {
                return Err(ConfigError::key(
                    format!("sources[{i}].server_key_env"),
                    "set either server_key or server_key_env, not both",
                ));
            }
            match env(name).filter(|v| !v.trim().is_empty()) {
                Some(v) => s.server_key = Some(v),
                None => {
                    return Err(ConfigError::key(
                        format!("sources[{i}].server_key_env"),
                        format!("environment variable {name} is not set"),
                    ))
                }
            }
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.sources.is_empty() {
            return Err(ConfigError::key(
                "sources",
                "at least one [[sources]] entry is required",
            ));
        }
        let mut keys = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.id.trim().is_empty() {
                return Err(ConfigError::key(
                    format!("sources[{i}].id"),
                    "must not be empty",
                ));
            }
            if s.write_key.trim().is_empty() {
                return Err(ConfigError::key(
                    format!("sources[{i}].write_key"),
                    "must not be empty",
                ));
            }
            if !keys.insert(s.write_key.as_str()) {
                return Err(ConfigError::key(
                    format!("sources[{i}].write_key"),
                    "duplicate write key",
                ));
            }
            if let Err(e) = crate::privacy::scrub::Scrubber::new(&s.privacy.scrub) {
                return Err(ConfigError::key(
                    format!("sources[{i}].privacy.scrub"),
                    e.to_string(),
                ));
            }
            if !ids.insert(s.id.as_str()) {
                return Err(ConfigError::key(format!("sources[{i}].id"), "duplicate id"));
            }
            // The id is the scope of the source's opt-outs in their record
            // keys (`anon@<id>:<anonymousId>`), where `:` ends the scope and
            // `*` is every source.
            if s.id.contains(':') || s.id == SCOPE_ALL {
                return Err(ConfigError::key(
                    format!("sources[{i}].id"),
                    "must not contain `:` nor be `*`",
                ));
            }
            if let Some(k) = &s.server_key {
                let key = format!("sources[{i}].server_key");
                if k.chars().count() < MIN_SERVER_KEY_CHARS {
                    return Err(ConfigError::key(key, "must be at least 16 characters"));
                }
                if self.sources.iter().any(|o| &o.write_key == k) {
                    return Err(ConfigError::key(key, "must differ from every write key"));
                }
                if self.sources[..i]
                    .iter()
                    .any(|o| o.server_key.as_ref() == Some(k))
                {
                    return Err(ConfigError::key(key, "duplicate server key"));
                }
            }
            for (j, o) in s.allowed_origins.iter().enumerate() {
                if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                    return Err(ConfigError::key(
                        format!("sources[{i}].allowed_origins[{j}]"),
                        "must be `*` or an origin like https://shop.example",
                    ));
                }
            }
        }
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(ConfigError::key("kafka.brokers", "must not be empty"));
        }
        if !matches!(k.acks.as_str(), "0" | "1" | "-1" | "all") {
            return Err(ConfigError::key("kafka.acks", "must be 0, 1, -1 or all"));
        }
        if k.partitions < 1 {
            return Err(ConfigError::key("kafka.partitions", "must be at least 1"));
        }
        if k.replication_factor < 1 {
            return Err(ConfigError::key(
                "kafka.replication_factor",
                "must be at least 1",
            ));
        }
        if !(k.high_water_mark > 0.0 && k.high_water_mark <= 1.0) {
            return Err(ConfigError::key(
                "kafka.high_water_mark",
                "must be in (0, 1]",
            ));
        }
        if k.queue_max_messages == 0 {
            return Err(ConfigError::key(
                "kafka.queue_max_messages",
                "must be positive",
            ));
        }
        for (name, topic) in [
            ("pageviews", &k.topics.pageviews),
            ("clicks", &k.topics.clicks),
            ("events", &k.topics.events),
            ("identities", &k.topics.identities),
            ("invalid", &k.topics.invalid),
        ] {
            if topic.is_empty() {
                return Err(ConfigError::key(
                    format!("kafka.topics.{name}"),
                    "must not be empty",
                ));
            }
        }
        let l = &self.limits;
        if l.max_event_bytes == 0 || l.max_event_bytes > l.max_request_bytes {
            return Err(ConfigError::key(
                "limits.max_event_bytes",
                "must be positive and at most limits.max_request_bytes",
            ));
        }
        self.validate_record_fits_producer()?;
        if l.max_batch_events == 0 {
            return Err(ConfigError::key(
                "limits.max_batch_events",
                "must be positive",
            ));
        }
        if k.statistics_interval_ms > MAX_STATISTICS_INTERVAL_MS {
            return Err(ConfigError::key(
                "kafka.statistics_interval_ms",
                format!("must be at most {MAX_STATISTICS_INTERVAL_MS} (0: off)"),
            ));
        }
        if k.max_in_flight_requests == 0 {
            return Err(ConfigError::key(
                "kafka.max_in_flight_requests",
                "must be positive",
            ));
        }
        self.spool.validate()?;
        self.privacy.validate()?;
        self.sdk.validate(&self.server.path_prefix)?;
        self.inspect.validate(self.server.admin_listen)?;
        rate_limit::validate(self)?;
        quality::validate(self)?;
        if self.server.max_buffered_body_bytes < self.limits.max_request_bytes as u64 {
            return Err(ConfigError::key(
                "server.max_buffered_body_bytes",
                "must be at least limits.max_request_bytes",
            ));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::key(
                "server.max_connections",
                "must be positive",
            ));
        }
        if self.limits.clock_skew_window_secs > MAX_CLOCK_SKEW_WINDOW_SECS {
            return Err(ConfigError::key(
                "limits.clock_skew_window_secs",
                "must be at most 315360000 (10 years)",
            ));
        }
        if !valid_path_prefix(&self.server.path_prefix) {
            return Err(ConfigError::key(
                "server.path_prefix",
                "must be empty or `/` followed by path segments (letters, digits, `-._~`), without a trailing `/`",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The largest record the producer sends: `message.max.bytes` of
    /// `kafka.properties`, else librdkafka's default.
    pub fn producer_message_max_bytes(&self) -> Result<u64, ConfigError> {
        match self.kafka.properties.get(MESSAGE_MAX_BYTES_KEY) {
            None => Ok(DEFAULT_MESSAGE_MAX_BYTES),
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                ConfigError::key(
                    format!("kafka.properties.\"{MESSAGE_MAX_BYTES_KEY}\""),
                    "must be a whole number of bytes",
                )
            }),
        }
    }

    /// Every event the limits let through makes a record the producer can
    /// send: the event (batch `context` merged) within
    /// `limits.max_event_bytes`, the `userAgent` the gateway adds within
    /// `server.max_header_bytes`, and the gateway's fields, key and headers.
    /// Otherwise an event would be answered 200 and then refused by the
    /// producer (`MessageSizeTooLarge`) and lost.
    fn validate_record_fits_producer(&self) -> Result<(), ConfigError> {
        let max = self.producer_message_max_bytes()?;
        let room = max
            .saturating_sub(self.server.max_header_bytes as u64)
            .saturating_sub(RECORD_OVERHEAD_BYTES);
        if self.limits.max_event_bytes as u64 > room {
            return Err(ConfigError::key(
                "limits.max_event_bytes",
                format!(
                    "must be at most {room}: the producer sends records of at most {max} bytes \
                     (kafka.properties.\"{MESSAGE_MAX_BYTES_KEY}\"), less server.max_header_bytes \
                     and {RECORD_OVERHEAD_BYTES} bytes of gateway fields"
                ),
            ));
        }
        Ok(())
    }
}

/// Upper bound of `limits.clock_skew_window_secs`: wider is no bound at all.
const MAX_CLOCK_SKEW_WINDOW_SECS: u64 = 10 * 365 * 24 * 3600;

/// Empty, or `/seg/seg` with unreserved URL characters only, so the prefix
/// is matched byte for byte against request paths as clients send them.
fn valid_path_prefix(p: &str) -> bool {
    p.is_empty()
        || (p.starts_with('/')
            && p[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(extra: &str) -> Option<String> {
        Config::from_toml(&format!(
            "{extra}\n[[sources]]\nid = \"s\"\nwrite_key = \"k\"\n"
        ))
        .err()
        .map(|e| e.to_string())
    }

    #[test]
    fn an_event_limit_the_producer_cannot_carry_is_refused_naming_the_key() {
        let err = error_of("[limits]\nmax_event_bytes = 2000000\nmax_request_bytes = 4000000\nmax_request_output_bytes = 16777216\n[server]\nmax_buffered_body_bytes_per_ip = 16777216")
            .expect("over librdkafka's default");
        assert!(err.contains("limits.max_event_bytes"), "{err}");
        assert!(err.contains("message.max.bytes"), "{err}");
        let lowered = "[kafka.properties]\n\"message.max.bytes\" = \"100000\"";
        let err = error_of(&format!("[limits]\nmax_event_bytes = 90000\n{lowered}"))
            .expect("over the configured size");
        assert!(err.contains("at most 82592"), "{err}");
        assert_eq!(
            error_of(&format!("[limits]\nmax_event_bytes = 82592\n{lowered}")),
            None
        );
        let err = error_of("[kafka.properties]\n\"message.max.bytes\" = \"lots\"").expect("NaN");
        assert!(
            err.contains("kafka.properties.\"message.max.bytes\""),
            "{err}"
        );
    }

    #[test]
    fn the_shares_and_output_limits_are_checked_naming_the_key() {
        for (extra, key) in [
            (
                "[limits]\nmax_request_output_bytes = 1000",
                "limits.max_request_output_bytes",
            ),
            ("[limits]\nmax_context_keys = 0", "limits.max_context_keys"),
            ("[limits]\nmax_context_bytes = 0", "limits.max_context_bytes"),
            (
                "[server]\nmax_buffered_body_bytes_per_ip = 1048576",
                "server.max_buffered_body_bytes_per_ip",
            ),
            (
                "[server]\nmax_buffered_body_bytes = 16777216\nmax_buffered_body_bytes_per_ip = 33554432",
                "server.max_buffered_body_bytes_per_ip",
            ),
        ] {
            let err = error_of(extra).expect(extra);
            assert!(err.contains(key), "{extra}: {err}");
        }
    }
}
