//! The Kafka sink: one rdkafka producer for the whole process, delivery
//! reports feeding the accounting metrics, topic bootstrap and the broker
//! side of readiness.
//!
//! The client is answered once its events are in the producer's local
//! queue; the broker's acknowledgement arrives later as a delivery report
//! (`delivered` or `failed`), so no event leaves the accounting silently.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::config::KafkaConfig;
use crate::metrics;

/// Delivery opaque of an accepted event.
const KIND_EVENT: usize = 0;
/// Delivery opaque of a record written to the invalid topic.
const KIND_INVALID: usize = 1;

/// Longest wait for one metadata or admin request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("the producer queue is full")]
    QueueFull,
    #[error("kafka client error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} does not exist on the broker")]
    MissingTopic(String),
}

/// Which kind of record a send is, for the accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An accepted event on its raw topic.
    Event,
    /// A rejected event on the invalid topic.
    Invalid,
}

/// Counters shared between the producer's delivery callback and the rest.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Accepted events awaiting a delivery report.
    pub in_flight: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// Failures since the last periodic log line.
    failed_unlogged: AtomicU64,
}

pub struct DeliveryContext {
    stats: Arc<DeliveryStats>,
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
        tracing::debug!(target: "librdkafka", "{error}: {reason}");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, kind: usize) {
        let ok = result.is_ok();
        let invalid = kind == KIND_INVALID;
        metrics::delivery(ok, invalid, 1);
        if !invalid {
            self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            if ok {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                self.stats.failed_unlogged.fetch_add(1, Ordering::Relaxed);
            }
        } else if !ok {
            self.stats.failed_unlogged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Headers of one record.
pub struct RecordHeaders<'a> {
    pub source: &'a str,
    pub event_type: &'a str,
    pub reason: Option<&'a str>,
}

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    stats: Arc<DeliveryStats>,
    config: KafkaConfig,
    brokers: String,
    high_water: u64,
    broker_ok: AtomicBool,
    topics_ok: AtomicBool,
    shutting_down: AtomicBool,
    /// Other conditions readiness waits for (e.g. the opt-out list loaded),
    /// each with the reason `/readyz` names while its flag is false.
    gates: Mutex<Vec<(&'static str, Arc<AtomicBool>)>>,
}

impl KafkaSink {
    /// Creates the producer. Does not contact the broker: the gateway starts
    /// (not ready) when the broker is away and becomes ready when it appears.
    pub fn new(config: &KafkaConfig, brokers: &str) -> Result<KafkaSink, SinkError> {
        let stats = Arc::new(DeliveryStats::default());
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", brokers)
            .set("client.id", crate::route::PRODUCER_VERSION)
            .set("acks", &config.acks)
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
            .set("topic.metadata.refresh.interval.ms", "10000");
        for (k, v) in &config.properties {
            cc.set(k, v);
        }
        let producer: ThreadedProducer<DeliveryContext> =
            cc.create_with_context(DeliveryContext {
                stats: stats.clone(),
            })?;
        let high_water =
            ((config.queue_max_messages as f64) * config.high_water_mark).max(1.0) as u64;
        Ok(KafkaSink {
            producer,
            stats,
            config: config.clone(),
            brokers: brokers.to_string(),
            high_water,
            broker_ok: AtomicBool::new(false),
            topics_ok: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
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

    /// Enqueues one record; never waits for the broker.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &RecordHeaders<'_>,
        kind: RecordKind,
    ) -> Result<(), SinkError> {
        let mut h = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: crate::route::HEADER_SOURCE,
                value: Some(headers.source),
            })
            .insert(Header {
                key: crate::route::HEADER_TYPE,
                value: Some(headers.event_type),
            })
            .insert(Header {
                key: crate::route::HEADER_PRODUCER,
                value: Some(crate::route::PRODUCER_VERSION),
            });
        if let Some(reason) = headers.reason {
            h = h.insert(Header {
                key: crate::route::HEADER_REASON,
                value: Some(reason),
            });
        }
        let opaque = match kind {
            RecordKind::Event => KIND_EVENT,
            RecordKind::Invalid => KIND_INVALID,
        };
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, opaque)
                .payload(payload)
                .headers(h);
        if let Some(k) = key {
            record = record.key(k);
        }
        if kind == RecordKind::Event {
            // Counted before the send so a fast delivery report can't underflow.
            self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        match self.producer.send(record) {
            Ok(()) => Ok(()),
            Err((e, _)) => {
                if kind == RecordKind::Event {
                    self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
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
            && !self.shutting_down.load(Ordering::Relaxed)
            && !self.over_high_water()
            && self.closed_gates().is_empty()
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
        }
        if self.over_high_water() {
            reasons.push("producer_queue_over_high_water_mark");
        }
        reasons.extend(self.closed_gates());
        reasons
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        metrics::ready(false);
    }

    /// Fetches metadata, creates missing topics when allowed, and updates
    /// readiness. Blocking: run it off the async workers.
    pub fn check_broker(&self, topics: &[&str]) -> Result<(), SinkError> {
        let result = self.check_broker_inner(topics);
        match &result {
            Ok(()) => {
                self.broker_ok.store(true, Ordering::Relaxed);
                self.topics_ok.store(true, Ordering::Relaxed);
            }
            Err(SinkError::MissingTopic(_)) => {
                self.broker_ok.store(true, Ordering::Relaxed);
                self.topics_ok.store(false, Ordering::Relaxed);
            }
            Err(_) => {
                self.broker_ok.store(false, Ordering::Relaxed);
                self.topics_ok.store(false, Ordering::Relaxed);
            }
        }
        metrics::ready(self.is_ready());
        result
    }

    fn missing_topics(&self, topics: &[&str]) -> Result<Vec<String>, SinkError> {
        let md = self
            .producer
            .client()
            .fetch_metadata(None, METADATA_TIMEOUT)?;
        let missing = topics
            .iter()
            .filter(|t| {
                !md.topics().iter().any(|mt| {
                    mt.name() == **t && mt.error().is_none() && !mt.partitions().is_empty()
                })
            })
            .map(|t| t.to_string())
            .collect();
        Ok(missing)
    }

    fn check_broker_inner(&self, topics: &[&str]) -> Result<(), SinkError> {
        let missing = self.missing_topics(topics)?;
        tracing::debug!(?missing, "metadata fetched");
        if missing.is_empty() {
            return Ok(());
        }
        if !self.config.create_topics {
            return Err(SinkError::MissingTopic(missing.join(",")));
        }
        self.create_topics(&missing)?;
        let still = self.missing_topics(topics)?;
        match still.first() {
            None => Ok(()),
            Some(_) => Err(SinkError::MissingTopic(still.join(","))),
        }
    }

    fn create_topics(&self, names: &[String]) -> Result<(), SinkError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()?;
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
            tracing::error!(
                failed = n,
                total_failed = self.stats.failed.load(Ordering::Relaxed),
                "records failed delivery (message timeout or broker error)"
            );
        }
    }

    /// Flushes the producer for at most `timeout`; returns what is left
    /// undelivered (those are then counted as failed by their reports or by
    /// the caller).
    pub fn flush(&self, timeout: Duration) -> u64 {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
        self.queue_len()
    }

    /// Reports gauges for `/metrics`.
    pub fn publish_gauges(&self) {
        metrics::in_flight(
            self.stats.in_flight.load(Ordering::Relaxed),
            self.queue_len(),
        );
        metrics::ready(self.is_ready());
    }
}
