//! The data-quality stage: runs on every event after the privacy stage and
//! before routing, so it only ever sees (and adds to) what privacy kept.
//!
//! Per source, in this order:
//! 1. (gateway-owned fields the client sent, this stage's included, were
//!    already discarded by `normalize`: see `owned`);
//! 2. **tracking plan** ([`plan`]): the event is checked against its JSON
//!    Schema; violations are listed (`warn`), undeclared or invalid
//!    properties removed (`omit`), or the event is blocked (`block`: the
//!    invalid topic, reason `schema_violation`);
//! 3. **duplicate suppression** ([`dedup`]): an event whose client-sent
//!    `messageId` and visitor ids, as sent before any scrubbing, were
//!    already seen together is dropped (`dropped{reason="duplicate"}`).
//!    Only events that will be produced are recorded.
//! 4. **enrichment** ([`enrich`]): parsed user agent, campaign, referrer
//!    host and channel, on what privacy kept.
//!
//! Each part reads fields of the event and returns a verdict plus the
//! changes it wants ([`Edit`]s); only [`QualityStage::apply`] writes them
//! into the event's borrowed tree (`crate::json`).

pub mod dedup;
pub mod edit;
pub mod enrich;
pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::{Config, ConfigError};
pub use crate::config::{QualityConfig, SourceQualityConfig};
use crate::event::Event;
use crate::normalize::RequestMeta;
use dedup::{ClientIds, DedupFilter};
use edit::Edit;
use enrich::referrer::{ReferrerError, Referrers};
use enrich::ua::{UaError, UaParser};
use enrich::Enricher;
use plan::{PlanVerdict, TrackingPlan, Violation};

/// Drop reason of an event whose `messageId` was already seen.
pub const REASON_DUPLICATE: &str = "duplicate";

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("config key `sources[{index}].quality.plan.file`: {source}")]
    Plan {
        index: usize,
        source: plan::PlanError,
    },
    #[error("config key `quality.referrers_file`: {0}")]
    Referrers(#[from] ReferrerError),
    #[error(transparent)]
    UserAgent(#[from] UaError),
}

/// What the stage decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Produce the event. `Some` when its id was recorded by the duplicate
    /// filter: give it back to [`QualityStage::unrecord`] if the event is
    /// not produced after all.
    Keep(Option<Recorded>),
    /// Drop the event by policy; the reason is a metric label.
    Drop(&'static str),
    /// The tracking plan blocks the event: it goes to the invalid topic
    /// with reason [`plan::REASON_SCHEMA_VIOLATION`] and these violations.
    Block(Vec<Violation>),
}

/// A `messageId` the duplicate filter recorded for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    key: u64,
}

/// One source's parts.
struct SourceQuality {
    /// The filter and the configuration it was built from.
    dedup: Option<(Arc<Mutex<DedupFilter>>, dedup::DedupConfig)>,
    plan: Option<TrackingPlan>,
    enrich: Enricher,
}

/// The data-quality stage for all sources. Build it with
/// [`QualityStage::from_config`]; a reloaded configuration with
/// [`QualityStage::reconfigured`].
pub struct QualityStage {
    sources: HashMap<String, SourceQuality>,
    /// The user-agent parser and its cache size.
    ua: Option<(Arc<UaParser>, usize)>,
}

