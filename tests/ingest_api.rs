//! The ingestion API end to end: real HTTP into the gateway binary, real
//! records read back from the Tansu broker.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use support::*;

fn by_topic<'a>(records: &'a [Record], topic: &str) -> Vec<&'a Record> {
    records.iter().filter(|r| r.topic == topic).collect()
}

#[test]
fn batch_events_are_routed_keyed_and_headed() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let body = json!({
        "batch": [
            {"type":"page","anonymousId":"anon-1","name":"Home","properties":{"path":"/"}},
            {"type":"screen","userId":"user-2","name":"Settings"},
            {"type":"track","anonymousId":"anon-1","userId":"user-1","event":"click","properties":{"id":"buy"}},
            {"type":"track","anonymousId":"anon-3","event":"Link Clicked"},
            {"type":"track","anonymousId":"anon-3","event":"Order Completed","properties":{"total":12.5}},
            {"type":"identify","userId":"user-1","traits":{"plan":"pro"}},
            {"type":"group","userId":"user-1","groupId":"g1"},
            {"type":"alias","userId":"user-1","previousId":"anon-1"}
        ],
        "context": {"library":{"name":"analytics-node","version":"1.0"}},
        "sentAt": "2026-01-01T00:00:00Z"
    });
    let r = gw.post("/v1/batch", &body.to_string());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"success":true,"accepted":8,"rejected":0}));

    let recs = consume_all(&broker.addr(), 8);
    assert_eq!(recs.len(), 8, "{recs:#?}");
    assert_eq!(by_topic(&recs, PAGEVIEWS).len(), 2);
    assert_eq!(by_topic(&recs, CLICKS).len(), 2);
    assert_eq!(by_topic(&recs, EVENTS).len(), 1);
    assert_eq!(by_topic(&recs, IDENTITIES).len(), 3);
    assert_eq!(by_topic(&recs, INVALID).len(), 0);

    for r in &recs {
        let v = &r.value;
        // Key: userId when present, else anonymousId.
        let want = v
            .get("userId")
            .or(v.get("anonymousId"))
            .and_then(Value::as_str);
        assert_eq!(r.key.as_deref(), want, "{v}");
        assert_eq!(r.header("source"), Some("web"));
        assert_eq!(r.header("type"), v["type"].as_str());
        assert!(r.header("producer").unwrap().starts_with("trackgate/"));
        // Batch context merged under the event's.
        assert_eq!(v["context"]["library"]["name"], "analytics-node");
        // The client address, truncated to its /24 by the default privacy policy.
        assert_eq!(v["context"]["ip"], "127.0.0.0");
        assert!(v["receivedAt"].is_string() && v["messageId"].is_string());
        assert!(v.get("writeKey").is_none());
    }
    let click = by_topic(&recs, CLICKS)
        .into_iter()
        .find(|r| r.value["event"] == "click")
        .unwrap();
    assert_eq!(click.key.as_deref(), Some("user-1"));
    assert_eq!(click.value["properties"]["id"], "buy");
}

#[test]
fn single_event_endpoints_each_produce_one_record() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let cases = [
        (
            "/v1/page",
            json!({"anonymousId":"a1","name":"Home"}),
            PAGEVIEWS,
        ),
        (
            "/v1/screen",
            json!({"anonymousId":"a2","name":"Main"}),
            PAGEVIEWS,
        ),
        (
            "/v1/track",
            json!({"anonymousId":"a3","event":"Signed Up"}),
            EVENTS,
        ),
        (
            "/v1/identify",
            json!({"userId":"u4","traits":{"plan":"free"}}),
            IDENTITIES,
        ),
        (
            "/v1/group",
            json!({"userId":"u5","groupId":"acme"}),
            IDENTITIES,
        ),
        (
            "/v1/alias",
            json!({"userId":"u6","previousId":"a6"}),
            IDENTITIES,
        ),
    ];
    for (path, body, _) in &cases {
        let r = gw.post(path, &body.to_string());
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["accepted"], 1, "{path}");
    }
    let recs = consume_all(&broker.addr(), cases.len());
    assert_eq!(recs.len(), cases.len(), "{recs:#?}");
    for (path, body, topic) in &cases {
        let id = body.get("userId").or(body.get("anonymousId")).unwrap();
        let rec = recs
            .iter()
            .find(|r| r.key.as_deref() == id.as_str())
            .unwrap_or_else(|| panic!("{path} record"));
        assert_eq!(rec.topic, *topic, "{path}");
        assert_eq!(rec.value["type"], path.trim_start_matches("/v1/"));
    }
}

