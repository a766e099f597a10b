//! The privacy stage: runs on every valid, normalized event before routing.
//!
//! Order of operations inside the stage (see README, "Privacy"): opt-out
//! decision → GeoIP lookup on the raw client IP → IP anonymization → PII
//! scrubbing. Nothing later in the pipeline sees data this stage removed.
//!
//! This module is the seam the gateway core calls; its rules are configured
//! per source.

pub mod scrub;

use crate::event::Event;
use crate::normalize::RequestMeta;

/// What the privacy stage decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Produce the (possibly modified) event.
    Keep,
    /// Drop the event by policy; the reason is a metric label.
    Drop(&'static str),
}

/// The privacy stage for all sources.
#[derive(Debug, Default)]
pub struct PrivacyStage {}

impl PrivacyStage {
    pub fn new() -> PrivacyStage {
        PrivacyStage {}
    }

    /// Applies the source's privacy rules to one event, in place.
    pub fn apply(&self, _ev: &mut Event, _meta: &RequestMeta<'_>) -> Verdict {
        Verdict::Keep
    }
}
