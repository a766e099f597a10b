//! The stage as a whole: one event in, what the record would carry out.

use crate::json::json;
use chrono::{DateTime, Utc};

use super::*;
use crate::event::Event;

const CLIENT_IP: &str = "81.2.69.160";
/// The client address opt-outs of these tests come from.
const TEST_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(81, 2, 69, 160));

struct Fixture {
    stage: PrivacyStage,
    _dir: tempfile::TempDir,
}

/// A stage with the GeoIP fixture and sources `web` (defaults) and `alt`
/// (the given `[sources.privacy]` lines), plus `[privacy]` lines.
fn stage_with(global: &str, alt: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("geo.mmdb");
    std::fs::write(&db, mmdb::fixture().to_bytes().unwrap()).unwrap();
    let text = format!(
        "[privacy]\ngeoip_database = {:?}\n{global}\n\n[[sources]]\nid = \"web\"\nwrite_key = \"k1\"\n\n[[sources]]\nid = \"alt\"\nwrite_key = \"k2\"\n[sources.privacy]\n{alt}\n",
        db.display().to_string()
    );
    let config = Config::from_toml(&text).unwrap();
    Fixture {
        stage: PrivacyStage::local(&config).unwrap(),
        _dir: dir,
    }
}

fn meta(source: &str, signals: RequestSignals) -> RequestMeta<'_> {
    RequestMeta {
        source_id: source,
        received_at: DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
        client_ip: CLIENT_IP.parse().unwrap(),
        user_agent: None,
        batch_sent_at: None,
        batch_context: None,
        signals,
    }
}

/// An event as `normalize` leaves it: the raw address in `context.ip`.
fn event(v: Value<'static>) -> Event<'static> {
    let Value::Object(m) = v else { panic!() };
    let mut e = Event::from_object(m, None).unwrap();
    e.context_mut().insert("ip", Value::from(CLIENT_IP));
    e
}

fn full_event() -> Event<'static> {
    event(json!({
        "type":"identify","userId":"u-1","anonymousId":"a-1","traits":{"email":"x@example.com"},
        "context":{"traits":{"name":"X"},"device":{"id":"dev-1","advertisingId":"ad-1","model":"P"},
                   "geo":{"latitude":1.23456},"ipHash":"forged","locale":"en"}
    }))
}

const GPC: RequestSignals = RequestSignals {
    optout_cookie: false,
    gpc: true,
    dnt: false,
};
const DNT: RequestSignals = RequestSignals {
    optout_cookie: false,
    gpc: false,
    dnt: true,
};
const COOKIE: RequestSignals = RequestSignals {
    optout_cookie: true,
    gpc: false,
    dnt: false,
};

#[test]
fn default_policy_truncates_the_address_and_adds_city_geo() {
    let f = stage_with("", "");
    let mut e = full_event();
    assert_eq!(
        f.stage
            .apply(&mut e, &meta("web", RequestSignals::default())),
        Verdict::Keep
    );
    let ctx = &e.body["context"];
    assert_eq!(ctx["ip"], "81.2.69.0");
    assert_eq!(
        ctx["geo"],
        json!({"country":"GB","region":"ENG","city":"London"})
    );
    assert!(ctx.get("ipHash").is_none(), "client-sent ipHash removed");
    assert_eq!(e.body["userId"], "u-1");
    assert_eq!(ctx["device"]["id"], "dev-1");
    assert!(!serde_json::to_string(&e.body).unwrap().contains(CLIENT_IP));
}

