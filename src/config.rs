//! Configuration: one TOML file, every key overridable by `TRACKGATE_…`
//! environment variables, the common ones by CLI flags.
//!
//! The structs below are the reference documentation: every field carries a
//! doc comment and a default. Unknown keys are errors, and validation runs
//! once at load, naming the offending key. `config/trackgate.example.toml`
//! shows every key with its default.
//!
//! Environment overrides: `TRACKGATE_<SECTION>__<KEY>` (double underscore
//! between path segments, array indices as numbers), e.g.
//! `TRACKGATE_KAFKA__BROKERS=10.0.0.1:9092` or
//! `TRACKGATE_SOURCES__0__WRITE_KEY=wk_live_x`. Values are read as TOML
//! literals when they parse as one (`true`, `5`, `["a","b"]`), else as strings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// The value of `kafka.brokers` that starts librdkafka's in-process mock
/// cluster instead of connecting to a real broker (local development only).
pub const EMBEDDED_BROKER: &str = "embedded";

/// Write key of the development source used by the zero-setup run.
pub const DEV_WRITE_KEY: &str = "wk_dev_local_only";

/// Environment variables with this prefix override configuration keys.
pub const ENV_PREFIX: &str = "TRACKGATE_";

/// Environment variables with the prefix that are not configuration keys.
const ENV_RESERVED: &[&str] = &["TRACKGATE_CONFIG", "TRACKGATE_LOG", "TRACKGATE_BIN"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("config is not valid TOML: {0}")]
    Syntax(String),
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub routing: RoutingConfig,
    /// GeoIP database, opt-out topic and cookie, invalid-topic payloads.
    #[serde(default)]
    pub privacy: crate::privacy::config::PrivacyConfig,
    /// Per-client-IP and concurrency limits (see `limits`).
    #[serde(default)]
    pub rate_limit: crate::limits::RateLimitConfig,
    /// User-agent bot detection (see `bots`).
    #[serde(default)]
    pub bots: crate::bots::BotsConfig,
    /// The local write-ahead spool (see `spool`).
    #[serde(default)]
    pub spool: crate::spool::SpoolConfig,
    /// Shared data-quality settings (see `quality`; per source in
    /// `[sources.quality]`).
    #[serde(default)]
    pub quality: crate::quality::config::QualityConfig,
    /// The live inspector on the admin listener (see `inspect`).
    #[serde(default)]
    pub inspect: crate::inspect::InspectConfig,
    /// Configuration reload: SIGHUP and the file watch (see `reload`).
    #[serde(default)]
    pub reload: crate::reload::ReloadConfig,
    /// The browser SDK served by the gateway (see `http::sdk`).
    #[serde(default)]
    pub sdk: crate::http::sdk::SdkConfig,
    /// The sites and apps allowed to send events, one per write key.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the public ingestion listener.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    #[serde(default = "defaults::admin_listen")]
    pub admin_listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed
    /// (addresses or CIDR ranges). Empty: the peer address is the client.
    #[serde(default, deserialize_with = "ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Longest time to read a request's headers before the connection is closed.
    #[serde(default = "defaults::header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Longest time to read a request body.
    #[serde(default = "defaults::body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Most connections served at once; further ones wait in the accept backlog.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// An idle keep-alive connection (no request under way, nothing sent)
    /// is closed after this long. At most `header_read_timeout_ms`, whose
    /// timer also runs while a connection waits for its next request.
    #[serde(default = "defaults::keep_alive_timeout_ms")]
    pub keep_alive_timeout_ms: u64,
    /// Largest request head (request line and headers); over it: 431 and
    /// the connection is closed. At least 8192.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    #[serde(default = "defaults::shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// On SIGTERM/SIGINT, how long `/readyz` answers 503 while requests are
    /// still served, before the listener closes (load balancers stop sending
    /// first).
    #[serde(default = "defaults::drain_ms")]
    pub drain_ms: u64,
    /// Most requests one client IP may have in flight at once (over: 503
    /// `overloaded`), so a few slow clients cannot hold every slot. 0: no cap.
    #[serde(default = "defaults::max_requests_per_ip")]
    pub max_requests_per_ip: usize,
    /// Bytes of request bodies all requests in flight may announce together
    /// (`Content-Length`, else `limits.max_request_bytes`); over: 503
    /// `overloaded`. Bounds the memory of buffered bodies.
    #[serde(default = "defaults::max_buffered_body_bytes")]
    pub max_buffered_body_bytes: u64,
    /// `Retry-After` seconds sent with 503 answers.
    #[serde(default = "defaults::retry_after_secs")]
    pub retry_after_secs: u32,
    /// Path the ingestion API is mounted under (`/collect` serves
    /// `/collect/v1/batch` …, and nothing outside it), so a site can avoid
    /// the paths that blockers match. Empty: served at the root.
    #[serde(default)]
    pub path_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated; `embedded` starts an in-process
    /// mock cluster (local development only: nothing is persisted).
    #[serde(default = "defaults::brokers")]
    pub brokers: String,
    /// Acknowledgements the leader waits for: `0`, `1` or `all`.
    #[serde(default = "defaults::acks", deserialize_with = "string_or_int")]
    pub acks: String,
    /// Batch compression codec.
    #[serde(default = "defaults::compression")]
    pub compression: Compression,
    /// How long the producer waits to fill a batch.
    #[serde(default = "defaults::linger_ms")]
    pub linger_ms: u32,
    /// Bound of the local producer queue, in messages.
    #[serde(default = "defaults::queue_max_messages")]
    pub queue_max_messages: u32,
    /// Bound of the local producer queue, in KiB.
    #[serde(default = "defaults::queue_max_kbytes")]
    pub queue_max_kbytes: u32,
    /// Fraction of `queue_max_messages` above which `/readyz` says 503 and
    /// ingestion answers 503 (back-pressure before the queue is full).
    #[serde(default = "defaults::high_water_mark")]
    pub high_water_mark: f64,
    /// How long a message may wait for delivery before it counts as failed
    /// (with the spool on: before it goes back to the spool to be retried).
    #[serde(default = "defaults::message_timeout_ms")]
    pub message_timeout_ms: u32,
    /// Produce requests in flight per broker connection. 1 keeps each
    /// visitor's events in order through retries (`acks=1`, no idempotence).
    #[serde(default = "defaults::max_in_flight_requests")]
    pub max_in_flight_requests: u32,
    /// On shutdown, how long the producer gets to deliver what it holds.
    #[serde(default = "defaults::flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    /// Create missing topics at start (else only verify them).
    #[serde(default = "defaults::yes")]
    pub create_topics: bool,
    /// Partitions of topics the gateway creates.
    #[serde(default = "defaults::partitions")]
    pub partitions: i32,
    /// Replication factor of topics the gateway creates.
    #[serde(default = "defaults::replication_factor")]
    pub replication_factor: i32,
    /// How often broker metadata is re-fetched to keep readiness truthful.
    /// After losing the broker, production stays paused until a check finds
    /// it again with every topic (re-created when `create_topics`).
    #[serde(default = "defaults::metadata_interval_ms")]
    pub metadata_interval_ms: u64,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicsConfig,
    /// Extra librdkafka properties (e.g. `security.protocol`), applied last
    /// to every Kafka client: producer, admin, opt-out follower and writer.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// `page` and `screen` events.
    #[serde(default = "defaults::topic_pageviews")]
    pub pageviews: String,
    /// `track` events whose name is in `routing.click_events`.
    #[serde(default = "defaults::topic_clicks")]
    pub clicks: String,
    /// Other `track` events.
    #[serde(default = "defaults::topic_events")]
    pub events: String,
    /// `identify`, `group` and `alias` events.
    #[serde(default = "defaults::topic_identities")]
    pub identities: String,
    /// Rejected events with their reason.
    #[serde(default = "defaults::topic_invalid")]
    pub invalid: String,
}

