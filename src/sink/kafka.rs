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
//! consumers only, hence the two FFI calls below.
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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::{ClientContext, TopicPartitionList};

use super::{Delivery, DeliveryListener, Record, RecordId, RecordKind, SendRefused, Sink};
use crate::config::KafkaConfig;
use crate::metrics;

/// Delivery opaque of an accepted event (spool off). The opaque is a
/// `usize`: two low bits of kind, and for spooled records the segment and
/// index above them (no allocation per message).
const KIND_EVENT: usize = 0;
/// Delivery opaque of a record written to the invalid topic.
const KIND_INVALID: usize = 1;
/// Delivery opaque of a spooled record.
const KIND_SPOOLED: usize = 2;
const KIND_BITS: u32 = 2;
const KIND_MASK: usize = (1 << KIND_BITS) - 1;
/// Bits of the record index in a spooled opaque (the segment id above).
const INDEX_BITS: u32 = 32;

const _: () = assert!(usize::BITS == 64, "the delivery opaque packs 64 bits");

fn spooled_opaque(id: RecordId) -> usize {
    ((id.segment as usize) << (KIND_BITS + INDEX_BITS))
        | ((id.index as usize) << KIND_BITS)
        | KIND_SPOOLED
}

fn spooled_id(opaque: usize) -> RecordId {
    RecordId {
        segment: (opaque >> (KIND_BITS + INDEX_BITS)) as u64,
        index: ((opaque >> KIND_BITS) & (u32::MAX as usize)) as u32,
    }
}

/// Delivery errors a later attempt cannot fix: the record is given up
/// instead of being retried from the spool forever.
fn is_permanent(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}

/// The base configuration of every Kafka client the gateway creates:
/// brokers, client id, then `kafka.properties` (TLS, SASL…). Callers add
/// their own keys after it.
pub fn client_config(config: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers)
        .set("client.id", super::PRODUCER_VERSION);
    for (k, v) in &config.properties {
        cc.set(k, v);
    }
    cc
}

/// Longest wait for one metadata or admin request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound of librdkafka's reconnect backoff (its default is 10 s): a
/// restarted broker is found within about a second.
const RECONNECT_BACKOFF_MAX_MS: u32 = 1_000;

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

/// Counters shared between the producer's delivery callback and the rest.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Accepted events (enqueued on their raw topic).
    pub accepted: AtomicU64,
    /// Accepted events awaiting a delivery report.
    pub in_flight: AtomicU64,
    /// Bytes (key and value) of accepted events awaiting a delivery report.
    pub in_flight_bytes: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// Failures since the last periodic log line.
    failed_unlogged: AtomicU64,
    /// The error of the latest failed delivery, for the log line.
    last_error: Mutex<Option<String>>,
}

