//! The event types and their validation.
//!
//! A request body is first split into raw events (borrowed slices of the
//! body, see `decode`); each raw event is then parsed and validated here on
//! its own, so one bad event is rejected with its reason while the rest of
//! its batch goes on.

use crate::json::{Map, Value};

/// Longest `messageId` kept as sent.
pub const MAX_MESSAGE_ID_LEN: usize = 100;
/// Longest identity field (`userId`, `anonymousId`, `groupId`, `previousId`).
pub const MAX_ID_LEN: usize = 256;

/// The six Segment event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Page,
    Screen,
    Track,
    Identify,
    Group,
    Alias,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Page,
        EventType::Screen,
        EventType::Track,
        EventType::Identify,
        EventType::Group,
        EventType::Alias,
    ];

    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "page" => EventType::Page,
            "screen" => EventType::Screen,
            "track" => EventType::Track,
            "identify" => EventType::Identify,
            "group" => EventType::Group,
            "alias" => EventType::Alias,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }
}

/// Why one event was rejected. `code()` is the stable reason written to the
/// invalid topic and used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("event is larger than the per-event limit")]
    EventTooLarge,
    #[error("event is not valid JSON")]
    InvalidJson,
    #[error("event text is not valid UTF-8")]
    InvalidUtf8,
    #[error("a string in the event holds a raw control character (it must be escaped)")]
    ControlCharacter,
    #[error("event is not a JSON object")]
    NotAnObject,
    #[error("event has no `type`")]
    MissingType,
    #[error("`type` is not one of page, screen, track, identify, group, alias")]
    InvalidType,
    #[error("event has neither `anonymousId` nor `userId`")]
    MissingIdentity,
    #[error("`anonymousId` or `userId` is not a non-empty string of at most 256 characters")]
    InvalidIdentity,
    #[error("`groupId` or `previousId` is not a string or number of at most 256 characters")]
    InvalidIdField,
    #[error("an identity field is or holds personal data and the source rejects such events")]
    IdentityPii,
    #[error("`messageId` is not a string of at most 100 characters")]
    InvalidMessageId,
    #[error("a timestamp is not an ISO-8601 date-time")]
    InvalidTimestamp,
    #[error("`track` event has no `event` name")]
    MissingEventName,
    #[error("`context`, `properties` or `traits` is not an object, or `name` or `event` is not a string")]
    InvalidFieldType,
    #[error("event nests objects or arrays deeper than the limit")]
    TooDeep,
}

impl RejectReason {
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::EventTooLarge => "event_too_large",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::ControlCharacter => "control_character",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingType => "missing_type",
            RejectReason::InvalidType => "invalid_type",
            RejectReason::MissingIdentity => "missing_identity",
            RejectReason::InvalidIdentity => "invalid_identity",
            RejectReason::InvalidIdField => "invalid_id_field",
            RejectReason::IdentityPii => "identity_pii",
            RejectReason::InvalidMessageId => "invalid_message_id",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::MissingEventName => "missing_event_name",
            RejectReason::InvalidFieldType => "invalid_field_type",
            RejectReason::TooDeep => "too_deep",
        }
    }
}

/// One validated event: its type and its JSON object, which later stages
/// enrich and scrub in place before it is serialized once for Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub kind: EventType,
    /// Borrows its strings and keys from the request body.
    pub body: Map<'a>,
}

