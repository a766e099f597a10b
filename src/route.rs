//! Routing: which raw topic an event goes to and which record key it gets.
//!
//! The key is the visitor (`userId`, else `anonymousId`), so the partitioner
//! keeps each visitor's events in order on one partition.

use std::collections::HashSet;

use crate::config::{RoutingConfig, TopicsConfig};
use crate::event::{Event, EventType};

/// Producer version, sent as a record header.
pub const PRODUCER_VERSION: &str = concat!("trackgate/", env!("CARGO_PKG_VERSION"));

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RoutingConfig, TopicsConfig};

    fn ev(raw: &str) -> Event {
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
}
