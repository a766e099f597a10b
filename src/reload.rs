//! Configuration reload without a restart: on SIGHUP, and when the
//! configuration file changes (polled: its modification time and length,
//! then its content hash).
//!
//! The handlers read one [`AppState`] per request from an `ArcSwap`. A
//! reload loads and validates the file, builds a complete new state (write
//! keys and sources, allowed origins, rate limits, bot and privacy policies,
//! tracking plans, routing and event limits) and swaps it in atomically:
//! requests already running finish with the state they started with, new
//! ones get the new state, no connection is closed and no event is lost.
//! Shared parts carry over: the producer, the opt-out list and its writer,
//! the GeoIP database, the IP-hashing key, the inspector, the served SDK,
//! the in-flight request slots, the user-agent parser and, for sources whose
//! settings did not change, the duplicate filters with the ids they hold.
//!
//! A file that does not load or validate is refused: the running state
//! stays, the error is logged and counted
//! (`trackgate_config_reloads_total{result="failed"}`) and shown by
//! `GET /config` on the admin listener. Sections that need a restart
//! (`server`, `kafka`, `inspect`, `sdk`, `reload`, and the GeoIP and
//! opt-out-topic and -list keys of `privacy`) keep their running values; a changed
//! one is logged and listed as `restartPending`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, LoadOptions};
use crate::http::AppState;
use crate::ingest::Pipeline;
use crate::metrics;

/// `[reload]`: lives in `config` with the other sections.
pub use crate::config::ReloadConfig;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Privacy(#[from] crate::privacy::PrivacyError),
    #[error(transparent)]
    Quality(#[from] crate::quality::QualityError),
}

/// A refused reload, as `GET /config` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub at: String,
    pub sha256: String,
    pub error: String,
}

/// The running configuration, as `GET /config` shows it (no secrets).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigInfo {
    /// 1 at start, +1 per applied reload.
    pub version: u64,
    /// SHA-256 of the configuration text (`sha256sum` of the file).
    pub sha256: String,
    pub loaded_at: String,
    pub file: Option<String>,
    /// Source ids of the running configuration.
    pub sources: Vec<String>,
    /// Sections changed in the file that apply only after a restart.
    pub restart_pending: Vec<&'static str>,
    /// The last refused reload after the running one was loaded.
    pub last_failure: Option<Failure>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The new configuration runs, with this version.
    Applied(u64),
    /// The text is the running one: nothing to do.
    Unchanged,
}

/// The state the handlers read, and how to load it again.
pub struct Live {
    state: ArcSwap<AppState>,
    info: ArcSwap<ConfigInfo>,
    opts: Option<LoadOptions>,
    /// One reload at a time.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("info", &self.info()).finish()
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> String {
    crate::normalize::format_time(chrono::Utc::now())
}

impl Live {
    /// The running state, loaded from `text` (for the hash) with `opts`
    /// (`None`: configuration given in code, reload refused).
    pub fn new(state: Arc<AppState>, text: &str, opts: Option<LoadOptions>) -> Live {
        let info = ConfigInfo {
            version: 1,
            sha256: sha256_hex(text),
            loaded_at: now(),
            file: opts
                .as_ref()
                .and_then(|o| o.file.as_ref())
                .map(|f| f.display().to_string()),
            sources: state.config.sources.iter().map(|s| s.id.clone()).collect(),
            restart_pending: Vec::new(),
            last_failure: None,
        };
        metrics::config_version(1);
        Live {
            state: ArcSwap::new(state),
            info: ArcSwap::from_pointee(info),
            opts,
            reloading: Mutex::new(()),
        }
    }

    /// The state a new request uses.
    #[inline]
    pub fn current(&self) -> Arc<AppState> {
        self.state.load_full()
    }

    pub fn info(&self) -> Arc<ConfigInfo> {
        self.info.load_full()
    }

    /// The configuration file, when there is one to watch.
    pub fn file(&self) -> Option<PathBuf> {
        self.opts.as_ref().and_then(|o| o.file.clone())
    }

    /// Loads the configuration again and, when it is valid, swaps it in.
    /// Blocking (reads the file, compiles rules): run it off the async
    /// workers.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let result = self.try_reload();
        let took_ms = started.elapsed().as_millis() as u64;
        let info = self.info();
        match &result {
            Ok(Reloaded::Applied(v)) => {
                metrics::config_reload(true, *v);
                tracing::info!(
                    version = v,
                    sha256 = %self.info().sha256,
                    took_ms,
                    "configuration reloaded"
                );
            }
            Ok(Reloaded::Unchanged) => {}
            Err((sha256, e)) => {
                metrics::config_reload(false, info.version);
                tracing::error!(error = %e, version = info.version, "configuration reload refused; the running configuration stays");
                let mut next = (*info).clone();
                next.last_failure = Some(Failure {
                    at: now(),
                    sha256: sha256.clone(),
                    error: e.to_string(),
                });
                self.info.store(Arc::new(next));
            }
        }
        result.map_err(|(_, e)| e)
    }