impl std::fmt::Debug for QualityStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QualityStage")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl QualityStage {
    /// Builds every source's parts from the configuration: reads and
    /// compiles the tracking plans, starts empty duplicate filters.
    pub fn from_config(config: &Config) -> Result<QualityStage, QualityError> {
        QualityStage::build(config, None)
    }

    /// The stage of a reloaded configuration. What did not change carries
    /// over: the user-agent parser (compiling its rules is the costly part)
    /// and each source's duplicate filter with the ids it has seen.
    pub fn reconfigured(&self, config: &Config) -> Result<QualityStage, QualityError> {
        QualityStage::build(config, Some(self))
    }

    fn build(
        config: &Config,
        previous: Option<&QualityStage>,
    ) -> Result<QualityStage, QualityError> {
        let shared = &config.quality;
        let entries = shared.user_agent_cache_entries;
        let ua = if config.sources.iter().any(|s| s.quality.enrich.user_agent) {
            match previous.and_then(|p| p.ua.as_ref()) {
                Some((parser, n)) if *n == entries => Some(parser.clone()),
                _ => Some(Arc::new(UaParser::new(entries)?)),
            }
        } else {
            None
        };
        let referrers = Arc::new(match &shared.referrers_file {
            Some(path) => Referrers::load(path)?,
            None => Referrers::default(),
        });
        let mut sources = HashMap::with_capacity(config.sources.len());
        for (index, s) in config.sources.iter().enumerate() {
            let q = &s.quality;
            let kept = previous
                .and_then(|p| p.sources.get(&s.id))
                .and_then(|old| old.dedup.as_ref())
                .filter(|(_, cfg)| *cfg == q.dedup)
                .map(|(filter, _)| filter.clone());
            let dedup = q.dedup.enabled.then(|| {
                let filter =
                    kept.unwrap_or_else(|| Arc::new(Mutex::new(DedupFilter::new(&q.dedup))));
                (filter, q.dedup.clone())
            });
            let plan = TrackingPlan::load(&s.id, &q.plan)
                .map_err(|source| QualityError::Plan { index, source })?;
            let enrich = Enricher::new(&q.enrich, ua.clone(), Some(referrers.clone()));
            sources.insert(
                s.id.clone(),
                SourceQuality {
                    dedup,
                    plan,
                    enrich,
                },
            );
        }
        Ok(QualityStage {
            sources,
            ua: ua.map(|p| (p, entries)),
        })
    }

    /// Runs the source's parts on one event. `client_ids` are the ids the
    /// client sent, taken before privacy changed the event; `None` when
    /// the `messageId` was generated (unique, not checked).
    pub fn apply(
        &self,
        ev: &mut Event,
        meta: &RequestMeta<'_>,
        client_ids: Option<&ClientIds<'_>>,
    ) -> Verdict {
        // Client-sent values under the fields this stage writes were
        // discarded by `normalize` (`owned`).
        let mut edits: Vec<Edit> = Vec::new();
        let Some(source) = self.sources.get(meta.source_id) else {
            return Verdict::Keep(None);
        };
        if let Some(plan) = &source.plan {
            match plan.check(ev.kind, ev.name(), &ev.body) {
                PlanVerdict::Keep(e) => edits = e,
                PlanVerdict::Block(violations) => return Verdict::Block(violations),
            }
        }
        let mut recorded = None;
        if let (Some((filter, _)), Some(ids)) = (&source.dedup, client_ids) {
            let now = u64::try_from(meta.received_at.timestamp()).unwrap_or_default();
            // A poisoned lock only means another thread panicked mid-insert;
            // the filter's state is still usable.
            let mut f = filter.lock().unwrap_or_else(|p| p.into_inner());
            let key = f.key_of_ids(ids);
            if f.check_and_insert(key, now) {
                return Verdict::Drop(REASON_DUPLICATE);
            }
            recorded = Some(Recorded { key });
        }
        // The plan's edits first: enrichment reads what `omit` left.
        edit::apply(&mut ev.body, edits.drain(..));
        if source.enrich.enabled() {
            source.enrich.edits(ev.kind, &ev.body, &mut edits);
            edit::apply(&mut ev.body, edits);
        }
        Verdict::Keep(recorded)
    }

    /// Forgets a recorded `messageId` whose event was not produced (the
    /// client's retry must not be taken for a duplicate).
    pub fn unrecord(&self, source_id: &str, recorded: Recorded) {
        if let Some((filter, _)) = self.sources.get(source_id).and_then(|s| s.dedup.as_ref()) {
            filter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forget(recorded.key);
        }
    }
}

/// Checks what needs the stage's code: every source's tracking plan and
/// the referrer list load. The error names the offending key.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    for (i, s) in config.sources.iter().enumerate() {
        if let Err(e) = TrackingPlan::load(&s.id, &s.quality.plan) {
            return Err(ConfigError::Key {
                key: format!("sources[{i}].quality.plan.file"),
                message: e.to_string(),
            });
        }
    }
    if let Some(path) = &config.quality.referrers_file {
        if let Err(e) = Referrers::load(path) {
            return Err(ConfigError::Key {
                key: "quality.referrers_file".into(),
                message: e.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
