//! The Kafka sink: one rdkafka producer for the whole process, delivery
//! reports feeding the accounting metrics, topic bootstrap and the broker
//! side of readiness.
//!
//! The client is answered once its events are in the producer's local
//! queue; the broker's acknowledgement arrives later as a delivery report
//! (`delivered` or `failed`), so no event leaves the accounting silently.
//!
//! Broker outages. While the broker is away, accepted events wait in the
//! bounded local queue (librdkafka retries them) until the broker returns or
//! `kafka.message_timeout_ms` passes (then they count as failed). A broker
//! that comes back may have lost its topics (an in-memory broker does; so
//! does a cluster whose topics were deleted), and some brokers then accept
//! produce requests for the missing topic and drop the records, or fail
//! them at once. So production is *paused* on the topics' partitions the
//! moment every broker connection is reported down (and whenever a broker
//! check fails), and resumed only once a check has found the broker
//! reachable and every topic present again (re-created when
//! `kafka.create_topics`). The pause uses librdkafka's
//! `rd_kafka_pause_partitions`, which the Rust binding exposes for
//! consumers only, hence the two FFI calls in `readiness.rs`.
//!
//! Shutdown. [`KafkaSink::close`] flushes for `kafka.flush_timeout_ms`, then
//! purges what is left so that librdkafka reports it as failed through the
//! ordinary delivery path; anything still unreported after that is written
//! off as failed once, and late reports for it are ignored, so every
//! accepted event is counted exactly once. Records sent from the spool are
//! not written off: a failed or purged one stays on the spool (see `spool`).
//! After `close` every send is refused, so a request still running cannot
//! enqueue behind the final accounting.
//!
//! With the spool, the producer is one [`Sink`]: failed deliveries of spooled
//! records go back to the spool's [`DeliveryListener`] as `Retry` (message
//! timeout, broker errors) or `Permanent` (a record the broker can never
//! take), never counted failed while they can still be delivered.
//!
//! Order per visitor. `max.in.flight.requests.per.connection` is
//! `kafka.max_in_flight_requests` (default 1): with `acks=1` and idempotence
//! off, a retried batch can otherwise land after a later one of the same
//! partition. The cost was measured with `loadtest/bench.sh` (README).
//!
//! Every Kafka client of the gateway (this producer, the admin client that
//! creates topics, the opt-out follower and writer) starts from
//! [`client_config`], so `kafka.properties` (TLS, SASL…) reach all of them.
//!
//! Files: `client.rs` (the base client configuration), `delivery.rs`
//! (delivery reports and their accounting), `readiness.rs` (broker checks,
//! production pause and resume, readiness), `stats.rs` (librdkafka's
//! statistics as `trackgate_kafka_*` metrics), this file (the producer and
//! its [`Sink`] implementation).

mod client;
mod delivery;
mod readiness;
mod stats;

pub use client::client_config;
pub use delivery::{Closing, DeliveryContext, DeliveryStats};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};

use super::{DeliveryListener, Record, RecordId, RecordKind, SendRefused, Sink};
use crate::config::KafkaConfig;
use client::RECONNECT_BACKOFF_MAX_MS;
use delivery::{is_permanent, spooled_opaque, KIND_EVENT, KIND_INVALID};
use readiness::{BrokersDown, Production};
use stats::LibrdkafkaStats;

