//! Fault injection with librdkafka's mock cluster, for what a real broker
//! cannot easily be made to do: time out deliveries, fail produce requests,
//! go down and come back on command, answer slowly. The mock cluster runs in
//! the test process and the real gateway binary connects to it as to any
//! broker; the tests assert on HTTP answers, `/metrics`, the gateway's log
//! and the records the cluster holds.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::*;

/// Every broker of the mock cluster.
const ALL_BROKERS: i32 = -1;
const PARTITIONS: i32 = 2;
/// The gateway's default opt-out list topic.
const OPTOUT_TOPIC: &str = "tracking.optouts";
/// How often the gateway checks the broker.
const METADATA_INTERVAL_MS: u64 = 300;
/// Events per posted batch.
const BATCH: u64 = 20;
/// Turns the spool off: ends the `[kafka]` keys given to [`gateway`].
const MEMORY_ONLY: &str = "\n[spool]\nenabled = false\n";

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A one-broker mock cluster holding the gateway's topics.
fn cluster() -> Cluster {
    let cluster = MockCluster::new(1).expect("mock cluster");
    // The mock cluster does not implement CreateTopics: create every topic
    // the gateway needs, the opt-out list included.
    for topic in ALL_TOPICS.into_iter().chain([OPTOUT_TOPIC]) {
        cluster
            .create_topic(topic, PARTITIONS, 1)
            .expect("mock topic");
    }
    cluster
}

/// A gateway on `cluster` with the given `[kafka]` keys, logging at
/// `filter`, ready.
fn gateway(cluster: &Cluster, kafka: &str, filter: &str) -> Gateway {
    let brokers = cluster.bootstrap_servers();
    let kafka = format!("metadata_interval_ms = {METADATA_INTERVAL_MS}\n{kafka}");
    let gw = Gateway::spawn_logged(|l, a| gateway_toml(l, a, &brokers, &kafka), filter);
    gw.wait_ready(Duration::from_secs(30));
    gw
}

fn batch_ids(prefix: &str) -> Vec<String> {
    (0..BATCH).map(|j| format!("{prefix}-{j}")).collect()
}

/// A batch of `BATCH` events with messageIds `{prefix}-{j}`.
fn batch_body(prefix: &str) -> String {
    let events: Vec<String> = batch_ids(prefix)
        .iter()
        .map(|id| {
            format!(r#"{{"type":"track","event":"e","anonymousId":"v-{id}","messageId":"{id}"}}"#)
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, events.join(","))
}

/// Posts one batch with messageIds `{prefix}-{j}`; returns them when the
/// gateway accepted all.
fn post_batch(gw: &Gateway, prefix: &str) -> Vec<String> {
    let ids = batch_ids(prefix);
    let r = gw.post("/v1/batch", &batch_body(prefix));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["accepted"], BATCH);
    ids
}

fn readyz_reasons(gw: &Gateway) -> Option<String> {
    let r = http(gw.admin, "GET", "/readyz", &[], b"").ok()?;
    (r.status == 503).then(|| r.json()["reasons"].to_string())
}

#[test]
fn without_the_spool_a_broker_outage_answers_503_with_retry_after_instead_of_accepting_events_that_would_time_out(
) {
    let cluster = cluster();
    let gw = gateway(
        &cluster,
        &format!("message_timeout_ms = 1500\n{MEMORY_ONLY}"),
        "warn",
    );
    let delivered_ids = post_batch(&gw, "before");
    let before = settle(&gw);
    assert_eq!(before.delivered as u64, BATCH);

    cluster.broker_down(ALL_BROKERS).expect("broker down");
    wait_until("readiness 503", Duration::from_secs(20), || {
        readyz_reasons(&gw).is_some_and(|r| r.contains("broker_unreachable"))
    });
    wait_until("production paused", Duration::from_secs(20), || {
        gw.metric("trackgate_production_paused", &[]) == 1.0
    });
    // Nothing is taken that could only time out: the clients keep their events.
    for _ in 0..3 {
        let r = gw.post("/v1/batch", &batch_body("refused"));
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.header("retry-after").is_some());
    }
    std::thread::sleep(Duration::from_millis(2000));
    let acc = settle(&gw);
    acc.assert_identities();
    assert_eq!((acc.accepted as u64, acc.failed), (BATCH, 0.0));

    // The broker returns: the gateway recovers and delivers new events.
    cluster.broker_up(ALL_BROKERS).expect("broker up");
    gw.wait_ready(SETTLE_TIMEOUT);
    let after_ids = post_batch(&gw, "after");
    let acc = settle(&gw);
    let (peak, _) = memory_kib(gw.pid());
    eprintln!(
        "spool off, broker outage: accepted={} delivered={} failed={} peak_rss_kib={peak}",
        acc.accepted, acc.delivered, acc.failed
    );
    acc.assert_identities();
    assert_eq!(acc.failed, 0.0);
    let records = consume(
        &cluster.bootstrap_servers(),
        &[EVENTS],
        2 * BATCH as usize,
        Duration::from_secs(20),
    );
    let expected: HashSet<String> = delivered_ids.into_iter().chain(after_ids).collect();
    assert_eq!(unique_ids(&records), expected);
}

