//! Opt-out against an adversary who holds the public write key, forges
//! `Origin` headers and runs pages on other sites, against the real broker.
//! Each test states a promise of the opt-out and reads every event topic
//! back to prove it held.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::privacy::*;
use support::*;

/// The `app` source's server key, added by [`with_app_server_key`].
const APP_SERVER_KEY: &str = "sk_test_app_0123456789";
/// The attacker's address (through the trusted loopback proxy).
const ATTACKER_IP: &str = "203.0.113.7";
/// A page on another site.
const EVIL_ORIGIN: &str = "https://evil.example";

/// The privacy test configuration with a server key for `app` too.
fn with_app_server_key(listen: u16, admin: u16, brokers: &str, s: &Setup<'_>) -> String {
    privacy_toml(listen, admin, brokers, s).replacen(
        &format!("write_key = \"{APP_WRITE_KEY}\"\n"),
        &format!("write_key = \"{APP_WRITE_KEY}\"\nserver_key = \"{APP_SERVER_KEY}\"\n"),
        1,
    )
}

/// Starts a gateway with the configuration `toml(listen, admin)`.
fn start_with(toml: impl FnOnce(u16, u16) -> String) -> Gateway {
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trackgate.toml");
    std::fs::write(&path, toml(listen, admin)).expect("write config");
    let g = Gateway::spawn_config(dir, path, listen, admin);
    g.wait_ready(Duration::from_secs(30));
    g
}

/// A client with the web source's public key and a forged allowed
/// `Origin` (curl sets any), opting `body`'s ids out from `ip`.
fn forged_optout(gw: &Gateway, ip: &str, body: &str) -> Response {
    send_as(gw, WRITE_KEY, ip, "/v1/optout", body, &[("origin", ORIGIN)])
}

/// A server-key request of `app`.
fn from_app_server(gw: &Gateway, path: &str, body: &str) -> Response {
    let bearer = format!("Bearer {APP_SERVER_KEY}");
    gw.request(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", &bearer),
        ],
        body.as_bytes(),
    )
}

fn visitor_batch(id_field: &str, id: &str) -> String {
    json!({"batch": [
        {"type":"page", id_field: id, "name":"Home"},
        {"type":"track", id_field: id, "event":"Order Completed"},
    ]})
    .to_string()
}

