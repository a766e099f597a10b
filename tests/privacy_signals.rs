//! Global Privacy Control and Do Not Track under each per-source policy,
//! end to end: what the broker received, on every event topic.

mod support;

use std::collections::HashSet;

use serde_json::{json, Value};
use support::privacy::*;
use support::*;

/// One visitor's batch: a page, a click with an e-mail address in its
/// properties (scrubbing such free-form data is the PII scrubber's job,
/// not anonymization's), an identify with traits; `context` is added to the
/// first two events.
fn batch(anon: &str, user: &str, context: Value) -> String {
    let email = "jane@example.com";
    json!({"batch": [
        {"type":"page","anonymousId":anon,"userId":user,"name":"Home","context":context},
        {"type":"track","anonymousId":anon,"userId":user,"event":"click",
         "properties":{"email":email},"context":context},
        {"type":"identify","anonymousId":anon,"userId":user,"traits":{"email":email},
         "context":{"traits":{"email":email},"device":{"id":format!("{anon}-device"),"model":"Pixel"}}},
    ]})
    .to_string()
}

/// Asserts an anonymized record: no ids, traits, address or device id;
/// country-level geo; marked with the reason; a random key.
fn assert_anonymized(r: &Record, reason: &str) {
    let v = &r.value;
    for k in ["anonymousId", "userId", "previousId", "traits"] {
        assert!(v.get(k).is_none(), "{k} kept: {v}");
    }
    let ctx = &v["context"];
    for k in ["ip", "ipHash", "traits"] {
        assert!(ctx.get(k).is_none(), "context.{k} kept: {v}");
    }
    assert!(ctx["device"].get("id").is_none(), "{v}");
    assert_eq!(ctx["geo"], json!({"country":"GB"}), "{v}");
    assert_eq!(ctx["privacy"]["anonymized"], reason, "{v}");
    let key = r.key.as_deref().expect("a record key");
    assert_eq!(
        uuid::Uuid::parse_str(key)
            .expect("a UUID key")
            .get_version_num(),
        4
    );
}

fn with_geo(dir: &tempfile::TempDir) -> String {
    format!(
        "geoip_database = {:?}",
        write_geoip_fixture(dir.path()).display().to_string()
    )
}

#[test]
fn gpc_header_drops_under_drop_and_strips_identity_under_anonymize() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let global = with_geo(&dir);
    // web: gpc = "drop" (the default); app: gpc = "anonymize".
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            global: &global,
            app: "gpc = \"anonymize\"",
            ..Setup::default()
        },
    );
    let gpc = [("sec-gpc", "1")];
    let r = send(
        &gw,
        "/v1/batch",
        &batch("anon-gpc-web", "user-gpc-web", json!({})),
        &gpc,
    );
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":0,"rejected":0,"dropped":3})
    );
    let r = send_as(
        &gw,
        APP_WRITE_KEY,
        CLIENT_IP,
        "/v1/batch",
        &batch("anon-gpc-app", "user-gpc-app", json!({})),
        &gpc,
    );
    assert_eq!(r.json()["accepted"], 3);
    // Control: no signal, kept whole.
    let r = send(
        &gw,
        "/v1/batch",
        &batch("anon-ctl", "user-ctl", json!({})),
        &[],
    );
    assert_eq!(r.json()["accepted"], 3);

    let recs = every_event_topic(&broker.addr(), 6);
    assert_eq!(recs.len(), 6, "{recs:#?}");
    let ctl = of_visitor(&recs, "anon-ctl");
    assert_eq!(ctl.len(), 3);
    assert!(ctl.iter().all(|r| r.key.as_deref() == Some("user-ctl")));
    assert!(ctl
        .iter()
        .all(|r| r.value["context"]["geo"]["city"] == "London"));
    let anonymized: Vec<&Record> = recs
        .iter()
        .filter(|r| r.header("source") == Some("app"))
        .collect();
    assert_eq!(anonymized.len(), 3);
    for r in &anonymized {
        assert_anonymized(r, "gpc");
    }
    // The page itself is kept.
    assert!(anonymized
        .iter()
        .any(|r| r.value["type"] == "page" && r.value["name"] == "Home"));
    assert_nowhere(
        &recs,
        &[
            "anon-gpc-web",
            "user-gpc-web",
            "anon-gpc-app",
            "user-gpc-app",
            "anon-gpc-app-device",
            CLIENT_IP,
        ],
    );
    assert_eq!(
        gw.metric(
            "trackgate_privacy_decisions_total",
            &[("decision", "drop"), ("reason", "gpc")]
        ),
        3.0
    );
    assert_eq!(
        gw.metric(
            "trackgate_privacy_decisions_total",
            &[("decision", "anonymize"), ("reason", "gpc")]
        ),
        3.0
    );
    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "gpc")]
        ),
        3.0
    );
}

