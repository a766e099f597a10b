//! Whole-event behaviour of the scrubber.

use serde_json::{json, Map, Value};

use super::*;

fn scrubber() -> Scrubber {
    Scrubber::new(&ScrubConfig::default()).expect("default config builds")
}

/// Runs `f` on `event` as the gateway holds it (written as JSON text and
/// parsed into the borrowed tree), and returns the result.
pub(super) fn scrub_parsed(event: &Value, f: impl FnOnce(&mut crate::json::Map<'_>)) -> Value {
    let text = serde_json::to_string(event).expect("serializes");
    let Ok(crate::json::Value::Object(mut m)) = crate::json::from_str(&text) else {
        panic!("fixture is not an object: {event}");
    };
    f(&mut m);
    Value::Object(m.to_serde())
}

/// Scrubs `event`; returns it and the redactions as `(path, label)`.
fn run_with(s: &Scrubber, event: Value) -> (Value, Vec<(String, &'static str)>) {
    let mut out = Vec::new();
    let v = scrub_parsed(&event, |m| {
        s.scrub_event(m, &mut out);
    });
    let red = out
        .iter()
        .map(|r| (r.path.clone(), r.kind.label()))
        .collect();
    (v, red)
}

fn run(event: Value) -> (Value, Vec<(String, &'static str)>) {
    run_with(&scrubber(), event)
}

fn red(pairs: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    pairs.iter().map(|(p, l)| (p.to_string(), *l)).collect()
}

fn one(s: &str) -> (Option<String>, Vec<&'static str>) {
    let mut kinds = Vec::new();
    let r = scrubber().scrub_str(s, &mut kinds);
    (r, kinds.iter().map(RedactionKind::label).collect())
}

#[test]
fn denied_keys_are_removed_everywhere_and_recorded() {
    let (ev, r) = run(json!({
        "type": "identify",
        "userId": "u1",
        "Email": "top@level.example",
        "traits": {"E-Mail": "a", "firstName": "Ada", "plan": "pro", "address": {"street": "x", "city": "y"}},
        "properties": {"items": [{"sku": "SKU-1", "cardNumber": "x"}], "nested": {"deep": {"Pass_Word": 1}}},
        "context": {"sessionId": "s", "locale": "en-US"}
    }));
    assert_eq!(
        ev,
        json!({
            "type": "identify",
            "userId": "u1",
            "traits": {"plan": "pro"},
            "properties": {"items": [{"sku": "SKU-1"}], "nested": {"deep": {}}},
            "context": {"locale": "en-US"}
        })
    );
    let mut got = r;
    got.sort();
    let mut want = red(&[
        ("Email", "denied_key"),
        ("traits.E-Mail", "denied_key"),
        ("traits.firstName", "person_trait"),
        ("traits.address", "person_trait"),
        ("properties.items[0].cardNumber", "denied_key"),
        ("properties.nested.deep.Pass_Word", "denied_key"),
        ("context.sessionId", "denied_key"),
    ]);
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn allow_paths_keep_a_denied_key_verbatim() {
    let s = Scrubber::new(&ScrubConfig {
        allow_paths: vec!["traits.email".into(), "properties.items.note".into()],
        ..ScrubConfig::default()
    })
    .expect("builds");
    let (ev, r) = run_with(
        &s,
        json!({
            "traits": {"email": "ada@example.com", "phone": "1"},
            "context": {"traits": {"email": "ada@example.com"}},
            "properties": {"items": [{"note": "call 555-123-4567"}, {"other": "555-123-4567"}]}
        }),
    );
    assert_eq!(
        ev,
        json!({
            "traits": {"email": "ada@example.com"},
            "context": {"traits": {}},
            "properties": {"items": [{"note": "call 555-123-4567"}, {"other": "[phone]"}]}
        })
    );
    assert_eq!(
        r,
        red(&[
            ("context.traits.email", "person_trait"),
            ("properties.items[1].other", "phone"),
            ("traits.phone", "person_trait"),
        ])
    );
}

#[test]
fn exempt_fields_are_untouched_and_ids_and_event_names_are_scanned() {
    let ev = json!({
        "type": "track",
        "event": "Signup ada@example.com",
        "name": "Page for 555-123-4567",
        "userId": "ada@example.com",
        "anonymousId": "10.1.2.3",
        "groupId": "g@example.com",
        "previousId": "p@example.com",
        "messageId": "m@example.com",
        "timestamp": "2024-01-15T10:30:00.000Z",
        "originalTimestamp": "2024-01-15T10:30:00.000Z",
        "sentAt": "2024-01-15T10:30:00.000Z",
        "receivedAt": "2024-01-15T10:30:00.000Z",
        "context": {
            "ip": "203.0.113.7",
            "privacy": {"redactions": [{"path": "x@example.com", "kind": "email"}], "other": "o@example.com"}
        }
    });
    let (out, r) = run(ev.clone());
    let mut want = ev;
    want["event"] = json!("Signup [email]");
    want["name"] = json!("Page for [phone]");
    want["context"]["privacy"]["other"] = json!("[email]");
    for f in [
        "userId",
        "anonymousId",
        "groupId",
        "previousId",
        "messageId",
    ] {
        let p = out[f].as_str().expect("a string");
        assert!(p.starts_with(PSEUDONYM_PREFIX), "{f}: {p}");
        want[f] = json!(p);
    }
    assert_eq!(out, want);
    assert_eq!(
        r,
        red(&[
            ("anonymousId", "ip"),
            ("context.privacy.other", "email"),
            ("event", "email"),
            ("groupId", "email"),
            ("messageId", "email"),
            ("name", "phone"),
            ("previousId", "email"),
            ("userId", "email"),
        ])
    );
}

#[test]
fn values_are_replaced_in_place_keeping_the_text() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("mail ada@example.com now", "mail [email] now", &["email"]),
        ("call +1 (555) 123-4567!", "call [phone]!", &["phone"]),
        ("card 4111 1111 1111 1111 exp", "card [card] exp", &["card"]),
        ("to DE89 3704 0044 0532 0130 00.", "to [iban].", &["iban"]),
        ("ssn 123-45-6789", "ssn [ssn]", &["ssn"]),
        (
            "Authorization: Bearer abcDEF1234567890xyz",
            "Authorization: Bearer [token]",
            &["token"],
        ),
        (
            "from 203.0.113.7 and 2001:db8::1",
            "from [ip] and [ip]",
            &["ip", "ip"],
        ),
        (
            "a@b.io, 555-123-4567",
            "[email], [phone]",
            &["email", "phone"],
        ),
    ];
    for (input, want, kinds) in cases {
        let (got, k) = one(input);
        assert_eq!(got.as_deref(), Some(*want), "{input}");
        assert_eq!(&k, kinds, "{input}");
    }
}

#[test]
fn benign_values_come_through_unchanged() {
    for s in [
        "550e8400-e29b-41d4-a716-446655440000",
        "2024-01-15T10:30:00.000Z",
        "2024-01-15 10:30:00",
        "1700000000123",
        "$1,299.99",
        "1299.00",
        "ORD-2024-000123",
        "SKU-12345-678",
        "WH-1000XM4",
        "1.2.3",
        "10.0.19045.2965",
        "#ff8800",
        "/products/12345",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Order Completed",
        "https://shop.example.com/products/12345?utm_source=newsletter&utm_medium=email&page=2&q=running+shoes#reviews",
        "?q=shoes&page=3",
        "analytics-node 3.1.0",
        "en-US",
        "Europe/Berlin",
        "logo@2x.png",
        "@trackgate",
        "idempotency_key=550e8400-e29b-41d4-a716-446655440000",
        "Bearer of bad news",
        "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "",
    ] {
        let (got, kinds) = one(s);
        assert_eq!(got, None, "{s} changed");
        assert!(kinds.is_empty(), "{s}: {kinds:?}");
    }
}

#[test]
fn urls_lose_userinfo_and_pii_params_and_keep_the_rest_byte_for_byte() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "https://user:pa55@shop.example.com/p?utm_source=x&email=ada%40example.com&page=2",
            "https://shop.example.com/p?utm_source=x&page=2",
            &["url_userinfo", "url_param"],
        ),
        (
            "https://x.io/?contact=ada%40example.com&utm_campaign=Spring%20Sale",
            "https://x.io/?utm_campaign=Spring%20Sale",
            &["email"],
        ),
        (
            "https://x.io/a?E-Mail=a&Token=b",
            "https://x.io/a",
            &["url_param", "url_param"],
        ),
        (
            "https://x.io/cb#access_token=abc&token_type=bearer&state=xyz",
            "https://x.io/cb#token_type=bearer&state=xyz",
            &["url_param"],
        ),
        (
            "https://x.io/#/checkout?step=2&phone=555",
            "https://x.io/#/checkout?step=2",
            &["url_param"],
        ),
        (
            "https://x.io/users/ada@example.com/orders?id=7",
            "https://x.io/users/[email]/orders?id=7",
            &["email"],
        ),
        (
            "https://x.io/users/ada%40example.com",
            "https://x.io/users/[email]",
            &["email"],
        ),
        (
            "https://x.io/?c=%2B1%20555%20123%204567",
            "https://x.io/",
            &["phone"],
        ),
        ("https://x.io/?c=+15551234567", "https://x.io/", &["phone"]),
        (
            "https://x.io/?next=https%3A%2F%2Fy.io%2F%3Fu%3Dada%2540example.com&a=1",
            "https://x.io/?a=1",
            &["email"],
        ),
        (
            "https://x.io/?key=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            "https://x.io/",
            &["token"],
        ),
        (
            "https://x.io/p?user[email]=a&b=1",
            "https://x.io/p?b=1",
            &["url_param"],
        ),
        ("/checkout?email=a&x=1", "/checkout?x=1", &["url_param"]),
        ("?utm_source=a&email=b", "?utm_source=a", &["url_param"]),
        ("?email=b", "", &["url_param"]),
        (
            "https://x.io/?next=/signup?first_name=Ada&utm_source=a",
            "https://x.io/?utm_source=a",
            &["url_param"],
        ),
        (
            "https://x.io/?next=https://y.io/?password=hunter2&utm_source=a",
            "https://x.io/?utm_source=a",
            &["url_param"],
        ),
        (
            "/a?q=running+shoes&E-Mail=x",
            "/a?q=running+shoes",
            &["url_param"],
        ),
        (
            "http://10.0.0.5:8080/admin?ip=10.0.0.9",
            "http://10.0.0.5:8080/admin",
            &["ip"],
        ),
        (
            "see https://a:b@x.io/?email=c for details, mail d@e.io",
            "see https://x.io/ for details, mail [email]",
            &["url_userinfo", "url_param", "email"],
        ),
    ];
    for (input, want, kinds) in cases {
        let (got, k) = one(input);
        assert_eq!(got.as_deref(), Some(*want), "{input}");
        assert_eq!(&k, kinds, "{input}");
    }
}

