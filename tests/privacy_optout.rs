//! Opt-out end to end: `/v1/optout`, `/v1/optin`, the `tg_optout` and
//! `tg_optout_proof` cookies, the server key and the shared, per-source,
//! bounded suppression list on its compacted topic, against the real
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

/// Opts the anonymous id out from a browser on `writer`, then waits until
/// `follower`, reading the topic, lists it (and nothing else).
fn opt_out_and_wait_until_followed(writer: &Gateway, follower: &Gateway, id: &str) -> Response {
    let out = from_browser(
        writer,
        "/v1/optout",
        &format!(r#"{{"anonymousId":"{id}"}}"#),
        "",
    );
    assert_eq!(out.status, 200);
    wait_until(
        "the other instance lists the id",
        Duration::from_secs(30),
        || follower.metric("trackgate_optout_list_entries", &[]) == 1.0,
    );
    out
}

/// Sends a batch of the opted-out visitor `gone` and one of the control
/// visitor `anon-ctl` to `gw`: the first is dropped whole, the second
/// accepted.
fn assert_drops_visitor_keeps_control(gw: &Gateway, gone: &str) {
    let r = send(
        gw,
        "/v1/batch",
        &visitor_batch("anonymousId", gone).to_string(),
        &[],
    );
    assert_eq!(r.json()["dropped"], 4);
    let r = send(
        gw,
        "/v1/batch",
        &visitor_batch("anonymousId", "anon-ctl").to_string(),
        &[],
    );
    assert_eq!(r.json()["accepted"], 4);
}

/// Reads every event topic back: the control visitor's 4 events are there,
/// nothing of `gone` is.
fn assert_only_control_reached_kafka(brokers: &str, gone: &str) {
    let recs = every_event_topic(brokers, 4);
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "anon-ctl").len(), 4);
    assert_nowhere(&recs, &[gone]);
}

#[test]
fn optout_by_anonymous_id_drops_every_later_event_of_that_visitor() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());

    let r = from_browser(&gw, "/v1/optout", r#"{"anonymousId":"anon-out"}"#, "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"success":true,"optedOut":true}));
    let cookies = set_cookies(&r);
    assert_eq!(
        cookies[0],
        "tg_optout=1; Max-Age=63072000; Path=/; SameSite=Lax"
    );
    assert!(
        cookies[1].starts_with("tg_optout_proof=")
            && cookies[1].ends_with("; Max-Age=63072000; HttpOnly; Path=/; SameSite=Lax"),
        "{cookies:?}"
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
    // The opt-out was taken for the `web` source: `app` is not affected.
    let r = send_as(
        &gw,
        APP_WRITE_KEY,
        CLIENT_IP,
        "/v1/page",
        r#"{"anonymousId":"anon-out","name":"App home"}"#,
        &[],
    );
    assert_eq!(r.json()["accepted"], 1);

    let recs = every_event_topic(&broker.addr(), 5);
    assert_eq!(of_visitor(&recs, "anon-ctl").len(), 4, "{recs:#?}");
    assert_eq!(recs.len(), 5, "{recs:#?}");
    let out: Vec<&Record> = of_visitor(&recs, "anon-out");
    assert_eq!(out.len(), 1);
    assert!(
        out[0].headers.contains(&("source".into(), "app".into())),
        "{out:#?}"
    );
    assert_nowhere(
        &recs
            .iter()
            .filter(|r| r.value["anonymousId"] != "anon-out")
            .cloned()
            .collect::<Vec<_>>(),
        &["anon-out"],
    );

    let list = optout_records(&broker.addr(), 1);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0].key, Some(optout_key("anon", "anon-out")));
    assert_nowhere(&list, &["anon-out"]);
    assert_eq!(list[0].value["optedOut"], true);
    assert!(list[0].value["at"].is_string());
    // The hash of the browser's proof, never the proof itself.
    let proofs = list[0].value["proofs"].as_array().unwrap();
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].as_str().unwrap().len(), 64);
    assert!(!cookies[1].contains(proofs[0].as_str().unwrap()));

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
fn optout_by_id_needs_an_allowed_origin_or_the_server_key() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());

    // The public write key alone (a server, or anyone with curl) cannot
    // suppress ids; a foreign origin neither; a wrong server key is 401.
    let query = format!("/v1/optout?writeKey={WRITE_KEY}&userId=user-out");
    let r = gw.request("POST", &query, &[], b"");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (403, json!("origin_required"))
    );
    let r = gw.request("POST", &query, &[("origin", "https://evil.example")], b"");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (403, json!("origin_not_allowed"))
    );
    let r = gw.request(
        "POST",
        "/v1/optout?userId=user-out",
        &[("authorization", "Bearer sk_not_the_key_000000")],
        b"",
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid_server_key"))
    );
    assert_eq!(
        send(&gw, "/v1/page", r#"{"userId":"user-out"}"#, &[]).json()["accepted"],
        1
    );

    // The server key: ids from the query string, no write key needed.
    let r = gw.request(
        "POST",
        "/v1/optout?userId=user-out",
        &[("x-trackgate-server-key", SERVER_KEY)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // No browser, no proof cookie.
    assert_eq!(set_cookies(&r).len(), 1);

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

    let recs = every_event_topic(&broker.addr(), 5);
    assert_eq!(of_visitor(&recs, "user-ctl").len(), 4, "{recs:#?}");
    assert_eq!(recs.len(), 5, "{recs:#?}");
    assert_nowhere(&recs, &["device-2", "user-new"]);
    // Only the page sent before the opt-out.
    assert_eq!(of_visitor(&recs, "user-out").len(), 1);
    let list = optout_records(&broker.addr(), 1);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0].key, Some(optout_key("user", "user-out")));
    assert_nowhere(&list, &["user-out"]);
    assert_eq!(list[0].value["proofs"], json!([]));
    assert_eq!(
        gw.metric(
            "trackgate_optout_requests_total",
            &[("action", "optout"), ("result", "refused")]
        ),
        3.0
    );
}

