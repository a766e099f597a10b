//! The `[limits]` section: sizes and depth of requests and events, what a
//! request may write (the batch `context` is merged into every event, so a
//! request is charged for its records, not its body), and the clock-skew
//! window.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest single event, in bytes of JSON, with the batch `context`
    /// merged into it. A batch's larger events are rejected on their own
    /// (`event_too_large`); a single-event request gets 413. At most what
    /// the producer can send (`kafka.properties."message.max.bytes"`) less
    /// `server.max_header_bytes` (the `userAgent` the gateway adds) and
    /// [`RECORD_OVERHEAD_BYTES`].
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
    /// Largest batch `context`, in bytes of JSON; over it: 413.
    #[serde(default = "defaults::max_context_bytes")]
    pub max_context_bytes: usize,
    /// Most keys in a batch `context`, counted at every depth; over it: 413.
    #[serde(default = "defaults::max_context_keys")]
    pub max_context_keys: usize,
    /// Most bytes of records one request may write: every event's text,
    /// plus for each event the batch `context`, the `User-Agent` and
    /// [`RECORD_OVERHEAD_BYTES`]; over it: 413. The same figure is charged
    /// against the body budgets (`server.max_buffered_body_bytes`,
    /// `server.max_buffered_body_bytes_per_ip`) and reserved on the spool.
    #[serde(default = "defaults::max_request_output_bytes")]
    pub max_request_output_bytes: u64,
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

/// What a record may add to its event's text beyond the batch `context`
/// and the `User-Agent`: the fields the gateway writes (`messageId`,
/// `receivedAt`, `timestamp`, `context.ip`, privacy and quality fields),
/// the topic, key and headers, and the spool's framing.
pub const RECORD_OVERHEAD_BYTES: u64 = 1024;

/// librdkafka's `message.max.bytes` when `kafka.properties` does not set it.
pub const DEFAULT_MESSAGE_MAX_BYTES: u64 = 1_000_000;

/// The `kafka.properties` key bounding one record the producer sends.
pub const MESSAGE_MAX_BYTES_KEY: &str = "message.max.bytes";

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
    pub fn max_context_bytes() -> usize {
        16 * 1024
    }
    pub fn max_context_keys() -> usize {
        256
    }
    pub fn max_request_output_bytes() -> u64 {
        8 * 1024 * 1024
    }
    pub fn clock_skew_window_secs() -> u64 {
        30 * 24 * 3600
    }
}

default_from_serde!(LimitsConfig);