#[test]
fn page_context_urls_and_search_strings() {
    let (ev, r) = run(json!({
        "type": "page",
        "context": {"page": {
            "url": "https://x.io/r?utm_source=a&email=ada%40x.io",
            "referrer": "https://u:p@ref.example/",
            "search": "?utm_source=a&email=ada%40x.io",
            "path": "/r",
            "title": "Reset for ada@x.io"
        }},
        "properties": {"search": "q=x&phone=1", "url": "/a?token=t", "referrer": "https://ref.example/"}
    }));
    assert_eq!(
        ev,
        json!({
            "type": "page",
            "context": {"page": {
                "url": "https://x.io/r?utm_source=a",
                "referrer": "https://ref.example/",
                "search": "?utm_source=a",
                "path": "/r",
                "title": "Reset for [email]"
            }},
            "properties": {"search": "q=x", "url": "/a", "referrer": "https://ref.example/"}
        })
    );
    let mut got = r;
    got.sort();
    assert_eq!(
        got,
        red(&[
            ("context.page.referrer", "url_userinfo"),
            ("context.page.search", "url_param"),
            ("context.page.title", "email"),
            ("context.page.url", "url_param"),
            ("properties.search", "url_param"),
            ("properties.url", "url_param"),
        ])
    );
}

#[test]
fn url_param_redaction_names_the_deny_entry_not_the_parameter_text() {
    let mut kinds = Vec::new();
    let out = scrubber().scrub_str("https://x.io/?E_MAIL=a", &mut kinds);
    assert_eq!(out.as_deref(), Some("https://x.io/"));
    assert_eq!(kinds, vec![RedactionKind::UrlParam("email".into())]);
}

