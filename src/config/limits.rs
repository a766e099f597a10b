//! The `[limits]` section: sizes and depth of requests and events, and the
//! clock-skew window.

use serde::Deserialize;

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

mod defaults {
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
}

default_from_serde!(LimitsConfig);
