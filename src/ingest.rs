//! The pipeline one request's events walk through, after the HTTP layer has
//! authenticated the request and split its body into raw events:
//! `validate (event) → normalize → bots → privacy → route → sink`.
//!
//! Every event that enters is accounted for here: accepted, rejected (with a
//! reason, and written to the invalid topic), or dropped by policy.
//!
//! Admission (the 200 is a promise): with the spool on, a request first
//! reserves room on the spool for all its events and its records are
//! appended there in one write before it is answered; with the spool off, the
//! producer queue must have room for all of it, in messages and in bytes, and
//! production must not be paused. Otherwise the whole request gets 503 +
//! `Retry-After` and none of its events is counted; a request is never split
//! into a 200 for some events and a refusal for others.
//!
//! Fail closed: until the opt-out list is loaded every request is refused
//! (503 `optout_list_loading`, nothing received, nothing spooled or queued):
//! an event the list would drop could otherwise pass.
//!
//! Privacy (see `privacy`): a request whose headers alone call for a drop
//! (opt-out cookie, GPC or DNT under a `drop` policy) has all its events
//! dropped before any is parsed; rejected events pass the privacy stage's
//! rules before anything reaches the invalid topic; events left without a
//! visitor id (anonymized) get a random record key.
//!
//! Data quality (see `quality`) runs right after privacy, so it never sees
//! or re-creates what privacy removed: duplicates are dropped before they
//! are produced, and a `messageId` recorded for an event the producer then
//! refuses is forgotten again so that the client's retry goes through.

use std::sync::Arc;

use serde_json::Value;

use crate::bots::{BotStage, BotVerdict, RequestAgent};
use crate::config::{Config, LimitsConfig};
use crate::event::{Event, EventType, RejectReason};
use crate::inspect::Inspector;
use crate::limits;
use crate::metrics;
use crate::normalize::{self, format_time, RequestMeta, RequestTexts};
use crate::privacy::{PrivacyStage, Rejected, RequestAddress, Verdict};
use crate::quality::plan::{Violation, REASON_SCHEMA_VIOLATION};
use crate::quality::{self, QualityError, QualityStage, Recorded};
use crate::route::{Route, Router};
use crate::sink::{Record, RecordKind, Sink, SinkError};
use crate::spool::{Appended, Batch, Spool};

/// Reason label of events refused because the producer queue filled up
/// in the middle of their request.
pub const REASON_QUEUE_FULL: &str = "queue_full";
/// Reason label of events the producer refused for another reason (e.g. a
/// record over the broker's size limit).
pub const REASON_PRODUCE_ERROR: &str = "produce_error";
/// Reason label of events whose request could not be written to the spool
/// after all (disk error, or records larger than the reservation and no
/// room left); the request gets 503.
pub const REASON_SPOOL_UNAVAILABLE: &str = "spool_unavailable";
/// Reason label of an accepted event whose record could not be written
/// (never seen: a JSON object always serializes).
pub const REASON_SERIALIZATION: &str = "serialization";

/// Room reserved on the spool per event beyond its JSON text: the fields the
/// gateway adds (receivedAt, context.ip, messageId…), headers and framing.
const SPOOL_ALLOWANCE_PER_EVENT: u64 = 2048;