#[test]
fn ip_modes() {
    let cases = [
        ("ip = \"keep\"", Some(CLIENT_IP), false),
        ("ip = \"drop\"", None, false),
        ("ip = \"hash\"", None, true),
        (
            "ip = \"truncate\"\ngeo_coordinates = true",
            Some("81.2.69.0"),
            false,
        ),
    ];
    for (alt, want_ip, hashed) in cases {
        let f = stage_with("", alt);
        let mut e = full_event();
        f.stage
            .apply(&mut e, &meta("alt", RequestSignals::default()));
        let ctx = &e.body["context"];
        assert_eq!(ctx.get("ip").and_then(Value::as_str), want_ip, "{alt}");
        match ctx.get("ipHash").and_then(Value::as_str) {
            Some(h) => {
                assert!(hashed, "{alt}");
                assert_eq!(h.len(), ip::HASH_HEX_LEN);
                assert_ne!(h, "forged");
            }
            None => assert!(!hashed, "{alt}"),
        }
        if alt.contains("geo_coordinates") {
            assert_eq!(ctx["geo"]["latitude"], 51.5);
            assert_eq!(ctx["geo"]["longitude"], -0.1);
        } else {
            assert!(ctx["geo"].get("latitude").is_none(), "{alt}");
        }
    }
}

#[test]
fn hash_is_the_same_for_one_address_in_one_day() {
    let f = stage_with("", "ip = \"hash\"");
    let hash = |ip: &str| {
        let mut e = full_event();
        let mut m = meta("alt", RequestSignals::default());
        m.client_ip = ip.parse().unwrap();
        f.stage.apply(&mut e, &m);
        e.body["context"]["ipHash"].as_str().unwrap().to_string()
    };
    assert_eq!(hash(CLIENT_IP), hash(CLIENT_IP));
    assert_ne!(hash(CLIENT_IP), hash("81.2.69.161"));
}

#[test]
fn anonymize_removes_identifiers_and_keeps_the_country() {
    let f = stage_with(
        "",
        "gpc = \"anonymize\"\nip = \"keep\"\ngeo_coordinates = true",
    );
    let mut e = full_event();
    assert_eq!(f.stage.apply(&mut e, &meta("alt", GPC)), Verdict::Keep);
    let b = &e.body;
    for k in ["userId", "anonymousId", "traits"] {
        assert!(b.get(k).is_none(), "{k}");
    }
    let ctx = &b["context"];
    assert!(ctx.get("ip").is_none() && ctx.get("ipHash").is_none());
    assert!(ctx.get("traits").is_none());
    assert_eq!(ctx["device"], json!({"model":"P"}));
    assert_eq!(ctx["geo"], json!({"country":"GB"}));
    assert_eq!(ctx["privacy"]["anonymized"], "gpc");
    assert_eq!(ctx["locale"], "en");
    assert_eq!(e.visitor_key(), None);
    let text = serde_json::to_string(b).unwrap();
    for needle in ["u-1", "a-1", "x@example.com", "dev-1", "ad-1", "81.2.69"] {
        assert!(!text.contains(needle), "{needle} in {text}");
    }
}

#[test]
fn gpc_in_the_event_context_counts_like_the_header() {
    let f = stage_with("", "gpc = \"anonymize\"");
    let mut e = event(json!({"type":"page","anonymousId":"a","context":{"privacy":{"gpc":true}}}));
    f.stage
        .apply(&mut e, &meta("alt", RequestSignals::default()));
    assert!(e.body.get("anonymousId").is_none());
    assert_eq!(e.body["context"]["privacy"]["gpc"], true);
    let mut e = event(json!({"type":"page","anonymousId":"a","context":{"privacy":{"gpc":true}}}));
    assert_eq!(
        f.stage
            .apply(&mut e, &meta("web", RequestSignals::default())),
        Verdict::Drop("gpc")
    );
}

#[test]
fn request_verdict_drops_on_cookie_and_drop_policies_only() {
    let f = stage_with("", "dnt = \"drop\"\ngpc = \"anonymize\"");
    assert_eq!(
        f.stage.request_verdict(&meta("web", COOKIE), 3),
        Verdict::Drop("optout_cookie")
    );
    assert_eq!(
        f.stage.request_verdict(&meta("web", GPC), 3),
        Verdict::Drop("gpc")
    );
    assert_eq!(f.stage.request_verdict(&meta("alt", GPC), 3), Verdict::Keep);
    assert_eq!(f.stage.request_verdict(&meta("web", DNT), 3), Verdict::Keep);
    assert_eq!(
        f.stage.request_verdict(&meta("alt", DNT), 3),
        Verdict::Drop("dnt")
    );
    assert_eq!(
        f.stage
            .request_verdict(&meta("web", RequestSignals::default()), 3),
        Verdict::Keep
    );
}

