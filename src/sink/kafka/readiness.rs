//! The broker side of readiness: broker checks (metadata, topic
//! creation), production paused while every broker connection is down or
//! a check fails and resumed once one passes, readiness gates and reasons,
//! and the gauges published for `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::TopicPartitionList;

use super::client::{client_config, METADATA_TIMEOUT};
use super::{KafkaSink, SinkError};
use crate::metrics;

/// "Every broker connection is down", from librdkafka's error callback to
/// the thread that pauses production ([`KafkaSink::wait_brokers_down`]).
#[derive(Debug, Default)]
pub(super) struct BrokersDown {
    /// Times it was reported; a broker check that started before the latest
    /// report must not resume production.
    generation: AtomicU64,
    pending: Mutex<bool>,
    signal: Condvar,
}

impl BrokersDown {
    pub(super) fn report(&self) {
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

/// One partition of one of the gateway's topics.
type Partition = (String, i32);

#[derive(Debug, Default)]
pub(super) struct Production {
    partitions: Vec<Partition>,
    paused: bool,
}

impl KafkaSink {
    /// Whether the broker was verified at least once since start.
    pub fn broker_seen(&self) -> bool {
        self.broker_seen.load(Ordering::Relaxed)
    }

    /// Broker reachable and its topics verified now.
    pub fn broker_verified(&self) -> bool {
        self.broker_ok.load(Ordering::Relaxed) && self.topics_ok.load(Ordering::Relaxed)
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