#[test]
fn keys_that_are_pii_are_removed_without_leaking_into_paths() {
    let (ev, r) = run(json!({
        "properties": {"ada@example.com": {"visits": 3}, "ok": 1, "by_ip": {"203.0.113.7": 2}}
    }));
    assert_eq!(ev, json!({"properties": {"ok": 1, "by_ip": {}}}));
    let mut got = r;
    got.sort();
    assert_eq!(
        got,
        red(&[
            ("properties.[email]", "email"),
            ("properties.by_ip.[ip]", "ip"),
        ])
    );
}

#[test]
fn card_numbers_as_json_integers_are_replaced() {
    let (ev, r) = run(json!({
        "properties": {"pan": 4111111111111111u64, "ts": 1700000000123u64, "n": 42, "price": 1299.99}
    }));
    assert_eq!(
        ev,
        json!({"properties": {"pan": "[card]", "ts": 1700000000123u64, "n": 42, "price": 1299.99}})
    );
    assert_eq!(r, red(&[("properties.pan", "card")]));
}

#[test]
fn version_keys_are_not_scanned_for_ips() {
    let (ev, r) = run(json!({
        "context": {"app": {"version": "1.2.3.4", "build": "10.0.0.1"}, "os": {"osVersion": "10.0.0.2"}},
        "properties": {"ip_seen": "10.0.0.3", "versions": ["1.2.3.4"], "appVersion": "mail a@b.io"}
    }));
    assert_eq!(
        ev,
        json!({
            "context": {"app": {"version": "1.2.3.4", "build": "10.0.0.1"}, "os": {"osVersion": "10.0.0.2"}},
            "properties": {"ip_seen": "[ip]", "versions": ["1.2.3.4"], "appVersion": "mail [email]"}
        })
    );
    let mut got = r;
    got.sort();
    assert_eq!(
        got,
        red(&[
            ("properties.appVersion", "email"),
            ("properties.ip_seen", "ip")
        ])
    );
}