/// One event as the HTTP layer hands it over.
pub enum RawEvent<'a> {
    /// JSON text of the event (a slice of the request body).
    Json(&'a str),
    /// An event the HTTP layer already parsed (single-event endpoints), with
    /// its JSON text for size checks and the invalid topic.
    Parsed(serde_json::Map<String, Value>, &'a str),
    /// An event that could not be decoded at all (e.g. bad pixel data).
    Undecodable(&'a str, RejectReason),
}

/// What happened to a request's events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: u32,
    pub rejected: u32,
    pub dropped: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The producer queue is over its high-water mark: nothing was taken.
    #[error("the gateway is over capacity, retry later")]
    Unavailable,
    /// The opt-out list is not loaded yet: an event it would drop could
    /// pass, so nothing is taken.
    #[error("the opt-out list is not loaded yet, retry later")]
    OptOutListLoading,
}

/// Everything the pipeline needs, shared by all connections.
pub struct Pipeline {
    pub config: Arc<Config>,
    pub sink: Arc<dyn Sink>,
    pub router: Router,
    pub privacy: PrivacyStage,
    pub bots: BotStage,
    pub quality: QualityStage,
    /// The live inspector's taps (see `inspect`).
    pub inspector: Arc<Inspector>,
    /// The write-ahead spool (`None`: `spool.enabled = false`).
    pub spool: Option<Arc<Spool>>,
}

/// Where a request's accepted records go while its events are processed.
enum Sending {
    /// Straight into the producer queue (spool off).
    Direct,
    /// Into a spool batch, appended as a whole at the end; with the ids the
    /// duplicate filter recorded, given back if the append fails.
    Spool(Batch, Vec<Recorded>),
}

impl Pipeline {
    /// Builds the stages the configuration describes (tracking plans are
    /// read and compiled here).
    pub fn new(
        config: Arc<Config>,
        sink: Arc<dyn Sink>,
        privacy: PrivacyStage,
    ) -> Result<Pipeline, QualityError> {
        let quality = QualityStage::from_config(&config)?;
        Ok(Pipeline::with_stages(config, sink, privacy, quality))
    }

    /// A pipeline around stages built already (a configuration reload
    /// carries parts of the running ones over).
    pub fn with_stages(
        config: Arc<Config>,
        sink: Arc<dyn Sink>,
        privacy: PrivacyStage,
        quality: QualityStage,
    ) -> Pipeline {
        let router = Router::new(&config.kafka.topics, &config.routing);
        let bots = BotStage::new(&config);
        Pipeline {
            config,
            sink,
            router,
            privacy,
            bots,
            quality,
            inspector: Arc::new(Inspector::disabled()),
            spool: None,
        }
    }

    /// Makes accepted events go through `spool` (write-ahead).
    pub fn with_spool(mut self, spool: Arc<Spool>) -> Pipeline {
        self.spool = Some(spool);
        self
    }

    /// Runs the events of one request through the pipeline. Refuses the
    /// whole request (nothing counted as received) when the queue has no
    /// room for it; otherwise every event gets an outcome.
    ///
    /// With the spool on, resolves once the accepted events are on the spool
    /// (and fsync'd when `spool.fsync = "always"`).
    pub async fn ingest<'a>(
        &self,
        events: Vec<RawEvent<'a>>,
        implied: Option<EventType>,
        meta: &RequestMeta<'_>,
    ) -> Result<Outcome, IngestError> {
        if !self.privacy.optouts().is_loaded() {
            return Err(IngestError::OptOutListLoading);
        }
        let (out, appended) = self.run(events, implied, meta).await?;
        if let Some(a) = appended {
            // On the spool already; only the fsync is awaited. A spool closed
            // meanwhile still holds the records: the client may retry.
            a.durable().await.map_err(|_| IngestError::Unavailable)?;
        }
        Ok(out)
    }

    /// Admits the request as a whole (spool room, or producer queue room),
    /// then walks its events one by one. Every event ends as one
    /// [`Disposition`], handed to the request's [`Tally`], which counts them
    /// once at the end.
    ///
    /// A large batch must not hold a runtime worker while other connections
    /// wait: every [`EVENTS_PER_SLICE`] events the task yields to the
    /// scheduler.
    async fn run<'a>(
        &self,
        events: Vec<RawEvent<'a>>,
        implied: Option<EventType>,
        meta: &RequestMeta<'_>,
    ) -> Result<(Outcome, Option<Appended>), IngestError> {
        let text_bytes: u64 = events.iter().map(|r| raw_text(r).len() as u64).sum();
        let reservation = match &self.spool {
            Some(spool) => Some(
                spool
                    .reserve(text_bytes + events.len() as u64 * SPOOL_ALLOWANCE_PER_EVENT)
                    .map_err(|_| IngestError::Unavailable)?,
            ),
            None => {
                if !self.sink.has_room(events.len() as u64, text_bytes) {
                    return Err(IngestError::Unavailable);
                }
                None
            }
        };
        let n = events.len() as u64;
        metrics::events_received(n);
        let mut tally = Tally::default();
        if let Verdict::Drop(reason) = self.privacy.request_verdict(meta, n) {
            tally.record_many(Disposition::Dropped(reason), n);
            return Ok((tally.publish(&self.inspector, meta.source_id), None));
        }
        let mut work = RequestWork {
            sending: match reservation {
                Some(_) => Sending::Spool(Batch::new(), Vec::new()),
                None => Sending::Direct,
            },
            buf: Vec::with_capacity(1024),
            queue_full: false,
            bot_policy: self.bots.policy(meta.source_id),
            agent: RequestAgent::new(meta.user_agent),
            address: RequestAddress::default(),
            texts: RequestTexts::of(meta),
        };
        for (i, raw) in events.into_iter().enumerate() {
            if i > 0 && i % EVENTS_PER_SLICE == 0 {
                tokio::task::yield_now().await;
            }
            let d = if work.queue_full {
                Disposition::Rejected(REASON_QUEUE_FULL)
            } else {
                self.process(raw, implied, meta, &mut work)
            };
            tally.record(d);
        }
        let mut appended = None;
        if let (Sending::Spool(batch, recorded), Some(spool), Some(reservation)) =
            (&work.sending, &self.spool, reservation)
        {
            match spool.append(batch, reservation) {
                Ok(a) => {
                    self.sink.count_spooled(a.records() as u64);
                    appended = Some(a);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write a request to the spool");
                    // The client sends them again: not duplicates.
                    for r in recorded {
                        self.quality.unrecord(meta.source_id, *r);
                    }
                    tally.accepted_became(REASON_SPOOL_UNAVAILABLE);
                    tally.publish(&self.inspector, meta.source_id);
                    return Err(IngestError::Unavailable);
                }
            }
        }
        let out = tally.publish(&self.inspector, meta.source_id);
        if work.queue_full {
            // Never a 200 for a split batch: the client retries all of it
            // (the events already queued may then arrive twice).
            return Err(IngestError::Unavailable);
        }
        Ok((out, appended))
    }

    /// One event, from its raw text to its disposition: validate and
    /// normalize, bots, privacy, quality, then the record is written and
    /// sent (or spooled).
    fn process(
        &self,
        raw: RawEvent<'_>,
        implied: Option<EventType>,
        meta: &RequestMeta<'_>,
        work: &mut RequestWork<'_>,
    ) -> Disposition {
        let text = raw_text(&raw);
        let (mut ev, client_message_id) = match self.prepare(raw, implied, meta, &work.texts) {
            Ok(prepared) => prepared,
            Err(reason) => {
                let why = Invalid::new(reason.code(), reason.to_string());
                return self.reject(why, text, meta, &mut work.buf);
            }
        };
        if self
            .bots
            .apply_in(&mut ev, work.bot_policy, &mut work.agent)
            == BotVerdict::Drop
        {
            return Disposition::Dropped(crate::bots::REASON_BOT);
        }
        match self.privacy.apply_in(&mut ev, meta, &mut work.address) {
            Verdict::Keep => {}
            Verdict::Drop(reason) => return Disposition::Dropped(reason),
            Verdict::Reject(reason) => {
                let payload = self.privacy.rejected_payload(&ev, text);
                let why = Invalid::new(reason.code(), reason.to_string());
                self.send_invalid(why, text.len(), payload, meta, &mut work.buf);
                return Disposition::Rejected(reason.code());
            }
        }
        let recorded = match self.quality.apply(&mut ev, meta, client_message_id) {
            quality::Verdict::Keep(recorded) => recorded,
            quality::Verdict::Drop(reason) => return Disposition::Dropped(reason),
            quality::Verdict::Block(violations) => {
                // The same path as any rejected event: the privacy rules
                // decide the payload the invalid topic may keep.
                let why = Invalid::schema_violation(&violations);
                return self.reject(why, text, meta, &mut work.buf);
            }
        };
        let unrecord = || {
            if let Some(r) = recorded {
                self.quality.unrecord(meta.source_id, r);
            }
        };
        let route = self.router.route(&ev, meta.source_id);
        let topic = route.topic;
        let written = write_record(
            &*self.sink,
            &mut work.sending,
            &mut work.buf,
            &route,
            &ev.body,
            |value| {
                self.inspector.accepted(
                    meta.source_id,
                    topic,
                    ev.kind.as_str(),
                    route.key.as_bytes(),
                    value,
                )
            },
        );
        match written {
            Ok(()) => {
                if let (Sending::Spool(_, kept), Some(r)) = (&mut work.sending, recorded) {
                    kept.push(r);
                }
                Disposition::Accepted
            }
            Err(WriteError::Serialize) => {
                // A `Map<String, Value>` always serializes; kept as a reject
                // rather than a panic.
                unrecord();
                Disposition::Rejected(REASON_SERIALIZATION)
            }
            Err(WriteError::Sink(SinkError::QueueFull | SinkError::Closed)) => {
                unrecord();
                work.queue_full = true;
                Disposition::Rejected(REASON_QUEUE_FULL)
            }
            Err(WriteError::Sink(e)) => {
                unrecord();
                tracing::warn!(error = %e, topic, "produce failed");
                Disposition::Rejected(REASON_PRODUCE_ERROR)
            }
        }
    }

    fn prepare(
        &self,
        raw: RawEvent<'_>,
        implied: Option<EventType>,
        meta: &RequestMeta<'_>,
        texts: &RequestTexts,
    ) -> Result<(Event, bool), RejectReason> {
        prepare_in(raw, implied, meta, &self.config.limits, texts)
    }

    /// One event rejected for `why`, whose JSON text is `text`: the privacy
    /// rules decide whether it is dropped instead (its visitor opted out)
    /// or reported on the invalid topic, and with which payload.
    fn reject(
        &self,
        why: Invalid,
        text: &str,
        meta: &RequestMeta<'_>,
        buf: &mut Vec<u8>,
    ) -> Disposition {
        match self.privacy.rejected(text, meta) {
            Rejected::Drop(reason) => Disposition::Dropped(reason),
            Rejected::Report(payload) => {
                let code = why.code;
                self.send_invalid(why, text.len(), payload, meta, buf);
                Disposition::Rejected(code)
            }
        }
    }

    /// Writes a rejected event to the invalid topic: reason, source, the
    /// size of the event as received, `violations` for a tracking-plan
    /// block, and the payload the privacy stage allowed (see
    /// `privacy.invalid_payload`), truncated to
    /// `limits.invalid_payload_bytes`; without one, `payloadOmitted: true`.
    fn send_invalid(
        &self,
        why: Invalid,
        received_bytes: usize,
        payload: Option<String>,
        meta: &RequestMeta<'_>,
        buf: &mut Vec<u8>,
    ) {
        let limit = self.config.limits.invalid_payload_bytes;
        let mut record = serde_json::json!({
            "reason": why.code,
            "message": why.message,
            "source": meta.source_id,
            "receivedAt": format_time(meta.received_at),
            "payloadBytes": received_bytes,
        });
        if let Some(v) = why.violations {
            record["violations"] = v;
        }
        match &payload {
            Some(p) => {
                record["payload"] = Value::String(truncate_at_char_boundary(p, limit).into());
                record["payloadTruncated"] = Value::Bool(p.len() > limit);
            }
            None => record["payloadOmitted"] = Value::Bool(true),
        }
        buf.clear();
        if serde_json::to_writer(&mut *buf, &record).is_err() {
            return;
        }
        let route = self.router.route_invalid(meta.source_id, why.code);
        let record = Record {
            topic: route.topic,
            key: None,
            headers: route.headers[..].into(),
            value: buf,
        };
        match self.sink.send(&record, RecordKind::Invalid) {
            Ok(()) => self.inspector.rejected(meta.source_id, why.code, buf),
            Err(e) => {
                metrics::delivery(false, true, 1);
                tracing::warn!(error = %e, "could not enqueue an invalid-topic record");
            }
        }
    }
}

