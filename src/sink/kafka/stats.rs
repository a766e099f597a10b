//! librdkafka's statistics as a few named metrics.
//!
//! Every `kafka.statistics_interval_ms` librdkafka hands the producer's
//! context a JSON document of several hundred fields (parsed by rdkafka
//! into [`Statistics`]). The gateway keeps the handful an operator needs
//! to tell a slow broker from a slow gateway, and nothing else:
//!
//! - per broker (brokers learned from metadata; the bootstrap and internal
//!   pseudo-brokers are skipped): whether its connection is up, the
//!   round-trip time (average and 99th percentile over the interval, kept
//!   from the last interval that had an answer), the
//!   requests waiting to be sent (`outbuf`) and waiting for an answer
//!   (`waitresp`), and the cumulative retries and request timeouts;
//! - per topic: the average batch of the interval in messages and in bytes
//!   on the wire, and the compression ratio (key and value bytes handed to
//!   librdkafka over batch bytes sent, over the interval).
//!
//! A topic with no batch in an interval keeps its last batch and ratio
//! values (an idle topic is not a topic whose batches shrank to nothing).
//! Label values are broker names and topic names: bounded by the cluster
//! and the configuration, never by clients.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rdkafka::statistics::{Broker, Statistics, Topic};

use crate::metrics::{self, KafkaBrokerStats, KafkaTopicStats};

/// librdkafka reports latencies in microseconds.
const MICROS_PER_SECOND: f64 = 1_000_000.0;
/// `source` of the brokers learned from cluster metadata (the others are
/// `configured` bootstrap entries and the `internal` pseudo-broker).
const SOURCE_LEARNED: &str = "learned";
/// Broker connection state when it is usable.
const STATE_UP: &str = "UP";

/// What the statistics callback remembers between two reports.
#[derive(Debug, Default)]
pub struct LibrdkafkaStats {
    /// Per topic: key and value bytes transmitted so far (the sum of its
    /// partitions' `txbytes`), to turn the cumulative count into the
    /// interval's.
    topic_bytes: Mutex<HashMap<String, u64>>,
}

impl LibrdkafkaStats {
    /// Publishes one statistics report.
    pub fn record(&self, stats: &Statistics) {
        for broker in stats.brokers.values() {
            if broker.source == SOURCE_LEARNED {
                metrics::kafka_broker(&broker_stats(broker));
            }
        }
        let mut previous = self
            .topic_bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for topic in stats.topics.values() {
            let total = payload_bytes(topic);
            let before = previous.insert(topic.topic.clone(), total).unwrap_or(0);
            if let Some(t) = topic_stats(topic, total.saturating_sub(before)) {
                metrics::kafka_topic(&t);
            }
        }
    }
}

fn broker_stats(b: &Broker) -> KafkaBrokerStats<'_> {
    // No request answered in the interval: no round-trip time (not 0 s).
    let rtt = b.rtt.as_ref().filter(|w| w.cnt > 0);
    KafkaBrokerStats {
        broker: &b.name,
        up: b.state == STATE_UP,
        rtt_avg_seconds: rtt.map(|w| w.avg as f64 / MICROS_PER_SECOND),
        rtt_p99_seconds: rtt.map(|w| w.p99 as f64 / MICROS_PER_SECOND),
        outbuf_requests: b.outbuf_cnt.max(0) as u64,
        waitresp_requests: b.waitresp_cnt.max(0) as u64,
        retries: b.txretries,
        request_timeouts: b.req_timeouts,
    }
}

/// Key and value bytes of the topic's messages transmitted so far.
fn payload_bytes(topic: &Topic) -> u64 {
    topic.partitions.values().map(|p| p.txbytes).sum()
}

