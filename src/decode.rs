//! Decoding a request body into raw events.
//!
//! A batch is split into borrowed slices of the body (`&RawValue`), so an
//! event is parsed only once, on its own, and one malformed event does not
//! spoil its neighbours.
//!
//! One rule for fields of the wrong type or format: a field rejects what it
//! belongs to. A batch envelope field (`batch`, `sentAt`, `context`,
//! `writeKey`) belongs to the request, which gets 400 `invalid_batch` naming
//! the field; an event's own field rejects that event alone (see `event`
//! and `normalize`). `null` is the same as absent.

use crate::json::{Map, Value};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("body must be a JSON object with a `batch` array")]
    InvalidBatch,
    #[error("batch `{0}` must be {1}")]
    InvalidEnvelopeField(&'static str, &'static str),
    #[error("body must be a JSON object")]
    NotAnObject,
}

/// A `/v1/batch` body.
#[derive(Debug)]
pub struct Batch<'a> {
    pub events: Vec<&'a RawValue>,
    pub sent_at: Option<String>,
    pub write_key: Option<String>,
    /// The batch-level `context`, borrowing from the body.
    pub context: Option<Map<'a>>,
}

/// The envelope, with the events split out in the same pass that reads it.
#[derive(Deserialize)]
struct BatchEnvelope<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt", default, borrow)]
    sent_at: Option<Value<'a>>,
    #[serde(rename = "writeKey", default, borrow)]
    write_key: Option<Value<'a>>,
    #[serde(default, borrow)]
    context: Option<Value<'a>>,
}

pub fn batch(body: &[u8]) -> Result<Batch<'_>, DecodeError> {
    let env: BatchEnvelope<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            DecodeError::InvalidBatch
        } else {
            DecodeError::InvalidJson(e.to_string())
        }
    })?;
    let events = env.batch.ok_or(DecodeError::InvalidBatch)?;
    let sent_at = match env.sent_at {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if crate::normalize::parse_time_str(&s).is_ok() => {
            Some(s.into_owned())
        }
        Some(_) => {
            return Err(DecodeError::InvalidEnvelopeField(
                "sentAt",
                "an RFC 3339 date-time with a year of 0000-9999",
            ))
        }
    };
    let write_key = match env.write_key {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.into_owned()).filter(|s| !s.is_empty()),
        Some(_) => return Err(DecodeError::InvalidEnvelopeField("writeKey", "a string")),
    };
    let context = match env.context {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(DecodeError::InvalidEnvelopeField("context", "an object")),
    };
    Ok(Batch {
        events,
        sent_at,
        write_key,
        context,
    })
}

/// A single-event body (`/v1/track` …).
#[derive(Debug)]
pub struct Single<'a> {
    /// The event object, borrowing from the body.
    pub event: Map<'a>,
    pub write_key: Option<String>,
    /// The body as text (the event's JSON text).
    pub text: &'a str,
}

pub fn single(body: &[u8]) -> Result<Single<'_>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let v = crate::json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let Value::Object(map) = v else {
        return Err(DecodeError::NotAnObject);
    };
    let write_key = match map.get("writeKey") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.to_string()),
        _ => None,
    };
    Ok(Single {
        event: map,
        write_key,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_splits_into_raw_events() {
        let body = br#"{"batch":[{"type":"page"}, 7, {"x":[1,2]}],"sentAt":"2026-01-01T00:00:00Z","writeKey":"k","context":{"a":1}}"#;
        let b = batch(body).unwrap();
        let raws: Vec<&str> = b.events.iter().map(|r| r.get()).collect();
        assert_eq!(raws, vec![r#"{"type":"page"}"#, "7", r#"{"x":[1,2]}"#]);
        assert_eq!(b.sent_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(b.write_key.as_deref(), Some("k"));
        assert_eq!(b.context.unwrap()["a"], 1);
    }

    #[test]
    fn batch_errors() {
        assert_eq!(
            batch(br#"{"nobatch":1}"#).unwrap_err(),
            DecodeError::InvalidBatch
        );
        assert_eq!(
            batch(br#"{"batch":{}}"#).unwrap_err(),
            DecodeError::InvalidBatch
        );
        assert_eq!(batch(br#"[1]"#).unwrap_err(), DecodeError::InvalidBatch);
        assert_eq!(
            batch(br#"{"batch":null}"#).unwrap_err(),
            DecodeError::InvalidBatch
        );
        assert!(matches!(
            batch(br#"{"batch":["#),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            batch(b"{\"batch\":[\"\xff\"]}"),
            Err(DecodeError::InvalidJson(_))
        ));
    }

    #[test]
    fn envelope_fields_of_the_wrong_type_or_format_reject_the_request() {
        let field = |body: &[u8]| match batch(body) {
            Err(DecodeError::InvalidEnvelopeField(f, _)) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(br#"{"batch":[],"sentAt":5}"#), "sentAt");
        assert_eq!(field(br#"{"batch":[],"sentAt":"yesterday"}"#), "sentAt");
        assert_eq!(
            field(br#"{"batch":[],"sentAt":"9999-12-31T23:59:59-01:00"}"#),
            "sentAt"
        );
        assert_eq!(field(br#"{"batch":[],"context":"web"}"#), "context");
        assert_eq!(field(br#"{"batch":[],"context":[]}"#), "context");
        assert_eq!(field(br#"{"batch":[],"writeKey":7}"#), "writeKey");
        let b = batch(br#"{"batch":[],"sentAt":null,"context":null,"writeKey":null}"#).unwrap();
        assert!(b.sent_at.is_none() && b.context.is_none() && b.write_key.is_none());
    }

    #[test]
    fn single_extracts_write_key() {
        let Single {
            event: m,
            write_key: k,
            ..
        } = single(br#"{"type":"track","writeKey":"wk"}"#).unwrap();
        assert_eq!(k.as_deref(), Some("wk"));
        assert_eq!(m["type"], "track");
        assert_eq!(single(b"[]").unwrap_err(), DecodeError::NotAnObject);
    }
}