impl DeliveryStats {
    /// Takes one accepted event out of `in_flight`; false when there is none
    /// left to take (it was already written off as failed at shutdown).
    fn take_in_flight(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Counts records written to the spool as accepted (their delivery is
    /// tracked by the spool, see `publish_gauges`).
    pub fn count_spooled(&self, n: u64) {
        self.accepted.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts every accepted event still unreported as failed, once.
    fn write_off_in_flight(&self) -> u64 {
        let n = self.in_flight.swap(0, Ordering::AcqRel);
        if n > 0 {
            self.failed.fetch_add(n, Ordering::Relaxed);
            self.failed_unlogged.fetch_add(n, Ordering::Relaxed);
            metrics::delivery(false, false, n);
        }
        n
    }

    fn record_error(&self, error: &KafkaError) {
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last = Some(error.to_string());
    }
}

/// "Every broker connection is down", from librdkafka's error callback to
/// the thread that pauses production ([`KafkaSink::wait_brokers_down`]).
#[derive(Debug, Default)]
struct BrokersDown {
    /// Times it was reported; a broker check that started before the latest
    /// report must not resume production.
    generation: AtomicU64,
    pending: Mutex<bool>,
    signal: Condvar,
}

impl BrokersDown {
    fn report(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        *pending = true;
        self.signal.notify_all();
    }

    fn wait(&self, timeout: Duration) -> bool {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut pending, _) = self
            .signal
            .wait_timeout_while(pending, timeout, |p| !*p)
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *pending)
    }
}

pub struct DeliveryContext {
    stats: Arc<DeliveryStats>,
    brokers_down: Arc<BrokersDown>,
    /// The spool, told the outcome of every spooled record.
    listener: Arc<OnceLock<Weak<dyn DeliveryListener>>>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", "{fac}: {log_message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", "{fac}: {log_message}"),
            _ => tracing::debug!(target: "librdkafka", "{fac}: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_down.report();
        }
        tracing::debug!(target: "librdkafka", "{error}: {reason}");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let ok = result.is_ok();
        if let Err((e, _)) = result {
            self.stats.record_error(e);
        }
        let kind = opaque & KIND_MASK;
        if kind == KIND_SPOOLED {
            let outcome = match result {
                Ok(_) => Delivery::Acked,
                Err((e, _)) if is_permanent(e.rdkafka_error_code()) => Delivery::Permanent,
                Err(_) => Delivery::Retry,
            };
            if let Some(l) = self.listener.get().and_then(Weak::upgrade) {
                l.delivered(spooled_id(opaque), outcome);
            }
            return;
        }
        if kind == KIND_INVALID {
            metrics::delivery(ok, true, 1);
            if !ok {
                self.stats.failed_unlogged.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let bytes = match result {
            Ok(m) => message_bytes(m),
            Err((_, m)) => message_bytes(m),
        };
        let _ = self
            .stats
            .in_flight_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(bytes))
            });
        if !self.stats.take_in_flight() {
            // Already counted as failed when the shutdown deadline passed.
            tracing::debug!(
                delivered = ok,
                "delivery report after the shutdown write-off"
            );
            return;
        }
        metrics::delivery(ok, false, 1);
        if ok {
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            self.stats.failed_unlogged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn message_bytes(m: &rdkafka::message::BorrowedMessage<'_>) -> u64 {
    use rdkafka::message::Message;
    (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64
}

/// What became of the accepted events, as the producer closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    pub accepted: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Messages purged from the queue because the flush deadline passed
    /// (events and invalid-topic records).
    pub purged: u64,
    /// Accepted events with no report even after the purge, written off as
    /// failed (included in `failed`).
    pub written_off: u64,
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

/// One partition of one of the gateway's topics.
type Partition = (String, i32);

#[derive(Debug, Default)]
struct Production {
    partitions: Vec<Partition>,
    paused: bool,
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

    /// Whether the broker was verified at least once since start.
    pub fn broker_seen(&self) -> bool {
        self.broker_seen.load(Ordering::Relaxed)
    }

    /// Broker reachable and its topics verified now.
    pub fn broker_verified(&self) -> bool {
        self.broker_ok.load(Ordering::Relaxed) && self.topics_ok.load(Ordering::Relaxed)
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

    /// Makes readiness also wait for `ready`; `/readyz` names `reason`
    /// while it is false.
    pub fn add_readiness_gate(&self, reason: &'static str, ready: Arc<AtomicBool>) {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((reason, ready));
    }

    fn closed_gates(&self) -> Vec<&'static str> {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, ok)| !ok.load(Ordering::Acquire))
            .map(|(reason, _)| *reason)
            .collect()
    }

    /// Broker reachable, every topic verified, queue under its high-water
    /// mark, every readiness gate open, not shutting down.
    pub fn is_ready(&self) -> bool {
        self.broker_ok.load(Ordering::Relaxed)
            && self.topics_ok.load(Ordering::Relaxed)
            && !self.production_paused()
            && !self.shutting_down.load(Ordering::Relaxed)
            && !self.over_high_water()
            && self.closed_gates().is_empty()
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Readiness reasons that do not concern the broker (shutdown, gates).
    pub fn local_readiness_reasons(&self) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if self.shutting_down() {
            reasons.push("shutting_down");
        }
        reasons.extend(self.closed_gates());
        reasons
    }

    /// Why the gateway is not ready, for `/readyz`.
    pub fn readiness_reasons(&self) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if self.shutting_down.load(Ordering::Relaxed) {
            reasons.push("shutting_down");
        }
        if !self.broker_ok.load(Ordering::Relaxed) {
            reasons.push("broker_unreachable");
        } else if !self.topics_ok.load(Ordering::Relaxed) {
            reasons.push("topics_not_verified");
        } else if self.production_paused() {
            // Verified, but the resume waits for the next check.
            reasons.push("production_paused");
        }
        if self.over_high_water() {
            reasons.push("producer_queue_over_high_water_mark");
        }
        reasons.extend(self.closed_gates());
        reasons
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Fetches metadata, creates missing topics when allowed, and updates
    /// readiness; pauses production while the check fails and resumes it
    /// once it passes. Blocking: run it off the async workers.
    pub fn check_broker(&self, topics: &[&str]) -> Result<(), SinkError> {
        let generation = self.brokers_down.generation.load(Ordering::Acquire);
        let result = self.check_broker_inner(topics);
        match &result {
            Ok(partitions) => {
                self.broker_ok.store(true, Ordering::Relaxed);
                self.topics_ok.store(true, Ordering::Relaxed);
                self.broker_seen.store(true, Ordering::Relaxed);
                // A "brokers down" report during the check wins: the next
                // check decides.
                if self.brokers_down.generation.load(Ordering::Acquire) == generation {
                    self.resume_production(partitions.clone());
                }
            }
            Err(SinkError::MissingTopic(_)) => {
                self.broker_ok.store(true, Ordering::Relaxed);
                self.topics_ok.store(false, Ordering::Relaxed);
                self.pause_production("topics missing on the broker");
            }
            Err(_) => {
                self.broker_ok.store(false, Ordering::Relaxed);
                self.topics_ok.store(false, Ordering::Relaxed);
                self.pause_production("broker unreachable");
            }
        }
        result.map(|_| ())
    }

    /// Blocks up to `timeout` for librdkafka's report that every broker
    /// connection is down; on one, marks the broker unreachable and pauses
    /// production at once (before the broker can come back without its
    /// topics). Returns true when the broker was considered reachable until
    /// then (librdkafka repeats the report while it keeps failing to
    /// reconnect).
    pub fn wait_brokers_down(&self, timeout: Duration) -> bool {
        if !self.brokers_down.wait(timeout) {
            return false;
        }
        let was_ok = self.broker_ok.swap(false, Ordering::Relaxed);
        self.pause_production("all broker connections down");
        was_ok
    }

    /// Whether production is paused (broker away or topics missing).
    pub fn production_paused(&self) -> bool {
        self.production
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .paused
    }

    fn pause_production(&self, why: &str) {
        let mut p = self
            .production
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if p.paused || p.partitions.is_empty() {
            // Nothing known to pause yet: queued events wait unassigned
            // until the broker and its topics are there.
            return;
        }
        match self.pause_resume(&p.partitions, true) {
            Ok(()) => {
                p.paused = true;
                tracing::warn!(
                    reason = why,
                    queued = self.queue_len(),
                    "production paused until the broker and its topics are verified"
                );
            }
            Err(e) => tracing::error!(error = %e, "could not pause production"),
        }
    }

    fn resume_production(&self, partitions: Vec<Partition>) {
        let mut p = self
            .production
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if p.paused {
            // Resume what was paused, then anything new.
            let mut all = p.partitions.clone();
            for x in &partitions {
                if !all.contains(x) {
                    all.push(x.clone());
                }
            }
            match self.pause_resume(&all, false) {
                Ok(()) => {
                    p.paused = false;
                    tracing::info!(
                        queued = self.queue_len(),
                        "broker and topics verified: production resumed"
                    );
                }
                Err(e) => tracing::error!(error = %e, "could not resume production"),
            }
        }
        p.partitions = partitions;
    }

    fn pause_resume(&self, partitions: &[Partition], pause: bool) -> Result<(), SinkError> {
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        let native = self.producer.client().native_ptr();
        // SAFETY: `native` is the live handle of `self.producer` and `tpl`
        // a valid list; both outlive the calls, which only read them
        // (per-partition results are written into `tpl`). librdkafka
        // documents these two calls for producers as well as consumers.
        let code = unsafe {
            if pause {
                rdkafka::bindings::rd_kafka_pause_partitions(native, tpl.ptr())
            } else {
                rdkafka::bindings::rd_kafka_resume_partitions(native, tpl.ptr())
            }
        };
        match RDKafkaErrorCode::from(code) {
            RDKafkaErrorCode::NoError => Ok(()),
            other => Err(SinkError::PauseResume(other)),
        }
    }

    /// Metadata of the gateway's topics: the missing ones, and the
    /// partitions of the present ones.
    fn topic_metadata(&self, topics: &[&str]) -> Result<(Vec<String>, Vec<Partition>), SinkError> {
        let md = self
            .producer
            .client()
            .fetch_metadata(None, METADATA_TIMEOUT)?;
        let mut missing = Vec::new();
        let mut partitions = Vec::new();
        for topic in topics {
            match md.topics().iter().find(|mt| {
                mt.name() == *topic && mt.error().is_none() && !mt.partitions().is_empty()
            }) {
                Some(mt) => {
                    partitions.extend(mt.partitions().iter().map(|p| (topic.to_string(), p.id())))
                }
                None => missing.push(topic.to_string()),
            }
        }
        Ok((missing, partitions))
    }

    /// The partitions of every topic, once all exist.
    fn check_broker_inner(&self, topics: &[&str]) -> Result<Vec<Partition>, SinkError> {
        let (missing, partitions) = self.topic_metadata(topics)?;
        tracing::debug!(?missing, "metadata fetched");
        if missing.is_empty() {
            return Ok(partitions);
        }
        if !self.config.create_topics {
            return Err(SinkError::MissingTopic(missing.join(",")));
        }
        self.create_topics(&missing)?;
        let (still, partitions) = self.topic_metadata(topics)?;
        match still.first() {
            None => Ok(partitions),
            Some(_) => Err(SinkError::MissingTopic(still.join(","))),
        }
    }

    fn create_topics(&self, names: &[String]) -> Result<(), SinkError> {
        let admin: AdminClient<DefaultClientContext> =
            client_config(&self.config, &self.brokers).create()?;
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| {
                NewTopic::new(
                    n,
                    self.config.partitions,
                    TopicReplication::Fixed(self.config.replication_factor),
                )
            })
            .collect();
        let opts = AdminOptions::new()
            .operation_timeout(Some(METADATA_TIMEOUT))
            .request_timeout(Some(METADATA_TIMEOUT));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SinkError::Kafka(KafkaError::AdminOpCreation(e.to_string())))?;
        let results = rt.block_on(admin.create_topics(&new, &opts))?;
        for r in results {
            match r {
                Ok(name) => {
                    metrics::topic_created();
                    tracing::info!(topic = %name, "created topic");
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::debug!(topic = %name, "topic already exists");
                }
                Err((name, code)) => {
                    tracing::warn!(topic = %name, error = %code, "could not create topic");
                }
            }
        }
        Ok(())
    }

    /// Logs delivery failures since the last call, with counts.
    pub fn log_failures(&self) {
        let n = self.stats.failed_unlogged.swap(0, Ordering::Relaxed);
        if n > 0 {
            let last_error = self
                .stats
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            tracing::error!(
                failed = n,
                total_failed = self.stats.failed.load(Ordering::Relaxed),
                last_error = %last_error,
                "records failed delivery (message timeout or broker error)"
            );
        }
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

    /// Reports gauges for `/metrics`; `spooled` are the spool's
    /// unacknowledged records (in flight too).
    pub fn publish_gauges(&self, spooled: u64) {
        metrics::in_flight(
            self.stats.in_flight.load(Ordering::Relaxed) + spooled,
            self.queue_len(),
        );
        metrics::production_paused(self.production_paused());
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
#[path = "kafka_tests.rs"]
mod tests;