#[test]
fn dnt_under_each_policy() {
    for (alt, want) in [
        ("dnt = \"ignore\"", Some("u-1")),
        ("dnt = \"anonymize\"", None),
        ("dnt = \"drop\"", Some("dropped")),
    ] {
        let f = stage_with("", alt);
        let mut e = full_event();
        let v = f.stage.apply(&mut e, &meta("alt", DNT));
        match want {
            Some("dropped") => assert_eq!(v, Verdict::Drop("dnt")),
            Some(id) => assert_eq!(e.body["userId"], id, "{alt}"),
            None => assert!(e.body.get("userId").is_none(), "{alt}"),
        }
    }
}

#[tokio::test]
async fn listed_ids_are_dropped_and_opt_in_restores() {
    let f = stage_with("", "");
    let m = meta("web", RequestSignals::default());
    f.stage
        .record_opt_out(
            "web",
            &[(IdKind::Anonymous, "a-1".into())],
            Proof::ServerKey,
            TEST_ADDRESS,
        )
        .await
        .unwrap();
    let mut e = event(json!({"type":"page","anonymousId":"a-1"}));
    assert_eq!(f.stage.apply(&mut e, &m), Verdict::Drop("optout_list"));
    let mut e = event(json!({"type":"page","anonymousId":"a-2","userId":"u-9"}));
    assert_eq!(f.stage.apply(&mut e, &m), Verdict::Keep);
    // An alias whose previousId is the opted-out visitor is theirs too.
    let mut e = event(json!({"type":"alias","userId":"u-new","previousId":"a-1"}));
    assert_eq!(f.stage.apply(&mut e, &m), Verdict::Drop("optout_list"));
    f.stage
        .record_opt_in(
            "web",
            &[(IdKind::Anonymous, "a-1".into())],
            Proof::ServerKey,
        )
        .await
        .unwrap();
    let mut e = event(json!({"type":"page","anonymousId":"a-1"}));
    assert_eq!(f.stage.apply(&mut e, &m), Verdict::Keep);
}

#[tokio::test]
async fn an_optout_holds_for_its_own_source_only() {
    let f = stage_with("", "");
    f.stage
        .record_opt_out(
            "web",
            &[(IdKind::User, "u-1".into())],
            Proof::None,
            TEST_ADDRESS,
        )
        .await
        .unwrap();
    let mut e = event(json!({"type":"page","userId":"u-1"}));
    assert_eq!(
        f.stage
            .apply(&mut e, &meta("web", RequestSignals::default())),
        Verdict::Drop("optout_list")
    );
    let mut e = event(json!({"type":"page","userId":"u-1"}));
    assert_eq!(
        f.stage
            .apply(&mut e, &meta("alt", RequestSignals::default())),
        Verdict::Keep
    );
    // Without proof an opt-in changes nothing.
    assert!(matches!(
        f.stage
            .record_opt_in("web", &[(IdKind::User, "u-1".into())], Proof::None)
            .await,
        Err(OptOutError::ProofRequired)
    ));
    let mut e = event(json!({"type":"page","userId":"u-1"}));
    assert_eq!(
        f.stage
            .apply(&mut e, &meta("web", RequestSignals::default())),
        Verdict::Drop("optout_list")
    );
}

