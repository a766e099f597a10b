//! Gateway-owned fields: the fields of a record that only the gateway
//! writes. Whatever a client sent under them is discarded before any stage
//! runs, so a consumer can trust them: a forged `context.privacy.redactions`
//! (which the scrubber does not scan, being the gateway's own report), a
//! forged `context.privacy.anonymized` or `context.bot` never reaches Kafka.
//!
//! [`OWNED_FIELDS`] is the one list; `normalize` applies it to every event
//! right after the batch context is merged in (so a batch-level forgery goes
//! too), and the privacy stage applies it to a rejected event's payload
//! before it goes to the invalid topic. `docs/privacy.md` lists the same
//! table for consumers.

use crate::json::{Map, Value};

use crate::metrics;

/// One gateway-owned field.
#[derive(Debug, Clone, Copy)]
pub struct OwnedField {
    /// Path from the event root.
    pub path: &'static [&'static str],
    /// The path joined by dots: the `field` label of the metric.
    pub label: &'static str,
    /// Who writes it (for the docs and the reader of this table).
    pub written_by: &'static str,
    /// A key of this object the client may set, and the only value kept:
    /// `context.privacy.gpc = true` is the Global Privacy Control signal of
    /// clients that cannot set the `Sec-GPC` header.
    pub client_flag: Option<&'static str>,
}

/// Every field the gateway writes.
pub const OWNED_FIELDS: &[OwnedField] = &[
    OwnedField {
        path: &["receivedAt"],
        label: "receivedAt",
        written_by: "normalize: when the gateway received the request",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "timestampOutOfWindow"],
        label: "context.timestampOutOfWindow",
        written_by: "normalize: `true` when the clock-skew correction was not believed",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "ip"],
        label: "context.ip",
        written_by: "normalize and privacy: the client address as the source's `ip` mode says",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "ipHash"],
        label: "context.ipHash",
        written_by: "privacy: the keyed daily hash of the address (`ip = \"hash\"`)",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "geo"],
        label: "context.geo",
        written_by: "privacy: the GeoIP lookup of the address",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "bot"],
        label: "context.bot",
        written_by: "bots: `true` on events of a known bot under the `tag` policy",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "violations"],
        label: "context.violations",
        written_by: "quality: tracking-plan violations (`mode = \"warn\"`)",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "userAgentParsed"],
        label: "context.userAgentParsed",
        written_by: "quality: the parsed user agent",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "referrerParsed"],
        label: "context.referrerParsed",
        written_by: "quality: the referrer's host, channel and source",
        client_flag: None,
    },
    OwnedField {
        path: &["context", "privacy"],
        label: "context.privacy",
        written_by: "privacy: `anonymized` (reason) and `redactions` (paths and detectors)",
        client_flag: Some("gpc"),
    },
];

/// Removes what the client sent under the gateway-owned fields of `body`,
/// counting each discarded field. Costs a few map look-ups when there is
/// nothing to discard, and allocates nothing then.
pub fn discard_client_values(body: &mut Map<'_>) {
    for f in OWNED_FIELDS {
        if discard(body, f) {
            metrics::owned_field_discarded(f.label);
        }
    }
}

/// Discards one field; true when the client had sent something there.
fn discard(body: &mut Map<'_>, f: &OwnedField) -> bool {
    let Some((last, parents)) = f.path.split_last() else {
        return false;
    };
    let mut obj = body;
    for p in parents {
        match obj.get_mut(p) {
            Some(Value::Object(o)) => obj = o,
            _ => return false,
        }
    }
    let Some(flag) = f.client_flag else {
        return obj.remove(last).is_some();
    };
    match obj.get_mut(last) {
        None => false,
        Some(Value::Object(o)) => {
            let keep = o.get(flag) == Some(&Value::Bool(true));
            if keep && o.len() == 1 {
                return false;
            }
            o.clear();
            if keep {
                o.insert(flag, Value::Bool(true));
            } else {
                obj.remove(last);
            }
            true
        }
        Some(_) => {
            obj.remove(last);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::json;

    fn run(v: Value) -> Value {
        let Value::Object(mut m) = v else { panic!() };
        discard_client_values(&mut m);
        Value::Object(m)
    }

    #[test]
    fn every_forged_owned_field_is_discarded() {
        let out = run(json!({
            "type": "track", "event": "x", "anonymousId": "a",
            "receivedAt": "1999-01-01T00:00:00Z",
            "context": {
                "ip": "9.9.9.9", "ipHash": "forged", "geo": {"city": "Atlantis"},
                "bot": false,
                "timestampOutOfWindow": false,
                "violations": [{"path": "/x", "rule": "forged"}],
                "userAgentParsed": {"browser": {"name": "forged"}},
                "referrerParsed": {"channel": "forged"},
                "privacy": {"anonymized": "gpc",
                    "redactions": [{"path": "jane@example.com", "kind": "+1 415 555 0100"}]},
                "locale": "en-US"
            }
        }));
        assert_eq!(
            out,
            json!({"type": "track", "event": "x", "anonymousId": "a",
                "context": {"locale": "en-US"}})
        );
    }

    #[test]
    fn only_a_true_gpc_flag_survives_under_context_privacy() {
        let out = run(json!({"context": {"privacy": {"gpc": true, "anonymized": "dnt"}}}));
        assert_eq!(out, json!({"context": {"privacy": {"gpc": true}}}));
        let out = run(json!({"context": {"privacy": {"gpc": true}}}));
        assert_eq!(out, json!({"context": {"privacy": {"gpc": true}}}));
        let out = run(json!({"context": {"privacy": {"gpc": "true"}}}));
        assert_eq!(out, json!({"context": {}}));
        let out = run(json!({"context": {"privacy": "anonymized"}}));
        assert_eq!(out, json!({"context": {}}));
    }

    #[test]
    fn fields_of_the_same_name_elsewhere_are_the_clients() {
        let v = json!({
            "properties": {"ip": "1.2.3.4", "bot": true, "privacy": {"anonymized": 1},
                "receivedAt": "x", "geo": "here"},
            "traits": {"writeKey": "not a key"},
            "context": "not an object"
        });
        assert_eq!(run(v.clone()), v);
    }

    #[test]
    fn the_fields_later_stages_write_are_listed() {
        for path in [
            crate::quality::plan::VIOLATIONS_PATH,
            crate::quality::enrich::USER_AGENT_PATH,
            crate::quality::enrich::REFERRER_PATH,
            &["context", crate::bots::CONTEXT_KEY],
            &["context", crate::normalize::OUT_OF_WINDOW_FLAG],
        ] {
            assert!(OWNED_FIELDS.iter().any(|f| f.path == path), "{path:?}");
        }
    }

    #[test]
    fn every_path_is_unique_and_non_empty() {
        let mut seen = std::collections::HashSet::new();
        for f in OWNED_FIELDS {
            assert!(!f.path.is_empty());
            assert!(seen.insert(f.path), "{:?} listed twice", f.path);
            assert_eq!(f.label, f.path.join("."));
        }
    }
}
