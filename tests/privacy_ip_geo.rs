//! The client address and its location end to end: IP anonymization modes,
//! the raw address never reaching any topic under the default
//! configuration, GeoIP from a database the test builds (and replaces), and
//! rejected events' payloads kept off the invalid topic.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::privacy::*;
use support::*;

/// A client address outside every fixture range.
const UNLOCATED_IP: &str = "198.51.100.77";
const IPV6_CLIENT: &str = "2001:db8:1234:5678::17";

#[test]
fn the_raw_client_address_never_reaches_any_topic_by_default() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    // Every way in: batch (with a client-claimed context.ip), single events,
    // the pixel, a rejected event, IPv4 and IPv6.
    let r = send(
        &gw,
        "/v1/batch",
        &json!({"batch":[
            {"type":"page","anonymousId":"v4","context":{"ip":CLIENT_IP}},
            {"type":"track","anonymousId":"v4","event":"click"},
            {"type":"identify","userId":"v4-user","traits":{"plan":"pro"}},
            {"type":"bogus","anonymousId":"v4","context":{"ip":CLIENT_IP}},
        ], "context":{"ip":CLIENT_IP}})
        .to_string(),
        &[],
    );
    assert_eq!(r.json(), json!({"success":true,"accepted":3,"rejected":1}));
    assert_eq!(
        send(
            &gw,
            "/v1/track",
            r#"{"anonymousId":"v4","event":"Played"}"#,
            &[]
        )
        .status,
        200
    );
    let data = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"anonymousId":"v4-pixel"}"#)
    };
    let r = gw.request(
        "GET",
        &format!("/v1/pixel.gif?writeKey={WRITE_KEY}&data={data}"),
        &[("x-forwarded-for", CLIENT_IP)],
        b"",
    );
    assert_eq!(r.status, 200);
    let r = send_as(
        &gw,
        WRITE_KEY,
        IPV6_CLIENT,
        "/v1/page",
        r#"{"anonymousId":"v6"}"#,
        &[],
    );
    assert_eq!(r.json()["accepted"], 1);

    let recs = every_event_topic(&broker.addr(), 7);
    assert_eq!(recs.len(), 7, "{recs:#?}");
    assert_nowhere(&recs, &[CLIENT_IP, IPV6_CLIENT, "2001:db8:1234:5678"]);
    let ip_of = |id: &str| -> Vec<Value> {
        of_visitor(&recs, id)
            .iter()
            .map(|r| r.value["context"]["ip"].clone())
            .collect()
    };
    assert_eq!(ip_of("v4"), vec![json!(CLIENT_IP_TRUNCATED); 3]);
    assert_eq!(ip_of("v4-user"), vec![json!(CLIENT_IP_TRUNCATED)]);
    assert_eq!(ip_of("v4-pixel"), vec![json!(CLIENT_IP_TRUNCATED)]);
    assert_eq!(ip_of("v6"), vec![json!("2001:db8:1234::")]);
    let invalid: Vec<&Record> = recs.iter().filter(|r| r.topic == INVALID).collect();
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].value["reason"], "invalid_type");
}

#[test]
fn a_rejected_event_with_an_email_never_shows_it_on_the_invalid_topic() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let bad = json!({"type":"signup","anonymousId":"anon-bad",
        "traits":{"email":"jane.doe@example.com"},
        "properties":{"note":"call me at jane.doe@example.com"},
        "context":{"ip":CLIENT_IP}});
    let r = send(
        &gw,
        "/v1/batch",
        &json!({"batch":[bad, {"type":"page","anonymousId":"anon-ok"}]}).to_string(),
        &[],
    );
    assert_eq!(r.json(), json!({"success":true,"accepted":1,"rejected":1}));
    // A body that is not JSON at all, with an e-mail in it.
    let r = send(&gw, "/v1/track", "{\"email\":\"jane.doe@example.com\"", &[]);
    assert_eq!(r.status, 400);

    let recs = every_event_topic(&broker.addr(), 2);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let invalid: Vec<&Record> = recs.iter().filter(|r| r.topic == INVALID).collect();
    assert_eq!(invalid.len(), 1);
    let v = &invalid[0].value;
    assert_eq!(v["reason"], "invalid_type");
    assert_eq!(v["source"], "web");
    // The payload is kept for debugging, after the IP and PII rules.
    let payload = v["payload"].as_str().expect("a scrubbed payload");
    assert!(
        payload.contains("signup") && payload.contains("[email]"),
        "{payload}"
    );
    assert!(v["payloadBytes"].as_u64().unwrap() > 50);
    assert_nowhere(&recs, &["jane.doe@example.com", CLIENT_IP]);
    assert_eq!(of_visitor(&recs, "anon-ok").len(), 1);
}