/// Events handled between two yields to the scheduler: a slice of a large
/// batch costs well under a millisecond, so a small request arriving on
/// the same worker waits at most that long.
const EVENTS_PER_SLICE: usize = 64;

/// How one event left the pipeline. Each event of a request ends as exactly
/// one of these, returned by [`Pipeline::process`] and handed to the
/// request's [`Tally`]: no branch counts on its own, so
/// `received = accepted + rejected + dropped` holds by construction.
#[must_use = "every event must be handed to the request's tally"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Accepted,
    /// Rejected (written to the invalid topic, or refused by the producer).
    Rejected(&'static str),
    /// Dropped by policy (opt-out, consent, bot, duplicate…).
    Dropped(&'static str),
}

/// A request's dispositions, counted together at its end: one metric
/// update per distinct reason rather than one per event.
#[derive(Default)]
struct Tally {
    out: Outcome,
    rejected: Vec<(&'static str, u64)>,
    dropped: Vec<(&'static str, u64)>,
}

impl Tally {
    fn record(&mut self, d: Disposition) {
        self.record_many(d, 1);
    }

    fn record_many(&mut self, d: Disposition, n: u64) {
        fn bump(list: &mut Vec<(&'static str, u64)>, reason: &'static str, n: u64) {
            match list.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, c)) => *c += n,
                None => list.push((reason, n)),
            }
        }
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        match d {
            Disposition::Accepted => self.out.accepted += n32,
            Disposition::Rejected(r) => {
                self.out.rejected += n32;
                bump(&mut self.rejected, r, n);
            }
            Disposition::Dropped(r) => {
                self.out.dropped += n32;
                bump(&mut self.dropped, r, n);
            }
        }
    }

    /// The request's accepted events could not be kept after all (the spool
    /// refused its write): they count as rejected for `reason`.
    fn accepted_became(&mut self, reason: &'static str) {
        let n = u64::from(std::mem::take(&mut self.out.accepted));
        if n > 0 {
            self.record_many(Disposition::Rejected(reason), n);
        }
    }

    /// Counts the request's events in the metrics and the inspector.
    fn publish(self, inspector: &Inspector, source_id: &str) -> Outcome {
        if self.out.accepted > 0 {
            metrics::events_accepted(u64::from(self.out.accepted));
        }
        for (reason, n) in self.rejected {
            metrics::events_rejected(reason, n);
        }
        for (reason, n) in self.dropped {
            metrics::events_dropped(reason, n);
            inspector.dropped(source_id, reason, n);
        }
        self.out
    }
}

/// What one request's walk through its events carries along.
struct RequestWork<'r> {
    sending: Sending,
    /// The record being written (reused from event to event).
    buf: Vec<u8>,
    /// The producer queue filled up: the rest of the request is refused.
    queue_full: bool,
    bot_policy: crate::bots::BotPolicy,
    /// The request's user agent, judged once by the bot patterns.
    agent: RequestAgent<'r>,
    /// The request's client address, looked up and hashed once.
    address: RequestAddress,
    /// `receivedAt` and `context.ip` as text, written once.
    texts: RequestTexts,
}