#[test]
fn optout_cookie_drops_the_requests_events_and_its_secure_flag_follows_the_proxy() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());

    // A plain link or an image on any page: GET, even naming ids. It sets
    // the cookie of the browser that sent it and suppresses no id.
    let r = gw.request(
        "GET",
        &format!("/v1/optout?writeKey={WRITE_KEY}&anonymousId=anon-img&userId=user-img"),
        &[("referer", "https://evil.example/page.html")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(set_cookies(&r).len(), 1);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Behind a TLS-terminating trusted proxy the cookie is Secure.
    let r = gw.request(
        "GET",
        &format!("/v1/optout?writeKey={WRITE_KEY}"),
        &[("x-forwarded-proto", "https")],
        b"",
    );
    // Over HTTPS: `SameSite=None; Secure`, so a credentialed cross-origin
    // fetch from the site sets and sends it.
    assert_eq!(
        r.header("set-cookie"),
        Some("tg_optout=1; Max-Age=63072000; Path=/; SameSite=None; Secure")
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
    // The ids the image named are not suppressed.
    let r = send(
        &gw,
        "/v1/batch",
        r#"{"batch":[{"type":"page","anonymousId":"anon-img"},{"type":"page","userId":"user-img"}]}"#,
        &[],
    );
    assert_eq!(r.json()["accepted"], 2);

    let recs = every_event_topic(&broker.addr(), 6);
    assert_eq!(of_visitor(&recs, "anon-ctl").len(), 4, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "anon-img").len(), 1, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "user-img").len(), 1, "{recs:#?}");
    assert_eq!(recs.len(), 6, "{recs:#?}");
    assert_nowhere(&recs, &["anon-cookie"]);
    assert!(consume(&broker.addr(), &[OPTOUTS], 0, Duration::from_millis(500)).is_empty());
    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "optout_cookie")]
        ),
        6.0
    );
}