impl TopicsConfig {
    /// Every topic the gateway produces to.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.pageviews,
            &self.clicks,
            &self.events,
            &self.identities,
            &self.invalid,
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest single event, in bytes of JSON.
    #[serde(default = "defaults::max_event_bytes")]
    pub max_event_bytes: usize,
    /// Largest request body after decompression; over it: 413.
    #[serde(default = "defaults::max_request_bytes")]
    pub max_request_bytes: usize,
    /// Most events in one `/v1/batch` request; over it: 413.
    #[serde(default = "defaults::max_batch_events")]
    pub max_batch_events: usize,
    /// Bytes of a rejected event's payload kept in the invalid topic.
    #[serde(default = "defaults::invalid_payload_bytes")]
    pub invalid_payload_bytes: usize,
    /// Deepest nesting of objects and arrays in one event (or in a batch
    /// envelope's `context`); deeper events are rejected as `too_deep`.
    #[serde(default = "defaults::max_json_depth")]
    pub max_json_depth: usize,
    /// Widest clock-skew correction, in seconds: a corrected `timestamp`
    /// further than this from `receivedAt` (either way) is replaced by
    /// `receivedAt` and the event flagged `context.timestampOutOfWindow`.
    #[serde(default = "defaults::clock_skew_window_secs")]
    pub clock_skew_window_secs: u64,
}