#[derive(Debug)]
enum WriteError {
    Serialize,
    Sink(SinkError),
}

/// Writes one accepted event's record once, where it goes: straight into
/// the request's spool batch (framed as it will be produced), or into
/// `buf` and on to the producer with the spool off. `seen` gets the value
/// bytes once written (the inspector's tap).
fn write_record(
    sink: &dyn Sink,
    sending: &mut Sending,
    buf: &mut Vec<u8>,
    route: &Route<'_>,
    body: &serde_json::Map<String, Value>,
    seen: impl FnOnce(&[u8]),
) -> Result<(), WriteError> {
    let key = route.key.as_bytes();
    match sending {
        Sending::Direct => {
            buf.clear();
            serde_json::to_writer(&mut *buf, body).map_err(|_| WriteError::Serialize)?;
            let record = Record {
                topic: route.topic,
                key: Some(key),
                headers: route.headers[..].into(),
                value: buf,
            };
            sink.send(&record, RecordKind::Event)
                .map_err(WriteError::Sink)?;
            seen(buf);
            Ok(())
        }
        Sending::Spool(batch, _) => {
            batch.begin_record(route.topic, Some(key), &route.headers);
            let start = batch.buf.len();
            if serde_json::to_writer(&mut batch.buf, body).is_err() {
                batch.abandon_record();
                return Err(WriteError::Serialize);
            }
            seen(&batch.buf[start..]);
            batch.finish_record();
            Ok(())
        }
    }
}