#[test]
fn denied_consent_drops_or_anonymizes_as_gpc_would() {
    let denied = json!({"type":"track","event":"x","anonymousId":"a-1",
        "context":{"consent":{"categoryPreferences":{"Analytics":false,"Advertising":true}}}});
    let f = stage_with("", "required_consent = [\"Analytics\"]");
    let m = meta("alt", RequestSignals::default());
    let mut e = event(denied.clone());
    assert_eq!(f.stage.apply(&mut e, &m), Verdict::Drop("consent"));
    // Not required by `web`: kept.
    let mut e = event(denied.clone());
    assert_eq!(
        f.stage
            .apply(&mut e, &meta("web", RequestSignals::default())),
        Verdict::Keep
    );
    // Granted: kept.
    let mut e = event(json!({"type":"page","anonymousId":"a-1",
        "context":{"consent":{"categoryPreferences":{"Analytics":true}}}}));
    assert_eq!(f.stage.apply(&mut e, &m), Verdict::Keep);
    // Under `gpc = "anonymize"`: anonymized, reason `consent`.
    let f = stage_with(
        "",
        "required_consent = [\"Analytics\"]\ngpc = \"anonymize\"",
    );
    let mut e = event(denied.clone());
    assert_eq!(f.stage.apply(&mut e, &m), Verdict::Keep);
    assert!(e.body.get("anonymousId").is_none());
    assert_eq!(e.body["context"]["privacy"]["anonymized"], "consent");
    // A rejected event that denies consent is dropped, not reported.
    let f = stage_with("", "required_consent = [\"Analytics\"]");
    let bad = r#"{"type":"nonsense","anonymousId":"a","context":{"consent":{"categoryPreferences":{"Analytics":false}}}}"#;
    assert_eq!(f.stage.rejected(bad, &m), Rejected::Drop("consent"));
}

#[tokio::test]
async fn rejected_events_by_mode_and_policy() {
    let bad = r#"{"type":"nonsense","anonymousId":"a-1","traits":{"email":"jane@example.com"},"context":{"ip":"81.2.69.160"}}"#;
    let m = meta("web", RequestSignals::default());
    // Default (`scrubbed`): the payload after the source's IP and PII rules.
    let f = stage_with("", "");
    let Rejected::Report(Some(payload)) = f.stage.rejected(bad, &m) else {
        panic!("a scrubbed payload is reported");
    };
    assert!(payload.contains("nonsense"), "{payload}");
    assert!(!payload.contains("jane@example.com"), "{payload}");
    assert!(!payload.contains("81.2.69.160"), "{payload}");
    assert_eq!(f.stage.rejected("{not json", &m), Rejected::Report(None));
    let f = stage_with("invalid_payload = \"omit\"", "");
    assert_eq!(f.stage.rejected(bad, &m), Rejected::Report(None));
    let f = stage_with("invalid_payload = \"raw\"", "");
    assert_eq!(
        f.stage.rejected(bad, &m),
        Rejected::Report(Some(bad.into()))
    );
    // Listed ids and policy drops: dropped, never reported.
    f.stage
        .record_opt_out(
            "web",
            &[(IdKind::Anonymous, "a-1".into())],
            Proof::ServerKey,
            TEST_ADDRESS,
        )
        .await
        .unwrap();
    assert_eq!(f.stage.rejected(bad, &m), Rejected::Drop("optout_list"));
    let gpc_bad = r#"{"type":"x","anonymousId":"b","context":{"privacy":{"gpc":true}}}"#;
    assert_eq!(f.stage.rejected(gpc_bad, &m), Rejected::Drop("gpc"));
}

#[test]
fn a_rejected_payload_keeps_no_gateway_owned_field() {
    let f = stage_with("", "");
    let bad = r#"{"type":"nonsense","anonymousId":"a","context":{"ip":"81.2.69.160","geo":{"city":"X"},"bot":false,"privacy":{"redactions":[{"path":"jane@example.com"}],"anonymized":"dnt"},"locale":"en"}}"#;
    let m = meta("web", RequestSignals::default());
    let Rejected::Report(Some(payload)) = f.stage.rejected(bad, &m) else {
        panic!("a scrubbed payload is reported");
    };
    let v = crate::json::from_str(&payload).unwrap();
    assert_eq!(v["context"], json!({"locale":"en"}), "{payload}");
    // Anonymized by DNT: the identifiers go as well.
    let dnt = meta("web", DNT);
    let bad = r#"{"type":"nonsense","anonymousId":"a","context":{"device":{"id":"d-1","model":"P"},"traits":{"x":1}}}"#;
    let Rejected::Report(Some(payload)) = f.stage.rejected(bad, &dnt) else {
        panic!("a scrubbed payload is reported");
    };
    let v = crate::json::from_str(&payload).unwrap();
    assert!(v.get("anonymousId").is_none(), "{payload}");
    assert_eq!(v["context"], json!({"device":{"model":"P"}}), "{payload}");
}

