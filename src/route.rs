//! Routing: which topic a record goes to, which key and which headers it
//! carries. Decided here, once per event; the sink only sends.
//!
//! The key is the visitor (`userId`, else `anonymousId`), so the partitioner
//! keeps each visitor's events in order on one partition. Events left
//! without a visitor id (anonymized) get a random key (a UUIDv4), so they
//! spread across partitions whatever the partitioner.

use std::collections::HashSet;

use crate::config::{RoutingConfig, TopicsConfig};
use crate::event::{Event, EventType};
use crate::sink::Header;
pub use crate::sink::PRODUCER_VERSION;

/// Record header names.
pub const HEADER_SOURCE: &str = "source";
pub const HEADER_TYPE: &str = "type";
pub const HEADER_PRODUCER: &str = "producer";
pub const HEADER_REASON: &str = "reason";

#[derive(Debug, Clone)]
pub struct Router {
    topics: TopicsConfig,
    click_events: HashSet<String>,
}

impl Router {
    pub fn new(topics: &TopicsConfig, routing: &RoutingConfig) -> Router {
        Router {
            topics: topics.clone(),
            click_events: routing.click_events.iter().cloned().collect(),
        }
    }

    /// The topic of a valid event.
    pub fn topic(&self, ev: &Event) -> &str {
        match ev.kind {
            EventType::Page | EventType::Screen => &self.topics.pageviews,
            EventType::Track => match ev.name() {
                Some(name) if self.click_events.contains(name) => &self.topics.clicks,
                _ => &self.topics.events,
            },
            EventType::Identify | EventType::Group | EventType::Alias => &self.topics.identities,
        }
    }

    /// The topic of rejected events.
    pub fn invalid_topic(&self) -> &str {
        &self.topics.invalid
    }

    /// Topic, key and headers of an accepted event's record.
    pub fn route<'a>(&'a self, ev: &'a Event, source: &'a str) -> Route<'a> {
        Route {
            topic: self.topic(ev),
            key: match ev.visitor_key() {
                Some(k) => RecordKey::Visitor(k),
                None => RecordKey::random(),
            },
            headers: [
                (HEADER_SOURCE, Some(source.as_bytes())),
                (HEADER_TYPE, Some(ev.kind.as_str().as_bytes())),
                (HEADER_PRODUCER, Some(PRODUCER_VERSION.as_bytes())),
            ],
        }
    }

    /// Topic and headers of a rejected event's record (it has no key).
    pub fn route_invalid<'a>(&'a self, source: &'a str, reason: &'a str) -> InvalidRoute<'a> {
        InvalidRoute {
            topic: self.invalid_topic(),
            headers: [
                (HEADER_SOURCE, Some(source.as_bytes())),
                (HEADER_TYPE, Some(INVALID_TYPE.as_bytes())),
                (HEADER_PRODUCER, Some(PRODUCER_VERSION.as_bytes())),
                (HEADER_REASON, Some(reason.as_bytes())),
            ],
        }
    }
}

/// The `type` header of invalid-topic records.
pub const INVALID_TYPE: &str = "invalid";

/// Where an accepted event's record goes and what it carries besides its
/// value.
pub struct Route<'a> {
    pub topic: &'a str,
    pub key: RecordKey<'a>,
    pub headers: [Header<'a>; 3],
}

/// Where a rejected event's record goes.
pub struct InvalidRoute<'a> {
    pub topic: &'a str,
    pub headers: [Header<'a>; 4],
}

/// The record key of an accepted event.
pub enum RecordKey<'a> {
    /// The visitor's id.
    Visitor(&'a str),
    /// No visitor id: a random UUIDv4, hyphenated.
    Random([u8; uuid::fmt::Hyphenated::LENGTH]),
}

impl RecordKey<'_> {
    fn random() -> RecordKey<'static> {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        RecordKey::Random(buf)
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RecordKey::Visitor(k) => k.as_bytes(),
            RecordKey::Random(b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RoutingConfig, TopicsConfig};

    fn ev(raw: &str) -> Event<'_> {
        Event::parse(raw, None, 4096).unwrap()
    }

    #[test]
    fn default_routes() {
        let r = Router::new(&TopicsConfig::default(), &RoutingConfig::default());
        let cases = [
            (
                r#"{"type":"page","anonymousId":"a"}"#,
                "tracking.raw.pageviews",
            ),
            (
                r#"{"type":"screen","anonymousId":"a"}"#,
                "tracking.raw.pageviews",
            ),
            (
                r#"{"type":"track","anonymousId":"a","event":"click"}"#,
                "tracking.raw.clicks",
            ),
            (
                r#"{"type":"track","anonymousId":"a","event":"Link Clicked"}"#,
                "tracking.raw.clicks",
            ),
            (
                r#"{"type":"track","anonymousId":"a","event":"Element Clicked"}"#,
                "tracking.raw.clicks",
            ),
            (
                r#"{"type":"track","anonymousId":"a","event":"Click"}"#,
                "tracking.raw.events",
            ),
            (
                r#"{"type":"track","anonymousId":"a","event":"Order Completed"}"#,
                "tracking.raw.events",
            ),
            (
                r#"{"type":"identify","userId":"u"}"#,
                "tracking.raw.identities",
            ),
            (
                r#"{"type":"group","userId":"u"}"#,
                "tracking.raw.identities",
            ),
            (
                r#"{"type":"alias","userId":"u"}"#,
                "tracking.raw.identities",
            ),
        ];
        for (raw, topic) in cases {
            assert_eq!(r.topic(&ev(raw)), topic, "{raw}");
        }
        assert_eq!(r.invalid_topic(), "tracking.raw.invalid");
    }

    #[test]
    fn click_set_and_topic_names_are_configurable() {
        let topics = TopicsConfig {
            clicks: "c".into(),
            ..TopicsConfig::default()
        };
        let routing = RoutingConfig {
            click_events: vec!["Tap".into()],
        };
        let r = Router::new(&topics, &routing);
        assert_eq!(
            r.topic(&ev(r#"{"type":"track","anonymousId":"a","event":"Tap"}"#)),
            "c"
        );
        assert_eq!(
            r.topic(&ev(r#"{"type":"track","anonymousId":"a","event":"click"}"#)),
            "tracking.raw.events"
        );
    }

    #[test]
    fn events_without_a_visitor_get_random_uuid_keys_and_the_headers_name_source_and_type() {
        let r = Router::new(&TopicsConfig::default(), &RoutingConfig::default());
        let mut anonymized = ev(r#"{"type":"page","anonymousId":"a"}"#);
        anonymized.body.remove("anonymousId");
        let (a, b) = (r.route(&anonymized, "web"), r.route(&anonymized, "web"));
        assert_ne!(a.key.as_bytes(), b.key.as_bytes());
        let s = std::str::from_utf8(a.key.as_bytes()).unwrap();
        assert_eq!(uuid::Uuid::parse_str(s).unwrap().get_version_num(), 4);

        let visitor = ev(r#"{"type":"track","userId":"u-1","anonymousId":"a","event":"x"}"#);
        let route = r.route(&visitor, "web");
        assert_eq!(route.key.as_bytes(), b"u-1");
        assert_eq!(route.headers[0], (HEADER_SOURCE, Some(&b"web"[..])));
        assert_eq!(route.headers[1], (HEADER_TYPE, Some(&b"track"[..])));
        let inv = r.route_invalid("web", "invalid_json");
        assert_eq!(inv.topic, "tracking.raw.invalid");
        assert_eq!(inv.headers[3], (HEADER_REASON, Some(&b"invalid_json"[..])));
    }
}
