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
//! librdkafka properties: `TRACKGATE_KAFKA__PROPERTIES__SASL_PASSWORD` sets
//! `kafka.properties."sasl.password"` (see `env`).
//!
//! Secrets stay out of the file: string values may reference environment
//! variables as `${VAR}` (see `vars`), and every secret key `K` has a
//! `K_file` form (see `secrets`). Errors name the key and its line, never a
//! value (see `parse`).
//!
//! Layout: one file per section (`server`, `kafka` with `routing`,
//! `limits`, `rate_limit`, `sources`, `privacy`, `bots`, `quality`,
//! `spool`, `inspect`, `reload`, `sdk`), `validate` for the checks that span
//! sections, `env` for the override layer, `parse` for the text to tree
//! step, `vars` for `${VAR}`, `secrets` for `*_file` keys and redaction. Every type is re-exported here,
//! so callers name `crate::config::X` whatever file it lives in.
//!
//! Dependencies point one way: stages use `config`, and `config` uses no
//! stage. Two leaf modules are used to check a section: the scrub rules'
//! types and compiler (`privacy::scrub`) and the GeoIP reader
//! (`privacy::geo`); neither uses `config`. The checks that need a stage's
//! code (bot patterns, tracking plans, the referrer list) run in `load`,
//! after this module has validated the sections.

use std::path::Path;

use serde::Deserialize;

/// `impl Default` from the serde defaults, for sections whose every field
/// has one. Defined before the submodules so they can use it.
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

mod bots;
mod env;
mod inspect;
mod kafka;
mod limits;
mod parse;
mod privacy;
mod quality;
mod rate_limit;
mod reload;
mod sdk;
mod secrets;
mod server;
mod sources;
mod spool;
#[cfg(test)]
mod tests;
mod validate;
mod vars;

pub use bots::{BotPolicy, BotsConfig, SourceKind};
pub use env::ENV_PREFIX;
use env::{apply_override, dotted_to_path, env_key_to_path, read_file, OverridePath, ENV_RESERVED};
pub use inspect::InspectConfig;
pub use kafka::{Compression, KafkaConfig, RoutingConfig, TopicsConfig};
pub use limits::{
    LimitsConfig, DEFAULT_MESSAGE_MAX_BYTES, MESSAGE_MAX_BYTES_KEY, RECORD_OVERHEAD_BYTES,
};
pub use privacy::{
    CookieSecure, DntPolicy, GpcPolicy, InvalidPayload, IpMode, PrivacyConfig, SourcePrivacyConfig,
};
pub use quality::{
    DedupConfig, EnrichConfig, PlanConfig, PlanMode, QualityConfig, SourceQualityConfig, Unplanned,
};
pub use rate_limit::{RateLimitConfig, MIN_HEADER_BYTES};
pub use reload::ReloadConfig;
pub use sdk::SdkConfig;
pub use secrets::{is_secret, REDACTED};
pub use server::ServerConfig;
pub use sources::{SourceConfig, MIN_SERVER_KEY_CHARS, SCOPE_ALL};
pub use spool::{FsyncPolicy, SpoolConfig, MAX_SEGMENT_BYTES};

/// The value of `kafka.brokers` that starts librdkafka's in-process mock
/// cluster instead of connecting to a real broker (local development only).
pub const EMBEDDED_BROKER: &str = "embedded";

/// Write key of the development source used by the zero-setup run.
pub const DEV_WRITE_KEY: &str = "wk_dev_local_only";

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

    /// This error with the line of its key in the configuration `text`,
    /// when the key is set there.
    pub fn located(self, text: &str) -> Self {
        parse::locate(self, text)
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
    pub privacy: PrivacyConfig,
    /// Per-client-IP and concurrency limits (see `limits`).
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// User-agent bot detection (see `bots`).
    #[serde(default)]
    pub bots: BotsConfig,
    /// The local write-ahead spool (see `spool`).
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Shared data-quality settings (see `quality`; per source in
    /// `[sources.quality]`).
    #[serde(default)]
    pub quality: QualityConfig,
    /// The live inspector on the admin listener (see `inspect`).
    #[serde(default)]
    pub inspect: InspectConfig,
    /// Configuration reload: SIGHUP and the file watch (see `reload`).
    #[serde(default)]
    pub reload: ReloadConfig,
    /// The browser SDK served by the gateway (see `http::sdk`).
    #[serde(default)]
    pub sdk: SdkConfig,
    /// The sites and apps allowed to send events, one per write key.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// The process environment, where `${VAR}` and `*_env` keys are read.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A loaded configuration, with what it was read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The configuration file's text (or the development configuration's).
    pub text: String,
    /// The secret files (`*_file` keys) the configuration was read with.
    pub secret_files: Vec<std::path::PathBuf>,
    /// The loaded tree (overrides applied, secret files read), every secret
    /// replaced by [`REDACTED`]: what `GET /config` shows.
    pub redacted: serde_json::Value,
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
        Self::load_full(opts).map(|loaded| loaded.config)
    }

    /// [`Config::load`], with what the configuration was read from.
    pub fn load_full(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
        let text = match &opts.file {
            Some(path) => read_file(path)?,
            None => Self::development_toml(),
        };
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (env_key_to_path(&k), v));
        let cli = opts
            .overrides
            .iter()
            .map(|(k, v)| (dotted_to_path(k), v.clone()));
        let base = opts.file.as_deref().and_then(Path::parent);
        let mut loaded = Self::build(text, env.chain(cli), &process_env, base)?;
        if let Some(base) = base {
            loaded.config.spool.resolve_dir(base);
        }
        Ok(loaded)
    }

    /// Parses TOML text with `(dotted.path, raw value)` overrides.
    pub fn from_toml_with_overrides<'a>(
        text: &str,
        overrides: impl Iterator<Item = &'a (String, String)>,
    ) -> Result<Config, ConfigError> {
        let overrides = overrides.map(|(k, v)| (dotted_to_path(k), v.clone()));
        Self::build(text.to_string(), overrides, &process_env, None).map(|l| l.config)
    }

    /// Text to validated configuration: parse (resolving `${VAR}`s with
    /// `env`), overrides, `*_file` secrets (relative to `base`), structs,
    /// checks. A key error names the key's line in `text` when it has one.
    fn build(
        text: String,
        overrides: impl Iterator<Item = (OverridePath, String)>,
        env: &vars::Lookup<'_>,
        base: Option<&Path>,
    ) -> Result<Loaded, ConfigError> {
        let build = || {
            let mut root = parse::parse(&text, env)?;
            for (path, raw) in overrides {
                apply_override(&mut root, &path, &raw)?;
            }
            let secret_files = secrets::read_files(&mut root, base)?;
            let redacted = secrets::redacted(&root);
            let mut config: Config = serde_path_to_error::deserialize(root).map_err(|e| {
                let key = e.path().to_string();
                let message = secrets::mask_values(&key, e.into_inner().to_string());
                ConfigError::key(key, message)
            })?;
            config.resolve_server_keys(|name| env(name))?;
            config.validate()?;
            Ok((config, secret_files, redacted))
        };
        match build() {
            Ok((config, secret_files, redacted)) => Ok(Loaded {
                config,
                text,
                secret_files,
                redacted,
            }),
            Err(e) => Err(parse::locate(e, &text)),
        }
    }

    /// Parses TOML text without overrides.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_toml_with_overrides(text, std::iter::empty())
    }

    pub fn uses_embedded_broker(&self) -> bool {
        self.kafka.brokers.trim() == EMBEDDED_BROKER
    }
}