    fn try_reload(&self) -> Result<Reloaded, (String, ReloadError)> {
        let Some(opts) = &self.opts else {
            return Ok(Reloaded::Unchanged);
        };
        let (loaded, text) = match crate::load::load_with_text(opts) {
            Ok(loaded) => loaded,
            Err(e) => {
                // The refused text's hash, for `GET /config`.
                let sha256 = opts
                    .file
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .map(|t| sha256_hex(&t))
                    .unwrap_or_default();
                return Err((sha256, e.into()));
            }
        };
        let sha256 = sha256_hex(&text);
        let info = self.info();
        if sha256 == info.sha256 {
            if info.last_failure.is_some() {
                // Back to the running text: the failure no longer matters.
                let mut next = (*info).clone();
                next.last_failure = None;
                self.info.store(Arc::new(next));
            }
            return Ok(Reloaded::Unchanged);
        }
        let fail = |e: ReloadError| (sha256.clone(), e);
        let current = self.current();
        let (config, restart_pending) = effective(loaded, &current.config);
        for section in &restart_pending {
            tracing::warn!(
                section,
                "configuration section changed; it applies after a restart"
            );
        }
        let config = Arc::new(config);
        let privacy = current
            .pipeline
            .privacy
            .reconfigured(&config)
            .map_err(|e| fail(e.into()))?;
        let quality = current
            .pipeline
            .quality
            .reconfigured(&config)
            .map_err(|e| fail(e.into()))?;
        let mut pipeline = Pipeline::with_stages(
            config.clone(),
            current.pipeline.sink.clone(),
            privacy,
            quality,
        );
        pipeline.inspector = current.pipeline.inspector.clone();
        pipeline.spool = current.pipeline.spool.clone();
        let mut state = AppState::new(pipeline).with_sdk(current.sdk.clone());
        state.limits = Arc::new(current.limits.reconfigured(&config));
        let version = info.version + 1;
        self.state.store(Arc::new(state));
        self.info.store(Arc::new(ConfigInfo {
            version,
            sha256,
            loaded_at: now(),
            file: info.file.clone(),
            sources: config.sources.iter().map(|s| s.id.clone()).collect(),
            restart_pending,
            last_failure: None,
        }));
        Ok(Reloaded::Applied(version))
    }
}

/// The configuration to run: `loaded`, with the sections that need a
/// restart kept at their `running` values; and the names of those that
/// differ.
pub fn effective(mut loaded: Config, running: &Config) -> (Config, Vec<&'static str>) {
    let mut pending = Vec::new();
    macro_rules! keep {
        ($name:literal, $($field:tt)+) => {
            if format!("{:?}", loaded.$($field)+) != format!("{:?}", running.$($field)+) {
                pending.push($name);
            }
            loaded.$($field)+ = running.$($field)+.clone();
        };
    }
    keep!("server", server);
    keep!("kafka", kafka);
    keep!("inspect", inspect);
    keep!("sdk", sdk);
    keep!("reload", reload);
    keep!("privacy.geoip_database", privacy.geoip_database);
    keep!(
        "privacy.geoip_reload_interval_ms",
        privacy.geoip_reload_interval_ms
    );
    keep!("privacy.optout_topic", privacy.optout_topic);
    keep!(
        "privacy.optout_write_timeout_ms",
        privacy.optout_write_timeout_ms
    );
    // The list (and its bound) is shared by every configuration generation.
    keep!("privacy.optout_max_entries", privacy.optout_max_entries);
    keep!(
        "privacy.optout_max_entries_per_address",
        privacy.optout_max_entries_per_address
    );
    keep!(
        "privacy.optout_address_window_secs",
        privacy.optout_address_window_secs
    );
    (loaded, pending)
}

/// Reloads on SIGHUP and, with `reload.watch`, when the file changes;
/// ends when `stop` is cancelled.
pub fn spawn(live: Arc<Live>, stop: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(on_sighup(live.clone(), stop.clone()));
    let cfg = live.current().config.reload.clone();
    if let (true, Some(file)) = (cfg.watch, live.file()) {
        let every = Duration::from_millis(cfg.watch_interval_ms.max(1));
        tokio::spawn(watch_file(live, file, every, stop));
    }
}

async fn reload_off_thread(live: &Arc<Live>) {
    let l = live.clone();
    // The outcome is logged, counted and shown by `GET /config`.
    let _ = tokio::task::spawn_blocking(move || l.reload()).await;
}

#[cfg(unix)]
async fn on_sighup(live: Arc<Live>, stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by file change only");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                reload_off_thread(&live).await;
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// The file's modification time and length: a change triggers a reload
/// (which compares the content hash before doing anything).
fn stamp(file: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(file).ok()?;
    Some((m.modified().ok()?, m.len()))
}

async fn watch_file(live: Arc<Live>, file: PathBuf, every: Duration, stop: CancellationToken) {
    let mut last = stamp(&file);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = stamp(&file);
        // A missing file (an editor's rename in progress) is waited out.
        if now.is_some() && now != last {
            last = now;
            reload_off_thread(&live).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[[sources]]
id = "web"
write_key = "wk_a"
allowed_origins = ["https://a.example"]
"#;

    #[test]
    fn restart_only_sections_keep_their_running_values() {
        let running = Config::from_toml(BASE).unwrap();
        let text = BASE
            .replace("8080", "9090")
            .replace("a.example", "b.example")
            + "[kafka]\nbrokers = \"10.0.0.1:9092\"\n";
        let (eff, pending) = effective(Config::from_toml(&text).unwrap(), &running);
        assert_eq!(eff.server.listen, running.server.listen);
        assert_eq!(eff.kafka.brokers, running.kafka.brokers);
        assert_eq!(eff.sources[0].allowed_origins, ["https://b.example"]);
        assert_eq!(pending, ["server", "kafka"]);
        let (_, none) = effective(Config::from_toml(BASE).unwrap(), &running);
        assert!(none.is_empty());
    }

    #[test]
    fn hashes_are_sha256_of_the_text() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
