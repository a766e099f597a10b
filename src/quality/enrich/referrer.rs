//! The referrer's host and a coarse channel: `direct` (the page has an
//! empty referrer), `internal` (same host as the page), `search`,
//! `social`, `email`, `paid` or `chatbot` (from a referrer list), else
//! `referral`.
//!
//! The list is Snowplow's referer-parser database (`referers.yml`, the
//! maintained list most analytics pipelines use), in its JSON form
//! (`referers-latest.json`, or the YAML converted to JSON), at
//! `quality.referrers_file`. It is not bundled: its licence (GPL-3.0, from
//! Matomo's lists) differs from the gateway's. Without it, every external
//! referrer is `referral`.
//!
//! A list entry is a host (matching its subdomains too) or a host with a
//! path prefix (`google.com/products`); the longest match wins.

use std::collections::HashMap;
use std::path::Path;

use crate::json::{Map, Value};
use serde::Deserialize;

/// Channel of an event whose page has an empty referrer.
pub const DIRECT: &str = "direct";
/// Channel of a referrer on the page's own host.
pub const INTERNAL: &str = "internal";
/// Channel of any other referrer the list does not classify.
pub const REFERRAL: &str = "referral";

#[derive(Debug, thiserror::Error)]
pub enum ReferrerError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a referer-parser list in JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct SourceEntry {
    #[serde(default)]
    domains: Vec<String>,
}

struct Known {
    path: String,
    channel: &'static str,
    source: String,
}

/// The referrer list, by host.
#[derive(Default)]
pub struct Referrers {
    by_host: HashMap<String, Vec<Known>>,
}

impl Referrers {
    /// Loads a referer-parser list (JSON: medium → source → `domains`).
    pub fn load(path: &Path) -> Result<Referrers, ReferrerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReferrerError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let doc: HashMap<String, HashMap<String, SourceEntry>> = serde_json::from_str(&text)
            .map_err(|source| ReferrerError::Json {
                path: path.display().to_string(),
                source,
            })?;
        let mut by_host: HashMap<String, Vec<Known>> = HashMap::new();
        for (medium, sources) in doc {
            let channel = channel_of(&medium);
            for (source, entry) in sources {
                for domain in entry.domains {
                    let (host, path) = match domain.split_once('/') {
                        Some((h, p)) => (h.to_ascii_lowercase(), format!("/{p}")),
                        None => (domain.to_ascii_lowercase(), String::new()),
                    };
                    by_host.entry(host).or_default().push(Known {
                        path,
                        channel,
                        source: source.clone(),
                    });
                }
            }
        }
        Ok(Referrers { by_host })
    }

    /// Entries loaded (hosts with their paths).
    pub fn len(&self) -> usize {
        self.by_host.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// The `context.referrerParsed` object for a page at `page_url` whose
    /// referrer is `referrer` (empty: direct).
    pub fn classify(&self, referrer: &str, page_url: Option<&str>) -> Option<Value<'static>> {
        let mut out = Map::with_capacity(3);
        if referrer.trim().is_empty() {
            out.insert("channel", Value::String(DIRECT.into()));
            return Some(Value::Object(out));
        }
        // Without a list only the hosts matter: no full parse of the URLs.
        let (host, path) = if self.by_host.is_empty() {
            (host_of(referrer)?, None)
        } else {
            let parsed = url::Url::parse(referrer).ok()?;
            let host = parsed.host_str()?.to_ascii_lowercase();
            (host, Some(parsed.path().to_owned()))
        };
        let page_host = page_url.and_then(host_of);
        let (channel, source) = if page_host.as_deref() == Some(host.as_str()) {
            (INTERNAL, None)
        } else {
            match path.and_then(|p| self.lookup(&host, &p)) {
                Some(k) => (k.channel, Some(k.source.as_str())),
                None => (REFERRAL, None),
            }
        };
        out.insert("host", Value::String(host.clone().into()));
        out.insert("channel", Value::String(channel.into()));
        if let Some(s) = source {
            out.insert("source", Value::from(s.to_string()));
        }
        Some(Value::Object(out))
    }

    /// The entry for `host` or its closest parent domain, longest path first.
    fn lookup(&self, host: &str, path: &str) -> Option<&Known> {
        let mut candidate = host;
        loop {
            if let Some(entries) = self.by_host.get(candidate) {
                let best = entries
                    .iter()
                    .filter(|k| path.starts_with(&k.path))
                    .max_by_key(|k| k.path.len());
                if best.is_some() {
                    return best;
                }
            }
            candidate = candidate.split_once('.')?.1;
            if !candidate.contains('.') {
                return None;
            }
        }
    }
}