#[test]
fn optin_without_proof_changes_nothing_and_with_the_cookie_or_server_key_works() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let page = r#"{"anonymousId":"anon-back","name":"Home"}"#;

    let out = from_browser(&gw, "/v1/optout", r#"{"anonymousId":"anon-back"}"#, "");
    assert_eq!(out.status, 200);
    let visitor = cookie_jar(&out);
    assert!(
        visitor.starts_with("tg_optout=1; tg_optout_proof="),
        "{visitor}"
    );
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["dropped"], 1);

    // Another browser that opted itself out holds a proof of its own.
    let other = from_browser(&gw, "/v1/optout", r#"{"anonymousId":"anon-other"}"#, "");
    let other = cookie_jar(&other);
    // Opting in by anyone else changes nothing: no proof at all, the plain
    // opt-out cookie, another browser's proof, a GET, another source's key.
    let body = r#"{"anonymousId":"anon-back"}"#;
    for (what, r) in [
        ("no proof", from_browser(&gw, "/v1/optin", body, "")),
        ("no proof, no origin", send(&gw, "/v1/optin", body, &[])),
        (
            "opt-out cookie only",
            from_browser(&gw, "/v1/optin", body, "tg_optout=1"),
        ),
        (
            "another browser's proof",
            from_browser(&gw, "/v1/optin", body, &other),
        ),
        (
            "a made-up proof",
            from_browser(
                &gw,
                "/v1/optin",
                body,
                "tg_optout_proof=AAAAAAAAAAAAAAAAAAAAAA",
            ),
        ),
    ] {
        assert_eq!(
            r.status,
            403,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"], "proof_required", "{what}");
        assert!(set_cookies(&r).is_empty(), "{what}");
    }
    let r = gw.request(
        "GET",
        &format!("/v1/optin?writeKey={WRITE_KEY}&anonymousId=anon-back"),
        &[],
        b"",
    );
    assert_eq!(r.status, 405);
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["dropped"], 1);

    // The visitor's own cookies opt them back in.
    let r = from_browser(&gw, "/v1/optin", body, &visitor);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"success":true,"optedOut":false}));
    assert_eq!(
        r.header("set-cookie"),
        Some("tg_optout=; Max-Age=0; Path=/; SameSite=Lax")
    );
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["accepted"], 1);

    // The server key opts in whoever its source's visitor opted out.
    let r = from_server(&gw, "/v1/optin", r#"{"anonymousId":"anon-other"}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Removed here once the broker acknowledged the tombstone; the follower
    // may still apply the older opt-out record it had not read yet, which
    // holds the visitor suppressed a moment longer (the safe direction).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = send(&gw, "/v1/page", r#"{"anonymousId":"anon-other"}"#, &[]);
        if r.json()["accepted"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still suppressed after the server key's opt-in"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let recs = every_event_topic(&broker.addr(), 2);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "anon-back").len(), 1);
    assert_eq!(of_visitor(&recs, "anon-other").len(), 1);
    // The list topic: two opt-outs, then tombstones that let compaction
    // forget the ids.
    let list = optout_records(&broker.addr(), 4);
    assert_eq!(list.len(), 4, "{list:#?}");
    let back: Vec<&Record> = list
        .iter()
        .filter(|r| r.key == Some(optout_key("anon", "anon-back")))
        .collect();
    assert_eq!(back.len(), 2, "{list:#?}");
    assert_eq!(back[0].value["optedOut"], true);
    assert_eq!(back[1].value, Value::Null);
    assert_eq!(gw.metric("trackgate_optout_list_entries", &[]), 0.0);
    assert_eq!(
        gw.metric(
            "trackgate_optout_requests_total",
            &[("action", "optin"), ("result", "refused")]
        ),
        5.0
    );
}

#[test]
fn optout_survives_a_gateway_restart() {
    let broker = Broker::start();
    let mut first = start_gateway(&broker.addr(), &Setup::default());
    let r = from_browser(
        &first,
        "/v1/optout",
        r#"{"anonymousId":"anon-kept","userId":"user-kept"}"#,
        "",
    );
    assert_eq!(r.status, 200);
    let kept = cookie_jar(&r);
    // A visitor who opted out and back in before the restart stays in.
    let r = from_browser(&first, "/v1/optout", r#"{"anonymousId":"anon-flip"}"#, "");
    assert_eq!(r.status, 200);
    let flip = cookie_jar(&r);
    assert_eq!(
        from_browser(&first, "/v1/optin", r#"{"anonymousId":"anon-flip"}"#, &flip).status,
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
    // The proofs survive too: without them no opt-in, with them one.
    let r = from_browser(&second, "/v1/optin", r#"{"userId":"user-kept"}"#, &flip);
    assert_eq!(r.status, 403);
    let r = from_browser(&second, "/v1/optin", r#"{"userId":"user-kept"}"#, &kept);
    assert_eq!(r.status, 200);
    assert_eq!(second.metric("trackgate_optout_list_entries", &[]), 1.0);
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
        &[("origin", ORIGIN)],
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
        &[("authorization", &auth), ("origin", ORIGIN)],
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
    let mut want = vec![
        optout_key("anon", "from-browser"),
        optout_key("user", "u-body"),
    ];
    want.sort();
    assert_eq!(keys, want);
    assert_nowhere(&list, &["from-browser", "u-body"]);
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
    let r = from_browser(&gw, "/v1/optout", r#"{"anonymousId":"anon-offline"}"#, "");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        r.header("set-cookie"),
        Some("tg_optout=1; Max-Age=63072000; Path=/; SameSite=Lax")
    );
    let jar = cookie_jar(&r);
    assert!(jar.contains("tg_optout_proof="), "{jar}");
    // Without the cookie, the local list still suppresses the visitor.
    let r = send(&gw, "/v1/page", r#"{"anonymousId":"anon-offline"}"#, &[]);
    assert_eq!(r.json()["dropped"], 1);
    // An opt-in that cannot be recorded leaves the cookie alone.
    let r = from_browser(&gw, "/v1/optin", r#"{"anonymousId":"anon-offline"}"#, &jar);
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

#[test]
fn an_optout_on_one_instance_is_enforced_on_another() {
    let broker = Broker::start();
    let one = start_gateway(&broker.addr(), &Setup::default());
    let two = start_gateway(&broker.addr(), &Setup::default());
    // The second instance follows the topic.
    let out = opt_out_and_wait_until_followed(&one, &two, "anon-shared");
    assert_drops_visitor_keeps_control(&two, "anon-shared");
    // No proof on the second instance either; the visitor's own cookies,
    // taken on the first, opt them in there.
    let body = r#"{"anonymousId":"anon-shared"}"#;
    assert_eq!(
        from_browser(&two, "/v1/optin", body, "tg_optout=1").status,
        403
    );
    let r = from_browser(&two, "/v1/optin", body, &cookie_jar(&out));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    wait_until(
        "the first instance forgets the id",
        Duration::from_secs(30),
        || one.metric("trackgate_optout_list_entries", &[]) == 0.0,
    );

    assert_only_control_reached_kafka(&broker.addr(), "anon-shared");
}

#[test]
fn a_full_share_answers_503_with_its_code_and_metric_and_keeps_what_it_has() {
    let broker = Broker::start();
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            global: "optout_max_entries = 2",
            ..Setup::default()
        },
    );
    let r = from_browser(
        &gw,
        "/v1/optout",
        r#"{"anonymousId":"a-1","userId":"u-1"}"#,
        "",
    );
    assert_eq!(r.status, 200);
    let r = from_browser(&gw, "/v1/optout", r#"{"anonymousId":"a-2"}"#, "");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "optout_list_full");
    assert!(r.header("retry-after").is_some());
    // The browser's own wish still holds in its cookie; no proof is given
    // for ids that were not listed.
    assert_eq!(set_cookies(&r).len(), 1);
    assert!(r.header("set-cookie").unwrap().starts_with("tg_optout=1;"));
    // Ids already listed may be opted out again, and the server key is
    // never refused.
    assert_eq!(
        from_browser(&gw, "/v1/optout", r#"{"userId":"u-1"}"#, "").status,
        200
    );
    assert_eq!(
        from_server(&gw, "/v1/optout", r#"{"userId":"u-2"}"#).status,
        200
    );
    assert_eq!(gw.metric("trackgate_optout_list_full_total", &[]), 1.0);
    assert_eq!(
        gw.metric(
            "trackgate_optout_requests_total",
            &[("action", "optout"), ("result", "list_full")]
        ),
        1.0
    );
    assert_eq!(gw.metric("trackgate_optout_list_entries", &[]), 3.0);
    // What was listed is still enforced.
    let r = send(&gw, "/v1/page", r#"{"anonymousId":"a-1"}"#, &[]);
    assert_eq!(r.json()["dropped"], 1);
    let r = send(&gw, "/v1/page", r#"{"userId":"u-2"}"#, &[]);
    assert_eq!(r.json()["dropped"], 1);
    let list = optout_records(&broker.addr(), 4);
    let mut keys: Vec<_> = list.iter().filter_map(|r| r.key.clone()).collect();
    keys.sort();
    let mut want = vec![
        optout_key("anon", "a-1"),
        optout_key("user", "u-1"),
        optout_key("user", "u-1"),
        optout_key("user", "u-2"),
    ];
    want.sort();
    assert_eq!(keys, want);
    // The record says which key added the entry: every instance counts the
    // same share.
    let by_server: Vec<_> = list
        .iter()
        .filter(|r| r.value["by"] == "server")
        .filter_map(|r| r.key.clone())
        .collect();
    assert_eq!(by_server, vec![optout_key("user", "u-2")]);
    assert_eq!(list.iter().filter(|r| r.value["by"] == "public").count(), 3);
}

#[test]
fn optout_endpoints_are_rate_limited_like_ingestion() {
    let broker = Broker::start();
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            extra: "[rate_limit]\nper_ip_rps = 1\nper_ip_burst = 2",
            ..Setup::default()
        },
    );
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = from_browser(
            &gw,
            "/v1/optout",
            &format!(r#"{{"anonymousId":"burst-{i}"}}"#),
            "",
        );
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.json()["error"], "rate_limited");
            assert!(r.header("retry-after").is_some());
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        gw.metric(
            "trackgate_optout_requests_total",
            &[("action", "optout"), ("result", "rate_limited")]
        ),
        refused as f64
    );
    let listed = gw.metric("trackgate_optout_list_entries", &[]);
    assert_eq!(listed as usize, 4 - refused);
}

#[test]
fn denied_consent_drops_the_event_and_counts_it() {
    let broker = Broker::start();
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            web: r#"required_consent = ["Analytics"]"#,
            ..Setup::default()
        },
    );
    let prefs = |p: Value| json!({"consent": {"categoryPreferences": p}});
    let batch = json!({"batch": [
        {"type":"page","anonymousId":"denied-1","context":prefs(json!({"Analytics":false,"Advertising":true}))},
        {"type":"track","event":"x","anonymousId":"denied-2","context":prefs(json!({"analytics":false}))},
        {"type":"page","anonymousId":"granted","context":prefs(json!({"Analytics":true,"Advertising":false}))},
        {"type":"page","anonymousId":"silent"},
    ]});
    let r = send(&gw, "/v1/batch", &batch.to_string(), &[]);
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":2,"rejected":0,"dropped":2})
    );
    // A batch-level consent object applies to each event.
    let r = send(
        &gw,
        "/v1/batch",
        &json!({"context": prefs(json!({"Analytics":false})),
            "batch": [{"type":"page","anonymousId":"denied-3"}]})
        .to_string(),
        &[],
    );
    assert_eq!(r.json()["dropped"], 1);
    // The `app` source requires nothing.
    let r = send_as(
        &gw,
        APP_WRITE_KEY,
        CLIENT_IP,
        "/v1/page",
        &json!({"anonymousId":"app-denied","context":prefs(json!({"Analytics":false}))})
            .to_string(),
        &[],
    );
    assert_eq!(r.json()["accepted"], 1);

    let recs = every_event_topic(&broker.addr(), 3);
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "granted").len(), 1);
    assert_eq!(of_visitor(&recs, "silent").len(), 1);
    assert_eq!(of_visitor(&recs, "app-denied").len(), 1);
    assert_nowhere(&recs, &["denied-1", "denied-2", "denied-3"]);
    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "consent")]
        ),
        3.0
    );
    assert_eq!(
        gw.metric(
            "trackgate_privacy_decisions_total",
            &[("decision", "drop"), ("reason", "consent")]
        ),
        3.0
    );
}