impl<'a> Event<'a> {
    /// Parses and validates one raw event. `implied` is the type named by a
    /// single-event endpoint (`/v1/track` …), which wins over the body's.
    pub fn parse(
        raw: &'a str,
        implied: Option<EventType>,
        max_bytes: usize,
    ) -> Result<Event<'a>, RejectReason> {
        if raw.len() > max_bytes {
            return Err(RejectReason::EventTooLarge);
        }
        let value = crate::json::from_str(raw).map_err(|_| RejectReason::InvalidJson)?;
        let Value::Object(body) = value else {
            return Err(RejectReason::NotAnObject);
        };
        Event::from_object(body, implied)
    }

    /// Validates an already parsed object.
    pub fn from_object(
        mut body: Map<'a>,
        implied: Option<EventType>,
    ) -> Result<Event<'a>, RejectReason> {
        let kind = match implied {
            Some(t) => {
                body.insert("type", Value::from(t.as_str()));
                t
            }
            None => match body.get("type") {
                None | Some(Value::Null) => return Err(RejectReason::MissingType),
                Some(Value::String(s)) => EventType::parse(s).ok_or(RejectReason::InvalidType)?,
                Some(_) => return Err(RejectReason::InvalidType),
            },
        };
        let user = normalize_id(&mut body, "userId").ok_or(RejectReason::InvalidIdentity)?;
        let anon = normalize_id(&mut body, "anonymousId").ok_or(RejectReason::InvalidIdentity)?;
        if !user && !anon {
            return Err(RejectReason::MissingIdentity);
        }
        for field in ["groupId", "previousId"] {
            normalize_id(&mut body, field).ok_or(RejectReason::InvalidIdField)?;
        }
        for field in ["context", "properties", "traits"] {
            match body.get(field) {
                None | Some(Value::Object(_)) => {}
                Some(Value::Null) => {
                    body.remove(field);
                }
                Some(_) => return Err(RejectReason::InvalidFieldType),
            }
        }
        if kind == EventType::Track {
            match body.get("event") {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => return Err(RejectReason::MissingEventName),
            }
        }
        // The documented string fields (docs/openapi.yaml, `Event`).
        match body.get("event") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => return Err(RejectReason::InvalidFieldType),
        }
        match body.get("name") {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => return Err(RejectReason::InvalidFieldType),
        }
        match body.get("messageId") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_MESSAGE_ID_LEN => {}
            Some(_) => return Err(RejectReason::InvalidMessageId),
        }
        Ok(Event { kind, body })
    }

    /// The same event owning all of its text.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            kind: self.kind,
            body: self.body.into_owned(),
        }
    }

    /// The visitor identity used as the record key: `userId`, else `anonymousId`.
    pub fn visitor_key(&self) -> Option<&str> {
        self.body
            .get("userId")
            .and_then(Value::as_str)
            .or_else(|| self.body.get("anonymousId").and_then(Value::as_str))
    }

    /// The `event` name of a `track` event.
    pub fn name(&self) -> Option<&str> {
        self.body.get("event").and_then(Value::as_str)
    }

    /// The `context` object, created when absent. Allocates nothing when it
    /// exists (`Map::entry` would allocate the key every time).
    pub fn context_mut(&mut self) -> &mut Map<'a> {
        if !matches!(self.body.get("context"), Some(Value::Object(_))) {
            self.body.insert("context", Value::Object(Map::new()));
        }
        match self.body.get_mut("context") {
            Some(Value::Object(m)) => m,
            _ => unreachable!("inserted as an object above"),
        }
    }
}

