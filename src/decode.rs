//! Decoding a request body into raw events.
//!
//! A batch is split into borrowed slices of the body (`&RawValue`), so an
//! event is parsed only once, on its own, and one malformed event does not
//! spoil its neighbours.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("body must be a JSON object with a `batch` array")]
    InvalidBatch,
    #[error("body must be a JSON object")]
    NotAnObject,
}

/// A `/v1/batch` body.
#[derive(Debug)]
pub struct Batch<'a> {
    pub events: Vec<&'a RawValue>,
    pub sent_at: Option<String>,
    pub write_key: Option<String>,
    pub context: Option<Map<String, Value>>,
}

/// The envelope, with the events split out in the same pass that reads it.
#[derive(Deserialize)]
struct BatchEnvelope<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<Value>,
    #[serde(rename = "writeKey", default)]
    write_key: Option<Value>,
    #[serde(default)]
    context: Option<Value>,
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
    Ok(Batch {
        events,
        sent_at: match env.sent_at {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        write_key: match env.write_key {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        },
        context: match env.context {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        },
    })
}

/// A single-event body (`/v1/track` …): the event object and its write key.
pub fn single(body: &[u8]) -> Result<(Map<String, Value>, Option<String>), DecodeError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let Value::Object(map) = v else {
        return Err(DecodeError::NotAnObject);
    };
    let key = match map.get("writeKey") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Ok((map, key))
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
    fn single_extracts_write_key() {
        let (m, k) = single(br#"{"type":"track","writeKey":"wk"}"#).unwrap();
        assert_eq!(k.as_deref(), Some("wk"));
        assert_eq!(m["type"], "track");
        assert_eq!(single(b"[]").unwrap_err(), DecodeError::NotAnObject);
    }
}
