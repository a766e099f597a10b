//! What reaches Kafka is what the client meant, end to end (the real
//! gateway binary, the real Tansu broker): numbers copied as written,
//! broken strings costing only their own event, duplicates recognised by
//! what the client sent, and the fields a client's SDK sends the way it
//! sends them (numeric session ids, server-side user agents).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const WITHIN: Duration = Duration::from_secs(30);

/// The standard configuration, with the `app` source a server-side one.
fn start(broker: &Broker) -> Gateway {
    let brokers = broker.addr();
    let gw = Gateway::spawn_logged(
        move |l, a| {
            config_toml(l, a, &brokers, "").replace(
                &format!("write_key = \"{APP_WRITE_KEY}\""),
                &format!("write_key = \"{APP_WRITE_KEY}\"\nkind = \"server\""),
            )
        },
        "warn",
    );
    gw.wait_ready(Duration::from_secs(30));
    gw
}

fn post_as(gw: &Gateway, key: &str, path: &str, body: &[u8], ua: &str) -> Response {
    let auth = basic(key);
    gw.request(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("user-agent", ua),
        ],
        body,
    )
}

fn post(gw: &Gateway, body: &[u8]) -> Value {
    let r = post_as(
        gw,
        WRITE_KEY,
        "/v1/batch",
        body,
        "Mozilla/5.0 Firefox/133.0",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn numbers_reach_kafka_as_the_client_wrote_them() {
    let broker = Broker::start();
    let gw = start(&broker);
    // Every number form, and the ones a double would change.
    let forms = [
        "-0",
        "0",
        "1E2",
        "1e+2",
        "-1.5e-7",
        "0.10",
        "123456789012345678901",
        "123456.89012345679",
        "9007199254740993",
        "18446744073709551616",
        "-9223372036854775809",
        "1.0",
        "12.345672653589793238462643383279",
    ];
    let properties = forms
        .iter()
        .enumerate()
        .map(|(i, n)| format!("\"n{i}\":{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let properties = format!("{{{properties},\"list\":[{}]}}", forms.join(","));
    let body = format!(
        r#"{{"batch":[{{"type":"track","event":"Numbers","anonymousId":"v-1","messageId":"num-1","properties":{properties}}}]}}"#
    );
    assert_eq!(post(&gw, body.as_bytes())["accepted"], 1);
    let recs = consume(&broker.addr(), &[EVENTS], 1, WITHIN);
    assert_eq!(recs.len(), 1);
    let expected = format!("\"properties\":{properties}");
    assert!(
        contains(&recs[0].raw, expected.as_bytes()),
        "record {} lacks {expected}",
        String::from_utf8_lossy(&recs[0].raw)
    );
}

#[test]
fn a_batch_with_one_broken_string_delivers_its_other_events() {
    let broker = Broker::start();
    let gw = start(&broker);
    let ev = |id: &str, extra: &[u8]| {
        let mut e = format!(r#"{{"type":"track","event":"E","anonymousId":"v-2","messageId":"{id}","properties":{{"s":""#)
            .into_bytes();
        e.extend_from_slice(extra);
        e.extend_from_slice(b"\"}}");
        e
    };
    let mut body = b"{\"batch\":[".to_vec();
    for (i, e) in [
        ev("ok-1", b"fine"),
        ev("utf8", b"caf\xe9"),
        ev("ctrl", b"a\x01b"),
        ev("surrogate", br"x\ud83dy"),
        ev("ok-2", b"fine"),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.extend_from_slice(b"]}");
    assert_eq!(
        post(&gw, &body),
        json!({"success": true, "accepted": 3, "rejected": 2})
    );
    // A single event with a lone surrogate is accepted too.
    let single = post_as(
        &gw,
        WRITE_KEY,
        "/v1/track",
        br#"{"event":"S","anonymousId":"v-2","messageId":"single","properties":{"s":"\ude00!"}}"#,
        "Mozilla/5.0 Firefox/133.0",
    );
    assert_eq!(
        single.json()["accepted"],
        1,
        "{}",
        String::from_utf8_lossy(&single.body)
    );

    let recs = consume(&broker.addr(), &[EVENTS, INVALID], 6, WITHIN);
    let mut delivered: Vec<(String, Value)> = recs
        .iter()
        .filter(|r| r.topic == EVENTS)
        .map(|r| {
            (
                r.value["messageId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r.value["properties"]["s"].clone(),
            )
        })
        .collect();
    delivered.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        delivered,
        vec![
            ("ok-1".to_string(), json!("fine")),
            ("ok-2".to_string(), json!("fine")),
            ("single".to_string(), json!("\u{fffd}!")),
            ("surrogate".to_string(), json!("x\u{fffd}y")),
        ]
    );
    let mut reasons: Vec<&str> = recs
        .iter()
        .filter(|r| r.topic == INVALID)
        .filter_map(|r| r.value["reason"].as_str())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["control_character", "invalid_utf8"]);
    assert_eq!(
        gw.metric(
            "trackgate_json_repairs_total",
            &[("kind", "lone_surrogate")]
        ),
        2.0
    );
    // Broken structure cannot be split: the answer names the byte.
    let r = post_as(
        &gw,
        WRITE_KEY,
        "/v1/batch",
        br#"{"batch":[{"type":"page","anonymousId":"a"} {"type":"page"}]}"#,
        "x",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_json");
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("at byte 44")),
        "{}",
        r.json()
    );
}

#[test]
fn duplicates_are_what_the_client_sent_twice_and_pii_ids_never_reach_kafka() {
    let broker = Broker::start();
    let gw = start(&broker);
    let ev = |visitor: &str, id: &str| json!({"type": "track", "event": "Buy", "anonymousId": visitor, "messageId": id});
    // Two events whose ids are e-mail addresses (each scrubbed), a victim's
    // predictable id sent first by someone else, then the victim's event
    // and its retry.
    let batch = json!({"batch": [
        ev("v-3", "ada@example.com"),
        ev("v-3", "bob@example.com"),
        ev("attacker", "order-1001"),
        ev("victim", "order-1001"),
        ev("victim", "order-1001"),
    ]});
    let out = post(&gw, batch.to_string().as_bytes());
    assert_eq!(
        out,
        json!({"success": true, "accepted": 4, "rejected": 0, "dropped": 1})
    );
    let recs = consume(&broker.addr(), &ALL_TOPICS, 4, WITHIN);
    assert_eq!(recs.len(), 4, "{recs:#?}");
    for r in &recs {
        let raw = String::from_utf8_lossy(&r.raw);
        assert!(
            !raw.contains("@example.com") && !raw.contains("ada"),
            "{raw}"
        );
    }
    let mut ids: Vec<(String, String)> = recs
        .iter()
        .map(|r| {
            (
                r.value["anonymousId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r.value["messageId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(ids[0], ("attacker".to_string(), "order-1001".to_string()));
    assert_eq!(ids[3], ("victim".to_string(), "order-1001".to_string()));
    // The two e-mail ids are two pseudonyms, not one constant.
    assert!(ids[1].1.starts_with("pid_") && ids[2].1.starts_with("pid_"));
    assert_ne!(ids[1].1, ids[2].1);
    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "duplicate")]
        ),
        1.0
    );
}

#[test]
fn client_sdk_fields_arrive_as_the_sdk_sent_them() {
    let broker = Broker::start();
    let gw = start(&broker);
    // RudderStack Android: a numeric session id, from an app whose own user
    // agent names a Pixel 7 phone.
    let android = json!({"batch": [{
        "type": "track", "event": "Screen Viewed", "anonymousId": "v-4", "messageId": "rs-1",
        "context": {
            "sessionId": 1733563200000_i64,
            "sessionStart": true,
            "userAgent": "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)"
        },
        "properties": {"emailCampaignId": 12345, "email": "ada@example.com"}
    }]});
    assert_eq!(post(&gw, android.to_string().as_bytes())["accepted"], 1);
    // A server-side library (analytics-python sends python-requests' user
    // agent) posting to a server source, and the same agent at a browser
    // source.
    let server = json!({"batch": [{"type": "track", "event": "Invoice Paid", "userId": "u-9", "messageId": "srv-1"}]});
    let r = post_as(
        &gw,
        APP_WRITE_KEY,
        "/v1/batch",
        server.to_string().as_bytes(),
        "python-requests/2.31.0",
    );
    assert_eq!(r.json()["accepted"], 1);
    let browser = json!({"batch": [{"type": "track", "event": "Scraped", "anonymousId": "v-5", "messageId": "web-1"}]});
    let r = post_as(
        &gw,
        WRITE_KEY,
        "/v1/batch",
        browser.to_string().as_bytes(),
        "python-requests/2.31.0",
    );
    assert_eq!(r.json()["accepted"], 1);

    let recs = consume(&broker.addr(), &[EVENTS], 3, WITHIN);
    let by_id = |id: &str| {
        recs.iter()
            .find(|r| r.value["messageId"] == id)
            .unwrap_or_else(|| panic!("{id} delivered: {recs:#?}"))
            .value
            .clone()
    };
    let rs = by_id("rs-1");
    assert_eq!(rs["context"]["sessionId"], 1733563200000_i64);
    assert_eq!(rs["properties"]["emailCampaignId"], 12345);
    assert!(rs["properties"].get("email").is_none(), "{rs}");
    assert_eq!(
        rs["context"]["userAgentParsed"]["device"]["type"], "mobile",
        "{rs}"
    );
    assert!(by_id("srv-1")["context"].get("bot").is_none());
    assert_eq!(by_id("web-1")["context"]["bot"], true);
}

#[test]
fn european_phones_apostrophe_emails_and_precise_coordinates_never_reach_kafka() {
    let broker = Broker::start();
    let gw = start(&broker);
    let body = json!({"batch": [{
        "type": "track", "event": "Contact", "anonymousId": "v-6", "messageId": "eu-1",
        "context": {"location": {"latitude": 48.858_37, "longitude": 2.294_481, "speed": 0}},
        "properties": {
            "note": "Rappel : 06\u{a0}12\u{a0}34\u{a0}56\u{a0}78 ou +33\u{202f}(0)6\u{202f}98\u{202f}76\u{202f}54\u{202f}32",
            "büro": "Telefon 030/1234567",
            "contact": "Mail o'brien@example.ie",
            "lat": 52.520_008,
            "lng": "13.404954",
            "orderDate": "07/12/2026",
            "flat": 12.34567
        }
    }]});
    assert_eq!(post(&gw, body.to_string().as_bytes())["accepted"], 1);
    let recs = consume(&broker.addr(), &[EVENTS], 1, WITHIN);
    assert_eq!(recs.len(), 1);
    let raw = String::from_utf8_lossy(&recs[0].raw).into_owned();
    for pii in [
        "12\u{a0}34",
        "98\u{202f}76",
        "1234567",
        "brien",
        "o'",
        "48.858",
        "2.294",
        "52.520",
        "13.404",
    ] {
        assert!(!raw.contains(pii), "{pii} reached Kafka: {raw}");
    }
    let v = &recs[0].value;
    assert_eq!(v["context"]["location"]["latitude"], 48.9);
    assert_eq!(v["context"]["location"]["longitude"], 2.3);
    assert_eq!(v["properties"]["lat"], 52.5);
    assert_eq!(v["properties"]["lng"], "13.4");
    // Look-alikes stay.
    assert_eq!(v["properties"]["orderDate"], "07/12/2026");
    assert_eq!(v["properties"]["flat"], 12.34567);
    assert_eq!(v["properties"]["contact"], "Mail [email]");
}