#[test]
fn text_plain_gzip_and_deflate_bodies_are_decoded() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    // sendBeacon: text/plain with the write key in the body.
    let beacon = json!({"writeKey": WRITE_KEY, "batch":[{"type":"page","anonymousId":"beacon"}]});
    let r = gw.request(
        "POST",
        "/v1/batch",
        &[
            ("content-type", "text/plain;charset=UTF-8"),
            ("origin", ORIGIN),
        ],
        beacon.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("Retry-After")
    );

    let auth = basic(WRITE_KEY);
    let gz = gzip(
        json!({"batch":[{"type":"page","anonymousId":"gzip"}]})
            .to_string()
            .as_bytes(),
    );
    let r = gw.request(
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("authorization", &auth),
        ],
        &gz,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut z,
        json!({"anonymousId":"deflate"}).to_string().as_bytes(),
    )
    .unwrap();
    let r = gw.request(
        "POST",
        "/v1/page",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "deflate"),
            ("authorization", &auth),
        ],
        &z.finish().unwrap(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let recs = consume_all(&broker.addr(), 3);
    let mut keys: Vec<_> = recs.iter().filter_map(|r| r.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, vec!["beacon", "deflate", "gzip"]);
}

#[test]
fn write_key_from_basic_auth_body_or_query() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let ct = ("content-type", "application/json");
    let auth = basic(APP_WRITE_KEY);
    let r = gw.request(
        "POST",
        "/v1/track",
        &[ct, ("authorization", &auth)],
        br#"{"anonymousId":"by-header","event":"e"}"#,
    );
    assert_eq!(r.status, 200);
    let body = format!(r#"{{"anonymousId":"by-body","event":"e","writeKey":"{APP_WRITE_KEY}"}}"#);
    let r = gw.request("POST", "/v1/track", &[ct], body.as_bytes());
    assert_eq!(r.status, 200);
    let r = gw.request(
        "POST",
        &format!("/v1/track?writeKey={APP_WRITE_KEY}"),
        &[ct],
        br#"{"anonymousId":"by-query","event":"e"}"#,
    );
    assert_eq!(r.status, 200);
    let recs = consume(&broker.addr(), &[EVENTS], 3, Duration::from_secs(30));
    assert_eq!(recs.len(), 3);
    assert!(recs.iter().all(|r| r.header("source") == Some("app")));
}

#[test]
fn pixel_produces_an_event_and_always_answers_with_the_gif() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let data = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"anonymousId":"pix","properties":{"path":"/landing"}}).to_string());
    let r = gw.request(
        "GET",
        &format!("/v1/pixel.gif?writeKey={WRITE_KEY}&data={data}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert!(r.header("cache-control").unwrap().contains("no-store"));
    assert!(r.body.starts_with(b"GIF89a"));

    // Bad data and a bad key: still the image, but counted and not produced.
    let r = gw.request(
        "GET",
        &format!("/v1/pixel.gif?writeKey={WRITE_KEY}&data=!!notbase64"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body.starts_with(b"GIF89a")), (200, true));
    let r = gw.request(
        "GET",
        &format!("/v1/pixel.gif?writeKey=nope&data={data}"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body.starts_with(b"GIF89a")), (200, true));

    let recs = consume_all(&broker.addr(), 2);
    let pages = by_topic(&recs, PAGEVIEWS);
    assert_eq!(pages.len(), 1, "{recs:#?}");
    assert_eq!(pages[0].value["type"], "page");
    assert_eq!(pages[0].value["properties"]["path"], "/landing");
    let invalid = by_topic(&recs, INVALID);
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].value["reason"], "invalid_json");
    assert_eq!(
        gw.metric(
            "trackgate_pixel_refused_total",
            &[("reason", "invalid_write_key")]
        ),
        1.0
    );
}

