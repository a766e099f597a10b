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
use crate::config::Config;
use crate::event::{EventType, RejectReason};
use crate::inspect::Inspector;
use crate::limits::output;
use crate::metrics;
use crate::normalize::{format_time, RequestMeta, RequestTexts};
use crate::privacy::{PrivacyStage, Rejected, RequestAddress, Verdict};
use crate::quality::{self, QualityError, QualityStage, Recorded};
use crate::route::Router;
use crate::sink::{Record, RecordKind, Sink, SinkError};
use crate::spool::{Appended, Batch, Spool};

mod prepare;
mod record;
mod tally;

use prepare::prepare_in;
pub use prepare::{prepare, prepare_tracked};
use record::{truncate_at_char_boundary, write_record, Invalid, WriteError};
use tally::{Disposition, Tally};

/// Reason label of events refused because the producer queue filled up
/// in the middle of their request.
pub const REASON_QUEUE_FULL: &str = "queue_full";
/// Reason label of events the producer refused for another reason (e.g. a
/// record over the broker's size limit).
pub const REASON_PRODUCE_ERROR: &str = "produce_error";
/// Reason label of events whose record came out larger than the producer
/// sends (`kafka.properties."message.max.bytes"`): rejected rather than
/// answered 200 and then refused by the producer.
pub const REASON_RECORD_TOO_LARGE: &str = "record_too_large";
/// Reason label of events whose request could not be written to the spool
/// after all (disk error, or records larger than the reservation and no
/// room left); the request gets 503.
pub const REASON_SPOOL_UNAVAILABLE: &str = "spool_unavailable";

/// What a record usually adds to its event's text (the gateway's fields,
/// topic, key, headers and framing): the request's spool batch is sized
/// with it up front.
const RECORD_ALLOWANCE_PER_EVENT: usize = 512;