#[test]
fn gpc_in_the_event_context_follows_the_same_policies() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let global = with_geo(&dir);
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            global: &global,
            app: "gpc = \"anonymize\"",
            ..Setup::default()
        },
    );
    let gpc_ctx = json!({"privacy":{"gpc":true}});
    let r = send(
        &gw,
        "/v1/batch",
        &batch("anon-ctx-web", "user-ctx-web", gpc_ctx.clone()),
        &[],
    );
    // The identify carries no context.privacy: only the two others drop.
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":1,"rejected":0,"dropped":2})
    );
    // For anonymize, every event of many visitors, to see the keys spread.
    let many: Vec<Value> = (0..16)
        .map(|i| json!({"type":"page","anonymousId":format!("anon-ctx-app-{i}"),"context":gpc_ctx}))
        .collect();
    let r = send_as(
        &gw,
        APP_WRITE_KEY,
        CLIENT_IP,
        "/v1/batch",
        &json!({"batch": many}).to_string(),
        &[],
    );
    assert_eq!(r.json()["accepted"], 16);
    // A batch-level context.privacy.gpc applies to every event of the batch.
    let r = send(
        &gw,
        "/v1/batch",
        &json!({"batch":[{"type":"page","anonymousId":"anon-batch-gpc"}],
                "context":{"privacy":{"gpc":true}}})
        .to_string(),
        &[],
    );
    assert_eq!(r.json()["dropped"], 1);

    let recs = every_event_topic(&broker.addr(), 17);
    assert_eq!(recs.len(), 17, "{recs:#?}");
    // The web identify (no GPC in its own context) is kept whole.
    assert_eq!(of_visitor(&recs, "anon-ctx-web").len(), 1);
    let anonymized: Vec<&Record> = recs
        .iter()
        .filter(|r| r.header("source") == Some("app"))
        .collect();
    assert_eq!(anonymized.len(), 16);
    let mut keys = HashSet::new();
    let mut partitions = HashSet::new();
    for r in &anonymized {
        assert_anonymized(r, "gpc");
        keys.insert(r.key.clone());
        partitions.insert(r.partition);
    }
    assert_eq!(keys.len(), 16, "every anonymized record has its own key");
    assert!(partitions.len() > 1, "random keys spread over partitions");
    assert_nowhere(&recs, &["anon-ctx-app", "anon-batch-gpc"]);
}

#[test]
fn dnt_under_ignore_anonymize_and_drop() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let global = with_geo(&dir);
    // Gateway A: web dnt = "ignore", app dnt = "drop".
    let a = start_gateway(
        &broker.addr(),
        &Setup {
            global: &global,
            web: "dnt = \"ignore\"",
            app: "dnt = \"drop\"",
            ..Setup::default()
        },
    );
    // Gateway B: the default, dnt = "anonymize".
    let b = start_gateway(
        &broker.addr(),
        &Setup {
            global: &global,
            ..Setup::default()
        },
    );
    let dnt = [("dnt", "1")];
    let r = send(
        &a,
        "/v1/batch",
        &batch("anon-dnt-ignored", "user-dnt-ignored", json!({})),
        &dnt,
    );
    assert_eq!(r.json()["accepted"], 3);
    let r = send_as(
        &a,
        APP_WRITE_KEY,
        CLIENT_IP,
        "/v1/batch",
        &batch("anon-dnt-dropped", "user-dnt-dropped", json!({})),
        &dnt,
    );
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":0,"rejected":0,"dropped":3})
    );
    let r = send(
        &b,
        "/v1/batch",
        &batch("anon-dnt-anon", "user-dnt-anon", json!({})),
        &dnt,
    );
    assert_eq!(r.json()["accepted"], 3);

    let recs = every_event_topic(&broker.addr(), 6);
    assert_eq!(recs.len(), 6, "{recs:#?}");
    // ignore: kept whole, ids and key and truncated address.
    let ignored = of_visitor(&recs, "anon-dnt-ignored");
    assert_eq!(ignored.len(), 3);
    for r in &ignored {
        assert_eq!(r.key.as_deref(), Some("user-dnt-ignored"));
        assert_eq!(r.value["context"]["ip"], CLIENT_IP_TRUNCATED);
    }
    // anonymize: the other three records.
    let anonymized: Vec<&Record> = recs
        .iter()
        .filter(|r| r.value.get("anonymousId").is_none())
        .collect();
    assert_eq!(anonymized.len(), 3);
    for r in anonymized {
        assert_anonymized(r, "dnt");
    }
    assert_nowhere(
        &recs,
        &[
            "anon-dnt-dropped",
            "user-dnt-dropped",
            "anon-dnt-anon",
            "user-dnt-anon",
            CLIENT_IP,
        ],
    );
    assert_eq!(
        a.metric(
            "trackgate_privacy_decisions_total",
            &[("decision", "keep"), ("reason", "dnt")]
        ),
        3.0
    );
    assert_eq!(
        a.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "dnt")]
        ),
        3.0
    );
    assert_eq!(
        b.metric(
            "trackgate_privacy_decisions_total",
            &[("decision", "anonymize"), ("reason", "dnt")]
        ),
        3.0
    );
}
