//! Delivery reports: the opaque each message carries (its kind, and for
//! spooled records their id), the producer's client context that turns
//! reports into the accounting ([`DeliveryStats`]) or the spool's
//! outcomes, and the accounting at shutdown ([`Closing`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use super::readiness::BrokersDown;
use super::stats::LibrdkafkaStats;
use super::KafkaSink;
use crate::metrics;
use crate::sink::{Delivery, DeliveryListener, RecordId};

/// Delivery opaque of an accepted event (spool off). The opaque is a
/// `usize`: two low bits of kind, and for spooled records the segment and
/// index above them (no allocation per message).
pub(super) const KIND_EVENT: usize = 0;
/// Delivery opaque of a record written to the invalid topic.
pub(super) const KIND_INVALID: usize = 1;
/// Delivery opaque of a spooled record.
const KIND_SPOOLED: usize = 2;
const KIND_BITS: u32 = 2;
const KIND_MASK: usize = (1 << KIND_BITS) - 1;
/// Bits of the record index in a spooled opaque (the segment id above).
const INDEX_BITS: u32 = 32;

const _: () = assert!(usize::BITS == 64, "the delivery opaque packs 64 bits");

pub(super) fn spooled_opaque(id: RecordId) -> usize {
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
pub(super) fn is_permanent(code: Option<RDKafkaErrorCode>) -> bool {
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
    pub(super) fn take_in_flight(&self) -> bool {
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
    pub(super) fn write_off_in_flight(&self) -> u64 {
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

pub struct DeliveryContext {
    pub(super) stats: Arc<DeliveryStats>,
    pub(super) brokers_down: Arc<BrokersDown>,
    /// The spool, told the outcome of every spooled record.
    pub(super) listener: Arc<OnceLock<Weak<dyn DeliveryListener>>>,
    /// librdkafka's statistics reports, turned into metrics.
    pub(super) librdkafka_stats: LibrdkafkaStats,
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

    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.librdkafka_stats.record(&statistics);
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

impl KafkaSink {
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
}
