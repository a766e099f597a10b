//! The part of the pipeline that needs no broker: an event's size, depth
//! and shape are validated, then `normalize` enriches it.
//!
//! An event's size is that of the record it makes: its text with the batch
//! `context` merged in (counted whole, see `limits::output`), within
//! `limits.max_event_bytes`, which the configuration keeps below what the
//! producer can send.

use crate::json::{self, Value};

use super::RawEvent;
use crate::config::LimitsConfig;
use crate::event::{Event, EventType, RejectReason};
use crate::limits;
use crate::normalize::{self, RequestMeta, RequestTexts};
use crate::quality::dedup::ClientIds;

/// Validates (size, depth, shape) and normalizes one raw event: the part
/// of the pipeline that needs no broker.
pub fn prepare<'a>(
    raw: RawEvent<'a>,
    implied: Option<EventType>,
    meta: &RequestMeta<'a>,
    limits_cfg: &LimitsConfig,
) -> Result<Event<'a>, RejectReason> {
    prepare_tracked(raw, implied, meta, limits_cfg).map(|(ev, _)| ev)
}

/// [`prepare`], also giving the ids the client sent when it sent a
/// `messageId` (before `normalize` generates one for events without it,
/// and before privacy changes anything): what duplicates are found by.
pub fn prepare_tracked<'a>(
    raw: RawEvent<'a>,
    implied: Option<EventType>,
    meta: &RequestMeta<'a>,
    limits_cfg: &LimitsConfig,
) -> Result<(Event<'a>, Option<ClientIds<'a>>), RejectReason> {
    let context = limits::output::context_size(meta.batch_context);
    prepare_in(
        raw,
        implied,
        meta,
        limits_cfg,
        &RequestTexts::of(meta),
        context.bytes,
    )
}

/// [`prepare_tracked`] with the request's texts written already.
pub(super) fn prepare_in<'a>(
    raw: RawEvent<'a>,
    implied: Option<EventType>,
    meta: &RequestMeta<'a>,
    limits_cfg: &LimitsConfig,
    texts: &RequestTexts,
    context_bytes: u64,
) -> Result<(Event<'a>, Option<ClientIds<'a>>), RejectReason> {
    let max = limits_cfg.max_event_bytes as u64;
    let too_large = |t: &str| t.len() as u64 + context_bytes > max;
    let max_depth = limits_cfg.max_json_depth;
    // Depth is checked on the parsed tree: the parser's own recursion limit
    // keeps parsing safe, and walking the tree costs far less than a second
    // scan of the text. Text too deep for the parser is still `too_deep`.
    let mut ev = match raw {
        RawEvent::Json(t) => {
            if too_large(t) {
                return Err(RejectReason::EventTooLarge);
            }
            let value = match json::from_str(t) {
                Ok(v) => v,
                Err(_) if limits::json_too_deep(t.as_bytes(), max_depth) => {
                    return Err(RejectReason::TooDeep)
                }
                Err(e) if e.kind == json::ErrorKind::ControlCharacter => {
                    return Err(RejectReason::ControlCharacter)
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
            if too_large(t) {
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
    let client_ids = ClientIds::of(&ev.body);
    normalize::normalize_with(&mut ev, meta, texts, limits_cfg.clock_skew_window())?;
    Ok((ev, client_ids))
}