#[test]
fn values_deeper_than_max_depth_are_removed() {
    let s = Scrubber::new(&ScrubConfig {
        max_depth: 3,
        ..ScrubConfig::default()
    })
    .expect("builds");
    let (ev, r) = run_with(
        &s,
        json!({"properties": {"a": {"b": 1, "c": {"d": 2}}, "list": [[1], 2]}}),
    );
    // `properties.a.c` has three segments and stays; what is under it goes.
    assert_eq!(
        ev,
        json!({"properties": {"a": {"b": 1, "c": {}}, "list": [[], 2]}})
    );
    let mut got = r;
    got.sort();
    assert_eq!(
        got,
        red(&[
            ("properties.a.c.d", "depth"),
            ("properties.list[0][0]", "depth")
        ])
    );
}

#[test]
fn long_strings_are_cut_and_the_kept_part_scanned() {
    let limit = config::MIN_STRING_BYTES;
    let s = Scrubber::new(&ScrubConfig {
        max_string_bytes: limit,
        ..ScrubConfig::default()
    })
    .expect("builds");
    let head = format!("mail ada@example.com {}", "word ".repeat(100));
    let (ev, r) = run_with(
        &s,
        json!({"properties": {"text": head, "k".repeat(limit + 1): 1}}),
    );
    let text = ev["properties"]["text"].as_str().expect("string kept");
    assert!(text.len() <= limit, "cut to {} bytes", text.len());
    assert!(text.starts_with("mail [email] word "), "{text}");
    assert!(text.ends_with("word"), "cut at whitespace: {text:?}");
    assert_eq!(ev["properties"].as_object().map(Map::len), Some(1));
    let mut got = r;
    got.sort();
    assert_eq!(
        got,
        red(&[
            ("properties.[truncated]", "truncated"),
            ("properties.text", "email"),
            ("properties.text", "truncated"),
        ])
    );
    // Multi-byte text is cut on a character boundary.
    let mut kinds = Vec::new();
    let cut = s.scrub_str(&"é".repeat(limit), &mut kinds).expect("cut");
    assert_eq!(cut.len(), limit);
    assert_eq!(kinds, vec![RedactionKind::Truncated]);
}

#[test]
fn detector_subset_and_disabled_scrubber() {
    let s = Scrubber::new(&ScrubConfig {
        detectors: vec![Detector::Email],
        ..ScrubConfig::default()
    })
    .expect("builds");
    let mut kinds = Vec::new();
    assert_eq!(
        s.scrub_str("a@b.io 555-123-4567 10.0.0.1", &mut kinds)
            .as_deref(),
        Some("[email] 555-123-4567 10.0.0.1")
    );
    let off = Scrubber::new(&ScrubConfig {
        enabled: false,
        ..ScrubConfig::default()
    })
    .expect("builds");
    assert!(!off.enabled());
    let (ev, r) = run_with(&off, json!({"properties": {"email": "a@b.io"}}));
    assert_eq!(ev, json!({"properties": {"email": "a@b.io"}}));
    assert!(r.is_empty());
    assert_eq!(off.scrub_str("a@b.io", &mut kinds), None);
}