/// Why an event goes to the invalid topic.
struct Invalid {
    code: &'static str,
    message: String,
    /// Tracking-plan violations (`[{path, rule}]`), for `schema_violation`.
    violations: Option<Value>,
}

impl Invalid {
    fn new(code: &'static str, message: String) -> Invalid {
        Invalid {
            code,
            message,
            violations: None,
        }
    }

    fn schema_violation(violations: &[Violation]) -> Invalid {
        Invalid {
            code: REASON_SCHEMA_VIOLATION,
            message: "event violates the source's tracking plan".into(),
            violations: Some(Value::Array(
                violations.iter().map(Violation::to_json).collect(),
            )),
        }
    }
}

/// Validates (size, depth, shape) and normalizes one raw event: the part
/// of the pipeline that needs no broker.
pub fn prepare(
    raw: RawEvent<'_>,
    implied: Option<EventType>,
    meta: &RequestMeta<'_>,
    limits_cfg: &LimitsConfig,
) -> Result<Event, RejectReason> {
    prepare_tracked(raw, implied, meta, limits_cfg).map(|(ev, _)| ev)
}

/// [`prepare`], also saying whether the event's `messageId` was sent by the
/// client (before `normalize` generates one for events without it).
pub fn prepare_tracked(
    raw: RawEvent<'_>,
    implied: Option<EventType>,
    meta: &RequestMeta<'_>,
    limits_cfg: &LimitsConfig,
) -> Result<(Event, bool), RejectReason> {
    prepare_in(raw, implied, meta, limits_cfg, &RequestTexts::of(meta))
}

