//! Every metric name lives here, so the accounting can be read in one place.
//!
//! The identities the gateway keeps (and the reliability tests check):
//! - `events_received = accepted + rejected(by reason) + dropped(by reason)`
//! - `accepted = delivered + failed + in flight`
//!
//! Both hold exactly once nothing is in flight, through broker outages and
//! shutdown: an accepted event is counted `delivered` or `failed` by its
//! delivery report, or written off as `failed` once when the shutdown flush
//! deadline passes (a later report for it is then ignored).
//!
//! With the spool on, "in flight" means "on the spool, not yet acknowledged":
//! a failed delivery is retried from the spool, not counted `failed` (only a
//! record the broker can never take is), and records a previous run left on
//! the spool are counted by `spool_recovered_total`, so across a restart
//! `accepted + recovered = delivered + failed + in flight`.
//!
//! An event counts as *received* once it was found inside a request that
//! passed authentication and body decoding; requests refused as a whole
//! (401, 413, 415, malformed JSON…) are counted by `requests_total{status}`,
//! and those refused by a limit (429, 503 `overloaded`) also by
//! `rate_limited_total{limiter}`: their events are never received.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How often recorded histogram samples are folded into their buckets.
/// The recorder keeps every raw sample until then (8 bytes per request),
/// so without it memory grows with traffic whenever `/metrics` is not
/// scraped.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Events found in accepted requests.
pub const EVENTS_RECEIVED: &str = "trackgate_events_received_total";
/// Events by outcome: `accepted`, `rejected` (with `reason`), `dropped` (with `reason`).
pub const EVENTS: &str = "trackgate_events_total";
/// Delivery reports of accepted events: `result` = `delivered` | `failed`.
pub const DELIVERIES: &str = "trackgate_deliveries_total";
/// Delivery reports of records written to the invalid topic.
pub const INVALID_DELIVERIES: &str = "trackgate_invalid_deliveries_total";
/// HTTP requests by `endpoint` and `status`.
pub const REQUESTS: &str = "trackgate_http_requests_total";
/// Request handling time in seconds, by `endpoint`.
pub const REQUEST_SECONDS: &str = "trackgate_http_request_duration_seconds";
/// Accepted events not yet acknowledged by the broker.
pub const IN_FLIGHT: &str = "trackgate_events_in_flight";
/// Messages in the producer's local queue (events and invalid records).
pub const PRODUCER_QUEUE: &str = "trackgate_producer_queue_messages";
/// 1 when `/readyz` answers 200.
pub const READY: &str = "trackgate_ready";
/// 1 while production is paused (broker away or its topics missing): events
/// wait in the producer queue.
pub const PRODUCTION_PAUSED: &str = "trackgate_production_paused";
/// Topics created by the gateway at start or after a broker lost them.
pub const TOPICS_CREATED: &str = "trackgate_topics_created_total";
/// Privacy decisions on events that carried a signal, by `decision`
/// (`drop`, `anonymize`, `keep` = signal ignored by policy) and `reason`
/// (`optout_cookie`, `optout_list`, `gpc`, `dnt`). Drops also appear in
/// `trackgate_events_total{outcome="dropped"}` with the same reason.
pub const PRIVACY_DECISIONS: &str = "trackgate_privacy_decisions_total";
/// Ids on this instance's opt-out list.
pub const OPTOUT_LIST_ENTRIES: &str = "trackgate_optout_list_entries";
/// `privacy.optout_max_entries` of the running gateway, the bound of
/// `trackgate_optout_list_entries`.
/// Client values discarded because they were sent under a gateway-owned
/// field (`owned`), by `field` (`context.privacy`, `context.bot` …).
pub const OWNED_FIELDS_DISCARDED: &str = "trackgate_owned_fields_discarded_total";
/// Opt-outs refused because their source's public share of the list
/// (`privacy.optout_max_entries`) is full (answered 503 `optout_list_full`).
pub const OPTOUT_LIST_FULL: &str = "trackgate_optout_list_full_total";
/// Ids on the opt-out list per `source` (the scope `*` for entries that
/// apply to every source) and `by` (`public`: the write key, bounded by
/// `privacy.optout_max_entries` per source; `server`: the server key,
/// never refused). Alert on `by="public"` nearing
/// `trackgate_optout_public_max_entries`.
pub const OPTOUT_SOURCE_ENTRIES: &str = "trackgate_optout_entries";
/// The bound of each source's public opt-out entries
/// (`privacy.optout_max_entries`).
pub const OPTOUT_PUBLIC_MAX: &str = "trackgate_optout_public_max_entries";
/// Opt-out and opt-in requests refused once their source is known, by
/// `source`, `action` and `reason` (the error code: `optout_list_full`,
/// `rate_limited`, `proof_required`, `credentials_not_allowed`,
/// `identity_required`, `origin_required`, …; `address_share` for a client
/// address's share of opt-outs, answered 429 `rate_limited`).
pub const OPTOUT_REFUSED: &str = "trackgate_optout_refused_total";
/// `/v1/optout` and `/v1/optin` requests by `action` and `result`
/// (`ok`, `unavailable`, `refused`).
pub const OPTOUT_REQUESTS: &str = "trackgate_optout_requests_total";
/// GeoIP database reloads after the file changed, by `result` (`ok`, `failed`).
/// Values and keys removed by the PII scrubber, by `kind` (`email`,
/// `phone`, `card`, `denied_key`, `url_param`, …).
pub const REDACTIONS: &str = "trackgate_redactions_total";
/// Events whose clock-skew corrected time fell outside
/// `limits.clock_skew_window_secs` (written with `timestamp = receivedAt`
/// and `context.timestampOutOfWindow`).
pub const TIMESTAMPS_OUT_OF_WINDOW: &str = "trackgate_timestamps_out_of_window_total";
/// Strings the JSON parser repaired instead of refusing the event, by
/// `kind` (`lone_surrogate`: a `\uD800`–`\uDFFF` escape without its
/// pair, written as U+FFFD).
pub const JSON_REPAIRS: &str = "trackgate_json_repairs_total";
/// `kind` of a lone surrogate escape replaced by U+FFFD.
pub const REPAIR_LONE_SURROGATE: &str = "lone_surrogate";
/// GeoIP database reloads after the file changed, by `result` (`ok`, `failed`).
pub const GEOIP_RELOADS: &str = "trackgate_geoip_reloads_total";
/// Requests refused by a limit, by `limiter` = `ip` | `source` | `concurrency`.
/// Their events are not received (the refusal is request-level).
pub const RATE_LIMITED: &str = "trackgate_rate_limited_total";
/// Client keys (IP addresses, IPv6 /64s) the per-IP limiter holds after
/// its last purge.
pub const RATE_LIMIT_KEYS: &str = "trackgate_rate_limit_keys";
/// Events whose user agent is a bot's, by `action` = `tagged` | `dropped`
/// (dropped ones are also counted as dropped with reason `bot`; sources
/// with `bots = "allow"` are not checked).
pub const BOT_EVENTS: &str = "trackgate_bot_events_total";
/// Tracking-plan violations, by `source`, event `type`, `event` (the
/// planned `track` name, `unplanned`, or the type for page, screen,
/// identify and group) and `kind` (the JSON Schema keyword, `undeclared` or
/// `unplanned`). Blocked events also count as rejected with reason
/// `schema_violation`.
pub const PLAN_VIOLATIONS: &str = "trackgate_plan_violations_total";

