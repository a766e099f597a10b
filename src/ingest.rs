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

use crate::bots::{BotStage, BotVerdict};
use crate::config::{Config, LimitsConfig};
use crate::event::{Event, EventType, RejectReason};
use crate::inspect::Inspector;
use crate::limits;
use crate::metrics;
use crate::normalize::{self, format_time, RequestMeta};
use crate::privacy::{self, PrivacyStage, Rejected, Verdict};
use crate::quality::plan::{Violation, REASON_SCHEMA_VIOLATION};
use crate::quality::{self, QualityError, QualityStage, Recorded};
use crate::route::Router;
use crate::sink::kafka::{KafkaSink, RecordHeaders, RecordKind, SinkError};
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
    pub sink: Arc<KafkaSink>,
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
        sink: Arc<KafkaSink>,
        privacy: PrivacyStage,
    ) -> Result<Pipeline, QualityError> {
        let quality = QualityStage::from_config(&config)?;
        Ok(Pipeline::with_stages(config, sink, privacy, quality))
    }

    /// A pipeline around stages built already (a configuration reload
    /// carries parts of the running ones over).
    pub fn with_stages(
        config: Arc<Config>,
        sink: Arc<KafkaSink>,
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
        let (out, appended) = self.ingest_now(events, implied, meta)?;
        if let Some(a) = appended {
            // On the spool already; only the fsync is awaited. A spool closed
            // meanwhile still holds the records: the client may retry.
            a.durable().await.map_err(|_| IngestError::Unavailable)?;
        }
        Ok(out)
    }

    fn ingest_now<'a>(
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
                if self.sink.headroom() < events.len() as u64
                    || self.sink.byte_headroom() < text_bytes
                    || self.sink.production_paused()
                {
                    return Err(IngestError::Unavailable);
                }
                None
            }
        };
        let mut sending = match reservation {
            Some(_) => Sending::Spool(Batch::new(), Vec::new()),
            None => Sending::Direct,
        };
        metrics::events_received(events.len() as u64);
        let mut out = Outcome::default();
        if let Verdict::Drop(reason) = self.privacy.request_verdict(meta, events.len() as u64) {
            metrics::events_dropped(reason, events.len() as u64);
            self.inspector
                .dropped(meta.source_id, reason, events.len() as u64);
            out.dropped = events.len() as u32;
            return Ok((out, None));
        }
        let mut buf = Vec::with_capacity(1024);
        let mut queue_full = false;
        let bot_policy = self.bots.policy(meta.source_id);
        for raw in events {
            if queue_full {
                metrics::event_rejected(REASON_QUEUE_FULL);
                out.rejected += 1;
                continue;
            }
            let text = raw_text(&raw);
            let result = self.prepare(raw, implied, meta);
            let (mut ev, client_message_id) = match result {
                Ok(prepared) => prepared,
                Err(reason) => {
                    let why = Invalid::new(reason.code(), reason.to_string());
                    self.reject(&mut out, why, text, meta, &mut buf);
                    continue;
                }
            };
            if self.bots.apply(&mut ev, bot_policy) == BotVerdict::Drop {
                self.count_dropped(&mut out, meta.source_id, crate::bots::REASON_BOT);
                continue;
            }
            match self.privacy.apply(&mut ev, meta) {
                Verdict::Keep => {}
                Verdict::Drop(reason) => {
                    self.count_dropped(&mut out, meta.source_id, reason);
                    continue;
                }
                Verdict::Reject(reason) => {
                    metrics::event_rejected(reason.code());
                    out.rejected += 1;
                    let payload = self.privacy.rejected_payload(&ev, text);
                    let why = Invalid::new(reason.code(), reason.to_string());
                    self.send_invalid(why, text.len(), payload, meta, &mut buf);
                    continue;
                }
            }
            let recorded = match self.quality.apply(&mut ev, meta, client_message_id) {
                quality::Verdict::Keep(recorded) => recorded,
                quality::Verdict::Drop(reason) => {
                    self.count_dropped(&mut out, meta.source_id, reason);
                    continue;
                }
                quality::Verdict::Block(violations) => {
                    // The same path as any rejected event: the privacy rules
                    // decide the payload the invalid topic may keep.
                    let why = Invalid::schema_violation(&violations);
                    self.reject(&mut out, why, text, meta, &mut buf);
                    continue;
                }
            };
            let unrecord = || {
                if let Some(r) = recorded {
                    self.quality.unrecord(meta.source_id, r);
                }
            };
            buf.clear();
            if serde_json::to_writer(&mut buf, &ev.body).is_err() {
                // A `Map<String, Value>` always serializes; kept as a reject
                // rather than a panic.
                unrecord();
                metrics::event_rejected("serialization");
                out.rejected += 1;
                continue;
            }
            let topic = self.router.topic(&ev);
            let headers = RecordHeaders {
                source: meta.source_id,
                event_type: ev.kind.as_str(),
                reason: None,
            };
            let random_key;
            let key = match ev.visitor_key() {
                Some(k) => k.as_bytes(),
                None => {
                    random_key = privacy::random_record_key();
                    &random_key[..]
                }
            };
            match self.emit(&mut sending, topic, key, &buf, &headers) {
                Ok(()) => {
                    out.accepted += 1;
                    self.inspector
                        .accepted(meta.source_id, topic, ev.kind.as_str(), key, &buf);
                    if let (Sending::Spool(_, kept), Some(r)) = (&mut sending, recorded) {
                        kept.push(r);
                    }
                }
                Err(SinkError::QueueFull | SinkError::Closed) => {
                    unrecord();
                    queue_full = true;
                    metrics::event_rejected(REASON_QUEUE_FULL);
                    out.rejected += 1;
                }
                Err(e) => {
                    unrecord();
                    tracing::warn!(error = %e, topic, "produce failed");
                    metrics::event_rejected(REASON_PRODUCE_ERROR);
                    out.rejected += 1;
                }
            }
        }
        let mut appended = None;
        if let (Sending::Spool(batch, recorded), Some(spool), Some(reservation)) =
            (&sending, &self.spool, reservation)
        {
            match spool.append(batch, reservation) {
                Ok(a) => {
                    self.sink.stats().count_spooled(a.records() as u64);
                    appended = Some(a);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write a request to the spool");
                    for _ in 0..out.accepted {
                        metrics::event_rejected(REASON_SPOOL_UNAVAILABLE);
                    }
                    // The client sends them again: not duplicates.
                    for r in recorded {
                        self.quality.unrecord(meta.source_id, *r);
                    }
                    return Err(IngestError::Unavailable);
                }
            }
        }
        // Counted once per request: a labelled counter costs a registry
        // lookup per call.
        if out.accepted > 0 {
            metrics::events_accepted(u64::from(out.accepted));
        }
        if queue_full {
            // Never a 200 for a split batch: the client retries all of it
            // (the events already queued may then arrive twice).
            return Err(IngestError::Unavailable);
        }
        Ok((out, appended))
    }

    /// Sends one accepted record: into the request's spool batch, or
    /// straight to the producer with the spool off.
    fn emit(
        &self,
        sending: &mut Sending,
        topic: &str,
        key: &[u8],
        value: &[u8],
        headers: &RecordHeaders<'_>,
    ) -> Result<(), SinkError> {
        match sending {
            Sending::Direct => self
                .sink
                .send(topic, Some(key), value, headers, RecordKind::Event),
            Sending::Spool(batch, _) => {
                let h: [(&str, Option<&[u8]>); 3] = [
                    (crate::route::HEADER_SOURCE, Some(headers.source.as_bytes())),
                    (
                        crate::route::HEADER_TYPE,
                        Some(headers.event_type.as_bytes()),
                    ),
                    (
                        crate::route::HEADER_PRODUCER,
                        Some(crate::route::PRODUCER_VERSION.as_bytes()),
                    ),
                ];
                batch.begin_record(topic, Some(key), &h);
                batch.buf.extend_from_slice(value);
                batch.finish_record();
                Ok(())
            }
        }
    }

    fn prepare(
        &self,
        raw: RawEvent<'_>,
        implied: Option<EventType>,
        meta: &RequestMeta<'_>,
    ) -> Result<(Event, bool), RejectReason> {
        prepare_tracked(raw, implied, meta, &self.config.limits)
    }

    /// Writes a rejected event to the invalid topic: reason, source, the
    /// size of the event as received, `violations` for a tracking-plan
    /// block, and the payload the privacy stage allowed (see
    /// `privacy.invalid_payload`), truncated to
    /// `limits.invalid_payload_bytes`; without one, `payloadOmitted: true`.
    /// One event dropped by policy: counted, and shown in the inspector.
    fn count_dropped(&self, out: &mut Outcome, source_id: &str, reason: &'static str) {
        metrics::event_dropped(reason);
        self.inspector.dropped(source_id, reason, 1);
        out.dropped += 1;
    }

    /// One event rejected for `why`, whose JSON text is `text`: the privacy
    /// rules decide whether it is dropped instead (its visitor opted out)
    /// or reported on the invalid topic, and with which payload.
    fn reject(
        &self,
        out: &mut Outcome,
        why: Invalid,
        text: &str,
        meta: &RequestMeta<'_>,
        buf: &mut Vec<u8>,
    ) {
        match self.privacy.rejected(text, meta) {
            Rejected::Drop(reason) => self.count_dropped(out, meta.source_id, reason),
            Rejected::Report(payload) => {
                metrics::event_rejected(why.code);
                out.rejected += 1;
                self.send_invalid(why, text.len(), payload, meta, buf);
            }
        }
    }

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
        let headers = RecordHeaders {
            source: meta.source_id,
            event_type: "invalid",
            reason: Some(why.code),
        };
        let topic = self.router.invalid_topic();
        match self
            .sink
            .send(topic, None, buf, &headers, RecordKind::Invalid)
        {
            Ok(()) => self.inspector.rejected(meta.source_id, why.code, buf),
            Err(e) => {
                metrics::delivery(false, true, 1);
                tracing::warn!(error = %e, "could not enqueue an invalid-topic record");
            }
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
    let max = limits_cfg.max_event_bytes;
    let max_depth = limits_cfg.max_json_depth;
    let too_deep = |t: &str| t.len() <= max && limits::json_too_deep(t.as_bytes(), max_depth);
    let mut ev = match raw {
        RawEvent::Json(t) if too_deep(t) => return Err(RejectReason::TooDeep),
        RawEvent::Json(t) => Event::parse(t, implied, max)?,
        RawEvent::Parsed(map, t) => {
            if t.len() > max {
                return Err(RejectReason::EventTooLarge);
            }
            if too_deep(t) {
                return Err(RejectReason::TooDeep);
            }
            Event::from_object(map, implied)?
        }
        RawEvent::Undecodable(_, reason) => return Err(reason),
    };
    // `Event` validation left `messageId` absent or a non-empty string.
    let client_message_id = matches!(ev.body.get("messageId"), Some(Value::String(_)));
    normalize::normalize(&mut ev, meta, limits_cfg.clock_skew_window())?;
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
    use super::truncate_at_char_boundary;

    #[test]
    fn truncation_respects_utf8() {
        assert_eq!(truncate_at_char_boundary("héllo", 2), "h");
        assert_eq!(truncate_at_char_boundary("héllo", 3), "hé");
        assert_eq!(truncate_at_char_boundary("abc", 10), "abc");
    }
}
