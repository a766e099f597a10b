//! The `[spool]` section.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Largest `spool.segment_bytes`: positions inside a segment are 32-bit,
/// and a segment may pass `segment_bytes` by one request before it rolls.
pub const MAX_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// When spooled bytes are forced to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every `fsync_interval_ms`: a process crash loses nothing (the write
    /// is done before the 200), a machine crash at most that interval.
    Interval,
    /// Before every 200 (group commit: concurrent requests share one fsync).
    Always,
}

/// The local write-ahead spool (see `spool`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// `false`: events wait in the producer's memory queue only (lost by a
    /// crash or an outage longer than `kafka.message_timeout_ms`).
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Directory of the segment files. A relative path is resolved against
    /// the configuration file's directory (the working directory without one).
    #[serde(default = "defaults::dir")]
    pub dir: PathBuf,
    /// Most bytes on disk; a request that does not fit as a whole gets 503.
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: u64,
    /// A segment file is closed and a new one started past this size; a
    /// closed segment is deleted once all its records are acknowledged.
    /// At most a quarter of `max_bytes`, and at most 1 GiB (positions in a
    /// segment are 32-bit).
    #[serde(default = "defaults::segment_bytes")]
    pub segment_bytes: u64,
    /// `interval` or `always`.
    #[serde(default = "defaults::fsync")]
    pub fsync: FsyncPolicy,
    /// Period of the fsync (and of the acknowledgement checkpoint).
    #[serde(default = "defaults::fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// `/readyz` stays 200 while the broker is away as long as the spool
    /// has room (after the broker was verified once since start).
    #[serde(default = "defaults::ready_without_broker")]
    pub ready_without_broker: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

mod defaults {
    use super::FsyncPolicy;
    use std::path::PathBuf;
    pub fn enabled() -> bool {
        true
    }
    pub fn dir() -> PathBuf {
        PathBuf::from("trackgate-spool")
    }
    pub fn max_bytes() -> u64 {
        1024 * 1024 * 1024
    }
    pub fn segment_bytes() -> u64 {
        16 * 1024 * 1024
    }
    pub fn fsync() -> FsyncPolicy {
        FsyncPolicy::Interval
    }
    pub fn fsync_interval_ms() -> u64 {
        100
    }
    pub fn ready_without_broker() -> bool {
        true
    }
}

impl SpoolConfig {
    /// Makes a relative `dir` relative to `base` (the configuration file's
    /// directory).
    pub fn resolve_dir(&mut self, base: &std::path::Path) {
        if self.dir.is_relative() {
            self.dir = base.join(&self.dir);
        }
    }

    /// Checks the section; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.dir.as_os_str().is_empty() {
            return Err(ConfigError::key("spool.dir", "must not be empty"));
        }
        if self.segment_bytes < 4096 {
            return Err(ConfigError::key(
                "spool.segment_bytes",
                "must be at least 4096",
            ));
        }
        if self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(ConfigError::key(
                "spool.segment_bytes",
                format!("must be at most {MAX_SEGMENT_BYTES} (1 GiB): positions in a segment are 32-bit"),
            ));
        }
        if self.segment_bytes.saturating_mul(4) > self.max_bytes {
            return Err(ConfigError::key(
                "spool.segment_bytes",
                "must be at most a quarter of spool.max_bytes",
            ));
        }
        if self.fsync_interval_ms == 0 {
            return Err(ConfigError::key(
                "spool.fsync_interval_ms",
                "must be positive",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let c: SpoolConfig =
            toml::from_str("max_bytes = 100000\nsegment_bytes = 50000").expect("toml");
        let e = c.validate().expect_err("too large a segment").to_string();
        assert!(e.contains("spool.segment_bytes"), "{e}");
        let c: SpoolConfig = toml::from_str("fsync = \"always\"").expect("toml");
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<SpoolConfig>("fsync = \"never\"").is_err());
    }

    /// The finding of issue 20: check-config accepted a 6 GB segment, whose
    /// positions overflow 32 bits.
    #[test]
    fn a_segment_too_large_for_32_bit_positions_is_refused_naming_the_key() {
        let c: SpoolConfig = toml::from_str(
            "max_bytes = 100000000000
segment_bytes = 6000000000",
        )
        .expect("toml");
        let e = c.validate().expect_err("6 GB segment").to_string();
        assert!(e.contains("spool.segment_bytes"), "{e}");
        let c: SpoolConfig = toml::from_str(&format!(
            "max_bytes = 100000000000\nsegment_bytes = {MAX_SEGMENT_BYTES}"
        ))
        .expect("toml");
        assert!(c.validate().is_ok());
    }
}
