//! The sink against librdkafka's in-process mock cluster: pause while
//! the broker is away, and the shutdown accounting.

use std::time::Instant;

use rdkafka::mocking::MockCluster;

use super::*;

const TOPICS: [&str; 5] = [
    "t.pageviews",
    "t.clicks",
    "t.events",
    "t.identities",
    "t.invalid",
];
const ALL_BROKERS: i32 = -1;
const WAIT: Duration = Duration::from_secs(20);

fn sink(
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    message_timeout_ms: u32,
) -> KafkaSink {
    for t in TOPICS {
        cluster.create_topic(t, 2, 1).expect("mock topic");
    }
    let config: KafkaConfig = toml::from_str(&format!("message_timeout_ms = {message_timeout_ms}"))
        .expect("kafka config");
    KafkaSink::new(&config, &cluster.bootstrap_servers()).expect("sink")
}

fn send(sink: &KafkaSink, n: usize) {
    let headers: [crate::sink::Header<'_>; 2] = [
        (crate::route::HEADER_SOURCE, Some(&b"s"[..])),
        (crate::route::HEADER_TYPE, Some(&b"track"[..])),
    ];
    for i in 0..n {
        let key = i.to_string();
        let record = Record {
            topic: TOPICS[2],
            key: Some(key.as_bytes()),
            headers: headers[..].into(),
            value: b"{}",
        };
        sink.send(&record, RecordKind::Event).expect("enqueued");
    }
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counts(sink: &KafkaSink) -> (u64, u64, u64, u64) {
    let s = sink.stats();
    (
        s.accepted.load(Ordering::Relaxed),
        s.delivered.load(Ordering::Relaxed),
        s.failed.load(Ordering::Relaxed),
        s.in_flight.load(Ordering::Relaxed),
    )
}

#[test]
fn a_report_after_the_write_off_is_not_counted_again() {
    let stats = DeliveryStats::default();
    stats.in_flight.store(3, Ordering::Relaxed);
    assert!(stats.take_in_flight());
    assert_eq!(stats.write_off_in_flight(), 2);
    assert!(!stats.take_in_flight());
    assert_eq!(stats.failed.load(Ordering::Relaxed), 2);
    assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0);
}

#[test]
fn production_stays_paused_from_broker_loss_until_a_broker_check_passes() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let sink = sink(&cluster, 60_000);
    sink.check_broker(&TOPICS).expect("broker check");
    send(&sink, 1);
    wait_for("first delivery", || counts(&sink).1 == 1);

    cluster.broker_down(ALL_BROKERS).expect("down");
    let deadline = Instant::now() + WAIT;
    while !sink.wait_brokers_down(Duration::from_millis(100)) {
        assert!(Instant::now() < deadline, "no all-brokers-down report");
    }
    assert!(sink.production_paused());
    assert!(!sink.is_ready());
    send(&sink, 5);

    // The broker is back, but nothing is sent to it before a check has
    // verified the topics.
    cluster.broker_up(ALL_BROKERS).expect("up");
    std::thread::sleep(Duration::from_millis(
        u64::from(RECONNECT_BACKOFF_MAX_MS) * 3,
    ));
    assert_eq!(counts(&sink), (6, 1, 0, 5));
    assert!(sink.production_paused());

    sink.check_broker(&TOPICS).expect("broker check");
    assert!(!sink.production_paused());
    wait_for("queued deliveries", || counts(&sink).1 == 6);
    assert_eq!(counts(&sink), (6, 6, 0, 0));
}

#[test]
fn close_counts_each_undeliverable_event_failed_exactly_once() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let sink = sink(&cluster, 60_000);
    sink.check_broker(&TOPICS).expect("broker check");
    send(&sink, 3);
    wait_for("deliveries", || counts(&sink).1 == 3);

    cluster.broker_down(ALL_BROKERS).expect("down");
    send(&sink, 7);
    let closing = sink.close(Duration::from_millis(300));
    assert_eq!(closing.accepted, 10);
    assert_eq!(closing.delivered, 3);
    assert_eq!(closing.failed, 7);
    assert!(closing.purged >= 7, "{closing:?}");
    assert_eq!(counts(&sink), (10, 3, 7, 0));
    // Dropping the producer purges again: nothing is left to count.
    let stats = sink.stats.clone();
    drop(sink);
    assert_eq!(stats.failed.load(Ordering::Relaxed), 7);
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 3);
}
