use serde_json::json;

use super::*;

const PLAN: &str = r#"{
  "track": {
    "Order Completed": {
      "type": "object",
      "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
        "placed_at": {"type": "string", "format": "date-time"},
        "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
      },
      "required": ["order_id", "total"],
      "additionalProperties": false
    },
    "Signed Up": "signed_up.json"
  },
  "page": {
    "type": "object",
    "properties": {"path": {"type": "string", "pattern": "^/"}, "title": {"type": "string"}},
    "required": ["path"]
  },
  "identify": {"properties": {"plan": {"enum": ["free", "pro"]}}}
}"#;

const SIGNED_UP: &str = r##"{
  "$defs": {"method": {"enum": ["email", "google"]}},
  "type": "object",
  "properties": {"method": {"$ref": "#/$defs/method"}},
  "required": ["method"]
}"##;

fn plan(mode: PlanMode, unplanned: Unplanned) -> TrackingPlan {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("plan.json"), PLAN).expect("write plan");
    std::fs::write(dir.path().join("signed_up.json"), SIGNED_UP).expect("write schema");
    let cfg = PlanConfig {
        file: Some(dir.path().join("plan.json")),
        mode,
        unplanned,
    };
    TrackingPlan::load("web", &cfg)
        .expect("plan loads")
        .expect("a plan is configured")
}

fn body(v: Value) -> crate::json::Map<'static> {
    match crate::json::Value::from(v) {
        crate::json::Value::Object(m) => m,
        _ => panic!("events are objects"),
    }
}

fn check(p: &TrackingPlan, kind: EventType, name: Option<&str>, ev: Value) -> PlanVerdict {
    p.check(kind, name, &body(ev))
}

fn v(path: &str, rule: &'static str) -> Violation {
    Violation {
        path: path.into(),
        rule,
    }
}

fn listed(violations: &[Violation]) -> Edit {
    Edit::Set(
        VIOLATIONS_PATH,
        crate::json::Value::from(Value::Array(
            violations.iter().map(Violation::to_json).collect(),
        )),
    )
}

fn order(props: Value) -> Value {
    json!({"type": "track", "event": "Order Completed", "properties": props})
}

#[test]
fn warn_lists_each_rule_broken_and_keeps_the_event() {
    let p = plan(PlanMode::Warn, Unplanned::Allow);
    let ok = json!({"order_id": "o1", "total": 12.5, "currency": "EUR"});
    let cases: Vec<(Value, Vec<Violation>)> = vec![
        (ok, vec![]),
        (
            json!({"order_id": "o1", "total": "12"}),
            vec![v("/properties/total", "type")],
        ),
        (
            json!({"total": 1}),
            vec![v("/properties/order_id", "required")],
        ),
        (
            json!({"order_id": "o1", "total": -1}),
            vec![v("/properties/total", "minimum")],
        ),
        (
            json!({"order_id": "o1", "total": 1, "currency": "GBP"}),
            vec![v("/properties/currency", "enum")],
        ),
        (
            json!({"order_id": "o1", "total": 1, "color": "red"}),
            vec![v("/properties/color", "additionalProperties")],
        ),
        (
            json!({"order_id": "o1", "total": 1, "placed_at": "yesterday"}),
            vec![v("/properties/placed_at", "format")],
        ),
        (
            json!({"order_id": "o1", "total": 1, "items": [{"sku": "a"}, {"qty": 1}]}),
            vec![v("/properties/items/1/sku", "required")],
        ),
    ];
    for (props, want) in cases {
        let got = check(
            &p,
            EventType::Track,
            Some("Order Completed"),
            order(props.clone()),
        );
        let edits = if want.is_empty() {
            vec![]
        } else {
            vec![listed(&want)]
        };
        assert_eq!(got, PlanVerdict::Keep(edits), "{props}");
    }
}

