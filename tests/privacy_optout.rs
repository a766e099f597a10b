//! Opt-out end to end: `/v1/optout`, `/v1/optin`, the `tg_optout` cookie
//! and the shared suppression list on its compacted topic, against the real
//! broker. Every test reads every event topic back and proves that nothing
//! of the opted-out visitor arrived, while a control visitor's events did.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::privacy::*;
use support::*;

/// A batch of one visitor's events, of every kind that can carry their id,
/// with their e-mail address (`<id>@example.com`) in properties and traits.
fn visitor_batch(id_field: &str, id: &str) -> Value {
    let email = format!("{id}@example.com");
    json!({"batch": [
        {"type":"page", id_field: id, "name":"Home", "properties":{"path":"/"}},
        {"type":"track", id_field: id, "event":"click", "properties":{"email":email}},
        {"type":"track", id_field: id, "event":"Order Completed"},
        {"type":"identify", id_field: id, "traits":{"email":email,"name":"Jane"}},
    ]})
}

#[test]
fn optout_by_anonymous_id_drops_every_later_event_of_that_visitor() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());

    let r = send(&gw, "/v1/optout", r#"{"anonymousId":"anon-out"}"#, &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"success":true,"optedOut":true}));
    assert_eq!(
        r.header("set-cookie"),
        Some("tg_optout=1; Max-Age=63072000; Path=/; SameSite=Lax")
    );

    // No cookie is sent back: only the list can suppress these.
    let r = send(
        &gw,
        "/v1/batch",
        &visitor_batch("anonymousId", "anon-out").to_string(),
        &[],
    );
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":0,"rejected":0,"dropped":4})
    );
    // A single-event endpoint, and an event that would be rejected: dropped too.
    let r = send(
        &gw,
        "/v1/track",
        r#"{"anonymousId":"anon-out","event":"Signed Up"}"#,
        &[],
    );
    assert_eq!(r.json()["dropped"], 1);
    let r = send(
        &gw,
        "/v1/batch",
        r#"{"batch":[{"type":"nonsense","anonymousId":"anon-out","traits":{"email":"anon-out@example.com"}}]}"#,
        &[],
    );
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":0,"rejected":0,"dropped":1})
    );
    // The control visitor's events arrive.
    let r = send(
        &gw,
        "/v1/batch",
        &visitor_batch("anonymousId", "anon-ctl").to_string(),
        &[],
    );
    assert_eq!(r.json()["accepted"], 4);

    let recs = every_event_topic(&broker.addr(), 4);
    assert_eq!(of_visitor(&recs, "anon-ctl").len(), 4, "{recs:#?}");
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_nowhere(&recs, &["anon-out"]);

    let list = optout_records(&broker.addr(), 1);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0].key.as_deref(), Some("anon:anon-out"));
    assert_eq!(list[0].value["optedOut"], true);
    assert!(list[0].value["at"].is_string());

    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "optout_list")]
        ),
        6.0
    );
    assert_eq!(
        gw.metric(
            "trackgate_privacy_decisions_total",
            &[("decision", "drop"), ("reason", "optout_list")]
        ),
        6.0
    );
    assert_eq!(gw.metric("trackgate_optout_list_entries", &[]), 1.0);
}

