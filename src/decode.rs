//! Decoding a request body into raw events.
//!
//! A batch is split into borrowed slices of the body, so an event is
//! parsed only once, on its own, and one malformed event does not spoil
//! its neighbours. The split checks the JSON structure in full but not the
//! content of strings: an event whose bytes are not UTF-8 is rejected on
//! its own (`invalid_utf8`), and one with a raw control character or a bad
//! escape in a string is rejected by its own parse. Only text whose
//! structure is broken (where no one can say where an event ends) fails
//! the request, and the answer names the byte.
//!
//! One rule for fields of the wrong type or format: a field rejects what it
//! belongs to. A batch envelope field (`batch`, `sentAt`, `context`,
//! `writeKey`) belongs to the request, which gets 400 `invalid_batch` naming
//! the field; an event's own field rejects that event alone (see `event`
//! and `normalize`). `null` is the same as absent.

use crate::json::{self, Map, ParseError, Value};

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

impl From<ParseError> for DecodeError {
    fn from(e: ParseError) -> DecodeError {
        DecodeError::InvalidJson(e.to_string())
    }
}

/// One event of a batch, as found in the body.
#[derive(Debug, PartialEq, Eq)]
pub enum EventText<'a> {
    /// The event's JSON text (UTF-8; parsed later, on its own).
    Json(&'a str),
    /// The event's bytes are not UTF-8: it is rejected on its own. `text`
    /// has each invalid sequence replaced by U+FFFD (for the invalid
    /// topic); `at` is the body offset of the first invalid byte.
    InvalidUtf8 { text: String, at: usize },
}

impl<'a> EventText<'a> {
    /// The event's JSON text when it is UTF-8.
    pub fn json(&self) -> Option<&'a str> {
        match self {
            EventText::Json(t) => Some(t),
            EventText::InvalidUtf8 { .. } => None,
        }
    }

    /// The event's text (with U+FFFD for invalid bytes).
    pub fn text(&self) -> &str {
        match self {
            EventText::Json(t) => t,
            EventText::InvalidUtf8 { text, .. } => text,
        }
    }
}

/// A `/v1/batch` body.
#[derive(Debug)]
pub struct Batch<'a> {
    pub events: Vec<EventText<'a>>,
    pub sent_at: Option<String>,
    pub write_key: Option<String>,
    /// The batch-level `context`, borrowing from the body.
    pub context: Option<Map<'a>>,
}

/// The envelope fields the gateway reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Batch,
    SentAt,
    WriteKey,
    Context,
    Other,
}

impl Field {
    fn of(name: &[u8]) -> Field {
        match name {
            b"batch" => Field::Batch,
            b"sentAt" => Field::SentAt,
            b"writeKey" => Field::WriteKey,
            b"context" => Field::Context,
            _ => Field::Other,
        }
    }
}

/// The envelope's fields as found: the events split out, the other values
/// parsed (`None` when absent).
#[derive(Default)]
struct Envelope<'a> {
    events: Option<Vec<EventText<'a>>>,
    sent_at: Option<Value<'a>>,
    write_key: Option<Value<'a>>,
    context: Option<Value<'a>>,
    /// A field was given twice, or `batch` is not an array.
    malformed: bool,
}

pub fn batch(body: &[u8]) -> Result<Batch<'_>, DecodeError> {
    let env = envelope(body)?;
    if env.malformed {
        return Err(DecodeError::InvalidBatch);
    }
    let events = env.events.ok_or(DecodeError::InvalidBatch)?;
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

/// Reads the envelope in one pass. Broken structure anywhere is
/// `InvalidJson` naming the byte; a body that is valid JSON but not an
/// object is `InvalidBatch`.
fn envelope(body: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let start = json::skip_ws(body, 0);
    if body.get(start) != Some(&b'{') {
        let end = json::skip_value(body, start)?;
        trailing(body, end)?;
        return Err(DecodeError::InvalidBatch);
    }
    let mut env = Envelope::default();
    let mut i = json::skip_ws(body, start + 1);
    if body.get(i) == Some(&b'}') {
        trailing(body, i + 1)?;
        return Ok(env);
    }
    loop {
        i = json::skip_ws(body, i);
        if body.get(i) != Some(&b'"') {
            return Err(expected(body, i, "an object key"));
        }
        let key_end = json::skip_string(body, i)?;
        let field = field_named(body, i, key_end)?;
        i = json::skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return Err(expected(body, i, "':'"));
        }
        let value_start = json::skip_ws(body, i + 1);
        i = match field {
            Field::Batch => {
                let (events, end) = events(body, value_start)?;
                env.malformed |= events.is_none() || env.events.is_some();
                env.events = events.or(env.events.take());
                end
            }
            Field::Other => json::skip_value(body, value_start)?,
            _ => {
                let end = json::skip_value(body, value_start)?;
                let value = parse_at(body, value_start, end)?;
                let slot = match field {
                    Field::SentAt => &mut env.sent_at,
                    Field::WriteKey => &mut env.write_key,
                    _ => &mut env.context,
                };
                env.malformed |= slot.is_some();
                *slot = Some(value);
                end
            }
        };
        i = json::skip_ws(body, i);
        match body.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return Err(expected(body, i, "',' or '}'")),
        }
    }
    trailing(body, i + 1)?;
    Ok(env)
}