#[test]
fn extra_deny_keys_extend_the_default_list() {
    let s = Scrubber::new(&ScrubConfig {
        extra_deny_keys: vec!["loyalty_number".into()],
        ..ScrubConfig::default()
    })
    .expect("builds");
    let (ev, r) = run_with(
        &s,
        json!({"properties": {"LoyaltyNumber": "x", "email": "y", "plan": "z"}}),
    );
    assert_eq!(ev, json!({"properties": {"plan": "z"}}));
    assert_eq!(r.len(), 2);
    let replaced = Scrubber::new(&ScrubConfig {
        deny_keys: vec!["plan".into()],
        ..ScrubConfig::default()
    })
    .expect("builds");
    let (ev, _) = run_with(
        &replaced,
        json!({"properties": {"email": "y", "plan": "z", "planName": "p"}}),
    );
    assert_eq!(ev, json!({"properties": {"email": "y"}}));
}

#[test]
fn bad_configs_are_refused() {
    let bad = |cfg: ScrubConfig| Scrubber::new(&cfg).err().map(|e| e.to_string());
    assert!(bad(ScrubConfig {
        max_depth: 0,
        ..ScrubConfig::default()
    })
    .is_some());
    assert!(bad(ScrubConfig {
        max_string_bytes: 10,
        ..ScrubConfig::default()
    })
    .is_some());
    assert!(bad(ScrubConfig {
        extra_deny_keys: vec!["--".into()],
        ..ScrubConfig::default()
    })
    .is_some());
    assert!(bad(ScrubConfig {
        allow_paths: vec!["traits.".into()],
        ..ScrubConfig::default()
    })
    .is_some());
}

#[test]
fn labels_cover_every_kind() {
    let mut labels: Vec<&str> = Detector::ALL.iter().map(|d| d.label()).collect();
    labels.extend(
        [
            RedactionKind::DeniedKey,
            RedactionKind::UrlParam("x".into()),
            RedactionKind::UrlUserinfo,
            RedactionKind::Depth,
            RedactionKind::Truncated,
            RedactionKind::PersonTrait,
            RedactionKind::Rule(Action::Remove),
            RedactionKind::Rule(Action::Pseudonymize),
            RedactionKind::Rule(Action::Mask),
            RedactionKind::Coordinates,
        ]
        .iter()
        .map(RedactionKind::label),
    );
    let mut want = RedactionKind::LABELS.to_vec();
    labels.sort_unstable();
    want.sort_unstable();
    assert_eq!(labels, want);
}

#[test]
fn a_clean_page_event_is_left_exactly_as_it_was() {
    let ev = clean_page_event();
    let (out, r) = run(ev.clone());
    assert_eq!(out, ev);
    assert!(r.is_empty(), "{r:?}");
}

/// A realistic page event with nothing to redact (shared with the bench's
/// shape).
pub(super) fn clean_page_event() -> Value {
    json!({
        "type": "page",
        "anonymousId": "6f1c2a34-7d0e-4c53-9a1b-2f3e4d5c6b7a",
        "messageId": "ajs-next-1700000000123-4c53",
        "timestamp": "2024-01-15T10:30:00.000Z",
        "receivedAt": "2024-01-15T10:30:00.120Z",
        "name": "Product Detail",
        "properties": {
            "path": "/products/12345",
            "url": "https://shop.example.com/products/12345?utm_source=newsletter&utm_medium=email",
            "title": "Trail Running Shoe – Blue",
            "sku": "TRS-12345-BL",
            "price": 129.99,
            "currency": "EUR"
        },
        "context": {
            "ip": "203.0.113.0",
            "locale": "de-DE",
            "timezone": "Europe/Berlin",
            "library": {"name": "analytics.js", "version": "4.1.0"},
            "page": {
                "referrer": "https://www.google.com/",
                "search": "?utm_source=newsletter&utm_medium=email"
            },
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
        }
    })
}

#[test]
fn european_phone_shapes_pass_the_prefilter_and_are_replaced() {
    for (text, want) in [
        (
            "Rappel : 06\u{a0}12\u{a0}34\u{a0}56\u{a0}78",
            "Rappel : [phone]",
        ),
        (
            "+33\u{202f}6\u{202f}12\u{202f}34\u{202f}56\u{202f}78",
            "[phone]",
        ),
        ("+33 (0)6 12 34 56 78", "[phone]"),
        ("Telefon 030/1234567", "Telefon [phone]"),
        ("Mail o'brien@example.ie", "Mail [email]"),
    ] {
        assert_eq!(one(text).0.as_deref(), Some(want), "{text}");
    }
}
