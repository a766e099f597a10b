//! The live inspector: what the gateway writes to Kafka, as it writes it,
//! on a web page of the admin listener (`/inspect`, see [`http`]).
//!
//! Taps sit where the pipeline hands a record to the sink (the record
//! value after normalisation and privacy, exactly the bytes produced), where
//! a rejected event's invalid-topic record is written, and where events are
//! dropped by policy. They cost one relaxed atomic load while no page is
//! open. While one is, every event is counted per source (for the rate
//! sparklines) and at most `inspect.max_events_per_second` records are
//! copied into messages; the rest are sampled out. Messages go through a
//! bounded broadcast ring (`inspect.buffer`): sending never waits, and a
//! page that reads too slowly skips what the ring overwrote. Both losses
//! are counted (`trackgate_inspector_messages_total{result}`).

pub mod guard;
pub mod http;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// How often a page gets the per-source counts (one sparkline point).
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// `[inspect]`: lives in `config` with the other sections.
pub use crate::config::InspectConfig;

/// Counts of the current stats interval, and drops since the first page.
#[derive(Debug, Default)]
struct Counts {
    /// Source id → [accepted, rejected, dropped] in this interval.
    by_source: HashMap<String, [u64; 3]>,
    /// Drop reason → events, since the inspector was first watched.
    dropped_by_reason: HashMap<&'static str, u64>,
}

/// The hub the taps write to and the pages read from.
pub struct Inspector {
    config: InspectConfig,
    watchers: AtomicUsize,
    tx: broadcast::Sender<Arc<str>>,
    started: Instant,
    /// The second (since `started`) of the sampling window, and its count.
    window_sec: AtomicU64,
    window_count: AtomicU32,
    sent: AtomicU64,
    sampled_out: AtomicU64,
    lagged: AtomicU64,
    counts: Mutex<Counts>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("watchers", &self.watchers.load(Ordering::Relaxed))
            .finish()
    }
}