/// One event as the HTTP layer hands it over.
pub enum RawEvent<'a> {
    /// JSON text of the event (a slice of the request body).
    Json(&'a str),
    /// An event the HTTP layer already parsed (single-event endpoints), with
    /// its JSON text for size checks and the invalid topic.
    Parsed(crate::json::Map<'a>, &'a str),
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
    /// The largest record the producer sends (`message.max.bytes`).
    pub max_record_bytes: u64,
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
        // Validated at load; the default if the configuration was built in code.
        let max_record_bytes = config
            .producer_message_max_bytes()
            .unwrap_or(crate::config::DEFAULT_MESSAGE_MAX_BYTES);
        Pipeline {
            max_record_bytes,
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
        if let Some((a, recorded)) = appended {
            // On the spool already; only the fsync is awaited. A spool closed
            // meanwhile still holds the records: the client may retry.
            if let Err(e) = a.durable().await {
                tracing::warn!(error = %e, "a request's records are written but not durable");
                // The client sends them again: its retry must be taken (and
                // written durably), not dropped as a duplicate of records
                // whose fsync failed. Consumers drop the copy by messageId.
                for r in recorded {
                    self.quality.unrecord(meta.source_id, r);
                }
                return Err(IngestError::Unavailable);
            }
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
    ) -> Result<(Outcome, Option<(Appended, Vec<Recorded>)>), IngestError> {
        let text_bytes: u64 = events.iter().map(|r| raw_text(r).len() as u64).sum();
        // What the records will take, the batch context merged into each:
        // the figure the HTTP layer charged (see `limits::output`).
        let context = output::context_size(meta.batch_context);
        let out = output::output_bytes(
            text_bytes,
            events.len() as u64,
            output::per_record_bytes(context, meta.user_agent),
        );
        let reservation = match &self.spool {
            Some(spool) => Some(spool.reserve(out).map_err(|_| IngestError::Unavailable)?),
            None => {
                if !self.sink.has_room(events.len() as u64, out) {
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
                Some(_) => Sending::Spool(
                    Batch::with_capacity(
                        text_bytes as usize + events.len() * RECORD_ALLOWANCE_PER_EVENT,
                        events.len(),
                    ),
                    Vec::new(),
                ),
                None => Sending::Direct,
            },
            buf: Vec::with_capacity(1024),
            queue_full: false,
            bot_policy: self.bots.policy(meta.source_id),
            agent: self.bots.agent(meta.source_id, meta.user_agent),
            address: RequestAddress::default(),
            texts: RequestTexts::of(meta),
            context_bytes: context.bytes,
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
            (&mut work.sending, &self.spool, reservation)
        {
            match spool.append(batch, reservation) {
                Ok(a) => {
                    self.sink.count_spooled(a.events() as u64);
                    appended = Some((a, std::mem::take(recorded)));
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
        let (mut ev, client_ids) = match prepare_in(
            raw,
            implied,
            meta,
            &self.config.limits,
            &work.texts,
            work.context_bytes,
        ) {
            Ok(prepared) => prepared,
            Err(reason) => {
                let why = Invalid::new(reason.code(), reason.to_string());
                return self.reject(why, text, meta, work);
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
                self.send_invalid(why, text.len(), payload, meta, work);
                return Disposition::Rejected(reason.code());
            }
        }
        let recorded = match self.quality.apply(&mut ev, meta, client_ids.as_ref()) {
            quality::Verdict::Keep(recorded) => recorded,
            quality::Verdict::Drop(reason) => return Disposition::Dropped(reason),
            quality::Verdict::Block(violations) => {
                // The same path as any rejected event: the privacy rules
                // decide the payload the invalid topic may keep.
                let why = Invalid::schema_violation(&violations);
                return self.reject(why, text, meta, work);
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
            text,
            self.max_record_bytes,
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
            Err(WriteError::Sink(SinkError::QueueFull | SinkError::Closed)) => {
                unrecord();
                work.queue_full = true;
                Disposition::Rejected(REASON_QUEUE_FULL)
            }
            Err(e @ WriteError::TooLarge(_)) => {
                unrecord();
                let why = Invalid::new(REASON_RECORD_TOO_LARGE, e.to_string());
                self.reject(why, text, meta, work)
            }
            Err(e) => {
                unrecord();
                tracing::warn!(error = %e, topic, "produce failed");
                Disposition::Rejected(REASON_PRODUCE_ERROR)
            }
        }
    }

    /// One event rejected for `why`, whose JSON text is `text`: the privacy
    /// rules decide whether it is dropped instead (its visitor opted out)
    /// or reported on the invalid topic, and with which payload.
    fn reject(
        &self,
        why: Invalid,
        text: &str,
        meta: &RequestMeta<'_>,
        work: &mut RequestWork<'_>,
    ) -> Disposition {
        match self.privacy.rejected(text, meta) {
            Rejected::Drop(reason) => Disposition::Dropped(reason),
            Rejected::Report(payload) => {
                let code = why.code;
                self.send_invalid(why, text.len(), payload, meta, work);
                Disposition::Rejected(code)
            }
        }
    }

    /// Writes a rejected event to the invalid topic: reason, source, the
    /// size of the event as received, `violations` for a tracking-plan
    /// block, and the payload the privacy stage allowed (see
    /// `privacy.invalid_payload`), truncated to
    /// `limits.invalid_payload_bytes`; without one, `payloadOmitted: true`.
    ///
    /// With the spool on, the record goes into the request's spool batch
    /// like an accepted event's, so that it survives a broker outage and a
    /// crash; with it off, straight to the producer.
    fn send_invalid(
        &self,
        why: Invalid,
        received_bytes: usize,
        payload: Option<String>,
        meta: &RequestMeta<'_>,
        work: &mut RequestWork<'_>,
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
        let route = self.router.route_invalid(meta.source_id, why.code);
        if let Sending::Spool(batch, _) = &mut work.sending {
            batch.begin_record(RecordKind::Invalid, route.topic, None, &route.headers);
            let start = batch.buf.len();
            if serde_json::to_writer(&mut batch.buf, &record).is_err() {
                batch.abandon_record();
                return;
            }
            self.inspector
                .rejected(meta.source_id, why.code, &batch.buf[start..]);
            batch.finish_record();
            return;
        }
        let buf = &mut work.buf;
        buf.clear();
        if serde_json::to_writer(&mut *buf, &record).is_err() {
            return;
        }
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
    /// Bytes of the batch context merged into every event.
    context_bytes: u64,
}

/// The JSON text of a raw event, as received.
fn raw_text<'a>(raw: &RawEvent<'a>) -> &'a str {
    match raw {
        RawEvent::Json(t) | RawEvent::Parsed(_, t) | RawEvent::Undecodable(t, _) => t,
    }
}

#[cfg(test)]
mod tests;
