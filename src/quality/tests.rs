//! The stage as the pipeline calls it: configuration → verdict and the
//! event as it will be produced.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::event::Event;

fn meta(source: &str) -> RequestMeta<'_> {
    RequestMeta {
        source_id: source,
        received_at: DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc),
        client_ip: [203, 0, 113, 7].into(),
        user_agent: None,
        batch_sent_at: None,
        batch_context: None,
        signals: Default::default(),
    }
}

/// A stage for source `web` with `quality` appended to its table.
fn stage(quality: &str) -> (QualityStage, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        r#"{"track": {"Order Completed": {"properties": {"total": {"type": "number"}}, "required": ["total"]}}}"#,
    )
    .expect("write plan");
    let toml = format!(
        "[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n{}\n",
        quality.replace("PLAN", &plan.display().to_string())
    );
    let config = Config::from_toml(&toml).expect("valid config");
    (
        QualityStage::from_config(&config).expect("stage builds"),
        dir,
    )
}

fn event(v: serde_json::Value) -> Event<'static> {
    Event::parse(&v.to_string(), None, 32 * 1024)
        .expect("valid event")
        .into_owned()
}

/// The ids the client sent, as `prepare` takes them.
fn ids(ev: &Event<'static>) -> Option<dedup::ClientIds<'static>> {
    dedup::ClientIds::of(&ev.body)
}

fn order(total: serde_json::Value) -> Event<'static> {
    event(json!({
        "type": "track", "event": "Order Completed", "anonymousId": "a",
        "properties": {"total": total, "note": "x"},
        "context": {"violations": [{"path": "/forged", "rule": "none"}]}
    }))
}

#[test]
fn plan_modes_change_the_event_as_configured() {
    let plan = |mode: &str| format!("[sources.quality.plan]\nfile = \"PLAN\"\nmode = \"{mode}\"\n");
    let (warn, _d1) = stage(&plan("warn"));
    let mut ev = order(json!("5"));
    assert_eq!(warn.apply(&mut ev, &meta("web"), None), Verdict::Keep(None));
    assert_eq!(
        ev.body["context"]["violations"],
        json!([{"path": "/properties/total", "rule": "type"}])
    );
    assert_eq!(ev.body["properties"], json!({"total": "5", "note": "x"}));

    let (omit, _d2) = stage(&plan("omit"));
    let mut ev = order(json!("5"));
    assert_eq!(omit.apply(&mut ev, &meta("web"), None), Verdict::Keep(None));
    assert_eq!(ev.body["properties"], json!({}));
    assert_eq!(
        ev.body["context"]["violations"].as_array().map(Vec::len),
        Some(2)
    );

    let (block, _d3) = stage(&plan("block"));
    let mut ev = order(json!("5"));
    assert_eq!(
        block.apply(&mut ev, &meta("web"), ids(&order(json!("5"))).as_ref()),
        Verdict::Block(vec![Violation {
            path: "/properties/total".into(),
            rule: "type"
        }])
    );
}

#[test]
fn only_client_sent_message_ids_are_deduplicated_and_unrecord_forgets() {
    let (s, _dir) = stage("");
    let ev = || event(json!({"type": "page", "anonymousId": "a", "messageId": "m-1"}));
    let sent = ids(&ev());
    let first = s.apply(&mut ev(), &meta("web"), sent.as_ref());
    let Verdict::Keep(Some(recorded)) = first else {
        panic!("the first copy is recorded: {first:?}")
    };
    assert_eq!(
        s.apply(&mut ev(), &meta("web"), sent.as_ref()),
        Verdict::Drop(REASON_DUPLICATE)
    );
    // A generated id (no client ids) is not looked at.
    assert_eq!(s.apply(&mut ev(), &meta("web"), None), Verdict::Keep(None));
    // The producer refused the first copy: its retry goes through.
    s.unrecord("web", recorded);
    assert!(matches!(
        s.apply(&mut ev(), &meta("web"), sent.as_ref()),
        Verdict::Keep(Some(_))
    ));
    // Another source has its own filter; an unknown source has none.
    let (off, _d) = stage("[sources.quality.dedup]\nenabled = false\n");
    assert_eq!(
        off.apply(&mut ev(), &meta("web"), sent.as_ref()),
        Verdict::Keep(None)
    );
    assert_eq!(
        off.apply(&mut ev(), &meta("web"), sent.as_ref()),
        Verdict::Keep(None)
    );
    assert_eq!(
        s.apply(&mut ev(), &meta("nope"), sent.as_ref()),
        Verdict::Keep(None)
    );
}