/// After purging at shutdown, how long librdkafka gets to hand the purged
/// messages back as failed delivery reports.
const PURGE_REPORT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("the producer queue is full")]
    QueueFull,
    #[error("kafka client error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} does not exist on the broker")]
    MissingTopic(String),
    #[error("cannot pause or resume production: {0}")]
    PauseResume(RDKafkaErrorCode),
    #[error("the producer is closed")]
    Closed,
}

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    stats: Arc<DeliveryStats>,
    brokers_down: Arc<BrokersDown>,
    config: KafkaConfig,
    brokers: String,
    high_water: u64,
    /// `queue_max_kbytes` × `high_water_mark`, in bytes.
    high_water_bytes: u64,
    /// The broker was verified at least once since start.
    broker_seen: AtomicBool,
    /// After [`KafkaSink::close`]: every send is refused.
    closed: AtomicBool,
    listener: Arc<OnceLock<Weak<dyn DeliveryListener>>>,
    broker_ok: AtomicBool,
    topics_ok: AtomicBool,
    shutting_down: AtomicBool,
    /// Other conditions readiness waits for (e.g. the opt-out list loaded),
    /// each with the reason `/readyz` names while its flag is false.
    gates: Mutex<Vec<(&'static str, Arc<AtomicBool>)>>,
    /// Partitions of the gateway's topics at the last good broker check, and
    /// whether production on them is paused. One lock: pause and resume
    /// never interleave.
    production: Mutex<Production>,
}

impl KafkaSink {
    /// Creates the producer. Does not contact the broker: the gateway starts
    /// (not ready) when the broker is away and becomes ready when it appears.
    pub fn new(config: &KafkaConfig, brokers: &str) -> Result<KafkaSink, SinkError> {
        let stats = Arc::new(DeliveryStats::default());
        let brokers_down = Arc::new(BrokersDown::default());
        let listener = Arc::new(OnceLock::new());
        let mut cc = client_config(config, brokers);
        cc.set("acks", &config.acks)
            .set("enable.idempotence", "false")
            .set("linger.ms", config.linger_ms.to_string())
            .set("compression.type", config.compression.as_librdkafka())
            .set(
                "queue.buffering.max.messages",
                config.queue_max_messages.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                config.queue_max_kbytes.to_string(),
            )
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("partitioner", "murmur2_random")
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set(
                "reconnect.backoff.max.ms",
                RECONNECT_BACKOFF_MAX_MS.to_string(),
            )
            // A topic the broker reports missing (lost in a restart, not yet
            // re-created by the broker monitor) must not fail the queued
            // events before their own message timeout would.
            .set(
                "topic.metadata.propagation.max.ms",
                config.message_timeout_ms.to_string(),
            )
            .set(
                "max.in.flight.requests.per.connection",
                config.max_in_flight_requests.to_string(),
            )
            .set(
                "statistics.interval.ms",
                config.statistics_interval_ms.to_string(),
            );
        // `kafka.properties` has the last word.
        for (k, v) in &config.properties {
            cc.set(k, v);
        }
        let producer: ThreadedProducer<DeliveryContext> =
            cc.create_with_context(DeliveryContext {
                stats: stats.clone(),
                brokers_down: brokers_down.clone(),
                listener: listener.clone(),
                librdkafka_stats: LibrdkafkaStats::default(),
            })?;
        let high_water =
            ((config.queue_max_messages as f64) * config.high_water_mark).max(1.0) as u64;
        let high_water_bytes = ((f64::from(config.queue_max_kbytes) * 1024.0)
            * config.high_water_mark)
            .max(1.0) as u64;
        Ok(KafkaSink {
            producer,
            high_water_bytes,
            broker_seen: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            listener,
            stats,
            brokers_down,
            config: config.clone(),
            brokers: brokers.to_string(),
            high_water,
            broker_ok: AtomicBool::new(false),
            topics_ok: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            production: Mutex::new(Production::default()),
            gates: Mutex::new(Vec::new()),
        })
    }

    pub fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// Messages in the local queue or awaiting a broker answer.
    pub fn queue_len(&self) -> u64 {
        self.producer.in_flight_count().max(0) as u64
    }

    /// True when the queue is above its high-water mark: new requests get 503.
    pub fn over_high_water(&self) -> bool {
        self.queue_len() >= self.high_water
    }

    /// Room left under the high-water mark, in messages.
    pub fn headroom(&self) -> u64 {
        self.high_water.saturating_sub(self.queue_len())
    }

    /// Room left under the high-water mark in bytes (events only; invalid
    /// records are small and bounded by `limits.invalid_payload_bytes`).
    pub fn byte_headroom(&self) -> u64 {
        self.high_water_bytes
            .saturating_sub(self.stats.in_flight_bytes.load(Ordering::Relaxed))
    }