/// The lowercased host of an absolute URL, as the `url` crate gives it
/// (`None` when it does not parse or has no host).
///
/// Most referrers and page URLs are plain `https://host/…` with an ASCII
/// host name: that host is read off the text. Anything the URL parser
/// would rewrite or could reject in the host (user info, a port, an IP
/// address, escapes, IDNA, other schemes or spellings) goes through the
/// parser, so both paths agree (see the property test).
pub(crate) fn host_of(u: &str) -> Option<String> {
    if let Some(host) = plain_host(u) {
        return Some(host.to_ascii_lowercase());
    }
    let parsed = url::Url::parse(u).ok()?;
    parsed.host_str().map(str::to_ascii_lowercase)
}

fn plain_host(u: &str) -> Option<&str> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    let plain = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with("xn--")
            && !label.starts_with("XN--")
    };
    let last = host.rsplit('.').next()?;
    // A numeric last label makes the parser read the host as an IPv4
    // address (which it may rewrite or refuse).
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last.starts_with("0x")
        || last.starts_with("0X");
    (host.split('.').all(plain) && !numeric).then_some(host)
}

fn channel_of(medium: &str) -> &'static str {
    match medium {
        "search" => "search",
        "social" => "social",
        "email" => "email",
        "paid" => "paid",
        "chatbot" => "chatbot",
        _ => REFERRAL,
    }
}

#[cfg(test)]
mod tests {
    use crate::json::json;

    use super::*;

    /// A small list in the referer-parser format (written for this test).
    pub const LIST: &str = r#"{
      "unknown": {"Google": {"domains": ["support.google.com"]}},
      "search": {"Google": {"domains": ["google.com", "google.fr", "google.com/search"], "parameters": ["q"]},
                 "Bing": {"domains": ["bing.com"]}},
      "social": {"Facebook": {"domains": ["facebook.com", "m.facebook.com"]}},
      "email": {"Gmail": {"domains": ["mail.google.com"]}},
      "paid": {"Google Ads": {"domains": ["googleadservices.com"]}}
    }"#;

    fn list() -> Referrers {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("referers.json");
        std::fs::write(&p, LIST).expect("write list");
        Referrers::load(&p).expect("list loads")
    }

    #[test]
    fn channels_from_the_list_the_page_and_the_absence_of_a_referrer() {
        let r = list();
        let page = Some("https://shop.example/p");
        let cases = [
            ("", json!({"channel":"direct"})),
            (
                "https://www.google.fr/",
                json!({"host":"www.google.fr","channel":"search","source":"Google"}),
            ),
            (
                "https://google.com/search?q=shoes",
                json!({"host":"google.com","channel":"search","source":"Google"}),
            ),
            (
                "https://mail.google.com/mail/u/0",
                json!({"host":"mail.google.com","channel":"email","source":"Gmail"}),
            ),
            (
                "https://support.google.com/x",
                json!({"host":"support.google.com","channel":"referral","source":"Google"}),
            ),
            (
                "https://l.facebook.com/l.php",
                json!({"host":"l.facebook.com","channel":"social","source":"Facebook"}),
            ),
            (
                "https://www.googleadservices.com/pagead",
                json!({"host":"www.googleadservices.com","channel":"paid","source":"Google Ads"}),
            ),
            (
                "https://blog.example.org/post",
                json!({"host":"blog.example.org","channel":"referral"}),
            ),
            (
                "https://shop.example/cart",
                json!({"host":"shop.example","channel":"internal"}),
            ),
        ];
        for (referrer, want) in cases {
            assert_eq!(r.classify(referrer, page), Some(want), "{referrer}");
        }
        assert_eq!(r.classify("not a url", page), None);
    }

    #[test]
    fn without_a_list_external_referrers_are_referrals() {
        let r = Referrers::default();
        assert_eq!(
            r.classify("https://www.google.com/", Some("https://shop.example/")),
            Some(json!({"host":"www.google.com","channel":"referral"}))
        );
        let missing = Referrers::load(Path::new("/nonexistent/referers.json"));
        assert!(missing.is_err());
    }

    mod host_property {
        use super::super::host_of;
        use proptest::prelude::*;

        fn by_parser(u: &str) -> Option<String> {
            url::Url::parse(u)
                .ok()
                .and_then(|p| p.host_str().map(str::to_ascii_lowercase))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
            #[test]
            fn the_host_read_off_the_text_is_the_parsers(
                scheme in prop::sample::select(vec!["https://", "http://", "HTTPS://", "ftp://", "android-app://", "https:/", ""]),
                user in prop::sample::select(vec!["", "user@", "u:p@"]),
                labels in prop::collection::vec("[a-zA-Z0-9-]{0,6}|xn--[a-z0-9]{1,6}|[0-9]{1,3}|0x[0-9a-f]{1,2}|[a-zé ]{1,4}|%41", 1..4),
                port in prop::sample::select(vec!["", ":8080", ":", ":x"]),
                rest in prop::sample::select(vec!["", "/", "/a/../b?q=1#f", "?x", "#y", "\\z"]),
            ) {
                let u = format!("{scheme}{user}{}{port}{rest}", labels.join("."));
                prop_assert_eq!(host_of(&u), by_parser(&u), "{}", u);
            }
        }
    }
}