/// Live-inspector messages by `result`: `sent` (into its ring),
/// `sampled_out` (over `inspect.max_events_per_second`), `lagged` (skipped
/// by a page that read too slowly). Ingestion never waits for the inspector.
pub const INSPECTOR_MESSAGES: &str = "trackgate_inspector_messages_total";
/// Inspector pages connected.
pub const INSPECTOR_CLIENTS: &str = "trackgate_inspector_clients";
/// Configuration reloads (SIGHUP or file change) by `result`: `ok`, or
/// `failed` (the file was refused; the running configuration stays).
pub const CONFIG_RELOADS: &str = "trackgate_config_reloads_total";
/// Version of the running configuration: 1 at start, +1 per applied reload.
pub const CONFIG_VERSION: &str = "trackgate_config_version";
/// Bytes of the spool's segment files.
pub const SPOOL_BYTES: &str = "trackgate_spool_bytes";
/// `spool.max_bytes` of the running gateway (0: spool off), so alerts can
/// compare `trackgate_spool_bytes` with it.
pub const SPOOL_MAX_BYTES: &str = "trackgate_spool_max_bytes";
/// Records on the spool not yet acknowledged by the broker.
pub const SPOOL_RECORDS: &str = "trackgate_spool_records";
/// Age in seconds of the oldest unacknowledged spooled record (0: none).
pub const SPOOL_OLDEST_AGE: &str = "trackgate_spool_oldest_record_age_seconds";
/// Records found unacknowledged on the spool at start (produced again; the
/// ones that were in flight at a crash may be duplicates in Kafka).
pub const SPOOL_RECOVERED: &str = "trackgate_spool_recovered_total";
/// Records read back from the spool and produced again (after a refusal, a
/// failed delivery or a restart).
pub const SPOOL_REPLAYED: &str = "trackgate_spool_replayed_total";
/// Failed deliveries of spooled records that will be retried.
pub const SPOOL_RETRIES: &str = "trackgate_spool_retries_total";
/// Spool frames skipped because they were torn or corrupt (at start, as far
/// as can be told from the damaged bytes; or when read back).
pub const SPOOL_CORRUPT: &str = "trackgate_spool_corrupt_records_total";
/// Bytes of damaged spool ranges found at start, copied to the spool's
/// `quarantine/` directory.
pub const SPOOL_QUARANTINED_BYTES: &str = "trackgate_spool_quarantined_bytes_total";
/// Failed spool writes, fsyncs and segment creations, by `op` and `reason`
/// (`disk_full`, `spool_io_error`).
pub const SPOOL_IO_ERRORS: &str = "trackgate_spool_io_errors_total";
/// Spooled records the broker can never take (e.g. too large), dropped.
pub const SPOOL_UNDELIVERABLE: &str = "trackgate_spool_undeliverable_total";
/// Spooled records that could not be read back.
pub const SPOOL_READ_ERRORS: &str = "trackgate_spool_read_errors_total";