    /// Tells the spool the outcome of every record sent with
    /// [`Sink::send_spooled`].
    pub fn set_listener(&self, listener: Weak<dyn DeliveryListener>) {
        let _ = self.listener.set(listener);
    }

    fn owned_headers<'a>(
        headers: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(4);
        for (key, value) in headers {
            h = h.insert(Header { key, value });
        }
        h
    }

    /// Shutdown: flushes for at most `timeout`; then purges what is left so
    /// its reports arrive as failures, and writes off (as failed, once)
    /// anything still unreported. Blocking.
    pub fn close(&self, timeout: Duration) -> Closing {
        self.closed.store(true, Ordering::Release);
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
        let purged = self.queue_len();
        if purged > 0 {
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            if let Err(e) = self.producer.flush(PURGE_REPORT_TIMEOUT) {
                tracing::warn!(error = %e, "purged messages were not all reported");
            }
        }
        let written_off = self.stats.write_off_in_flight();
        Closing {
            accepted: self.stats.accepted.load(Ordering::Relaxed),
            delivered: self.stats.delivered.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            purged,
            written_off,
        }
    }
}

impl Sink for KafkaSink {
    /// Enqueues one record; never waits for the broker.
    fn send(&self, record: &Record<'_>, kind: RecordKind) -> Result<(), SinkError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SinkError::Closed);
        }
        let opaque = match kind {
            RecordKind::Event => KIND_EVENT,
            RecordKind::Invalid => KIND_INVALID,
        };
        let mut r: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(record.topic, opaque)
                .payload(record.value)
                .headers(Self::owned_headers(record.headers.iter().copied()));
        if let Some(k) = record.key {
            r = r.key(k);
        }
        let bytes = (record.value.len() + record.key.map_or(0, <[u8]>::len)) as u64;
        if kind == RecordKind::Event {
            // Counted before the send so a fast delivery report can't underflow.
            self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
            self.stats
                .in_flight_bytes
                .fetch_add(bytes, Ordering::Relaxed);
        }
        match self.producer.send(r) {
            Ok(()) => {
                if kind == RecordKind::Event {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err((e, _)) => {
                if kind == RecordKind::Event {
                    // Never below zero: a shutdown write-off may have taken it.
                    self.stats.take_in_flight();
                    let _ = self.stats.in_flight_bytes.fetch_update(
                        Ordering::AcqRel,
                        Ordering::Acquire,
                        |n| Some(n.saturating_sub(bytes)),
                    );
                }
                match e {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                        Err(SinkError::QueueFull)
                    }
                    other => Err(SinkError::Kafka(other)),
                }
            }
        }
    }

    fn has_room(&self, records: u64, bytes: u64) -> bool {
        self.headroom() >= records && self.byte_headroom() >= bytes && !self.production_paused()
    }

    fn count_spooled(&self, n: u64) {
        self.stats.count_spooled(n);
    }

    fn send_spooled(&self, record: &Record<'_>, id: RecordId) -> Result<(), SendRefused> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendRefused::Full);
        }
        let headers = Self::owned_headers(record.headers.iter().copied());
        let mut r: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(record.topic, spooled_opaque(id))
                .payload(record.value)
                .headers(headers);
        if let Some(k) = record.key {
            r = r.key(k);
        }
        match self.producer.send(r) {
            Ok(()) => Ok(()),
            Err((e, _)) if is_permanent(e.rdkafka_error_code()) => {
                tracing::error!(error = %e, topic = record.topic, "a spooled record can never be produced");
                Err(SendRefused::Permanent)
            }
            // Queue full, or anything else a later attempt may get past.
            Err(_) => Err(SendRefused::Full),
        }
    }

    fn can_replay(&self) -> bool {
        self.broker_verified() && !self.production_paused() && !self.over_high_water()
    }
}

#[cfg(test)]
mod tests;