#[test]
fn identity_pii_is_pseudonymized_or_rejected_by_policy_on_both_paths() {
    let m_web = meta("web", RequestSignals::default());
    let m_alt = meta("alt", RequestSignals::default());
    let f = stage_with(
        "",
        "[sources.privacy.scrub]\nidentity_pii = \"reject\"\npseudonym_secret = \"stage test secret value\"",
    );
    // Default source: pseudonymized in the value, so in the record key too.
    let mut e = event(json!({"type":"page","userId":"jane@example.com"}));
    assert_eq!(f.stage.apply(&mut e, &m_web), Verdict::Keep);
    let key = e.visitor_key().unwrap().to_string();
    assert!(key.starts_with(scrub::PSEUDONYM_PREFIX), "{key}");
    let mut again = event(json!({"type":"track","event":"x","userId":"jane@example.com"}));
    f.stage.apply(&mut again, &m_web);
    assert_eq!(again.visitor_key(), Some(key.as_str()));
    // `reject`: the event is rejected; its payload carries the pseudonym.
    let text = r#"{"type":"page","userId":"jane@example.com"}"#;
    let mut e = event(crate::json::from_str(text).unwrap().into_owned());
    assert_eq!(
        f.stage.apply(&mut e, &m_alt),
        Verdict::Reject(RejectReason::IdentityPii)
    );
    let payload = f.stage.rejected_payload(&e, text).unwrap();
    assert!(!payload.contains("jane@example.com"), "{payload}");
    assert!(payload.contains(scrub::PSEUDONYM_PREFIX), "{payload}");
    // The invalid topic: identity fields of any shape go through the same rules.
    for bad in [
        r#"{"type":"group","userId":"u","groupId":{"email":"jane@example.com","ssn":"078-05-1120"}}"#,
        r#"{"type":"page","userId":{"contact":"jane@example.com"}}"#,
        r#"{"type":"nonsense","anonymousId":"jane@example.com","previousId":"+44 20 7946 0958"}"#,
    ] {
        for m in [&m_web, &m_alt] {
            let Rejected::Report(Some(p)) = f.stage.rejected(bad, m) else {
                panic!("a scrubbed payload is reported for {bad}");
            };
            for pii in ["jane@example.com", "078-05-1120", "7946 0958"] {
                assert!(!p.contains(pii), "{pii} in {p}");
            }
        }
    }
}

#[test]
fn a_requests_events_share_its_address_work_and_get_what_each_would_alone() {
    // Looked up and hashed once per request, the events of a request carry
    // what each would carry on its own; anonymized ones get the country only.
    let f = stage_with("", "ip = \"hash\"\ngeo_coordinates = true");
    for source in ["web", "alt"] {
        let m = meta(source, RequestSignals::default());
        let mut alone = full_event();
        assert_eq!(f.stage.apply(&mut alone, &m), Verdict::Keep);
        let mut shared = RequestAddress::default();
        for _ in 0..3 {
            let mut e = full_event();
            assert_eq!(f.stage.apply_in(&mut e, &m, &mut shared), Verdict::Keep);
            assert_eq!(e.body["context"], alone.body["context"], "{source}");
        }
        let gpc = meta(source, GPC);
        let mut anon_alone = full_event();
        let _ = f.stage.apply(&mut anon_alone, &gpc);
        let mut e = full_event();
        let _ = f.stage.apply_in(&mut e, &gpc, &mut shared);
        assert_eq!(e.body["context"], anon_alone.body["context"], "{source}");
    }
    let m = meta("alt", RequestSignals::default());
    let mut e = full_event();
    let _ = f.stage.apply_in(&mut e, &m, &mut RequestAddress::default());
    assert_eq!(e.body["context"]["geo"]["latitude"], 51.5);
    assert!(e.body["context"]["ipHash"].is_string());
}