/// The `batch` value at `start`: its events when it is an array, and where
/// it ends.
#[allow(clippy::type_complexity)]
fn events(body: &[u8], start: usize) -> Result<(Option<Vec<EventText<'_>>>, usize), DecodeError> {
    if body.get(start) != Some(&b'[') {
        return Ok((None, json::skip_value(body, start)?));
    }
    let mut events = Vec::new();
    let mut i = json::skip_ws(body, start + 1);
    if body.get(i) == Some(&b']') {
        return Ok((Some(events), i + 1));
    }
    loop {
        let from = json::skip_ws(body, i);
        let to = json::skip_value(body, from)?;
        events.push(event_text(body, from, to));
        i = json::skip_ws(body, to);
        match body.get(i) {
            Some(b',') => i += 1,
            Some(b']') => return Ok((Some(events), i + 1)),
            _ => return Err(expected(body, i, "',' or ']'")),
        }
    }
}

fn event_text(body: &[u8], from: usize, to: usize) -> EventText<'_> {
    let bytes = &body[from..to];
    match std::str::from_utf8(bytes) {
        Ok(text) => EventText::Json(text),
        Err(e) => EventText::InvalidUtf8 {
            text: String::from_utf8_lossy(bytes).into_owned(),
            at: from + e.valid_up_to(),
        },
    }
}

/// The envelope key whose quoted text spans `from..to`.
fn field_named(body: &[u8], from: usize, to: usize) -> Result<Field, DecodeError> {
    let name = &body[from + 1..to - 1];
    if !name.contains(&b'\\') {
        return Ok(Field::of(name));
    }
    match parse_at(body, from, to)? {
        Value::String(s) => Ok(Field::of(s.as_bytes())),
        _ => Ok(Field::Other),
    }
}

/// Parses the value spanning `from..to` of the body.
fn parse_at(body: &[u8], from: usize, to: usize) -> Result<Value<'_>, DecodeError> {
    let text = std::str::from_utf8(&body[from..to]).map_err(|e| {
        DecodeError::InvalidJson(format!("invalid UTF-8 at byte {}", from + e.valid_up_to()))
    })?;
    json::from_str(text).map_err(|e| e.shifted(from).into())
}

fn expected(body: &[u8], at: usize, what: &'static str) -> DecodeError {
    let kind = if at >= body.len() {
        json::ErrorKind::Eof
    } else {
        json::ErrorKind::Expected(what)
    };
    ParseError { kind, at }.into()
}

/// Only whitespace may follow the envelope.
fn trailing(body: &[u8], end: usize) -> Result<(), DecodeError> {
    let at = json::skip_ws(body, end);
    if at < body.len() {
        return Err(ParseError {
            kind: json::ErrorKind::TrailingCharacters,
            at,
        }
        .into());
    }
    Ok(())
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
    let text = std::str::from_utf8(body).map_err(|e| {
        DecodeError::InvalidJson(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    let v = crate::json::from_str(text)?;
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
        let raws: Vec<&EventText<'_>> = b.events.iter().collect();
        assert_eq!(
            raws,
            [
                &EventText::Json(r#"{"type":"page"}"#),
                &EventText::Json("7"),
                &EventText::Json(r#"{"x":[1,2]}"#)
            ]
        );
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
        // Broken structure cannot be split: the answer names the byte.
        assert_eq!(
            batch(br#"{"batch":[{"a":1},{"b" 2}]}"#).unwrap_err(),
            DecodeError::InvalidJson("expected ':' at byte 23".into())
        );
        assert_eq!(
            batch(b"{\"batch\":[],\xff:1}").unwrap_err(),
            DecodeError::InvalidJson("expected an object key at byte 12".into())
        );
        assert_eq!(
            batch(br#"{"batch":[]} x"#).unwrap_err(),
            DecodeError::InvalidJson("trailing characters after the value at byte 13".into())
        );
        assert_eq!(
            batch(br#"{"batch":[],"batch":[]}"#).unwrap_err(),
            DecodeError::InvalidBatch
        );
        assert_eq!(batch(b"42").unwrap_err(), DecodeError::InvalidBatch);
        assert!(matches!(batch(b"<a/>"), Err(DecodeError::InvalidJson(_))));
    }

    #[test]
    fn a_broken_string_is_its_own_events_problem_not_the_batchs() {
        // Invalid UTF-8, a raw control character, a bad escape and a lone
        // surrogate inside strings: the split still finds every event.
        let body = b"{\"batch\":[{\"a\":\"\xff\"},{\"b\":\"x\ny\"},{\"c\":\"\\q\"},{\"d\":\"\\ud83d\"},{\"e\":1}]}";
        let b = batch(body).unwrap();
        assert_eq!(b.events.len(), 5);
        assert_eq!(
            b.events[0],
            EventText::InvalidUtf8 {
                text: "{\"a\":\"\u{fffd}\"}".into(),
                at: 16
            }
        );
        assert_eq!(b.events[1], EventText::Json("{\"b\":\"x\ny\"}"));
        assert_eq!(b.events[2], EventText::Json(r#"{"c":"\q"}"#));
        assert_eq!(b.events[4], EventText::Json(r#"{"e":1}"#));
        // An escaped envelope key is read by its value.
        let b = batch(br#"{"b\u0061tch":[1]}"#).unwrap();
        assert_eq!(b.events, [EventText::Json("1")]);
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