impl LimitsConfig {
    /// `clock_skew_window_secs` as a duration (validated at load to at most
    /// ten years, so it always fits).
    pub fn clock_skew_window(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::try_seconds(self.clock_skew_window_secs as i64)
            .unwrap_or(chrono::TimeDelta::MAX)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// `track` event names routed to the clicks topic.
    #[serde(default = "defaults::click_events")]
    pub click_events: Vec<String>,
}

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
    pub privacy: crate::privacy::config::SourcePrivacyConfig,
    /// Most events per second accepted from this source (a batch counts
    /// its events); over it: 429. Unset: no per-source cap.
    #[serde(default)]
    pub events_per_second: Option<u32>,
    /// What to do with events from bots: `tag` (`context.bot = true`),
    /// `drop` (counted as dropped, reason `bot`) or `allow`.
    #[serde(default)]
    pub bots: crate::bots::BotPolicy,
    /// Duplicate suppression, tracking plan and enrichment (see `quality`).
    #[serde(default)]
    pub quality: crate::quality::config::SourceQualityConfig,
}

/// Shortest server key accepted.
pub const MIN_SERVER_KEY_CHARS: usize = 16;

mod defaults {
    use std::net::SocketAddr;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9464))
    }
    pub fn header_read_timeout_ms() -> u64 {
        10_000
    }
    pub fn body_read_timeout_ms() -> u64 {
        15_000
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn keep_alive_timeout_ms() -> u64 {
        5_000
    }
    pub fn max_header_bytes() -> usize {
        16 * 1024
    }
    pub fn shutdown_grace_ms() -> u64 {
        10_000
    }
    pub fn drain_ms() -> u64 {
        2_000
    }
    pub fn max_requests_per_ip() -> usize {
        256
    }
    pub fn max_buffered_body_bytes() -> u64 {
        256 * 1024 * 1024
    }
    pub fn retry_after_secs() -> u32 {
        1
    }
    pub fn brokers() -> String {
        "127.0.0.1:9092".into()
    }
    pub fn acks() -> String {
        "1".into()
    }
    pub fn compression() -> super::Compression {
        super::Compression::Lz4
    }
    pub fn linger_ms() -> u32 {
        5
    }
    pub fn queue_max_messages() -> u32 {
        200_000
    }
    pub fn queue_max_kbytes() -> u32 {
        256 * 1024
    }
    pub fn high_water_mark() -> f64 {
        0.9
    }
    pub fn message_timeout_ms() -> u32 {
        60_000
    }
    pub fn max_in_flight_requests() -> u32 {
        1
    }
    pub fn flush_timeout_ms() -> u64 {
        10_000
    }
    pub fn yes() -> bool {
        true
    }
    pub fn partitions() -> i32 {
        3
    }
    pub fn replication_factor() -> i32 {
        1
    }
    pub fn metadata_interval_ms() -> u64 {
        2_000
    }
    pub fn topic_pageviews() -> String {
        "tracking.raw.pageviews".into()
    }
    pub fn topic_clicks() -> String {
        "tracking.raw.clicks".into()
    }
    pub fn topic_events() -> String {
        "tracking.raw.events".into()
    }
    pub fn topic_identities() -> String {
        "tracking.raw.identities".into()
    }
    pub fn topic_invalid() -> String {
        "tracking.raw.invalid".into()
    }
    pub fn max_event_bytes() -> usize {
        32 * 1024
    }
    pub fn max_request_bytes() -> usize {
        500 * 1024
    }
    pub fn max_batch_events() -> usize {
        2_500
    }
    pub fn invalid_payload_bytes() -> usize {
        2_048
    }
    pub fn max_json_depth() -> usize {
        32
    }
    pub fn clock_skew_window_secs() -> u64 {
        30 * 24 * 3600
    }
    pub fn click_events() -> Vec<String> {
        vec![
            "click".into(),
            "Link Clicked".into(),
            "Element Clicked".into(),
        ]
    }
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // Every field has a serde default, so an empty table is complete.
                toml::from_str("").expect("all fields have defaults")
            }
        }
    )*};
}
default_from_serde!(
    ServerConfig,
    KafkaConfig,
    TopicsConfig,
    LimitsConfig,
    RoutingConfig
);

