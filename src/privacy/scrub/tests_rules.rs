//! Identity fields, key words, person traits, decoded forms, path rules
//! and custom detectors, table-driven.

use serde_json::{json, Value};

use super::config::{CustomDetectorConfig, RuleConfig};
use super::*;

const SECRET: &str = "a test pseudonym secret";

fn with(cfg: ScrubConfig) -> Scrubber {
    Scrubber::new(&ScrubConfig {
        pseudonym_secret: Some(SECRET.into()),
        ..cfg
    })
    .expect("config builds")
}

fn scrubber() -> Scrubber {
    with(ScrubConfig::default())
}

/// Scrubs `event`: the result, the redactions as `(path, label)`, the outcome.
fn run_with(s: &Scrubber, event: Value) -> (Value, Vec<(String, &'static str)>, ScrubOutcome) {
    let mut out = Vec::new();
    let mut o = ScrubOutcome::default();
    let v = super::tests::scrub_parsed(&event, |m| {
        o = s.scrub_event(m, &mut out);
    });
    let red = out
        .iter()
        .map(|r| (r.path.clone(), r.kind.label()))
        .collect();
    (v, red, o)
}

fn run(event: Value) -> (Value, Vec<(String, &'static str)>, ScrubOutcome) {
    run_with(&scrubber(), event)
}

#[test]
fn identity_fields_holding_pii_become_stable_pseudonyms() {
    let ev = json!({
        "type": "alias",
        "userId": "ada@example.com",
        "anonymousId": "6f1c2a34-7d0e-4c53-9a1b-2f3e4d5c6b7a",
        "groupId": "grp:078-05-1120",
        "previousId": "+44 20 7946 0958",
        "messageId": "msg:ada@example.com"
    });
    let (out, red, outcome) = run(ev.clone());
    assert!(outcome.identity_pii);
    let uid = out["userId"].as_str().expect("string");
    assert!(uid.starts_with(PSEUDONYM_PREFIX), "{uid}");
    assert_eq!(out["anonymousId"], ev["anonymousId"]);
    for f in ["groupId", "previousId"] {
        assert!(out[f]
            .as_str()
            .expect("string")
            .starts_with(PSEUDONYM_PREFIX));
    }
    // A `messageId` holding PII becomes its own pseudonym, never a
    // constant shared by every such id.
    let mid = out["messageId"].as_str().expect("string");
    assert!(mid.starts_with(PSEUDONYM_PREFIX), "{mid}");
    assert_ne!(mid, uid);
    let mut red = red;
    red.sort();
    assert_eq!(
        red,
        vec![
            ("groupId".to_string(), "ssn"),
            ("messageId".to_string(), "email"),
            ("previousId".to_string(), "phone"),
            ("userId".to_string(), "email"),
        ]
    );
    // Stable: the same visitor gets the same pseudonym in the next event,
    // from another scrubber with the same secret.
    let (again, _, _) = run(json!({"type": "page", "userId": "ada@example.com"}));
    assert_eq!(again["userId"], uid);
    // Another secret, another pseudonym.
    let other = Scrubber::new(&ScrubConfig {
        pseudonym_secret: Some("another secret, long enough".into()),
        ..ScrubConfig::default()
    })
    .expect("builds");
    let (third, _, _) = run_with(&other, json!({"userId": "ada@example.com"}));
    assert_ne!(third["userId"], uid);
}

#[test]
fn clean_ids_are_left_and_the_policy_decides() {
    for id in [
        "6f1c2a34-7d0e-4c53-9a1b-2f3e4d5c6b7a",
        "user-12345",
        "42",
        "ajs-next-1700000000123-4c53",
        "0123456789abcdef0123456789abcdef",
    ] {
        let (out, red, o) = run(json!({"userId": id, "anonymousId": id}));
        assert_eq!(out["userId"], id);
        assert!(red.is_empty() && !o.identity_pii, "{id}: {red:?}");
    }
    let keep = with(ScrubConfig {
        identity_pii: IdentityPii::Keep,
        ..ScrubConfig::default()
    });
    let (out, red, o) = run_with(&keep, json!({"userId": "ada@example.com"}));
    assert_eq!(out["userId"], "ada@example.com");
    assert!(red.is_empty() && !o.identity_pii);
    let reject = with(ScrubConfig {
        identity_pii: IdentityPii::Reject,
        ..ScrubConfig::default()
    });
    let (out, _, o) = run_with(&reject, json!({"userId": "ada@example.com"}));
    assert!(o.identity_pii);
    assert!(out["userId"]
        .as_str()
        .expect("string")
        .starts_with(PSEUDONYM_PREFIX));
}

#[test]
fn identity_fields_of_other_shapes_are_walked_like_any_value() {
    // As a rejected event carries them to the invalid topic.
    let (out, _, _) = run(json!({
        "userId": {"email": "ada@example.com", "note": "call 555-123-4567", "ok": "x"},
        "groupId": ["ada@example.com", 4111111111111111u64],
        "anonymousId": 4111111111111111u64
    }));
    assert_eq!(
        out,
        json!({
            "userId": {"note": "call [phone]", "ok": "x"},
            "groupId": ["[email]", "[card]"],
            "anonymousId": out["anonymousId"].clone()
        })
    );
    assert!(out["anonymousId"]
        .as_str()
        .expect("string")
        .starts_with(PSEUDONYM_PREFIX));
}

#[test]
fn key_rules_take_strings_and_numbers_never_booleans_or_nulls() {
    let (out, red, _) = run(json!({
        "context": {
            "userAgentData": {"mobile": true, "platform": "Android", "brands": [{"brand": "Chromium"}]},
            "device": {"type": "mobile"}
        },
        "properties": {
            "newPassword": "hunter2",
            "password_confirmation": "hunter2",
            "pin": 1234,
            "otp": "123456",
            "cvv2": "123",
            "dateOfBirth": "1990-01-01",
            "mobile": "+44 20 7946 0958",
            "phoneVerified": true,
            "email": null,
            "pinned": true,
            "options": ["a"],
            "tokenizer": "bpe",
            "ipAddress": "203.0.113.0",
            "mobile_app_version": "1.2.3",
            "address_type": "billing",
            "shipping": {"streetAddress": "1 Main St", "city": "Berlin"}
        }
    }));
    assert_eq!(
        out,
        json!({
            "context": {
                "userAgentData": {"mobile": true, "platform": "Android", "brands": [{"brand": "Chromium"}]},
                "device": {"type": "mobile"}
            },
            "properties": {
                "phoneVerified": true,
                "email": null,
                "pinned": true,
                "options": ["a"],
                "tokenizer": "bpe",
                "ipAddress": "[ip]",
                "mobile_app_version": "1.2.3",
                "address_type": "billing",
                "shipping": {"city": "Berlin"}
            }
        })
    );
    let denied = red.iter().filter(|(_, l)| *l == "denied_key").count();
    assert_eq!(denied, 8, "{red:?}");
    // `ipAddress` is the IP detector's: an address, not a postal one.
    assert!(red.contains(&("properties.ipAddress".to_string(), "ip")));
    assert_eq!(red.len(), 9);
}

#[test]
fn person_traits_go_but_page_and_group_names_stay() {
    let (out, red, _) = run(json!({
        "type": "identify",
        "name": "Checkout",
        "traits": {"name": "Ada Lovelace", "username": "ada", "plan": "pro", "email": true},
        "context": {"traits": {"name": "Ada"}, "library": {"name": "analytics.js"}},
        "properties": {"name": "Trail Shoe"}
    }));
    assert_eq!(
        out,
        json!({
            "type": "identify",
            "name": "Checkout",
            "traits": {"plan": "pro", "email": true},
            "context": {"traits": {}, "library": {"name": "analytics.js"}},
            "properties": {"name": "Trail Shoe"}
        })
    );
    assert!(red.contains(&("traits.name".to_string(), "person_trait")));
    let (out, _, _) = run(json!({
        "type": "group",
        "traits": {"name": "Acme Inc", "employees": 40},
        "context": {"traits": {"name": "Ada"}}
    }));
    assert_eq!(out["traits"]["name"], "Acme Inc");
    assert!(out["context"]["traits"].get("name").is_none());
    let keep = with(ScrubConfig {
        keep_traits: vec!["name".into()],
        ..ScrubConfig::default()
    });
    let (out, _, _) = run_with(
        &keep,
        json!({"traits": {"name": "Ada", "firstName": "Ada"}}),
    );
    assert_eq!(out["traits"], json!({"name": "Ada"}));
    assert!(Scrubber::new(&ScrubConfig {
        keep_traits: vec!["plan".into()],
        ..ScrubConfig::default()
    })
    .is_err());
}

#[test]
fn decoded_forms_are_checked_and_replaced_in_the_original() {
    let cases: &[(&str, &str)] = &[
        ("ada%40example.com", "[email]"),
        ("mail: ada%40example.com today", "mail: [email] today"),
        ("call+020+7946+0958", "call+[phone]"),
        ("ADA@EXAMPLE.COM", "[email]"),
        ("iban de89370400440532013000", "iban [iban]"),
        ("Spring%20Sale", "Spring%20Sale"),
        ("100% sure", "100% sure"),
        ("best+bikes+2024", "best+bikes+2024"),
    ];
    for (input, want) in cases {
        let (out, _, _) = run(json!({"properties": {"note": input}}));
        assert_eq!(out["properties"]["note"], *want, "{input}");
    }
}

#[test]
fn json_inside_a_string_is_walked_and_written_back_only_when_changed() {
    let (out, red, _) = run(json!({"properties": {
        "payload": "{\"password\":\"hunter2\",\"note\":\"mail ada@example.com\",\"n\":1}",
        "list": "[\"ada@example.com\", 2]",
        "clean": "{ \"sku\": \"SKU-1\" }",
        "marker": "[email]"
    }}));
    let p = &out["properties"];
    // Written back in the order it came, without the removed key.
    assert_eq!(p["payload"], "{\"note\":\"mail [email]\",\"n\":1}");
    assert_eq!(p["list"], "[\"[email]\",2]");
    assert_eq!(p["clean"], "{ \"sku\": \"SKU-1\" }");
    assert_eq!(p["marker"], "[email]");
    assert!(red.contains(&("properties.payload.password".to_string(), "denied_key")));
}

#[test]
fn keys_that_are_pii_in_any_form_are_removed() {
    let (out, red, _) =
        run(json!({"properties": {"ada@example.com": 1, "ada%40example.com": 2, "ok": 3}}));
    assert_eq!(out, json!({"properties": {"ok": 3}}));
    assert_eq!(
        red,
        vec![
            ("properties.[email]".to_string(), "email"),
            ("properties.[email]".to_string(), "email")
        ]
    );
}

fn rule(selector: &str, action: Action) -> RuleConfig {
    RuleConfig {
        selector: selector.into(),
        action,
    }
}

#[test]
fn path_rules_remove_mask_pseudonymize_and_keep() {
    let s = with(ScrubConfig {
        rules: vec![
            rule("properties.**.iban", Action::Remove),
            rule("traits.company.*", Action::Mask),
            rule("properties.customer", Action::Pseudonymize),
            rule("properties.contact.email", Action::Keep),
        ],
        ..ScrubConfig::default()
    });
    let (out, red, _) = run_with(
        &s,
        json!({
            "traits": {"company": {"name": "Acme", "size": 40, "public": true}},
            "properties": {
                "iban": "x",
                "bank": {"details": {"iban": "y", "bic": "DEUTDEFF"}},
                "customer": {"id": "c-1", "n": 7},
                "contact": {"email": "ada@example.com"}
            }
        }),
    );
    let p = &out["properties"];
    assert!(p.get("iban").is_none());
    assert_eq!(p["bank"]["details"], json!({"bic": "DEUTDEFF"}));
    assert_eq!(
        out["traits"]["company"],
        json!({"name": "[masked]", "size": "[masked]", "public": true})
    );
    let id = p["customer"]["id"].as_str().expect("string");
    assert!(id.starts_with(PSEUDONYM_PREFIX));
    assert_eq!(id, s.pseudonyms.pseudonym("c-1"));
    assert_eq!(p["contact"]["email"], "ada@example.com");
    let labels: Vec<&str> = red.iter().map(|(_, l)| *l).collect();
    for l in ["rule_remove", "rule_mask", "rule_pseudonymize"] {
        assert!(labels.contains(&l), "{l} in {labels:?}");
    }
    assert!(Scrubber::new(&ScrubConfig {
        rules: vec![rule("properties..x", Action::Remove)],
        ..ScrubConfig::default()
    })
    .is_err());
}

#[test]
fn custom_detectors_replace_their_matches_everywhere() {
    let s = with(ScrubConfig {
        custom_detectors: vec![CustomDetectorConfig {
            name: "employee_id".into(),
            regex: r"EMP-\d{6}".into(),
            prefilter: Some("EMP-".into()),
        }],
        ..ScrubConfig::default()
    });
    let (out, red, o) = run_with(
        &s,
        json!({
            "userId": "EMP-123456",
            "properties": {"note": "by EMP-654321 and ada@example.com", "q": "EMP%2D111111", "EMP-222222": 1}
        }),
    );
    assert!(o.identity_pii);
    assert_eq!(out["properties"]["note"], "by [employee_id] and [email]");
    assert!(out["properties"].get("EMP-222222").is_none());
    assert!(!out.to_string().contains("111111"), "{out}");
    assert!(red.iter().any(|(_, l)| *l == "employee_id"));
}

#[test]
fn pseudonym_secrets_come_from_config_or_environment() {
    let bad = |cfg: ScrubConfig| Scrubber::new(&cfg).is_err();
    assert!(bad(ScrubConfig {
        pseudonym_secret: Some("short".into()),
        ..ScrubConfig::default()
    }));
    assert!(bad(ScrubConfig {
        pseudonym_secret: Some(SECRET.into()),
        pseudonym_secret_env: Some("PATH".into()),
        ..ScrubConfig::default()
    }));
    assert!(bad(ScrubConfig {
        pseudonym_secret_env: Some("TRACKGATE_TEST_UNSET_PSEUDONYM_SECRET".into()),
        ..ScrubConfig::default()
    }));
    assert!(!scrubber().ephemeral_pseudonyms());
    assert!(Scrubber::new(&ScrubConfig::default())
        .expect("builds")
        .ephemeral_pseudonyms());
}

#[test]
fn message_ids_holding_pii_become_per_value_pseudonyms_not_a_constant() {
    let id = |mid: &str| {
        let (out, red, outcome) =
            run(json!({"type": "page", "anonymousId": "a", "messageId": mid}));
        // Not an identity field: the event is not rejected for it.
        assert!(!outcome.identity_pii);
        assert_eq!(red, vec![("messageId".to_string(), "email")]);
        out["messageId"].as_str().expect("string").to_string()
    };
    let ada = id("ada@example.com");
    let bob = id("bob@example.com");
    assert!(ada.starts_with(PSEUDONYM_PREFIX), "{ada}");
    assert!(!ada.contains('@') && !ada.contains("ada"));
    assert_ne!(ada, bob);
    assert_eq!(ada, id("ada@example.com"));
    // Even under `identity_pii = "keep"` (which is about visitor ids).
    let keep = with(ScrubConfig {
        identity_pii: IdentityPii::Keep,
        ..ScrubConfig::default()
    });
    let (out, _, _) = run_with(&keep, json!({"messageId": "ada@example.com"}));
    assert_eq!(out["messageId"], ada.as_str());
    // A clean id is left alone.
    let (out, red, _) = run(json!({"messageId": "ajs-next-1733563200000-4f1c"}));
    assert_eq!(out["messageId"], "ajs-next-1733563200000-4f1c");
    assert!(red.is_empty());
}

#[test]
fn key_rules_remove_only_the_kinds_of_value_they_name() {
    // From real client payloads: RudderStack Android and Hightouch browser
    // send the session's start time as `context.sessionId`.
    let (out, red, _) = run(json!({
        "context": {"sessionId": 1733563200000_i64, "sessionStart": true},
        "properties": {
            "emailCampaignId": 12345,
            "email_campaign_id": "2026-12-07T08:00:00Z",
            "sid": "2026-12-07T08:00:00+01:00",
        }
    }));
    assert_eq!(out["context"]["sessionId"], 1733563200000_i64);
    assert_eq!(out["properties"]["emailCampaignId"], 12345);
    assert_eq!(out["properties"]["sid"], "2026-12-07T08:00:00+01:00");
    assert!(red.is_empty(), "{red:?}");
    // What the rules protect still goes: a session token, an address, an
    // object or array under the key.
    let (out, red, _) = run(json!({
        "context": {"sessionId": "s3cr3t-token-abc", "session": {"id": 5}},
        "properties": {"email": "ada@example.com", "emails_list": 1, "userEmail": ["a"], "pin": 1234}
    }));
    assert!(out["context"].get("sessionId").is_none());
    assert!(out["context"].get("session").is_none());
    assert!(out["properties"].get("email").is_none());
    assert!(out["properties"].get("userEmail").is_none());
    assert!(out["properties"].get("pin").is_none());
    let mut red = red;
    red.sort();
    assert_eq!(
        red,
        vec![
            ("context.session".to_string(), "denied_key"),
            ("context.sessionId".to_string(), "denied_key"),
            ("properties.email".to_string(), "denied_key"),
            ("properties.pin".to_string(), "denied_key"),
            ("properties.userEmail".to_string(), "denied_key"),
        ]
    );
}

#[test]
fn value_kinds_in_configured_rules_are_checked_at_load() {
    let cfg = |keys: &[&str]| {
        Scrubber::new(&ScrubConfig {
            extra_deny_keys: keys.iter().map(|k| k.to_string()).collect(),
            ..ScrubConfig::default()
        })
    };
    assert!(cfg(&["member number: text, number"]).is_ok());
    assert!(cfg(&["member number: texts"]).is_err());
    assert!(cfg(&["member number:"]).is_err());
    let s = with(ScrubConfig {
        extra_deny_keys: vec!["member number: number".into()],
        ..ScrubConfig::default()
    });
    let (out, _, _) = run_with(
        &s,
        json!({"properties": {"memberNumber": 991, "member_number": "M-1"}}),
    );
    assert!(out["properties"].get("memberNumber").is_none());
    assert_eq!(out["properties"]["member_number"], "M-1");
}

#[test]
fn client_coordinates_are_rounded_to_the_gateways_geoip_precision() {
    // Segment mobile's `context.location`, and a site's properties.
    let ev = json!({
        "context": {"location": {"latitude": -33.868_82, "longitude": 151.209_296, "speed": 1.5}},
        "properties": {"lat": "48.85837", "userLng": 2.294_481, "flat": 12.345, "lat_source": "gps"}
    });
    let (out, red, _) = run(ev.clone());
    assert_eq!(out["context"]["location"]["latitude"], -33.9);
    assert_eq!(out["context"]["location"]["longitude"], 151.2);
    assert_eq!(out["context"]["location"]["speed"], 1.5);
    assert_eq!(out["properties"]["lat"], "48.9");
    assert_eq!(out["properties"]["userLng"], 2.3);
    assert_eq!(out["properties"]["flat"], 12.345);
    assert_eq!(out["properties"]["lat_source"], "gps");
    let mut red = red;
    red.sort();
    assert_eq!(
        red,
        vec![
            ("context.location.latitude".to_string(), "coordinates"),
            ("context.location.longitude".to_string(), "coordinates"),
            ("properties.lat".to_string(), "coordinates"),
            ("properties.userLng".to_string(), "coordinates"),
        ]
    );
    // Configurable, and off when the source says so.
    let two = with(ScrubConfig {
        coordinate_decimals: 2,
        ..ScrubConfig::default()
    });
    let (out, _, _) = run_with(&two, ev.clone());
    assert_eq!(out["context"]["location"]["latitude"], -33.87);
    let off = with(ScrubConfig {
        coarsen_coordinates: false,
        ..ScrubConfig::default()
    });
    let (out, red, _) = run_with(&off, ev.clone());
    assert_eq!(out, ev);
    assert!(red.is_empty());
    assert!(Scrubber::new(&ScrubConfig {
        coordinate_decimals: 8,
        ..ScrubConfig::default()
    })
    .is_err());
}