#[test]
fn optout_by_user_id_from_the_query_drops_that_users_events() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());

    // Write key and id in the query string, empty body.
    let r = gw.request(
        "POST",
        &format!("/v1/optout?writeKey={WRITE_KEY}&userId=user-out"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let mut batch = visitor_batch("userId", "user-out");
    // The user on another device (another anonymousId), and an alias that
    // links the opted-out user to a new id.
    batch["batch"].as_array_mut().unwrap().extend([
        json!({"type":"page","userId":"user-out","anonymousId":"device-2"}),
        json!({"type":"alias","userId":"user-new","previousId":"user-out"}),
    ]);
    let r = send(&gw, "/v1/batch", &batch.to_string(), &[]);
    assert_eq!(r.json()["dropped"], 6);
    let r = send(
        &gw,
        "/v1/batch",
        &visitor_batch("userId", "user-ctl").to_string(),
        &[],
    );
    assert_eq!(r.json()["accepted"], 4);

    let recs = every_event_topic(&broker.addr(), 4);
    assert_eq!(of_visitor(&recs, "user-ctl").len(), 4, "{recs:#?}");
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_nowhere(&recs, &["user-out", "device-2", "user-new"]);
    let list = optout_records(&broker.addr(), 1);
    assert_eq!(list[0].key.as_deref(), Some("user:user-out"));
}

#[test]
fn optout_cookie_drops_the_requests_events_and_its_secure_flag_follows_the_proxy() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());

    // A plain link: GET with the write key in the query, no id at all.
    let r = gw.request("GET", &format!("/v1/optout?writeKey={WRITE_KEY}"), &[], b"");
    assert_eq!(r.status, 200);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Behind a TLS-terminating trusted proxy the cookie is Secure.
    let r = gw.request(
        "GET",
        &format!("/v1/optout?writeKey={WRITE_KEY}"),
        &[("x-forwarded-proto", "https")],
        b"",
    );
    assert_eq!(
        r.header("set-cookie"),
        Some("tg_optout=1; Max-Age=63072000; Path=/; SameSite=Lax; Secure")
    );
    let r = gw.request(
        "GET",
        &format!("/v1/optout?writeKey={WRITE_KEY}"),
        &[("forwarded", "for=81.2.69.160;proto=https")],
        b"",
    );
    assert!(r.header("set-cookie").unwrap().ends_with("; Secure"));

    // The browser sends the cookie back: every event of the request is
    // dropped, even a malformed one, and even though no id is listed.
    let jar = ("cookie", cookie.split(';').next().unwrap());
    assert_eq!(jar.1, "tg_optout=1");
    let r = send(
        &gw,
        "/v1/batch",
        &visitor_batch("anonymousId", "anon-cookie").to_string(),
        &[jar],
    );
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":0,"rejected":0,"dropped":4})
    );
    let r = send(
        &gw,
        "/v1/batch",
        r#"{"batch":[{"type":"bogus","anonymousId":"anon-cookie"}]}"#,
        &[jar],
    );
    assert_eq!(r.json()["dropped"], 1);
    let pixel_data = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"anonymousId":"anon-cookie"}"#)
    };
    let r = gw.request(
        "GET",
        &format!("/v1/pixel.gif?writeKey={WRITE_KEY}&data={pixel_data}"),
        &[jar, ("x-forwarded-for", CLIENT_IP)],
        b"",
    );
    assert_eq!(r.status, 200);
    // Another cookie value does not opt out: the control visitor arrives.
    let r = send(
        &gw,
        "/v1/batch",
        &visitor_batch("anonymousId", "anon-ctl").to_string(),
        &[("cookie", "tg_optout=0; other=1")],
    );
    assert_eq!(r.json()["accepted"], 4);

    let recs = every_event_topic(&broker.addr(), 4);
    assert_eq!(of_visitor(&recs, "anon-ctl").len(), 4, "{recs:#?}");
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_nowhere(&recs, &["anon-cookie"]);
    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "optout_cookie")]
        ),
        6.0
    );
}

#[test]
fn optin_restores_tracking_and_clears_the_cookie() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let page = r#"{"anonymousId":"anon-back","name":"Home"}"#;

    assert_eq!(
        send(&gw, "/v1/optout", r#"{"anonymousId":"anon-back"}"#, &[]).status,
        200
    );
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["dropped"], 1);

    // Opt-in has no GET: a link or image elsewhere cannot re-enable tracking.
    let r = gw.request(
        "GET",
        &format!("/v1/optin?writeKey={WRITE_KEY}&anonymousId=anon-back"),
        &[],
        b"",
    );
    assert_eq!(r.status, 405);
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["dropped"], 1);

    let r = send(&gw, "/v1/optin", r#"{"anonymousId":"anon-back"}"#, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"success":true,"optedOut":false}));
    assert_eq!(
        r.header("set-cookie"),
        Some("tg_optout=; Max-Age=0; Path=/; SameSite=Lax")
    );
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["accepted"], 1);

    let recs = every_event_topic(&broker.addr(), 1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].value["anonymousId"], "anon-back");
    // The list topic: the opt-out, then a tombstone that lets compaction
    // forget the id.
    let list = optout_records(&broker.addr(), 2);
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(list
        .iter()
        .all(|r| r.key.as_deref() == Some("anon:anon-back")));
    assert_eq!(list[0].value["optedOut"], true);
    assert_eq!(list[1].value, Value::Null);
    assert_eq!(gw.metric("trackgate_optout_list_entries", &[]), 0.0);
}

