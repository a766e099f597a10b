//! Data quality at the door, end to end: the real gateway binary and the
//! real Tansu broker. Duplicate suppression, tracking plans (warn, omit,
//! block) and enrichment, read back from the topics.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// The standard test configuration with `web_quality` (TOML tables such as
/// `[sources.quality.plan]`) applied to the `web` source.
fn quality_toml(listen: u16, admin: u16, brokers: &str, extra: &str, web_quality: &str) -> String {
    let base = config_toml(listen, admin, brokers, extra);
    let app = "\n[[sources]]\nid = \"app\"";
    let at = base
        .find(app)
        .expect("the standard config has an app source");
    format!("{}\n{web_quality}\n{}", &base[..at], &base[at..])
}

fn start(broker: &Broker, web_quality: &str) -> Gateway {
    start_with(broker, "", web_quality)
}

/// Starts with `extra` top-level tables and `web_quality` for `web`.
fn start_with(broker: &Broker, extra: &str, web_quality: &str) -> Gateway {
    let brokers = broker.addr();
    let (extra, web_quality) = (extra.to_string(), web_quality.to_string());
    let gw = Gateway::spawn_logged(
        move |l, a| quality_toml(l, a, &brokers, &extra, &web_quality),
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
    let client: Vec<&String> = ids.iter().filter(|id| id.starts_with("m-")).collect();
    assert_eq!(client, ["m-1", "m-2", "m-3"]);
    // The two events without an id got two distinct generated ones.
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 5);
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

const PLAN: &str = r#"{
  "track": {
    "Order Completed": {
      "type": "object",
      "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "note": {"type": "string"}
      },
      "required": ["order_id", "total"]
    }
  },
  "page": {"properties": {"path": {"type": "string", "pattern": "^/"}}, "required": ["path"]}
}"#;

/// Writes the plan into a temp dir; the TOML tables that use it for `web`.
fn plan_tables(mode: &str, unplanned: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plan.json");
    std::fs::write(&path, PLAN).expect("write plan");
    let toml = format!(
        "[sources.quality.plan]\nfile = \"{}\"\nmode = \"{mode}\"\nunplanned = \"{unplanned}\"\n",
        path.display()
    );
    (dir, toml)
}

fn order(id: &str, props: Value) -> Value {
    json!({"type":"track","event":"Order Completed","anonymousId":"a-1","messageId":id,"properties":props})
}

#[test]
fn plan_block_sends_the_event_to_the_invalid_topic_with_its_violations() {
    let broker = Broker::start();
    let (_plan, tables) = plan_tables("block", "allow");
    let gw = start(&broker, &tables);
    let body = json!({"batch":[
        order("ok-1", json!({"order_id":"o-1","total":10})),
        order("bad-1", json!({"order_id":"o-2","total":"10","note":"mail jane.doe@example.com"})),
    ]});
    let answer = post_ok(&gw, &body);
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"], 1);

    let records = consume(
        &broker.addr(),
        &[EVENTS, INVALID],
        2,
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 2, "{records:#?}");
    let good: Vec<_> = records.iter().filter(|r| r.topic == EVENTS).collect();
    assert_eq!(good.len(), 1);
    assert_eq!(good[0].value["messageId"], "ok-1");
    let invalid: Vec<_> = records.iter().filter(|r| r.topic == INVALID).collect();
    assert_eq!(invalid.len(), 1);
    let rec = &invalid[0].value;
    assert_eq!(rec["reason"], "schema_violation");
    assert_eq!(invalid[0].header("reason"), Some("schema_violation"));
    assert_eq!(
        rec["violations"],
        json!([{"path": "/properties/total", "rule": "type"}])
    );
    // The payload went through the privacy rules like any rejected event.
    let payload = rec["payload"].as_str().expect("a scrubbed payload is kept");
    assert!(payload.contains("bad-1"), "{payload}");
    assert!(!payload.contains("jane.doe@example.com"), "{payload}");

    let text = gw.metrics();
    assert_eq!(
        metric_sum(
            &text,
            "trackgate_events_total",
            &[("outcome", "rejected"), ("reason", "schema_violation")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "trackgate_plan_violations_total",
            &[
                ("source", "web"),
                ("event", "Order Completed"),
                ("kind", "type")
            ]
        ),
        1.0
    );
    settle(&gw).assert_identities();
}

#[test]
fn plan_omit_removes_properties_the_schema_does_not_declare() {
    let broker = Broker::start();
    let (_plan, tables) = plan_tables("omit", "allow");
    let gw = start(&broker, &tables);
    let body = json!({"batch":[
        order("o-1", json!({"order_id":"o-1","total":-3,"coupon":"SPRING","note":"gift"})),
        {"type":"page","anonymousId":"a-1","messageId":"p-1","properties":{"path":"/","campaign":"x"}},
    ]});
    assert_eq!(post_ok(&gw, &body)["accepted"], 2);
    let records = consume(
        &broker.addr(),
        &[EVENTS, PAGEVIEWS],
        2,
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 2, "{records:#?}");
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r.value["messageId"] == id)
            .map(|r| r.value.clone())
            .unwrap_or_else(|| panic!("{id} produced"))
    };
    let order = by_id("o-1");
    // `coupon` is not in the schema, `total` breaks its minimum.
    assert_eq!(order["properties"], json!({"order_id":"o-1","note":"gift"}));
    let mut rules: Vec<String> = order["context"]["violations"]
        .as_array()
        .expect("violations listed")
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["path"].as_str().unwrap_or(""),
                v["rule"].as_str().unwrap_or("")
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        ["/properties/coupon undeclared", "/properties/total minimum"]
    );
    let page = by_id("p-1");
    assert_eq!(page["properties"], json!({"path":"/"}));
}