/// 1 while the producer's connection to a `broker` is up (librdkafka
/// statistics, every `kafka.statistics_interval_ms`; brokers learned from
/// metadata only).
pub const KAFKA_BROKER_UP: &str = "trackgate_kafka_broker_up";
/// Request round-trip time to a `broker`, average over the statistics
/// interval, in seconds (kept from the last interval with an answer).
pub const KAFKA_BROKER_RTT_AVG: &str = "trackgate_kafka_broker_rtt_avg_seconds";
/// Request round-trip time to a `broker`, 99th percentile over the
/// statistics interval, in seconds.
pub const KAFKA_BROKER_RTT_P99: &str = "trackgate_kafka_broker_rtt_p99_seconds";
/// Requests waiting to be sent to a `broker` (librdkafka `outbuf_cnt`).
pub const KAFKA_BROKER_OUTBUF: &str = "trackgate_kafka_broker_outbuf_requests";
/// Requests sent to a `broker` and waiting for its answer (`waitresp_cnt`).
pub const KAFKA_BROKER_WAITRESP: &str = "trackgate_kafka_broker_waitresp_requests";
/// Requests retried to a `broker` (`txretries`).
pub const KAFKA_BROKER_RETRIES: &str = "trackgate_kafka_broker_retries_total";
/// Requests to a `broker` that timed out (`req_timeouts`).
pub const KAFKA_BROKER_TIMEOUTS: &str = "trackgate_kafka_broker_request_timeouts_total";
/// Average batch of a `topic` over the last statistics interval that sent
/// one, in messages.
pub const KAFKA_TOPIC_BATCH_MESSAGES: &str = "trackgate_kafka_topic_batch_messages";
/// Average batch of a `topic` over that interval, in bytes on the wire.
pub const KAFKA_TOPIC_BATCH_BYTES: &str = "trackgate_kafka_topic_batch_bytes";
/// Key and value bytes over batch bytes on the wire for a `topic`, over
/// that interval (1: no gain from `kafka.compression`).
pub const KAFKA_TOPIC_COMPRESSION_RATIO: &str = "trackgate_kafka_topic_compression_ratio";

