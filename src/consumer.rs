//! What the gateway's Kafka consumers share (the opt-out follower and
//! `trackgate tail`): a client context that routes the client's logs to
//! tracing and notes when every broker connection is lost, and serving the
//! events queued before following starts.
//!
//! Why the loss matters: a broker that comes back may have lost the topics
//! (an in-memory broker restarted does), and it answers a fetch of an
//! unknown topic with leader hints that librdkafka 2.12 reads as a null
//! topic name on Fetch v12, crashing the process. A consumer that lost
//! every broker must stop fetching (drop its assignment) and assign again
//! only once the topic is seen in metadata.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

/// Most queued client events served before following starts (the queue
/// holds what happened while the broker was away; it is finite, this only
/// bounds the loop).
const STALE_EVENTS_MAX: usize = 100_000;

/// A consumer's client context: logs go to tracing under `name`, and the
/// loss of every broker connection is noted for [`LossContext::take_lost`].
pub struct LossContext {
    name: &'static str,
    brokers_lost: AtomicBool,
}

impl LossContext {
    pub fn new(name: &'static str) -> LossContext {
        LossContext {
            name,
            brokers_lost: AtomicBool::new(false),
        }
    }

    /// Whether every broker connection was lost since the last call.
    pub fn take_lost(&self) -> bool {
        self.brokers_lost.swap(false, Ordering::Relaxed)
    }
}

impl ClientContext for LossContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let name = self.name;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                tracing::warn!(target: "librdkafka", "{name} {fac}: {log_message}")
            }
            _ => tracing::debug!(target: "librdkafka", "{name} {fac}: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_lost.store(true, Ordering::Relaxed);
        }
        tracing::debug!(target: "librdkafka", "{}: {error}: {reason}", self.name);
    }
}

impl ConsumerContext for LossContext {}

/// Serves the events queued so far (errors from while the broker was away
/// reach the context only when polled) and forgets a loss noted among
/// them: call right before assigning, so that following starts afresh.
pub fn serve_stale_events(consumer: &BaseConsumer<LossContext>) {
    for _ in 0..STALE_EVENTS_MAX {
        if consumer.poll(Duration::ZERO).is_none() {
            break;
        }
    }
    consumer.context().take_lost();
}