/// The topic's batch figures for an interval that sent `payload_bytes`;
/// `None` when it sent no batch.
fn topic_stats(topic: &Topic, payload_bytes: u64) -> Option<KafkaTopicStats<'_>> {
    let (batches, wire_bytes) = (topic.batchsize.cnt, topic.batchsize.sum);
    if batches <= 0 || wire_bytes <= 0 {
        return None;
    }
    Some(KafkaTopicStats {
        topic: &topic.topic,
        batch_messages: topic.batchcnt.avg.max(0) as f64,
        batch_bytes: topic.batchsize.avg.max(0) as f64,
        compression_ratio: payload_bytes as f64 / wire_bytes as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use rdkafka::statistics::{Partition, Window};

    /// A report shaped like librdkafka's: a bootstrap and a learned broker,
    /// one topic with two batches in the interval, `txbytes` sent so far.
    fn report(txbytes: u64) -> Statistics {
        let bootstrap = Broker {
            name: "127.0.0.1:9092/bootstrap".into(),
            source: "configured".into(),
            state: "INIT".into(),
            nodeid: -1,
            ..Broker::default()
        };
        let learned = Broker {
            name: "127.0.0.1:9092/1".into(),
            source: SOURCE_LEARNED.into(),
            state: STATE_UP.into(),
            nodeid: 1,
            outbuf_cnt: 2,
            waitresp_cnt: 1,
            txretries: 3,
            req_timeouts: 4,
            rtt: Some(Window {
                avg: 1500,
                p99: 4000,
                cnt: 10,
                ..Window::default()
            }),
            ..Broker::default()
        };
        let partition = |partition, txbytes| Partition {
            partition,
            txbytes,
            ..Partition::default()
        };
        let topic = Topic {
            topic: "t".into(),
            batchsize: Window {
                avg: 500,
                sum: 1000,
                cnt: 2,
                ..Window::default()
            },
            batchcnt: Window {
                avg: 10,
                sum: 20,
                cnt: 2,
                ..Window::default()
            },
            partitions: [(0, partition(0, txbytes)), (-1, partition(-1, 0))].into(),
            ..Topic::default()
        };
        Statistics {
            brokers: [bootstrap, learned]
                .into_iter()
                .map(|b| (b.name.clone(), b))
                .collect(),
            topics: [("t".to_string(), topic)].into(),
            ..Statistics::default()
        }
    }

    #[test]
    fn learned_brokers_only_with_latencies_in_seconds() {
        let stats = report(0);
        let learned: Vec<_> = stats
            .brokers
            .values()
            .filter(|b| b.source == SOURCE_LEARNED)
            .map(broker_stats)
            .collect();
        assert_eq!(learned.len(), 1);
        let b = &learned[0];
        assert_eq!(b.broker, "127.0.0.1:9092/1");
        assert!(b.up);
        assert_eq!(b.rtt_avg_seconds, Some(0.0015));
        assert_eq!(b.rtt_p99_seconds, Some(0.004));
        assert_eq!((b.outbuf_requests, b.waitresp_requests), (2, 1));
        assert_eq!((b.retries, b.request_timeouts), (3, 4));
    }

    #[test]
    fn an_interval_without_answers_has_no_round_trip_time() {
        let mut stats = report(0);
        let b = stats
            .brokers
            .get_mut("127.0.0.1:9092/1")
            .expect("learned broker");
        b.rtt.as_mut().expect("rtt window").cnt = 0;
        let figures = broker_stats(b);
        assert_eq!(
            (figures.rtt_avg_seconds, figures.rtt_p99_seconds),
            (None, None)
        );
    }

    #[test]
    fn compression_ratio_is_the_intervals_payload_over_wire_bytes() {
        let stats = report(3000);
        let topic = &stats.topics["t"];
        let t = topic_stats(topic, payload_bytes(topic)).expect("batches were sent");
        assert_eq!(t.batch_messages, 10.0);
        assert_eq!(t.batch_bytes, 500.0);
        assert!((t.compression_ratio - 3.0).abs() < 1e-9);
    }

    #[test]
    fn an_idle_topic_publishes_nothing() {
        let mut stats = report(0);
        let topic = stats.topics.get_mut("t").expect("topic t");
        topic.batchsize.cnt = 0;
        topic.batchsize.sum = 0;
        assert!(topic_stats(topic, 0).is_none());
    }

    #[test]
    fn the_interval_bytes_come_from_the_cumulative_count() {
        let s = LibrdkafkaStats::default();
        s.record(&report(3000));
        s.record(&report(5000));
        let previous = s.topic_bytes.lock().expect("lock");
        assert_eq!(previous["t"], 5000);
    }
}