/// Accepts a string of at most [`MAX_ID_LEN`] characters or a number (some
/// server-side libraries send numeric ids) and stores it as a string; an
/// empty string or `null` is removed. Returns whether it is present, `None`
/// when it is of another type or too long.
fn normalize_id(body: &mut Map<'_>, field: &'static str) -> Option<bool> {
    let replacement = match body.get(field) {
        None => return Some(false),
        Some(Value::Null) => {
            body.remove(field);
            return Some(false);
        }
        Some(Value::String(s)) if s.is_empty() => {
            body.remove(field);
            return Some(false);
        }
        Some(Value::String(s)) if s.chars().count() <= MAX_ID_LEN => return Some(true),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return None,
    };
    body.insert(field, Value::from(replacement));
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Event<'_>, RejectReason> {
        Event::parse(raw, None, 32 * 1024)
    }

    #[test]
    fn valid_events_of_each_type() {
        for t in EventType::ALL {
            let extra = if t == EventType::Track {
                r#","event":"x""#
            } else {
                ""
            };
            let raw = format!(r#"{{"type":"{}","anonymousId":"a"{extra}}}"#, t.as_str());
            assert_eq!(parse(&raw).unwrap().kind, t);
        }
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            (r#"[1]"#, RejectReason::NotAnObject),
            (r#"{"type":"page""#, RejectReason::InvalidJson),
            (r#"{"anonymousId":"a"}"#, RejectReason::MissingType),
            (
                r#"{"type":"pageview","anonymousId":"a"}"#,
                RejectReason::InvalidType,
            ),
            (r#"{"type":7,"anonymousId":"a"}"#, RejectReason::InvalidType),
            (r#"{"type":"page"}"#, RejectReason::MissingIdentity),
            (
                r#"{"type":"page","userId":"","anonymousId":null}"#,
                RejectReason::MissingIdentity,
            ),
            (
                r#"{"type":"page","userId":{"a":1}}"#,
                RejectReason::InvalidIdentity,
            ),
            (
                r#"{"type":"group","userId":"u","groupId":{"email":"a@b.co"}}"#,
                RejectReason::InvalidIdField,
            ),
            (
                r#"{"type":"alias","userId":"u","previousId":["p"]}"#,
                RejectReason::InvalidIdField,
            ),
            (
                r#"{"type":"alias","userId":"u","previousId":true}"#,
                RejectReason::InvalidIdField,
            ),
            (
                r#"{"type":"track","userId":"u"}"#,
                RejectReason::MissingEventName,
            ),
            (
                r#"{"type":"page","userId":"u","properties":[1]}"#,
                RejectReason::InvalidFieldType,
            ),
            (
                r#"{"type":"page","userId":"u","messageId":5}"#,
                RejectReason::InvalidMessageId,
            ),
            (
                r#"{"type":"page","userId":"u","name":{"a":1}}"#,
                RejectReason::InvalidFieldType,
            ),
            (
                r#"{"type":"identify","userId":"u","event":7}"#,
                RejectReason::InvalidFieldType,
            ),
            (
                r#"{"type":"track","userId":"u","event":""}"#,
                RejectReason::MissingEventName,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw).unwrap_err(), want, "{raw}");
        }
    }

    #[test]
    fn message_id_length_limit() {
        let ok = format!(
            r#"{{"type":"page","userId":"u","messageId":"{}"}}"#,
            "m".repeat(100)
        );
        assert!(parse(&ok).is_ok());
        let long = format!(
            r#"{{"type":"page","userId":"u","messageId":"{}"}}"#,
            "m".repeat(101)
        );
        assert_eq!(parse(&long).unwrap_err(), RejectReason::InvalidMessageId);
    }

    #[test]
    fn size_limit_is_bytes_of_raw_json() {
        let raw = format!(
            r#"{{"type":"page","userId":"u","name":"{}"}}"#,
            "x".repeat(100)
        );
        assert!(Event::parse(&raw, None, raw.len()).is_ok());
        assert_eq!(
            Event::parse(&raw, None, raw.len() - 1).unwrap_err(),
            RejectReason::EventTooLarge
        );
    }

    #[test]
    fn implied_type_wins_and_numeric_ids_become_strings() {
        let e = Event::parse(
            r#"{"type":"page","userId":42,"event":"Signed Up"}"#,
            Some(EventType::Track),
            1024,
        )
        .unwrap();
        assert_eq!(e.kind, EventType::Track);
        assert_eq!(e.body["type"], "track");
        assert_eq!(e.body["userId"], "42");
        assert_eq!(e.visitor_key(), Some("42"));
    }

    #[test]
    fn identity_fields_are_bounded_strings_and_numbers_become_strings() {
        let long = "g".repeat(MAX_ID_LEN + 1);
        let raw = format!(r#"{{"type":"group","userId":"u","groupId":"{long}"}}"#);
        assert_eq!(parse(&raw).unwrap_err(), RejectReason::InvalidIdField);
        let raw = format!(r#"{{"type":"page","anonymousId":"{long}"}}"#);
        assert_eq!(parse(&raw).unwrap_err(), RejectReason::InvalidIdentity);
        let e = parse(r#"{"type":"group","userId":"u","groupId":7,"previousId":null}"#).unwrap();
        assert_eq!(e.body["groupId"], "7");
        assert!(e.body.get("previousId").is_none());
        let ok = "g".repeat(MAX_ID_LEN);
        let raw = format!(r#"{{"type":"group","userId":"u","groupId":"{ok}"}}"#);
        assert!(parse(&raw).is_ok());
    }

    #[test]
    fn visitor_key_prefers_user_id() {
        let e = parse(r#"{"type":"page","userId":"u1","anonymousId":"a1"}"#).unwrap();
        assert_eq!(e.visitor_key(), Some("u1"));
        let e = parse(r#"{"type":"page","anonymousId":"a1"}"#).unwrap();
        assert_eq!(e.visitor_key(), Some("a1"));
    }
}