fn body_of(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn a_server_key_optout_is_honoured_while_another_sources_public_key_has_filled_its_share() {
    let broker = Broker::start();
    let setup = Setup {
        global: "optout_max_entries = 3",
        ..Setup::default()
    };
    let brokers = broker.addr();
    let mut gw = start_with(|l, a| with_app_server_key(l, a, &brokers, &setup));

    // The attacker fills the web source's public share with junk ids.
    for i in 0..3 {
        let r = forged_optout(
            &gw,
            ATTACKER_IP,
            &format!(r#"{{"anonymousId":"junk-{i}"}}"#),
        );
        assert_eq!(r.status, 200, "{}", body_of(&r));
    }
    let r = forged_optout(&gw, ATTACKER_IP, r#"{"anonymousId":"junk-3"}"#);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (503, json!("optout_list_full"))
    );

    // The app source's owner opts a user out with its server key: honoured.
    let r = from_app_server(&gw, "/v1/optout", r#"{"userId":"app-user"}"#);
    assert_eq!(r.status, 200, "{}", body_of(&r));
    // So is the web source's own server key, beyond the public share.
    let r = from_server(&gw, "/v1/optout", r#"{"userId":"web-user"}"#);
    assert_eq!(r.status, 200, "{}", body_of(&r));

    let app_batch = |id: &str| {
        send_as(
            &gw,
            APP_WRITE_KEY,
            CLIENT_IP,
            "/v1/batch",
            &visitor_batch("userId", id),
            &[],
        )
    };
    assert_eq!(app_batch("app-user").json()["dropped"], 2);
    assert_eq!(app_batch("app-ctl").json()["accepted"], 2);
    let r = send(&gw, "/v1/batch", &visitor_batch("userId", "web-user"), &[]);
    assert_eq!(r.json()["dropped"], 2);

    // An operator sees the share filling and the refusals.
    let entries = |source: &str, by: &str| {
        gw.metric(
            "trackgate_optout_entries",
            &[("source", source), ("by", by)],
        )
    };
    assert_eq!(entries("web", "public"), 3.0);
    assert_eq!(entries("web", "server"), 1.0);
    assert_eq!(entries("app", "server"), 1.0);
    assert_eq!(gw.metric("trackgate_optout_public_max_entries", &[]), 3.0);
    assert_eq!(
        gw.metric(
            "trackgate_optout_refused_total",
            &[("source", "web"), ("reason", "optout_list_full")]
        ),
        1.0
    );

    // A new instance replays the list: the same bounds, the same promise.
    assert!(gw.terminate().success());
    let gw = start_with(|l, a| with_app_server_key(l, a, &brokers, &setup));
    let r = forged_optout(&gw, ATTACKER_IP, r#"{"anonymousId":"junk-4"}"#);
    assert_eq!(r.json()["error"], "optout_list_full");
    let r = from_app_server(&gw, "/v1/optout", r#"{"userId":"app-user-2"}"#);
    assert_eq!(r.status, 200, "{}", body_of(&r));
    let r = send_as(
        &gw,
        APP_WRITE_KEY,
        CLIENT_IP,
        "/v1/batch",
        &visitor_batch("userId", "app-user"),
        &[],
    );
    assert_eq!(r.json()["dropped"], 2);

    let recs = every_event_topic(&brokers, 2);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "app-ctl").len(), 2);
    assert_nowhere(&recs, &["app-user", "web-user"]);
}

#[test]
fn a_flood_of_public_traffic_does_not_hold_off_the_owners_optout() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let gw = start_with(|l, a| {
        // A burst of one batch of two events.
        let setup = Setup {
            extra: "[limits]\nmax_batch_events = 2",
            ..Setup::default()
        };
        with_app_server_key(l, a, &brokers, &setup).replacen(
            &format!("server_key = \"{APP_SERVER_KEY}\"\n"),
            &format!("server_key = \"{APP_SERVER_KEY}\"\nevents_per_second = 2\n"),
            1,
        )
    });
    // Anyone with the app's public key spends its whole rate.
    let flood = |id: &str| {
        send_as(
            &gw,
            APP_WRITE_KEY,
            ATTACKER_IP,
            "/v1/batch",
            &visitor_batch("userId", id),
            &[],
        )
    };
    assert_eq!(flood("flood-1").status, 200);
    assert_eq!(flood("flood-2").status, 429);
    // The owner's opt-out is taken all the same.
    let r = from_app_server(&gw, "/v1/optout", r#"{"userId":"app-user"}"#);
    assert_eq!(r.status, 200, "{}", body_of(&r));
    // Once the rate allows events again, the user's are dropped.
    wait_until(
        "the app source's rate to allow events again",
        Duration::from_secs(10),
        || flood("app-user").status == 200,
    );
    let recs = every_event_topic(&brokers, 2);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "flood-1").len(), 2);
    assert_nowhere(&recs, &["app-user"]);
}

#[test]
fn one_address_cannot_fill_a_sources_share() {
    let broker = Broker::start();
    let gw = start_gateway(
        &broker.addr(),
        &Setup {
            global: "optout_max_entries_per_address = 2",
            ..Setup::default()
        },
    );
    for (i, ip) in ["2001:db8:1:2::1", "2001:db8:1:2::9"].iter().enumerate() {
        let r = forged_optout(&gw, ip, &format!(r#"{{"anonymousId":"v6-{i}"}}"#));
        assert_eq!(r.status, 200, "{}", body_of(&r));
    }
    // The same /64 has used its share of this window.
    let r = forged_optout(&gw, "2001:db8:1:2:ffff::1", r#"{"anonymousId":"v6-2"}"#);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (429, json!("rate_limited"))
    );
    assert!(r.header("retry-after").is_some());
    // A visitor elsewhere still opts out, and so does the server key.
    let r = forged_optout(&gw, "2001:db8:1:3::1", r#"{"anonymousId":"v6-2"}"#);
    assert_eq!(r.status, 200, "{}", body_of(&r));
    let r = from_server(&gw, "/v1/optout", r#"{"userId":"by-owner"}"#);
    assert_eq!(r.status, 200, "{}", body_of(&r));
    assert_eq!(
        gw.metric(
            "trackgate_optout_refused_total",
            &[("source", "web"), ("reason", "address_share")]
        ),
        1.0
    );
    assert_eq!(gw.metric("trackgate_optout_list_entries", &[]), 4.0);
}

#[test]
fn a_visitors_own_proof_opts_them_in_after_strangers_repeated_their_optout() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let body = r#"{"anonymousId":"anon-victim"}"#;
    let out = from_browser(&gw, "/v1/optout", body, "");
    assert_eq!(out.status, 200);
    let visitor = cookie_jar(&out);
    // Strangers who know the id repeat the opt-out, each with a proof of
    // their own, more of them than an entry keeps.
    for _ in 0..6 {
        let r = forged_optout(&gw, ATTACKER_IP, body);
        assert_eq!(r.status, 200, "{}", body_of(&r));
    }
    let page = r#"{"anonymousId":"anon-victim","name":"While out"}"#;
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["dropped"], 1);

    // The visitor's own cookies still opt them back in.
    let r = from_browser(&gw, "/v1/optin", body, &visitor);
    assert_eq!(r.status, 200, "{}", body_of(&r));
    assert_eq!(r.json(), json!({"success":true,"optedOut":false}));
    // Removed here once the broker acknowledged the tombstone; the
    // follower may still apply an older record it had not read yet.
    wait_until(
        "the visitor's events flow again",
        Duration::from_secs(10),
        || {
            send(
                &gw,
                "/v1/page",
                r#"{"anonymousId":"anon-victim","name":"Back"}"#,
                &[],
            )
            .json()["accepted"]
                == 1
        },
    );

    let recs = every_event_topic(&broker.addr(), 1);
    let back = of_visitor(&recs, "anon-victim");
    assert!(!back.is_empty(), "{recs:#?}");
    assert!(back.iter().all(|r| r.value["name"] == "Back"), "{recs:#?}");
}

#[test]
fn a_cross_site_page_cannot_use_a_visitors_cookies_under_a_wildcard_origin() {
    let broker = Broker::start();
    let (listen, admin) = (free_port(), free_port());
    let toml = privacy_toml(listen, admin, &broker.addr(), &Setup::default()).replacen(
        &format!("allowed_origins = [\"{ORIGIN}\"]"),
        "allowed_origins = [\"*\"]",
        1,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trackgate.toml");
    std::fs::write(&path, toml).expect("write config");
    let gw = Gateway::spawn_config(dir, path, listen, admin);
    gw.wait_ready(Duration::from_secs(30));

    // The visitor opts out on the site.
    let body = r#"{"anonymousId":"anon-victim"}"#;
    let out = from_browser(&gw, "/v1/optout", body, "");
    assert_eq!(out.status, 200, "{}", body_of(&out));
    assert_eq!(out.header("access-control-allow-credentials"), None);
    let visitor = cookie_jar(&out);
    assert!(visitor.starts_with("tg_optout=1"), "{visitor}");

    // A page on another site makes the visitor's browser post an opt-in
    // with their cookies (a simple request: no preflight stops it).
    let auth = basic(WRITE_KEY);
    let cross_site = |body: &str| {
        gw.request(
            "POST",
            "/v1/optin",
            &[
                ("content-type", "text/plain"),
                ("authorization", &auth),
                ("origin", EVIL_ORIGIN),
                ("cookie", &visitor),
            ],
            body.as_bytes(),
        )
    };
    let r = cross_site(body);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (403, json!("credentials_not_allowed")),
        "{}",
        body_of(&r)
    );
    assert!(set_cookies(&r).is_empty());
    assert_eq!(r.header("access-control-allow-credentials"), None);
    // Even with a proof cookie the browser may hold from before.
    let with_proof = format!("{visitor}; tg_optout_proof=AAAAAAAAAAAAAAAAAAAAAA");
    let r = gw.request(
        "POST",
        "/v1/optin",
        &[
            ("authorization", &auth),
            ("origin", EVIL_ORIGIN),
            ("cookie", &with_proof),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.json()["error"], "credentials_not_allowed");
    // No preflight grants credentials to a wildcard origin.
    let pre = gw.request(
        "OPTIONS",
        "/v1/optin",
        &[
            ("origin", EVIL_ORIGIN),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert_eq!(pre.header("access-control-allow-origin"), Some(EVIL_ORIGIN));
    assert_eq!(pre.header("access-control-allow-credentials"), None);

    // The visitor is still opted out, on the list and in their cookie.
    let page = r#"{"anonymousId":"anon-victim","name":"Home"}"#;
    assert_eq!(send(&gw, "/v1/page", page, &[]).json()["dropped"], 1);
    let ctl = r#"{"anonymousId":"anon-ctl","name":"Home"}"#;
    assert_eq!(send(&gw, "/v1/page", ctl, &[]).json()["accepted"], 1);
    let recs = every_event_topic(&broker.addr(), 1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_nowhere(&recs, &["anon-victim"]);
    // The site owner's server key still may.
    let r = from_server(&gw, "/v1/optin", body);
    assert_eq!(r.status, 200, "{}", body_of(&r));
}

#[test]
fn an_optin_without_ids_changes_nothing_and_says_so() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let out = from_browser(&gw, "/v1/optout", r#"{"anonymousId":"anon-out"}"#, "");
    assert_eq!(out.status, 200);
    let jar = cookie_jar(&out);
    for cookies in ["tg_optout=1", jar.as_str()] {
        for body in ["", "{}", r#"{"anonymousId":"  "}"#] {
            let r = from_browser(&gw, "/v1/optin", body, cookies);
            assert_eq!(
                (r.status, r.json()["error"].clone()),
                (400, json!("identity_required")),
                "{cookies} {body}: {}",
                body_of(&r)
            );
            assert!(set_cookies(&r).is_empty(), "{cookies} {body}");
        }
    }
    // The visitor stays opted out: by their cookie and on the list.
    let page = r#"{"anonymousId":"anon-other","name":"Home"}"#;
    let r = send(&gw, "/v1/page", page, &[("cookie", "tg_optout=1")]);
    assert_eq!(r.json()["dropped"], 1);
    let r = send(&gw, "/v1/page", r#"{"anonymousId":"anon-out"}"#, &[]);
    assert_eq!(r.json()["dropped"], 1);
    let r = send(&gw, "/v1/page", r#"{"anonymousId":"anon-ctl"}"#, &[]);
    assert_eq!(r.json()["accepted"], 1);
    let recs = every_event_topic(&broker.addr(), 1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(of_visitor(&recs, "anon-ctl").len(), 1);
    assert_eq!(
        gw.metric(
            "trackgate_optout_refused_total",
            &[("action", "optin"), ("reason", "identity_required")]
        ),
        6.0
    );
}

#[test]
fn differently_spelled_ids_stay_opted_out() {
    let broker = Broker::start();
    let gw = start_gateway(&broker.addr(), &Setup::default());
    let r = from_browser(
        &gw,
        "/v1/optout",
        r#"{"userId":"Jane.Doe@Example.com","anonymousId":"6F9619FF-8B86-D011-B42D-00CF4FC964FF"}"#,
        "",
    );
    assert_eq!(r.status, 200, "{}", body_of(&r));

    let batch = json!({"batch": [
        {"type":"page","userId":"jane.doe@example.com"},
        {"type":"page","userId":" JANE.DOE@EXAMPLE.COM "},
        {"type":"track","event":"x","userId":"Jane.Doe@Example.com\t"},
        {"type":"page","anonymousId":"6f9619ff-8b86-d011-b42d-00cf4fc964ff"},
        {"type":"page","anonymousId":" 6F9619FF-8B86-D011-B42D-00CF4FC964FF"},
        {"type":"alias","userId":"new-id","previousId":"JANE.doe@example.com"},
        {"type":"page","userId":"john.roe@example.com"},
    ]});
    let r = send(&gw, "/v1/batch", &batch.to_string(), &[]);
    assert_eq!(
        r.json(),
        json!({"success":true,"accepted":1,"rejected":0,"dropped":6})
    );

    // Only the control reached Kafka (its e-mail id as a pseudonym).
    let recs = every_event_topic(&broker.addr(), 1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_nowhere(&recs, &["6f9619ff", "6F9619FF", "new-id"]);
    // The list holds the digest of the normal form.
    let list = optout_records(&broker.addr(), 2);
    let keys: Vec<Value> = list.iter().map(|r| json!(r.key)).collect();
    assert!(
        keys.contains(&json!(optout_key("user", "jane.doe@example.com"))),
        "{keys:?}"
    );
    assert!(
        keys.contains(&json!(optout_key(
            "anon",
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
        ))),
        "{keys:?}"
    );
}