#[test]
fn plan_warn_keeps_events_lists_violations_and_flags_unplanned_names() {
    let broker = Broker::start();
    let (_plan, tables) = plan_tables("warn", "warn");
    let gw = start(&broker, &tables);
    let forged = json!({"violations":[{"path":"/x","rule":"forged"}]});
    let body = json!({"batch":[
        {"type":"track","event":"Order Completed","anonymousId":"a-1","messageId":"w-1",
         "properties":{"total":5},"context":forged},
        {"type":"track","event":"Order Complete","anonymousId":"a-1","messageId":"w-2",
         "context":forged},
        {"type":"track","event":"Order Completed","anonymousId":"a-1","messageId":"w-3",
         "properties":{"order_id":"o","total":5},"context":forged},
    ]});
    assert_eq!(post_ok(&gw, &body)["accepted"], 3);
    let records = consume(&broker.addr(), &[EVENTS], 3, Duration::from_secs(30));
    assert_eq!(records.len(), 3, "{records:#?}");
    let violations = |id: &str| {
        records
            .iter()
            .find(|r| r.value["messageId"] == id)
            .map(|r| r.value["context"]["violations"].clone())
            .unwrap_or_else(|| panic!("{id} produced"))
    };
    assert_eq!(
        violations("w-1"),
        json!([{"path":"/properties/order_id","rule":"required"}])
    );
    assert_eq!(
        violations("w-2"),
        json!([{"path":"/event","rule":"unplanned"}])
    );
    // A valid event carries no violations, and never the client's own list.
    assert_eq!(violations("w-3"), Value::Null);
    let text = gw.metrics();
    assert_eq!(
        metric_sum(
            &text,
            "trackgate_plan_violations_total",
            &[("event", "unplanned"), ("kind", "unplanned")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "trackgate_plan_violations_total",
            &[("event", "Order Completed"), ("kind", "required")]
        ),
        1.0
    );
}

/// A small list in Snowplow's referer-parser JSON format (written for the test).
const REFERRERS: &str = r#"{
  "search": {"Google": {"domains": ["google.com", "google.fr"]}},
  "social": {"Facebook": {"domains": ["facebook.com"]}}
}"#;

#[test]
fn events_are_enriched_after_privacy_with_user_agent_campaign_and_referrer() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("referers.json");
    std::fs::write(&list, REFERRERS).expect("write list");
    let extra = format!("[quality]\nreferrers_file = \"{}\"\n", list.display());
    let gw = start_with(&broker, &extra, "");
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let page = |id: &str, url: &str, referrer: &str| {
        json!({"type":"page","anonymousId":"a-1","messageId":id,
               "context":{"page":{"url":url,"referrer":referrer},
                          "userAgentParsed":{"browser":{"name":"forged"}},
                          "referrerParsed":{"channel":"forged"}},
               "properties":{"url":url,"referrer":referrer}})
    };
    let body = json!({"batch":[
        page("e-1", "https://shop.example/?utm_source=news&utm_medium=email&utm_campaign=spring&gclid=g-1",
             "https://www.google.fr/"),
        page("e-2", "https://shop.example/?utm_source=news&utm_content=jane.doe%40example.com", ""),
        page("e-3", "https://shop.example/b", "https://shop.example/a"),
    ]});
    let auth = basic(WRITE_KEY);
    let r = gw.request(
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("user-agent", chrome),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let records = consume(&broker.addr(), &[PAGEVIEWS], 3, Duration::from_secs(30));
    assert_eq!(records.len(), 3, "{records:#?}");
    let ctx = |id: &str| {
        records
            .iter()
            .find(|r| r.value["messageId"] == id)
            .map(|r| r.value["context"].clone())
            .unwrap_or_else(|| panic!("{id} produced"))
    };
    let first = ctx("e-1");
    // The header's user agent, parsed; the client's forged objects are gone.
    assert_eq!(first["userAgentParsed"]["browser"]["name"], "Chrome");
    assert_eq!(first["userAgentParsed"]["os"]["name"], "Windows");
    assert_eq!(first["userAgentParsed"]["device"]["type"], "desktop");
    assert_eq!(
        first["campaign"],
        json!({"source":"news","medium":"email","name":"spring","gclid":"g-1"})
    );
    assert_eq!(
        first["referrerParsed"],
        json!({"host":"www.google.fr","channel":"search","source":"Google"})
    );
    // Privacy ran first: the e-mail in the URL was masked, and the campaign
    // built from that URL does not bring it back.
    let second = ctx("e-2");
    assert_eq!(second["campaign"]["source"], "news");
    let text = second.to_string();
    assert!(!text.contains("jane.doe"), "{text}");
    assert_eq!(second["referrerParsed"], json!({"channel":"direct"}));
    assert_eq!(
        ctx("e-3")["referrerParsed"],
        json!({"host":"shop.example","channel":"internal"})
    );
}