#[test]
fn a_broken_plan_stops_the_config_naming_the_key() {
    let toml = "[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n[sources.quality.plan]\nfile = \"/nonexistent/plan.json\"\n";
    let err = crate::load::from_toml(toml)
        .expect_err("missing plan")
        .to_string();
    assert!(err.contains("sources[0].quality.plan.file"), "{err}");
}

#[test]
fn a_reload_keeps_a_source_duplicate_filter_unless_its_settings_changed() {
    let (s, _dir) = stage("");
    let ev = || event(json!({"type": "page", "anonymousId": "a", "messageId": "m-r"}));
    let sent = ids(&ev());
    assert!(matches!(
        s.apply(&mut ev(), &meta("web"), sent.as_ref()),
        Verdict::Keep(Some(_))
    ));
    let same = Config::from_toml("[[sources]]\nid = \"web\"\nwrite_key = \"other\"\n").unwrap();
    let kept = s.reconfigured(&same).expect("reloaded");
    assert_eq!(
        kept.apply(&mut ev(), &meta("web"), sent.as_ref()),
        Verdict::Drop(REASON_DUPLICATE)
    );
    let changed = Config::from_toml(
        "[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n[sources.quality.dedup]\nmax_memory_mb = 2\n",
    )
    .expect("valid config");
    let fresh = s.reconfigured(&changed).expect("reloaded");
    assert!(matches!(
        fresh.apply(&mut ev(), &meta("web"), sent.as_ref()),
        Verdict::Keep(Some(_))
    ));
}

#[test]
fn duplicates_are_the_same_message_id_from_the_same_visitor() {
    let (s, _dir) = stage("");
    let ev = |visitor: &str, id: &str| {
        event(json!({"type": "page", "anonymousId": visitor, "messageId": id}))
    };
    let apply = |e: Event<'static>| {
        let sent = ids(&e);
        s.apply(&mut e.clone(), &meta("web"), sent.as_ref())
    };
    assert!(matches!(apply(ev("victim", "m-1")), Verdict::Keep(Some(_))));
    // Another visitor sending the victim's (predictable) id first or after
    // does not get the victim's event dropped …
    assert!(matches!(
        apply(ev("attacker", "m-2")),
        Verdict::Keep(Some(_))
    ));
    assert!(matches!(apply(ev("victim", "m-2")), Verdict::Keep(Some(_))));
    assert!(matches!(
        apply(ev("attacker", "m-1")),
        Verdict::Keep(Some(_))
    ));
    // … while the victim's own retry is a duplicate.
    assert_eq!(apply(ev("victim", "m-1")), Verdict::Drop(REASON_DUPLICATE));
    // The ids are hashed apart: ("ab", "c") is not ("a", "bc"), absent is
    // not empty.
    let f = DedupFilter::with_key(&dedup::DedupConfig::default(), (1, 2), 3);
    let key = |m: &str, u: Option<&str>, a: Option<&str>| {
        f.key_of_ids(&dedup::ClientIds {
            message_id: m.into(),
            user_id: u.map(Into::into),
            anonymous_id: a.map(Into::into),
        })
    };
    assert_ne!(key("ab", Some("c"), None), key("a", Some("bc"), None));
    assert_ne!(key("m", Some("x"), None), key("m", None, Some("x")));
    assert_ne!(key("m", Some(""), None), key("m", None, None));
}