#[test]
fn an_instance_started_while_the_broker_was_away_delivers_nothing_of_an_opted_out_visitor() {
    let broker = Broker::start();
    // The second instance reaches the broker; the first one, through a
    // gate that is closed, does not.
    let second = start_gateway(&broker.addr(), &Setup::default());
    let gate = free_port();
    let first = spawn_gateway(&format!("127.0.0.1:{gate}"), &Setup::default());
    wait_until(
        "the first instance listens",
        Duration::from_secs(30),
        || http(first.admin, "GET", "/healthz", &[], b"").is_ok_and(|r| r.status == 200),
    );

    // While its list is not loaded, the first instance takes nothing: it
    // cannot know who opted out.
    for id in ["anon-gone", "anon-ctl"] {
        let r = send(
            &first,
            "/v1/batch",
            &visitor_batch("anonymousId", id).to_string(),
            &[],
        );
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"], "optout_list_loading");
        assert!(r.header("retry-after").is_some());
    }
    // Meanwhile the visitor opts out on the second instance.
    let r = from_browser(&second, "/v1/optout", r#"{"anonymousId":"anon-gone"}"#, "");
    assert_eq!(r.status, 200);

    // The broker comes back for the first instance: it loads the list,
    // then takes traffic.
    open_gate(gate, &broker.addr());
    first.wait_ready(Duration::from_secs(60));
    assert_eq!(first.metric("trackgate_optout_list_entries", &[]), 1.0);
    assert_drops_visitor_keeps_control(&first, "anon-gone");
    assert_only_control_reached_kafka(&broker.addr(), "anon-gone");
    // The refused requests were never received: nothing to account for.
    assert_eq!(first.metric("trackgate_events_received_total", &[]), 8.0);
}

#[test]
fn an_instance_outlives_its_broker_restarting_empty_and_follows_the_recreated_topic() {
    // A broker that comes back empty answers the follower's fetches of the
    // opt-out topic with "unknown topic" until the topic is created again.
    // The follower stops fetching when it loses the broker and prepares
    // the topic again when the broker answers, so the instance keeps
    // running and keeps following.
    let mut broker = Broker::start();
    let mut one = start_gateway(&broker.addr(), &Setup::default());
    for round in 0..6 {
        broker.stop();
        wait_until(
            "the instance to notice the broker is gone",
            Duration::from_secs(30),
            || one.metric("trackgate_production_paused", &[]) == 1.0,
        );
        broker.restart();
        wait_until(
            "the instance to resume production",
            Duration::from_secs(60),
            || one.metric("trackgate_production_paused", &[]) == 0.0,
        );
        // A fetch the follower had in flight, answered by the empty broker,
        // would show here.
        std::thread::sleep(Duration::from_millis(500));
        assert!(one.running(), "the instance exited in round {round}");
    }

    // Another instance records an opt-out on the recreated topic; the first
    // one follows it.
    let two = start_gateway(&broker.addr(), &Setup::default());
    opt_out_and_wait_until_followed(&two, &one, "anon-late");
    assert_drops_visitor_keeps_control(&one, "anon-late");
    assert_only_control_reached_kafka(&broker.addr(), "anon-late");
}