pub const LIMITER_IP: &str = "ip";
pub const LIMITER_SOURCE: &str = "source";
pub const LIMITER_CONCURRENCY: &str = "concurrency";

pub const OUTCOME_ACCEPTED: &str = "accepted";
pub const OUTCOME_REJECTED: &str = "rejected";
pub const OUTCOME_DROPPED: &str = "dropped";

/// Installs the Prometheus recorder; the handle renders `/metrics`.
/// Returns `None` when a recorder is already installed (tests in one process).
pub fn install() -> Option<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(REQUEST_SECONDS.to_string()),
            &[
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ],
        )
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    // Registered once, after the recorder: a handle taken before it would
    // be a no-op forever.
    let _ = HOT.set(Hot::register());
    describe();
    spawn_upkeep(handle.clone());
    Some(handle)
}

/// Runs the recorder's upkeep for the life of the process.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histogram samples accumulate until /metrics is scraped");
    }
}

fn describe() {
    metrics::describe_counter!(EVENTS_RECEIVED, "Events found in authenticated requests.");
    metrics::describe_counter!(
        EVENTS,
        "Events by outcome (accepted, rejected, dropped) and reason."
    );
    metrics::describe_counter!(DELIVERIES, "Broker delivery reports of accepted events.");
    metrics::describe_counter!(
        INVALID_DELIVERIES,
        "Delivery reports of invalid-topic records."
    );
    metrics::describe_counter!(REQUESTS, "HTTP requests by endpoint and status.");
    metrics::describe_histogram!(REQUEST_SECONDS, "Request handling time.");
    metrics::describe_gauge!(IN_FLIGHT, "Accepted events awaiting a delivery report.");
    metrics::describe_gauge!(PRODUCER_QUEUE, "Messages in the producer's local queue.");
    metrics::describe_gauge!(READY, "1 when the gateway is ready.");
    metrics::describe_gauge!(
        PRODUCTION_PAUSED,
        "1 while production waits for the broker and its topics."
    );
    metrics::describe_counter!(TOPICS_CREATED, "Topics created by the gateway.");
    metrics::describe_counter!(
        PRIVACY_DECISIONS,
        "Privacy decisions on events carrying a signal, by decision and reason."
    );
    metrics::describe_gauge!(OPTOUT_LIST_ENTRIES, "Ids on the opt-out list.");
    metrics::describe_counter!(OPTOUT_REQUESTS, "Opt-out and opt-in requests by result.");
    metrics::describe_gauge!(
        OPTOUT_SOURCE_ENTRIES,
        "Opt-out list ids per source and key."
    );
    metrics::describe_gauge!(OPTOUT_PUBLIC_MAX, "Bound of each source's public opt-outs.");
    metrics::describe_counter!(
        OPTOUT_REFUSED,
        "Refused opt-out and opt-in requests by reason."
    );
    metrics::describe_counter!(JSON_REPAIRS, "Strings the JSON parser repaired, by kind.");
    metrics::describe_counter!(GEOIP_RELOADS, "GeoIP database reloads by result.");
    metrics::describe_counter!(REDACTIONS, "PII redactions by kind.");
    metrics::describe_counter!(
        TIMESTAMPS_OUT_OF_WINDOW,
        "Events whose corrected time was outside the clock-skew window."
    );
    metrics::describe_counter!(
        RATE_LIMITED,
        "Requests refused by a rate or concurrency limit."
    );
    metrics::describe_gauge!(RATE_LIMIT_KEYS, "Client keys held by the per-IP limiter.");
    metrics::describe_counter!(BOT_EVENTS, "Events from bot user agents, by action.");
    metrics::describe_counter!(INSPECTOR_MESSAGES, "Live-inspector messages by result.");
    metrics::describe_gauge!(INSPECTOR_CLIENTS, "Live-inspector pages connected.");
    metrics::describe_counter!(CONFIG_RELOADS, "Configuration reloads by result.");
    metrics::describe_gauge!(CONFIG_VERSION, "Version of the running configuration.");
    metrics::describe_counter!(
        PLAN_VIOLATIONS,
        "Tracking-plan violations by source, event type, event name and kind."
    );
    metrics::describe_gauge!(SPOOL_BYTES, "Bytes of the spool's segment files.");
    metrics::describe_gauge!(SPOOL_RECORDS, "Spooled records not yet acknowledged.");
    metrics::describe_gauge!(SPOOL_MAX_BYTES, "Most bytes the spool may hold (0: off).");
    metrics::describe_gauge!(
        SPOOL_OLDEST_AGE,
        "Age of the oldest unacknowledged spooled record."
    );
    metrics::describe_counter!(SPOOL_RECOVERED, "Unacknowledged records found at start.");
    metrics::describe_counter!(SPOOL_REPLAYED, "Records produced again from the spool.");
    metrics::describe_counter!(SPOOL_RETRIES, "Failed deliveries retried from the spool.");
    metrics::describe_counter!(SPOOL_CORRUPT, "Torn or corrupt spool frames skipped.");
    metrics::describe_counter!(
        SPOOL_QUARANTINED_BYTES,
        "Damaged spool bytes copied to the quarantine directory."
    );
    metrics::describe_counter!(
        SPOOL_IO_ERRORS,
        "Failed spool writes, fsyncs and segment creations."
    );
    metrics::describe_counter!(
        SPOOL_UNDELIVERABLE,
        "Spooled records the broker can never take."
    );
    metrics::describe_counter!(SPOOL_READ_ERRORS, "Spooled records that could not be read.");
    metrics::describe_gauge!(
        KAFKA_BROKER_UP,
        "1 while the connection to the broker is up."
    );
    metrics::describe_gauge!(KAFKA_BROKER_RTT_AVG, "Average request round-trip time.");
    metrics::describe_gauge!(
        KAFKA_BROKER_RTT_P99,
        "99th percentile request round-trip time."
    );
    metrics::describe_gauge!(
        KAFKA_BROKER_OUTBUF,
        "Requests waiting to be sent to the broker."
    );
    metrics::describe_gauge!(
        KAFKA_BROKER_WAITRESP,
        "Requests waiting for the broker's answer."
    );
    metrics::describe_counter!(KAFKA_BROKER_RETRIES, "Requests retried to the broker.");
    metrics::describe_counter!(
        KAFKA_BROKER_TIMEOUTS,
        "Requests to the broker that timed out."
    );
    metrics::describe_gauge!(KAFKA_TOPIC_BATCH_MESSAGES, "Average batch in messages.");
    metrics::describe_gauge!(
        KAFKA_TOPIC_BATCH_BYTES,
        "Average batch in bytes on the wire."
    );
    metrics::describe_gauge!(
        KAFKA_TOPIC_COMPRESSION_RATIO,
        "Key and value bytes over batch bytes on the wire."
    );
}

