//! PII scrubbing end to end: personal data sent to the gateway never reaches
//! any Kafka topic, the record says what was removed (never the values), and
//! benign look-alikes come through byte for byte.

mod support;

use serde_json::json;
use support::*;

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";
const PHONE: &str = "+44 20 7946 0958";
const IBAN: &str = "DE89370400440532013000";
const PASSWORD: &str = "hunter2-secret";

fn everything(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| format!("{:?} {} {:?}", r.key, r.value, r.headers))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn pii_never_reaches_kafka_and_benign_values_survive() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let url = format!(
        "https://shop.example/checkout?utm_source=news&email={}&page=2#token=abc123def456",
        EMAIL.replace('@', "%40")
    );
    let body = json!({"batch": [
        {"type": "track", "anonymousId": "visitor-pii", "event": "Order Completed",
         "properties": {
            "note": format!("call me at {PHONE} or mail {EMAIL}"),
            "payment": format!("card {CARD} exp 12/29"),
            "transfer": format!("wire to {IBAN} today"),
            "password": PASSWORD,
            "order_id": "ORD-2024-000123",
            "sku": "SKU-99812-BLK",
            "price": "$1,299.99",
            "uuid": "0b6f3c0e-6a0c-4f2e-9a7c-3d2b1e0f9a8b",
            "version": "10.0.19045",
            "color": "#ff8800",
            "at": 1732579200000i64,
            "url": url,
         },
         "context": {"page": {"url": url, "path": "/checkout"}}},
        {"type": "page", "anonymousId": "control-visitor", "name": "Home",
         "properties": {"path": "/products/12345", "utm_campaign": "winter"}},
        // Rejected (no identity): its payload on the invalid topic is scrubbed too.
        {"type": "page", "properties": {"contact": EMAIL}}
    ]});
    let r = gw.post("/v1/batch", &body.to_string());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["accepted"], 2);

    let records = consume_all(&broker.addr(), 3);
    assert_eq!(records.len(), 3, "{records:#?}");
    let all = everything(&records);
    for pii in [
        EMAIL,
        "jane.doe%40example.com",
        CARD,
        "4111111111111111",
        PHONE,
        IBAN,
        PASSWORD,
        "abc123def456",
    ] {
        assert!(!all.contains(pii), "{pii} reached Kafka:\n{all}");
    }

    let order = records
        .iter()
        .find(|r| r.key.as_deref() == Some("visitor-pii"))
        .expect("the scrubbed event itself arrived");
    let p = &order.value["properties"];
    for (k, v) in [
        ("order_id", "ORD-2024-000123"),
        ("sku", "SKU-99812-BLK"),
        ("price", "$1,299.99"),
        ("uuid", "0b6f3c0e-6a0c-4f2e-9a7c-3d2b1e0f9a8b"),
        ("version", "10.0.19045"),
        ("color", "#ff8800"),
    ] {
        assert_eq!(p[k], v, "{k} must survive unchanged");
    }
    assert_eq!(p["at"], 1732579200000i64);
    assert!(p.get("password").is_none());
    let note = p["note"].as_str().unwrap();
    assert!(
        note.contains("[phone]") && note.contains("[email]"),
        "{note}"
    );
    let page_url = order.value["context"]["page"]["url"].as_str().unwrap();
    assert!(
        page_url.contains("utm_source=news") && page_url.contains("page=2"),
        "{page_url}"
    );

    let redactions = order.value["context"]["privacy"]["redactions"]
        .as_array()
        .expect("redactions listed");
    let kinds: Vec<&str> = redactions
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    for kind in ["email", "phone", "card", "iban", "denied_key"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(redactions.iter().all(|r| r["path"].is_string()));
    assert!(gw.metric("trackgate_redactions_total", &[("kind", "email")]) >= 1.0);

    let control = records
        .iter()
        .find(|r| r.key.as_deref() == Some("control-visitor"))
        .expect("control arrived");
    assert_eq!(control.value["properties"]["path"], "/products/12345");
    assert!(control.value["context"]["privacy"]
        .get("redactions")
        .is_none());

    let invalid = records
        .iter()
        .find(|r| r.topic == INVALID)
        .expect("invalid record");
    assert_eq!(invalid.value["reason"], "missing_identity");
}