/// [`prepare_tracked`] with the request's texts written already.
fn prepare_in(
    raw: RawEvent<'_>,
    implied: Option<EventType>,
    meta: &RequestMeta<'_>,
    limits_cfg: &LimitsConfig,
    texts: &RequestTexts,
) -> Result<(Event, bool), RejectReason> {
    let max = limits_cfg.max_event_bytes;
    let max_depth = limits_cfg.max_json_depth;
    // Depth is checked on the parsed tree: the parser's own recursion limit
    // keeps parsing safe, and walking the tree costs far less than a second
    // scan of the text. Text too deep for the parser is still `too_deep`.
    let mut ev = match raw {
        RawEvent::Json(t) => {
            if t.len() > max {
                return Err(RejectReason::EventTooLarge);
            }
            let value: Value = match serde_json::from_str(t) {
                Ok(v) => v,
                Err(_) if limits::json_too_deep(t.as_bytes(), max_depth) => {
                    return Err(RejectReason::TooDeep)
                }
                Err(_) => return Err(RejectReason::InvalidJson),
            };
            if limits::value_too_deep(&value, max_depth) {
                return Err(RejectReason::TooDeep);
            }
            let Value::Object(body) = value else {
                return Err(RejectReason::NotAnObject);
            };
            Event::from_object(body, implied)?
        }
        RawEvent::Parsed(map, t) => {
            if t.len() > max {
                return Err(RejectReason::EventTooLarge);
            }
            if limits::object_too_deep(&map, max_depth) {
                return Err(RejectReason::TooDeep);
            }
            Event::from_object(map, implied)?
        }
        RawEvent::Undecodable(_, reason) => return Err(reason),
    };
    // `Event` validation left `messageId` absent or a non-empty string.
    let client_message_id = matches!(ev.body.get("messageId"), Some(Value::String(_)));
    normalize::normalize_with(&mut ev, meta, texts, limits_cfg.clock_skew_window())?;
    Ok((ev, client_message_id))
}

/// The JSON text of a raw event, as received.
fn raw_text<'a>(raw: &RawEvent<'a>) -> &'a str {
    match raw {
        RawEvent::Json(t) | RawEvent::Parsed(_, t) | RawEvent::Undecodable(t, _) => t,
    }
}

fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::sink::memory::MemorySink;
    use crate::spool::config::SpoolConfig;

    /// A pipeline spooling into `dir` (nothing reaches a broker), with the
    /// privacy stage, bots and quality at their defaults.
    fn pipeline(dir: &std::path::Path) -> Pipeline {
        let cfg = Config::from_toml(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[sources]]\nid = \"web\"\nwrite_key = \"wk_test\"\n",
        )
        .expect("config");
        let cfg = Arc::new(cfg);
        let sink = MemorySink::new();
        let privacy = PrivacyStage::local(&cfg).expect("privacy");
        let spool_cfg = SpoolConfig {
            dir: dir.to_path_buf(),
            ..SpoolConfig::default()
        };
        let (spool, _) = Spool::open(&spool_cfg, MemorySink::new()).expect("spool");
        Pipeline::new(cfg, sink, privacy)
            .expect("pipeline")
            .with_spool(spool)
    }

    fn meta() -> RequestMeta<'static> {
        RequestMeta {
            source_id: "web",
            received_at: chrono::Utc::now(),
            client_ip: std::net::IpAddr::from([203, 0, 113, 9]),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
            ),
            batch_sent_at: None,
            batch_context: None,
            signals: Default::default(),
        }
    }

    fn page(i: usize) -> String {
        format!(r#"{{"type":"page","anonymousId":"v{i}","messageId":"m{i}","name":"Home"}}"#)
    }

    #[test]
    fn every_event_of_a_mixed_request_gets_exactly_one_outcome() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = pipeline(dir.path());
        let texts = [
            page(1),
            r#"{"type":"page"}"#.to_string(), // no identity: rejected
            r#"{"type":"nope","anonymousId":"a"}"#.to_string(), // rejected
            page(1),                          // same messageId: duplicate, dropped
            page(2),
        ];
        let raws = texts.iter().map(|t| RawEvent::Json(t)).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let out = rt
            .block_on(p.ingest(raws, None, &meta()))
            .expect("admitted");
        assert_eq!(
            out,
            Outcome {
                accepted: 2,
                rejected: 2,
                dropped: 1
            }
        );
        assert_eq!(p.spool.as_ref().map(|s| s.open_records()), Some(2));
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_deeper_is_too_deep_even_past_the_parsers_limit() {
        let limits = Config::from_toml("[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n")
            .expect("config")
            .limits;
        let max = limits.max_json_depth;
        // The event object is level 1; `properties.x` nests arrays below it.
        let nested = |levels: usize| {
            let inner = levels - 2;
            format!(
                r#"{{"type":"page","anonymousId":"a","properties":{{"x":{}1{}}}}}"#,
                "[".repeat(inner),
                "]".repeat(inner)
            )
        };
        let m = meta();
        let at = |levels| prepare(RawEvent::Json(&nested(levels)), None, &m, &limits).map(|_| ());
        assert_eq!(at(max), Ok(()));
        assert_eq!(at(max + 1), Err(RejectReason::TooDeep));
        // Deeper than serde_json's own recursion limit (128): still too deep,
        // not invalid JSON.
        assert_eq!(at(5_000), Err(RejectReason::TooDeep));
        let broken = "[".repeat(5_000);
        assert_eq!(
            prepare(RawEvent::Json(&broken), None, &m, &limits).map(|_| ()),
            Err(RejectReason::TooDeep)
        );
        assert_eq!(
            prepare(RawEvent::Json("{\"type\":"), None, &m, &limits).map(|_| ()),
            Err(RejectReason::InvalidJson)
        );
    }

    #[test]
    fn a_large_batch_lets_other_tasks_run_while_it_is_processed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = pipeline(dir.path());
        let n = 2_500;
        let texts: Vec<String> = (0..n).map(page).collect();
        let raws = texts.iter().map(|t| RawEvent::Json(t)).collect();
        // One thread: another task runs only when the ingest yields.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ticks = Arc::new(AtomicU64::new(0));
        let (out, ticks_during) = rt.block_on(async {
            let t = ticks.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    t.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            });
            let out = p.ingest(raws, None, &meta()).await;
            let during = ticks.load(Ordering::Relaxed);
            ticker.abort();
            (out, during)
        });
        assert_eq!(out.expect("admitted").accepted, n as u32);
        let slices = (n / EVENTS_PER_SLICE) as u64;
        assert!(
            ticks_during >= slices - 1,
            "the other task ran {ticks_during} times during a {n}-event batch; expected at least {}",
            slices - 1
        );
    }

    #[test]
    fn truncation_respects_utf8() {
        assert_eq!(truncate_at_char_boundary("héllo", 2), "h");
        assert_eq!(truncate_at_char_boundary("héllo", 3), "hé");
        assert_eq!(truncate_at_char_boundary("abc", 10), "abc");
    }
}