#[test]
fn clock_skew_is_corrected_and_message_ids_kept_or_generated() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    // A device whose clock runs one day fast: event 30 s before send.
    let body = json!({"batch":[
        {"type":"page","anonymousId":"skew","messageId":"client-id-1","timestamp":"2030-01-02T00:00:00.000Z"},
        {"type":"page","anonymousId":"noid"}
    ], "sentAt":"2030-01-02T00:00:30.000Z"});
    let before = chrono::Utc::now();
    assert_eq!(gw.post("/v1/batch", &body.to_string()).status, 200);
    let after = chrono::Utc::now();
    let recs = consume(&broker.addr(), &[PAGEVIEWS], 2, Duration::from_secs(30));
    let skew = recs
        .iter()
        .find(|r| r.key.as_deref() == Some("skew"))
        .unwrap();
    assert_eq!(skew.value["messageId"], "client-id-1");
    assert_eq!(skew.value["originalTimestamp"], "2030-01-02T00:00:00.000Z");
    let ts =
        chrono::DateTime::parse_from_rfc3339(skew.value["timestamp"].as_str().unwrap()).unwrap();
    let received =
        chrono::DateTime::parse_from_rfc3339(skew.value["receivedAt"].as_str().unwrap()).unwrap();
    assert_eq!(received - ts, chrono::Duration::seconds(30));
    assert!(
        received >= before - chrono::Duration::milliseconds(1)
            && received <= after + chrono::Duration::milliseconds(1)
    );

    let noid = recs
        .iter()
        .find(|r| r.key.as_deref() == Some("noid"))
        .unwrap();
    let id = uuid::Uuid::parse_str(noid.value["messageId"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
}

#[test]
fn a_broken_clock_never_writes_a_time_that_is_not_a_date() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let body = json!({"batch":[
        // Corrected, this would be 7000 years before receivedAt.
        {"type":"page","anonymousId":"far","originalTimestamp":"2000-01-01T00:00:00Z","sentAt":"9000-01-01T00:00:00Z",
         "context":{"timestampOutOfWindow":false}},
        // In UTC this is the year 10000.
        {"type":"page","anonymousId":"y10k","timestamp":"9999-12-31T23:59:59-01:00"},
        // A clock reset to 2000: corrected exactly, not flagged.
        {"type":"page","anonymousId":"reset","originalTimestamp":"2000-01-01T00:00:00Z","sentAt":"2000-01-01T00:00:10Z",
         "context":{"timestampOutOfWindow":true}}
    ]});
    let r = gw.post("/v1/batch", &body.to_string());
    assert_eq!(r.json(), json!({"success":true,"accepted":2,"rejected":1}));
    // The batch envelope's own fields reject the request.
    for envelope in [
        json!({"batch":[{"type":"page","anonymousId":"e1"}],"sentAt":"9999-12-31T23:59:59-01:00"}),
        json!({"batch":[{"type":"page","anonymousId":"e2"}],"sentAt":12}),
        json!({"batch":[{"type":"page","anonymousId":"e3"}],"context":"web"}),
    ] {
        let r = gw.post("/v1/batch", &envelope.to_string());
        assert_eq!(r.status, 400, "{envelope}");
        assert_eq!(r.json()["code"], "invalid_batch");
    }

    let recs = consume_all(&broker.addr(), 3);
    assert_eq!(recs.len(), 3, "{recs:#?}");
    let key = |k: &str| recs.iter().find(|r| r.key.as_deref() == Some(k)).unwrap();
    let far = &key("far").value;
    assert_eq!(far["timestamp"], far["receivedAt"]);
    assert_eq!(far["context"]["timestampOutOfWindow"], true);
    assert_eq!(far["sentAt"], "9000-01-01T00:00:00.000Z");
    assert_eq!(
        gw.metric("trackgate_timestamps_out_of_window_total", &[]),
        1.0
    );
    let reset = &key("reset").value;
    assert!(reset["context"].get("timestampOutOfWindow").is_none());
    let received =
        chrono::DateTime::parse_from_rfc3339(reset["receivedAt"].as_str().unwrap()).unwrap();
    let ts = chrono::DateTime::parse_from_rfc3339(reset["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(received - ts, chrono::Duration::seconds(10));
    let invalid = recs.iter().find(|r| r.topic == INVALID).unwrap();
    assert_eq!(invalid.value["reason"], "invalid_timestamp");
    // Every time written has a four-digit year.
    for r in recs.iter().filter(|r| r.topic != INVALID) {
        for f in ["timestamp", "originalTimestamp", "sentAt", "receivedAt"] {
            if let Some(t) = r.value[f].as_str() {
                assert!(t.len() == 24 && t.as_bytes()[4] == b'-', "{f}: {t}");
            }
        }
    }
}

#[test]
fn bad_events_go_to_the_invalid_topic_and_the_rest_of_the_batch_is_accepted() {
    let broker = Broker::start();
    let gw = Gateway::start_with(
        &broker.addr(),
        // `raw` keeps rejected payloads as received, to check their truncation.
        "[limits]\nmax_event_bytes = 512\ninvalid_payload_bytes = 100\n[privacy]\ninvalid_payload = \"raw\"\n",
    );
    let big = "x".repeat(600);
    let body = format!(
        r#"{{"batch":[
            {{"type":"page","anonymousId":"ok-1"}},
            {{"type":"page","anonymousId":"big","name":"{big}"}},
            {{"type":"page"}},
            {{"type":"nonsense","anonymousId":"x"}},
            "not an object",
            {{"type":"track","anonymousId":"ok-2","event":"Played"}}
        ]}}"#
    );
    let r = gw.post("/v1/batch", &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"success":true,"accepted":2,"rejected":4}));
    let recs = consume_all(&broker.addr(), 6);
    assert_eq!(recs.len(), 6, "{recs:#?}");
    let mut reasons: Vec<String> = by_topic(&recs, INVALID)
        .iter()
        .map(|r| r.value["reason"].as_str().unwrap().to_string())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "event_too_large",
            "invalid_type",
            "missing_identity",
            "not_an_object"
        ]
    );
    let big_rec = by_topic(&recs, INVALID)
        .into_iter()
        .find(|r| r.value["reason"] == "event_too_large")
        .unwrap();
    assert_eq!(big_rec.value["payloadTruncated"], true);
    assert_eq!(big_rec.value["payload"].as_str().unwrap().len(), 100);
    assert_eq!(big_rec.value["source"], "web");
    assert_eq!(big_rec.header("reason"), Some("event_too_large"));
    assert_eq!(by_topic(&recs, PAGEVIEWS).len(), 1);
    assert_eq!(by_topic(&recs, EVENTS).len(), 1);

    assert_eq!(gw.metric("trackgate_events_received_total", &[]), 6.0);
    assert_eq!(
        gw.metric("trackgate_events_total", &[("outcome", "accepted")]),
        2.0
    );
    assert_eq!(
        gw.metric("trackgate_events_total", &[("outcome", "rejected")]),
        4.0
    );
}