/// The inspector's counts since its last report, and its pages.
pub fn inspector(sent: u64, sampled_out: u64, lagged: u64, clients: usize) {
    counter!(INSPECTOR_MESSAGES, "result" => "sent").increment(sent);
    counter!(INSPECTOR_MESSAGES, "result" => "sampled_out").increment(sampled_out);
    counter!(INSPECTOR_MESSAGES, "result" => "lagged").increment(lagged);
    gauge!(INSPECTOR_CLIENTS).set(clients as f64);
}

/// A configuration reload attempt; `version` is the running one after it.
pub fn config_reload(ok: bool, version: u64) {
    counter!(CONFIG_RELOADS, "result" => if ok { "ok" } else { "failed" }).increment(1);
    config_version(version);
}

/// The version of the running configuration.
pub fn config_version(version: u64) {
    gauge!(CONFIG_VERSION).set(version as f64);
}

/// Handles of the metrics updated for every request, event or delivery
/// report, registered once when the recorder is installed: the hot path
/// never looks a metric up by name. Labelled ones are kept per label value
/// (static strings, a handful each) after their first use.
struct Hot {
    received: Counter,
    accepted: Counter,
    rejected: ByLabel<&'static str, Counter>,
    dropped: ByLabel<&'static str, Counter>,
    /// `[event delivered, event failed, invalid delivered, invalid failed]`.
    deliveries: [Counter; 4],
    requests: ByLabel<(&'static str, u16), (Counter, Histogram)>,
    redactions: ByLabel<&'static str, Counter>,
    owned_discarded: ByLabel<&'static str, Counter>,
    privacy_decisions: ByLabel<(&'static str, &'static str), Counter>,
}

static HOT: OnceLock<Hot> = OnceLock::new();

impl Hot {
    fn register() -> Hot {
        let delivery =
            |name: &'static str, result: &'static str| counter!(name, "result" => result);
        Hot {
            received: counter!(EVENTS_RECEIVED),
            accepted: counter!(EVENTS, "outcome" => OUTCOME_ACCEPTED, "reason" => "ok"),
            rejected: ByLabel::default(),
            dropped: ByLabel::default(),
            deliveries: [
                delivery(DELIVERIES, "delivered"),
                delivery(DELIVERIES, "failed"),
                delivery(INVALID_DELIVERIES, "delivered"),
                delivery(INVALID_DELIVERIES, "failed"),
            ],
            requests: ByLabel::default(),
            redactions: ByLabel::default(),
            owned_discarded: ByLabel::default(),
            privacy_decisions: ByLabel::default(),
        }
    }
}

/// Handles by label value, registered with the recorder on first use.
struct ByLabel<K, H> {
    handles: RwLock<HashMap<K, H>>,
}

impl<K, H> Default for ByLabel<K, H> {
    fn default() -> Self {
        ByLabel {
            handles: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy, H> ByLabel<K, H> {
    fn with(&self, key: K, register: impl FnOnce(K) -> H, f: impl FnOnce(&H)) {
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return f(h);
        }
        let mut w = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        f(w.entry(key).or_insert_with(|| register(key)));
    }
}

pub fn events_received(n: u64) {
    match HOT.get() {
        Some(h) => h.received.increment(n),
        None => counter!(EVENTS_RECEIVED).increment(n),
    }
}

pub fn events_accepted(n: u64) {
    match HOT.get() {
        Some(h) => h.accepted.increment(n),
        None => counter!(EVENTS, "outcome" => OUTCOME_ACCEPTED, "reason" => "ok").increment(n),
    }
}

pub fn events_rejected(reason: &'static str, n: u64) {
    let register = |reason| counter!(EVENTS, "outcome" => OUTCOME_REJECTED, "reason" => reason);
    match HOT.get() {
        Some(h) => h.rejected.with(reason, register, |c| c.increment(n)),
        None => register(reason).increment(n),
    }
}

pub fn events_dropped(reason: &'static str, n: u64) {
    let register = |reason| counter!(EVENTS, "outcome" => OUTCOME_DROPPED, "reason" => reason);
    match HOT.get() {
        Some(h) => h.dropped.with(reason, register, |c| c.increment(n)),
        None => register(reason).increment(n),
    }
}

pub fn timestamp_out_of_window() {
    counter!(TIMESTAMPS_OUT_OF_WINDOW).increment(1);
}

pub fn privacy_decision(decision: &'static str, reason: &'static str, n: u64) {
    let register = |(decision, reason)| counter!(PRIVACY_DECISIONS, "decision" => decision, "reason" => reason);
    match HOT.get() {
        Some(h) => h
            .privacy_decisions
            .with((decision, reason), register, |c| c.increment(n)),
        None => register((decision, reason)).increment(n),
    }
}

pub fn optout_list_entries(n: usize) {
    gauge!(OPTOUT_LIST_ENTRIES).set(n as f64);
}

pub fn owned_field_discarded(field: &'static str) {
    let register = |field| counter!(OWNED_FIELDS_DISCARDED, "field" => field);
    match HOT.get() {
        Some(h) => h.owned_discarded.with(field, register, |c| c.increment(1)),
        None => register(field).increment(1),
    }
}

pub fn optout_list_full() {
    counter!(OPTOUT_LIST_FULL).increment(1);
}

pub fn optout_source_entries(source: &str, by: &'static str, n: usize) {
    gauge!(OPTOUT_SOURCE_ENTRIES, "source" => source.to_owned(), "by" => by).set(n as f64);
}

pub fn optout_public_max_entries(n: usize) {
    gauge!(OPTOUT_PUBLIC_MAX).set(n as f64);
}

pub fn optout_refused(source: &str, action: &'static str, reason: &'static str) {
    counter!(OPTOUT_REFUSED, "source" => source.to_owned(), "action" => action, "reason" => reason)
        .increment(1);
}

pub fn optout_request(action: &'static str, result: &'static str) {
    counter!(OPTOUT_REQUESTS, "action" => action, "result" => result).increment(1);
}

pub fn json_repairs(kind: &'static str, n: u64) {
    counter!(JSON_REPAIRS, "kind" => kind).increment(n);
}

pub fn geoip_reload(ok: bool) {
    counter!(GEOIP_RELOADS, "result" => if ok { "ok" } else { "failed" }).increment(1);
}

pub fn delivery(delivered: bool, invalid_record: bool, n: u64) {
    if let Some(h) = HOT.get() {
        let i = usize::from(!delivered) + 2 * usize::from(invalid_record);
        h.deliveries[i].increment(n);
        return;
    }
    let name = if invalid_record {
        INVALID_DELIVERIES
    } else {
        DELIVERIES
    };
    let result = if delivered { "delivered" } else { "failed" };
    counter!(name, "result" => result).increment(n);
}

pub fn request(endpoint: &'static str, status: u16, seconds: f64) {
    let register = |(endpoint, status)| {
        (
            counter!(REQUESTS, "endpoint" => endpoint, "status" => status_label(status)),
            histogram!(REQUEST_SECONDS, "endpoint" => endpoint),
        )
    };
    let record = |(c, h): &(Counter, Histogram)| {
        c.increment(1);
        h.record(seconds);
    };
    match HOT.get() {
        Some(hot) => hot.requests.with((endpoint, status), register, record),
        None => record(&register((endpoint, status))),
    }
}

pub fn in_flight(n: u64, queue: u64) {
    gauge!(IN_FLIGHT).set(n as f64);
    gauge!(PRODUCER_QUEUE).set(queue as f64);
}

pub fn redaction(kind: &'static str) {
    let register = |kind| counter!(REDACTIONS, "kind" => kind);
    match HOT.get() {
        Some(h) => h.redactions.with(kind, register, |c| c.increment(1)),
        None => register(kind).increment(1),
    }
}

pub fn ready(ready: bool) {
    gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

pub fn production_paused(paused: bool) {
    gauge!(PRODUCTION_PAUSED).set(if paused { 1.0 } else { 0.0 });
}

pub fn topic_created() {
    counter!(TOPICS_CREATED).increment(1);
}

pub fn rate_limited(limiter: &'static str) {
    counter!(RATE_LIMITED, "limiter" => limiter).increment(1);
}

pub fn rate_limit_keys(n: usize) {
    gauge!(RATE_LIMIT_KEYS).set(n as f64);
}

/// One tracking-plan violation (label values are bounded: sources and
/// planned names come from the configuration).
pub fn plan_violation(source: &str, event_type: &'static str, event: &str, kind: &'static str) {
    counter!(
        PLAN_VIOLATIONS,
        "source" => source.to_string(),
        "type" => event_type,
        "event" => event.to_string(),
        "kind" => kind
    )
    .increment(1);
}

pub fn bot_event(action: &'static str) {
    counter!(BOT_EVENTS, "action" => action).increment(1);
}

/// Once at start: the bound alerts compare the spool with
/// (`spool_max_bytes` 0: spool off), and the rare counters alerts take
/// `increase()` of, registered at zero: a counter whose first sample is
/// already 1 hides that first increment from `increase()` and `rate()`.
/// The opt-out list's size, in all and per source (`sources`: the
/// configured source ids) starts at 0; the list sets it as it loads. (The
/// per-source bound, `trackgate_optout_public_max_entries`, is set by the
/// list when it is made.)
pub fn at_start<'a>(spool_max_bytes: u64, sources: impl IntoIterator<Item = &'a str>) {
    gauge!(SPOOL_MAX_BYTES).set(spool_max_bytes as f64);
    gauge!(OPTOUT_LIST_ENTRIES).set(0.0);
    for source in sources {
        optout_source_entries(source, "public", 0);
        optout_source_entries(source, "server", 0);
    }
    counter!(CONFIG_RELOADS, "result" => "ok").increment(0);
    counter!(CONFIG_RELOADS, "result" => "failed").increment(0);
    counter!(OPTOUT_LIST_FULL).increment(0);
    if spool_max_bytes > 0 {
        for name in [
            SPOOL_REPLAYED,
            SPOOL_RETRIES,
            SPOOL_UNDELIVERABLE,
            SPOOL_READ_ERRORS,
        ] {
            counter!(name).increment(0);
        }
    }
}

pub fn spool_gauges(bytes: u64, records: u64, oldest_age_secs: f64) {
    gauge!(SPOOL_BYTES).set(bytes as f64);
    gauge!(SPOOL_RECORDS).set(records as f64);
    gauge!(SPOOL_OLDEST_AGE).set(oldest_age_secs);
}

/// Records found on the spool at start (`records`), frames skipped as
/// corrupt or torn (`corrupt`) and the damaged bytes quarantined.
pub fn spool_recovered(records: u64, corrupt: u64, quarantined_bytes: u64) {
    counter!(SPOOL_RECOVERED).increment(records);
    counter!(SPOOL_CORRUPT).increment(corrupt);
    counter!(SPOOL_QUARANTINED_BYTES).increment(quarantined_bytes);
}

/// One failed spool write, fsync or segment creation.
pub fn spool_io_error(op: &'static str, reason: &'static str) {
    counter!(SPOOL_IO_ERRORS, "op" => op, "reason" => reason).increment(1);
}

pub fn spool_replayed(n: u64) {
    counter!(SPOOL_REPLAYED).increment(n);
}

pub fn spool_retry() {
    counter!(SPOOL_RETRIES).increment(1);
}

pub fn spool_undeliverable() {
    counter!(SPOOL_UNDELIVERABLE).increment(1);
}

pub fn spool_read_error() {
    counter!(SPOOL_READ_ERRORS).increment(1);
}

/// One broker's figures from a librdkafka statistics report.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaBrokerStats<'a> {
    pub broker: &'a str,
    pub up: bool,
    /// `None`: no answer in the interval (the gauges keep their value).
    pub rtt_avg_seconds: Option<f64>,
    pub rtt_p99_seconds: Option<f64>,
    pub outbuf_requests: u64,
    pub waitresp_requests: u64,
    /// Cumulative since the producer started.
    pub retries: u64,
    /// Cumulative since the producer started.
    pub request_timeouts: u64,
}

pub fn kafka_broker(b: &KafkaBrokerStats<'_>) {
    let broker = b.broker.to_string();
    let label = || [("broker", broker.clone())];
    gauge!(KAFKA_BROKER_UP, &label()).set(if b.up { 1.0 } else { 0.0 });
    if let Some(avg) = b.rtt_avg_seconds {
        gauge!(KAFKA_BROKER_RTT_AVG, &label()).set(avg);
    }
    if let Some(p99) = b.rtt_p99_seconds {
        gauge!(KAFKA_BROKER_RTT_P99, &label()).set(p99);
    }
    gauge!(KAFKA_BROKER_OUTBUF, &label()).set(b.outbuf_requests as f64);
    gauge!(KAFKA_BROKER_WAITRESP, &label()).set(b.waitresp_requests as f64);
    counter!(KAFKA_BROKER_RETRIES, &label()).absolute(b.retries);
    counter!(KAFKA_BROKER_TIMEOUTS, &label()).absolute(b.request_timeouts);
}

/// One topic's batch figures from a librdkafka statistics report.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaTopicStats<'a> {
    pub topic: &'a str,
    pub batch_messages: f64,
    pub batch_bytes: f64,
    pub compression_ratio: f64,
}

pub fn kafka_topic(t: &KafkaTopicStats<'_>) {
    let topic = t.topic.to_string();
    let label = || [("topic", topic.clone())];
    gauge!(KAFKA_TOPIC_BATCH_MESSAGES, &label()).set(t.batch_messages);
    gauge!(KAFKA_TOPIC_BATCH_BYTES, &label()).set(t.batch_bytes);
    gauge!(KAFKA_TOPIC_COMPRESSION_RATIO, &label()).set(t.compression_ratio);
}

/// Static labels for the status codes the gateway answers with (no
/// per-request string formatting on the hot path).
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}