/// Addresses (`10.0.0.1`) or CIDR ranges (`10.0.0.0/8`).
fn ip_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{s}` is not an IP address or CIDR range"))
                })
        })
        .collect()
}

fn string_or_int<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrInt {
        S(String),
        I(i64),
    }
    Ok(match StrOrInt::deserialize(d)? {
        StrOrInt::S(s) => s,
        StrOrInt::I(i) => i.to_string(),
    })
}

/// Where the configuration comes from.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// The TOML file; `None` means the zero-setup development configuration.
    pub file: Option<std::path::PathBuf>,
    /// `(dotted.key, value)` overrides from CLI flags, applied last.
    pub overrides: Vec<(String, String)>,
}

impl Config {
    /// The zero-setup configuration: embedded broker, one development source.
    pub fn development_toml() -> String {
        format!(
            "[kafka]\nbrokers = \"{EMBEDDED_BROKER}\"\n\n[[sources]]\nid = \"dev\"\nwrite_key = \"{DEV_WRITE_KEY}\"\nallowed_origins = [\"*\"]\n"
        )
    }

    /// Loads the file (or the development config), applies environment and
    /// CLI overrides, deserializes and validates.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        Self::load_with_text(opts).map(|(config, _)| config)
    }

    /// [`Config::load`], also returning the text the configuration was read
    /// from (the file's, or the development configuration's).
    pub fn load_with_text(opts: &LoadOptions) -> Result<(Config, String), ConfigError> {
        let text = match &opts.file {
            Some(path) => read_file(path)?,
            None => Self::development_toml(),
        };
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (env_key_to_path(&k), v))
            .collect();
        let mut config =
            Self::from_toml_with_overrides(&text, env.iter().chain(opts.overrides.iter()))?;
        if let Some(base) = opts.file.as_deref().and_then(Path::parent) {
            config.spool.resolve_dir(base);
        }
        Ok((config, text))
    }

    /// Parses TOML text with `(dotted.path, raw value)` overrides.
    pub fn from_toml_with_overrides<'a>(
        text: &str,
        overrides: impl Iterator<Item = &'a (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut root: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        for (path, raw) in overrides {
            apply_override(&mut root, path, raw)?;
        }
        let mut config: Config = serde_path_to_error::deserialize(root).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::key(key, e.into_inner().to_string())
        })?;
        config.resolve_server_keys(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without overrides.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_toml_with_overrides(text, std::iter::empty())
    }

    pub fn uses_embedded_broker(&self) -> bool {
        self.kafka.brokers.trim() == EMBEDDED_BROKER
    }

    /// Reads each `server_key_env` into `server_key`.
    fn resolve_server_keys(
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

    fn validate(&self) -> Result<(), ConfigError> {
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
            if s.id.contains(':') || s.id == crate::privacy::optout::SCOPE_ALL {
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
        if l.max_batch_events == 0 {
            return Err(ConfigError::key(
                "limits.max_batch_events",
                "must be positive",
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
        self.inspect.validate()?;
        crate::limits::validate(self)?;
        crate::bots::validate(self)?;
        crate::quality::validate(self)?;
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

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// `TRACKGATE_KAFKA__TOPICS__CLICKS` → `kafka.topics.clicks`.
fn env_key_to_path(var: &str) -> String {
    var[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

/// Reads a raw override as a TOML literal when it is one, else as a string;
/// a string field stays a string even when the text looks like a number.
fn parse_override(raw: &str, existing: Option<&toml::Value>) -> toml::Value {
    if matches!(existing, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_string());
    }
    #[derive(Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    match toml::from_str::<Wrapper>(&format!("v = {raw}")) {
        Ok(w) => w.v,
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn apply_override(root: &mut toml::Value, path: &str, raw: &str) -> Result<(), ConfigError> {
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let Some((last, parents)) = segments.split_last() else {
        return Err(ConfigError::key(path, "empty override key"));
    };
    let mut node = root;
    for seg in parents {
        node = match node {
            toml::Value::Table(t) => t
                .entry(seg.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default())),
            toml::Value::Array(a) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| ConfigError::key(path, "expected an array index"))?;
                if idx == a.len() {
                    a.push(toml::Value::Table(Default::default()));
                }
                a.get_mut(idx)
                    .ok_or_else(|| ConfigError::key(path, "array index out of range"))?
            }
            _ => return Err(ConfigError::key(path, "not a table")),
        };
    }
    match node {
        toml::Value::Table(t) => {
            let value = parse_override(raw, t.get(*last));
            t.insert(last.to_string(), value);
        }
        toml::Value::Array(a) => {
            let idx: usize = last
                .parse()
                .map_err(|_| ConfigError::key(path, "expected an array index"))?;
            let value = parse_override(raw, a.get(idx));
            if idx < a.len() {
                a[idx] = value;
            } else if idx == a.len() {
                a.push(value);
            } else {
                return Err(ConfigError::key(path, "array index out of range"));
            }
        }
        _ => return Err(ConfigError::key(path, "not a table")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9464"
[kafka]
brokers = "127.0.0.1:9092"
[[sources]]
id = "web"
write_key = "wk_live_abc"
allowed_origins = ["https://shop.example"]
"#;

    #[test]
    fn minimal_file_loads_with_defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.kafka.acks, "1");
        assert_eq!(c.kafka.compression, Compression::Lz4);
        assert_eq!(c.limits.max_event_bytes, 32 * 1024);
        assert_eq!(c.limits.max_request_bytes, 500 * 1024);
        assert_eq!(c.limits.max_batch_events, 2500);
        assert_eq!(c.kafka.topics.clicks, "tracking.raw.clicks");
        assert_eq!(c.sources[0].allowed_origins, vec!["https://shop.example"]);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml(&format!("{MINIMAL}\n[limits]\nmax_evnt_bytes = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_evnt_bytes"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = MINIMAL.replace("[kafka]", "[kafka]\nlinger_ms = \"soon\"");
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("kafka.linger_ms"), "{err}");
    }

    #[test]
    fn server_keys_are_secret_distinct_and_may_come_from_the_environment() {
        let with = |extra: &str| {
            Config::from_toml(
                &MINIMAL.replace("allowed_origins", &format!("{extra}\nallowed_origins")),
            )
        };
        let c = with("server_key = \"sk_0123456789abcdef\"").unwrap();
        assert_eq!(
            c.sources[0].server_key.as_deref(),
            Some("sk_0123456789abcdef")
        );
        for (extra, message) in [
            ("server_key = \"short\"", "at least 16"),
            ("server_key = \"wk_live_abc\"", "at least 16"),
            (
                "server_key_env = \"TRACKGATE_TEST_UNSET_SERVER_KEY\"",
                "is not set",
            ),
            (
                "server_key = \"sk_0123456789abcdef\"\nserver_key_env = \"X\"",
                "not both",
            ),
        ] {
            let err = with(extra).unwrap_err().to_string();
            assert!(
                err.contains("sources[0].server_key") && err.contains(message),
                "{err}"
            );
        }
        let text = MINIMAL
            .replace("wk_live_abc", "wk_live_0123456789abcdef")
            .replace(
                "allowed_origins",
                "server_key = \"wk_live_0123456789abcdef\"\nallowed_origins",
            );
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("differ from every write key"), "{err}");
        let mut c: Config = toml::from_str(&MINIMAL.replace(
            "allowed_origins",
            "server_key_env = \"SK\"\nallowed_origins",
        ))
        .unwrap();
        c.resolve_server_keys(|n| (n == "SK").then(|| "sk_from_the_environment".to_string()))
            .unwrap();
        assert_eq!(
            c.sources[0].server_key.as_deref(),
            Some("sk_from_the_environment")
        );
    }

    #[test]
    fn source_ids_cannot_break_optout_record_keys() {
        for id in ["we:b", "*"] {
            let err = Config::from_toml(&MINIMAL.replace("id = \"web\"", &format!("id = {id:?}")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("sources[0].id"), "{err}");
        }
    }

    #[test]
    fn path_prefix_is_validated() {
        for ok in ["", "/collect", "/a/b-c_d.e~f"] {
            let text = MINIMAL.replace("[kafka]", &format!("path_prefix = \"{ok}\"\n[kafka]"));
            assert_eq!(Config::from_toml(&text).unwrap().server.path_prefix, ok);
        }
        for bad in ["collect", "/collect/", "/", "//x", "/a b", "/a?b"] {
            let text = MINIMAL.replace("[kafka]", &format!("path_prefix = \"{bad}\"\n[kafka]"));
            let err = Config::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains("server.path_prefix"), "{bad}: {err}");
        }
    }

    #[test]
    fn validation_names_the_key() {
        let text = format!("{MINIMAL}\n[[sources]]\nid = \"app\"\nwrite_key = \"wk_live_abc\"\n");
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("sources[1].write_key"), "{err}");
    }

    #[test]
    fn overrides_reach_nested_keys_and_keep_string_types() {
        let overrides = [
            ("kafka.brokers".to_string(), "10.0.0.1:9092".to_string()),
            ("kafka.acks".to_string(), "all".to_string()),
            ("kafka.linger_ms".to_string(), "20".to_string()),
            ("sources.0.write_key".to_string(), "12345".to_string()),
            ("kafka.topics.clicks".to_string(), "c".to_string()),
        ];
        let c = Config::from_toml_with_overrides(MINIMAL, overrides.iter()).unwrap();
        assert_eq!(c.kafka.brokers, "10.0.0.1:9092");
        assert_eq!(c.kafka.acks, "all");
        assert_eq!(c.kafka.linger_ms, 20);
        assert_eq!(c.sources[0].write_key, "12345");
        assert_eq!(c.kafka.topics.clicks, "c");
    }

    #[test]
    fn env_var_names_map_to_paths() {
        assert_eq!(
            env_key_to_path("TRACKGATE_KAFKA__TOPICS__CLICKS"),
            "kafka.topics.clicks"
        );
        assert_eq!(env_key_to_path("TRACKGATE_SOURCES__0__ID"), "sources.0.id");
    }

    #[test]
    fn development_config_is_valid_and_embedded() {
        let c = Config::from_toml(&Config::development_toml()).unwrap();
        assert!(c.uses_embedded_broker());
        assert_eq!(c.sources[0].write_key, DEV_WRITE_KEY);
    }

    #[test]
    fn example_config_is_valid_and_complete() {
        let text = include_str!("../config/trackgate.example.toml");
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.privacy.optout_topic, "tracking.optouts");
        assert_eq!(
            c.sources[0].privacy.ip,
            crate::privacy::config::IpMode::Truncate
        );
    }
}
