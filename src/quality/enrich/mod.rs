//! Enrichment, each part switchable per source (`[sources.quality.enrich]`):
//! - `user_agent`: `context.userAgent` → `context.userAgentParsed`
//!   (`browser {name, version}`, `os {name, version}`, `device {type, brand,
//!   model}`), see [`ua`];
//! - `campaign`: `context.campaign` from the page URL when the client sent
//!   none, see [`campaign`];
//! - `referrer`: `context.referrerParsed` (`host`, `channel`, `source`) from
//!   the page's referrer, see [`referrer`].
//!
//! The page is `context.page` (`url`, `referrer`), or a `page` event's
//! `properties`. Enrichment runs after privacy on what privacy kept, and
//! only returns [`Edit`]s; `context.userAgentParsed` and
//! `context.referrerParsed` are the gateway's (a client-sent one is removed
//! before, see `owned`).

pub mod campaign;
pub mod referrer;
pub mod ua;

use std::sync::Arc;

use crate::json::{Map, Value};

use super::edit::{get, Edit};
pub use crate::config::EnrichConfig;
use crate::event::EventType;
use referrer::Referrers;
use ua::UaParser;

/// Where the parsed user agent goes.
pub const USER_AGENT_PATH: &[&str] = &["context", "userAgentParsed"];
/// Where the referrer's host and channel go.
pub const REFERRER_PATH: &[&str] = &["context", "referrerParsed"];
/// Where the campaign goes (when the client sent none).
pub const CAMPAIGN_PATH: &[&str] = &["context", "campaign"];

/// One source's enrichment, with the shared parser and list.
pub struct Enricher {
    ua: Option<Arc<UaParser>>,
    referrers: Option<Arc<Referrers>>,
    campaign: bool,
    click_ids: Vec<String>,
}

impl Enricher {
    pub fn new(
        cfg: &EnrichConfig,
        ua: Option<Arc<UaParser>>,
        referrers: Option<Arc<Referrers>>,
    ) -> Enricher {
        Enricher {
            ua: ua.filter(|_| cfg.user_agent),
            referrers: referrers.filter(|_| cfg.referrer),
            campaign: cfg.campaign,
            click_ids: cfg.click_ids.clone(),
        }
    }

    /// Whether any part is on.
    pub fn enabled(&self) -> bool {
        self.ua.is_some() || self.referrers.is_some() || self.campaign
    }

    /// The edits that enrich `body` (an event of type `kind`).
    pub fn edits(&self, kind: EventType, body: &Map<'_>, out: &mut Vec<Edit>) {
        if let Some(parser) = &self.ua {
            if let Some(Value::String(agent)) = get(body, &["context", "userAgent"]) {
                if let Some(parsed) = parser.parse(agent) {
                    out.push(Edit::Set(USER_AGENT_PATH, parsed));
                }
            }
        }
        let page_field = |field: &str| {
            get(body, &["context", "page", field])
                .or_else(|| match kind {
                    EventType::Page => get(body, &["properties", field]),
                    _ => None,
                })
                .and_then(Value::as_str)
        };
        let url = page_field("url");
        if self.campaign && get(body, CAMPAIGN_PATH).is_none() {
            if let Some(c) = url.and_then(|u| campaign::from_url(u, &self.click_ids)) {
                out.push(Edit::Set(CAMPAIGN_PATH, Value::Object(c)));
            }
        }
        if let Some(list) = &self.referrers {
            if let Some(r) = page_field("referrer").and_then(|r| list.classify(r, url)) {
                out.push(Edit::Set(REFERRER_PATH, r));
            }
        }
    }
}

#[cfg(test)]
mod tests;
