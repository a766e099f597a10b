//! Reliability against the real Tansu broker, which these tests stop and
//! start: a broker that is not there yet, a broker lost and restarted under
//! load, SIGTERM under load and SIGTERM with the broker gone. These run with
//! the spool off (`spool.enabled = false`: the producer's memory queue is the
//! only buffer); `tests/spool_durability.rs` covers the spool. Every test
//! checks the accounting identities on `/metrics` and what the broker
//! actually holds, and prints its figures (`--nocapture` shows them).

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::load::*;
use support::*;

/// Turns the spool off. Ends the `[kafka]` keys given to `gateway_toml`
/// (a table of its own, so it comes last).
const MEMORY_ONLY: &str = "\n[spool]\nenabled = false\n";

const SMALL_QUEUE_MESSAGES: u64 = 2000;
const SMALL_QUEUE_KBYTES: u64 = 2048;
const SMALL_QUEUE_HIGH_WATER: f64 = 0.9;
/// Generous ratio of the memory a full producer queue may add to the
/// configured queue bytes (librdkafka's per-message overhead, allocator).
const QUEUE_MEMORY_FACTOR: u64 = 4;
/// Log filter that keeps the shutdown summary.
const SUMMARY_LOG: &str = "warn,trackgate::server=info";

/// How often the gateway checks the broker, unless a test says otherwise.
const METADATA_INTERVAL_MS: u64 = 300;

/// A queue of `messages` that fills within seconds of losing the broker.
fn queue(messages: u64, message_timeout_ms: u64, flush_timeout_ms: u64) -> String {
    queue_checked_every(
        messages,
        message_timeout_ms,
        flush_timeout_ms,
        METADATA_INTERVAL_MS,
    )
}

/// The same, with the broker checked every `metadata_interval_ms`.
fn queue_checked_every(
    messages: u64,
    message_timeout_ms: u64,
    flush_timeout_ms: u64,
    metadata_interval_ms: u64,
) -> String {
    format!(
        "metadata_interval_ms = {metadata_interval_ms}\n\
         queue_max_messages = {messages}\nqueue_max_kbytes = {SMALL_QUEUE_KBYTES}\n\
         high_water_mark = {SMALL_QUEUE_HIGH_WATER}\nmessage_timeout_ms = {message_timeout_ms}\n\
         flush_timeout_ms = {flush_timeout_ms}\n{MEMORY_ONLY}"
    )
}

fn high_water(messages: u64) -> u64 {
    (messages as f64 * SMALL_QUEUE_HIGH_WATER) as u64
}

fn readyz_reasons(gw: &Gateway) -> Option<String> {
    let r = http(gw.admin, "GET", "/readyz", &[], b"").ok()?;
    (r.status == 503).then(|| r.json()["reasons"].to_string())
}

/// One batch of `BATCH` events with messageIds `{prefix}-{j}`.
fn batch(prefix: &str) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..BATCH).map(|j| format!("{prefix}-{j}")).collect();
    let events: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                r#"{{"type":"track","event":"e","anonymousId":"v-{id}","messageId":"{id}","properties":{{"pad":"{PAD}"}}}}"#
            )
        })
        .collect();
    (format!(r#"{{"batch":[{}]}}"#, events.join(",")), ids)
}

/// The fields of the gateway's "shutdown complete" log line.
fn shutdown_summary(log: &str) -> (u64, u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains("shutdown complete"))
        .unwrap_or_else(|| panic!("no shutdown summary in the log:\n{log}"));
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    (field("accepted"), field("delivered"), field("failed"))
}