#[test]
fn ip_modes_hash_drop_keep_and_truncate() {
    let broker = Broker::start();
    // Gateway A: web hashes, app drops the address.
    let a = start_gateway(
        &broker.addr(),
        &Setup {
            web: "ip = \"hash\"",
            app: "ip = \"drop\"",
            ..Setup::default()
        },
    );
    // Gateway B: web keeps it, app truncates (explicitly).
    let b = start_gateway(
        &broker.addr(),
        &Setup {
            web: "ip = \"keep\"",
            app: "ip = \"truncate\"",
            ..Setup::default()
        },
    );
    let page = |gw: &Gateway, key: &str, ip: &str, id: &str| {
        let body = format!(r#"{{"anonymousId":"{id}","context":{{"ipHash":"forged"}}}}"#);
        let r = send_as(gw, key, ip, "/v1/page", &body, &[]);
        assert_eq!(r.json()["accepted"], 1, "{id}");
    };
    page(&a, WRITE_KEY, CLIENT_IP, "hash-1");
    page(&a, WRITE_KEY, CLIENT_IP, "hash-2");
    page(&a, WRITE_KEY, "81.2.69.161", "hash-3");
    page(&a, APP_WRITE_KEY, CLIENT_IP, "dropped-ip");
    page(&b, WRITE_KEY, CLIENT_IP, "kept-ip");
    page(&b, APP_WRITE_KEY, CLIENT_IP, "truncated-ip");

    let recs = consume(&broker.addr(), &[PAGEVIEWS], 6, Duration::from_secs(30));
    assert_eq!(recs.len(), 6, "{recs:#?}");
    let ctx = |id: &str| of_visitor(&recs, id)[0].value["context"].clone();
    let hash = |id: &str| {
        let c = ctx(id);
        assert!(c.get("ip").is_none(), "{c}");
        let h = c["ipHash"].as_str().unwrap().to_string();
        assert_eq!(h.len(), 16, "{h}");
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()), "{h}");
        h
    };
    assert_eq!(hash("hash-1"), hash("hash-2"), "same address, same day");
    assert_ne!(hash("hash-1"), hash("hash-3"));
    assert_ne!(hash("hash-1"), "forged");
    let dropped = ctx("dropped-ip");
    assert!(
        dropped.get("ip").is_none() && dropped.get("ipHash").is_none(),
        "{dropped}"
    );
    let kept = ctx("kept-ip");
    assert_eq!(kept["ip"], CLIENT_IP);
    assert!(
        kept.get("ipHash").is_none(),
        "a client-sent ipHash is not kept"
    );
    assert_eq!(ctx("truncated-ip")["ip"], CLIENT_IP_TRUNCATED);
    // Only the source that asked for it carries the raw address.
    let others: Vec<Record> = recs
        .iter()
        .filter(|r| r.value["anonymousId"] != "kept-ip")
        .cloned()
        .collect();
    assert_nowhere(&others, &[CLIENT_IP]);
}

#[test]
fn geoip_adds_the_location_and_follows_a_replaced_database() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let db = write_geoip_fixture(dir.path());
    let global = format!(
        "geoip_database = {:?}\ngeoip_reload_interval_ms = 200",
        db.display().to_string()
    );
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            global: &global,
            app: "geo_coordinates = true",
            ..Setup::default()
        },
    );
    let page = |key: &str, ip: &str, id: &str| {
        let body = format!(r#"{{"anonymousId":"{id}","context":{{"geo":{{"latitude":48.1}}}}}}"#);
        let r = send_as(&gw, key, ip, "/v1/page", &body, &[]);
        assert_eq!(r.json()["accepted"], 1, "{id}");
    };
    page(WRITE_KEY, CLIENT_IP, "london");
    page(WRITE_KEY, IPV6_CLIENT, "berlin");
    page(APP_WRITE_KEY, CLIENT_IP, "coords");
    page(WRITE_KEY, UNLOCATED_IP, "nowhere");
    let recs = consume(&broker.addr(), &[PAGEVIEWS], 4, Duration::from_secs(30));
    assert_eq!(recs.len(), 4, "{recs:#?}");
    let geo = |id: &str| {
        of_visitor(&recs, id)[0].value["context"]
            .get("geo")
            .cloned()
    };
    assert_eq!(
        geo("london"),
        Some(json!({"country":"GB","region":"ENG","city":"London"}))
    );
    assert_eq!(
        geo("berlin"),
        Some(json!({"country":"DE","region":"BE","city":"Berlin"}))
    );
    assert_eq!(
        geo("coords"),
        Some(
            json!({"country":"GB","region":"ENG","city":"London","latitude":51.5,"longitude":-0.1})
        )
    );
    // Unknown to the database: no geo, and the client's own claim is gone.
    assert_eq!(geo("nowhere"), None);

    // Replace the file atomically with one that moves the range to France.
    let tmp = dir.path().join("geoip.mmdb.new");
    std::fs::write(
        &tmp,
        trackgate::privacy::mmdb::fixture_updated()
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    let moved = loop {
        assert!(Instant::now() < deadline, "the new database was never used");
        n += 1;
        let id = format!("after-{n}");
        page(WRITE_KEY, CLIENT_IP, &id);
        let recs = consume(&broker.addr(), &[PAGEVIEWS], 4 + n, Duration::from_secs(30));
        let rec = of_visitor(&recs, &id)[0].clone();
        if rec.value["context"]["geo"]["country"] == "FR" {
            break rec;
        }
        assert_eq!(rec.value["context"]["geo"]["country"], "GB");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        moved.value["context"]["geo"],
        json!({"country":"FR","region":"IDF","city":"Paris"})
    );
    assert_eq!(
        gw.metric("trackgate_geoip_reloads_total", &[("result", "ok")]),
        1.0
    );
    // A broken replacement is refused; the loaded database stays in use.
    let tmp = dir.path().join("geoip.mmdb.bad");
    std::fs::write(&tmp, b"not a database").unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.metric("trackgate_geoip_reloads_total", &[("result", "failed")]) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the broken file was never noticed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    page(WRITE_KEY, CLIENT_IP, "after-broken");
    let recs = consume(&broker.addr(), &[PAGEVIEWS], 5 + n, Duration::from_secs(30));
    assert_eq!(
        of_visitor(&recs, "after-broken")[0].value["context"]["geo"]["city"],
        "Paris"
    );
}

#[test]
fn a_missing_geoip_database_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        privacy_toml(
            free_port(),
            free_port(),
            "127.0.0.1:1",
            &Setup {
                global: "geoip_database = \"/nonexistent/GeoLite2-City.mmdb\"",
                ..Setup::default()
            },
        ),
    )
    .unwrap();
    let out = Command::new(gateway_bin())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("privacy.geoip_database"), "{err}");
}