#[test]
fn every_planned_type_is_checked_against_its_own_schema() {
    let p = plan(PlanMode::Warn, Unplanned::Allow);
    let cases: Vec<(EventType, Option<&str>, Value, Vec<Violation>)> = vec![
        (
            EventType::Page,
            None,
            json!({"properties": {"path": "home"}}),
            vec![v("/properties/path", "pattern")],
        ),
        (
            EventType::Page,
            None,
            json!({}),
            vec![v("/properties/path", "required")],
        ),
        (
            EventType::Page,
            None,
            json!({"properties": {"path": "/"}}),
            vec![],
        ),
        (
            EventType::Identify,
            None,
            json!({"traits": {"plan": "gold"}}),
            vec![v("/traits/plan", "enum")],
        ),
        (
            EventType::Track,
            Some("Signed Up"),
            json!({"properties": {"method": "fax"}}),
            vec![v("/properties/method", "enum")],
        ),
        (
            EventType::Track,
            Some("Signed Up"),
            json!({"properties": {"method": "email"}}),
            vec![],
        ),
        // No schema for screen and group; alias is never checked.
        (
            EventType::Screen,
            None,
            json!({"properties": {"x": 1}}),
            vec![],
        ),
        (EventType::Group, None, json!({"traits": {"x": 1}}), vec![]),
        (EventType::Alias, None, json!({}), vec![]),
    ];
    for (kind, name, ev, want) in cases {
        let got = check(&p, kind, name, ev.clone());
        let edits = if want.is_empty() {
            vec![]
        } else {
            vec![listed(&want)]
        };
        assert_eq!(got, PlanVerdict::Keep(edits), "{kind:?} {ev}");
    }
}

#[test]
fn block_sends_the_violations_instead_of_the_event() {
    let p = plan(PlanMode::Block, Unplanned::Allow);
    let got = check(
        &p,
        EventType::Track,
        Some("Order Completed"),
        order(json!({"order_id": 7, "total": 1})),
    );
    assert_eq!(
        got,
        PlanVerdict::Block(vec![v("/properties/order_id", "type")])
    );
    let valid = order(json!({"order_id": "o", "total": 1}));
    assert_eq!(
        check(&p, EventType::Track, Some("Order Completed"), valid),
        PlanVerdict::Keep(vec![])
    );
}

#[test]
fn omit_removes_undeclared_and_invalid_properties_and_lists_them() {
    let p = plan(PlanMode::Omit, Unplanned::Allow);
    // additionalProperties: false; one invalid value, one extra property.
    let got = check(
        &p,
        EventType::Track,
        Some("Order Completed"),
        order(json!({"order_id": "o1", "total": "x", "color": "red"})),
    );
    let PlanVerdict::Keep(edits) = got else {
        panic!("omit keeps the event")
    };
    let removed: Vec<&str> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::RemoveField {
                container: "properties",
                key,
            } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let mut removed = removed;
    removed.sort_unstable();
    assert_eq!(removed, ["color", "total"]);
    let last = edits.last().expect("violations are listed");
    let Edit::Set(path, crate::json::Value::Array(list)) = last else {
        panic!("violations last: {last:?}")
    };
    assert_eq!(*path, VIOLATIONS_PATH);
    assert_eq!(list.len(), 2, "{list:?}");

    // A schema without additionalProperties: undeclared ones are removed too.
    let got = check(
        &p,
        EventType::Page,
        None,
        json!({"properties": {"path": "/", "utm": "x"}}),
    );
    let undeclared = v("/properties/utm", RULE_UNDECLARED);
    assert_eq!(
        got,
        PlanVerdict::Keep(vec![
            Edit::RemoveField {
                container: "properties",
                key: "utm".into()
            },
            listed(&[undeclared]),
        ])
    );
}

#[test]
fn unplanned_names_follow_their_own_policy() {
    let ev = || json!({"type": "track", "event": "Ordr Completed", "properties": {}});
    let unplanned = [v("/event", RULE_UNPLANNED)];
    let cases = [
        (Unplanned::Allow, PlanVerdict::Keep(vec![])),
        (Unplanned::Warn, PlanVerdict::Keep(vec![listed(&unplanned)])),
        (Unplanned::Block, PlanVerdict::Block(unplanned.to_vec())),
    ];
    for (policy, want) in cases {
        for mode in [PlanMode::Warn, PlanMode::Omit, PlanMode::Block] {
            let p = plan(mode, policy);
            assert_eq!(
                check(&p, EventType::Track, Some("Ordr Completed"), ev()),
                want,
                "{policy:?} in {mode:?}"
            );
        }
    }
}

#[test]
fn broken_plans_are_refused_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        (r#"{"trak": {}}"#, "unknown key `trak`"),
        (r#"{"track": {"A": 5}}"#, "object or a file name"),
        (r#"{"track": {"A": {"type": "nope"}}}"#, "track event `A`"),
        (r#"{"page": "missing.json"}"#, "missing.json"),
    ];
    for (text, want) in cases {
        let path = dir.path().join("plan.json");
        std::fs::write(&path, text).expect("write");
        let cfg = PlanConfig {
            file: Some(path),
            ..PlanConfig::default()
        };
        let err = TrackingPlan::load("web", &cfg).expect_err(text).to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
    assert!(TrackingPlan::load("web", &PlanConfig::default())
        .expect("no plan is fine")
        .is_none());
}