/// Keeps the taps open while a page is connected.
pub struct Watch {
    inspector: Arc<Inspector>,
    pub rx: broadcast::Receiver<Arc<str>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.inspector.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Inspector {
    pub fn new(config: &InspectConfig) -> Inspector {
        let (tx, _) = broadcast::channel(config.buffer.max(1));
        Inspector {
            config: config.clone(),
            watchers: AtomicUsize::new(0),
            tx,
            started: Instant::now(),
            window_sec: AtomicU64::new(0),
            window_count: AtomicU32::new(0),
            sent: AtomicU64::new(0),
            sampled_out: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// An inspector nobody can open (e.g. for tools and tests).
    pub fn disabled() -> Inspector {
        Inspector::new(&InspectConfig {
            enabled: false,
            ..InspectConfig::default()
        })
    }

    pub fn config(&self) -> &InspectConfig {
        &self.config
    }

    /// Whether a page is open: the taps do nothing otherwise.
    #[inline]
    pub fn watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// A page connects.
    pub fn watch(self: &Arc<Self>) -> Watch {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watch {
            inspector: self.clone(),
            rx: self.tx.subscribe(),
        }
    }

    /// Counts `missed` messages a page skipped (it read too slowly).
    pub fn lagged(&self, missed: u64) {
        self.lagged.fetch_add(missed, Ordering::Relaxed);
    }

    fn count(&self, source: &str, slot: usize, n: u64, drop_reason: Option<&'static str>) {
        let Ok(mut c) = self.counts.lock() else {
            return;
        };
        match c.by_source.get_mut(source) {
            Some(v) => v[slot] += n,
            None => {
                let mut v = [0; 3];
                v[slot] = n;
                c.by_source.insert(source.to_string(), v);
            }
        }
        if let Some(r) = drop_reason {
            *c.dropped_by_reason.entry(r).or_default() += n;
        }
    }

    /// Whether this record fits the per-second budget of copied records.
    fn admit(&self) -> bool {
        let sec = self.started.elapsed().as_secs();
        if self.window_sec.swap(sec, Ordering::Relaxed) != sec {
            self.window_count.store(0, Ordering::Relaxed);
        }
        if self.window_count.fetch_add(1, Ordering::Relaxed) < self.config.max_events_per_second {
            true
        } else {
            self.sampled_out.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    fn publish(&self, message: String) {
        if self.tx.send(Arc::from(message)).is_ok() {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tap: an event's record as handed to the sink.
    pub fn accepted(&self, source: &str, topic: &str, event_type: &str, key: &[u8], value: &[u8]) {
        if !self.watched() {
            return;
        }
        self.count(source, 0, 1, None);
        if !self.admit() {
            return;
        }
        let head = serde_json::json!({
            "kind": "event",
            "at": now_ms(),
            "source": source,
            "topic": topic,
            "type": event_type,
            "key": String::from_utf8_lossy(key),
        });
        self.publish(with_value(head, value));
    }

    /// Tap: a rejected event's invalid-topic record (reason, source, the
    /// payload the privacy stage let through).
    pub fn rejected(&self, source: &str, reason: &str, record: &[u8]) {
        if !self.watched() {
            return;
        }
        self.count(source, 1, 1, None);
        if !self.admit() {
            return;
        }
        let head = serde_json::json!({
            "kind": "rejected",
            "at": now_ms(),
            "source": source,
            "reason": reason,
        });
        self.publish(with_value(head, record));
    }

    /// Tap: `n` events dropped by policy.
    pub fn dropped(&self, source: &str, reason: &'static str, n: u64) {
        if self.watched() {
            self.count(source, 2, n, Some(reason));
        }
    }

    /// The stats message of the interval that just ended; resets it.
    fn stats(&self) -> String {
        let (by_source, dropped) = match self.counts.lock() {
            Ok(mut c) => {
                let by_source = std::mem::take(&mut c.by_source);
                (by_source, c.dropped_by_reason.clone())
            }
            Err(_) => Default::default(),
        };
        let sources: Map<String, Value> = by_source
            .into_iter()
            .map(|(s, [a, r, d])| {
                (
                    s,
                    serde_json::json!({"accepted": a, "rejected": r, "dropped": d}),
                )
            })
            .collect();
        serde_json::json!({
            "kind": "stats",
            "at": now_ms(),
            "intervalMs": STATS_INTERVAL.as_millis() as u64,
            "sources": sources,
            "droppedByReason": dropped,
            "sampledOut": self.sampled_out.load(Ordering::Relaxed),
            "lagged": self.lagged.load(Ordering::Relaxed),
        })
        .to_string()
    }

    /// Sends the stats once per interval while a page is open and keeps
    /// the metrics current; ends when `stop` is cancelled.
    pub async fn run_ticker(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(STATS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut published = [0u64; 3];
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            if self.watched() {
                let s = self.stats();
                self.publish(s);
            }
            let now = [
                self.sent.load(Ordering::Relaxed),
                self.sampled_out.load(Ordering::Relaxed),
                self.lagged.load(Ordering::Relaxed),
            ];
            metrics::inspector(
                now[0] - published[0],
                now[1] - published[1],
                now[2] - published[2],
                self.watchers.load(Ordering::Relaxed),
            );
            published = now;
        }
    }
}

/// `head` (an object) with `"value":` the record's JSON text appended, as
/// text: the record is not parsed again.
fn with_value(head: Value, value: &[u8]) -> String {
    let mut s = head.to_string();
    s.pop(); // the closing brace
    s.push_str(",\"value\":");
    match std::str::from_utf8(value) {
        Ok(v) if serde_json::from_str::<&serde_json::value::RawValue>(v).is_ok() => s.push_str(v),
        _ => s.push_str("null"),
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspector(max: u32, buffer: usize) -> Arc<Inspector> {
        Arc::new(Inspector::new(&InspectConfig {
            max_events_per_second: max,
            buffer,
            ..InspectConfig::default()
        }))
    }

    fn next(w: &mut Watch) -> Value {
        serde_json::from_str(&w.rx.try_recv().unwrap()).unwrap()
    }

    #[test]
    fn nothing_is_copied_or_counted_while_no_page_is_open() {
        let i = inspector(10, 8);
        i.accepted("web", "t", "page", b"k", br#"{"a":1}"#);
        i.dropped("web", "gpc", 3);
        let mut w = i.watch();
        assert!(w.rx.try_recv().is_err());
        let stats: Value = serde_json::from_str(&i.stats()).unwrap();
        assert_eq!(stats["sources"], serde_json::json!({}));
        assert_eq!(stats["droppedByReason"], serde_json::json!({}));
        drop(w);
        assert!(!i.watched());
    }

    #[test]
    fn a_record_reaches_the_page_as_written() {
        let i = inspector(10, 8);
        let mut w = i.watch();
        let record = br#"{"type":"track","event":"Buy","context":{"privacy":{"redactions":[{"path":"properties.email","kind":"email"}]}}}"#;
        i.accepted("web", "tracking.raw.events", "track", b"visitor-1", record);
        let m = next(&mut w);
        assert_eq!(m["kind"], "event");
        assert_eq!(m["source"], "web");
        assert_eq!(m["topic"], "tracking.raw.events");
        assert_eq!(m["key"], "visitor-1");
        assert_eq!(m["value"], serde_json::from_slice::<Value>(record).unwrap());
        i.rejected(
            "web",
            "missing_identity",
            br#"{"reason":"missing_identity"}"#,
        );
        let r = next(&mut w);
        assert_eq!(r["kind"], "rejected");
        assert_eq!(r["reason"], "missing_identity");
        assert_eq!(r["value"]["reason"], "missing_identity");
    }

    #[test]
    fn over_the_budget_records_are_sampled_out_but_still_counted() {
        let i = inspector(3, 64);
        let mut w = i.watch();
        for n in 0..10 {
            i.accepted(
                "web",
                "t",
                "page",
                b"k",
                format!("{{\"n\":{n}}}").as_bytes(),
            );
        }
        i.dropped("web", "bot", 2);
        i.dropped("app", "gpc", 1);
        let got: Vec<Value> = std::iter::from_fn(|| w.rx.try_recv().ok())
            .map(|m| serde_json::from_str(&m).unwrap())
            .collect();
        // A second boundary may fall inside the loop: at most two windows.
        assert!((3..=6).contains(&got.len()), "{}", got.len());
        let stats: Value = serde_json::from_str(&i.stats()).unwrap();
        assert_eq!(stats["sources"]["web"]["accepted"], 10);
        assert_eq!(stats["sources"]["web"]["dropped"], 2);
        assert_eq!(stats["sources"]["app"]["dropped"], 1);
        assert_eq!(stats["droppedByReason"]["bot"], 2);
        assert_eq!(stats["sampledOut"].as_u64().unwrap() + got.len() as u64, 10);
        // The interval's counts start over; the drop totals do not.
        let again: Value = serde_json::from_str(&i.stats()).unwrap();
        assert_eq!(again["sources"], serde_json::json!({}));
        assert_eq!(again["droppedByReason"]["gpc"], 1);
    }

    #[test]
    fn a_slow_page_skips_what_the_ring_overwrote_and_sending_never_waits() {
        let i = inspector(1000, 4);
        let mut w = i.watch();
        for n in 0..100 {
            i.accepted(
                "web",
                "t",
                "page",
                b"k",
                format!("{{\"n\":{n}}}").as_bytes(),
            );
        }
        match w.rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(missed)) => assert_eq!(missed, 96),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(next(&mut w)["value"]["n"], 96);
    }

    #[test]
    fn invalid_json_is_never_spliced_into_a_message() {
        let m = with_value(serde_json::json!({"kind":"event"}), b"{\"a\":");
        assert_eq!(m, r#"{"kind":"event","value":null}"#);
    }
}