#[test]
fn request_errors_have_stable_codes_and_nothing_reaches_kafka() {
    let broker = Broker::start();
    let gw = Gateway::start_with(
        &broker.addr(),
        "[limits]\nmax_request_bytes = 4096\nmax_event_bytes = 1024\nmax_batch_events = 3\n",
    );
    let ct = ("content-type", "application/json");
    let auth = basic(WRITE_KEY);
    let au = ("authorization", auth.as_str());
    let ev = r#"{"type":"page","anonymousId":"x"}"#;
    let batch4 = format!(r#"{{"batch":[{ev},{ev},{ev},{ev}]}}"#);
    let huge = format!(r#"{{"batch":[{ev}],"pad":"{}"}}"#, "p".repeat(5000));
    let bomb = gzip(format!(r#"{{"batch":[{ev}],"pad":"{}"}}"#, "p".repeat(100_000)).as_bytes());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/v1/batch",
            vec![ct],
            format!(r#"{{"batch":[{ev}]}}"#).into_bytes(),
            401,
            "missing_write_key",
        ),
        (
            "/v1/batch",
            vec![ct, ("authorization", "Basic d3Jvbmc6")],
            format!(r#"{{"batch":[{ev}]}}"#).into_bytes(),
            401,
            "invalid_write_key",
        ),
        (
            "/v1/batch",
            vec![ct, au, ("origin", "https://evil.example")],
            format!(r#"{{"batch":[{ev}]}}"#).into_bytes(),
            403,
            "origin_not_allowed",
        ),
        (
            "/v1/batch",
            vec![ct, au],
            huge.into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            "/v1/batch",
            vec![ct, au, ("content-encoding", "gzip")],
            bomb,
            413,
            "payload_too_large",
        ),
        (
            "/v1/batch",
            vec![ct, au],
            batch4.into_bytes(),
            413,
            "too_many_events",
        ),
        (
            "/v1/batch",
            vec![("content-type", "application/xml"), au],
            b"<a/>".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/batch",
            vec![ct, au, ("content-encoding", "br")],
            b"xx".to_vec(),
            415,
            "unsupported_content_encoding",
        ),
        (
            "/v1/batch",
            vec![ct, au],
            b"{\"batch\":[".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/batch",
            vec![ct, au],
            b"{\"events\":[]}".to_vec(),
            400,
            "invalid_batch",
        ),
        (
            "/v1/page",
            vec![ct, au],
            b"[1,2]".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/batch",
            vec![ct, au, ("content-encoding", "gzip")],
            b"nope".to_vec(),
            400,
            "invalid_compression",
        ),
        (
            "/v2/everything",
            vec![ct, au],
            b"{}".to_vec(),
            404,
            "not_found",
        ),
    ];
    for (path, headers, body, status, code) in &cases {
        let r = gw.request("POST", path, headers, body);
        assert_eq!(
            r.status,
            *status,
            "{code}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["success"], false);
        assert_eq!(j["error"], *code);
        assert_eq!(j["code"], *code);
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = gw.request("DELETE", "/v1/batch", &[], b"");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (405, json!("method_not_allowed"))
    );
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));

    // A good request after all that is served normally, and it is the only
    // record the broker ever received.
    assert_eq!(gw.post("/v1/page", r#"{"anonymousId":"good"}"#).status, 200);
    let recs = consume_all(&broker.addr(), 1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].key.as_deref(), Some("good"));
}

#[test]
fn cors_preflight_echoes_only_allowed_origins() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let pre = |origin: &str| {
        gw.request(
            "OPTIONS",
            "/v1/batch",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            b"",
        )
    };
    let ok = pre(ORIGIN);
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(ok
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    let bad = pre("https://evil.example");
    assert_eq!(bad.status, 204);
    assert_eq!(bad.header("access-control-allow-origin"), None);
    // The app source has no browser origins: a POST with its key from a page is refused.
    let r = gw.request(
        "POST",
        "/v1/page",
        &[
            ("content-type", "application/json"),
            ("origin", ORIGIN),
            ("authorization", &basic(APP_WRITE_KEY)),
        ],
        br#"{"anonymousId":"a"}"#,
    );
    assert_eq!(r.status, 403);
}

#[test]
fn client_ip_comes_from_forwarded_headers_only_behind_trusted_proxies() {
    let broker = Broker::start();
    // The test client connects from 127.0.0.1; trust it for this gateway.
    let mut gw = Gateway::start_with(&broker.addr(), "");
    let auth = basic(WRITE_KEY);
    let r = gw.request(
        "POST",
        "/v1/page",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("x-forwarded-for", "198.51.100.1"),
            ("user-agent", "TestAgent/1.0"),
        ],
        br#"{"anonymousId":"untrusted"}"#,
    );
    assert_eq!(r.status, 200);
    assert!(gw.terminate().success());
    let dir = tempfile::tempdir().unwrap();
    let (l, a) = (free_port(), free_port());
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        config_toml(l, a, &broker.addr(), "").replace(
            r#"trusted_proxies = ["10.9.9.9"]"#,
            r#"trusted_proxies = ["127.0.0.0/8"]"#,
        ),
    )
    .unwrap();
    let gw = Gateway::spawn_config(dir, path, l, a);
    gw.wait_ready(Duration::from_secs(30));
    let r = gw.request(
        "POST",
        "/v1/page",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("x-forwarded-for", "198.51.100.1, 127.0.0.5"),
        ],
        br#"{"anonymousId":"trusted"}"#,
    );
    assert_eq!(r.status, 200);
    let recs = consume(&broker.addr(), &[PAGEVIEWS], 2, Duration::from_secs(30));
    let ip = |k: &str| {
        recs.iter()
            .find(|r| r.key.as_deref() == Some(k))
            .unwrap()
            .value["context"]["ip"]
            .clone()
    };
    // Truncated to the /24 by the default privacy policy.
    assert_eq!(ip("untrusted"), "127.0.0.0");
    assert_eq!(ip("trusted"), "198.51.100.0");
    let ua = recs
        .iter()
        .find(|r| r.key.as_deref() == Some("untrusted"))
        .unwrap();
    assert_eq!(ua.value["context"]["userAgent"], "TestAgent/1.0");
}
