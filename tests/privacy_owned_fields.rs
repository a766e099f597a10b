//! Gateway-owned fields against the real broker: whatever a client sends
//! under `context.privacy`, `context.bot`, `context.geo`, `context.ip`,
//! `context.ipHash` or `receivedAt` never reaches Kafka; the gateway's own
//! values do.

mod support;

use serde_json::{json, Value};
use support::privacy::*;
use support::*;

const FORGED_EMAIL: &str = "forged.person@example.com";
const FORGED_PHONE: &str = "+1 415 555 0199";

/// A `context` holding a forgery under every owned field.
fn forged_context() -> Value {
    json!({
        "privacy": {"anonymized": "gpc",
            "redactions": [{"path": FORGED_EMAIL, "kind": FORGED_PHONE}]},
        "bot": false,
        "geo": {"city": "Forgedville", "latitude": 12.3456},
        "ipHash": "forged-hash",
        "ip": "198.51.100.77",
        "locale": "en-GB"
    })
}

#[test]
fn forged_gateway_owned_fields_never_reach_kafka() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let ctx = forged_context();
    let batch = json!({
        "context": {"bot": "batch-level", "privacy": {"redactions": [FORGED_PHONE]}},
        "batch": [
            {"type":"page","anonymousId":"v-page","receivedAt":"1999-01-01T00:00:00Z","context":ctx},
            {"type":"track","anonymousId":"v-track","event":"click","context":ctx},
            // Only the batch context forges: it is discarded too.
            {"type":"identify","anonymousId":"v-batch"},
            // A rejected event: its payload on the invalid topic holds none of it.
            {"type":"nonsense","anonymousId":"v-bad","context":ctx},
        ]
    });
    let r = send(&gw, "/v1/batch", &batch.to_string(), &[]);
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":3,"rejected":1}),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // A single-event endpoint, from a crawler: the gateway's own `bot` flag.
    let bot_ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let r = send(
        &gw,
        "/v1/track",
        &json!({"anonymousId":"v-bot","event":"crawl","context":ctx}).to_string(),
        &[("user-agent", bot_ua)],
    );
    assert_eq!(r.json()["accepted"], 1);
    // `context.privacy.gpc = true` is a signal and stays one: the default
    // policy drops the event.
    let r = send(
        &gw,
        "/v1/page",
        r#"{"anonymousId":"v-gpc","context":{"privacy":{"gpc":true,"anonymized":"x"}}}"#,
        &[],
    );
    assert_eq!(r.json()["dropped"], 1);

    let recs = every_event_topic(&broker.addr(), 5);
    assert_eq!(recs.len(), 5, "{recs:#?}");
    assert_nowhere(
        &recs,
        &[
            FORGED_EMAIL,
            FORGED_PHONE,
            "Forgedville",
            "forged-hash",
            "198.51.100.77",
            "batch-level",
            "1999-01-01",
            "v-gpc",
        ],
    );
    for id in ["v-page", "v-track", "v-batch", "v-bot"] {
        let of = of_visitor(&recs, id);
        assert_eq!(of.len(), 1, "{id}: {recs:#?}");
        let c = &of[0].value["context"];
        assert!(c.get("privacy").is_none(), "{id}: {c}");
        assert!(c.get("geo").is_none(), "{id}: {c}");
        assert!(c.get("ipHash").is_none(), "{id}: {c}");
        assert_eq!(c["ip"], CLIENT_IP_TRUNCATED, "{id}: {c}");
        let expected_bot = if id == "v-bot" {
            json!(true)
        } else {
            Value::Null
        };
        assert_eq!(
            c.get("bot").cloned().unwrap_or(Value::Null),
            expected_bot,
            "{id}: {c}"
        );
        assert_ne!(of[0].value["receivedAt"], "1999-01-01T00:00:00Z");
    }
    let invalid: Vec<&Record> = recs.iter().filter(|r| r.topic == INVALID).collect();
    assert_eq!(invalid.len(), 1);
    let payload: Value =
        serde_json::from_str(invalid[0].value["payload"].as_str().expect("a payload")).unwrap();
    assert_eq!(payload["context"], json!({"locale":"en-GB"}), "{payload}");
    assert!(
        gw.metric(
            "trackgate_owned_fields_discarded_total",
            &[("field", "context.privacy")]
        ) >= 4.0
    );
}
