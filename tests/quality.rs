//! Data quality at the door, end to end: the real gateway binary and the
//! real Tansu broker. Duplicate suppression, tracking plans (warn, omit,
//! block) and enrichment, read back from the topics.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// The standard test configuration with `web_quality` (TOML tables such as
/// `[sources.quality.plan]`) applied to the `web` source.
fn quality_toml(listen: u16, admin: u16, brokers: &str, web_quality: &str) -> String {
    let base = config_toml(listen, admin, brokers, "");
    let app = "\n[[sources]]\nid = \"app\"";
    let at = base
        .find(app)
        .expect("the standard config has an app source");
    format!("{}\n{web_quality}\n{}", &base[..at], &base[at..])
}

fn start(broker: &Broker, web_quality: &str) -> Gateway {
    let brokers = broker.addr();
    let web_quality = web_quality.to_string();
    let gw = Gateway::spawn_logged(
        move |l, a| quality_toml(l, a, &brokers, &web_quality),
        "warn",
    );
    gw.wait_ready(Duration::from_secs(30));
    gw
}

fn post_ok(gw: &Gateway, body: &Value) -> Value {
    let r = gw.post("/v1/batch", &body.to_string());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn message_ids(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .filter_map(|r| r.value["messageId"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[test]
fn retried_events_are_dropped_as_duplicates_and_counted() {
    let broker = Broker::start();
    let gw = start(&broker, "");
    let ev = |id: &str| json!({"type":"track","event":"Retry","anonymousId":"a-1","messageId":id});
    let first = post_ok(&gw, &json!({"batch":[ev("m-1"), ev("m-2")]}));
    assert_eq!(first["accepted"], 2);
    // The SDK's retry of the same batch, plus one new event.
    post_ok(&gw, &json!({"batch":[ev("m-1"), ev("m-2"), ev("m-3")]}));
    // Events without a messageId get a generated one and are never duplicates.
    let anon = json!({"type":"track","event":"NoId","anonymousId":"a-1"});
    post_ok(&gw, &json!({"batch":[anon.clone(), anon]}));

    let records = consume(&broker.addr(), &[EVENTS], 5, Duration::from_secs(30));
    assert_eq!(records.len(), 5, "{records:#?}");
    let ids = message_ids(&records);
    assert_eq!(&ids[..3], ["m-1", "m-2", "m-3"]);
    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "duplicate")]
        ),
        2.0
    );
    settle(&gw).assert_identities();
}

#[test]
fn duplicate_suppression_can_be_switched_off_per_source() {
    let broker = Broker::start();
    let gw = start(&broker, "[sources.quality.dedup]\nenabled = false\n");
    let ev = json!({"type":"track","event":"Retry","anonymousId":"a-1","messageId":"same"});
    post_ok(&gw, &json!({"batch":[ev.clone(), ev]}));
    let records = consume(&broker.addr(), &[EVENTS], 2, Duration::from_secs(30));
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(
        gw.metric("trackgate_events_total", &[("reason", "duplicate")]),
        0.0
    );
}
