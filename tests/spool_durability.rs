//! The spool against the real Tansu broker and the real gateway process:
//! an event answered 200 reaches Kafka through a broker outage longer than
//! the message timeout, through a SIGKILL of the gateway while the broker is
//! away, with the spool full (503 + Retry-After, nothing 200'd lost), with a
//! torn spool file at start, and through SIGTERM with a drain period.
//!
//! Tansu keeps its data in memory, so a stopped broker loses what it held:
//! every test loads the gateway only once the broker it will deliver to is
//! the one the test reads back. Each test prints its figures (sent, answered
//! 200, in Kafka, duplicates, peak RSS, spool peak bytes); `--nocapture`
//! shows them.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::load::*;
use support::spool::*;
use support::*;

/// How long the broker stays away: three message timeouts.
const OUTAGE: Duration = Duration::from_secs(6);

/// Polls `/metrics` for the largest spool size seen.
struct SpoolPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SpoolPeak {
    fn start(admin: std::net::SocketAddr) -> SpoolPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = http(admin, "GET", "/metrics", &[], b"") {
                        let text = String::from_utf8_lossy(&r.body);
                        let bytes = metric_sum(&text, "trackgate_spool_bytes", &[]) as u64;
                        peak.fetch_max(bytes, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        SpoolPeak {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// messageIds in `records`, with how many times each arrived.
fn id_counts(records: &[Record]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in records {
        if let Some(id) = r.value["messageId"].as_str() {
            *counts.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Asserts every accepted id is in Kafka; returns (records, duplicates).
fn assert_all_delivered(brokers: &str, accepted: &HashSet<String>) -> (usize, usize) {
    let records = consume_settle(
        brokers,
        &[EVENTS],
        accepted.len(),
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    let counts = id_counts(&records);
    let missing: Vec<_> = accepted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} events answered 200 are not in Kafka, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    let unknown = counts.keys().filter(|id| !accepted.contains(*id)).count();
    let duplicates = records.len() - counts.len();
    eprintln!("  in Kafka: {} records, {} not answered 200 (client saw an error), {duplicates} duplicates", records.len(), unknown);
    (records.len(), duplicates)
}

fn report(
    name: &str,
    load: &LoadReport,
    in_kafka: usize,
    duplicates: usize,
    peak_rss_kib: u64,
    spool_peak: u64,
) {
    eprintln!(
        "{name}: sent={} answered_200={} in_kafka={in_kafka} duplicates={duplicates} 503={} connection_errors={} peak_rss_kib={peak_rss_kib} spool_peak_bytes={spool_peak}",
        load.events_sent,
        load.accepted_ids.len(),
        load.unavailable.len(),
        load.connection_errors,
    );
}

#[test]
fn a_broker_outage_longer_than_the_message_timeout_loses_no_event_answered_200() {
    let mut broker = Broker::start();
    let brokers = broker.addr();
    let gw = Gateway::spawn_logged(|l, a| spool_toml(l, a, &brokers, ""), "warn");
    gw.wait_ready(Duration::from_secs(30));
    let peak = SpoolPeak::start(gw.admin);

    broker.stop();
    let load = Load::start(&gw, 2, false);
    load.set_phase(PHASE_BROKER_DOWN);
    std::thread::sleep(OUTAGE);
    // Still ready: the spool has room, and says why events wait.
    let r = http(gw.admin, "GET", "/readyz", &[], b"").expect("readyz");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["degraded"]
        .to_string()
        .contains("broker_unreachable"));
    // Longer than the message timeout, and nothing failed: the events wait
    // on the spool, not in the producer's memory.
    assert!(gw.metric("trackgate_spool_records", &[]) > 0.0);
    assert_eq!(
        gw.metric("trackgate_deliveries_total", &[("result", "failed")]),
        0.0
    );

    broker.restart();
    load.set_phase(PHASE_RECOVERING);
    std::thread::sleep(Duration::from_secs(2));
    let report_ = load.finish();
    wait_spool_empty(&gw);
    let (rss, _) = memory_kib(gw.pid());
    let acc = Accounting::read(&gw);
    let spool_peak = peak.finish();
    let (in_kafka, dups) = assert_all_delivered(&brokers, &report_.accepted_ids);
    report("outage", &report_, in_kafka, dups, rss, spool_peak);
    acc.assert_identities();
    assert_eq!(acc.failed, 0.0);
    assert!(report_.accepted_ids.len() > 100, "{report_:?}");
    assert_eq!(report_.unavailable.len(), 0, "503 while the spool had room");
    assert!(spool_peak > 0);
}

#[test]
fn a_gateway_killed_while_the_broker_is_away_delivers_every_event_answered_200_after_restart() {
    let mut broker = Broker::start();
    let brokers = broker.addr();
    let mut gw = Gateway::spawn_logged(|l, a| spool_toml(l, a, &brokers, ""), "warn");
    gw.wait_ready(Duration::from_secs(30));
    let peak = SpoolPeak::start(gw.admin);

    broker.stop();
    let load = Load::start(&gw, 2, false);
    std::thread::sleep(Duration::from_secs(3));
    let (rss, _) = memory_kib(gw.pid());
    gw.kill();
    let report_ = load.finish();
    let spool_peak = peak.finish();

    gw.respawn();
    broker.restart();
    gw.wait_ready(Duration::from_secs(60));
    wait_spool_empty(&gw);
    let recovered = gw.metric("trackgate_spool_recovered_total", &[]);
    let acc = Accounting::read(&gw);
    let (in_kafka, dups) = assert_all_delivered(&brokers, &report_.accepted_ids);
    report("sigkill", &report_, in_kafka, dups, rss, spool_peak);
    eprintln!("  recovered at restart: {recovered}");
    acc.assert_identities();
    assert!(recovered >= report_.accepted_ids.len() as f64);
    assert!(report_.accepted_ids.len() > 50, "{report_:?}");
}

#[test]
fn a_full_spool_answers_503_with_retry_after_and_loses_nothing_answered_200() {
    const MAX_BYTES: u64 = 1024 * 1024;
    let mut broker = Broker::start();
    let brokers = broker.addr();
    let gw = Gateway::spawn_logged(
        |l, a| {
            spool_toml(
                l,
                a,
                &brokers,
                &format!("max_bytes = {MAX_BYTES}\nsegment_bytes = 131072\n"),
            )
        },
        "warn",
    );
    gw.wait_ready(Duration::from_secs(30));
    let (_, rss_start) = memory_kib(gw.pid());
    let peak = SpoolPeak::start(gw.admin);

    broker.stop();
    let load = Load::start(&gw, 2, false);
    wait_until("503 from a full spool", Duration::from_secs(30), || {
        load.unavailable() > 20
    });
    // Readiness says why (polled: an answer can be slow while both cores
    // serve the load).
    wait_until(
        "readiness to report spool_full",
        Duration::from_secs(15),
        || {
            http(gw.admin, "GET", "/readyz", &[], b"").is_ok_and(|r| {
                r.status == 503 && r.json()["reasons"].to_string().contains("spool_full")
            })
        },
    );
    let (rss, _) = memory_kib(gw.pid());

    broker.restart();
    std::thread::sleep(Duration::from_secs(2));
    let report_ = load.finish();
    wait_spool_empty(&gw);
    let spool_peak = peak.finish();
    let acc = Accounting::read(&gw);
    let (in_kafka, dups) = assert_all_delivered(&brokers, &report_.accepted_ids);
    report("spool full", &report_, in_kafka, dups, rss, spool_peak);
    acc.assert_identities();
    assert_eq!(report_.unavailable_without_retry_after, 0);
    assert!(spool_peak <= MAX_BYTES, "{spool_peak}");
    // Memory stays bounded: the spool is on disk, not in the heap.
    assert!(
        rss < rss_start + 64 * 1024,
        "resident memory grew from {rss_start} KiB to {rss} KiB"
    );
    assert_eq!(dups, 0);
}

/// The newest segment file of a gateway's spool.
fn newest_segment(gw: &Gateway) -> PathBuf {
    let dir = gw.dir().join("trackgate-spool");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("spool dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    segs.sort();
    segs.pop().expect("a segment file")
}

#[test]
fn a_spool_file_torn_mid_record_loses_only_that_record_counted_and_the_rest_delivered() {
    let mut broker = Broker::start();
    let brokers = broker.addr();
    let mut gw = Gateway::spawn_logged(|l, a| spool_toml(l, a, &brokers, ""), "warn");
    gw.wait_ready(Duration::from_secs(30));

    broker.stop();
    let mut accepted = Vec::new();
    for i in 0..5 {
        let (body, ids) = batch_of(&format!("torn{i}"));
        let r = gw.post("/v1/batch", &body);
        assert_eq!(r.status, 200);
        accepted.extend(ids);
    }
    gw.kill();
    // A crash in the middle of the last write: its last record is cut.
    let seg = newest_segment(&gw);
    let len = std::fs::metadata(&seg).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .and_then(|f| f.set_len(len - 7))
        .expect("truncate");

    gw.respawn();
    broker.restart();
    gw.wait_ready(Duration::from_secs(60));
    wait_spool_empty(&gw);
    assert_eq!(gw.metric("trackgate_spool_corrupt_records_total", &[]), 1.0);
    let torn = accepted.pop().expect("the last event");
    let expected: HashSet<String> = accepted.into_iter().collect();
    let records = consume_settle(
        &brokers,
        &[EVENTS],
        expected.len(),
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    let ids = unique_ids(&records);
    eprintln!(
        "torn tail: answered_200={} in_kafka={} corrupt_skipped=1 missing={torn}",
        expected.len() + 1,
        records.len()
    );
    assert_eq!(ids, expected);
}

#[test]
fn sigterm_under_load_drains_without_refusing_connections_and_kafka_holds_exactly_the_accepted_events(
) {
    const DRAIN_MS: u64 = 2500;
    let broker = Broker::start();
    let brokers = broker.addr();
    let mut gw = Gateway::spawn_logged(
        |l, a| {
            let base = spool_toml(l, a, &brokers, "");
            base.replacen(
                "[server]\n",
                &format!("[server]\ndrain_ms = {DRAIN_MS}\n"),
                1,
            )
        },
        "warn",
    );
    gw.wait_ready(Duration::from_secs(30));
    let peak = SpoolPeak::start(gw.admin);
    let load = Load::start(&gw, 2, true);
    std::thread::sleep(Duration::from_secs(1));
    let (rss, _) = memory_kib(gw.pid());

    let signalled = Instant::now();
    gw.signal_term();
    wait_until(
        "readiness 503 while draining",
        Duration::from_secs(2),
        || !gw.ready(),
    );
    // New connections are still served during the drain period.
    let mut probes = 0;
    while signalled.elapsed() < Duration::from_millis(DRAIN_MS - 500) {
        let (body, _) = batch_of(&format!("probe{probes}"));
        let r = http(
            gw.addr,
            "POST",
            "/v1/batch",
            &[
                ("content-type", "application/json"),
                ("authorization", &basic(WRITE_KEY)),
            ],
            body.as_bytes(),
        )
        .expect("no connection refused during the drain period");
        assert_eq!(r.status, 200);
        probes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = gw.wait_exit();
    assert!(status.success(), "{status:?}");
    let report_ = load.finish();
    let spool_peak = peak.finish();
    let mut accepted = report_.accepted_ids.clone();
    for p in 0..probes {
        accepted.extend(batch_of(&format!("probe{p}")).1);
    }
    let records = consume_settle(
        &brokers,
        &[EVENTS],
        accepted.len(),
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    report("sigterm drain", &report_, records.len(), 0, rss, spool_peak);
    assert_eq!(
        unique_ids(&records),
        accepted,
        "Kafka holds exactly the accepted events"
    );
    assert!(signalled.elapsed() >= Duration::from_millis(DRAIN_MS));
}