/// Without a broker at start the opt-out list cannot be loaded, so the
/// gateway fails closed: it takes nothing (not even into its queue) until
/// the broker appears. How the queue fills to its bound and drains during
/// an outage is shown by the restart test below.
#[test]
fn without_a_broker_at_start_nothing_is_taken_until_it_appears() {
    const MESSAGES: u64 = 200;
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let gw = Gateway::spawn_logged(
        |l, a| gateway_toml(l, a, &brokers, &queue(MESSAGES, 60_000, 10_000)),
        "warn",
    );
    for i in 0..3 {
        let (body, _) = batch(&format!("early{i}"));
        let r = gw.post("/v1/batch", &body);
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"], "optout_list_loading");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let reasons = readyz_reasons(&gw).expect("not ready");
    assert!(reasons.contains("optout_list_loading"), "{reasons}");
    let waiting = Accounting::read(&gw);
    assert_eq!(waiting.received, 0.0);
    assert_eq!(waiting.in_flight, 0.0);

    // The broker appears: the list loads, the gateway is ready and takes
    // traffic; nothing of the refused requests is delivered.
    let broker = Broker::start_on(port);
    gw.wait_ready(SETTLE_TIMEOUT);
    let (body, ids) = batch("late");
    let r = gw.post("/v1/batch", &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["accepted"], BATCH);
    let acc = settle(&gw);
    acc.assert_identities();
    assert_eq!(acc.delivered as u64, BATCH);
    let records = consume_settle(
        &broker.addr(),
        &[EVENTS],
        BATCH as usize,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(
        unique_ids(&records),
        ids.into_iter().collect::<HashSet<_>>()
    );
}

/// How long the broker stays away in the restart test: long enough for the
/// queue to fill and readiness to notice.
const OUTAGE: Duration = Duration::from_secs(3);
/// `kafka.metadata_interval_ms` in the restart test (the default).
const RESTART_METADATA_INTERVAL_MS: u64 = 8_000;

#[test]
fn broker_restart_under_load_delivers_every_queued_event_with_bounded_memory() {
    let port = free_port();
    let mut broker = Broker::start_on(port);
    let brokers = broker.addr();
    // The default broker check interval: the restarted broker is back well
    // before the gateway re-creates its topics, and must not be sent
    // anything until then.
    let kafka = queue_checked_every(
        SMALL_QUEUE_MESSAGES,
        60_000,
        10_000,
        RESTART_METADATA_INTERVAL_MS,
    );
    let gw = Gateway::spawn_logged(|l, a| gateway_toml(l, a, &brokers, &kafka), "warn");
    gw.wait_ready(Duration::from_secs(30));
    let high_water = high_water(SMALL_QUEUE_MESSAGES);

    let load = Load::start(&gw, 2, false);
    std::thread::sleep(Duration::from_secs(2));
    let (_, rss_before_outage) = memory_kib(gw.pid());

    // Kill the broker: what it held is gone with it.
    load.set_phase(PHASE_BROKER_DOWN);
    broker.stop();
    let killed = Instant::now();
    // Clients keep being answered: accepted into the queue until production
    // is paused (the broker is gone), then 503: without the spool nothing is
    // taken that could only wait in memory and time out.
    wait_until("503s and readiness 503", Duration::from_secs(20), || {
        load.unavailable() > 10
            && readyz_reasons(&gw).is_some_and(|r| r.contains("broker_unreachable"))
    });
    std::thread::sleep(OUTAGE.saturating_sub(killed.elapsed()));
    // Nothing can be delivered now: the counter holds what went to the old
    // broker (and was lost with it).
    let at_restart = Accounting::read(&gw);

    load.set_phase(PHASE_RECOVERING);
    let broker = Broker::start_on(port);
    wait_until(
        "delivery to the restarted broker and readiness",
        SETTLE_TIMEOUT,
        || {
            let a = Accounting::read(&gw);
            a.delivered > at_restart.delivered
                && a.in_flight < (high_water / 2) as f64
                && gw.ready()
        },
    );
    load.set_phase(PHASE_RECOVERED);
    let accepted_at_recovery = load.accepted();
    wait_until(
        "load accepted after recovery",
        Duration::from_secs(20),
        || load.accepted() > accepted_at_recovery + 2 * high_water,
    );
    let report = load.finish();
    let acc = settle(&gw);
    let (peak, rss) = memory_kib(gw.pid());
    let health = http(gw.admin, "GET", "/healthz", &[], b"").expect("still alive");

    let after_restart = (acc.delivered - at_restart.delivered) as usize;
    let records = consume_settle(
        &broker.addr(),
        &[EVENTS],
        after_restart,
        Duration::from_secs(40),
        Duration::from_secs(2),
    );
    let ids = unique_ids(&records);
    let memory_bound = rss_before_outage + QUEUE_MEMORY_FACTOR * SMALL_QUEUE_KBYTES;
    eprintln!(
        "broker restart: sent={} accepted={} rejected={} 503={} (while down {}) delivered={} \
         (to the lost broker {}, after the restart {}) failed={} in_flight={} records_after_restart={} \
         rss_before_outage_kib={rss_before_outage} peak_rss_kib={peak} rss_kib={rss} bound_kib={memory_bound}",
        report.events_sent,
        report.accepted,
        report.rejected,
        report.unavailable.len(),
        report.unavailable_in(PHASE_BROKER_DOWN),
        acc.delivered,
        at_restart.delivered,
        after_restart,
        acc.failed,
        acc.in_flight,
        records.len(),
    );
    assert_eq!(health.status, 200);
    acc.assert_identities();
    assert_eq!(acc.accepted as u64, report.accepted);
    assert_eq!(
        acc.failed, 0.0,
        "queued events are delivered when the broker returns"
    );
    // Everything delivered after the restart is in the broker, once, and
    // was accepted.
    assert_eq!(records.len(), after_restart);
    assert!(ids.is_subset(&report.accepted_ids));
    // 503 only while the queue was over its high-water mark.
    assert_eq!(report.unavailable_in(PHASE_BROKER_UP), 0);
    assert_eq!(report.unavailable_in(PHASE_RECOVERED), 0);
    assert!(report.unavailable_in(PHASE_BROKER_DOWN) > 0);
    for (phase, queue) in &report.unavailable {
        if *phase == PHASE_BROKER_DOWN {
            assert!(
                *queue <= SMALL_QUEUE_MESSAGES as f64,
                "503 with {queue} messages queued (bound {SMALL_QUEUE_MESSAGES})"
            );
        }
    }
    assert_eq!(report.unavailable_without_retry_after, 0);
    assert!(
        report.other_statuses.is_empty(),
        "{:?}",
        report.other_statuses
    );
    assert_eq!(report.connection_errors, 0);
    assert!(
        peak <= memory_bound,
        "peak RSS {peak} KiB over {memory_bound} KiB"
    );
}

#[test]
fn sigterm_under_load_delivers_every_event_the_clients_saw_accepted() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let mut gw = Gateway::spawn_logged(
        |l, a| gateway_toml(l, a, &brokers, &queue(SMALL_QUEUE_MESSAGES, 60_000, 10_000)),
        SUMMARY_LOG,
    );
    gw.wait_ready(Duration::from_secs(30));
    let load = Load::start(&gw, 3, true);
    wait_until("load accepted", Duration::from_secs(20), || {
        load.accepted() > 2 * SMALL_QUEUE_MESSAGES
    });
    // VmHWM is gone with the process: read it just before the signal.
    let (peak, _) = memory_kib(gw.pid());
    let status = gw.terminate();
    let report = load.finish();
    let (accepted, delivered, failed) = shutdown_summary(&gw.log());
    let records = consume_settle(
        &broker.addr(),
        &[EVENTS],
        report.accepted as usize,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    eprintln!(
        "sigterm under load: sent={} accepted={} 503={} connection_errors={} \
         gateway accepted={accepted} delivered={delivered} failed={failed} records={} peak_rss_kib={peak}",
        report.events_sent,
        report.accepted,
        report.unavailable.len(),
        report.connection_errors,
        records.len()
    );
    assert!(status.success(), "{status:?}");
    assert_eq!(
        accepted, report.accepted,
        "every accepted event was answered"
    );
    assert_eq!((delivered, failed), (accepted, 0));
    assert_eq!(unique_ids(&records), report.accepted_ids);
    assert!(
        report.other_statuses.is_empty(),
        "{:?}",
        report.other_statuses
    );
}

#[test]
fn sigterm_with_the_broker_hung_counts_every_undelivered_event_as_failed_once() {
    let broker = Broker::start();
    let brokers = broker.addr();
    // No drain period: the listener closes at once.
    let mut gw = Gateway::spawn_logged(
        |l, a| {
            gateway_toml(l, a, &brokers, &queue(SMALL_QUEUE_MESSAGES, 60_000, 1_500)).replacen(
                "[server]\n",
                "[server]\ndrain_ms = 0\n",
                1,
            )
        },
        SUMMARY_LOG,
    );
    gw.wait_ready(Duration::from_secs(30));
    let (body, _) = batch("before");
    assert_eq!(gw.post("/v1/batch", &body).status, 200);
    let before = settle(&gw);

    // A hung broker (connections open, no answers): accepted events wait in
    // the queue until the broker check times out and pauses production.
    broker.freeze();
    let mut stranded = 0;
    for i in 0..5 {
        let (body, _) = batch(&format!("stranded{i}"));
        let r = gw.post("/v1/batch", &body);
        assert_eq!(r.status, 200);
        stranded += r.json()["accepted"].as_u64().expect("accepted");
    }
    let waiting = Accounting::read(&gw);
    let (peak, _) = memory_kib(gw.pid());

    // SIGTERM: while the producer spends its flush timeout on the events it
    // cannot deliver, readiness is 503 and the public listener is closed.
    let signal = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .expect("kill");
    assert!(signal.success());
    wait_until(
        "readiness 503 shutting_down",
        Duration::from_secs(5),
        || readyz_reasons(&gw).is_some_and(|r| r.contains("shutting_down")),
    );
    // The listener closes right after (no drain period), while the producer
    // still spends its flush timeout.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut refused = false;
    while !refused && Instant::now() < deadline {
        refused = std::net::TcpStream::connect(gw.addr).is_err();
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = gw.wait_exit();
    let (accepted, delivered, failed) = shutdown_summary(&gw.log());
    eprintln!(
        "sigterm, broker hung: sent={} accepted={accepted} delivered={delivered} failed={failed} \
         peak_rss_kib={peak}",
        BATCH + stranded
    );
    assert!(status.success(), "{status:?}");
    assert!(
        refused,
        "the public listener is closed while the producer drains"
    );
    assert_eq!(waiting.in_flight as u64, stranded);
    assert_eq!(accepted, BATCH + stranded);
    assert_eq!(delivered, before.delivered as u64);
    assert_eq!(failed, stranded, "each undelivered event counted once");
    assert!(gw.log().contains("undelivered events counted as failed"));
}