#[test]
fn optout_survives_a_gateway_restart() {
    let broker = Broker::start();
    let mut first = start_gateway(&broker.addr(), &Setup::default());
    let r = send(
        &first,
        "/v1/optout",
        r#"{"anonymousId":"anon-kept","userId":"user-kept"}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    // A visitor who opted out and back in before the restart stays in.
    assert_eq!(
        send(&first, "/v1/optout", r#"{"anonymousId":"anon-flip"}"#, &[]).status,
        200
    );
    assert_eq!(
        send(&first, "/v1/optin", r#"{"anonymousId":"anon-flip"}"#, &[]).status,
        200
    );
    assert!(first.terminate().success());

    // A new instance on the same broker reads the list before it is ready.
    let second = start_gateway(&broker.addr(), &Setup::default());
    assert_eq!(second.metric("trackgate_optout_list_entries", &[]), 2.0);
    let r = send(
        &second,
        "/v1/batch",
        &json!({"batch":[
            {"type":"page","anonymousId":"anon-kept"},
            {"type":"page","userId":"user-kept","anonymousId":"other-device"},
            {"type":"track","anonymousId":"anon-ctl","event":"click"},
            {"type":"page","anonymousId":"anon-flip"},
        ]})
        .to_string(),
        &[],
    );
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":2,"rejected":0,"dropped":2})
    );

    let recs = every_event_topic(&broker.addr(), 2);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "anon-ctl").len(), 1);
    assert_eq!(of_visitor(&recs, "anon-flip").len(), 1);
    assert_nowhere(&recs, &["anon-kept", "user-kept", "other-device"]);
}

#[test]
fn readiness_waits_for_the_optout_list() {
    // No broker yet: the list cannot be read, and readiness says so.
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let gw = spawn_gateway(&brokers, &Setup::default());
    std::thread::sleep(Duration::from_millis(800));
    let r = http(gw.admin, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!(r.status, 503);
    let reasons = r.json()["reasons"].to_string();
    assert!(reasons.contains("optout_list_loading"), "{reasons}");

    // The broker appears: the gateway creates the list topic (`consume`
    // asserts it exists), reads it, and becomes ready.
    let broker = Broker::start_on(port);
    gw.wait_ready(Duration::from_secs(30));
    let list = consume(&broker.addr(), &[OPTOUTS], 0, Duration::from_millis(500));
    assert!(list.is_empty(), "{list:#?}");
}

#[test]
fn optout_endpoints_speak_cors_and_refuse_bad_requests() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let pre = gw.request(
        "OPTIONS",
        "/v1/optout",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some(ORIGIN));

    let auth = basic(WRITE_KEY);
    let r = gw.request(
        "POST",
        "/v1/optout",
        &[
            ("content-type", "text/plain"),
            ("origin", ORIGIN),
            ("authorization", &auth),
        ],
        br#"{"anonymousId":"from-browser"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("set-cookie").is_some());

    // Write key in the body works; none at all is 401; a foreign origin 403.
    let r = gw.request(
        "POST",
        "/v1/optout",
        &[],
        format!(r#"{{"writeKey":"{WRITE_KEY}","userId":"u-body"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 200);
    let r = gw.request("POST", "/v1/optout", &[], br#"{"userId":"x"}"#);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("missing_write_key"))
    );
    let r = gw.request(
        "POST",
        "/v1/optout",
        &[("origin", "https://evil.example"), ("authorization", &auth)],
        br#"{"userId":"x"}"#,
    );
    assert_eq!(r.status, 403);
    let r = gw.request(
        "POST",
        "/v1/optout",
        &[("authorization", &auth)],
        br#"{"userId":{"nested":true}}"#,
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_identity"))
    );
    let r = gw.request("POST", "/v1/optout", &[("authorization", &auth)], b"[1]");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_json"))
    );

    // Only the two accepted opt-outs reached the list.
    let list = optout_records(&broker.addr(), 2);
    let mut keys: Vec<_> = list.iter().filter_map(|r| r.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, vec!["anon:from-browser", "user:u-body"]);
}

#[test]
fn an_unrecorded_optout_answers_503_yet_holds_in_the_cookie_and_on_this_instance() {
    let mut broker = Broker::start();
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            global: "optout_write_timeout_ms = 1000",
            ..Setup::default()
        },
    );
    broker.stop();
    let r = send(&gw, "/v1/optout", r#"{"anonymousId":"anon-offline"}"#, &[]);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        r.header("set-cookie"),
        Some("tg_optout=1; Max-Age=63072000; Path=/; SameSite=Lax")
    );
    // Without the cookie, the local list still suppresses the visitor.
    let r = send(&gw, "/v1/page", r#"{"anonymousId":"anon-offline"}"#, &[]);
    assert_eq!(r.json()["dropped"], 1);
    // An opt-in that cannot be recorded leaves the cookie alone.
    let r = send(&gw, "/v1/optin", r#"{"anonymousId":"anon-offline"}"#, &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(
        gw.metric(
            "trackgate_optout_requests_total",
            &[("action", "optout"), ("result", "unavailable")]
        ),
        1.0
    );
}
