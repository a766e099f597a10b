use std::borrow::Cow;

use proptest::prelude::*;

use super::*;

fn written(text: &str) -> String {
    let Ok(Value::Object(m)) = from_str(text) else {
        panic!("not an object: {text}");
    };
    let mut out = Vec::new();
    write_map(&m, text, &mut out);
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn strings_without_escapes_borrow_and_escaped_ones_are_owned() {
    let text = r#"{"plain":"abc","esc\"aped":"a\nb","n":[1,-2,3.5,true,null]}"#;
    let Ok(Value::Object(m)) = from_str(text) else {
        panic!("parse");
    };
    let keys: Vec<bool> = m
        .entries()
        .iter()
        .map(|(k, _)| matches!(k, Cow::Borrowed(_)))
        .collect();
    assert_eq!(keys, [true, false, true]);
    assert!(matches!(
        m.get("plain"),
        Some(Value::String(Cow::Borrowed("abc")))
    ));
    assert!(matches!(m.get("esc\"aped"), Some(Value::String(Cow::Owned(s))) if s == "a\nb"));
}

#[test]
fn writing_keeps_the_order_and_matches_serde_json_value_for_value() {
    let text = r#"{"z":1,"a":"x\u00e9\"y","m":{"k":[1,2.5e3,"\ud83d\ude00"],"e":{}},"b":null}"#;
    let out = written(text);
    assert!(out.starts_with(r#"{"z":1,"a":"#), "{out}");
    let back: serde_json::Value = serde_json::from_str(&out).expect("valid");
    let orig: serde_json::Value = serde_json::from_str(text).expect("valid");
    assert_eq!(back, orig);
}

#[test]
fn a_repeated_key_keeps_the_last_value_at_the_first_place_like_serde_json() {
    let text = r#"{"a":1,"b":2,"a":3}"#;
    assert_eq!(written(text), r#"{"a":3,"b":2}"#);
    let many: String = (0..40).map(|i| format!(r#""k{i}":{i},"#)).collect();
    let text = format!(r#"{{{many}"k7":"last"}}"#);
    let Ok(Value::Object(m)) = from_str(&text) else {
        panic!("parse");
    };
    assert_eq!(m.len(), 40);
    assert_eq!(m["k7"], "last");
    let orig: serde_json::Value = serde_json::from_str(&text).expect("valid");
    assert_eq!(Value::Object(m), orig);
}

#[test]
fn changed_strings_and_text_from_elsewhere_are_escaped() {
    let text = r#"{"a":"x","b":"y"}"#;
    let Ok(Value::Object(mut m)) = from_str(text) else {
        panic!("parse");
    };
    m.insert("a", Value::from("q\"uo\\te\u{1}"));
    let elsewhere = String::from("new\"key");
    m.insert(elsewhere.as_str(), Value::from("tab\there"));
    let mut out = Vec::new();
    write_map(&m, text, &mut out);
    let back: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(back["a"], "q\"uo\\te\u{1}");
    assert_eq!(back["new\"key"], "tab\there");
    assert_eq!(back["b"], "y");
}

#[test]
fn map_edits_keep_the_order_of_the_rest() {
    let text = r#"{"a":1,"b":2,"c":3}"#;
    let Ok(Value::Object(mut m)) = from_str(text) else {
        panic!("parse");
    };
    assert_eq!(m.remove("b"), Some(Value::Number(2.into())));
    assert_eq!(
        m.insert("a", Value::Bool(true)),
        Some(Value::Number(1.into()))
    );
    m.insert("d", Value::Null);
    let keys: Vec<&str> = m.keys().collect();
    assert_eq!(keys, ["a", "c", "d"]);
}

#[test]
fn invalid_json_and_trailing_text_are_errors() {
    for bad in [
        r#"{"a":1"#,
        r#"{"a":1} x"#,
        "{\"a\":\"\u{1}\"}",
        r#"{"a":01}"#,
    ] {
        assert!(from_str(bad).is_err(), "{bad:?}");
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-c\"\\\\é]{0,3}", inner), 0..6)
                .prop_map(|kv| { serde_json::Value::Object(kv.into_iter().collect()) }),
        ]
    })
}

proptest! {
    /// Any text `serde_json` parses, this tree parses to the same values and
    /// writes back to text `serde_json` reads as the same value.
    #[test]
    fn round_trips_like_serde_json(v in arb_json()) {
        let obj = serde_json::json!({ "v": v, "s": "plain" });
        let text = serde_json::to_string(&obj).expect("serialize");
        // Compared with what `serde_json` parses (its float parsing is not
        // exact without `float_roundtrip`; both use the same).
        let obj: serde_json::Value = serde_json::from_str(&text).expect("parse");
        let parsed = from_str(&text).expect("parse");
        prop_assert_eq!(&parsed, &obj);
        let Value::Object(m) = parsed else { panic!("object") };
        let mut out = Vec::new();
        write_map(&m, &text, &mut out);
        let back: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        let via_serde: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&obj).expect("serialize")).expect("parse");
        prop_assert_eq!(back, via_serde);
    }
}

#[test]
fn slices_of_the_input_that_are_not_whole_strings_are_written_as_strings() {
    let text = r#"{"a":"hello","b":"x"}"#;
    let Ok(Value::Object(mut m)) = from_str(text) else {
        panic!("parse");
    };
    // Part of a string (not between quotes), and a key's text.
    m.insert("part", Value::from(&text[7..9]));
    m.insert("key", Value::from(&text[2..3]));
    let mut out = Vec::new();
    write_map(&m, text, &mut out);
    let back: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(back["part"], "el");
    assert_eq!(back["key"], "a");
    assert_eq!(back["a"], "hello");
}

fn object(v: serde_json::Value) -> Map<'static> {
    match Value::from(v) {
        Value::Object(m) => m,
        _ => panic!("an object"),
    }
}

#[test]
fn merging_under_keeps_the_objects_own_keys_at_every_depth() {
    let under = object(serde_json::json!({"a": 1, "b": {"x": 1, "y": 2}, "c": "u"}));
    let mut over = object(serde_json::json!({"b": {"x": 9}, "c": {"o": true}}));
    over.merge_under(&under);
    assert_eq!(
        Value::Object(over),
        serde_json::json!({"a": 1, "b": {"x": 9, "y": 2}, "c": {"o": true}})
    );
    let mut empty = Map::new();
    empty.merge_under(&under);
    assert_eq!(empty, under);
}

#[test]
fn merging_large_objects_gives_what_merging_small_ones_does() {
    // Past the pairwise size, the merge goes through a hash table.
    let wide = |prefix: &str, n: usize, val: i64| {
        let mut m = serde_json::Map::new();
        for i in 0..n {
            m.insert(format!("{prefix}{i}"), serde_json::json!(val));
        }
        m.insert(
            "nested".into(),
            serde_json::json!({ prefix: val, "shared": val }),
        );
        serde_json::Value::Object(m)
    };
    let under = object(wide("k", 40, 1));
    let mut over = object(wide("k", 30, 2));
    over.insert("own", Value::Bool(true));
    over.merge_under(&under);
    assert_eq!(over.len(), 40 + 1 + 1);
    assert_eq!(over["k5"], 2);
    assert_eq!(over["k35"], 1);
    assert_eq!(over["nested"], serde_json::json!({"k": 2, "shared": 2}));
    assert_eq!(over["own"], true);
}