#[test]
fn transient_produce_errors_are_retried_and_delivered_permanent_ones_counted_failed() {
    let cluster = cluster();
    let gw = gateway(&cluster, "message_timeout_ms = 20000\n", "warn");

    // A permanent error fails the event of the request at once.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let r = gw.post("/v1/track", r#"{"anonymousId":"v","event":"e"}"#);
    assert_eq!(r.status, 200);
    let acc = settle(&gw);
    assert_eq!((acc.delivered, acc.failed), (0.0, 1.0));

    // Transient ones (not enough replicas, storage error, a dropped
    // connection) are retried by the producer until the events are in.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
        ],
    );
    let mut ids = HashSet::new();
    for i in 0..3 {
        ids.extend(post_batch(&gw, &format!("retried{i}")));
    }
    let acc = settle(&gw);
    let records = consume(
        &cluster.bootstrap_servers(),
        &[EVENTS],
        ids.len(),
        Duration::from_secs(20),
    );
    let (peak, _) = memory_kib(gw.pid());
    eprintln!(
        "produce errors: sent={} accepted={} delivered={} failed={} records={} peak_rss_kib={peak}",
        1 + ids.len(),
        acc.accepted,
        acc.delivered,
        acc.failed,
        records.len()
    );
    acc.assert_identities();
    assert_eq!(acc.delivered as usize, ids.len());
    assert_eq!(acc.failed, 1.0);
    // The retried events are in the topic (a transport error may deliver a
    // batch twice: librdkafka cannot know whether the broker wrote it).
    let delivered: HashSet<String> = records
        .iter()
        .filter_map(|r| r.value["messageId"].as_str().map(str::to_string))
        .collect();
    assert_eq!(delivered, ids);
}

#[test]
fn with_the_spool_a_message_timeout_loses_nothing_and_readiness_stays_200() {
    let cluster = cluster();
    let gw = gateway(
        &cluster,
        "message_timeout_ms = 1500\n",
        "warn,trackgate::sink::kafka=error",
    );
    let mut ids: HashSet<String> = post_batch(&gw, "before").into_iter().collect();
    settle(&gw);

    cluster.broker_down(ALL_BROKERS).expect("broker down");
    // Readiness stays 200 and says why the events wait.
    wait_until("readiness degraded", Duration::from_secs(20), || {
        http(gw.admin, "GET", "/readyz", &[], b"")
            .map(|r| {
                r.status == 200
                    && r.json()["degraded"]
                        .to_string()
                        .contains("broker_unreachable")
            })
            .unwrap_or(false)
    });
    for i in 0..3 {
        let batch = post_batch(&gw, &format!("kept{i}"));
        assert_eq!(
            batch.len() as u64,
            BATCH,
            "accepted while the broker is away"
        );
        ids.extend(batch);
    }
    // Longer than the message timeout: they wait on the spool (records that
    // were already in the producer come back to it when they time out).
    std::thread::sleep(Duration::from_millis(3000));
    assert!(gw.metric("trackgate_spool_records", &[]) >= (3 * BATCH) as f64);
    assert_eq!(
        gw.metric("trackgate_deliveries_total", &[("result", "failed")]),
        0.0
    );

    cluster.broker_up(ALL_BROKERS).expect("broker up");
    let acc = settle(&gw);
    let records = consume(
        &cluster.bootstrap_servers(),
        &[EVENTS],
        ids.len(),
        Duration::from_secs(30),
    );
    let (peak, _) = memory_kib(gw.pid());
    eprintln!(
        "spool, message timeout: sent={} accepted={} delivered={} failed={} records={} retries={} peak_rss_kib={peak}",
        ids.len(),
        acc.accepted,
        acc.delivered,
        acc.failed,
        records.len(),
        gw.metric("trackgate_spool_retries_total", &[]),
    );
    acc.assert_identities();
    assert_eq!(acc.failed, 0.0);
    assert_eq!(unique_ids(&records), ids);
    assert_eq!(gw.metric("trackgate_spool_records", &[]), 0.0);
}

/// Broker round-trip time in the slow-broker test; also the sanity bound
/// of one request (a handler that waited for the broker would take longer).
const SLOW_BROKER_RTT: Duration = Duration::from_secs(3);

#[test]
fn a_slow_broker_does_not_hold_up_the_clients() {
    let cluster = cluster();
    // One produce request in flight (the default, for per-visitor order)
    // would wait behind the gateway's 300 ms metadata checks, each taking a
    // full round trip on this broker: the test is about answering clients.
    let gw = gateway(
        &cluster,
        "message_timeout_ms = 60000\nmax_in_flight_requests = 5\n",
        "warn",
    );
    cluster
        .broker_round_trip_time(ALL_BROKERS, SLOW_BROKER_RTT)
        .expect("rtt");

    // Each request is answered while its events still await the broker.
    let mut ids = HashSet::new();
    let mut pending_at_answer = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        ids.extend(post_batch(&gw, &format!("slow{i}")));
        slowest = slowest.max(started.elapsed());
        let a = Accounting::read(&gw);
        pending_at_answer.push(a.accepted - a.delivered);
        assert!(
            a.delivered < a.accepted,
            "answered only after delivery? {a:?}"
        );
    }
    let acc = settle(&gw);
    let (peak, _) = memory_kib(gw.pid());
    eprintln!(
        "slow broker (rtt {SLOW_BROKER_RTT:?}): sent={} accepted={} delivered={} failed={} \
         pending_at_each_answer={pending_at_answer:?} slowest_request={slowest:?} peak_rss_kib={peak}",
        ids.len(),
        acc.accepted,
        acc.delivered,
        acc.failed
    );
    assert!(slowest < SLOW_BROKER_RTT, "a request took {slowest:?}");
    acc.assert_identities();
    assert_eq!((acc.delivered as usize, acc.failed), (ids.len(), 0.0));
    // Read back at full speed.
    cluster
        .broker_round_trip_time(ALL_BROKERS, Duration::ZERO)
        .expect("rtt");
    let records = consume(
        &cluster.bootstrap_servers(),
        &[EVENTS],
        ids.len(),
        Duration::from_secs(30),
    );
    assert_eq!(unique_ids(&records), ids);
}
