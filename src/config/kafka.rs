//! The `[kafka]` section (producer settings and topic names) and
//! `[routing]`, which picks among those topics.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// librdkafka's largest `statistics.interval.ms` (one day).
pub const MAX_STATISTICS_INTERVAL_MS: u32 = 86_400_000;

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
    /// How long the producer waits to fill a batch (milliseconds).
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
    /// How often librdkafka's statistics are turned into the
    /// `trackgate_kafka_*` metrics (broker round-trip time and request
    /// queues, batch sizes, compression ratio, retries), in milliseconds.
    /// 0: off. librdkafka's `statistics.interval.ms`.
    #[serde(default = "defaults::statistics_interval_ms")]
    pub statistics_interval_ms: u32,
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
pub struct RoutingConfig {
    /// `track` event names routed to the clicks topic.
    #[serde(default = "defaults::click_events")]
    pub click_events: Vec<String>,
}

mod defaults {
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
        // Measured with loadtest/bench.sh (loadtest/PROFILE.md): against 5 ms,
        // 20 ms takes about 15% less gateway CPU per event (fewer, larger
        // produce requests and broker-thread wake-ups); the client's answer
        // never waits for it.
        20
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
    pub fn statistics_interval_ms() -> u32 {
        // Well under a usual 15–30 s scrape interval; one small JSON
        // document per interval.
        10_000
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
    pub fn click_events() -> Vec<String> {
        vec![
            "click".into(),
            "Link Clicked".into(),
            "Element Clicked".into(),
        ]
    }
}

default_from_serde!(KafkaConfig, TopicsConfig, RoutingConfig);

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
